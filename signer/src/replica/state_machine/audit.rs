//! The audit log inside the state database: records appended while a batch is applied, written
//! in the batch's transaction, compacted on an admin-approved command, carried in snapshots,
//! and read back (from redb, not memory) for the audit service.
//!
//! Owns: the `audit` table (seq → canonical record bytes) and the `audit_meta` table (anchor,
//! head, time of the last proposal). Must not: build records from anything but replicated data
//! (the entry, its log index, the proposer's timestamp).
//!
//! To ensure correctness:
//! - records of a batch are written in the same transaction as `last_applied`, so after a
//!   crash the log holds exactly the records of the applied entries;
//! - compaction keeps the hash of the last dropped record as the anchor, so what remains
//!   still verifies, and appends a `Compacted` record that names the anchor.

use super::{Applied, StateMachine};
use crate::audit::{
    self, AuditEvent, ChainError, ChainPoint, Hash, NodeEvent, SignDecision, SignResult,
};
use crate::protection::ethereum::Eth2Intent;
use crate::protection::Intent;
use crate::replica::{io_err, SignEntry, SignOutcome};
use base64::Engine as _;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use std::io;

/// seq → canonical encoding of the record.
pub(super) const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");
/// "chain" → JSON [`AuditChain`].
pub(super) const AUDIT_META: TableDefinition<&str, &[u8]> = TableDefinition::new("audit_meta");

/// Where the chain stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditChain {
    /// The point the kept records verify from: genesis, or the last compacted record.
    pub anchor: ChainPoint,
    /// The newest record (equal to `anchor` when no record is kept).
    pub head: ChainPoint,
    /// The timestamp of the last applied proposal; entries without one (membership, blank)
    /// are recorded at this time.
    pub last_at_ms: u64,
}

/// Records made while applying one batch, and a compaction if one was applied.
#[derive(Default)]
pub(super) struct AuditBatch {
    records: Vec<(u64, Vec<u8>)>,
    compacted: bool,
}

impl AuditChain {
    /// Append `event` as the next record.
    pub(super) fn append(
        &mut self,
        batch: &mut AuditBatch,
        at_ms: u64,
        log_index: u64,
        event: AuditEvent,
    ) {
        let (_, bytes, head) = audit::link(self.head, at_ms, log_index, event);
        batch.records.push((head.seq, bytes));
        self.head = head;
    }
}

/// The audit record of one decided sign entry.
pub(super) fn sign_event(entry: &SignEntry, outcome: &SignOutcome) -> AuditEvent {
    let (kind, watermark): (String, Vec<(String, u64)>) = match &entry.intent {
        Intent::Eth2(Eth2Intent::Block { slot, .. }) => {
            ("block".into(), vec![("slot".into(), *slot)])
        }
        Intent::Eth2(Eth2Intent::Attestation {
            source_epoch,
            target_epoch,
            ..
        }) => (
            "attestation".into(),
            vec![
                ("source_epoch".into(), *source_epoch),
                ("target_epoch".into(), *target_epoch),
            ],
        ),
        Intent::Eth2(Eth2Intent::Unslashable { kind, .. }) => (kind.to_lowercase(), vec![]),
        Intent::Espresso(i) => {
            let p = i.position();
            let mut wm = vec![("view".into(), p.view)];
            if p.relay != 0 {
                wm.push(("relay".into(), p.relay));
            }
            (i.kind().name().into(), wm)
        }
    };
    let (result, reason_code, reason) = match outcome {
        SignOutcome::Signed => (SignResult::Signed, String::new(), String::new()),
        SignOutcome::Resigned => (SignResult::Resigned, String::new(), String::new()),
        SignOutcome::Refused(v) => (SignResult::Refused, v.code().to_owned(), v.to_string()),
        SignOutcome::KeyInactive => (
            SignResult::KeyInactive,
            "key_inactive".into(),
            "the key is disabled or deleted".into(),
        ),
        SignOutcome::Paused => (
            SignResult::Refused,
            "paused".into(),
            "signing is paused by the admins".into(),
        ),
        SignOutcome::KeyMismatch => (
            SignResult::Refused,
            "key_mismatch".into(),
            "the registry holds this key id under another public key".into(),
        ),
    };
    AuditEvent::Sign(SignDecision {
        request_id: entry.request_id.clone(),
        client: entry.client.clone(),
        key_id: entry.key_id.clone(),
        profile: entry.intent.profile().name().into(),
        kind,
        outcome: result,
        reason_code,
        reason,
        watermark,
        message: entry.intent.message(),
    })
}

