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
    use std::collections::BTreeMap;
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
            if let Some(seed) = scenario.strip_prefix("generated-") {
                let plan = Plan::of(seed.parse().unwrap());
                plan.run_on_store(&path).await;
                std::process::exit(0);
            }
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

    /// One step of a generated run.
    #[derive(Debug, Clone)]
    enum Op {
        /// Append these entries as one call, or as several calls in flight at once, then wait
        /// until every one is reported.
        Append(Vec<Vec<Entry>>),
        /// Remove the entries after this one (and raise the term: a new leader).
        TruncateAfter(Option<LogId>),
        Purge(LogId),
        SaveVote(Vote),
        /// Stop the store cleanly and open it again.
        Reopen,
    }

    /// A generated run: the journal's size and the steps, from a seed, and what each step
    /// leaves (the model: entries by index, the last purged id, the vote).
    struct Plan {
        capacity: u64,
        ops: Vec<Op>,
        /// What the steps leave.
        expected: Model,
    }

    #[derive(Debug, Default, PartialEq)]
    struct Model {
        entries: BTreeMap<u64, Entry>,
        purged: Option<LogId>,
        vote: Option<Vote>,
    }

    impl Model {
        fn apply(&mut self, op: &Op) {
            match op {
                Op::Append(calls) => {
                    for e in calls.iter().flatten() {
                        self.entries.insert(e.index(), e.clone());
                    }
                }
                Op::TruncateAfter(last) => {
                    let start = last.map(|l| l.index() + 1).unwrap_or(0);
                    self.entries.retain(|i, _| *i < start);
                }
                Op::Purge(id) => {
                    self.entries.retain(|i, _| *i > id.index());
                    self.purged = Some(*id);
                }
                Op::SaveVote(v) => self.vote = Some(*v),
                Op::Reopen => {}
            }
        }

        /// The index the next entry takes.
        fn next_index(&self) -> u64 {
            match (self.entries.keys().next_back(), self.purged) {
                (Some(last), _) => last + 1,
                (None, Some(p)) => p.index() + 1,
                (None, None) => 0,
            }
        }
    }

    impl Plan {
        fn of(seed: u64) -> Plan {
            use rand::{Rng, SeedableRng};
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let capacity = [150, 400, NEVER_FULL][rng.gen_range(0..3)];
            let mut model = Model::default();
            let mut term = 1;
            let mut ops = Vec::new();
            for _ in 0..rng.gen_range(10..40) {
                let next = model.next_index();
                let first = model.purged.map(|p| p.index() + 1).unwrap_or(0);
                let op = match rng.gen_range(0..100) {
                    0..=54 => {
                        let mut at = next;
                        let calls = (0..rng.gen_range(1..4))
                            .map(|_| {
                                let n = rng.gen_range(1..6);
                                let call = blank(term, at..at + n);
                                at += n;
                                call
                            })
                            .collect();
                        Op::Append(calls)
                    }
                    55..=69 if next > first => {
                        let keep = rng.gen_range(first..next);
                        term += 1;
                        Op::TruncateAfter(match keep {
                            // Everything after the purge point, or after nothing at all.
                            k if k == first => model.purged,
                            k => Some(model.entries[&(k - 1)].log_id()),
                        })
                    }
                    70..=79 if next > first => {
                        // Up to the last entry, or (as a snapshot install does) beyond it.
                        let upto = rng.gen_range(first..next + 3);
                        let id = model
                            .entries
                            .get(&upto)
                            .map(|e| e.log_id())
                            .unwrap_or(openraft::testing::log_id::<TypeConfig>(term, 1, upto));
                        Op::Purge(id)
                    }
                    80..=89 => Op::SaveVote(Vote::new(term, rng.gen_range(1..4))),
                    _ => Op::Reopen,
                };
                model.apply(&op);
                ops.push(op);
            }
            Plan {
                capacity,
                ops,
                expected: model,
            }
        }

        /// The steps on a real store at `path` (in the child, which then exits). After each
        /// step that ends in a checkpoint (an open, a truncation, a purge), the database file
        /// is copied to [`CHECKPOINTED`]: what a power loss could leave of it at most, as
        /// long as no full journal made a checkpoint of its own since.
        async fn run_on_store(&self, path: &Path) {
            let open = || LogStore::open_with_journal_of(path, true, self.capacity).unwrap();
            let keep_checkpoint = || {
                std::fs::copy(path, path.with_file_name(CHECKPOINTED)).unwrap();
            };
            let mut log = open();
            keep_checkpoint();
            for op in &self.ops {
                match op {
                    Op::Append(calls) => {
                        let mut reports = Vec::new();
                        for call in calls {
                            let (stored, reported) = TypeConfig::oneshot();
                            log.append(call.clone(), IOFlushed::signal(stored))
                                .await
                                .unwrap();
                            reports.push(reported);
                        }
                        for reported in reports {
                            reported.await.unwrap().unwrap();
                        }
                    }
                    Op::TruncateAfter(last) => log.truncate_after(*last).await.unwrap(),
                    Op::Purge(id) => log.purge(*id).await.unwrap(),
                    Op::SaveVote(v) => log.save_vote(v).await.unwrap(),
                    Op::Reopen => {
                        drop(log);
                        log = open();
                    }
                }
                if matches!(op, Op::TruncateAfter(_) | Op::Purge(_) | Op::Reopen) {
                    keep_checkpoint();
                }
            }
        }
    }

    /// A journal no generated run fills (the default size).
    const NEVER_FULL: u64 = 8 << 20;

    /// A copy of the log database as the last checkpoint left it.
    const CHECKPOINTED: &str = "checkpointed.redb";

    /// What a store opened at `dir` holds (and its last log id, checked against its entries).
    fn found(dir: &Path) -> Model {
        TypeConfig::run(async {
            let mut log = LogStore::open(&dir.join("raft-log.redb"), true).unwrap();
            let state = log.get_log_state().await.unwrap();
            let entries = log.try_get_log_entries(0..u64::MAX).await.unwrap();
            assert_eq!(
                state.last_log_id,
                entries
                    .last()
                    .map(|e| e.log_id())
                    .or(state.last_purged_log_id)
            );
            Model {
                entries: entries.into_iter().map(|e| (e.index(), e)).collect(),
                purged: state.last_purged_log_id,
                vote: log.read_vote().await.unwrap(),
            }
        })
    }

    /// Generated runs of appends (several in flight at once), truncations, purges, votes and
    /// clean reopens, with journals small enough to fill every few entries, each ended by a
    /// crash: what is left is exactly what a model of the reported steps holds. A process
    /// crash may leave the database's unsynced commits in place, so each run is also opened
    /// with the database as its last checkpoint left it (what a power loss may leave) beside
    /// the journal: the journal alone must bring back every entry since (runs whose journal
    /// never fills, where the last checkpoint is one the test saw).
    #[test]
    fn a_crash_after_generated_steps_leaves_exactly_what_was_reported() {
        as_child();
        let test = "crash::a_crash_after_generated_steps_leaves_exactly_what_was_reported";
        let first: u64 = std::env::var("LOG_CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(rand::random);
        for seed in first..first + 48 {
            let plan = Plan::of(seed);
            let dir = tempfile::tempdir().unwrap();
            crash_after(test, &format!("generated-{seed}"), dir.path());
            let expected = &plan.expected;
            let replay = format!("seed {seed}, replay with LOG_CRASH_SEED={seed}");
            if plan.capacity == NEVER_FULL {
                let power_loss = tempfile::tempdir().unwrap();
                for (from, to) in [
                    (CHECKPOINTED, "raft-log.redb"),
                    ("raft-log.journal", "raft-log.journal"),
                ] {
                    std::fs::copy(dir.path().join(from), power_loss.path().join(to)).unwrap();
                }
                let found = found(power_loss.path());
                // The vote is written to the database with fsync, so a power loss keeps it; the
                // copy may be older.
                assert_eq!(
                    (&found.entries, found.purged),
                    (&expected.entries, expected.purged),
                    "from the last checkpoint and the journal, {replay}"
                );
            }
            assert_eq!(&found(dir.path()), expected, "{replay}");
        }
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
            let by_index = |entries: Vec<Entry>| -> BTreeMap<u64, Entry> {
                entries.into_iter().map(|e| (e.index(), e)).collect()
            };
            if scenario == "appends" {
                // The database alone: its commits since the open were not synced.
                let bare = tempfile::tempdir().unwrap();
                std::fs::copy(
                    dir.path().join("raft-log.redb"),
                    bare.path().join("raft-log.redb"),
                )
                .unwrap();
                assert_eq!(found(bare.path()).entries, BTreeMap::new());
            }
            let after_crash = found(dir.path());
            assert_eq!(
                after_crash.entries,
                by_index(blank_entries(40)),
                "{scenario}"
            );
            assert_eq!(after_crash.vote, Some(Vote::new(3, 2)), "{scenario}");
            // Opened once, the database holds them all (a checkpoint), and the store goes on.
            TypeConfig::run(async {
                let mut log = LogStore::open(&dir.path().join("raft-log.redb"), true).unwrap();
                append(&mut log, blank(1, 40..41)).await;
            });
            std::fs::remove_file(dir.path().join("raft-log.journal")).unwrap();
            assert_eq!(
                found(dir.path()).entries,
                by_index(blank_entries(41)),
                "{scenario}"
            );
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
        let expected: BTreeMap<u64, Entry> = blank(1, 0..6)
            .into_iter()
            .chain(blank(2, 6..9))
            .map(|e| (e.index(), e))
            .collect();
        assert_eq!(found(dir.path()).entries, expected);
    }
}
