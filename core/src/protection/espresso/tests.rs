//! Case tables for every Espresso rule and boundary, an independent model of the rules
//! (`model`, written from the README, not from this module), and property tests over random
//! request sequences: every decision is the model's, no conflicting pair is ever accepted
//! (conflicts judged by the model's reading of the messages), decisions are deterministic,
//! refusals change nothing, state stays bounded.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use proptest::prelude::*;
use Violation::{Equivocation, OutsideWindow, ViewBelowWatermark};

fn d(n: u8) -> Digest {
    FixedBytes([n; 32])
}

fn pos(view: u64, relay: u64) -> Position {
    Position { view, relay }
}

fn wm(view: u64, n: u8) -> Watermark {
    Watermark {
        view,
        message: d(n),
    }
}

fn window(newest_view: u64, floor: Option<Position>, signed: &[(Position, u8)]) -> Window {
    Window {
        newest_view,
        floor,
        signed: signed.iter().map(|&(p, n)| (p, d(n))).collect(),
    }
}

#[test]
fn watermark_rule_case_table() {
    let k = Kind::QuorumVote;
    let p = Some(wm(10, 1));
    let cases: Vec<(Option<Watermark>, u64, u8, Verdict<Watermark>)> = vec![
        (None, 0, 1, Verdict::Allow { next: wm(0, 1) }),
        (
            None,
            u64::MAX,
            1,
            Verdict::Allow {
                next: wm(u64::MAX, 1),
            },
        ),
        (p, 11, 2, Verdict::Allow { next: wm(11, 2) }),
        (p, 11, 1, Verdict::Allow { next: wm(11, 1) }),
        (p, 1000, 3, Verdict::Allow { next: wm(1000, 3) }),
        (p, 10, 1, Verdict::SameData),
        (
            p,
            10,
            2,
            Verdict::Deny(Equivocation {
                kind: k,
                view: 10,
                signed: d(1),
                requested: d(2),
            }),
        ),
        (
            p,
            9,
            1,
            Verdict::Deny(ViewBelowWatermark {
                kind: k,
                view: 9,
                last_view: 10,
                last_signed: d(1),
            }),
        ),
        (
            p,
            0,
            2,
            Verdict::Deny(ViewBelowWatermark {
                kind: k,
                view: 0,
                last_view: 10,
                last_signed: d(1),
            }),
        ),
        (
            Some(wm(0, 1)),
            0,
            2,
            Verdict::Deny(Equivocation {
                kind: k,
                view: 0,
                signed: d(1),
                requested: d(2),
            }),
        ),
    ];
    for (prev, view, n, want) in cases {
        assert_eq!(
            evaluate_watermark(k, prev.as_ref(), view, d(n)),
            want,
            "{prev:?} view {view}"
        );
    }
}

#[test]
fn window_rule_case_table() {
    let k = Kind::DaVote;
    let w = window(100, None, &[(pos(100, 0), 1), (pos(40, 0), 2)]);
    let outside = |view| {
        Verdict::Deny(OutsideWindow {
            kind: k,
            view,
            newest_view: 100,
        })
    };
    let cases: Vec<(Option<Window>, Position, u8, Verdict<Window>)> = vec![
        (
            None,
            pos(5, 0),
            1,
            Verdict::Allow {
                next: window(5, None, &[(pos(5, 0), 1)]),
            },
        ),
        // re-sign and equivocation at a remembered position
        (Some(w.clone()), pos(100, 0), 1, Verdict::SameData),
        (Some(w.clone()), pos(40, 0), 2, Verdict::SameData),
        (
            Some(w.clone()),
            pos(100, 0),
            3,
            Verdict::Deny(Equivocation {
                kind: k,
                view: 100,
                signed: d(1),
                requested: d(3),
            }),
        ),
        (
            Some(w.clone()),
            pos(40, 0),
            3,
            Verdict::Deny(Equivocation {
                kind: k,
                view: 40,
                signed: d(2),
                requested: d(3),
            }),
        ),
        // out of order inside the window, down to exactly newest - WINDOW
        (
            Some(w.clone()),
            pos(99, 0),
            3,
            Verdict::Allow {
                next: window(
                    100,
                    None,
                    &[(pos(100, 0), 1), (pos(99, 0), 3), (pos(40, 0), 2)],
                ),
            },
        ),
        (
            Some(w.clone()),
            pos(36, 0),
            3,
            Verdict::Allow {
                next: window(
                    100,
                    None,
                    &[(pos(100, 0), 1), (pos(40, 0), 2), (pos(36, 0), 3)],
                ),
            },
        ),
        (Some(w.clone()), pos(35, 0), 3, outside(35)),
        (Some(w.clone()), pos(0, 0), 3, outside(0)),
        // a new newest view prunes what falls out of the window and raises the floor
        (
            Some(w.clone()),
            pos(104, 0),
            3,
            Verdict::Allow {
                next: window(
                    104,
                    None,
                    &[(pos(40, 0), 2), (pos(100, 0), 1), (pos(104, 0), 3)],
                ),
            },
        ),
        (
            Some(w.clone()),
            pos(105, 0),
            3,
            Verdict::Allow {
                next: window(105, Some(pos(40, 0)), &[(pos(100, 0), 1), (pos(105, 0), 3)]),
            },
        ),
        // the floor refuses positions at or below it even inside the window
        (
            Some(window(100, Some(pos(50, 2)), &[(pos(100, 0), 1)])),
            pos(50, 2),
            3,
            outside(50),
        ),
        (
            Some(window(100, Some(pos(50, 2)), &[(pos(100, 0), 1)])),
            pos(50, 1),
            3,
            outside(50),
        ),
        (
            Some(window(100, Some(pos(50, 2)), &[(pos(100, 0), 1)])),
            pos(50, 3),
            3,
            Verdict::Allow {
                next: window(100, Some(pos(50, 2)), &[(pos(50, 3), 3), (pos(100, 0), 1)]),
            },
        ),
        // near zero the window does not underflow
        (
            Some(window(3, None, &[(pos(3, 0), 1)])),
            pos(0, 0),
            2,
            Verdict::Allow {
                next: window(3, None, &[(pos(0, 0), 2), (pos(3, 0), 1)]),
            },
        ),
    ];
    for (prev, p, n, want) in cases {
        assert_eq!(
            evaluate_window(k, prev.as_ref(), p, d(n)),
            want,
            "{prev:?} at {p:?}"
        );
    }
}

#[test]
fn a_full_window_drops_its_lowest_positions_and_raises_the_floor() {
    let k = Kind::ViewSyncCommitVote;
    let mut w: Option<Window> = None;
    for relay in 0..=MAX_WINDOW_ENTRIES as u64 {
        match evaluate_window(k, w.as_ref(), pos(7, relay), d(1)) {
            Verdict::Allow { next } => w = Some(next),
            other => panic!("relay {relay}: {other:?}"),
        }
    }
    let w = w.unwrap();
    assert_eq!(w.signed.len(), MAX_WINDOW_ENTRIES);
    assert_eq!(w.floor, Some(pos(7, 0)));
    let outside = |view| {
        Verdict::Deny(OutsideWindow {
            kind: k,
            view,
            newest_view: 7,
        })
    };
    assert_eq!(evaluate_window(k, Some(&w), pos(7, 0), d(1)), outside(7));
    assert_eq!(evaluate_window(k, Some(&w), pos(6, 5), d(1)), outside(6));
    assert_eq!(
        evaluate_window(k, Some(&w), pos(7, 1), d(1)),
        Verdict::SameData
    );
}

fn quorum_vote(view: u64, leaf: u8, epoch: Option<u64>) -> Message {
    Message::QuorumVote {
        view,
        data: QuorumData {
            leaf_commit: FixedBytes([leaf; 32]),
            epoch,
            block_number: None,
        },
    }
}

