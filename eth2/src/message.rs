//! The typed signing request: one [`Eth2Message`] variant per Web3Signer `type`, carrying the
//! typed content the signing root is computed from (never a root chosen by the client).
//!
//! Owns: the request enum, the fork-versioned block and aggregate payloads, and what each
//! message means to slashing protection ([`Slashable`]) and to a validator (`epoch`).
//! Must not: compute roots (see `signing.rs`), parse JSON (`json/`) or bytes (`wire.rs`).
//!
//! Invalid combinations are unrepresentable: a PHASE0 or ALTAIR block is a full block, BELLATRIX
//! and later a header; an AGGREGATE_AND_PROOF_V2 before ELECTRA carries the phase0 attestation,
//! from ELECTRA on the electra one.

use crate::containers::altair::{
    ContributionAndProof, SyncAggregatorSelectionData, SyncCommitteeMessageData,
};
use crate::containers::phase0::{
    AttestationData, BeaconBlockHeader, DepositMessage, VoluntaryExit,
};
use crate::containers::{altair, electra, phase0, ValidatorRegistration};
use crate::{compute_epoch_at_slot, ForkInfo, ForkName, Version};

/// Web3Signer's `beacon_block` of a `BLOCK_V2` request, by `version`. Blinded blocks are the
/// same header (the header's root is the block's root whether the payload is blinded or not).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BeaconBlockRequest {
    /// `PHASE0`: the full block.
    Phase0(Box<phase0::BeaconBlock>),
    /// `ALTAIR`: the full block.
    Altair(Box<altair::BeaconBlock>),
    /// `BELLATRIX`: the header.
    Bellatrix(BeaconBlockHeader),
    /// `CAPELLA`: the header.
    Capella(BeaconBlockHeader),
    /// `DENEB`: the header.
    Deneb(BeaconBlockHeader),
    /// `ELECTRA`: the header.
    Electra(BeaconBlockHeader),
    /// `FULU`: the header.
    Fulu(BeaconBlockHeader),
}

impl BeaconBlockRequest {
    /// The `version` of the request.
    pub fn version(&self) -> ForkName {
        match self {
            BeaconBlockRequest::Phase0(_) => ForkName::Phase0,
            BeaconBlockRequest::Altair(_) => ForkName::Altair,
            BeaconBlockRequest::Bellatrix(_) => ForkName::Bellatrix,
            BeaconBlockRequest::Capella(_) => ForkName::Capella,
            BeaconBlockRequest::Deneb(_) => ForkName::Deneb,
            BeaconBlockRequest::Electra(_) => ForkName::Electra,
            BeaconBlockRequest::Fulu(_) => ForkName::Fulu,
        }
    }

    /// A header-form request of `version` (BELLATRIX or later); `None` for PHASE0/ALTAIR, which
    /// need the full block.
    pub fn from_header(version: ForkName, header: BeaconBlockHeader) -> Option<Self> {
        match version {
            ForkName::Phase0 | ForkName::Altair => None,
            ForkName::Bellatrix => Some(BeaconBlockRequest::Bellatrix(header)),
            ForkName::Capella => Some(BeaconBlockRequest::Capella(header)),
            ForkName::Deneb => Some(BeaconBlockRequest::Deneb(header)),
            ForkName::Electra => Some(BeaconBlockRequest::Electra(header)),
            ForkName::Fulu => Some(BeaconBlockRequest::Fulu(header)),
        }
    }

    /// The block's slot.
    pub fn slot(&self) -> u64 {
        match self {
            BeaconBlockRequest::Phase0(b) => b.slot,
            BeaconBlockRequest::Altair(b) => b.slot,
            BeaconBlockRequest::Bellatrix(h)
            | BeaconBlockRequest::Capella(h)
            | BeaconBlockRequest::Deneb(h)
            | BeaconBlockRequest::Electra(h)
            | BeaconBlockRequest::Fulu(h) => h.slot,
        }
    }

    /// The header; for a full block its `body_root` is computed.
    pub fn header(&self) -> BeaconBlockHeader {
        match self {
            BeaconBlockRequest::Phase0(b) => b.header(),
            BeaconBlockRequest::Altair(b) => b.header(),
            BeaconBlockRequest::Bellatrix(h)
            | BeaconBlockRequest::Capella(h)
            | BeaconBlockRequest::Deneb(h)
            | BeaconBlockRequest::Electra(h)
            | BeaconBlockRequest::Fulu(h) => *h,
        }
    }
}

