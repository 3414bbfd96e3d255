//! The state database's tables and what is written to them: the replicated state's records,
//! the audit log and openraft's position, every value in the versioned binary format
//! ([`crate::format`]).
//!
//! Owns: the redb table layout and the database's format version. Must not: decide or change
//! the replicated state (it writes what [`Changes`] names, reading the new values from
//! [`Applied`]).
//!
//! Tables:
//! - `sm_meta`: `format` (u16 LE), `last_applied`, `membership`, `admin`;
//! - `key_records`: key id → `KeyRecord`;
//! - `eth2_records`, `espresso_records`: public key bytes → protection record;
//! - `audit`: seq → the record's canonical bytes ([`crate::audit::encode`]);
//! - `audit_meta`: `chain` → [`AuditChain`].
//!
//! The current snapshot is kept in files beside the database ([`super::snapshot_files`]): a
//! snapshot is tens or hundreds of MiB, which redb would copy on write and fsync page by page.

use super::super::{commit, io_err, LogId, SnapshotMeta, StoredMembership};
use super::installed::InstalledRecords;
use super::snapshot_files::SnapshotFiles;
use super::until_error;
use crate::audit::{ChainError, ChainPoint};
use crate::format;
use crate::protection::ProtectionState;
use crate::registry::Registry;
use crate::state::upgrade::decode_admin_state;
use crate::state::AuditState;
use crate::state::{Applied, AuditChain, Changes, RecordKey, StoredRecords, StreamedSnapshotBody};
use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io;
use std::path::Path;

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("sm_meta");
const KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("key_records");
const ETH2: TableDefinition<&[u8], &[u8]> = TableDefinition::new("eth2_records");
const ESPRESSO: TableDefinition<&[u8], &[u8]> = TableDefinition::new("espresso_records");
const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");
const AUDIT_META: TableDefinition<&str, &[u8]> = TableDefinition::new("audit_meta");

/// A record's bytes as redb holds them, read in place.
struct InPlace<'a>(redb::AccessGuard<'a, &'static [u8]>);

impl AsRef<[u8]> for InPlace<'_> {
    fn as_ref(&self) -> &[u8] {
        self.0.value()
    }
}

/// `consume`'s result over the kept audit records from `from_seq` on as `txn` sees them,
/// (seq, bytes) one at a time in seq order. A read error ends the records early and is
/// returned instead.
fn with_records<T>(
    txn: &redb::ReadTransaction,
    from_seq: u64,
    consume: impl for<'r> FnOnce(&mut dyn Iterator<Item = (u64, InPlace<'r>)>) -> T,
) -> io::Result<T> {
    let table = txn.open_table(AUDIT).map_err(io_err)?;
    let records = table
        .range(from_seq..)
        .map_err(io_err)?
        .map(|item| item.map(|(seq, bytes)| (seq.value(), InPlace(bytes))));
    until_error(records, consume).map_err(io_err)
}

fn encode<T: Serialize + ?Sized>(value: &T) -> io::Result<Vec<u8>> {
    format::encode(value).map_err(io_err)
}

/// A stored value: of this format, or of an older one in the same layout.
fn decode<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> io::Result<T> {
    format::decode_stored(bytes).map_err(|e| stored_error(what, e))
}

fn stored_error(what: &str, e: format::FormatError) -> io::Error {
    io::Error::other(format!("state database, {what}: {e}"))
}

