//! The `signer.v1.Admin` service: proposals, approvals and admin reads.
//!
//! Owns: authorizing admin callers (their client certificate must name an enrolled admin),
//! preparing a proposal into a complete action ([`prepare`]), committing challenges and
//! approvals through Raft, and mapping refusals to statuses. Must not: change anything except
//! through a committed admin command, log secrets or passwords, or count an approval itself
//! (the state machine tallies).
//!
//! To ensure correctness:
//! - a generated or imported secret exists only in this process's memory until it is sealed;
//!   only the sealed record is proposed;
//! - an action takes effect only in the log entry whose approval reaches the threshold;
//! - a proposal commits only the action's canonical bytes; every replica decodes and executes
//!   them, and checks an enrollment's attestation itself (this node does not vouch for it);
//! - every refusal (a bad, replayed, expired or foreign approval; a policy violation) is a
//!   committed entry, so it is audited, and changes nothing.

mod prepare;

use super::authn::Authenticator;
use super::convert;
use crate::admin::codec::{self as admin_codec, admin_to_pb, grant_to_pb, policy_to_pb};
use crate::admin::state::{Challenge, ChallengeStatus};
use crate::admin::{AdminCommand, AdminOutcome, AdminRefusal};
use crate::custody::shared::data_key_name;
use crate::custody::WrappedDataKey;
use crate::keyloader::Keks;
use crate::keyring::Keyring;
use crate::pb;
use crate::protection::ethereum::Root;
use crate::protection::interchange;
use crate::registry::KeyRecord;
use crate::replica::{commit_admin, Raft, StateMachine};
use crate::scheme::validator::public_key_text;
use prepare::Preparer;
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// Largest approval signature accepted (DER ECDSA P-256 is at most 72 bytes).
const MAX_SIGNATURE: usize = 256;

/// The admin service.
pub struct AdminService {
    authn: Authenticator,
    raft: Raft,
    state: StateMachine,
    keyring: Arc<Keyring>,
    keks: Arc<Keks>,
    genesis_validators_root: Root,
}

impl AdminService {
    /// An admin service over this node's Raft handle, state, keyring and KEKs, authenticating
    /// callers with `authn`. (Attestation roots are not the service's: enrollments are
    /// verified in `apply`, against the roots in the replicated admin state.)
    pub fn new(
        authn: Authenticator,
        raft: Raft,
        state: StateMachine,
        keyring: Arc<Keyring>,
        keks: Arc<Keks>,
        genesis_validators_root: Root,
    ) -> Self {
        AdminService {
            authn,
            raft,
            state,
            keyring,
            keks,
            genesis_validators_root,
        }
    }

    /// The caller's identity, if it is an enrolled admin.
    fn authorize<T>(&self, req: &Request<T>) -> Result<String, Status> {
        let identity = self
            .authn
            .identify_request(req)
            .map_err(|e| convert::authn_status(e, "a client certificate is required"))?;
        if self.state.read().admin.admins.contains_key(&identity) {
            Ok(identity)
        } else {
            Err(Status::permission_denied(format!(
                "{identity:?} is not an enrolled admin"
            )))
        }
    }

    fn key_info(&self, record: &KeyRecord) -> pb::AdminKeyInfo {
        let text = public_key_text(record.profile, &record.public_key);
        pb::AdminKeyInfo {
            key_id: record.key_id.clone(),
            profile: record.profile.name().to_owned(),
            public_key: record.public_key.clone(),
            public_key_text: text,
            state: record.state.to_string(),
            kek: record
                .sealed
                .as_ref()
                .map(|s| s.kek.to_string())
                .unwrap_or_default(),
            origin: record.origin.clone(),
            data_key: record
                .sealed
                .as_ref()
                .map(|s| match s.data_key() {
                    Ok(WrappedDataKey::Shared { id, .. }) => data_key_name(&id),
                    Ok(WrappedDataKey::Own(_)) => "own".to_owned(),
                    Err(e) => format!("malformed: {e}"),
                })
                .unwrap_or_default(),
            // Loaded here means this record's key, not another key under the same id (a key
            // file shadowing the id, which is then reported pending).
            loaded_here: self
                .keyring
                .get(&record.key_id)
                .is_some_and(|k| k.public_key == record.public_key),
            pending_reason: self
                .keyring
                .pending()
                .remove(&record.key_id)
                .unwrap_or_default(),
        }
    }

