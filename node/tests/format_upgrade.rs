//! The upgrade test: databases written by format version 1 (checked in under
//! `node/tests/data/format-v1/`) open in this version and read back exactly what was
//! written — the Raft log entries, the replicated state, the audit chain (to its pinned head
//! hash) and the stored snapshot — and databases of another format version are refused with
//! both versions named.
//!
//! Every later version of the signer must pass this test against these files unchanged. A
//! change to a stored type breaks it; the fix is a new format version with an upgrade path (and
//! a new `format-vN` directory), never an edit of these files.
//!
//! The files were written by this test's generator from the log in `the_log()`:
//! `QS_WRITE_FORMAT_FIXTURES=<dir> cargo nextest run -p signer-node --test format_upgrade` writes
//! them into `<dir>` (used once per format version, for that version's directory).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod admin_log;

use admin_log::SoloAdmin;
use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, RaftLogStorage, RaftSnapshotBuilder, RaftStateMachine};
use openraft::{BasicNode, EntryPayload, Membership, RaftLogReader};

type Payload = openraft::alias::EntryPayloadOf<TypeConfig>;
use signer_node::admin::Action;
use signer_node::audit::{self, AuditEvent, NodeEvent};
use signer_node::bytes::FixedBytes;
use signer_node::protection::espresso::{message::Message, EspressoIntent, Kind};
use signer_node::protection::ethereum::Eth2Intent;
use signer_node::protection::{Intent, Profile};
use signer_node::registry::KeyState;
use signer_node::replica::{
    Command, Entry, LogStore, Proposal, SignEntry, StateMachine, TypeConfig,
};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const AT_MS: u64 = 1_765_000_000_000;
/// SHA-256 of the last audit record as format 1 wrote it (pinned when the files were made).
const HEAD_HASH: &str = "1e6db131466d9eda2d034c9eb5d02c3b7f22ec07f9149848c35d5ec8e1c803f3";

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/format-v1")
}

fn eth2_pubkey() -> FixedBytes<48> {
    FixedBytes([0x11; 48])
}
fn espresso_pubkey() -> FixedBytes<128> {
    FixedBytes([0x22; 128])
}

fn entry(index: u64, payload: Payload) -> Entry {
    Entry::new(
        openraft::testing::log_id::<TypeConfig>(1, 1, index),
        payload,
    )
}

fn normal(command: Command) -> Payload {
    EntryPayload::Normal(Proposal {
        at_ms: AT_MS,
        command,
    })
}

fn sign(key_id: &str, intent: Intent) -> SignEntry {
    SignEntry {
        request_id: format!("req-{key_id}"),
        client: "client-1".into(),
        key_id: key_id.into(),
        intent,
    }
}

/// Index 1: membership {1,2,3}; 2: bootstrap; 3-6: two keys added; 7: a sign batch (three
/// signed, one refused); 8: a node event; 9-10: pause.
fn the_log() -> Vec<Entry> {
    let admin = SoloAdmin::new("format-v1", 3);
    let nodes: BTreeMap<u64, BasicNode> = (1..=3)
        .map(|id| (id, BasicNode::new(format!("127.0.0.1:{}", 7000 + id))))
        .collect();
    let membership = Membership::new(vec![BTreeSet::from([1, 2, 3])], nodes).unwrap();
    let mut payloads = vec![
        EntryPayload::Membership(membership),
        normal(admin.bootstrap()),
    ];
    let add = |id: u8, key_id: &str, profile: Profile, pk: Vec<u8>| {
        admin.approved(
            id,
            &Action::AddKey(admin_log::record(key_id, profile, pk)),
            AT_MS,
        )
    };
    for c in add(1, "eth2-a", Profile::Eth2, eth2_pubkey().0.to_vec())
        .into_iter()
        .chain(add(
            2,
            "espresso-a",
            Profile::Espresso,
            espresso_pubkey().0.to_vec(),
        ))
    {
        payloads.push(normal(c));
    }
    let root = |b: u8| FixedBytes([b; 32]);
    payloads.push(normal(Command::Sign(vec![
        sign(
            "eth2-a",
            Intent::Eth2(Eth2Intent::Block {
                pubkey: eth2_pubkey(),
                slot: 5,
                signing_root: root(1),
            }),
        ),
        sign(
            "eth2-a",
            Intent::Eth2(Eth2Intent::Attestation {
                pubkey: eth2_pubkey(),
                source_epoch: 1,
                target_epoch: 2,
                signing_root: root(2),
            }),
        ),
        sign(
            "espresso-a",
            Intent::Espresso(EspressoIntent {
                public_key: espresso_pubkey(),
                message: Message::TimeoutVote {
                    view: 3,
                    epoch: Some(1),
                },
            }),
        ),
        sign(
            "eth2-a",
            Intent::Eth2(Eth2Intent::Block {
                pubkey: eth2_pubkey(),
                slot: 4,
                signing_root: root(3),
            }),
        ),
    ])));
    payloads.push(normal(Command::Event(vec![NodeEvent::KeyLoaded {
        node: 2,
        key_id: "eth2-a".into(),
    }])));
    for c in admin.approved(3, &Action::Pause, AT_MS) {
        payloads.push(normal(c));
    }
    payloads
        .into_iter()
        .zip(1..)
        .map(|(payload, index)| entry(index, payload))
        .collect()
}

