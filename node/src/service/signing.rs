//! The sign path: authenticate, check the client's grant and rate limit, validate, route to the
//! leader, propose through Raft (batched), and sign only with the permit the applied entry
//! produced.
//!
//! Owns: the `signer.v1.Signer` service and the [`SignPath`] shared with the peer service's
//! `ForwardSign`. Must not: touch protection state directly (only the state machine changes
//! it) or sign without a [`crate::keyring::SignPermit`].
//!
//! To ensure correctness:
//! - a signature is produced only after `replica::commit_signs` returned a permit, i.e. after a
//!   quorum committed and this node applied the entry that allows it;
//! - a request is forwarded at most once (a forwarded request is never forwarded again);
//! - every bad input is answered with a status and changes nothing.

use super::access;
use super::convert;
use crate::keyring::Keyring;
use crate::metrics::Metrics;
use crate::pb;
use crate::replica::{
    commit_signs, Decided, NodeId, PeerNetwork, ProposeError, Raft, SignEntry, SignOutcome,
    StateMachine,
};
use openraft::async_runtime::WatchReceiver;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tonic::{Request, Response, Status};

/// Largest number of sign requests in one log entry.
pub const MAX_BATCH: usize = 256;
/// Batches in flight at once (each waits for its commit).
const MAX_IN_FLIGHT: usize = 8;
/// How long a forwarded request may take at the leader.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);

type Reply = oneshot::Sender<Result<Decided, ProposeError>>;

/// Collects concurrent sign requests into batches and proposes each batch as one entry.
#[derive(Clone)]
pub struct Proposer {
    tx: mpsc::Sender<(SignEntry, Reply)>,
}

impl Proposer {
    /// Start the batching task for `raft`; batch sizes go to `metrics`.
    pub fn start(raft: Raft, metrics: Arc<Metrics>) -> Self {
        let (tx, mut rx) = mpsc::channel::<(SignEntry, Reply)>(4 * MAX_BATCH);
        tokio::spawn(async move {
            let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
            loop {
                let Ok(slot) = in_flight.clone().acquire_owned().await else {
                    return;
                };
                let Some(first) = rx.recv().await else {
                    return;
                };
                let mut pending = vec![first];
                while pending.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(p) => pending.push(p),
                        Err(_) => break,
                    }
                }
                let raft = raft.clone();
                metrics.batch_proposed(pending.len());
                tokio::spawn(async move {
                    let (entries, replies): (Vec<SignEntry>, Vec<Reply>) =
                        pending.into_iter().unzip();
                    match commit_signs(&raft, entries).await {
                        Ok(decided) => {
                            for (reply, d) in replies.into_iter().zip(decided) {
                                let _ = reply.send(Ok(d));
                            }
                        }
                        Err(e) => {
                            for reply in replies {
                                let _ = reply.send(Err(clone_error(&e)));
                            }
                        }
                    }
                    drop(slot);
                });
            }
        });
        Proposer { tx }
    }

    /// Propose one request; resolves once its batch is committed and applied.
    pub async fn propose(&self, entry: SignEntry) -> Result<Decided, ProposeError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send((entry, reply))
            .await
            .map_err(|_| ProposeError::Fatal("proposer stopped".into()))?;
        rx.await
            .map_err(|_| ProposeError::Fatal("proposer dropped the request".into()))?
    }
}

fn clone_error(e: &ProposeError) -> ProposeError {
    match e {
        ProposeError::NotLeader { leader } => ProposeError::NotLeader { leader: *leader },
        ProposeError::Unknown => ProposeError::Unknown,
        ProposeError::Fatal(m) => ProposeError::Fatal(m.clone()),
        ProposeError::Internal(m) => ProposeError::Internal(m),
    }
}