/// A proposal whose leaf fields are all `[n; 32]` (so different `n` give different leaves).
fn proposal(view: u64, n: u8) -> Message {
    Message::quorum_proposal(ProposedLeaf {
        view,
        parent_leaf: FixedBytes([n; 32]),
        block_header_commit: FixedBytes([n; 32]),
        justify_qc_commit: FixedBytes([n; 32]),
        upgrade_certificate_commit: None,
        with_epoch: None,
    })
}

fn intent(key: u8, message: Message) -> EspressoIntent {
    EspressoIntent {
        public_key: FixedBytes([key; 128]),
        message,
    }
}

#[test]
fn decide_records_only_new_data_per_key_and_kind() {
    let mut state = EspressoState::default();
    let first = intent(1, quorum_vote(5, 1, None));
    assert_eq!(state.decide(&first, ViewHorizon::DEFAULT), Decision::Sign);
    let snapshot = state.clone();
    assert_eq!(state.decide(&first, ViewHorizon::DEFAULT), Decision::Resign);
    assert_eq!(state, snapshot);
    let conflict = intent(1, quorum_vote(5, 2, None));
    assert_eq!(
        state.decide(&conflict, ViewHorizon::DEFAULT),
        Decision::Refuse(Equivocation {
            kind: Kind::QuorumVote,
            view: 5,
            signed: FixedBytes(first.message()),
            requested: FixedBytes(conflict.message()),
        })
    );
    assert_eq!(state, snapshot);
    let below = intent(1, quorum_vote(4, 1, None));
    assert_eq!(
        state.decide(&below, ViewHorizon::DEFAULT),
        Decision::Refuse(ViewBelowWatermark {
            kind: Kind::QuorumVote,
            view: 4,
            last_view: 5,
            last_signed: FixedBytes(first.message()),
        })
    );
    assert_eq!(state, snapshot);
    // another key, and another kind of the same key, are independent
    assert_eq!(
        state.decide(&intent(2, quorum_vote(5, 2, None)), ViewHorizon::DEFAULT),
        Decision::Sign
    );
    assert_eq!(
        state.decide(&intent(1, proposal(4, 9)), ViewHorizon::DEFAULT),
        Decision::Sign
    );
    let da = Message::DaVote {
        view: 1,
        data: DaData {
            payload_commit: FixedBytes([3; 32]),
            next_epoch_payload_commit: None,
            epoch: None,
        },
    };
    assert_eq!(
        state.decide(&intent(1, da), ViewHorizon::DEFAULT),
        Decision::Sign
    );
    assert_eq!(state.keys[&FixedBytes([1; 128])].watermarks.len(), 2);
    assert_eq!(state.keys[&FixedBytes([1; 128])].windows.len(), 1);
}

#[test]
fn next_epoch_votes_share_the_quorum_vote_slot() {
    let mut state = EspressoState::default();
    let data = QuorumData {
        leaf_commit: FixedBytes([1; 32]),
        epoch: Some(3),
        block_number: Some(9),
    };
    let vote = intent(
        1,
        Message::QuorumVote {
            view: 8,
            data: data.clone(),
        },
    );
    let next_epoch = intent(1, Message::NextEpochQuorumVote { view: 8, data });
    assert_eq!(state.decide(&vote, ViewHorizon::DEFAULT), Decision::Sign);
    assert_eq!(
        state.decide(&next_epoch, ViewHorizon::DEFAULT),
        Decision::Resign
    );
    // the same leaf hashed as v1 data is a different message at the same view
    let v1 = intent(1, quorum_vote(8, 1, None));
    assert_eq!(
        state.decide(&v1, ViewHorizon::DEFAULT),
        Decision::Refuse(Equivocation {
            kind: Kind::QuorumVote,
            view: 8,
            signed: FixedBytes(vote.message()),
            requested: FixedBytes(v1.message()),
        })
    );
}

#[test]
fn timeouts_view_sync_upgrades_and_da_proposals() {
    let mut state = EspressoState::default();
    // a timeout's epoch is not hashed: both forms are the same message
    let t = |epoch| intent(1, Message::TimeoutVote { view: 20, epoch });
    assert_eq!(state.decide(&t(None), ViewHorizon::DEFAULT), Decision::Sign);
    assert_eq!(
        state.decide(&t(Some(2)), ViewHorizon::DEFAULT),
        Decision::Resign
    );
    // view sync: one message per (phase, round, relay); phases are separate slots
    let vs = |phase, round, relay, epoch| {
        intent(
            1,
            Message::ViewSyncVote {
                phase,
                round,
                relay,
                epoch,
            },
        )
    };
    assert_eq!(
        state.decide(
            &vs(ViewSyncPhase::PreCommit, 30, 0, None),
            ViewHorizon::DEFAULT
        ),
        Decision::Sign
    );
    assert_eq!(
        state.decide(
            &vs(ViewSyncPhase::PreCommit, 30, 1, None),
            ViewHorizon::DEFAULT
        ),
        Decision::Sign
    );
    assert_eq!(
        state.decide(
            &vs(ViewSyncPhase::Commit, 30, 0, None),
            ViewHorizon::DEFAULT
        ),
        Decision::Sign
    );
    assert_eq!(
        state.decide(
            &vs(ViewSyncPhase::PreCommit, 30, 0, Some(4)),
            ViewHorizon::DEFAULT
        ),
        Decision::Refuse(Equivocation {
            kind: Kind::ViewSyncPrecommitVote,
            view: 30,
            signed: FixedBytes(vs(ViewSyncPhase::PreCommit, 30, 0, None).message()),
            requested: FixedBytes(vs(ViewSyncPhase::PreCommit, 30, 0, Some(4)).message()),
        })
    );
    assert_eq!(
        state.decide(
            &vs(ViewSyncPhase::PreCommit, 29, 5, None),
            ViewHorizon::DEFAULT
        ),
        Decision::Sign
    );
    // upgrades: one per view, in any order inside the window
    let up = |view, minor| {
        intent(
            1,
            Message::UpgradeVote {
                view,
                data: UpgradeData::V2 {
                    old_version: Version { major: 0, minor: 3 },
                    new_version: Version { major: 0, minor },
                    hash: HexBytes(vec![1]),
                    epoch: None,
                },
            },
        )
    };
    assert_eq!(
        state.decide(&up(50, 4), ViewHorizon::DEFAULT),
        Decision::Sign
    );
    assert_eq!(
        state.decide(&up(49, 5), ViewHorizon::DEFAULT),
        Decision::Sign
    );
    assert_eq!(
        state.decide(&up(50, 5), ViewHorizon::DEFAULT),
        Decision::Refuse(Equivocation {
            kind: Kind::UpgradeVote,
            view: 50,
            signed: FixedBytes(up(50, 4).message()),
            requested: FixedBytes(up(50, 5).message()),
        })
    );
    // DA proposals: increasing views; the same payload re-signs
    let dp = |view, txs: &[u8]| intent(1, Message::da_proposal(view, txs));
    assert_eq!(
        state.decide(&dp(10, b"a"), ViewHorizon::DEFAULT),
        Decision::Sign
    );
    assert_eq!(
        state.decide(&dp(10, b"a"), ViewHorizon::DEFAULT),
        Decision::Resign
    );
    assert_eq!(
        state.decide(&dp(10, b"b"), ViewHorizon::DEFAULT),
        Decision::Refuse(Equivocation {
            kind: Kind::DaProposal,
            view: 10,
            signed: FixedBytes(dp(10, b"a").message()),
            requested: FixedBytes(dp(10, b"b").message()),
        })
    );
    assert_eq!(
        state.decide(&dp(9, b"a"), ViewHorizon::DEFAULT),
        Decision::Refuse(ViewBelowWatermark {
            kind: Kind::DaProposal,
            view: 9,
            last_view: 10,
            last_signed: FixedBytes(dp(10, b"a").message()),
        })
    );
}

