//! The replica's state machine: openraft's storage contract over the replicated state
//! ([`crate::state::Applied`]), persisted in redb.
//!
//! Owns: the state database file (format version in `sm_meta`), the in-memory copy of the
//! replicated state that the service reads for pre-checks and status, snapshots, and reading
//! audit records back for the audit service. Must not: decide anything (every outcome comes
//! from [`Applied::apply`]), sign, or let a storage failure look like a refusal: a failed
//! write is an `Err` (openraft stops the node), a refusal is an outcome.
//!
//! To ensure correctness:
//! - an apply decides in memory and queues what it changed ([`Changes`], as rows) to the
//!   database's writer ([`persister`]), which commits them in order behind the applies: an
//!   apply never waits for redb. A batch's rows, its audit records and `last_applied` are in
//!   one redb transaction, so after a crash the state is exactly "applied up to last_applied";
//! - those commits are without fsync: the decisions are already durable in the Raft log on a
//!   quorum (the log store fsyncs before acknowledging), and redb is crash-consistent, so after
//!   a crash the state is an earlier "applied up to last_applied" and openraft re-applies the
//!   committed entries after it. A snapshot build makes the database durable (on the writer,
//!   not under any lock an apply takes) before it reads, so a restart seldom finds the
//!   database behind its stored snapshot; if it does (a crash between), openraft installs
//!   that snapshot first, and then re-applies the log after it;
//! - an entry is applied only once the local Raft log has stored it
//!   ([`StateMachine::applying_only_stored`]), so the state never runs ahead of the log;
//! - an installed snapshot is stored in the snapshot files before the database takes its
//!   position, so a failed write (a full disk) never leaves a database ahead of both the
//!   snapshot and the log, which openraft could not start from (see `storage::replace_all`);
//! - every read of the database (audit records, backups, builds) goes through the writer and
//!   sees everything applied before it was asked for;
//! - a database of a format this binary does not read is refused at open with both versions
//!   named; an older database is read through its format's layouts
//!   ([`crate::state::upgrade`]) and stamped with this format, so an older binary refuses it
//!   after.

mod installed;
mod persister;
mod snapshot_files;
mod storage;

pub use snapshot_files::snapshot_bytes_in;