/// Copies of the checked-in files in a temporary directory (opening a redb file writes it).
fn checked_in() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.redb");
    let log = dir.path().join("raft-log.redb");
    std::fs::copy(data_dir().join("state.redb"), &state).unwrap();
    std::fs::copy(data_dir().join("raft-log.redb"), &log).unwrap();
    std::fs::copy(
        data_dir().join("state.snapshot"),
        dir.path().join("state.snapshot"),
    )
    .unwrap();
    (dir, state, log)
}

#[tokio::test]
async fn format_1_databases_open_and_read_back_what_was_written() {
    if let Some(out) = std::env::var_os("QS_WRITE_FORMAT_FIXTURES") {
        write_fixtures(Path::new(&out)).await;
    }
    let (_dir, state_path, log_path) = checked_in();
    let expected_log = the_log();

    // The Raft log: every entry decodes to what was appended.
    let mut log = LogStore::open(&log_path, true).unwrap();
    let entries = log.try_get_log_entries(0..100).await.unwrap();
    assert_eq!(entries, expected_log);
    let state = log.get_log_state().await.unwrap();
    assert_eq!(state.last_log_id.map(|l| l.index), Some(10));

    // The state: the facts the log established.
    let mut sm = StateMachine::open(&state_path, true).unwrap();
    let (last_applied, membership) = sm.applied_state().await.unwrap();
    assert_eq!(last_applied.map(|l| l.index), Some(10));
    assert_eq!(
        membership.membership().voter_ids().collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    {
        let applied = sm.read();
        let states: Vec<(&str, KeyState)> = applied
            .registry
            .keys
            .iter()
            .map(|(id, r)| (id.as_str(), r.state))
            .collect();
        assert_eq!(
            states,
            vec![
                ("espresso-a", KeyState::Active),
                ("eth2-a", KeyState::Active)
            ]
        );
        let validator = applied.protection.eth2.validators[&eth2_pubkey()];
        let block = validator.block.unwrap();
        assert_eq!(
            (block.slot, block.signing_root),
            (5, Some(FixedBytes([1; 32])))
        );
        let att = validator.attestation.unwrap();
        assert_eq!((att.source_epoch, att.target_epoch), (1, 2));
        let espresso = &applied.protection.espresso.keys[&espresso_pubkey()];
        assert_eq!(espresso.windows[&Kind::TimeoutVote].newest_view, 3);
        assert!(applied.admin.bootstrapped);
        assert!(applied.admin.paused);
        assert_eq!(applied.admin.cluster_id, "format-v1");
    }

    // The audit chain: 13 records (membership, bootstrap, 2 x propose+approve, 4 sign
    // decisions, 1 node event, propose+approve of the pause), verifying to the pinned head.
    let (chain, verified) = sm.audit_verify().unwrap();
    assert_eq!(chain.head.seq, 13);
    assert_eq!(verified, Ok(chain.head));
    assert_eq!(hex::encode(chain.head.hash), HEAD_HASH);
    let records = sm.audit_records(0, 100).unwrap();
    let refused = audit::decode(&records[9].1).unwrap();
    match refused.event {
        AuditEvent::Sign(d) => assert_eq!(
            (d.key_id.as_str(), d.reason_code.as_str()),
            ("eth2-a", "block_slot_not_above_watermark")
        ),
        other => panic!("record 10 is {other:?}"),
    }

    // The stored snapshot installs into a fresh state machine as the same state.
    let snapshot = sm
        .get_current_snapshot()
        .await
        .unwrap()
        .expect("a stored snapshot");
    assert_eq!(snapshot.meta.last_log_id.map(|l| l.index), Some(10));
    let fresh_dir = tempfile::tempdir().unwrap();
    let mut fresh = StateMachine::open(&fresh_dir.path().join("state.redb"), true).unwrap();
    fresh
        .install_snapshot(&snapshot.meta, snapshot.snapshot)
        .await
        .unwrap();
    assert_eq!(*fresh.read(), *sm.read());
    assert_eq!(fresh.audit_records(0, 100).unwrap(), records);
}

/// Set a database's stored format version (as a newer signer would have written it).
fn set_format(path: &Path, table: &str, version: u16) {
    let db = redb::Database::create(path).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let def: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new(table);
        let mut t = txn.open_table(def).unwrap();
        t.insert("format", version.to_le_bytes().as_slice())
            .unwrap();
    }
    txn.commit().unwrap();
}

