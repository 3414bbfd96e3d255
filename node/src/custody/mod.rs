//! Key custody: how validator secrets are kept encrypted at rest and in the replicated state.
//!
//! Owns: the [`Kek`] trait (a key-encryption key that makes and unwraps 256-bit data keys), the
//! [`EncryptionContext`] every wrap and seal is bound to, the [`KekRef`] naming a KEK in a
//! record, the node's [`KekConfig`] and the [`KekBackend`] built from it, and the custody error
//! type. The envelope format lives in [`envelope`], data keys shared by many records in
//! [`shared`], the backends in [`local`] and `aws` (feature `aws-kms`), process memory hygiene
//! in [`hygiene`].
//! Must not: decide which keys exist or may sign (the replicated state machine does), read node
//! config files (the config module hands over a [`KekConfig`]), or print, log, clone or
//! serialize a plaintext secret or data key.
//!
//! To ensure correctness:
//! - every data key is made for, and unwraps only under, one [`EncryptionContext`]: a record's
//!   own (cluster id, key id, purpose) or a shared key's ([`shared::shared_context`]); every
//!   record is also bound to its own context as AES-GCM associated data, so a record moved to
//!   another key, purpose or cluster does not open;
//! - plaintext data keys exist only in [`Zeroizing`] buffers inside a [`DataKey`] or returned by
//!   [`Kek::unwrap_data_key`], and callers drop them as soon as they have used them; unsealed
//!   secrets are [`SecretBytes`] (zeroizing, redacted `Debug`, no `Clone`/`Serialize`);
//! - errors name the KEK, the context and what went wrong, never key material;
//! - a record names the KEK it was sealed under ([`KekRef`]) and is only opened with that KEK.

pub mod envelope;
pub mod hygiene;
pub mod local;
pub mod shared;

#[cfg(test)]
pub(crate) mod counting;

#[cfg(feature = "aws-kms")]
pub mod aws;

pub use envelope::{seal, unseal, unseal_in, SealedKey, WrappedDataKey};
pub use local::LocalKek;
pub use shared::{OpenedDataKeys, SharedSealer};
pub use signer_core::sealed::{BackendKind, KekRef};

#[cfg(feature = "aws-kms")]
pub use aws::{AwsKms, KmsError};

use serde::{Deserialize, Serialize};
use std::future::Future;
use std::path::PathBuf;
use zeroize::Zeroizing;

/// Length of a data key (AES-256) in bytes.
pub const DATA_KEY_LEN: usize = 32;

/// The purpose of data keys that protect validator signing keys.
pub const PURPOSE_VALIDATOR_KEY: &str = "validator-key";

/// Longest accepted encryption-context field, in bytes.
pub const MAX_CONTEXT_FIELD_LEN: usize = 256;

/// Errors of the custody layer. None of them carries key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CustodyError {
    /// An encryption-context field is unusable.
    #[error("encryption context field `{field}`: {reason}")]
    InvalidContext {
        /// `cluster_id`, `key_id` or `purpose`.
        field: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// A shared data key did not unwrap (every record sealed under it fails the same way).
    #[error("shared data key {name}: {reason}")]
    SharedDataKey {
        /// The shared key's name (`shared::data_key_name`).
        name: String,
        /// Why, as the KEK said it.
        reason: String,
    },
    /// The record was sealed under another KEK than the one offered to open it.
    #[error("sealed under KEK {record}, but the configured KEK is {configured}")]
    KekMismatch {
        /// The KEK the record names.
        record: KekRef,
        /// The KEK that was asked to open it.
        configured: KekRef,
    },
    /// The sealed secret does not authenticate under its data key and this context.
    #[error(
        "sealed key for {context} does not authenticate: wrong encryption context, \
         another record's ciphertext, another cluster's record, or tampered bytes"
    )]
    Unauthentic {
        /// The context that was tried.
        context: EncryptionContext,
    },
    /// A data key does not unwrap under the local KEK with this context.
    #[error(
        "data key does not unwrap under local KEK {kek} for {context}: \
         wrong context or not our wrapped key"
    )]
    LocalUnwrap {
        /// The local KEK.
        kek: String,
        /// The context that was tried.
        context: EncryptionContext,
    },
    /// A record or wrapped key has an impossible shape.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// What was malformed, e.g. `wrapped data key`.
        what: &'static str,
        /// Why (lengths, never contents).
        reason: String,
    },
    /// The local KEK file cannot be used.
    #[error("local KEK file {path}: {reason}")]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: KeyFileProblem,
    },
    /// The AWS KMS backend failed.
    #[cfg(feature = "aws-kms")]
    #[error(transparent)]
    Kms(#[from] KmsError),
    /// The configured backend is not compiled into this binary.
    #[error("KEK backend `{0}` is not available in this build (enable the `aws-kms` feature)")]
    BackendUnavailable(BackendKind),
    /// The KEK configuration cannot work.
    #[error("KEK config: {0}")]
    Config(String),
    /// The operating system's random number generator failed.
    #[error("random number generator failed: {0}")]
    Random(String),
    /// AES-GCM refused to encrypt (input too long).
    #[error("AES-256-GCM encryption failed ({len} bytes)")]
    Encrypt {
        /// The length of the input.
        len: usize,
    },
}

