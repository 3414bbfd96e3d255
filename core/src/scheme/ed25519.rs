//! Ed25519 signatures (RFC 8032), for CometBFT-style validators and soft admin keys.
//!
//! Owns: key, public key and signature types. Must not: decide what may be signed. The secret
//! key zeroizes on drop (ed25519-dalek's `zeroize` feature) and prints as `<redacted>`.

use crate::scheme::SchemeError;
use ed25519_dalek::{Signer, Verifier};
use zeroize::Zeroizing;

const SCHEME: &str = "ed25519";

/// An Ed25519 secret key. Not `Clone`, not `Serialize`.
pub struct SecretKey(ed25519_dalek::SigningKey);

/// An Ed25519 public key (32 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PublicKey(ed25519_dalek::VerifyingKey);

/// An Ed25519 signature (64 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Signature(ed25519_dalek::Signature);

impl SecretKey {
    /// Decode a 32-byte seed.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SchemeError> {
        let seed: &[u8; 32] = bytes
            .try_into()
            .map_err(|_| SchemeError::InvalidSecretKey {
                scheme: SCHEME,
                reason: "expected a 32-byte seed",
            })?;
        Ok(SecretKey(ed25519_dalek::SigningKey::from_bytes(seed)))
    }

    /// Generate a fresh key.
    pub fn generate<R: rand::RngCore + rand::CryptoRng>(rng: &mut R) -> Self {
        SecretKey(ed25519_dalek::SigningKey::generate(rng))
    }

    /// The 32-byte seed in a zeroizing buffer.
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.0.to_bytes())
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// Sign `msg`.
    pub fn sign(&self, msg: &[u8]) -> Signature {
        Signature(self.0.sign(msg))
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ed25519::SecretKey(<redacted>)")
    }
}

impl PublicKey {
    /// Decode a 32-byte public key.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SchemeError> {
        let arr: &[u8; 32] = bytes
            .try_into()
            .map_err(|_| SchemeError::InvalidPublicKey {
                scheme: SCHEME,
                reason: format!("expected 32 bytes, got {}", bytes.len()),
            })?;
        ed25519_dalek::VerifyingKey::from_bytes(arr)
            .map(PublicKey)
            .map_err(|e| SchemeError::InvalidPublicKey {
                scheme: SCHEME,
                reason: e.to_string(),
            })
    }

    /// The 32-byte encoding.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }
}

impl Signature {
    /// Decode a 64-byte signature.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SchemeError> {
        ed25519_dalek::Signature::from_slice(bytes)
            .map(Signature)
            .map_err(|e| SchemeError::InvalidSignature {
                scheme: SCHEME,
                reason: e.to_string(),
            })
    }

    /// The 64-byte encoding.
    pub fn to_bytes(&self) -> [u8; 64] {
        self.0.to_bytes()
    }

    /// Verify under `pk` (strict: rejects malleable signatures and small-order keys).
    pub fn verify(&self, pk: &PublicKey, msg: &[u8]) -> bool {
        pk.0.verify_strict(msg, &self.0).is_ok() && pk.0.verify(msg, &self.0).is_ok()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// RFC 8032 section 7.1, TEST 2 (one-byte message 0x72).
    #[test]
    fn rfc8032_test_2() {
        let sk = SecretKey::from_bytes(
            &hex::decode("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb")
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            hex::encode(sk.public_key().to_bytes()),
            "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c"
        );
        let sig = sk.sign(&[0x72]);
        assert_eq!(
            hex::encode(sig.to_bytes()),
            "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da\
             085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"
        );
        assert!(sig.verify(&sk.public_key(), &[0x72]));
        assert!(!sig.verify(&sk.public_key(), &[0x73]));
    }

    #[test]
    fn debug_is_redacted() {
        let sk = SecretKey::from_bytes(&[5u8; 32]).unwrap();
        assert!(format!("{sk:?}").contains("redacted"));
    }
}
