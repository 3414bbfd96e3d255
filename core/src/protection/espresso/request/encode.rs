//! Byte encodings the request kinds share: HotShot's two forms of a BLS public key, the VID
//! request's bincode preimage, and the libp2p `PeerId` byte form.
//!
//! Owns: these encodings and their recognisers. Must not: know which kind uses which (that is
//! the parent module), allocate more than the encoding's own size, or panic on any input.
//!
//! To ensure correctness:
//! - the compressed key is derived from the canonical uncompressed one by moving its flag bits,
//!   so it is arkworks' `serialize_compressed` exactly (checked against arkworks in the tests);
//! - [`is_vid_request_preimage`] accepts every byte string [`vid_request_preimage`] can produce
//!   for any view and any key (whatever the checksum byte), so the DA proposal path can refuse
//!   a payload of that shape without knowing the key.

use crate::scheme::bn254::{PublicKey, PUBLIC_KEY_LEN};

/// Length of HotShot's `SignatureKey::to_bytes()` of a `BLSPubKey` (arkworks compressed G2).
pub const COMPRESSED_KEY_LEN: usize = 64;

/// The tag of a BLS public key in its tagged-base64 form (and in its serde form).
const VER_KEY_TAG: &str = "BLS_VER_KEY";

/// Length of `bincode(RequestKind::Vid(view, key))`: variant (4) ‖ view (8) ‖ byte-vector
/// length (8) ‖ the key's `TaggedBase64` (8 + 11 + 8 + 128 + 1).
pub const VID_REQUEST_PREIMAGE_LEN: usize = 4 + 8 + 8 + TAGGED_KEY_LEN;

/// Length of `CanonicalSerialize(TaggedBase64{"BLS_VER_KEY", uncompressed key, checksum})`.
const TAGGED_KEY_LEN: usize = 8 + VER_KEY_TAG.len() + 8 + PUBLIC_KEY_LEN + 1;

/// Flag bits arkworks keeps in the top of a point encoding's last byte (y sign, infinity).
const FLAG_BITS: u8 = 0xC0;

/// HotShot's `BLSPubKey::to_bytes()`: arkworks `serialize_compressed` of the G2 point,
/// `x.c0 ‖ x.c1` (32 bytes little-endian each) with the y-sign and infinity flags in the top
/// bits of the last byte (the same flags the uncompressed form keeps in its last byte).
pub fn compressed_key(key: &PublicKey) -> [u8; COMPRESSED_KEY_LEN] {
    let full = key.to_bytes();
    let mut out = [0u8; COMPRESSED_KEY_LEN];
    out.copy_from_slice(&full[..COMPRESSED_KEY_LEN]);
    out[COMPRESSED_KEY_LEN - 1] |= full[PUBLIC_KEY_LEN - 1] & FLAG_BITS;
    out
}

/// `bincode::serialize(&RequestKind::Vid(ViewNumber(view), key))` (bincode 1.3 defaults: fixint,
/// little endian). `RequestKind::Vid` is variant 0 (a `u32`), `ViewNumber` a `u64` newtype, and
/// the key serializes through `TaggedBase64`, which a binary serializer writes as a byte vector
/// (`u64` length) holding `CanonicalSerialize(TaggedBase64{tag, value, checksum})` with the
/// uncompressed key as `value`.
pub fn vid_request_preimage(view: u64, key: &PublicKey) -> Vec<u8> {
    let value = key.to_bytes();
    let mut out = Vec::with_capacity(VID_REQUEST_PREIMAGE_LEN);
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&view.to_le_bytes());
    out.extend_from_slice(&(TAGGED_KEY_LEN as u64).to_le_bytes());
    out.extend_from_slice(&(VER_KEY_TAG.len() as u64).to_le_bytes());
    out.extend_from_slice(VER_KEY_TAG.as_bytes());
    out.extend_from_slice(&(PUBLIC_KEY_LEN as u64).to_le_bytes());
    out.extend_from_slice(&value);
    out.push(crate::scheme::bn254::tagged::checksum(VER_KEY_TAG, &value));
    out
}

/// Whether `bytes` has the shape of a VID request's SHA-256 preimage
/// ([`vid_request_preimage`]) for some view and some key: the right length and every fixed
/// field in place. The key bytes and the checksum are not checked, so this also matches
/// preimages of keys that are not valid points (a superset: refusing those costs nothing).
///
/// A DA proposal signs SHA-256 of its client-chosen payload; a payload of this shape would
/// sign exactly a VID request's bytes, so the DA proposal path should refuse it.
pub fn is_vid_request_preimage(bytes: &[u8]) -> bool {
    if bytes.len() != VID_REQUEST_PREIMAGE_LEN {
        return false;
    }
    let mut fixed = Vec::with_capacity(4 + 8 + 8 + VER_KEY_TAG.len() + 8);
    fixed.extend_from_slice(&0u32.to_le_bytes());
    let view_at = fixed.len();
    fixed.extend_from_slice(&[0u8; 8]);
    fixed.extend_from_slice(&(TAGGED_KEY_LEN as u64).to_le_bytes());
    fixed.extend_from_slice(&(VER_KEY_TAG.len() as u64).to_le_bytes());
    fixed.extend_from_slice(VER_KEY_TAG.as_bytes());
    fixed.extend_from_slice(&(PUBLIC_KEY_LEN as u64).to_le_bytes());
    bytes
        .iter()
        .zip(&fixed)
        .enumerate()
        .all(|(i, (got, want))| (view_at..view_at + 8).contains(&i) || got == want)
}

/// Largest public key libp2p inlines into a `PeerId` (identity multihash); larger keys are
/// hashed with SHA2-256 (libp2p-identity `MAX_INLINE_KEY_LENGTH`).
pub const MAX_INLINE_KEY_LEN: usize = 42;
/// Multihash code of the identity "hash".
const MULTIHASH_IDENTITY: u8 = 0x00;
/// Multihash code of SHA2-256.
const MULTIHASH_SHA2_256: u8 = 0x12;

/// Check that `bytes` is a libp2p `PeerId` as `PeerId::to_bytes()` writes it: a multihash,
/// either identity (`00 ‖ n ‖ n bytes`, 1 ≤ n ≤ [`MAX_INLINE_KEY_LEN`]; an ed25519 key, which
/// HotShot derives for every node, gives n = 36) or SHA2-256 (`12 20 ‖ 32 bytes`). Both codes
/// and lengths are below 128, so each varint is one byte. Returns why not.
pub fn check_peer_id(bytes: &[u8]) -> Result<(), &'static str> {
    match bytes {
        [MULTIHASH_IDENTITY, len, digest @ ..] => {
            if usize::from(*len) != digest.len() {
                Err("identity multihash length does not match its digest")
            } else if digest.is_empty() || digest.len() > MAX_INLINE_KEY_LEN {
                Err("identity multihash must hold 1 to 42 bytes of public key")
            } else {
                Ok(())
            }
        }
        [MULTIHASH_SHA2_256, 0x20, digest @ ..] if digest.len() == 32 => Ok(()),
        [MULTIHASH_SHA2_256, ..] => Err("sha2-256 multihash must hold exactly 32 bytes"),
        _ => Err("not an identity or sha2-256 multihash"),
    }
}
