//! The replicated state as a value: every key's protection record, the key registry, the
//! admin plane and the audit chain, and [`Applied::apply`], the whole replicated decision as a
//! function of that value and one log entry.
//!
//! Owns: [`Applied`], [`Changes`] (what an entry changed, for the replica to persist) and the
//! snapshot body ([`SnapshotBody`], its streamed encoding [`StreamedSnapshotBody`] and
//! decoding [`open_snapshot_body`], and the older layouts it upgrades from: [`upgrade`]).
//! Must not: do IO, read a clock or depend on openraft: the replica (the node's state machine)
//! stores what [`Changes`] names and answers openraft; this module is what every replica
//! computes identically.
//!
//! To ensure correctness:
//! - `apply` is deterministic: its result and the value after it depend only on the value
//!   before it and the entry (command, log index, the proposer's `at_ms`) — tested by
//!   applying random command sequences to two fresh values and to snapshot + tail replays
//!   (`node/tests/determinism.rs`);
//! - a sign entry for a key whose registry record is disabled or deleted at that point of the
//!   log is `KeyInactive`, and one whose id the registry holds under another public key is
//!   `KeyMismatch`: no permit, whatever the leader checked before proposing;
//! - nothing node-local takes part in a decision: there is no request-id table; a retried
//!   request is decided by the rules again, which re-sign identical data (`Resigned`);
//! - an admin action changes the registry, protection records, admins or the audit log only
//!   when M-of-N approvals of its canonical bytes are applied ([`admin`]).

mod admin;
pub mod audit;
mod body_reader;
pub mod command;
mod streamed;
pub mod upgrade;

pub use audit::{AuditChain, AuditRebuild, AuditState, StoredRecords};
pub use body_reader::{open_snapshot_body, OpenedSnapshotBody, SnapshotRecords, SnapshotState};
pub use command::{Command, CommandResult, Proposal, SignEntry, SignOutcome};
pub use streamed::{
    encode_snapshot_record_into, snapshot_body_bound, snapshot_body_head, StreamedSnapshotBody,
};

use crate::admin::{AdminCommand, AdminState};
use crate::audit::AuditEvent;
use crate::protection::espresso::PublicKeyBytes as EspressoPublicKey;
use crate::protection::ethereum::BlsPubkey;
use crate::protection::{Decision, Intent, ProtectionState};
use crate::registry::{KeyState, Registry};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// The replicated state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// Every key's protection record.
    pub protection: ProtectionState,
    /// The validator keys the cluster holds (sealed).
    pub registry: Registry,
    /// Where the audit chain stands (its records are stored by the replica).
    pub audit: AuditState,
    /// The admin plane: admins, policy, client grants, pause, challenges.
    pub admin: AdminState,
}

/// Which per-key protection record an entry touched.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum RecordKey {
    /// An eth2 validator's record.
    Eth2(BlsPubkey),
    /// An Espresso key's record.
    Espresso(EspressoPublicKey),
}

fn record_key(intent: &Intent) -> RecordKey {
    match intent {
        Intent::Eth2(i) => RecordKey::Eth2(*i.pubkey()),
        Intent::Espresso(i) => RecordKey::Espresso(i.public_key),
    }
}

/// What applying entries changed, for the replica to persist in one transaction.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Protection records to write (their new value is in [`Applied::protection`]).
    pub records: BTreeSet<RecordKey>,
    /// Registry ids to write (their new value is in [`Applied::registry`]).
    pub keys: BTreeSet<String>,
    /// Audit records appended, (seq, canonical bytes), in order.
    pub audit: Vec<(u64, Vec<u8>)>,
    /// Records up to this seq were compacted away (the chain's anchor).
    pub compacted_to: Option<u64>,
    /// The admin state changed.
    pub admin: bool,
}

impl Changes {
    /// Add what a later entry changed.
    pub fn absorb(&mut self, later: Changes) {
        self.records.extend(later.records);
        self.keys.extend(later.keys);
        self.audit.extend(later.audit);
        self.compacted_to = self.compacted_to.max(later.compacted_to);
        self.admin |= later.admin;
    }
}