use super::{
    io_err, CommandResult, LogId, Snapshot, SnapshotData, SnapshotMeta, StoredMembership,
    TypeConfig,
};
use crate::audit::{self, ChainError, ChainPoint};
use crate::state::{Applied, AuditChain, Changes};
use futures::TryStreamExt;
use installed::Installed;
use openraft::entry::RaftEntry;
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder};
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Where the replica stands in the Raft log (openraft's part of the applied state).
#[derive(Clone, Debug, Default)]
struct RaftPosition {
    last_applied: Option<LogId>,
    membership: StoredMembership,
}

/// The state machine. Cloning shares the database and the in-memory state.
#[derive(Clone)]
pub struct StateMachine {
    /// The database's only writer while the node runs.
    persister: Arc<persister::Persister>,
    /// The current snapshot's files, beside the database.
    snapshot_files: Arc<snapshot_files::SnapshotFiles>,
    applied: Arc<RwLock<Applied>>,
    position: Arc<Mutex<RaftPosition>>,
    durability: redb::Durability,
    /// Bumped whenever the key registry changes (applied or installed).
    keys_changed: Arc<tokio::sync::watch::Sender<u64>>,
    /// The audit head's seq, sent whenever records are appended.
    audit_changed: Arc<tokio::sync::watch::Sender<u64>>,
    /// The local log's durable index ([`super::LogStore::durable_index`]): no entry above it
    /// is applied. `None` when the state machine runs without a log store (tests, tools).
    log_durable: Option<tokio::sync::watch::Receiver<Option<u64>>>,
    /// What the kept audit records hold together, in bytes, as the database holds them (kept
    /// by the writer).
    audit_record_bytes: Arc<AtomicU64>,
    /// Audit record bytes applied since the last snapshot was asked for or installed
    /// ([`super::snapshot_trigger`]).
    audit_bytes_since_snapshot: Arc<AtomicU64>,
    /// The largest snapshot body this replica builds: [`super::network::MAX_SNAPSHOT`] (what
    /// the format decodes and peers accept) less [`SNAPSHOT_HEADROOM`]; lower only in tests.
    snapshot_limit: u64,
}

/// Room left under the snapshot limit for what wraps the body: the stored file's meta and
/// the length before the body, and a peer stream's header.
const SNAPSHOT_HEADROOM: u64 = 1 << 20;

impl StateMachine {
    /// Open or create the state database at `path` and load it into memory. A database of a
    /// format this binary does not read is refused.
    pub fn open(path: &Path, sync_writes: bool) -> io::Result<Self> {
        let db = storage::open(path)?;
        let storage::Loaded {
            applied,
            last_applied,
            membership,
            record_bytes,
        } = storage::load(&db)?;
        let audit_head = applied.audit.chain.head.seq;
        let snapshot_files = Arc::new(snapshot_files::SnapshotFiles::beside(path)?);
        let audit_record_bytes = Arc::new(AtomicU64::new(record_bytes));
        let persister = persister::Persister::start(
            Arc::new(db),
            sync_writes,
            audit_record_bytes.clone(),
            snapshot_files.clone(),
        )?;
        Ok(StateMachine {
            persister: Arc::new(persister),
            snapshot_files,
            applied: Arc::new(RwLock::new(applied)),
            position: Arc::new(Mutex::new(RaftPosition {
                last_applied,
                membership,
            })),
            durability: if sync_writes {
                redb::Durability::Immediate
            } else {
                redb::Durability::None
            },
            keys_changed: Arc::new(tokio::sync::watch::channel(0).0),
            audit_changed: Arc::new(tokio::sync::watch::channel(audit_head).0),
            log_durable: None,
            audit_record_bytes,
            audit_bytes_since_snapshot: Arc::new(AtomicU64::new(0)),
            snapshot_limit: super::network::MAX_SNAPSHOT - SNAPSHOT_HEADROOM,
        })
    }

    /// Build snapshots whose body can take at most `limit` bytes (tests: a node always uses
    /// the format's limit less the headroom for what wraps a body).
    pub fn with_snapshot_limit(mut self, limit: u64) -> Self {
        self.snapshot_limit = limit;
        self
    }

    /// Whether a snapshot of the applied state fits the limit, judged by its bound
    /// ([`crate::state::snapshot_body_bound`]) without reading a record. When it does not, the
    /// error says how large it could be and what to do.
    fn check_snapshot_fits(&self) -> Result<(), String> {
        let applied = self.read();
        let record_bytes = self.audit_record_bytes.load(Ordering::Relaxed);
        let bound =
            crate::state::snapshot_body_bound(&applied, record_bytes).map_err(|e| e.to_string())?;
        let limit = self.snapshot_limit;
        if bound <= limit {
            return Ok(());
        }
        let chain = applied.audit.chain;
        Err(format!(
            "a snapshot could take {bound} bytes, over the {limit} this node builds: it \
             carries {} kept audit records ({record_bytes} bytes); export and compact the \
             audit log (signerctl audit-compact)",
            chain.head.seq.saturating_sub(chain.anchor.seq)
        ))
    }

    /// Apply only entries the local log has stored (`durable`: the log store's
    /// [`super::LogStore::durable_index`]). A node's state then never runs ahead of its own
    /// log: after a crash, its log always reaches `last_applied`.
    pub fn applying_only_stored(
        mut self,
        durable: tokio::sync::watch::Receiver<Option<u64>>,
    ) -> Self {
        self.log_durable = Some(durable);
        self
    }

    /// Audit record bytes applied since the last snapshot was asked for (built or deferred)
    /// or installed.
    pub fn audit_bytes_since_snapshot(&self) -> u64 {
        self.audit_bytes_since_snapshot.load(Ordering::Relaxed)
    }

    /// A receiver that sees a new value whenever the key registry changes.
    pub fn watch_keys(&self) -> tokio::sync::watch::Receiver<u64> {
        self.keys_changed.subscribe()
    }

    /// A receiver that sees the head seq whenever records are appended.
    pub fn watch_audit(&self) -> tokio::sync::watch::Receiver<u64> {
        self.audit_changed.subscribe()
    }

    /// Read access to the applied state (for pre-checks and status). Hold it briefly.
    pub fn read(&self) -> RwLockReadGuard<'_, Applied> {
        self.applied.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Applied> {
        self.applied.write().unwrap_or_else(|p| p.into_inner())
    }

    fn position(&self) -> std::sync::MutexGuard<'_, RaftPosition> {
        self.position.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A read transaction that sees every batch applied before this call, once the writer
    /// has committed them. Blocks: for threads off the async runtime.
    fn stored(&self) -> io::Result<redb::ReadTransaction> {
        self.persister.read(false).wait_blocking()
    }

    /// Read records from `from_seq` (at most `limit`), as stored. Blocks (see [`Self::stored`]).
    pub fn audit_records(&self, from_seq: u64, limit: usize) -> io::Result<Vec<(u64, Vec<u8>)>> {
        storage::read_records(&self.stored()?, from_seq, limit)
    }

    /// The chain's anchor and head as stored. Blocks (see [`Self::stored`]).
    pub fn audit_chain(&self) -> io::Result<AuditChain> {
        storage::read_chain(&self.stored()?)
    }

    /// Recompute the whole kept chain from the database (not from memory), reading one record
    /// at a time. Returns the stored chain position and the verification result. Blocks (see
    /// [`Self::stored`]).
    pub fn audit_verify(&self) -> io::Result<(AuditChain, Result<ChainPoint, ChainError>)> {
        storage::verify_audit(&self.stored()?)
    }

    /// The applied state as a snapshot body (encoded in the binary format), with the log
    /// position and membership it was applied up to and its audit head: what a backup holds. Read like a
    /// snapshot: a copy of the state and a read transaction asked for under the read lock, so
    /// the records match the state; encoding runs off the async runtime.
    pub async fn backup_state(
        &self,
    ) -> io::Result<(Vec<u8>, Option<LogId>, StoredMembership, audit::ChainPoint)> {
        let (state, position, txn) = {
            let applied = self.read();
            let position = self.position().clone();
            (applied.clone(), position, self.persister.read(false))
        };
        let txn = txn.wait().await?;
        let head = state.audit.chain.head;
        let data = tokio::task::spawn_blocking(move || storage::encode_snapshot_body(&txn, &state))
            .await
            .map_err(io_err)??;
        Ok((data, position.last_applied, position.membership, head))
    }

    /// Seed a new state database at `path` with `applied` (its kept audit records `records`)
    /// as applied up to log index `index`, with `voters` (id → peer address) as the membership,
    /// and make that state the current snapshot, durably. For `signer restore` on node
    /// `node_id`: at its first start openraft purges the (empty) log up to that position, and
    /// the node sends the snapshot to every member that joins. Refuses a database that already
    /// holds state.
    pub fn seed(
        path: &Path,
        node_id: u64,
        index: u64,
        voters: std::collections::BTreeMap<u64, String>,
        applied: &Applied,
        records: crate::state::StoredRecords,
    ) -> io::Result<()> {
        use openraft::vote::RaftLeaderIdExt as _;
        type LeaderId = <TypeConfig as openraft::RaftTypeConfig>::LeaderId;
        let db = storage::open(path)?;
        if storage::load(&db)?.last_applied.is_some() {
            return Err(io::Error::other(format!(
                "state database {} already holds applied state",
                path.display()
            )));
        }
        // Term 0, as `initialize` writes its first entry: the node's vote is still term 0.
        let log_id = LogId::new(LeaderId::new_committed(0, node_id), index);
        let ids = voters.keys().copied().collect();
        let nodes = voters
            .into_iter()
            .map(|(id, addr)| (id, openraft::BasicNode::new(addr)));
        let membership = openraft::Membership::new(
            vec![ids],
            nodes.collect::<std::collections::BTreeMap<_, _>>(),
        )
        .map_err(io_err)?;
        let meta = SnapshotMeta {
            last_log_id: Some(log_id),
            last_membership: StoredMembership::new(Some(log_id), membership),
        };
        storage::replace_all(
            &db,
            redb::Durability::Immediate,
            applied,
            &installed::InstalledRecords::Listed(records),
            &meta,
            &snapshot_files::SnapshotFiles::beside(path)?,
        )
    }

    /// Make every applied batch durable (one fsync'd empty commit); for a clean shutdown.
    /// Applies commit without fsync (the Raft log is durable), so without this a stopped
    /// node's database holds only what its last snapshot made durable until it re-applies.
    /// Blocks until the writer has done it.
    pub fn sync(&self) -> io::Result<()> {
        self.persister.sync().wait_blocking()
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    type SnapshotData = SnapshotData;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        // Under the read lock (applies queue their rows under the write lock) take a copy of
        // the state and ask the writer for a read transaction after the rows queued so far:
        // it sees the database as that state, and keeps seeing that version. The writer makes
        // the database durable first, so that a restart seldom has to install this snapshot
        // again; applies do not wait for that. Reading the records and storing them (appending
        // the records since the last snapshot, see `snapshot_files`) happen off the async
        // runtime: on a runtime worker a store stalled the Raft core's heartbeats for as long,
        // and a 2-core node lost its leadership under load.
        let durable = matches!(self.durability, redb::Durability::Immediate);
        let (state, meta, txn) = {
            let applied = self.read();
            let position = self.position().clone();
            let meta = SnapshotMeta {
                last_log_id: position.last_applied,
                last_membership: position.membership,
            };
            (applied.clone(), meta, self.persister.read(durable))
        };
        let txn = txn.wait().await?;
        let files = self.snapshot_files.clone();
        on_background_thread("snapshot-build", move || {
            let records = Box::new(
                |from: u64, sink: &mut dyn FnMut(u64, &[u8]) -> io::Result<()>| {
                    storage::for_each_record(&txn, from, sink)
                },
            );
            let stored = files.store_built(durable, &meta, &state, records)?;
            if stored == snapshot_files::Stored::Superseded {
                tracing::info!(
                    "a snapshot as new or newer was installed before this one was stored: this one is not"
                );
            }
            // Without its body: openraft keeps only the meta of a snapshot it had built
            // (`core::sm::worker`, `StorageHelper::get_initial_state`), and whoever needs the
            // body (a peer, a restart) reads it through `get_current_snapshot`. Reading it back
            // here would copy the whole audit log at every build.
            Ok(Snapshot {
                meta,
                snapshot: SnapshotData::InMemory(Vec::new()),
            })
        })
        .await
    }
}

/// The nice value of a snapshot build's thread.
const BACKGROUND_NICE: i32 = 10;

/// Run `work` on a thread of its own at a low CPU priority ([`BACKGROUND_NICE`]). A snapshot
/// build encodes and writes as much as the audit log holds (hundreds of MB): on a two-core node
/// at normal priority it took a core from the sign path for as long, and requests queued
/// behind it. At nice 10 it gets the CPU the sign path leaves. (A new thread, not the blocking
/// pool: an unprivileged thread cannot raise its priority back, and pool threads are reused.)
async fn on_background_thread<T: Send + 'static>(
    name: &str,
    work: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let tid = rustix::thread::gettid();
            if let Err(e) = rustix::process::setpriority_process(Some(tid), BACKGROUND_NICE) {
                tracing::debug!(error = %e, "background thread keeps its priority");
            }
            let _ = tx.send(work());
        })?;
    rx.await
        .map_err(|_| io::Error::other("the background thread ended without a result"))?
}

