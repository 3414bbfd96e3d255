//! The replicated admin state and its transitions: bootstrap, challenges, approvals, tally,
//! and the actions that change admin-plane state (admins, policy, client grants, pause).
//!
//! Owns: [`AdminState`], [`AdminCommand`], [`AdminOutcome`]. Must not: read a clock or RNG
//! (times and challenge ids are in the commands), or apply key and protection actions (the
//! replica's state machine does, when [`AdminState::approve`] reports the threshold reached).
//! Revocations are recorded here ([`AdminState::revoked`]); the node checks callers against
//! them.
//!
//! To ensure correctness:
//! - a challenge keeps only the action's canonical bytes; what executes is what those bytes
//!   decode to ([`CanonicalAction`]), decoded here, in `apply`, on every replica. Bytes that do
//!   not decode are refused at proposal and never collect approvals;
//! - a challenge id is used once: a second proposal with the same id is refused, and once a
//!   challenge is executed, failed or expired no approval for it counts again;
//! - an approval counts only if its signature verifies over the statement binding this
//!   cluster, this challenge, this action's digest and this expiry, under the key of an admin
//!   enrolled when the approval is applied;
//! - approvals are recorded by the approving *key*, and count only while that key is enrolled:
//!   a name removed and enrolled again with a new key does not inherit the old key's
//!   approvals; each key counts once;
//! - an enrollment of a YubiKey admin verifies the attestation chain against the replicated
//!   roots when applied, and the admin's key is the one in the verified slot certificate;
//! - a grant or revocation that carries the identity's grant when proposed ([`Prior`]) is
//!   refused, at proposal and when the threshold is reached, once that is not the grant: what
//!   the approvers reviewed as the change is the change, or nothing happens;
//! - a decided challenge keeps the threshold its approvals met and who they were
//!   ([`Decided`]), whatever the policy becomes;
//! - a refusal changes nothing.
//!
//! Times (`at_ms`) are the proposing leader's clock, carried in the Raft entry.

use super::action::EnrollKey;
use super::approval::{self, ApprovalError};
use super::codec::CanonicalAction;
use super::membership::{self, NodeChange};
use super::revocation::{certificate_identity, Fingerprint, RevokedCertificate};
use super::{
    attestation, valid_name, Action, AdminRecord, ApproverKey, ClientGrant, Policy, Prior,
};
use crate::protection::espresso::ViewHorizon;
use crate::protection::ethereum::Root;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Decided challenges are kept this long after they expire (then pruned; an approval for a
/// pruned challenge is refused as unknown).
const RETAIN_MS: u64 = 24 * 60 * 60 * 1000;
/// At most this many decided (or expired) challenges are kept (the oldest pruned first,
/// whatever their age): the admin state is stored and replicated whole with every admin
/// command, so a day of bulk key generation (10,000 keys, each its own challenge) must not make
/// it grow without bound. A membership change in progress and executed removals are kept beyond it.
const MAX_DECIDED: usize = 1024;
/// At most this many undecided challenges at once.
const MAX_PENDING: usize = 256;
/// Challenge lifetimes a policy may set.
const TTL_RANGE_MS: std::ops::RangeInclusive<u64> = 1_000..=7 * 24 * 60 * 60 * 1000;

/// Where a challenge stands. (Stored: the variants are in their stored order, new ones last,
/// so stored statuses of every format decode.)
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChallengeStatus {
    /// Collecting approvals.
    Pending,
    /// Approved and applied, decided by a signer that did not record the threshold (new
    /// decisions are [`ChallengeStatus::ExecutedUnder`]).
    Executed {
        /// When (leader time, ms since the Unix epoch).
        at_ms: u64,
        /// What applying did, in words.
        detail: String,
    },
    /// Approved, but applying it was refused, decided by a signer that did not record the
    /// threshold (new decisions are [`ChallengeStatus::FailedUnder`]).
    Failed {
        /// When.
        at_ms: u64,
        /// Why.
        reason: String,
    },
    /// Approved and applied.
    ExecutedUnder {
        /// When, under which threshold, by whom.
        decided: Decided,
        /// What applying did, in words.
        detail: String,
    },
    /// Approved, but applying it was refused (e.g. the key id was taken meanwhile).
    FailedUnder {
        /// When, under which threshold, by whom.
        decided: Decided,
        /// Why.
        reason: String,
    },
    /// Approved membership change the leader is carrying out through Raft: it becomes
    /// executed or failed when the leader commits the outcome
    /// ([`AdminCommand::NodeChangeDone`]). A new leader finishes it.
    Executing {
        /// When, under which threshold, by whom.
        decided: Decided,
    },
}

/// How a challenge was decided: by the approval that met the policy's threshold then.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decided {
    /// When (leader time, ms since the Unix epoch).
    pub at_ms: u64,
    /// The policy's threshold when the challenge was decided (a later policy change does not
    /// change it).
    pub threshold: u32,
    /// The admins whose approvals counted then.
    pub approvers: Vec<String>,
}

