//! EIP-2335 keystore tests: the EIP's own vectors, every malformed field, and wrong passwords.

use super::*;
use std::time::Instant;

// EIP-2335 "Test Cases" (CC0): both vectors encrypt SECRET under PASSWORD.
const PASSWORD: &str = "𝔱𝔢𝔰𝔱𝔭𝔞𝔰𝔰𝔴𝔬𝔯𝔡🔑";
const ENCODED_PASSWORD: &str = "7465737470617373776f7264f09f9491";
const SECRET: &str = "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f";
const PUBKEY: &str = "9612d7a727c9d0a22e185a1c768478dfe919cada9266988cb32359c11f2b7b27f4ae4040902382ae2910c15e2b420d07";
const SCRYPT_VECTOR: &str = include_str!("../../../tests/vectors/eip2335/scrypt.json");
const PBKDF2_VECTOR: &str = include_str!("../../../tests/vectors/eip2335/pbkdf2.json");

/// The PBKDF2 vector with one JSON edit applied.
fn edited(edit: impl FnOnce(&mut Value)) -> String {
    let mut v: Value = serde_json::from_str(PBKDF2_VECTOR).unwrap();
    edit(&mut v);
    v.to_string()
}

/// Encrypt `secret` into a keystore with cheap PBKDF2 parameters (tests only).
fn seal_cheap(secret: &[u8; 32], password: &str, pubkey: Option<&str>) -> String {
    let salt = [7u8; 32];
    let iv = [9u8; 16];
    let kdf = Kdf::Pbkdf2 {
        rounds: 16,
        salt: salt.to_vec(),
    };
    let dk = derive_key(&kdf, &normalize_password(password)).unwrap();
    let mut message = *secret;
    Aes128Ctr::new_from_slices(&dk[..16], &iv)
        .unwrap()
        .apply_keystream(&mut message);
    let checksum = Sha256::new()
        .chain_update(&dk[16..])
        .chain_update(message)
        .finalize();
    let mut v = serde_json::json!({
        "crypto": {
            "kdf": { "function": "pbkdf2", "message": "", "params":
                { "dklen": 32, "c": 16, "prf": "hmac-sha256", "salt": hex::encode(salt) } },
            "checksum": { "function": "sha256", "params": {}, "message": hex::encode(checksum) },
            "cipher": { "function": "aes-128-ctr", "params": { "iv": hex::encode(iv) },
                "message": hex::encode(message) }
        },
        "path": "", "uuid": "00000000-0000-4000-8000-000000000000", "version": 4
    });
    if let Some(pk) = pubkey {
        v["pubkey"] = Value::from(pk);
    }
    v.to_string()
}

fn assert_vector(d: &DecryptedKeystore, path: &str, uuid: &str) {
    assert_eq!(hex::encode(d.secret.as_ref()), SECRET);
    assert_eq!(hex::encode(d.pubkey), PUBKEY);
    assert_eq!(d.path, path);
    assert_eq!(d.uuid, uuid);
}

#[test]
fn password_is_nfkd_normalized_as_in_the_spec() {
    assert_eq!(
        hex::encode(normalize_password(PASSWORD).as_slice()),
        ENCODED_PASSWORD
    );
}

#[test]
fn control_codes_are_stripped_and_space_kept() {
    let cases: &[(&str, &str)] = &[
        ("a\u{0}b\u{1f}c", "abc"),
        ("a\u{7f}b", "ab"),
        ("a\u{80}b\u{85}c\u{9f}", "abc"),
        ("a b", "a b"),
        ("\u{a0}", " "), // NBSP is not C1; NFKD maps it to a space, which stays
        ("é", "e\u{301}"),
    ];
    for (input, expected) in cases {
        assert_eq!(
            normalize_password(input).as_slice(),
            expected.as_bytes(),
            "{input:?}"
        );
    }
}

#[test]
fn scrypt_vector_decrypts() {
    let start = Instant::now();
    let d = decrypt(SCRYPT_VECTOR, PASSWORD).unwrap();
    eprintln!(
        "scrypt vector (n=2^18, r=8, p=1) took {:?}",
        start.elapsed()
    );
    assert_vector(
        &d,
        "m/12381/60/3141592653/589793238",
        "1d85ae20-35c5-4611-98e8-aa14a633906f",
    );
}

