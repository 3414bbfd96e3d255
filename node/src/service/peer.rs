//! The `signer.v1.Raft` peer service: openraft RPCs from other nodes, and sign requests that a
//! follower forwards to this node as leader.
//!
//! Owns: authenticating peers (the certificate must name `node-<id>` for a current member, must
//! not be revoked by the admins ([`super::authn`]), and Raft messages must speak for that same
//! node id), decoding their binary payloads
//! ([`crate::replica::network::from_message`]) and receiving snapshot streams
//! ([`SnapshotStream`], [`receive_snapshot`]).
//! Must not: accept anything from a non-member or decide anything itself.
//!
//! To ensure correctness:
//! - a payload of another format version is refused (`invalid_argument`) naming both versions;
//! - a snapshot stream's header vote must speak for the authenticated peer, checked on the
//!   first chunk, before any file is created or byte stored;
//! - a snapshot stream is accepted only header first, at most [`SNAPSHOT_CHUNK`] bytes per
//!   chunk, exactly the length the header declares and at most [`MAX_SNAPSHOT`] in total;
//!   anything else is refused (`invalid_argument`);
//! - forwarded events are refused over 4 MiB, so the log entry they become always fits in a
//!   peer message.

use super::authn::Authenticator;
use super::signing::SignPath;
use crate::format::FormatError;
use crate::pb;
use crate::replica::network::{
    from_message, to_message, SnapshotHeader, MAX_SNAPSHOT, SNAPSHOT_CHUNK,
};
use crate::replica::snapshot_bytes::IncomingBody;
use crate::replica::{NodeId, Raft, SnapshotData, SnapshotMeta, TypeConfig, Vote};
use futures::{Stream, StreamExt};
use openraft::async_runtime::WatchReceiver;
use openraft::raft::{AppendEntriesRequest, VoteRequest};
use openraft::Snapshot;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::{Path, PathBuf};
use tonic::{Request, Response, Status};

/// The peer service.
pub struct PeerService {
    raft: Raft,
    authn: Authenticator,
    sign_path: SignPath,
    snapshot_dir: PathBuf,
}

impl PeerService {
    /// A peer service over this node's Raft handle, receiving snapshots into files in
    /// `snapshot_dir` (the node's data directory).
    pub fn new(raft: Raft, sign_path: SignPath, snapshot_dir: PathBuf) -> Self {
        PeerService {
            raft,
            authn: sign_path.authenticator(),
            sign_path,
            snapshot_dir,
        }
    }

    /// The node id named by the caller's certificate, which the admins did not revoke; it must
    /// be a member (voter or learner) of the cluster, or the very first configured peers
    /// before membership is known.
    fn peer_node<T>(&self, req: &Request<T>) -> Result<NodeId, Status> {
        let identity = self
            .authn
            .identify_request(req)
            .map_err(|e| super::convert::authn_status(e, "peer certificate required"))?;
        let id = crate::tls::node_id_from_identity(&identity).ok_or_else(|| {
            Status::permission_denied(format!("{identity:?} is not a node identity"))
        })?;
        // Raft's own view of the membership (from the log, also before it is applied).
        let metrics = self.raft.metrics().borrow_watched().clone();
        let membership = metrics.membership_config.membership();
        let known = membership.get_node(&id).is_some();
        // Before the first membership entry exists, any node certificate of this cluster's CA
        // may take part in the initial election.
        let empty = membership.nodes().next().is_none();
        if known || empty {
            Ok(id)
        } else {
            Err(Status::permission_denied(format!(
                "node {id} is not a member of this cluster"
            )))
        }
    }
}

/// Largest forwarded-events payload: the events become one log entry, which must fit in an
/// append-entries message with room to spare.
const MAX_EVENTS_PAYLOAD: usize = 4 * 1024 * 1024;

fn decode<T: DeserializeOwned>(msg: &pb::RaftMessage) -> Result<T, Status> {
    from_message(msg).map_err(|e| Status::invalid_argument(format!("payload: {e}")))
}

/// The answer to a Raft RPC: `Result<T, String>` in the binary format.
fn encode<T: Serialize, E: std::fmt::Display>(
    r: Result<T, E>,
) -> Result<Response<pb::RaftMessage>, Status> {
    let r: Result<T, String> = r.map_err(|e| e.to_string());
    to_message(&r)
        .map(Response::new)
        .map_err(|e| Status::internal(format!("payload: {e}")))
}

