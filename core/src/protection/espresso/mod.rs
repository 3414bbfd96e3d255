//! Espresso (HotShot) double-sign rules for BN254 BLS consensus keys.
//!
//! Owns: the typed request ([`EspressoIntent`]: key and [`Message`]), the per-key protection
//! record ([`KeyRecord`]) in [`EspressoState`], and the rules that decide each request.
//! [`message`] computes the bytes each message signs; [`leaf`] computes a quorum proposal's
//! leaf commitment from its typed fields.
//!
//! Must not: do IO, read a clock, use randomness, sign, or trust a digest the client computed:
//! the message bytes are always recomputed here from typed data (a quorum proposal's from the
//! leaf's fields, a DA proposal's from the payload when the request is converted).
//!
//! # Rules, per (key, [`Kind`])
//! A conflict is two different messages of the same kind at the same position (view; for
//! view-sync votes, round and relay). Signing the identical message again is harmless (BLS
//! is deterministic) and is allowed as a re-sign.
//! - **Watermark** kinds — quorum votes (v1, v2 and next-epoch votes share one slot: they
//!   sign the same bytes for the same data), quorum proposals (compared by the leaf
//!   commitment computed from the proposal) and DA proposals (compared by the signer-computed
//!   payload digest): the record is the last view signed and the message signed there. A lower view is refused
//!   ([`Violation::ViewBelowWatermark`]), the same view with another message is
//!   [`Violation::Equivocation`], a higher view is signed. HotShot itself only ever votes
//!   and proposes in increasing views (`Consensus::update_action`).
//! - **Window** kinds — DA votes, timeout votes, upgrade votes and the three view-sync
//!   phases: one message per position, positions may arrive out of order (the leader of view
//!   n+1 may send its DA proposal before the leader of view n). A position whose view is
//!   more than [`WINDOW`] views below the newest signed view is refused
//!   ([`Violation::OutsideWindow`]), and so is anything at or below the record's `floor`.
//!   The new protocol's Vote2, v3 timeout and upgrade votes and its re-vote requests are
//!   window kinds too, positioned by view and epoch; its proposals are quorum proposals.
//! - **Across two slots**: a new Vote2 at or below the highest view the key sent a v3 timeout
//!   vote for is refused ([`Violation::Vote2AfterTimeout`]; HotShot's `timeout_vote_bar`). A
//!   Vote2 signed before that timeout still re-signs; a timeout after a Vote2 is allowed.
//!
//! # The view horizon
//! A DA vote, DA proposal, quorum proposal, upgrade vote/proposal or VID disperse more than
//! the cluster's [`ViewHorizon`] (32 views unless the admins set another) above the key's
//! anchor view — the highest view of its quorum, timeout and view-sync
//! votes, which HotShot casts only in views reached through certificates — is refused
//! ([`Violation::BeyondViewHorizon`]), so no far-future leader can push the key's DA window
//! past the views it really votes in. A key with no anchoring vote yet is not bounded (its
//! first quorum vote anchors it; a restore or the backup margin anchors it too).
//!
//! # The window
//! [`WINDOW`] = 64 views: far wider than the few views HotShot keeps in flight (a view lasts
//! about a second and DA votes run at most a couple of views ahead), yet small enough that a
//! key's record stays bounded: each window slot keeps at most [`MAX_WINDOW_ENTRIES`] entries.
//! Entries that fall out of the window are pruned; if a slot would exceed the cap (only
//! view-sync votes can, with many relays in one round), its lowest positions are pruned too.
//! Every pruned position raises `floor`, and nothing at or below `floor` is signed again —
//! forgetting costs liveness, never safety.
//!
//! To ensure correctness:
//! - a refusal and a re-sign leave the state exactly as it was; only [`Decision::Sign`]
//!   changes it, and only the (key, kind) slot of the request;
//! - watermark views only rise; a window's newest view only rises; `floor` only rises;
//! - every stored window entry lies above `floor` and within [`WINDOW`] of the newest view;
//! - keys are compared by their canonical encoding ([`crate::scheme::bn254::PublicKey`]
//!   accepts only canonical bytes, so one key has exactly one record);
//! - the state is plain ordered data (`BTreeMap`), so every replica reaches the same bytes.

