//! Every message an Ethereum validator signs, as a typed value, and the SSZ signing root the
//! signer computes from it.
//!
//! Owns: the consensus-spec containers (phase0 to fulu, mainnet preset), the Web3Signer request
//! types ([`Eth2Message`]), `compute_domain` / `compute_signing_root` with the fork rules of
//! `get_domain` and EIP-7044, the networks' fork schedules ([`NetworkSpec`]), the Web3Signer JSON
//! form and a versioned binary form for the gRPC API and the Raft log.
//!
//! Must not: do IO, spawn tasks, read a clock, hold keys or decide slashing rules. It reports
//! what a message would make slashable ([`Slashable`]); the signer's protection module decides.
//!
//! To ensure correctness:
//! - every signing root is built here from typed fields, with the domain type (the message kind)
//!   and the fork version inside the preimage; a client-sent root is only compared, never signed;
//! - every hash_tree_root comes from `tree_hash` derives over spec containers: no hand-written
//!   Merkleization;
//! - decoding (JSON or binary) of hostile input returns a typed [`Eth2Error`], never panics.

#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod containers;
mod domain;
mod error;
mod json;
mod message;
mod network;
mod signing;
mod wire;

pub use containers::{altair, electra, phase0, ValidatorRegistration};
pub use domain::{
    compute_domain, compute_epoch_at_slot, compute_fork_data_root, compute_signing_root, BlsPubkey,
    BlsSignature, Domain, DomainType, Fork, ForkInfo, Root, Version, DOMAIN_AGGREGATE_AND_PROOF,
    DOMAIN_APPLICATION_BUILDER, DOMAIN_BEACON_ATTESTER, DOMAIN_BEACON_PROPOSER,
    DOMAIN_CONTRIBUTION_AND_PROOF, DOMAIN_DEPOSIT, DOMAIN_RANDAO, DOMAIN_SELECTION_PROOF,
    DOMAIN_SYNC_COMMITTEE, DOMAIN_SYNC_COMMITTEE_SELECTION_PROOF, DOMAIN_VOLUNTARY_EXIT,
    SLOTS_PER_EPOCH,
};
pub use error::Eth2Error;
pub use json::parse_web3signer;
pub use message::{
    BeaconBlockRequest, Eth2Message, PostElectra, PreElectra, Slashable, VersionedAggregateAndProof,
};
pub use network::{ForkName, NetworkSpec, BUILT_IN_NETWORKS};
/// The SSZ list, vector and bitfield types the containers use, for callers that build them.
pub use ssz_types;
pub use wire::WIRE_FORMAT_VERSION;
