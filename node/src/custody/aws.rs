//! The AWS KMS key-encryption backend (feature `aws-kms`).
//!
//! Owns: the KMS client (region, endpoint override, credentials from the standard AWS chain,
//! an HTTPS client on rustls with the ring provider, timeouts), `GenerateDataKey` (AES_256) and
//! `Decrypt`, and the mapping of SDK errors to [`KmsError`].
//! Must not: create, disable or delete KMS keys, read credentials from node config, or log or
//! return plaintext data keys (the SDK's own `Debug` of responses redacts them too).
//!
//! To ensure correctness:
//! - every call carries the [`EncryptionContext`] as the KMS encryption context
//!   (`cluster_id`, `key_id`, `purpose`), and `Decrypt` names the configured KMS key (`KeyId`),
//!   so a data key opens only for its own context and only under the expected KMS key;
//! - every call is bounded: [`CONNECT_TIMEOUT`], [`ATTEMPT_TIMEOUT`] per attempt (the SDK's
//!   standard retry makes up to 3), [`OPERATION_TIMEOUT`] in all;
//! - the plaintext returned by KMS is copied into a zeroizing buffer and the SDK's copy
//!   zeroized at once (copies inside the SDK's response parsing are outside our reach);
//! - errors say what happened (unreachable, disabled, wrong context, …) with the key id and
//!   operation, never key material.

use super::{BackendKind, CustodyError, DataKey, EncryptionContext, Kek, KekRef, DATA_KEY_LEN};
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kms::operation::decrypt::DecryptError;
use aws_sdk_kms::operation::generate_data_key::GenerateDataKeyError;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
use std::collections::HashMap;
use std::time::Duration;
use zeroize::{Zeroize, Zeroizing};

/// How long opening a connection to KMS may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long one attempt of a KMS call may take.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);

/// How long a KMS call may take in all, retries included.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(5);

/// Errors from AWS KMS. None carries key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KmsError {
    /// No connection, or no answer in time.
    #[error("KMS unreachable ({operation} with key {key_id}): {detail}")]
    Unreachable {
        /// `GenerateDataKey` or `Decrypt`.
        operation: &'static str,
        /// The configured KMS key.
        key_id: String,
        /// What failed (connection refused, timeout, …).
        detail: String,
    },
    /// KMS would not decrypt: the encryption context differs, or the bytes are not a
    /// ciphertext of this key.
    #[error("KMS refused to decrypt the data key with key {key_id}: wrong context or not our ciphertext")]
    InvalidCiphertext {
        /// The configured KMS key.
        key_id: String,
    },
    /// The ciphertext belongs to another KMS key than the configured one.
    #[error("the data key was wrapped under another KMS key than {key_id}")]
    IncorrectKey {
        /// The configured KMS key.
        key_id: String,
    },
    /// The KMS key is disabled.
    #[error("KMS key {key_id} disabled")]
    Disabled {
        /// The configured KMS key.
        key_id: String,
    },
    /// The KMS key (or alias) does not exist.
    #[error("KMS key {key_id} not found")]
    NotFound {
        /// The configured KMS key.
        key_id: String,
    },
    /// The KMS key cannot be used in its current state (e.g. pending deletion or import).
    #[error("KMS key {key_id} is not usable in its current state (pending deletion?)")]
    InvalidState {
        /// The configured KMS key.
        key_id: String,
    },
    /// The credentials or the key policy do not allow the call.
    #[error("KMS denied {operation} with key {key_id} ({code}): check the credentials and the key policy")]
    AccessDenied {
        /// `GenerateDataKey` or `Decrypt`.
        operation: &'static str,
        /// The configured KMS key.
        key_id: String,
        /// The KMS error code.
        code: String,
    },
    /// KMS answered that it cannot serve now (throttling, internal error, dependency timeout).
    #[error("KMS temporarily unavailable for {operation} with key {key_id} ({code})")]
    Unavailable {
        /// `GenerateDataKey` or `Decrypt`.
        operation: &'static str,
        /// The configured KMS key.
        key_id: String,
        /// The KMS error code.
        code: String,
    },
    /// Any other error KMS returned.
    #[error("KMS {operation} with key {key_id} failed: {code}: {message}")]
    Service {
        /// `GenerateDataKey` or `Decrypt`.
        operation: &'static str,
        /// The configured KMS key.
        key_id: String,
        /// The KMS error code.
        code: String,
        /// KMS's message.
        message: String,
    },
    /// The request could not be made (no credentials, bad endpoint, …).
    #[error("KMS {operation} with key {key_id} could not be sent: {detail}")]
    Request {
        /// `GenerateDataKey` or `Decrypt`.
        operation: &'static str,
        /// The configured KMS key.
        key_id: String,
        /// What failed.
        detail: String,
    },
    /// KMS answered something unusable (missing field, wrong length).
    #[error("unexpected KMS response to {operation} with key {key_id}: {reason}")]
    BadResponse {
        /// `GenerateDataKey` or `Decrypt`.
        operation: &'static str,
        /// The configured KMS key.
        key_id: String,
        /// What was wrong (lengths, never contents).
        reason: String,
    },
    /// The KMS configuration cannot work.
    #[error("KMS config: {0}")]
    Config(String),
}

