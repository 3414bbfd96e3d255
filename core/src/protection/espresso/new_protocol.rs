//! HotShot's new consensus protocol (espresso-network `crates/hotshot/new-protocol`, after its
//! cutover from the legacy tasks): the typed data of every message it has a BLS key sign that
//! the legacy types in [`super::message`] do not cover, and the exact bytes each one signs.
//!
//! Owns: [`Vote2Data`], [`TimeoutData3`] (with [`LockView`]), [`UpgradeProposalData2`],
//! [`ReVoteRequest`], [`NewProtocolLeaf`] and the retired [`CheckpointData`], each with its
//! `commit()` and the bytes signed. Must not: decide whether a message may be signed (the
//! parent module's rules, see "Protection" below), sign, do IO, or accept a digest in place of
//! typed data.
//!
//! # What the new protocol signs
//! `V(d, v)` is [`vote_commitment`]: `Keccak("Vote"· u64le(32) ‖ d ‖ u64le(v))`, `s·` is
//! `s ‖ C0 7F`. Sources: espresso-network `crates/hotshot/types/src/simple_vote.rs` @
//! `30f658c0`, `simple_certificate/timeout3.rs` @ `30f658c0`, `new-protocol/src/message.rs`
//! (the stored version with `TimeoutVoteMessage3` and `ReVote`), `new-protocol/src/consensus.rs`
//! (stored versions with `voted_1_views: BTreeSet<ViewEpoch>` and `send_timeout_vote3`),
//! `types/src/new_protocol/proposal.rs` @ `f317e38e`, `types/src/data.rs` @ `935a4c59`.
//! - **Vote1**: a `QuorumVote2` over `QuorumData2 { leaf, Some(epoch), Some(block) }`:
//!   the legacy quorum vote's bytes exactly ([`super::message::QuorumData`]); no new type.
//! - **Vote2**: `V(Vote2Data.commit(), view)`, `"Vote2Data"· var(leaf) u64(epoch) u64(block)
//!   "Vote2"·` — no field names, epoch and block not optional ([`Vote2Data`]).
//! - **Timeout, before `TIMEOUT_EPOCH_VERSION`**: `TimeoutVote2`, the legacy timeout vote's
//!   bytes (the epoch is not hashed).
//! - **Timeout, from `TIMEOUT_EPOCH_VERSION`**: `V(TimeoutData3.commit(), view)`, binding the
//!   epoch and the signer's lock ([`TimeoutData3`]).
//! - **Proposal**: `Leaf2::commit()` of the leaf `Leaf2::from(Proposal)` builds: always
//!   `with_epoch`, and `next_epoch_justify_qc` is set to `None` by the conversion, so the
//!   boundary `Certificate2` a proposal carries is **not** covered by its signature
//!   ([`NewProtocolLeaf`]).
//! - **Re-vote request** (leader): `ReVote.commit()` signed as is, not wrapped in a vote
//!   ([`ReVoteRequest`]).
//! - **Upgrade vote**: `V(UpgradeProposalData2.commit(), view)` ([`UpgradeProposalData2`]).
//! - **Checkpoint vote** (an early revision only, since removed): `V(CheckpointData.commit(),
//!   view)` ([`CheckpointData`]).
//! - Also signed, unchanged from the legacy protocol: VID shares (the payload commitment) and
//!   proposal fetch requests.
//!
//! # Protection (for the parent module's rules)
//! HotShot's honest node keeps `voted_1_views`, `voted_2_views`, `proposed_views` and
//! `sent_timeout_votes` keyed by `(view, epoch)`: it casts at most one of each per view and
//! epoch, and at an epoch boundary (a re-vote view, or a view relabelled by an epoch change)
//! it may cast one in each of two epochs. A Vote1 for a rival proposal and a Vote2 for the
//! decided one in the same view are honest (different kinds, different data tags). After a
//! `TimeoutVote3` at view `v` it never casts a Vote2 at a view `<= v` (`timeout_vote_bar`).
//! The signer gives Vote2, the v3 timeout vote, the upgrade vote and the re-vote request each
//! a slot keyed by (view, epoch). A proposal goes in the quorum-proposal slot, keyed by view
//! alone: its signed leaf commitment does not bind the epoch, so a second proposal for the
//! same view in another epoch could not be told from a double proposal, and is refused.
//!
//! To ensure correctness:
//! - each layout follows the source text: field order, tags, `u64` vs `u64_field`, and the
//!   explicit `0`/`1` discriminant of the timeout lock;
//! - every commitment here is checked against `tests/vectors/espresso/new_protocol.json`,
//!   computed by an independent Python implementation (`new_protocol_ref.py`) written from
//!   HotShot's source text, with signatures by the reference BLS implementation.