mod committable;
pub mod leaf;
pub mod message;
pub mod new_protocol;
pub mod request;
pub mod vid;

pub use leaf::{DrbResult, EpochFields, ProposedLeaf, ViewChangeEvidence};
pub use message::{
    Commitment, DaData, HexBytes, Message, QuorumData, TransactionsDigest, UpgradeData, Version,
    ViewSyncPhase,
};
pub use request::Request;
pub use vid::VidCommitment;

use crate::bytes::FixedBytes;
use crate::protection::{Decision, Verdict, Violation};
use crate::scheme::bn254;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How many views below the newest signed one a windowed kind still accepts.
pub const WINDOW: u64 = 64;
/// At most this many positions are remembered per (key, windowed kind).
pub const MAX_WINDOW_ENTRIES: usize = 2 * WINDOW as usize;

/// A BN254 public key in its canonical 128-byte encoding ([`bn254::PublicKey::to_bytes`]).
pub type PublicKeyBytes = FixedBytes<{ bn254::PUBLIC_KEY_LEN }>;
/// The 32 bytes signed for a message.
pub type Digest = FixedBytes<32>;

/// A typed Espresso signing request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EspressoIntent {
    /// The consensus key asked to sign (canonical encoding).
    pub public_key: PublicKeyBytes,
    /// What to sign.
    pub message: Message,
}

impl EspressoIntent {
    /// A request for `key` to sign `message`.
    pub fn new(key: &bn254::PublicKey, message: Message) -> Self {
        EspressoIntent {
            public_key: FixedBytes(key.to_bytes()),
            message,
        }
    }

    /// The 32 bytes that identify this request in the protection record and the audit log:
    /// for every consensus message, exactly the bytes signed ([`Message::signing_message`]).
    pub fn message(&self) -> [u8; 32] {
        self.message.signing_message()
    }

    /// The exact bytes the key signs for this request: [`EspressoIntent::message`] for every
    /// consensus message (32 bytes); for a request message, the bytes HotShot builds with this
    /// key ([`Request::signed_bytes`]; fails only if the key bytes do not parse).
    pub fn signed_bytes(&self) -> Result<Vec<u8>, crate::scheme::SchemeError> {
        match &self.message {
            Message::Request(request) => {
                let key = bn254::PublicKey::from_bytes(&self.public_key.0)?;
                Ok(request.signed_bytes(&key))
            }
            other => Ok(other.signing_message().to_vec()),
        }
    }

    /// The protection slot of this request.
    pub fn kind(&self) -> Kind {
        self.message.kind()
    }

    /// Where in its slot this request sits.
    pub fn position(&self) -> Position {
        Position {
            view: self.message.view(),
            relay: self.message.relay(),
        }
    }
}