    /// A challenge as the wire sees it.
    fn challenge_view(&self, c: &Challenge, now_ms: u64) -> pb::Challenge {
        let applied = self.state.read();
        let status = match &c.status {
            ChallengeStatus::Pending if now_ms > c.expires_at_ms => "expired",
            other => other.word(),
        };
        // A decided challenge shows the threshold its approvals met and who they were (0 and
        // today's admins when the signer that decided it did not record them); an open one,
        // today's.
        let (approved_by, threshold) = match (&c.status, c.status.decided()) {
            (_, Some(d)) => (d.approvers.clone(), d.threshold),
            (ChallengeStatus::Pending, None) => (
                c.counted(&applied.admin.admins),
                applied.admin.policy.threshold,
            ),
            (_, None) => (c.counted(&applied.admin.admins), 0),
        };
        pb::Challenge {
            id: c.id.to_vec(),
            cluster_id: applied.admin.cluster_id.clone(),
            action: c.action_bytes.clone(),
            action_digest: c.digest.to_vec(),
            expires_at_ms: c.expires_at_ms,
            description: admin_codec::describe_bytes(&c.action_bytes),
            proposer: c.proposer.clone(),
            approved_by,
            threshold,
            status: status.to_owned(),
            detail: c.status.detail().to_owned(),
            created_at_ms: c.created_at_ms,
            notes: Vec::new(),
        }
    }

    fn challenge(&self, id: &[u8; 32]) -> Result<Challenge, Status> {
        self.state
            .read()
            .admin
            .challenges
            .get(&hex::encode(id))
            .cloned()
            .ok_or_else(|| Status::not_found(format!("no challenge {}", hex::encode(id))))
    }

    /// This node's id, as its Raft reports it.
    fn raft_node_id(&self) -> u64 {
        use openraft::async_runtime::WatchReceiver;
        self.raft.metrics().borrow_watched().id
    }

    async fn commit(&self, command: AdminCommand) -> Result<AdminOutcome, Status> {
        commit_admin(&self.raft, command)
            .await
            .map_err(|e| convert::propose_failure(&e))
    }
}

