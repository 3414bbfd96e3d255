//! The Raft log's writer thread and the entries it has not committed yet ([`Unflushed`]):
//! how `append` returns at once while its entries are made durable behind it (see the parent
//! module's doc for the contract and why it holds).
//!
//! Owns: the writer thread, its queue of jobs (append, committed id, truncate, purge, executed
//! in order, consecutive appends and committed ids in one transaction), the unflushed entries
//! and checkpoints ([`checkpoint`]): every truncation and purge, a batch the journal has no
//! room for, and the writer's exit. Must not: decide when a write is needed (the log store
//! does, for openraft) or read the log for openraft.

use super::journal::Journal;
use super::{decode, LOGS, META};
use crate::format;
use crate::replica::{commit, io_err, Entry, LogId, TypeConfig};
use openraft::entry::RaftEntry;
use openraft::storage::IOFlushed;
use redb::{Database, Durability, ReadableTable, WriteTransaction};
use std::collections::BTreeMap;
use std::io;
use std::sync::{mpsc, Arc, Mutex, MutexGuard};

/// Entries appended but not yet committed to the database, by index, each with the number of
/// the append that brought it.
#[derive(Clone, Default)]
pub(super) struct Unflushed(Arc<Mutex<UnflushedEntries>>);

#[derive(Default)]
struct UnflushedEntries {
    entries: BTreeMap<u64, (u64, Entry)>,
    /// The number of the next append.
    next_append: u64,
}

impl Unflushed {
    fn lock(&self) -> MutexGuard<'_, UnflushedEntries> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Hold `entries` until append number `append` is committed; returns that number.
    pub(super) fn add(&self, entries: Vec<Entry>) -> u64 {
        let mut held = self.lock();
        let append = held.next_append;
        held.next_append += 1;
        held.entries
            .extend(entries.into_iter().map(|e| (e.index(), (append, e))));
        append
    }

    /// Forget the entries of appends `appends` once committed (an entry a later append
    /// replaced after a truncation stays until that append is committed).
    pub(super) fn committed(&self, appends: &[u64]) {
        self.lock()
            .entries
            .retain(|_, (append, _)| !appends.contains(append));
    }

    /// Forget entries whose index `drop` selects (truncated or purged).
    pub(super) fn forget(&self, drop: impl Fn(u64) -> bool) {
        self.lock().entries.retain(|index, _| !drop(*index));
    }

    pub(super) fn range(&self, bounds: (std::ops::Bound<u64>, std::ops::Bound<u64>)) -> Vec<Entry> {
        self.lock()
            .entries
            .range(bounds)
            .map(|(_, (_, e))| e.clone())
            .collect()
    }

    pub(super) fn last(&self) -> Option<LogId> {
        self.lock()
            .entries
            .values()
            .next_back()
            .map(|(_, e)| e.log_id())
    }
}

/// The highest log index up to which every entry the log holds is committed to the database
/// (`None`: none is); the state machine applies no entry above it
/// ([`super::LogStore::durable_index`]).
pub(super) type Durable = tokio::sync::watch::Sender<Option<u64>>;

/// Encoded entries to commit, and whom to tell.
pub(super) struct PendingAppend {
    /// Its number in [`Unflushed`].
    pub(super) append: u64,
    /// (index, encoded entry).
    pub(super) entries: Vec<(u64, Vec<u8>)>,
    pub(super) callback: IOFlushed<TypeConfig>,
}

/// A write for the writer thread.
pub(super) enum Job {
    Append(PendingAppend),
    /// Record the committed log id (openraft's `save_committed`): written with the appends
    /// queued around it, or alone without fsync, and never waited for.
    Committed(Option<LogId>),
    /// Remove entries from `start` on.
    Truncate {
        start: u64,
        done: tokio::sync::oneshot::Sender<io::Result<()>>,
    },
    /// Remove entries up to `log_id` and record it.
    Purge {
        log_id: LogId,
        done: tokio::sync::oneshot::Sender<io::Result<()>>,
    },
}

