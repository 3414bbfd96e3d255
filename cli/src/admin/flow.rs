//! The M-of-N flow as `signerctl` runs it: propose, show the challenge as the caller's own
//! decoding of it, approve with the caller's key, and report executed (exit 0) or pending
//! (exit 6); plus `approve <id>` and `pending`.
//!
//! Owns: [`Session`] (the pool, the caller and their approver choice), challenge output (text
//! and JSON) and how Admin-service answers map to messages and exit codes. Must not: trust
//! the node's description of an action (what is shown — the description and the review, e.g.
//! an import's validators and maxima or what a grant changes — and signed comes from
//! `signer_client::review`, i.e. from the action bytes under the signed digest), or sign
//! anything the caller has not been shown.

use super::keys;
use crate::approver::{self, Choice};
use crate::{exit, Failure};
use clap::Args;
use signer_client::pb;
use signer_client::{review, ClientError, ClusterDescriptor, SignerPool};
use signer_core::admin::Action;
use signer_core::audit::format_rfc3339;
use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use tonic::Code;

/// Exit code: proposed, but more approvals are needed.
pub const EXIT_PENDING: u8 = crate::exit::PENDING;

/// Hex digits of a challenge id shown for `signerctl approve <prefix>`.
const PREFIX_LEN: usize = 12;

/// `approve --help`: examples and exit codes.
pub const APPROVE_HELP: &str = concat!(
    "\
Examples:
  signerctl --dir DIR pending
  signerctl --dir DIR --client admin-2 approve 3f2a9c01b4d2
  signerctl --dir DIR --client admin-alice --yubikey approve 3f2a9c01b4d2 --yes < pin.txt

",
    super::admin_exit_codes!()
);

/// Arguments of `approve`.
#[derive(Args, Debug, Clone)]
pub struct ApproveArgs {
    /// The challenge's id, or its first 8 or more hex digits (as `pending` shows them).
    #[arg(value_name = "CHALLENGE_ID")]
    pub challenge: String,
    /// Approve without asking (required when standard input is not a terminal).
    #[arg(long)]
    pub yes: bool,
}

/// Arguments of `pending`.
#[derive(Args, Debug, Clone)]
pub struct PendingArgs {
    /// Also list decided (executed, failed) and expired challenges the cluster still keeps.
    #[arg(long)]
    pub all: bool,
}

/// Who runs admin commands, against which cluster.
pub struct Session<'a> {
    /// The connection pool, authenticated as `client`.
    pub pool: &'a SignerPool,
    /// The cluster descriptor (cluster id, admins' development keys).
    pub descriptor: &'a ClusterDescriptor,
    /// `--dir` as given (a directory or cluster.json itself).
    pub dir: &'a Path,
    /// The client identity = the admin's name.
    pub client: &'a str,
    /// `--json`.
    pub json: bool,
    /// `--yubikey`, `--yubikey-serial`.
    pub approver: Choice,
}

/// A proposed challenge, possibly approved by the caller.
pub struct Proposed {
    challenge: pb::Challenge,
    action: Action,
    approval: Option<pb::ApproveResponse>,
}