/// A protection slot: the kinds of message that must not conflict with each other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Quorum votes (`QuorumVote`, `QuorumVote2`, `NextEpochQuorumVote2`).
    QuorumVote,
    /// DA votes.
    DaVote,
    /// Timeout votes.
    TimeoutVote,
    /// View-sync pre-commit votes.
    ViewSyncPrecommitVote,
    /// View-sync commit votes.
    ViewSyncCommitVote,
    /// View-sync finalize votes.
    ViewSyncFinalizeVote,
    /// Upgrade votes.
    UpgradeVote,
    /// Quorum proposals (the leaf commitments the signer computes).
    QuorumProposal,
    /// DA proposals (the payload digests the signer computes).
    DaProposal,
    /// Upgrade proposals (`UpgradeProposalData.commit()`, signed by the leader as is).
    UpgradeProposal,
    /// VID disperses and shares (the payload commitments the signer computes).
    VidDisperse,
    /// Proposal fetch requests (unprotected).
    ProposalFetchRequest,
    /// VID share requests (unprotected).
    VidRequest,
    /// Request-response catch-up requests (unprotected).
    CatchUpRequest,
    /// libp2p connection authentication (unprotected).
    Libp2pAuth,
    /// DHT lookup records (unprotected).
    DhtRecord,
    /// Push-CDN authentication (unprotected).
    PushCdnAuth,
    /// Builder `available_blocks` queries (unprotected; trusted clients only unless the
    /// signer computed the parent commitment).
    BuilderAvailableBlocks,
    /// Builder block claims (unprotected; trusted clients only).
    BuilderClaim,
    /// The new protocol's Vote2, per view and epoch.
    Vote2,
    /// The new protocol's timeout votes (`TimeoutData3`), per view and epoch.
    TimeoutVote3,
    /// The new protocol's re-vote requests (a leader's), per view and epoch.
    ReVoteRequest,
    /// The new protocol's upgrade votes (`UpgradeProposalData2`), per view and epoch.
    UpgradeVote2,
}

/// Which rule a [`Kind`] follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// Increasing views; one message at the last view.
    Watermark,
    /// Any order inside [`WINDOW`]; one message per position.
    Window,
    /// Not a consensus message: always signed, nothing recorded ([`Message::Request`]).
    Unprotected,
}

/// How many views a message of a kind that HotShot accepts from other nodes for any future
/// view ([`Kind::bounded_by_horizon`]) may run ahead of the key's own progress
/// ([`KeyRecord::anchor_view`]). The admins set it for the whole cluster (an approved action,
/// so every replica decides with the same value); a new cluster starts at
/// [`ViewHorizon::DEFAULT`].
///
/// HotShot bounds a DA proposal only from below (`cur_view <= view + 1`), so a leader scheduled
/// for a far-future view can ask every node for a DA vote there. Signed, that vote would move
/// the key's DA window far ahead and leave every normal DA vote below it: a lockout. A horizon
/// of at most half the window ([`ViewHorizon::MAX`]) keeps any message this rule lets through
/// within [`WINDOW`] of the views the key is really voting in, while staying far above the
/// couple of views HotShot runs ahead. A lower horizon refuses more: a node whose proposals or
/// DA votes run further ahead of its last vote than that is refused until it votes again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u64")]
pub struct ViewHorizon(u64);

impl ViewHorizon {
    /// The horizon of a new cluster (and of every cluster before it was configurable).
    pub const DEFAULT: ViewHorizon = ViewHorizon(WINDOW / 2);
    /// The smallest horizon: one view ahead of the key's last vote.
    pub const MIN: u64 = 1;
    /// The largest horizon: half the window.
    pub const MAX: u64 = WINDOW / 2;

    /// A horizon of `views`, refused outside [`ViewHorizon::MIN`]..=[`ViewHorizon::MAX`].
    pub fn new(views: u64) -> Result<ViewHorizon, ViewHorizonError> {
        if (Self::MIN..=Self::MAX).contains(&views) {
            Ok(ViewHorizon(views))
        } else {
            Err(ViewHorizonError(views))
        }
    }

    /// The number of views.
    pub fn views(self) -> u64 {
        self.0
    }
}

impl Default for ViewHorizon {
    fn default() -> Self {
        ViewHorizon::DEFAULT
    }
}

impl TryFrom<u64> for ViewHorizon {
    type Error = ViewHorizonError;
    fn try_from(views: u64) -> Result<Self, Self::Error> {
        ViewHorizon::new(views)
    }
}

impl From<ViewHorizon> for u64 {
    fn from(h: ViewHorizon) -> u64 {
        h.0
    }
}

impl std::fmt::Display for ViewHorizon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} views", self.0)
    }
}

