//! BLS signatures over BN254 as Espresso (HotShot) uses them: byte for byte the scheme of
//! jf-signature `bls_over_bn254` (signature in G1, public key in G2, "hash-and-pray" hash to
//! G1 with Keccak-256, ciphersuite id [`CS_ID`] appended to every message), written here on
//! the crates.io arkworks 0.5 crates. See `tests/vectors/espresso/NOTES.md` §2.
//!
//! Owns: [`SecretKey`], [`PublicKey`], [`Signature`], [`hash_to_curve`], their byte encodings
//! (arkworks uncompressed affine) and their tagged-base64 text forms ([`tagged`]).
//!
//! Must not: decide what may be signed (that is `protection::espresso`), or expose secret bytes
//! except through zeroizing buffers. [`SecretKey`] zeroizes its scalar on drop, prints as
//! `<redacted>`, and is neither `Clone` nor `Serialize`. No error message carries key bytes.
//!
//! To ensure correctness:
//! - encodings are arkworks' *uncompressed* form including its flag bits: the top bit of the
//!   last byte is set when `y > -y` (arkworks' field order), bit 6 marks the point at infinity.
//!   Decoding accepts only the canonical encoding, so one key has exactly one byte string
//!   (protection records are keyed by those bytes);
//! - public keys are checked to lie on the curve and in the prime-order subgroup, and are never
//!   the identity; signatures are checked to lie on G1 (cofactor 1) and are never the identity;
//! - `hash_to_curve` reproduces arkworks' `DefaultFieldHasher<Keccak256>` with DST `[1]`,
//!   including its quirk of padding with 48 zero bytes (not Keccak's 136-byte block); a unit
//!   test checks it against arkworks' own hasher.

use ark_bn254::{Bn254, Fq, Fr, G1Affine, G1Projective, G2Affine, G2Projective};
use ark_ec::pairing::Pairing;
use ark_ec::{AffineRepr, CurveGroup};
use ark_ff::{Field, One, PrimeField, UniformRand, Zero};
use ark_serialize::CanonicalDeserialize;
use sha3::{Digest, Keccak256};
use zeroize::{Zeroize, Zeroizing};

use crate::scheme::SchemeError;

/// The ciphersuite id jf-signature appends to every message before hashing it to G1.
pub const CS_ID: &[u8] = b"BLS_SIG_BN254G1_XMD:KECCAK_NCTH_NUL_";
/// Tagged-base64 tag of a secret (signing) key.
pub const TAG_SIGNING_KEY: &str = "BLS_SIGNING_KEY";
/// Tagged-base64 tag of a public (verification) key.
pub const TAG_VER_KEY: &str = "BLS_VER_KEY";
/// Tagged-base64 tag of a signature.
pub const TAG_SIGNATURE: &str = "BLS_SIG";
/// Length of an encoded public key (G2 uncompressed).
pub const PUBLIC_KEY_LEN: usize = 128;
/// Length of an encoded signature (G1 uncompressed).
pub const SIGNATURE_LEN: usize = 64;

const SCHEME: &str = "bn254";
/// Flag bits arkworks stores in the last byte of an uncompressed point.
const FLAG_Y_NEGATIVE: u8 = 1 << 7;
const FLAG_INFINITY: u8 = 1 << 6;

/// A BN254 BLS secret key: a non-zero scalar of Fr. Zeroized on drop; not `Clone`, not
/// `Serialize`; `Debug` prints `<redacted>`.
pub struct SecretKey(Fr);

/// A validated BN254 BLS public key: `sk·G2`, never the identity.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PublicKey(G2Affine);

/// A BN254 BLS signature: a point of G1, never the identity.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Signature(G1Affine);

impl SecretKey {
    /// Decode 32 little-endian bytes, reduced modulo the group order as jf-signature's
    /// `SignKey::from_bytes` does. Other lengths and the zero scalar are refused.
    pub fn from_le_bytes(bytes: &[u8]) -> Result<Self, SchemeError> {
        let Ok(bytes) = <&[u8; 32]>::try_from(bytes) else {
            return Err(SchemeError::InvalidSecretKey {
                scheme: SCHEME,
                reason: "expected 32 bytes",
            });
        };
        let mut scalar = scalar_from_le_bytes(bytes);
        if scalar.is_zero() {
            scalar.zeroize();
            return Err(SchemeError::InvalidSecretKey {
                scheme: SCHEME,
                reason: "the scalar is zero",
            });
        }
        Ok(SecretKey(scalar))
    }

