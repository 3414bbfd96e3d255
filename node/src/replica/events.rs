//! Node-local events for the audit log: key loaded or unloaded, KMS failures, access denials.
//! They happen outside the state machine, so a node proposes them as [`Command::Event`]
//! entries; the state machine turns them into audit records in commit order.
//!
//! Owns: a bounded queue per node and the task that delivers it: the leader proposes the
//! events itself; a follower forwards them to the leader over the peer port
//! (`Raft.ForwardEvents`), where the leader attributes them to the authenticated sender.
//! Delivery is best-effort: retried with backoff for about half a minute while there is no leader,
//! then dropped with a warning; a full queue drops new events with a warning, and so does the
//! node's stop signal (the task ends and is joined). Recording never blocks or fails the
//! caller (the sign path, the key loader).
//! Must not: decide anything, be used for facts that must be replicated (those are commands
//! of their own), or outlive the node.

use super::{propose, Command, NodeId, PeerNetwork, Raft};
use crate::audit::NodeEvent;
use crate::pb;
use openraft::async_runtime::WatchReceiver;
use std::future::Future;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Events waiting for delivery, at most.
const QUEUE: usize = 1024;
/// Events in one entry, at most.
const MAX_BATCH: usize = 64;
/// Delivery attempts before a batch is dropped.
const ATTEMPTS: u32 = 20;

/// Where a node records its audit events. Cheap to clone.
#[derive(Clone, Debug)]
pub struct EventSink {
    node_id: NodeId,
    tx: Option<mpsc::Sender<NodeEvent>>,
}

impl EventSink {
    /// Start delivering this node's events through `raft` (forwarding over `network` when a
    /// follower) until `stop` resolves; events still queued then are dropped, with a count in
    /// the log. The node owns the returned task and joins it on shutdown.
    pub fn start(
        node_id: NodeId,
        raft: Raft,
        network: PeerNetwork,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> (EventSink, JoinHandle<()>) {
        let (tx, mut rx) = mpsc::channel::<NodeEvent>(QUEUE);
        let task = tokio::spawn(async move {
            tokio::select! {
                () = stop => {}
                () = deliver_queue(&mut rx, &raft, &network, node_id) => return,
            }
            rx.close();
            let mut left = 0usize;
            while rx.try_recv().is_ok() {
                left += 1;
            }
            if left > 0 {
                tracing::info!(count = left, "audit events not delivered: node stopping");
            }
        });
        let sink = EventSink {
            node_id,
            tx: Some(tx),
        };
        (sink, task)
    }

    /// A sink that records nothing (tools and tests without a cluster).
    pub fn disabled(node_id: NodeId) -> EventSink {
        EventSink { node_id, tx: None }
    }

    /// Queue `event` for the audit log; never blocks.
    pub fn record(&self, event: NodeEvent) {
        let Some(tx) = &self.tx else { return };
        if let Err(e) = tx.try_send(event.with_node(self.node_id)) {
            tracing::warn!(error = %e, "audit event dropped: queue full or stopped");
        }
    }

    /// A registry key was unsealed and loaded here.
    pub fn key_loaded(&self, key_id: &str) {
        self.record(NodeEvent::KeyLoaded {
            node: self.node_id,
            key_id: key_id.to_owned(),
        });
    }

    /// A key was dropped from memory here.
    pub fn key_unloaded(&self, key_id: &str, reason: &str) {
        self.record(NodeEvent::KeyUnloaded {
            node: self.node_id,
            key_id: key_id.to_owned(),
            reason: reason.to_owned(),
        });
    }

    /// Unsealing a key failed here.
    pub fn kms_failure(&self, key_id: &str, detail: &str) {
        self.record(NodeEvent::KmsFailure {
            node: self.node_id,
            key_id: key_id.to_owned(),
            detail: detail.to_owned(),
        });
    }

    /// Access control refused `client` a sign request for `key_id` / `profile`, for `reason`.
    /// For the sign path: call it where the refusal is decided; it never blocks.
    pub fn access_denied(&self, client: &str, key_id: &str, profile: &str, reason: &str) {
        self.record(NodeEvent::AccessDenied {
            node: self.node_id,
            client: client.to_owned(),
            key_id: key_id.to_owned(),
            profile: profile.to_owned(),
            reason: reason.to_owned(),
        });
    }
}

/// Deliver queued events in batches until every sender is gone.
async fn deliver_queue(
    rx: &mut mpsc::Receiver<NodeEvent>,
    raft: &Raft,
    network: &PeerNetwork,
    node_id: NodeId,
) {
    while let Some(first) = rx.recv().await {
        let mut events = vec![first];
        while events.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(e) => events.push(e),
                Err(_) => break,
            }
        }
        deliver(raft, network, node_id, events).await;
    }
}

async fn deliver(raft: &Raft, network: &PeerNetwork, node_id: NodeId, events: Vec<NodeEvent>) {
    let mut backoff = Duration::from_millis(200);
    for _ in 0..ATTEMPTS {
        match try_deliver(raft, network, node_id, &events).await {
            Ok(()) => return,
            Err(e) => tracing::debug!(error = %e, "audit events not delivered yet; retrying"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
    tracing::warn!(
        count = events.len(),
        "audit events dropped: no leader accepted them"
    );
}

async fn try_deliver(
    raft: &Raft,
    network: &PeerNetwork,
    node_id: NodeId,
    events: &[NodeEvent],
) -> Result<(), String> {
    let metrics = raft.metrics().borrow_watched().clone();
    let leader = metrics.current_leader.ok_or("no leader")?;
    if leader == node_id {
        return propose(raft, Command::Event(events.to_vec()))
            .await
            .map(|_| ())
            .map_err(|e| e.to_string());
    }
    let addr = metrics
        .membership_config
        .membership()
        .get_node(&leader)
        .map(|n| n.addr.clone())
        .ok_or("leader has no known address")?;
    let channel = network.channel(leader, &addr).map_err(|e| e.to_string())?;
    let payload = crate::format::encode(events).map_err(|e| e.to_string())?;
    let mut request = tonic::Request::new(pb::RaftMessage { payload });
    request.set_timeout(Duration::from_secs(5));
    pb::raft_client::RaftClient::new(channel)
        .forward_events(request)
        .await
        .map(|_| ())
        .map_err(|s| format!("leader {leader}: {}", s.message()))
}