/// The records of node events; each event keeps the node it names (the sink and the peer
/// service make sure that is the node that observed it).
pub(super) fn node_events(events: &[NodeEvent]) -> impl Iterator<Item = AuditEvent> + '_ {
    events.iter().cloned().map(AuditEvent::Node)
}

/// Bytes of record `seq` as committed in `db`, or pending in `batch`.
fn stored(sm: &StateMachine, batch: &AuditBatch, seq: u64) -> io::Result<Option<Vec<u8>>> {
    if let Some((_, b)) = batch.records.iter().find(|(s, _)| *s == seq) {
        return Ok(Some(b.clone()));
    }
    let txn = sm.db.begin_read().map_err(io_err)?;
    let table = txn.open_table(AUDIT).map_err(io_err)?;
    Ok(table.get(seq).map_err(io_err)?.map(|v| v.value().to_vec()))
}

impl StateMachine {
    /// Apply an audit compaction: drop records up to `up_to_seq`, anchor the chain at that
    /// record's hash (as the next record links to it), and record the compaction.
    pub(super) fn compact_audit(
        &self,
        applied: &mut Applied,
        batch: &mut AuditBatch,
        up_to_seq: u64,
        at_ms: u64,
        log_index: u64,
    ) -> io::Result<Result<ChainPoint, String>> {
        let chain = applied.audit;
        if up_to_seq <= chain.anchor.seq || up_to_seq >= chain.head.seq {
            return Ok(Err(format!(
                "up_to_seq must be above the anchor ({}) and below the head ({})",
                chain.anchor.seq, chain.head.seq
            )));
        }
        let last_hash: Hash = match stored(self, batch, up_to_seq + 1)? {
            Some(bytes) => match audit::decode(&bytes) {
                Ok(r) => r.prev_hash,
                Err(e) => return Ok(Err(format!("record {}: {e}", up_to_seq + 1))),
            },
            None => return Ok(Err(format!("record {} is missing", up_to_seq + 1))),
        };
        let anchor = ChainPoint {
            seq: up_to_seq,
            hash: last_hash,
        };
        applied.audit.anchor = anchor;
        batch.compacted = true;
        applied.audit.append(
            batch,
            at_ms,
            log_index,
            AuditEvent::Compacted {
                up_to_seq,
                last_hash,
            },
        );
        Ok(Ok(anchor))
    }