impl Session<'_> {
    /// Propose `request`; approve it with the caller's key unless `no_approve`. The approver
    /// is opened before proposing, so that a missing key leaves no challenge behind.
    pub async fn propose(
        &self,
        request: pb::propose_request::Request,
        no_approve: bool,
    ) -> Result<Proposed, Failure> {
        let mut approver = if no_approve {
            None
        } else {
            Some(self.open_approver().await?)
        };
        let challenge = self
            .pool
            .propose(request)
            .await
            .map_err(|e| self.failure(e))?;
        let reviewed = self.review(&challenge)?;
        if !self.json {
            signer_client::outln!("proposed challenge {}", prefix(&challenge));
            print_challenge(&challenge, &reviewed.action);
        }
        let approval = match approver.as_mut() {
            Some(approver) => {
                let signature = approver
                    .sign(&reviewed.statement)
                    .map_err(|e| signing_failure(approver.name(), e))?;
                Some(
                    self.pool
                        .send_approval(&challenge.id, &signature)
                        .await
                        .map_err(|e| self.approval_failure(e, &challenge))?,
                )
            }
            None => None,
        };
        Ok(Proposed {
            challenge,
            action: reviewed.action,
            approval,
        })
    }

    /// Print the outcome of a proposal (or approval): executed (with what it did) or pending
    /// (exit 6).
    pub async fn finish(&self, mut p: Proposed) -> Result<(), Failure> {
        // A membership change is carried out by the leader after its approval: wait for it.
        if p.approval.as_ref().is_some_and(|a| a.status == "executing") {
            self.await_membership(&mut p).await?;
        }
        let executed = p.approval.as_ref().is_some_and(|a| a.status == "executed");
        let mut value = serde_json::json!({
            "status": if executed { "executed" } else { "pending" },
            "challenge": challenge_json(&p.challenge, Some(&p.action), None),
            "approval": p.approval.as_ref().map(approval_json),
        });
        let mut result = Ok(());
        if executed {
            let detail = p.approval.as_ref().map(|a| a.detail.as_str()).unwrap_or("");
            if !self.json {
                signer_client::outln!("executed: {detail}");
            }
            result = self.after_executed(&p, &mut value).await;
        }
        if self.json {
            signer_client::outln!("{value}");
        }
        if !executed {
            let (approved, threshold) = match &p.approval {
                Some(a) => (a.approved_by.len(), a.threshold),
                None => (p.challenge.approved_by.len(), p.challenge.threshold),
            };
            let who = if p.approval.is_some() {
                "others"
            } else {
                "approvers"
            };
            return Err(Failure::new(
                EXIT_PENDING,
                format!(
                    "pending: {approved} of {threshold} approvals; {who} run: signerctl approve {}",
                    prefix(&p.challenge)
                ),
            ));
        }
        result
    }

    /// Wait until the leader decided the approved membership change `p` (the new node
    /// caught up and votes, or it failed): `p`'s approval becomes executed, or the failure.
    async fn await_membership(&self, p: &mut Proposed) -> Result<(), Failure> {
        if !self.json {
            let detail = p.approval.as_ref().map(|a| a.detail.as_str()).unwrap_or("");
            signer_client::outln!("executing: {detail}");
        }
        let id = prefix(&p.challenge);
        // The leader gives a new node 120 s to catch up, and may change meanwhile.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
        loop {
            let c = self
                .pool
                .challenge(&id)
                .await
                .map_err(|e| self.failure(e))?;
            match c.status.as_str() {
                "executed" => {
                    if let Some(a) = p.approval.as_mut() {
                        a.status = c.status.clone();
                        a.detail = c.detail.clone();
                    }
                    return Ok(());
                }
                "failed" => {
                    return Err(Failure::new(
                        crate::exit::USAGE,
                        format!(
                            "error: approved, but the membership change failed: {}",
                            c.detail
                        ),
                    ))
                }
                _ if std::time::Instant::now() > deadline => {
                    return Err(Failure::new(
                        crate::exit::UNAVAILABLE,
                        format!(
                            "unavailable: membership change {id} is still executing; see \
                             `signerctl pending --all`"
                        ),
                    ))
                }
                _ => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
            }
        }
    }

    /// What an executed action changed, shown after "executed" (keys, re-wraps).
    async fn after_executed(
        &self,
        p: &Proposed,
        value: &mut serde_json::Value,
    ) -> Result<(), Failure> {
        let (key_id, done) = match &p.action {
            Action::AddKey(r) => (r.key_id.as_str(), r.origin.as_str()),
            Action::SetKeyState { key_id, state } => (
                key_id.as_str(),
                match state {
                    signer_core::registry::KeyState::Active => "enabled",
                    signer_core::registry::KeyState::Disabled => "disabled",
                    signer_core::registry::KeyState::Deleted => "deleted",
                },
            ),
            Action::RotateKek(items) => {
                return keys::rotated(items.len(), &p.challenge.notes, self.json, value)
            }
            _ => return Ok(()),
        };
        let (_, keys) = self.pool.list_keys().await.map_err(|e| self.failure(e))?;
        if let Some(info) = keys.iter().find(|k| k.key_id == key_id) {
            value["key"] = keys::key_json(info);
            if !self.json {
                keys::print_key(info, done);
            }
        }
        Ok(())
    }

    /// `approve <prefix>`.
    pub async fn approve_command(&self, args: &ApproveArgs) -> Result<(), Failure> {
        let challenge = self
            .pool
            .challenge(&args.challenge)
            .await
            .map_err(|e| self.failure(e))?;
        let reviewed = self.review(&challenge)?;
        if !self.json {
            signer_client::outln!("challenge {}", prefix(&challenge));
            print_challenge(&challenge, &reviewed.action);
        }
        if challenge.status != "pending" {
            let why = match challenge.status.as_str() {
                "expired" => "it expired; propose the change again".to_owned(),
                status => format!(
                    "it is already {status}{}; approvals are single-use",
                    if challenge.detail.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", challenge.detail)
                    }
                ),
            };
            return Err(Failure::new(
                2,
                format!(
                    "error: challenge {} cannot be approved: {why}; nothing was sent",
                    prefix(&challenge)
                ),
            ));
        }
        if !args.yes {
            confirm()?;
        }
        let mut approver = self.open_approver().await?;
        let signature = approver
            .sign(&reviewed.statement)
            .map_err(|e| signing_failure(approver.name(), e))?;
        let approval = self
            .pool
            .send_approval(&challenge.id, &signature)
            .await
            .map_err(|e| self.approval_failure(e, &challenge))?;
        if !self.json {
            signer_client::outln!("approved as {}", self.client);
        }
        self.finish(Proposed {
            challenge,
            action: reviewed.action,
            approval: Some(approval),
        })
        .await
    }

    /// `pending [--all]`.
    pub async fn pending(&self, all: bool) -> Result<(), Failure> {
        let challenges = self
            .pool
            .challenges(all)
            .await
            .map_err(|e| self.failure(e))?;
        let cluster = &self.descriptor.cluster_id;
        let reviewed: Vec<Result<Action, String>> = challenges
            .iter()
            .map(|c| {
                review(c, cluster)
                    .map(|r| r.action)
                    .map_err(|e| e.to_string())
            })
            .collect();
        if self.json {
            let list: Vec<_> = challenges
                .iter()
                .zip(&reviewed)
                .map(|(c, r)| challenge_json(c, r.as_ref().ok(), r.as_ref().err()))
                .collect();
            signer_client::outln!("{}", serde_json::Value::Array(list));
            return Ok(());
        }
        if challenges.is_empty() {
            signer_client::outln!("no {}challenges", if all { "" } else { "open " });
            return Ok(());
        }
        signer_client::outln!(
            "{:<PREFIX_LEN$}  {:<8}  {:<9}  {:<24}  {:<12}  ACTION",
            "ID",
            "STATUS",
            "APPROVALS",
            "EXPIRES (UTC)",
            "PROPOSER"
        );
        for (c, r) in challenges.iter().zip(&reviewed) {
            let action = match r {
                Ok(a) => a.describe(),
                Err(e) => format!("(does not check out, do not approve: {e})"),
            };
            let threshold = match threshold_source(c) {
                "unrecorded" => "?".to_owned(),
                _ => c.threshold.to_string(),
            };
            signer_client::outln!(
                "{:<PREFIX_LEN$}  {:<8}  {:<9}  {:<24}  {:<12}  {action}",
                prefix(c),
                c.status,
                format!("{} of {threshold}", c.approved_by.len()),
                format_rfc3339(c.expires_at_ms),
                c.proposer,
            );
        }
        if challenges.iter().any(|c| threshold_source(c) != "current") {
            signer_client::outln!(
                "(executed and failed: the approvals that counted and the threshold they met \
                 when decided; ? = not recorded by the signer that decided it)"
            );
        }
        Ok(())
    }

    /// Decode and check a challenge for this cluster; a challenge that does not check out is
    /// never shown as an action nor approved.
    fn review(&self, challenge: &pb::Challenge) -> Result<signer_client::Reviewed, Failure> {
        review(challenge, &self.descriptor.cluster_id).map_err(|e| {
            let detail = match &e {
                ClientError::Other(status) => status.message().to_owned(),
                other => other.to_string(),
            };
            Failure::new(
                1,
                format!(
                    "error: challenge {} does not check out: {detail}; not approving it",
                    hex::encode(&challenge.id)
                ),
            )
        })
    }

    /// The caller's approver. When it cannot be opened, first ask whether the caller is an
    /// admin at all, so a non-admin hears that (exit 5) rather than "no key".
    async fn open_approver(&self) -> Result<Box<dyn signer_client::Approver>, Failure> {
        match approver::open(self.approver, self.descriptor, self.client) {
            Ok(a) => Ok(a),
            Err(f) => match self.pool.admin_state().await {
                Err(e @ ClientError::Other(_)) => Err(self.failure(e)),
                _ => Err(f),
            },
        }
    }

    /// How an Admin-service failure reads and exits.
    pub fn failure(&self, e: ClientError) -> Failure {
        let ClientError::Other(status) = &e else {
            return Failure::from(e);
        };
        let message = status.message();
        match status.code() {
            Code::PermissionDenied | Code::Unauthenticated
                if status.code() == Code::Unauthenticated
                    || message.contains("not an enrolled admin") =>
            {
                Failure::new(
                    5,
                    format!(
                        "error: this identity is not an admin: the cluster refused client {:?} \
                         ({message}); admin commands need a client certificate naming an \
                         enrolled admin-… identity (--client, default admin-1)",
                        self.client
                    ),
                )
            }
            Code::PermissionDenied => Failure::new(
                exit::NOT_PERMITTED,
                format!("error: not permitted: {message}"),
            ),
            Code::AlreadyExists => {
                Failure::new(exit::USAGE, format!("error: already exists: {message}"))
            }
            Code::NotFound => Failure::new(exit::NOT_FOUND, format!("error: not found: {message}")),
            Code::FailedPrecondition => {
                Failure::new(exit::USAGE, format!("error: not possible: {message}"))
            }
            Code::ResourceExhausted => {
                Failure::new(exit::RATE_LIMITED, format!("error: too many: {message}"))
            }
            Code::InvalidArgument | Code::OutOfRange => Failure::new(
                exit::USAGE,
                format!("error: the cluster rejected the request: {message}"),
            ),
            _ => Failure::new(exit::OTHER, format!("error: {e}")),
        }
    }

    /// An approval's failure, naming the challenge.
    fn approval_failure(&self, e: ClientError, challenge: &pb::Challenge) -> Failure {
        let f = self.failure(e);
        Failure::new(
            f.code,
            format!(
                "{} (challenge {}: `signerctl pending --all` shows it)",
                f.message,
                prefix(challenge)
            ),
        )
    }
}