/// Open or create the database at `path`; refuse one written in another format version.
pub(super) fn open(path: &Path) -> io::Result<Database> {
    let db = Database::builder()
        .set_cache_size(64 * 1024 * 1024)
        .create(path)
        .map_err(io_err)?;
    let txn = db.begin_write().map_err(io_err)?;
    {
        let mut meta = txn.open_table(META).map_err(io_err)?;
        let stored = meta
            .get("format")
            .map_err(io_err)?
            .map(|v| v.value().to_vec());
        let holds_data = meta.get("last_applied").map_err(io_err)?.is_some();
        let stamp = format::check_database(stored.as_deref(), holds_data)
            .map_err(|e| io::Error::other(format!("state database {}: {e}", path.display())))?;
        if stamp {
            meta.insert("format", format::version_bytes().as_slice())
                .map_err(io_err)?;
        }
        txn.open_table(ETH2).map_err(io_err)?;
        txn.open_table(ESPRESSO).map_err(io_err)?;
        txn.open_table(KEYS).map_err(io_err)?;
        txn.open_table(AUDIT).map_err(io_err)?;
        txn.open_table(AUDIT_META).map_err(io_err)?;
    }
    txn.commit().map_err(io_err)?;
    Ok(db)
}

/// What a database holds, as [`load`] reads it.
pub(super) struct Loaded {
    pub(super) applied: Applied,
    pub(super) last_applied: Option<LogId>,
    pub(super) membership: StoredMembership,
    /// What the kept audit records hold together, in bytes.
    pub(super) record_bytes: u64,
}

/// Load the persisted state into memory, with openraft's position.
pub(super) fn load(db: &Database) -> io::Result<Loaded> {
    let txn = db.begin_read().map_err(io_err)?;
    let meta = txn.open_table(META).map_err(io_err)?;
    let read = |key: &str| -> io::Result<Option<Vec<u8>>> {
        Ok(meta.get(key).map_err(io_err)?.map(|v| v.value().to_vec()))
    };
    let last_applied: Option<LogId> = match read("last_applied")? {
        Some(b) => decode("last_applied", &b)?,
        None => None,
    };
    let membership: StoredMembership = match read("membership")? {
        Some(b) => decode("membership", &b)?,
        None => StoredMembership::default(),
    };
    // The admin state gained the revoked certificates in format 2 and the Espresso view
    // horizon in format 3: older state upgrades.
    let admin = match read("admin")? {
        Some(b) => decode_admin_state(&b).map_err(|e| stored_error("admin", e))?,
        None => crate::admin::AdminState::default(),
    };
    let mut protection = ProtectionState::default();
    protection.eth2.validators = load_records(&txn, ETH2, "eth2_records")?;
    protection.espresso.keys = load_records(&txn, ESPRESSO, "espresso_records")?;
    let mut registry = Registry::default();
    for item in txn
        .open_table(KEYS)
        .map_err(io_err)?
        .iter()
        .map_err(io_err)?
    {
        let (k, v) = item.map_err(io_err)?;
        registry
            .keys
            .insert(k.value().to_owned(), decode("key_records", v.value())?);
    }
    let chain = read_chain(&txn)?;
    // The kept records are hashed as they are read, never all in memory, and counted.
    let mut record_bytes = 0u64;
    let audit = with_records(&txn, 0, |records| {
        let counted = records.inspect(|(_, bytes)| {
            record_bytes = record_bytes.saturating_add(bytes.as_ref().len() as u64);
        });
        AuditState::rebuild_from(chain, counted)
    })?
    .map_err(io_err)?;
    let applied = Applied {
        protection,
        registry,
        audit,
        admin,
    };
    Ok(Loaded {
        applied,
        last_applied,
        membership,
        record_bytes,
    })
}

/// Read a table of per-key records (public key bytes → record).
fn load_records<const N: usize, R: DeserializeOwned>(
    txn: &redb::ReadTransaction,
    table: TableDefinition<&[u8], &[u8]>,
    what: &str,
) -> io::Result<BTreeMap<crate::bytes::FixedBytes<N>, R>> {
    let mut records = BTreeMap::new();
    for item in txn
        .open_table(table)
        .map_err(io_err)?
        .iter()
        .map_err(io_err)?
    {
        let (k, v) = item.map_err(io_err)?;
        let key = crate::bytes::FixedBytes::from_slice(k.value()).map_err(io_err)?;
        records.insert(key, decode(what, v.value())?);
    }
    Ok(records)
}

