//! The compact binary form of an [`Eth2Message`], for the gRPC API and the Raft log.
//!
//! Owns: [`Eth2Message::to_bytes`] / [`Eth2Message::from_bytes`] and the format below.
//! Must not: panic on any input, accept bytes after the message, or accept a second encoding of
//! the same message (decoding re-encodes and compares).
//!
//! Format version 1 (all integers little-endian):
//!
//! | bytes | field |
//! |---|---|
//! | 1 | format version, `0x01` ([`WIRE_FORMAT_VERSION`]) |
//! | 1 | type tag: 1 BLOCK_V2, 2 ATTESTATION, 3 AGGREGATION_SLOT, 4 AGGREGATE_AND_PROOF, 5 AGGREGATE_AND_PROOF_V2, 6 RANDAO_REVEAL, 7 VOLUNTARY_EXIT, 8 SYNC_COMMITTEE_MESSAGE, 9 SYNC_COMMITTEE_SELECTION_PROOF, 10 SYNC_COMMITTEE_CONTRIBUTION_AND_PROOF, 11 VALIDATOR_REGISTRATION, 12 DEPOSIT |
//! | 1 | fork tag, only for tags 1 and 5: 0 PHASE0, 1 ALTAIR, 2 BELLATRIX, 3 CAPELLA, 4 DENEB, 5 ELECTRA, 6 FULU |
//! | 48 | SSZ of `fork_info` as the container `{fork: Fork, genesis_validators_root: Root}`, for every tag but 11 and 12; tag 12 has the 4-byte `genesis_fork_version` here instead |
//! | 4 | `u32` length `L` of the payload |
//! | L | SSZ of the payload: the block (tags 1 PHASE0/ALTAIR) or `BeaconBlockHeader` (1, later forks), `AttestationData`, `uint64` slot or epoch (3, 6), `AggregateAndProof` (phase0 or electra by fork tag), `VoluntaryExit`, Web3Signer's `{beacon_block_root, slot}` (8), `SyncAggregatorSelectionData`, `ContributionAndProof`, `ValidatorRegistrationV1`, `DepositMessage` |
//!
//! The length prefix makes the end of a variable-size payload explicit, so trailing bytes are
//! always detected (SSZ alone would read extra list items at the end of a block).

use ssz::{Decode, Encode};

use crate::containers::altair::{
    ContributionAndProof, SyncAggregatorSelectionData, SyncCommitteeMessageData,
};
use crate::containers::phase0::{
    AttestationData, BeaconBlockHeader, DepositMessage, VoluntaryExit,
};
use crate::containers::{altair, electra, phase0, ValidatorRegistration};
use crate::message::{PostElectra, PreElectra};
use crate::{
    BeaconBlockRequest, Eth2Error, Eth2Message, ForkInfo, ForkName, VersionedAggregateAndProof,
};

/// The format version byte this build writes and reads.
pub const WIRE_FORMAT_VERSION: u8 = 1;

const FORK_INFO_LEN: usize = 48;

