//! The AWS KMS backend with the real AWS SDK against a real local KMS server (moto).
//!
//! Each test starts its own `moto_server` on a free loopback port from the repository's
//! `.venv` (made by `./test.sh`), creates KMS keys there with the SDK, and talks to it through
//! `KekConfig::AwsKms { endpoint_url, .. }` with credentials from the standard AWS chain
//! (environment variables). A missing venv fails the tests: they are never skipped.
//! Moto does not enforce disabled keys; that path is tested with aws-smithy-mocks in
//! `node/src/custody/aws/tests.rs`.
#![cfg(feature = "aws-kms")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use signer_node::custody::aws::OPERATION_TIMEOUT;
use signer_node::custody::{
    seal, unseal, BackendKind, CustodyError, EncryptionContext, Kek, KekConfig, KekRef, KmsError,
    SealedKey,
};
use std::net::TcpListener;
use std::time::{Duration, Instant};
use support::moto::{standard_chain_credentials, Moto, REGION};

mod support;

const SECRET: &[u8] = b"validator secret: 32 bytes long!";

fn ctx(cluster: &str, key: &str) -> EncryptionContext {
    EncryptionContext::validator_key(cluster, key).unwrap()
}

fn kms_error(err: CustodyError) -> KmsError {
    match err {
        CustodyError::Kms(kms) => kms,
        other => panic!("not a KMS error: {other}"),
    }
}

#[tokio::test]
async fn seal_and_unseal_through_kms() {
    let moto = Moto::start();
    let key_id = moto.create_key().await;
    let kek = moto.kek(&key_id).await;
    let c = ctx("dev", "validator-1");
    let sealed = seal(&kek, &c, SECRET).await.unwrap();
    assert_eq!(
        sealed.kek,
        KekRef {
            backend: BackendKind::AwsKms,
            key_id: key_id.clone()
        }
    );
    assert!(!sealed
        .wrapped_dek
        .windows(SECRET.len())
        .any(|w| w == SECRET));
    assert_eq!(
        unseal(&kek, &c, &sealed).await.unwrap().expose_secret(),
        SECRET
    );

    // The replicated form, read back by another node (its own client, same KMS key).
    let json = serde_json::to_string(&sealed).unwrap();
    let record: SealedKey = serde_json::from_str(&json).unwrap();
    let other_node = moto.kek(&key_id).await;
    assert_eq!(
        unseal(&other_node, &c, &record)
            .await
            .unwrap()
            .expose_secret(),
        SECRET
    );
}

#[tokio::test]
async fn kms_refuses_another_context() {
    let moto = Moto::start();
    let key_id = moto.create_key().await;
    let kek = moto.kek(&key_id).await;
    let sealed = seal(&kek, &ctx("dev", "validator-1"), SECRET)
        .await
        .unwrap();
    for wrong in [
        ctx("dev", "validator-2"),
        ctx("other-cluster", "validator-1"),
        EncryptionContext::new("dev", "validator-1", "admin-key").unwrap(),
    ] {
        let err = unseal(&kek, &wrong, &sealed).await.unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("wrong context or not our ciphertext"),
            "{text}"
        );
        assert!(!err.is_retryable());
        assert!(
            matches!(kms_error(err), KmsError::InvalidCiphertext { .. }),
            "{text}"
        );
    }
    // Another record's data key with this record's ciphertext: KMS unwraps it (right
    // context), the envelope refuses it.
    let other = seal(&kek, &ctx("dev", "validator-1"), b"another secret")
        .await
        .unwrap();
    let swapped = SealedKey {
        wrapped_dek: other.wrapped_dek,
        ..sealed
    };
    assert!(matches!(
        unseal(&kek, &ctx("dev", "validator-1"), &swapped).await,
        Err(CustodyError::Unauthentic { .. })
    ));
}

#[tokio::test]
async fn another_kms_key_cannot_open_the_record() {
    let moto = Moto::start();
    let key_a = moto.create_key().await;
    let key_b = moto.create_key().await;
    let kek_a = moto.kek(&key_a).await;
    let kek_b = moto.kek(&key_b).await;
    let c = ctx("dev", "validator-1");
    let sealed = seal(&kek_a, &c, SECRET).await.unwrap();
    assert!(matches!(
        unseal(&kek_b, &c, &sealed).await,
        Err(CustodyError::KekMismatch { .. })
    ));
    // Relabelled to key B: KMS refuses to decrypt A's ciphertext with KeyId B.
    let relabelled = SealedKey {
        kek: kek_b.descriptor(),
        ..sealed
    };
    let err = unseal(&kek_b, &c, &relabelled).await.unwrap_err();
    assert!(matches!(err, CustodyError::Kms(_)), "{err}");
}

