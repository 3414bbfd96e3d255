//! The replicated state machine: slashing-protection records, applied in log order, persisted
//! in redb together with `last_applied` in one transaction per batch.
//!
//! Owns: the state database file, the in-memory copy of the protection state that the service
//! reads for cheap pre-checks and status, and snapshots.
//! Must not: sign, or let a storage failure look like a refusal: a failed write is an `Err`
//! (openraft stops the node), a refusal is `Ok(SignOutcome::Refused)`.
//!
//! To ensure correctness:
//! - `apply` is deterministic: outcomes depend only on the entries and the state before them;
//! - a sign entry for a key whose registry record is disabled or deleted at that point of the
//!   log is `KeyInactive`: no permit, whatever the leader checked before proposing;
//! - the per-key records an entry changes and `last_applied` are written in the same redb
//!   transaction, so after a crash the state is exactly "applied up to last_applied";
//! - applies commit without fsync: the decisions are already durable in the Raft log on a
//!   quorum (the log store fsyncs before acknowledging), and redb is crash-consistent, so after
//!   a crash the state is an earlier "applied up to last_applied" and openraft re-applies the
//!   committed entries after it. Snapshots are written with fsync, which also makes every
//!   earlier apply durable before any log entry is purged;
//! - responders are answered only after that transaction committed;
//! - nothing node-local takes part in a decision: there is no request-id table. A retried
//!   request is decided by the rules again, which re-sign identical data (`Resigned`), so
//!   idempotency needs no memory and every replica decides the same from the log alone;
//! - a sign entry names the key's id and public key; an id that the registry holds under
//!   another public key is refused (`KeyMismatch`), so a permit can only name the key whose
//!   protection record the rules just checked.

mod admin;
mod audit;

use super::{
    io_err, Command, CommandResult, LogId, SignEntry, SignOutcome, Snapshot, SnapshotData,
    SnapshotMeta, StoredMembership, TypeConfig,
};
use crate::protection::espresso::PublicKeyBytes as EspressoPublicKey;
use crate::protection::ethereum::BlsPubkey;
use crate::protection::{Decision, Intent, ProtectionState};
use crate::registry::Registry;
pub use audit::AuditChain;
use futures::TryStreamExt;
use openraft::entry::RaftEntry;
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::io;
use std::path::Path;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// "last_applied" | "membership" | "snapshot" → JSON.
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("sm_meta");
/// key id → JSON `KeyRecord` (the key registry).
const KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("key_records");
/// eth2 validator public key → JSON `ValidatorRecord`.
const ETH2: TableDefinition<&[u8], &[u8]> = TableDefinition::new("eth2_records");
/// espresso public key → JSON `KeyRecord`.
const ESPRESSO: TableDefinition<&[u8], &[u8]> = TableDefinition::new("espresso_records");

/// The applied state, as the service sees it.
#[derive(Debug, Default)]
pub struct Applied {
    /// Every key's protection record.
    pub protection: ProtectionState,
    /// The validator keys the cluster holds (sealed).
    pub registry: Registry,
    /// The last log entry applied.
    pub last_applied: Option<LogId>,
    /// The last membership applied.
    pub membership: StoredMembership,
    /// Where the audit chain stands (its records are in the database).
    pub audit: AuditChain,
    /// The admin plane: admins, policy, client grants, pause, challenges.
    pub admin: crate::admin::AdminState,
    /// The admin state changed since it was last written.
    admin_dirty: bool,
}

impl Applied {
    /// Decide a batch of sign entries in order, exactly as applying a `Command::Sign` entry
    /// does (same function), without persisting anything: the pure decision, for tests and
    /// models that compare it with what clients received.
    pub fn decide_signs(&mut self, batch: &[SignEntry]) -> Vec<SignOutcome> {
        StateMachine::decide_batch(self, batch, &mut BTreeSet::new())
    }
}

/// Snapshot content: everything replicated.
#[derive(Serialize, Deserialize)]
struct SnapshotBody {
    protection: ProtectionState,
    registry: Registry,
    #[serde(default)]
    audit: audit::AuditSnapshot,
    #[serde(default)]
    admin: crate::admin::AdminState,
}