/// What is wrong with a local KEK file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileProblem {
    /// Reading, creating or syncing failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// `create` refuses to replace an existing file.
    #[error("already exists; refusing to overwrite a KEK")]
    Exists,
    /// The file is readable, writable or executable beyond its owner's read/write.
    #[error("mode {0:o} is wider than 0600; chmod 600 it")]
    TooOpen(u32),
    /// The file does not hold exactly one key.
    #[error("holds {0} bytes, a KEK file holds exactly 32")]
    WrongLength(u64),
    /// The path is not a regular file.
    #[error("not a regular file")]
    NotAFile,
}

impl CustodyError {
    /// True when the failure is transient (KMS unreachable, throttled or failing internally), so
    /// the same call may succeed later; false when retrying cannot help (wrong context, tampered
    /// record, disabled key, bad config).
    pub fn is_retryable(&self) -> bool {
        match self {
            #[cfg(feature = "aws-kms")]
            CustodyError::Kms(kms) => kms.is_retryable(),
            CustodyError::Random(_) => true,
            _ => false,
        }
    }
}

/// What a data key is for: the cluster, the validator key and the purpose. Passed to the KEK
/// (as the KMS encryption context) and bound into the envelope as AES-GCM associated data.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncryptionContext {
    cluster_id: String,
    key_id: String,
    purpose: String,
}

impl EncryptionContext {
    /// A context; each field must be 1 to [`MAX_CONTEXT_FIELD_LEN`] bytes without control
    /// characters.
    pub fn new(
        cluster_id: impl Into<String>,
        key_id: impl Into<String>,
        purpose: impl Into<String>,
    ) -> Result<Self, CustodyError> {
        let ctx = EncryptionContext {
            cluster_id: cluster_id.into(),
            key_id: key_id.into(),
            purpose: purpose.into(),
        };
        ctx.validate()?;
        Ok(ctx)
    }

    /// The context of a validator signing key ([`PURPOSE_VALIDATOR_KEY`]).
    pub fn validator_key(
        cluster_id: impl Into<String>,
        key_id: impl Into<String>,
    ) -> Result<Self, CustodyError> {
        Self::new(cluster_id, key_id, PURPOSE_VALIDATOR_KEY)
    }

    /// The cluster id.
    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    /// The validator key's id.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The purpose, e.g. [`PURPOSE_VALIDATOR_KEY`].
    pub fn purpose(&self) -> &str {
        &self.purpose
    }

    /// Checks the fields (also after deserializing, which bypasses [`EncryptionContext::new`]).
    pub fn validate(&self) -> Result<(), CustodyError> {
        for (field, value) in self.fields() {
            let reason = if value.is_empty() {
                "is empty"
            } else if value.len() > MAX_CONTEXT_FIELD_LEN {
                "is longer than 256 bytes"
            } else if value.chars().any(char::is_control) {
                "contains a control character"
            } else {
                continue;
            };
            return Err(CustodyError::InvalidContext { field, reason });
        }
        Ok(())
    }

