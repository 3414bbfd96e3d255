//! Signing schemes: BLS12-381 (Ethereum), BLS over BN254 (Espresso) and Ed25519.
//!
//! Owns: key, public-key and signature types of each scheme and their byte and text encodings.
//! (Ethereum signing roots are computed by the `eth2-messages` crate.)
//!
//! Must not: do IO, decide whether a message may be signed (that is [`crate::protection`]),
//! or expose secret bytes except through zeroizing buffers. Secret key types zeroize on drop,
//! print as `<redacted>` and are neither `Clone` nor `Serialize`.

pub mod bls12_381;
pub mod bn254;
pub mod ed25519;
pub mod validator;

/// Errors from decoding or using keys and signatures.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SchemeError {
    /// The secret key bytes are not a valid key for the scheme (wrong length, zero, out of range).
    #[error("invalid {scheme} secret key: {reason}")]
    InvalidSecretKey {
        /// Scheme name.
        scheme: &'static str,
        /// What is wrong (never contains key material).
        reason: &'static str,
    },
    /// The public key bytes do not decode to a valid public key.
    #[error("invalid {scheme} public key: {reason}")]
    InvalidPublicKey {
        /// Scheme name.
        scheme: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The signature bytes do not decode to a valid signature.
    #[error("invalid {scheme} signature: {reason}")]
    InvalidSignature {
        /// Scheme name.
        scheme: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A text encoding (hex, tagged base64) is malformed.
    #[error("malformed encoding: {0}")]
    Encoding(String),
}
