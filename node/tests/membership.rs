//! Membership changes as approved admin actions, on real clusters (`signer node` processes,
//! mutual TLS) while clients sign: a node joins (learner, caught up, voter), a voter leaves, a
//! dead voter is replaced, and the refusals: fewer than 3 voters, a removal that would leave
//! too few caught-up voters to commit, two changes at once, and a removed node's id rejoining.
//! Throughout, two clients sign conflicting espresso votes for every view through different
//! nodes; the independent oracle (`oracle/`) checks every signature they received and finds
//! no conflicting pair.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod adversarial;
mod oracle;
mod support;

use adversarial::request;
use oracle::requests::Msg;
use oracle::Oracle;
use signer_node::audit::{self, AuditEvent};
use signer_node::pb;
use signer_node::pb::propose_request::Request;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{refusal_code, sign_retrying, Cluster, ESPRESSO_KEY, ETH2_KEY};
use tonic::Code;

/// Clients signing through nodes 1 and 2 until stopped: for each view, leaf 1 through one
/// node and (conflicting) leaf 2 through the other.
struct Load {
    stop: Arc<AtomicBool>,
    signed: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<(Oracle, Tally)>,
}

/// What the load's clients received.
#[derive(Debug, Default)]
struct Tally {
    signed: usize,
    equivocations: usize,
    /// Any other answer (transport failures while a leader changes), by code.
    other: Vec<String>,
}