use super::committable::Builder;
use super::leaf::{
    DrbResult, EpochFields, LeafLayout, ProposedLeaf, VersionedLeaf, ViewChangeEvidence,
};
use super::message::{vote_commitment, Commitment, HexBytes, Version};
use serde::{Deserialize, Serialize};

/// HotShot `Vote2Data`: what a Vote2 (the second-phase vote, which locks and commits) signs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vote2Data {
    /// Commitment of the leaf voted for (`Leaf2::commit()`).
    pub leaf_commit: Commitment,
    /// Epoch of the leaf.
    pub epoch: u64,
    /// Block number of the leaf.
    pub block_number: u64,
}

impl Vote2Data {
    /// HotShot `Vote2Data::commit()`.
    pub fn commit(&self) -> [u8; 32] {
        Builder::new("Vote2Data")
            .var_size_bytes(&self.leaf_commit.0)
            .u64(self.epoch)
            .u64(self.block_number)
            .constant_str("Vote2")
            .finalize()
    }

    /// The bytes a Vote2 cast in `view` signs.
    pub fn signing_message(&self, view: u64) -> [u8; 32] {
        vote_commitment(&self.commit(), view)
    }
}

/// HotShot `CheckpointData`, from an early revision of the new protocol
/// (`ConsensusMessage::Checkpoint(CheckpointVote)`); later revisions dropped it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointData {
    /// View checkpointed.
    pub view: u64,
    /// Epoch.
    pub epoch: u64,
}

impl CheckpointData {
    /// HotShot `CheckpointData::commit()`.
    pub fn commit(&self) -> [u8; 32] {
        Builder::new("CheckpointData")
            .u64(self.view)
            .u64(self.epoch)
            .finalize()
    }

    /// The bytes a checkpoint vote cast in `view` signs.
    pub fn signing_message(&self, view: u64) -> [u8; 32] {
        vote_commitment(&self.commit(), view)
    }
}

/// HotShot `LockView`: where a lock (a `Certificate1`) sits, ordered by epoch, then view.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockView {
    /// Epoch of the locked certificate's data.
    pub epoch: u64,
    /// View of the locked certificate.
    pub view: u64,
}

/// HotShot `TimeoutData3`: a timeout vote that binds the epoch and the signer's lock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeoutData3 {
    /// View timed out (also the vote's view).
    pub view: u64,
    /// Epoch the signer holds for that view.
    pub epoch: u64,
    /// The signer's lock; `None` while it is locked on nothing but genesis.
    #[serde(default)]
    pub lock: Option<LockView>,
}

impl TimeoutData3 {
    /// HotShot `TimeoutData3::commit()`.
    pub fn commit(&self) -> [u8; 32] {
        let b = Builder::new("Timeout data v3")
            .u64_field("view number", self.view)
            .u64_field("epoch number", self.epoch);
        match self.lock {
            None => b.u64_field("lock", 0),
            Some(lock) => b
                .u64_field("lock", 1)
                .u64_field("lock epoch", lock.epoch)
                .u64_field("lock view", lock.view),
        }
        .finalize()
    }

    /// The bytes the vote signs: HotShot builds it for the view it times out.
    pub fn signing_message(&self) -> [u8; 32] {
        vote_commitment(&self.commit(), self.view)
    }
}

/// HotShot `UpgradeProposalData2`: an upgrade vote that binds the epoch whose stake table
/// tallies it. Not the same layout as [`super::message::UpgradeData::V2`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpgradeProposalData2 {
    /// Version upgraded from.
    pub old_version: Version,
    /// Version upgraded to.
    pub new_version: Version,
    /// Last view in which the upgrade may be decided.
    pub decide_by: u64,
    /// Identifier of the new protocol.
    pub new_version_hash: HexBytes,
    /// Last view of the old version.
    pub old_version_last_view: u64,
    /// First view of the new version.
    pub new_version_first_view: u64,
    /// Epoch whose stake table tallies the votes.
    pub epoch: u64,
}