    /// Decode the `BLS_SIGNING_KEY~…` text form (as in `ESPRESSO_SEQUENCER_PRIVATE_STAKING_KEY`).
    pub fn from_tagged(text: &str) -> Result<Self, SchemeError> {
        let bytes = tagged::decode_secret(text, TAG_SIGNING_KEY)?;
        Self::from_le_bytes(bytes.as_ref())
    }

    /// The `BLS_SIGNING_KEY~…` text form, in a zeroizing string.
    pub fn to_tagged(&self) -> Zeroizing<String> {
        tagged::encode_secret(TAG_SIGNING_KEY, &self.to_le_bytes())
    }

    /// The scalar as 32 little-endian bytes (jf-signature `SignKey::to_bytes`), zeroizing.
    pub fn to_le_bytes(&self) -> Zeroizing<[u8; 32]> {
        let mut big = self.0.into_bigint();
        let mut out = Zeroizing::new([0u8; 32]);
        for (chunk, limb) in out.chunks_exact_mut(8).zip(big.0.iter()) {
            chunk.copy_from_slice(&limb.to_le_bytes());
        }
        big.zeroize();
        out
    }

    /// A fresh uniformly random non-zero key.
    pub fn generate<R: rand::RngCore + rand::CryptoRng>(rng: &mut R) -> Self {
        loop {
            let scalar = Fr::rand(rng);
            if !scalar.is_zero() {
                return SecretKey(scalar);
            }
        }
    }

    /// The matching public key `sk·G2`.
    pub fn public_key(&self) -> PublicKey {
        PublicKey((G2Projective::from(G2Affine::generator()) * self.0).into_affine())
    }

    /// Sign `msg`: `H(msg ‖ CS_ID)·sk`. Deterministic: the same message gives the same bytes.
    pub fn sign(&self, msg: &[u8]) -> Signature {
        // Multiply in projective form: ark-bn254 uses the GLV endomorphism there (about twice
        // as fast as the affine double-and-add); the point is the same either way.
        let h = G1Projective::from(hash_with_suffix(msg, CS_ID));
        Signature((h * self.0).into_affine())
    }
}

impl Drop for SecretKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("bn254::SecretKey(<redacted>)")
    }
}

impl PublicKey {
    /// The 128-byte arkworks uncompressed encoding `x.c0 ‖ x.c1 ‖ y.c0 ‖ y.c1` (32 bytes
    /// little-endian each, flags in the top bits of the last byte).
    pub fn to_bytes(&self) -> [u8; PUBLIC_KEY_LEN] {
        let mut out = [0u8; PUBLIC_KEY_LEN];
        let p = &self.0;
        if p.infinity {
            out[PUBLIC_KEY_LEN - 1] = FLAG_INFINITY;
            return out;
        }
        out[..32].copy_from_slice(&fq_le(&p.x.c0));
        out[32..64].copy_from_slice(&fq_le(&p.x.c1));
        out[64..96].copy_from_slice(&fq_le(&p.y.c0));
        out[96..].copy_from_slice(&fq_le(&p.y.c1));
        if p.y > -p.y {
            out[PUBLIC_KEY_LEN - 1] |= FLAG_Y_NEGATIVE;
        }
        out
    }

    /// Decode and validate a public key: 128 bytes, canonical, on the curve, in the subgroup,
    /// not the identity.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SchemeError> {
        let bad = |reason: String| SchemeError::InvalidPublicKey {
            scheme: SCHEME,
            reason,
        };
        if bytes.len() != PUBLIC_KEY_LEN {
            return Err(bad(format!(
                "expected {PUBLIC_KEY_LEN} bytes, got {}",
                bytes.len()
            )));
        }
        let point = G2Affine::deserialize_uncompressed(bytes)
            .map_err(|e| bad(format!("not a point of the G2 subgroup ({e})")))?;
        if point.is_zero() {
            return Err(bad("the point at infinity".into()));
        }
        let key = PublicKey(point);
        if key.to_bytes().as_slice() != bytes {
            return Err(bad("non-canonical encoding (flag bits)".into()));
        }
        Ok(key)
    }

    /// The `BLS_VER_KEY~…` text form.
    pub fn to_tagged(&self) -> String {
        tagged::encode(TAG_VER_KEY, &self.to_bytes())
    }

    /// Decode the `BLS_VER_KEY~…` text form (validated like [`PublicKey::from_bytes`]).
    pub fn from_tagged(text: &str) -> Result<Self, SchemeError> {
        Self::from_bytes(&tagged::decode(text, TAG_VER_KEY)?)
    }

    /// The sum of `keys`, against which an aggregate of their signatures over one message
    /// verifies (HotShot QC check). Refused when empty or when the sum is the identity.
    pub fn aggregate(keys: &[PublicKey]) -> Result<PublicKey, SchemeError> {
        let sum: G2Projective = keys.iter().map(|k| k.0).sum();
        let sum = sum.into_affine();
        if keys.is_empty() || sum.is_zero() {
            return Err(SchemeError::InvalidPublicKey {
                scheme: SCHEME,
                reason: "nothing to aggregate, or the sum is the identity".into(),
            });
        }
        Ok(PublicKey(sum))
    }
}