    /// Read records from `from_seq` (at most `limit`), as stored.
    pub fn audit_records(&self, from_seq: u64, limit: usize) -> io::Result<Vec<(u64, Vec<u8>)>> {
        let txn = self.db.begin_read().map_err(io_err)?;
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

    /// The chain's anchor and head as stored.
    pub fn audit_chain(&self) -> io::Result<AuditChain> {
        let txn = self.db.begin_read().map_err(io_err)?;
        load_chain(&txn)
    }

    /// Recompute the whole kept chain from the database (not from memory). Returns the stored
    /// chain position and the verification result.
    pub fn audit_verify(&self) -> io::Result<(AuditChain, Result<ChainPoint, ChainError>)> {
        let txn = self.db.begin_read().map_err(io_err)?;
        let chain = load_chain(&txn)?;
        let records = all_records(&txn)?;
        let result = audit::verify_chain(&records, chain.anchor, Some(chain.head));
        Ok((chain, result))
    }

    /// Make every applied batch durable (one fsync'd empty commit); for a clean shutdown.
    /// Applies commit without fsync (the Raft log is durable), so without this a stopped
    /// node's database holds only what its last snapshot made durable until it re-applies.
    pub fn sync(&self) -> io::Result<()> {
        let mut txn = self.db.begin_write().map_err(io_err)?;
        txn.set_durability(redb::Durability::Immediate)
            .map_err(io_err)?;
        txn.commit().map_err(io_err)
    }

    /// A receiver that sees the head seq whenever records are appended.
    pub fn watch_audit(&self) -> tokio::sync::watch::Receiver<u64> {
        self.audit_changed.subscribe()
    }

    pub(super) fn notify_audit(&self, head: u64) {
        self.audit_changed.send_replace(head);
    }
}

fn all_records(txn: &redb::ReadTransaction) -> io::Result<Vec<(u64, Vec<u8>)>> {
    let table = txn.open_table(AUDIT).map_err(io_err)?;
    let mut out = Vec::new();
    for item in table.iter().map_err(io_err)? {
        let (k, v) = item.map_err(io_err)?;
        out.push((k.value(), v.value().to_vec()));
    }
    Ok(out)
}

/// Read the chain position.
pub(super) fn load_chain(txn: &redb::ReadTransaction) -> io::Result<AuditChain> {
    let meta = txn.open_table(AUDIT_META).map_err(io_err)?;
    match meta.get("chain").map_err(io_err)? {
        Some(v) => serde_json::from_slice(v.value()).map_err(io_err),
        None => Ok(AuditChain::default()),
    }
}

/// Write a batch's records (and a compaction) and the chain position.
pub(super) fn write(
    txn: &redb::WriteTransaction,
    chain: &AuditChain,
    batch: &AuditBatch,
) -> io::Result<()> {
    let mut table = txn.open_table(AUDIT).map_err(io_err)?;
    for (seq, bytes) in &batch.records {
        if *seq > chain.anchor.seq {
            table.insert(*seq, bytes.as_slice()).map_err(io_err)?;
        }
    }
    if batch.compacted {
        table
            .retain_in(..=chain.anchor.seq, |_, _| false)
            .map_err(io_err)?;
    }
    put_chain(txn, chain)
}

fn put_chain(txn: &redb::WriteTransaction, chain: &AuditChain) -> io::Result<()> {
    let mut meta = txn.open_table(AUDIT_META).map_err(io_err)?;
    let bytes = serde_json::to_vec(chain).map_err(io_err)?;
    meta.insert("chain", bytes.as_slice()).map_err(io_err)?;
    Ok(())
}

/// The audit part of a snapshot: the chain position and the kept records (base64).
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct AuditSnapshot {
    chain: AuditChain,
    records: Vec<(u64, String)>,
}

impl StateMachine {
    /// The audit part of a snapshot, read from the database (call with the applied state
    /// read-locked, so it matches `last_applied`).
    pub(super) fn audit_snapshot(&self) -> io::Result<AuditSnapshot> {
        let txn = self.db.begin_read().map_err(io_err)?;
        let chain = load_chain(&txn)?;
        let records = all_records(&txn)?
            .into_iter()
            .map(|(s, b)| (s, base64::engine::general_purpose::STANDARD.encode(b)))
            .collect();
        Ok(AuditSnapshot { chain, records })
    }
}

/// Replace the whole audit log with a snapshot's (snapshot install). Returns the chain.
pub(super) fn install(
    txn: &redb::WriteTransaction,
    snapshot: &AuditSnapshot,
) -> io::Result<AuditChain> {
    let mut table = txn.open_table(AUDIT).map_err(io_err)?;
    table.retain(|_, _| false).map_err(io_err)?;
    let mut decoded = Vec::with_capacity(snapshot.records.len());
    for (seq, text) in &snapshot.records {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(io_err)?;
        table.insert(*seq, bytes.as_slice()).map_err(io_err)?;
        decoded.push((*seq, bytes));
    }
    drop(table);
    if let Err(e) = audit::verify_chain(&decoded, snapshot.chain.anchor, Some(snapshot.chain.head))
    {
        tracing::error!(error = %e, "the audit chain in the installed snapshot does not verify");
    }
    put_chain(txn, &snapshot.chain)?;
    Ok(snapshot.chain)
}

impl AuditSnapshot {
    /// The chain position this snapshot carries.
    pub(super) fn chain(&self) -> AuditChain {
        self.chain
    }
}