/// Everything the sign path needs; shared by the client and peer services.
#[derive(Clone)]
pub struct SignPath {
    /// This node.
    pub node_id: NodeId,
    /// The Raft handle.
    pub raft: Raft,
    /// The applied state (for access checks and status).
    pub state: StateMachine,
    /// Keys loaded on this node.
    pub keyring: Arc<Keyring>,
    /// Peer channels (for forwarding to the leader).
    pub network: PeerNetwork,
    /// The batching proposer.
    pub proposer: Proposer,
    /// The eth2 network this cluster signs for (fork schedule, genesis validators root).
    pub eth2_network: Arc<eth2_messages::NetworkSpec>,
    /// This node's metrics (sign results and latency are recorded here; services such as the
    /// rate limit reach them through the path).
    pub metrics: Arc<Metrics>,
    /// Per-client rate limits of this node.
    pub limiter: Arc<access::RateLimiter>,
    /// Where access denials are recorded for the audit log.
    pub events: crate::replica::EventSink,
    /// Which access denials are recorded (bounded; see [`access::DenialThrottle`]).
    pub denials: Arc<access::DenialThrottle>,
}

impl SignPath {
    /// Handle one request from the authenticated `client`. `forwarded` is true when a peer
    /// forwarded it here; such a request is never forwarded again.
    pub async fn sign(
        &self,
        client: String,
        req: pb::SignRequest,
        forwarded: bool,
    ) -> Result<pb::SignResponse, Status> {
        use tracing::Instrument;
        let started = std::time::Instant::now();
        let profile = convert::request_profile(&req).map_or("unknown", |p| p.name());
        let span = tracing::info_span!(
            "sign",
            request_id = %req.request_id,
            %client,
            key_id = %req.key_id,
            forwarded
        );
        let result = self
            .decide_and_sign(client, req, forwarded)
            .instrument(span.clone())
            .await;
        span.in_scope(|| match &result {
            Ok(r) => tracing::debug!(resigned = r.resigned, "signed"),
            Err(s) => tracing::debug!(code = ?s.code(), reason = %s.message(), "not signed"),
        });
        // Counted once, where the client called (the leader does not count forwarded requests).
        if !forwarded {
            let outcome = convert::sign_result(&result);
            self.metrics
                .sign_finished(profile, &outcome, started.elapsed());
        }
        result
    }

    /// Access control: the client's grant, and its rate limit on the node it called. Denials
    /// are recorded for the audit log (rate-limit rejections are counted in metrics instead,
    /// so a flooding client cannot flood the log). Returns whether the grant trusts the
    /// client's raw eth2 roots.
    fn admit(
        &self,
        client: &str,
        key_id: &str,
        profile: crate::protection::Profile,
        forwarded: bool,
    ) -> Result<bool, Status> {
        let verdict = {
            let applied = self.state.read();
            access::check(
                &applied.admin,
                &self.limiter,
                client,
                key_id,
                profile,
                !forwarded,
            )
        };
        match verdict {
            Ok(raw_roots) => Ok(raw_roots),
            Err(denied) => {
                match &denied {
                    access::Denied::RateLimited { .. } => self.metrics.rate_limited(client),
                    _ if !forwarded
                        && self.denials.should_audit(client, std::time::Instant::now()) =>
                    {
                        self.events.access_denied(
                            client,
                            key_id,
                            profile.name(),
                            &denied.to_string(),
                        )
                    }
                    _ => {}
                }
                Err(Status::from(&denied))
            }
        }
    }

