//! Ethereum (EIP-3076) slashing protection for block proposals and attestations.
//!
//! Owns: the per-validator watermark record, the block and attestation rules, and the typed
//! Ethereum requests. Must not: do IO, parse files (that is [`super::interchange`]) or sign.
//!
//! # Strategy: minimal (watermarks), strictly
//!
//! EIP-3076 allows a *minimal* database (the latest signed message per validator) or a
//! *complete* one (every signed message). We keep the minimal one, as Teku does:
//! per validator, the highest block slot and the highest attestation source and target, each
//! with the signing root signed there (or none after an import). The record is a few dozen
//! bytes whatever the validator's age, so 10,000 validators replicate, snapshot and import in
//! milliseconds; a complete history would grow every Raft snapshot forever. The price is
//! liveness, never safety: a message below the watermark that a complete database could prove
//! harmless is refused, as the vectors' `should_succeed` flag (the minimal expectation) says.
//! The official interchange vectors run strictly against `should_succeed` and leniently
//! against `should_succeed_complete`: we never sign what either flag marks unsafe.
//!
//! Rules (in order), for a validator's record `prev`:
//! - block at `slot` with `root`: same slot and the same non-empty root ⇒ repeat (re-sign);
//!   same slot otherwise ⇒ double proposal; `slot < prev.slot` ⇒ below watermark; else sign.
//! - attestation `source → target` with `root`: `source > target` ⇒ refuse;
//!   `source < prev.source` ⇒ refuse (it could surround or be surrounded);
//!   `target == prev.target` ⇒ repeat when source and root are the same (non-empty root),
//!   else double vote; `target < prev.target` ⇒ refuse; else sign. With `source ≥ prev.source` and
//!   `target > prev.target` the new vote can neither surround nor be surrounded by any vote
//!   signed before, which is why two watermarks are enough.
//!
//! To ensure correctness:
//! - watermarks only rise: signing and importing take the maximum;
//! - an imported record has no signing root, so nothing at or below an imported watermark is
//!   ever signed (EIP-3076 conditions 2, 4 and 5);
//! - a refusal or a repeat leaves the state untouched.

use crate::bytes::FixedBytes;
use crate::protection::{Decision, Verdict, Violation};
use eth2_messages::{Eth2Error, Eth2Message, NetworkSpec, Slashable};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A BLS12-381 public key (48 bytes compressed) naming a validator.
pub type BlsPubkey = FixedBytes<48>;
/// A 32-byte signing root.
pub type Root = FixedBytes<32>;

/// An Ethereum signing request as the rules see it: the slot or epochs that matter for
/// slashing, and the signing root. Built by [`Eth2Intent::from_message`] from a typed message
/// (the signer computes the root; the kind's domain is inside it), or, for a client whose grant
/// trusts raw roots, from the root and slot/epochs the client sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Eth2Intent {
    /// A block proposal.
    Block {
        /// Proposer's key.
        pubkey: BlsPubkey,
        /// Slot of the block.
        slot: u64,
        /// `compute_signing_root(block, proposer domain)`.
        signing_root: Root,
    },
    /// An attestation.
    Attestation {
        /// Attester's key.
        pubkey: BlsPubkey,
        /// FFG source epoch.
        source_epoch: u64,
        /// FFG target epoch.
        target_epoch: u64,
        /// `compute_signing_root(attestation_data, attester domain)`.
        signing_root: Root,
    },
    /// A message no slashing rule covers (randao reveal, aggregation, selection proofs, sync
    /// committee messages and contributions, exits, registrations, deposits): signed without a
    /// watermark. Its root was computed with its own domain type, so it can never equal a
    /// block's or an attestation's root.
    Unslashable {
        /// The validator's key.
        pubkey: BlsPubkey,
        /// The Web3Signer type, e.g. `RANDAO_REVEAL` (for the audit log).
        kind: String,
        /// `compute_signing_root(object, domain of the kind)`.
        signing_root: Root,
    },
}