impl Signature {
    /// The 64-byte arkworks uncompressed encoding `x ‖ y` (32 bytes little-endian each,
    /// flags in the top bits of the last byte).
    pub fn to_bytes(&self) -> [u8; SIGNATURE_LEN] {
        let mut out = [0u8; SIGNATURE_LEN];
        let p = &self.0;
        if p.infinity {
            out[SIGNATURE_LEN - 1] = FLAG_INFINITY;
            return out;
        }
        out[..32].copy_from_slice(&fq_le(&p.x));
        out[32..].copy_from_slice(&fq_le(&p.y));
        if p.y > -p.y {
            out[SIGNATURE_LEN - 1] |= FLAG_Y_NEGATIVE;
        }
        out
    }

    /// Decode a signature: 64 bytes, canonical, on G1, not the identity.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SchemeError> {
        let bad = |reason: String| SchemeError::InvalidSignature {
            scheme: SCHEME,
            reason,
        };
        if bytes.len() != SIGNATURE_LEN {
            return Err(bad(format!(
                "expected {SIGNATURE_LEN} bytes, got {}",
                bytes.len()
            )));
        }
        let point = G1Affine::deserialize_uncompressed(bytes)
            .map_err(|e| bad(format!("not a point of G1 ({e})")))?;
        if point.is_zero() {
            return Err(bad("the point at infinity".into()));
        }
        let sig = Signature(point);
        if sig.to_bytes().as_slice() != bytes {
            return Err(bad("non-canonical encoding (flag bits)".into()));
        }
        Ok(sig)
    }

    /// The `BLS_SIG~…` text form.
    pub fn to_tagged(&self) -> String {
        tagged::encode(TAG_SIGNATURE, &self.to_bytes())
    }

    /// Decode the `BLS_SIG~…` text form (validated like [`Signature::from_bytes`]).
    pub fn from_tagged(text: &str) -> Result<Self, SchemeError> {
        Self::from_bytes(&tagged::decode(text, TAG_SIGNATURE)?)
    }

    /// Check `e(σ, g2) == e(H(msg ‖ CS_ID), pk)`.
    pub fn verify(&self, pk: &PublicKey, msg: &[u8]) -> bool {
        let h = hash_with_suffix(msg, CS_ID);
        // e(σ, g2) · e(−H, pk) == 1, with one final exponentiation.
        let ml = Bn254::multi_miller_loop([self.0, -h], [G2Affine::generator(), pk.0]);
        Bn254::final_exponentiation(ml).is_some_and(|out| out.0.is_one())
    }

    /// The sum of `sigs` (jf-signature `aggregate`, used in HotShot QCs). Refused when empty or
    /// when the sum is the identity.
    pub fn aggregate(sigs: &[Signature]) -> Result<Signature, SchemeError> {
        let sum: G1Projective = sigs.iter().map(|s| s.0).sum();
        let sum = sum.into_affine();
        if sigs.is_empty() || sum.is_zero() {
            return Err(SchemeError::InvalidSignature {
                scheme: SCHEME,
                reason: "nothing to aggregate, or the sum is the identity".into(),
            });
        }
        Ok(Signature(sum))
    }
}

macro_rules! text_forms {
    ($ty:ident) => {
        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.to_tagged())
            }
        }

        impl std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(
                    f,
                    concat!("bn254::", stringify!($ty), "({})"),
                    self.to_tagged()
                )
            }
        }

        impl std::str::FromStr for $ty {
            type Err = SchemeError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::from_tagged(s)
            }
        }
    };
}
text_forms!(PublicKey);
text_forms!(Signature);

/// Hash `msg` to a point of G1 the way jf-signature does ("hash-and-pray"). Signing and
/// verification call it on `msg ‖ CS_ID`.
///
/// 1. `x = from_be_bytes_mod_order(expand_message_xmd_keccak(msg, dst = [1], 48 bytes))`,
///    with arkworks' 48-byte zero pad (see the module docs);
/// 2. while `x³ + 3` is not a square, `x += 1`;
/// 3. `y = sqrt(x³ + 3)`, negated if `2y > p`; return `(x, y)`.
pub fn hash_to_curve(msg: &[u8]) -> G1Affine {
    hash_with_suffix(msg, &[])
}