impl Applied {
    /// Apply one command, committed at `log_index` and stamped `at_ms` by its proposer.
    /// Refusals are outcomes in the result; nothing here fails.
    pub fn apply(
        &mut self,
        command: &Command,
        log_index: u64,
        at_ms: u64,
    ) -> (CommandResult, Changes) {
        let mut changes = Changes::default();
        self.audit.chain.last_at_ms = at_ms;
        let result = match command {
            Command::Sign(batch) => {
                let mut outcomes = Vec::with_capacity(batch.len());
                for entry in batch {
                    let (outcome, message) = self.decide_one(entry, &mut changes.records);
                    let event = audit::sign_event(entry, &outcome, message);
                    changes
                        .audit
                        .push(self.audit.append(at_ms, log_index, event));
                    outcomes.push(outcome);
                }
                CommandResult::Sign(outcomes)
            }
            Command::Event(events) => {
                for event in audit::node_events(events) {
                    changes
                        .audit
                        .push(self.audit.append(at_ms, log_index, event));
                }
                CommandResult::None
            }
            Command::Admin(command) => {
                CommandResult::Admin(self.apply_admin(command, log_index, at_ms, &mut changes))
            }
        };
        (result, changes)
    }

    /// Apply a membership entry: the new voters and learners are recorded in the audit log at
    /// the time of the last proposal.
    pub fn apply_membership(
        &mut self,
        voters: Vec<u64>,
        learners: Vec<u64>,
        log_index: u64,
    ) -> Changes {
        let at_ms = self.audit.chain.last_at_ms;
        let event = AuditEvent::Membership { voters, learners };
        Changes {
            audit: vec![self.audit.append(at_ms, log_index, event)],
            ..Changes::default()
        }
    }

    /// Decide a batch of sign entries in order, exactly as applying a `Command::Sign` entry
    /// does (same function), without recording them: the pure decision, for tests and models
    /// that compare it with what clients received.
    pub fn decide_signs(&mut self, batch: &[SignEntry]) -> Vec<SignOutcome> {
        let mut touched = BTreeSet::new();
        batch
            .iter()
            .map(|entry| self.decide_one(entry, &mut touched).0)
            .collect()
    }

    /// One entry's outcome, a function of the state and the entry, and the 32 bytes that
    /// identify the entry's request ([`Intent::message`], computed once for the rules and the
    /// audit record).
    fn decide_one(
        &mut self,
        entry: &SignEntry,
        touched: &mut BTreeSet<RecordKey>,
    ) -> (SignOutcome, [u8; 32]) {
        if let Some(refused) = self.refused_before_the_rules(entry) {
            return (refused, entry.intent.message());
        }
        let ruling = self
            .protection
            .decide(&entry.intent, self.admin.espresso_view_horizon);
        let outcome = match ruling.decision {
            Decision::Sign => {
                touched.insert(record_key(&entry.intent));
                SignOutcome::Signed
            }
            Decision::Resign => SignOutcome::Resigned,
            Decision::Refuse(v) => SignOutcome::Refused(v),
        };
        (outcome, ruling.message)
    }

    /// The outcome of an entry the registry or the admins refuse before the rules see it.
    fn refused_before_the_rules(&self, entry: &SignEntry) -> Option<SignOutcome> {
        if let Some(record) = self.registry.keys.get(&entry.key_id) {
            // A key disabled or deleted by an earlier entry signs nothing after it, even if
            // the request passed the leader's checks before that entry was applied.
            if record.state != KeyState::Active {
                return Some(SignOutcome::KeyInactive);
            }
            // The entry's public key is the one whose record the rules check and the one the
            // permit names: it must be the registry's key of that id.
            if record.public_key.as_slice() != entry.intent.public_key() {
                return Some(SignOutcome::KeyMismatch);
            }
        }
        // Paused by the admins: nothing signs after the pause entry.
        self.admin.paused.then_some(SignOutcome::Paused)
    }

