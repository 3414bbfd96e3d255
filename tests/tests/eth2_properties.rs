//! Property tests of the eth2 profile: random sequences of signing requests and interchange
//! imports, checked by an independent slashing checker written from the consensus-spec
//! definitions (not from our rules).
//!
//! - Safety: nothing we sign is slashable with anything signed (by us, or elsewhere and imported)
//!   before it: double proposal, double vote, surround vote.
//! - Determinism: the same sequence applied to two fresh states gives equal states and decisions.
//! - Round trip: export → import into a fresh state gives a state that refuses everything the
//!   original refuses, and exporting that again is a fixed point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use proptest::prelude::*;
use signer_node::bytes::FixedBytes;
use signer_node::protection::ethereum::{Eth2Intent, Eth2State};
use signer_node::protection::interchange::{
    self, ImportPolicy, Interchange, SignedAttestation, SignedBlock, ValidatorHistory,
};
use signer_node::protection::Decision;

const GVR: FixedBytes<32> = FixedBytes([3; 32]);

#[derive(Clone, Debug)]
enum Op {
    Sign(Eth2Intent),
    Import(Interchange),
}

fn pubkey(i: u8) -> FixedBytes<48> {
    FixedBytes([i; 48])
}

fn intent() -> impl Strategy<Value = Eth2Intent> {
    prop_oneof![
        (0u8..2, 0u64..12, 0u8..3).prop_map(|(k, slot, r)| Eth2Intent::Block {
            pubkey: pubkey(k),
            slot,
            signing_root: FixedBytes([r; 32]),
        }),
        (0u8..2, 0u64..10, 0u64..10, 0u8..3).prop_map(|(k, s, t, r)| Eth2Intent::Attestation {
            pubkey: pubkey(k),
            source_epoch: s,
            target_epoch: t,
            signing_root: FixedBytes([r; 32]),
        }),
    ]
}

fn import_doc() -> impl Strategy<Value = Interchange> {
    (
        0u8..2,
        proptest::collection::vec(0u64..12, 0..3),
        proptest::collection::vec((0u64..10, 0u64..10), 0..3),
    )
        .prop_map(|(k, slots, atts)| Interchange {
            genesis_validators_root: GVR,
            data: vec![ValidatorHistory {
                pubkey: pubkey(k),
                signed_blocks: slots
                    .into_iter()
                    .map(|slot| SignedBlock {
                        slot,
                        signing_root: None,
                    })
                    .collect(),
                signed_attestations: atts
                    .into_iter()
                    .map(|(s, t)| SignedAttestation {
                        source_epoch: s,
                        target_epoch: t,
                        signing_root: None,
                    })
                    .collect(),
            }],
        })
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    proptest::collection::vec(
        prop_oneof![8 => intent().prop_map(Op::Sign), 1 => import_doc().prop_map(Op::Import)],
        1..60,
    )
}

/// A message known to be signed: by us (with its root) or elsewhere (imported, root unknown).
#[derive(Clone, Debug)]
enum Signed {
    Block {
        key: u8,
        slot: u64,
        root: Option<u8>,
    },
    Att {
        key: u8,
        source: u64,
        target: u64,
        root: Option<u8>,
    },
}

/// Slashable per the consensus specs; an unknown root is never "the same data".
fn slashable(a: &Signed, b: &Signed) -> bool {
    let same_root = |x: &Option<u8>, y: &Option<u8>| x.is_some() && x == y;
    match (a, b) {
        (
            Signed::Block {
                key: k1,
                slot: s1,
                root: r1,
            },
            Signed::Block {
                key: k2,
                slot: s2,
                root: r2,
            },
        ) => k1 == k2 && s1 == s2 && !same_root(r1, r2),
        (
            Signed::Att {
                key: k1,
                source: s1,
                target: t1,
                root: r1,
            },
            Signed::Att {
                key: k2,
                source: s2,
                target: t2,
                root: r2,
            },
        ) => {
            k1 == k2
                && ((t1 == t2 && !same_root(r1, r2))
                    || (s1 < s2 && t1 > t2)
                    || (s2 < s1 && t2 > t1))
        }
        _ => false,
    }
}