/// Web3Signer's `aggregate_and_proof` of an `AGGREGATE_AND_PROOF_V2` request, by `version`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VersionedAggregateAndProof {
    /// `PHASE0` to `DENEB`: the phase0 container.
    Phase0 {
        /// The request's version, `PHASE0..=DENEB`.
        version: PreElectra,
        /// The message.
        message: Box<phase0::AggregateAndProof>,
    },
    /// `ELECTRA` and later: the electra container.
    Electra {
        /// The request's version, `ELECTRA` or `FULU`.
        version: PostElectra,
        /// The message.
        message: Box<electra::AggregateAndProof>,
    },
}

/// A fork before electra (whose aggregates use the phase0 attestation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PreElectra {
    /// PHASE0.
    Phase0,
    /// ALTAIR.
    Altair,
    /// BELLATRIX.
    Bellatrix,
    /// CAPELLA.
    Capella,
    /// DENEB.
    Deneb,
}

/// Electra or a later fork (whose aggregates carry `committee_bits`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PostElectra {
    /// ELECTRA.
    Electra,
    /// FULU.
    Fulu,
}

impl VersionedAggregateAndProof {
    /// The `version` of the request.
    pub fn version(&self) -> ForkName {
        match self {
            VersionedAggregateAndProof::Phase0 { version, .. } => match version {
                PreElectra::Phase0 => ForkName::Phase0,
                PreElectra::Altair => ForkName::Altair,
                PreElectra::Bellatrix => ForkName::Bellatrix,
                PreElectra::Capella => ForkName::Capella,
                PreElectra::Deneb => ForkName::Deneb,
            },
            VersionedAggregateAndProof::Electra { version, .. } => match version {
                PostElectra::Electra => ForkName::Electra,
                PostElectra::Fulu => ForkName::Fulu,
            },
        }
    }

    /// The aggregated attestation data.
    pub fn data(&self) -> &AttestationData {
        match self {
            VersionedAggregateAndProof::Phase0 { message, .. } => &message.aggregate.data,
            VersionedAggregateAndProof::Electra { message, .. } => &message.aggregate.data,
        }
    }
}

impl PreElectra {
    /// `Some` for PHASE0..=DENEB.
    pub fn from_fork(fork: ForkName) -> Option<PreElectra> {
        match fork {
            ForkName::Phase0 => Some(PreElectra::Phase0),
            ForkName::Altair => Some(PreElectra::Altair),
            ForkName::Bellatrix => Some(PreElectra::Bellatrix),
            ForkName::Capella => Some(PreElectra::Capella),
            ForkName::Deneb => Some(PreElectra::Deneb),
            ForkName::Electra | ForkName::Fulu => None,
        }
    }
}

impl PostElectra {
    /// `Some` for ELECTRA and FULU.
    pub fn from_fork(fork: ForkName) -> Option<PostElectra> {
        match fork {
            ForkName::Electra => Some(PostElectra::Electra),
            ForkName::Fulu => Some(PostElectra::Fulu),
            _ => None,
        }
    }
}

