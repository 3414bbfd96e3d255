//! Target `protection_model`: a sequence of eth2 and espresso signing intents and interchange
//! imports, applied to the real replicated protection state (`ProtectionState::decide`,
//! `interchange::import`) and to the naive [`model::Model`] over the same sequence.
//!
//! Owns: the sequence encoding (read with `arbitrary::Unstructured`: a [`Config`] byte, then
//! steps over two eth2 validators and two espresso keys, small views, slots and epochs with an
//! occasional value near `u64::MAX`, three commitments, the admins' changes of the Espresso view
//! horizon, up to 600 steps) and the comparison. Must not: share any decision logic
//! with the code under test (see [`model`]).
//!
//! Properties: every decision equals the model's, refusal reasons included; `check` (the
//! leader's pre-check) gives the decision `decide` then takes; a refusal or a re-sign leaves
//! the state unchanged; a state that goes through a snapshot (the binary format) decides the
//! same afterwards; at the end every watermark, window and floor is the one the model derives
//! from its complete history.

pub mod model;

use arbitrary::{Result, Unstructured};
use model::{Model, Slot};
use signer_node::bytes::FixedBytes;
use signer_node::format;
use signer_node::protection::espresso::new_protocol::{
    LockView, ReVoteRequest, TimeoutData3, UpgradeProposalData2, Vote2Data,
};
use signer_node::protection::espresso::vid::VidVersion;
use signer_node::protection::espresso::{
    DaData, EpochFields, EspressoIntent, HexBytes, Message, Position, ProposedLeaf, QuorumData,
    Request, UpgradeData, Version, VidCommitment, ViewChangeEvidence, ViewHorizon, ViewSyncPhase,
    Watermark, Window,
};
use signer_node::protection::ethereum::{BlsPubkey, Eth2Intent, Root};
use signer_node::protection::interchange::{
    self, ImportPolicy, Interchange, SignedAttestation, SignedBlock, ValidatorHistory,
};
use signer_node::protection::{Decision, Intent, ProtectionState};

const GVR: Root = FixedBytes([0x42; 32]);
const MAX_STEPS: usize = 600;

fn eth2_key(i: u8) -> BlsPubkey {
    FixedBytes([0xe0 | (i & 1); 48])
}

fn espresso_key(i: u8) -> FixedBytes<128> {
    FixedBytes([0xa0 | (i & 1); 128])
}

fn digest(u: &mut Unstructured<'_>) -> Result<FixedBytes<32>> {
    Ok(FixedBytes([u.int_in_range(0u8..=2)?; 32]))
}

/// Mostly small; with `extremes`, sometimes anything, sometimes next to `u64::MAX`.
fn num(u: &mut Unstructured<'_>, small: u64, extremes: bool) -> Result<u64> {
    Ok(match u.int_in_range(0u8..=15)? {
        0 if extremes => u64::MAX - u.int_in_range(0u64..=3)?,
        1 if extremes => u.arbitrary()?,
        _ => u.int_in_range(0..=small)?,
    })
}

fn opt(u: &mut Unstructured<'_>) -> Result<Option<u64>> {
    Ok(match u.arbitrary::<bool>()? {
        true => Some(u.int_in_range(0u64..=2)?),
        false => None,
    })
}

fn version(u: &mut Unstructured<'_>) -> Result<Version> {
    Ok(Version {
        major: u.int_in_range(0u16..=1)?,
        minor: u.int_in_range(0u16..=1)?,
    })
}

fn upgrade_data(u: &mut Unstructured<'_>) -> Result<UpgradeData> {
    Ok(match u.arbitrary::<bool>()? {
        true => UpgradeData::V2 {
            old_version: version(u)?,
            new_version: version(u)?,
            hash: HexBytes(vec![u.int_in_range(0u8..=1)?]),
            epoch: opt(u)?,
        },
        false => UpgradeData::V1 {
            old_version: version(u)?,
            new_version: version(u)?,
            decide_by: u.int_in_range(0u64..=1)?,
            new_version_hash: HexBytes(vec![u.int_in_range(0u8..=1)?]),
            old_version_last_view: u.int_in_range(0u64..=1)?,
            new_version_first_view: u.int_in_range(0u64..=1)?,
        },
    })
}