/// The status for a refused admin command.
fn refusal_status(r: &AdminRefusal) -> Status {
    let message = r.to_string();
    match r {
        AdminRefusal::UnknownChallenge(_) => Status::not_found(message),
        AdminRefusal::UnknownAdmin(_)
        | AdminRefusal::BadApproval(_)
        | AdminRefusal::Attestation { .. } => Status::permission_denied(message),
        AdminRefusal::MalformedAction(_) | AdminRefusal::GenesisMismatch { .. } => {
            Status::invalid_argument(message)
        }
        AdminRefusal::DuplicateApproval(_)
        | AdminRefusal::ChallengeExists(_)
        | AdminRefusal::Conflict(_) => Status::already_exists(message),
        AdminRefusal::TooManyPending(_) => Status::resource_exhausted(message),
        AdminRefusal::AlreadyBootstrapped
        | AdminRefusal::Expired { .. }
        | AdminRefusal::AlreadyDecided(_)
        | AdminRefusal::NoGenesisRoot
        | AdminRefusal::Invalid(_) => Status::failed_precondition(message),
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[tonic::async_trait]
impl pb::admin_server::Admin for AdminService {
    async fn propose(
        &self,
        request: Request<pb::ProposeRequest>,
    ) -> Result<Response<pb::Challenge>, Status> {
        let admin = self.authorize(&request)?;
        let keys: Vec<KeyRecord> = self.state.read().registry.keys.values().cloned().collect();
        let loaded: Vec<String> = self
            .keyring
            .keys()
            .iter()
            .map(|k| k.key_id.clone())
            .collect();
        let prepared = Preparer {
            keks: &self.keks,
            keys,
            loaded,
            genesis_validators_root: self.genesis_validators_root,
            state: &self.state,
        }
        .prepare(request.into_inner())
        .await?;
        // A membership change the cluster cannot take is refused now (the leader checks again
        // before it changes the voters).
        if let Some(change) = prepared.action.node_change() {
            let members = crate::replica::membership::members(&self.raft, self.raft_node_id());
            crate::admin::membership::check_change(&members, &change)
                .map_err(|e| Status::failed_precondition(e.to_string()))?;
        }
        let id: [u8; 32] = rand::random();
        let action_bytes = admin_codec::encode_action(&prepared.action);
        let description = prepared.action.describe();
        let outcome = self
            .commit(AdminCommand::Propose {
                id,
                proposer: admin.clone(),
                action_bytes,
            })
            .await?;
        match outcome {
            AdminOutcome::Proposed { .. } => {
                tracing::info!(%admin, challenge = %hex::encode(id), action = %description, "admin action proposed");
                let mut view = self.challenge_view(&self.challenge(&id)?, now_ms());
                view.notes = prepared.notes;
                Ok(Response::new(view))
            }
            AdminOutcome::Refused(r) => Err(refusal_status(&r)),
            other => Err(Status::internal(format!(
                "unexpected outcome of a proposal: {other:?}"
            ))),
        }
    }

    async fn approve(
        &self,
        request: Request<pb::ApproveRequest>,
    ) -> Result<Response<pb::ApproveResponse>, Status> {
        let admin = self.authorize(&request)?;
        let req = request.into_inner();
        let id: [u8; 32] = req.challenge_id.as_slice().try_into().map_err(|_| {
            Status::invalid_argument(format!(
                "challenge_id: expected 32 bytes, got {}",
                req.challenge_id.len()
            ))
        })?;
        if req.signature.is_empty() || req.signature.len() > MAX_SIGNATURE {
            return Err(Status::invalid_argument(format!(
                "signature: expected 1 to {MAX_SIGNATURE} bytes, got {}",
                req.signature.len()
            )));
        }
        let outcome = self
            .commit(AdminCommand::Approve {
                id,
                admin: admin.clone(),
                signature: req.signature,
            })
            .await?;
        tracing::info!(%admin, challenge = %hex::encode(id), ?outcome, "approval");
        // The threshold the approvals met (a policy change the action made does not count).
        let threshold = self
            .challenge(&id)
            .ok()
            .and_then(|c| c.status.decided().map(|d| d.threshold))
            .unwrap_or_else(|| self.state.read().admin.policy.threshold);
        let response = |status: &str, approved_by: Vec<String>, detail: String| {
            Ok(Response::new(pb::ApproveResponse {
                status: status.to_owned(),
                approved_by,
                threshold,
                detail,
            }))
        };
        match outcome {
            AdminOutcome::Pending { approvers, .. } => {
                response("pending", approvers, String::new())
            }
            AdminOutcome::Executed { approvers, detail } => response("executed", approvers, detail),
            AdminOutcome::Started { approvers, detail } => response("executing", approvers, detail),
            AdminOutcome::Failed { reason, .. } => Err(Status::failed_precondition(format!(
                "approved, but applying it was refused: {reason}"
            ))),
            AdminOutcome::Refused(r) => Err(refusal_status(&r)),
            other => Err(Status::internal(format!(
                "unexpected outcome of an approval: {other:?}"
            ))),
        }
    }

    async fn list_challenges(
        &self,
        request: Request<pb::ListChallengesRequest>,
    ) -> Result<Response<pb::ListChallengesResponse>, Status> {
        self.authorize(&request)?;
        let all = request.into_inner().all;
        let now = now_ms();
        let challenges: Vec<Challenge> = self
            .state
            .read()
            .admin
            .challenges
            .values()
            .filter(|c| all || (c.status == ChallengeStatus::Pending && c.expires_at_ms >= now))
            .cloned()
            .collect();
        let mut views: Vec<pb::Challenge> = challenges
            .iter()
            .map(|c| self.challenge_view(c, now))
            .collect();
        views.sort_by_key(|c| c.created_at_ms);
        Ok(Response::new(pb::ListChallengesResponse {
            challenges: views,
        }))
    }

    async fn list_keys(
        &self,
        request: Request<pb::ListKeysRequest>,
    ) -> Result<Response<pb::ListKeysResponse>, Status> {
        self.authorize(&request)?;
        let records: Vec<KeyRecord> = self.state.read().registry.keys.values().cloned().collect();
        Ok(Response::new(pb::ListKeysResponse {
            keys: records.iter().map(|r| self.key_info(r)).collect(),
        }))
    }

    async fn get_admin_state(
        &self,
        request: Request<pb::GetAdminStateRequest>,
    ) -> Result<Response<pb::AdminStateResponse>, Status> {
        self.authorize(&request)?;
        let applied = self.state.read();
        let a = &applied.admin;
        Ok(Response::new(pb::AdminStateResponse {
            cluster_id: a.cluster_id.clone(),
            admins: a.admins.values().map(admin_to_pb).collect(),
            policy: Some(policy_to_pb(&a.policy)),
            clients: a
                .clients
                .iter()
                .map(|(identity, g)| grant_to_pb(identity, g))
                .collect(),
            paused: a.paused,
            revoked_certificates: a
                .revoked
                .iter()
                .map(|(fingerprint, r)| pb::RevokedCertificate {
                    fingerprint: fingerprint.clone(),
                    identity: r.identity.clone().unwrap_or_default(),
                })
                .collect(),
            espresso_view_horizon: a.espresso_view_horizon.views(),
        }))
    }

    async fn export_protection(
        &self,
        request: Request<pb::ExportProtectionRequest>,
    ) -> Result<Response<pb::ExportProtectionResponse>, Status> {
        self.authorize(&request)?;
        let doc = interchange::export(
            &self.state.read().protection.eth2,
            self.genesis_validators_root,
        );
        Ok(Response::new(pb::ExportProtectionResponse {
            interchange_json: doc.to_json(),
        }))
    }
}