/// A signing request, typed. Every variant that Web3Signer gives a `fork_info` carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Eth2Message {
    /// `BLOCK_V2`: a block proposal (`DOMAIN_BEACON_PROPOSER`).
    BlockV2 {
        /// Fork and genesis validators root.
        fork_info: ForkInfo,
        /// The block (or header), by version.
        block: BeaconBlockRequest,
    },
    /// `ATTESTATION` (`DOMAIN_BEACON_ATTESTER`).
    Attestation {
        /// Fork and genesis validators root.
        fork_info: ForkInfo,
        /// The vote.
        data: AttestationData,
    },
    /// `AGGREGATION_SLOT`: the slot signature of aggregator selection (`DOMAIN_SELECTION_PROOF`).
    AggregationSlot {
        /// Fork and genesis validators root.
        fork_info: ForkInfo,
        /// The slot.
        slot: u64,
    },
    /// `AGGREGATE_AND_PROOF` (deprecated v1, phase0 container; `DOMAIN_AGGREGATE_AND_PROOF`).
    AggregateAndProof {
        /// Fork and genesis validators root.
        fork_info: ForkInfo,
        /// The message.
        message: Box<phase0::AggregateAndProof>,
    },
    /// `AGGREGATE_AND_PROOF_V2` (`DOMAIN_AGGREGATE_AND_PROOF`).
    AggregateAndProofV2 {
        /// Fork and genesis validators root.
        fork_info: ForkInfo,
        /// The message, by version.
        message: VersionedAggregateAndProof,
    },
    /// `RANDAO_REVEAL`: the epoch as `uint64` (`DOMAIN_RANDAO`).
    RandaoReveal {
        /// Fork and genesis validators root.
        fork_info: ForkInfo,
        /// The epoch.
        epoch: u64,
    },
    /// `VOLUNTARY_EXIT` (`DOMAIN_VOLUNTARY_EXIT`; EIP-7044 from deneb on).
    VoluntaryExit {
        /// Fork and genesis validators root.
        fork_info: ForkInfo,
        /// The exit.
        exit: VoluntaryExit,
    },
    /// `SYNC_COMMITTEE_MESSAGE`: the head root (`DOMAIN_SYNC_COMMITTEE`).
    SyncCommitteeMessage {
        /// Fork and genesis validators root.
        fork_info: ForkInfo,
        /// Root and slot.
        message: SyncCommitteeMessageData,
    },
    /// `SYNC_COMMITTEE_SELECTION_PROOF` (`DOMAIN_SYNC_COMMITTEE_SELECTION_PROOF`).
    SyncCommitteeSelectionProof {
        /// Fork and genesis validators root.
        fork_info: ForkInfo,
        /// Slot and subcommittee.
        data: SyncAggregatorSelectionData,
    },
    /// `SYNC_COMMITTEE_CONTRIBUTION_AND_PROOF` (`DOMAIN_CONTRIBUTION_AND_PROOF`).
    SyncCommitteeContributionAndProof {
        /// Fork and genesis validators root.
        fork_info: ForkInfo,
        /// The message.
        message: Box<ContributionAndProof>,
    },
    /// `VALIDATOR_REGISTRATION` (builder API; `DOMAIN_APPLICATION_BUILDER`, genesis fork version,
    /// zero genesis validators root). No `fork_info`.
    ValidatorRegistration {
        /// The registration.
        registration: ValidatorRegistration,
    },
    /// `DEPOSIT` (`DOMAIN_DEPOSIT`, the request's genesis fork version, zero genesis validators
    /// root). No `fork_info`.
    Deposit {
        /// What the deposit signature covers.
        message: DepositMessage,
        /// The network's `GENESIS_FORK_VERSION`, as the request states it (checked).
        genesis_fork_version: Version,
    },
}

/// What a message means to slashing protection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Slashable {
    /// A block proposal: one per slot.
    Block {
        /// Slot of the block.
        slot: u64,
    },
    /// An attestation: no double or surround votes.
    Attestation {
        /// FFG source epoch.
        source_epoch: u64,
        /// FFG target epoch.
        target_epoch: u64,
    },
    /// Nothing slashable (selection proofs, aggregates, exits, sync committee, ...).
    NotSlashable,
}

