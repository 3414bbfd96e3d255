//! Signing roots: which object, which domain type, which fork version, for every message kind,
//! as the spec's `get_*_signature` functions compute them.
//!
//! Owns: [`Eth2Message::signing_root`], [`Eth2Message::domain`], [`Eth2Message::object_root`] and
//! the two network rules (genesis validators root check, EIP-7044).
//! Must not: sign, or trust any root a client sent.
//!
//! To ensure correctness:
//! - a message with `fork_info` must name the network's genesis validators root, else
//!   [`Eth2Error::GenesisValidatorsRootMismatch`];
//! - the fork version is `get_domain`'s: `fork.previous_version` when the message's epoch
//!   ([`Eth2Message::epoch`]) is before `fork.epoch`, else `fork.current_version`;
//! - EIP-7044 (deneb `process_voluntary_exit`): an exit is signed with `CAPELLA_FORK_VERSION`
//!   when the request's `fork_info.fork.current_version` is the network's DENEB version or a later
//!   one; when it is an earlier fork's, `get_domain` applies with the exit's epoch; when it is in
//!   no fork of the network's schedule, the request is refused
//!   ([`Eth2Error::UnknownForkVersion`]) rather than guessed;
//! - registrations use the network's genesis fork version and a zero genesis validators root;
//!   deposits too, and the request's `genesis_fork_version` must equal the network's.

use tree_hash::TreeHash;

use crate::message::{BeaconBlockRequest, DomainSource, VersionedAggregateAndProof};
use crate::{
    compute_domain, compute_signing_root, Domain, DomainType, Eth2Error, Eth2Message, ForkInfo,
    ForkName, NetworkSpec, Root, DOMAIN_AGGREGATE_AND_PROOF, DOMAIN_APPLICATION_BUILDER,
    DOMAIN_BEACON_ATTESTER, DOMAIN_BEACON_PROPOSER, DOMAIN_CONTRIBUTION_AND_PROOF, DOMAIN_DEPOSIT,
    DOMAIN_RANDAO, DOMAIN_SELECTION_PROOF, DOMAIN_SYNC_COMMITTEE,
    DOMAIN_SYNC_COMMITTEE_SELECTION_PROOF, DOMAIN_VOLUNTARY_EXIT,
};

const ZERO_ROOT: Root = [0u8; 32];

impl Eth2Message {
    /// The 32 bytes the validator key signs: `compute_signing_root(object, domain)` for this
    /// message on `network`.
    pub fn signing_root(&self, network: &NetworkSpec) -> Result<Root, Eth2Error> {
        let domain = self.domain(network)?;
        Ok(compute_signing_root(&self.object_root(), domain))
    }

    /// The spec domain type of this message kind.
    pub fn domain_type(&self) -> DomainType {
        match self {
            Eth2Message::BlockV2 { .. } => DOMAIN_BEACON_PROPOSER,
            Eth2Message::Attestation { .. } => DOMAIN_BEACON_ATTESTER,
            Eth2Message::AggregationSlot { .. } => DOMAIN_SELECTION_PROOF,
            Eth2Message::AggregateAndProof { .. } | Eth2Message::AggregateAndProofV2 { .. } => {
                DOMAIN_AGGREGATE_AND_PROOF
            }
            Eth2Message::RandaoReveal { .. } => DOMAIN_RANDAO,
            Eth2Message::VoluntaryExit { .. } => DOMAIN_VOLUNTARY_EXIT,
            Eth2Message::SyncCommitteeMessage { .. } => DOMAIN_SYNC_COMMITTEE,
            Eth2Message::SyncCommitteeSelectionProof { .. } => {
                DOMAIN_SYNC_COMMITTEE_SELECTION_PROOF
            }
            Eth2Message::SyncCommitteeContributionAndProof { .. } => DOMAIN_CONTRIBUTION_AND_PROOF,
            Eth2Message::ValidatorRegistration { .. } => DOMAIN_APPLICATION_BUILDER,
            Eth2Message::Deposit { .. } => DOMAIN_DEPOSIT,
        }
    }

