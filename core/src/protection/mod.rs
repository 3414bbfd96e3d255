//! Slashing protection: pure rules that decide whether a typed signing request may be signed.
//!
//! Owns: the replicated protection state ([`ProtectionState`]), the typed requests
//! ([`Intent`]), and the decision ([`Decision`]) with a machine-readable refusal reason
//! ([`Violation`]). One sub-module per profile: [`ethereum`] (EIP-3076) and [`espresso`]
//! (HotShot consensus messages); [`interchange`] reads and writes EIP-3076 documents.
//!
//! Must not: do IO, read a clock, use randomness, or hold secret keys. Every replica of the
//! cluster applies the same requests in the same order and must reach the same state, so
//! everything here is a deterministic function of its inputs.
//!
//! To ensure correctness:
//! - a request is recorded in the state only when its decision is [`Decision::Sign`];
//! - watermarks only go up (imports merge with `max`), nothing here lowers them;
//! - a refusal leaves the state exactly as it was.

pub mod espresso;
pub mod ethereum;
pub mod interchange;

use serde::{Deserialize, Serialize};

/// A typed request to sign, as the protection rules see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Intent {
    /// Ethereum consensus (EIP-3076 rules).
    Eth2(ethereum::Eth2Intent),
    /// Espresso / HotShot consensus (view rules).
    Espresso(espresso::EspressoIntent),
}

impl Intent {
    /// The 32 bytes that identify what this request signs, as the protection record and the
    /// audit log keep them: the Ethereum signing root, or the Espresso commitment / digest that
    /// HotShot signs. Equal to [`Intent::signed_bytes`] for every message of 32 bytes, which
    /// is every message the protection rules compare; for Espresso's request and network
    /// messages (other lengths, never compared) it is their digest
    /// ([`espresso::EspressoIntent::message`]).
    pub fn message(&self) -> [u8; 32] {
        match self {
            Intent::Eth2(i) => i.signing_root(),
            Intent::Espresso(i) => i.message(),
        }
    }

    /// The exact bytes the key signs for this request, built from the typed request. Fails
    /// only for an Espresso request message whose public key does not parse (the conversion
    /// parsed it already, so an accepted request never fails here).
    pub fn signed_bytes(&self) -> Result<Vec<u8>, crate::scheme::SchemeError> {
        match self {
            Intent::Eth2(i) => Ok(i.signing_root().to_vec()),
            Intent::Espresso(i) => i.signed_bytes(),
        }
    }

    /// The public key of the key this request is for (the protection record it is checked
    /// against, and the key a permit for it names).
    pub fn public_key(&self) -> &[u8] {
        match self {
            Intent::Eth2(i) => &i.pubkey().0,
            Intent::Espresso(i) => &i.public_key.0,
        }
    }

    /// The profile this request belongs to.
    pub fn profile(&self) -> Profile {
        match self {
            Intent::Eth2(_) => Profile::Eth2,
            Intent::Espresso(_) => Profile::Espresso,
        }
    }
}

/// A protection profile: which rules and which message encoding apply to a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// Ethereum consensus: EIP-3076 rules, BLS12-381 signatures.
    Eth2,
    /// Espresso HotShot consensus: view rules, BLS over BN254 signatures.
    Espresso,
}

impl Profile {
    /// The lower-case name used in configs, the CLI and the wire protocol.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Eth2 => "eth2",
            Profile::Espresso => "espresso",
        }
    }
}

impl std::fmt::Display for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Profile {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "eth2" => Ok(Profile::Eth2),
            "espresso" => Ok(Profile::Espresso),
            other => Err(format!(
                "unknown profile {other:?} (expected eth2 or espresso)"
            )),
        }
    }
}

/// What a profile's rule says about one request against one key's previous record.
///
/// `R` is the profile's per-key record. `Allow` carries the record to store if the request is
/// signed; `SameData` means the request repeats something already signed and may be signed
/// again without changing the state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict<R> {
    /// Sign, and store `next` as the key's new record.
    Allow {
        /// The record after this signature.
        next: R,
    },
    /// An identical request was signed before; signing it again is harmless.
    SameData,
    /// Refuse.
    Deny(Violation),
}

/// The decision recorded for one request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Decision {
    /// New data: the state has advanced, the message may be signed.
    Sign,
    /// Repeat of identical signed data: the state is unchanged, the message may be signed.
    Resign,
    /// Refused, with the reason. The state is unchanged.
    Refuse(Violation),
}