#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta,
    data: Vec<u8>,
}

/// The state machine. Cloning shares the database and the in-memory state.
#[derive(Clone)]
pub struct StateMachine {
    db: Arc<Database>,
    applied: Arc<RwLock<Applied>>,
    durability: Durability,
    /// Bumped whenever the key registry changes (applied or installed).
    keys_changed: Arc<tokio::sync::watch::Sender<u64>>,
    /// The audit head's seq, sent whenever records are appended.
    audit_changed: Arc<tokio::sync::watch::Sender<u64>>,
}

/// Which per-key record an intent touches.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
enum RecordKey {
    Eth2(BlsPubkey),
    Espresso(EspressoPublicKey),
}

fn record_key(intent: &Intent) -> RecordKey {
    match intent {
        Intent::Eth2(i) => RecordKey::Eth2(*i.pubkey()),
        Intent::Espresso(i) => RecordKey::Espresso(i.public_key),
    }
}

/// Store one record (JSON) under its public key.
fn put_record<R: Serialize>(
    table: &mut redb::Table<'_, &[u8], &[u8]>,
    key: &[u8],
    record: &R,
) -> io::Result<()> {
    let bytes = serde_json::to_vec(record).map_err(io_err)?;
    table.insert(key, bytes.as_slice()).map_err(io_err)?;
    Ok(())
}

/// Store `last_applied` and the membership.
fn put_meta(txn: &redb::WriteTransaction, applied: &Applied) -> io::Result<()> {
    let mut meta = txn.open_table(META).map_err(io_err)?;
    let la = serde_json::to_vec(&applied.last_applied).map_err(io_err)?;
    meta.insert("last_applied", la.as_slice()).map_err(io_err)?;
    let m = serde_json::to_vec(&applied.membership).map_err(io_err)?;
    meta.insert("membership", m.as_slice()).map_err(io_err)?;
    if applied.admin_dirty {
        let a = serde_json::to_vec(&applied.admin).map_err(io_err)?;
        meta.insert("admin", a.as_slice()).map_err(io_err)?;
    }
    Ok(())
}

impl StateMachine {
    /// Open or create the state database at `path` and load it into memory.
    pub fn open(path: &Path, sync_writes: bool) -> io::Result<Self> {
        let db = Database::builder()
            .set_cache_size(64 * 1024 * 1024)
            .create(path)
            .map_err(io_err)?;
        let txn = db.begin_write().map_err(io_err)?;
        {
            txn.open_table(META).map_err(io_err)?;
            txn.open_table(ETH2).map_err(io_err)?;
            txn.open_table(ESPRESSO).map_err(io_err)?;
            txn.open_table(KEYS).map_err(io_err)?;
            txn.open_table(audit::AUDIT).map_err(io_err)?;
            txn.open_table(audit::AUDIT_META).map_err(io_err)?;
        }
        txn.commit().map_err(io_err)?;
        let applied = load(&db)?;
        let audit_head = applied.audit.head.seq;
        Ok(StateMachine {
            db: Arc::new(db),
            applied: Arc::new(RwLock::new(applied)),
            durability: if sync_writes {
                Durability::Immediate
            } else {
                Durability::None
            },
            keys_changed: Arc::new(tokio::sync::watch::channel(0).0),
            audit_changed: Arc::new(tokio::sync::watch::channel(audit_head).0),
        })
    }

    /// A receiver that sees a new value whenever the key registry changes.
    pub fn watch_keys(&self) -> tokio::sync::watch::Receiver<u64> {
        self.keys_changed.subscribe()
    }

    fn bump_keys(&self) {
        self.keys_changed.send_modify(|v| *v += 1);
    }