fn espresso_message(u: &mut Unstructured<'_>, config: &Config) -> Result<Message> {
    let view = num(u, config.views, config.extremes)?;
    let kind = match config.kind {
        Some(k) => k,
        None => u.int_in_range(0u8..=KINDS - 1)?,
    };
    Ok(match kind {
        0 | 1 => {
            let data = QuorumData {
                leaf_commit: digest(u)?,
                epoch: opt(u)?,
                block_number: opt(u)?,
            };
            match u.arbitrary::<bool>()? {
                true => Message::QuorumVote { view, data },
                false => Message::NextEpochQuorumVote { view, data },
            }
        }
        2 => Message::DaVote {
            view,
            data: DaData {
                payload_commit: digest(u)?,
                next_epoch_payload_commit: match u.arbitrary::<bool>()? {
                    true => Some(digest(u)?),
                    false => None,
                },
                epoch: opt(u)?,
            },
        },
        3 => Message::TimeoutVote {
            view,
            epoch: opt(u)?,
        },
        4 => Message::ViewSyncVote {
            phase: match config.kind {
                Some(_) => ViewSyncPhase::PreCommit,
                None => *u.choose(&[
                    ViewSyncPhase::PreCommit,
                    ViewSyncPhase::Commit,
                    ViewSyncPhase::Finalize,
                ])?,
            },
            round: view,
            relay: u.int_in_range(0u64..=3)?,
            epoch: opt(u)?,
        },
        5 => Message::UpgradeVote {
            view,
            data: upgrade_data(u)?,
        },
        6 => Message::QuorumProposal(Box::new(ProposedLeaf {
            view,
            parent_leaf: digest(u)?,
            block_header_commit: digest(u)?,
            justify_qc_commit: digest(u)?,
            upgrade_certificate_commit: match u.arbitrary::<bool>()? {
                true => Some(digest(u)?),
                false => None,
            },
            with_epoch: match u.int_in_range(0u8..=2)? {
                0 => None,
                1 => Some(EpochFields::default()),
                _ => Some(EpochFields {
                    next_epoch_justify_qc_commit: Some(digest(u)?),
                    next_drb_result: None,
                    view_change_evidence: Some(ViewChangeEvidence::TimeoutCert(digest(u)?)),
                }),
            },
        })),
        7 => Message::da_proposal(view, &[u.int_in_range(0u8..=2)?]),
        8 => Message::UpgradeProposal {
            view,
            data: upgrade_data(u)?,
        },
        9 => Message::VidDisperse {
            view,
            computed_payload_commitment: VidCommitment::new(VidVersion::AvidM, digest(u)?.0),
        },
        10 => Message::Vote2 {
            view,
            data: Vote2Data {
                leaf_commit: digest(u)?,
                epoch: u.int_in_range(0u64..=2)?,
                block_number: u.int_in_range(0u64..=1)?,
            },
        },
        11 => Message::TimeoutVote3(TimeoutData3 {
            view,
            epoch: u.int_in_range(0u64..=2)?,
            lock: match u.arbitrary::<bool>()? {
                true => Some(LockView {
                    epoch: u.int_in_range(0u64..=1)?,
                    view: u.int_in_range(0u64..=1)?,
                }),
                false => None,
            },
        }),
        12 => Message::ReVoteRequest(ReVoteRequest {
            view,
            epoch: u.int_in_range(0u64..=2)?,
            cert1_commit: digest(u)?,
            timeout_cert_commit: None,
        }),
        13 => Message::UpgradeVote2 {
            view,
            data: UpgradeProposalData2 {
                old_version: Version { major: 0, minor: 6 },
                new_version: Version { major: 0, minor: 7 },
                decide_by: u.int_in_range(0u64..=2)?,
                new_version_hash: HexBytes(vec![7; 32]),
                old_version_last_view: 5,
                new_version_first_view: 6,
                epoch: u.int_in_range(0u64..=2)?,
            },
        },
        _ => Message::Request(match u.int_in_range(0u8..=2)? {
            0 => Request::ProposalFetch { view },
            1 => Request::Vid { view },
            _ => Request::PushCdnAuth { timestamp: view },
        }),
    })
}

