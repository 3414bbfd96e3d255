//! The signature scheme of each protection profile, behind one trait: generating a key,
//! decoding its secret (key-file text or sealed bytes), its public key, signing and verifying.
//! A new profile's scheme is one implementation here and one line in [`for_profile`].
//!
//! Owns: [`ValidatorScheme`], [`ValidatorSecret`] and the profile → scheme registration.
//! Must not: decide whether a message may be signed (that is [`crate::protection`]) or expose
//! secret bytes except through zeroizing buffers.

use super::{bls12_381, bn254, SchemeError};
use crate::protection::Profile;
use zeroize::Zeroizing;

/// A public key or signature as bytes and in its usual text form (`0x…` hex for eth2,
/// tagged base64 for Espresso).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encoded {
    /// Raw bytes.
    pub bytes: Vec<u8>,
    /// Text form.
    pub text: String,
}

/// A loaded secret key of some scheme. Not `Clone`, not `Debug`: the secret stays inside.
pub trait ValidatorSecret: Send + Sync {
    /// The matching public key.
    fn public_key(&self) -> Encoded;
    /// Sign a message the protection rules allowed: 32 bytes for every eth2 message and every
    /// Espresso consensus message; other lengths only for Espresso's network and request
    /// messages, whose bytes the signer builds ([`crate::protection::Intent::signed_bytes`]).
    fn sign(&self, message: &[u8]) -> Encoded;
}

/// A profile's signature scheme.
pub trait ValidatorScheme: Sync {
    /// The scheme's name, e.g. `bls12-381`.
    fn name(&self) -> &'static str;
    /// A fresh random secret in its key-file text form.
    fn generate_text(&self) -> Result<Zeroizing<String>, SchemeError>;
    /// The secret of a key file's text form.
    fn secret_from_text(&self, text: &str) -> Result<Box<dyn ValidatorSecret>, SchemeError>;
    /// The secret of its raw 32 bytes, as sealed in the registry: big-endian for BLS12-381,
    /// little-endian for BN254 (as jf-signature stores it).
    fn secret_from_bytes(&self, bytes: &[u8]) -> Result<Box<dyn ValidatorSecret>, SchemeError>;
    /// Whether `signature` is this scheme's signature of `message` by `public_key`.
    fn verify(&self, public_key: &[u8], message: &[u8], signature: &[u8]) -> bool;
}

/// The scheme that signs for `profile`: the one registration point.
pub fn for_profile(profile: Profile) -> &'static dyn ValidatorScheme {
    match profile {
        Profile::Eth2 => &Bls12381,
        Profile::Espresso => &Bn254,
    }
}

/// A public key of `profile` in its usual text form, as `key list` prints it: `0x…` hex for
/// eth2, `BLS_VER_KEY~…` tagged base64 for espresso. Bytes that are not a valid key of the
/// profile are printed as `0x…` hex (a review shows them rather than hiding them).
pub fn public_key_text(profile: Profile, public_key: &[u8]) -> String {
    match profile {
        Profile::Eth2 => format!("0x{}", hex::encode(public_key)),
        Profile::Espresso => bn254::PublicKey::from_bytes(public_key)
            .map(|pk| pk.to_tagged())
            .unwrap_or_else(|_| format!("0x{}", hex::encode(public_key))),
    }
}

/// Ethereum's BLS12-381 (min-pk), secrets as `0x` hex.
struct Bls12381;

impl ValidatorSecret for bls12_381::SecretKey {
    fn public_key(&self) -> Encoded {
        let pk = bls12_381::SecretKey::public_key(self);
        Encoded {
            bytes: pk.to_bytes().to_vec(),
            text: pk.to_hex(),
        }
    }

    fn sign(&self, message: &[u8]) -> Encoded {
        let sig = bls12_381::SecretKey::sign(self, message);
        Encoded {
            bytes: sig.to_bytes().to_vec(),
            text: sig.to_hex(),
        }
    }
}

impl ValidatorScheme for Bls12381 {
    fn name(&self) -> &'static str {
        "bls12-381"
    }

    fn generate_text(&self) -> Result<Zeroizing<String>, SchemeError> {
        let sk = bls12_381::SecretKey::generate(&mut rand::rngs::OsRng)?;
        Ok(Zeroizing::new(format!(
            "0x{}",
            hex::encode(sk.to_bytes().as_ref())
        )))
    }

    fn secret_from_text(&self, text: &str) -> Result<Box<dyn ValidatorSecret>, SchemeError> {
        let digits = text.trim().trim_start_matches("0x");
        let bytes = Zeroizing::new(
            hex::decode(digits)
                .map_err(|_| SchemeError::Encoding("eth2 secret is not hex".into()))?,
        );
        self.secret_from_bytes(&bytes)
    }

    fn secret_from_bytes(&self, bytes: &[u8]) -> Result<Box<dyn ValidatorSecret>, SchemeError> {
        Ok(Box::new(bls12_381::SecretKey::from_bytes(bytes)?))
    }

    fn verify(&self, public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
        bls12_381::verify_bytes(public_key, message, signature)
    }
}

