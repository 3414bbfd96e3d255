//! HotShot's VID payload commitment, computed by the signer from the payload itself.
//!
//! Owns: [`payload_commitment`], which turns a block payload (HotShot's `encoded_transactions`),
//! its namespace table (the sequencer's `ns_table` bytes, HotShot's block `metadata`) and the
//! VID parameters into the 32 bytes a leader signs for a "VID disperse" and for every VID share
//! (`TYPES::SignatureKey::sign(key, payload_commitment.as_ref())`,
//! crates/hotshot/task-impls/src/vid.rs@dea934dc and `VidDisperseShare::to_proposal`,
//! crates/hotshot/types/src/data.rs@d4cc0d58). With it the signer never signs a 32-byte value a
//! client chose.
//!
//! Must not: do IO, allocate without bound, panic on any input, or accept a namespace table
//! that HotShot would silently replace (see [`ns_table`]): the caller gets [`VidError`].
//!
//! # Schemes (see `tests/vectors/espresso/VID.md` for the full derivation)
//! | [`VidVersion`] | HotShot protocol | upstream type, tag |
//! |---|---|---|
//! | — (ADVZ, left out) | < 0.3 | `jf_advz::Advz<Bn254, Sha256>`, `HASH~` |
//! | [`VidVersion::AvidM`] | 0.3 ≤ v < 0.6 | `vid::avidm::namespaced::NsAvidMScheme`, `AvidMCommit~` |
//! | [`VidVersion::AvidmGf2`] | ≥ 0.6 | `vid::avidm_gf2::namespaced::NsAvidmGf2Scheme`, `AvidmGf2Commit~` |
//!
//! `vid_commitment` (crates/hotshot/types/src/data.rs@d4cc0d58) picks ADVZ below `Epochs`
//! (0.3), AvidM below the VID upgrade and AvidmGf2 from it on; crates/versions/src/lib.rs@05537b7b
//! names that upgrade `VID2_UPGRADE_VERSION = 0.6`.
//!
//! Both AVID-M variants commit the same way at the top ([`merkle`]): one commitment per namespace
//! range, then a jf-merkle-tree root over those 32-byte commitments: Keccak-256, arity 3 for
//! AvidM (jellyfish tag `jf-merkle-tree-v0.4.0`, c6f31145); BLAKE3, arity 4 for AvidmGf2 (its
//! own `MerkleTree`). Per namespace:
//! - AvidM ([`avidm`]; vid/src/avidm.rs@0ffc8d86, vid/src/avidm/config.rs@88c3d0bd with the
//!   `keccak256` feature HotShot enables in espresso-network Cargo.toml@00be77a7): bytes →
//!   BN254 Fr elements, Reed-Solomon by FFT over the radix-2 domain, Keccak per share, Merkle root.
//! - AvidmGf2 ([`avidm_gf2`]; vid/src/avidm_gf2.rs, namespaced.rs@0e2edb1b): bytes →
//!   `recovery_threshold` shards, `reed-solomon-simd` 3.1 GF(2^16) recovery shards (none for a
//!   total weight of 1), BLAKE3 per shard, Merkle root. The newest hotshot-types
//!   (`avidm_gf2_binding`) binds only the namespace commitments (`NsCommitsOnly`) for every
//!   version, which is the layout implemented here.
//!
//! Parameters: `total_weight` is HotShot's `total_weight` argument (for epoch versions the
//! stake table's VID weight, `vid_total_weight`/`approximate_weights` in
//! crates/hotshot/types/src/data/vid_disperse.rs@0a924ece: stakes scaled to 1000 plus one per
//! node when the total exceeds 1000); `recovery_threshold = ceil(total_weight / 3)`
//! (`init_avidm_param`, `init_avidm_gf2_param`).
//!
//! ADVZ is not implemented: its commitment is a hash of KZG polynomial commitments under the
//! Aztec ignition SRS (`ark_srs::kzg10::aztec20::setup(SRS_DEGREE)`,
//! crates/hotshot/types/src/vid/advz.rs@dea934dc), which is fetched from a ceremony transcript at
//! run time and cannot be vendored here; pre-0.3 protocol versions are refused
//! ([`VidError::UnsupportedProtocol`]).
//!
//! To ensure correctness:
//! - the commitment is recomputed from the payload on every call; nothing client-supplied is
//!   trusted as a digest;
//! - a namespace table is accepted only if HotShot's `parse_ns_table` would use it as written
//!   (no fallback to one namespace), so the signer and HotShot see the same ranges;
//! - every size is bounded before any work: payload ([`MAX_PAYLOAD_BYTES`]), namespaces
//!   ([`MAX_NAMESPACES`]), total weight ([`MAX_TOTAL_WEIGHT`]);
//! - known answers: real HotShot output from espresso-network `data/legacy-chains/v3` (AvidM,
//!   total weights 1, 5 and 1003) and `data/v6/new_protocol_messages.json` (AvidmGf2, a
//!   namespace commitment and two payload commitments), and vectors from the independent
//!   Python reference `tests/vectors/espresso/vid_ref.py` (both schemes), checked in
//!   `tests.rs`.

