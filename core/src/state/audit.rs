//! The audit chain inside the replicated state: where it stands, the hashes of the records it
//! keeps, the record of each decided sign entry, and compaction.
//!
//! Owns: [`AuditChain`] (anchor, head, last proposal time) and [`AuditState`] (the chain plus
//! the hashes of the kept records, so that compaction needs no storage read). Must not: store
//! records (the replica writes the bytes [`crate::state::Changes`] carries) or build records
//! from anything but replicated data (the entry, its log index, the proposer's timestamp).
//!
//! To ensure correctness:
//! - compaction anchors the chain at the hash of the last dropped record, so what remains
//!   still verifies, and appends a `Compacted` record that names the anchor;
//! - the kept hashes are derived from the record bytes (never stored on their own), so a
//!   state rebuilt from records has exactly the hashes of those records.

use crate::audit::{self, AuditEvent, ChainPoint, Hash, NodeEvent, SignDecision, SignResult};
use crate::protection::ethereum::Eth2Intent;
use crate::protection::Intent;
use crate::state::command::{SignEntry, SignOutcome};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// Stored audit records: (seq, canonical bytes), in seq order.
pub type StoredRecords = Vec<(u64, Vec<u8>)>;

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

/// The chain and the hashes of the records it keeps (`anchor.seq + 1 ..= head.seq`, in order).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditState {
    /// Where the chain stands.
    pub chain: AuditChain,
    kept: VecDeque<Hash>,
}

/// [`AuditState::rebuild_from`] a record at a time (each record's seq and the hash of its
/// bytes), for a caller that reads the records for something else too (a replica installing a
/// snapshot verifies the chain in the same pass).
#[derive(Debug)]
pub struct AuditRebuild {
    chain: AuditChain,
    expected: u64,
    kept: VecDeque<Hash>,
    count: u64,
    out_of_order: Option<u64>,
}

impl AuditRebuild {
    /// A rebuild of `chain`; refused as [`AuditState::rebuild`] refuses it.
    pub fn new(chain: AuditChain) -> Result<Self, RebuildError> {
        if chain.anchor.seq > chain.head.seq {
            return Err(RebuildError(format!(
                "the anchor (seq {}) is past the head (seq {})",
                chain.anchor.seq, chain.head.seq
            )));
        }
        if chain.head.seq == u64::MAX {
            return Err(RebuildError(format!(
                "the head is at seq {}, which no further record can follow",
                u64::MAX
            )));
        }
        Ok(AuditRebuild {
            chain,
            expected: chain.head.seq - chain.anchor.seq,
            kept: VecDeque::new(),
            count: 0,
            out_of_order: None,
        })
    }

    /// The next record: its seq and the hash of its bytes.
    pub fn push(&mut self, seq: u64, hash: Hash) {
        if self.out_of_order.is_none() && self.count < self.expected {
            if seq == self.chain.anchor.seq + 1 + self.count {
                self.kept.push_back(hash);
            } else {
                self.out_of_order = Some(seq);
            }
        }
        self.count = self.count.saturating_add(1);
    }

    /// The state, if the records pushed were exactly the kept ones, in order. A wrong number
    /// of records is reported before a record out of order.
    pub fn finish(self) -> Result<AuditState, RebuildError> {
        let (chain, count, expected) = (self.chain, self.count, self.expected);
        if count != expected {
            return Err(RebuildError(format!(
                "{count} records kept, the chain needs {expected} (seq {}..={})",
                chain.anchor.seq + 1,
                chain.head.seq
            )));
        }
        if let Some(seq) = self.out_of_order {
            return Err(RebuildError(format!("record {seq} out of order")));
        }
        Ok(AuditState {
            chain,
            kept: self.kept,
        })
    }
}

/// Why stored records cannot rebuild an [`AuditState`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit records do not match the chain: {0}")]
pub struct RebuildError(String);

impl AuditState {
    /// The state of `chain` whose kept records are `records` (seq, bytes), in seq order. The
    /// records must be exactly `anchor.seq + 1 ..= head.seq`; they are hashed, not verified
    /// (verification is [`audit::verify_chain`]'s job). A chain whose anchor is past its head,
    /// or whose head is at the last seq (it could take no further record: the next entry
    /// applied would overflow), is refused: neither arises from applying entries, only from a
    /// hostile snapshot.
    pub fn rebuild(chain: AuditChain, records: &[(u64, Vec<u8>)]) -> Result<Self, RebuildError> {
        Self::rebuild_from(chain, records.iter().map(|(seq, bytes)| (*seq, bytes)))
    }

    /// [`AuditState::rebuild`] from records read one at a time (a replica's database at
    /// start), so the kept records are never all in memory: only their hashes are kept. A
    /// wrong number of records is reported before a record out of order, as for a slice.
    pub fn rebuild_from<B: AsRef<[u8]>>(
        chain: AuditChain,
        records: impl IntoIterator<Item = (u64, B)>,
    ) -> Result<Self, RebuildError> {
        let mut rebuild = AuditRebuild::new(chain)?;
        for (seq, bytes) in records {
            rebuild.push(seq, audit::hash_bytes(bytes.as_ref()));
        }
        rebuild.finish()
    }

    /// Append `event` as the next record; returns (seq, canonical bytes) to store.
    pub(crate) fn append(
        &mut self,
        at_ms: u64,
        log_index: u64,
        event: AuditEvent,
    ) -> (u64, Vec<u8>) {
        let (_, bytes, head) = audit::link(self.chain.head, at_ms, log_index, event);
        self.chain.head = head;
        self.kept.push_back(head.hash);
        (head.seq, bytes)
    }