/// A view horizon outside the range the rule's guarantee holds for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "a view horizon of {0} views is outside {min}..={max}: above half the {window}-view window, \
     a message let through could push the key's DA window past the views it votes in",
    min = ViewHorizon::MIN,
    max = ViewHorizon::MAX,
    window = WINDOW
)]
pub struct ViewHorizonError(pub u64);

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 23] = [
        Kind::QuorumVote,
        Kind::DaVote,
        Kind::TimeoutVote,
        Kind::ViewSyncPrecommitVote,
        Kind::ViewSyncCommitVote,
        Kind::ViewSyncFinalizeVote,
        Kind::UpgradeVote,
        Kind::QuorumProposal,
        Kind::DaProposal,
        Kind::UpgradeProposal,
        Kind::VidDisperse,
        Kind::ProposalFetchRequest,
        Kind::VidRequest,
        Kind::CatchUpRequest,
        Kind::Libp2pAuth,
        Kind::DhtRecord,
        Kind::PushCdnAuth,
        Kind::BuilderAvailableBlocks,
        Kind::BuilderClaim,
        Kind::Vote2,
        Kind::TimeoutVote3,
        Kind::ReVoteRequest,
        Kind::UpgradeVote2,
    ];

    /// The kind of a request message.
    pub fn of_request(request: &Request) -> Kind {
        match request {
            Request::ProposalFetch { .. } => Kind::ProposalFetchRequest,
            Request::Vid { .. } => Kind::VidRequest,
            Request::CatchUp { .. } => Kind::CatchUpRequest,
            Request::Libp2pAuth { .. } => Kind::Libp2pAuth,
            Request::DhtRecord { .. } => Kind::DhtRecord,
            Request::PushCdnAuth { .. } => Kind::PushCdnAuth,
            Request::BuilderAvailableBlocks { .. } => Kind::BuilderAvailableBlocks,
            Request::BuilderClaim { .. } => Kind::BuilderClaim,
        }
    }

    /// The kebab-case name used in configs, metrics and audit records.
    pub fn name(self) -> &'static str {
        match self {
            Kind::QuorumVote => "quorum-vote",
            Kind::DaVote => "da-vote",
            Kind::TimeoutVote => "timeout-vote",
            Kind::ViewSyncPrecommitVote => "view-sync-precommit-vote",
            Kind::ViewSyncCommitVote => "view-sync-commit-vote",
            Kind::ViewSyncFinalizeVote => "view-sync-finalize-vote",
            Kind::UpgradeVote => "upgrade-vote",
            Kind::QuorumProposal => "quorum-proposal",
            Kind::DaProposal => "da-proposal",
            Kind::UpgradeProposal => "upgrade-proposal",
            Kind::VidDisperse => "vid-disperse",
            Kind::ProposalFetchRequest => "proposal-fetch-request",
            Kind::VidRequest => "vid-request",
            Kind::CatchUpRequest => "catch-up-request",
            Kind::Libp2pAuth => "libp2p-auth",
            Kind::DhtRecord => "dht-record",
            Kind::PushCdnAuth => "push-cdn-auth",
            Kind::BuilderAvailableBlocks => "builder-available-blocks",
            Kind::BuilderClaim => "builder-claim",
            Kind::Vote2 => "vote2",
            Kind::TimeoutVote3 => "timeout-vote3",
            Kind::ReVoteRequest => "re-vote-request",
            Kind::UpgradeVote2 => "upgrade-vote2",
        }
    }

    /// The rule this kind follows.
    pub fn rule(self) -> Rule {
        match self {
            Kind::QuorumVote | Kind::QuorumProposal | Kind::DaProposal => Rule::Watermark,
            Kind::DaVote
            | Kind::TimeoutVote
            | Kind::ViewSyncPrecommitVote
            | Kind::ViewSyncCommitVote
            | Kind::ViewSyncFinalizeVote
            | Kind::UpgradeVote
            | Kind::UpgradeProposal
            | Kind::VidDisperse
            | Kind::Vote2
            | Kind::TimeoutVote3
            | Kind::ReVoteRequest
            | Kind::UpgradeVote2 => Rule::Window,
            Kind::ProposalFetchRequest
            | Kind::VidRequest
            | Kind::CatchUpRequest
            | Kind::Libp2pAuth
            | Kind::DhtRecord
            | Kind::PushCdnAuth
            | Kind::BuilderAvailableBlocks
            | Kind::BuilderClaim => Rule::Unprotected,
        }
    }

    /// Kinds HotShot casts only in a view the node reached through certificates of a quorum
    /// (its own quorum, timeout and view-sync votes): they mark how far the key has really
    /// progressed ([`KeyRecord::anchor_view`]).
    pub fn anchors_views(self) -> bool {
        matches!(
            self,
            Kind::QuorumVote
                | Kind::Vote2
                | Kind::TimeoutVote
                | Kind::TimeoutVote3
                | Kind::ViewSyncPrecommitVote
                | Kind::ViewSyncCommitVote
                | Kind::ViewSyncFinalizeVote
        )
    }

    /// Kinds whose view another node can choose (a DA proposal from a far-future leader, an
    /// upgrade proposal) or that a node signs for its own future leadership: refused more than
    /// the [`ViewHorizon`] above the key's anchor view.
    pub fn bounded_by_horizon(self) -> bool {
        matches!(
            self,
            Kind::DaVote
                | Kind::DaProposal
                | Kind::QuorumProposal
                | Kind::UpgradeVote
                | Kind::UpgradeProposal
                | Kind::VidDisperse
                | Kind::ReVoteRequest
                | Kind::UpgradeVote2
        )
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Kind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Kind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| format!("unknown espresso message kind {s:?}"))
    }
}

