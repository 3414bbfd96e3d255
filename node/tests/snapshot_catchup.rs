//! A follower 200,000 audit records behind catches up by installing a snapshot.
//!
//! Three node processes snapshot every 20 log entries and keep 5 entries behind a snapshot. One
//! follower is stopped; the leader records 200,000 audit records (node events sent to its peer
//! port, 1024 per Raft entry, as a follower forwards them); the leader and the other follower
//! are stopped and their logs are read from disk to show that the entries the stopped follower
//! misses were purged everywhere; then all three start again. The follower must end with the
//! leader's audit chain (same head seq and hash, verifying from its own database), and it must
//! take part in signing with the state it installed.
//!
//! Most of the runtime is recording the 200,000 records and building the leader's snapshots
//! (one every 20 entries, each holding every kept record); the stages' times are printed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod support;

use futures::StreamExt;
use openraft::storage::RaftLogStorage;
use signer_node::audit::{self, AuditEvent, NodeEvent};
use signer_node::config::NodeConfig;
use signer_node::pb;
use signer_node::replica::LogStore;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use support::{quorum_vote, refusal_code, sign_retrying, Cluster, ESPRESSO_KEY, ETH2_KEY};

/// Audit records the stopped follower falls behind by.
const RECORDS: u64 = 200_000;
/// Node events per `ForwardEvents` call: the most the peer service accepts in one.
const EVENTS_PER_CALL: u64 = 1024;
/// `ForwardEvents` calls in flight at once (the leader batches concurrent proposals).
const CALLS_IN_FLIGHT: usize = 4;
/// `[raft] snapshot_every` of every node: a snapshot every 20 log entries.
const SNAPSHOT_EVERY: u64 = 20;
/// `[raft] logs_to_keep` of every node.
const LOGS_TO_KEEP: u64 = 5;

/// Every node's `[raft]` settings: snapshots every 20 entries, 5 entries kept behind one.
///
/// Writing a snapshot of ~200,000 records keeps a node from answering Raft messages for about a
/// second on 2 cores (debug build). The leader's lease (`election_max_ms`) and the followers'
/// election timeouts must outlast that, or the leader refuses writes (LeaseExpired) and the
/// followers depose it while the records are recorded.
fn compact_often(config: &mut NodeConfig) {
    config.raft.snapshot_every = SNAPSHOT_EVERY;
    config.raft.logs_to_keep = LOGS_TO_KEEP;
    config.raft.heartbeat_ms = 250;
    config.raft.election_min_ms = 3_000;
    config.raft.election_max_ms = 6_000;
}

/// How long the cluster may take to agree on its audit head after catch-up.
const CONVERGE: Duration = Duration::from_secs(300);

/// Where node `id`'s Raft log stands on disk: (last purged index, last index). The node must
/// be stopped (the log database is opened directly).
async fn log_on_disk(cluster: &Cluster, id: u64) -> (u64, u64) {
    let path = cluster
        .node(id)
        .config_path
        .with_file_name("data")
        .join("raft-log.redb");
    let mut store = LogStore::open(&path, true).unwrap();
    let state = store.get_log_state().await.unwrap();
    let index = |l: Option<signer_node::replica::LogId>| l.map(|l| l.index).unwrap_or(0);
    (index(state.last_purged_log_id), index(state.last_log_id))
}

/// The hash of record `seq` as node `id` stores it.
async fn hash_at(cluster: &Cluster, id: u64, seq: u64) -> Vec<u8> {
    cluster
        .auditor(id)
        .verify(pb::AuditVerifyRequest { at_seq: seq })
        .await
        .unwrap()
        .into_inner()
        .at_hash
}

/// Node `id`'s audit records from `from_seq` on, decoded.
async fn records_from(cluster: &Cluster, id: u64, from_seq: u64) -> Vec<audit::AuditRecord> {
    let mut stream = cluster
        .auditor(id)
        .tail(pb::AuditTailRequest {
            from_seq,
            last: 0,
            follow: false,
            filter: None,
        })
        .await
        .unwrap()
        .into_inner();
    let mut out = Vec::new();
    while let Some(e) = stream.message().await.unwrap() {
        out.push(audit::decode(&e.record).unwrap());
    }
    out
}

