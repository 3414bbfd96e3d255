//! The sealed form of a validator key's secret, as replicas store and ship it: [`SealedKey`]
//! and the KEK it names ([`KekRef`], [`BackendKind`]).
//!
//! Owns: these records and their JSON / binary forms. Must not: seal, unseal or talk to a KMS
//! (the node's custody module does), or hold plaintext.

use serde::{Deserialize, Serialize};

/// Which kind of KEK wrapped a data key. Serialized as `"local"` or `"aws-kms"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackendKind {
    /// the node's local KEK: a key file on the node (development and demos only).
    Local,
    /// AWS KMS (`aws::AwsKms`).
    AwsKms,
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BackendKind::Local => "local",
            BackendKind::AwsKms => "aws-kms",
        })
    }
}

/// Names the KEK a record was sealed under: the backend and the key's id there (for AWS KMS the
/// configured key id, ARN or alias; for a local KEK a hex fingerprint of the key; displayed as `local:<hex>`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KekRef {
    /// The backend.
    pub backend: BackendKind,
    /// The key's id in that backend.
    pub key_id: String,
}

impl std::fmt::Display for KekRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.backend, self.key_id)
    }
}

/// Length of an AES-GCM nonce in bytes.
pub const NONCE_LEN: usize = 12;

/// Length of an AES-GCM tag in bytes.
pub const TAG_LEN: usize = 16;

/// A secret encrypted under a data key that a KEK wrapped: the replicated form of a key's
/// secret. Holds no plaintext. In JSON every byte string is `0x`-prefixed lower-case hex:
///
/// ```json
/// {"kek":{"backend":"aws-kms","key_id":"alias/signer"},
///  "wrapped_dek":"0x…","nonce":"0x…","ciphertext":"0x…"}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealedKey {
    /// The KEK that wrapped the data key.
    pub kek: KekRef,
    /// The data key, wrapped by that KEK under the record's encryption context.
    #[serde(with = "hex_bytes")]
    pub wrapped_dek: Vec<u8>,
    /// The AES-GCM nonce.
    #[serde(with = "hex_nonce")]
    pub nonce: [u8; NONCE_LEN],
    /// The secret encrypted with AES-256-GCM, tag appended.
    #[serde(with = "hex_bytes")]
    pub ciphertext: Vec<u8>,
}

mod hex_bytes {
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        crate::bytes::hex_or_raw::serialize(bytes, s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        crate::bytes::hex_or_raw::deserialize(d)
    }
}

mod hex_nonce {
    use super::NONCE_LEN;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(nonce: &[u8; NONCE_LEN], s: S) -> Result<S::Ok, S::Error> {
        crate::bytes::hex_or_raw::serialize(nonce, s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; NONCE_LEN], D::Error> {
        let bytes = crate::bytes::hex_or_raw::deserialize(d)?;
        <[u8; NONCE_LEN]>::try_from(bytes.as_slice()).map_err(|_| {
            serde::de::Error::custom(format!(
                "nonce must be {NONCE_LEN} bytes, got {}",
                bytes.len()
            ))
        })
    }
}
