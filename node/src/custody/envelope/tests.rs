//! Envelope tests: round trip and every way a record must fail closed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::custody::{BackendKind, DataKey, KekRef, LocalKek};

const SECRET: &[u8] = b"\x11\x22\x33\x44 a validator secret key of 32 b";

fn ctx(cluster: &str, key: &str) -> EncryptionContext {
    EncryptionContext::validator_key(cluster, key).unwrap()
}

fn local_kek(dir: &tempfile::TempDir, name: &str) -> LocalKek {
    LocalKek::create(&dir.path().join(name)).unwrap()
}

/// A KEK that ignores the context (its "wrapped" key is the key itself), to show that the
/// envelope's own associated data still binds the context.
struct BlindKek;

impl Kek for BlindKek {
    fn descriptor(&self) -> KekRef {
        KekRef {
            backend: BackendKind::Local,
            key_id: "blind".into(),
        }
    }
    async fn generate_data_key(&self, _: &EncryptionContext) -> Result<DataKey, CustodyError> {
        let mut key = Zeroizing::new([0u8; DATA_KEY_LEN]);
        fill_random(&mut key[..])?;
        let wrapped = key.to_vec();
        Ok(DataKey::new(key, wrapped))
    }
    async fn unwrap_data_key(
        &self,
        wrapped: &[u8],
        _: &EncryptionContext,
    ) -> Result<Zeroizing<[u8; DATA_KEY_LEN]>, CustodyError> {
        let mut key = Zeroizing::new([0u8; DATA_KEY_LEN]);
        key.copy_from_slice(wrapped);
        Ok(key)
    }
}

#[tokio::test]
async fn round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let kek = local_kek(&dir, "kek");
    let c = ctx("dev", "key-1");
    let sealed = seal(&kek, &c, SECRET).await.unwrap();
    assert_eq!(sealed.kek, kek.descriptor());
    assert_eq!(sealed.ciphertext.len(), SECRET.len() + TAG_LEN);
    assert_eq!(
        unseal(&kek, &c, &sealed).await.unwrap().expose_secret(),
        SECRET
    );
    // An empty secret works too.
    let empty = seal(&kek, &c, b"").await.unwrap();
    assert!(unseal(&kek, &c, &empty).await.unwrap().is_empty());
}

#[tokio::test]
async fn each_seal_uses_a_fresh_data_key_and_nonce() {
    let dir = tempfile::tempdir().unwrap();
    let kek = local_kek(&dir, "kek");
    let c = ctx("dev", "key-1");
    let a = seal(&kek, &c, SECRET).await.unwrap();
    let b = seal(&kek, &c, SECRET).await.unwrap();
    assert_ne!(a.nonce, b.nonce);
    assert_ne!(a.wrapped_dek, b.wrapped_dek);
    assert_ne!(a.ciphertext, b.ciphertext);
}

#[tokio::test]
async fn wrong_context_fails() {
    let dir = tempfile::tempdir().unwrap();
    let kek = local_kek(&dir, "kek");
    let sealed = seal(&kek, &ctx("dev", "key-1"), SECRET).await.unwrap();
    for wrong in [
        ctx("dev", "key-2"),
        ctx("prod", "key-1"),
        EncryptionContext::new("dev", "key-1", "admin-key").unwrap(),
    ] {
        let err = unseal(&kek, &wrong, &sealed).await.unwrap_err();
        assert!(
            matches!(err, CustodyError::LocalUnwrap { .. }),
            "{wrong}: {err}"
        );
        assert!(err.to_string().contains("wrong context"), "{err}");
    }
}

#[tokio::test]
async fn context_is_bound_even_when_the_kek_ignores_it() {
    let sealed = seal(&BlindKek, &ctx("dev", "key-1"), SECRET).await.unwrap();
    assert_eq!(
        unseal(&BlindKek, &ctx("dev", "key-1"), &sealed)
            .await
            .unwrap()
            .expose_secret(),
        SECRET
    );
    let err = unseal(&BlindKek, &ctx("dev", "key-2"), &sealed)
        .await
        .unwrap_err();
    assert!(matches!(err, CustodyError::Unauthentic { .. }), "{err}");
    assert!(err.to_string().contains("does not authenticate"), "{err}");
}

#[tokio::test]
async fn swapped_ciphertext_fails() {
    let dir = tempfile::tempdir().unwrap();
    let kek = local_kek(&dir, "kek");
    let c = ctx("dev", "key-1");
    let a = seal(&kek, &c, SECRET).await.unwrap();
    let b = seal(&kek, &c, b"another secret").await.unwrap();
    // b's ciphertext (and nonce) under a's data key.
    let swapped = SealedKey {
        ciphertext: b.ciphertext.clone(),
        nonce: b.nonce,
        ..a.clone()
    };
    let err = unseal(&kek, &c, &swapped).await.unwrap_err();
    assert!(matches!(err, CustodyError::Unauthentic { .. }), "{err}");
    // b's wrapped data key with a's ciphertext.
    let swapped = SealedKey {
        wrapped_dek: b.wrapped_dek.clone(),
        ..a.clone()
    };
    assert!(unseal(&kek, &c, &swapped).await.is_err());
    // Another key's record under this key's context (same KEK, other key id).
    let other = seal(&kek, &ctx("dev", "key-2"), b"other").await.unwrap();
    assert!(unseal(&kek, &c, &other).await.is_err());
    // Even with a context-blind KEK, another record's ciphertext does not open.
    let x = seal(&BlindKek, &c, SECRET).await.unwrap();
    let y = seal(&BlindKek, &c, SECRET).await.unwrap();
    let mixed = SealedKey {
        ciphertext: y.ciphertext,
        nonce: y.nonce,
        ..x
    };
    assert!(matches!(
        unseal(&BlindKek, &c, &mixed).await,
        Err(CustodyError::Unauthentic { .. })
    ));
}