/// The horizon the admins set is the one applied: under 4 views, a DA vote 5 views above the
/// key's last vote is refused (naming 4) where the default signs it, and one 4 above is signed.
/// Refusals change nothing: the same request signs once the horizon is raised again.
#[test]
fn the_cluster_horizon_decides_how_far_ahead_a_da_vote_may_run() {
    let four = ViewHorizon::new(4).unwrap();
    let da = |view| {
        intent(
            1,
            Message::DaVote {
                view,
                data: DaData {
                    payload_commit: FixedBytes([7; 32]),
                    next_epoch_payload_commit: None,
                    epoch: None,
                },
            },
        )
    };
    let mut state = EspressoState::default();
    assert_eq!(
        state.decide(&intent(1, quorum_vote(100, 1, None)), four),
        Decision::Sign
    );
    let before = state.clone();
    assert_eq!(
        state.decide(&da(105), four),
        Decision::Refuse(Violation::BeyondViewHorizon {
            kind: Kind::DaVote,
            view: 105,
            anchor_view: 100,
            horizon: 4,
        })
    );
    assert_eq!(state, before);
    assert_eq!(state.decide(&da(104), four), Decision::Sign);
    assert_eq!(state.decide(&da(105), ViewHorizon::DEFAULT), Decision::Sign);
    assert_eq!(
        state.decide(&da(100 + 33), ViewHorizon::DEFAULT),
        Decision::Refuse(Violation::BeyondViewHorizon {
            kind: Kind::DaVote,
            view: 133,
            anchor_view: 100,
            horizon: 32,
        })
    );
    // The smallest horizon, one view: the next view's DA vote only.
    let one = ViewHorizon::new(1).unwrap();
    assert_eq!(state.decide(&da(101), one), Decision::Sign);
    assert!(matches!(
        state.decide(&da(106), one),
        Decision::Refuse(Violation::BeyondViewHorizon { horizon: 1, .. })
    ));
}

/// A horizon is 1 to 32 views (half the window); anything else is refused with the reason, in
/// code and when decoded.
#[test]
fn a_horizon_outside_one_to_half_the_window_is_refused() {
    assert_eq!(ViewHorizon::DEFAULT.views(), WINDOW / 2);
    assert_eq!(ViewHorizon::default(), ViewHorizon::DEFAULT);
    for views in [1, 2, 31, 32] {
        assert_eq!(ViewHorizon::new(views).map(ViewHorizon::views), Ok(views));
    }
    for views in [0, 33, 64, u64::MAX] {
        assert_eq!(ViewHorizon::new(views), Err(ViewHorizonError(views)));
    }
    assert_eq!(
        ViewHorizonError(33).to_string(),
        "a view horizon of 33 views is outside 1..=32: above half the 64-view window, a message \
         let through could push the key's DA window past the views it votes in"
    );
    assert_eq!(serde_json::from_str::<ViewHorizon>("7").unwrap().views(), 7);
    assert!(serde_json::from_str::<ViewHorizon>("33")
        .unwrap_err()
        .to_string()
        .starts_with("a view horizon of 33 views is outside 1..=32"));
}

/// A far-future leader's DA proposal cannot push the key's DA window past the views it votes
/// in: beyond 32 views above its highest quorum, timeout or view-sync vote, a DA vote (and
/// every other kind another node can choose the view of) is refused; normal DA votes go on.
#[test]
fn a_far_future_da_vote_is_refused_and_normal_da_votes_go_on() {
    let mut state = EspressoState::default();
    let da = |view, p: u8| {
        intent(
            1,
            Message::DaVote {
                view,
                data: DaData {
                    payload_commit: FixedBytes([p; 32]),
                    next_epoch_payload_commit: None,
                    epoch: None,
                },
            },
        )
    };
    // No anchor yet: not bounded.
    assert_eq!(
        state.decide(&da(5, 1), ViewHorizon::DEFAULT),
        Decision::Sign
    );
    assert_eq!(
        state.decide(&intent(1, quorum_vote(1000, 1, None)), ViewHorizon::DEFAULT),
        Decision::Sign
    );
    assert_eq!(
        state.decide(&da(1000 + 32, 1), ViewHorizon::DEFAULT),
        Decision::Sign
    );
    let far = 1_000_000;
    assert_eq!(
        state.decide(&da(far, 2), ViewHorizon::DEFAULT),
        Decision::Refuse(Violation::BeyondViewHorizon {
            kind: Kind::DaVote,
            view: far,
            anchor_view: 1000,
            horizon: 32,
        })
    );
    assert_eq!(
        state.decide(&da(1000 + 33, 2), ViewHorizon::DEFAULT),
        Decision::Refuse(Violation::BeyondViewHorizon {
            kind: Kind::DaVote,
            view: 1033,
            anchor_view: 1000,
            horizon: 32,
        })
    );
    // The normal DA votes of the next views are still signed.
    for view in 1001..1010 {
        assert_eq!(
            state.decide(&da(view, 3), ViewHorizon::DEFAULT),
            Decision::Sign,
            "view {view}"
        );
    }
    // Every kind another node can choose the view of is bounded the same way; the key's own
    // anchoring votes are not (a node back from downtime votes at the network's view).
    let bounded = [
        Message::da_proposal(far, b"x"),
        proposal(far, 1),
        Message::UpgradeVote {
            view: far,
            data: UpgradeData::V2 {
                old_version: Version { major: 0, minor: 3 },
                new_version: Version { major: 0, minor: 4 },
                hash: HexBytes(vec![1]),
                epoch: None,
            },
        },
        Message::UpgradeProposal {
            view: far,
            data: UpgradeData::V2 {
                old_version: Version { major: 0, minor: 3 },
                new_version: Version { major: 0, minor: 4 },
                hash: HexBytes(vec![1]),
                epoch: None,
            },
        },
    ];
    for m in bounded {
        let kind = m.kind();
        assert_eq!(
            state.decide(&intent(1, m), ViewHorizon::DEFAULT),
            Decision::Refuse(Violation::BeyondViewHorizon {
                kind,
                view: far,
                anchor_view: 1000,
                horizon: 32,
            })
        );
    }
    // A timeout vote far ahead is the key's own progress (a stalled network): it anchors,
    // and then the DA vote there is within the horizon.
    assert_eq!(
        state.decide(
            &intent(
                1,
                Message::TimeoutVote {
                    view: far,
                    epoch: None
                }
            ),
            ViewHorizon::DEFAULT
        ),
        Decision::Sign
    );
    assert_eq!(
        state.decide(&da(far, 2), ViewHorizon::DEFAULT),
        Decision::Sign
    );
    // Another key's anchor does not bound this one.
    assert_eq!(
        state.decide(&intent(0, quorum_vote(7, 1, None)), ViewHorizon::DEFAULT),
        Decision::Sign
    );
    assert_eq!(
        state.decide(
            &intent(
                0,
                Message::TimeoutVote {
                    view: 8,
                    epoch: None
                }
            ),
            ViewHorizon::DEFAULT
        ),
        Decision::Sign
    );
}

/// Key 1's Vote2 in `view` for leaf `[leaf; 32]` of `epoch` (block 9).
fn vote2(view: u64, leaf: u8, epoch: u64) -> EspressoIntent {
    intent(
        1,
        Message::Vote2 {
            view,
            data: new_protocol::Vote2Data {
                leaf_commit: FixedBytes([leaf; 32]),
                epoch,
                block_number: 9,
            },
        },
    )
}

