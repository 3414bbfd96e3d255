//! The upgrade test: databases written by every format version (checked in under
//! `node/tests/data/format-v1/` to `format-v4/`) open in this version and read back exactly
//! what was written — the Raft log entries, the replicated state, the audit chain (to its pinned
//! head hash) and the stored snapshot — and databases of a format this binary does not read
//! are refused with both versions named. Format 2 added the revoked certificates to the admin
//! state: format-1 state reads with none revoked. Format 3 added the Espresso view horizon:
//! older state reads with the 32 views every older signer used. Format 4 let a sealed key's
//! data key be shared by several records (same layout): its log adds a key whose record holds a
//! shared data key. An older database is stamped format 4 once opened.
//!
//! Every later version of the signer must pass this test against these files unchanged. A
//! change to a stored type breaks it; the fix is a new format version with an upgrade path (and
//! a new `format-vN` directory), never an edit of these files.
//!
//! The files were written by this test's generator from the log of their version
//! (`the_log(1)` to `the_log(4)`): `QS_WRITE_FORMAT_FIXTURES=<dir> cargo nextest run -p
//! signer-node --test format_upgrade` writes this version's into `<dir>` (used once per format
//! version, for that version's directory).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod admin_log;

use admin_log::SoloAdmin;
use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, RaftLogStorage, RaftSnapshotBuilder, RaftStateMachine};
use openraft::{BasicNode, EntryPayload, Membership, RaftLogReader};

type Payload = openraft::alias::EntryPayloadOf<TypeConfig>;
use signer_core::sealed::WrappedDataKey;
use signer_node::admin::{Action, Fingerprint};
use signer_node::audit::{self, AuditEvent, NodeEvent};
use signer_node::bytes::FixedBytes;
use signer_node::protection::espresso::message::{DaData, Message};
use signer_node::protection::espresso::{EspressoIntent, Kind, ViewHorizon};
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
/// The same for format 2.
const HEAD_HASH_V2: &str = "dabadd7e75460f092d60da79c867c92dcd8179fa362ed7fc63b5e497556805e9";
/// The same for format 3.
const HEAD_HASH_V3: &str = "af8b586d998b94e4758fb702dabe7e3dbd33ad09d5dea6c7a3ecb7ef33682672";
/// The same for format 4.
const HEAD_HASH_V4: &str = "0f631565757a8899e0f4b3d1abc47ec32dcc1cc326fc917ec27340fbc4f3d0a0";
/// The Espresso view horizon format 3's log sets.
const HORIZON_V3: u64 = 7;
/// The id and the KEK's wrapped bytes of the shared data key of the key format 4's log adds.
const SHARED_DEK_ID: [u8; 16] = [0x5d; 16];
const SHARED_DEK_WRAPPED: [u8; 60] = [0x33; 60];

fn data_dir(version: u16) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/data/format-v{version}"))
}

/// A certificate (DER, naming `seq-9`) that format 2's log revokes.
fn revoked_certificate() -> Vec<u8> {
    std::fs::read(data_dir(2).join("revoked-seq-9.der")).unwrap()
}

/// The fingerprint format 2's log revokes without a certificate.
const BARE_FINGERPRINT: Fingerprint = Fingerprint([0x5e; 32]);

