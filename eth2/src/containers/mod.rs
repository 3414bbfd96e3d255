//! SSZ containers that validators sign or that appear inside what they sign, written from the
//! consensus specs (phase0 to fulu) with the mainnet preset, plus the builder API's
//! `ValidatorRegistrationV1`.
//!
//! Owns: field layouts and list limits; `hash_tree_root` via `tree_hash` derives, SSZ via
//! `ethereum_ssz` derives, JSON via serde with the codecs of `json::codec`.
//! Must not: compute domains or signing roots (see `signing.rs`), or hold any state.
//!
//! To ensure correctness: field order and types follow the spec text exactly (the root depends
//! on both), and every list carries the preset limit below (the root mixes the limit in).

pub mod altair;
pub mod electra;
pub mod phase0;

use serde::{Deserialize, Serialize};
use ssz_derive::{Decode, Encode};
use tree_hash_derive::TreeHash;

use crate::json::codec::{hex_bytes, quoted_u64};
use crate::BlsPubkey;

/// Mainnet preset sizes as type-level numbers (consensus-specs `presets/mainnet/*.yaml`).
pub mod preset {
    use ssz_types::typenum;

    /// `MAX_VALIDATORS_PER_COMMITTEE` = 2048 (phase0).
    pub type MaxValidatorsPerCommittee = typenum::U2048;
    /// `MAX_VALIDATORS_PER_COMMITTEE * MAX_COMMITTEES_PER_SLOT` = 2048 * 64 (electra).
    pub type MaxValidatorsPerSlot = typenum::U131072;
    /// `MAX_COMMITTEES_PER_SLOT` = 64 (electra `CommitteeBits`).
    pub type MaxCommitteesPerSlot = typenum::U64;
    /// `MAX_PROPOSER_SLASHINGS` = 16.
    pub type MaxProposerSlashings = typenum::U16;
    /// `MAX_ATTESTER_SLASHINGS` = 2 (phase0 to deneb).
    pub type MaxAttesterSlashings = typenum::U2;
    /// `MAX_ATTESTATIONS` = 128 (phase0 to deneb).
    pub type MaxAttestations = typenum::U128;
    /// `MAX_DEPOSITS` = 16.
    pub type MaxDeposits = typenum::U16;
    /// `MAX_VOLUNTARY_EXITS` = 16.
    pub type MaxVoluntaryExits = typenum::U16;
    /// `DEPOSIT_CONTRACT_TREE_DEPTH + 1` = 33 (`DepositProof`).
    pub type DepositProofLength = typenum::U33;
    /// `SYNC_COMMITTEE_SIZE` = 512 (altair `SyncCommitteeBits`).
    pub type SyncCommitteeSize = typenum::U512;
    /// `SYNC_COMMITTEE_SIZE // SYNC_COMMITTEE_SUBNET_COUNT` = 512 / 4 (altair
    /// `SyncSubcommitteeBits`).
    pub type SyncSubcommitteeSize = typenum::U128;
}

/// Builder API `ValidatorRegistrationV1` (builder-specs, bellatrix/builder.md).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, TreeHash, Serialize, Deserialize)]
pub struct ValidatorRegistration {
    /// `ExecutionAddress` that receives the fees.
    #[serde(with = "hex_bytes")]
    pub fee_recipient: [u8; 20],
    /// Preferred gas limit.
    #[serde(with = "quoted_u64")]
    pub gas_limit: u64,
    /// Unix time of the registration.
    #[serde(with = "quoted_u64")]
    pub timestamp: u64,
    /// The validator's key.
    #[serde(with = "hex_bytes")]
    pub pubkey: BlsPubkey,
}
