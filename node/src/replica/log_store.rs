//! The Raft log in redb: entries by index, the vote, the committed id and the purge point, in
//! the versioned binary format ([`crate::format`]), made durable through a journal file beside
//! the database (`raft-log.journal`, [`journal`]).
//!
//! Owns: the log database file (format version in `raft_meta`), its journal, and openraft's
//! `RaftLogStorage`/`RaftLogReader` contract. Must not: interpret entries (that is the state
//! machine's job).
//!
//! # Appends are written behind
//! openraft asks `append` to return as soon as the entries are readable and to report
//! durability through a callback. Entries go to an in-memory [`Unflushed`] map (which every
//! read overlays on the database), and one writer thread stores them in order, several
//! appends at once when they queue up, then reports each. So a leader sends an entry to its
//! followers while its own write runs instead of after it (a single request waited for two
//! fsyncs in a row), and a burst of appends costs one fsync.
//!
//! # The journal
//! The writer makes appends durable by writing them to the journal (one write, one
//! `fdatasync` into blocks written when the file was made) and commits them to the database
//! without fsync: a redb commit with fsync cost about four times the journal's `fdatasync`,
//! and it is on the path of every signature. A *checkpoint*, a database commit with fsync
//! that also raises the journal's generation, makes the database hold everything and starts
//! the journal over: at every truncation and purge, when a batch does not fit in the journal,
//! when the writer stops (a clean stop leaves no record to replay) and at every open, which
//! first puts the journal's current records into the database. A node stopped by a crash must
//! be started once by a signer that knows the journal before an older one opens its data.
//!
//! To ensure correctness:
//! - the callback reports an append only after its records are synced to the journal (or,
//!   when the journal has no room, its checkpoint committed); openraft counts the leader's own
//!   copy toward a quorum only then. When a node is configured without `sync_writes`
//!   (benchmarks of the fsync cost only), there is no journal, writes are not durable and the
//!   node says so at start;
//! - every write of entries (append, truncate, purge) and of the committed id goes through the
//!   one writer thread, in call order, and `truncate_after` and `purge` return only once
//!   theirs is done, so a truncated or purged entry is never read again and a stale entry
//!   never reaches the disk after a truncation. `save_committed` returns at once (openraft
//!   calls it before every apply, and a write of its own would wait for the writer's fsync):
//!   the id is written with the appends queued around it, after the entries it names;
//! - truncations and purges are checkpoints, so a journal record of a removed entry is of an
//!   older generation and never replayed; within one generation the records redo the
//!   database's inserts in order, and replay stops at the first record that is not whole and
//!   checked (a batch torn by a crash was never reported);
//! - an entry leaves [`Unflushed`] only after its transaction committed, and a reader looks at
//!   [`Unflushed`] before it opens its read transaction: whichever it misses in one, it finds in
//!   the other, so a read never sees a hole;
//! - `save_vote` commits with fsync before reporting;
//! - every write is one redb transaction, so a crash never leaves a hole in the database, and
//!   the journal's records continue what the last checkpoint made durable;
//! - a database of a format this binary does not read is refused at open with both versions
//!   named; a log of format 1 or 2 (whose entries have this format's layout) is read and
//!   stamped with this format.

use super::{io_err, Entry, LogId, TypeConfig, Vote};
use crate::format;
use journal::Journal;
use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, RaftLogStorage};
use openraft::{LogState, OptionalSend, RaftLogReader};
use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io;
use std::ops::RangeBounds;
use std::path::Path;
use std::sync::Arc;
use writer::{Durable, Job, PendingAppend, Unflushed, Writer};

mod journal;
mod writer;

/// index → entry.
const LOGS: TableDefinition<u64, &[u8]> = TableDefinition::new("raft_logs");
/// "format" → u16 LE; "vote" | "committed" | "last_purged" → value.
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_meta");

/// A stored value (log entries, vote, log positions): of this format, or of an older one in
/// the same layout.
fn decode<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> io::Result<T> {
    format::decode_stored(bytes).map_err(|e| io::Error::other(format!("log database, {what}: {e}")))
}

/// The redb-backed Raft log. Cloning shares the database and the writer.
#[derive(Clone)]
pub struct LogStore {
    db: Arc<Database>,
    durability: Durability,
    unflushed: Unflushed,
    durable: Arc<Durable>,
    writer: Arc<Writer>,
    /// The committed id last saved, which the writer may not have written yet.
    committed: Arc<std::sync::Mutex<Option<Option<LogId>>>>,
}