impl KmsError {
    /// True when the same call may succeed later (unreachable, throttled, internal error).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            KmsError::Unreachable { .. } | KmsError::Unavailable { .. }
        )
    }
}

/// A KEK held in AWS KMS (a symmetric encryption key). `Debug` shows the key id only.
#[derive(Clone)]
pub struct AwsKms {
    client: aws_sdk_kms::Client,
    key_id: String,
}

impl std::fmt::Debug for AwsKms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsKms")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl AwsKms {
    /// A KMS KEK for `key_id` (key id, ARN, alias name or alias ARN) with the standard AWS
    /// configuration chain for credentials (and for the region when `region` is `None`), an
    /// optional endpoint override, rustls on ring, and this module's timeouts. Sends nothing.
    pub async fn load(
        key_id: &str,
        region: Option<&str>,
        endpoint_url: Option<&str>,
    ) -> Result<AwsKms, CustodyError> {
        check_key_id(key_id)?;
        let http_client = aws_smithy_http_client::Builder::new()
            .tls_provider(Provider::Rustls(CryptoMode::Ring))
            .build_https();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(http_client)
            .timeout_config(timeouts());
        if let Some(region) = region {
            loader = loader.region(Region::new(region.to_string()));
        }
        if let Some(url) = endpoint_url {
            loader = loader.endpoint_url(url);
        }
        let sdk_config = loader.load().await;
        if sdk_config.region().is_none() {
            return Err(KmsError::Config(
                "no AWS region: set `region` under [kek] or AWS_REGION".to_string(),
            )
            .into());
        }
        Ok(AwsKms {
            client: aws_sdk_kms::Client::new(&sdk_config),
            key_id: key_id.to_string(),
        })
    }

    /// A KMS KEK on an existing client (e.g. a test double); this module's timeouts replace the
    /// client's.
    pub fn from_client(client: &aws_sdk_kms::Client, key_id: &str) -> Result<AwsKms, CustodyError> {
        check_key_id(key_id)?;
        let config = client
            .config()
            .to_builder()
            .timeout_config(timeouts())
            .build();
        Ok(AwsKms {
            client: aws_sdk_kms::Client::from_conf(config),
            key_id: key_id.to_string(),
        })
    }

    /// The configured key id, ARN or alias.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }
}

impl Kek for AwsKms {
    fn descriptor(&self) -> KekRef {
        KekRef {
            backend: BackendKind::AwsKms,
            key_id: self.key_id.clone(),
        }
    }

