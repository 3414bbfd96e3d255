//! Target `tagged_base64`: Espresso's tagged-base64 text forms (`BLS_VER_KEY~`, `BLS_SIG~`,
//! `BLS_SIGNING_KEY~`, `COMMIT~`), read where keys, signatures and commitments enter as text
//! (key files, `signerctl`, the registry's key listing), and the byte forms of the same keys
//! and signatures (`scheme::{bn254, bls12_381}`).
//!
//! Owns: the properties; the secret-key reader (`tagged::decode_secret`, written to keep key
//! bytes in zeroizing buffers) is compared with the `tagged-base64` crate itself. Must not:
//! sign or verify anything.
//!
//! Properties: every accepted text writes back to a text that reads to the same value; the
//! secret-key reader accepts a text exactly when the crate reads 32 bytes under that tag, with
//! the same bytes; a BN254 key or signature accepted from bytes is canonical (it encodes back
//! to those bytes: one key has one record); a 48-byte BLS12-381 key and a 96-byte signature
//! accepted from bytes encode back to them.

use signer_node::protection::espresso::message::{
    commitment_from_tagged, commitment_to_tagged, parse_commitment,
};
use signer_node::scheme::bls12_381;
use signer_node::scheme::bn254::{self, tagged, TAG_SIGNATURE, TAG_SIGNING_KEY, TAG_VER_KEY};

/// One fuzz input.
pub fn check(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        check_text(text);
    }
    check_bytes(data);
}

fn check_text(text: &str) {
    for tag in [TAG_VER_KEY, TAG_SIGNATURE, TAG_SIGNING_KEY, "COMMIT"] {
        if let Ok(value) = tagged::decode(text, tag) {
            let written = tagged::encode(tag, &value);
            assert_eq!(
                tagged::decode(&written, tag).ok(),
                Some(value),
                "tagged round trip under {tag}"
            );
        }
    }

    let ours = tagged::decode_secret(text, TAG_SIGNING_KEY).ok();
    let crate_reading = tagged::decode(text, TAG_SIGNING_KEY)
        .ok()
        .filter(|v| v.len() == 32);
    assert_eq!(
        ours.as_ref().map(|v| v.to_vec()),
        crate_reading,
        "decode_secret and the tagged-base64 crate disagree on {text:?}"
    );

    if let Ok(key) = bn254::PublicKey::from_tagged(text) {
        let again = bn254::PublicKey::from_tagged(&key.to_tagged()).expect("a written key reads");
        assert_eq!(again.to_bytes(), key.to_bytes());
    }
    if let Ok(sig) = bn254::Signature::from_tagged(text) {
        let again = bn254::Signature::from_tagged(&sig.to_tagged()).expect("a written sig reads");
        assert_eq!(again, sig);
    }
    if let Ok(secret) = bn254::SecretKey::from_tagged(text) {
        let again =
            bn254::SecretKey::from_tagged(&secret.to_tagged()).expect("a written secret reads");
        assert_eq!(*again.to_le_bytes(), *secret.to_le_bytes());
        assert_eq!(
            again.public_key().to_bytes(),
            secret.public_key().to_bytes()
        );
    }
    if let Ok(c) = commitment_from_tagged(text) {
        assert_eq!(
            commitment_from_tagged(&commitment_to_tagged(&c)).ok(),
            Some(c)
        );
    }
    if text.contains('~') {
        assert_eq!(
            parse_commitment(text).ok(),
            commitment_from_tagged(text).ok(),
            "parse_commitment reads a tagged text otherwise"
        );
    }
}

fn check_bytes(data: &[u8]) {
    if let Ok(key) = bn254::PublicKey::from_bytes(data) {
        assert_eq!(
            key.to_bytes().as_slice(),
            data,
            "a BN254 key is not canonical"
        );
    }
    if let Ok(sig) = bn254::Signature::from_bytes(data) {
        assert_eq!(
            sig.to_bytes().as_slice(),
            data,
            "a BN254 signature is not canonical"
        );
    }
    if data.len() == 48 {
        if let Ok(key) = bls12_381::PublicKey::from_bytes(data) {
            assert_eq!(
                key.to_bytes().as_slice(),
                data,
                "a BLS12-381 key re-encodes"
            );
        }
    }
    if data.len() == 96 {
        if let Ok(sig) = bls12_381::Signature::from_bytes(data) {
            assert_eq!(
                sig.to_bytes().as_slice(),
                data,
                "a BLS12-381 signature re-encodes"
            );
        }
    }
}
