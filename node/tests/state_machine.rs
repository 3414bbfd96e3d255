//! The replicated state machine applied directly (no cluster): key-registry state gates sign
//! entries in log order, and applying the same log on two replicas gives the same state. Keys
//! change only through approved admin actions (bootstrap, propose, approve), as in a cluster.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod admin_log;

use openraft::entry::RaftEntry;
use openraft::storage::RaftStateMachine;
use openraft::type_config::TypeConfigExt;
use openraft::EntryPayload;
use signer_node::admin::Action;
use signer_node::bytes::FixedBytes;
use signer_node::protection::ethereum::Eth2Intent;
use signer_node::protection::{Intent, Profile};
use signer_node::registry::{KeyRecord, KeyState};
use signer_node::replica::{Command, Entry, SignEntry, SnapshotData, StateMachine, TypeConfig};

fn record(key_id: &str, pk: u8) -> KeyRecord {
    admin_log::record(key_id, Profile::Eth2, vec![pk; 48])
}

fn sign(key_id: &str, pk: u8, slot: u64) -> Command {
    Command::Sign(vec![SignEntry {
        request_id: String::new(),
        client: "seq-1".into(),
        key_id: key_id.into(),
        intent: Intent::Eth2(Eth2Intent::Block {
            pubkey: FixedBytes([pk; 48]),
            slot,
            signing_root: FixedBytes([7; 32]),
        }),
    }])
}

const AT_MS: u64 = 1_700_000_000_000;

fn log(commands: Vec<Command>) -> Vec<Entry> {
    commands
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            Entry::new(
                openraft::testing::log_id::<TypeConfig>(1, 1, i as u64 + 1),
                EntryPayload::Normal(signer_node::replica::Proposal {
                    at_ms: AT_MS,
                    command: c,
                }),
            )
        })
        .collect()
}

/// A snapshot of `sm`'s state, built as openraft builds one and read back as a leader reads
/// it to send it (a build returns only its meta).
async fn snapshot_of(sm: &mut StateMachine) -> signer_node::replica::Snapshot {
    use openraft::storage::RaftSnapshotBuilder;
    let built = sm
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    let stored = sm.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!(stored.meta, built.meta);
    assert!(
        matches!(stored.snapshot, SnapshotData::Stored { .. }),
        "a stored snapshot is read from its files as it is sent"
    );
    stored
}

async fn apply(sm: &mut StateMachine, entries: Vec<Entry>) {
    let stream = futures::stream::iter(entries.into_iter().map(|e| Ok((e, None))));
    sm.apply(stream).await.unwrap();
}

#[test]
fn a_sign_entry_after_a_disable_entry_records_nothing() {
    TypeConfig::run(async {
        let dir = tempfile::tempdir().unwrap();
        let mut sm = StateMachine::open(&dir.path().join("a.redb"), true).unwrap();
        let admin = admin_log::SoloAdmin::new("c", 7);
        let mut commands = vec![admin.bootstrap()];
        commands.extend(admin.approved(1, &Action::AddKey(record("k1", 1)), AT_MS));
        commands.extend(admin.approved(2, &Action::AddKey(record("k2", 2)), AT_MS));
        commands.extend(admin.approved(
            3,
            &Action::SetKeyState {
                key_id: "k1".into(),
                state: KeyState::Disabled,
            },
            AT_MS,
        ));
        // Both proposed while k1 was still active, applied after its disable.
        commands.extend([sign("k1", 1, 5), sign("k2", 2, 5)]);
        let entries = log(commands);
        apply(&mut sm, entries.clone()).await;
        assert_eq!(sm.read().registry.keys.len(), 2, "both keys added");
        let validators = sm.read().protection.eth2.validators.clone();
        assert!(
            !validators.contains_key(&FixedBytes([1; 48])),
            "disabled key signed"
        );
        assert!(
            validators.contains_key(&FixedBytes([2; 48])),
            "active key did not sign"
        );

        // Another replica applying the same log reaches the same state.
        let mut other = StateMachine::open(&dir.path().join("b.redb"), true).unwrap();
        apply(&mut other, entries).await;
        assert_eq!(other.read().protection, sm.read().protection);
        assert_eq!(other.read().registry, sm.read().registry);
        // The audit chains (records and head) are byte-identical too.
        assert_eq!(other.read().audit, sm.read().audit);
        assert_eq!(
            other.audit_records(0, usize::MAX).unwrap(),
            sm.audit_records(0, usize::MAX).unwrap()
        );
    });
}

