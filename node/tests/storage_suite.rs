//! openraft's storage conformance suite, run against the redb log store and state machine.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use openraft::testing::log::{StoreBuilder, Suite};
use openraft::type_config::TypeConfigExt;
use openraft::StorageError;
use signer_node::replica::{LogStore, StateMachine, TypeConfig};

struct RedbBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for RedbBuilder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError<TypeConfig>> {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = LogStore::open(&dir.path().join("raft-log.redb"), true).expect("log store");
        let sm = StateMachine::open(&dir.path().join("state.redb"), true).expect("state machine");
        Ok((dir, log, sm))
    }
}

/// Blank entries at indexes `0..count` of term 1, leader 1.
fn blank_entries(count: u64) -> Vec<signer_node::replica::Entry> {
    use openraft::entry::RaftEntry;
    (0..count)
        .map(|i| {
            signer_node::replica::Entry::new(
                openraft::testing::log_id::<TypeConfig>(1, 1, i),
                openraft::EntryPayload::Blank,
            )
        })
        .collect()
}

#[test]
fn openraft_storage_suite_on_redb() {
    TypeConfig::run(async {
        Suite::test_all(RedbBuilder).await.expect("storage suite");
    });
}

/// A node's state machine applies no entry its own Raft log has not stored. openraft may apply
/// what a quorum of other nodes holds while this node's write is still running; a state ahead
/// of its log after a crash would make openraft purge the log past its snapshot at the next
/// start. The log store's durable index says how far the log is stored, truncation included.
#[test]
fn the_state_machine_applies_only_entries_its_log_has_stored() {
    use openraft::entry::RaftEntry;
    use openraft::storage::{IOFlushed, RaftLogStorage, RaftStateMachine};
    use std::time::Duration;
    TypeConfig::run(async {
        let dir = tempfile::tempdir().unwrap();
        let mut log = LogStore::open(&dir.path().join("raft-log.redb"), true).unwrap();
        let sm = StateMachine::open(&dir.path().join("state.redb"), true)
            .unwrap()
            .applying_only_stored(log.durable_index());
        let entries = blank_entries(3);
        let last = entries[2].log_id();
        assert_eq!(*log.durable_index().borrow(), None);

        let mut applier = sm.clone();
        let to_apply = entries.clone();
        let mut applying = Box::pin(async move {
            let stream = futures::stream::iter(to_apply.into_iter().map(|e| Ok((e, None))));
            applier.apply(stream).await
        });
        let early = tokio::time::timeout(Duration::from_millis(300), &mut applying).await;
        assert!(early.is_err(), "applied entries the log has not stored");
        assert_eq!(sm.clone().applied_state().await.unwrap().0, None);

        let (stored, reported) = TypeConfig::oneshot();
        log.append(entries.clone(), IOFlushed::signal(stored))
            .await
            .unwrap();
        reported.await.unwrap().unwrap();
        assert_eq!(*log.durable_index().borrow(), Some(2));
        applying.await.unwrap();
        assert_eq!(sm.clone().applied_state().await.unwrap().0, Some(last));

        // A truncation lowers the durable index to what is left.
        log.truncate_after(Some(entries[0].log_id())).await.unwrap();
        assert_eq!(*log.durable_index().borrow(), Some(0));
        // Reopened, the index starts at the last stored entry.
        drop(log);
        let log = LogStore::open(&dir.path().join("raft-log.redb"), true).unwrap();
        assert_eq!(*log.durable_index().borrow(), Some(0));
    });
}

/// openraft saves the committed id before every apply. The log store queues it behind the
/// appends instead of writing it at once (a write would wait for the writer thread's fsync and
/// stall the Raft core): it reads back at once, and after a reopen from the database.
#[test]
fn the_committed_id_reads_back_at_once_and_after_a_reopen() {
    use openraft::entry::RaftEntry;
    use openraft::storage::{IOFlushed, RaftLogStorage};
    use openraft::RaftLogReader;
    TypeConfig::run(async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raft-log.redb");
        let mut log = LogStore::open(&path, true).unwrap();
        assert_eq!(log.read_committed().await.unwrap(), None);
        let entries = blank_entries(4);
        let (stored, reported) = TypeConfig::oneshot();
        log.append(entries[..3].to_vec(), IOFlushed::signal(stored))
            .await
            .unwrap();
        log.save_committed(Some(entries[1].log_id())).await.unwrap();
        assert_eq!(
            log.read_committed().await.unwrap(),
            Some(entries[1].log_id())
        );
        reported.await.unwrap().unwrap();
        // Queued between appends, it is written with them; the last one saved wins.
        log.save_committed(Some(entries[2].log_id())).await.unwrap();
        let (stored, reported) = TypeConfig::oneshot();
        log.append(entries[3..].to_vec(), IOFlushed::signal(stored))
            .await
            .unwrap();
        reported.await.unwrap().unwrap();
        drop(log);

        let mut log = LogStore::open(&path, true).unwrap();
        assert_eq!(
            log.read_committed().await.unwrap(),
            Some(entries[2].log_id())
        );
        let read = log.try_get_log_entries(0..4).await.unwrap();
        assert_eq!(read, entries);
    });
}