impl Eth2Intent {
    /// The intent of a typed message for `pubkey` on `network`: the signing root computed
    /// from the message (SSZ `hash_tree_root` and the domain of its kind and fork), and the slot
    /// or epochs taken from the same message. Fails for another network's message.
    pub fn from_message(
        pubkey: BlsPubkey,
        message: &Eth2Message,
        network: &NetworkSpec,
    ) -> Result<Self, Eth2Error> {
        let signing_root = FixedBytes(message.signing_root(network)?);
        Ok(match message.slashing() {
            Slashable::Block { slot } => Eth2Intent::Block {
                pubkey,
                slot,
                signing_root,
            },
            Slashable::Attestation {
                source_epoch,
                target_epoch,
            } => Eth2Intent::Attestation {
                pubkey,
                source_epoch,
                target_epoch,
                signing_root,
            },
            Slashable::NotSlashable => Eth2Intent::Unslashable {
                pubkey,
                kind: message.kind().to_owned(),
                signing_root,
            },
        })
    }

    /// The Web3Signer type name of the request, e.g. `BLOCK_V2` or `RANDAO_REVEAL`.
    pub fn kind(&self) -> &str {
        match self {
            Eth2Intent::Block { .. } => "BLOCK_V2",
            Eth2Intent::Attestation { .. } => "ATTESTATION",
            Eth2Intent::Unslashable { kind, .. } => kind,
        }
    }

    /// The validator this request is for.
    pub fn pubkey(&self) -> &BlsPubkey {
        match self {
            Eth2Intent::Block { pubkey, .. }
            | Eth2Intent::Attestation { pubkey, .. }
            | Eth2Intent::Unslashable { pubkey, .. } => pubkey,
        }
    }

    /// The 32 bytes to sign.
    pub fn signing_root(&self) -> [u8; 32] {
        match self {
            Eth2Intent::Block { signing_root, .. }
            | Eth2Intent::Attestation { signing_root, .. }
            | Eth2Intent::Unslashable { signing_root, .. } => signing_root.0,
        }
    }
}

/// The highest block signed (or imported) for a validator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockMark {
    /// Highest slot.
    pub slot: u64,
    /// Root signed at that slot; `None` after an import (never equal to anything).
    pub signing_root: Option<Root>,
}

/// The highest attestation epochs signed (or imported) for a validator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttestationMark {
    /// Highest source epoch.
    pub source_epoch: u64,
    /// Highest target epoch.
    pub target_epoch: u64,
    /// Root signed at `target_epoch`; `None` after an import.
    pub signing_root: Option<Root>,
}

/// One validator's protection record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidatorRecord {
    /// Block watermark, if any block was signed or imported.
    pub block: Option<BlockMark>,
    /// Attestation watermarks, if any attestation was signed or imported.
    pub attestation: Option<AttestationMark>,
}

/// Every Ethereum validator's record.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Eth2State {
    /// Records by public key; a key is present once it signed or was imported.
    pub validators: BTreeMap<BlsPubkey, ValidatorRecord>,
}

/// The block rule: may a block at `slot` with `root` be signed after `prev`?
pub fn evaluate_block(prev: Option<&BlockMark>, slot: u64, root: Root) -> Verdict<BlockMark> {
    let next = BlockMark {
        slot,
        signing_root: Some(root),
    };
    let Some(prev) = prev else {
        return Verdict::Allow { next };
    };
    if slot == prev.slot {
        if prev.signing_root == Some(root) {
            return Verdict::SameData;
        }
        return Verdict::Deny(Violation::DoubleBlockProposal {
            slot,
            signed_root: prev.signing_root,
            requested_root: root,
        });
    }
    if slot < prev.slot {
        return Verdict::Deny(Violation::BlockSlotNotAboveWatermark {
            slot,
            watermark: prev.slot,
        });
    }
    Verdict::Allow { next }
}

