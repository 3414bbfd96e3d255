//! Quorum Signer's client: the generated gRPC services ([`pb`]), mutual-TLS material and
//! identities ([`tls`]), and the client library for the `signer.v1.Signer`, `Admin` and `Audit`
//! services, used by `signerctl`, `signer demo`, `signer bench` and the tests. It links no
//! Raft, storage or KMS code.
//!
//! Owns: the dev-cluster descriptor ([`ClusterDescriptor`], `cluster.json`), a pool of mutual-TLS
//! channels, one per node ([`SignerPool`]), failover between nodes (one loop for every call that
//! may go to any node, signing and admin alike), RPC timeouts, and decoding refusals into
//! [`ClientError::Refused`]. The admin calls are in the `admin` submodule, the loop in `failover`.
//! Must not: decide anything about signing or key lifecycle (the cluster does), or retry a
//! definitive answer — a refusal or any other status that is not "this node cannot answer now"
//! is returned at once.
//!
//! To ensure correctness:
//! - a [`SignerPool::sign`] retry on another node resends the identical request with the same
//!   request id (one is generated when the caller gives none), so a retry after an ambiguous
//!   failure is answered by the cluster's idempotence, never by a second, different signature;
//! - admin calls are retried on exactly the same conditions (followers answer UNAVAILABLE, so a
//!   call moves on until it reaches the leader); a generate or import retried after an
//!   ambiguous failure (a timeout after the leader committed) is answered ALREADY_EXISTS, never
//!   by a second key;
//! - every RPC has a timeout, and every failover call has an overall deadline.

/// One node's view of the cluster in words, as `signerctl status` and `signer dev-cluster
/// status` print it: `leader node-1  term 3  applied 42  voters [1, 2, 3]  keys a,b`. More
/// than [`KEYS_NAMED`] keys are counted, with the first few named (`key list` lists them).
pub fn describe_view(s: &pb::ClusterStatus) -> String {
    let keys = match s.keys_loaded.len() {
        n if n > KEYS_NAMED => format!(
            "{n} ({},… — `signerctl key list` lists them)",
            s.keys_loaded[..KEYS_NAMED].join(",")
        ),
        _ => s.keys_loaded.join(","),
    };
    format!(
        "leader {}  term {}  applied {}  voters {:?}  keys {}",
        if s.leader_id == 0 {
            "none".to_owned()
        } else {
            format!("node-{}", s.leader_id)
        },
        s.term,
        s.last_applied_index,
        s.voters,
        keys
    )
}

/// How many key ids [`describe_view`] names before it only counts them.
pub const KEYS_NAMED: usize = 8;

/// A `grpc.health.v1` answer ([`SignerPool::health`]).
pub use tonic_health::pb::health_check_response::ServingStatus;

mod admin;
mod audit;
mod descriptor;
pub mod eth2;
mod failover;
pub mod stdout;
pub mod tls;
pub mod web3signer;

/// Generated gRPC services (`proto/*.proto`, package `signer.v1`) over the message types of
/// [`signer_core::pb`], which are re-exported here: `pb::SignRequest` and
/// `pb::signer_client::SignerClient` both live in this module.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod pb {
    pub use signer_core::pb::*;
    include!(concat!(env!("OUT_DIR"), "/signer.v1.rs"));

    /// The encoded descriptors of every service and message, for gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/signer_descriptor.bin"));
}

/// The client identities and admin name of a development cluster (`signer dev-cluster`).
pub mod dev {
    /// The dev sequencer's client identity.
    pub const SEQUENCER: &str = "seq-1";
    /// The dev admin's name: its soft key (`admin-1.key`) and its client identity, which the
    /// Admin service accepts (`admin-…`).
    pub const ADMIN: &str = "admin-1";
    /// The dev auditor's client identity, which the Audit service accepts (`auditor-…`).
    pub const AUDITOR: &str = "auditor-1";
}

pub use admin::{review, Approver, ImportSecret, Reviewed, SoftApprover};
pub use descriptor::{AdminKey, ClientFiles, ClusterDescriptor, NodeEndpoint, DESCRIPTOR_FILE};
pub use failover::made_by_client;

use failover::{describe, is_unavailable, single};

use crate::pb::signer_client::SignerClient;
use crate::tls::{node_identity, TlsError, TlsMaterial};
use prost::Message;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

/// Errors from the client library.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The cluster refused to sign (slashing protection); `code` is machine-readable.
    #[error("refused: {code}: {message}")]
    Refused {
        /// Stable reason code, e.g. `double_vote`.
        code: String,
        /// The reason in words.
        message: String,
    },
    /// No node answered within the attempts and deadline.
    #[error("no node answered after {attempts} attempt(s); last error: {last_error}")]
    Unavailable {
        /// How many RPCs were tried.
        attempts: u32,
        /// The last failure of each node tried, each naming its node, `; `-separated.
        last_error: String,
    },
    /// A node gave a definitive answer other than a refusal (bad request, unknown key, …).
    #[error("{:?}: {}", .0.code(), .0.message())]
    Other(Box<Status>),
    /// The cluster descriptor could not be read or is invalid.
    #[error("{path}: {reason}")]
    Descriptor {
        /// The descriptor file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// TLS files are missing or bad.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// No node with this id in the pool.
    #[error("no node {0} in this cluster")]
    UnknownNode(u64),
    /// The pool was given no nodes.
    #[error("no nodes to connect to")]
    NoNodes,
}

