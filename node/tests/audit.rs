//! The audit log end to end: real node processes with real TLS (see `support`) — the chain is
//! identical on every replica after a run in which the leader is SIGKILLed; a record edited
//! directly in one node's redb is named by that node's Verify; an export verifies offline
//! against the nodes' heads. And, on the state machine directly: compaction keeps the chain
//! verifiable from its anchor, across a snapshot install too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod admin_log;
mod oracle;
mod support;

use openraft::entry::RaftEntry;
use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
use openraft::type_config::TypeConfigExt;
use openraft::EntryPayload;
use signer_node::admin::Action;
use signer_node::audit::{self, AuditEvent, ChainPoint, SignResult};
use signer_node::pb;
use signer_node::pb::audit_client::AuditClient;
use signer_node::replica::{Command, Entry, Proposal, StateMachine, TypeConfig};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use support::{quorum_vote, refusal, Cluster};

/// The nodes named by key-loaded records.
fn key_loads(records: &[audit::AuditRecord]) -> BTreeSet<u64> {
    records
        .iter()
        .filter_map(|r| match &r.event {
            AuditEvent::Node(audit::NodeEvent::KeyLoaded { node, .. }) => Some(*node),
            _ => None,
        })
        .collect()
}

/// Wait until node `id`'s log has key-loaded records from every node (node events are
/// delivered best-effort, after the sign path's entries).
async fn wait_key_loads(cluster: &Cluster, id: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let loaded = key_loads(&decoded(&cluster.audit_entries(id).await));
        if loaded.len() == cluster.nodes.len() {
            return;
        }
        assert!(Instant::now() < deadline, "key loads only from {loaded:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Stop node `id` with SIGTERM (a clean shutdown syncs its state database) and reap it.
fn stop(cluster: &Cluster, id: u64) {
    let mut slot = cluster.node(id).child.lock().unwrap();
    let mut child = slot.take().unwrap();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    child.wait().unwrap();
}

fn decoded(entries: &[pb::AuditEntry]) -> Vec<audit::AuditRecord> {
    entries
        .iter()
        .map(|e| audit::decode(&e.record).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_chain_is_identical_on_all_replicas_after_a_leader_kill() {
    let cluster = Cluster::start(3).await;
    let leader = cluster.wait_leader(Duration::from_secs(30)).await;
    let mut client = cluster.client(leader, "seq-1").await;
    for view in 1..=4 {
        client
            .sign(quorum_vote(view, 1, &format!("before-{view}")))
            .await
            .unwrap();
    }
    // Concurrent conflicting votes at one view: one is signed, the others are refused by the
    // state machine (or by the leader's pre-check).
    let conflicting = (1..=4u8).map(|leaf| {
        let mut c = client.clone();
        async move {
            c.sign(quorum_vote(5, leaf, &format!("conflict-{leaf}")))
                .await
        }
    });
    let results = futures::future::join_all(conflicting).await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    // Each refusal names the winner's commitment and its own (the oracle's digests).
    let leaf = |i: usize| u8::try_from(i + 1).unwrap();
    let winner = leaf(results.iter().position(|r| r.is_ok()).unwrap());
    let digest = |leaf: u8| hex::encode(oracle::requests::quorum_vote_digest(5, leaf));
    for (i, r) in results.iter().enumerate() {
        let Err(r) = r else { continue };
        let equivocation = Some((
            "equivocation".to_owned(),
            format!(
                "quorum-vote at view 5: commitment 0x{} was signed there; this request's \
                 commitment is 0x{}",
                digest(winner),
                digest(leaf(i))
            ),
        ));
        assert_eq!(refusal(r), equivocation, "{r:?}");
    }

    cluster.kill(leader);
    let new_leader = cluster.wait_leader(Duration::from_secs(30)).await;
    let mut client = cluster.client(new_leader, "seq-1").await;
    for view in 6..=9 {
        client
            .sign(quorum_vote(view, 1, &format!("after-{view}")))
            .await
            .unwrap();
    }
    cluster.spawn(leader);
    wait_key_loads(&cluster, new_leader).await;
    let heads = cluster
        .converged_audit_heads(8, Duration::from_secs(90))
        .await;
    assert_eq!(heads.len(), 3);

    // Byte-identical records everywhere, and they say what happened.
    let all: Vec<Vec<pb::AuditEntry>> = {
        let mut v = Vec::new();
        for id in 1..=3 {
            v.push(cluster.audit_entries(id).await);
        }
        v
    };
    assert_eq!(all[0], all[1]);
    assert_eq!(all[0], all[2]);
    let recs = decoded(&all[0]);
    let kept: Vec<(u64, Vec<u8>)> = all[0].iter().map(|e| (e.seq, e.record.clone())).collect();
    let head = audit::verify_chain(&kept, ChainPoint::default(), None).unwrap();
    assert_eq!(head.seq, heads[0].head_seq);
    assert_eq!(head.hash.to_vec(), heads[0].head_hash);

    let signs: Vec<_> = recs
        .iter()
        .filter_map(|r| match &r.event {
            AuditEvent::Sign(d) => Some(d),
            _ => None,
        })
        .collect();
    let signed_views: BTreeSet<u64> = signs
        .iter()
        .filter(|d| d.outcome == SignResult::Signed)
        .map(|d| d.watermark[0].1)
        .collect();
    assert_eq!(signed_views, (1..=9).collect());
    assert!(signs
        .iter()
        .all(|d| d.client == "seq-1" && d.profile == "espresso"));
    assert!(recs.iter().any(
        |r| matches!(&r.event, AuditEvent::Membership { voters, .. } if voters == &[1, 2, 3])
    ));
    assert_eq!(key_loads(&recs), BTreeSet::from([1, 2, 3]));
    // Times come from the replicated entries (the proposing leader's clock); only the first
    // membership, before any proposal, has none.
    assert!(recs
        .iter()
        .filter(|r| r.event.type_name() != "membership")
        .all(|r| r.at_ms > 1_600_000_000_000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_names_a_record_tampered_in_redb() {
    let cluster = Cluster::start(3).await;
    let leader = cluster.wait_leader(Duration::from_secs(30)).await;
    let mut client = cluster.client(leader, "seq-1").await;
    for view in 1..=3 {
        client
            .sign(quorum_vote(view, 1, &format!("t-{view}")))
            .await
            .unwrap();
    }
    cluster
        .converged_audit_heads(3, Duration::from_secs(90))
        .await;
    let victim = if leader == 3 { 2 } else { 3 };
    let entries = cluster.audit_entries(victim).await;
    let target = decoded(&entries)
        .into_iter()
        .find(|r| matches!(r.event, AuditEvent::Sign(_)))
        .unwrap()
        .seq;
    stop(&cluster, victim);

    // Change one byte of one record, directly in the node's state database.
    let path = cluster.dir().join(format!("node-{victim}/data/state.redb"));
    {
        use redb::{ReadableTable, TableDefinition};
        const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut table = txn.open_table(AUDIT).unwrap();
            let mut bytes = table.get(target).unwrap().unwrap().value().to_vec();
            let last = bytes.len() - 1;
            bytes[last] ^= 0x01; // inside the signed message's hash
            table.insert(target, bytes.as_slice()).unwrap();
        }
        txn.commit().unwrap();
    }

    cluster.spawn(victim);
    let deadline = Instant::now() + Duration::from_secs(30);
    let v = loop {
        if let Ok(v) = cluster
            .auditor(victim)
            .verify(pb::AuditVerifyRequest { at_seq: 0 })
            .await
        {
            break v.into_inner();
        }
        assert!(Instant::now() < deadline, "node {victim} did not come back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(!v.ok, "{v:?}");
    assert_eq!(v.first_bad_seq, target, "{v:?}");
    assert_eq!(
        v.reason,
        format!(
            "altered: its hash no longer matches record {}'s prev_hash",
            target + 1
        ),
        "{v:?}"
    );
    for id in (1..=3).filter(|&id| id != victim) {
        let other = cluster.audit_verify(id).await;
        assert!(other.ok, "node {id}: {other:?}");
    }
    // Another identity may not read the log.
    let denied = AuditClient::new(cluster.channel(1, "seq-1"))
        .verify(pb::AuditVerifyRequest { at_seq: 0 })
        .await
        .unwrap_err();
    assert_eq!(
        (denied.code(), denied.message()),
        (
            tonic::Code::PermissionDenied,
            "\"seq-1\" is not an auditor or an enrolled admin"
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_export_verifies_against_every_node() {
    let cluster = Cluster::start(3).await;
    let leader = cluster.wait_leader(Duration::from_secs(30)).await;
    let mut client = cluster.client(leader, "seq-1").await;
    for view in 1..=3 {
        client
            .sign(quorum_vote(view, 1, &format!("e-{view}")))
            .await
            .unwrap();
    }
    // Export node 2's log: every record as JSON with its canonical bytes; read it back and
    // verify. Node events arrive late and best-effort, so wait until the export ends at the
    // head every node reports; then every head must be the export's, hash included.
    let deadline = Instant::now() + Duration::from_secs(90);
    let (heads, head) = loop {
        let heads = cluster
            .converged_audit_heads(3, Duration::from_secs(90))
            .await;
        let exported: Vec<String> = cluster
            .audit_entries(2)
            .await
            .iter()
            .map(|e| {
                let r = audit::decode(&e.record).unwrap();
                audit::to_json(&r, &audit::hash_bytes(&e.record), &e.record).to_string()
            })
            .collect();
        let mut chain = Vec::new();
        for line in &exported {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let bytes = hex::decode(v["encoded"].as_str().unwrap()).unwrap();
            let r = audit::decode(&bytes).unwrap();
            assert_eq!(audit::to_json(&r, &audit::hash_bytes(&bytes), &bytes), v);
            chain.push((v["seq"].as_u64().unwrap(), bytes));
        }
        let head = audit::verify_chain(&chain, ChainPoint::default(), None).unwrap();
        if heads.iter().all(|h| h.head_seq == head.seq) {
            break (heads, head);
        }
        assert!(
            Instant::now() < deadline,
            "the export never ended at the nodes' head: {head:?} vs {heads:?}"
        );
    };
    assert_eq!(heads.len(), 3);
    for h in &heads {
        assert_eq!((h.head_seq, &h.head_hash), (head.seq, &head.hash.to_vec()));
    }
    // Each node reports the same hash for the export's last record.
    for id in 1..=3 {
        let at = cluster
            .auditor(id)
            .verify(pb::AuditVerifyRequest { at_seq: head.seq })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(at.at_hash, head.hash.to_vec(), "node {id}");
    }
    // A result word no record can hold is INVALID_ARGUMENT, not an empty answer.
    let err = cluster
        .auditor(1)
        .tail(pb::AuditTailRequest {
            from_seq: 0,
            last: 1,
            follow: false,
            filter: Some(pb::AuditFilter {
                result: "bogus".into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (
            tonic::Code::InvalidArgument,
            "filter.result: \"bogus\" is not a result any record holds; one of: signed, \
             resigned, refused, key_inactive, paused, denied, failed, ok, open, pending, executed"
        )
    );
    // Tail with a filter and a follow: a new record arrives on the open stream.
    let mut follow = cluster
        .auditor(1)
        .tail(pb::AuditTailRequest {
            from_seq: 0,
            last: 1,
            follow: true,
            filter: Some(pb::AuditFilter {
                result: "signed".into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    // The decision a tailed record holds: request id, outcome and watermark fields.
    let decision = |e: &pb::AuditEntry| match audit::decode(&e.record).unwrap().event {
        AuditEvent::Sign(d) => (d.request_id, d.outcome, d.watermark),
        other => panic!("not a sign decision: {other:?}"),
    };
    let view = |v: u64| vec![("view".to_owned(), v)];
    let first = follow.message().await.unwrap().unwrap();
    assert_eq!(
        decision(&first),
        ("e-3".to_owned(), SignResult::Signed, view(3)),
        "the last signed record: {}",
        first.summary
    );
    client.sign(quorum_vote(4, 1, "e-4")).await.unwrap();
    let next = tokio::time::timeout(Duration::from_secs(10), follow.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(next.seq > first.seq);
    assert_eq!(
        decision(&next),
        ("e-4".to_owned(), SignResult::Signed, view(4))
    );
    assert!(next.summary.contains("view=4"), "{}", next.summary);
    // Get by seq, on node 3 once it has applied that record (it may lag the node that
    // streamed it; until then it answers NOT_FOUND).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let got = loop {
        match cluster
            .auditor(3)
            .get(pb::AuditGetRequest { seq: next.seq })
            .await
        {
            Ok(got) => break got.into_inner(),
            Err(e) if e.code() == tonic::Code::NotFound => {
                assert!(std::time::Instant::now() < deadline, "{e:?}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("{e:?}"),
        }
    };
    assert_eq!(got.record, next.record);
}

// ----- the state machine directly: compaction and snapshots -----

fn entries(commands: Vec<Command>, first_index: u64) -> Vec<Entry> {
    commands
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            Entry::new(
                openraft::testing::log_id::<TypeConfig>(1, 1, first_index + i as u64),
                EntryPayload::Normal(Proposal {
                    at_ms: 1_700_000_000_000 + i as u64,
                    command: c,
                }),
            )
        })
        .collect()
}

async fn apply(sm: &mut StateMachine, entries: Vec<Entry>) {
    let stream = futures::stream::iter(entries.into_iter().map(|e| Ok((e, None))));
    sm.apply(stream).await.unwrap();
}

fn loaded(node: u64, key: &str) -> Command {
    Command::Event(vec![audit::NodeEvent::KeyLoaded {
        node,
        key_id: key.into(),
    }])
}

#[test]
fn audit_compaction_keeps_the_chain_verifiable_and_travels_in_snapshots() {
    TypeConfig::run(async {
        let dir = tempfile::tempdir().unwrap();
        let mut sm = StateMachine::open(&dir.path().join("a.redb"), true).unwrap();
        let admins = admin_log::SoloAdmin::new("c", 7);
        let mut first = vec![admins.bootstrap()];
        first.extend((1..=6).map(|n| loaded(n, "k")));
        apply(&mut sm, entries(first, 1)).await;
        let exported = sm.audit_records(0, 1000).unwrap();
        assert_eq!(exported.len(), 7);
        audit::verify_chain(&exported, ChainPoint::default(), None).unwrap();

        // Compacting at or beyond the head changes nothing (the approved action fails).
        let base = 1_700_000_000_000;
        let compact = |up_to_seq| Action::CompactAudit { up_to_seq };
        apply(
            &mut sm,
            entries(admins.approved(1, &compact(1_000), base), 8),
        )
        .await;
        assert_eq!(sm.audit_chain().unwrap().anchor, ChainPoint::default());
        let failed = sm.read().admin.challenges[&hex::encode([1u8; 32])]
            .status
            .clone();
        assert!(
            matches!(
                failed,
                signer_node::admin::state::ChallengeStatus::FailedUnder { .. }
            ),
            "{failed:?}"
        );

        apply(&mut sm, entries(admins.approved(2, &compact(4), base), 10)).await;
        let chain = sm.audit_chain().unwrap();
        assert_eq!(chain.anchor.seq, 4);
        // The anchor is record 4's hash as exported before the compaction.
        let exported_to_4 = audit::verify_chain(&exported[..4], ChainPoint::default(), None);
        assert_eq!(exported_to_4, Ok(chain.anchor));
        let kept = sm.audit_records(0, 1000).unwrap();
        assert_eq!(kept.first().unwrap().0, 5);
        let (stored, verdict) = sm.audit_verify().unwrap();
        assert_eq!(verdict, Ok(stored.head));
        // The compaction is recorded, linked on from the record before it.
        let at = kept
            .iter()
            .position(|(_, bytes)| {
                matches!(
                    audit::decode(bytes).unwrap().event,
                    AuditEvent::Compacted { up_to_seq: 4, .. }
                )
            })
            .expect("a Compacted record");
        let before = audit::verify_chain(&kept[..at], chain.anchor, None).unwrap();
        assert_eq!(audit::decode(&kept[at].1).unwrap().prev_hash, before.hash);

        // More records after the compaction, then a snapshot into a fresh replica.
        apply(&mut sm, entries(vec![loaded(1, "k2")], 12)).await;
        let built = sm
            .get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();
        // As a leader sends it: the stored snapshot (a build returns only its meta).
        let snapshot = sm.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(snapshot.meta, built.meta);
        let mut other = StateMachine::open(&dir.path().join("b.redb"), true).unwrap();
        other
            .install_snapshot(&snapshot.meta, snapshot.snapshot)
            .await
            .unwrap();
        assert_eq!(
            other.audit_records(0, 1000).unwrap(),
            sm.audit_records(0, 1000).unwrap()
        );
        let (chain_b, verdict_b) = other.audit_verify().unwrap();
        assert_eq!(chain_b, sm.audit_chain().unwrap());
        assert_eq!(verdict_b, Ok(chain_b.head));
        // Both go on identically.
        let next = entries(vec![loaded(2, "k3")], 13);
        apply(&mut sm, next.clone()).await;
        apply(&mut other, next).await;
        assert_eq!(sm.audit_chain().unwrap(), other.audit_chain().unwrap());
        // Reopening reads the same chain from disk.
        drop(sm);
        let sm = StateMachine::open(&dir.path().join("a.redb"), true).unwrap();
        assert_eq!(sm.read().audit.chain, other.audit_chain().unwrap());
    });
}
