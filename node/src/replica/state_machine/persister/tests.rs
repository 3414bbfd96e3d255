#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::replica::{LogId, StoredMembership, TypeConfig};
use redb::ReadableDatabase;
use std::path::PathBuf;

type LeaderId = <TypeConfig as openraft::RaftTypeConfig>::LeaderId;

/// A state database, its snapshot files and a writer over them.
struct Fixture {
    dir: tempfile::TempDir,
    db: Arc<Database>,
    record_bytes: Arc<AtomicU64>,
    persister: Persister,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        let db = Arc::new(storage::open(&path).unwrap());
        let files = Arc::new(SnapshotFiles::beside(&path).unwrap());
        let record_bytes = Arc::new(AtomicU64::new(0));
        let persister = Persister::start(db.clone(), true, record_bytes.clone(), files).unwrap();
        Fixture {
            dir,
            db,
            record_bytes,
            persister,
        }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("state.redb")
    }

    /// Queue `n` batches applied to `state`; their audit records, in order.
    fn queue(&self, state: &mut Applied, n: usize) -> Vec<(u64, Vec<u8>)> {
        (0..n)
            .map(|_| {
                let (rows, record) = batch(state);
                self.persister.write(rows).unwrap();
                record
            })
            .collect()
    }
}

/// Apply one batch to `state` as a replica does (a membership change, which appends one audit
/// record) and return its rows and the record, as the state computed it.
fn batch(state: &mut Applied) -> (Rows, (u64, Vec<u8>)) {
    let index = state.audit.chain.head.seq + 1;
    let changes = state.apply_membership(vec![1, 2, index], vec![], index);
    assert_eq!(changes.audit.len(), 1);
    let record = changes.audit[0].clone();
    let rows = storage::rows(state, changes, &None, &StoredMembership::default()).unwrap();
    (rows, record)
}

fn meta(index: u64) -> SnapshotMeta {
    use openraft::vote::RaftLeaderIdExt as _;
    SnapshotMeta {
        last_log_id: Some(LogId::new(LeaderId::new_committed(1, 1), index)),
        last_membership: StoredMembership::default(),
    }
}

/// What an apply relies on: queuing its rows never waits for redb, even while redb's one
/// writer is taken (here by the test; in a node, by a durable commit), and a read asked for
/// after them is answered only once they are committed, with all of them.
#[test]
fn rows_queue_while_the_database_is_taken_and_a_read_waits_for_all_of_them() {
    let f = Fixture::new();
    let taken = f.db.begin_write().unwrap();
    let mut state = Applied::default();
    let expected = f.queue(&mut state, 3);
    let mut read = f.persister.read(false);
    assert!(matches!(
        read.0.try_recv(),
        Err(tokio::sync::oneshot::error::TryRecvError::Empty)
    ));
    drop(taken);
    let txn = read.wait_blocking().unwrap();
    assert_eq!(storage::read_records(&txn, 0, 10).unwrap(), expected);
    assert_eq!(storage::read_chain(&txn).unwrap(), state.audit.chain);
    let bytes: u64 = expected.iter().map(|(_, r)| r.len() as u64).sum();
    assert_eq!(f.record_bytes.load(Ordering::Relaxed), bytes);
}

/// A commit that fails (here an installed snapshot whose head file cannot be written) stops
/// the writer: the rows queued after it are refused with its error, every later request gets
/// it, and the database keeps what was committed before.
#[test]
fn a_failed_commit_stops_the_writer_and_every_later_request_gets_its_error() {
    let f = Fixture::new();
    std::fs::create_dir(f.dir.path().join("state.snapshot-head.tmp")).unwrap();
    let mut state = Applied::default();
    let (rows, first) = batch(&mut state);
    f.persister.write(rows).unwrap();
    let failed = f
        .persister
        .replace(
            state.clone(),
            InstalledRecords::Listed(vec![first.clone()]),
            meta(1),
        )
        .wait_blocking()
        .expect_err("the head file cannot be written");
    assert!(
        failed.to_string().contains("state.snapshot-head.tmp"),
        "the error names the file: {failed}"
    );
    let stopped = format!("state database: {failed}");

    let (rows, _) = batch(&mut state);
    let refused = f.persister.write(rows).expect_err("the writer stopped");
    assert_eq!(refused.to_string(), stopped);
    assert_eq!(f.persister.failed().unwrap().to_string(), stopped);
    let read = f.persister.read(false).wait_blocking().err().unwrap();
    assert_eq!(read.to_string(), stopped);
    let sync = f.persister.sync().wait_blocking().unwrap_err();
    assert_eq!(sync.to_string(), stopped);

    let txn = f.db.begin_read().unwrap();
    assert_eq!(storage::read_records(&txn, 0, 10).unwrap(), vec![first]);
}

/// Dropping the writer commits what is queued, makes it durable and closes the database, so
/// that the same file opens again at once with everything in it (a node's clean stop, and
/// tests that reopen a database).
#[test]
fn dropping_the_writer_commits_what_is_queued_and_releases_the_database() {
    let f = Fixture::new();
    let mut state = Applied::default();
    let expected = f.queue(&mut state, 50);
    let path = f.path();
    let Fixture {
        dir: _dir,
        db,
        persister,
        ..
    } = f;
    drop(persister);
    drop(db);
    let reopened = storage::open(&path).unwrap();
    let loaded = storage::load(&reopened).unwrap();
    assert_eq!(loaded.applied.audit.chain, state.audit.chain);
    let txn = reopened.begin_read().unwrap();
    assert_eq!(storage::read_records(&txn, 0, 100).unwrap(), expected);
}