/// The new protocol: a Vote1 (a quorum vote) for a rival proposal and a Vote2 for the decided
/// one in the same view are both signed (HotShot's `equivocation.rs` calls this honest); a
/// second Vote2 in one view and epoch for another leaf is an equivocation; at an epoch
/// boundary a view may hold one Vote2 per epoch.
#[test]
fn vote1_for_a_rival_and_vote2_for_the_decided_leaf_sign_in_one_view() {
    let mut state = EspressoState::default();
    let vote1 = intent(
        1,
        Message::QuorumVote {
            view: 40,
            data: QuorumData {
                leaf_commit: FixedBytes([0xaa; 32]),
                epoch: Some(3),
                block_number: Some(9),
            },
        },
    );
    assert_eq!(state.decide(&vote1, ViewHorizon::DEFAULT), Decision::Sign);
    assert_eq!(
        state.decide(&vote2(40, 0xbb, 3), ViewHorizon::DEFAULT),
        Decision::Sign
    );
    assert_ne!(vote1.message(), vote2(40, 0xaa, 3).message());
    assert_eq!(
        state.decide(&vote2(40, 0xbb, 3), ViewHorizon::DEFAULT),
        Decision::Resign
    );
    assert_eq!(
        state.decide(&vote2(40, 0xcc, 3), ViewHorizon::DEFAULT),
        Decision::Refuse(Equivocation {
            kind: Kind::Vote2,
            view: 40,
            signed: FixedBytes(vote2(40, 0xbb, 3).message()),
            requested: FixedBytes(vote2(40, 0xcc, 3).message()),
        })
    );
    assert_eq!(
        state.decide(&vote2(40, 0xcc, 4), ViewHorizon::DEFAULT),
        Decision::Sign
    );
    // Out of order within the window, as HotShot may vote for an older view's leaf.
    assert_eq!(
        state.decide(&vote2(39, 0xdd, 3), ViewHorizon::DEFAULT),
        Decision::Sign
    );
    // A v3 timeout vote: one per view and epoch, its lock hashed.
    let t3 = |lock| {
        intent(
            1,
            Message::TimeoutVote3(new_protocol::TimeoutData3 {
                view: 41,
                epoch: 3,
                lock,
            }),
        )
    };
    assert_eq!(
        state.decide(&t3(None), ViewHorizon::DEFAULT),
        Decision::Sign
    );
    assert_eq!(
        state.decide(
            &t3(Some(new_protocol::LockView { epoch: 3, view: 40 })),
            ViewHorizon::DEFAULT
        ),
        Decision::Refuse(Equivocation {
            kind: Kind::TimeoutVote3,
            view: 41,
            signed: FixedBytes(t3(None).message()),
            requested: FixedBytes(
                t3(Some(new_protocol::LockView { epoch: 3, view: 40 })).message()
            ),
        })
    );
}

/// The new protocol's re-vote requests and upgrade votes: one per view and epoch each, in
/// their own slots (a legacy upgrade vote in the same view is another slot), bounded by the
/// horizon like the legacy upgrade vote.
#[test]
fn re_vote_requests_and_new_upgrade_votes_are_one_per_view_and_epoch() {
    use new_protocol::{ReVoteRequest, UpgradeProposalData2};
    let revote = |view, epoch, cert: u8| {
        intent(
            1,
            Message::ReVoteRequest(ReVoteRequest {
                view,
                epoch,
                cert1_commit: FixedBytes([cert; 32]),
                timeout_cert_commit: None,
            }),
        )
    };
    let upgrade = |view, epoch, decide_by| {
        intent(
            1,
            Message::UpgradeVote2 {
                view,
                data: UpgradeProposalData2 {
                    old_version: Version { major: 0, minor: 6 },
                    new_version: Version { major: 0, minor: 7 },
                    decide_by,
                    new_version_hash: HexBytes(vec![1; 32]),
                    old_version_last_view: 165,
                    new_version_first_view: 170,
                    epoch,
                },
            },
        )
    };
    let h = ViewHorizon::DEFAULT;
    let mut state = EspressoState::default();
    let conflict = |kind, view, a: &EspressoIntent, b: &EspressoIntent| {
        Decision::Refuse(Equivocation {
            kind,
            view,
            signed: FixedBytes(a.message.signing_message()),
            requested: FixedBytes(b.message.signing_message()),
        })
    };
    let (a, b) = (revote(120, 3, 0xa), revote(120, 3, 0xb));
    let cases = [
        (a.clone(), Decision::Sign),
        (a.clone(), Decision::Resign),
        (b.clone(), conflict(Kind::ReVoteRequest, 120, &a, &b)),
        // The epoch boundary: the same view in the next epoch is another position.
        (revote(120, 4, 0xb), Decision::Sign),
        (upgrade(150, 3, 160), Decision::Sign),
        (upgrade(150, 3, 160), Decision::Resign),
        (
            upgrade(150, 3, 161),
            conflict(
                Kind::UpgradeVote2,
                150,
                &upgrade(150, 3, 160),
                &upgrade(150, 3, 161),
            ),
        ),
        (upgrade(150, 4, 161), Decision::Sign),
        (
            intent(
                1,
                Message::UpgradeVote {
                    view: 150,
                    data: UpgradeData::V1 {
                        old_version: Version { major: 0, minor: 6 },
                        new_version: Version { major: 0, minor: 7 },
                        decide_by: 160,
                        new_version_hash: HexBytes(vec![1; 32]),
                        old_version_last_view: 165,
                        new_version_first_view: 170,
                    },
                },
            ),
            Decision::Sign,
        ),
        // Once the key has voted (view 100), both are bounded by the horizon.
        (intent(1, quorum_vote(100, 1, None)), Decision::Sign),
        (revote(132, 3, 0xc), Decision::Sign),
        (
            revote(133, 3, 0xc),
            Decision::Refuse(Violation::BeyondViewHorizon {
                kind: Kind::ReVoteRequest,
                view: 133,
                anchor_view: 100,
                horizon: 32,
            }),
        ),
        (
            upgrade(133, 3, 160),
            Decision::Refuse(Violation::BeyondViewHorizon {
                kind: Kind::UpgradeVote2,
                view: 133,
                anchor_view: 100,
                horizon: 32,
            }),
        ),
    ];
    for (i, (request, want)) in cases.into_iter().enumerate() {
        let before = state.clone();
        let got = state.decide(&request, h);
        assert_eq!(got, want, "case {i}: {:?}", request.message);
        if got != Decision::Sign {
            assert_eq!(state, before, "case {i} changed the state");
        }
    }
    // A re-vote request's bytes are its commitment as is; an upgrade vote's are a vote.
    let r = ReVoteRequest {
        view: 120,
        epoch: 3,
        cert1_commit: FixedBytes([0xa; 32]),
        timeout_cert_commit: None,
    };
    assert_eq!(a.message.signing_message(), r.commit());
    assert_eq!(a.message.data_commitment(), None);
}