impl ChallengeStatus {
    /// `pending`, `executed` or `failed`.
    pub fn word(&self) -> &'static str {
        match self {
            ChallengeStatus::Pending => "pending",
            ChallengeStatus::Executed { .. } | ChallengeStatus::ExecutedUnder { .. } => "executed",
            ChallengeStatus::Failed { .. } | ChallengeStatus::FailedUnder { .. } => "failed",
            ChallengeStatus::Executing { .. } => "executing",
        }
    }

    /// What executing did, or why it failed; empty while pending.
    pub fn detail(&self) -> &str {
        match self {
            ChallengeStatus::Pending => "",
            ChallengeStatus::Executing { .. } => {
                "approved; the leader is changing the membership (learner, catch-up, voters)"
            }
            ChallengeStatus::Executed { detail, .. }
            | ChallengeStatus::ExecutedUnder { detail, .. } => detail,
            ChallengeStatus::Failed { reason, .. }
            | ChallengeStatus::FailedUnder { reason, .. } => reason,
        }
    }

    /// How it was decided, when the signer that decided it recorded that.
    pub fn decided(&self) -> Option<&Decided> {
        match self {
            ChallengeStatus::ExecutedUnder { decided, .. }
            | ChallengeStatus::FailedUnder { decided, .. }
            | ChallengeStatus::Executing { decided } => Some(decided),
            _ => None,
        }
    }
}

/// One recorded approval.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    /// The name the key was enrolled under when it approved (for the record; counting goes by
    /// the key).
    pub admin: String,
    /// The signature over the statement.
    #[serde(with = "crate::bytes::hex_or_raw")]
    pub signature: Vec<u8>,
}

/// A proposed action waiting for (or done with) approvals.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Challenge {
    /// Random, chosen by the proposing node.
    #[serde(with = "hex_array")]
    pub id: [u8; 32],
    /// The action's canonical encoding (protobuf `signer.v1.AdminAction`), as approvers see
    /// it: the only form of the action kept. What executes is what these bytes decode to.
    #[serde(with = "crate::bytes::hex_or_raw")]
    pub action_bytes: Vec<u8>,
    /// [`approval::action_digest`] of `action_bytes`.
    #[serde(with = "hex_array")]
    pub digest: [u8; 32],
    /// The admin who proposed it.
    pub proposer: String,
    /// Leader time at proposal (ms).
    pub created_at_ms: u64,
    /// No approval applied after this time counts (ms).
    pub expires_at_ms: u64,
    /// Approving key ([`ApproverKey::to_text`]) → its approval. (Stored as
    /// `approvals_by_key`: challenges persisted when approvals were keyed by name load with
    /// none, so a name's old approvals never count for a new key.)
    #[serde(rename = "approvals_by_key", default)]
    pub approvals: BTreeMap<String, Approval>,
    /// Where it stands.
    pub status: ChallengeStatus,
}

impl Challenge {
    /// The admins whose approvals count now: enrolled admins whose *current* key approved,
    /// by name.
    pub fn counted(&self, admins: &BTreeMap<String, AdminRecord>) -> Vec<String> {
        admins
            .values()
            .filter(|a| self.approvals.contains_key(&a.key.to_text()))
            .map(|a| a.name.clone())
            .collect()
    }

    /// The action, as its bytes decode.
    pub fn action(&self) -> Result<Action, AdminRefusal> {
        CanonicalAction::decode(&self.action_bytes)
            .map(CanonicalAction::into_action)
            .map_err(|e| AdminRefusal::MalformedAction(e.to_string()))
    }
}

/// Initial admin-plane state, from `signer init` (the same on every node's config).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bootstrap {
    /// The cluster id that approvals bind to.
    pub cluster_id: String,
    /// The first admins.
    pub admins: Vec<AdminRecord>,
    /// The first policy.
    pub policy: Policy,
    /// The first client grants.
    pub clients: BTreeMap<String, ClientGrant>,
    /// The attestation roots (DER) YubiKey enrollments must chain to, from the config's
    /// `[admin]` section. Replicated, so every replica verifies against the same roots.
    /// (Absent in bootstraps written before they were replicated: Yubico's public roots.)
    #[serde(with = "hex_list", default = "legacy_roots")]
    pub attestation_roots: Vec<Vec<u8>>,
    /// The cluster's eth2 genesis validators root, from the config's `[eth2]` section:
    /// interchange imports must name it. (`None` in bootstraps written before it was
    /// replicated: imports are then refused.)
    #[serde(default)]
    pub genesis_validators_root: Option<Root>,
}