/// The (node, key) pairs of key-loaded records among `records`.
fn key_loads(records: &[audit::AuditRecord]) -> BTreeSet<(u64, String)> {
    records
        .iter()
        .filter_map(|r| match &r.event {
            AuditEvent::Node(NodeEvent::KeyLoaded { node, key_id }) => {
                Some((*node, key_id.clone()))
            }
            _ => None,
        })
        .collect()
}

/// Wait until node `id` holds, at or after `from_seq`, the record of every node loading each of
/// the cluster's two key files (nodes record their key loads when they start, best-effort).
async fn wait_key_loads(cluster: &Cluster, id: u64, from_seq: u64) {
    let deadline = Instant::now() + Duration::from_secs(120);
    let every: BTreeSet<(u64, String)> = cluster
        .nodes
        .iter()
        .flat_map(|n| [(n.id, ESPRESSO_KEY.to_owned()), (n.id, ETH2_KEY.to_owned())])
        .collect();
    loop {
        let loaded = key_loads(&records_from(cluster, id, from_seq).await);
        if loaded == every {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "key loads only from {loaded:?} at or after seq {from_seq}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Record `records` audit records on `leader` as member `as_node` forwarding node events, in
/// calls of `EVENTS_PER_CALL` events in the binary peer format. Returns how many calls the
/// leader refused (and were sent again).
async fn record_events(cluster: &Cluster, leader: u64, as_node: u64, records: u64) -> usize {
    let refused = std::sync::atomic::AtomicUsize::new(0);
    let client = pb::raft_client::RaftClient::new(cluster.peer_channel(leader, as_node));
    let calls = records.div_ceil(EVENTS_PER_CALL);
    let sent: Vec<u64> = futures::stream::iter(0..calls)
        .map(|call| {
            let mut client = client.clone();
            let refused = &refused;
            async move {
                let first = call * EVENTS_PER_CALL;
                let events: Vec<NodeEvent> = (first..records.min(first + EVENTS_PER_CALL))
                    .map(|i| NodeEvent::KeyLoaded {
                        node: as_node,
                        key_id: format!("catch-up-{i}"),
                    })
                    .collect();
                let payload = signer_node::format::encode(&events).unwrap();
                let deadline = Instant::now() + Duration::from_secs(60);
                loop {
                    match client
                        .forward_events(pb::RaftMessage {
                            payload: payload.clone(),
                        })
                        .await
                    {
                        Ok(answer) => {
                            assert!(answer.into_inner().payload.is_empty());
                            return events.len() as u64;
                        }
                        // The leader refused to append (e.g. its lease lapsed while a follower
                        // was busy): nothing was proposed, so sending it again is exact.
                        Err(s)
                            if s.code() == tonic::Code::Unavailable
                                && s.message().starts_with("no leader can accept")
                                && Instant::now() < deadline =>
                        {
                            refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                        Err(s) => {
                            let logs: Vec<String> = cluster
                                .running()
                                .iter()
                                .map(|&id| format!("--- node {id}\n{}", cluster.log_of(id)))
                                .collect();
                            panic!(
                                "ForwardEvents call {call} of {calls}: {s:?}\n{}",
                                logs.join("\n")
                            )
                        }
                    }
                }
            }
        })
        .buffer_unordered(CALLS_IN_FLIGHT)
        .collect()
        .await;
    assert_eq!(sent.iter().sum::<u64>(), records);
    refused.into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_200_000_records_behind_installs_the_snapshot_and_catches_up() {
    let started = Instant::now();
    let cluster = Cluster::start_configured(3, |_| None, compact_often).await;
    let leader = cluster.wait_leader(Duration::from_secs(30)).await;
    let mut followers = cluster
        .nodes
        .iter()
        .map(|n| n.id)
        .filter(|&id| id != leader);
    let (behind, other) = (followers.next().unwrap(), followers.next().unwrap());

    // Setup: a vote the follower must still know about after catching up, and every node's
    // key loads in, so that nothing but the 200,000 records lands while the follower is away.
    sign_retrying(
        &mut cluster.client(leader, "seq-1").await,
        quorum_vote(1, 1, ""),
    )
    .await
    .unwrap();
    wait_key_loads(&cluster, leader, 1).await;
    let before = cluster.converged_audit_heads(1, CONVERGE).await[0].head_seq;

    cluster.kill(behind);
    let (_, behind_last) = log_on_disk(&cluster, behind).await;

    let recording = Instant::now();
    let refused = record_events(&cluster, leader, other, RECORDS).await;
    let recorded_in = recording.elapsed();
    eprintln!(
        "{RECORDS} records recorded on node {leader} in {recorded_in:?}, {refused} calls \
         refused and sent again (test at {:?})",
        started.elapsed()
    );
    let leader_head = cluster.audit_verify(leader).await;
    assert!(leader_head.ok, "{leader_head:?}");
    assert_eq!(leader_head.head_seq, before + RECORDS);

    // Every log that could serve the follower is read from disk: both remaining members have
    // purged past the follower's last entry, so entry `behind_last + 1` exists in no log and
    // appending entries cannot bring the follower up to date. If it ends with the leader's
    // audit head, it installed a snapshot.
    cluster.kill(leader);
    cluster.kill(other);
    for id in [leader, other] {
        let (purged, last) = log_on_disk(&cluster, id).await;
        eprintln!(
            "node {id}: log purged up to {purged}, last entry {last}; \
             follower {behind} stopped at {behind_last}"
        );
        assert!(
            purged > behind_last,
            "node {id} purged its log only up to {purged} (last entry {last}), not past the \
             stopped follower's last entry {behind_last}: nothing forces a snapshot"
        );
    }

    let catching_up = Instant::now();
    for id in [leader, other, behind] {
        cluster.spawn(id);
    }
    cluster.wait_leader(Duration::from_secs(60)).await;
    // The restarted nodes record their key loads again; wait for all of them, then for every
    // node to report one head.
    wait_key_loads(&cluster, behind, before + RECORDS + 1).await;
    let heads = cluster
        .converged_audit_heads(before + RECORDS, CONVERGE)
        .await;
    let caught_up_in = catching_up.elapsed();
    eprintln!(
        "follower {behind} caught up in {caught_up_in:?} (test at {:?})",
        started.elapsed()
    );
    let of = |id: u64| {
        let i = cluster.running().iter().position(|&n| n == id).unwrap();
        heads[i].clone()
    };
    let (follower, recorder) = (of(behind), of(leader));
    assert!(follower.ok, "{follower:?}");
    assert_eq!(follower.head_seq, recorder.head_seq);
    assert_eq!(follower.head_hash, recorder.head_hash);
    assert_eq!(follower.anchor_seq, recorder.anchor_seq);
    assert_eq!(follower.anchor_hash, recorder.anchor_hash);
    assert_eq!(follower.records, recorder.records);
    // What came after the 200,000 records is the restarted nodes' key loads, nothing else.
    let after: Vec<_> = records_from(&cluster, behind, before + RECORDS + 1)
        .await
        .into_iter()
        .filter(|r| r.seq <= follower.head_seq)
        .collect();
    assert_eq!(after.len() as u64, follower.head_seq - before - RECORDS);
    assert!(
        after
            .iter()
            .all(|r| matches!(&r.event, AuditEvent::Node(NodeEvent::KeyLoaded { .. }))),
        "{after:?}"
    );
    // The follower's copy of record `before + RECORDS` is the leader's (the pumped records
    // verify as one chain from the anchor on both, and their heads agree).
    let follower_at = hash_at(&cluster, behind, before + RECORDS).await;
    assert_eq!(follower_at.len(), 32);
    assert_eq!(
        follower_at,
        hash_at(&cluster, leader, before + RECORDS).await
    );

    // Sign with the follower as one of the two members left: every entry now commits only
    // with its vote and it applies them on top of the installed state. The vote of view 1 from
    // before the follower was stopped still stands (another leaf for view 1 is refused), and
    // afterwards both members hold the same chain.
    let current = cluster.wait_leader(Duration::from_secs(30)).await;
    let gone = if current == behind { other } else { current };
    cluster.kill(gone);
    let mut client = cluster.client(behind, "seq-1").await;
    let err = sign_retrying(&mut client, quorum_vote(1, 2, ""))
        .await
        .unwrap_err();
    assert_eq!(
        refusal_code(&err).as_deref(),
        Some("equivocation"),
        "{err:?}"
    );
    let signed = sign_retrying(&mut client, quorum_vote(2, 1, ""))
        .await
        .unwrap();
    assert!(!signed.resigned);
    let heads = cluster
        .converged_audit_heads(follower.head_seq + 2, CONVERGE)
        .await;
    assert_eq!(heads.len(), 2);
    assert_eq!(heads[0].head_hash, heads[1].head_hash);

    eprintln!("whole test {:?}", started.elapsed());
}

/// The bytes of node `id`'s kept audit records, as its audit service streams them.
async fn record_bytes(cluster: &Cluster, id: u64) -> u64 {
    let entries = cluster.audit_entries(id).await;
    entries.iter().map(|e| e.record.len() as u64).sum()
}

/// Whether node `id` has stored a snapshot (its head file, `state.snapshot-head`).
fn has_snapshot(cluster: &Cluster, id: u64) -> bool {
    let data = cluster.node(id).config_path.with_file_name("data");
    data.join("state.snapshot-head").exists()
}

/// Nodes snapshot after `[raft] snapshot_after_audit_bytes` of audit records, however few log
/// entries carried them. With snapshots by count out of reach (one every million entries) and
/// a limit of 256 KiB: records well under it leave no snapshot anywhere; forwarded in 1024-event
/// entries past it, every node stores one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_snapshot_after_a_size_of_audit_records_however_few_entries_carried_them() {
    const AFTER: u64 = 256 << 10;
    let cluster = Cluster::start_configured(
        3,
        |_| None,
        |config| {
            config.raft.snapshot_every = 1_000_000;
            config.raft.snapshot_after_audit_bytes = AFTER;
        },
    )
    .await;
    let leader = cluster.wait_leader(Duration::from_secs(30)).await;
    let other = cluster
        .nodes
        .iter()
        .map(|n| n.id)
        .find(|&id| id != leader)
        .unwrap();
    sign_retrying(
        &mut cluster.client(leader, "seq-1").await,
        quorum_vote(1, 1, ""),
    )
    .await
    .unwrap();

    // Under the limit: no snapshot, after time enough for one to be built.
    record_events(&cluster, leader, other, 512).await;
    let under = record_bytes(&cluster, leader).await;
    assert!(
        under < AFTER,
        "{under} bytes of records are not under {AFTER}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let ids: Vec<u64> = cluster.nodes.iter().map(|n| n.id).collect();
    for &id in &ids {
        assert!(
            !has_snapshot(&cluster, id),
            "node {id} snapshotted under the limit"
        );
    }

    // Past it: 4,096 more records (about 90 bytes each) in four entries.
    record_events(&cluster, leader, other, 4 * EVENTS_PER_CALL).await;
    let over = record_bytes(&cluster, leader).await;
    assert!(
        over >= AFTER,
        "{over} bytes of records are not past {AFTER}"
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ids.iter().all(|&id| has_snapshot(&cluster, id)) {
        assert!(
            Instant::now() < deadline,
            "snapshots after {over} bytes of records: {:?}",
            ids.iter()
                .map(|&id| (id, has_snapshot(&cluster, id)))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