/// [`hash_to_curve`] of `msg ‖ suffix`, without concatenating.
fn hash_with_suffix(msg: &[u8], suffix: &[u8]) -> G1Affine {
    let mut x = hash_to_field(msg, suffix);
    let b = Fq::from(3u64);
    loop {
        // Half of all x give a square; the loop ends after two steps on average.
        if let Some(y) = (x.square() * x + b).sqrt() {
            let y = if y > -y { -y } else { y };
            return G1Affine::new_unchecked(x, y);
        }
        x += Fq::one();
    }
}

/// arkworks `DefaultFieldHasher::<Keccak256>::new(&[1]).hash_to_field::<1>(msg ‖ suffix)`.
fn hash_to_field(msg: &[u8], suffix: &[u8]) -> Fq {
    /// ceil((254 + 128) / 8): bytes per base-field element at 128-bit security.
    const LEN: usize = 48;
    /// DST `[1]` followed by its length byte.
    const DST_PRIME: [u8; 2] = [1, 1];
    let b0 = Keccak256::new()
        .chain_update([0u8; LEN]) // arkworks pads with LEN zero bytes (its "block size")
        .chain_update(msg)
        .chain_update(suffix)
        .chain_update((LEN as u16).to_be_bytes())
        .chain_update([0u8])
        .chain_update(DST_PRIME)
        .finalize();
    let b1 = Keccak256::new()
        .chain_update(b0)
        .chain_update([1u8])
        .chain_update(DST_PRIME)
        .finalize();
    let mut mixed = [0u8; 32];
    for (m, (a, b)) in mixed.iter_mut().zip(b0.iter().zip(b1.iter())) {
        *m = a ^ b;
    }
    let b2 = Keccak256::new()
        .chain_update(mixed)
        .chain_update([2u8])
        .chain_update(DST_PRIME)
        .finalize();
    let mut uniform = [0u8; LEN];
    uniform[..32].copy_from_slice(&b1);
    uniform[32..].copy_from_slice(&b2[..LEN - 32]);
    Fq::from_be_bytes_mod_order(&uniform)
}

/// `Fr::from_le_bytes_mod_order` for 32 bytes, without the heap copy arkworks makes (which
/// would leave key bytes behind): `lo + hi·2¹²⁸` in the field.
fn scalar_from_le_bytes(bytes: &[u8; 32]) -> Fr {
    let mut lo = [0u8; 16];
    let mut hi = [0u8; 16];
    lo.copy_from_slice(&bytes[..16]);
    hi.copy_from_slice(&bytes[16..]);
    let two_128 = Fr::from(u128::MAX) + Fr::one();
    let scalar = Fr::from(u128::from_le_bytes(lo)) + Fr::from(u128::from_le_bytes(hi)) * two_128;
    lo.zeroize();
    hi.zeroize();
    scalar
}

/// A base-field element as 32 little-endian bytes.
fn fq_le(x: &Fq) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (chunk, limb) in out.chunks_exact_mut(8).zip(x.into_bigint().0) {
        chunk.copy_from_slice(&limb.to_le_bytes());
    }
    out
}

pub mod tagged {
    //! Espresso's tagged-base64 text form (crate `tagged-base64` 0.4):
    //! `TAG "~" base64url_nopad(value ‖ checksum)` with
    //! `checksum = crc8(tag ‖ value) ^ (len(value) mod 256)` (CRC-8, polynomial 0x07).
    //!
    //! Public values are parsed with the `tagged-base64` crate itself. Secret keys go through
    //! [`decode_secret`] and [`encode_secret`], which never copy key bytes outside zeroizing
    //! buffers; a unit test checks both against the crate.

    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use zeroize::Zeroizing;

    use crate::scheme::SchemeError;

    /// The tagged-base64 checksum byte of `value` under `tag`.
    pub fn checksum(tag: &str, value: &[u8]) -> u8 {
        let mut crc = 0u8;
        for byte in tag.bytes().chain(value.iter().copied()) {
            crc ^= byte;
            for _ in 0..8 {
                crc = if crc & 0x80 != 0 {
                    (crc << 1) ^ 0x07
                } else {
                    crc << 1
                };
            }
        }
        // The crate XORs the value length truncated to a byte.
        crc ^ (value.len() % 256) as u8
    }