/// What [`ProtectionState::decide`] found for one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ruling {
    /// The decision.
    pub decision: Decision,
    /// The 32 bytes that identify the request ([`Intent::message`]).
    pub message: [u8; 32],
}

impl Decision {
    /// True when the request may be signed.
    pub fn allows_signing(&self) -> bool {
        matches!(self, Decision::Sign | Decision::Resign)
    }
}

/// Why a request was refused. Each variant names the record it conflicts with, so an operator
/// can see what was signed before.
///
/// To ensure correctness: a message never claims more than the record says. A record an
/// import set carries no signing root (EIP-3076 minimal import), so a refusal against it says
/// that, not that "another" root was signed there.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum Violation {
    /// eth2: a block was already signed (or imported) at this slot, and this one cannot be
    /// shown to be the same block.
    #[error("{}", double_block_text(*slot, signed_root.as_ref(), requested_root))]
    DoubleBlockProposal {
        /// The slot of both blocks.
        slot: u64,
        /// The root recorded at `slot`; `None` when an import set the slot (imports keep no
        /// root, so no block there is known to be the same).
        signed_root: Option<ethereum::Root>,
        /// This request's signing root.
        requested_root: ethereum::Root,
    },
    /// eth2: the block's slot is at or below the last signed (or imported) block's slot.
    #[error("block slot {slot} is at or below the block watermark {watermark}")]
    BlockSlotNotAboveWatermark {
        /// Requested slot.
        slot: u64,
        /// Highest slot signed or imported so far.
        watermark: u64,
    },
    /// eth2: an attestation was already signed (or imported) for this target epoch, and this
    /// one cannot be shown to be the same vote.
    #[error(
        "{}",
        double_vote_text(*target, *signed_source, signed_root.as_ref(), *requested_source, requested_root)
    )]
    DoubleVote {
        /// The target epoch of both attestations.
        target: u64,
        /// The source epoch recorded for `target`.
        signed_source: u64,
        /// The root recorded for `target`; `None` when an import set it.
        signed_root: Option<ethereum::Root>,
        /// This request's source epoch.
        requested_source: u64,
        /// This request's signing root.
        requested_root: ethereum::Root,
    },
    /// eth2: the attestation's target epoch is below the highest signed target.
    #[error("attestation target {target} is below the target watermark {watermark}")]
    TargetBelowWatermark {
        /// Requested target epoch.
        target: u64,
        /// Highest target epoch signed or imported so far.
        watermark: u64,
    },
    /// eth2: the attestation's source epoch is below the highest signed source (it could be
    /// surrounded by, or surround, a previous vote).
    #[error("attestation source {source_epoch} is below the source watermark {watermark}")]
    SourceBelowWatermark {
        /// Requested source epoch.
        source_epoch: u64,
        /// Highest source epoch signed or imported so far.
        watermark: u64,
    },
    /// eth2: source epoch after target epoch; never valid.
    #[error("attestation source {source_epoch} is after its target {target}")]
    SourceAfterTarget {
        /// Requested source epoch.
        source_epoch: u64,
        /// Requested target epoch.
        target: u64,
    },
    /// espresso: a view below the last one signed for this kind of message.
    #[error(
        "{kind} at view {view} is below the last signed view {last_view} (commitment \
         {last_signed} was signed there)"
    )]
    ViewBelowWatermark {
        /// Message kind, e.g. `quorum-vote`.
        kind: espresso::Kind,
        /// Requested view.
        view: u64,
        /// Last view signed for this kind.
        last_view: u64,
        /// The commitment (the 32 bytes signed) at `last_view`.
        last_signed: espresso::Digest,
    },
    /// espresso: a different message of this kind was already signed at the same position
    /// (view, or view-sync round and relay).
    #[error(
        "{kind} at view {view}: commitment {signed} was signed there; this request's \
         commitment is {requested}"
    )]
    Equivocation {
        /// Message kind.
        kind: espresso::Kind,
        /// View (for view-sync messages: the round).
        view: u64,
        /// The commitment (the 32 bytes signed) recorded at this position.
        signed: espresso::Digest,
        /// This request's commitment.
        requested: espresso::Digest,
    },
    /// espresso: the view is too far below the newest one for the bounded out-of-order window.
    #[error("{kind} at view {view} is outside the window: newest signed view is {newest_view}")]
    OutsideWindow {
        /// Message kind.
        kind: espresso::Kind,
        /// Requested view.
        view: u64,
        /// Newest view signed for this kind.
        newest_view: u64,
    },
    /// espresso: the view is too far above the key's own progress (its highest quorum, timeout
    /// or view-sync vote) for a kind whose view another node can choose.
    #[error(
        "{kind} at view {view} is more than {horizon} views above view {anchor_view}, the \
         highest view this key has voted in (quorum, timeout or view-sync vote)"
    )]
    BeyondViewHorizon {
        /// Message kind.
        kind: espresso::Kind,
        /// Requested view.
        view: u64,
        /// The key's anchor view ([`espresso::KeyRecord::anchor_view`]).
        anchor_view: u64,
        /// The cluster's horizon, in views ([`espresso::ViewHorizon`]).
        horizon: u64,
    },
    /// espresso, the new protocol: a Vote2 at or below a view the key already sent a v3
    /// timeout vote for. HotShot never casts one (its `timeout_vote_bar`): a timeout
    /// certificate and a commit certificate for the same view could then both form.
    #[error(
        "vote2 at view {view}: this key sent a timeout vote (v3) for view {timeout_view}, and a \
         node that timed out never casts a Vote2 at or below that view"
    )]
    Vote2AfterTimeout {
        /// Requested view.
        view: u64,
        /// The highest view the key sent a v3 timeout vote for.
        timeout_view: u64,
    },
}