    /// Drop the records up to `up_to_seq`: the chain is anchored at that record's hash (as
    /// the next record links to it). Returns the new anchor, or why nothing changed.
    pub(crate) fn compact(&mut self, up_to_seq: u64) -> Result<ChainPoint, String> {
        let chain = self.chain;
        if up_to_seq <= chain.anchor.seq || up_to_seq >= chain.head.seq {
            return Err(format!(
                "up_to_seq must be above the anchor ({}) and below the head ({})",
                chain.anchor.seq, chain.head.seq
            ));
        }
        let dropped = (up_to_seq - chain.anchor.seq) as usize;
        let hash = match self.kept.get(dropped - 1) {
            Some(h) => *h,
            None => return Err(format!("record {up_to_seq} is not kept")),
        };
        self.kept.drain(..dropped);
        let anchor = ChainPoint {
            seq: up_to_seq,
            hash,
        };
        self.chain.anchor = anchor;
        Ok(anchor)
    }
}

/// The audit record of one decided sign entry; `message` is its request's
/// [`Intent::message`], as the rules computed it.
pub(crate) fn sign_event(
    entry: &SignEntry,
    outcome: &SignOutcome,
    message: [u8; 32],
) -> AuditEvent {
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
            SignResult::Paused,
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
        message,
    })
}

/// The records of node events; each event keeps the node it names (the sink and the peer
/// service make sure that is the node that observed it).
pub(crate) fn node_events(events: &[NodeEvent]) -> impl Iterator<Item = AuditEvent> + '_ {
    events.iter().cloned().map(AuditEvent::Node)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn event(n: u64) -> AuditEvent {
        AuditEvent::Membership {
            voters: vec![n],
            learners: vec![],
        }
    }

    #[test]
    fn compaction_anchors_at_the_hash_of_the_last_dropped_record() {
        let mut state = AuditState::default();
        let mut records = Vec::new();
        for n in 1..=5 {
            records.push(state.append(1000, n, event(n)));
        }
        let anchor = state.compact(3).unwrap();
        // Independent of the kept hashes: record 4 links to record 3 by its prev_hash.
        let record4 = audit::decode(&records[3].1).unwrap();
        assert_eq!(
            anchor,
            ChainPoint {
                seq: 3,
                hash: record4.prev_hash
            }
        );
        assert_eq!(
            audit::verify_chain(&records[3..], anchor, Some(state.chain.head)),
            Ok(state.chain.head)
        );
        assert_eq!(
            state.compact(3),
            Err("up_to_seq must be above the anchor (3) and below the head (5)".into())
        );
        assert_eq!(
            state.compact(5),
            Err("up_to_seq must be above the anchor (3) and below the head (5)".into())
        );
        // The state rebuilt from the kept records is the same value.
        assert_eq!(
            AuditState::rebuild(state.chain, &records[3..]).unwrap(),
            state
        );
        assert_eq!(
            AuditState::rebuild(state.chain, &records[2..]),
            Err(RebuildError(
                "3 records kept, the chain needs 2 (seq 4..=5)".into()
            ))
        );
        // The right number, out of order; and read one at a time, the same answers.
        let swapped = [records[4].clone(), records[3].clone()];
        assert_eq!(
            AuditState::rebuild(state.chain, &swapped),
            Err(RebuildError("record 5 out of order".into()))
        );
        let one_at_a_time = |r: &[(u64, Vec<u8>)]| {
            AuditState::rebuild_from(state.chain, r.iter().map(|(seq, b)| (*seq, b.as_slice())))
        };
        assert_eq!(one_at_a_time(&records[3..]).unwrap(), state);
        assert_eq!(
            one_at_a_time(&records[2..]),
            AuditState::rebuild(state.chain, &records[2..])
        );
        assert_eq!(
            one_at_a_time(&swapped),
            AuditState::rebuild(state.chain, &swapped)
        );
    }

    /// Found by the `peer_message` fuzz target's snapshot seeds: a snapshot whose chain head is
    /// at `u64::MAX` installed, and the next applied entry overflowed the seq (a panic in
    /// apply); an anchor at `u64::MAX` with a record overflowed the error message.
    #[test]
    fn a_chain_that_cannot_grow_or_runs_backwards_is_refused() {
        let last = ChainPoint {
            seq: u64::MAX,
            hash: [1; 32],
        };
        let chain = |anchor, head| AuditChain {
            anchor,
            head,
            last_at_ms: 0,
        };
        let record = (u64::MAX, vec![0u8]);
        assert_eq!(
            AuditState::rebuild(chain(last, last), &[]),
            Err(RebuildError(format!(
                "the head is at seq {}, which no further record can follow",
                u64::MAX
            )))
        );
        assert!(AuditState::rebuild(chain(last, last), &[record]).is_err());
        let low = ChainPoint {
            seq: 4,
            hash: [2; 32],
        };
        assert_eq!(
            AuditState::rebuild(chain(last, low), &[]),
            Err(RebuildError(format!(
                "the anchor (seq {}) is past the head (seq 4)",
                u64::MAX
            )))
        );
        let below = ChainPoint {
            seq: u64::MAX - 1,
            hash: [3; 32],
        };
        assert!(AuditState::rebuild(chain(below, below), &[]).is_ok());
    }
}
