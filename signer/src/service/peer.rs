//! The `signer.v1.Raft` peer service: openraft RPCs from other nodes, and sign requests that a
//! follower forwards to this node as leader.
//!
//! Owns: authenticating peers (the certificate must name `node-<id>` for a current member, and
//! Raft messages must speak for that same node id) and decoding openraft's JSON payloads.
//! Must not: accept anything from a non-member or decide anything itself.

use super::signing::SignPath;
use crate::pb;
use crate::replica::{NodeId, Raft, SnapshotData, SnapshotMeta, TypeConfig, Vote};
use openraft::async_runtime::WatchReceiver;
use openraft::raft::{AppendEntriesRequest, VoteRequest};
use openraft::Snapshot;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::{Request, Response, Status};

/// The peer service.
pub struct PeerService {
    raft: Raft,
    sign_path: SignPath,
}

impl PeerService {
    /// A peer service over this node's Raft handle.
    pub fn new(raft: Raft, sign_path: SignPath) -> Self {
        PeerService { raft, sign_path }
    }

    /// The node id named by the caller's certificate; it must be a member (voter or learner)
    /// of the cluster, or the very first configured peers before membership is known.
    fn peer_node<T>(&self, req: &Request<T>) -> Result<NodeId, Status> {
        let identity = crate::tls::peer_identity(req.peer_certs())
            .ok_or_else(|| Status::unauthenticated("peer certificate required"))?;
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

fn decode<T: DeserializeOwned>(msg: &pb::RaftMessage) -> Result<T, Status> {
    serde_json::from_slice(&msg.payload)
        .map_err(|e| Status::invalid_argument(format!("payload: {e}")))
}

fn encode<T: Serialize, E: std::fmt::Display>(
    r: Result<T, E>,
) -> Result<Response<pb::RaftMessage>, Status> {
    let r: Result<T, String> = r.map_err(|e| e.to_string());
    serde_json::to_vec(&r)
        .map(|payload| Response::new(pb::RaftMessage { payload }))
        .map_err(|e| Status::internal(e.to_string()))
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

    async fn install_snapshot(
        &self,
        request: Request<pb::RaftMessage>,
    ) -> Result<Response<pb::RaftMessage>, Status> {
        let peer = self.peer_node(&request)?;
        let (vote, meta, data): (Vote, SnapshotMeta, SnapshotData) = decode(request.get_ref())?;
        check_speaker(peer, &vote)?;
        let snapshot = Snapshot {
            meta,
            snapshot: data,
        };
        encode(self.raft.install_full_snapshot(vote, snapshot).await)
    }

    async fn forward_sign(
        &self,
        request: Request<pb::ForwardedSign>,
    ) -> Result<Response<pb::SignResponse>, Status> {
        self.peer_node(&request)?;
        let fwd = request.into_inner();
        let req = fwd
            .request
            .ok_or_else(|| Status::invalid_argument("request: missing"))?;
        if fwd.client_identity.is_empty() {
            return Err(Status::invalid_argument("client_identity: missing"));
        }
        let resp = self.sign_path.sign(fwd.client_identity, req, true).await?;
        Ok(Response::new(resp))
    }

    async fn forward_events(
        &self,
        request: Request<pb::RaftMessage>,
    ) -> Result<Response<pb::RaftMessage>, Status> {
        let peer = self.peer_node(&request)?;
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