    async fn decide_and_sign(
        &self,
        client: String,
        req: pb::SignRequest,
        forwarded: bool,
    ) -> Result<pb::SignResponse, Status> {
        convert::check_ids(&req)?;
        // The grant first: a client learns nothing about keys it may not use (not even
        // whether an id exists).
        let profile = convert::request_profile(&req)?;
        let raw_roots = self.admit(&client, &req.key_id, profile, forwarded)?;
        let identity = self.identity(&req.key_id)?;
        let eth2 = convert::Eth2Context {
            network: &self.eth2_network,
            raw_roots,
        };
        let intent = convert::intent(&req, &identity, eth2)?;
        let leader = self.raft.metrics().borrow_watched().current_leader;
        match leader {
            Some(l) if l == self.node_id => {}
            Some(l) if !forwarded => return self.forward(l, client, req).await,
            _ => return Err(Status::unavailable("no leader elected yet; retry")),
        }
        // The leader signs, so it must hold the secret before a watermark is committed for it.
        let key = self.keyring.get(&req.key_id).ok_or_else(|| {
            let why = self
                .keyring
                .pending()
                .remove(&req.key_id)
                .unwrap_or_else(|| "not loaded yet".into());
            Status::unavailable(format!(
                "key {:?} is not loaded on the leader: {why}",
                req.key_id
            ))
        })?;
        // One id, one key: a key file that shares an id with a registry key never signs for
        // the registry key's record (the permit would name another public key anyway).
        if key.public_key != identity.public_key {
            return Err(convert::key_mismatch(&req.key_id));
        }
        // No refusal before the log: a request the applied state would refuse is still
        // proposed, so that every refusal is decided by the state machine and recorded in the
        // audit chain (rate limits bound what a client can push through this path).
        let entry = SignEntry {
            request_id: req.request_id.clone(),
            client: client.clone(),
            key_id: req.key_id.clone(),
            intent,
        };
        let decided = match self.proposer.propose(entry).await {
            Ok(d) => d,
            Err(ProposeError::NotLeader { leader: Some(l) }) if !forwarded && l != self.node_id => {
                return self.forward(l, client, req).await;
            }
            Err(e) => return Err(convert::propose_failure(&e)),
        };
        let resigned = match &decided.outcome {
            SignOutcome::Refused(v) => return Err(convert::refusal(v)),
            SignOutcome::KeyInactive => {
                return Err(Status::not_found(format!(
                    "key_id: key {:?} was disabled or deleted",
                    req.key_id
                )))
            }
            SignOutcome::Paused => return Err(convert::paused()),
            SignOutcome::KeyMismatch => return Err(convert::key_mismatch(&req.key_id)),
            SignOutcome::Resigned => true,
            SignOutcome::Signed => false,
        };
        let permit = decided
            .permit
            .ok_or_else(|| Status::internal("accepted without a permit"))?;
        let signed_message = permit.message().to_vec();
        let signature = key
            .sign(permit)
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(pb::SignResponse {
            signature: signature.bytes,
            signature_text: signature.text,
            resigned,
            signed_message,
        })
    }

    /// The key's id, profile and public key: an active registry record, else a key file.
    fn identity(&self, key_id: &str) -> Result<convert::KeyIdentity, Status> {
        let not_found =
            || Status::not_found(format!("key_id: no active key {key_id:?} on this cluster"));
        let record = self.state.read().registry.keys.get(key_id).cloned();
        match record {
            Some(r) if r.state == crate::registry::KeyState::Active => Ok(convert::KeyIdentity {
                key_id: r.key_id,
                profile: r.profile,
                public_key: r.public_key,
            }),
            Some(_) => Err(not_found()),
            None => self
                .keyring
                .get(key_id)
                .map(|k| convert::KeyIdentity::from(k.as_ref()))
                .ok_or_else(not_found),
        }
    }

    async fn forward(
        &self,
        leader: NodeId,
        client: String,
        req: pb::SignRequest,
    ) -> Result<pb::SignResponse, Status> {
        // Raft's own view of the membership (from the log, also before this node has applied
        // it, e.g. right after a restart).
        let addr = self
            .raft
            .metrics()
            .borrow_watched()
            .membership_config
            .membership()
            .get_node(&leader)
            .map(|n| n.addr.clone());
        let addr = addr.ok_or_else(|| {
            Status::unavailable(format!("leader {leader} has no known address; retry"))
        })?;
        let channel = self
            .network
            .channel(leader, &addr)
            .map_err(|e| Status::unavailable(format!("leader {leader}: {e}")))?;
        let mut request = Request::new(pb::ForwardedSign {
            client_identity: client,
            request: Some(req),
        });
        request.set_timeout(FORWARD_TIMEOUT);
        let mut peer = pb::raft_client::RaftClient::new(channel);
        match peer.forward_sign(request).await {
            Ok(resp) => Ok(resp.into_inner()),
            // Transport failures reaching the leader mean "try again", not a verdict.
            Err(s) if s.code() == tonic::Code::Unknown || s.code() == tonic::Code::Cancelled => {
                Err(Status::unavailable(format!(
                    "leader {leader} unreachable: {}",
                    s.message()
                )))
            }
            Err(s) => Err(s),
        }
    }
}