pub mod avidm;
pub mod avidm_gf2;
pub mod merkle;
pub mod ns_table;

#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

use crate::scheme::bn254::tagged;

/// Largest payload accepted, in bytes: 8 MiB. Espresso mainnet's chain config allows 1 MB
/// blocks (`max_block_size = "1mb"`, data/genesis/mainnet.toml@4d8204ca); the margin leaves
/// room for a larger-block upgrade while bounding the work (about 3× the payload in memory).
pub const MAX_PAYLOAD_BYTES: usize = 8 << 20;

/// Most namespaces accepted in one table. Each namespace costs at least one full encoding,
/// whatever its size, so this bounds the work an empty-namespace flood can cause. A
/// signer-side limit: HotShot itself has none.
pub const MAX_NAMESPACES: usize = 256;

/// Largest `total_weight` accepted. HotShot scales the stake table to about 1000 plus one per
/// node (`VID_TARGET_TOTAL_STAKE`), and mainnet's stake table holds at most 200 validators
/// (`capacity = 200`), so real values stay near 1200. With this cap and [`MAX_NAMESPACES`] the
/// worst input (256 empty namespaces at weight 4096) takes about 2 s in a release build; a
/// 1 MB payload at weight 1200 takes 30–60 ms.
pub const MAX_TOTAL_WEIGHT: u32 = 4096;

/// Which VID scheme computes the commitment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VidVersion {
    /// AVID-M over BN254 Fr (`AvidMCommit~`), HotShot protocol 0.3 up to 0.6.
    AvidM,
    /// AVID-M over GF(2^16) (`AvidmGf2Commit~`), HotShot protocol 0.6 on.
    AvidmGf2,
}

impl VidVersion {
    /// The scheme HotShot uses for blocks of protocol version `major.minor`.
    pub fn for_protocol(major: u16, minor: u16) -> Result<Self, VidError> {
        match (major, minor) {
            (0, m) if m < 3 => Err(VidError::UnsupportedProtocol { major, minor }),
            (0, m) if m < 6 => Ok(Self::AvidM),
            _ => Ok(Self::AvidmGf2),
        }
    }

    /// The tagged-base64 tag of this scheme's commitment.
    pub fn tag(self) -> &'static str {
        match self {
            Self::AvidM => "AvidMCommit",
            Self::AvidmGf2 => "AvidmGf2Commit",
        }
    }
}

/// VID parameters, as HotShot derives them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VidParams {
    /// HotShot's `total_weight` (`vid_commitment(txs, metadata, total_weight, version)`): the
    /// number of storage shares, i.e. the VID weight of the target epoch's stake table. Must be
    /// 1..=[`MAX_TOTAL_WEIGHT`].
    pub total_weight: u32,
}

impl VidParams {
    /// `ceil(total_weight / 3)`: the shares needed to recover a payload.
    pub fn recovery_threshold(&self) -> u32 {
        self.total_weight.div_ceil(3)
    }
}

/// Why a commitment could not be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VidError {
    /// The payload exceeds [`MAX_PAYLOAD_BYTES`].
    #[error("payload of {len} bytes exceeds the limit of {max} bytes")]
    PayloadTooLarge {
        /// Payload length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// `total_weight` is 0, above [`MAX_TOTAL_WEIGHT`], or too small for the scheme.
    #[error("total_weight {total_weight} is outside {min}..={max} for this scheme")]
    BadTotalWeight {
        /// The value given.
        total_weight: u32,
        /// Smallest accepted.
        min: u32,
        /// Largest accepted.
        max: u32,
    },
    /// The namespace table is malformed or does not describe the payload.
    #[error("namespace table rejected: {0}")]
    NsTable(String),
    /// A protocol version whose scheme is not implemented (ADVZ, below 0.3).
    #[error("protocol {major}.{minor} uses ADVZ VID, which this signer does not compute")]
    UnsupportedProtocol {
        /// Major version.
        major: u16,
        /// Minor version.
        minor: u16,
    },
    /// The Reed-Solomon encoder refused the parameters.
    #[error("erasure coding failed: {0}")]
    Encoding(String),
    /// Not a commitment of this form.
    #[error("bad VID commitment encoding: {0}")]
    BadCommitment(String),
}