/// A position inside a slot: the view (for view-sync votes, the round) and the view-sync
/// relay (0 for every other kind). Ordered by view, then relay.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Position {
    /// View, or view-sync round.
    pub view: u64,
    /// View-sync relay; 0 otherwise.
    pub relay: u64,
}

/// A watermark slot: the last view signed and the message signed there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watermark {
    /// Last view signed.
    pub view: u64,
    /// The message signed at `view`.
    pub message: Digest,
}

/// A window slot: the messages signed at recent positions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// Newest view (or round) signed.
    pub newest_view: u64,
    /// Highest pruned position; nothing at or below it is signed again.
    pub floor: Option<Position>,
    /// Messages signed, by position; all above `floor` and within [`WINDOW`] of `newest_view`.
    #[serde(with = "entries")]
    pub signed: BTreeMap<Position, Digest>,
}

/// A slot's new content, carried by [`Verdict::Allow`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Slot {
    /// New content of a watermark slot.
    Watermark(Watermark),
    /// New content of a window slot.
    Window(Window),
    /// An unprotected kind: nothing to record.
    Unprotected,
}

/// Everything recorded for one key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// Watermark slots, by kind.
    pub watermarks: BTreeMap<Kind, Watermark>,
    /// Window slots, by kind.
    pub windows: BTreeMap<Kind, Window>,
}

impl KeyRecord {
    /// The highest view of the key's anchoring kinds ([`Kind::anchors_views`]), `None` before
    /// the key has signed any of them.
    pub fn anchor_view(&self) -> Option<u64> {
        let watermarks = self
            .watermarks
            .iter()
            .filter(|(kind, _)| kind.anchors_views())
            .map(|(_, w)| w.view);
        let windows = self
            .windows
            .iter()
            .filter(|(kind, _)| kind.anchors_views())
            .map(|(_, w)| w.newest_view);
        watermarks.chain(windows).max()
    }

    /// For a Vote2 (`kind`), the highest view the key sent a v3 timeout vote for: no new Vote2
    /// at or below it (HotShot's `timeout_vote_bar`). `None` for other kinds, or before any.
    pub fn vote2_bar(&self, kind: Kind) -> Option<u64> {
        match kind {
            Kind::Vote2 => self.windows.get(&Kind::TimeoutVote3).map(|w| w.newest_view),
            _ => None,
        }
    }
}