    /// The fields as (name, value) pairs, in canonical order. These names are also the KMS
    /// encryption-context keys.
    pub fn fields(&self) -> [(&'static str, &str); 3] {
        [
            ("cluster_id", &self.cluster_id),
            ("key_id", &self.key_id),
            ("purpose", &self.purpose),
        ]
    }

    /// The canonical byte encoding used as associated data: `quorum-signer/<label>/v1`, a zero
    /// byte, then each field in [`EncryptionContext::fields`] order as a big-endian `u16`
    /// length followed by its UTF-8 bytes. Distinct contexts (and labels) give distinct bytes.
    pub fn canonical_bytes(&self, label: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(32 + label.len() + 3 * (2 + MAX_CONTEXT_FIELD_LEN));
        out.extend_from_slice(b"quorum-signer/");
        out.extend_from_slice(label.as_bytes());
        out.extend_from_slice(b"/v1\0");
        for (_, value) in self.fields() {
            // Fields are at most MAX_CONTEXT_FIELD_LEN (256) bytes once validated; saturate
            // rather than wrap for an unvalidated one, whose use fails validation anyway.
            let len = u16::try_from(value.len()).unwrap_or(u16::MAX);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(value.as_bytes());
        }
        out
    }
}

impl std::fmt::Display for EncryptionContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cluster {:?} key {:?} purpose {:?}",
            self.cluster_id, self.key_id, self.purpose
        )
    }
}

/// A plaintext secret (e.g. an unsealed validator key): zeroized on drop, `Debug` prints
/// `<redacted>`, neither `Clone` nor `Serialize`. Read it with [`SecretBytes::expose_secret`].
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    /// Takes ownership of a zeroizing buffer.
    pub fn new(bytes: Zeroizing<Vec<u8>>) -> Self {
        SecretBytes(bytes)
    }

    /// The secret's bytes, for handing to the code that uses it (e.g. a scheme's key parser).
    pub fn expose_secret(&self) -> &[u8] {
        &self.0
    }

    /// The length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True if the secret is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBytes(<redacted>)")
    }
}

/// A fresh data key: the plaintext (for one encryption, then dropped) and the same key wrapped
/// by the KEK (stored in the record). `Debug` shows only the wrapped length.
pub struct DataKey {
    plaintext: Zeroizing<[u8; DATA_KEY_LEN]>,
    wrapped: Vec<u8>,
}

impl DataKey {
    /// Pairs a plaintext data key with its wrapped form (for KEK implementations).
    pub fn new(plaintext: Zeroizing<[u8; DATA_KEY_LEN]>, wrapped: Vec<u8>) -> Self {
        DataKey { plaintext, wrapped }
    }

    /// The plaintext data key.
    pub fn plaintext(&self) -> &[u8; DATA_KEY_LEN] {
        &self.plaintext
    }

    /// The wrapped data key, as the KEK returned it.
    pub fn wrapped(&self) -> &[u8] {
        &self.wrapped
    }

    /// Gives up the wrapped key; the plaintext is zeroized as `self` drops.
    pub fn into_wrapped(self) -> Vec<u8> {
        let DataKey { plaintext, wrapped } = self;
        drop(plaintext);
        wrapped
    }
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataKey")
            .field("plaintext", &"<redacted>")
            .field("wrapped_len", &self.wrapped.len())
            .finish()
    }
}

/// A key-encryption key: makes data keys bound to a context and unwraps them under the same
/// context. Implementations never log or return key material in errors.
pub trait Kek: Send + Sync {
    /// Names this KEK (recorded in every [`SealedKey`] it seals).
    fn descriptor(&self) -> KekRef;

    /// A fresh random 256-bit data key and its wrapped form, bound to `ctx`.
    fn generate_data_key(
        &self,
        ctx: &EncryptionContext,
    ) -> impl Future<Output = Result<DataKey, CustodyError>> + Send;

    /// The plaintext of a data key this KEK wrapped under the same `ctx`; any other context, or
    /// bytes this KEK did not produce, fail.
    fn unwrap_data_key(
        &self,
        wrapped: &[u8],
        ctx: &EncryptionContext,
    ) -> impl Future<Output = Result<Zeroizing<[u8; DATA_KEY_LEN]>, CustodyError>> + Send;
}