    /// `tag~…` for a public value. `tag` must be URL-safe (letters, digits, `-`, `_`).
    pub fn encode(tag: &str, value: &[u8]) -> String {
        let mut raw = Vec::with_capacity(value.len() + 1);
        raw.extend_from_slice(value);
        raw.push(checksum(tag, value));
        format!("{tag}~{}", URL_SAFE_NO_PAD.encode(raw))
    }

    /// Parse `text`, require `tag`, and return the value.
    pub fn decode(text: &str, tag: &str) -> Result<Vec<u8>, SchemeError> {
        let parsed = tagged_base64::TaggedBase64::parse(text)
            .map_err(|e| SchemeError::Encoding(format!("not tagged base64: {e}")))?;
        if parsed.tag() != tag {
            return Err(SchemeError::Encoding(format!(
                "expected tag {tag}, found {:?}",
                parsed.tag()
            )));
        }
        Ok(parsed.value())
    }

    /// Parse a 32-byte secret under `tag` into a zeroizing buffer. Errors never quote `text`.
    pub fn decode_secret(text: &str, tag: &str) -> Result<Zeroizing<[u8; 32]>, SchemeError> {
        let bad = |what: &str| SchemeError::Encoding(format!("{tag}: {what}"));
        let Some((found, body)) = text.split_once('~') else {
            return Err(bad("missing the '~' delimiter"));
        };
        if found != tag {
            return Err(bad("wrong tag"));
        }
        // 33 bytes (value and checksum) are 44 base64 characters without padding.
        if body.len() != 44 {
            return Err(bad("expected 32 bytes of key material"));
        }
        let mut raw = Zeroizing::new([0u8; 33]);
        match URL_SAFE_NO_PAD.decode_slice(body, raw.as_mut()) {
            Ok(33) => {}
            _ => return Err(bad("not valid base64url")),
        }
        let mut value = Zeroizing::new([0u8; 32]);
        value.copy_from_slice(&raw[..32]);
        if checksum(tag, value.as_ref()) != raw[32] {
            return Err(bad("bad checksum"));
        }
        Ok(value)
    }