    /// Read access to the applied state (for pre-checks and status). Hold it briefly.
    pub fn read(&self) -> RwLockReadGuard<'_, Applied> {
        self.applied.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Applied> {
        self.applied.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Decide a batch against the in-memory state, in order; returns one outcome per entry
    /// and adds the records that changed to `touched`.
    fn decide_batch(
        applied: &mut Applied,
        batch: &[SignEntry],
        touched: &mut BTreeSet<RecordKey>,
    ) -> Vec<SignOutcome> {
        batch
            .iter()
            .map(|entry| Self::decide_one(applied, entry, touched))
            .collect()
    }

    /// One entry's outcome: a pure function of the applied state and the entry.
    fn decide_one(
        applied: &mut Applied,
        entry: &SignEntry,
        touched: &mut BTreeSet<RecordKey>,
    ) -> SignOutcome {
        if let Some(record) = applied.registry.keys.get(&entry.key_id) {
            // A key disabled or deleted by an earlier entry signs nothing after it, even if
            // the request passed the leader's checks before that entry was applied.
            if record.state != crate::registry::KeyState::Active {
                return SignOutcome::KeyInactive;
            }
            // The entry's public key is the one whose record the rules check and the one the
            // permit names: it must be the registry's key of that id.
            if record.public_key.as_slice() != entry.intent.public_key() {
                return SignOutcome::KeyMismatch;
            }
        }
        // Paused by the admins: nothing signs after the pause entry.
        if applied.admin.paused {
            return SignOutcome::Paused;
        }
        match applied.protection.decide(&entry.intent) {
            Decision::Sign => {
                touched.insert(record_key(&entry.intent));
                SignOutcome::Signed
            }
            Decision::Resign => SignOutcome::Resigned,
            Decision::Refuse(v) => SignOutcome::Refused(v),
        }
    }

    /// Write the touched records, the audit records, `last_applied` and membership in one
    /// transaction.
    fn persist(
        &self,
        applied: &Applied,
        touched: &BTreeSet<RecordKey>,
        keys_touched: &BTreeSet<String>,
        audit_batch: &audit::AuditBatch,
    ) -> io::Result<()> {
        let mut txn = self.db.begin_write().map_err(io_err)?;
        txn.set_durability(Durability::None).map_err(io_err)?;
        {
            let mut keys = txn.open_table(KEYS).map_err(io_err)?;
            for key_id in keys_touched {
                if let Some(rec) = applied.registry.keys.get(key_id) {
                    let bytes = serde_json::to_vec(rec).map_err(io_err)?;
                    keys.insert(key_id.as_str(), bytes.as_slice())
                        .map_err(io_err)?;
                }
            }
            let mut eth2 = txn.open_table(ETH2).map_err(io_err)?;
            let mut espresso = txn.open_table(ESPRESSO).map_err(io_err)?;
            for key in touched {
                match key {
                    RecordKey::Eth2(pk) => {
                        if let Some(rec) = applied.protection.eth2.validators.get(pk) {
                            put_record(&mut eth2, &pk.0, rec)?;
                        }
                    }
                    RecordKey::Espresso(pk) => {
                        if let Some(rec) = applied.protection.espresso.keys.get(pk) {
                            put_record(&mut espresso, &pk.0, rec)?;
                        }
                    }
                }
            }
        }
        audit::write(&txn, &applied.audit, audit_batch)?;
        put_meta(&txn, applied)?;
        txn.commit().map_err(io_err)
    }

    /// Replace the whole state (snapshot install) in one transaction.
    fn replace_all(
        &self,
        applied: &Applied,
        snapshot: &StoredSnapshot,
        audit_snapshot: &audit::AuditSnapshot,
    ) -> io::Result<()> {
        let mut txn = self.db.begin_write().map_err(io_err)?;
        txn.set_durability(self.durability).map_err(io_err)?;
        {
            let mut eth2 = txn.open_table(ETH2).map_err(io_err)?;
            eth2.retain(|_, _| false).map_err(io_err)?;
            for (pk, rec) in &applied.protection.eth2.validators {
                put_record(&mut eth2, &pk.0, rec)?;
            }
            let mut espresso = txn.open_table(ESPRESSO).map_err(io_err)?;
            espresso.retain(|_, _| false).map_err(io_err)?;
            for (pk, rec) in &applied.protection.espresso.keys {
                put_record(&mut espresso, &pk.0, rec)?;
            }
            let mut keys = txn.open_table(KEYS).map_err(io_err)?;
            keys.retain(|_, _| false).map_err(io_err)?;
            for (key_id, rec) in &applied.registry.keys {
                let bytes = serde_json::to_vec(rec).map_err(io_err)?;
                keys.insert(key_id.as_str(), bytes.as_slice())
                    .map_err(io_err)?;
            }
            let mut meta = txn.open_table(META).map_err(io_err)?;
            let s = serde_json::to_vec(snapshot).map_err(io_err)?;
            meta.insert("snapshot", s.as_slice()).map_err(io_err)?;
        }
        audit::install(&txn, audit_snapshot)?;
        put_meta(&txn, applied)?;
        txn.commit().map_err(io_err)
    }
}

/// Load the persisted state into memory.
fn load(db: &Database) -> io::Result<Applied> {
    let txn = db.begin_read().map_err(io_err)?;
    let meta = txn.open_table(META).map_err(io_err)?;
    let read = |key: &str| -> io::Result<Option<Vec<u8>>> {
        Ok(meta.get(key).map_err(io_err)?.map(|v| v.value().to_vec()))
    };
    let last_applied: Option<LogId> = match read("last_applied")? {
        Some(b) => serde_json::from_slice(&b).map_err(io_err)?,
        None => None,
    };
    let membership: StoredMembership = match read("membership")? {
        Some(b) => serde_json::from_slice(&b).map_err(io_err)?,
        None => StoredMembership::default(),
    };
    let mut protection = ProtectionState::default();
    protection.eth2.validators = load_records(&txn, ETH2)?;
    protection.espresso.keys = load_records(&txn, ESPRESSO)?;
    let mut registry = Registry::default();
    for item in txn
        .open_table(KEYS)
        .map_err(io_err)?
        .iter()
        .map_err(io_err)?
    {
        let (k, v) = item.map_err(io_err)?;
        registry.keys.insert(
            k.value().to_owned(),
            serde_json::from_slice(v.value()).map_err(io_err)?,
        );
    }
    let audit = audit::load_chain(&txn)?;
    let admin = match read("admin")? {
        Some(b) => serde_json::from_slice(&b).map_err(io_err)?,
        None => crate::admin::AdminState::default(),
    };
    Ok(Applied {
        protection,
        registry,
        last_applied,
        membership,
        audit,
        admin,
        admin_dirty: false,
    })
}

/// Read a table of per-key records (public key bytes → JSON record).
fn load_records<const N: usize, R: serde::de::DeserializeOwned>(
    txn: &redb::ReadTransaction,
    table: TableDefinition<&[u8], &[u8]>,
) -> io::Result<std::collections::BTreeMap<crate::bytes::FixedBytes<N>, R>> {
    let mut records = std::collections::BTreeMap::new();
    for item in txn
        .open_table(table)
        .map_err(io_err)?
        .iter()
        .map_err(io_err)?
    {
        let (k, v) = item.map_err(io_err)?;
        let key = crate::bytes::FixedBytes::from_slice(k.value()).map_err(io_err)?;
        records.insert(key, serde_json::from_slice(v.value()).map_err(io_err)?);
    }
    Ok(records)
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    type SnapshotData = SnapshotData;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let (meta, data) = {
            let applied = self.read();
            let meta = SnapshotMeta {
                last_log_id: applied.last_applied,
                last_membership: applied.membership.clone(),
            };
            let body = SnapshotBody {
                protection: applied.protection.clone(),
                registry: applied.registry.clone(),
                audit: self.audit_snapshot()?,
                admin: applied.admin.clone(),
            };
            (meta, serde_json::to_vec(&body).map_err(io_err)?)
        };
        let stored = serde_json::to_vec(&StoredSnapshot {
            meta: meta.clone(),
            data: data.clone(),
        })
        .map_err(io_err)?;
        let mut txn = self.db.begin_write().map_err(io_err)?;
        txn.set_durability(self.durability).map_err(io_err)?;
        {
            let mut m = txn.open_table(META).map_err(io_err)?;
            m.insert("snapshot", stored.as_slice()).map_err(io_err)?;
        }
        txn.commit().map_err(io_err)?;
        Ok(Snapshot {
            meta,
            snapshot: data,
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = SnapshotData;
    type SnapshotBuilder = StateMachine;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        let applied = self.read();
        Ok((applied.last_applied, applied.membership.clone()))
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
        if items.is_empty() {
            return Ok(());
        }
        let mut replies = Vec::with_capacity(items.len());
        let mut keys_touched = BTreeSet::new();
        let audit_head;
        {
            let mut applied = self.write();
            let mut touched = BTreeSet::new();
            let mut audit_batch = audit::AuditBatch::default();
            for (entry, responder) in items {
                let log_id = entry.log_id();
                let index = log_id.index;
                let result = match &entry.payload {
                    EntryPayload::Blank => CommandResult::None,
                    EntryPayload::Normal(proposal) => {
                        let at_ms = proposal.at_ms;
                        applied.audit.last_at_ms = at_ms;
                        match &proposal.command {
                            Command::Sign(batch) => {
                                let outcomes =
                                    Self::decide_batch(&mut applied, batch, &mut touched);
                                for (e, o) in batch.iter().zip(&outcomes) {
                                    let event = audit::sign_event(e, o);
                                    applied.audit.append(&mut audit_batch, at_ms, index, event);
                                }
                                CommandResult::Sign(outcomes)
                            }
                            Command::Event(events) => {
                                for event in audit::node_events(events) {
                                    applied.audit.append(&mut audit_batch, at_ms, index, event);
                                }
                                CommandResult::None
                            }
                            Command::Admin(command) => {
                                let mut outcome = admin::apply(
                                    &mut applied,
                                    command,
                                    at_ms,
                                    &mut touched,
                                    &mut keys_touched,
                                );
                                if let Some((id, up_to_seq)) =
                                    admin::approved_compaction(&applied, command, &outcome)
                                {
                                    let compacted = self.compact_audit(
                                        &mut applied,
                                        &mut audit_batch,
                                        up_to_seq,
                                        at_ms,
                                        index,
                                    )?;
                                    if let Err(reason) = compacted {
                                        outcome = admin::fail_executed(
                                            &mut applied,
                                            &id,
                                            at_ms,
                                            outcome,
                                            reason,
                                        );
                                    }
                                }
                                let event = admin::audit_event(&applied, command, &outcome);
                                applied.audit.append(&mut audit_batch, at_ms, index, event);
                                CommandResult::Admin(outcome)
                            }
                        }
                    }
                    EntryPayload::Membership(m) => {
                        applied.membership = StoredMembership::new(Some(log_id), m.clone());
                        let event = crate::audit::AuditEvent::Membership {
                            voters: m.voter_ids().collect(),
                            learners: m.learner_ids().collect(),
                        };
                        let at_ms = applied.audit.last_at_ms;
                        applied.audit.append(&mut audit_batch, at_ms, index, event);
                        CommandResult::None
                    }
                };
                applied.last_applied = Some(log_id);
                replies.push((responder, result));
            }
            self.persist(&applied, &touched, &keys_touched, &audit_batch)?;
            applied.admin_dirty = false;
            audit_head = applied.audit.head.seq;
        }
        self.notify_audit(audit_head);
        if !keys_touched.is_empty() {
            self.bump_keys();
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

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: SnapshotData,
    ) -> Result<(), io::Error> {
        let body: SnapshotBody = serde_json::from_slice(&snapshot).map_err(io_err)?;
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data: snapshot,
        };
        let mut applied = self.write();
        let next = Applied {
            protection: body.protection,
            registry: body.registry,
            last_applied: meta.last_log_id,
            membership: meta.last_membership.clone(),
            audit: body.audit.chain(),
            admin: body.admin,
            admin_dirty: true,
        };
        self.replace_all(&next, &stored, &body.audit)?;
        let audit_head = next.audit.head.seq;
        *applied = next;
        drop(applied);
        self.bump_keys();
        self.notify_audit(audit_head);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        let txn = self.db.begin_read().map_err(io_err)?;
        let meta = txn.open_table(META).map_err(io_err)?;
        match meta.get("snapshot").map_err(io_err)? {
            None => Ok(None),
            Some(v) => {
                let s: StoredSnapshot = serde_json::from_slice(v.value()).map_err(io_err)?;
                Ok(Some(Snapshot {
                    meta: s.meta,
                    snapshot: s.data,
                }))
            }
        }
    }
}