/// A replicated admin-plane command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdminCommand {
    /// Set the initial state; refused once the cluster has one.
    Bootstrap(Bootstrap),
    /// Open a challenge for an action.
    Propose {
        /// The challenge id (random, from the proposing node).
        #[serde(with = "hex_array")]
        id: [u8; 32],
        /// The proposing admin.
        proposer: String,
        /// The action's canonical encoding (`signer.v1.AdminAction`): the only form of the
        /// action in the log. Applying decodes it; bytes that do not decode are refused.
        #[serde(with = "crate::bytes::hex_or_raw")]
        action_bytes: Vec<u8>,
    },
    /// Add one admin's approval.
    Approve {
        /// The challenge.
        #[serde(with = "hex_array")]
        id: [u8; 32],
        /// The approving admin.
        admin: String,
        /// Their signature over the statement.
        #[serde(with = "crate::bytes::hex_or_raw")]
        signature: Vec<u8>,
    },
    /// The leader carried out (or gave up on) the approved membership change `id`, which is
    /// [`ChallengeStatus::Executing`]: it becomes executed with the detail, or failed with the
    /// reason. Only the node itself proposes this (no RPC makes one), and only for the change
    /// in progress. (Appended last: stored commands of every format decode.)
    NodeChangeDone {
        /// The challenge.
        #[serde(with = "hex_array")]
        id: [u8; 32],
        /// What was done, or why not.
        result: Result<String, String>,
    },
}

/// Why an admin command changed nothing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum AdminRefusal {
    /// The cluster already has its initial admin state.
    #[error("the admin plane is already bootstrapped")]
    AlreadyBootstrapped,
    /// Not an enrolled admin.
    #[error("{0:?} is not an enrolled admin")]
    UnknownAdmin(String),
    /// No such challenge (never proposed, or pruned long after it expired).
    #[error("no challenge {0}")]
    UnknownChallenge(String),
    /// A challenge with this id exists already.
    #[error("challenge {0} exists already")]
    ChallengeExists(String),
    /// Too many undecided challenges.
    #[error("{0} challenges are pending; approve or let some expire first")]
    TooManyPending(usize),
    /// The challenge expired.
    #[error("challenge {id} expired at {expires_at_ms} ms (now {at_ms} ms)")]
    Expired {
        /// The challenge.
        id: String,
        /// Its expiry.
        expires_at_ms: u64,
        /// When the approval arrived.
        at_ms: u64,
    },
    /// The challenge was executed or failed already: approvals are single-use.
    #[error("challenge {0} is already decided; approvals cannot be reused")]
    AlreadyDecided(String),
    /// This admin's key approved this challenge already.
    #[error("{0:?} already approved this challenge")]
    DuplicateApproval(String),
    /// The action bytes do not decode to an action.
    #[error("the action does not decode: {0}")]
    MalformedAction(String),
    /// An enrollment's attestation does not verify against the cluster's roots.
    #[error("{admin:?}: attestation refused: {reason}")]
    Attestation {
        /// The admin to be enrolled.
        admin: String,
        /// Why ([`attestation::AttestationError`] in words).
        reason: String,
    },
    /// An interchange file is for another network than this cluster's.
    #[error("interchange: genesis_validators_root {found} is not this cluster's ({expected})")]
    GenesisMismatch {
        /// The cluster's (replicated) root.
        expected: Root,
        /// The file's.
        found: Root,
    },
    /// The cluster's genesis validators root is not in its replicated state (bootstrapped
    /// before it was replicated), so an import cannot be checked.
    #[error("this cluster's genesis validators root is not in its replicated state; interchange imports are refused")]
    NoGenesisRoot,
    /// The approval's signature does not verify.
    #[error("{0}")]
    BadApproval(String),
    /// The action is not valid against the current state.
    #[error("{0}")]
    Invalid(String),
    /// The action conflicts with existing state (a key id or public key is taken).
    #[error("{0}")]
    Conflict(String),
}

/// What applying an admin command did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdminOutcome {
    /// The initial state is in place.
    Bootstrapped,
    /// A challenge is open.
    Proposed {
        /// Its expiry (ms).
        expires_at_ms: u64,
        /// Approvals needed.
        threshold: u32,
    },
    /// The approval counted; more are needed.
    Pending {
        /// Admins whose approvals count so far.
        approvers: Vec<String>,
        /// Approvals needed.
        threshold: u32,
    },
    /// The threshold was reached and the action applied.
    Executed {
        /// The admins whose approvals counted.
        approvers: Vec<String>,
        /// What it did, in words.
        detail: String,
    },
    /// The threshold was reached but applying the action was refused; nothing changed.
    Failed {
        /// The admins whose approvals counted.
        approvers: Vec<String>,
        /// Why.
        reason: String,
    },
    /// Nothing changed.
    Refused(AdminRefusal),
    /// The threshold was reached for a membership change: the leader carries it out through
    /// Raft and commits the outcome ([`AdminCommand::NodeChangeDone`]).
    Started {
        /// The admins whose approvals counted.
        approvers: Vec<String>,
        /// What happens next, in words.
        detail: String,
    },
}

