//! A naive reference model of the slashing-protection rules, written from their statement in
//! the README ("For sequencer and validator operators") and the module documentation of
//! `protection::{ethereum, espresso}` (the window of 64 views and the cap of 128 positions),
//! not from the code under test.
//!
//! Owns: [`Model`]. It keeps *everything* ever signed or imported, in order, and derives each
//! decision from that history; the implementation keeps one watermark record per validator
//! and a pruned window per (key, kind). Must not: call the rules, `Kind`, `Message::{kind,
//! view, relay}`, `evaluate_*`, `WINDOW` or `MAX_WINDOW_ENTRIES`. It reads a message's slot
//! and position from the message's fields itself; what a message *signs* (its 32-byte
//! commitment, computed by `Message::signing_message`, which the vector tests check against
//! HotShot) is its content: two messages of one slot and position conflict exactly when
//! their commitments differ.
//!
//! The rules, as the model applies them:
//! - eth2 blocks: the watermark is the highest slot signed or imported. A block at it is
//!   re-signed only with the root of the block signed there, if that block is above every
//!   import; otherwise it is a double proposal. A block below it is refused.
//! - eth2 attestations: source after target is refused. The watermarks are the highest
//!   source and the highest target signed or imported (each on its own). At the target
//!   watermark only the newest signed vote re-signs (same source and root), if it is above
//!   every imported target and not below any imported source; anything else there is a
//!   double vote. Then a source below the source watermark, or a target below the target
//!   watermark, is refused.
//! - espresso quorum votes (v1, v2, next-epoch: one slot), quorum proposals, DA proposals:
//!   views only increase; the same view re-signs the same commitment and refuses another.
//! - espresso DA, timeout and upgrade votes (position: view) and each view-sync phase
//!   (position: round, relay): one commitment per position, in any order, among the
//!   positions still remembered: those within 64 views of the newest view signed, at most 128
//!   of them (the lowest are forgotten first). A position forgotten, or at or below the
//!   highest position forgotten, is refused as outside the window.
//! - espresso upgrade proposals and VID disperses: one per view, like upgrade votes (each its
//!   own slot); the new protocol's Vote2, v3 timeout and upgrade votes and re-vote requests:
//!   one per (view, epoch), any order within the window (each its own slot).
//! - espresso requests and network authentication: always signed, never remembered.
//! - a new Vote2 at or below the highest view of the key's v3 timeout votes is refused
//!   (after the window's own answer: a re-sign stays a re-sign).
//! - the horizon: a DA vote, DA proposal, quorum proposal, upgrade vote or proposal (both
//!   protocols), VID disperse or re-vote request more than the horizon (32 views until the
//!   admins set another) above the highest view of the key's signed quorum, Vote2, timeout
//!   (both forms) and view-sync votes is refused before any other rule;
//!   before the key has signed such a vote, there is no bound.

use signer_node::bytes::FixedBytes;
use signer_node::protection::espresso::{Kind, Message, ViewSyncPhase};
use signer_node::protection::ethereum::{BlsPubkey, Root};
use signer_node::protection::{Decision, Violation};
use std::collections::{BTreeMap, BTreeSet};

/// An espresso key (its canonical encoding; the rules never look inside it).
pub type EspressoKey = FixedBytes<128>;
/// A 32-byte commitment.
pub type Digest = FixedBytes<32>;

/// The window, the cap and the default horizon, as documented.
const WINDOW_VIEWS: u128 = 64;
const CAP: usize = 128;
const DEFAULT_HORIZON: u64 = 32;

/// The model's slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Slot {
    QuorumVote,
    DaVote,
    TimeoutVote,
    ViewSyncPrecommit,
    ViewSyncCommit,
    ViewSyncFinalize,
    UpgradeVote,
    QuorumProposal,
    DaProposal,
    UpgradeProposal,
    VidDisperse,
    Vote2,
    TimeoutVote3,
    ReVoteRequest,
    UpgradeVote2,
}

impl Slot {
    /// Increasing views (true), or a window of positions.
    fn increasing(self) -> bool {
        matches!(
            self,
            Slot::QuorumVote | Slot::QuorumProposal | Slot::DaProposal
        )
    }

