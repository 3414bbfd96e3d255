//! Typed HotShot consensus messages and the exact 32 bytes each one has the BLS key sign.
//!
//! Owns: [`Message`] and its data types, the `committable` (Keccak-256 `RawCommitmentBuilder`)
//! byte layouts of HotShot's vote data (`crates/hotshot/types/src/simple_vote.rs`), and the
//! `COMMIT~…` text form of commitments. Must not: decide whether a message may be signed
//! (that is the parent module), sign, or accept a raw digest in place of typed data.
//!
//! What is signed (see `tests/vectors/espresso/NOTES.md` §3):
//! - every vote: `Keccak256("Vote" ‖ C0 7F ‖ u64le(32) ‖ DATA.commit() ‖ u64le(view))`, the
//!   commitment of HotShot's `VersionedVoteData` (its `version` field is not hashed);
//! - a quorum proposal: the proposed leaf's commitment, as given;
//! - a DA proposal: `Sha256(encoded_transactions)`.
//!
//! To ensure correctness:
//! - field order and optional fields follow HotShot exactly: an absent `Option` appends
//!   nothing, so v1 data (`QuorumData`, `DaData`, `ViewSync*Data`) is v2 data with `None`s;
//! - `NextEpochQuorumData2` hashes exactly as `QuorumData2`; a timeout's epoch is not hashed;
//! - a view-sync vote's view is its round, as HotShot creates it;
//! - known answers from real HotShot artifacts are checked in the tests below and in the
//!   vector harness (`tests/tests/espresso_vectors.rs`).

use super::Kind;
use crate::bytes::FixedBytes;
use crate::scheme::bn254::tagged;
use crate::scheme::SchemeError;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha3::{Digest, Keccak256};

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
        s.serialize_str(&format!("0x{}", hex::encode(&self.0)))
    }
}

impl<'de> Deserialize<'de> for HexBytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        hex::decode(text.strip_prefix("0x").unwrap_or(&text))
            .map(HexBytes)
            .map_err(serde::de::Error::custom)
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
    /// A quorum proposal: the leader signs the proposed leaf's commitment.
    QuorumProposal {
        /// View of the proposal.
        view: u64,
        /// `Leaf2::from_quorum_proposal(&proposal).commit()`.
        leaf_commit: Commitment,
    },
    /// A DA proposal: the leader signs `Sha256(encoded_transactions)`. The signed bytes do not
    /// include the view (HotShot's design), so the signature fits any view with this payload.
    DaProposal {
        /// View of the proposal.
        view: u64,
        /// The block payload's encoded transactions.
        encoded_transactions: HexBytes,
    },
}

impl Message {
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
            Message::QuorumProposal { .. } => Kind::QuorumProposal,
            Message::DaProposal { .. } => Kind::DaProposal,
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
            | Message::QuorumProposal { view, .. }
            | Message::DaProposal { view, .. } => view,
            Message::ViewSyncVote { round, .. } => round,
        }
    }

    /// The view-sync relay, 0 for every other message.
    pub fn relay(&self) -> u64 {
        match *self {
            Message::ViewSyncVote { relay, .. } => relay,
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
            Message::QuorumProposal { .. } | Message::DaProposal { .. } => return None,
        })
    }

    /// The exact 32 bytes the BLS key signs for this message.
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
            Message::QuorumProposal { leaf_commit, .. } => leaf_commit.0,
            Message::DaProposal {
                encoded_transactions,
                ..
            } => {
                use sha2::Digest as _;
                sha2::Sha256::digest(&encoded_transactions.0).into()
            }
        }
    }
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

/// `committable::RawCommitmentBuilder`: Keccak-256 over the appended fields.
struct Builder(Keccak256);

impl Builder {
    /// Strings are followed by `C0 7F`, which is not UTF-8, so no string runs into the next.
    const INVALID_UTF8: [u8; 2] = [0xC0, 0x7F];

