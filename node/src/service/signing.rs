//! The sign path: authenticate, check the client's grant and rate limit, validate, route to the
//! leader, propose through Raft (batched), and sign only with the permit the applied entry
//! produced.
//!
//! Owns: the `signer.v1.Signer` service, the [`SignPath`] shared with the peer service's
//! `ForwardTypedSign`, and the sign path's one answer type: [`Signed`] or a [`SignError`] (which
//! becomes a gRPC status only in [`convert`], and a metric label only in
//! [`crate::metrics::sign_labels`]). Must not: touch protection state directly (only the state
//! machine changes it), sign without a [`crate::keyring::SignPermit`], or build a
//! `tonic::Status`.
//!
//! To ensure correctness:
//! - a signature is produced only after `replica::commit_signs` returned a permit, i.e. after a
//!   quorum committed and this node applied the entry that allows it;
//! - a request is converted once, where the client called; a follower forwards it typed
//!   ([`ForwardedSign`]) and the leader checks the client's grant and builds the intent itself
//!   (the peer service authenticated the follower by its certificate);
//! - a request is forwarded at most once (a forwarded request is never forwarded again);
//! - every bad input is answered with a [`SignError`] and changes nothing.

use super::access;
use super::authn::Authenticator;
use super::convert::{self, KeyIdentity, SignRequest};
use crate::keyring::{Keyring, LoadedKey};
use crate::metrics::Metrics;
use crate::pb;
use crate::protection::Violation;
use crate::replica::network::{from_message, to_message};
use crate::replica::{
    commit_signs, Decided, NodeId, PeerNetwork, ProposeError, Raft, SignEntry, SignOutcome,
    StateMachine,
};
use openraft::async_runtime::WatchReceiver;
use serde::{Deserialize, Serialize};
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

/// A signed request: what the sign path returns for a request that was signed (also what the
/// leader answers a follower, in the binary format).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signed {
    /// The signature bytes.
    #[serde(with = "crate::bytes::hex_or_raw")]
    pub signature: Vec<u8>,
    /// The signature in its usual text form.
    pub signature_text: String,
    /// The data was signed before (the state did not change).
    pub resigned: bool,
    /// The exact bytes that were signed.
    #[serde(with = "crate::bytes::hex_or_raw")]
    pub signed_message: Vec<u8>,
}

/// What a follower sends the leader for a request it may not decide itself: the client
/// identity it authenticated and the request, already converted. The payload of the peer RPC
/// `ForwardTypedSign`, in the binary format; the answer is `Result<Signed, SignError>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardedSign {
    /// The identity in the client's certificate, as the follower authenticated it.
    pub client: String,
    /// The request.
    pub request: SignRequest,
}