fn signing_failure(name: &str, e: ClientError) -> Failure {
    let detail = match &e {
        ClientError::Other(status) => status.message().to_owned(),
        other => other.to_string(),
    };
    Failure::new(
        2,
        format!("error: signing the approval with {name}'s key: {detail}; nothing was sent"),
    )
}

/// Ask `approve? [y/N]` on the terminal.
fn confirm() -> Result<(), Failure> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(Failure::new(
            2,
            "error: approving is confirmed on a terminal; standard input is not one: read \
             the challenge above and pass --yes to approve without asking",
        ));
    }
    eprint!("approve? [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    stdin
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Failure::new(2, format!("error: reading the answer: {e}")))?;
    if matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
        Ok(())
    } else {
        Err(Failure::new(1, "aborted: not approved; nothing was sent"))
    }
}

/// The first hex digits of a challenge's id.
fn prefix(c: &pb::Challenge) -> String {
    let mut id = hex::encode(&c.id);
    id.truncate(PREFIX_LEN);
    id
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Where a challenge's `threshold` comes from: `decided` (the threshold its approvals met
/// when it was decided), `unrecorded` (decided by a signer that did not record it) or
/// `current` (open or expired: the policy's now).
fn threshold_source(c: &pb::Challenge) -> &'static str {
    match (c.status.as_str(), c.threshold) {
        ("executed" | "failed", 0) => "unrecorded",
        ("executed" | "failed", _) => "decided",
        _ => "current",
    }
}

