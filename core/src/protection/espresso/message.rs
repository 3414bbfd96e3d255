//! Typed HotShot consensus messages and the exact 32 bytes each one has the BLS key sign.
//!
//! Owns: [`Message`] and its data types, the byte layouts of HotShot's vote data
//! (`crates/hotshot/types/src/simple_vote.rs`, built with [`super::committable`]), and the
//! `COMMIT~…` text form of commitments. Must not: decide whether a message may be signed
//! (that is the parent module), sign, or accept a raw digest in place of typed data.
//!
//! What is signed (see `tests/vectors/espresso/NOTES.md` §3):
//! - every vote: `Keccak256("Vote" ‖ C0 7F ‖ u64le(32) ‖ DATA.commit() ‖ u64le(view))`, the
//!   commitment of HotShot's `VersionedVoteData` (its `version` field is not hashed);
//! - a quorum proposal: HotShot's `Leaf2::commit()`, computed here from the typed leaf fields
//!   ([`super::leaf`]); no client-given digest is ever signed as is;
//! - an upgrade proposal: `UpgradeProposalData.commit()` (or `UpgradeData2`'s) as is;
//! - a DA proposal: `Sha256(encoded_transactions)`, computed by the signer when it converts the
//!   request ([`TransactionsDigest::compute`]); only the digest enters the message (and so the
//!   replicated log), never the payload.
//!
//! To ensure correctness:
//! - field order and optional fields follow HotShot exactly: an absent `Option` appends
//!   nothing, so v1 data (`QuorumData`, `DaData`, `ViewSync*Data`) is v2 data with `None`s;
//! - `NextEpochQuorumData2` hashes exactly as `QuorumData2`; a timeout's epoch is not hashed;
//! - a view-sync vote's view is its round, as HotShot creates it;
//! - known answers from real HotShot artifacts are checked in `message/tests.rs` and in the
//!   vector harness (`tests/tests/espresso_vectors.rs`).

use super::committable::Builder;
use super::leaf::ProposedLeaf;
use super::new_protocol::{ReVoteRequest, TimeoutData3, UpgradeProposalData2, Vote2Data};
use super::request::Request;
use super::vid::VidCommitment;
use super::Kind;
use crate::bytes::FixedBytes;
use crate::scheme::bn254::tagged;
use crate::scheme::SchemeError;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A 32-byte commitment (leaf, payload or vote), `0x`-hex in JSON.
pub type Commitment = FixedBytes<32>;

/// Tag of commitments in Espresso's tagged-base64 text form.
pub const COMMIT_TAG: &str = "COMMIT";

/// `COMMIT~…` for a commitment.
pub fn commitment_to_tagged(c: &Commitment) -> String {
    tagged::encode(COMMIT_TAG, &c.0)
}

/// Parse `COMMIT~…` (exactly 32 bytes).
pub fn commitment_from_tagged(text: &str) -> Result<Commitment, SchemeError> {
    let bytes = tagged::decode(text, COMMIT_TAG)?;
    FixedBytes::from_slice(&bytes).map_err(|e| SchemeError::Encoding(format!("commitment: {e}")))
}

/// Parse a commitment given as `COMMIT~…` or as (optionally `0x`-prefixed) hex. VID payload
/// commitments, which upstream tags `HASH~` or `AvidMCommit~`, are given as hex.
pub fn parse_commitment(text: &str) -> Result<Commitment, SchemeError> {
    if text.contains('~') {
        commitment_from_tagged(text)
    } else {
        FixedBytes::from_hex(text).map_err(|e| SchemeError::Encoding(format!("commitment: {e}")))
    }
}

/// Variable-length bytes, `0x`-hex in JSON.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct HexBytes(pub Vec<u8>);

impl std::fmt::Debug for HexBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "0x{}", hex::encode(&self.0))
    }
}

impl Serialize for HexBytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        crate::bytes::hex_or_raw::serialize(&self.0, s)
    }
}

impl<'de> Deserialize<'de> for HexBytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::bytes::hex_or_raw::deserialize(d).map(HexBytes)
    }
}

/// Data of a quorum vote: HotShot `QuorumData` (v1: both options `None`) or `QuorumData2`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuorumData {
    /// Commitment of the leaf voted for.
    pub leaf_commit: Commitment,
    /// Epoch of the leaf (v2).
    #[serde(default)]
    pub epoch: Option<u64>,
    /// Block number of the leaf (v2).
    #[serde(default)]
    pub block_number: Option<u64>,
}

