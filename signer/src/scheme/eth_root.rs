//! Ethereum signing roots: the SSZ `hash_tree_root` of the few containers a validator signs,
//! `compute_domain` and `compute_signing_root` as the consensus specs define them.
//!
//! Owns: the typed block header, attestation data and fork info, and the 32-byte root each one
//! signs. Must not: know about keys or slashing rules. Only fixed-size containers appear here,
//! so merkleization is a small fixed-depth sha256 tree; no general SSZ library is needed.

use sha2::{Digest, Sha256};

/// A 32-byte SSZ root.
pub type Root = [u8; 32];

/// A 4-byte fork version.
pub type Version = [u8; 4];

/// The domain type of block proposals (`DOMAIN_BEACON_PROPOSER`).
pub const DOMAIN_BEACON_PROPOSER: [u8; 4] = [0, 0, 0, 0];
/// The domain type of attestations (`DOMAIN_BEACON_ATTESTER`).
pub const DOMAIN_BEACON_ATTESTER: [u8; 4] = [1, 0, 0, 0];
/// Slots per epoch on every public Ethereum network.
pub const SLOTS_PER_EPOCH: u64 = 32;

/// Which fork a message is signed under, as a beacon node reports it (`fork_info`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ForkInfo {
    /// Fork version before `epoch`.
    pub previous_version: Version,
    /// Fork version from `epoch` on.
    pub current_version: Version,
    /// First epoch of the current fork.
    pub epoch: u64,
    /// The network's genesis validators root.
    pub genesis_validators_root: Root,
}

impl ForkInfo {
    /// The fork version in force at `epoch` (`get_domain` in the specs).
    pub fn version_at(&self, epoch: u64) -> Version {
        if epoch < self.epoch {
            self.previous_version
        } else {
            self.current_version
        }
    }

    /// The signing domain of `domain_type` at `epoch`.
    pub fn domain(&self, domain_type: [u8; 4], epoch: u64) -> Root {
        compute_domain(
            domain_type,
            self.version_at(epoch),
            self.genesis_validators_root,
        )
    }
}

/// `BeaconBlockHeader`: its root equals the root of the full `BeaconBlock`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BeaconBlockHeader {
    /// Slot of the block.
    pub slot: u64,
    /// Index of the proposer.
    pub proposer_index: u64,
    /// Root of the parent block.
    pub parent_root: Root,
    /// Root of the post-state.
    pub state_root: Root,
    /// Root of the block body.
    pub body_root: Root,
}

/// A `Checkpoint`: an epoch and a block root.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// Epoch number.
    pub epoch: u64,
    /// Block root.
    pub root: Root,
}

/// `AttestationData`: what an attester votes for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttestationData {
    /// Slot of the attestation.
    pub slot: u64,
    /// Committee index.
    pub index: u64,
    /// LMD GHOST vote.
    pub beacon_block_root: Root,
    /// FFG source.
    pub source: Checkpoint,
    /// FFG target.
    pub target: Checkpoint,
}

impl BeaconBlockHeader {
    /// `hash_tree_root(BeaconBlockHeader)`.
    pub fn hash_tree_root(&self) -> Root {
        merkleize(&[
            u64_chunk(self.slot),
            u64_chunk(self.proposer_index),
            self.parent_root,
            self.state_root,
            self.body_root,
        ])
    }

    /// The root a proposer signs for this block under `fork`.
    pub fn signing_root(&self, fork: &ForkInfo) -> Root {
        let domain = fork.domain(DOMAIN_BEACON_PROPOSER, self.slot / SLOTS_PER_EPOCH);
        compute_signing_root(self.hash_tree_root(), domain)
    }
}

impl Checkpoint {
    /// `hash_tree_root(Checkpoint)`.
    pub fn hash_tree_root(&self) -> Root {
        merkleize(&[u64_chunk(self.epoch), self.root])
    }
}

impl AttestationData {
    /// `hash_tree_root(AttestationData)`.
    pub fn hash_tree_root(&self) -> Root {
        merkleize(&[
            u64_chunk(self.slot),
            u64_chunk(self.index),
            self.beacon_block_root,
            self.source.hash_tree_root(),
            self.target.hash_tree_root(),
        ])
    }