#[test]
fn pbkdf2_vector_decrypts() {
    let start = Instant::now();
    let d = decrypt(PBKDF2_VECTOR, PASSWORD).unwrap();
    eprintln!("pbkdf2 vector (c=262144) took {:?}", start.elapsed());
    assert_vector(&d, "m/12381/60/0/0", "64625def-3331-4eea-ab6f-782f3ed16a83");
}

#[test]
fn control_character_in_password_is_ignored() {
    let d = decrypt(PBKDF2_VECTOR, "𝔱𝔢𝔰𝔱\u{7f}𝔭𝔞𝔰𝔰\u{0}𝔴𝔬𝔯𝔡\u{85}🔑").unwrap();
    assert_vector(&d, "m/12381/60/0/0", "64625def-3331-4eea-ab6f-782f3ed16a83");
    // The already-normalized form is the same password.
    assert!(decrypt(PBKDF2_VECTOR, "testpassword🔑").is_ok());
}

#[test]
fn wrong_password_is_a_checksum_error() {
    let err = decrypt(PBKDF2_VECTOR, "testpassword").unwrap_err();
    assert_eq!(err, KeystoreError::WrongPassword);
    assert_eq!(err.to_string(), "wrong password or corrupted keystore");
    assert_eq!(
        decrypt(PBKDF2_VECTOR, "").unwrap_err(),
        KeystoreError::WrongPassword
    );
}

#[test]
fn tampering_is_a_checksum_error() {
    let flip_first = |s: &str| format!("{}{}", if s.starts_with('0') { '1' } else { '0' }, &s[1..]);
    for field in ["cipher", "checksum"] {
        let json = edited(|v| {
            let m = v["crypto"][field]["message"].as_str().unwrap().to_owned();
            v["crypto"][field]["message"] = Value::from(flip_first(&m));
        });
        assert_eq!(
            decrypt(&json, PASSWORD).unwrap_err(),
            KeystoreError::WrongPassword,
            "{field}"
        );
    }
    let json = edited(|v| v["crypto"]["kdf"]["params"]["salt"] = Value::from("00".repeat(32)));
    assert_eq!(
        decrypt(&json, PASSWORD).unwrap_err(),
        KeystoreError::WrongPassword
    );
}