/// A snapshot install whose write fails (a full disk: here the temporary path of the snapshot's
/// head file is taken by a directory, after its records file was written) changes nothing that a restart reads: the database must not claim
/// the snapshot's position while the snapshot file does not hold it. Otherwise openraft, at
/// the next start, purges the log up to the database's position and finds its snapshot
/// behind the purge point, and the node can never start again. Once the disk has room, the
/// same install goes through and survives a restart.
#[test]
fn a_snapshot_install_that_cannot_be_stored_changes_nothing() {
    TypeConfig::run(async {
        let dir = tempfile::tempdir().unwrap();
        // The snapshot to install: a replica that added a key and signed with it.
        let mut source = StateMachine::open(&dir.path().join("source.redb"), true).unwrap();
        let admin = admin_log::SoloAdmin::new("c", 7);
        let mut commands = vec![admin.bootstrap()];
        commands.extend(admin.approved(1, &Action::AddKey(record("k1", 1)), AT_MS));
        commands.push(sign("k1", 1, 9));
        let entries = log(commands);
        let last = entries.last().unwrap().log_id();
        apply(&mut source, entries).await;
        let snapshot = snapshot_of(&mut source).await;
        assert_eq!(snapshot.meta.last_log_id, Some(last));

        let path = dir.path().join("target.redb");
        let blocked = dir.path().join("target.snapshot-head.tmp");
        std::fs::create_dir(&blocked).unwrap();
        let mut target = StateMachine::open(&path, true).unwrap();
        let failed = target
            .install_snapshot(&snapshot.meta, snapshot.snapshot.clone())
            .await;
        let error = failed.expect_err("the snapshot file cannot be written");
        assert!(
            error.to_string().contains("target.snapshot-head.tmp"),
            "the error names the file: {error}"
        );
        // The database's writer stopped on it: the next apply fails with that error (which
        // stops openraft) instead of writing over a database that lacks the install.
        let next = log_from(last.index + 1, vec![sign("k1", 1, 10)]);
        let stream = futures::stream::iter(next.into_iter().map(|e| Ok((e, None))));
        let refused = target.apply(stream).await.expect_err("the writer stopped");
        assert_eq!(refused.to_string(), format!("state database: {error}"));
        drop(target);
        // The records file written for it is gone too.
        let mut left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with("target.snapshot"))
            .collect();
        left.sort();
        assert_eq!(left, ["target.snapshot-head.tmp"]);

        let mut reopened = StateMachine::open(&path, true).unwrap();
        assert_eq!(reopened.applied_state().await.unwrap().0, None);
        assert!(reopened.read().registry.keys.is_empty());
        assert!(reopened.get_current_snapshot().await.unwrap().is_none());

        std::fs::remove_dir(&blocked).unwrap();
        reopened
            .install_snapshot(&snapshot.meta, snapshot.snapshot.clone())
            .await
            .unwrap();
        drop(reopened);
        let mut after = StateMachine::open(&path, true).unwrap();
        assert_eq!(after.applied_state().await.unwrap().0, Some(last));
        assert_eq!(after.read().protection, source.read().protection);
        assert_eq!(after.read().registry, source.read().registry);
        let stored = after.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(stored.meta, snapshot.meta);
        assert_eq!(
            stored.snapshot.into_bytes().unwrap(),
            snapshot.snapshot.into_bytes().unwrap()
        );
    });
}

/// Entries for `commands` from log index `first` on.
fn log_from(first: u64, commands: Vec<Command>) -> Vec<Entry> {
    log(commands)
        .into_iter()
        .map(|e| {
            let index = e.log_id().index + first - 1;
            Entry::new(
                openraft::testing::log_id::<TypeConfig>(1, 1, index),
                e.payload,
            )
        })
        .collect()
}