impl Eth2Message {
    /// The Web3Signer `type` name.
    pub fn kind(&self) -> &'static str {
        match self {
            Eth2Message::BlockV2 { .. } => "BLOCK_V2",
            Eth2Message::Attestation { .. } => "ATTESTATION",
            Eth2Message::AggregationSlot { .. } => "AGGREGATION_SLOT",
            Eth2Message::AggregateAndProof { .. } => "AGGREGATE_AND_PROOF",
            Eth2Message::AggregateAndProofV2 { .. } => "AGGREGATE_AND_PROOF_V2",
            Eth2Message::RandaoReveal { .. } => "RANDAO_REVEAL",
            Eth2Message::VoluntaryExit { .. } => "VOLUNTARY_EXIT",
            Eth2Message::SyncCommitteeMessage { .. } => "SYNC_COMMITTEE_MESSAGE",
            Eth2Message::SyncCommitteeSelectionProof { .. } => "SYNC_COMMITTEE_SELECTION_PROOF",
            Eth2Message::SyncCommitteeContributionAndProof { .. } => {
                "SYNC_COMMITTEE_CONTRIBUTION_AND_PROOF"
            }
            Eth2Message::ValidatorRegistration { .. } => "VALIDATOR_REGISTRATION",
            Eth2Message::Deposit { .. } => "DEPOSIT",
        }
    }

    /// The request's `fork_info`; `None` for `VALIDATOR_REGISTRATION` and `DEPOSIT`.
    pub fn fork_info(&self) -> Option<&ForkInfo> {
        match self.domain_source() {
            DomainSource::Fork { fork_info, .. } | DomainSource::Exit { fork_info, .. } => {
                Some(fork_info)
            }
            DomainSource::Registration | DomainSource::Deposit { .. } => None,
        }
    }

    /// The epoch the message belongs to, as the spec's signing functions compute it for
    /// `get_domain` (before EIP-7044's override): the block's or slot's epoch, an attestation's
    /// target epoch, an aggregate's data slot epoch, a RANDAO or exit epoch. `None` for
    /// registrations and deposits.
    pub fn epoch(&self) -> Option<u64> {
        match self.domain_source() {
            DomainSource::Fork { epoch, .. } | DomainSource::Exit { epoch, .. } => Some(epoch),
            DomainSource::Registration | DomainSource::Deposit { .. } => None,
        }
    }

    /// Where the message's domain comes from: the one place that says, per variant, which
    /// `fork_info` and which epoch feed `get_domain`.
    pub(crate) fn domain_source(&self) -> DomainSource<'_> {
        let at_slot = compute_epoch_at_slot;
        let (fork_info, epoch) = match self {
            Eth2Message::BlockV2 { fork_info, block } => (fork_info, at_slot(block.slot())),
            Eth2Message::Attestation { fork_info, data } => (fork_info, data.target.epoch),
            Eth2Message::AggregationSlot { fork_info, slot } => (fork_info, at_slot(*slot)),
            Eth2Message::AggregateAndProof { fork_info, message } => {
                (fork_info, at_slot(message.aggregate.data.slot))
            }
            Eth2Message::AggregateAndProofV2 { fork_info, message } => {
                (fork_info, at_slot(message.data().slot))
            }
            Eth2Message::RandaoReveal { fork_info, epoch } => (fork_info, *epoch),
            Eth2Message::VoluntaryExit { fork_info, exit } => {
                return DomainSource::Exit {
                    fork_info,
                    epoch: exit.epoch,
                }
            }
            Eth2Message::SyncCommitteeMessage { fork_info, message } => {
                (fork_info, at_slot(message.slot))
            }
            Eth2Message::SyncCommitteeSelectionProof { fork_info, data } => {
                (fork_info, at_slot(data.slot))
            }
            Eth2Message::SyncCommitteeContributionAndProof { fork_info, message } => {
                (fork_info, at_slot(message.contribution.slot))
            }
            Eth2Message::ValidatorRegistration { .. } => return DomainSource::Registration,
            Eth2Message::Deposit {
                genesis_fork_version,
                ..
            } => {
                return DomainSource::Deposit {
                    genesis_fork_version: *genesis_fork_version,
                }
            }
        };
        DomainSource::Fork { fork_info, epoch }
    }

    /// What signing this message commits the validator to.
    pub fn slashing(&self) -> Slashable {
        match self {
            Eth2Message::BlockV2 { block, .. } => Slashable::Block { slot: block.slot() },
            Eth2Message::Attestation { data, .. } => Slashable::Attestation {
                source_epoch: data.source.epoch,
                target_epoch: data.target.epoch,
            },
            _ => Slashable::NotSlashable,
        }
    }
}

/// Where a message's signature domain comes from.
pub(crate) enum DomainSource<'a> {
    /// `get_domain(fork_info, epoch)`.
    Fork { fork_info: &'a ForkInfo, epoch: u64 },
    /// A voluntary exit: `get_domain` before deneb, EIP-7044 from deneb on.
    Exit { fork_info: &'a ForkInfo, epoch: u64 },
    /// Builder API: genesis fork version, zero genesis validators root.
    Registration,
    /// Deposit: the stated genesis fork version, zero genesis validators root.
    Deposit { genesis_fork_version: Version },
}