fn open_error<T>(r: std::io::Result<T>) -> String {
    match r {
        Ok(_) => panic!("opened"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_database_of_a_newer_format_is_refused_naming_both_versions() {
    let (_dir, state_path, log_path) = checked_in();
    set_format(&state_path, "sm_meta", 2);
    set_format(&log_path, "raft_meta", 2);
    assert_eq!(
        open_error(StateMachine::open(&state_path, true)),
        format!(
            "state database {}: written in format version 2, newer than this binary's format \
             version 1: run a signer that reads format 2",
            state_path.display()
        )
    );
    assert_eq!(
        open_error(LogStore::open(&log_path, true)),
        format!(
            "log database {}: written in format version 2, newer than this binary's format \
             version 1: run a signer that reads format 2",
            log_path.display()
        )
    );
}

#[test]
fn a_database_from_before_format_versions_is_refused() {
    // What the JSON-era signer wrote: values without a format key.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let def: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("sm_meta");
            let mut t = txn.open_table(def).unwrap();
            t.insert(
                "last_applied",
                br#"{"leader_id":{"term":1,"node_id":1},"index":7}"#.as_slice(),
            )
            .unwrap();
        }
        txn.commit().unwrap();
    }
    assert_eq!(
        open_error(StateMachine::open(&path, true)),
        format!(
            "state database {}: written in format version 0, older than this binary's format \
             version 1, and there is no upgrade from it",
            path.display()
        )
    );
}

/// Write the fixture files from `the_log()` (run only when introducing a format version).
async fn write_fixtures(out: &Path) {
    std::fs::create_dir_all(out).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("raft-log.redb");
    let state_path = dir.path().join("state.redb");
    {
        let mut log = LogStore::open(&log_path, true).unwrap();
        log.append(the_log(), IOFlushed::noop()).await.unwrap();
        let mut sm = StateMachine::open(&state_path, true).unwrap();
        let items: Vec<Result<_, std::io::Error>> =
            the_log().into_iter().map(|e| Ok((e, None))).collect();
        sm.apply(futures::stream::iter(items)).await.unwrap();
        sm.get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();
        sm.sync().unwrap();
        println!(
            "head hash: {}",
            hex::encode(sm.audit_chain().unwrap().head.hash)
        );
    }
    for path in [&log_path, &state_path] {
        let mut db = redb::Database::create(path).unwrap();
        db.compact().unwrap();
        drop(db);
        std::fs::copy(path, out.join(path.file_name().unwrap())).unwrap();
    }
    let snapshot = dir.path().join("state.snapshot");
    std::fs::copy(&snapshot, out.join("state.snapshot")).unwrap();
}