fn print_challenge(c: &pb::Challenge, action: &Action) {
    let left = c.expires_at_ms.saturating_sub(now_ms()) / 1000;
    signer_client::outln!("  id          {}", hex::encode(&c.id));
    signer_client::outln!("  action      {}", action.describe());
    // Everything else an approver needs (an import's validators and maxima, what a grant
    // changes), from the same bytes.
    for line in action.review() {
        signer_client::outln!("              {line}");
    }
    signer_client::outln!("  digest      {}", hex::encode(&c.action_digest));
    signer_client::outln!("  proposer    {}", c.proposer);
    signer_client::outln!(
        "  expires     {} (in {}m{:02}s)",
        format_rfc3339(c.expires_at_ms),
        left / 60,
        left % 60
    );
    let by = if c.approved_by.is_empty() {
        String::new()
    } else {
        format!(" (by {})", c.approved_by.join(", "))
    };
    match threshold_source(c) {
        "decided" => signer_client::outln!(
            "  approvals   {} of {} (the threshold when it was decided){by}",
            c.approved_by.len(),
            c.threshold
        ),
        "unrecorded" => signer_client::outln!(
            "  approvals   {} (the threshold when it was decided is not recorded){by}",
            c.approved_by.len()
        ),
        _ => signer_client::outln!(
            "  approvals   {} of {} needed{by}",
            c.approved_by.len(),
            c.threshold
        ),
    }
    signer_client::outln!("  status      {}", c.status);
    for note in &c.notes {
        signer_client::outln!("  note        {note}");
    }
}