/// The new protocol's bar across two slots: after a v3 timeout vote for view v, no new Vote2
/// at a view <= v (HotShot's `timeout_vote_bar`), in any epoch; a Vote2 signed before the
/// timeout still re-signs, a timeout after a Vote2 is allowed, and an older timeout does not
/// lower the bar.
#[test]
fn no_new_vote2_at_or_below_a_view_the_key_timed_out() {
    let timeout3 = |view| {
        intent(
            1,
            Message::TimeoutVote3(new_protocol::TimeoutData3 {
                view,
                epoch: 3,
                lock: None,
            }),
        )
    };
    let barred =
        |view, timeout_view| Decision::Refuse(Violation::Vote2AfterTimeout { view, timeout_view });
    let mut state = EspressoState::default();
    assert_eq!(
        state.decide(&vote2(10, 0xbb, 3), ViewHorizon::DEFAULT),
        Decision::Sign
    );
    assert_eq!(
        state.decide(&timeout3(10), ViewHorizon::DEFAULT),
        Decision::Sign
    );
    assert_eq!(
        state.decide(&vote2(10, 0xbb, 3), ViewHorizon::DEFAULT),
        Decision::Resign
    );
    assert_eq!(
        state.decide(&vote2(10, 0xbb, 4), ViewHorizon::DEFAULT),
        barred(10, 10)
    );
    assert_eq!(
        state.decide(&vote2(9, 0xcc, 3), ViewHorizon::DEFAULT),
        barred(9, 10)
    );
    assert_eq!(
        state.decide(&timeout3(8), ViewHorizon::DEFAULT),
        Decision::Sign
    );
    assert_eq!(
        state.decide(&vote2(10, 0xcc, 5), ViewHorizon::DEFAULT),
        barred(10, 10)
    );
    assert_eq!(
        state.decide(&vote2(11, 0xcc, 3), ViewHorizon::DEFAULT),
        Decision::Sign
    );
    // The refusal's words name both views.
    assert_eq!(
        Violation::Vote2AfterTimeout {
            view: 9,
            timeout_view: 10
        }
        .to_string(),
        "vote2 at view 9: this key sent a timeout vote (v3) for view 10, and a node that timed \
         out never casts a Vote2 at or below that view"
    );
    // Another key is not barred.
    let other = intent(
        2,
        Message::Vote2 {
            view: 5,
            data: new_protocol::Vote2Data {
                leaf_commit: FixedBytes([1; 32]),
                epoch: 3,
                block_number: 9,
            },
        },
    );
    assert_eq!(state.decide(&other, ViewHorizon::DEFAULT), Decision::Sign);
}

/// An upgrade proposal signs `UpgradeProposalData.commit()` itself (not a vote commitment), in
/// its own slot: one per view, separate from the upgrade votes.
#[test]
fn upgrade_proposals_sign_the_data_commitment_in_their_own_slot() {
    let data = |minor| UpgradeData::V2 {
        old_version: Version { major: 0, minor: 3 },
        new_version: Version { major: 0, minor },
        hash: HexBytes(vec![7]),
        epoch: None,
    };
    let proposal = |view, minor| {
        intent(
            1,
            Message::UpgradeProposal {
                view,
                data: data(minor),
            },
        )
    };
    let vote = |view, minor| {
        intent(
            1,
            Message::UpgradeVote {
                view,
                data: data(minor),
            },
        )
    };
    assert_eq!(proposal(50, 4).message(), data(4).commit());
    assert_eq!(
        vote(50, 4).message(),
        message::vote_commitment(&data(4).commit(), 50)
    );
    let mut state = EspressoState::default();
    assert_eq!(
        state.decide(&proposal(50, 4), ViewHorizon::DEFAULT),
        Decision::Sign
    );
    assert_eq!(
        state.decide(&vote(50, 5), ViewHorizon::DEFAULT),
        Decision::Sign
    );
    assert_eq!(
        state.decide(&proposal(50, 4), ViewHorizon::DEFAULT),
        Decision::Resign
    );
    assert_eq!(
        state.decide(&proposal(50, 5), ViewHorizon::DEFAULT),
        Decision::Refuse(Equivocation {
            kind: Kind::UpgradeProposal,
            view: 50,
            signed: FixedBytes(data(4).commit()),
            requested: FixedBytes(data(5).commit()),
        })
    );
}

#[test]
fn quorum_proposals_are_compared_by_the_computed_leaf_commitment() {
    let mut state = EspressoState::default();
    let leaf = |view, drb: Option<u8>, with_epoch: bool| ProposedLeaf {
        view,
        parent_leaf: FixedBytes([1; 32]),
        block_header_commit: FixedBytes([2; 32]),
        justify_qc_commit: FixedBytes([3; 32]),
        upgrade_certificate_commit: None,
        with_epoch: with_epoch.then(|| EpochFields {
            next_drb_result: drb.map(|n| FixedBytes([n; 32])),
            ..EpochFields::default()
        }),
    };
    let p = |l: ProposedLeaf| intent(1, Message::quorum_proposal(l));
    let signed = FixedBytes(leaf(20, None, true).commit());
    let equivocation = |l: ProposedLeaf| {
        Decision::Refuse(Equivocation {
            kind: Kind::QuorumProposal,
            view: 20,
            signed,
            requested: FixedBytes(l.commit()),
        })
    };
    assert_eq!(
        state.decide(&p(leaf(20, None, true)), ViewHorizon::DEFAULT),
        Decision::Sign
    );
    assert_eq!(
        state.keys[&FixedBytes([1; 128])].watermarks[&Kind::QuorumProposal],
        Watermark {
            view: 20,
            message: FixedBytes(leaf(20, None, true).commit())
        }
    );
    let snapshot = state.clone();
    assert_eq!(
        state.decide(&p(leaf(20, None, true)), ViewHorizon::DEFAULT),
        Decision::Resign
    );
    // Any field that changes the leaf commitment is another proposal at the same view, even
    // one HotShot hashes only for leaves with an epoch, or the presence of an epoch itself.
    assert_eq!(
        state.decide(&p(leaf(20, Some(7), true)), ViewHorizon::DEFAULT),
        equivocation(leaf(20, Some(7), true))
    );
    assert_eq!(
        state.decide(&p(leaf(20, None, false)), ViewHorizon::DEFAULT),
        equivocation(leaf(20, None, false))
    );
    let mut other_parent = leaf(20, None, true);
    other_parent.parent_leaf = FixedBytes([9; 32]);
    assert_eq!(
        state.decide(&p(other_parent.clone()), ViewHorizon::DEFAULT),
        equivocation(other_parent)
    );
    assert_eq!(
        state.decide(&p(leaf(19, None, true)), ViewHorizon::DEFAULT),
        Decision::Refuse(ViewBelowWatermark {
            kind: Kind::QuorumProposal,
            view: 19,
            last_view: 20,
            last_signed: signed,
        })
    );
    assert_eq!(state, snapshot);
    assert_eq!(
        state.decide(&p(leaf(21, Some(7), true)), ViewHorizon::DEFAULT),
        Decision::Sign
    );
}

