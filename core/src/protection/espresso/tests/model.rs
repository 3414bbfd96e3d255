//! A second, small implementation of the README's Espresso rules, written from their text
//! (README "For sequencer and validator operators", `espresso`; the window's size, 64 views,
//! and cap, 128 positions, are the numbers the module documentation gives) and from HotShot's
//! message layouts (tests/vectors/espresso/NOTES.md §3), not from the code under test: it uses
//! none of `Kind`, `Position`, `Message::{kind, view, relay, signing_message}`, `evaluate_*`,
//! `WINDOW` or `MAX_WINDOW_ENTRIES` (only `Expect::of` reads the implementation's decision,
//! its kind's name included, to compare). It keeps every signed message forever and derives
//! what the implementation remembers from that history.
//!
//! The rules, per key and slot:
//! - quorum votes (v1, v2 and next-epoch votes: one slot, since they sign the same bytes for the
//!   same data), quorum proposals and DA proposals: a view below the last signed one is refused,
//!   the same view with other content is an equivocation, the same content re-signs;
//! - DA votes, timeout votes, upgrade votes (one per view) and each view-sync phase (one per
//!   round and relay): one content per position, any order, but only within 64 views of the
//!   newest view signed; a position that has left that window (or was dropped to keep at most
//!   128 per slot) is forgotten, and no position at or below a forgotten one is signed again;
//! - upgrade proposals and VID disperses: one per view, like upgrade votes (each its own slot);
//! - the new protocol's Vote2 and timeout votes: one per view and epoch, any order within the
//!   window (each its own slot), and they mark the key's progress like quorum votes;
//! - the new protocol's re-vote requests and upgrade votes: one per view and epoch, any order
//!   within the window (each its own slot), bounded by the horizon like upgrade votes;
//! - requests and network messages (fetch, VID and catch-up requests, libp2p, DHT and
//!   Push-CDN authentication, builder requests): always signed, never remembered;
//! - a new Vote2 at or below the highest view of the key's v3 timeout votes is refused (after
//!   the window's own answer: a re-sign stays a re-sign);
//! - the horizon: a DA vote, DA proposal, quorum proposal, upgrade vote or proposal, VID
//!   disperse, re-vote request or new-protocol upgrade vote
//!   more than the cluster's horizon (32 views unless the admins set another, 1 to 32) above
//!   the highest view of the key's signed quorum, timeout and view-sync votes is refused,
//!   before any other rule; without such a vote, no bound.

use super::*;

/// The model's own slot names (the kebab-case names the README and metrics use).
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
    /// A request or network message (not a consensus message).
    Unprotected,
}

impl Slot {
    pub fn name(self) -> &'static str {
        match self {
            Slot::QuorumVote => "quorum-vote",
            Slot::DaVote => "da-vote",
            Slot::TimeoutVote => "timeout-vote",
            Slot::ViewSyncPrecommit => "view-sync-precommit-vote",
            Slot::ViewSyncCommit => "view-sync-commit-vote",
            Slot::ViewSyncFinalize => "view-sync-finalize-vote",
            Slot::UpgradeVote => "upgrade-vote",
            Slot::QuorumProposal => "quorum-proposal",
            Slot::DaProposal => "da-proposal",
            Slot::UpgradeProposal => "upgrade-proposal",
            Slot::VidDisperse => "vid-disperse",
            Slot::Vote2 => "vote2",
            Slot::TimeoutVote3 => "timeout-vote3",
            Slot::ReVoteRequest => "re-vote-request",
            Slot::UpgradeVote2 => "upgrade-vote2",
            Slot::Unprotected => "request",
        }
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

    /// Increasing views (true) or a window of positions (false).
    pub fn increasing(self) -> bool {
        matches!(
            self,
            Slot::QuorumVote | Slot::QuorumProposal | Slot::DaProposal
        )
    }
}

