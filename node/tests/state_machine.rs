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
use signer_node::replica::{Command, Entry, SignEntry, StateMachine, TypeConfig};

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

/// A snapshot install whose write fails (a full disk: here the snapshot file's temporary path
/// is taken by a directory) changes nothing that a restart reads: the database must not claim
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
        let snapshot = {
            use openraft::storage::RaftSnapshotBuilder;
            source
                .get_snapshot_builder()
                .await
                .build_snapshot()
                .await
                .unwrap()
        };
        assert_eq!(snapshot.meta.last_log_id, Some(last));

        let path = dir.path().join("target.redb");
        let blocked = dir.path().join("target.snapshot.tmp");
        std::fs::create_dir(&blocked).unwrap();
        let mut target = StateMachine::open(&path, true).unwrap();
        let failed = target
            .install_snapshot(&snapshot.meta, snapshot.snapshot.clone())
            .await;
        let error = failed.expect_err("the snapshot file cannot be written");
        assert!(
            error.to_string().contains("target.snapshot.tmp"),
            "the error names the file: {error}"
        );
        drop(target);

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
        assert_eq!(stored.snapshot, snapshot.snapshot);
    });
}