    async fn generate_data_key(&self, ctx: &EncryptionContext) -> Result<DataKey, CustodyError> {
        const OP: &str = "GenerateDataKey";
        ctx.validate()?;
        let out = self
            .client
            .generate_data_key()
            .key_id(&self.key_id)
            .key_spec(DataKeySpec::Aes256)
            .set_encryption_context(Some(kms_context(ctx)))
            .send()
            .await
            .map_err(|e| map_sdk_error(OP, &self.key_id, e))?;
        let wrapped = out
            .ciphertext_blob()
            .map(|b| b.as_ref().to_vec())
            .ok_or_else(|| self.bad_response(OP, "no CiphertextBlob".to_string()))?;
        let plaintext =
            take_data_key(out.plaintext).map_err(|reason| self.bad_response(OP, reason))?;
        Ok(DataKey::new(plaintext, wrapped))
    }

    async fn unwrap_data_key(
        &self,
        wrapped: &[u8],
        ctx: &EncryptionContext,
    ) -> Result<Zeroizing<[u8; DATA_KEY_LEN]>, CustodyError> {
        const OP: &str = "Decrypt";
        ctx.validate()?;
        let out = self
            .client
            .decrypt()
            .key_id(&self.key_id)
            .ciphertext_blob(Blob::new(wrapped))
            .set_encryption_context(Some(kms_context(ctx)))
            .send()
            .await
            .map_err(|e| map_sdk_error(OP, &self.key_id, e))?;
        take_data_key(out.plaintext).map_err(|reason| self.bad_response(OP, reason))
    }
}

impl AwsKms {
    fn bad_response(&self, operation: &'static str, reason: String) -> CustodyError {
        KmsError::BadResponse {
            operation,
            key_id: self.key_id.clone(),
            reason,
        }
        .into()
    }
}

fn timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .operation_timeout(OPERATION_TIMEOUT)
        .build()
}

fn check_key_id(key_id: &str) -> Result<(), CustodyError> {
    if key_id.trim().is_empty() || key_id.len() > 2048 {
        return Err(KmsError::Config(
            "KMS key_id must be a key id, key ARN, alias name or alias ARN".to_string(),
        )
        .into());
    }
    Ok(())
}

fn kms_context(ctx: &EncryptionContext) -> HashMap<String, String> {
    ctx.fields()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Moves a plaintext data key out of the SDK's blob into a zeroizing array and wipes the blob.
fn take_data_key(blob: Option<Blob>) -> Result<Zeroizing<[u8; DATA_KEY_LEN]>, String> {
    let mut bytes = blob.ok_or("no Plaintext")?.into_inner();
    let mut key = Zeroizing::new([0u8; DATA_KEY_LEN]);
    let result = if bytes.len() == DATA_KEY_LEN {
        key.copy_from_slice(&bytes);
        Ok(key)
    } else {
        Err(format!(
            "data key of {} bytes, expected {DATA_KEY_LEN}",
            bytes.len()
        ))
    };
    bytes.zeroize();
    result
}

/// The error and its sources, each `Display`ed, joined by `: ` (no `Debug` dumps).
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        let next = e.to_string();
        if !text.ends_with(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = e.source();
    }
    text
}

/// What KMS refused, from the modeled error (typed) or, for unmodeled ones, the error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    InvalidCiphertext,
    IncorrectKey,
    Disabled,
    NotFound,
    InvalidState,
    AccessDenied,
    Unavailable,
}

impl Refusal {
    fn from_code(code: &str) -> Option<Refusal> {
        Some(match code {
            "InvalidCiphertextException" => Refusal::InvalidCiphertext,
            "IncorrectKeyException" => Refusal::IncorrectKey,
            "DisabledException" => Refusal::Disabled,
            "NotFoundException" => Refusal::NotFound,
            "KMSInvalidStateException" => Refusal::InvalidState,
            "AccessDeniedException"
            | "UnrecognizedClientException"
            | "InvalidSignatureException"
            | "ExpiredTokenException"
            | "IncompleteSignature"
            | "MissingAuthenticationToken" => Refusal::AccessDenied,
            "ThrottlingException"
            | "LimitExceededException"
            | "KMSInternalException"
            | "DependencyTimeoutException"
            | "KeyUnavailableException"
            | "ServiceUnavailable"
            | "InternalFailure" => Refusal::Unavailable,
            _ => return None,
        })
    }
}