#[test]
fn malformed_fields_are_named() {
    type Edit = fn(&mut Value);
    let cases: &[(&str, Edit)] = &[
        ("crypto", |v| {
            drop(v.as_object_mut().unwrap().remove("crypto"))
        }),
        ("uuid", |v| drop(v.as_object_mut().unwrap().remove("uuid"))),
        ("uuid", |v| v["uuid"] = Value::from("not-a-uuid")),
        ("path", |v| v["path"] = Value::from(7)),
        ("version", |v| v["version"] = Value::from("4")),
        ("extra", |v| v["extra"] = Value::from(1)),
        ("description", |v| v["description"] = Value::from(1)),
        ("pubkey", |v| v["pubkey"] = Value::from("0x9612")),
        ("pubkey", |v| v["pubkey"] = Value::from(&PUBKEY[2..])),
        ("pubkey", |v| v["pubkey"] = Value::from("00".repeat(48))),
        ("crypto.kdf", |v| v["crypto"]["kdf"] = Value::from("pbkdf2")),
        ("crypto.kdf.message", |v| {
            v["crypto"]["kdf"]["message"] = Value::from("x")
        }),
        ("crypto.kdf.params", |v| {
            v["crypto"]["kdf"]["params"] = Value::Null
        }),
        ("crypto.kdf.params.salt", |v| {
            drop(
                v["crypto"]["kdf"]["params"]
                    .as_object_mut()
                    .unwrap()
                    .remove("salt"),
            )
        }),
        ("crypto.kdf.params.salt", |v| {
            v["crypto"]["kdf"]["params"]["salt"] = Value::from("zz")
        }),
        ("crypto.kdf.params.salt", |v| {
            v["crypto"]["kdf"]["params"]["salt"] = Value::from("")
        }),
        ("crypto.kdf.params.c", |v| {
            v["crypto"]["kdf"]["params"]["c"] = Value::from(-1)
        }),
        ("crypto.kdf.params.c", |v| {
            v["crypto"]["kdf"]["params"]["c"] = Value::from(1.5)
        }),
        ("crypto.kdf.params.c", |v| {
            v["crypto"]["kdf"]["params"]["c"] = Value::from(0)
        }),
        ("crypto.kdf.params.dklen", |v| {
            v["crypto"]["kdf"]["params"]["dklen"] = Value::from(64)
        }),
        ("crypto.kdf.params.n", |v| {
            v["crypto"]["kdf"]["params"]["n"] = Value::from(2)
        }),
        ("crypto.checksum.params.x", |v| {
            v["crypto"]["checksum"]["params"]["x"] = Value::from(1)
        }),
        ("crypto.checksum.message", |v| {
            v["crypto"]["checksum"]["message"] = Value::from("abcd")
        }),
        ("crypto.cipher.params.iv", |v| {
            v["crypto"]["cipher"]["params"]["iv"] = Value::from("00")
        }),
        ("crypto.cipher.params.iv", |v| {
            drop(
                v["crypto"]["cipher"]["params"]
                    .as_object_mut()
                    .unwrap()
                    .remove("iv"),
            )
        }),
        ("crypto.cipher.message", |v| {
            v["crypto"]["cipher"]["message"] = Value::from("00")
        }),
        ("crypto.cipher.function", |v| {
            drop(
                v["crypto"]["cipher"]
                    .as_object_mut()
                    .unwrap()
                    .remove("function"),
            )
        }),
    ];
    for (field, edit) in cases {
        match decrypt(&edited(*edit), PASSWORD) {
            Err(KeystoreError::Malformed { field: f, reason }) => {
                assert_eq!(&f, field, "{reason}");
                assert!(KeystoreError::Malformed { field: f, reason }
                    .to_string()
                    .contains(field));
            }
            other => panic!("{field}: expected Malformed, got {other:?}"),
        }
    }
}

#[test]
fn unsupported_versions_and_functions_are_refused() {
    let v3 = edited(|v| v["version"] = Value::from(3));
    assert_eq!(
        decrypt(&v3, PASSWORD).unwrap_err(),
        KeystoreError::UnsupportedVersion { found: 3 }
    );
    type Edit = fn(&mut Value);
    let cases: &[(&str, Edit)] = &[
        ("crypto.kdf.function", |v| {
            v["crypto"]["kdf"]["function"] = Value::from("argon2id")
        }),
        ("crypto.kdf.params.prf", |v| {
            v["crypto"]["kdf"]["params"]["prf"] = Value::from("hmac-sha512")
        }),
        ("crypto.checksum.function", |v| {
            v["crypto"]["checksum"]["function"] = Value::from("keccak256")
        }),
        ("crypto.cipher.function", |v| {
            v["crypto"]["cipher"]["function"] = Value::from("aes-256-gcm")
        }),
    ];
    for (field, edit) in cases {
        match decrypt(&edited(*edit), PASSWORD) {
            Err(KeystoreError::UnsupportedFunction { field: f, .. }) => assert_eq!(f, *field),
            other => panic!("{field}: expected UnsupportedFunction, got {other:?}"),
        }
    }
}

#[test]
fn bad_json_and_duplicate_fields_are_refused() {
    assert!(matches!(
        decrypt("{", PASSWORD),
        Err(KeystoreError::Json(_))
    ));
    assert!(matches!(
        decrypt("[]", PASSWORD),
        Err(KeystoreError::Malformed { .. })
    ));
    // A second `pubkey` could make a viewer and the importer disagree on the key.
    let dup = PBKDF2_VECTOR.replacen("\"path\"", "\"pubkey\": \"00\", \"path\"", 1);
    match decrypt(&dup, PASSWORD) {
        Err(KeystoreError::Json(msg)) => {
            assert!(msg.contains("duplicate field `pubkey`"), "{msg}")
        }
        other => panic!("expected Json, got {other:?}"),
    }
}