/// The attestation rule: may `source → target` with `root` be signed after `prev`?
pub fn evaluate_attestation(
    prev: Option<&AttestationMark>,
    source_epoch: u64,
    target_epoch: u64,
    root: Root,
) -> Verdict<AttestationMark> {
    if source_epoch > target_epoch {
        return Verdict::Deny(Violation::SourceAfterTarget {
            source_epoch,
            target: target_epoch,
        });
    }
    let next = AttestationMark {
        source_epoch,
        target_epoch,
        signing_root: Some(root),
    };
    let Some(prev) = prev else {
        return Verdict::Allow { next };
    };
    if target_epoch == prev.target_epoch {
        // A repeat must be the same vote: same source as well as the same root. (A real signing
        // root covers the source, so this only matters for inconsistent input, and then the
        // safe answer is to refuse.)
        if prev.signing_root == Some(root) && source_epoch == prev.source_epoch {
            return Verdict::SameData;
        }
        return Verdict::Deny(Violation::DoubleVote {
            target: target_epoch,
            signed_source: prev.source_epoch,
            signed_root: prev.signing_root,
            requested_source: source_epoch,
            requested_root: root,
        });
    }
    if source_epoch < prev.source_epoch {
        return Verdict::Deny(Violation::SourceBelowWatermark {
            source_epoch,
            watermark: prev.source_epoch,
        });
    }
    if target_epoch < prev.target_epoch {
        return Verdict::Deny(Violation::TargetBelowWatermark {
            target: target_epoch,
            watermark: prev.target_epoch,
        });
    }
    Verdict::Allow { next }
}

impl Eth2State {
    /// Evaluate a request against its validator's record, without changing anything.
    pub fn evaluate(&self, intent: &Eth2Intent) -> Verdict<ValidatorRecord> {
        let prev = self
            .validators
            .get(intent.pubkey())
            .copied()
            .unwrap_or_default();
        match *intent {
            // No rule covers it: allowed, and the record stays as it is.
            Eth2Intent::Unslashable { .. } => Verdict::Allow { next: prev },
            Eth2Intent::Block {
                slot, signing_root, ..
            } => match evaluate_block(prev.block.as_ref(), slot, signing_root) {
                Verdict::Allow { next } => Verdict::Allow {
                    next: ValidatorRecord {
                        block: Some(next),
                        ..prev
                    },
                },
                Verdict::SameData => Verdict::SameData,
                Verdict::Deny(v) => Verdict::Deny(v),
            },
            Eth2Intent::Attestation {
                source_epoch,
                target_epoch,
                signing_root,
                ..
            } => match evaluate_attestation(
                prev.attestation.as_ref(),
                source_epoch,
                target_epoch,
                signing_root,
            ) {
                Verdict::Allow { next } => Verdict::Allow {
                    next: ValidatorRecord {
                        attestation: Some(next),
                        ..prev
                    },
                },
                Verdict::SameData => Verdict::SameData,
                Verdict::Deny(v) => Verdict::Deny(v),
            },
        }
    }

    /// Evaluate a request and record it when it is new data that may be signed.
    pub fn decide(&mut self, intent: &Eth2Intent) -> Decision {
        if let Eth2Intent::Unslashable { .. } = intent {
            return Decision::Sign;
        }
        match self.evaluate(intent) {
            Verdict::Allow { next } => {
                self.validators.insert(*intent.pubkey(), next);
                Decision::Sign
            }
            Verdict::SameData => Decision::Resign,
            Verdict::Deny(v) => Decision::Refuse(v),
        }
    }

    /// Raise a validator's block watermark to `slot` (an import). The stored root is dropped
    /// unless the existing watermark is strictly higher, so nothing at `slot` re-signs.
    pub fn raise_block_watermark(&mut self, pubkey: BlsPubkey, slot: u64) {
        let record = self.validators.entry(pubkey).or_default();
        record.block = Some(match record.block {
            Some(existing) if existing.slot > slot => existing,
            _ => BlockMark {
                slot,
                signing_root: None,
            },
        });
    }

    /// Raise a validator's attestation watermarks to at least `source_epoch` and
    /// `target_epoch`, taken independently (EIP-3076 minimal import).
    pub fn raise_attestation_watermarks(
        &mut self,
        pubkey: BlsPubkey,
        source_epoch: u64,
        target_epoch: u64,
    ) {
        let record = self.validators.entry(pubkey).or_default();
        record.attestation = Some(match record.attestation {
            Some(existing)
                if existing.target_epoch > target_epoch
                    && existing.source_epoch >= source_epoch =>
            {
                existing
            }
            Some(existing) => AttestationMark {
                source_epoch: existing.source_epoch.max(source_epoch),
                target_epoch: existing.target_epoch.max(target_epoch),
                signing_root: None,
            },
            None => AttestationMark {
                source_epoch,
                target_epoch,
                signing_root: None,
            },
        });
    }