/// The outcome of a counted approval.
#[derive(Debug)]
pub enum Tally {
    /// More approvals are needed.
    Pending {
        /// Counted approvers.
        approvers: Vec<String>,
        /// Needed.
        threshold: u32,
    },
    /// Enough: the caller applies `action` and then calls [`AdminState::finish`].
    Reached {
        /// Counted approvers.
        approvers: Vec<String>,
        /// The threshold they met (the policy's now, before the action applies).
        threshold: u32,
        /// The approved action: what the challenge's bytes decode to.
        action: Action,
    },
}

/// The replicated admin-plane state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminState {
    /// Whether the initial state has been set.
    pub bootstrapped: bool,
    /// The cluster id approvals bind to.
    pub cluster_id: String,
    /// Enrolled admins by name.
    pub admins: BTreeMap<String, AdminRecord>,
    /// The approval policy.
    pub policy: Policy,
    /// Client grants by identity.
    pub clients: BTreeMap<String, ClientGrant>,
    /// Signing is paused by the admins.
    pub paused: bool,
    /// Challenges by hex id.
    pub challenges: BTreeMap<String, Challenge>,
    /// The attestation roots (DER) YubiKey enrollments must chain to (from the bootstrap).
    #[serde(with = "hex_list", default = "legacy_roots")]
    pub attestation_roots: Vec<Vec<u8>>,
    /// The cluster's eth2 genesis validators root (from the bootstrap); interchange imports
    /// must name it.
    #[serde(default)]
    pub genesis_validators_root: Option<Root>,
    /// Revoked certificates by fingerprint ([`Fingerprint::to_hex`]): refused on every
    /// authenticated call. Added in format 2; format-1 state upgrades with none
    /// ([`crate::state::upgrade`]).
    #[serde(default)]
    pub revoked: BTreeMap<String, RevokedCertificate>,
    /// How far ahead of an Espresso key's last vote its proposals and DA votes may run
    /// ([`ViewHorizon`]). Added in format 3; older state upgrades with the default, the
    /// constant every signer used before.
    #[serde(default)]
    pub espresso_view_horizon: ViewHorizon,
}

impl AdminState {
    /// The revocation of the certificate with this fingerprint, if the admins revoked it.
    pub fn revocation(&self, fingerprint: &Fingerprint) -> Option<&RevokedCertificate> {
        self.revoked.get(&fingerprint.to_hex())
    }

    /// Set the initial state.
    pub fn bootstrap(&mut self, b: &Bootstrap) -> Result<(), AdminRefusal> {
        if self.bootstrapped {
            return Err(AdminRefusal::AlreadyBootstrapped);
        }
        for (i, root) in b.attestation_roots.iter().enumerate() {
            attestation::check_root(root)
                .map_err(|e| invalid(format!("attestation root {i}: {e}")))?;
        }
        let mut next = AdminState {
            bootstrapped: true,
            cluster_id: b.cluster_id.clone(),
            policy: b.policy.clone(),
            attestation_roots: b.attestation_roots.clone(),
            genesis_validators_root: b.genesis_validators_root,
            ..AdminState::default()
        };
        for admin in &b.admins {
            next.enroll(admin)?;
        }
        for (identity, grant) in &b.clients {
            check_grant(identity, grant)?;
            next.clients.insert(identity.clone(), grant.clone());
        }
        check_policy(&next.policy, &next.admins)?;
        *self = next;
        Ok(())
    }

