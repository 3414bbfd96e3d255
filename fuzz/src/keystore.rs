//! Target `keystore`: an EIP-2335 keystore and its password, as an approved `import_key`
//! action carries them and the proposing node decrypts them (`keystore::decrypt`).
//!
//! Owns: the input framing (the password up to the first newline, at most 64 bytes; the
//! keystore JSON after it) and the properties. Must not: run expensive key derivations: an
//! input whose KDF parameters ask for more than [`MAX_WORK`] (scrypt `n·r·p`, or PBKDF2 `c`)
//! is skipped, since the keystore's own bounds allow derivations of seconds, which would only
//! slow the fuzzer down (those bounds are checked by the unit tests).
//!
//! Properties: decryption is deterministic; a decrypted key's public key is that of its secret
//! (and the keystore's `pubkey` when it has one); the result's `Debug` does not show the
//! secret; an error found before the key derivation (every malformed field) is the same with
//! any other password, so no such error can carry the password.

use signer_node::keystore::{decrypt, KeystoreError};
use signer_node::scheme::bls12_381::SecretKey;

/// The largest KDF work the target runs.
pub const MAX_WORK: u64 = 1 << 12;

/// Whether the KDF parameters of `json` are cheap enough to run. Values this reading does not
/// understand (strings, negative numbers) pass: the keystore refuses them before deriving.
fn cheap(json: &str) -> bool {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(json) else {
        return true;
    };
    let Some(params) = value.pointer("/crypto/kdf/params") else {
        return true;
    };
    let num = |k: &str| -> f64 {
        params
            .get(k)
            .and_then(serde_json::Value::as_f64)
            .unwrap_or(1.0)
            .max(1.0)
    };
    let limit = MAX_WORK as f64;
    num("n") * num("r") * num("p") <= limit && num("c") <= limit
}

/// One fuzz input.
pub fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (password, json) = text.split_once('\n').unwrap_or(("", text));
    if password.len() > 64 || !cheap(json) {
        return;
    }
    let first = decrypt(json, password);
    let again = decrypt(json, password);
    match (&first, &again) {
        (Ok(a), Ok(b)) => {
            assert_eq!(*a.secret, *b.secret, "decryption is not deterministic");
            assert_eq!(a.pubkey, b.pubkey);
        }
        (Err(a), Err(b)) => assert_eq!(a, b, "decryption is not deterministic"),
        _ => panic!("decryption is not deterministic"),
    }
    match first {
        Ok(key) => {
            let secret = SecretKey::from_bytes(key.secret.as_ref())
                .expect("a decrypted secret is a valid key");
            assert_eq!(
                secret.public_key().to_bytes(),
                key.pubkey,
                "the public key is not the secret's"
            );
            let debug = format!("{key:?}");
            assert!(
                !debug.contains(&hex::encode(*key.secret)),
                "Debug shows the secret"
            );
            if let Some(stored) = serde_json::from_str::<serde_json::Value>(json)
                .ok()
                .and_then(|v| v.get("pubkey").and_then(|p| p.as_str().map(str::to_owned)))
            {
                let stored = stored.trim_start_matches("0x").to_ascii_lowercase();
                assert_eq!(
                    stored,
                    hex::encode(key.pubkey),
                    "pubkey differs from the file's"
                );
            }
        }
        Err(e) => check_error(&e, json, password),
    }
}

/// Reading the keystore does not depend on the password: an error found before the key
/// derivation is the same with any other password (so it cannot quote the password).
fn check_error(e: &KeystoreError, json: &str, password: &str) {
    let other = if password == "fuzz-other" {
        "fuzz-other-2"
    } else {
        "fuzz-other"
    };
    let derived = |e: &KeystoreError| {
        matches!(
            e,
            KeystoreError::WrongPassword
                | KeystoreError::InvalidSecret(_)
                | KeystoreError::PubkeyMismatch { .. }
                | KeystoreError::Crypto(_)
        )
    };
    if derived(e) {
        return;
    }
    match decrypt(json, other) {
        Err(again) => assert_eq!(&again, e, "a keystore error depends on the password"),
        Ok(_) => panic!("a keystore refused with one password ({e}) decrypts with another"),
    }
}
