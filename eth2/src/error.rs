//! The one error type of this crate: why a request could not be decoded, or why no signing root
//! may be computed for it.
//!
//! Owns: [`Eth2Error`] and its stable [`Eth2Error::code`] strings (fixtures and the signer's
//! status mapping key on them). Must not: embed whole request bodies (they can be large and are
//! logged by callers) or anything secret.

use crate::{Root, Version};

/// Why a message was refused before any signing root was computed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Eth2Error {
    /// The body is not JSON, or not a JSON object.
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    /// A required field is absent (or `null`). `field` is a path such as `attestation.source`.
    #[error("missing field `{field}`")]
    MissingField {
        /// Path of the missing field.
        field: String,
    },
    /// A field is present but has the wrong type, length or value.
    #[error("invalid field `{field}`: {reason}")]
    InvalidField {
        /// Path of the field, e.g. `beacon_block.block.body.attestations[0].aggregation_bits`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The request `type` is not one this signer knows.
    #[error("unknown signing type `{0}`")]
    UnknownType(String),
    /// A built-in network name that does not exist.
    #[error("unknown network `{0}` (built in: mainnet, sepolia, holesky, hoodi)")]
    UnknownNetwork(String),
    /// The request's `fork_info.genesis_validators_root` is another network's.
    #[error(
        "genesis_validators_root 0x{} is not this network's (0x{})",
        hex::encode(.got),
        hex::encode(.expected)
    )]
    GenesisValidatorsRootMismatch {
        /// The network's root.
        expected: Root,
        /// The request's root.
        got: Root,
    },
    /// A deposit's `genesis_fork_version` is another network's.
    #[error(
        "genesis_fork_version 0x{} is not this network's (0x{})",
        hex::encode(.got),
        hex::encode(.expected)
    )]
    GenesisForkVersionMismatch {
        /// The network's genesis fork version.
        expected: Version,
        /// The request's.
        got: Version,
    },
    /// A fork version (here: `fork_info.fork.current_version` of a voluntary exit) that is not in
    /// the network's fork schedule, so the EIP-7044 rule cannot be decided.
    #[error("fork version 0x{} is not in this network's fork schedule", hex::encode(.version))]
    UnknownForkVersion {
        /// The version the request named.
        version: Version,
    },
    /// Binary form: the format version byte is not one this build reads.
    #[error("unsupported wire format version {0}")]
    UnsupportedFormat(u8),
    /// Binary form: unknown message type tag.
    #[error("unknown message type tag {0}")]
    UnknownTag(u8),
    /// Binary form: unknown fork tag.
    #[error("unknown fork tag {0}")]
    UnknownForkTag(u8),
    /// Binary form: the input ends early.
    #[error("truncated input: {needed} more bytes needed, {available} available")]
    Truncated {
        /// Bytes the next field needs.
        needed: usize,
        /// Bytes left.
        available: usize,
    },
    /// Binary form: bytes after the end of the message.
    #[error("{0} trailing bytes after the message")]
    TrailingBytes(usize),
    /// Binary form: a container's SSZ does not decode.
    #[error("invalid SSZ for {what}: {reason}")]
    InvalidSsz {
        /// Which container.
        what: &'static str,
        /// The decoder's reason.
        reason: String,
    },
    /// Binary form: the bytes decode, but are not the canonical encoding of what they decode to.
    #[error("non-canonical encoding")]
    NonCanonical,
}

impl Eth2Error {
    /// A stable, lower-case code for this error kind (fixtures and status mapping use it).
    pub fn code(&self) -> &'static str {
        match self {
            Eth2Error::MalformedJson(_) => "malformed_json",
            Eth2Error::MissingField { .. } => "missing_field",
            Eth2Error::InvalidField { .. } => "invalid_field",
            Eth2Error::UnknownType(_) => "unknown_type",
            Eth2Error::UnknownNetwork(_) => "unknown_network",
            Eth2Error::GenesisValidatorsRootMismatch { .. } => "genesis_validators_root_mismatch",
            Eth2Error::GenesisForkVersionMismatch { .. } => "genesis_fork_version_mismatch",
            Eth2Error::UnknownForkVersion { .. } => "unknown_fork_version",
            Eth2Error::UnsupportedFormat(_) => "unsupported_format",
            Eth2Error::UnknownTag(_) => "unknown_tag",
            Eth2Error::UnknownForkTag(_) => "unknown_fork_tag",
            Eth2Error::Truncated { .. } => "truncated",
            Eth2Error::TrailingBytes(_) => "trailing_bytes",
            Eth2Error::InvalidSsz { .. } => "invalid_ssz",
            Eth2Error::NonCanonical => "non_canonical",
        }
    }

    /// True when the request itself is malformed (a client error), as opposed to a well-formed
    /// request for another network or fork.
    pub fn is_malformed(&self) -> bool {
        matches!(
            self,
            Eth2Error::MalformedJson(_)
                | Eth2Error::MissingField { .. }
                | Eth2Error::InvalidField { .. }
                | Eth2Error::UnknownType(_)
                | Eth2Error::UnsupportedFormat(_)
                | Eth2Error::UnknownTag(_)
                | Eth2Error::UnknownForkTag(_)
                | Eth2Error::Truncated { .. }
                | Eth2Error::TrailingBytes(_)
                | Eth2Error::InvalidSsz { .. }
                | Eth2Error::NonCanonical
        )
    }
}