/// The `signer.v1.Signer` gRPC service.
pub struct SignerService {
    path: SignPath,
}

impl SignerService {
    /// A service over `path`.
    pub fn new(path: SignPath) -> Self {
        SignerService { path }
    }
}

fn client_identity<T>(req: &Request<T>) -> Result<String, Status> {
    crate::tls::peer_identity(req.peer_certs()).ok_or_else(|| {
        Status::unauthenticated("a client certificate naming the client is required")
    })
}

#[tonic::async_trait]
impl pb::signer_server::Signer for SignerService {
    async fn sign(
        &self,
        request: Request<pb::SignRequest>,
    ) -> Result<Response<pb::SignResponse>, Status> {
        let client = client_identity(&request)?;
        let resp = self.path.sign(client, request.into_inner(), false).await?;
        Ok(Response::new(resp))
    }

    async fn sign_batch(
        &self,
        request: Request<pb::SignBatchRequest>,
    ) -> Result<Response<pb::SignBatchResponse>, Status> {
        let client = client_identity(&request)?;
        let requests = request.into_inner().requests;
        if requests.len() > MAX_BATCH {
            return Err(Status::invalid_argument(format!(
                "requests: at most {MAX_BATCH} per batch, got {}",
                requests.len()
            )));
        }
        let results = futures::future::join_all(
            requests
                .into_iter()
                .map(|req| self.path.sign(client.clone(), req, false)),
        )
        .await
        .into_iter()
        .map(|r| pb::SignBatchResult {
            result: Some(match r {
                Ok(signed) => pb::sign_batch_result::Result::Signed(signed),
                Err(status) => pb::sign_batch_result::Result::Error(convert::sign_error(&status)),
            }),
        })
        .collect();
        Ok(Response::new(pb::SignBatchResponse { results }))
    }

    async fn get_public_keys(
        &self,
        request: Request<pb::GetPublicKeysRequest>,
    ) -> Result<Response<pb::GetPublicKeysResponse>, Status> {
        let client = client_identity(&request)?;
        let grant = {
            let applied = self.path.state.read();
            access::grant_of(&applied.admin, &client)
                .map_err(|d| Status::from(&d))?
                .clone()
        };
        // A key loaded under an id that the registry holds with another public key (a key
        // file shadowing a registry id) cannot sign here: it is not listed.
        let applied = self.path.state.read();
        let registry = &applied.registry.keys;
        let keys = self
            .path
            .keyring
            .keys()
            .iter()
            .filter(|k| grant.check(&client, &k.key_id, k.profile).is_ok())
            .filter(|k| {
                registry
                    .get(&k.key_id)
                    .is_none_or(|r| r.public_key == k.public_key)
            })
            .map(|k| pb::KeyInfo {
                key_id: k.key_id.clone(),
                profile: k.profile.name().to_owned(),
                scheme: k.scheme().to_owned(),
                public_key: k.public_key.clone(),
                public_key_text: k.public_key_text.clone(),
            })
            .collect();
        drop(applied);
        Ok(Response::new(pb::GetPublicKeysResponse { keys }))
    }

    async fn get_cluster_status(
        &self,
        request: Request<pb::GetClusterStatusRequest>,
    ) -> Result<Response<pb::ClusterStatus>, Status> {
        let client = client_identity(&request)?;
        if !access::may_read_status(&self.path.state.read().admin, &client) {
            return Err(Status::permission_denied(format!(
                "{client:?} has no access grant and is not an auditor"
            )));
        }
        let m = self.path.raft.metrics().borrow_watched().clone();
        let voters = m.membership_config.membership().voter_ids().collect();
        Ok(Response::new(pb::ClusterStatus {
            node_id: self.path.node_id,
            leader_id: m.current_leader.unwrap_or(0),
            term: m.current_term,
            last_applied_index: m.last_applied.map(|l| l.index).unwrap_or(0),
            voters,
            keys_loaded: self
                .path
                .keyring
                .keys()
                .iter()
                .map(|k| k.key_id.clone())
                .collect(),
            keys_pending: self
                .path
                .keyring
                .pending()
                .into_iter()
                .map(|(key_id, reason)| pb::PendingKey { key_id, reason })
                .collect(),
        }))
    }
}