#[tokio::test]
async fn alias_works() {
    let moto = Moto::start();
    let key_id = moto.create_key().await;
    moto.create_alias("alias/quorum-signer-test", &key_id).await;
    let kek = moto.kek("alias/quorum-signer-test").await;
    let c = ctx("dev", "validator-1");
    let sealed = seal(&kek, &c, SECRET).await.unwrap();
    assert_eq!(sealed.kek.key_id, "alias/quorum-signer-test");
    assert_eq!(
        unseal(&kek, &c, &sealed).await.unwrap().expose_secret(),
        SECRET
    );
    // An alias that does not exist says so.
    let missing = moto.kek("alias/no-such-alias").await;
    let err = seal(&missing, &c, SECRET).await.unwrap_err();
    assert!(
        matches!(kms_error(err), KmsError::NotFound { .. }),
        "missing alias"
    );
}

#[tokio::test]
async fn kms_down_then_back() {
    const ALIAS: &str = "alias/quorum-signer-restart";
    let moto = Moto::start();
    let key_id = moto.create_key().await;
    moto.create_alias(ALIAS, &key_id).await;
    let kek = moto.kek(ALIAS).await;
    let c = ctx("dev", "validator-1");
    let sealed = seal(&kek, &c, SECRET).await.unwrap();

    // KMS stops: unwrapping fails as "unreachable", promptly, and may be retried.
    let port = moto.stop();
    let started = Instant::now();
    let err = unseal(&kek, &c, &sealed).await.unwrap_err();
    let elapsed = started.elapsed();
    let text = err.to_string();
    eprintln!("KMS stopped, after {elapsed:?}: {text}");
    assert!(text.contains("KMS unreachable"), "{text}");
    assert!(err.is_retryable(), "{text}");
    assert!(
        elapsed <= OPERATION_TIMEOUT + Duration::from_secs(1),
        "took {elapsed:?}"
    );
    let err = seal(&kek, &c, SECRET).await.unwrap_err();
    assert!(
        matches!(kms_error(err), KmsError::Unreachable { .. }),
        "seal while down"
    );

    // KMS returns on the same endpoint. Moto keeps no state across a restart, so the old key
    // is gone; a fresh key under the same alias serves the same (unchanged) KEK again.
    let moto = start_on_port(port);
    let fresh = moto.create_key().await;
    moto.create_alias(ALIAS, &fresh).await;
    let again = seal(&kek, &c, SECRET).await.unwrap();
    assert_eq!(
        unseal(&kek, &c, &again).await.unwrap().expose_secret(),
        SECRET
    );
    // The record of the lost key now fails with a KMS refusal, not as unreachable.
    let err = unseal(&kek, &c, &sealed).await.unwrap_err();
    eprintln!("old record after the restart: {err}");
    assert!(!err.is_retryable(), "{err}");
}

/// Restarts moto on a port it just left (the port may take a moment to be free again).
fn start_on_port(port: u16) -> Moto {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match Moto::start_on(port) {
            Ok(moto) => return moto,
            Err(e) if Instant::now() > deadline => panic!("moto restart on {port}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

#[tokio::test]
async fn unresponsive_kms_times_out() {
    // A server that accepts connections and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    standard_chain_credentials();
    let kek = KekConfig::AwsKms {
        key_id: "alias/silent".into(),
        region: Some(REGION.into()),
        endpoint_url: Some(format!("http://127.0.0.1:{port}")),
    }
    .build()
    .await
    .unwrap();
    let started = Instant::now();
    let err = kek
        .unwrap_data_key(&[0u8; 64], &ctx("dev", "validator-1"))
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    let text = err.to_string();
    eprintln!("KMS silent, after {elapsed:?}: {text}");
    assert!(text.contains("KMS unreachable"), "{text}");
    assert!(err.is_retryable());
    assert!(
        elapsed >= Duration::from_secs(2) && elapsed <= OPERATION_TIMEOUT + Duration::from_secs(1),
        "took {elapsed:?}: {text}"
    );
}