fn eth2_pubkey() -> FixedBytes<48> {
    FixedBytes([0x11; 48])
}
fn espresso_pubkey() -> FixedBytes<128> {
    FixedBytes([0x22; 128])
}
/// The key format 4's log adds, sealed under a shared data key.
fn shared_pubkey() -> FixedBytes<48> {
    FixedBytes([0x44; 48])
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
/// signed, one refused); 8: a node event; 9-10: pause. Format 2 goes on: 11-12: a certificate
/// revoked with the certificate, 13-14: one revoked by its fingerprint alone. Format 3 goes
/// on: 15-16: the horizon set, 17-18: resume, 19: a sign batch (one signed, one refused).
/// Format 4 goes on: 20-21: `eth2-shared` added, its sealed key under a shared data key.
fn the_log(version: u16) -> Vec<Entry> {
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
    if version >= 2 {
        let certificate = revoked_certificate();
        let revocations = [
            Action::RevokeCertificate {
                fingerprint: Fingerprint::of(&certificate),
                certificate,
            },
            Action::RevokeCertificate {
                fingerprint: BARE_FINGERPRINT,
                certificate: Vec::new(),
            },
        ];
        for (id, action) in (4..).zip(&revocations) {
            for c in admin.approved(id, action, AT_MS) {
                payloads.push(normal(c));
            }
        }
    }
    if version >= 3 {
        let horizon = Action::SetEspressoViewHorizon(ViewHorizon::new(HORIZON_V3).unwrap());
        for c in admin.approved(6, &horizon, AT_MS) {
            payloads.push(normal(c));
        }
        // Paused since the pause above: both are refused as `paused`, so resume first. Then a
        // DA vote 7 views above the key's timeout vote (view 3) signs, one 8 above is refused.
        for c in admin.approved(7, &Action::Resume, AT_MS) {
            payloads.push(normal(c));
        }
        let da_vote = |view| {
            sign(
                "espresso-a",
                Intent::Espresso(EspressoIntent {
                    public_key: espresso_pubkey(),
                    message: Message::DaVote {
                        view,
                        data: DaData {
                            payload_commit: root(4),
                            next_epoch_payload_commit: None,
                            epoch: None,
                        },
                    },
                }),
            )
        };
        payloads.push(normal(Command::Sign(vec![da_vote(10), da_vote(11)])));
    }
    if version >= 4 {
        let mut shared =
            admin_log::record("eth2-shared", Profile::Eth2, shared_pubkey().0.to_vec());
        shared.sealed.as_mut().unwrap().wrapped_dek = WrappedDataKey::Shared {
            id: SHARED_DEK_ID,
            wrapped: &SHARED_DEK_WRAPPED,
        }
        .to_bytes();
        for c in admin.approved(8, &Action::AddKey(shared), AT_MS) {
            payloads.push(normal(c));
        }
    }
    payloads
        .into_iter()
        .zip(1..)
        .map(|(payload, index)| entry(index, payload))
        .collect()
}

/// Copies of the checked-in files of format `version` in a temporary directory (opening a
/// redb file writes it): the databases and the snapshot's files (`state.snapshot` up to format
/// 3; `state.snapshot-head` and its records file from format 4 on).
fn checked_in(version: u16) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.redb");
    let log = dir.path().join("raft-log.redb");
    let data = data_dir(version);
    std::fs::copy(data.join("state.redb"), &state).unwrap();
    std::fs::copy(data.join("raft-log.redb"), &log).unwrap();
    let mut snapshot_files: Vec<String> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.starts_with("state.snapshot"))
        .collect();
    snapshot_files.sort();
    let expected: &[&str] = if version <= 3 {
        &["state.snapshot"]
    } else {
        &["state.snapshot-head", "state.snapshot-records-1"]
    };
    assert_eq!(snapshot_files, expected);
    for name in &snapshot_files {
        std::fs::copy(data.join(name), dir.path().join(name)).unwrap();
    }
    (dir, state, log)
}

/// A database's stored format version.
fn stored_format(path: &Path, table: &str) -> u16 {
    use redb::ReadableDatabase;
    let db = redb::Database::create(path).unwrap();
    let txn = db.begin_read().unwrap();
    let def: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new(table);
    let t = txn.open_table(def).unwrap();
    let bytes = t.get("format").unwrap().unwrap().value().to_vec();
    u16::from_le_bytes(bytes.try_into().unwrap())
}

#[tokio::test]
async fn format_1_databases_open_and_read_back_what_was_written() {
    if let Some(out) = std::env::var_os("QS_WRITE_FORMAT_FIXTURES") {
        write_fixtures(Path::new(&out)).await;
    }
    checked_in_reads_back(1, 13, HEAD_HASH).await;
}

#[tokio::test]
async fn format_2_databases_open_and_read_back_what_was_written() {
    checked_in_reads_back(2, 17, HEAD_HASH_V2).await;
}

#[tokio::test]
async fn format_3_databases_open_and_read_back_what_was_written() {
    checked_in_reads_back(3, 23, HEAD_HASH_V3).await;
}