/// Data of a DA vote: HotShot `DaData` (v1: both options `None`) or `DaData2`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaData {
    /// VID commitment of the block payload (32 bytes, V0 or V1 VID).
    pub payload_commit: Commitment,
    /// VID commitment computed for the next epoch's stake table (v2, epoch transitions).
    #[serde(default)]
    pub next_epoch_payload_commit: Option<Commitment>,
    /// Epoch (v2).
    #[serde(default)]
    pub epoch: Option<u64>,
}

/// A protocol version, as in `vbs::version::Version`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Version {
    /// Major version.
    pub major: u16,
    /// Minor version.
    pub minor: u16,
}

/// Data of an upgrade vote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum UpgradeData {
    /// HotShot `UpgradeProposalData` (votes of `UpgradeVote`).
    V1 {
        /// Version upgraded from.
        old_version: Version,
        /// Version upgraded to.
        new_version: Version,
        /// Last view in which the upgrade may be decided.
        decide_by: u64,
        /// Identifier of the new protocol.
        new_version_hash: HexBytes,
        /// Last view of the old version.
        old_version_last_view: u64,
        /// First view of the new version.
        new_version_first_view: u64,
    },
    /// HotShot `UpgradeData2` (votes of `UpgradeVote2`).
    V2 {
        /// Version upgraded from.
        old_version: Version,
        /// Version upgraded to.
        new_version: Version,
        /// Identifier of the new protocol.
        hash: HexBytes,
        /// First epoch of the new version.
        #[serde(default)]
        epoch: Option<u64>,
    },
}

/// The three view-sync phases; each is its own vote kind with its own commitment tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ViewSyncPhase {
    /// `ViewSyncPreCommitVote`.
    PreCommit,
    /// `ViewSyncCommitVote`.
    Commit,
    /// `ViewSyncFinalizeVote`.
    Finalize,
}

impl ViewSyncPhase {
    fn tag(self) -> &'static str {
        match self {
            ViewSyncPhase::PreCommit => "View Sync Precommit",
            ViewSyncPhase::Commit => "View Sync Commit",
            ViewSyncPhase::Finalize => "View Sync Finalize",
        }
    }
}