impl LogStore {
    /// Open or create the log database at `path`, and its journal beside it (the same name
    /// with the extension `journal`) when `sync_writes`.
    pub fn open(path: &Path, sync_writes: bool) -> io::Result<Self> {
        Self::open_with_journal_of(path, sync_writes, Journal::CAPACITY)
    }

    /// [`Self::open`] with a journal of `capacity` bytes: for tests of the checkpoints a
    /// full journal makes. A journal of another size is replayed and then made again.
    pub fn open_with_journal_of(path: &Path, sync_writes: bool, capacity: u64) -> io::Result<Self> {
        let db = Database::builder()
            .set_cache_size(32 * 1024 * 1024)
            .create(path)
            .map_err(io_err)?;
        let txn = db.begin_write().map_err(io_err)?;
        {
            let logs = txn.open_table(LOGS).map_err(io_err)?;
            let mut meta = txn.open_table(META).map_err(io_err)?;
            let stored = meta
                .get("format")
                .map_err(io_err)?
                .map(|v| v.value().to_vec());
            let holds_data =
                !logs.is_empty().map_err(io_err)? || meta.get("vote").map_err(io_err)?.is_some();
            let stamp = format::check_database(stored.as_deref(), holds_data)
                .map_err(|e| io::Error::other(format!("log database {}: {e}", path.display())))?;
            if stamp {
                meta.insert("format", format::version_bytes().as_slice())
                    .map_err(io_err)?;
            }
        }
        txn.commit().map_err(io_err)?;
        let journal = replay_journal(&db, &path.with_extension("journal"), sync_writes, capacity)?;
        let stored_last = {
            let txn = db.begin_read().map_err(io_err)?;
            let logs = txn.open_table(LOGS).map_err(io_err)?;
            let last = logs.last().map_err(io_err)?.map(|(k, _)| k.value());
            last
        };
        let db = Arc::new(db);
        let durability = if sync_writes {
            Durability::Immediate
        } else {
            Durability::None
        };
        let unflushed = Unflushed::default();
        let durable = Arc::new(tokio::sync::watch::channel(stored_last).0);
        let writer = Writer::start(
            db.clone(),
            durability,
            journal,
            unflushed.clone(),
            durable.clone(),
        )?;
        Ok(LogStore {
            db,
            durability,
            unflushed,
            durable,
            writer: Arc::new(writer),
            committed: Arc::default(),
        })
    }

    /// The highest log index up to which every entry is committed to the database, as it
    /// changes. The state machine waits on it so that it never applies an entry this node has
    /// not stored: openraft may apply an entry a quorum of *other* nodes holds while this
    /// node's own write is still running, and a state that ran ahead of its log (after a crash
    /// in between) would make openraft purge the log past its snapshot at the next start.
    pub fn durable_index(&self) -> tokio::sync::watch::Receiver<Option<u64>> {
        self.durable.subscribe()
    }

    /// Run `job` (made with its completion sender) on the writer thread and wait for it.
    async fn on_writer(
        &self,
        job: impl FnOnce(tokio::sync::oneshot::Sender<io::Result<()>>) -> Job,
    ) -> io::Result<()> {
        let (done, finished) = tokio::sync::oneshot::channel();
        self.writer.send(job(done))?;
        finished
            .await
            .map_err(|_| io::Error::other("the Raft log writer stopped"))?
    }

    fn read_meta<T: DeserializeOwned>(&self, key: &str) -> io::Result<Option<T>> {
        read_meta(&self.db, key)
    }

    fn write_meta<T: Serialize>(
        &self,
        key: &str,
        value: &T,
        durability: Durability,
    ) -> io::Result<()> {
        let bytes = format::encode(value).map_err(io_err)?;
        let mut txn = self.db.begin_write().map_err(io_err)?;
        txn.set_durability(durability).map_err(io_err)?;
        {
            let mut table = txn.open_table(META).map_err(io_err)?;
            table.insert(key, bytes.as_slice()).map_err(io_err)?;
        }
        txn.commit().map_err(io_err)
    }
}

