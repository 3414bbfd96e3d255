//! KMS error mapping and request shape, against mocked SDK responses (aws-smithy-mocks): the
//! error paths a local KMS server cannot produce, such as a disabled key.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use aws_sdk_kms::operation::decrypt::{DecryptError, DecryptOutput};
use aws_sdk_kms::operation::generate_data_key::{GenerateDataKeyError, GenerateDataKeyOutput};
use aws_sdk_kms::types::error::{
    DisabledException, InvalidCiphertextException, KmsInternalException, KmsInvalidStateException,
    NotFoundException,
};
use aws_sdk_kms::Client;
use aws_smithy_mocks::{mock, mock_client, RuleMode};

const KEY: &str = "alias/quorum-test";

fn ctx() -> EncryptionContext {
    EncryptionContext::validator_key("dev", "key-1").unwrap()
}

fn kms_error(err: CustodyError) -> KmsError {
    match err {
        CustodyError::Kms(kms) => kms,
        other => panic!("not a KMS error: {other}"),
    }
}

#[tokio::test]
async fn disabled_key_on_decrypt() {
    let rule = mock!(Client::decrypt).then_error(|| {
        DecryptError::DisabledException(
            DisabledException::builder()
                .message("arn:aws:kms:us-east-1:123456789012:key/abc is disabled.")
                .build(),
        )
    });
    let client = mock_client!(aws_sdk_kms, [&rule]);
    let kek = AwsKms::from_client(&client, KEY).unwrap();
    let err = kek.unwrap_data_key(&[1, 2, 3], &ctx()).await.unwrap_err();
    assert!(!err.is_retryable());
    assert_eq!(err.to_string(), format!("KMS key {KEY} disabled"));
    assert!(matches!(kms_error(err), KmsError::Disabled { .. }));
    assert_eq!(rule.num_calls(), 1);
}

#[tokio::test]
async fn disabled_key_on_generate() {
    let rule = mock!(Client::generate_data_key).then_error(|| {
        GenerateDataKeyError::DisabledException(DisabledException::builder().build())
    });
    let client = mock_client!(aws_sdk_kms, [&rule]);
    let kek = AwsKms::from_client(&client, KEY).unwrap();
    let err = seal(&kek, &ctx(), b"secret").await.unwrap_err();
    assert!(matches!(kms_error(err), KmsError::Disabled { .. }));
}

#[tokio::test]
async fn service_errors_say_what_happened() {
    let cases: Vec<(DecryptError, &str, bool)> = vec![
        (
            DecryptError::InvalidCiphertextException(InvalidCiphertextException::builder().build()),
            "wrong context or not our ciphertext",
            false,
        ),
        (
            DecryptError::NotFoundException(NotFoundException::builder().build()),
            "not found",
            false,
        ),
        (
            DecryptError::KmsInvalidStateException(KmsInvalidStateException::builder().build()),
            "not usable in its current state",
            false,
        ),
        (
            DecryptError::KmsInternalException(KmsInternalException::builder().build()),
            "temporarily unavailable",
            true,
        ),
    ];
    for (error, says, retryable) in cases {
        let error = std::sync::Mutex::new(Some(error));
        let rule = mock!(Client::decrypt).then_error(move || {
            error
                .lock()
                .unwrap()
                .take()
                .expect("called once per attempt")
        });
        // Retryable errors are retried by the SDK: answer every attempt the same way.
        let client = mock_client!(aws_sdk_kms, RuleMode::MatchAny, [&rule], |c| c
            .retry_config(aws_sdk_kms::config::retry::RetryConfig::disabled()));
        let kek = AwsKms::from_client(&client, KEY).unwrap();
        let err = kek.unwrap_data_key(&[9; 60], &ctx()).await.unwrap_err();
        let text = err.to_string();
        assert!(text.contains(says), "{text}");
        assert!(text.contains(KEY), "{text}");
        assert_eq!(err.is_retryable(), retryable, "{text}");
    }
}

#[tokio::test]
async fn requests_carry_the_context_and_key_id() {
    let dek = [0x5Au8; 32];
    let generate = mock!(Client::generate_data_key)
        .match_requests(|req| {
            req.key_id() == Some(KEY)
                && req.key_spec() == Some(&DataKeySpec::Aes256)
                && req.encryption_context().is_some_and(|c| {
                    c.len() == 3
                        && c.get("cluster_id").map(String::as_str) == Some("dev")
                        && c.get("key_id").map(String::as_str) == Some("key-1")
                        && c.get("purpose").map(String::as_str) == Some("validator-key")
                })
        })
        .then_output(move || {
            GenerateDataKeyOutput::builder()
                .plaintext(Blob::new(dek))
                .ciphertext_blob(Blob::new(b"wrapped-by-kms".to_vec()))
                .key_id("arn:aws:kms:us-east-1:123456789012:key/abc")
                .build()
        });
    let decrypt = mock!(Client::decrypt)
        .match_requests(|req| {
            req.key_id() == Some(KEY)
                && req.ciphertext_blob().map(|b| b.as_ref()) == Some(&b"wrapped-by-kms"[..])
                && req.encryption_context().is_some_and(|c| {
                    c.len() == 3 && c.get("key_id").map(String::as_str) == Some("key-1")
                })
        })
        .then_output(move || DecryptOutput::builder().plaintext(Blob::new(dek)).build());
    let client = mock_client!(aws_sdk_kms, RuleMode::Sequential, [&generate, &decrypt]);
    let kek = AwsKms::from_client(&client, KEY).unwrap();
    let sealed = seal(&kek, &ctx(), b"secret").await.unwrap();
    assert_eq!(
        sealed.kek,
        KekRef {
            backend: BackendKind::AwsKms,
            key_id: KEY.into()
        }
    );
    assert_eq!(sealed.wrapped_dek, b"wrapped-by-kms");
    let opened = crate::custody::unseal(&kek, &ctx(), &sealed).await.unwrap();
    assert_eq!(opened.expose_secret(), b"secret");
    assert_eq!((generate.num_calls(), decrypt.num_calls()), (1, 1));
}

#[tokio::test]
async fn short_data_key_from_kms_is_refused() {
    let rule = mock!(Client::decrypt).then_output(|| {
        DecryptOutput::builder()
            .plaintext(Blob::new(vec![1u8; 16]))
            .build()
    });
    let client = mock_client!(aws_sdk_kms, [&rule]);
    let kek = AwsKms::from_client(&client, KEY).unwrap();
    let err = kek.unwrap_data_key(&[0; 8], &ctx()).await.unwrap_err();
    assert!(matches!(kms_error(err), KmsError::BadResponse { .. }));
}

#[tokio::test]
async fn config_errors() {
    let client = mock_client!(aws_sdk_kms, Vec::<&aws_smithy_mocks::Rule>::new());
    assert!(AwsKms::from_client(&client, " ").is_err());
}

use crate::custody::seal;