/// Slot, position (view or round, then relay) and content of a message, read from its
/// fields. Two messages of one slot and position conflict unless their content is equal;
/// content is exactly what HotShot hashes (a timeout vote's epoch is not hashed, a view-sync
/// vote's is; a DA proposal signs its payload's hash, whatever the view).
pub fn describe(m: &Message) -> (Slot, (u64, u64), String) {
    match m {
        Message::QuorumVote { view, data } | Message::NextEpochQuorumVote { view, data } => {
            (Slot::QuorumVote, (*view, 0), format!("{data:?}"))
        }
        Message::DaVote { view, data } => (Slot::DaVote, (*view, 0), format!("{data:?}")),
        Message::TimeoutVote { view, epoch: _ } => (Slot::TimeoutVote, (*view, 0), String::new()),
        Message::ViewSyncVote {
            phase,
            round,
            relay,
            epoch,
        } => {
            let slot = match phase {
                ViewSyncPhase::PreCommit => Slot::ViewSyncPrecommit,
                ViewSyncPhase::Commit => Slot::ViewSyncCommit,
                ViewSyncPhase::Finalize => Slot::ViewSyncFinalize,
            };
            (slot, (*round, *relay), format!("{epoch:?}"))
        }
        Message::UpgradeVote { view, data } => (Slot::UpgradeVote, (*view, 0), format!("{data:?}")),
        Message::QuorumProposal(leaf) => {
            (Slot::QuorumProposal, (leaf.view, 0), format!("{leaf:?}"))
        }
        Message::DaProposal {
            view,
            computed_transactions_sha256,
        } => (
            Slot::DaProposal,
            (*view, 0),
            format!("{computed_transactions_sha256:?}"),
        ),
        Message::UpgradeProposal { view, data } => {
            (Slot::UpgradeProposal, (*view, 0), format!("{data:?}"))
        }
        Message::VidDisperse {
            view,
            computed_payload_commitment,
        } => (
            Slot::VidDisperse,
            (*view, 0),
            format!("{computed_payload_commitment:?}"),
        ),
        Message::Request(r) => (Slot::Unprotected, (0, 0), format!("{r:?}")),
        Message::Vote2 { view, data } => (Slot::Vote2, (*view, data.epoch), format!("{data:?}")),
        Message::TimeoutVote3(t) => (Slot::TimeoutVote3, (t.view, t.epoch), format!("{t:?}")),
        Message::ReVoteRequest(r) => (Slot::ReVoteRequest, (r.view, r.epoch), format!("{r:?}")),
        Message::UpgradeVote2 { view, data } => {
            (Slot::UpgradeVote2, (*view, data.epoch), format!("{data:?}"))
        }
    }
}

/// What the model expects for one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    Sign,
    Resign,
    Equivocation {
        slot: &'static str,
        view: u64,
    },
    BelowLastView {
        slot: &'static str,
        view: u64,
        last: u64,
    },
    OutsideWindow {
        slot: &'static str,
        view: u64,
        newest: u64,
    },
    BeyondHorizon {
        slot: &'static str,
        view: u64,
        anchor: u64,
        horizon: u64,
    },
    Vote2AfterTimeout {
        view: u64,
        timeout_view: u64,
    },
}

impl Expect {
    /// The implementation's decision, in the model's terms.
    pub fn of(decision: &Decision) -> Option<Expect> {
        Some(match decision {
            Decision::Sign => Expect::Sign,
            Decision::Resign => Expect::Resign,
            Decision::Refuse(Violation::Equivocation { kind, view, .. }) => Expect::Equivocation {
                slot: kind.name(),
                view: *view,
            },
            Decision::Refuse(Violation::ViewBelowWatermark {
                kind,
                view,
                last_view,
                ..
            }) => Expect::BelowLastView {
                slot: kind.name(),
                view: *view,
                last: *last_view,
            },
            Decision::Refuse(Violation::OutsideWindow {
                kind,
                view,
                newest_view,
            }) => Expect::OutsideWindow {
                slot: kind.name(),
                view: *view,
                newest: *newest_view,
            },
            Decision::Refuse(Violation::BeyondViewHorizon {
                kind,
                view,
                anchor_view,
                horizon,
            }) => Expect::BeyondHorizon {
                slot: kind.name(),
                view: *view,
                anchor: *anchor_view,
                horizon: *horizon,
            },
            Decision::Refuse(Violation::Vote2AfterTimeout { view, timeout_view }) => {
                Expect::Vote2AfterTimeout {
                    view: *view,
                    timeout_view: *timeout_view,
                }
            }
            Decision::Refuse(_) => return None,
        })
    }
}

/// Everything one key signed in one slot, in signing order.
#[derive(Default)]
struct History {
    signed: Vec<((u64, u64), String)>,
    /// Positions dropped because the slot held more than 128.
    dropped_by_cap: Vec<(u64, u64)>,
}