impl Eth2Message {
    /// The binary form (format [`WIRE_FORMAT_VERSION`]).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![WIRE_FORMAT_VERSION, self.tag()];
        match self {
            Eth2Message::BlockV2 { block, .. } => out.push(block.version().tag()),
            Eth2Message::AggregateAndProofV2 { message, .. } => out.push(message.version().tag()),
            _ => {}
        }
        if let Some(fork_info) = self.fork_info() {
            out.extend_from_slice(&fork_info.as_ssz_bytes());
        }
        if let Eth2Message::Deposit {
            genesis_fork_version,
            ..
        } = self
        {
            out.extend_from_slice(genesis_fork_version);
        }
        let payload = self.payload_ssz();
        // Payloads are bounded by the preset's list limits (well under 4 GiB); a saturated
        // length would make the decoder report truncation, never misread.
        let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&payload);
        out
    }

    /// Read the binary form. Rejects unknown versions and tags, truncated input, trailing
    /// bytes, invalid SSZ and non-canonical encodings, each with its own [`Eth2Error`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Eth2Message, Eth2Error> {
        let mut r = Reader(bytes);
        let format = r.byte()?;
        if format != WIRE_FORMAT_VERSION {
            return Err(Eth2Error::UnsupportedFormat(format));
        }
        let tag = r.byte()?;
        if !(1..=12).contains(&tag) {
            return Err(Eth2Error::UnknownTag(tag));
        }
        let fork = if tag == 1 || tag == 5 {
            let t = r.byte()?;
            Some(ForkName::from_tag(t).ok_or(Eth2Error::UnknownForkTag(t))?)
        } else {
            None
        };
        let fork_info = if tag <= 10 {
            Some(decode::<ForkInfo>(r.take(FORK_INFO_LEN)?, "fork_info")?)
        } else {
            None
        };
        let genesis_fork_version = if tag == 12 {
            let mut v = [0u8; 4];
            v.copy_from_slice(r.take(4)?);
            Some(v)
        } else {
            None
        };
        let mut len = [0u8; 4];
        len.copy_from_slice(r.take(4)?);
        let payload = r.take(u32::from_le_bytes(len) as usize)?;
        if !r.0.is_empty() {
            return Err(Eth2Error::TrailingBytes(r.0.len()));
        }
        let message = assemble(tag, fork, fork_info, genesis_fork_version, payload)?;
        if message.to_bytes() != bytes {
            return Err(Eth2Error::NonCanonical);
        }
        Ok(message)
    }

    fn tag(&self) -> u8 {
        match self {
            Eth2Message::BlockV2 { .. } => 1,
            Eth2Message::Attestation { .. } => 2,
            Eth2Message::AggregationSlot { .. } => 3,
            Eth2Message::AggregateAndProof { .. } => 4,
            Eth2Message::AggregateAndProofV2 { .. } => 5,
            Eth2Message::RandaoReveal { .. } => 6,
            Eth2Message::VoluntaryExit { .. } => 7,
            Eth2Message::SyncCommitteeMessage { .. } => 8,
            Eth2Message::SyncCommitteeSelectionProof { .. } => 9,
            Eth2Message::SyncCommitteeContributionAndProof { .. } => 10,
            Eth2Message::ValidatorRegistration { .. } => 11,
            Eth2Message::Deposit { .. } => 12,
        }
    }

    fn payload_ssz(&self) -> Vec<u8> {
        match self {
            Eth2Message::BlockV2 { block, .. } => match block {
                BeaconBlockRequest::Phase0(b) => b.as_ssz_bytes(),
                BeaconBlockRequest::Altair(b) => b.as_ssz_bytes(),
                BeaconBlockRequest::Bellatrix(h)
                | BeaconBlockRequest::Capella(h)
                | BeaconBlockRequest::Deneb(h)
                | BeaconBlockRequest::Electra(h)
                | BeaconBlockRequest::Fulu(h) => h.as_ssz_bytes(),
            },
            Eth2Message::Attestation { data, .. } => data.as_ssz_bytes(),
            Eth2Message::AggregationSlot { slot, .. } => slot.as_ssz_bytes(),
            Eth2Message::AggregateAndProof { message, .. } => message.as_ssz_bytes(),
            Eth2Message::AggregateAndProofV2 { message, .. } => match message {
                VersionedAggregateAndProof::Phase0 { message, .. } => message.as_ssz_bytes(),
                VersionedAggregateAndProof::Electra { message, .. } => message.as_ssz_bytes(),
            },
            Eth2Message::RandaoReveal { epoch, .. } => epoch.as_ssz_bytes(),
            Eth2Message::VoluntaryExit { exit, .. } => exit.as_ssz_bytes(),
            Eth2Message::SyncCommitteeMessage { message, .. } => message.as_ssz_bytes(),
            Eth2Message::SyncCommitteeSelectionProof { data, .. } => data.as_ssz_bytes(),
            Eth2Message::SyncCommitteeContributionAndProof { message, .. } => {
                message.as_ssz_bytes()
            }
            Eth2Message::ValidatorRegistration { registration } => registration.as_ssz_bytes(),
            Eth2Message::Deposit { message, .. } => message.as_ssz_bytes(),
        }
    }
}

