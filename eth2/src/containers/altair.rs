//! Altair containers (consensus-specs `specs/altair/beacon-chain.md` and `validator.md`): the
//! block body with `SyncAggregate`, and the sync committee messages.
//!
//! Owns: layouts only. Must not: sign or choose domains.

use serde::{Deserialize, Serialize};
use ssz_derive::{Decode, Encode};
use ssz_types::{BitVector, VariableList};
use tree_hash::TreeHash;
use tree_hash_derive::TreeHash;

use super::phase0::{
    Attestation, AttesterSlashing, BeaconBlockHeader, Deposit, Eth1Data, ProposerSlashing,
    SignedVoluntaryExit,
};
use super::preset::{
    MaxAttestations, MaxAttesterSlashings, MaxDeposits, MaxProposerSlashings, MaxVoluntaryExits,
    SyncCommitteeSize, SyncSubcommitteeSize,
};
use crate::json::codec::{hex_bytes, quoted_u64};
use crate::{BlsSignature, Root};

/// `SyncAggregate`.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, TreeHash, Serialize, Deserialize)]
pub struct SyncAggregate {
    /// `SyncCommitteeBits`: SSZ bitvector, JSON hex of its bytes.
    pub sync_committee_bits: BitVector<SyncCommitteeSize>,
    /// Aggregate signature.
    #[serde(with = "hex_bytes")]
    pub sync_committee_signature: BlsSignature,
}

/// `BeaconBlockBody` (altair).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, TreeHash, Serialize, Deserialize)]
pub struct BeaconBlockBody {
    /// RANDAO reveal.
    #[serde(with = "hex_bytes")]
    pub randao_reveal: BlsSignature,
    /// Eth1 vote.
    pub eth1_data: Eth1Data,
    /// Graffiti.
    #[serde(with = "hex_bytes")]
    pub graffiti: Root,
    /// Proposer slashings.
    pub proposer_slashings: VariableList<ProposerSlashing, MaxProposerSlashings>,
    /// Attester slashings.
    pub attester_slashings: VariableList<AttesterSlashing, MaxAttesterSlashings>,
    /// Attestations.
    pub attestations: VariableList<Attestation, MaxAttestations>,
    /// Deposits.
    pub deposits: VariableList<Deposit, MaxDeposits>,
    /// Voluntary exits.
    pub voluntary_exits: VariableList<SignedVoluntaryExit, MaxVoluntaryExits>,
    /// New in altair.
    pub sync_aggregate: SyncAggregate,
}

/// `BeaconBlock` (altair).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, TreeHash, Serialize, Deserialize)]
pub struct BeaconBlock {
    /// Slot.
    #[serde(with = "quoted_u64")]
    pub slot: u64,
    /// Proposer index.
    #[serde(with = "quoted_u64")]
    pub proposer_index: u64,
    /// Parent block root.
    #[serde(with = "hex_bytes")]
    pub parent_root: Root,
    /// Post-state root.
    #[serde(with = "hex_bytes")]
    pub state_root: Root,
    /// Body.
    pub body: BeaconBlockBody,
}

impl BeaconBlock {
    /// The header whose root equals this block's root.
    pub fn header(&self) -> BeaconBlockHeader {
        BeaconBlockHeader {
            slot: self.slot,
            proposer_index: self.proposer_index,
            parent_root: self.parent_root,
            state_root: self.state_root,
            body_root: self.body.tree_hash_root().0,
        }
    }
}

/// Web3Signer's `sync_committee_message` object: the head root a sync committee member signs at
/// `slot`. Not the spec's `SyncCommitteeMessage` (which adds the index and the signature): the
/// object signed is `beacon_block_root` itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Encode, Decode, Serialize, Deserialize)]
pub struct SyncCommitteeMessageData {
    /// The head block root being attested.
    #[serde(with = "hex_bytes")]
    pub beacon_block_root: Root,
    /// Slot of the message (selects the fork version).
    #[serde(with = "quoted_u64")]
    pub slot: u64,
}

/// `SyncAggregatorSelectionData`.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Encode, Decode, TreeHash, Serialize, Deserialize,
)]
pub struct SyncAggregatorSelectionData {
    /// Slot.
    #[serde(with = "quoted_u64")]
    pub slot: u64,
    /// Subcommittee.
    #[serde(with = "quoted_u64")]
    pub subcommittee_index: u64,
}

/// `SyncCommitteeContribution`.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, TreeHash, Serialize, Deserialize)]
pub struct SyncCommitteeContribution {
    /// Slot.
    #[serde(with = "quoted_u64")]
    pub slot: u64,
    /// Head root.
    #[serde(with = "hex_bytes")]
    pub beacon_block_root: Root,
    /// Subcommittee.
    #[serde(with = "quoted_u64")]
    pub subcommittee_index: u64,
    /// `SyncSubcommitteeBits`.
    pub aggregation_bits: BitVector<SyncSubcommitteeSize>,
    /// Aggregate signature.
    #[serde(with = "hex_bytes")]
    pub signature: BlsSignature,
}

/// `ContributionAndProof`.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, TreeHash, Serialize, Deserialize)]
pub struct ContributionAndProof {
    /// Aggregator.
    #[serde(with = "quoted_u64")]
    pub aggregator_index: u64,
    /// The contribution.
    pub contribution: SyncCommitteeContribution,
    /// The aggregator's selection proof.
    #[serde(with = "hex_bytes")]
    pub selection_proof: BlsSignature,
}
