//! Phase0 containers (consensus-specs `specs/phase0/beacon-chain.md` and `validator.md`).
//!
//! Owns: the block, its body and operations, attestation data and the phase0
//! `AggregateAndProof`. Must not: sign, choose domains, or change a field (roots depend on
//! order and type).

use serde::{Deserialize, Serialize};
use ssz_derive::{Decode, Encode};
use ssz_types::{BitList, FixedVector, VariableList};
use tree_hash::TreeHash;
use tree_hash_derive::TreeHash;

use super::preset::{
    DepositProofLength, MaxAttestations, MaxAttesterSlashings, MaxDeposits, MaxProposerSlashings,
    MaxValidatorsPerCommittee, MaxVoluntaryExits,
};
use crate::json::codec::{hex_bytes, hex_root_vector, quoted_u64, quoted_u64_list};
use crate::{BlsPubkey, BlsSignature, Root};

/// `Checkpoint`.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Encode, Decode, TreeHash, Serialize, Deserialize,
)]
pub struct Checkpoint {
    /// Epoch.
    #[serde(with = "quoted_u64")]
    pub epoch: u64,
    /// Block root.
    #[serde(with = "hex_bytes")]
    pub root: Root,
}

/// `AttestationData`: what an attester votes for.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Encode, Decode, TreeHash, Serialize, Deserialize,
)]
pub struct AttestationData {
    /// Slot.
    #[serde(with = "quoted_u64")]
    pub slot: u64,
    /// Committee index (0 from electra on).
    #[serde(with = "quoted_u64")]
    pub index: u64,
    /// LMD GHOST vote.
    #[serde(with = "hex_bytes")]
    pub beacon_block_root: Root,
    /// FFG source.
    pub source: Checkpoint,
    /// FFG target.
    pub target: Checkpoint,
}

/// `BeaconBlockHeader`: its root equals the root of the block it summarises.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Encode, Decode, TreeHash, Serialize, Deserialize,
)]
pub struct BeaconBlockHeader {
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
    /// `hash_tree_root` of the body.
    #[serde(with = "hex_bytes")]
    pub body_root: Root,
}

/// `SignedBeaconBlockHeader`.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, TreeHash, Serialize, Deserialize)]
pub struct SignedBeaconBlockHeader {
    /// The header.
    pub message: BeaconBlockHeader,
    /// Its signature.
    #[serde(with = "hex_bytes")]
    pub signature: BlsSignature,
}

/// `Eth1Data`.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, TreeHash, Serialize, Deserialize)]
pub struct Eth1Data {
    /// Deposit tree root.
    #[serde(with = "hex_bytes")]
    pub deposit_root: Root,
    /// Deposit count.
    #[serde(with = "quoted_u64")]
    pub deposit_count: u64,
    /// Eth1 block hash.
    #[serde(with = "hex_bytes")]
    pub block_hash: Root,
}

/// `IndexedAttestation` (phase0 limits).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, TreeHash, Serialize, Deserialize)]
pub struct IndexedAttestation {
    /// `AttestingIndices`.
    #[serde(with = "quoted_u64_list")]
    pub attesting_indices: VariableList<u64, MaxValidatorsPerCommittee>,
    /// The data.
    pub data: AttestationData,
    /// Aggregate signature.
    #[serde(with = "hex_bytes")]
    pub signature: BlsSignature,
}

/// `ProposerSlashing`.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, TreeHash, Serialize, Deserialize)]
pub struct ProposerSlashing {
    /// First header.
    pub signed_header_1: SignedBeaconBlockHeader,
    /// Conflicting header.
    pub signed_header_2: SignedBeaconBlockHeader,
}

/// `AttesterSlashing` (phase0 limits).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, TreeHash, Serialize, Deserialize)]
pub struct AttesterSlashing {
    /// First attestation.
    pub attestation_1: IndexedAttestation,
    /// Conflicting attestation.
    pub attestation_2: IndexedAttestation,
}

/// `Attestation` (phase0 to deneb).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, TreeHash, Serialize, Deserialize)]
pub struct Attestation {
    /// `AggregationBits`: SSZ bitlist, JSON hex of its SSZ bytes.
    pub aggregation_bits: BitList<MaxValidatorsPerCommittee>,
    /// The data.
    pub data: AttestationData,
    /// Aggregate signature.
    #[serde(with = "hex_bytes")]
    pub signature: BlsSignature,
}

/// `DepositMessage`: what a deposit's signature covers.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, TreeHash, Serialize, Deserialize)]
pub struct DepositMessage {
    /// Validator key.
    #[serde(with = "hex_bytes")]
    pub pubkey: BlsPubkey,
    /// Withdrawal credentials.
    #[serde(with = "hex_bytes")]
    pub withdrawal_credentials: Root,
    /// Amount in Gwei.
    #[serde(with = "quoted_u64")]
    pub amount: u64,
}

/// `DepositData`.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, TreeHash, Serialize, Deserialize)]
pub struct DepositData {
    /// Validator key.
    #[serde(with = "hex_bytes")]
    pub pubkey: BlsPubkey,
    /// Withdrawal credentials.
    #[serde(with = "hex_bytes")]
    pub withdrawal_credentials: Root,
    /// Amount in Gwei.
    #[serde(with = "quoted_u64")]
    pub amount: u64,
    /// Signature over the `DepositMessage`.
    #[serde(with = "hex_bytes")]
    pub signature: BlsSignature,
}

/// `Deposit`.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, TreeHash, Serialize, Deserialize)]
pub struct Deposit {
    /// `DepositProof`: Merkle path to the deposit root.
    #[serde(with = "hex_root_vector")]
    pub proof: FixedVector<Root, DepositProofLength>,
    /// The deposit.
    pub data: DepositData,
}

/// `VoluntaryExit`.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Encode, Decode, TreeHash, Serialize, Deserialize,
)]
pub struct VoluntaryExit {
    /// Earliest epoch the exit may be processed.
    #[serde(with = "quoted_u64")]
    pub epoch: u64,
    /// Exiting validator.
    #[serde(with = "quoted_u64")]
    pub validator_index: u64,
}

/// `SignedVoluntaryExit`.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, TreeHash, Serialize, Deserialize)]
pub struct SignedVoluntaryExit {
    /// The exit.
    pub message: VoluntaryExit,
    /// Its signature.
    #[serde(with = "hex_bytes")]
    pub signature: BlsSignature,
}

/// `BeaconBlockBody` (phase0).
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
}

/// `BeaconBlock` (phase0).
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

/// `AggregateAndProof` (phase0 to deneb).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, TreeHash, Serialize, Deserialize)]
pub struct AggregateAndProof {
    /// Aggregator.
    #[serde(with = "quoted_u64")]
    pub aggregator_index: u64,
    /// The aggregate.
    pub aggregate: Attestation,
    /// The aggregator's slot signature.
    #[serde(with = "hex_bytes")]
    pub selection_proof: BlsSignature,
}