impl ClientError {
    /// True when the failure was that no node could answer (as opposed to an answer).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, ClientError::Unavailable { .. })
    }

    /// Classify a status a node returned: a refusal, "cannot answer now", or definitive.
    fn from_status(status: Status, node: u64, attempts: u32) -> ClientError {
        if is_unavailable(&status) {
            return ClientError::Unavailable {
                attempts,
                last_error: describe(node, &status),
            };
        }
        ClientError::from_sign_answer(status)
    }

    /// A definitive answer of the Signer service: a refusal (FAILED_PRECONDITION, with its
    /// [`pb::Refusal`] detail decoded) or another status.
    fn from_sign_answer(status: Status) -> ClientError {
        if status.code() == Code::FailedPrecondition {
            return match pb::Refusal::decode(status.details()) {
                Ok(r) if !r.code.is_empty() => ClientError::Refused {
                    code: r.code,
                    message: r.message,
                },
                _ => ClientError::Refused {
                    code: "unspecified".into(),
                    message: status.message().to_owned(),
                },
            };
        }
        ClientError::Other(Box::new(status))
    }

    /// A definitive answer of the Admin service: never a refusal (its FAILED_PRECONDITION means
    /// "not in this state", e.g. a deleted key), always [`ClientError::Other`].
    fn from_admin_answer(status: Status) -> ClientError {
        ClientError::Other(Box::new(status))
    }
}

/// Timeouts and retry bounds of a [`SignerPool`].
#[derive(Debug, Clone)]
pub struct PoolOptions {
    /// Timeout of one RPC attempt on one node.
    pub rpc_timeout: Duration,
    /// Timeout of establishing a connection (TCP + TLS) to a node.
    pub connect_timeout: Duration,
    /// Overall deadline of one failover call (`sign`, `public_keys`, the admin calls) across
    /// all its attempts.
    pub deadline: Duration,
    /// At most this many attempts per call.
    pub max_attempts: u32,
    /// Pause after a full round of nodes failed; doubles each round up to [`Self::max_backoff`].
    pub backoff: Duration,
    /// Longest pause between rounds.
    pub max_backoff: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        PoolOptions {
            rpc_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(1),
            deadline: Duration::from_secs(15),
            max_attempts: 100,
            backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(500),
        }
    }
}

struct PoolNode {
    id: u64,
    /// Shared by the Signer and Admin clients made for each call (cloning is cheap).
    channel: Channel,
}

/// One lazily connected mutual-TLS channel per node, with failover.
///
/// Calls start at the node that answered last and move round-robin to the next node while a
/// node cannot answer. Cheap to share (`&self` methods); clone-free.
pub struct SignerPool {
    nodes: Vec<PoolNode>,
    preferred: AtomicUsize,
    options: PoolOptions,
}

impl std::fmt::Debug for SignerPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignerPool")
            .field("nodes", &self.node_ids())
            .field("options", &self.options)
            .finish()
    }
}

impl SignerPool {
    /// A pool over every node of `descriptor`, authenticating as client `client_name`.
    /// Connections open on first use. Must be called within a Tokio runtime.
    pub async fn connect(
        descriptor: &ClusterDescriptor,
        client_name: &str,
    ) -> Result<SignerPool, ClientError> {
        SignerPool::connect_with(descriptor, client_name, PoolOptions::default()).await
    }

    /// [`Self::connect`] with explicit options.
    pub async fn connect_with(
        descriptor: &ClusterDescriptor,
        client_name: &str,
        options: PoolOptions,
    ) -> Result<SignerPool, ClientError> {
        let tls = descriptor.client_tls(client_name)?;
        let endpoints: Vec<(u64, SocketAddr)> = descriptor
            .nodes
            .iter()
            .map(|n| (n.id, n.client_addr))
            .collect();
        SignerPool::from_endpoints(&endpoints, &tls, options).await
    }

    /// A pool over `(node id, client address)` pairs; each node's certificate must name
    /// `node-<id>`. Must be called within a Tokio runtime.
    pub async fn from_endpoints(
        endpoints: &[(u64, SocketAddr)],
        tls: &TlsMaterial,
        options: PoolOptions,
    ) -> Result<SignerPool, ClientError> {
        if endpoints.is_empty() {
            return Err(ClientError::NoNodes);
        }
        let mut nodes = Vec::with_capacity(endpoints.len());
        for &(id, addr) in endpoints {
            let endpoint = Endpoint::from_shared(format!("https://{addr}"))
                .map_err(|e| ClientError::Descriptor {
                    path: PathBuf::from(addr.to_string()),
                    reason: e.to_string(),
                })?
                .tls_config(tls.client_config(&node_identity(id))?)
                .map_err(|e| ClientError::Descriptor {
                    path: PathBuf::from(addr.to_string()),
                    reason: format!("TLS settings: {e}"),
                })?
                .connect_timeout(options.connect_timeout)
                .timeout(options.rpc_timeout)
                .tcp_nodelay(true)
                .http2_keep_alive_interval(Duration::from_secs(10))
                .keep_alive_timeout(Duration::from_secs(5));
            nodes.push(PoolNode {
                id,
                channel: endpoint.connect_lazy(),
            });
        }
        Ok(SignerPool {
            nodes,
            preferred: AtomicUsize::new(0),
            options,
        })
    }

