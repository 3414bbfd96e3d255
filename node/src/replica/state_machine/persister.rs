//! The state database's writer: a thread of its own that commits what applies changed, behind
//! them.
//!
//! An apply decides in memory ([`crate::state::Applied`]), queues the rows it changed here
//! ([`storage::Rows`]) and answers its callers: it never waits for redb. redb has one writer
//! at a time, and a commit with fsync writes every page that the commits without fsync before
//! it left in redb's buffer; when applies committed themselves, each snapshot build's fsync of
//! the database (17-67 ms on the bench machine) held every apply, and every signature waiting
//! on one, for as long.
//!
//! Owns: the thread, its queue, and the order in which the database takes what is queued:
//! rows in the order applies queued them (several batches' rows in one transaction when they
//! queue up), and each request (a read transaction, a durable commit, an installed snapshot)
//! once everything queued before it is committed. Callers queue while they hold the state
//! machine's lock, so the database a request sees is the state they saw. Must not: decide
//! anything, or be waited for by an apply; only readers of the database, snapshot builds,
//! installs and shutdown wait for it.
//!
//! Why answering before the database holds a batch is safe: every decision is already durable
//! in the Raft log of a quorum, and so is this node's own log entry before the entry is applied
//! ([`super::StateMachine::applying_only_stored`]). The database is a copy of the applied log,
//! as before: its commits never had fsync, so a crash always lost the applies since its last
//! durable commit, and openraft re-applies them from the log, or installs the node's stored
//! snapshot first when the database is behind it (`StorageHelper::restore_from_snapshot`).
//!
//! A commit that fails (a full disk) stops the writer: every later request gets that error,
//! and so does the next apply, which makes openraft stop the node, as a failed apply did.

use super::installed::InstalledRecords;
use super::snapshot_files::SnapshotFiles;
use super::storage::{self, Rows};
use super::SnapshotMeta;
use crate::state::Applied;
use redb::{Database, Durability, ReadTransaction};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

/// Batches queued before an apply waits for room: far more than the writer falls behind by
/// when the disk keeps up, few enough to bound the memory of a disk that does not.
const QUEUE: usize = 4096;

/// Batches' rows committed in one transaction at most.
const ROWS_PER_COMMIT: usize = 256;

/// The writer: dropping it closes the queue, waits for what is queued to be committed and
/// made durable, and joins the thread, so the database is
/// closed when the last handle is gone.
pub(super) struct Persister {
    jobs: Option<mpsc::SyncSender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
    failed: Arc<Mutex<Option<String>>>,
}

/// A request's answer, once everything queued before it is committed.
pub(super) struct Pending<T>(tokio::sync::oneshot::Receiver<io::Result<T>>);

impl<T> Pending<T> {
    /// Wait for the answer.
    pub(super) async fn wait(self) -> io::Result<T> {
        self.0.await.map_err(|_| writer_gone())?
    }

    /// Wait for the answer, blocking the thread (for callers outside the async runtime, or
    /// ones that must not yield).
    pub(super) fn wait_blocking(self) -> io::Result<T> {
        futures::executor::block_on(self.wait())
    }
}

type Reply<T> = tokio::sync::oneshot::Sender<io::Result<T>>;

enum Job {
    Rows(Box<Rows>),
    /// A read transaction; made durable first when `durable_first`.
    Read {
        durable_first: bool,
        reply: Reply<ReadTransaction>,
    },
    /// A commit with fsync.
    Sync(Reply<()>),
    /// The whole state replaced by an installed snapshot's ([`storage::replace_all`]).
    Replace {
        applied: Box<Applied>,
        records: Box<InstalledRecords>,
        meta: Box<SnapshotMeta>,
        reply: Reply<()>,
    },
}

fn writer_gone() -> io::Error {
    io::Error::other("the state database's writer stopped")
}

impl Persister {
    /// Start the writer of `db`. `durable`: the database is made durable before a build's
    /// read and by an install (a sync, and the end, always are). `record_bytes` is what the kept
    /// audit records hold together, kept up to date after each commit.
    pub(super) fn start(
        db: Arc<Database>,
        durable: bool,
        record_bytes: Arc<AtomicU64>,
        files: Arc<SnapshotFiles>,
    ) -> io::Result<Self> {
        let (jobs, queue) = mpsc::sync_channel(QUEUE);
        let failed = Arc::new(Mutex::new(None));
        let writer = Writer {
            db,
            durability: if durable {
                Durability::Immediate
            } else {
                Durability::None
            },
            record_bytes,
            files,
            failed: failed.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("state-writer".to_owned())
            .spawn(move || writer.run(queue))?;
        Ok(Persister {
            jobs: Some(jobs),
            thread: Some(thread),
            failed,
        })
    }

    /// The error that stopped the writer, if one did.
    pub(super) fn failed(&self) -> Option<io::Error> {
        let failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
        failed.as_ref().map(|why| io::Error::other(why.clone()))
    }

    fn send(&self, job: Job) -> io::Result<()> {
        let jobs = self.jobs.as_ref().ok_or_else(writer_gone)?;
        jobs.send(job).map_err(|_| writer_gone())
    }

    fn request<T>(&self, job: impl FnOnce(Reply<T>) -> Job) -> Pending<T> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        // A send that fails drops the reply, and the answer is then `writer_gone`.
        let _ = self.send(job(reply));
        Pending(answer)
    }