/// A typed message for the BLS consensus key to sign.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Message {
    /// `QuorumVote` / `QuorumVote2`.
    QuorumVote {
        /// View voted in.
        view: u64,
        /// What is voted for.
        data: QuorumData,
    },
    /// `NextEpochQuorumVote2`: the same bytes as a quorum vote with the same data.
    NextEpochQuorumVote {
        /// View voted in.
        view: u64,
        /// What is voted for.
        data: QuorumData,
    },
    /// `DaVote` / `DaVote2`.
    DaVote {
        /// View voted in.
        view: u64,
        /// What is voted for.
        data: DaData,
    },
    /// `TimeoutVote` / `TimeoutVote2` for `view` (`TimeoutData{view}` voted in `view`).
    TimeoutVote {
        /// View that timed out.
        view: u64,
        /// Epoch (v2); carried, not hashed.
        #[serde(default)]
        epoch: Option<u64>,
    },
    /// `ViewSync{PreCommit,Commit,Finalize}Vote{,2}`, voted in view `round`.
    ViewSyncVote {
        /// Phase.
        phase: ViewSyncPhase,
        /// View being synchronized on (also the vote's view).
        round: u64,
        /// Relay index.
        relay: u64,
        /// Epoch (v2).
        #[serde(default)]
        epoch: Option<u64>,
    },
    /// `UpgradeVote` / `UpgradeVote2`.
    UpgradeVote {
        /// View voted in.
        view: u64,
        /// The upgrade voted for.
        data: UpgradeData,
    },
    /// A quorum proposal: the leader signs `Leaf2::from_quorum_proposal(&proposal).commit()`,
    /// which the signer computes from these fields (boxed: it is the largest message).
    QuorumProposal(Box<ProposedLeaf>),
    /// A DA proposal: the leader signs `Sha256(encoded_transactions)`. The signed bytes do not
    /// include the view (HotShot's design), so the signature fits any view with this payload.
    DaProposal {
        /// View of the proposal.
        view: u64,
        /// SHA-256 of the request's encoded transactions, computed by the signer.
        computed_transactions_sha256: TransactionsDigest,
    },
    /// A leader's upgrade proposal: HotShot signs `UpgradeProposalData.commit()` itself, not a
    /// vote commitment over it (`task-impls/src/upgrade.rs`). The signed bytes do not include
    /// the view, so the signature fits any view proposing the same upgrade.
    UpgradeProposal {
        /// View of the proposal.
        view: u64,
        /// The upgrade proposed.
        data: UpgradeData,
    },
    /// A VID disperse (the leader) or VID share (a DA member re-dispersing): HotShot signs the
    /// payload commitment's 32 bytes, which the signer computes from the payload, namespace
    /// table and total weight when it converts the request ([`super::vid::payload_commitment`]);
    /// only the commitment enters the message. Like a DA proposal's, the signed bytes do not
    /// include the view.
    VidDisperse {
        /// View of the disperse.
        view: u64,
        /// The payload commitment, computed by the signer.
        computed_payload_commitment: VidCommitment,
    },
    /// A request to peers or builders, or a network authentication: not a consensus message,
    /// never compared by the protection rules (HotShot re-signs these freely). Its bytes are
    /// built by [`Request::signed_bytes`] and are never 32 bytes a consensus kind signs (see
    /// [`super::request`]).
    Request(Request),
    /// The new protocol's Vote2 (the second-phase vote, which locks and commits), voted in
    /// `view`: `V(Vote2Data.commit(), view)`. Its own slot, keyed by view and epoch: an honest
    /// node casts a Vote1 (a quorum vote) for a rival proposal and a Vote2 for the decided one
    /// in the same view, and at an epoch boundary one Vote2 in each of two epochs.
    Vote2 {
        /// View voted in.
        view: u64,
        /// What is voted for.
        data: Vote2Data,
    },
    /// The new protocol's timeout vote from `TIMEOUT_EPOCH_VERSION` on:
    /// `V(TimeoutData3.commit(), view)`, binding the epoch and the voter's lock. Its own slot,
    /// keyed by view and epoch (the legacy form stays [`Message::TimeoutVote`]).
    TimeoutVote3(TimeoutData3),
    /// The new protocol's re-vote request (a leader asks its committee to vote again on its
    /// epoch's last block): `ReVote.commit()`, signed as is. Its own slot, keyed by view and
    /// epoch: one request per view and epoch.
    ReVoteRequest(ReVoteRequest),
    /// The new protocol's upgrade vote: `V(UpgradeProposalData2.commit(), view)`, binding the
    /// epoch whose stake table tallies it. Its own slot, keyed by view and epoch (the legacy
    /// form stays [`Message::UpgradeVote`]).
    UpgradeVote2 {
        /// View voted in.
        view: u64,
        /// The upgrade voted for.
        data: UpgradeProposalData2,
    },
}

/// SHA-256 of a DA proposal's encoded transactions, computed by the signer from the payload
/// ([`TransactionsDigest::compute`]). It deserializes only to read back replicated state; no
/// request carries one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TransactionsDigest(Commitment);

impl TransactionsDigest {
    /// `Sha256(encoded_transactions)`.
    pub fn compute(encoded_transactions: &[u8]) -> Self {
        use sha2::Digest as _;
        TransactionsDigest(FixedBytes(
            sha2::Sha256::digest(encoded_transactions).into(),
        ))
    }

    /// The 32 digest bytes.
    pub fn bytes(&self) -> [u8; 32] {
        self.0 .0
    }
}

impl Message {
    /// A quorum proposal of this leaf.
    pub fn quorum_proposal(leaf: ProposedLeaf) -> Self {
        Message::QuorumProposal(Box::new(leaf))
    }

    /// A DA proposal for `view` of these encoded transactions: the signer hashes them here.
    pub fn da_proposal(view: u64, encoded_transactions: &[u8]) -> Self {
        Message::DaProposal {
            view,
            computed_transactions_sha256: TransactionsDigest::compute(encoded_transactions),
        }
    }