/// What one applied batch writes to the database: its changed values, already encoded, its
/// audit records and openraft's position. Made under the state machine's write lock (the
/// values read from [`Applied`] as the batch left them), written later by the persister
/// ([`super::persister`]), possibly with the batches after it in one transaction.
pub(super) struct Rows {
    /// Registry ids with their new value, or `None` when removed.
    keys: Vec<(String, Option<Vec<u8>>)>,
    /// Protection records with their new value.
    records: Vec<(RecordKey, Vec<u8>)>,
    /// Audit records appended (seq, canonical bytes), in order; none the batch compacted.
    audit: Vec<(u64, Vec<u8>)>,
    /// Records up to this seq are removed (the batch compacted the audit log).
    compacted_to: Option<u64>,
    last_applied: Vec<u8>,
    membership: Vec<u8>,
    /// The admin state, when the batch changed it.
    admin: Option<Vec<u8>>,
    chain: Vec<u8>,
}

impl Rows {
    /// The bytes of the audit records these rows append.
    pub(super) fn audit_bytes(&self) -> u64 {
        self.audit.iter().map(|(_, r)| r.len() as u64).sum()
    }
}

/// The rows of a batch that left `applied` with `changes` (taken: its audit records move into
/// the rows) and openraft's position.
pub(super) fn rows(
    applied: &Applied,
    changes: Changes,
    last_applied: &Option<LogId>,
    membership: &StoredMembership,
) -> io::Result<Rows> {
    let keys = changes
        .keys
        .into_iter()
        .map(|key_id| {
            let value = match applied.registry.keys.get(&key_id) {
                Some(rec) => Some(encode(rec)?),
                None => None,
            };
            Ok((key_id, value))
        })
        .collect::<io::Result<_>>()?;
    let mut records = Vec::with_capacity(changes.records.len());
    for key in changes.records {
        let value = match &key {
            RecordKey::Eth2(pk) => applied.protection.eth2.validators.get(pk).map(encode),
            RecordKey::Espresso(pk) => applied.protection.espresso.keys.get(pk).map(encode),
        };
        if let Some(value) = value {
            records.push((key, value?));
        }
    }
    let chain = applied.audit.chain;
    let mut audit = changes.audit;
    // A record compacted away later in the same batch is never written.
    audit.retain(|(seq, _)| *seq > chain.anchor.seq);
    Ok(Rows {
        keys,
        records,
        audit,
        compacted_to: changes.compacted_to.map(|_| chain.anchor.seq),
        last_applied: encode(last_applied)?,
        membership: encode(membership)?,
        admin: if changes.admin {
            Some(encode(&applied.admin)?)
        } else {
            None
        },
        chain: encode(&chain)?,
    })
}