/// Why a call of the Signer service, or one request of a batch, was not signed. The one error
/// type of the sign path: [`convert`] maps it to the status (and refusal detail) clients get,
/// [`crate::metrics::sign_labels`] to the `outcome`/`reason` labels. Each variant's text is
/// the status message. The leader answers a forwarded request with it in the binary format,
/// so changing a variant changes what peers exchange.
#[derive(Debug, thiserror::Error, Serialize, Deserialize)]
pub enum SignError {
    /// The caller presented no client certificate naming it.
    #[error("a client certificate naming the client is required")]
    Unauthenticated,
    /// Access control turned the caller away: no admin state yet, no grant, a key or profile
    /// outside the grant, or the rate limit.
    #[error(transparent)]
    Denied(#[from] access::Denied),
    /// The identity may neither sign, administer nor audit, so it may not read the cluster
    /// status.
    #[error("{0:?} has no access grant and is neither an enrolled admin nor an auditor")]
    NotReader(String),
    /// A field is missing or malformed (the field's path, and what is wrong with it).
    #[error("{field}: {reason}")]
    Invalid {
        /// The field's path in the request, e.g. `eth2.signing_root`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A raw eth2 signing root from a client whose grant does not trust its roots.
    #[error(
        "eth2: raw signing roots are accepted only from a client whose grant trusts them \
         (raw_roots); send the typed message (eth2.typed) and the signer computes the root"
    )]
    RawRootsRefused,
    /// An Espresso builder request signing 32 bytes the client (or its builder) chose, from
    /// a client whose grant does not trust raw roots.
    #[error(
        "espresso.request.{0}: a builder request signs 32 bytes the client or its builder \
         chose (any vote commitment would pass), so it is accepted only from a client whose \
         grant trusts raw roots (raw_roots); an available-blocks query can instead send the \
         parent payload (parent_payload), whose commitment the signer computes"
    )]
    UntrustedBuilderRequest(String),
    /// No registry record and no key file has this id.
    #[error("key_id: no active key {0:?} on this cluster")]
    KeyNotFound(String),
    /// The state machine found the key's registry record disabled or deleted.
    #[error("key_id: key {0:?} was disabled or deleted")]
    KeyInactive(String),
    /// Slashing protection refused the request.
    #[error("refused by slashing protection: {code}: {0}", code = .0.code())]
    Refused(Violation),
    /// The registry holds the key id under another public key than the key this node holds.
    #[error("refused: key_mismatch: {}", key_mismatch_reason(.0))]
    KeyMismatch(String),
    /// The admins paused signing: a definitive refusal (code `paused`), recorded once in the
    /// audit log, that clients must not retry on another node.
    #[error("refused: paused: {PAUSED_REASON}")]
    Paused,
    /// This node leads but has not loaded the key's secret yet.
    #[error("key {key_id:?} is not loaded on the leader: {why}")]
    KeyNotLoaded {
        /// The key.
        key_id: String,
        /// Why it is not loaded.
        why: String,
    },
    /// No leader is known.
    #[error("no leader elected yet; retry")]
    NoLeader,
    /// Raft would not take the proposal here (this node lost leadership).
    #[error("no leader can accept the request right now; retry")]
    NotLeader,
    /// The leader's address is not in the membership this node knows.
    #[error("leader {0} has no known address; retry")]
    LeaderAddressUnknown(NodeId),
    /// No channel to the leader could be made.
    #[error("leader {leader}: {reason}")]
    LeaderChannel {
        /// The leader.
        leader: NodeId,
        /// Why.
        reason: String,
    },
    /// The leader could not be reached (transport failure): try again.
    #[error("leader {leader} unreachable: {reason}")]
    LeaderUnreachable {
        /// The leader.
        leader: NodeId,
        /// The transport's message.
        reason: String,
    },
    /// The entry was appended and then discarded by a new leader: the outcome is unknown, and
    /// retrying the identical request is safe.
    #[error("leadership changed while the request was in flight; retry the identical request")]
    OutcomeUnknown,
    /// Raft stopped on this node (storage failure or shutdown).
    #[error("replication stopped on this node: {0}")]
    Stopped(String),
    /// A bug: the state machine or keyring answered what the path does not expect.
    #[error("{0}")]
    Internal(String),
    /// The forwarding call failed with this status (the leader refused the peer, could not
    /// read the payload, or the call timed out); relayed with its code and message. Only a
    /// follower makes it, so it never travels between nodes. (It must stay the last variant:
    /// serde numbers the variants it reads without a skipped one.)
    #[error("{message}")]
    #[serde(skip)]
    LeaderStatus {
        /// The status code.
        code: tonic::Code,
        /// The status message.
        message: String,
    },
}

/// The reason of the `paused` refusal.
pub const PAUSED_REASON: &str =
    "signing is paused by the admins (signerctl resume, with approvals)";

/// Why a key file and the registry clash over `key_id` (the `key_mismatch` refusal's text).
pub fn key_mismatch_reason(key_id: &str) -> String {
    format!(
        "key {key_id:?}: the cluster's registry holds this id under another public key; \
         rename the key file or the registry key"
    )
}