/// Every Espresso key's record.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EspressoState {
    /// Records by public key; a key appears once it has signed.
    pub keys: BTreeMap<PublicKeyBytes, KeyRecord>,
}

impl EspressoState {
    /// Evaluate a request against its key's record under the cluster's `horizon`, without
    /// changing anything. `Allow` carries the new content of the request's (key, kind) slot.
    pub fn evaluate(&self, intent: &EspressoIntent, horizon: ViewHorizon) -> Verdict<Slot> {
        self.evaluate_digest(intent, FixedBytes(intent.message()), horizon)
    }

    /// [`EspressoState::evaluate`] with the request's digest ([`EspressoIntent::message`])
    /// already computed: private, so that every digest given here is the request's own.
    fn evaluate_digest(
        &self,
        intent: &EspressoIntent,
        digest: Digest,
        horizon: ViewHorizon,
    ) -> Verdict<Slot> {
        let kind = intent.kind();
        let position = intent.position();
        let record = self.keys.get(&intent.public_key);
        if kind.bounded_by_horizon() {
            if let Some(anchor_view) = record.and_then(KeyRecord::anchor_view) {
                if position.view > anchor_view.saturating_add(horizon.views()) {
                    return Verdict::Deny(Violation::BeyondViewHorizon {
                        kind,
                        view: position.view,
                        anchor_view,
                        horizon: horizon.views(),
                    });
                }
            }
        }
        match kind.rule() {
            Rule::Watermark => {
                let prev = record.and_then(|r| r.watermarks.get(&kind));
                match evaluate_watermark(kind, prev, position.view, digest) {
                    Verdict::Allow { next } => Verdict::Allow {
                        next: Slot::Watermark(next),
                    },
                    Verdict::SameData => Verdict::SameData,
                    Verdict::Deny(v) => Verdict::Deny(v),
                }
            }
            Rule::Unprotected => Verdict::Allow {
                next: Slot::Unprotected,
            },
            Rule::Window => {
                let prev = record.and_then(|r| r.windows.get(&kind));
                match evaluate_window(kind, prev, position, digest) {
                    Verdict::Allow { next } => {
                        // A re-sign of a Vote2 signed before the timeout stays a re-sign.
                        if let Some(timeout_view) = record.and_then(|r| r.vote2_bar(kind)) {
                            if position.view <= timeout_view {
                                return Verdict::Deny(Violation::Vote2AfterTimeout {
                                    view: position.view,
                                    timeout_view,
                                });
                            }
                        }
                        Verdict::Allow {
                            next: Slot::Window(next),
                        }
                    }
                    Verdict::SameData => Verdict::SameData,
                    Verdict::Deny(v) => Verdict::Deny(v),
                }
            }
        }
    }

    /// Evaluate a request under the cluster's `horizon` and record it when it is new data
    /// that may be signed.
    pub fn decide(&mut self, intent: &EspressoIntent, horizon: ViewHorizon) -> Decision {
        self.decide_digest(intent, FixedBytes(intent.message()), horizon)
    }

    /// [`EspressoState::decide`] with the request's digest already computed
    /// ([`crate::protection::ProtectionState::decide`] computes it once for the rules and the
    /// audit record).
    pub(crate) fn decide_digest(
        &mut self,
        intent: &EspressoIntent,
        digest: Digest,
        horizon: ViewHorizon,
    ) -> Decision {
        match self.evaluate_digest(intent, digest, horizon) {
            Verdict::Allow { next } => {
                let kind = intent.kind();
                match next {
                    Slot::Watermark(w) => {
                        let record = self.keys.entry(intent.public_key).or_default();
                        record.watermarks.insert(kind, w);
                    }
                    Slot::Window(w) => {
                        let record = self.keys.entry(intent.public_key).or_default();
                        record.windows.insert(kind, w);
                    }
                    // Nothing recorded: not even an empty record for the key.
                    Slot::Unprotected => {}
                }
                Decision::Sign
            }
            Verdict::SameData => Decision::Resign,
            Verdict::Deny(v) => Decision::Refuse(v),
        }
    }
}