/// A challenge as JSON: `action` and `review` are the caller's decoding (null with
/// `review_error` when the challenge does not check out); `node_description` is the node's,
/// for comparison only. `threshold_source` says whose threshold `threshold` is
/// ([`threshold_source`]).
fn challenge_json(
    c: &pb::Challenge,
    action: Option<&Action>,
    review_error: Option<&String>,
) -> serde_json::Value {
    serde_json::json!({
        "id": hex::encode(&c.id),
        "id_prefix": prefix(c),
        "cluster_id": c.cluster_id,
        "action": action.map(Action::describe),
        "review": action.map(Action::review),
        "review_error": review_error,
        "node_description": c.description,
        "action_digest": hex::encode(&c.action_digest),
        "proposer": c.proposer,
        "approved_by": c.approved_by,
        "threshold": c.threshold,
        "threshold_source": threshold_source(c),
        "status": c.status,
        "detail": c.detail,
        "created_at": format_rfc3339(c.created_at_ms),
        "created_at_ms": c.created_at_ms,
        "expires_at": format_rfc3339(c.expires_at_ms),
        "expires_at_ms": c.expires_at_ms,
        "notes": c.notes,
    })
}

fn approval_json(a: &pb::ApproveResponse) -> serde_json::Value {
    serde_json::json!({
        "status": a.status,
        "approved_by": a.approved_by,
        "threshold": a.threshold,
        "detail": a.detail,
    })
}