#[test]
fn excessive_kdf_params_are_refused_before_running() {
    let scrypt = |n: u64, r: u64, p: u64| {
        let mut v: Value = serde_json::from_str(SCRYPT_VECTOR).unwrap();
        v["crypto"]["kdf"]["params"]["n"] = Value::from(n);
        v["crypto"]["kdf"]["params"]["r"] = Value::from(r);
        v["crypto"]["kdf"]["params"]["p"] = Value::from(p);
        v.to_string()
    };
    let cases: Vec<(String, &str)> = vec![
        (scrypt(1 << 21, 8, 1), "crypto.kdf.params.n"),
        (scrypt(1 << 40, 1, 1), "crypto.kdf.params.n"),
        (scrypt(1 << 20, 16, 1), "crypto.kdf.params.r"),
        (
            scrypt(1 << 10, u64::from(u32::MAX), 1),
            "crypto.kdf.params.r",
        ),
        (scrypt(1 << 18, 8, 8), "crypto.kdf.params.p"),
        (scrypt(1 << 4, 1, u64::MAX), "crypto.kdf.params.p"),
        (
            edited(|v| v["crypto"]["kdf"]["params"]["c"] = Value::from(10_000_001)),
            "crypto.kdf.params.c",
        ),
        (
            edited(|v| v["crypto"]["kdf"]["params"]["c"] = Value::from(u64::MAX)),
            "crypto.kdf.params.c",
        ),
    ];
    for (json, field) in &cases {
        let start = Instant::now();
        match decrypt(json, PASSWORD) {
            Err(KeystoreError::ExcessiveKdfParams { field: f, .. }) => assert_eq!(f, *field),
            other => panic!("{field}: expected ExcessiveKdfParams, got {other:?}"),
        }
        assert!(start.elapsed().as_millis() < 100, "refused before deriving");
    }
    // The limits themselves are accepted by the parser.
    let at_limit = scrypt(1 << 20, 8, 1);
    assert!(matches!(
        parse(&at_limit).unwrap().kdf,
        Kdf::Scrypt {
            log_n: 20,
            r: 8,
            p: 1,
            ..
        }
    ));
}

#[test]
fn pubkey_is_checked_when_present_and_derived_when_absent() {
    let secret: [u8; 32] = hex::decode(SECRET).unwrap().try_into().unwrap();
    let d = decrypt(&seal_cheap(&secret, "pw", None), "pw").unwrap();
    assert_eq!(hex::encode(d.pubkey), PUBKEY);

    let other = SecretKey::from_ikm(&[1u8; 32])
        .unwrap()
        .public_key()
        .to_bytes();
    match decrypt(&seal_cheap(&secret, "pw", Some(&hex::encode(other))), "pw") {
        Err(KeystoreError::PubkeyMismatch { stored, derived }) => {
            assert_eq!(stored, format!("0x{}", hex::encode(other)));
            assert_eq!(derived, format!("0x{PUBKEY}"));
        }
        other => panic!("expected PubkeyMismatch, got {other:?}"),
    }
}

#[test]
fn invalid_scalar_is_refused() {
    for secret in [[0u8; 32], [0xff; 32]] {
        let err = decrypt(&seal_cheap(&secret, "pw", None), "pw").unwrap_err();
        assert!(matches!(err, KeystoreError::InvalidSecret(_)), "{err:?}");
        assert!(!err.to_string().contains("ffff"));
    }
}

#[test]
fn debug_redacts_the_secret() {
    let secret: [u8; 32] = hex::decode(SECRET).unwrap().try_into().unwrap();
    let d = decrypt(&seal_cheap(&secret, "pw", Some(PUBKEY)), "pw").unwrap();
    let shown = format!("{d:?}");
    assert!(
        shown.contains("<redacted>") && shown.contains(PUBKEY),
        "{shown}"
    );
    assert!(!shown.contains(&SECRET[10..]), "{shown}");
}
