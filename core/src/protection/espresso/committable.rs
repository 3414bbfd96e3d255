//! HotShot's `committable::RawCommitmentBuilder` (EspressoSystems/commit `src/lib.rs`
//! @ `a57ae4ae`): the Keccak-256 preimage builder behind every commitment the signer computes.
//!
//! Owns: the byte encoding of each builder method. Must not: know any message layout (that is
//! [`super::message`] and [`super::leaf`]).
//!
//! To ensure correctness:
//! - every string is followed by `C0 7F`, which is not UTF-8, so no string runs into the next;
//! - integers are little-endian; `var_size_bytes` is prefixed by its `u64` length;
//! - `optional(name, None)` writes `name` then `u64le(0)`, as upstream does.

use super::message::Commitment;
use sha3::{Digest, Keccak256};

/// `committable::RawCommitmentBuilder`: Keccak-256 over the appended fields. It keeps the
/// preimage (a few hundred bytes at most) so that tests can reason about it.
pub(super) struct Builder(Vec<u8>);

impl Builder {
    /// Strings are followed by `C0 7F`, which is not UTF-8, so no string runs into the next.
    const INVALID_UTF8: [u8; 2] = [0xC0, 0x7F];

    pub(super) fn new(tag: &str) -> Self {
        Builder(Vec::with_capacity(512)).constant_str(tag)
    }
    pub(super) fn constant_str(mut self, s: &str) -> Self {
        self.0.extend_from_slice(s.as_bytes());
        self.0.extend_from_slice(&Self::INVALID_UTF8);
        self
    }
    pub(super) fn fixed_size_bytes(mut self, bytes: &[u8]) -> Self {
        self.0.extend_from_slice(bytes);
        self
    }
    pub(super) fn u64(self, v: u64) -> Self {
        self.fixed_size_bytes(&v.to_le_bytes())
    }
    pub(super) fn u16(self, v: u16) -> Self {
        self.fixed_size_bytes(&v.to_le_bytes())
    }
    pub(super) fn var_size_bytes(self, bytes: &[u8]) -> Self {
        self.u64(bytes.len() as u64).fixed_size_bytes(bytes)
    }
    pub(super) fn u64_field(self, name: &str, v: u64) -> Self {
        self.constant_str(name).u64(v)
    }
    /// `field(name, commitment)`: the name, then the 32 bytes.
    pub(super) fn field(self, name: &str, commitment: &Commitment) -> Self {
        self.constant_str(name).fixed_size_bytes(&commitment.0)
    }
    /// `optional(name, x)`: the name, then `x`'s 32 bytes, or `u64le(0)` when absent.
    pub(super) fn optional(self, name: &str, commitment: Option<&Commitment>) -> Self {
        match commitment {
            Some(c) => self.field(name, c),
            None => self.u64_field(name, 0),
        }
    }
    pub(super) fn finalize(self) -> [u8; 32] {
        Keccak256::digest(&self.0).into()
    }
    #[cfg(test)]
    pub(super) fn into_preimage(self) -> Vec<u8> {
        self.0
    }
}