/// Write `rows` in `txn`. `record_bytes` is what the kept audit records hold together; it is
/// updated to what they hold after.
pub(super) fn write_rows(
    txn: &WriteTransaction,
    rows: &Rows,
    record_bytes: &mut u64,
) -> io::Result<()> {
    let mut keys = txn.open_table(KEYS).map_err(io_err)?;
    for (key_id, value) in &rows.keys {
        match value {
            Some(value) => keys.insert(key_id.as_str(), value.as_slice()),
            None => keys.remove(key_id.as_str()),
        }
        .map_err(io_err)?;
    }
    let mut eth2 = txn.open_table(ETH2).map_err(io_err)?;
    let mut espresso = txn.open_table(ESPRESSO).map_err(io_err)?;
    for (key, value) in &rows.records {
        match key {
            RecordKey::Eth2(pk) => eth2.insert(pk.0.as_slice(), value.as_slice()),
            RecordKey::Espresso(pk) => espresso.insert(pk.0.as_slice(), value.as_slice()),
        }
        .map_err(io_err)?;
    }
    let mut audit = txn.open_table(AUDIT).map_err(io_err)?;
    for (seq, bytes) in &rows.audit {
        audit.insert(*seq, bytes.as_slice()).map_err(io_err)?;
        *record_bytes = record_bytes.saturating_add(bytes.len() as u64);
    }
    if let Some(anchor) = rows.compacted_to {
        audit
            .retain_in(..=anchor, |_, bytes| {
                *record_bytes = record_bytes.saturating_sub(bytes.len() as u64);
                false
            })
            .map_err(io_err)?;
    }
    let mut meta = txn.open_table(META).map_err(io_err)?;
    meta.insert("last_applied", rows.last_applied.as_slice())
        .map_err(io_err)?;
    meta.insert("membership", rows.membership.as_slice())
        .map_err(io_err)?;
    if let Some(admin) = &rows.admin {
        meta.insert("admin", admin.as_slice()).map_err(io_err)?;
    }
    let mut audit_meta = txn.open_table(AUDIT_META).map_err(io_err)?;
    audit_meta
        .insert("chain", rows.chain.as_slice())
        .map_err(io_err)?;
    Ok(())
}

/// Replace the whole state with an installed snapshot's: the snapshot files first, then the
/// database in one transaction. The audit records are read once, each written to the
/// snapshot's records file and into the transaction, which commits after the files are
/// stored.
///
/// The order matters when a write fails (a full disk): the database must never claim a
/// position (`last_applied`) that neither the snapshot files nor the Raft log covers. At start
/// openraft purges the log up to `last_applied` when the log ends below it, and then requires
/// the snapshot to reach that far; a database written before failed snapshot files would
/// leave a node that can never start again. Written file first, a failure in between leaves
/// a snapshot newer than the database, which openraft installs again at start.
pub(super) fn replace_all(
    db: &Database,
    durability: Durability,
    applied: &Applied,
    records: &InstalledRecords,
    meta: &SnapshotMeta,
    snapshot_files: &SnapshotFiles,
) -> io::Result<()> {
    let durable = matches!(durability, Durability::Immediate);
    commit(db, durability, |txn| {
        {
            let mut audit = txn.open_table(AUDIT).map_err(io_err)?;
            audit.retain(|_, _| false).map_err(io_err)?;
            let source = records.source();
            // An installed snapshot's file starts at its first record: every record passes.
            let both = Box::new(
                |from: u64, sink: &mut dyn FnMut(u64, &[u8]) -> io::Result<()>| {
                    source(from, &mut |seq, bytes| {
                        audit.insert(seq, bytes).map_err(io_err)?;
                        sink(seq, bytes)
                    })
                },
            );
            snapshot_files.store_installed(durable, meta, applied, both)?;
        }
        let mut eth2 = txn.open_table(ETH2).map_err(io_err)?;
        eth2.retain(|_, _| false).map_err(io_err)?;
        for (pk, rec) in &applied.protection.eth2.validators {
            eth2.insert(pk.0.as_slice(), encode(rec)?.as_slice())
                .map_err(io_err)?;
        }
        let mut espresso = txn.open_table(ESPRESSO).map_err(io_err)?;
        espresso.retain(|_, _| false).map_err(io_err)?;
        for (pk, rec) in &applied.protection.espresso.keys {
            espresso
                .insert(pk.0.as_slice(), encode(rec)?.as_slice())
                .map_err(io_err)?;
        }
        let mut keys = txn.open_table(KEYS).map_err(io_err)?;
        keys.retain(|_, _| false).map_err(io_err)?;
        for (key_id, rec) in &applied.registry.keys {
            keys.insert(key_id.as_str(), encode(rec)?.as_slice())
                .map_err(io_err)?;
        }
        let mut audit_meta = txn.open_table(AUDIT_META).map_err(io_err)?;
        audit_meta
            .insert("chain", encode(&applied.audit.chain)?.as_slice())
            .map_err(io_err)?;
        let mut m = txn.open_table(META).map_err(io_err)?;
        m.insert("last_applied", encode(&meta.last_log_id)?.as_slice())
            .map_err(io_err)?;
        m.insert("membership", encode(&meta.last_membership)?.as_slice())
            .map_err(io_err)?;
        m.insert("admin", encode(&applied.admin)?.as_slice())
            .map_err(io_err)?;
        Ok(())
    })
}