/// The espresso message kinds the sequence draws from (`espresso_message`'s arms).
const KINDS: u8 = 15;

/// How a sequence is drawn, from its first byte: bits 0-3 pick one espresso message kind for
/// every espresso step, signed by one key (view-sync votes: of one phase), so that a long
/// sequence fills one window (value 15: any kind, key and phase); bits 4-5 the range of
/// views (40, 200 or 1000: a small range reaches the 128-position cap of a window, a large
/// one slides it); bit 6 makes espresso steps rare instead of common; bit 7 lets slots, epochs
/// and views take any value, and values next to `u64::MAX` (one such view slides a window past
/// everything signed, so sequences that fill a window leave them out).
struct Config {
    kind: Option<u8>,
    views: u64,
    espresso_heavy: bool,
    extremes: bool,
}

impl Config {
    fn read(u: &mut Unstructured<'_>) -> Result<Config> {
        let b: u8 = u.arbitrary()?;
        Ok(Config {
            kind: ((b & 0x0f) < KINDS).then_some(b & 0x0f),
            views: [40, 200, 1000, 200][usize::from((b >> 4) & 3)],
            espresso_heavy: b & 0x40 == 0,
            extremes: b & 0x80 != 0,
        })
    }
}

/// One step of a sequence.
enum Step {
    Sign(Intent),
    Import {
        key: BlsPubkey,
        blocks: Vec<SignedBlock>,
        attestations: Vec<SignedAttestation>,
    },
    Snapshot,
    /// The admins set the Espresso view horizon to this many views (1..=32).
    Horizon(u64),
}

fn step(u: &mut Unstructured<'_>, config: &Config) -> Result<Step> {
    let top = if config.espresso_heavy { 32 } else { 12 };
    Ok(match u.int_in_range(0u8..=top)? {
        0..=2 => Step::Sign(Intent::Eth2(Eth2Intent::Block {
            pubkey: eth2_key(u.arbitrary()?),
            slot: num(u, 40, config.extremes)?,
            signing_root: digest(u)?,
        })),
        3..=6 => Step::Sign(Intent::Eth2(Eth2Intent::Attestation {
            pubkey: eth2_key(u.arbitrary()?),
            source_epoch: num(u, 40, config.extremes)?,
            target_epoch: num(u, 40, config.extremes)?,
            signing_root: digest(u)?,
        })),
        7 => Step::Sign(Intent::Eth2(Eth2Intent::Unslashable {
            pubkey: eth2_key(u.arbitrary()?),
            kind: "RANDAO_REVEAL".into(),
            signing_root: digest(u)?,
        })),
        8 => {
            let key = eth2_key(u.arbitrary()?);
            let mut blocks = Vec::new();
            let mut attestations = Vec::new();
            for _ in 0..u.int_in_range(0u8..=2)? {
                blocks.push(SignedBlock {
                    slot: num(u, 40, config.extremes)?,
                    signing_root: Some(digest(u)?),
                });
            }
            for _ in 0..u.int_in_range(0u8..=2)? {
                attestations.push(SignedAttestation {
                    source_epoch: num(u, 40, config.extremes)?,
                    target_epoch: num(u, 40, config.extremes)?,
                    signing_root: None,
                });
            }
            Step::Import {
                key,
                blocks,
                attestations,
            }
        }
        9 => Step::Snapshot,
        t if t == top => Step::Horizon(u.int_in_range(1u64..=32)?),
        _ => Step::Sign(Intent::Espresso(EspressoIntent {
            public_key: match config.kind {
                Some(_) => espresso_key(0),
                None => espresso_key(u.arbitrary()?),
            },
            message: espresso_message(u, config)?,
        })),
    })
}