    /// Slots whose signed views show how far the key has progressed.
    fn anchors(self) -> bool {
        matches!(
            self,
            Slot::QuorumVote
                | Slot::Vote2
                | Slot::TimeoutVote
                | Slot::TimeoutVote3
                | Slot::ViewSyncPrecommit
                | Slot::ViewSyncCommit
                | Slot::ViewSyncFinalize
        )
    }

    /// Slots bounded by the horizon above the key's progress.
    fn bounded(self) -> bool {
        matches!(
            self,
            Slot::DaVote
                | Slot::DaProposal
                | Slot::QuorumProposal
                | Slot::UpgradeVote
                | Slot::UpgradeProposal
                | Slot::VidDisperse
                | Slot::ReVoteRequest
                | Slot::UpgradeVote2
        )
    }

    /// The implementation's name for this slot, to build the refusal it must give.
    pub fn kind(self) -> Kind {
        match self {
            Slot::QuorumVote => Kind::QuorumVote,
            Slot::DaVote => Kind::DaVote,
            Slot::TimeoutVote => Kind::TimeoutVote,
            Slot::ViewSyncPrecommit => Kind::ViewSyncPrecommitVote,
            Slot::ViewSyncCommit => Kind::ViewSyncCommitVote,
            Slot::ViewSyncFinalize => Kind::ViewSyncFinalizeVote,
            Slot::UpgradeVote => Kind::UpgradeVote,
            Slot::QuorumProposal => Kind::QuorumProposal,
            Slot::DaProposal => Kind::DaProposal,
            Slot::UpgradeProposal => Kind::UpgradeProposal,
            Slot::VidDisperse => Kind::VidDisperse,
            Slot::Vote2 => Kind::Vote2,
            Slot::TimeoutVote3 => Kind::TimeoutVote3,
            Slot::ReVoteRequest => Kind::ReVoteRequest,
            Slot::UpgradeVote2 => Kind::UpgradeVote2,
        }
    }
}

/// A message's slot and position (view or round, then relay or epoch), from its fields;
/// `None` for a request, which no slot holds.
pub fn describe(m: &Message) -> Option<(Slot, (u64, u64))> {
    Some(match m {
        Message::QuorumVote { view, .. } | Message::NextEpochQuorumVote { view, .. } => {
            (Slot::QuorumVote, (*view, 0))
        }
        Message::DaVote { view, .. } => (Slot::DaVote, (*view, 0)),
        Message::TimeoutVote { view, .. } => (Slot::TimeoutVote, (*view, 0)),
        Message::ViewSyncVote {
            phase,
            round,
            relay,
            ..
        } => {
            let slot = match phase {
                ViewSyncPhase::PreCommit => Slot::ViewSyncPrecommit,
                ViewSyncPhase::Commit => Slot::ViewSyncCommit,
                ViewSyncPhase::Finalize => Slot::ViewSyncFinalize,
            };
            (slot, (*round, *relay))
        }
        Message::UpgradeVote { view, .. } => (Slot::UpgradeVote, (*view, 0)),
        Message::QuorumProposal(leaf) => (Slot::QuorumProposal, (leaf.view, 0)),
        Message::DaProposal { view, .. } => (Slot::DaProposal, (*view, 0)),
        Message::UpgradeProposal { view, .. } => (Slot::UpgradeProposal, (*view, 0)),
        Message::VidDisperse { view, .. } => (Slot::VidDisperse, (*view, 0)),
        Message::Vote2 { view, data } => (Slot::Vote2, (*view, data.epoch)),
        Message::TimeoutVote3(t) => (Slot::TimeoutVote3, (t.view, t.epoch)),
        Message::ReVoteRequest(r) => (Slot::ReVoteRequest, (r.view, r.epoch)),
        Message::UpgradeVote2 { view, data } => (Slot::UpgradeVote2, (*view, data.epoch)),
        Message::Request(_) => return None,
    })
}

/// Everything one eth2 validator signed or imported.
#[derive(Default)]
pub struct Validator {
    blocks: Vec<(u64, Root)>,
    attestations: Vec<(u64, u64, Root)>,
    imported_block: Option<u64>,
    imported_attestation: Option<(u64, u64)>,
}