    /// Open a challenge for `action` (decoded from its canonical bytes, which are all the
    /// challenge keeps). `at_ms` is leader time.
    pub fn propose(
        &mut self,
        id: [u8; 32],
        proposer: &str,
        action: &CanonicalAction,
        at_ms: u64,
    ) -> Result<&Challenge, AdminRefusal> {
        if !self.admins.contains_key(proposer) {
            return Err(AdminRefusal::UnknownAdmin(proposer.to_owned()));
        }
        self.prune(at_ms);
        let key = hex::encode(id);
        if self.challenges.contains_key(&key) {
            return Err(AdminRefusal::ChallengeExists(key));
        }
        let pending = self
            .challenges
            .values()
            .filter(|c| c.status == ChallengeStatus::Pending && c.expires_at_ms >= at_ms)
            .count();
        if pending >= MAX_PENDING {
            return Err(AdminRefusal::TooManyPending(pending));
        }
        // One membership change at a time: none may be pending or in progress beside it.
        if action.action().node_change().is_some() {
            if let Some(other) = self.open_node_change(at_ms) {
                return Err(invalid(format!(
                    "membership change {} is {}; one membership change at a time",
                    hex::encode(other.id),
                    match other.status {
                        ChallengeStatus::Pending => "still pending approval",
                        _ => "in progress",
                    }
                )));
            }
        }
        // Admin-plane actions are checked now (an enrollment's attestation included), so a
        // hopeless one never collects approvals. Key and protection actions change nothing
        // here (the replicated state checks them against the registry and records), so the
        // state is not copied for them.
        if !action.action().is_record_action() {
            self.clone().execute(action.action())?;
        }
        let challenge = Challenge {
            id,
            action_bytes: action.bytes().to_vec(),
            digest: approval::action_digest(action.bytes()),
            proposer: proposer.to_owned(),
            created_at_ms: at_ms,
            expires_at_ms: at_ms.saturating_add(self.policy.challenge_ttl_ms),
            approvals: BTreeMap::new(),
            status: ChallengeStatus::Pending,
        };
        Ok(self.challenges.entry(key).or_insert(challenge))
    }

    /// Count one approval. On [`Tally::Reached`] the caller must apply the action and call
    /// [`AdminState::finish`].
    pub fn approve(
        &mut self,
        id: &[u8; 32],
        admin: &str,
        signature: &[u8],
        at_ms: u64,
    ) -> Result<Tally, AdminRefusal> {
        let key = hex::encode(id);
        let challenge = self
            .challenges
            .get(&key)
            .ok_or_else(|| AdminRefusal::UnknownChallenge(key.clone()))?;
        if challenge.status != ChallengeStatus::Pending {
            return Err(AdminRefusal::AlreadyDecided(key));
        }
        if at_ms > challenge.expires_at_ms {
            return Err(AdminRefusal::Expired {
                id: key,
                expires_at_ms: challenge.expires_at_ms,
                at_ms,
            });
        }
        let record = self
            .admins
            .get(admin)
            .ok_or_else(|| AdminRefusal::UnknownAdmin(admin.to_owned()))?;
        let approver = record.key.to_text();
        if challenge.approvals.contains_key(&approver) {
            return Err(AdminRefusal::DuplicateApproval(admin.to_owned()));
        }
        let action = challenge.action()?;
        let statement = approval::statement(
            &self.cluster_id,
            &challenge.id,
            &challenge.digest,
            challenge.expires_at_ms,
        );
        record
            .key
            .verify(admin, &statement, signature)
            .map_err(|e: ApprovalError| AdminRefusal::BadApproval(e.to_string()))?;
        let threshold = self.policy.threshold;
        let admins = &self.admins;
        let Some(challenge) = self.challenges.get_mut(&key) else {
            return Err(AdminRefusal::UnknownChallenge(key));
        };
        challenge.approvals.insert(
            approver,
            Approval {
                admin: admin.to_owned(),
                signature: signature.to_vec(),
            },
        );
        let approvers = challenge.counted(admins);
        if approvers.len() >= threshold as usize {
            Ok(Tally::Reached {
                approvers,
                threshold,
                action,
            })
        } else {
            Ok(Tally::Pending {
                approvers,
                threshold,
            })
        }
    }

    /// Record how applying an approved action went, and how it was `decided`; the challenge
    /// is decided for good.
    pub fn finish(&mut self, id: &[u8; 32], decided: Decided, result: &Result<String, String>) {
        if let Some(c) = self.challenges.get_mut(&hex::encode(id)) {
            c.status = match result {
                Ok(detail) => ChallengeStatus::ExecutedUnder {
                    decided,
                    detail: detail.clone(),
                },
                Err(reason) => ChallengeStatus::FailedUnder {
                    decided,
                    reason: reason.clone(),
                },
            };
        }
    }

