//! The sealed form of a validator key's secret, as replicas store and ship it: [`SealedKey`],
//! the KEK it names ([`KekRef`], [`BackendKind`]) and the two forms of its wrapped data key
//! ([`WrappedDataKey`]).
//!
//! Owns: these records and their JSON / binary forms. Must not: seal, unseal or talk to a KMS
//! (the node's custody module does), or hold plaintext.
//!
//! A record's data key is either its own (formats 1 to 3 wrote only these) or shared by the
//! records one node sealed one after another (format 4 on): `wrapped_dek` then starts with
//! [`SHARED_DATA_KEY_MAGIC`] and the shared key's id. The record's layout is the same in both
//! cases; format 4 is a new version so that an older binary refuses such records' databases
//! instead of reading a shared key as a record's own.

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

/// Leading bytes of a shared data key in [`SealedKey::wrapped_dek`].
///
/// A record's own data key never starts with them on purpose: a locally wrapped one starts
/// with a random nonce, a KMS ciphertext blob with KMS's own header. One that did by chance
/// (2^-128 for a random nonce) would be read as shared and fail to unwrap: closed, never another
/// key.
pub const SHARED_DATA_KEY_MAGIC: [u8; 16] = *b"qs/shared-dek/v1";

/// Length of a shared data key's id.
pub const DATA_KEY_ID_LEN: usize = 16;

/// What a record's `wrapped_dek` holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WrappedDataKey<'a> {
    /// A data key made for this record alone, wrapped by the KEK under the record's own
    /// encryption context: the KEK's bytes as they are.
    Own(&'a [u8]),
    /// A data key shared by several records: its random id, and the key wrapped by the KEK
    /// under the shared context for that id. Bytes: [`SHARED_DATA_KEY_MAGIC`], the id, then
    /// the KEK's bytes.
    Shared {
        /// The shared key's id (random; names it in the KEK's context and in errors).
        id: [u8; DATA_KEY_ID_LEN],
        /// The KEK's wrapped form of the shared key.
        wrapped: &'a [u8],
    },
}

/// A `wrapped_dek` that starts as a shared data key but is too short to hold one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "wrapped data key of {0} bytes starts as a shared data key but is shorter than its \
     {min}-byte header, id and wrapped key", min = SHARED_DATA_KEY_MAGIC.len() + DATA_KEY_ID_LEN + 1
)]
pub struct TruncatedSharedDataKey(pub usize);

impl<'a> WrappedDataKey<'a> {
    /// Reads a record's `wrapped_dek`.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, TruncatedSharedDataKey> {
        let Some(rest) = bytes.strip_prefix(SHARED_DATA_KEY_MAGIC.as_slice()) else {
            return Ok(WrappedDataKey::Own(bytes));
        };
        match rest.split_first_chunk::<DATA_KEY_ID_LEN>() {
            Some((id, wrapped)) if !wrapped.is_empty() => {
                Ok(WrappedDataKey::Shared { id: *id, wrapped })
            }
            _ => Err(TruncatedSharedDataKey(bytes.len())),
        }
    }

    /// The bytes of a record's `wrapped_dek` in this form.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            WrappedDataKey::Own(wrapped) => wrapped.to_vec(),
            WrappedDataKey::Shared { id, wrapped } => {
                let mut out = Vec::with_capacity(
                    SHARED_DATA_KEY_MAGIC.len() + DATA_KEY_ID_LEN + wrapped.len(),
                );
                out.extend_from_slice(&SHARED_DATA_KEY_MAGIC);
                out.extend_from_slice(id);
                out.extend_from_slice(wrapped);
                out
            }
        }
    }
}

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
    /// The data key: the record's own, wrapped by that KEK under the record's encryption
    /// context, or a shared one ([`WrappedDataKey`], read with [`SealedKey::data_key`]).
    #[serde(with = "hex_bytes")]
    pub wrapped_dek: Vec<u8>,
    /// The AES-GCM nonce.
    #[serde(with = "hex_nonce")]
    pub nonce: [u8; NONCE_LEN],
    /// The secret encrypted with AES-256-GCM, tag appended.
    #[serde(with = "hex_bytes")]
    pub ciphertext: Vec<u8>,
}

impl SealedKey {
    /// The record's data key, in its form ([`WrappedDataKey`]).
    pub fn data_key(&self) -> Result<WrappedDataKey<'_>, TruncatedSharedDataKey> {
        WrappedDataKey::parse(&self.wrapped_dek)
    }
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

#[cfg(test)]
mod tests;