/// The operation errors of the KMS calls made here, classified by their modeled variants.
trait KmsOperationError: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static {
    fn refusal(&self) -> Option<Refusal>;
}

impl KmsOperationError for DecryptError {
    fn refusal(&self) -> Option<Refusal> {
        Some(match self {
            DecryptError::InvalidCiphertextException(_) => Refusal::InvalidCiphertext,
            DecryptError::IncorrectKeyException(_) => Refusal::IncorrectKey,
            DecryptError::DisabledException(_) => Refusal::Disabled,
            DecryptError::NotFoundException(_) => Refusal::NotFound,
            DecryptError::KmsInvalidStateException(_) => Refusal::InvalidState,
            DecryptError::KmsInternalException(_)
            | DecryptError::DependencyTimeoutException(_)
            | DecryptError::KeyUnavailableException(_) => Refusal::Unavailable,
            _ => return Refusal::from_code(self.code()?),
        })
    }
}

impl KmsOperationError for GenerateDataKeyError {
    fn refusal(&self) -> Option<Refusal> {
        Some(match self {
            GenerateDataKeyError::DisabledException(_) => Refusal::Disabled,
            GenerateDataKeyError::NotFoundException(_) => Refusal::NotFound,
            GenerateDataKeyError::KmsInvalidStateException(_) => Refusal::InvalidState,
            GenerateDataKeyError::KmsInternalException(_)
            | GenerateDataKeyError::DependencyTimeoutException(_)
            | GenerateDataKeyError::KeyUnavailableException(_) => Refusal::Unavailable,
            _ => return Refusal::from_code(self.code()?),
        })
    }
}

/// Maps an SDK error to a [`KmsError`] that says what happened.
fn map_sdk_error<E: KmsOperationError>(
    operation: &'static str,
    key_id: &str,
    err: SdkError<E>,
) -> CustodyError {
    let key_id = key_id.to_string();
    let kms = match &err {
        SdkError::TimeoutError(_) => KmsError::Unreachable {
            operation,
            key_id,
            detail: format!("no answer within {} s", OPERATION_TIMEOUT.as_secs()),
        },
        // Every dispatch failure but a bad request of ours means the KMS could not be reached
        // or did not answer: a refused or reset connection, a timeout, and also a connection
        // closed before any response (what a load balancer without backends does).
        SdkError::DispatchFailure(failure) if !failure.is_user() => KmsError::Unreachable {
            operation,
            key_id,
            detail: error_chain(&err),
        },
        SdkError::ServiceError(service) => {
            let error = service.err();
            let code = error.code().unwrap_or("unknown").to_string();
            match error.refusal() {
                Some(Refusal::InvalidCiphertext) => KmsError::InvalidCiphertext { key_id },
                Some(Refusal::IncorrectKey) => KmsError::IncorrectKey { key_id },
                Some(Refusal::Disabled) => KmsError::Disabled { key_id },
                Some(Refusal::NotFound) => KmsError::NotFound { key_id },
                Some(Refusal::InvalidState) => KmsError::InvalidState { key_id },
                Some(Refusal::AccessDenied) => KmsError::AccessDenied {
                    operation,
                    key_id,
                    code,
                },
                Some(Refusal::Unavailable) => KmsError::Unavailable {
                    operation,
                    key_id,
                    code,
                },
                None => KmsError::Service {
                    operation,
                    key_id,
                    code,
                    message: error.message().unwrap_or("").to_string(),
                },
            }
        }
        SdkError::ResponseError(_) => KmsError::BadResponse {
            operation,
            key_id,
            reason: error_chain(&err),
        },
        _ => KmsError::Request {
            operation,
            key_id,
            detail: error_chain(&err),
        },
    };
    kms.into()
}

#[cfg(test)]
mod tests;