    /// The protection slot this message belongs to.
    pub fn kind(&self) -> Kind {
        match self {
            Message::QuorumVote { .. } | Message::NextEpochQuorumVote { .. } => Kind::QuorumVote,
            Message::DaVote { .. } => Kind::DaVote,
            Message::TimeoutVote { .. } => Kind::TimeoutVote,
            Message::ViewSyncVote { phase, .. } => match phase {
                ViewSyncPhase::PreCommit => Kind::ViewSyncPrecommitVote,
                ViewSyncPhase::Commit => Kind::ViewSyncCommitVote,
                ViewSyncPhase::Finalize => Kind::ViewSyncFinalizeVote,
            },
            Message::UpgradeVote { .. } => Kind::UpgradeVote,
            Message::QuorumProposal(_) => Kind::QuorumProposal,
            Message::DaProposal { .. } => Kind::DaProposal,
            Message::UpgradeProposal { .. } => Kind::UpgradeProposal,
            Message::VidDisperse { .. } => Kind::VidDisperse,
            Message::Request(r) => Kind::of_request(r),
            Message::Vote2 { .. } => Kind::Vote2,
            Message::TimeoutVote3(_) => Kind::TimeoutVote3,
            Message::ReVoteRequest(_) => Kind::ReVoteRequest,
            Message::UpgradeVote2 { .. } => Kind::UpgradeVote2,
        }
    }

    /// The view the message is signed for (for view-sync votes: the round).
    pub fn view(&self) -> u64 {
        match *self {
            Message::QuorumVote { view, .. }
            | Message::NextEpochQuorumVote { view, .. }
            | Message::DaVote { view, .. }
            | Message::TimeoutVote { view, .. }
            | Message::UpgradeVote { view, .. }
            | Message::DaProposal { view, .. }
            | Message::UpgradeProposal { view, .. }
            | Message::VidDisperse { view, .. }
            | Message::Vote2 { view, .. }
            | Message::UpgradeVote2 { view, .. } => view,
            Message::TimeoutVote3(ref t) => t.view,
            Message::ReVoteRequest(ref r) => r.view,
            Message::QuorumProposal(ref leaf) => leaf.view,
            Message::ViewSyncVote { round, .. } => round,
            Message::Request(ref r) => r.view().unwrap_or(0),
        }
    }

    /// The second coordinate of the message's position: the view-sync relay; the epoch of the
    /// new protocol's Vote2, timeout and upgrade votes and re-vote requests (one per view and
    /// epoch); 0 for every other.
    pub fn relay(&self) -> u64 {
        match *self {
            Message::ViewSyncVote { relay, .. } => relay,
            Message::Vote2 { ref data, .. } => data.epoch,
            Message::TimeoutVote3(ref t) => t.epoch,
            Message::ReVoteRequest(ref r) => r.epoch,
            Message::UpgradeVote2 { ref data, .. } => data.epoch,
            _ => 0,
        }
    }

    /// For votes, `DATA.commit()`; `None` for proposals.
    pub fn data_commitment(&self) -> Option<[u8; 32]> {
        Some(match self {
            Message::QuorumVote { data, .. } | Message::NextEpochQuorumVote { data, .. } => {
                data.commit()
            }
            Message::DaVote { data, .. } => data.commit(),
            Message::TimeoutVote { view, .. } => timeout_data_commit(*view),
            Message::ViewSyncVote {
                phase,
                round,
                relay,
                epoch,
            } => view_sync_data_commit(*phase, *round, *relay, *epoch),
            Message::UpgradeVote { data, .. } => data.commit(),
            Message::QuorumProposal(_)
            | Message::DaProposal { .. }
            | Message::UpgradeProposal { .. }
            | Message::VidDisperse { .. }
            | Message::Request(_)
            | Message::ReVoteRequest(_) => return None,
            Message::Vote2 { data, .. } => data.commit(),
            Message::TimeoutVote3(t) => t.commit(),
            Message::UpgradeVote2 { data, .. } => data.commit(),
        })
    }

    /// The exact 32 bytes the BLS key signs for a consensus message; for a
    /// [`Message::Request`] (whose bytes depend on the signing key and are rarely 32 long),
    /// the digest that stands for it in the audit log ([`request_digest`]).
    pub fn signing_message(&self) -> [u8; 32] {
        match self {
            Message::QuorumVote { view, data } | Message::NextEpochQuorumVote { view, data } => {
                vote_commitment(&data.commit(), *view)
            }
            Message::DaVote { view, data } => vote_commitment(&data.commit(), *view),
            Message::TimeoutVote { view, .. } => {
                vote_commitment(&timeout_data_commit(*view), *view)
            }
            Message::ViewSyncVote {
                phase,
                round,
                relay,
                epoch,
            } => vote_commitment(
                &view_sync_data_commit(*phase, *round, *relay, *epoch),
                *round,
            ),
            Message::UpgradeVote { view, data } => vote_commitment(&data.commit(), *view),
            Message::QuorumProposal(leaf) => leaf.commit(),
            Message::DaProposal {
                computed_transactions_sha256,
                ..
            } => computed_transactions_sha256.bytes(),
            Message::UpgradeProposal { data, .. } => data.commit(),
            Message::VidDisperse {
                computed_payload_commitment,
                ..
            } => computed_payload_commitment.to_bytes(),
            Message::Request(r) => request_digest(r),
            Message::Vote2 { view, data } => vote_commitment(&data.commit(), *view),
            Message::TimeoutVote3(t) => t.signing_message(),
            Message::ReVoteRequest(r) => r.commit(),
            Message::UpgradeVote2 { view, data } => data.signing_message(*view),
        }
    }
}