/// The writer thread: its queue, and the thread, joined when the last store is dropped (so
/// the database is closed when the store is gone and can be opened again at once).
pub(super) struct Writer {
    queue: Option<mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    /// Start the thread. With a `journal`, appends are made durable there and reach the
    /// database without fsync; without one, they are committed with `durability`.
    pub(super) fn start(
        db: Arc<Database>,
        durability: Durability,
        mut journal: Option<Journal>,
        unflushed: Unflushed,
        durable: Arc<Durable>,
    ) -> io::Result<Self> {
        let (queue, jobs) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("raft-log-writer".into())
            .spawn(move || {
                let mut disk = Disk {
                    db: &db,
                    durability,
                    journal: journal.as_mut(),
                };
                write_jobs(&mut disk, &unflushed, &durable, &jobs);
                // A clean stop leaves every entry in the database.
                if disk.journal.is_some() {
                    if let Err(e) = checkpoint(&db, disk.journal, |_| Ok(())) {
                        tracing::warn!(error = %e, "the Raft log's last checkpoint failed; the journal is replayed at the next start");
                    }
                }
            })?;
        Ok(Writer {
            queue: Some(queue),
            thread: Some(thread),
        })
    }

    pub(super) fn send(&self, job: Job) -> io::Result<()> {
        self.queue
            .as_ref()
            .and_then(|q| q.send(job).ok())
            .ok_or_else(|| io::Error::other("the Raft log writer stopped"))
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.queue = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Where the writer thread writes.
struct Disk<'a> {
    db: &'a Database,
    /// For the database's commits of appends when there is no journal.
    durability: Durability,
    journal: Option<&'a mut Journal>,
}

/// The writer thread's loop: each job in order; appends that queued up behind one another
/// share a transaction.
fn write_jobs(
    disk: &mut Disk<'_>,
    unflushed: &Unflushed,
    durable: &Durable,
    jobs: &mpsc::Receiver<Job>,
) {
    let mut next = jobs.recv().ok();
    while let Some(job) = next.take() {
        match job {
            job @ (Job::Append(_) | Job::Committed(_)) => {
                // Take every append and committed id queued behind it, up to the first other
                // job, which runs next.
                let mut batch = Vec::new();
                let mut committed = None;
                let mut queued = Some(job);
                while let Some(job) = queued.take() {
                    match job {
                        Job::Append(more) => batch.push(more),
                        Job::Committed(id) => committed = Some(id),
                        other => {
                            next = Some(other);
                            break;
                        }
                    }
                    queued = jobs.try_recv().ok();
                }
                let result = store_appends(disk, &batch, committed);
                match &result {
                    // Nobody waits for it; the next append's write reports a failing database.
                    Err(e) if batch.is_empty() => {
                        tracing::warn!(error = %e, "recording the committed log id failed")
                    }
                    _ => {}
                }
                if result.is_ok() {
                    let appends: Vec<u64> = batch.iter().map(|p| p.append).collect();
                    unflushed.committed(&appends);
                    let written = batch.iter().flat_map(|p| &p.entries).map(|(i, _)| *i).max();
                    durable.send_modify(|d| *d = (*d).max(written));
                }
                for pending in batch {
                    let outcome = match &result {
                        Ok(()) => Ok(()),
                        Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
                    };
                    pending.callback.io_completed(outcome);
                }
            }
            Job::Truncate { start, done } => {
                let result = checkpoint(disk.db, disk.journal.as_deref_mut(), |txn| {
                    truncate(txn, start)
                })
                .map(drop);
                if result.is_ok() {
                    durable.send_modify(|d| *d = (*d).min(start.checked_sub(1)));
                }
                let _ = done.send(result);
            }
            Job::Purge { log_id, done } => {
                let result = checkpoint(disk.db, disk.journal.as_deref_mut(), |txn| {
                    purge(txn, log_id)
                })
                .map(drop);
                let _ = done.send(result);
            }
        }
        if next.is_none() {
            next = jobs.recv().ok();
        }
    }
}

/// Make `batch` durable and readable, with the committed id if one was saved: into the
/// journal with `fdatasync` and into the database without; when the journal has no room, in
/// a checkpoint; without a journal, in a commit of the configured durability. A committed id
/// alone needs no fsync: it only saves re-applying after a restart.
fn store_appends(
    disk: &mut Disk<'_>,
    batch: &[PendingAppend],
    committed: Option<Option<LogId>>,
) -> io::Result<()> {
    let entries = || batch.iter().flat_map(|p| &p.entries);
    let write = |txn: &WriteTransaction| write_appends(txn, batch, committed);
    match disk.journal.as_deref_mut() {
        _ if batch.is_empty() => commit(disk.db, Durability::None, write),
        None => commit(disk.db, disk.durability, write),
        Some(journal) if journal.fits(entries().map(|(_, e)| e.as_slice())) => {
            journal.append(entries().map(|(i, e)| (*i, e.as_slice())))?;
            commit(disk.db, Durability::None, write)
        }
        Some(journal) => checkpoint(disk.db, Some(journal), write).map(drop),
    }
}

/// A checkpoint: `change` committed with fsync together with a new journal generation, after
/// which the database holds every entry and the journal (if any) starts over. Every record in
/// the journal is then of an older generation, so a truncated entry's record is never
/// replayed. Returns the new generation.
pub(super) fn checkpoint(
    db: &Database,
    journal: Option<&mut Journal>,
    change: impl FnOnce(&WriteTransaction) -> io::Result<()>,
) -> io::Result<u64> {
    let started = std::time::Instant::now();
    let mut generation = 0;
    commit(db, Durability::Immediate, |txn| {
        change(txn)?;
        let mut meta = txn.open_table(META).map_err(io_err)?;
        let current = match meta.get(JOURNAL_GENERATION).map_err(io_err)? {
            Some(v) => decode::<u64>(JOURNAL_GENERATION, v.value())?,
            None => 0,
        };
        generation = current + 1;
        let bytes = format::encode(&generation).map_err(io_err)?;
        meta.insert(JOURNAL_GENERATION, bytes.as_slice())
            .map_err(io_err)?;
        Ok(())
    })?;
    if let Some(journal) = journal {
        journal.restart(generation);
    }
    tracing::debug!(
        generation,
        ms = started.elapsed().as_secs_f64() * 1e3,
        "Raft log checkpoint"
    );
    Ok(generation)
}

/// The `raft_meta` key of the journal's current generation (u64; 0 when missing).
pub(super) const JOURNAL_GENERATION: &str = "journal_generation";

fn write_appends(
    txn: &WriteTransaction,
    batch: &[PendingAppend],
    committed: Option<Option<LogId>>,
) -> io::Result<()> {
    {
        let mut table = txn.open_table(LOGS).map_err(io_err)?;
        for (index, bytes) in batch.iter().flat_map(|p| &p.entries) {
            table.insert(*index, bytes.as_slice()).map_err(io_err)?;
        }
    }
    if let Some(committed) = committed {
        let bytes = format::encode(&committed).map_err(io_err)?;
        let mut meta = txn.open_table(META).map_err(io_err)?;
        meta.insert("committed", bytes.as_slice()).map_err(io_err)?;
    }
    Ok(())
}

fn truncate(txn: &WriteTransaction, start: u64) -> io::Result<()> {
    let mut table = txn.open_table(LOGS).map_err(io_err)?;
    table.retain_in(start.., |_, _| false).map_err(io_err)
}

fn purge(txn: &WriteTransaction, log_id: LogId) -> io::Result<()> {
    let bytes = format::encode(&log_id).map_err(io_err)?;
    let mut meta = txn.open_table(META).map_err(io_err)?;
    meta.insert("last_purged", bytes.as_slice())
        .map_err(io_err)?;
    let mut table = txn.open_table(LOGS).map_err(io_err)?;
    table
        .retain_in(..=log_id.index(), |_, _| false)
        .map_err(io_err)
}