/// Espresso's BLS over BN254, secrets as `BLS_SIGNING_KEY~…` tagged base64.
struct Bn254;

impl ValidatorSecret for bn254::SecretKey {
    fn public_key(&self) -> Encoded {
        let pk = bn254::SecretKey::public_key(self);
        Encoded {
            bytes: pk.to_bytes().to_vec(),
            text: pk.to_tagged(),
        }
    }

    fn sign(&self, message: &[u8]) -> Encoded {
        let sig = bn254::SecretKey::sign(self, message);
        Encoded {
            bytes: sig.to_bytes().to_vec(),
            text: sig.to_tagged(),
        }
    }
}

impl ValidatorScheme for Bn254 {
    fn name(&self) -> &'static str {
        "bn254"
    }

    fn generate_text(&self) -> Result<Zeroizing<String>, SchemeError> {
        Ok(bn254::SecretKey::generate(&mut rand::rngs::OsRng).to_tagged())
    }

    fn secret_from_text(&self, text: &str) -> Result<Box<dyn ValidatorSecret>, SchemeError> {
        Ok(Box::new(bn254::SecretKey::from_tagged(text)?))
    }

    fn secret_from_bytes(&self, bytes: &[u8]) -> Result<Box<dyn ValidatorSecret>, SchemeError> {
        Ok(Box::new(bn254::SecretKey::from_le_bytes(bytes)?))
    }

    fn verify(&self, public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
        match (
            bn254::PublicKey::from_bytes(public_key),
            bn254::Signature::from_bytes(signature),
        ) {
            (Ok(pk), Ok(sig)) => sig.verify(&pk, message),
            _ => false,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Every registered scheme round-trips a generated key through its text and signs what
    /// the scheme's own verifier (the per-scheme module, not this trait) accepts.
    #[test]
    fn every_profile_generates_loads_signs_and_verifies() {
        for profile in [Profile::Eth2, Profile::Espresso] {
            let scheme = for_profile(profile);
            let text = scheme.generate_text().unwrap();
            let secret = scheme.secret_from_text(&text).unwrap();
            let message = [9u8; 32];
            let signature = secret.sign(&message);
            let public = secret.public_key();
            let verified = match profile {
                Profile::Eth2 => bls12_381::verify_bytes(&public.bytes, &message, &signature.bytes),
                Profile::Espresso => bn254::Signature::from_bytes(&signature.bytes)
                    .unwrap()
                    .verify(
                        &bn254::PublicKey::from_bytes(&public.bytes).unwrap(),
                        &message,
                    ),
            };
            assert!(verified, "{profile}");
            assert!(
                scheme.verify(&public.bytes, &message, &signature.bytes),
                "{profile}"
            );
            assert!(
                !scheme.verify(&public.bytes, &[8u8; 32], &signature.bytes),
                "{profile}"
            );
            // The same secret from the text again is the same key.
            assert_eq!(scheme.secret_from_text(&text).unwrap().public_key(), public);
        }
        assert_eq!(
            for_profile(Profile::Eth2).secret_from_text("0xzz").err(),
            Some(SchemeError::Encoding("eth2 secret is not hex".into()))
        );
    }

    /// Keys print as `key list` prints them: eth2 as 0x-hex, espresso as `BLS_VER_KEY~…`
    /// (the key of Espresso's own fixtures, written out), and bytes that are no key as hex.
    #[test]
    fn public_keys_print_in_their_profiles_form() {
        const ESPRESSO: &str = "BLS_VER_KEY~bQszS-QKYvUij2g20VqS8asttGSb95NrTu2PUj0uMh1CBUxNy1FqyPDjZqB29M7ZbjWqj79QkEOWkpga84AmDYUeTuWmy-0P1AdKHD3ehc-dKvei78BDj5USwXPJiDUlCxvYs_9rWYhagaq-5_LXENr78xel17spftNd5MA1Mw5U";
        let bytes = bn254::PublicKey::from_tagged(ESPRESSO).unwrap().to_bytes();
        assert_eq!(public_key_text(Profile::Espresso, &bytes), ESPRESSO);
        assert_eq!(
            public_key_text(Profile::Eth2, &[0xab; 48]),
            format!("0x{}", "ab".repeat(48))
        );
        assert_eq!(public_key_text(Profile::Espresso, &[1, 2]), "0x0102");
    }
}
