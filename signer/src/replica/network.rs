//! The Raft peer network, client side: one cached mutual-TLS gRPC channel per peer, openraft's
//! RPCs carried as JSON in `signer.v1.Raft` messages.
//!
//! Owns: dialing peers (lazily, with timeouts) and mapping transport failures to openraft's
//! error types. Must not: accept connections (that is `service::peer`) or decide anything.

use super::{NodeId, Snapshot, SnapshotData, TypeConfig, Vote};
use crate::pb::raft_client::RaftClient;
use crate::pb::RaftMessage;
use openraft::errors::{NetworkError, RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory, RaftNetworkV2};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// Largest message a peer accepts (snapshots travel in one message).
pub const MAX_PEER_MESSAGE: usize = 64 * 1024 * 1024;

/// PEM material a node uses to dial its peers.
#[derive(Clone)]
pub struct PeerTls {
    /// The cluster CA certificate.
    pub ca_pem: Vec<u8>,
    /// This node's certificate (it names `node-<id>`).
    pub cert_pem: Vec<u8>,
    /// This node's private key.
    pub key_pem: Vec<u8>,
}

impl std::fmt::Debug for PeerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PeerTls(<redacted>)")
    }
}

/// The network factory: hands openraft a client per peer, sharing cached channels.
#[derive(Clone, Debug)]
pub struct PeerNetwork {
    tls: PeerTls,
    channels: Arc<Mutex<HashMap<NodeId, (String, Channel)>>>,
}

impl PeerNetwork {
    /// A factory dialing peers with `tls`.
    pub fn new(tls: PeerTls) -> Self {
        PeerNetwork {
            tls,
            channels: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The cached channel to node `id` at `addr` (created lazily; never fails for a valid
    /// address). Used for Raft RPCs and for forwarding sign requests to the leader.
    pub fn channel(&self, id: NodeId, addr: &str) -> Result<Channel, tonic::transport::Error> {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((cached_addr, ch)) = channels.get(&id) {
            if cached_addr == addr {
                return Ok(ch.clone());
            }
        }
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.tls.ca_pem))
            .identity(Identity::from_pem(&self.tls.cert_pem, &self.tls.key_pem))
            .domain_name(format!("node-{id}"));
        let channel = Endpoint::from_shared(format!("https://{addr}"))?
            .tls_config(tls)?
            .connect_timeout(Duration::from_millis(500))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(5))
            .connect_lazy();
        channels.insert(id, (addr.to_owned(), channel.clone()));
        Ok(channel)
    }
}

impl RaftNetworkFactory<TypeConfig> for PeerNetwork {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Self::Network {
        PeerClient {
            target,
            channel: self.channel(target, &node.addr).map_err(|e| e.to_string()),
        }
    }
}

/// A client for one peer.
pub struct PeerClient {
    target: NodeId,
    channel: Result<Channel, String>,
}

fn encode<T: Serialize>(value: &T) -> Result<RaftMessage, RPCError<TypeConfig>> {
    serde_json::to_vec(value)
        .map(|payload| RaftMessage { payload })
        .map_err(|e| RPCError::Network(NetworkError::new(&e)))
}

fn decode<T: DeserializeOwned>(msg: RaftMessage) -> Result<T, RPCError<TypeConfig>> {
    serde_json::from_slice(&msg.payload).map_err(|e| RPCError::Network(NetworkError::new(&e)))
}

/// The remote answers `Result<T, String>`: a remote Raft error (the peer is stopping) counts as
/// unreachable, so openraft backs off.
fn remote<T>(r: Result<T, String>) -> Result<T, RPCError<TypeConfig>> {
    r.map_err(|e| RPCError::Unreachable(Unreachable::from_string(format!("peer error: {e}"))))
}

fn status_error(s: tonic::Status) -> RPCError<TypeConfig> {
    match s.code() {
        tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Cancelled => {
            RPCError::Unreachable(Unreachable::new(&s))
        }
        _ => RPCError::Network(NetworkError::new(&s)),
    }
}

impl PeerClient {
    fn client(&self) -> Result<RaftClient<Channel>, RPCError<TypeConfig>> {
        match &self.channel {
            Ok(ch) => Ok(RaftClient::new(ch.clone())
                .max_decoding_message_size(MAX_PEER_MESSAGE)
                .max_encoding_message_size(MAX_PEER_MESSAGE)),
            Err(e) => Err(RPCError::Unreachable(Unreachable::from_string(format!(
                "node {}: bad address: {e}",
                self.target
            )))),
        }
    }
}

fn with_deadline<T>(msg: T, ttl: Duration) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    req.set_timeout(ttl.max(Duration::from_millis(20)));
    req
}

impl RaftNetworkV2<TypeConfig> for PeerClient {
    type SnapshotData = SnapshotData;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        // Entries (not heartbeats) may take longer than the soft TTL on a busy disk.
        let ttl = if rpc.entries.is_empty() {
            option.soft_ttl()
        } else {
            option.hard_ttl().max(Duration::from_secs(2))
        };
        let req = with_deadline(encode(&rpc)?, ttl);
        let resp = self
            .client()?
            .append_entries(req)
            .await
            .map_err(status_error)?;
        remote(decode(resp.into_inner())?)
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        let req = with_deadline(encode(&rpc)?, option.soft_ttl());
        let resp = self.client()?.vote(req).await.map_err(status_error)?;
        remote(decode(resp.into_inner())?)
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + openraft::OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let payload = (vote, snapshot.meta, snapshot.snapshot);
        let req = with_deadline(
            encode(&payload)?,
            option.hard_ttl().max(Duration::from_secs(10)),
        );
        let mut client = self.client()?;
        let call = client.install_snapshot(req);
        tokio::select! {
            closed = cancel => Err(StreamingError::Closed(closed)),
            resp = call => {
                let resp = resp.map_err(status_error)?;
                Ok(remote(decode(resp.into_inner())?)?)
            }
        }
    }
}