/// The attack the typed proposal closes. Before, a quorum proposal carried the leaf commitment
/// as given, so after the vote (view 10, Y) was refused a client could ask for a "proposal" at
/// view 11 whose commitment was that vote's digest, and get the refused vote signed. Now a
/// proposal's signed bytes are the `Leaf2` commitment of its fields: a Keccak preimage that
/// starts with the `"leaf commitment"` tag, where a vote's starts with `"Vote"`. Putting the vote
/// digest into any 32-byte field only places it inside that preimage.
#[test]
fn a_refused_vote_cannot_be_signed_as_a_quorum_proposal() {
    let mut state = EspressoState::default();
    let x = quorum_vote(10, 0xAA, None);
    let y = quorum_vote(10, 0xBB, None);
    assert_eq!(
        state.decide(&intent(1, x.clone()), ViewHorizon::DEFAULT),
        Decision::Sign
    );
    assert_eq!(
        state.decide(&intent(1, y.clone()), ViewHorizon::DEFAULT),
        Decision::Refuse(Equivocation {
            kind: Kind::QuorumVote,
            view: 10,
            signed: FixedBytes(x.signing_message()),
            requested: FixedBytes(y.signing_message()),
        })
    );
    let target = y.signing_message();
    let y_data = y.data_commitment().unwrap();
    let vote_preimage = [
        &b"Vote\xC0\x7F"[..],
        &32u64.to_le_bytes(),
        &y_data,
        &10u64.to_le_bytes(),
    ]
    .concat();
    {
        use sha3::Digest as _;
        assert_eq!(
            <[u8; 32]>::from(sha3::Keccak256::digest(&vote_preimage)),
            target
        );
    }

    let t = FixedBytes(target);
    let z = FixedBytes([0; 32]);
    let epoch = EpochFields::default();
    let mut table = Vec::new();
    for view in [10, 11] {
        let base = ProposedLeaf {
            view,
            parent_leaf: z,
            block_header_commit: z,
            justify_qc_commit: z,
            upgrade_certificate_commit: None,
            with_epoch: None,
        };
        let with = |e: EpochFields| ProposedLeaf {
            with_epoch: Some(e),
            ..base.clone()
        };
        table.extend([
            ProposedLeaf {
                parent_leaf: t,
                ..base.clone()
            },
            ProposedLeaf {
                block_header_commit: t,
                ..base.clone()
            },
            ProposedLeaf {
                justify_qc_commit: t,
                ..base.clone()
            },
            ProposedLeaf {
                upgrade_certificate_commit: Some(t),
                ..base.clone()
            },
            with(EpochFields {
                next_epoch_justify_qc_commit: Some(t),
                ..epoch.clone()
            }),
            with(EpochFields {
                next_drb_result: Some(t),
                ..epoch.clone()
            }),
            with(EpochFields {
                view_change_evidence: Some(ViewChangeEvidence::TimeoutCert(t)),
                ..epoch.clone()
            }),
            with(EpochFields {
                view_change_evidence: Some(ViewChangeEvidence::ViewSyncCert(t)),
                ..epoch.clone()
            }),
            ProposedLeaf {
                parent_leaf: t,
                block_header_commit: t,
                justify_qc_commit: t,
                upgrade_certificate_commit: Some(t),
                view,
                with_epoch: Some(EpochFields {
                    next_epoch_justify_qc_commit: Some(t),
                    next_drb_result: Some(t),
                    view_change_evidence: Some(ViewChangeEvidence::ViewSyncCert(t)),
                }),
            },
        ]);
    }
    let mut signed = std::collections::BTreeSet::new();
    for leaf in &table {
        let message = Message::quorum_proposal(leaf.clone());
        assert_eq!(message.signing_message(), leaf.commit(), "{leaf:?}");
        assert_ne!(message.signing_message(), target, "{leaf:?}");
        let preimage = leaf.preimage();
        assert!(preimage.starts_with(b"leaf commitment\xC0\x7F"), "{leaf:?}");
        assert_ne!(preimage, vote_preimage);
        // The signer would sign it, as a proposal: its own slot records the leaf commitment.
        let mut after = state.clone();
        assert_eq!(
            after.decide(&intent(1, message), ViewHorizon::DEFAULT),
            Decision::Sign
        );
        assert_eq!(
            after.keys[&FixedBytes([1; 128])].watermarks[&Kind::QuorumProposal].message,
            FixedBytes(leaf.commit())
        );
        signed.insert(leaf.commit());
    }
    // Every position of the digest gives another leaf: each field is inside the preimage.
    assert_eq!(signed.len(), table.len());
}

#[test]
fn kind_names_round_trip() {
    for kind in Kind::ALL {
        assert_eq!(kind.to_string().parse::<Kind>().unwrap(), kind);
        assert_eq!(serde_json::to_string(&kind).unwrap(), format!("\"{kind}\""));
    }
    assert_eq!(Kind::QuorumVote.to_string(), "quorum-vote");
    assert!("quorum_vote".parse::<Kind>().is_err());
    let v = Violation::OutsideWindow {
        kind: Kind::DaVote,
        view: 1,
        newest_view: 99,
    };
    assert_eq!(
        v.to_string(),
        "da-vote at view 1 is outside the window: newest signed view is 99"
    );
}

#[test]
fn intents_and_state_round_trip_through_json() {
    let mut state = EspressoState::default();
    let requests = [
        intent(1, quorum_vote(5, 1, Some(2))),
        intent(
            1,
            Message::ViewSyncVote {
                phase: ViewSyncPhase::Finalize,
                round: 3,
                relay: 2,
                epoch: None,
            },
        ),
        intent(
            2,
            Message::TimeoutVote {
                view: 4,
                epoch: None,
            },
        ),
    ];
    for r in &requests {
        assert_eq!(state.decide(r, ViewHorizon::DEFAULT), Decision::Sign);
        let json = serde_json::to_string(r).unwrap();
        assert_eq!(&serde_json::from_str::<EspressoIntent>(&json).unwrap(), r);
    }
    let json = serde_json::to_string(&state).unwrap();
    assert_eq!(serde_json::from_str::<EspressoState>(&json).unwrap(), state);
}

#[test]
fn intent_new_uses_the_canonical_key_bytes() {
    let sk = crate::scheme::bn254::SecretKey::from_le_bytes(&[5u8; 32]).unwrap();
    let pk = sk.public_key();
    let i = EspressoIntent::new(&pk, quorum_vote(1, 1, None));
    assert_eq!(i.public_key.0, pk.to_bytes());
    assert_eq!(i.message(), i.message.signing_message());
}

// ---- an independent model ------------------------------------------------------------

/// A second, small implementation of the rules (see the module's own documentation).
mod model;

#[test]
fn the_model_agrees_with_the_case_tables() {
    use model::{Expect, Model};
    let k = FixedBytes([1; 128]);
    let mut m = Model::default();
    let da = |view, p: u8| Message::DaVote {
        view,
        data: DaData {
            payload_commit: FixedBytes([p; 32]),
            next_epoch_payload_commit: None,
            epoch: None,
        },
    };
    assert_eq!(m.decide(k, &quorum_vote(10, 1, None)), Expect::Sign);
    assert_eq!(m.decide(k, &quorum_vote(10, 1, None)), Expect::Resign);
    assert_eq!(
        m.decide(k, &quorum_vote(10, 2, None)),
        Expect::Equivocation {
            slot: "quorum-vote",
            view: 10
        }
    );
    assert_eq!(
        m.decide(k, &quorum_vote(9, 1, None)),
        Expect::BelowLastView {
            slot: "quorum-vote",
            view: 9,
            last: 10
        }
    );
    // 100 is more than 32 views above the key's last quorum vote (10), until a timeout
    // vote at 100 shows the key got there.
    assert_eq!(
        m.decide(k, &da(100, 1)),
        Expect::BeyondHorizon {
            slot: "da-vote",
            view: 100,
            anchor: 10,
            horizon: 32
        }
    );
    let timeout = Message::TimeoutVote {
        view: 100,
        epoch: None,
    };
    assert_eq!(m.decide(k, &timeout), Expect::Sign);
    assert_eq!(m.decide(k, &da(100, 1)), Expect::Sign);
    assert_eq!(m.decide(k, &da(36, 1)), Expect::Sign);
    assert_eq!(
        m.decide(k, &da(35, 1)),
        Expect::OutsideWindow {
            slot: "da-vote",
            view: 35,
            newest: 100
        }
    );
    assert_eq!(m.decide(k, &da(101, 1)), Expect::Sign);
    // 36 has left the window (101 - 64 = 37): forgotten, and so is everything at or below it.
    assert_eq!(
        m.decide(k, &da(36, 1)),
        Expect::OutsideWindow {
            slot: "da-vote",
            view: 36,
            newest: 101
        }
    );
    assert_eq!(m.decide(k, &da(37, 1)), Expect::Sign);
}