impl History {
    fn newest(&self) -> Option<u64> {
        self.signed.iter().map(|((v, _), _)| *v).max()
    }

    /// Positions still remembered: signed, within 64 views of the newest, not dropped.
    fn remembered(&self) -> Vec<&((u64, u64), String)> {
        let newest = self.newest().unwrap_or(0);
        self.signed
            .iter()
            .filter(|(p, _)| p.0 + 64 >= newest && !self.dropped_by_cap.contains(p))
            .collect()
    }

    /// The highest position forgotten, if any.
    fn forgotten_max(&self) -> Option<(u64, u64)> {
        let newest = self.newest().unwrap_or(0);
        self.signed
            .iter()
            .map(|(p, _)| *p)
            .filter(|p| p.0 + 64 < newest)
            .chain(self.dropped_by_cap.iter().copied())
            .max()
    }
}

pub struct Model {
    slots: BTreeMap<(PublicKeyBytes, Slot), History>,
    /// The cluster's horizon, in views.
    horizon: u64,
}

impl Default for Model {
    /// A new cluster's horizon: 32 views.
    fn default() -> Self {
        Model::with_horizon(32)
    }
}

impl Model {
    /// A model of a cluster whose admins set the horizon to `horizon` views.
    pub fn with_horizon(horizon: u64) -> Self {
        Model {
            slots: BTreeMap::new(),
            horizon,
        }
    }

    pub fn decide(&mut self, key: PublicKeyBytes, m: &Message) -> Expect {
        let (slot, position, content) = describe(m);
        if slot == Slot::Unprotected {
            return Expect::Sign;
        }
        let name = slot.name();
        let anchor = self
            .slots
            .iter()
            .filter(|((k, s), _)| *k == key && s.anchors())
            .filter_map(|(_, h)| h.newest())
            .max();
        if let Some(anchor) =
            anchor.filter(|a| slot.bounded() && position.0 > a.saturating_add(self.horizon))
        {
            return Expect::BeyondHorizon {
                slot: name,
                view: position.0,
                anchor,
                horizon: self.horizon,
            };
        }
        let history = self.slots.entry((key, slot)).or_default();
        let expect = if slot.increasing() {
            match history.signed.last() {
                None => Expect::Sign,
                Some(((last, _), _)) if position.0 < *last => Expect::BelowLastView {
                    slot: name,
                    view: position.0,
                    last: *last,
                },
                Some(((last, _), signed)) if position.0 == *last => {
                    if *signed == content {
                        Expect::Resign
                    } else {
                        Expect::Equivocation {
                            slot: name,
                            view: position.0,
                        }
                    }
                }
                Some(_) => Expect::Sign,
            }
        } else {
            // Window slots (the view-sync phases by round and relay).
            let remembered = history
                .remembered()
                .into_iter()
                .find(|(p, _)| *p == position)
                .map(|(_, c)| c.clone());
            match (remembered, history.newest()) {
                (Some(signed), _) if signed == content => Expect::Resign,
                (Some(_), _) => Expect::Equivocation {
                    slot: name,
                    view: position.0,
                },
                (None, None) => Expect::Sign,
                (None, Some(newest)) => {
                    let too_old = position.0 + 64 < newest;
                    let forgotten = history.forgotten_max().is_some_and(|f| position <= f);
                    if too_old || forgotten {
                        Expect::OutsideWindow {
                            slot: name,
                            view: position.0,
                            newest,
                        }
                    } else {
                        Expect::Sign
                    }
                }
            }
        };
        let timeout_bar = self
            .slots
            .get(&(key, Slot::TimeoutVote3))
            .and_then(History::newest);
        let expect = match timeout_bar {
            Some(bar) if slot == Slot::Vote2 && expect == Expect::Sign && position.0 <= bar => {
                Expect::Vote2AfterTimeout {
                    view: position.0,
                    timeout_view: bar,
                }
            }
            _ => expect,
        };
        let history = self.slots.entry((key, slot)).or_default();
        if expect == Expect::Sign {
            history.signed.push((position, content));
            if !slot.increasing() {
                let mut kept: Vec<(u64, u64)> =
                    history.remembered().iter().map(|(p, _)| *p).collect();
                kept.sort();
                let excess = kept.len().saturating_sub(128);
                history.dropped_by_cap.extend(kept.into_iter().take(excess));
            }
        }
        expect
    }
}