    /// The node ids, in pool order.
    pub fn node_ids(&self) -> Vec<u64> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    /// Sign on whichever node answers; see the module doc for what is retried.
    /// An empty `request_id` is replaced by a random one, kept across retries.
    pub async fn sign(
        &self,
        mut request: pb::SignRequest,
    ) -> Result<pb::SignResponse, ClientError> {
        if request.request_id.is_empty() {
            request.request_id = hex::encode(rand::random::<[u8; 16]>());
        }
        self.with_failover(ClientError::from_sign_answer, |channel, timeout| {
            let mut client = SignerClient::new(channel);
            let mut rpc = tonic::Request::new(request.clone());
            rpc.set_timeout(timeout);
            async move { client.sign(rpc).await.map(tonic::Response::into_inner) }
        })
        .await
        .map(|(_, response)| response)
    }

    /// Sign on node `node_id` only (no failover); for tests that pick the node.
    pub async fn sign_on(
        &self,
        node_id: u64,
        request: pb::SignRequest,
    ) -> Result<pb::SignResponse, ClientError> {
        let node = self.node(node_id)?;
        let timeout = self.options.rpc_timeout;
        let mut rpc = tonic::Request::new(request);
        rpc.set_timeout(timeout);
        let mut client = SignerClient::new(node.channel.clone());
        single(node_id, timeout, async move {
            client.sign(rpc).await.map(tonic::Response::into_inner)
        })
        .await
    }

    /// The keys the cluster holds, from whichever node answers.
    pub async fn public_keys(&self) -> Result<Vec<pb::KeyInfo>, ClientError> {
        self.with_failover(ClientError::from_sign_answer, |channel, timeout| {
            let mut client = SignerClient::new(channel);
            let mut rpc = tonic::Request::new(pb::GetPublicKeysRequest {});
            rpc.set_timeout(timeout);
            async move {
                client
                    .get_public_keys(rpc)
                    .await
                    .map(|r| r.into_inner().keys)
            }
        })
        .await
        .map(|(_, keys)| keys)
    }

    /// Node `node_id`'s view of the cluster (no failover: it is that node's view).
    pub async fn cluster_status(&self, node_id: u64) -> Result<pb::ClusterStatus, ClientError> {
        let node = self.node(node_id)?;
        let timeout = self.options.rpc_timeout;
        let mut rpc = tonic::Request::new(pb::GetClusterStatusRequest {});
        rpc.set_timeout(timeout);
        let mut client = SignerClient::new(node.channel.clone());
        single(node_id, timeout, async move {
            client
                .get_cluster_status(rpc)
                .await
                .map(tonic::Response::into_inner)
        })
        .await
    }

    /// Node `node_id`'s answer to `grpc.health.v1.Health/Check` for `service` ("" for the
    /// node as a whole): SERVING only while it knows a leader and has every active key
    /// loaded (no failover: it is that node's answer).
    pub async fn health(&self, node_id: u64, service: &str) -> Result<ServingStatus, ClientError> {
        use tonic_health::pb::HealthCheckRequest;
        let node = self.node(node_id)?;
        let timeout = self.options.rpc_timeout;
        let mut rpc = tonic::Request::new(HealthCheckRequest {
            service: service.to_owned(),
        });
        rpc.set_timeout(timeout);
        let mut client = tonic_health::pb::health_client::HealthClient::new(node.channel.clone());
        single(node_id, timeout, async move {
            client.check(rpc).await.map(|r| {
                ServingStatus::try_from(r.into_inner().status).unwrap_or(ServingStatus::Unknown)
            })
        })
        .await
    }

    /// Every node's view, asked concurrently, in pool order.
    pub async fn cluster_statuses(&self) -> Vec<(u64, Result<pb::ClusterStatus, ClientError>)> {
        let asks = self.nodes.iter().map(|n| async move {
            let status = self.cluster_status(n.id).await;
            (n.id, status)
        });
        futures::future::join_all(asks).await
    }

    /// The leader as the answering nodes see it: the leader named at the highest term.
    pub async fn find_leader(&self) -> Option<u64> {
        self.cluster_statuses()
            .await
            .into_iter()
            .filter_map(|(_, s)| s.ok())
            .filter(|s| s.leader_id != 0)
            .max_by_key(|s| s.term)
            .map(|s| s.leader_id)
    }

    fn node(&self, node_id: u64) -> Result<&PoolNode, ClientError> {
        self.nodes
            .iter()
            .find(|n| n.id == node_id)
            .ok_or(ClientError::UnknownNode(node_id))
    }
}

#[cfg(test)]
mod tests;