    /// Apply an admin-plane action. Key and protection actions are not this state's: they
    /// return `Ok` with a note and are applied by the state machine.
    pub fn execute(&mut self, action: &Action) -> Result<String, AdminRefusal> {
        match action {
            Action::GrantClient {
                identity,
                grant,
                prior,
            } => {
                check_grant(identity, grant)?;
                if let Prior::Recorded(previous) = prior {
                    self.check_grant_unchanged(identity, previous.as_ref())?;
                }
                self.clients.insert(identity.clone(), grant.clone());
                Ok(format!("client {identity:?} granted"))
            }
            Action::RevokeClient { identity, prior } => {
                if let Prior::Recorded(previous) = prior {
                    self.check_grant_unchanged(identity, Some(previous))?;
                }
                match self.clients.remove(identity) {
                    Some(_) => Ok(format!("client {identity:?} revoked")),
                    None => Err(invalid(format!("client {identity:?} has no grant"))),
                }
            }
            Action::EnrollAdmin { name, key } => {
                let admin = self.admission(name, key)?;
                self.enroll(&admin)?;
                let how = match &admin.attestation {
                    Some(f) => format!(
                        "YubiKey serial {} firmware {} touch {} pin {}, attestation verified",
                        f.serial, f.firmware, f.touch_policy, f.pin_policy
                    ),
                    None => "development key".to_owned(),
                };
                Ok(format!(
                    "admin {name:?} enrolled with {} ({how})",
                    admin.key.to_text()
                ))
            }
            Action::RemoveAdmin { name } => {
                if !self.admins.contains_key(name) {
                    return Err(AdminRefusal::UnknownAdmin(name.clone()));
                }
                if self.admins.len() <= self.policy.threshold as usize {
                    return Err(invalid(format!(
                        "removing {name:?} would leave fewer admins than the threshold ({}); lower the threshold first",
                        self.policy.threshold
                    )));
                }
                self.admins.remove(name);
                Ok(format!("admin {name:?} removed"))
            }
            Action::SetPolicy(policy) => {
                check_policy(policy, &self.admins)?;
                self.policy = policy.clone();
                Ok("policy set".to_owned())
            }
            Action::SetEspressoViewHorizon(horizon) => {
                let before = std::mem::replace(&mut self.espresso_view_horizon, *horizon);
                Ok(format!(
                    "Espresso view horizon set to {horizon} (was {before})"
                ))
            }
            Action::Pause => {
                self.paused = true;
                Ok("signing paused".to_owned())
            }
            Action::Resume => {
                self.paused = false;
                Ok("signing resumed".to_owned())
            }
            Action::RevokeCertificate {
                fingerprint,
                certificate,
            } => self.revoke(fingerprint, certificate),
            Action::AddNode(_) | Action::RemoveNode { .. } | Action::ReplaceNode { .. } => {
                self.check_node_change(action)
            }
            Action::AddKey(_)
            | Action::SetKeyState { .. }
            | Action::RotateKek(_)
            | Action::ImportProtection { .. }
            | Action::CompactAudit { .. } => Ok(String::new()),
        }
    }

    /// Record a revocation. A certificate that comes with it must have the fingerprint, and
    /// its identity is recorded; a fingerprint already revoked is refused (nothing would
    /// change).
    fn revoke(
        &mut self,
        fingerprint: &Fingerprint,
        certificate: &[u8],
    ) -> Result<String, AdminRefusal> {
        let key = fingerprint.to_hex();
        if self.revoked.contains_key(&key) {
            return Err(invalid(format!(
                "certificate sha256 {key} is already revoked"
            )));
        }
        let identity = if certificate.is_empty() {
            None
        } else {
            if Fingerprint::of(certificate) != *fingerprint {
                return Err(invalid(format!(
                    "the certificate given has sha256 {}, not the fingerprint {key} to revoke",
                    Fingerprint::of(certificate)
                )));
            }
            Some(certificate_identity(certificate).ok_or_else(|| {
                invalid(format!(
                    "the certificate given for sha256 {key} is not a certificate naming an identity"
                ))
            })?)
        };
        let detail = match &identity {
            Some(name) => format!("certificate sha256 {key} of {name:?} revoked"),
            None => format!("certificate sha256 {key} revoked"),
        };
        self.revoked.insert(key, RevokedCertificate { identity });
        Ok(detail)
    }

    /// Refuse a grant change reviewed against `reviewed` (the identity's grant when it was
    /// proposed) once the identity's grant is another: the approvers' diff would be wrong.
    fn check_grant_unchanged(
        &self,
        identity: &str,
        reviewed: Option<&ClientGrant>,
    ) -> Result<(), AdminRefusal> {
        let now = self.clients.get(identity);
        if now == reviewed {
            return Ok(());
        }
        let text = |g: Option<&ClientGrant>| match g {
            Some(g) => g.describe(),
            None => "no grant".to_owned(),
        };
        Err(invalid(format!(
            "client {identity:?}'s grant is not the one this change was reviewed against \
             ({}); it is now {}: propose the change again",
            text(reviewed),
            text(now)
        )))
    }