/// Past the cap of remembered positions (only view-sync votes get there: many relays in one
/// round), the model and the rules still make the same decisions, floor included.
#[test]
fn the_model_and_the_rules_agree_when_a_window_overflows() {
    let vote = |round, relay, epoch| Message::ViewSyncVote {
        phase: ViewSyncPhase::Commit,
        round,
        relay,
        epoch,
    };
    let mut requests: Vec<Message> = (0..=130).map(|relay| vote(7, relay, None)).collect();
    requests.extend([
        vote(7, 0, None),    // dropped by the cap: outside
        vote(7, 2, Some(1)), // dropped, other content: outside
        vote(7, 3, None),    // the lowest still remembered: re-sign
        vote(7, 3, Some(1)), // equivocation
        vote(6, 200, None),  // below the floor, inside the view window: outside
        vote(7, 131, None),  // new: signed, drops relay 3
        vote(7, 3, None),    // now forgotten: outside
        vote(8, 0, None),    // a new round: signed
    ]);
    let mut state = EspressoState::default();
    let mut model = model::Model::default();
    let mut decisions = Vec::new();
    for m in &requests {
        let decision = state.decide(&intent(1, m.clone()), ViewHorizon::DEFAULT);
        let want = model.decide(FixedBytes([1; 128]), m);
        assert_eq!(model::Expect::of(&decision), Some(want), "{m:?}");
        decisions.push(decision);
    }
    let outside = |view, newest_view| {
        Decision::Refuse(OutsideWindow {
            kind: Kind::ViewSyncCommitVote,
            view,
            newest_view,
        })
    };
    assert_eq!(
        decisions[131..],
        [
            outside(7, 7),
            outside(7, 7),
            Decision::Resign,
            Decision::Refuse(Equivocation {
                kind: Kind::ViewSyncCommitVote,
                view: 7,
                signed: FixedBytes(vote(7, 3, None).signing_message()),
                requested: FixedBytes(vote(7, 3, Some(1)).signing_message()),
            }),
            outside(6, 7),
            Decision::Sign,
            outside(7, 7),
            Decision::Sign,
        ]
    );
}

// ---- properties ----------------------------------------------------------------------

/// Small domains so that collisions (same key, kind and position) are frequent; views also
/// cluster around the window's edge (64 views below the newest).
fn arb_message() -> impl Strategy<Value = Message> {
    let view = prop_oneof![8 => 0u64..40, 1 => 0u64..400, 2 => 60u64..70];
    let small = 0u8..3;
    let epoch = proptest::option::of(0u64..2);
    let phase = prop_oneof![
        Just(ViewSyncPhase::PreCommit),
        Just(ViewSyncPhase::Commit),
        Just(ViewSyncPhase::Finalize)
    ];
    prop_oneof![
        (view.clone(), small.clone(), epoch.clone()).prop_map(|(v, l, e)| quorum_vote(v, l, e)),
        (view.clone(), small.clone(), proptest::option::of(0u64..2)).prop_map(
            |(view, l, block_number)| Message::NextEpochQuorumVote {
                view,
                data: QuorumData {
                    leaf_commit: FixedBytes([l; 32]),
                    epoch: Some(1),
                    block_number,
                },
            }
        ),
        (
            view.clone(),
            small.clone(),
            proptest::option::of(small.clone()),
            epoch.clone()
        )
            .prop_map(|(view, p, next, epoch)| Message::DaVote {
                view,
                data: DaData {
                    payload_commit: FixedBytes([p; 32]),
                    next_epoch_payload_commit: next.map(|n| FixedBytes([n; 32])),
                    epoch
                },
            }),
        (view.clone(), epoch.clone())
            .prop_map(|(view, epoch)| Message::TimeoutVote { view, epoch }),
        (phase, view.clone(), 0u64..3, epoch.clone()).prop_map(|(phase, round, relay, epoch)| {
            Message::ViewSyncVote {
                phase,
                round,
                relay,
                epoch,
            }
        }),
        (view.clone(), small.clone(), any::<bool>(), any::<bool>()).prop_map(
            |(view, h, v1, proposal)| {
                let data = if v1 {
                    UpgradeData::V1 {
                        old_version: Version { major: 0, minor: 1 },
                        new_version: Version { major: 0, minor: 2 },
                        decide_by: 9,
                        new_version_hash: HexBytes(vec![h]),
                        old_version_last_view: 10,
                        new_version_first_view: 11,
                    }
                } else {
                    UpgradeData::V2 {
                        old_version: Version { major: 0, minor: 1 },
                        new_version: Version { major: 0, minor: 2 },
                        hash: HexBytes(vec![h]),
                        epoch: None,
                    }
                };
                if proposal {
                    Message::UpgradeProposal { view, data }
                } else {
                    Message::UpgradeVote { view, data }
                }
            }
        ),
        (view.clone(), small.clone()).prop_map(|(view, l)| proposal(view, l)),
        (view.clone(), small.clone()).prop_map(|(view, p)| Message::VidDisperse {
            view,
            computed_payload_commitment: VidCommitment::new(vid::VidVersion::AvidM, [p; 32]),
        }),
        arb_request().prop_map(Message::Request),
        (view.clone(), small.clone(), 0u64..2).prop_map(|(view, l, epoch)| Message::Vote2 {
            view,
            data: new_protocol::Vote2Data {
                leaf_commit: FixedBytes([l; 32]),
                epoch,
                block_number: 7,
            },
        }),
        (view.clone(), 0u64..2, proptest::option::of(0u64..2)).prop_map(|(view, epoch, lock)| {
            Message::TimeoutVote3(new_protocol::TimeoutData3 {
                view,
                epoch,
                lock: lock.map(|v| new_protocol::LockView { epoch, view: v }),
            })
        }),
        (view.clone(), 0u64..2, small.clone()).prop_map(|(view, epoch, c)| {
            Message::ReVoteRequest(new_protocol::ReVoteRequest {
                view,
                epoch,
                cert1_commit: FixedBytes([c; 32]),
                timeout_cert_commit: None,
            })
        }),
        (view.clone(), 0u64..2, small.clone()).prop_map(|(view, epoch, d)| {
            Message::UpgradeVote2 {
                view,
                data: new_protocol::UpgradeProposalData2 {
                    old_version: Version { major: 0, minor: 6 },
                    new_version: Version { major: 0, minor: 7 },
                    decide_by: view + u64::from(d),
                    new_version_hash: HexBytes(vec![d; 32]),
                    old_version_last_view: view + 5,
                    new_version_first_view: view + 10,
                    epoch,
                },
            }
        }),
        (view, small).prop_map(|(view, t)| Message::da_proposal(view, &[t])),
    ]
}

fn arb_request() -> impl Strategy<Value = Request> {
    let view = 0u64..400;
    let bytes = proptest::collection::vec(any::<u8>(), 1..40);
    prop_oneof![
        view.clone()
            .prop_map(|view| Request::ProposalFetch { view }),
        view.clone().prop_map(|view| Request::Vid { view }),
        (bytes.clone(), any::<u64>()).prop_map(|(r, timestamp)| Request::CatchUp {
            request: HexBytes(r),
            timestamp
        }),
        any::<u64>().prop_map(|timestamp| Request::PushCdnAuth { timestamp }),
        (view.clone(), 0u8..3).prop_map(|(view, p)| Request::BuilderClaim {
            block_hash: FixedBytes([p; 32]),
            view
        }),
        (view, 0u8..3).prop_map(|(view, p)| Request::BuilderAvailableBlocks {
            parent_commitment: FixedBytes([p; 32]),
            view
        }),
    ]
}

fn arb_intents() -> impl Strategy<Value = Vec<EspressoIntent>> {
    proptest::collection::vec(
        (0u8..2, arb_message()).prop_map(|(k, m)| intent(k, m)),
        0..120,
    )
}