    /// The signature domain of this message on `network`, after the network checks.
    pub fn domain(&self, network: &NetworkSpec) -> Result<Domain, Eth2Error> {
        let domain_type = self.domain_type();
        match self.domain_source() {
            DomainSource::Fork { fork_info, epoch } => {
                check_network(fork_info, network)?;
                Ok(fork_info.domain(domain_type, epoch))
            }
            DomainSource::Exit { fork_info, epoch } => {
                check_network(fork_info, network)?;
                exit_domain(fork_info, epoch, network)
            }
            DomainSource::Registration => Ok(compute_domain(
                domain_type,
                network.genesis_fork_version,
                ZERO_ROOT,
            )),
            DomainSource::Deposit {
                genesis_fork_version,
            } => {
                if genesis_fork_version != network.genesis_fork_version {
                    return Err(Eth2Error::GenesisForkVersionMismatch {
                        expected: network.genesis_fork_version,
                        got: genesis_fork_version,
                    });
                }
                Ok(compute_domain(domain_type, genesis_fork_version, ZERO_ROOT))
            }
        }
    }

    /// `hash_tree_root` of the object signed: the block (or its header, the same root), the
    /// attestation data, the slot or epoch as `uint64`, the aggregate-and-proof, the exit, the
    /// sync committee head root, the selection data, the contribution-and-proof, the
    /// registration or the deposit message.
    pub fn object_root(&self) -> Root {
        let root = match self {
            Eth2Message::BlockV2 { block, .. } => match block {
                BeaconBlockRequest::Phase0(b) => b.tree_hash_root(),
                BeaconBlockRequest::Altair(b) => b.tree_hash_root(),
                BeaconBlockRequest::Bellatrix(h)
                | BeaconBlockRequest::Capella(h)
                | BeaconBlockRequest::Deneb(h)
                | BeaconBlockRequest::Electra(h)
                | BeaconBlockRequest::Fulu(h) => h.tree_hash_root(),
            },
            Eth2Message::Attestation { data, .. } => data.tree_hash_root(),
            Eth2Message::AggregationSlot { slot, .. } => slot.tree_hash_root(),
            Eth2Message::AggregateAndProof { message, .. } => message.tree_hash_root(),
            Eth2Message::AggregateAndProofV2 { message, .. } => match message {
                VersionedAggregateAndProof::Phase0 { message, .. } => message.tree_hash_root(),
                VersionedAggregateAndProof::Electra { message, .. } => message.tree_hash_root(),
            },
            Eth2Message::RandaoReveal { epoch, .. } => epoch.tree_hash_root(),
            Eth2Message::VoluntaryExit { exit, .. } => exit.tree_hash_root(),
            Eth2Message::SyncCommitteeMessage { message, .. } => {
                message.beacon_block_root.tree_hash_root()
            }
            Eth2Message::SyncCommitteeSelectionProof { data, .. } => data.tree_hash_root(),
            Eth2Message::SyncCommitteeContributionAndProof { message, .. } => {
                message.tree_hash_root()
            }
            Eth2Message::ValidatorRegistration { registration } => registration.tree_hash_root(),
            Eth2Message::Deposit { message, .. } => message.tree_hash_root(),
        };
        root.0
    }
}

fn check_network(fork_info: &ForkInfo, network: &NetworkSpec) -> Result<(), Eth2Error> {
    if fork_info.genesis_validators_root != network.genesis_validators_root {
        return Err(Eth2Error::GenesisValidatorsRootMismatch {
            expected: network.genesis_validators_root,
            got: fork_info.genesis_validators_root,
        });
    }
    Ok(())
}

/// The voluntary exit domain: EIP-7044 from deneb on, `get_domain` before.
fn exit_domain(
    fork_info: &ForkInfo,
    exit_epoch: u64,
    network: &NetworkSpec,
) -> Result<Domain, Eth2Error> {
    let current = fork_info.fork.current_version;
    let fork = network
        .fork_of(current)
        .ok_or(Eth2Error::UnknownForkVersion { version: current })?;
    if fork >= ForkName::Deneb {
        Ok(compute_domain(
            DOMAIN_VOLUNTARY_EXIT,
            network.capella_fork_version,
            network.genesis_validators_root,
        ))
    } else {
        Ok(fork_info.domain(DOMAIN_VOLUNTARY_EXIT, exit_epoch))
    }
}
