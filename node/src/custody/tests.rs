//! Tests of the custody types: contexts, KEK references, config.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;

#[test]
fn context_fields_are_validated() {
    let ok = EncryptionContext::validator_key("dev", "key-1").unwrap();
    assert_eq!(ok.cluster_id(), "dev");
    assert_eq!(ok.key_id(), "key-1");
    assert_eq!(ok.purpose(), PURPOSE_VALIDATOR_KEY);

    let cases: [(&str, &str, &str, &str); 4] = [
        ("", "k", "p", "cluster_id"),
        ("c", "", "p", "key_id"),
        ("c", "k", "a\nb", "purpose"),
        ("c", &"x".repeat(257), "p", "key_id"),
    ];
    for (cluster, key, purpose, field) in cases {
        match EncryptionContext::new(cluster, key, purpose) {
            Err(CustodyError::InvalidContext { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{cluster:?}/{key:?}/{purpose:?}: {other:?}"),
        }
    }
    assert!(EncryptionContext::new("c", "x".repeat(256), "p").is_ok());
}

#[test]
fn deserialized_context_is_checked_on_use() {
    let ctx: EncryptionContext =
        serde_json::from_str(r#"{"cluster_id":"","key_id":"k","purpose":"p"}"#).unwrap();
    assert!(ctx.validate().is_err());
}

#[test]
fn canonical_bytes_are_unambiguous() {
    let a = EncryptionContext::new("ab", "c", "p").unwrap();
    let b = EncryptionContext::new("a", "bc", "p").unwrap();
    assert_ne!(a.canonical_bytes("x"), b.canonical_bytes("x"));
    assert_ne!(a.canonical_bytes("x"), a.canonical_bytes("y"));
    assert_eq!(
        a.canonical_bytes("sealed-key"),
        b"quorum-signer/sealed-key/v1\0\x00\x02ab\x00\x01c\x00\x01p".to_vec()
    );
}

#[test]
fn kek_ref_json_form() {
    let r = KekRef {
        backend: BackendKind::AwsKms,
        key_id: "alias/signer".into(),
    };
    let json = serde_json::to_string(&r).unwrap();
    assert_eq!(json, r#"{"backend":"aws-kms","key_id":"alias/signer"}"#);
    assert_eq!(serde_json::from_str::<KekRef>(&json).unwrap(), r);
    assert_eq!(r.to_string(), "aws-kms:alias/signer");
    assert!(serde_json::from_str::<KekRef>(r#"{"backend":"vault","key_id":"x"}"#).is_err());
}

#[test]
fn kek_config_from_toml() {
    #[derive(serde::Deserialize)]
    struct Node {
        kek: KekConfig,
    }
    let local: Node = toml::from_str("[kek]\nbackend = \"local\"\npath = \"kek.bin\"\n").unwrap();
    assert_eq!(
        local.kek,
        KekConfig::Local {
            path: "kek.bin".into()
        }
    );
    let aws: Node = toml::from_str(
        "[kek]\nbackend = \"aws-kms\"\nkey_id = \"alias/q\"\nregion = \"eu-west-1\"\n\
         endpoint_url = \"http://127.0.0.1:5000\"\n",
    )
    .unwrap();
    assert_eq!(
        aws.kek,
        KekConfig::AwsKms {
            key_id: "alias/q".into(),
            region: Some("eu-west-1".into()),
            endpoint_url: Some("http://127.0.0.1:5000".into()),
        }
    );
    let minimal: Node = toml::from_str("[kek]\nbackend = \"aws-kms\"\nkey_id = \"k\"\n").unwrap();
    assert!(matches!(
        minimal.kek,
        KekConfig::AwsKms {
            region: None,
            endpoint_url: None,
            ..
        }
    ));
    for bad in [
        "[kek]\nbackend = \"local\"\npath = \"k\"\nregion = \"x\"\n",
        "[kek]\nbackend = \"aws-kms\"\nkey_id = \"k\"\naccess_key = \"AKIA\"\n",
        "[kek]\nbackend = \"vault\"\npath = \"k\"\n",
        "[kek]\npath = \"k\"\n",
    ] {
        assert!(toml::from_str::<Node>(bad).is_err(), "accepted: {bad}");
    }
}

#[test]
fn data_key_debug_is_redacted() {
    let dk = DataKey::new(Zeroizing::new([0xAB; DATA_KEY_LEN]), vec![1, 2, 3]);
    let text = format!("{dk:?}");
    assert!(text.contains("<redacted>"), "{text}");
    assert!(!text.to_lowercase().contains("abab"), "{text}");
    assert!(!text.contains("171"), "{text}");
}

#[tokio::test]
async fn local_config_builds_a_local_kek() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kek.bin");
    let created = LocalKek::create(&path).unwrap();
    let built = KekConfig::Local { path }.build().await.unwrap();
    assert_eq!(built.descriptor(), created.descriptor());
    let ctx = EncryptionContext::validator_key("dev", "k").unwrap();
    let sealed = seal(&built, &ctx, b"secret").await.unwrap();
    assert_eq!(
        unseal(&created, &ctx, &sealed)
            .await
            .unwrap()
            .expose_secret(),
        b"secret"
    );
}