/// The bound of a snapshot of `sm`'s state, from the records as its database holds them.
fn bound_from_database(sm: &StateMachine) -> u64 {
    let bytes = sm
        .audit_records(0, usize::MAX)
        .unwrap()
        .iter()
        .map(|(_, r)| r.len() as u64)
        .sum();
    signer_node::state::snapshot_body_bound(&sm.read(), bytes).unwrap()
}

/// Whether `sm` builds a policy snapshot (openraft's `force: false`) under `limit`.
async fn builds_under(sm: &StateMachine, limit: u64) -> bool {
    let mut limited = sm.clone().with_snapshot_limit(limit);
    limited.try_create_snapshot_builder(false).await.is_some()
}

/// A snapshot whose bound passes the limit is deferred instead of attempted (a failed build
/// would stop openraft on every node at once), and built again once an approved compaction
/// dropped enough of the audit log. The decision is taken on the record bytes the state
/// machine keeps count of while applying, compacting, reopening and installing: each time it
/// must flip exactly at the bound computed from the records its database holds.
#[test]
fn a_snapshot_over_the_limit_is_deferred_until_the_audit_log_is_compacted() {
    TypeConfig::run(async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sm.redb");
        let mut sm = StateMachine::open(&path, true).unwrap();
        let admin = admin_log::SoloAdmin::new("c", 7);
        let mut commands = vec![admin.bootstrap()];
        commands.extend(admin.approved(1, &Action::AddKey(record("k1", 1)), AT_MS));
        commands.extend((1..=40).map(|slot| sign("k1", 1, slot)));
        let entries = log(commands);
        let mut next = entries.len() as u64 + 1;
        apply(&mut sm, entries).await;

        let bound = bound_from_database(&sm);
        assert!(builds_under(&sm, bound).await, "built at its bound");
        assert!(
            !builds_under(&sm, bound - 1).await,
            "deferred one byte under"
        );
        // Needed to catch a follower up: attempted whatever the limit.
        let mut limited = sm.clone().with_snapshot_limit(bound - 1);
        assert!(limited.try_create_snapshot_builder(true).await.is_some());
        drop(limited);
        // What the bound promises: the snapshot built is no larger.
        let built = snapshot_of(&mut sm).await;
        assert!(built.snapshot.len() <= bound);
        let before_compaction = bound;

        // An approved compaction drops records: the bound shrinks and the snapshot is built.
        let head = sm.read().audit.chain.head.seq;
        let compact = admin.approved(
            2,
            &Action::CompactAudit {
                up_to_seq: head - 5,
            },
            AT_MS,
        );
        let entries = log_from(next, compact);
        next += entries.len() as u64;
        apply(&mut sm, entries).await;
        assert_eq!(sm.read().audit.chain.anchor.seq, head - 5);
        let bound = bound_from_database(&sm);
        assert!(bound < before_compaction);
        assert!(builds_under(&sm, bound).await);
        assert!(!builds_under(&sm, bound - 1).await);

        // More signing after the compaction, then a reopen (the count is read from disk).
        apply(
            &mut sm,
            log_from(next, (41..=45).map(|s| sign("k1", 1, s)).collect()),
        )
        .await;
        drop(sm);
        let mut sm = StateMachine::open(&path, true).unwrap();
        let bound = bound_from_database(&sm);
        assert!(builds_under(&sm, bound).await);
        assert!(!builds_under(&sm, bound - 1).await);

        // A replica that installs the snapshot counts the records it installed.
        let snapshot = snapshot_of(&mut sm).await;
        let mut other = StateMachine::open(&dir.path().join("other.redb"), true).unwrap();
        other
            .install_snapshot(&snapshot.meta, snapshot.snapshot)
            .await
            .unwrap();
        assert_eq!(bound_from_database(&other), bound);
        assert!(builds_under(&other, bound).await);
        assert!(!builds_under(&other, bound - 1).await);
    });
}