/// Why a snapshot stream is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotStreamError {
    /// The stream ended before any header arrived.
    #[error("snapshot stream: ended without a header")]
    NoHeader,
    /// The first chunk has no header.
    #[error(
        "snapshot stream: chunk 0 has no header: the header comes first, before any snapshot bytes"
    )]
    DataBeforeHeader,
    /// A chunk after the first carries a header.
    #[error("snapshot stream: chunk {chunk} carries a header: only chunk 0 may")]
    HeaderNotFirst {
        /// The chunk's index, from 0.
        chunk: u64,
    },
    /// The header is not a [`SnapshotHeader`] of this format version.
    #[error("snapshot stream: header: {0}")]
    Header(FormatError),
    /// A chunk carries more than [`SNAPSHOT_CHUNK`] bytes.
    #[error("snapshot stream: chunk {chunk} carries {len} bytes, more than the {max} a chunk may")]
    ChunkTooLarge {
        /// The chunk's index, from 0.
        chunk: u64,
        /// Its data length.
        len: usize,
        /// [`SNAPSHOT_CHUNK`].
        max: usize,
    },
    /// The header declares more bytes than the cap.
    #[error("snapshot stream: the snapshot has {len} bytes, more than the cap of {cap} bytes")]
    TooLarge {
        /// The declared length.
        len: u64,
        /// The cap.
        cap: u64,
    },
    /// The chunks carry more bytes than the header declared.
    #[error("snapshot stream: chunk {chunk} goes past the {declared} bytes the header declared")]
    Overrun {
        /// The chunk's index, from 0.
        chunk: u64,
        /// The declared length.
        declared: u64,
    },
    /// The stream ended before the declared length arrived.
    #[error("snapshot stream: ended after {received} of the {declared} bytes the header declared")]
    Truncated {
        /// Bytes received.
        received: u64,
        /// The declared length.
        declared: u64,
    },
}

/// Checks a snapshot stream as its chunks arrive (the receiver stores their data, see
/// [`receive_snapshot`]): feed it the chunks in order, then [`finish`] it. Pure: no IO. After an
/// error, drop it (the stream is refused).
///
/// [`finish`]: SnapshotStream::finish
#[derive(Debug)]
pub struct SnapshotStream {
    cap: u64,
    chunks: u64,
    header: Option<SnapshotHeader>,
    received: u64,
}

impl SnapshotStream {
    /// A stream refused past `cap` bytes.
    pub fn new(cap: u64) -> Self {
        SnapshotStream {
            cap,
            chunks: 0,
            header: None,
            received: 0,
        }
    }

    /// Check the next chunk: its header (only the first chunk has one) and its data, which
    /// the caller appends to the body once this returns `Ok`.
    pub fn feed(&mut self, header: Option<&[u8]>, data: &[u8]) -> Result<(), SnapshotStreamError> {
        let chunk = self.chunks;
        self.chunks = self.chunks.saturating_add(1);
        if data.len() > SNAPSHOT_CHUNK {
            return Err(SnapshotStreamError::ChunkTooLarge {
                chunk,
                len: data.len(),
                max: SNAPSHOT_CHUNK,
            });
        }
        let declared = match (header, &self.header) {
            (None, None) => return Err(SnapshotStreamError::DataBeforeHeader),
            (Some(_), Some(_)) => return Err(SnapshotStreamError::HeaderNotFirst { chunk }),
            (None, Some(known)) => known.len,
            (Some(bytes), None) => {
                let header: SnapshotHeader =
                    crate::format::decode(bytes).map_err(SnapshotStreamError::Header)?;
                if header.len > self.cap {
                    return Err(SnapshotStreamError::TooLarge {
                        len: header.len,
                        cap: self.cap,
                    });
                }
                let declared = header.len;
                self.header = Some(header);
                declared
            }
        };
        let received = self.received.saturating_add(data.len() as u64);
        if received > declared {
            return Err(SnapshotStreamError::Overrun { chunk, declared });
        }
        self.received = received;
        Ok(())
    }

    /// The vote of the header, once the first chunk was fed.
    pub fn vote(&self) -> Option<&Vote> {
        self.header.as_ref().map(|h| &h.vote)
    }

    /// The stream ended: the sender's vote and the snapshot's meta, if every declared byte
    /// arrived.
    pub fn finish(self) -> Result<(Vote, SnapshotMeta), SnapshotStreamError> {
        let header = self.header.ok_or(SnapshotStreamError::NoHeader)?;
        if self.received != header.len {
            return Err(SnapshotStreamError::Truncated {
                received: self.received,
                declared: header.len,
            });
        }
        Ok((header.vote, header.meta))
    }
}

fn refused(e: SnapshotStreamError) -> Status {
    Status::invalid_argument(e.to_string())
}