impl From<&ProposeError> for SignError {
    fn from(e: &ProposeError) -> SignError {
        match e {
            ProposeError::NotLeader { .. } => SignError::NotLeader,
            ProposeError::Unknown => SignError::OutcomeUnknown,
            ProposeError::Fatal(m) => SignError::Stopped(m.clone()),
            ProposeError::Internal(m) => SignError::Internal((*m).to_owned()),
        }
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
    /// The authenticator of this path's node: its applied revocations, its denial throttle
    /// and audit events.
    pub fn authenticator(&self) -> Authenticator {
        Authenticator::new(
            self.state.clone(),
            self.events.clone(),
            self.denials.clone(),
        )
    }

    /// Handle one request a client sent to this node (Sign, or one request of SignBatch) from
    /// the authenticated `client`: convert it once, decide it here or forward it to the
    /// leader, and count the answer in this node's metrics.
    pub async fn sign(&self, client: String, req: pb::SignRequest) -> Result<Signed, SignError> {
        let profile = convert::request_profile(&req).map_or("unknown", |p| p.name());
        let span = client_span(&client, &req.request_id, &req.key_id);
        let who = client.clone();
        self.measured(&who, profile, span, self.accept(client, req))
            .await
    }

    /// [`Self::sign`] for a request that entered already typed (the Web3Signer-compatible
    /// API parses its JSON into the typed message itself): the same checks in the same order,
    /// the same decision and the same metrics, without a protobuf round trip.
    pub async fn sign_typed(&self, client: String, req: SignRequest) -> Result<Signed, SignError> {
        let span = client_span(&client, &req.request_id, &req.key_id);
        let profile = req.profile().name();
        let who = client.clone();
        let accepted = async {
            req.check_ids()?;
            let raw_roots = self.admit(&client, &req.key_id, req.profile(), false)?;
            let identity = self.identity(&req.key_id)?;
            convert::check_profile(req.profile(), &identity)?;
            self.decide_and_sign(client, req, &identity, raw_roots, false)
                .await
        };
        self.measured(&who, profile, span, accepted).await
    }

    /// Run a client's request in its span, trace its answer and count it in metrics (once,
    /// where the client called: the leader does not count forwarded requests).
    async fn measured(
        &self,
        client: &str,
        profile: &str,
        span: tracing::Span,
        request: impl std::future::Future<Output = Result<Signed, SignError>>,
    ) -> Result<Signed, SignError> {
        use tracing::Instrument;
        let started = std::time::Instant::now();
        let result = request.instrument(span.clone()).await;
        span.in_scope(|| trace_answer(&result));
        self.metrics
            .sign_finished(client, profile, &result, started.elapsed());
        result
    }

    /// The keys `client` may sign with on this node, ordered by id: loaded, allowed by its
    /// grant, and not a key file shadowing a registry id that names another public key (such
    /// a key cannot sign here). An identity without a grant gets the denial.
    pub fn usable_keys(&self, client: &str) -> Result<Vec<Arc<LoadedKey>>, SignError> {
        let applied = self.state.read();
        let grant = access::grant_of(&applied.admin, client)?;
        let registry = &applied.registry.keys;
        Ok(self
            .keyring
            .keys()
            .into_iter()
            .filter(|k| grant.check(client, &k.key_id, k.profile).is_ok())
            .filter(|k| {
                registry
                    .get(&k.key_id)
                    .is_none_or(|r| r.public_key == k.public_key)
            })
            .collect())
    }

    /// Handle a request a follower forwarded to this node (the peer service authenticated the
    /// follower). Checked as if the client had called here: ids, the client's grant (without
    /// its rate limit, which the follower took), the key, and the intent built from the typed
    /// request by this node. Never forwarded again, and not counted in metrics.
    pub async fn sign_forwarded(
        &self,
        client: String,
        req: SignRequest,
    ) -> Result<Signed, SignError> {
        use tracing::Instrument;
        let span = tracing::info_span!(
            "sign",
            request_id = %req.request_id,
            %client,
            key_id = %req.key_id,
            forwarded = true
        );
        let result = async {
            req.check_ids()?;
            let raw_roots = self.admit(&client, &req.key_id, req.profile(), true)?;
            let identity = self.identity(&req.key_id)?;
            self.decide_and_sign(client, req, &identity, raw_roots, true)
                .await
        }
        .instrument(span.clone())
        .await;
        span.in_scope(|| trace_answer(&result));
        result
    }

    /// A client's request on the node it called: the grant first (a client learns nothing
    /// about keys it may not use, not even whether an id exists), then the key, then the one
    /// conversion of the whole request.
    async fn accept(&self, client: String, req: pb::SignRequest) -> Result<Signed, SignError> {
        let profile = convert::precheck(&req)?;
        let raw_roots = self.admit(&client, &req.key_id, profile, false)?;
        let identity = self.identity(&req.key_id)?;
        convert::check_profile(profile, &identity)?;
        let req = SignRequest::try_from(req)?;
        self.decide_and_sign(client, req, &identity, raw_roots, false)
            .await
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
    ) -> Result<bool, SignError> {
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
                Err(SignError::Denied(denied))
            }
        }
    }

    /// Decide an admitted, converted request: build its intent (on a follower too, so a bad
    /// request is answered without a round trip), forward it to the leader unless this node
    /// leads (or it was forwarded here), propose it, and sign with the permit.
    async fn decide_and_sign(
        &self,
        client: String,
        req: SignRequest,
        identity: &KeyIdentity,
        raw_roots: bool,
        forwarded: bool,
    ) -> Result<Signed, SignError> {
        convert::check_request_clock(&req, || {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .map_err(|e| SignError::Internal(format!("system clock before 1970: {e}")))
        })?;
        let intent = if req.message.computes_vid() {
            // A VID commitment of a large payload is seconds of CPU: off the async runtime.
            let (request, key, network) =
                (req.clone(), identity.clone(), self.eth2_network.clone());
            tokio::task::spawn_blocking(move || {
                let eth2 = convert::Eth2Context {
                    network: &network,
                    raw_roots,
                };
                convert::intent(&request, &key, eth2)
            })
            .await
            .map_err(|e| SignError::Internal(format!("VID commitment task: {e}")))??
        } else {
            let eth2 = convert::Eth2Context {
                network: &self.eth2_network,
                raw_roots,
            };
            convert::intent(&req, identity, eth2)?
        };
        let leader = self.raft.metrics().borrow_watched().current_leader;
        match leader {
            Some(l) if l == self.node_id => {}
            Some(l) if !forwarded => return self.forward(l, client, req).await,
            _ => return Err(SignError::NoLeader),
        }
        // The leader signs, so it must hold the secret before a watermark is committed for it
        // (a disabled or deleted key signs nothing: the state machine answers key_inactive).
        let key = match identity.inactive {
            true => None,
            false => Some(self.loaded_key(&req.key_id)?),
        };
        // One id, one key: a key file that shares an id with a registry key never signs for
        // the registry key's record (the permit would name another public key anyway).
        if key
            .as_ref()
            .is_some_and(|k| k.public_key != identity.public_key)
        {
            return Err(SignError::KeyMismatch(req.key_id));
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
            Err(e) => return Err(SignError::from(&e)),
        };
        let resigned = match decided.outcome {
            SignOutcome::Refused(v) => return Err(SignError::Refused(v)),
            SignOutcome::KeyInactive => return Err(SignError::KeyInactive(req.key_id)),
            SignOutcome::Paused => return Err(SignError::Paused),
            SignOutcome::KeyMismatch => return Err(SignError::KeyMismatch(req.key_id)),
            SignOutcome::Resigned => true,
            SignOutcome::Signed => false,
        };
        let permit = decided
            .permit
            .ok_or_else(|| SignError::Internal("accepted without a permit".into()))?;
        // Re-enabled between this node's check and the decision: the watermark moved (safe),
        // but the secret is not loaded yet; the client retries.
        let key = match key {
            Some(key) => key,
            None => self.loaded_key(&req.key_id)?,
        };
        let signed_message = permit.message().to_vec();
        let signature = key
            .sign(permit)
            .map_err(|e| SignError::Internal(e.to_string()))?;
        Ok(Signed {
            signature: signature.bytes,
            signature_text: signature.text,
            resigned,
            signed_message,
        })
    }

    /// The key's id, profile and public key: a registry record (a disabled or deleted one is
    /// marked [`KeyIdentity::inactive`]), else a key file.
    fn identity(&self, key_id: &str) -> Result<KeyIdentity, SignError> {
        // Only what the identity needs leaves the lock: not the record's sealed secret.
        let registered = self
            .state
            .read()
            .registry
            .keys
            .get(key_id)
            .map(|r| KeyIdentity {
                inactive: r.state != crate::registry::KeyState::Active,
                key_id: r.key_id.clone(),
                profile: r.profile,
                public_key: r.public_key.clone(),
            });
        match registered {
            Some(identity) => Ok(identity),
            None => self
                .keyring
                .get(key_id)
                .map(|k| KeyIdentity::from(k.as_ref()))
                .ok_or_else(|| SignError::KeyNotFound(key_id.to_owned())),
        }
    }

    /// The key's secret on this node, or why it is not loaded.
    fn loaded_key(&self, key_id: &str) -> Result<Arc<LoadedKey>, SignError> {
        self.keyring
            .get(key_id)
            .ok_or_else(|| SignError::KeyNotLoaded {
                key_id: key_id.to_owned(),
                why: self
                    .keyring
                    .pending_reason(key_id)
                    .unwrap_or_else(|| "not loaded yet".into()),
            })
    }

    /// Send the converted request to `leader` and return its typed answer.
    async fn forward(
        &self,
        leader: NodeId,
        client: String,
        request: SignRequest,
    ) -> Result<Signed, SignError> {
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
        let addr = addr.ok_or(SignError::LeaderAddressUnknown(leader))?;
        let channel =
            self.network
                .channel(leader, &addr)
                .map_err(|e| SignError::LeaderChannel {
                    leader,
                    reason: e.to_string(),
                })?;
        let payload = to_message(&ForwardedSign { client, request })
            .map_err(|e| SignError::Internal(format!("forwarded request: {e}")))?;
        let mut call = Request::new(payload);
        call.set_timeout(FORWARD_TIMEOUT);
        let mut peer = pb::raft_client::RaftClient::new(channel);
        match peer.forward_typed_sign(call).await {
            // The leader's answer; one it cannot have written (another format version) means
            // "ask another node", like a transport failure.
            Ok(resp) => {
                from_message::<Result<Signed, SignError>>(resp.get_ref()).unwrap_or_else(|e| {
                    Err(SignError::LeaderUnreachable {
                        leader,
                        reason: format!("answer: {e}"),
                    })
                })
            }
            Err(s) => Err(forward_failed(leader, &s)),
        }
    }
}