#[tokio::test]
async fn format_4_databases_open_and_read_back_what_was_written() {
    checked_in_reads_back(4, 25, HEAD_HASH_V4).await;
}

/// The checked-in databases of format `version`: stamped `version`, they read back what
/// `the_log(version)` established ([`read_back`]), and once opened by this format they say
/// so: an older binary refuses them now.
async fn checked_in_reads_back(version: u16, head_seq: u64, head_hash: &str) {
    let (_dir, state_path, log_path) = checked_in(version);
    let formats = || {
        (
            stored_format(&log_path, "raft_meta"),
            stored_format(&state_path, "sm_meta"),
        )
    };
    assert_eq!(formats(), (version, version));
    read_back(version, &state_path, &log_path, head_seq, head_hash).await;
    assert_eq!(formats(), (4, 4));
}

/// Open the databases of format `version` and check that they hold what `the_log(version)`
/// established, with `head_seq` audit records whose last one hashes to `head_hash`.
async fn read_back(
    version: u16,
    state_path: &Path,
    log_path: &Path,
    head_seq: u64,
    head_hash: &str,
) {
    let expected_log = the_log(version);
    let last_index = expected_log.len() as u64;

    // The Raft log: every entry decodes to what was appended.
    let mut log = LogStore::open(log_path, true).unwrap();
    let entries = log.try_get_log_entries(0..100).await.unwrap();
    assert_eq!(entries, expected_log);
    let state = log.get_log_state().await.unwrap();
    assert_eq!(state.last_log_id.map(|l| l.index), Some(last_index));
    drop(log);

    // The state: the facts the log established.
    let mut sm = StateMachine::open(state_path, true).unwrap();
    let (last_applied, membership) = sm.applied_state().await.unwrap();
    assert_eq!(last_applied.map(|l| l.index), Some(last_index));
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
        let mut expected_states = vec![
            ("espresso-a", KeyState::Active),
            ("eth2-a", KeyState::Active),
        ];
        if version >= 4 {
            expected_states.push(("eth2-shared", KeyState::Active));
        }
        assert_eq!(states, expected_states);
        // Format 4's log adds a key sealed under a shared data key; the others are their own.
        let sealed = |key_id: &str| applied.registry.keys[key_id].sealed.clone().unwrap();
        assert_eq!(
            sealed("eth2-a").data_key(),
            Ok(WrappedDataKey::Own(&[0; 60]))
        );
        if version >= 4 {
            let shared = sealed("eth2-shared");
            assert_eq!(
                shared.data_key(),
                Ok(WrappedDataKey::Shared {
                    id: SHARED_DEK_ID,
                    wrapped: &SHARED_DEK_WRAPPED,
                })
            );
            assert_eq!(
                applied.registry.keys["eth2-shared"].public_key,
                shared_pubkey().0.to_vec()
            );
        }
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
        // Format 3's log sets the horizon, then resumes and signs one DA vote under it; the
        // older formats read with the horizon every older signer used.
        let (horizon, paused, da_votes) = match version {
            1 | 2 => (32, true, None),
            _ => (HORIZON_V3, false, Some(10)),
        };
        assert_eq!(applied.admin.espresso_view_horizon.views(), horizon);
        assert_eq!(applied.admin.paused, paused);
        assert_eq!(
            espresso.windows.get(&Kind::DaVote).map(|w| w.newest_view),
            da_votes
        );
        assert_eq!(applied.admin.cluster_id, "format-v1");
        // Format 1 had no revocations; format 2's log revoked two certificates.
        let revoked: Vec<(String, Option<&str>)> = applied
            .admin
            .revoked
            .iter()
            .map(|(fp, r)| (fp.clone(), r.identity.as_deref()))
            .collect();
        let mut expected = Vec::new();
        if version >= 2 {
            expected = vec![
                (
                    Fingerprint::of(&revoked_certificate()).to_hex(),
                    Some("seq-9"),
                ),
                (BARE_FINGERPRINT.to_hex(), None),
            ];
            expected.sort();
        }
        assert_eq!(revoked, expected);
    }

    // The audit chain: 13 records in format 1 (membership, bootstrap, 2 x propose+approve,
    // 4 sign decisions, 1 node event, propose+approve of the pause), 4 more in format 2 (2 x
    // propose+approve of a revocation), 6 more in format 3 (propose+approve of the horizon and
    // of the resume, 2 sign decisions), 2 more in format 4 (propose+approve of the shared-key
    // record), verifying to the pinned head.
    let (chain, verified) = sm.audit_verify().unwrap();
    assert_eq!(chain.head.seq, head_seq);
    assert_eq!(verified, Ok(chain.head));
    assert_eq!(hex::encode(chain.head.hash), head_hash);
    let records = sm.audit_records(0, 100).unwrap();
    let refused = audit::decode(&records[9].1).unwrap();
    match refused.event {
        AuditEvent::Sign(d) => assert_eq!(
            (d.key_id.as_str(), d.reason_code.as_str()),
            ("eth2-a", "block_slot_not_above_watermark")
        ),
        other => panic!("record 10 is {other:?}"),
    }
    if version >= 3 {
        let beyond = audit::decode(&records[22].1).unwrap();
        match beyond.event {
            AuditEvent::Sign(d) => assert_eq!(
                (d.key_id.as_str(), d.reason_code.as_str()),
                ("espresso-a", "beyond_view_horizon")
            ),
            other => panic!("record 23 is {other:?}"),
        }
    }
    // Format 4's log ends with the proposal and the approval that added the shared-key record.
    let after_format_3: Vec<(String, String)> = records[records.len().min(23)..]
        .iter()
        .map(|(_, bytes)| match audit::decode(bytes).unwrap().event {
            AuditEvent::Admin { action, result, .. } => (action, result),
            other => panic!("a record after the 23rd is {other:?}"),
        })
        .collect();
    let mut expected = Vec::new();
    if version >= 4 {
        let added = format!(
            "{}: add generated eth2 key \"eth2-shared\" with public key 0x{}",
            "08".repeat(32),
            "44".repeat(48)
        );
        expected = vec![
            (
                format!("propose {added}"),
                "open, needs 1 approval(s)".to_string(),
            ),
            (
                format!("approve {added}"),
                "executed: key \"eth2-shared\" changed".to_string(),
            ),
        ];
    }
    assert_eq!(after_format_3, expected);

    // The stored snapshot installs into a fresh state machine as the same state.
    let snapshot = sm
        .get_current_snapshot()
        .await
        .unwrap()
        .expect("a stored snapshot");
    assert_eq!(snapshot.meta.last_log_id.map(|l| l.index), Some(last_index));
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
    let (_dir, state_path, log_path) = checked_in(4);
    set_format(&state_path, "sm_meta", 5);
    set_format(&log_path, "raft_meta", 5);
    assert_eq!(
        open_error(StateMachine::open(&state_path, true)),
        format!(
            "state database {}: written in format version 5, newer than this binary's format \
             version 4: run a signer that reads format 5",
            state_path.display()
        )
    );
    assert_eq!(
        open_error(LogStore::open(&log_path, true)),
        format!(
            "log database {}: written in format version 5, newer than this binary's format \
             version 4: run a signer that reads format 5",
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
             version 4, and there is no upgrade from it",
            path.display()
        )
    );
}

/// Write the fixture files of this format version from `the_log(VERSION)` (run only when
/// introducing a format version).
async fn write_fixtures(out: &Path) {
    std::fs::create_dir_all(out).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("raft-log.redb");
    let state_path = dir.path().join("state.redb");
    {
        let mut log = LogStore::open(&log_path, true).unwrap();
        log.append(the_log(signer_node::format::VERSION), IOFlushed::noop())
            .await
            .unwrap();
        let mut sm = StateMachine::open(&state_path, true).unwrap();
        let items: Vec<Result<_, std::io::Error>> = the_log(signer_node::format::VERSION)
            .into_iter()
            .map(|e| Ok((e, None)))
            .collect();
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
    // The snapshot's head and records files (the format-1 to 3 fixtures hold the single
    // `state.snapshot` file nodes wrote before).
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let name = entry.unwrap().file_name();
        if name.to_string_lossy().starts_with("state.snapshot-") {
            std::fs::copy(dir.path().join(&name), out.join(&name)).unwrap();
        }
    }
}