    /// An admin command: the tally and the action's effect ([`admin::apply`]), an approved
    /// audit compaction, and the command's audit record.
    fn apply_admin(
        &mut self,
        command: &AdminCommand,
        log_index: u64,
        at_ms: u64,
        changes: &mut Changes,
    ) -> crate::admin::AdminOutcome {
        let mut outcome = admin::apply(self, command, at_ms, changes);
        if let Some((id, up_to_seq)) = admin::approved_compaction(self, command, &outcome) {
            match self.audit.compact(up_to_seq) {
                Ok(anchor) => {
                    changes.compacted_to = Some(anchor.seq);
                    let event = AuditEvent::Compacted {
                        up_to_seq,
                        last_hash: anchor.hash,
                    };
                    changes
                        .audit
                        .push(self.audit.append(at_ms, log_index, event));
                }
                Err(reason) => {
                    outcome = admin::fail_executed(self, &id, at_ms, outcome, reason);
                }
            }
        }
        let event = admin::audit_event(self, command, &outcome);
        changes
            .audit
            .push(self.audit.append(at_ms, log_index, event));
        outcome
    }

    /// The snapshot body of this state, with the kept audit records `records` (read from
    /// storage by the replica).
    pub fn snapshot_body(&self, records: StoredRecords) -> SnapshotBody {
        SnapshotBody {
            protection: self.protection.clone(),
            registry: self.registry.clone(),
            admin: self.admin.clone(),
            audit_chain: self.audit.chain,
            audit_records: records,
        }
    }
}

/// Everything replicated, as a snapshot carries it (encoded with [`crate::format`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotBody {
    /// Every key's protection record.
    pub protection: ProtectionState,
    /// The key registry.
    pub registry: Registry,
    /// The admin plane.
    pub admin: AdminState,
    /// Where the audit chain stands.
    pub audit_chain: AuditChain,
    /// The kept audit records, (seq, canonical bytes), from `anchor.seq + 1` to `head.seq`.
    #[serde(with = "records_as_bytes")]
    pub audit_records: StoredRecords,
}

/// Serde for stored records: each record's bytes as one byte string (raw in the binary
/// format, hex in JSON), not as a sequence of numbers, so a snapshot of many records encodes
/// and decodes at memory speed.
mod records_as_bytes {
    use super::StoredRecords;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(super) struct Record<'a>(pub(super) &'a [u8]);

    impl Serialize for Record<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            crate::bytes::hex_or_raw::serialize(self.0, s)
        }
    }

    /// One record's bytes, decoded.
    pub(super) struct OwnedRecord(pub(super) Vec<u8>);

    impl<'de> Deserialize<'de> for OwnedRecord {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            crate::bytes::hex_or_raw::deserialize(d).map(OwnedRecord)
        }
    }

    pub fn serialize<S: Serializer>(records: &StoredRecords, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(records.iter().map(|(seq, bytes)| (seq, Record(bytes))))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<StoredRecords, D::Error> {
        let records = Vec::<(u64, OwnedRecord)>::deserialize(d)?;
        Ok(records.into_iter().map(|(seq, r)| (seq, r.0)).collect())
    }
}

impl SnapshotBody {
    /// The state this snapshot describes (the records stay with the caller, to store).
    pub fn into_state(self) -> Result<(Applied, StoredRecords), audit::RebuildError> {
        let (state, records) = self.into_parts();
        let audit = AuditState::rebuild(state.audit_chain, &records)?;
        Ok((state.into_applied(audit), records))
    }

    /// The fields before the records, and the records: what [`open_snapshot_body`] reads
    /// from a body of this layout.
    pub fn into_parts(self) -> (SnapshotState, StoredRecords) {
        let state = SnapshotState {
            protection: self.protection,
            registry: self.registry,
            admin: self.admin,
            audit_chain: self.audit_chain,
        };
        (state, self.audit_records)
    }
}

#[cfg(test)]
mod tests;