    /// Queue a batch's rows. Waits only while the queue is full.
    pub(super) fn write(&self, rows: Rows) -> io::Result<()> {
        if let Some(e) = self.failed() {
            return Err(e);
        }
        self.send(Job::Rows(Box::new(rows)))
    }

    /// A read transaction that sees everything queued before; with `durable_first`, all of it
    /// made durable first (when the database is written durably).
    pub(super) fn read(&self, durable_first: bool) -> Pending<ReadTransaction> {
        self.request(|reply| Job::Read {
            durable_first,
            reply,
        })
    }

    /// Everything queued before made durable (one commit with fsync).
    pub(super) fn sync(&self) -> Pending<()> {
        self.request(Job::Sync)
    }

    /// Replace the whole state with an installed snapshot's, after everything queued before.
    pub(super) fn replace(
        &self,
        applied: Applied,
        records: InstalledRecords,
        meta: SnapshotMeta,
    ) -> Pending<()> {
        self.request(|reply| Job::Replace {
            applied: Box::new(applied),
            records: Box::new(records),
            meta: Box::new(meta),
            reply,
        })
    }
}

impl Drop for Persister {
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the state database's writer panicked");
            }
        }
    }
}

/// The thread's side.
struct Writer {
    db: Arc<Database>,
    durability: Durability,
    record_bytes: Arc<AtomicU64>,
    files: Arc<SnapshotFiles>,
    failed: Arc<Mutex<Option<String>>>,
}

impl Writer {
    fn run(self, queue: mpsc::Receiver<Job>) {
        let mut next = queue.recv().ok();
        while let Some(job) = next.take() {
            match job {
                Job::Rows(first) => {
                    // Take the rows queued behind, up to the first other job, which runs next.
                    let mut batch = vec![first];
                    while batch.len() < ROWS_PER_COMMIT {
                        match queue.try_recv() {
                            Ok(Job::Rows(more)) => batch.push(more),
                            Ok(other) => {
                                next = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    let result = self.checked(|| self.commit_rows(&batch));
                    if let Err(e) = result {
                        // Nobody waits for rows: the next apply or request reports it.
                        tracing::error!(error = %e, "the state database's writer stopped");
                    }
                }
                Job::Read {
                    durable_first,
                    reply,
                } => {
                    let _ = reply.send(self.checked(|| {
                        if durable_first && matches!(self.durability, Durability::Immediate) {
                            self.sync()?;
                        }
                        storage::begin_read(&self.db)
                    }));
                }
                Job::Sync(reply) => {
                    let _ = reply.send(self.checked(|| self.sync()));
                }
                Job::Replace {
                    applied,
                    records,
                    meta,
                    reply,
                } => {
                    let _ = reply.send(self.checked(|| {
                        storage::replace_all(
                            &self.db,
                            self.durability,
                            &applied,
                            &records,
                            &meta,
                            &self.files,
                        )?;
                        self.record_bytes.store(records.bytes(), Ordering::Relaxed);
                        Ok(())
                    }));
                }
            }
            if next.is_none() {
                next = queue.recv().ok();
            }
        }
        // The queue closed: the state machine is gone. What was queued is committed; make it
        // durable, as a clean stop.
        if let Err(e) = self.checked(|| self.sync()) {
            tracing::warn!(error = %e, "the state database's last commit failed");
        }
    }

    /// `work`, unless an earlier commit failed; a failure stops the writer for good (later
    /// rows would be written over a database that lacks the failed ones).
    fn checked<T>(&self, work: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
        let mut failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(why) = failed.as_ref() {
            return Err(io::Error::other(why.clone()));
        }
        // Not held while the work runs: appliers read it.
        drop(failed);
        let result = work();
        if let Err(e) = &result {
            failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
            *failed = Some(format!("state database: {e}"));
        }
        result
    }

    fn commit_rows(&self, batch: &[Box<Rows>]) -> io::Result<()> {
        let mut bytes = self.record_bytes.load(Ordering::Relaxed);
        crate::replica::commit(&self.db, Durability::None, |txn| {
            for rows in batch {
                storage::write_rows(txn, rows, &mut bytes)?;
            }
            Ok(())
        })?;
        self.record_bytes.store(bytes, Ordering::Relaxed);
        Ok(())
    }

    /// A commit with fsync (whatever the configured durability: a sync is asked for).
    fn sync(&self) -> io::Result<()> {
        storage::sync(&self.db)
    }
}

#[cfg(test)]
mod tests;