/// A snapshot a leader streams, received as a follower receives it (into an unnamed file) and
/// installed from there: the follower ends with the leader's state, audit records and snapshot
/// bytes. A body that does not decode (here: a byte past its last record) is refused naming
/// why, and the follower is as it was; the same snapshot sent right then installs.
#[test]
fn a_snapshot_received_into_a_file_installs_as_the_leader_holds_it() {
    use futures::StreamExt as _;
    use signer_node::replica::network::{snapshot_chunks, MAX_SNAPSHOT};
    use signer_node::replica::Vote;
    use signer_node::service::peer::receive_snapshot;
    TypeConfig::run(async {
        let dir = tempfile::tempdir().unwrap();
        let mut source = StateMachine::open(&dir.path().join("leader.redb"), true).unwrap();
        let admin = admin_log::SoloAdmin::new("c", 7);
        let mut commands = vec![admin.bootstrap()];
        commands.extend(admin.approved(1, &Action::AddKey(record("k1", 1)), AT_MS));
        // Enough audit records that the body spans several 1 MiB chunks.
        commands.extend((1..=14_000).map(|slot| sign("k1", 1, slot)));
        apply(&mut source, log(commands)).await;
        let snapshot = snapshot_of(&mut source).await;
        let leader_bytes = snapshot.snapshot.clone().into_bytes().unwrap();
        assert!(leader_bytes.len() > 2 << 20, "{} bytes", leader_bytes.len());

        let incoming = dir.path().join("incoming");
        std::fs::create_dir(&incoming).unwrap();
        let vote = Vote::new_committed(2, 1);
        let receive = |data: SnapshotData| {
            let (meta, incoming) = (snapshot.meta.clone(), incoming.clone());
            async move {
                let chunks = snapshot_chunks(vote, meta, data).unwrap().map(Ok);
                receive_snapshot(1, Box::pin(chunks), MAX_SNAPSHOT, &incoming)
                    .await
                    .unwrap()
            }
        };

        let mut target = StateMachine::open(&dir.path().join("follower.redb"), true).unwrap();
        let mut longer = leader_bytes.clone();
        longer.push(0);
        let (_, meta, body) = receive(SnapshotData::InMemory(longer)).await;
        let refused = target.install_snapshot(&meta, body).await.unwrap_err();
        assert_eq!(
            refused.to_string(),
            "snapshot body: malformed value: the snapshot body has 1 bytes after its last record"
        );
        assert_eq!(target.applied_state().await.unwrap().0, None);
        assert!(target.read().registry.keys.is_empty());
        assert!(target.get_current_snapshot().await.unwrap().is_none());

        let (_, meta, body) = receive(snapshot.snapshot.clone()).await;
        assert!(matches!(body, SnapshotData::Received { .. }));
        target.install_snapshot(&meta, body).await.unwrap();
        // Nothing of the received file is left in the directory it was written to.
        assert_eq!(std::fs::read_dir(&incoming).unwrap().count(), 0);
        assert_eq!(
            target.applied_state().await.unwrap().0,
            snapshot.meta.last_log_id
        );
        let (got, want) = (target.read().clone(), source.read().clone());
        assert_eq!(got, want);
        assert_eq!(
            target.audit_records(0, usize::MAX).unwrap(),
            source.audit_records(0, usize::MAX).unwrap()
        );
        let stored = target.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(stored.meta, snapshot.meta);
        assert_eq!(stored.snapshot.into_bytes().unwrap(), leader_bytes);

        // A body with a record altered in the middle of the chain (its last byte: the framing
        // still decodes) is installed all the same, as before bodies were read from files:
        // the chain check only reports it (a follower cannot do better than its leader's
        // state), and every record is stored, the altered one as sent.
        let mut expected = source.audit_records(0, usize::MAX).unwrap();
        let (seq, record) = expected[100].clone();
        let at = leader_bytes
            .windows(record.len())
            .position(|w| w == record.as_slice())
            .unwrap()
            + record.len()
            - 1;
        let mut altered = leader_bytes.clone();
        altered[at] ^= 1;
        expected[100].1[record.len() - 1] ^= 1;
        let (_, meta, body) = receive(SnapshotData::InMemory(altered)).await;
        let mut third = StateMachine::open(&dir.path().join("third.redb"), true).unwrap();
        third.install_snapshot(&meta, body).await.unwrap();
        let (chain, verified) = third.audit_verify().unwrap();
        assert_eq!(chain, source.read().audit.chain);
        let error = verified.unwrap_err();
        assert_eq!(error.first_bad_seq, seq);
        assert_eq!(third.audit_records(0, usize::MAX).unwrap(), expected);
    });
}