/// The chain position as `txn` sees it.
pub(super) fn read_chain(txn: &redb::ReadTransaction) -> io::Result<AuditChain> {
    let meta = txn.open_table(AUDIT_META).map_err(io_err)?;
    match meta.get("chain").map_err(io_err)? {
        Some(v) => decode("audit chain", v.value()),
        None => Ok(AuditChain::default()),
    }
}

/// A read transaction: a consistent view of the database as of now.
pub(super) fn begin_read(db: &Database) -> io::Result<redb::ReadTransaction> {
    db.begin_read().map_err(io_err)
}

/// Hand each record from `from_seq` on, as `txn` sees them, to `sink`, in seq order.
pub(super) fn for_each_record(
    txn: &redb::ReadTransaction,
    from_seq: u64,
    sink: &mut dyn FnMut(u64, &[u8]) -> io::Result<()>,
) -> io::Result<()> {
    with_records(txn, from_seq, |records| {
        for (seq, bytes) in records {
            sink(seq, bytes.as_ref())?;
        }
        Ok(())
    })?
}

/// Records from `from_seq` (at most `limit`) as `txn` sees them.
pub(super) fn read_records(
    txn: &redb::ReadTransaction,
    from_seq: u64,
    limit: usize,
) -> io::Result<StoredRecords> {
    let table = txn.open_table(AUDIT).map_err(io_err)?;
    let mut out = Vec::new();
    for item in table.range(from_seq..).map_err(io_err)? {
        if out.len() >= limit {
            break;
        }
        let (k, v) = item.map_err(io_err)?;
        out.push((k.value(), v.value().to_vec()));
    }
    Ok(out)
}

/// The snapshot body of `state`, with its kept audit records read from `txn` one at a time
/// as they are encoded (never all in memory beside the encoded body). `txn` must see the
/// database as `state` was applied (both taken under the state machine's read lock).
pub(super) fn encode_snapshot_body(
    txn: &redb::ReadTransaction,
    state: &Applied,
) -> io::Result<Vec<u8>> {
    let table = txn.open_table(AUDIT).map_err(io_err)?;
    let records = table
        .range(0..)
        .map_err(io_err)?
        .map(|item| item.map(|(seq, bytes)| (seq.value(), InPlace(bytes))));
    format::encode(&StreamedSnapshotBody::new(state, records)).map_err(|e| {
        let chain = state.audit.chain;
        io::Error::other(format!(
            "snapshot with {} kept audit records (seq {}..={}): {e}; a snapshot carries every \
             kept record: export and compact the audit log (signerctl audit-compact)",
            chain.head.seq.saturating_sub(chain.anchor.seq),
            chain.anchor.seq.saturating_add(1),
            chain.head.seq
        ))
    })
}

/// The chain position as `txn` sees it, and the kept records verified from its anchor to its
/// head ([`crate::audit::verify_chain_from`]), read one at a time.
pub(super) fn verify_audit(
    txn: &redb::ReadTransaction,
) -> io::Result<(AuditChain, Result<ChainPoint, ChainError>)> {
    let chain = read_chain(txn)?;
    let result = with_records(txn, 0, |records| {
        crate::audit::verify_chain_from(records, chain.anchor, Some(chain.head))
    })?;
    Ok((chain, result))
}

/// One fsync'd empty commit: every earlier commit becomes durable.
pub(super) fn sync(db: &Database) -> io::Result<()> {
    commit(db, Durability::Immediate, |_| Ok(()))
}