    /// `tag~…` for a 32-byte secret, built without copies outside zeroizing buffers.
    pub fn encode_secret(tag: &str, value: &[u8; 32]) -> Zeroizing<String> {
        let mut raw = Zeroizing::new([0u8; 33]);
        raw[..32].copy_from_slice(value);
        raw[32] = checksum(tag, value);
        let mut text = Zeroizing::new([0u8; 44]);
        // Cannot fail: 33 bytes always encode to exactly 44 characters.
        let written = URL_SAFE_NO_PAD
            .encode_slice(raw.as_ref(), text.as_mut())
            .unwrap_or(0);
        // Sized up front so that the string never reallocates (which would leave a copy).
        let mut out = Zeroizing::new(String::with_capacity(tag.len() + 1 + text.len()));
        out.push_str(tag);
        out.push('~');
        for &c in &text[..written] {
            out.push(char::from(c));
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use ark_ff::field_hashers::{DefaultFieldHasher, HashToField};
    use ark_ff::BigInteger;
    use ark_serialize::CanonicalSerialize;
    use rand::SeedableRng;

    // Public demo key 0 and 1 of espresso-network's `.env` (never use in production).
    const SK0: &str = "BLS_SIGNING_KEY~lNDh4Pn-pTAyzyprOAFdXHwhrKhEwqwtMtkD3CZF4x3o";
    const PK0: &str = "BLS_VER_KEY~bQszS-QKYvUij2g20VqS8asttGSb95NrTu2PUj0uMh1CBUxNy1FqyPDjZqB29M7ZbjWqj79QkEOWkpga84AmDYUeTuWmy-0P1AdKHD3ehc-dKvei78BDj5USwXPJiDUlCxvYs_9rWYhagaq-5_LXENr78xel17spftNd5MA1Mw5U";
    const SK1: &str = "BLS_SIGNING_KEY~-DO72m_SFl6NQMYknm05FYpPEklkeqz-B3g2mFdbuS83";
    const PK1: &str = "BLS_VER_KEY~4zQnaCOFJ7m95OjxeNls0QOOwWbz4rfxaL3NwmN2zSdnf8t5Nw_dfmMHq05ee8jCegw6Bn5T8inmrnGGAsQJMMWLv77nd7FJziz2ViAbXg-XGGF7o4HyzELCmypDOIYF3X2UWferFE_n72ZX0iQkUhOvYZZ7cfXToXxRTtb_mwRR";
    const SK2: &str = "BLS_SIGNING_KEY~LY0x6w5BheYvEI3ro3g39NU-qwoYQRKc4ObCqc1yoC4S";
    const SK3: &str = "BLS_SIGNING_KEY~w4jERAaQfBdCdmlStEgj8PfIJJOWmCvbsL2wckpTfCbo";
    const QC12: &str = "BLS_SIG~HadXl0J3VyOXA8tiBx_6e6OKrpCjzma2qDR6S-kgUhqkQ9EA23jXZN0g1fBTG5KM-KmN61jwGydMzh7Y6IX1nZc";
    const QC13: &str = "BLS_SIG~2YwGf9PcBz0fkcg92TXTQYju867TkrZXqbSuU3HQfShjpqJo54AyY2QOfH-xYpgJaH8s6-lyxjf8O4efHk-yrgE";
    // SampleDAEvent (espresso-network Go SDK): key 1 signs Sha256([]) for a DA proposal.
    const DA_SIG: &str = "BLS_SIG~YkC0O16wIMY6udC53JCHQJj9gWfrbA9usk1HbE0uiwATt4Eq-XdEI60LW2UUc3_L8CHcsXxGRQsm2ZCYCsv8FUk";
    // espresso-network data/v3/messages.json: key 0 signs the empty message.
    const EMPTY_SIG: &str = "BLS_SIG~g3CUcLMD7fnDsBhItKvSqXLwEqdWfvusSrgpL1GBAxf-SWFW0t32Agt2jrOiempjjpI7dBwYGgXv-0mvI4sGEEE";
    // SampleQuorumEvent: key 1 signs the leaf commitment of view 13 (the quorum proposal).
    const LEAF13: &str = "COMMIT~zDQj9T-fNklWU9VpkdYCE3n6vsf697rt8_uHDwgyving";
    const PROPOSAL_SIG: &str = "BLS_SIG~Cy95RxAs7a9b9oedjd-TFwGZJyeaXvrbBIUnNgFM2A6Trcpk8Uzq6gBx68r6WDZyQoHN4MpOnaGl35y50pgzF0I";

    fn sha256_empty() -> [u8; 32] {
        use sha2::Digest as _;
        sha2::Sha256::digest([]).into()
    }

    #[test]
    fn demo_keys_give_their_published_public_keys() {
        for (sk, pk) in [(SK0, PK0), (SK1, PK1)] {
            let sk = SecretKey::from_tagged(sk).unwrap();
            assert_eq!(sk.public_key().to_tagged(), pk);
            assert_eq!(PublicKey::from_tagged(pk).unwrap(), sk.public_key());
        }
    }

    #[test]
    fn known_answer_signatures() {
        let sk1 = SecretKey::from_tagged(SK1).unwrap();
        let sig = sk1.sign(&sha256_empty());
        assert_eq!(sig.to_tagged(), DA_SIG);
        assert!(sig.verify(&sk1.public_key(), &sha256_empty()));

        let sk0 = SecretKey::from_tagged(SK0).unwrap();
        assert_eq!(sk0.sign(&[]).to_tagged(), EMPTY_SIG);
        assert!(!sig.verify(&sk0.public_key(), &sha256_empty()));
        assert!(!sig.verify(&sk1.public_key(), &[0u8; 32]));

        let leaf = tagged::decode(LEAF13, "COMMIT").unwrap();
        let proposal = sk1.sign(&leaf);
        assert_eq!(proposal.to_tagged(), PROPOSAL_SIG);
        assert_eq!(Signature::from_tagged(PROPOSAL_SIG).unwrap(), proposal);
    }

    /// The QC signatures of `SampleDecideEvent` are the sums of the votes of demo keys 0–3
    /// (found by trying every subset of the five). Both have a "negative" y, so this also pins
    /// arkworks' 0x80 flag in the last byte of an encoded point.
    #[test]
    fn known_answer_quorum_certificates() {
        let keys: Vec<SecretKey> = [SK0, SK1, SK2, SK3]
            .iter()
            .map(|s| SecretKey::from_tagged(s).unwrap())
            .collect();
        for (vote_commit, qc) in [
            ("COMMIT~ksmmmukO_YhmfY6i5Iz9YdRkFEqCizB9ZlupwVT4bsgZ", QC12),
            ("COMMIT~Wwdd_O5aIONcAtJDlPmi9Gnv4MCrqU_Qaik9A4yz-gU_", QC13),
        ] {
            let msg = tagged::decode(vote_commit, "COMMIT").unwrap();
            let sigs: Vec<Signature> = keys.iter().map(|k| k.sign(&msg)).collect();
            let agg = Signature::aggregate(&sigs).unwrap();
            assert_eq!(agg.to_tagged(), qc);
            assert_eq!(agg.to_bytes()[63] & FLAG_Y_NEGATIVE, FLAG_Y_NEGATIVE);
            let pks: Vec<PublicKey> = keys.iter().map(SecretKey::public_key).collect();
            assert!(agg.verify(&PublicKey::aggregate(&pks).unwrap(), &msg));
        }
    }

    #[test]
    fn hash_to_curve_matches_arkworks_hasher_and_vector() {
        for msg in [&b""[..], b"abc", &[7u8; 200], CS_ID] {
            let ours = hash_to_field(msg, &[]);
            let hasher = <DefaultFieldHasher<Keccak256> as HashToField<Fq>>::new(&[1u8]);
            let theirs: [Fq; 1] = hasher.hash_to_field::<1>(msg);
            assert_eq!(ours, theirs[0]);
            let split = hash_to_field(&msg[..msg.len() / 2], &msg[msg.len() / 2..]);
            assert_eq!(split, ours);
        }
        // vectors.json: hash_to_curve(CS_ID), i.e. the empty message.
        let point = hash_to_curve(CS_ID);
        assert!(point.is_on_curve());
        let mut bytes = Vec::new();
        point.serialize_uncompressed(&mut bytes).unwrap();
        assert_eq!(
            hex::encode(bytes),
            "dc8c27576d279852a6d6a9e39682ba162423f9f24bd26d1e6fea8d81e1260d07\
             398ef1946f1e95a917a5b3cfa34ea51a6f0a77e25fc4caf67236f9fb28fc5212"
        );
    }

    #[test]
    fn encodings_equal_arkworks_uncompressed_and_round_trip() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for i in 0..16u8 {
            let sk = SecretKey::generate(&mut rng);
            let pk = sk.public_key();
            let sig = sk.sign(&[i; 3]);
            let (mut pk_ark, mut sig_ark) = (Vec::new(), Vec::new());
            pk.0.serialize_uncompressed(&mut pk_ark).unwrap();
            sig.0.serialize_uncompressed(&mut sig_ark).unwrap();
            assert_eq!(pk.to_bytes().as_slice(), pk_ark);
            assert_eq!(sig.to_bytes().as_slice(), sig_ark);
            assert_eq!(PublicKey::from_bytes(&pk.to_bytes()).unwrap(), pk);
            assert_eq!(Signature::from_bytes(&sig.to_bytes()).unwrap(), sig);
            assert_eq!(pk.to_string().parse::<PublicKey>().unwrap(), pk);
            assert_eq!(sig.to_string().parse::<Signature>().unwrap(), sig);
            assert!(sig.verify(&pk, &[i; 3]));
            assert!(!sig.verify(&pk, &[i; 4]));
            let again = SecretKey::from_le_bytes(sk.to_le_bytes().as_ref()).unwrap();
            assert_eq!(again.public_key(), pk);
            let again = SecretKey::from_tagged(&sk.to_tagged()).unwrap();
            assert_eq!(again.public_key(), pk);
        }
    }

    #[test]
    fn aggregate_verifies_against_the_sum_of_keys() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        let keys: Vec<SecretKey> = (0..4).map(|_| SecretKey::generate(&mut rng)).collect();
        let sigs: Vec<Signature> = keys.iter().map(|k| k.sign(b"qc")).collect();
        let pks: Vec<PublicKey> = keys.iter().map(SecretKey::public_key).collect();
        let agg = Signature::aggregate(&sigs).unwrap();
        assert!(agg.verify(&PublicKey::aggregate(&pks).unwrap(), b"qc"));
        assert!(!agg.verify(&PublicKey::aggregate(&pks[..3]).unwrap(), b"qc"));
        assert!(Signature::aggregate(&[]).is_err());
        assert!(PublicKey::aggregate(&[]).is_err());
    }