/// Receive a snapshot stream from the authenticated node `peer`: the sender's vote (which must
/// speak for `peer`), the snapshot's meta and its body, at most `cap` bytes, written to an
/// unnamed file in `dir` (the node's data directory) as the chunks arrive
/// ([`IncomingBody`]), so a body of hundreds of MB is never in memory. Errors of the stream
/// itself (the sender went away) are returned as they are; a file that cannot be written
/// (a full disk) is `resource_exhausted` or `internal`, naming the file's error.
pub async fn receive_snapshot<S>(
    peer: NodeId,
    mut chunks: S,
    cap: u64,
    dir: &Path,
) -> Result<(Vote, SnapshotMeta, SnapshotData), Status>
where
    S: Stream<Item = Result<pb::SnapshotChunk, Status>> + Unpin,
{
    let mut stream = SnapshotStream::new(cap);
    let mut body = None;
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk?;
        stream
            .feed(chunk.header.as_deref(), &chunk.data)
            .map_err(refused)?;
        let body = match &mut body {
            Some(body) => body,
            None => {
                // A fed first chunk always has the header: no file before it spoke for `peer`.
                if let Some(vote) = stream.vote() {
                    check_speaker(peer, vote)?;
                }
                body.insert(IncomingBody::create_in(dir).map_err(not_stored)?)
            }
        };
        if !chunk.data.is_empty() {
            body.append(chunk.data).await.map_err(not_stored)?;
        }
    }
    let (vote, meta) = stream.finish().map_err(refused)?;
    // `finish` succeeds only after a header, which created the body.
    let body = body.ok_or_else(|| Status::internal("snapshot stream: no body after a header"))?;
    Ok((vote, meta, body.finish()))
}

fn not_stored(e: std::io::Error) -> Status {
    let message = format!("snapshot stream: storing the received body: {e}");
    match e.kind() {
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => {
            Status::resource_exhausted(message)
        }
        _ => Status::internal(message),
    }
}

fn check_speaker(peer: NodeId, vote: &Vote) -> Result<(), Status> {
    let claimed = vote.leader_id().node_id;
    if claimed == peer {
        Ok(())
    } else {
        Err(Status::permission_denied(format!(
            "node {peer} sent a message on behalf of node {claimed}"
        )))
    }
}

#[tonic::async_trait]
impl pb::raft_server::Raft for PeerService {
    async fn append_entries(
        &self,
        request: Request<pb::RaftMessage>,
    ) -> Result<Response<pb::RaftMessage>, Status> {
        let peer = self.peer_node(&request)?;
        let rpc: AppendEntriesRequest<TypeConfig> = decode(request.get_ref())?;
        check_speaker(peer, &rpc.vote)?;
        encode(self.raft.append_entries(rpc).await)
    }

    async fn vote(
        &self,
        request: Request<pb::RaftMessage>,
    ) -> Result<Response<pb::RaftMessage>, Status> {
        let peer = self.peer_node(&request)?;
        let rpc: VoteRequest<TypeConfig> = decode(request.get_ref())?;
        check_speaker(peer, &rpc.vote)?;
        encode(self.raft.vote(rpc).await)
    }

    async fn install_snapshot_chunks(
        &self,
        request: Request<tonic::Streaming<pb::SnapshotChunk>>,
    ) -> Result<Response<pb::RaftMessage>, Status> {
        let peer = self.peer_node(&request)?;
        let (vote, meta, snapshot) =
            receive_snapshot(peer, request.into_inner(), MAX_SNAPSHOT, &self.snapshot_dir).await?;
        let snapshot = Snapshot { meta, snapshot };
        encode(self.raft.install_full_snapshot(vote, snapshot).await)
    }

    async fn forward_typed_sign(
        &self,
        request: Request<pb::RaftMessage>,
    ) -> Result<Response<pb::RaftMessage>, Status> {
        use super::signing::{ForwardedSign, SignError, Signed};
        // The follower must be a member; the client identity it names is checked against the
        // grants here again, and the intent is built here from the typed request.
        self.peer_node(&request)?;
        let fwd: ForwardedSign = decode(request.get_ref())?;
        let answer: Result<Signed, SignError> = if fwd.client.is_empty() {
            Err(SignError::Invalid {
                field: "client_identity".to_owned(),
                reason: "missing".to_owned(),
            })
        } else {
            self.sign_path.sign_forwarded(fwd.client, fwd.request).await
        };
        // The answer, signed or not, is data: `Result<Signed, SignError>` in the binary format.
        to_message(&answer)
            .map(Response::new)
            .map_err(|e| Status::internal(format!("payload: {e}")))
    }

    async fn forward_events(
        &self,
        request: Request<pb::RaftMessage>,
    ) -> Result<Response<pb::RaftMessage>, Status> {
        let peer = self.peer_node(&request)?;
        if request.get_ref().payload.len() > MAX_EVENTS_PAYLOAD {
            return Err(Status::invalid_argument(format!(
                "payload: at most {MAX_EVENTS_PAYLOAD} bytes of events"
            )));
        }
        let events: Vec<crate::audit::NodeEvent> = decode(request.get_ref())?;
        if events.len() > 1024 {
            return Err(Status::invalid_argument("payload: at most 1024 events"));
        }
        // Attributed to the node that authenticated, whatever the payload says.
        let events = events.into_iter().map(|e| e.with_node(peer)).collect();
        crate::replica::propose(&self.raft, crate::replica::Command::Event(events))
            .await
            .map_err(|e| super::convert::propose_failure(&e))?;
        Ok(Response::new(pb::RaftMessage {
            payload: Vec::new(),
        }))
    }
}
