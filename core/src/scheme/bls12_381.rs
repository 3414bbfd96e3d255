//! BLS12-381 signatures as Ethereum uses them: min-pk (48-byte G1 public keys, 96-byte G2
//! signatures), proof-of-possession ciphersuite `BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_`,
//! backed by `blst`.
//!
//! Owns: key, public key and signature types and their byte encodings. Must not: decide what
//! may be signed. The secret key zeroizes on drop (blst's `SecretKey` clears itself) and prints
//! as `<redacted>`.

use crate::scheme::SchemeError;
use blst::min_pk;
use zeroize::Zeroizing;

/// The Ethereum domain separation tag for BLS signatures.
pub const DST: &[u8] = b"BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_";
const SCHEME: &str = "bls12-381";

/// A BLS12-381 secret key. Not `Clone`, not `Serialize`; zeroized on drop by blst.
pub struct SecretKey(min_pk::SecretKey);

/// A validated BLS12-381 public key (48 bytes compressed).
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey(min_pk::PublicKey);

/// A BLS12-381 signature (96 bytes compressed).
#[derive(Clone, PartialEq, Eq)]
pub struct Signature(min_pk::Signature);

impl SecretKey {
    /// Decode a 32-byte big-endian scalar. Zero and values above the group order are refused.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SchemeError> {
        if bytes.len() != 32 {
            return Err(SchemeError::InvalidSecretKey {
                scheme: SCHEME,
                reason: "expected 32 bytes",
            });
        }
        min_pk::SecretKey::from_bytes(bytes)
            .map(SecretKey)
            .map_err(|_| SchemeError::InvalidSecretKey {
                scheme: SCHEME,
                reason: "not a valid non-zero scalar",
            })
    }

    /// Derive a key from at least 32 bytes of input keying material (EIP-2333 `KeyGen`).
    pub fn from_ikm(ikm: &[u8]) -> Result<Self, SchemeError> {
        min_pk::SecretKey::key_gen(ikm, &[])
            .map(SecretKey)
            .map_err(|_| SchemeError::InvalidSecretKey {
                scheme: SCHEME,
                reason: "input keying material shorter than 32 bytes",
            })
    }

    /// Generate a fresh key from 32 bytes of `rng` output.
    pub fn generate<R: rand::RngCore + rand::CryptoRng>(rng: &mut R) -> Result<Self, SchemeError> {
        let mut ikm = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(ikm.as_mut());
        Self::from_ikm(ikm.as_ref())
    }

    /// The secret scalar, big-endian, in a zeroizing buffer.
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.0.to_bytes())
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.sk_to_pk())
    }

    /// Sign `msg` with the Ethereum DST.
    pub fn sign(&self, msg: &[u8]) -> Signature {
        Signature(self.0.sign(msg, DST, &[]))
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("bls12_381::SecretKey(<redacted>)")
    }
}

impl PublicKey {
    /// Decode and validate (on curve, in subgroup, not infinity) a 48-byte compressed key.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SchemeError> {
        min_pk::PublicKey::key_validate(bytes)
            .map(PublicKey)
            .map_err(|e| SchemeError::InvalidPublicKey {
                scheme: SCHEME,
                reason: format!("{e:?}"),
            })
    }

    /// The 48-byte compressed encoding.
    pub fn to_bytes(&self) -> [u8; 48] {
        self.0.compress()
    }

    /// `0x`-prefixed lower-case hex, the usual Ethereum text form.
    pub fn to_hex(&self) -> String {
        format!("0x{}", hex::encode(self.to_bytes()))
    }
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "bls12_381::PublicKey({})", self.to_hex())
    }
}

impl Signature {
    /// Decode a 96-byte compressed signature (checked to be in G2).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SchemeError> {
        min_pk::Signature::sig_validate(bytes, false)
            .map(Signature)
            .map_err(|e| SchemeError::InvalidSignature {
                scheme: SCHEME,
                reason: format!("{e:?}"),
            })
    }

    /// The 96-byte compressed encoding.
    pub fn to_bytes(&self) -> [u8; 96] {
        self.0.compress()
    }

    /// `0x`-prefixed lower-case hex.
    pub fn to_hex(&self) -> String {
        format!("0x{}", hex::encode(self.to_bytes()))
    }

    /// Verify this signature on `msg` under `pk` with the Ethereum DST.
    pub fn verify(&self, pk: &PublicKey, msg: &[u8]) -> bool {
        self.0.verify(true, msg, DST, &[], &pk.0, true) == blst::BLST_ERROR::BLST_SUCCESS
    }
}

impl std::fmt::Debug for Signature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "bls12_381::Signature({})", self.to_hex())
    }
}

/// Verify a signature given as bytes; any decoding failure is `false`, as the Ethereum
/// consensus tests require.
pub fn verify_bytes(pk: &[u8], msg: &[u8], sig: &[u8]) -> bool {
    match (PublicKey::from_bytes(pk), Signature::from_bytes(sig)) {
        (Ok(pk), Ok(sig)) => sig.verify(&pk, msg),
        _ => false,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_roundtrip_and_wrong_message() {
        let sk = SecretKey::from_ikm(&[7u8; 32]).unwrap();
        let pk = sk.public_key();
        let sig = sk.sign(b"hello");
        assert!(sig.verify(&pk, b"hello"));
        assert!(!sig.verify(&pk, b"hellp"));
        let again = SecretKey::from_bytes(sk.to_bytes().as_ref()).unwrap();
        assert_eq!(
            again.sign(b"hello"),
            sig,
            "BLS signatures are deterministic"
        );
    }

    #[test]
    fn zero_and_short_keys_are_refused() {
        assert!(SecretKey::from_bytes(&[0u8; 32]).is_err());
        assert!(SecretKey::from_bytes(&[1u8; 31]).is_err());
    }

    #[test]
    fn debug_never_prints_the_secret() {
        let sk = SecretKey::from_ikm(&[9u8; 32]).unwrap();
        let text = format!("{sk:?}");
        assert!(text.contains("redacted"));
        assert!(!text.contains(&hex::encode(sk.to_bytes().as_ref())));
    }

    #[test]
    fn infinity_public_key_is_refused() {
        let mut inf = [0u8; 48];
        inf[0] = 0xc0;
        assert!(PublicKey::from_bytes(&inf).is_err());
    }
}