/// The `raft_meta` value at `key`, if any.
fn read_meta<T: DeserializeOwned>(db: &Database, key: &str) -> io::Result<Option<T>> {
    let txn = db.begin_read().map_err(io_err)?;
    let table = txn.open_table(META).map_err(io_err)?;
    match table.get(key).map_err(io_err)? {
        None => Ok(None),
        Some(v) => Ok(Some(decode(key, v.value())?)),
    }
}

/// Put the journal's current records into the database (`path`: the journal of `db`) and
/// checkpoint, so that the database holds every entry and no record in the file is current;
/// then, with `sync_writes`, the journal (of `capacity` bytes) to write appends to. The
/// checkpoint happens at every open, records or not: the records a crash tore may be followed
/// by whole ones of the same batch, which new records written over the torn ones must not
/// make current again.
fn replay_journal(
    db: &Database,
    path: &Path,
    sync_writes: bool,
    capacity: u64,
) -> io::Result<Option<Journal>> {
    let generation = read_meta::<u64>(db, writer::JOURNAL_GENERATION)?.unwrap_or(0);
    let records = Journal::read(path, generation)?;
    if let Some(((first, _), (last, _))) = records.first().zip(records.last()) {
        tracing::info!(
            first,
            last,
            journal = %path.display(),
            "the Raft log's last entries are taken from its journal (the node stopped without a checkpoint)"
        );
    }
    let generation = writer::checkpoint(db, None, |txn| {
        let mut logs = txn.open_table(LOGS).map_err(io_err)?;
        for (index, entry) in &records {
            logs.insert(*index, entry.as_slice()).map_err(io_err)?;
        }
        Ok(())
    })?;
    match sync_writes {
        true => Journal::start(path, capacity, generation).map(Some),
        false => Ok(None),
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let bounds = (range.start_bound().cloned(), range.end_bound().cloned());
        // Unflushed first, then the database: see the module doc.
        let unflushed = self.unflushed.range(bounds);
        let txn = self.db.begin_read().map_err(io_err)?;
        let table = txn.open_table(LOGS).map_err(io_err)?;
        let mut out = BTreeMap::new();
        for item in table.range(bounds).map_err(io_err)? {
            let (k, v) = item.map_err(io_err)?;
            out.insert(k.value(), decode::<Entry>("entry", v.value())?);
        }
        out.extend(unflushed.into_iter().map(|e| (e.index(), e)));
        Ok(out.into_values().collect())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        self.read_meta("vote")
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let unflushed = self.unflushed.last();
        let last_purged_log_id: Option<LogId> = self.read_meta("last_purged")?;
        let stored = {
            let txn = self.db.begin_read().map_err(io_err)?;
            let table = txn.open_table(LOGS).map_err(io_err)?;
            let last = table.last().map_err(io_err)?;
            match last {
                None => None,
                Some((_, v)) => Some(decode::<Entry>("entry", v.value())?.log_id()),
            }
        };
        Ok(LogState {
            last_log_id: unflushed.max(stored).or(last_purged_log_id),
            last_purged_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        self.write_meta("vote", vote, self.durability)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        // Not required to be durable: it only speeds up re-applying after a restart. Queued
        // behind the appends, never waited for: openraft calls this before every apply, and a
        // write transaction here would wait for the writer thread's fsync.
        *self.committed.lock().unwrap_or_else(|p| p.into_inner()) = Some(committed);
        self.writer.send(Job::Committed(committed))
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        let saved = *self.committed.lock().unwrap_or_else(|p| p.into_inner());
        match saved {
            Some(committed) => Ok(committed),
            None => Ok(self.read_meta::<Option<LogId>>("committed")?.flatten()),
        }
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: IOFlushed<TypeConfig>,
    ) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        let encoded = entries
            .iter()
            .map(|e| Ok((e.index(), format::encode(e).map_err(io_err)?)))
            .collect::<io::Result<Vec<_>>>()?;
        // Readable before this returns, durable when the callback says so.
        let append = self.unflushed.add(entries);
        self.writer.send(Job::Append(PendingAppend {
            append,
            entries: encoded,
            callback,
        }))
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let start = last_log_id.map(|l| l.index() + 1).unwrap_or(0);
        self.unflushed.forget(|index| index >= start);
        self.on_writer(|done| Job::Truncate { start, done }).await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        self.unflushed.forget(|index| index <= log_id.index());
        self.on_writer(|done| Job::Purge { log_id, done }).await
    }
}