/// The digest of a request message in the audit log: `SHA-256("quorum-signer espresso
/// request" ‖ C0 7F ‖ bincode(request))`. It identifies the typed request (kind and fields);
/// the bytes signed are [`Request::signed_bytes`] with the key. It is never compared by a
/// protection rule.
pub fn request_digest(request: &Request) -> [u8; 32] {
    use sha2::Digest as _;
    let mut hasher = sha2::Sha256::new();
    hasher.update(b"quorum-signer espresso request\xC0\x7F");
    // Serializing this plain data into a Vec cannot fail.
    hasher.update(bincode::serialize(request).unwrap_or_default());
    hasher.finalize().into()
}

impl QuorumData {
    /// HotShot `QuorumData{,2}::commit()`.
    pub fn commit(&self) -> [u8; 32] {
        let mut b = Builder::new("Quorum data").var_size_bytes(&self.leaf_commit.0);
        if let Some(epoch) = self.epoch {
            b = b.u64_field("epoch number", epoch);
        }
        if let Some(block_number) = self.block_number {
            b = b.u64_field("block number", block_number);
        }
        b.finalize()
    }
}

impl DaData {
    /// HotShot `DaData{,2}::commit()`.
    pub fn commit(&self) -> [u8; 32] {
        let mut b = Builder::new("DA data").var_size_bytes(&self.payload_commit.0);
        if let Some(next) = &self.next_epoch_payload_commit {
            b = b.var_size_bytes(&next.0);
        }
        if let Some(epoch) = self.epoch {
            b = b.u64_field("epoch number", epoch);
        }
        b.finalize()
    }
}

impl UpgradeData {
    /// HotShot `UpgradeProposalData::commit()` / `UpgradeData2::commit()`.
    pub fn commit(&self) -> [u8; 32] {
        match self {
            UpgradeData::V1 {
                old_version,
                new_version,
                decide_by,
                new_version_hash,
                old_version_last_view,
                new_version_first_view,
            } => Builder::new("Upgrade data")
                .u64(*decide_by)
                .u64(*new_version_first_view)
                .u64(*old_version_last_view)
                .var_size_bytes(&new_version_hash.0)
                .u16(new_version.minor)
                .u16(new_version.major)
                .u16(old_version.minor)
                .u16(old_version.major)
                .finalize(),
            UpgradeData::V2 {
                old_version,
                new_version,
                hash,
                epoch,
            } => {
                let mut b = Builder::new("Upgrade data")
                    .u16(old_version.minor)
                    .u16(old_version.major)
                    .u16(new_version.minor)
                    .u16(new_version.major)
                    .var_size_bytes(&hash.0);
                if let Some(epoch) = epoch {
                    b = b.u64_field("epoch number", *epoch);
                }
                b.finalize()
            }
        }
    }
}

/// HotShot `TimeoutData{,2}{view, ..}.commit()` (the epoch is not hashed).
pub fn timeout_data_commit(view: u64) -> [u8; 32] {
    Builder::new("Timeout data").u64(view).finalize()
}

/// HotShot `ViewSync{PreCommit,Commit,Finalize}Data{,2}::commit()`.
pub fn view_sync_data_commit(
    phase: ViewSyncPhase,
    round: u64,
    relay: u64,
    epoch: Option<u64>,
) -> [u8; 32] {
    let mut b = Builder::new(phase.tag()).u64(round).u64(relay);
    if let Some(epoch) = epoch {
        b = b.u64_field("epoch number", epoch);
    }
    b.finalize()
}

/// HotShot `VersionedVoteData{data, view}.commit()`: the bytes every vote signs.
pub fn vote_commitment(data_commit: &[u8; 32], view: u64) -> [u8; 32] {
    Builder::new("Vote")
        .var_size_bytes(data_commit)
        .u64(view)
        .finalize()
}

#[cfg(test)]
mod tests;