/// Build the message of `tag` from its decoded header fields and payload bytes.
fn assemble(
    tag: u8,
    fork: Option<ForkName>,
    fork_info: Option<ForkInfo>,
    genesis_fork_version: Option<[u8; 4]>,
    payload: &[u8],
) -> Result<Eth2Message, Eth2Error> {
    // The header reader above guarantees which optionals are set for each tag; the checks
    // here keep this function total on its own.
    let fork_info = || fork_info.ok_or(Eth2Error::UnknownTag(tag));
    let fork = || fork.ok_or(Eth2Error::UnknownTag(tag));
    Ok(match tag {
        1 => Eth2Message::BlockV2 {
            fork_info: fork_info()?,
            block: match fork()? {
                ForkName::Phase0 => {
                    BeaconBlockRequest::Phase0(Box::new(decode::<phase0::BeaconBlock>(
                        payload, "BLOCK_V2",
                    )?))
                }
                ForkName::Altair => {
                    BeaconBlockRequest::Altair(Box::new(decode::<altair::BeaconBlock>(
                        payload, "BLOCK_V2",
                    )?))
                }
                later => {
                    let header = decode::<BeaconBlockHeader>(payload, "BLOCK_V2")?;
                    BeaconBlockRequest::from_header(later, header)
                        .ok_or(Eth2Error::UnknownForkTag(later.tag()))?
                }
            },
        },
        2 => Eth2Message::Attestation {
            fork_info: fork_info()?,
            data: decode::<AttestationData>(payload, "ATTESTATION")?,
        },
        3 => Eth2Message::AggregationSlot {
            fork_info: fork_info()?,
            slot: decode::<u64>(payload, "AGGREGATION_SLOT")?,
        },
        4 => Eth2Message::AggregateAndProof {
            fork_info: fork_info()?,
            message: Box::new(decode(payload, "AGGREGATE_AND_PROOF")?),
        },
        5 => Eth2Message::AggregateAndProofV2 {
            fork_info: fork_info()?,
            message: versioned_aggregate(fork()?, payload)?,
        },
        6 => Eth2Message::RandaoReveal {
            fork_info: fork_info()?,
            epoch: decode::<u64>(payload, "RANDAO_REVEAL")?,
        },
        7 => Eth2Message::VoluntaryExit {
            fork_info: fork_info()?,
            exit: decode::<VoluntaryExit>(payload, "VOLUNTARY_EXIT")?,
        },
        8 => Eth2Message::SyncCommitteeMessage {
            fork_info: fork_info()?,
            message: decode::<SyncCommitteeMessageData>(payload, "SYNC_COMMITTEE_MESSAGE")?,
        },
        9 => Eth2Message::SyncCommitteeSelectionProof {
            fork_info: fork_info()?,
            data: decode::<SyncAggregatorSelectionData>(payload, "SYNC_COMMITTEE_SELECTION_PROOF")?,
        },
        10 => Eth2Message::SyncCommitteeContributionAndProof {
            fork_info: fork_info()?,
            message: Box::new(decode::<ContributionAndProof>(
                payload,
                "SYNC_COMMITTEE_CONTRIBUTION_AND_PROOF",
            )?),
        },
        11 => Eth2Message::ValidatorRegistration {
            registration: decode::<ValidatorRegistration>(payload, "VALIDATOR_REGISTRATION")?,
        },
        12 => Eth2Message::Deposit {
            message: decode::<DepositMessage>(payload, "DEPOSIT")?,
            genesis_fork_version: genesis_fork_version.ok_or(Eth2Error::UnknownTag(tag))?,
        },
        other => return Err(Eth2Error::UnknownTag(other)),
    })
}

fn versioned_aggregate(
    fork: ForkName,
    payload: &[u8],
) -> Result<VersionedAggregateAndProof, Eth2Error> {
    const WHAT: &str = "AGGREGATE_AND_PROOF_V2";
    if let Some(version) = PreElectra::from_fork(fork) {
        return Ok(VersionedAggregateAndProof::Phase0 {
            version,
            message: Box::new(decode::<phase0::AggregateAndProof>(payload, WHAT)?),
        });
    }
    let version = PostElectra::from_fork(fork).ok_or(Eth2Error::UnknownForkTag(fork.tag()))?;
    Ok(VersionedAggregateAndProof::Electra {
        version,
        message: Box::new(decode::<electra::AggregateAndProof>(payload, WHAT)?),
    })
}

fn decode<T: Decode>(bytes: &[u8], what: &'static str) -> Result<T, Eth2Error> {
    T::from_ssz_bytes(bytes).map_err(|e| Eth2Error::InvalidSsz {
        what,
        reason: format!("{e:?}"),
    })
}

/// A cursor over the input that never reads past its end.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Eth2Error> {
        if self.0.len() < n {
            return Err(Eth2Error::Truncated {
                needed: n,
                available: self.0.len(),
            });
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn byte(&mut self) -> Result<u8, Eth2Error> {
        let mut b = [0u8; 1];
        b.copy_from_slice(self.take(1)?);
        Ok(b[0])
    }
}
