//! Electra containers (consensus-specs `specs/electra/beacon-chain.md` and `validator.md`,
//! EIP-7549): the attestation with slot-wide aggregation bits and `committee_bits`, and the
//! `AggregateAndProof` that carries it. Fulu keeps both unchanged.
//!
//! Owns: layouts only. Must not: sign or choose domains.

use serde::{Deserialize, Serialize};
use ssz_derive::{Decode, Encode};
use ssz_types::{BitList, BitVector};
use tree_hash_derive::TreeHash;

use super::phase0::AttestationData;
use super::preset::{MaxCommitteesPerSlot, MaxValidatorsPerSlot};
use crate::json::codec::{hex_bytes, quoted_u64};
use crate::BlsSignature;

/// `Attestation` (electra).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, TreeHash, Serialize, Deserialize)]
pub struct Attestation {
    /// `AggregationBits`, `MAX_VALIDATORS_PER_COMMITTEE * MAX_COMMITTEES_PER_SLOT` long.
    pub aggregation_bits: BitList<MaxValidatorsPerSlot>,
    /// The data (`index` is 0).
    pub data: AttestationData,
    /// Aggregate signature.
    #[serde(with = "hex_bytes")]
    pub signature: BlsSignature,
    /// `CommitteeBits`: which committees the bits cover.
    pub committee_bits: BitVector<MaxCommitteesPerSlot>,
}

/// `AggregateAndProof` (electra).
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
