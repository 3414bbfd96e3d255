//! openraft's storage conformance suite, run against the redb log store and state machine.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use openraft::testing::log::{StoreBuilder, Suite};
use openraft::type_config::TypeConfigExt;
use openraft::StorageError;
use signer_node::replica::{Entry, LogStore, StateMachine, TypeConfig};

/// The stores, with a journal of `.0` bytes (`None`: the default).
struct RedbBuilder(Option<u64>);

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for RedbBuilder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError<TypeConfig>> {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("raft-log.redb");
        let log = match self.0 {
            None => LogStore::open(&path, true),
            Some(capacity) => LogStore::open_with_journal_of(&path, true, capacity),
        }
        .expect("log store");
        let sm = StateMachine::open(&dir.path().join("state.redb"), true).expect("state machine");
        Ok((dir, log, sm))
    }
}

/// Blank entries at indexes `0..count` of term 1, leader 1.
fn blank_entries(count: u64) -> Vec<Entry> {
    blank(1, 0..count)
}

/// Blank entries at `indexes` of `term`, leader 1.
fn blank(term: u64, indexes: std::ops::Range<u64>) -> Vec<Entry> {
    use openraft::entry::RaftEntry;
    indexes
        .map(|i| {
            Entry::new(
                openraft::testing::log_id::<TypeConfig>(term, 1, i),
                openraft::EntryPayload::Blank,
            )
        })
        .collect()
}

#[test]
fn openraft_storage_suite_on_redb() {
    TypeConfig::run(async {
        Suite::test_all(RedbBuilder(None))
            .await
            .expect("storage suite");
    });
}

/// The suite again with a journal of 256 bytes, where most batches do not fit: they are made
/// durable by a checkpoint instead.
#[test]
fn openraft_storage_suite_with_a_journal_that_is_mostly_full() {
    TypeConfig::run(async {
        Suite::test_all(RedbBuilder(Some(256)))
            .await
            .expect("storage suite");
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

/// Crash tests: a child process (this test binary, running the same test) stores entries and
/// exits at once (`std::process::exit`: no destructor runs, so the writer makes no last
/// checkpoint), as a node that crashed; the parent opens what it left.
mod crash {
    use super::*;
    use openraft::entry::RaftEntry;
    use openraft::storage::{IOFlushed, RaftLogStorage};
    use openraft::RaftLogReader;
    use signer_node::replica::{LogId, Vote};
    use std::path::Path;

    const SCENARIO: &str = "LOG_CRASH_SCENARIO";
    const DIR: &str = "LOG_CRASH_DIR";

    /// In the child: run the scenario its environment names and exit; in the parent: nothing.
    fn as_child() {
        let Ok(scenario) = std::env::var(SCENARIO) else {
            return;
        };
        let path = Path::new(&std::env::var_os(DIR).unwrap()).join("raft-log.redb");
        TypeConfig::run(async move {
            let capacity = match scenario.as_str() {
                "small-journal" => 300,
                _ => 8 << 20,
            };
            let mut log = LogStore::open_with_journal_of(&path, true, capacity).unwrap();
            log.save_vote(&Vote::new(3, 2)).await.unwrap();
            match scenario.as_str() {
                "appends" | "small-journal" => {
                    for chunk in blank_entries(40).chunks(5) {
                        append(&mut log, chunk.to_vec()).await;
                    }
                }
                "truncated" => {
                    append(&mut log, blank(1, 0..10)).await;
                    log.truncate_after(Some(openraft::testing::log_id::<TypeConfig>(1, 1, 5)))
                        .await
                        .unwrap();
                    append(&mut log, blank(2, 6..9)).await;
                }
                other => panic!("no scenario {other}"),
            }
            std::process::exit(0);
        });
    }

    /// Append `entries` and wait until they are reported durable.
    async fn append(log: &mut LogStore, entries: Vec<Entry>) {
        let (stored, reported) = TypeConfig::oneshot();
        log.append(entries, IOFlushed::signal(stored))
            .await
            .unwrap();
        reported.await.unwrap().unwrap();
    }

    /// Run `test` in a child process playing `scenario` in `dir`, and wait for its exit.
    fn crash_after(test: &str, scenario: &str, dir: &Path) {
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args([test, "--exact", "--nocapture"])
            .env(SCENARIO, scenario)
            .env(DIR, dir)
            .status()
            .unwrap();
        assert!(
            status.success(),
            "the child process of {scenario}: {status}"
        );
    }

    /// Every entry, the last log id and the vote, read from a store opened at `dir`.
    fn reopen(dir: &Path) -> (Vec<Entry>, Option<LogId>, Option<Vote>) {
        TypeConfig::run(async {
            let mut log = LogStore::open(&dir.join("raft-log.redb"), true).unwrap();
            let entries = log.try_get_log_entries(0..100).await.unwrap();
            let last = log.get_log_state().await.unwrap().last_log_id;
            (entries, last, log.read_vote().await.unwrap())
        })
    }

    /// Entries reported durable are all there after a crash, taken from the journal: the same
    /// database without its journal holds none of them.
    #[test]
    fn appends_reported_durable_survive_a_crash() {
        as_child();
        for scenario in ["appends", "small-journal"] {
            let dir = tempfile::tempdir().unwrap();
            crash_after(
                "crash::appends_reported_durable_survive_a_crash",
                scenario,
                dir.path(),
            );
            if scenario == "appends" {
                // The database alone: its commits since the open were not synced.
                let bare = tempfile::tempdir().unwrap();
                std::fs::copy(
                    dir.path().join("raft-log.redb"),
                    bare.path().join("raft-log.redb"),
                )
                .unwrap();
                let (entries, last, _) = reopen(bare.path());
                assert_eq!((entries, last), (vec![], None));
            }
            let (entries, last, vote) = reopen(dir.path());
            assert_eq!(entries, blank_entries(40), "{scenario}");
            assert_eq!(last, Some(blank_entries(40)[39].log_id()), "{scenario}");
            assert_eq!(vote, Some(Vote::new(3, 2)), "{scenario}");
            // Opened once, the database holds them all (a checkpoint), and the store goes on.
            TypeConfig::run(async {
                let mut log = LogStore::open(&dir.path().join("raft-log.redb"), true).unwrap();
                append(&mut log, blank(1, 40..41)).await;
            });
            std::fs::remove_file(dir.path().join("raft-log.journal")).unwrap();
            assert_eq!(reopen(dir.path()).0, blank_entries(41), "{scenario}");
        }
    }

    /// A truncation is a checkpoint: the journal's records of the entries it removed never
    /// come back, and the entries written after it are there.
    #[test]
    fn truncated_entries_do_not_come_back_after_a_crash() {
        as_child();
        let dir = tempfile::tempdir().unwrap();
        crash_after(
            "crash::truncated_entries_do_not_come_back_after_a_crash",
            "truncated",
            dir.path(),
        );
        let expected: Vec<Entry> = blank(1, 0..6).into_iter().chain(blank(2, 6..9)).collect();
        let (entries, last, _) = reopen(dir.path());
        assert_eq!(entries, expected);
        assert_eq!(last, Some(expected[8].log_id()));
    }
}
