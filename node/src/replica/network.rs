//! The Raft peer network, client side, and the peer wire format: one cached mutual-TLS gRPC
//! channel per peer; openraft's RPCs carried in `signer.v1.Raft` messages in the versioned
//! binary format ([`crate::format`]); snapshots streamed in chunks.
//!
//! Owns: dialing peers (lazily, with timeouts), mapping transport failures to openraft's error
//! types, the payload encoding both sides use ([`to_message`], [`from_message`]), the byte cap
//! on append entries ([`encode_append_entries`]) and the sending side of the snapshot stream
//! ([`SnapshotHeader`], [`snapshot_chunks`]).
//! Must not: accept connections or reassemble snapshot streams (that is `service::peer`), or
//! decide anything.
//!
//! To ensure correctness:
//! - every payload carries the format version; a payload of another version is refused with
//!   an error naming both versions, never decoded by guess;
//! - an append-entries message never exceeds [`MAX_PEER_PAYLOAD`]: a batch that would is cut
//!   to the prefix that fits, answered as `PartialSuccess(last entry sent)`;
//! - a snapshot travels as its header alone, then at most [`SNAPSHOT_CHUNK`] bytes per chunk
//!   (a stored one read from its files a chunk at a time), and is not sent when over
//!   [`MAX_SNAPSHOT`]; the header has a chunk of its own so the receiver checks who speaks
//!   (the header's vote) before it reserves any snapshot bytes.

use super::{LogId, NodeId, Snapshot, SnapshotData, SnapshotMeta, TypeConfig, Vote};
use crate::format::FormatError;
use crate::pb::raft_client::RaftClient;
use crate::pb::{RaftMessage, SnapshotChunk};
use futures::{Stream, StreamExt as _};
use openraft::errors::{NetworkError, RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory, RaftNetworkV2};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// Largest unary peer message (append entries, vote, forwarded events and signs). Snapshots
/// do not travel in one message: they stream in chunks of [`SNAPSHOT_CHUNK`].
pub const MAX_PEER_MESSAGE: usize = 64 * 1024 * 1024;

/// Most snapshot bytes one [`SnapshotChunk`] carries.
pub const SNAPSHOT_CHUNK: usize = 1024 * 1024;

/// Largest snapshot a node sends or accepts, in bytes: the largest value the binary format
/// decodes, so a snapshot that arrives can be installed.
pub const MAX_SNAPSHOT: u64 = crate::format::MAX_VALUE;

/// The slowest transfer a snapshot stream's deadline allows for, in bytes per second.
const SNAPSHOT_MIN_RATE: u64 = 4 * 1024 * 1024;

/// Largest payload of a unary peer message: [`MAX_PEER_MESSAGE`] less the protobuf framing of
/// [`RaftMessage`] (a tag and a length).
pub const MAX_PEER_PAYLOAD: usize = MAX_PEER_MESSAGE - 16;

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

/// A value as a peer message, in the binary format.
pub fn to_message<T: Serialize + ?Sized>(value: &T) -> Result<RaftMessage, FormatError> {
    crate::format::encode(value).map(|payload| RaftMessage { payload })
}

/// The value a peer message carries; refuses another format version by name.
pub fn from_message<T: DeserializeOwned>(msg: &RaftMessage) -> Result<T, FormatError> {
    crate::format::decode(&msg.payload)
}

/// `rpc` as a peer message of at most `max` payload bytes: all of it, or, when its entries do
/// not fit, the longest prefix of them that does, with the log id of the last entry sent.
///
/// openraft (0.10) caps a batch by entry count only; a leader that answers a prefix with
/// `PartialSuccess(last sent)` sends the rest in the next request, instead of retrying a
/// message the transport refuses forever.
pub fn encode_append_entries(
    mut rpc: AppendEntriesRequest<TypeConfig>,
    max: usize,
) -> Result<(RaftMessage, Option<LogId>), WireError> {
    let whole = to_message(&rpc).map_err(WireError::Encode)?;
    if whole.payload.len() <= max {
        return Ok((whole, None));
    }
    // Encoded sizes add up: the request without entries, plus each entry (less its header),
    // plus a varint count that grows by at most 9 bytes.
    let entries = std::mem::take(&mut rpc.entries);
    let base = to_message(&rpc).map_err(WireError::Encode)?.payload.len() + 9;
    let mut total = base;
    let mut fit = 0;
    for entry in &entries {
        let len = crate::format::encode(entry)
            .map_err(WireError::Encode)?
            .len()
            .saturating_sub(crate::format::MAGIC.len() + 2);
        if fit == 0 && base.saturating_add(len) > max {
            return Err(WireError::EntryTooLarge {
                log_id: entry.log_id.to_string(),
                len,
                max,
            });
        }
        total = total.saturating_add(len);
        if total > max {
            break;
        }
        fit += 1;
    }
    rpc.entries = entries;
    rpc.entries.truncate(fit);
    let last = rpc.entries.last().map(|e| e.log_id);
    let message = to_message(&rpc).map_err(WireError::Encode)?;
    Ok((message, last))
}

/// The first chunk of a snapshot stream: who sends it, what it is and how long it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotHeader {
    /// The sender's vote; the receiver checks that it speaks for the authenticated peer.
    pub vote: Vote,
    /// The snapshot's meta.
    pub meta: SnapshotMeta,
    /// The snapshot's length in bytes: the sum of the chunks' data.
    pub len: u64,
}