/// A VID payload commitment: 32 bytes and the scheme that made them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VidCommitment {
    version: VidVersion,
    bytes: [u8; 32],
}

impl VidCommitment {
    /// Wrap 32 bytes computed by `version`.
    pub fn new(version: VidVersion, bytes: [u8; 32]) -> Self {
        Self { version, bytes }
    }

    /// The scheme.
    pub fn version(&self) -> VidVersion {
        self.version
    }

    /// Exactly the bytes HotShot signs: `payload_commitment.as_ref()`, the 32-byte Merkle root.
    pub fn signed_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The 32 bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.bytes
    }

    /// The upstream text form, e.g. `AvidMCommit~…` (tagged-base64 of the 32 bytes).
    pub fn to_tagged(&self) -> String {
        tagged::encode(self.version.tag(), &self.bytes)
    }

    /// Parse the upstream text form (`AvidMCommit~…` or `AvidmGf2Commit~…`).
    pub fn from_tagged(text: &str) -> Result<Self, VidError> {
        for version in [VidVersion::AvidM, VidVersion::AvidmGf2] {
            let prefix = version.tag();
            if text.split_once('~').map(|(tag, _)| tag) == Some(prefix) {
                let raw = tagged::decode(text, prefix)
                    .map_err(|e| VidError::BadCommitment(e.to_string()))?;
                let bytes: [u8; 32] = raw
                    .try_into()
                    .map_err(|_| VidError::BadCommitment("not 32 bytes".into()))?;
                return Ok(Self { version, bytes });
            }
        }
        Err(VidError::BadCommitment(
            "expected tag AvidMCommit or AvidmGf2Commit".into(),
        ))
    }
}

/// JSON form: `{"version": "avid-m", "commitment": "0x…"}`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CommitmentJson {
    version: VidVersion,
    commitment: String,
}

impl Serialize for VidCommitment {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        CommitmentJson {
            version: self.version,
            commitment: format!("0x{}", hex::encode(self.bytes)),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for VidCommitment {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let json = CommitmentJson::deserialize(deserializer)?;
        let digits = json
            .commitment
            .strip_prefix("0x")
            .ok_or_else(|| D::Error::custom("commitment must start with 0x"))?;
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(digits, &mut bytes)
            .map_err(|e| D::Error::custom(format!("commitment: {e}")))?;
        Ok(Self {
            version: json.version,
            bytes,
        })
    }
}

/// HotShot's `vid_commitment` for `version`: the commitment a leader signs for a VID disperse
/// and for each share of `payload` with namespace table `ns_table` under `params`.
pub fn payload_commitment(
    version: VidVersion,
    payload: &[u8],
    ns_table: &[u8],
    params: &VidParams,
) -> Result<VidCommitment, VidError> {
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(VidError::PayloadTooLarge {
            len: payload.len(),
            max: MAX_PAYLOAD_BYTES,
        });
    }
    let min = 1;
    if params.total_weight < min || params.total_weight > MAX_TOTAL_WEIGHT {
        return Err(VidError::BadTotalWeight {
            total_weight: params.total_weight,
            min,
            max: MAX_TOTAL_WEIGHT,
        });
    }
    let ranges = ns_table::parse(payload.len(), ns_table)?;
    let mut ns_roots = Vec::with_capacity(ranges.len());
    for range in ranges {
        let ns_payload = payload
            .get(range)
            .ok_or_else(|| VidError::NsTable("namespace range outside the payload".into()))?;
        let root = match version {
            VidVersion::AvidM => avidm::commit(params, ns_payload)?,
            VidVersion::AvidmGf2 => avidm_gf2::commit(params, ns_payload)?,
        };
        ns_roots.push(root);
    }
    let tree = match version {
        VidVersion::AvidM => merkle::Tree::Keccak3,
        VidVersion::AvidmGf2 => merkle::Tree::Blake3x4,
    };
    Ok(VidCommitment {
        version,
        bytes: tree.root(&ns_roots),
    })
}