/// The text of [`Violation::DoubleBlockProposal`].
fn double_block_text(
    slot: u64,
    signed_root: Option<&ethereum::Root>,
    requested_root: &ethereum::Root,
) -> String {
    match signed_root {
        Some(signed) => format!(
            "double block proposal at slot {slot}: block {signed} was signed there; this \
             request's signing root is {requested_root}"
        ),
        None => format!(
            "block at slot {slot}: an interchange import set the block watermark to slot \
             {slot}, and imported blocks keep no signing root, so no block at that slot can be \
             shown to be the one signed before, not even an identical one (EIP-3076)"
        ),
    }
}

/// The text of [`Violation::DoubleVote`].
fn double_vote_text(
    target: u64,
    signed_source: u64,
    signed_root: Option<&ethereum::Root>,
    requested_source: u64,
    requested_root: &ethereum::Root,
) -> String {
    match signed_root {
        Some(signed) => format!(
            "double vote for target epoch {target}: attestation {signed_source}→{target} with \
             signing root {signed} was signed for it; this request is \
             {requested_source}→{target} with signing root {requested_root}"
        ),
        None => format!(
            "attestation for target epoch {target}: an interchange import set the attestation \
             watermarks to source {signed_source}, target {target}, and imported attestations \
             keep no signing root, so no attestation for that target can be shown to be the \
             one signed before, not even an identical one (EIP-3076)"
        ),
    }
}

impl Violation {
    /// A stable, machine-readable reason code (used in gRPC details, metrics and audit).
    pub fn code(&self) -> &'static str {
        match self {
            Violation::DoubleBlockProposal { .. } => "double_block_proposal",
            Violation::BlockSlotNotAboveWatermark { .. } => "block_slot_not_above_watermark",
            Violation::DoubleVote { .. } => "double_vote",
            Violation::TargetBelowWatermark { .. } => "target_below_watermark",
            Violation::SourceBelowWatermark { .. } => "source_below_watermark",
            Violation::SourceAfterTarget { .. } => "source_after_target",
            Violation::ViewBelowWatermark { .. } => "view_below_watermark",
            Violation::Equivocation { .. } => "equivocation",
            Violation::OutsideWindow { .. } => "outside_window",
            Violation::BeyondViewHorizon { .. } => "beyond_view_horizon",
            Violation::Vote2AfterTimeout { .. } => "vote2_after_timeout",
        }
    }
}

/// The whole replicated protection state: one record per (profile, public key).
///
/// This is the content the replicated state machine stores; it is plain data, compared with
/// `==` in determinism tests and serialized with serde.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProtectionState {
    /// Ethereum validators, by BLS12-381 public key.
    pub eth2: ethereum::Eth2State,
    /// Espresso consensus keys, by BN254 public key.
    pub espresso: espresso::EspressoState,
}