impl Load {
    async fn start(cluster: &Cluster) -> Load {
        let keys = adversarial::public_keys(cluster).await;
        let mut oracle = keys.oracle();
        let mut clients = [
            cluster.client(1, "seq-1").await,
            cluster.client(2, "seq-2").await,
        ];
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let signed = Arc::new(AtomicUsize::new(0));
        let count = signed.clone();
        let task = tokio::spawn(async move {
            let mut tally = Tally::default();
            let mut view = 1_000u64;
            while !stopped.load(Ordering::SeqCst) {
                view += 1;
                for (n, leaf) in [(0usize, 1u8), (1, 2)] {
                    let which = (n + view as usize) % 2;
                    let asked = request(
                        ESPRESSO_KEY,
                        &format!("v{view}-{leaf}"),
                        &Msg::QuorumVote { view, leaf },
                    );
                    asked.announce(&mut oracle);
                    match sign_retrying(&mut clients[which], asked.request.clone()).await {
                        Ok(r) => {
                            oracle.received(
                                &r.signature,
                                &r.signed_message,
                                asked.digest,
                                &asked.meaning,
                            );
                            tally.signed += 1;
                            count.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(s) if refusal_code(&s).as_deref() == Some("equivocation") => {
                            tally.equivocations += 1
                        }
                        Err(s) => tally.other.push(format!("{:?}", s.code())),
                    }
                }
            }
            (oracle, tally)
        });
        Load { stop, signed, task }
    }

    /// Wait until the clients received `n` more signatures: signing goes on.
    async fn goes_on(&self, n: usize) {
        let from = self.signed.load(Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.signed.load(Ordering::SeqCst) < from + n {
            assert!(Instant::now() < deadline, "signing stopped");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stop; the oracle must have seen signatures and no conflicting pair.
    async fn finish(self) -> Tally {
        self.stop.store(true, Ordering::SeqCst);
        let (oracle, tally) = self.task.await.unwrap();
        let conflicts = oracle.conflicts();
        assert!(conflicts.is_empty(), "{conflicts:#?}");
        assert_eq!(oracle.signatures(), tally.signed);
        // Every view's second vote was refused as an equivocation, unless one of the two got
        // no answer (a leader change): then the other may be the view's one signature.
        let unanswered = tally.other.len();
        assert!(
            tally.equivocations + unanswered >= tally.signed - unanswered.min(tally.signed),
            "{tally:?}"
        );
        tally
    }
}

fn add(cluster: &Cluster, id: u64) -> Request {
    let node = cluster.node(id);
    Request::AddNode(pb::NodeMember {
        node_id: id,
        client_addr: node.client_addr.to_string(),
        peer_addr: node.peer_addr.to_string(),
    })
}

/// Propose `request` as admin-1 and approve it (threshold 1): the change starts; wait until
/// the leader reports it decided, and return the decided challenge.
async fn approved(cluster: &Cluster, request: Request) -> pb::Challenge {
    let challenge = cluster.propose(request).await.unwrap();
    let approval = cluster.approve_as("admin-1", &challenge).await.unwrap();
    assert_eq!(approval.status, "executing", "{approval:?}");
    assert_eq!(
        approval.detail,
        format!(
            "membership change approved: the leader carries it out ({})",
            challenge.description
        )
    );
    decided(cluster, &challenge.id).await
}

/// The challenge `id` once executed or failed (as the leader lists it).
async fn decided(cluster: &Cluster, id: &[u8]) -> pb::Challenge {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let listed = cluster
            .on_leader(|mut a| async move {
                a.list_challenges(pb::ListChallengesRequest { all: true })
                    .await
            })
            .await
            .unwrap();
        let c = listed.challenges.into_iter().find(|c| c.id == id).unwrap();
        if c.status == "executed" || c.status == "failed" {
            return c;
        }
        assert_eq!(c.status, "executing");
        assert!(Instant::now() < deadline, "still executing: {c:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Wait until every running node reports exactly `voters`.
async fn voters(cluster: &Cluster, voters: &[u64]) {
    cluster
        .wait_all(&format!("voters {voters:?}"), |s| s.voters == voters)
        .await;
}

/// A proposal refused with FAILED_PRECONDITION and exactly `message`.
async fn refused(cluster: &Cluster, request: Request, message: &str) {
    let status = cluster.propose(request).await.unwrap_err();
    assert_eq!(
        (status.code(), status.message()),
        (Code::FailedPrecondition, message)
    );
}

/// The leader's replication lag for `peer` (entries), from its metrics.
async fn lag_on_leader(cluster: &Cluster, peer: u64) -> Option<u64> {
    let leader = cluster.wait_leader(Duration::from_secs(10)).await;
    let metrics = cluster.http_get(leader, "/metrics").await;
    let prefix = format!("signer_raft_replication_lag_entries{{peer=\"{peer}\"}} ");
    metrics
        .body
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_joins_and_leaves_by_approved_changes_while_clients_sign() {
    let mut cluster = Cluster::start(3).await;
    let load = Load::start(&cluster).await;

    // A new node, started outside the cluster, joins: learner, caught up, then voter.
    cluster.add_node(4);
    let node4 = format!(
        "client {}, peer {}",
        cluster.node(4).client_addr,
        cluster.node(4).peer_addr
    );
    let joined = approved(&cluster, add(&cluster, 4)).await;
    assert_eq!(
        (joined.status.as_str(), joined.detail.as_str()),
        (
            "executed",
            format!("node-4 joined as a voter ({node4})").as_str()
        )
    );
    assert_eq!(
        joined.description,
        format!("add node-4 ({node4}): a learner until caught up, then a voter")
    );
    voters(&cluster, &[1, 2, 3, 4]).await;
    load.goes_on(3).await;
    // It signs (as a follower it forwards to the leader), and holds the replicated state.
    let asked = request(
        ETH2_KEY,
        "via-4",
        &Msg::Attestation {
            source: 1,
            target: 2,
            root: 1,
        },
    );
    let mut via4 = cluster.client(4, "seq-3").await;
    let signed = sign_retrying(&mut via4, asked.request.clone())
        .await
        .unwrap();
    assert_eq!(signed.signed_message, asked.digest.to_vec());

    // Two changes at once: a removal pending approval blocks another change.
    let removal = cluster.propose(Request::RemoveNode(4)).await.unwrap();
    refused(
        &cluster,
        Request::RemoveNode(3),
        &format!(
            "membership change {} is still pending approval; one membership change at a time",
            hex::encode(&removal.id)
        ),
    )
    .await;
    cluster.approve_as("admin-1", &removal).await.unwrap();
    let removed = decided(&cluster, &removal.id).await;
    assert_eq!(
        (removed.status.as_str(), removed.detail.as_str()),
        ("executed", "node-4 removed from the cluster")
    );
    cluster.kill(4);
    voters(&cluster, &[1, 2, 3]).await;
    load.goes_on(3).await;

    // A removed node's id never rejoins.
    refused(
        &cluster,
        add(&cluster, 4),
        "node-4 was removed from this cluster and cannot rejoin with that identity; issue a \
         certificate for a new node id",
    )
    .await;
    // A cluster keeps three voters.
    refused(
        &cluster,
        Request::RemoveNode(3),
        "removing node-3 would leave 2 voter(s); a cluster keeps at least 3 (add a node first, \
         or use `node replace`)",
    )
    .await;
    refused(
        &cluster,
        Request::RemoveNode(9),
        "node-9 is not a voter of this cluster",
    )
    .await;
    refused(
        &cluster,
        add(&cluster, 2),
        "node-2 is already a voter of this cluster",
    )
    .await;

    // The outcome is in the audit log, decided by the leader, with the approvers.
    let leader = cluster.wait_leader(Duration::from_secs(10)).await;
    let entries = cluster.audit_entries(leader).await;
    let done: Vec<(String, String)> = entries
        .iter()
        .filter_map(|e| match audit::decode(&e.record).unwrap().event {
            AuditEvent::Admin { action, result, .. }
                if action.starts_with("membership change ") =>
            {
                Some((action, result))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        done,
        vec![
            (
                format!(
                    "membership change {}: {}",
                    hex::encode(&joined.id),
                    joined.description
                ),
                format!("executed: node-4 joined as a voter ({node4})")
            ),
            (
                format!(
                    "membership change {}: {}",
                    hex::encode(&removal.id),
                    removal.description
                ),
                "executed: node-4 removed from the cluster".to_owned()
            ),
        ]
    );
    load.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_node_is_replaced_and_a_removal_that_strands_the_cluster_is_refused() {
    let mut cluster = Cluster::start(3).await;
    let load = Load::start(&cluster).await;
    for id in [4, 5] {
        cluster.add_node(id);
        let c = approved(&cluster, add(&cluster, id)).await;
        assert_eq!(c.status, "executed", "{c:?}");
    }
    voters(&cluster, &[1, 2, 3, 4, 5]).await;
    load.goes_on(3).await;

    // Two of five die; the leader sees them fall behind.
    cluster.kill(4);
    cluster.kill(5);
    let deadline = Instant::now() + Duration::from_secs(60);
    for peer in [4, 5] {
        while lag_on_leader(&cluster, peer)
            .await
            .is_none_or(|lag| lag <= signer_node::admin::membership::MAX_LAG)
        {
            assert!(Instant::now() < deadline, "node-{peer} never fell behind");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // Removing a live voter would leave 2 of 4 caught up: the new configuration could not
    // commit.
    refused(
        &cluster,
        Request::RemoveNode(3),
        "removing node-3 would leave 2 of the 4 remaining voter(s) caught up, fewer than a \
         majority (3): the cluster could not commit; bring the other nodes back first",
    )
    .await;

    // The dead node-5 is replaced by node-6 in one approved change.
    cluster.add_node(6);
    let node6 = format!(
        "client {}, peer {}",
        cluster.node(6).client_addr,
        cluster.node(6).peer_addr
    );
    let replaced = approved(
        &cluster,
        Request::ReplaceNode(pb::ReplaceNodeAction {
            old_node_id: 5,
            with: Some(pb::NodeMember {
                node_id: 6,
                client_addr: cluster.node(6).client_addr.to_string(),
                peer_addr: cluster.node(6).peer_addr.to_string(),
            }),
        }),
    )
    .await;
    assert_eq!(
        (replaced.status.as_str(), replaced.detail.as_str()),
        (
            "executed",
            format!("node-6 replaced node-5 as a voter ({node6})").as_str()
        )
    );
    voters(&cluster, &[1, 2, 3, 4, 6]).await;
    load.goes_on(3).await;
    // The other dead node is removed; node-5 cannot come back.
    let removed = approved(&cluster, Request::RemoveNode(4)).await;
    assert_eq!(removed.detail, "node-4 removed from the cluster");
    voters(&cluster, &[1, 2, 3, 6]).await;
    load.goes_on(3).await;
    refused(
        &cluster,
        Request::AddNode(pb::NodeMember {
            node_id: 5,
            client_addr: "127.0.0.1:1".into(),
            peer_addr: "127.0.0.1:2".into(),
        }),
        "node-5 was removed from this cluster and cannot rejoin with that identity; issue a \
         certificate for a new node id",
    )
    .await;
    load.finish().await;
}

/// The leader that started a change dies before the new node caught up: the next leader
/// finishes the change from Raft's membership, and reports it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_change_the_leader_did_not_finish_is_finished_by_the_next_leader() {
    let mut cluster = Cluster::start(3).await;
    // The new node is prepared but down: the change waits for it to catch up.
    cluster.add_node(4);
    cluster.kill(4);
    let challenge = cluster.propose(add(&cluster, 4)).await.unwrap();
    let approval = cluster.approve_as("admin-1", &challenge).await.unwrap();
    assert_eq!(approval.status, "executing");
    let leader = cluster.wait_leader(Duration::from_secs(10)).await;
    // The learner is in the membership (it may not be reachable yet).
    cluster
        .wait_all("node-4 a learner", |s| s.voters == [1, 2, 3])
        .await;
    cluster.kill(leader);
    cluster.spawn(4);
    let done = decided(&cluster, &challenge.id).await;
    assert_eq!(
        (done.status.as_str(), done.detail.as_str()),
        (
            "executed",
            format!(
                "node-4 joined as a voter (client {}, peer {})",
                cluster.node(4).client_addr,
                cluster.node(4).peer_addr
            )
            .as_str()
        )
    );
    voters(&cluster, &[1, 2, 3, 4]).await;
    // Not the killed leader: the one after it carried the change out.
    let finished = "membership change finished";
    assert!(!cluster.log_of(leader).contains(finished));
    let after = cluster.wait_leader(Duration::from_secs(10)).await;
    assert!(
        cluster.log_of(after).contains(finished),
        "{}",
        cluster.log_of(after)
    );
    // The decision is the same on every running node.
    for id in cluster.running() {
        let mut admin = cluster.admin(id).await;
        let listed = admin
            .list_challenges(pb::ListChallengesRequest { all: true })
            .await
            .unwrap()
            .into_inner();
        let c = listed
            .challenges
            .iter()
            .find(|c| c.id == challenge.id)
            .unwrap();
        assert_eq!((c.status.as_str(), &c.detail), ("executed", &done.detail));
    }
}