    #[test]
    fn scalar_decoding_matches_arkworks_mod_order() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let order = Fr::MODULUS.to_bytes_le();
        let mut cases: Vec<Vec<u8>> = vec![vec![0xff; 32], vec![0; 32], order.clone()];
        // r + 1, r + 2 and r - 1 (the order's lowest byte is 0x01).
        for (i, delta) in [(0usize, 1u8), (0, 2)] {
            let mut above = order.clone();
            above[i] += delta;
            cases.push(above);
        }
        let mut below = order.clone();
        below[0] -= 1;
        cases.push(below);
        for _ in 0..64 {
            let mut b = vec![0u8; 32];
            rand::RngCore::fill_bytes(&mut rng, &mut b);
            cases.push(b);
        }
        for b in cases {
            let ours = scalar_from_le_bytes(&<[u8; 32]>::try_from(b.as_slice()).unwrap());
            assert_eq!(ours, Fr::from_le_bytes_mod_order(&b), "{}", hex::encode(&b));
        }
    }

    #[test]
    fn bad_inputs_are_refused() {
        assert!(SecretKey::from_le_bytes(&[0u8; 32]).is_err());
        assert!(SecretKey::from_le_bytes(&[1u8; 31]).is_err());
        // The group order itself reduces to zero.
        let order = Fr::MODULUS.to_bytes_le();
        assert!(SecretKey::from_le_bytes(&order).is_err());
        assert!(SecretKey::from_tagged(PK0).is_err());
        assert!(SecretKey::from_tagged("BLS_SIGNING_KEY~short").is_err());
        let mut wrong_checksum = SK0.to_string();
        wrong_checksum.replace_range(wrong_checksum.len() - 1.., "p");
        assert!(SecretKey::from_tagged(&wrong_checksum).is_err());

        let pk = PublicKey::from_tagged(PK0).unwrap().to_bytes();
        assert!(PublicKey::from_bytes(&pk[..127]).is_err());
        let mut infinity = [0u8; 128];
        infinity[127] = FLAG_INFINITY;
        assert!(PublicKey::from_bytes(&infinity).is_err());
        let mut flipped = pk;
        flipped[127] ^= FLAG_Y_NEGATIVE; // same point, wrong flag
        assert!(PublicKey::from_bytes(&flipped).is_err());
        let mut off_curve = pk;
        off_curve[0] ^= 1;
        assert!(PublicKey::from_bytes(&off_curve).is_err());
        assert!(PublicKey::from_tagged(DA_SIG).is_err());

        let sig = Signature::from_tagged(DA_SIG).unwrap().to_bytes();
        let mut off_curve = sig;
        off_curve[0] ^= 1;
        assert!(Signature::from_bytes(&off_curve).is_err());
        let mut flipped = sig;
        flipped[63] ^= FLAG_Y_NEGATIVE;
        assert!(Signature::from_bytes(&flipped).is_err());
        let mut infinity = [0u8; 64];
        infinity[63] = FLAG_INFINITY;
        assert!(Signature::from_bytes(&infinity).is_err());
    }

    #[test]
    fn secret_key_does_not_print() {
        let sk = SecretKey::from_tagged(SK0).unwrap();
        let printed = format!("{sk:?}");
        assert!(printed.contains("<redacted>"));
        assert!(!printed.contains("lNDh"));
        let err =
            SecretKey::from_tagged("BLS_SIGNING_KEY~lNDh4Pn-pTAyzyprOAFdXHwhrKhEwqwtMtkD3CZF4x3p")
                .unwrap_err()
                .to_string();
        assert!(!err.contains("lNDh"), "{err}");
    }

    #[test]
    fn tagged_codec_agrees_with_the_crate() {
        // README examples of the tagged-base64 crate.
        assert_eq!(tagged::encode("TX", b"Beautiful"), "TX~QmVhdXRpZnVsEA");
        assert_eq!(tagged::encode("LA", b"Home"), "LA~SG9tZbo");
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for len in [0usize, 1, 2, 31, 32, 33, 64, 128, 300] {
            let mut value = vec![0u8; len];
            rand::RngCore::fill_bytes(&mut rng, &mut value);
            let crate_form = tagged_base64::TaggedBase64::new("SOME_TAG", &value)
                .unwrap()
                .to_string();
            assert_eq!(tagged::encode("SOME_TAG", &value), crate_form);
            assert_eq!(tagged::decode(&crate_form, "SOME_TAG").unwrap(), value);
            assert!(tagged::decode(&crate_form, "OTHER").is_err());
            if let Ok(secret) = <[u8; 32]>::try_from(value.as_slice()) {
                assert_eq!(
                    tagged::encode_secret("SOME_TAG", &secret).as_str(),
                    crate_form
                );
                assert_eq!(
                    *tagged::decode_secret(&crate_form, "SOME_TAG").unwrap(),
                    secret
                );
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn text_decoders_never_panic(text in ".{0,200}") {
            let _ = tagged::decode(&text, TAG_VER_KEY);
            let _ = tagged::decode_secret(&text, TAG_SIGNING_KEY);
            let _ = PublicKey::from_tagged(&text);
            let _ = Signature::from_tagged(&text);
            let _ = SecretKey::from_tagged(&text);
        }

        #[test]
        fn byte_decoders_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..160)) {
            let _ = PublicKey::from_bytes(&bytes);
            let _ = Signature::from_bytes(&bytes);
            let _ = SecretKey::from_le_bytes(&bytes);
        }
    }
}