/// The watermark rule: may `digest` be signed at `view` after `prev`?
pub fn evaluate_watermark(
    kind: Kind,
    prev: Option<&Watermark>,
    view: u64,
    digest: Digest,
) -> Verdict<Watermark> {
    let next = Watermark {
        view,
        message: digest,
    };
    let Some(prev) = prev else {
        return Verdict::Allow { next };
    };
    if view < prev.view {
        return Verdict::Deny(Violation::ViewBelowWatermark {
            kind,
            view,
            last_view: prev.view,
            last_signed: prev.message,
        });
    }
    if view == prev.view {
        if prev.message == digest {
            return Verdict::SameData;
        }
        return Verdict::Deny(Violation::Equivocation {
            kind,
            view,
            signed: prev.message,
            requested: digest,
        });
    }
    Verdict::Allow { next }
}

/// The window rule: may `digest` be signed at `position` after `prev`?
pub fn evaluate_window(
    kind: Kind,
    prev: Option<&Window>,
    position: Position,
    digest: Digest,
) -> Verdict<Window> {
    let Some(prev) = prev else {
        return Verdict::Allow {
            next: Window {
                newest_view: position.view,
                floor: None,
                signed: BTreeMap::from([(position, digest)]),
            },
        };
    };
    if let Some(signed) = prev.signed.get(&position) {
        if *signed == digest {
            return Verdict::SameData;
        }
        return Verdict::Deny(Violation::Equivocation {
            kind,
            view: position.view,
            signed: *signed,
            requested: digest,
        });
    }
    let outside = Violation::OutsideWindow {
        kind,
        view: position.view,
        newest_view: prev.newest_view,
    };
    if position.view < prev.newest_view.saturating_sub(WINDOW) {
        return Verdict::Deny(outside);
    }
    if prev.floor.is_some_and(|floor| position <= floor) {
        return Verdict::Deny(outside);
    }
    let mut next = prev.clone();
    next.signed.insert(position, digest);
    next.newest_view = next.newest_view.max(position.view);
    prune(&mut next);
    Verdict::Allow { next }
}

/// Drop entries below the window and beyond the cap, raising `floor` past each one dropped.
fn prune(window: &mut Window) {
    let low = Position {
        view: window.newest_view.saturating_sub(WINDOW),
        relay: 0,
    };
    let kept = window.signed.split_off(&low);
    let dropped = std::mem::replace(&mut window.signed, kept);
    let mut highest_dropped = dropped.keys().next_back().copied();
    while window.signed.len() > MAX_WINDOW_ENTRIES {
        if let Some((position, _)) = window.signed.pop_first() {
            highest_dropped = Some(position);
        }
    }
    if let Some(dropped) = highest_dropped {
        window.floor = Some(window.floor.map_or(dropped, |floor| floor.max(dropped)));
    }
}

/// Serde for a window's map as a list of `{view, relay, message}` (JSON maps need string keys).
mod entries {
    use super::{Digest, Position};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::BTreeMap;

    #[derive(Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Entry {
        view: u64,
        relay: u64,
        message: Digest,
    }

    pub fn serialize<S: Serializer>(
        map: &BTreeMap<Position, Digest>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(map.iter().map(|(p, m)| Entry {
            view: p.view,
            relay: p.relay,
            message: *m,
        }))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<Position, Digest>, D::Error> {
        let list = Vec::<Entry>::deserialize(d)?;
        let mut map = BTreeMap::new();
        for e in list {
            let position = Position {
                view: e.view,
                relay: e.relay,
            };
            if map.insert(position, e.message).is_some() {
                return Err(serde::de::Error::custom("duplicate window position"));
            }
        }
        Ok(map)
    }
}

#[cfg(test)]
mod tests;