    /// The record an enrollment would add: a development key as given, or a YubiKey key read
    /// from its slot certificate once the chain verifies against this cluster's roots.
    fn admission(&self, name: &str, key: &EnrollKey) -> Result<AdminRecord, AdminRefusal> {
        match key {
            EnrollKey::Development { ed25519_public_key } => Ok(AdminRecord {
                name: name.to_owned(),
                key: ApproverKey::Ed25519(ed25519_public_key.clone()),
                attestation: None,
            }),
            EnrollKey::YubiKey {
                slot_certificate,
                device_certificate,
            } => {
                let attested = attestation::verify_attestation(
                    slot_certificate,
                    device_certificate,
                    &self.attestation_roots,
                )
                .map_err(|e| AdminRefusal::Attestation {
                    admin: name.to_owned(),
                    reason: e.to_string(),
                })?;
                Ok(AdminRecord {
                    name: name.to_owned(),
                    key: ApproverKey::from(&attested.public_key),
                    attestation: Some(attested.facts()),
                })
            }
        }
    }

    fn enroll(&mut self, admin: &AdminRecord) -> Result<(), AdminRefusal> {
        if !valid_name(&admin.name) {
            return Err(invalid(format!(
                "admin name {:?}: 1 to 64 letters, digits, '-', '_' or '.'",
                admin.name
            )));
        }
        if self.admins.contains_key(&admin.name) {
            return Err(invalid(format!("{:?} is already an admin", admin.name)));
        }
        if self.admins.values().any(|a| a.key == admin.key) {
            return Err(invalid(
                "that key is already enrolled for another admin".into(),
            ));
        }
        admin
            .key
            .validate()
            .map_err(|e| AdminRefusal::Invalid(e.to_string()))?;
        match &admin.attestation {
            None if self.policy.require_attestation => Err(invalid(format!(
                "{:?}: the policy requires an attested (YubiKey) key",
                admin.name
            ))),
            Some(f) if self.policy.require_touch_always && f.touch_policy != "always" => {
                Err(invalid(format!(
                    "{:?}: the key's touch policy is {:?}; the policy requires \"always\"",
                    admin.name, f.touch_policy
                )))
            }
            _ => {
                self.admins.insert(admin.name.clone(), admin.clone());
                Ok(())
            }
        }
    }

    /// Drop decided or expired challenges older than the retention period, then the oldest
    /// decided or expired ones beyond [`MAX_DECIDED`].
    fn prune(&mut self, at_ms: u64) {
        // Kept beyond the retention and the bound: a membership change in progress, and the
        // executed removals (they are the record of which node ids can never rejoin).
        let kept_for_good = |c: &Challenge| {
            matches!(c.status, ChallengeStatus::Executing { .. })
                || (is_executed(&c.status) && c.action().is_ok_and(|a| a.retires().is_some()))
        };
        self.challenges
            .retain(|_, c| c.expires_at_ms.saturating_add(RETAIN_MS) >= at_ms || kept_for_good(c));
        // Expired challenges count with the decided ones: neither can be approved any more.
        let mut decided: Vec<(u64, String)> = self
            .challenges
            .iter()
            .filter(|(_, c)| {
                (c.status != ChallengeStatus::Pending || c.expires_at_ms < at_ms)
                    && !kept_for_good(c)
            })
            .map(|(key, c)| (c.created_at_ms, key.clone()))
            .collect();
        if let Some(excess) = decided.len().checked_sub(MAX_DECIDED).filter(|&n| n > 0) {
            // Oldest first; the id breaks ties, so every replica drops the same ones.
            decided.sort_unstable();
            for (_, key) in decided.into_iter().take(excess) {
                self.challenges.remove(&key);
            }
        }
    }

    /// The membership change being carried out, if any: its challenge and action.
    pub fn node_change_in_progress(&self) -> Option<(&Challenge, Action)> {
        self.challenges
            .values()
            .filter(|c| matches!(c.status, ChallengeStatus::Executing { .. }))
            .find_map(|c| c.action().ok().map(|a| (c, a)))
    }

    /// A membership change pending approval (not expired at `at_ms`) or in progress.
    fn open_node_change(&self, at_ms: u64) -> Option<&Challenge> {
        self.challenges.values().find(|c| {
            let open = match c.status {
                ChallengeStatus::Pending => c.expires_at_ms >= at_ms,
                ChallengeStatus::Executing { .. } => true,
                _ => false,
            };
            open && c.action().is_ok_and(|a| a.node_change().is_some())
        })
    }

    /// The node ids removed from the cluster (or being removed): none of them is ever a
    /// member again.
    pub fn retired_nodes(&self) -> BTreeSet<u64> {
        self.challenges
            .values()
            .filter(|c| {
                is_executed(&c.status) || matches!(c.status, ChallengeStatus::Executing { .. })
            })
            .filter_map(|c| c.action().ok()?.retires())
            .collect()
    }

