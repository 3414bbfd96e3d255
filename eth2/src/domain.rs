//! Signature domains: the spec's domain types, `Fork` / `ForkInfo`, `compute_domain`,
//! `compute_signing_root` and `compute_epoch_at_slot` (consensus-specs, phase0 beacon-chain.md,
//! "Helper functions"; altair adds the sync committee domains; builder-specs adds
//! `DOMAIN_APPLICATION_BUILDER`).
//!
//! Owns: the byte-level aliases (`Root`, `Version`, ...) and the domain arithmetic.
//! Must not: choose which fork version a message uses (that is `signing.rs`, which knows the
//! network), or Merkleize by hand: roots come from `tree_hash` derives.

use serde::{Deserialize, Serialize};
use ssz_derive::{Decode, Encode};
use tree_hash::TreeHash;
use tree_hash_derive::TreeHash;

use crate::json::codec::{hex_bytes, quoted_u64};

/// A 32-byte SSZ root (`Root`, `Bytes32`, `Hash32`).
pub type Root = [u8; 32];
/// A 4-byte fork version (`Version`).
pub type Version = [u8; 4];
/// A 4-byte domain type (`DomainType`).
pub type DomainType = [u8; 4];
/// A 32-byte signature domain (`Domain`): domain type ‖ fork data root\[..28\].
pub type Domain = [u8; 32];
/// A compressed BLS public key (`BLSPubkey`, `Bytes48`).
pub type BlsPubkey = [u8; 48];
/// A compressed BLS signature (`BLSSignature`, `Bytes96`).
pub type BlsSignature = [u8; 96];

/// `SLOTS_PER_EPOCH` of the mainnet preset (every public network uses it).
pub const SLOTS_PER_EPOCH: u64 = 32;

/// `DOMAIN_BEACON_PROPOSER`.
pub const DOMAIN_BEACON_PROPOSER: DomainType = [0x00, 0, 0, 0];
/// `DOMAIN_BEACON_ATTESTER`.
pub const DOMAIN_BEACON_ATTESTER: DomainType = [0x01, 0, 0, 0];
/// `DOMAIN_RANDAO`.
pub const DOMAIN_RANDAO: DomainType = [0x02, 0, 0, 0];
/// `DOMAIN_DEPOSIT`.
pub const DOMAIN_DEPOSIT: DomainType = [0x03, 0, 0, 0];
/// `DOMAIN_VOLUNTARY_EXIT`.
pub const DOMAIN_VOLUNTARY_EXIT: DomainType = [0x04, 0, 0, 0];
/// `DOMAIN_SELECTION_PROOF`.
pub const DOMAIN_SELECTION_PROOF: DomainType = [0x05, 0, 0, 0];
/// `DOMAIN_AGGREGATE_AND_PROOF`.
pub const DOMAIN_AGGREGATE_AND_PROOF: DomainType = [0x06, 0, 0, 0];
/// `DOMAIN_SYNC_COMMITTEE` (altair).
pub const DOMAIN_SYNC_COMMITTEE: DomainType = [0x07, 0, 0, 0];
/// `DOMAIN_SYNC_COMMITTEE_SELECTION_PROOF` (altair).
pub const DOMAIN_SYNC_COMMITTEE_SELECTION_PROOF: DomainType = [0x08, 0, 0, 0];
/// `DOMAIN_CONTRIBUTION_AND_PROOF` (altair).
pub const DOMAIN_CONTRIBUTION_AND_PROOF: DomainType = [0x09, 0, 0, 0];
/// `DOMAIN_APPLICATION_BUILDER` (builder-specs, bellatrix/builder.md).
pub const DOMAIN_APPLICATION_BUILDER: DomainType = [0x00, 0, 0, 0x01];

/// `Fork`: the fork in force at the state a beacon node reports.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Encode, Decode, TreeHash, Serialize, Deserialize,
)]
pub struct Fork {
    /// Fork version before `epoch`.
    #[serde(with = "hex_bytes")]
    pub previous_version: Version,
    /// Fork version from `epoch` on.
    #[serde(with = "hex_bytes")]
    pub current_version: Version,
    /// First epoch of `current_version`.
    #[serde(with = "quoted_u64")]
    pub epoch: u64,
}

/// Web3Signer's `fork_info`: the state's fork and the network's genesis validators root.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Encode, Decode, Serialize, Deserialize)]
pub struct ForkInfo {
    /// The fork.
    pub fork: Fork,
    /// The network's `genesis_validators_root`.
    #[serde(with = "hex_bytes")]
    pub genesis_validators_root: Root,
}

impl ForkInfo {
    /// The fork version `get_domain` uses for a message of `epoch`: the previous version when
    /// `epoch < fork.epoch` (a message from before the fork boundary), else the current one.
    pub fn version_at(&self, epoch: u64) -> Version {
        if epoch < self.fork.epoch {
            self.fork.previous_version
        } else {
            self.fork.current_version
        }
    }

    /// `get_domain(state, domain_type, epoch)` with this fork info as the state.
    pub fn domain(&self, domain_type: DomainType, epoch: u64) -> Domain {
        compute_domain(
            domain_type,
            self.version_at(epoch),
            self.genesis_validators_root,
        )
    }
}

/// `ForkData` (phase0).
#[derive(TreeHash)]
struct ForkData {
    current_version: Version,
    genesis_validators_root: Root,
}

/// `SigningData` (phase0).
#[derive(TreeHash)]
struct SigningData {
    object_root: Root,
    domain: Domain,
}

/// `compute_epoch_at_slot(slot)`.
pub fn compute_epoch_at_slot(slot: u64) -> u64 {
    slot / SLOTS_PER_EPOCH
}

/// `compute_fork_data_root(current_version, genesis_validators_root)`.
pub fn compute_fork_data_root(current_version: Version, genesis_validators_root: Root) -> Root {
    ForkData {
        current_version,
        genesis_validators_root,
    }
    .tree_hash_root()
    .0
}

/// `compute_domain(domain_type, fork_version, genesis_validators_root)`.
pub fn compute_domain(
    domain_type: DomainType,
    fork_version: Version,
    genesis_validators_root: Root,
) -> Domain {
    let fork_data_root = compute_fork_data_root(fork_version, genesis_validators_root);
    let mut domain = [0u8; 32];
    domain[..4].copy_from_slice(&domain_type);
    domain[4..].copy_from_slice(&fork_data_root[..28]);
    domain
}

/// `compute_signing_root(ssz_object, domain)`: `hash_tree_root(SigningData(hash_tree_root(
/// ssz_object), domain))`.
pub fn compute_signing_root<T: TreeHash + ?Sized>(object: &T, domain: Domain) -> Root {
    SigningData {
        object_root: object.tree_hash_root().0,
        domain,
    }
    .tree_hash_root()
    .0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_starts_with_its_type_and_differs_by_version() {
        let a = compute_domain(DOMAIN_RANDAO, [0, 0, 0, 0], [0; 32]);
        let b = compute_domain(DOMAIN_RANDAO, [1, 0, 0, 0], [0; 32]);
        assert_eq!(a[..4], DOMAIN_RANDAO);
        assert_ne!(a, b);
    }

    #[test]
    fn version_switches_at_the_fork_epoch() {
        let info = ForkInfo {
            fork: Fork {
                previous_version: [1, 0, 0, 0],
                current_version: [2, 0, 0, 0],
                epoch: 10,
            },
            genesis_validators_root: [7; 32],
        };
        assert_eq!(info.version_at(9), [1, 0, 0, 0]);
        assert_eq!(info.version_at(10), [2, 0, 0, 0]);
    }
}