impl UpgradeProposalData2 {
    /// HotShot `UpgradeProposalData2::commit()`.
    pub fn commit(&self) -> [u8; 32] {
        Builder::new("Upgrade data v2")
            .u64(self.decide_by)
            .u64(self.new_version_first_view)
            .u64(self.old_version_last_view)
            .var_size_bytes(&self.new_version_hash.0)
            .u16(self.new_version.minor)
            .u16(self.new_version.major)
            .u16(self.old_version.minor)
            .u16(self.old_version.major)
            .u64_field("epoch number", self.epoch)
            .finalize()
    }

    /// The bytes an upgrade vote cast in `view` signs.
    pub fn signing_message(&self, view: u64) -> [u8; 32] {
        vote_commitment(&self.commit(), view)
    }
}

/// HotShot `ReVote`: a leader's request that the committee vote again on its epoch's last
/// block. The leader signs [`ReVoteRequest::commit`] as is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReVoteRequest {
    /// View of the re-vote.
    pub view: u64,
    /// Epoch whose last block is voted on.
    pub epoch: u64,
    /// Commitment of the block's own `Certificate1` (`QuorumCertificate2::commit()`).
    pub cert1_commit: Commitment,
    /// Commitment of the `TimeoutCertificate3` for the view before, if attached.
    #[serde(default)]
    pub timeout_cert_commit: Option<Commitment>,
}

impl ReVoteRequest {
    /// HotShot `ReVote::commit()`: the bytes the leader signs.
    pub fn commit(&self) -> [u8; 32] {
        Builder::new("Re-vote request")
            .u64_field("view number", self.view)
            .u64_field("epoch number", self.epoch)
            .field("certificate1", &self.cert1_commit)
            .optional("timeout certificate", self.timeout_cert_commit.as_ref())
            .finalize()
    }
}

/// The timeout certificate a new-protocol proposal may carry, as its commitment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum TimeoutEvidence {
    /// `TimeoutCertificate2::commit()` (hashed as `"timeout cert"`).
    TimeoutCert(Commitment),
    /// `TimeoutCertificate3::commit()` (hashed as `"timeout cert v3"`).
    TimeoutCertV3(Commitment),
}

/// A new-protocol `Proposal`, as the parts of the `Leaf2` it converts to that
/// `Leaf2::commit()` covers. The leader signs [`NewProtocolLeaf::commit`].
///
/// The conversion always sets `with_epoch` and drops `next_epoch_justify_qc`, so neither the
/// epoch number nor the boundary `Certificate2` is part of the signed bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewProtocolLeaf {
    /// View of the proposal.
    pub view: u64,
    /// The parent leaf's commitment: `justify_qc.data.leaf_commit`.
    pub parent_leaf: Commitment,
    /// The block header's commitment (`Header::commit()`).
    pub block_header_commit: Commitment,
    /// The justify QC's commitment (`QuorumCertificate2::commit()`).
    pub justify_qc_commit: Commitment,
    /// The attached upgrade certificate's commitment, if any.
    #[serde(default)]
    pub upgrade_certificate_commit: Option<Commitment>,
    /// The next epoch's DRB result, if any.
    #[serde(default)]
    pub next_drb_result: Option<DrbResult>,
    /// The timeout certificate justifying the view change, if any.
    #[serde(default)]
    pub view_change_evidence: Option<TimeoutEvidence>,
}

impl NewProtocolLeaf {
    /// The `Leaf2` this proposal converts to, under [`LeafLayout::NewProtocol`] (the form a
    /// quorum proposal request carries; by construction it has the fields that layout hashes).
    pub fn to_leaf(&self) -> VersionedLeaf {
        let leaf = ProposedLeaf {
            view: self.view,
            parent_leaf: self.parent_leaf,
            block_header_commit: self.block_header_commit,
            justify_qc_commit: self.justify_qc_commit,
            upgrade_certificate_commit: self.upgrade_certificate_commit,
            with_epoch: Some(EpochFields {
                next_epoch_justify_qc_commit: None,
                next_drb_result: self.next_drb_result,
                view_change_evidence: self.view_change_evidence.map(|e| match e {
                    TimeoutEvidence::TimeoutCert(c) => ViewChangeEvidence::TimeoutCert(c),
                    TimeoutEvidence::TimeoutCertV3(c) => ViewChangeEvidence::TimeoutCertV3(c),
                }),
            }),
        };
        VersionedLeaf::from_checked(LeafLayout::NewProtocol, leaf)
    }

    /// `Leaf2::from(proposal).commit()`: the bytes the proposal's signature covers.
    pub fn commit(&self) -> [u8; 32] {
        self.to_leaf().commit()
    }
}

#[cfg(test)]
mod tests;