    /// What the admin state checks of a membership change (the leader checks the rest against
    /// Raft's membership): the new node's id and addresses, that its id was never removed,
    /// and that no other change is in progress.
    fn check_node_change(&self, action: &Action) -> Result<String, AdminRefusal> {
        let Some(change) = action.node_change() else {
            return Err(invalid("not a membership change".to_owned()));
        };
        let joining = match &change {
            NodeChange::Add(new) | NodeChange::Replace { new, .. } => Some(*new),
            NodeChange::Remove(_) => None,
        };
        if let Some(new) = joining {
            membership::check_new(new).map_err(|e| invalid(e.to_string()))?;
            if self.retired_nodes().contains(&new.id) {
                return Err(invalid(format!(
                    "{name} was removed from this cluster and cannot rejoin with that \
                     identity; issue a certificate for a new node id",
                    name = membership::node_name(new.id)
                )));
            }
        }
        if let NodeChange::Replace { old, new } = &change {
            if *old == new.id {
                return Err(invalid(
                    membership::MembershipRefusal::SameNode(*old).to_string(),
                ));
            }
        }
        if let Some((other, _)) = self.node_change_in_progress() {
            return Err(invalid(format!(
                "membership change {} is in progress; one membership change at a time",
                hex::encode(other.id)
            )));
        }
        Ok(format!(
            "membership change approved: the leader carries it out ({})",
            action.describe()
        ))
    }

    /// The approved membership change `id` reached its threshold: the leader carries it out.
    pub fn start_node_change(&mut self, id: &[u8; 32], decided: Decided) {
        if let Some(c) = self.challenges.get_mut(&hex::encode(id)) {
            c.status = ChallengeStatus::Executing { decided };
        }
    }

    /// The leader's outcome of the membership change `id`, which must be in progress.
    pub fn finish_node_change(
        &mut self,
        id: &[u8; 32],
        result: &Result<String, String>,
    ) -> Result<Decided, AdminRefusal> {
        let key = hex::encode(id);
        let challenge = self
            .challenges
            .get(&key)
            .ok_or_else(|| AdminRefusal::UnknownChallenge(key.clone()))?;
        let ChallengeStatus::Executing { decided } = &challenge.status else {
            return Err(AdminRefusal::AlreadyDecided(key));
        };
        let decided = decided.clone();
        self.finish(id, decided.clone(), result);
        Ok(decided)
    }
}

fn is_executed(status: &ChallengeStatus) -> bool {
    matches!(
        status,
        ChallengeStatus::Executed { .. } | ChallengeStatus::ExecutedUnder { .. }
    )
}

fn invalid(message: String) -> AdminRefusal {
    AdminRefusal::Invalid(message)
}

fn check_grant(identity: &str, grant: &ClientGrant) -> Result<(), AdminRefusal> {
    if !valid_name(identity) {
        return Err(invalid(format!(
            "client identity {identity:?}: 1 to 64 letters, digits, '-', '_' or '.'"
        )));
    }
    if grant.keys.is_empty() || grant.profiles.is_empty() {
        return Err(invalid(format!(
            "client {identity:?}: a grant names at least one key (or \"*\") and one profile"
        )));
    }
    if let Some(r) = grant.rate_limit {
        if r.per_second == 0 || r.burst == 0 {
            return Err(invalid(format!(
                "client {identity:?}: rate limit must be at least 1/s with burst at least 1"
            )));
        }
    }
    Ok(())
}

fn check_policy(p: &Policy, admins: &BTreeMap<String, AdminRecord>) -> Result<(), AdminRefusal> {
    if p.threshold == 0 || p.threshold as usize > admins.len() {
        return Err(invalid(format!(
            "threshold {} must be between 1 and the number of admins ({})",
            p.threshold,
            admins.len()
        )));
    }
    if !TTL_RANGE_MS.contains(&p.challenge_ttl_ms) {
        return Err(invalid(format!(
            "challenge lifetime {} ms must be between 1 s and 7 days",
            p.challenge_ttl_ms
        )));
    }
    if p.require_attestation {
        let soft: Vec<&str> = admins
            .values()
            .filter(|a| a.attestation.is_none())
            .map(|a| a.name.as_str())
            .collect();
        if !soft.is_empty() {
            return Err(invalid(format!(
                "attestation cannot be required while admins {soft:?} use development keys"
            )));
        }
    }
    Ok(())
}

/// Roots for state and bootstraps written before the roots were replicated: Yubico's public
/// roots, shipped in the binary.
pub(crate) fn legacy_roots() -> Vec<Vec<u8>> {
    attestation::yubico_roots()
}

pub(crate) mod hex_list {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(items: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(items.iter().map(hex::encode))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|text| hex::decode(text).map_err(serde::de::Error::custom))
            .collect()
    }
}

mod hex_array {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(d)?;
        let bytes = hex::decode(&text).map_err(serde::de::Error::custom)?;
        bytes
            .try_into()
            .map_err(|_| serde::de::Error::custom("expected 32 bytes"))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests;