    /// The root an attester signs for this data under `fork` (domain epoch = target epoch).
    pub fn signing_root(&self, fork: &ForkInfo) -> Root {
        let domain = fork.domain(DOMAIN_BEACON_ATTESTER, self.target.epoch);
        compute_signing_root(self.hash_tree_root(), domain)
    }
}

/// `compute_domain(domain_type, fork_version, genesis_validators_root)`.
pub fn compute_domain(domain_type: [u8; 4], fork_version: Version, gvr: Root) -> Root {
    let mut version_chunk = [0u8; 32];
    version_chunk[..4].copy_from_slice(&fork_version);
    let fork_data_root = merkleize(&[version_chunk, gvr]);
    let mut domain = [0u8; 32];
    domain[..4].copy_from_slice(&domain_type);
    domain[4..].copy_from_slice(&fork_data_root[..28]);
    domain
}

/// `compute_signing_root`: `hash_tree_root(SigningData{object_root, domain})`.
pub fn compute_signing_root(object_root: Root, domain: Root) -> Root {
    merkleize(&[object_root, domain])
}

fn u64_chunk(v: u64) -> Root {
    let mut chunk = [0u8; 32];
    chunk[..8].copy_from_slice(&v.to_le_bytes());
    chunk
}

/// Merkleize up to 8 chunks, padding with zero chunks to the next power of two.
fn merkleize(chunks: &[Root]) -> Root {
    let width = chunks.len().next_power_of_two().max(1);
    let mut layer: Vec<Root> = chunks.to_vec();
    layer.resize(width, [0u8; 32]);
    while layer.len() > 1 {
        layer = layer
            .chunks_exact(2)
            .map(|pair| {
                let mut h = Sha256::new();
                h.update(pair[0]);
                h.update(pair[1]);
                h.finalize().into()
            })
            .collect();
    }
    layer[0]
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn root(s: &str) -> Root {
        hex::decode(s).unwrap().try_into().unwrap()
    }

    /// The example fork of Web3Signer's OpenAPI requests.
    fn example_fork() -> ForkInfo {
        ForkInfo {
            previous_version: [0, 0, 0, 1],
            current_version: [0, 0, 0, 1],
            epoch: 1,
            genesis_validators_root: root(
                "04700007fabc8282644aed6d1c7c9e21d38a03a0c4ba193f3afe428824b3a673",
            ),
        }
    }

    #[test]
    fn attestation_signing_root_matches_web3signer_example() {
        let bbr = root("b2eedb01adbd02c828d5eec09b4c70cbba12ffffba525ebf48aca33028e8ad89");
        let data = AttestationData {
            slot: 32,
            index: 0,
            beacon_block_root: bbr,
            source: Checkpoint {
                epoch: 0,
                root: [0; 32],
            },
            target: Checkpoint {
                epoch: 0,
                root: bbr,
            },
        };
        assert_eq!(
            hex::encode(data.signing_root(&example_fork())),
            "548c9a015f4c96cb8b1ddbbdfca85846f85bf9f344a434c140f378cdfb5341f0"
        );
    }

    #[test]
    fn block_signing_root_matches_web3signer_example() {
        let header = BeaconBlockHeader {
            slot: 0,
            proposer_index: 4666673844721362956,
            parent_root: root("367cbd40ac7318427aadb97345a91fa2e965daf3158d7f1846f1306305f41bef"),
            state_root: root("fd18cf40cc907a739be483f1ca0ee23ad65cdd3df23205eabc6d660a75d1f54e"),
            body_root: root("a759d8029a69d4fdd8b3996086e9722983977e4efc1f12f4098ea3d93e868a6b"),
        };
        assert_eq!(
            hex::encode(header.signing_root(&example_fork())),
            "aa2e0c465c1a45d7b6637fcce4ad6ceb71fc12064b548078d619a411f0de8adc"
        );
    }

    #[test]
    fn fork_version_switches_at_fork_epoch() {
        let fork = ForkInfo {
            previous_version: [1, 0, 0, 0],
            current_version: [2, 0, 0, 0],
            epoch: 10,
            genesis_validators_root: [7; 32],
        };
        assert_eq!(fork.version_at(9), [1, 0, 0, 0]);
        assert_eq!(fork.version_at(10), [2, 0, 0, 0]);
        assert_ne!(
            fork.domain(DOMAIN_BEACON_ATTESTER, 9),
            fork.domain(DOMAIN_BEACON_ATTESTER, 10)
        );
    }
}