/// A snapshot as a stream of chunks: the header alone, then the bytes in order, at most
/// [`SNAPSHOT_CHUNK`] per chunk (none for an empty snapshot).
///
/// The chunks are read from `data` as the stream is polled: a stored body [`SNAPSHOT_CHUNK`]
/// bytes at a time, never whole, each read off the async runtime. Should a read fail, the
/// error is logged and the stream ends early; the receiver then refuses the snapshot as
/// shorter than its header says, and openraft sends it again later.
pub fn snapshot_chunks(
    vote: Vote,
    meta: SnapshotMeta,
    data: SnapshotData,
) -> Result<impl Stream<Item = SnapshotChunk> + Send + 'static, FormatError> {
    let len = data.len();
    let header = crate::format::encode(&SnapshotHeader { vote, meta, len })?;
    let first = SnapshotChunk {
        header: Some(header),
        data: Vec::new(),
    };
    let data = Arc::new(data);
    let pieces = futures::stream::unfold(0u64, move |offset| {
        let data = data.clone();
        async move {
            if offset >= len {
                return None;
            }
            let read = match &*data {
                // A copy of a slice: no IO.
                SnapshotData::InMemory(_) => data.read_range(offset, SNAPSHOT_CHUNK),
                SnapshotData::Stored { .. } | SnapshotData::Received { .. } => {
                    tokio::task::spawn_blocking(move || data.read_range(offset, SNAPSHOT_CHUNK))
                        .await
                        .map_err(std::io::Error::other)
                        .and_then(|r| r)
                }
            };
            match read {
                Ok(bytes) if !bytes.is_empty() => {
                    let next = offset + bytes.len() as u64;
                    Some((
                        SnapshotChunk {
                            header: None,
                            data: bytes,
                        },
                        next,
                    ))
                }
                Ok(_) => None,
                Err(e) => {
                    tracing::error!(offset, error = %e, "reading the snapshot to send failed; the stream ends here");
                    None
                }
            }
        }
    });
    Ok(futures::stream::once(std::future::ready(first)).chain(pieces))
}

/// Why a message cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// A value cannot be encoded in the binary format.
    #[error("payload: {0}")]
    Encode(FormatError),
    /// One log entry alone is larger than a peer message may be: it can never be replicated.
    #[error("log entry {log_id} takes {len} bytes, more than the {max} a peer message may carry")]
    EntryTooLarge {
        /// The entry's log id.
        log_id: String,
        /// Its encoded length.
        len: usize,
        /// The largest payload.
        max: usize,
    },
}

/// The deadline for streaming a snapshot of `len` bytes: openraft's hard TTL (at least ten
/// seconds), plus a second per 4 MiB (`SNAPSHOT_MIN_RATE`).
pub fn snapshot_deadline(hard_ttl: Duration, len: u64) -> Duration {
    hard_ttl
        .max(Duration::from_secs(10))
        .saturating_add(Duration::from_secs(len / SNAPSHOT_MIN_RATE))
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

/// A payload that cannot be encoded, or a reply of another format version.
fn payload_error(target: NodeId, e: &FormatError) -> RPCError<TypeConfig> {
    RPCError::Network(NetworkError::from_string(format!(
        "node {target}: payload: {e}"
    )))
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

    fn encode<T: Serialize>(&self, value: &T) -> Result<RaftMessage, RPCError<TypeConfig>> {
        to_message(value).map_err(|e| payload_error(self.target, &e))
    }

    /// The peer's answer, `Result<T, String>`, with a remote error as unreachable.
    fn decode<T: DeserializeOwned>(
        &self,
        msg: tonic::Response<RaftMessage>,
    ) -> Result<T, RPCError<TypeConfig>> {
        let answer = from_message(msg.get_ref()).map_err(|e| payload_error(self.target, &e))?;
        remote(answer)
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
        let (message, last_sent) = encode_append_entries(rpc, MAX_PEER_PAYLOAD).map_err(|e| {
            // An entry over the limit can never be sent: back off rather than spin.
            RPCError::Unreachable(Unreachable::from_string(format!(
                "node {}: {e}",
                self.target
            )))
        })?;
        let resp = self
            .client()?
            .append_entries(with_deadline(message, ttl))
            .await
            .map_err(status_error)?;
        match (self.decode(resp)?, last_sent) {
            // Only a prefix was sent: the peer holds the log up to its last entry.
            (AppendEntriesResponse::Success, Some(last)) => {
                Ok(AppendEntriesResponse::PartialSuccess(Some(last)))
            }
            (answer, _) => Ok(answer),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        let req = with_deadline(self.encode(&rpc)?, option.soft_ttl());
        let resp = self.client()?.vote(req).await.map_err(status_error)?;
        self.decode(resp)
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + openraft::OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let len = snapshot.snapshot.len();
        if len > MAX_SNAPSHOT {
            // The peer would refuse it: back off instead of streaming it again and again.
            return Err(StreamingError::Unreachable(Unreachable::from_string(
                format!(
                    "node {}: snapshot of {len} bytes is over the {MAX_SNAPSHOT}-byte cap",
                    self.target
                ),
            )));
        }
        let chunks = snapshot_chunks(vote, snapshot.meta, snapshot.snapshot)
            .map_err(|e| payload_error(self.target, &e))?;
        let req = with_deadline(chunks, snapshot_deadline(option.hard_ttl(), len));
        let mut client = self.client()?;
        let call = client.install_snapshot_chunks(req);
        tokio::select! {
            closed = cancel => Err(StreamingError::Closed(closed)),
            resp = call => {
                let resp = resp.map_err(status_error)?;
                Ok(self.decode(resp)?)
            }
        }
    }
}