fn run(requests: &[EspressoIntent]) -> (EspressoState, Vec<Decision>) {
    run_under(requests, ViewHorizon::DEFAULT)
}

fn run_under(requests: &[EspressoIntent], horizon: ViewHorizon) -> (EspressoState, Vec<Decision>) {
    let mut state = EspressoState::default();
    let decisions = requests.iter().map(|r| state.decide(r, horizon)).collect();
    (state, decisions)
}

/// The cluster's horizon: the default half the time, else any the admins may set.
fn arb_horizon() -> impl Strategy<Value = u64> {
    prop_oneof![Just(32u64), 1u64..=32]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Every decision, refusal reason included, is the one the independent model makes, under
    /// any horizon the admins may set.
    #[test]
    fn decisions_match_the_independent_model(
        requests in arb_intents(),
        horizon in arb_horizon(),
    ) {
        let (_, decisions) = run_under(&requests, ViewHorizon::new(horizon).unwrap());
        let mut model = model::Model::with_horizon(horizon);
        for (i, (r, decision)) in requests.iter().zip(&decisions).enumerate() {
            let want = model.decide(r.public_key, &r.message);
            prop_assert_eq!(
                model::Expect::of(decision),
                Some(want),
                "request {} {:?}: implementation decided {:?}",
                i,
                r,
                decision
            );
        }
    }

    /// No two signed requests conflict: same key, same slot and position (read by the model
    /// from the messages' fields) means the same content and the same signed bytes.
    #[test]
    fn no_two_accepted_requests_conflict(requests in arb_intents()) {
        let (_, decisions) = run(&requests);
        type Place = (PublicKeyBytes, model::Slot, (u64, u64));
        let mut accepted: BTreeMap<Place, (String, [u8; 32])> = BTreeMap::new();
        for (r, decision) in requests.iter().zip(&decisions) {
            if !decision.allows_signing() {
                continue;
            }
            let (slot, position, content) = model::describe(&r.message);
            if slot == model::Slot::Unprotected {
                continue;
            }
            let signed = (content, r.message());
            if let Some(previous) = accepted.insert((r.public_key, slot, position), signed.clone()) {
                prop_assert_eq!(previous, signed, "conflict accepted: {:?}", r);
            }
        }
    }

    #[test]
    fn increasing_slots_never_sign_below_a_signed_view(requests in arb_intents()) {
        let (_, decisions) = run(&requests);
        let mut highest: BTreeMap<(PublicKeyBytes, model::Slot), u64> = BTreeMap::new();
        for (r, decision) in requests.iter().zip(&decisions) {
            let (slot, (view, _), _) = model::describe(&r.message);
            if !slot.increasing() || !decision.allows_signing() {
                continue;
            }
            let h = highest.entry((r.public_key, slot)).or_insert(0);
            prop_assert!(view >= *h, "{:?} signed below {}", r, h);
            *h = view;
        }
    }

    #[test]
    fn decisions_are_deterministic(requests in arb_intents()) {
        let (state_a, decisions_a) = run(&requests);
        let (state_b, decisions_b) = run(&requests);
        prop_assert_eq!(&state_a, &state_b);
        prop_assert_eq!(decisions_a, decisions_b);
        let json = serde_json::to_string(&state_a).unwrap();
        prop_assert_eq!(serde_json::from_str::<EspressoState>(&json).unwrap(), state_a);
    }

    #[test]
    fn only_sign_changes_state_and_evaluate_agrees(requests in arb_intents()) {
        let mut state = EspressoState::default();
        for r in &requests {
            let before = state.clone();
            let verdict = state.evaluate(r, ViewHorizon::DEFAULT);
            let decision = state.decide(r, ViewHorizon::DEFAULT);
            match (&verdict, &decision) {
                // An unprotected request is signed and changes nothing.
                (Verdict::Allow { next: Slot::Unprotected }, Decision::Sign) => {
                    prop_assert_eq!(r.kind().rule(), Rule::Unprotected);
                    prop_assert_eq!(&state, &before);
                }
                (Verdict::Allow { .. }, Decision::Sign) => prop_assert_ne!(&state, &before),
                (Verdict::SameData, Decision::Resign) => prop_assert_eq!(&state, &before),
                (Verdict::Deny(a), Decision::Refuse(b)) => {
                    prop_assert_eq!(a, b);
                    prop_assert_eq!(&state, &before);
                }
                other => prop_assert!(false, "evaluate and decide disagree: {:?}", other),
            }
        }
    }

    #[test]
    fn signed_bytes_belong_to_one_kind(requests in arb_intents()) {
        let mut kinds: BTreeMap<[u8; 32], Kind> = BTreeMap::new();
        for r in &requests {
            let kind = *kinds.entry(r.message()).or_insert(r.kind());
            prop_assert_eq!(kind, r.kind(), "{:?}", r);
        }
    }

    #[test]
    fn a_vote_digest_in_any_proposal_field_is_not_what_the_proposal_signs(
        vote in arb_message().prop_filter("votes only", |m| m.data_commitment().is_some()),
        field in 0usize..8,
        view in 0u64..400,
    ) {
        let t = FixedBytes(vote.signing_message());
        let z = FixedBytes([0; 32]);
        let mut leaf = ProposedLeaf {
            view,
            parent_leaf: z,
            block_header_commit: z,
            justify_qc_commit: z,
            upgrade_certificate_commit: None,
            with_epoch: None,
        };
        let mut epoch = EpochFields::default();
        match field {
            0 => leaf.parent_leaf = t,
            1 => leaf.block_header_commit = t,
            2 => leaf.justify_qc_commit = t,
            3 => leaf.upgrade_certificate_commit = Some(t),
            4 => epoch.next_epoch_justify_qc_commit = Some(t),
            5 => epoch.next_drb_result = Some(t),
            6 => epoch.view_change_evidence = Some(ViewChangeEvidence::TimeoutCert(t)),
            _ => epoch.view_change_evidence = Some(ViewChangeEvidence::ViewSyncCert(t)),
        }
        if field >= 4 {
            leaf.with_epoch = Some(epoch);
        }
        let proposal = Message::quorum_proposal(leaf);
        prop_assert_ne!(proposal.signing_message(), vote.signing_message());
    }

    #[test]
    fn windows_stay_bounded(requests in arb_intents()) {
        let (state, _) = run(&requests);
        for record in state.keys.values() {
            for w in record.windows.values() {
                prop_assert!(w.signed.len() <= MAX_WINDOW_ENTRIES);
                for p in w.signed.keys() {
                    prop_assert!(p.view + WINDOW >= w.newest_view);
                    prop_assert!(w.floor.is_none_or(|f| *p > f));
                }
            }
        }
    }
}

proptest! {
    // Long sequences: fewer cases.
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// View-sync votes crowded into a few rounds, so that a slot overflows its cap of
    /// remembered positions: still the model's decisions.
    #[test]
    fn crowded_view_sync_decisions_match_the_independent_model(
        votes in proptest::collection::vec(
            (0u64..3, 0u64..80, proptest::option::of(0u64..2)),
            200..300,
        )
    ) {
        let mut state = EspressoState::default();
        let mut model = model::Model::default();
        for (round, relay, epoch) in votes {
            let m = Message::ViewSyncVote { phase: ViewSyncPhase::PreCommit, round, relay, epoch };
            let decision = state.decide(&intent(1, m.clone()), ViewHorizon::DEFAULT);
            let want = model.decide(FixedBytes([1; 128]), &m);
            prop_assert_eq!(model::Expect::of(&decision), Some(want), "{:?}", m);
        }
    }
}