#[tokio::test]
async fn record_from_another_cluster_fails() {
    let dir = tempfile::tempdir().unwrap();
    let ours = local_kek(&dir, "ours");
    let theirs = local_kek(&dir, "theirs");
    // Their record, with their KEK: names a KEK we do not have.
    let sealed = seal(&theirs, &ctx("other", "key-1"), SECRET).await.unwrap();
    let err = unseal(&ours, &ctx("dev", "key-1"), &sealed)
        .await
        .unwrap_err();
    assert!(matches!(err, CustodyError::KekMismatch { .. }), "{err}");
    // Relabelled as ours: the data key does not unwrap under our KEK.
    let relabelled = SealedKey {
        kek: ours.descriptor(),
        ..sealed.clone()
    };
    assert!(unseal(&ours, &ctx("dev", "key-1"), &relabelled)
        .await
        .is_err());
    // Same KEK shared by two clusters: the cluster id still separates them.
    let shared = seal(&ours, &ctx("other", "key-1"), SECRET).await.unwrap();
    assert!(unseal(&ours, &ctx("dev", "key-1"), &shared).await.is_err());
}

#[tokio::test]
async fn every_tampered_byte_fails() {
    let dir = tempfile::tempdir().unwrap();
    let kek = local_kek(&dir, "kek");
    let c = ctx("dev", "key-1");
    let sealed = seal(&kek, &c, SECRET).await.unwrap();
    for i in 0..sealed.ciphertext.len() {
        let mut t = sealed.clone();
        t.ciphertext[i] ^= 0x01;
        let err = unseal(&kek, &c, &t).await.unwrap_err();
        assert!(
            matches!(err, CustodyError::Unauthentic { .. }),
            "{i}: {err}"
        );
    }
    for i in 0..NONCE_LEN {
        let mut t = sealed.clone();
        t.nonce[i] ^= 0x80;
        assert!(unseal(&kek, &c, &t).await.is_err(), "nonce byte {i}");
    }
    for i in 0..sealed.wrapped_dek.len() {
        let mut t = sealed.clone();
        t.wrapped_dek[i] ^= 0x01;
        assert!(unseal(&kek, &c, &t).await.is_err(), "wrapped byte {i}");
    }
    let mut truncated = sealed.clone();
    truncated.ciphertext.truncate(TAG_LEN - 1);
    assert!(matches!(
        unseal(&kek, &c, &truncated).await,
        Err(CustodyError::Malformed { .. })
    ));
    let mut extended = sealed.clone();
    extended.ciphertext.push(0);
    assert!(unseal(&kek, &c, &extended).await.is_err());
    let mut short_wrap = sealed;
    short_wrap.wrapped_dek.pop();
    assert!(matches!(
        unseal(&kek, &c, &short_wrap).await,
        Err(CustodyError::Malformed { .. })
    ));
}

#[tokio::test]
async fn json_and_binary_forms() {
    let dir = tempfile::tempdir().unwrap();
    let kek = local_kek(&dir, "kek");
    let c = ctx("dev", "key-1");
    let sealed = seal(&kek, &c, SECRET).await.unwrap();
    let json = serde_json::to_value(&sealed).unwrap();
    assert_eq!(json["kek"]["backend"], "local");
    let nonce = json["nonce"].as_str().unwrap();
    assert_eq!(nonce, format!("0x{}", hex::encode(sealed.nonce)));
    assert!(json["ciphertext"].as_str().unwrap().starts_with("0x"));
    assert!(json["wrapped_dek"].as_str().unwrap().starts_with("0x"));
    let text = json.to_string();
    assert!(!text.contains(&hex::encode(SECRET)));
    let back: SealedKey = serde_json::from_str(&text).unwrap();
    assert_eq!(back, sealed);
    assert_eq!(
        unseal(&kek, &c, &back).await.unwrap().expose_secret(),
        SECRET
    );

    let bin = bincode::serialize(&sealed).unwrap();
    assert_eq!(bincode::deserialize::<SealedKey>(&bin).unwrap(), sealed);

    let mut bad = json.clone();
    bad["nonce"] = "0x0011".into();
    assert!(serde_json::from_value::<SealedKey>(bad).is_err());
    let mut extra = json;
    extra["plaintext"] = "0x00".into();
    assert!(serde_json::from_value::<SealedKey>(extra).is_err());
}

#[tokio::test]
async fn errors_and_debug_hold_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let kek = local_kek(&dir, "kek");
    let c = ctx("dev", "key-1");
    let sealed = seal(&kek, &c, SECRET).await.unwrap();
    let secret_hex = hex::encode(SECRET);
    let dump = format!("{sealed:?} {kek:?}");
    assert!(!dump.contains(&secret_hex));
    let mut t = sealed.clone();
    t.ciphertext[0] ^= 1;
    let err = unseal(&kek, &c, &t).await.unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(!text.contains(&secret_hex), "{text}");
    let plaintext = unseal(&kek, &c, &sealed).await.unwrap();
    assert_eq!(plaintext.expose_secret(), SECRET);
    assert_eq!(format!("{plaintext:?}"), "SecretBytes(<redacted>)");
}