fn max_opt(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

impl Validator {
    /// The block watermark and the root the signer may re-sign there.
    pub fn block_mark(&self) -> Option<(u64, Option<Root>)> {
        let signed = self.blocks.iter().map(|b| b.0).max();
        let highest = max_opt(signed, self.imported_block)?;
        let root = self
            .blocks
            .iter()
            .find(|b| b.0 == highest)
            .filter(|_| self.imported_block.is_none_or(|i| i < highest))
            .map(|b| b.1);
        Some((highest, root))
    }

    /// The attestation watermarks (source, target) and the root the signer may re-sign at
    /// the target.
    pub fn attestation_mark(&self) -> Option<(u64, u64, Option<Root>)> {
        let source = max_opt(
            self.attestations.iter().map(|a| a.0).max(),
            self.imported_attestation.map(|i| i.0),
        )?;
        let target = max_opt(
            self.attestations.iter().map(|a| a.1).max(),
            self.imported_attestation.map(|i| i.1),
        )?;
        let newest = self.attestations.iter().max_by_key(|a| a.1);
        let root = newest
            .filter(|n| n.1 == target)
            .filter(|n| {
                self.imported_attestation
                    .is_none_or(|(is, it)| n.1 > it && n.0 >= is)
            })
            .map(|n| n.2);
        Some((source, target, root))
    }
}

/// Everything one key signed in one espresso slot.
#[derive(Default)]
pub struct History {
    signed: Vec<((u64, u64), Digest)>,
    dropped: BTreeSet<(u64, u64)>,
}

impl History {
    /// The newest view signed.
    pub fn newest(&self) -> Option<u64> {
        self.signed.iter().map(|(p, _)| p.0).max()
    }

    /// Whether `position` is within the window of views below `newest`.
    fn in_window(position: (u64, u64), newest: u64) -> bool {
        u128::from(position.0) + WINDOW_VIEWS >= u128::from(newest)
    }

    /// The positions still remembered, with their commitments.
    pub fn remembered(&self) -> BTreeMap<(u64, u64), Digest> {
        let newest = self.newest().unwrap_or(0);
        self.signed
            .iter()
            .filter(|(p, _)| Self::in_window(*p, newest) && !self.dropped.contains(p))
            .map(|(p, d)| (*p, *d))
            .collect()
    }

    /// The highest position forgotten.
    pub fn floor(&self) -> Option<(u64, u64)> {
        let newest = self.newest().unwrap_or(0);
        self.signed
            .iter()
            .map(|(p, _)| *p)
            .filter(|p| !Self::in_window(*p, newest))
            .chain(self.dropped.iter().copied())
            .max()
    }

    /// The last (view, commitment) of an increasing slot.
    pub fn last(&self) -> Option<((u64, u64), Digest)> {
        self.signed.last().copied()
    }
}

/// The model's whole state.
pub struct Model {
    /// eth2 validators.
    pub eth2: BTreeMap<BlsPubkey, Validator>,
    /// espresso (key, slot) histories.
    pub espresso: BTreeMap<(EspressoKey, Slot), History>,
    /// The cluster's espresso view horizon, in views.
    horizon: u64,
}

impl Default for Model {
    fn default() -> Self {
        Model {
            eth2: BTreeMap::new(),
            espresso: BTreeMap::new(),
            horizon: DEFAULT_HORIZON,
        }
    }
}

impl Model {
    /// The admins set the espresso view horizon.
    pub fn set_horizon(&mut self, views: u64) {
        self.horizon = views;
    }

    /// A block at `slot` with `root`.
    pub fn block(&mut self, key: BlsPubkey, slot: u64, root: Root) -> Decision {
        let v = self.eth2.entry(key).or_default();
        if let Some((highest, signed_root)) = v.block_mark() {
            if slot == highest {
                if signed_root == Some(root) {
                    return Decision::Resign;
                }
                return Decision::Refuse(Violation::DoubleBlockProposal {
                    slot,
                    signed_root,
                    requested_root: root,
                });
            }
            if slot < highest {
                return Decision::Refuse(Violation::BlockSlotNotAboveWatermark {
                    slot,
                    watermark: highest,
                });
            }
        }
        v.blocks.push((slot, root));
        Decision::Sign
    }

    /// An attestation `source → target` with `root`.
    pub fn attestation(
        &mut self,
        key: BlsPubkey,
        source: u64,
        target: u64,
        root: Root,
    ) -> Decision {
        if source > target {
            return Decision::Refuse(Violation::SourceAfterTarget {
                source_epoch: source,
                target,
            });
        }
        let v = self.eth2.entry(key).or_default();
        if let Some((s, t, signed_root)) = v.attestation_mark() {
            if target == t {
                if signed_root == Some(root) && source == s {
                    return Decision::Resign;
                }
                return Decision::Refuse(Violation::DoubleVote {
                    target,
                    signed_source: s,
                    signed_root,
                    requested_source: source,
                    requested_root: root,
                });
            }
            if source < s {
                return Decision::Refuse(Violation::SourceBelowWatermark {
                    source_epoch: source,
                    watermark: s,
                });
            }
            if target < t {
                return Decision::Refuse(Violation::TargetBelowWatermark {
                    target,
                    watermark: t,
                });
            }
        }
        v.attestations.push((source, target, root));
        Decision::Sign
    }

    /// An interchange import of `blocks` and `attestations` for `key` (only maxima matter).
    pub fn import(&mut self, key: BlsPubkey, blocks: &[u64], attestations: &[(u64, u64)]) {
        let v = self.eth2.entry(key).or_default();
        if let Some(max) = blocks.iter().copied().max() {
            v.imported_block = max_opt(v.imported_block, Some(max));
        }
        let s = attestations.iter().map(|a| a.0).max();
        let t = attestations.iter().map(|a| a.1).max();
        if let (Some(s), Some(t)) = (s, t) {
            let (is, it) = v.imported_attestation.unwrap_or((s, t));
            v.imported_attestation = Some((is.max(s), it.max(t)));
        }
    }

    /// An espresso message whose commitment is `digest`.
    pub fn espresso(&mut self, key: EspressoKey, m: &Message, digest: Digest) -> Decision {
        let Some((slot, position)) = describe(m) else {
            return Decision::Sign;
        };
        let kind = slot.kind();
        let anchor = self
            .espresso
            .iter()
            .filter(|((k, s), _)| *k == key && s.anchors())
            .filter_map(|(_, h)| h.newest())
            .max();
        if let Some(anchor) =
            anchor.filter(|a| slot.bounded() && position.0 > a.saturating_add(self.horizon))
        {
            return Decision::Refuse(Violation::BeyondViewHorizon {
                kind,
                view: position.0,
                anchor_view: anchor,
                horizon: self.horizon,
            });
        }
        // The new protocol: no new Vote2 at or below a view the key sent a v3 timeout for.
        let vote2_bar = match slot {
            Slot::Vote2 => self
                .espresso
                .get(&(key, Slot::TimeoutVote3))
                .and_then(History::newest),
            _ => None,
        };
        let h = self.espresso.entry((key, slot)).or_default();
        if slot.increasing() {
            if let Some((last, signed)) = h.last() {
                if position.0 < last.0 {
                    return Decision::Refuse(Violation::ViewBelowWatermark {
                        kind,
                        view: position.0,
                        last_view: last.0,
                        last_signed: signed,
                    });
                }
                if position.0 == last.0 {
                    if signed == digest {
                        return Decision::Resign;
                    }
                    return Decision::Refuse(Violation::Equivocation {
                        kind,
                        view: position.0,
                        signed,
                        requested: digest,
                    });
                }
            }
            h.signed.push((position, digest));
            return Decision::Sign;
        }
        if let Some(newest) = h.newest() {
            let signed_here = h
                .signed
                .iter()
                .find(|(p, _)| *p == position)
                .filter(|(p, _)| History::in_window(*p, newest) && !h.dropped.contains(p))
                .map(|(_, d)| d);
            if let Some(signed) = signed_here {
                if *signed == digest {
                    return Decision::Resign;
                }
                return Decision::Refuse(Violation::Equivocation {
                    kind,
                    view: position.0,
                    signed: *signed,
                    requested: digest,
                });
            }
            let outside = Violation::OutsideWindow {
                kind,
                view: position.0,
                newest_view: newest,
            };
            if !History::in_window(position, newest) || h.floor().is_some_and(|f| position <= f) {
                return Decision::Refuse(outside);
            }
        }
        if let Some(timeout_view) = vote2_bar.filter(|b| position.0 <= *b) {
            return Decision::Refuse(Violation::Vote2AfterTimeout {
                view: position.0,
                timeout_view,
            });
        }
        h.signed.push((position, digest));
        let remembered = h.remembered();
        let excess = remembered.len().saturating_sub(CAP);
        h.dropped.extend(remembered.keys().take(excess).copied());
        Decision::Sign
    }
}