/// What a forward to `leader` that got no answer means. A transport failure means "try
/// again", not a verdict: UNKNOWN and CANCELLED, and any status tonic made up from a broken
/// connection, which carries the transport or HTTP/2 error as its source (a leader that exits
/// mid-call, e.g. on a full disk, comes as INTERNAL "h2 protocol error"). A status the leader
/// sent has no source: it is the leader's answer. Retrying is safe: the same request re-signs
/// identical data or is refused.
fn forward_failed(leader: NodeId, status: &Status) -> SignError {
    let transport = matches!(status.code(), tonic::Code::Unknown | tonic::Code::Cancelled)
        || crate::client::made_by_client(status);
    match transport {
        true => SignError::LeaderUnreachable {
            leader,
            reason: status.message().to_owned(),
        },
        false => SignError::LeaderStatus {
            code: status.code(),
            message: status.message().to_owned(),
        },
    }
}

/// The span of a request a client sent to this node.
fn client_span(client: &str, request_id: &str, key_id: &str) -> tracing::Span {
    tracing::info_span!(
        "sign",
        %request_id,
        %client,
        %key_id,
        forwarded = false
    )
}

fn trace_answer(result: &Result<Signed, SignError>) {
    match result {
        Ok(r) => tracing::debug!(resigned = r.resigned, "signed"),
        Err(e) => tracing::debug!(code = ?e.code(), reason = %e, "not signed"),
    }
}