    /// Make sure a validator has a record (an import that lists it with no history).
    pub fn register(&mut self, pubkey: BlsPubkey) {
        self.validators.entry(pubkey).or_default();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn attestation(source_epoch: u64, target_epoch: u64, root: u8) -> Eth2Intent {
        Eth2Intent::Attestation {
            pubkey: FixedBytes([0xbb; 48]),
            source_epoch,
            target_epoch,
            signing_root: FixedBytes([root; 32]),
        }
    }

    /// The state remembers what it signed: each decision sees the attestations decided before
    /// it (the rules alone are tested in the case tables below).
    #[test]
    fn the_state_records_each_signed_attestation() {
        let mut state = Eth2State::default();
        let refused = |v| Decision::Refuse(v);
        let steps = [
            (attestation(2, 5, 1), Decision::Sign),
            (attestation(2, 5, 1), Decision::Resign),
            (
                attestation(2, 5, 2),
                refused(Violation::DoubleVote {
                    target: 5,
                    signed_source: 2,
                    signed_root: Some(FixedBytes([1; 32])),
                    requested_source: 2,
                    requested_root: FixedBytes([2; 32]),
                }),
            ),
            (
                attestation(1, 6, 3),
                refused(Violation::SourceBelowWatermark {
                    source_epoch: 1,
                    watermark: 2,
                }),
            ),
            (attestation(3, 7, 4), Decision::Sign),
            (
                attestation(3, 6, 5),
                refused(Violation::TargetBelowWatermark {
                    target: 6,
                    watermark: 7,
                }),
            ),
        ];
        for (i, (intent, want)) in steps.into_iter().enumerate() {
            assert_eq!(state.decide(&intent), want, "step {i}");
        }
    }

    /// Importing lower watermarks keeps the signed vote's root, so the identical vote is still
    /// re-signed; importing a higher target drops it.
    #[test]
    fn an_import_below_the_signed_vote_keeps_its_root() {
        let mut state = Eth2State::default();
        let pubkey = FixedBytes([0xbb; 48]);
        assert_eq!(state.decide(&attestation(5, 10, 1)), Decision::Sign);
        state.raise_attestation_watermarks(pubkey, 3, 8);
        assert_eq!(state.decide(&attestation(5, 10, 1)), Decision::Resign);
        state.raise_attestation_watermarks(pubkey, 5, 11);
        assert_eq!(
            state.decide(&attestation(5, 11, 1)),
            Decision::Refuse(Violation::DoubleVote {
                target: 11,
                signed_source: 5,
                signed_root: None,
                requested_source: 5,
                requested_root: FixedBytes([1; 32]),
            })
        );
        // An import at the signed target itself: the import's vote there is unknown, so even
        // the identical vote is refused from then on.
        let mut state = Eth2State::default();
        assert_eq!(state.decide(&attestation(5, 10, 1)), Decision::Sign);
        state.raise_attestation_watermarks(pubkey, 5, 10);
        assert_eq!(
            state.decide(&attestation(5, 10, 1)),
            Decision::Refuse(Violation::DoubleVote {
                target: 10,
                signed_source: 5,
                signed_root: None,
                requested_source: 5,
                requested_root: FixedBytes([1; 32]),
            })
        );
    }

    /// A validator an import lists without history gets an empty record (it is exported).
    #[test]
    fn registering_a_validator_gives_it_an_empty_record() {
        let mut state = Eth2State::default();
        let pubkey = FixedBytes([0xcc; 48]);
        state.register(pubkey);
        assert_eq!(
            state.validators.get(&pubkey),
            Some(&ValidatorRecord::default())
        );
    }

    /// Every intent names its Web3Signer type (the audit log's `kind`) and the root it signs.
    #[test]
    fn an_intent_names_its_kind_and_root() {
        let pubkey = FixedBytes([0xaa; 48]);
        let cases = [
            (
                Eth2Intent::Block {
                    pubkey,
                    slot: 1,
                    signing_root: FixedBytes([3; 32]),
                },
                "BLOCK_V2",
                [3; 32],
            ),
            (
                Eth2Intent::Attestation {
                    pubkey,
                    source_epoch: 1,
                    target_epoch: 2,
                    signing_root: FixedBytes([4; 32]),
                },
                "ATTESTATION",
                [4; 32],
            ),
            (
                Eth2Intent::Unslashable {
                    pubkey,
                    kind: "RANDAO_REVEAL".into(),
                    signing_root: FixedBytes([5; 32]),
                },
                "RANDAO_REVEAL",
                [5; 32],
            ),
        ];
        for (intent, kind, root) in cases {
            assert_eq!(intent.kind(), kind);
            assert_eq!(intent.signing_root(), root, "{kind}");
            assert_eq!(intent.pubkey(), &pubkey, "{kind}");
        }
    }

    fn r(n: u8) -> Root {
        FixedBytes([n; 32])
    }

    fn block(slot: u64, root: Option<Root>) -> BlockMark {
        BlockMark {
            slot,
            signing_root: root,
        }
    }

    fn att(s: u64, t: u64, root: Option<Root>) -> AttestationMark {
        AttestationMark {
            source_epoch: s,
            target_epoch: t,
            signing_root: root,
        }
    }

    #[test]
    fn block_rule_case_table() {
        use Violation::*;
        let cases: Vec<(Option<BlockMark>, u64, Root, Verdict<BlockMark>)> = vec![
            (
                None,
                0,
                r(1),
                Verdict::Allow {
                    next: block(0, Some(r(1))),
                },
            ),
            (
                Some(block(5, Some(r(1)))),
                6,
                r(2),
                Verdict::Allow {
                    next: block(6, Some(r(2))),
                },
            ),
            (Some(block(5, Some(r(1)))), 5, r(1), Verdict::SameData),
            (
                Some(block(5, Some(r(1)))),
                5,
                r(2),
                Verdict::Deny(DoubleBlockProposal {
                    slot: 5,
                    signed_root: Some(r(1)),
                    requested_root: r(2),
                }),
            ),
            // an imported slot has no root: even the root the file named is refused there
            (
                Some(block(5, None)),
                5,
                r(1),
                Verdict::Deny(DoubleBlockProposal {
                    slot: 5,
                    signed_root: None,
                    requested_root: r(1),
                }),
            ),
            (
                Some(block(5, Some(r(1)))),
                4,
                r(1),
                Verdict::Deny(BlockSlotNotAboveWatermark {
                    slot: 4,
                    watermark: 5,
                }),
            ),
            (
                Some(block(5, None)),
                0,
                r(0),
                Verdict::Deny(BlockSlotNotAboveWatermark {
                    slot: 0,
                    watermark: 5,
                }),
            ),
        ];
        for (prev, slot, root, want) in cases {
            assert_eq!(
                evaluate_block(prev.as_ref(), slot, root),
                want,
                "{prev:?} slot {slot}"
            );
        }
    }

    #[test]
    fn attestation_rule_case_table() {
        use Violation::*;
        let p = Some(att(10, 20, Some(r(1))));
        // A double vote for target 20: the recorded source and root, the requested ones.
        let double =
            |signed_source, signed_root: Option<u8>, requested_source, requested| DoubleVote {
                target: 20,
                signed_source,
                signed_root: signed_root.map(r),
                requested_source,
                requested_root: r(requested),
            };
        type Case = (
            Option<AttestationMark>,
            u64,
            u64,
            Root,
            Verdict<AttestationMark>,
        );
        let cases: Vec<Case> = vec![
            (
                None,
                0,
                0,
                r(1),
                Verdict::Allow {
                    next: att(0, 0, Some(r(1))),
                },
            ),
            (
                None,
                3,
                2,
                r(1),
                Verdict::Deny(SourceAfterTarget {
                    source_epoch: 3,
                    target: 2,
                }),
            ),
            (
                p,
                10,
                21,
                r(2),
                Verdict::Allow {
                    next: att(10, 21, Some(r(2))),
                },
            ),
            (
                p,
                15,
                25,
                r(2),
                Verdict::Allow {
                    next: att(15, 25, Some(r(2))),
                },
            ),
            (p, 10, 20, r(1), Verdict::SameData),
            (p, 10, 20, r(2), Verdict::Deny(double(10, Some(1), 10, 2))),
            (p, 11, 20, r(2), Verdict::Deny(double(10, Some(1), 11, 2))),
            // same target and root but another source is not a repeat
            (p, 11, 20, r(1), Verdict::Deny(double(10, Some(1), 11, 1))),
            // would surround 10→20
            (
                p,
                9,
                21,
                r(2),
                Verdict::Deny(SourceBelowWatermark {
                    source_epoch: 9,
                    watermark: 10,
                }),
            ),
            // would be surrounded by 10→20
            (
                p,
                11,
                19,
                r(2),
                Verdict::Deny(TargetBelowWatermark {
                    target: 19,
                    watermark: 20,
                }),
            ),
            (
                Some(att(10, 20, None)),
                10,
                20,
                r(1),
                Verdict::Deny(double(10, None, 10, 1)),
            ),
            (
                p,
                21,
                20,
                r(2),
                Verdict::Deny(SourceAfterTarget {
                    source_epoch: 21,
                    target: 20,
                }),
            ),
        ];
        for (prev, s, t, root, want) in cases {
            assert_eq!(
                evaluate_attestation(prev.as_ref(), s, t, root),
                want,
                "{prev:?} {s}->{t}"
            );
        }
    }

    #[test]
    fn decide_records_only_new_data() {
        let pk = FixedBytes([7; 48]);
        let mut state = Eth2State::default();
        let first = Eth2Intent::Block {
            pubkey: pk,
            slot: 3,
            signing_root: r(1),
        };
        assert_eq!(state.decide(&first), Decision::Sign);
        let snapshot = state.clone();
        assert_eq!(state.decide(&first), Decision::Resign);
        assert_eq!(state, snapshot);
        let conflict = Eth2Intent::Block {
            pubkey: pk,
            slot: 3,
            signing_root: r(2),
        };
        assert!(matches!(state.decide(&conflict), Decision::Refuse(_)));
        assert_eq!(state, snapshot);
        let other_validator = Eth2Intent::Block {
            pubkey: FixedBytes([8; 48]),
            slot: 3,
            signing_root: r(2),
        };
        assert_eq!(state.decide(&other_validator), Decision::Sign);
    }

    #[test]
    fn imports_only_raise_watermarks() {
        let pk = FixedBytes([7; 48]);
        let mut state = Eth2State::default();
        state.raise_block_watermark(pk, 10);
        state.raise_block_watermark(pk, 4);
        assert_eq!(state.validators[&pk].block, Some(block(10, None)));
        state.raise_attestation_watermarks(pk, 5, 8);
        state.raise_attestation_watermarks(pk, 7, 6);
        assert_eq!(state.validators[&pk].attestation, Some(att(7, 8, None)));
        // after an import, the imported target itself is refused
        let again = Eth2Intent::Attestation {
            pubkey: pk,
            source_epoch: 7,
            target_epoch: 8,
            signing_root: r(1),
        };
        assert!(matches!(
            state.decide(&again),
            Decision::Refuse(Violation::DoubleVote { .. })
        ));
    }

    #[test]
    fn signed_root_survives_an_older_import() {
        let pk = FixedBytes([7; 48]);
        let mut state = Eth2State::default();
        let b = Eth2Intent::Block {
            pubkey: pk,
            slot: 9,
            signing_root: r(3),
        };
        assert_eq!(state.decide(&b), Decision::Sign);
        state.raise_block_watermark(pk, 5);
        assert_eq!(state.decide(&b), Decision::Resign);
        state.raise_block_watermark(pk, 9);
        assert!(matches!(state.decide(&b), Decision::Refuse(_)));
    }
}