/// One fuzz input.
pub fn check(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let mut real = ProtectionState::default();
    let mut model = Model::default();
    let mut horizon = ViewHorizon::DEFAULT;
    let Ok(config) = Config::read(&mut u) else {
        return;
    };
    for _ in 0..MAX_STEPS {
        if u.is_empty() {
            break;
        }
        let Ok(step) = step(&mut u, &config) else {
            break;
        };
        match step {
            Step::Sign(intent) => {
                let expected = match &intent {
                    Intent::Eth2(Eth2Intent::Block {
                        pubkey,
                        slot,
                        signing_root,
                    }) => model.block(*pubkey, *slot, *signing_root),
                    Intent::Eth2(Eth2Intent::Attestation {
                        pubkey,
                        source_epoch,
                        target_epoch,
                        signing_root,
                    }) => model.attestation(*pubkey, *source_epoch, *target_epoch, *signing_root),
                    Intent::Eth2(Eth2Intent::Unslashable { .. }) => Decision::Sign,
                    Intent::Espresso(i) => {
                        model.espresso(i.public_key, &i.message, FixedBytes(intent.message()))
                    }
                };
                // Only a decision that must leave the state as it was needs a copy to compare.
                let before = (expected != Decision::Sign).then(|| real.clone());
                let checked = real.check(&intent, horizon);
                let ruling = real.decide(&intent, horizon);
                assert_eq!(ruling.message, intent.message(), "the ruling's message");
                let decided = ruling.decision;
                assert_eq!(checked, decided, "check and decide disagree on {intent:?}");
                assert_eq!(
                    decided, expected,
                    "the rules and the model disagree on {intent:?}"
                );
                if let Some(before) = before {
                    assert_eq!(real, before, "{decided:?} changed the state");
                }
            }
            Step::Import {
                key,
                blocks,
                attestations,
            } => {
                let doc = Interchange {
                    genesis_validators_root: GVR,
                    data: vec![ValidatorHistory {
                        pubkey: key,
                        signed_blocks: blocks.clone(),
                        signed_attestations: attestations.clone(),
                    }],
                };
                interchange::import(&mut real.eth2, GVR, &doc, ImportPolicy::Minify)
                    .expect("a minified import of the signer's own network applies");
                let slots: Vec<u64> = blocks.iter().map(|b| b.slot).collect();
                let epochs: Vec<(u64, u64)> = attestations
                    .iter()
                    .map(|a| (a.source_epoch, a.target_epoch))
                    .collect();
                model.import(key, &slots, &epochs);
            }
            Step::Horizon(views) => {
                horizon = ViewHorizon::new(views).expect("1..=32 is a horizon");
                model.set_horizon(views);
            }
            Step::Snapshot => {
                let bytes = format::encode(&real).expect("the protection state encodes");
                let back: ProtectionState = format::decode(&bytes).expect("and decodes");
                assert_eq!(
                    back, real,
                    "the protection state changes through a snapshot"
                );
                real = back;
            }
        }
    }
    compare_states(&real, &model);
}

/// Every record of the real state is what the model derives from its history.
fn compare_states(real: &ProtectionState, model: &Model) {
    for (key, v) in &model.eth2 {
        let record = real.eth2.validators.get(key).copied().unwrap_or_default();
        assert_eq!(
            record.block.map(|b| (b.slot, b.signing_root)),
            v.block_mark(),
            "block watermark of {key}"
        );
        assert_eq!(
            record
                .attestation
                .map(|a| (a.source_epoch, a.target_epoch, a.signing_root)),
            v.attestation_mark(),
            "attestation watermarks of {key}"
        );
    }
    for ((key, slot), h) in &model.espresso {
        let record = real.espresso.keys.get(key).cloned().unwrap_or_default();
        let kind = slot.kind();
        if matches!(
            slot,
            Slot::QuorumVote | Slot::QuorumProposal | Slot::DaProposal
        ) {
            let expected = h.last().map(|(p, d)| Watermark {
                view: p.0,
                message: d,
            });
            assert_eq!(
                record.watermarks.get(&kind).copied(),
                expected,
                "{kind} watermark"
            );
            continue;
        }
        let position = |(view, relay): (u64, u64)| Position { view, relay };
        let expected = h.newest().map(|newest| Window {
            newest_view: newest,
            floor: h.floor().map(position),
            signed: h
                .remembered()
                .into_iter()
                .map(|(p, d)| (position(p), d))
                .collect(),
        });
        assert_eq!(
            record.windows.get(&kind).cloned(),
            expected,
            "{kind} window"
        );
    }
}