/// The `signer.v1.Signer` gRPC service.
pub struct SignerService {
    path: SignPath,
    authn: Authenticator,
}

impl SignerService {
    /// A service over `path`.
    pub fn new(path: SignPath) -> Self {
        SignerService {
            authn: path.authenticator(),
            path,
        }
    }

    /// The caller's identity: its certificate's name, unless the admins revoked it.
    fn client_identity<T>(&self, req: &Request<T>) -> Result<String, Status> {
        self.authn
            .identify_request(req)
            .map_err(|e| convert::authn_status(e, &SignError::Unauthenticated.to_string()))
    }
}

#[tonic::async_trait]
impl pb::signer_server::Signer for SignerService {
    async fn sign(
        &self,
        request: Request<pb::SignRequest>,
    ) -> Result<Response<pb::SignResponse>, Status> {
        let client = self.client_identity(&request)?;
        self.path
            .sign(client, request.into_inner())
            .await
            .map(|signed| Response::new(signed.into()))
            .map_err(convert::status)
    }

    async fn sign_batch(
        &self,
        request: Request<pb::SignBatchRequest>,
    ) -> Result<Response<pb::SignBatchResponse>, Status> {
        let client = self.client_identity(&request)?;
        let requests = request.into_inner().requests;
        if requests.len() > MAX_BATCH {
            return Err(convert::status(SignError::Invalid {
                field: "requests".into(),
                reason: format!("at most {MAX_BATCH} per batch, got {}", requests.len()),
            }));
        }
        let results = futures::future::join_all(
            requests
                .into_iter()
                .map(|req| self.path.sign(client.clone(), req)),
        )
        .await
        .into_iter()
        .map(convert::batch_result)
        .collect();
        Ok(Response::new(pb::SignBatchResponse { results }))
    }