impl ProtectionState {
    /// Evaluate `intent` under the cluster's Espresso view horizon, without changing
    /// anything.
    pub fn check(&self, intent: &Intent, horizon: espresso::ViewHorizon) -> Decision {
        match intent {
            Intent::Eth2(i) => to_decision(self.eth2.evaluate(i)),
            Intent::Espresso(i) => to_decision(self.espresso.evaluate(i, horizon)),
        }
    }

    /// Evaluate `intent` under the cluster's Espresso view horizon and, when it is new data
    /// that may be signed, record it. The ruling also carries [`Intent::message`], computed
    /// once here for the rules and for the caller's audit record (an Espresso digest is one
    /// or more Keccak or SHA-256 hashes of the typed message).
    pub fn decide(&mut self, intent: &Intent, horizon: espresso::ViewHorizon) -> Ruling {
        let message = intent.message();
        let decision = match intent {
            Intent::Eth2(i) => self.eth2.decide(i),
            Intent::Espresso(i) => {
                self.espresso
                    .decide_digest(i, crate::bytes::FixedBytes(message), horizon)
            }
        };
        Ruling { decision, message }
    }
}

/// Drop the next record: used by read-only checks.
fn to_decision<R>(verdict: Verdict<R>) -> Decision {
    match verdict {
        Verdict::Allow { .. } => Decision::Sign,
        Verdict::SameData => Decision::Resign,
        Verdict::Deny(v) => Decision::Refuse(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bytes::FixedBytes;

    fn eth2_block(pubkey: u8, root: u8) -> Intent {
        Intent::Eth2(ethereum::Eth2Intent::Block {
            pubkey: FixedBytes([pubkey; 48]),
            slot: 7,
            signing_root: FixedBytes([root; 32]),
        })
    }

    fn espresso_vote(pubkey: u8) -> Intent {
        Intent::Espresso(espresso::EspressoIntent {
            public_key: FixedBytes([pubkey; crate::scheme::bn254::PUBLIC_KEY_LEN]),
            message: espresso::Message::QuorumVote {
                view: 3,
                data: espresso::QuorumData {
                    leaf_commit: FixedBytes([9; 32]),
                    epoch: None,
                    block_number: None,
                },
            },
        })
    }

    #[test]
    fn an_intent_names_its_message_key_and_profile() {
        let block = eth2_block(0xab, 0x5c);
        assert_eq!(block.message(), [0x5c; 32]);
        assert_eq!(block.public_key(), &[0xab; 48][..]);
        assert_eq!(block.profile(), Profile::Eth2);
        let vote = espresso_vote(0xcd);
        let Intent::Espresso(inner) = &vote else {
            unreachable!()
        };
        // The espresso message is the vote commitment (its layout is checked against
        // HotShot's vectors in `espresso::tests`): neither a constant nor the key.
        assert_eq!(vote.message(), inner.message.signing_message());
        assert_ne!(vote.message(), [0; 32]);
        assert_ne!(vote.message(), [1; 32]);
        assert_eq!(
            vote.public_key(),
            &[0xcd; crate::scheme::bn254::PUBLIC_KEY_LEN][..]
        );
        assert_eq!(vote.profile(), Profile::Espresso);
    }

    #[test]
    fn profiles_print_and_parse_by_their_names() {
        for (profile, name) in [(Profile::Eth2, "eth2"), (Profile::Espresso, "espresso")] {
            assert_eq!(profile.to_string(), name);
            assert_eq!(name.parse::<Profile>(), Ok(profile));
        }
        assert_eq!(
            "ETH2".parse::<Profile>(),
            Err("unknown profile \"ETH2\" (expected eth2 or espresso)".to_owned())
        );
    }

    #[test]
    fn only_sign_and_resign_allow_signing() {
        assert!(Decision::Sign.allows_signing());
        assert!(Decision::Resign.allows_signing());
        assert!(!Decision::Refuse(Violation::SourceAfterTarget {
            source_epoch: 2,
            target: 1
        })
        .allows_signing());
    }

    /// The codes are an API (gRPC refusal details, HTTP error bodies, metrics labels, audit
    /// records, README): written out here, not derived.
    #[test]
    fn every_violation_has_its_documented_code() {
        let kind = espresso::Kind::QuorumVote;
        let cases = [
            (
                Violation::DoubleBlockProposal {
                    slot: 1,
                    signed_root: None,
                    requested_root: FixedBytes([1; 32]),
                },
                "double_block_proposal",
            ),
            (
                Violation::BlockSlotNotAboveWatermark {
                    slot: 1,
                    watermark: 2,
                },
                "block_slot_not_above_watermark",
            ),
            (
                Violation::DoubleVote {
                    target: 1,
                    signed_source: 0,
                    signed_root: None,
                    requested_source: 0,
                    requested_root: FixedBytes([1; 32]),
                },
                "double_vote",
            ),
            (
                Violation::TargetBelowWatermark {
                    target: 1,
                    watermark: 2,
                },
                "target_below_watermark",
            ),
            (
                Violation::SourceBelowWatermark {
                    source_epoch: 1,
                    watermark: 2,
                },
                "source_below_watermark",
            ),
            (
                Violation::SourceAfterTarget {
                    source_epoch: 2,
                    target: 1,
                },
                "source_after_target",
            ),
            (
                Violation::ViewBelowWatermark {
                    kind,
                    view: 1,
                    last_view: 2,
                    last_signed: FixedBytes([2; 32]),
                },
                "view_below_watermark",
            ),
            (
                Violation::Equivocation {
                    kind,
                    view: 1,
                    signed: FixedBytes([1; 32]),
                    requested: FixedBytes([2; 32]),
                },
                "equivocation",
            ),
            (
                Violation::OutsideWindow {
                    kind,
                    view: 1,
                    newest_view: 100,
                },
                "outside_window",
            ),
        ];
        for (violation, code) in cases {
            assert_eq!(violation.code(), code, "{violation}");
        }
    }

    /// Each refusal names the record it conflicts with, and says no more than the record
    /// holds: an imported watermark has no root, so its refusal does not speak of "another"
    /// root. Written out here (they are what operators read), not derived.
    #[test]
    fn refusals_name_the_conflicting_record_and_no_more() {
        let root = |b: u8| FixedBytes([b; 32]);
        let cases = [
            (
                Violation::DoubleBlockProposal {
                    slot: 7,
                    signed_root: Some(root(0xaa)),
                    requested_root: root(0xbb),
                },
                "double block proposal at slot 7: block \
                 0xaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa was signed \
                 there; this request's signing root is \
                 0xbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
            ),
            (
                Violation::DoubleBlockProposal {
                    slot: 7,
                    signed_root: None,
                    requested_root: root(0xbb),
                },
                "block at slot 7: an interchange import set the block watermark to slot 7, and \
                 imported blocks keep no signing root, so no block at that slot can be shown to \
                 be the one signed before, not even an identical one (EIP-3076)",
            ),
            (
                Violation::DoubleVote {
                    target: 20,
                    signed_source: 10,
                    signed_root: Some(root(0x01)),
                    requested_source: 11,
                    requested_root: root(0x02),
                },
                "double vote for target epoch 20: attestation 10→20 with signing root \
                 0x0101010101010101010101010101010101010101010101010101010101010101 was signed \
                 for it; this request is 11→20 with signing root \
                 0x0202020202020202020202020202020202020202020202020202020202020202",
            ),
            (
                Violation::DoubleVote {
                    target: 20,
                    signed_source: 10,
                    signed_root: None,
                    requested_source: 10,
                    requested_root: root(0x02),
                },
                "attestation for target epoch 20: an interchange import set the attestation \
                 watermarks to source 10, target 20, and imported attestations keep no signing \
                 root, so no attestation for that target can be shown to be the one signed \
                 before, not even an identical one (EIP-3076)",
            ),
            (
                Violation::Equivocation {
                    kind: espresso::Kind::QuorumVote,
                    view: 5,
                    signed: root(0x11),
                    requested: root(0x22),
                },
                "quorum-vote at view 5: commitment \
                 0x1111111111111111111111111111111111111111111111111111111111111111 was signed \
                 there; this request's commitment is \
                 0x2222222222222222222222222222222222222222222222222222222222222222",
            ),
            (
                Violation::ViewBelowWatermark {
                    kind: espresso::Kind::DaProposal,
                    view: 4,
                    last_view: 5,
                    last_signed: root(0x33),
                },
                "da-proposal at view 4 is below the last signed view 5 (commitment \
                 0x3333333333333333333333333333333333333333333333333333333333333333 was signed \
                 there)",
            ),
        ];
        for (violation, text) in cases {
            assert_eq!(violation.to_string(), text);
        }
    }
}