    fn new(tag: &str) -> Self {
        Builder(Keccak256::new()).constant_str(tag)
    }
    fn constant_str(mut self, s: &str) -> Self {
        self.0.update(s.as_bytes());
        self.0.update(Self::INVALID_UTF8);
        self
    }
    fn u64(mut self, v: u64) -> Self {
        self.0.update(v.to_le_bytes());
        self
    }
    fn u16(mut self, v: u16) -> Self {
        self.0.update(v.to_le_bytes());
        self
    }
    fn var_size_bytes(self, bytes: &[u8]) -> Self {
        let mut b = self.u64(bytes.len() as u64);
        b.0.update(bytes);
        b
    }
    fn u64_field(self, name: &str, v: u64) -> Self {
        self.constant_str(name).u64(v)
    }
    fn finalize(self) -> [u8; 32] {
        self.0.finalize().into()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn tb(text: &str) -> Commitment {
        let (_, body) = text.split_once('~').unwrap();
        // Any tag: VID commitments come tagged HASH~ or AvidMCommit~ upstream.
        let tag = &text[..text.len() - body.len() - 1];
        FixedBytes::from_slice(&tagged::decode(text, tag).unwrap()).unwrap()
    }

    fn commit(text: &str) -> [u8; 32] {
        commitment_from_tagged(text).unwrap().0
    }

    fn quorum(leaf: Commitment) -> QuorumData {
        QuorumData {
            leaf_commit: leaf,
            epoch: None,
            block_number: None,
        }
    }

    /// Commitments computed by HotShot itself: espresso-network `data/v3/messages.json` and
    /// `data/v4/messages.json` (their non-QC certificates carry `DATA.commit()`), and the
    /// Go SDK's `SampleDecideEvent` (QC vote commitments for views 12 and 13).
    #[test]
    fn known_answers_from_hotshot_artifacts() {
        let qc = |leaf: &str, view: u64| {
            Message::QuorumVote {
                view,
                data: quorum(tb(leaf)),
            }
            .signing_message()
        };
        assert_eq!(
            qc("COMMIT~OUewM-hz-K-l-DFmcV6z0nMfdXOSmDWnTJkwh84nJrbm", 0),
            commit("COMMIT~fUGx5alsxH5Ea5KWp3I8HE5fv9CZJ9JfOGD7eaHMsuQp")
        );
        assert_eq!(
            qc("COMMIT~i2SxNYKSPOMgJESvXkqaLARoKZlpMGdLu58mInqhV84I", 0),
            commit("COMMIT~RyNE-puBAgFcsQf83iOEawniSnfIpqTQJO0z7auaTapF")
        );
        assert_eq!(
            qc("COMMIT~zaORMZWZIlnqu00P22csaMNcTplixSCL0AmihTBlyyTG", 12),
            commit("COMMIT~ksmmmukO_YhmfY6i5Iz9YdRkFEqCizB9ZlupwVT4bsgZ")
        );
        assert_eq!(
            qc("COMMIT~zDQj9T-fNklWU9VpkdYCE3n6vsf697rt8_uHDwgyving", 13),
            commit("COMMIT~Wwdd_O5aIONcAtJDlPmi9Gnv4MCrqU_Qaik9A4yz-gU_")
        );
        assert_eq!(
            timeout_data_commit(0),
            commit("COMMIT~TZG1F34lxU6Ny9aKQMkjZAxjW9zotdwW75EHEGbyALOi")
        );
        let upgrade = UpgradeData::V1 {
            old_version: Version { major: 0, minor: 1 },
            new_version: Version { major: 1, minor: 0 },
            decide_by: 0,
            new_version_hash: HexBytes(vec![]),
            old_version_last_view: 0,
            new_version_first_view: 0,
        };
        assert_eq!(
            upgrade.commit(),
            commit("COMMIT~roiQgLLeI4uYqYxjz-0jPwtLyNhSlnfriPEVZ-_4RUrW")
        );
        for (phase, want) in [
            (
                ViewSyncPhase::PreCommit,
                "COMMIT~OQecZxfFpuEuPJgkpsQoglnqY0fm6Qi1PUarYCgiFQ0T",
            ),
            (
                ViewSyncPhase::Commit,
                "COMMIT~POgBCaDjtUV3Il5-FXVr5KN2KzYSgipfKX6Ci0-nxduO",
            ),
            (
                ViewSyncPhase::Finalize,
                "COMMIT~s5i9wmQWH7VU90CUiEWRdAG19LI1iXydSMxp9gZ7kHco",
            ),
        ] {
            assert_eq!(view_sync_data_commit(phase, 0, 0, None), commit(want));
        }
        for (payload, want) in [
            (
                "HASH~AazstQer_ho1SqgGT0r10_Gs0BnjfbPBHJdSO3HHbp29",
                "COMMIT~5E3F3rC4E9DBhMBqOTmjZ9tjX4VFaV5gqrZJl0y6V05D",
            ),
            (
                "AvidMCommit~8JNU_HGmIatiu1NdaEgDp-VIdiHrlYRz49Cq6TE3kzZf",
                "COMMIT~4qkiRH2C08kWy9Xa9AY0-2wjtDeQLalsADG0ZlzAu66R",
            ),
        ] {
            let data = DaData {
                payload_commit: tb(payload),
                next_epoch_payload_commit: None,
                epoch: None,
            };
            assert_eq!(data.commit(), commit(want));
        }
    }

    /// Epoch-era (v2) layouts, against an independent Python computation of the same
    /// `committable` rules (the same values are in `tests/vectors/espresso/vectors.json`).
    #[test]
    fn known_answers_for_v2_layouts() {
        let leaf = FixedBytes(std::array::from_fn(|i| i as u8));
        let payload = FixedBytes(std::array::from_fn(|i| 32 + i as u8));
        let next = FixedBytes(std::array::from_fn(|i| 64 + i as u8));
        let v3 = Version { major: 0, minor: 3 };
        let v4 = Version { major: 0, minor: 4 };
        let hash = HexBytes(vec![0xaa, 0xbb, 0xcc]);
        let q = |epoch, block_number| QuorumData {
            leaf_commit: leaf,
            epoch,
            block_number,
        };
        let d = |next_epoch_payload_commit| DaData {
            payload_commit: payload,
            next_epoch_payload_commit,
            epoch: Some(7),
        };
        let vs = |phase| Message::ViewSyncVote {
            phase,
            round: 1003,
            relay: 2,
            epoch: Some(7),
        };
        let cases: Vec<(Message, &str)> = vec![
            (
                Message::QuorumVote {
                    view: 1000,
                    data: q(Some(7), Some(1234)),
                },
                "b7e9785cd4b1ad4fca7a236f964873d9562dcebd85aaca99c1734092aab64df8",
            ),
            (
                Message::NextEpochQuorumVote {
                    view: 1000,
                    data: q(Some(7), Some(1234)),
                },
                "b7e9785cd4b1ad4fca7a236f964873d9562dcebd85aaca99c1734092aab64df8",
            ),
            (
                Message::QuorumVote {
                    view: 1000,
                    data: q(Some(7), None),
                },
                "ca68e939bdc9b3ab749145add800d56eb8c6eb1b0fc18c7cdc13e7188cdb8d80",
            ),
            (
                Message::QuorumVote {
                    view: 1000,
                    data: q(None, Some(1234)),
                },
                "2d82deef5ff0b1c2f4e4d58e5759cc2d4e4cac3e5d6e46998f907a9e964f78a6",
            ),
            (
                Message::DaVote {
                    view: 1001,
                    data: d(Some(next)),
                },
                "f315f4d125be08bf390076e91d3aba6b1b4546562dae2e6e396c4275e23581d2",
            ),
            (
                Message::DaVote {
                    view: 1001,
                    data: d(None),
                },
                "d7e044796155d999308d84713653a6c694393b6451bb93bf4e84c09fa3bef92b",
            ),
            (
                Message::TimeoutVote {
                    view: 1002,
                    epoch: Some(7),
                },
                "f27852459c7d67cbe5954e1d7e99896390470c8735f1b8acd27c06d55b075461",
            ),
            (
                Message::TimeoutVote {
                    view: 1002,
                    epoch: None,
                },
                "f27852459c7d67cbe5954e1d7e99896390470c8735f1b8acd27c06d55b075461",
            ),
            (
                vs(ViewSyncPhase::PreCommit),
                "c43662ff8efe30acc35e6945923d498191f0a939ec09c0b180372e6200b46f24",
            ),
            (
                vs(ViewSyncPhase::Commit),
                "3fd95d85e215525b784c1b92bf5bbb710645e864339ce2bea45210011b3f5f4b",
            ),
            (
                vs(ViewSyncPhase::Finalize),
                "8a56312ee1c1db2d433d2c6b8e67760463b566b9c766db4a1dc4ccae5616c015",
            ),
            (
                Message::UpgradeVote {
                    view: 1004,
                    data: UpgradeData::V1 {
                        old_version: v3,
                        new_version: v4,
                        decide_by: 2000,
                        new_version_hash: hash.clone(),
                        old_version_last_view: 2099,
                        new_version_first_view: 2100,
                    },
                },
                "1e6e6e7c87b59c65efa6c6dc76f4f68f4bfda93165d2ad8202820421f956d4fb",
            ),
            (
                Message::UpgradeVote {
                    view: 1005,
                    data: UpgradeData::V2 {
                        old_version: v3,
                        new_version: v4,
                        hash: hash.clone(),
                        epoch: Some(9),
                    },
                },
                "016d404d760b598d4fd98fa8093a293d66d13f88584ad999d3c2ebc5295e56d3",
            ),
            (
                Message::UpgradeVote {
                    view: 1005,
                    data: UpgradeData::V2 {
                        old_version: v3,
                        new_version: v4,
                        hash,
                        epoch: None,
                    },
                },
                "a7c4bc0c10e72bf24a3ac7d845ffb829fb148928730d15c7fa05a65ed600d609",
            ),
        ];
        for (message, want) in cases {
            assert_eq!(hex::encode(message.signing_message()), want, "{message:?}");
        }
    }

    #[test]
    fn proposals_sign_the_leaf_or_the_payload_digest() {
        let leaf =
            commitment_from_tagged("COMMIT~zDQj9T-fNklWU9VpkdYCE3n6vsf697rt8_uHDwgyving").unwrap();
        let p = Message::QuorumProposal {
            view: 13,
            leaf_commit: leaf,
        };
        assert_eq!(p.signing_message(), leaf.0);
        assert_eq!(p.data_commitment(), None);
        let da = Message::DaProposal {
            view: 13,
            encoded_transactions: HexBytes(vec![]),
        };
        assert_eq!(
            hex::encode(da.signing_message()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn kinds_views_and_relays() {
        let vs = Message::ViewSyncVote {
            phase: ViewSyncPhase::Commit,
            round: 9,
            relay: 3,
            epoch: None,
        };
        assert_eq!(
            (vs.kind(), vs.view(), vs.relay()),
            (Kind::ViewSyncCommitVote, 9, 3)
        );
        let n = Message::NextEpochQuorumVote {
            view: 4,
            data: quorum(FixedBytes([1; 32])),
        };
        assert_eq!((n.kind(), n.view(), n.relay()), (Kind::QuorumVote, 4, 0));
        let q = Message::QuorumVote {
            view: 4,
            data: quorum(FixedBytes([1; 32])),
        };
        assert_eq!(q.signing_message(), n.signing_message());
    }

    #[test]
    fn commitment_text_forms() {
        let text = "COMMIT~ksmmmukO_YhmfY6i5Iz9YdRkFEqCizB9ZlupwVT4bsgZ";
        let c = commitment_from_tagged(text).unwrap();
        assert_eq!(commitment_to_tagged(&c), text);
        assert_eq!(parse_commitment(text).unwrap(), c);
        assert_eq!(parse_commitment(&c.to_hex()).unwrap(), c);
        assert_eq!(parse_commitment(&hex::encode(c.0)).unwrap(), c);
        assert!(parse_commitment("HASH~AazstQer_ho1SqgGT0r10_Gs0BnjfbPBHJdSO3HHbp29").is_err());
        assert!(parse_commitment("0x1234").is_err());
        // A tagged value of the wrong length.
        assert!(commitment_from_tagged(&tagged::encode(COMMIT_TAG, &[1, 2, 3])).is_err());
    }

    #[test]
    fn serde_round_trip_and_unknown_fields() {
        let m = Message::UpgradeVote {
            view: 5,
            data: UpgradeData::V2 {
                old_version: Version { major: 0, minor: 3 },
                new_version: Version { major: 0, minor: 4 },
                hash: HexBytes(vec![1, 2]),
                epoch: None,
            },
        };
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(serde_json::from_str::<Message>(&json).unwrap(), m);
        let v1: Message = serde_json::from_str(
            r#"{"quorum_vote":{"view":12,"data":{"leaf_commit":"0xcda3913195992259eabb4d0fdb672c68c35c4e9962c5208bd009a2853065cb24"}}}"#,
        )
        .unwrap();
        assert_eq!(
            v1.signing_message(),
            commit("COMMIT~ksmmmukO_YhmfY6i5Iz9YdRkFEqCizB9ZlupwVT4bsgZ")
        );
        assert!(
            serde_json::from_str::<Message>(r#"{"timeout_vote":{"view":1,"digest":"0x00"}}"#)
                .is_err()
        );
    }
}