/// `consume`'s result over `items` up to their first error, which is returned instead: for a
/// consumer of plain records (a rebuild, a chain check, a write) over a reading that can fail.
fn until_error<T, E, R>(
    items: impl Iterator<Item = Result<T, E>>,
    consume: impl FnOnce(&mut dyn Iterator<Item = T>) -> R,
) -> Result<R, E> {
    let mut failed = None;
    let mut read = items.map_while(|item| match item {
        Ok(item) => Some(item),
        Err(e) => {
            failed = Some(e);
            None
        }
    });
    let result = consume(&mut read);
    drop(read);
    match failed {
        Some(e) => Err(e),
        None => Ok(result),
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = SnapshotData;
    type SnapshotBuilder = StateMachine;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        let position = self.position();
        Ok((position.last_applied, position.membership.clone()))
    }

    async fn apply<S>(&mut self, mut entries: S) -> Result<(), io::Error>
    where
        S: futures::Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>>
            + Unpin
            + OptionalSend,
    {
        let mut items = Vec::new();
        while let Some(item) = entries.try_next().await? {
            items.push(item);
        }
        let Some(last) = items.last().map(|(entry, _)| entry.index()) else {
            return Ok(());
        };
        if let Some(durable) = &self.log_durable {
            // openraft applies what a quorum holds, which may not include this node yet.
            durable
                .clone()
                .wait_for(|stored| stored.is_some_and(|stored| stored >= last))
                .await
                .map_err(|_| io::Error::other("the Raft log writer stopped"))?;
        }
        if let Some(e) = self.persister.failed() {
            return Err(e);
        }
        let mut replies = Vec::with_capacity(items.len());
        let mut changes = Changes::default();
        let audit_head;
        let keys_changed;
        {
            let mut applied = self.write();
            let mut position = self.position().clone();
            for (entry, responder) in items {
                let log_id = entry.log_id();
                let result = match &entry.payload {
                    EntryPayload::Blank => CommandResult::None,
                    EntryPayload::Normal(proposal) => {
                        let (result, c) =
                            applied.apply(&proposal.command, log_id.index, proposal.at_ms);
                        changes.absorb(c);
                        result
                    }
                    EntryPayload::Membership(m) => {
                        position.membership = StoredMembership::new(Some(log_id), m.clone());
                        changes.absorb(applied.apply_membership(
                            m.voter_ids().collect(),
                            m.learner_ids().collect(),
                            log_id.index,
                        ));
                        CommandResult::None
                    }
                };
                position.last_applied = Some(log_id);
                replies.push((responder, result));
            }
            keys_changed = !changes.keys.is_empty();
            let rows = storage::rows(
                &applied,
                changes,
                &position.last_applied,
                &position.membership,
            )?;
            self.audit_bytes_since_snapshot
                .fetch_add(rows.audit_bytes(), Ordering::Relaxed);
            self.persister.write(rows)?;
            *self.position() = position;
            audit_head = applied.audit.chain.head.seq;
        }
        self.audit_changed.send_replace(audit_head);
        if keys_changed {
            self.keys_changed.send_modify(|v| *v += 1);
        }
        for (responder, result) in replies {
            if let Some(r) = responder {
                r.send(result);
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    /// A snapshot that could pass the limit is deferred, not attempted: a build that fails
    /// stops openraft (a storage error), on every node at once, since all hold the same audit
    /// log. Deferred, the node keeps signing and keeps its log (nothing is purged) until the
    /// audit log is compacted; openraft asks again after `snapshot_every` more entries. The
    /// build openraft forces (`force`: at start, when the log was purged but no snapshot is
    /// stored) is attempted regardless.
    async fn try_create_snapshot_builder(&mut self, force: bool) -> Option<Self::SnapshotBuilder> {
        // Counted from here whether the snapshot is built or deferred: a deferred one is
        // asked for again after as many bytes, not at every apply.
        self.audit_bytes_since_snapshot.store(0, Ordering::Relaxed);
        if !force {
            if let Err(why) = self.check_snapshot_fits() {
                tracing::error!("snapshot deferred: {why}");
                return None;
            }
        }
        Some(self.clone())
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: SnapshotData,
    ) -> Result<(), io::Error> {
        // Read where it lies (a leader's in a file, this node's own at a start behind it in
        // its snapshot files), off the async runtime: the state decoded, the records read as
        // they are needed, never all in memory.
        let (installed, verified) = tokio::task::spawn_blocking(move || Installed::read(snapshot))
            .await
            .map_err(io_err)??;
        if let Err(e) = verified {
            tracing::error!(error = %e, "the audit chain in the installed snapshot does not verify");
        }
        let Installed {
            state: next,
            records,
        } = installed;
        let chain = next.audit.chain;
        // Queued under the write lock, so every read asked for after sees the new state in
        // the database too. Should the writer fail, the node stops on the error returned here:
        // the state in memory is then ahead of the database, but the Raft core stops on that
        // error, so nothing more is applied or signed on it, and a restart reads the database
        // and snapshot files as the failure left them.
        let stored = {
            let mut applied = self.write();
            let stored = self.persister.replace(next.clone(), records, meta.clone());
            *self.position() = RaftPosition {
                last_applied: meta.last_log_id,
                membership: meta.last_membership.clone(),
            };
            self.audit_bytes_since_snapshot.store(0, Ordering::Relaxed);
            *applied = next;
            stored
        };
        stored.wait().await?;
        self.keys_changed.send_modify(|v| *v += 1);
        self.audit_changed.send_replace(chain.head.seq);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        // The head and the open records file (the records are read as the body is sent); file
        // IO, off the async runtime.
        let files = self.snapshot_files.clone();
        let stored = tokio::task::spawn_blocking(move || files.read())
            .await
            .map_err(io_err)??;
        Ok(stored.map(|(meta, snapshot)| Snapshot { meta, snapshot }))
    }
}