/// The node's KEK, as configured (`[kek]` in the node config).
///
/// ```toml
/// [kek]
/// backend = "aws-kms"
/// key_id = "alias/quorum-signer"          # key id, ARN or alias
/// region = "eu-west-1"                    # optional; else the standard AWS chain
/// endpoint_url = "http://127.0.0.1:5000"  # optional; e.g. a local KMS for tests
/// ```
/// or, for development and demos only:
/// ```toml
/// [kek]
/// backend = "local"
/// path = "kek.bin"
/// ```
/// AWS credentials always come from the standard chain (environment variables such as
/// `AWS_ACCESS_KEY_ID`, profile files, web identity, container or instance roles), never from
/// this file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "backend", rename_all = "kebab-case", deny_unknown_fields)]
pub enum KekConfig {
    /// A local KEK file ([`LocalKek`]), which must exist (see [`LocalKek::create`]).
    Local {
        /// The 32-byte key file, mode 0600.
        path: PathBuf,
    },
    /// An AWS KMS symmetric key.
    AwsKms {
        /// Key id, key ARN, alias name (`alias/…`) or alias ARN.
        key_id: String,
        /// AWS region; if absent, the standard chain (`AWS_REGION`, profile, instance metadata).
        #[serde(default)]
        region: Option<String>,
        /// Endpoint override, e.g. a VPC endpoint or a local KMS in tests.
        #[serde(default)]
        endpoint_url: Option<String>,
    },
}

impl KekConfig {
    /// Opens the configured KEK: reads and checks the local key file, or loads the AWS
    /// configuration (region, credentials chain, HTTPS client; no request is sent yet).
    pub async fn build(&self) -> Result<KekBackend, CustodyError> {
        match self {
            KekConfig::Local { path } => Ok(KekBackend::Local(LocalKek::open(path)?)),
            #[cfg(feature = "aws-kms")]
            KekConfig::AwsKms {
                key_id,
                region,
                endpoint_url,
            } => Ok(KekBackend::AwsKms(
                AwsKms::load(key_id, region.as_deref(), endpoint_url.as_deref()).await?,
            )),
            #[cfg(not(feature = "aws-kms"))]
            KekConfig::AwsKms { .. } => Err(CustodyError::BackendUnavailable(BackendKind::AwsKms)),
        }
    }
}

/// A KEK of any compiled-in backend, as built from a [`KekConfig`].
#[derive(Debug)]
#[non_exhaustive]
pub enum KekBackend {
    /// A local key file.
    Local(LocalKek),
    /// AWS KMS.
    #[cfg(feature = "aws-kms")]
    AwsKms(AwsKms),
}

impl Kek for KekBackend {
    fn descriptor(&self) -> KekRef {
        match self {
            KekBackend::Local(kek) => kek.descriptor(),
            #[cfg(feature = "aws-kms")]
            KekBackend::AwsKms(kek) => kek.descriptor(),
        }
    }

    async fn generate_data_key(&self, ctx: &EncryptionContext) -> Result<DataKey, CustodyError> {
        match self {
            KekBackend::Local(kek) => kek.generate_data_key(ctx).await,
            #[cfg(feature = "aws-kms")]
            KekBackend::AwsKms(kek) => kek.generate_data_key(ctx).await,
        }
    }

    async fn unwrap_data_key(
        &self,
        wrapped: &[u8],
        ctx: &EncryptionContext,
    ) -> Result<Zeroizing<[u8; DATA_KEY_LEN]>, CustodyError> {
        match self {
            KekBackend::Local(kek) => kek.unwrap_data_key(wrapped, ctx).await,
            #[cfg(feature = "aws-kms")]
            KekBackend::AwsKms(kek) => kek.unwrap_data_key(wrapped, ctx).await,
        }
    }
}

/// Fills `buf` from the operating system's random number generator.
pub(crate) fn fill_random(buf: &mut [u8]) -> Result<(), CustodyError> {
    use rand::RngCore;
    rand::rngs::OsRng
        .try_fill_bytes(buf)
        .map_err(|e| CustodyError::Random(e.to_string()))
}

#[cfg(test)]
mod tests;