/// What the checker records of a signed request; `None` for messages no rule covers.
fn as_signed(i: &Eth2Intent) -> Option<Signed> {
    Some(match *i {
        Eth2Intent::Block {
            pubkey,
            slot,
            signing_root,
        } => Signed::Block {
            key: pubkey.0[0],
            slot,
            root: Some(signing_root.0[0]),
        },
        Eth2Intent::Attestation {
            pubkey,
            source_epoch,
            target_epoch,
            signing_root,
        } => Signed::Att {
            key: pubkey.0[0],
            source: source_epoch,
            target: target_epoch,
            root: Some(signing_root.0[0]),
        },
        Eth2Intent::Unslashable { .. } => return None,
    })
}

fn run(ops: &[Op]) -> (Eth2State, Vec<Decision>, Vec<Signed>) {
    let mut state = Eth2State::default();
    let mut decisions = Vec::new();
    let mut history: Vec<Signed> = Vec::new();
    for op in ops {
        match op {
            Op::Sign(i) => {
                let d = state.decide(i);
                if d.allows_signing() {
                    history.extend(as_signed(i));
                }
                decisions.push(d);
            }
            Op::Import(doc) => {
                // Imported records were signed elsewhere: only import files that are not
                // slashable with themselves (as a real validator's history is).
                if interchange::import(&mut state, GVR, doc, ImportPolicy::RefuseSlashable).is_ok()
                {
                    for h in &doc.data {
                        let key = h.pubkey.0[0];
                        history.extend(h.signed_blocks.iter().map(|b| Signed::Block {
                            key,
                            slot: b.slot,
                            root: None,
                        }));
                        history.extend(h.signed_attestations.iter().map(|a| Signed::Att {
                            key,
                            source: a.source_epoch,
                            target: a.target_epoch,
                            root: None,
                        }));
                    }
                }
            }
        }
    }
    (state, decisions, history)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn eth2_never_signs_a_slashable_pair(ops in ops()) {
        let (_, _, history) = run(&ops);
        // Each message we signed must not be slashable with anything known when we signed it:
        // what we signed before and what was imported before. (A later import may claim
        // anything; that is the other signer's history, not a signature of ours.)
        for (i, later) in history.iter().enumerate() {
            let ours = matches!(later, Signed::Block { root: Some(_), .. } | Signed::Att { root: Some(_), .. });
            if ours {
                for earlier in &history[..i] {
                    prop_assert!(!slashable(earlier, later), "signed {later:?} after {earlier:?}");
                }
            }
        }
    }

    #[test]
    fn eth2_is_deterministic(ops in ops()) {
        let (s1, d1, _) = run(&ops);
        let (s2, d2, _) = run(&ops);
        prop_assert_eq!(s1, s2);
        prop_assert_eq!(d1, d2);
    }

    #[test]
    fn eth2_export_import_roundtrip(ops in ops(), probes in proptest::collection::vec(intent(), 1..30)) {
        let (state, _, _) = run(&ops);
        let exported = interchange::export(&state, GVR);
        let reparsed = interchange::parse(&exported.to_json()).unwrap();
        prop_assert_eq!(&reparsed, &exported);
        let mut restored = Eth2State::default();
        interchange::import(&mut restored, GVR, &reparsed, ImportPolicy::RefuseSlashable).unwrap();
        for probe in &probes {
            if !state.check_eth2(probe).allows_signing() {
                prop_assert!(!restored.check_eth2(probe).allows_signing(), "restored state signs {probe:?}");
            }
        }
        let mut again = Eth2State::default();
        interchange::import(&mut again, GVR, &interchange::export(&restored, GVR), ImportPolicy::RefuseSlashable).unwrap();
        prop_assert_eq!(again, restored);
    }
}

trait Check {
    fn check_eth2(&self, i: &Eth2Intent) -> Decision;
}

impl Check for Eth2State {
    fn check_eth2(&self, i: &Eth2Intent) -> Decision {
        self.clone().decide(i)
    }
}