    async fn get_public_keys(
        &self,
        request: Request<pb::GetPublicKeysRequest>,
    ) -> Result<Response<pb::GetPublicKeysResponse>, Status> {
        let client = self.client_identity(&request)?;
        let keys = self
            .path
            .usable_keys(&client)
            .map_err(convert::status)?
            .iter()
            .map(|k| pb::KeyInfo {
                key_id: k.key_id.clone(),
                profile: k.profile.name().to_owned(),
                scheme: k.scheme().to_owned(),
                public_key: k.public_key.clone(),
                public_key_text: k.public_key_text.clone(),
            })
            .collect();
        Ok(Response::new(pb::GetPublicKeysResponse { keys }))
    }

    async fn get_cluster_status(
        &self,
        request: Request<pb::GetClusterStatusRequest>,
    ) -> Result<Response<pb::ClusterStatus>, Status> {
        let client = self.client_identity(&request)?;
        if !access::may_read_status(&self.path.state.read().admin, &client) {
            return Err(convert::status(SignError::NotReader(client)));
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

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    /// A connection to the leader that broke mid-call is "unavailable, try again"; the same code
    /// sent by the leader is its answer.
    #[test]
    fn a_forward_broken_mid_call_is_unavailable_a_leader_status_is_its_answer() {
        let mut broken = Status::new(Code::Internal, "h2 protocol error: http2 error");
        broken.set_source(Arc::new(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "connection reset",
        )));
        let e = forward_failed(2, &broken);
        assert!(
            matches!(&e, SignError::LeaderUnreachable { leader: 2, reason } if reason == "h2 protocol error: http2 error"),
            "{e:?}"
        );
        assert_eq!(e.code(), Code::Unavailable);
        for code in [Code::Unknown, Code::Cancelled] {
            let e = forward_failed(2, &Status::new(code, "x"));
            assert_eq!(e.code(), Code::Unavailable, "{code:?}");
        }
        for code in [Code::Internal, Code::FailedPrecondition, Code::Unavailable] {
            let e = forward_failed(2, &Status::new(code, "from the leader"));
            assert!(
                matches!(&e, SignError::LeaderStatus { code: c, message } if *c == code && message == "from the leader"),
                "{e:?}"
            );
        }
    }
}
