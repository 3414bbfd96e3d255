//! The root of a jf-merkle-tree built by `from_elems(None, leaves)` over 32-byte leaves, in the
//! two variants HotShot's VID uses ([`Tree`]).
//!
//! Sources: jellyfish tag `jf-merkle-tree-v0.4.0` (c6f31145), which espresso-network pins
//! (Cargo.toml@00be77a7): merkle_tree/src/hasher.rs (`HasherMerkleTree = GenericHasherMerkleTree<H,
//! E, u64, 3>`, `HasherDigestAlgorithm`), merkle_tree/src/internal.rs (`build_tree_internal`,
//! `digest_branch`, `MerkleNode::value`), merkle_tree/src/prelude.rs (domain separators, added in
//! jellyfish #774/#775, April 2025); and espresso-network vid/src/utils/blake3.rs@c1b05c9f
//! (`Blake3DigestAlgorithm`, byte-identical to `HasherDigestAlgorithm` over BLAKE3) with
//! vid/src/avidm_gf2.rs (`JfMerkleTree<Blake3Node, Blake3DigestAlgorithm, u64, 4, Blake3Node>`):
//! - arity `a` (3 or 4); height = the least `h` with `a^h ≥ n`;
//! - leaf at position `p`: `H("1" ‖ u64le(p) ‖ leaf)` (`pos` and the 32-byte node both through
//!   `serialize_uncompressed`);
//! - branch: `H("0" ‖ c0 ‖ … ‖ c(a-1))`; missing children (right padding) are `Empty`, whose
//!   value is 32 zero bytes;
//! - one leaf (height 0): the root is that leaf's digest; no leaves: 32 zero bytes;
//! - the commitment is the root value alone (no height or leaf count).

use sha3::{Digest, Keccak256};

const LEAF_SEP: &[u8] = b"1";
const BRANCH_SEP: &[u8] = b"0";

/// Which of HotShot's VID Merkle trees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tree {
    /// Keccak-256, arity 3: `HasherMerkleTree<Keccak256, …>` (AvidM).
    Keccak3,
    /// BLAKE3, arity 4: AvidmGf2's `MerkleTree`.
    Blake3x4,
}

impl Tree {
    fn arity(self) -> usize {
        match self {
            Tree::Keccak3 => 3,
            Tree::Blake3x4 => 4,
        }
    }

    /// `H(parts[0] ‖ parts[1] ‖ …)`.
    fn hash(self, parts: &[&[u8]]) -> [u8; 32] {
        match self {
            Tree::Keccak3 => {
                let mut h = Keccak256::new();
                for p in parts {
                    h.update(p);
                }
                h.finalize().into()
            }
            Tree::Blake3x4 => {
                let mut h = blake3::Hasher::new();
                for p in parts {
                    h.update(p);
                }
                *h.finalize().as_bytes()
            }
        }
    }

    fn leaf_digest(self, pos: u64, leaf: &[u8; 32]) -> [u8; 32] {
        self.hash(&[LEAF_SEP, &pos.to_le_bytes(), leaf])
    }

    fn branch_digest(self, children: &[[u8; 32]]) -> [u8; 32] {
        let empty = [0u8; 32];
        let mut parts: Vec<&[u8]> = vec![BRANCH_SEP];
        parts.extend((0..self.arity()).map(|i| children.get(i).unwrap_or(&empty).as_slice()));
        self.hash(&parts)
    }

    /// The Merkle root over `leaves`, in order.
    pub fn root(self, leaves: &[[u8; 32]]) -> [u8; 32] {
        let arity = self.arity();
        let mut height = 0u32;
        let mut capacity = 1usize;
        while capacity < leaves.len() {
            height += 1;
            capacity = capacity.saturating_mul(arity);
        }
        let mut level: Vec<[u8; 32]> = leaves
            .iter()
            .zip(0u64..)
            .map(|(leaf, pos)| self.leaf_digest(pos, leaf))
            .collect();
        match level.as_slice() {
            [] => return [0u8; 32],
            [only] if height == 0 => return *only,
            _ => {}
        }
        for _ in 0..height {
            level = level
                .chunks(arity)
                .map(|children| self.branch_digest(children))
                .collect();
        }
        level.first().copied().unwrap_or([0u8; 32])
    }
}

/// Streams `Keccak256` over `serialize_uncompressed(&Vec<T>)`: the `u64le` length prefix, then
/// each item's bytes. Used for per-share digests.
pub(crate) fn keccak_with_len_prefix(len: u64) -> Keccak256 {
    let mut h = Keccak256::new();
    h.update(len.to_le_bytes());
    h
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let a = [7u8; 32];
        let t = Tree::Keccak3;
        assert_eq!(t.root(&[]), [0u8; 32]);
        assert_eq!(t.root(&[a]), t.leaf_digest(0, &a));
        let two = t.root(&[a, a]);
        assert_eq!(
            two,
            t.branch_digest(&[t.leaf_digest(0, &a), t.leaf_digest(1, &a)])
        );
        // Four leaves: height 2; the second branch holds one leaf and two empty children.
        let four = t.root(&[a, a, a, a]);
        let b0 = t.branch_digest(&[
            t.leaf_digest(0, &a),
            t.leaf_digest(1, &a),
            t.leaf_digest(2, &a),
        ]);
        let b1 = t.branch_digest(&[t.leaf_digest(3, &a)]);
        assert_eq!(four, t.branch_digest(&[b0, b1]));
        // Arity 4: four leaves are one branch; a fifth makes height 2.
        let b = Tree::Blake3x4;
        let leaves: Vec<[u8; 32]> = (0..4).map(|p| b.leaf_digest(p, &a)).collect();
        assert_eq!(b.root(&[a, a, a, a]), b.branch_digest(&leaves));
        let five = b.root(&[a, a, a, a, a]);
        let b1 = b.branch_digest(&[b.leaf_digest(4, &a)]);
        assert_eq!(five, b.branch_digest(&[b.branch_digest(&leaves), b1]));
        // BLAKE3 of the empty input (its specification's known answer) through `hash`.
        assert_eq!(
            hex::encode(b.hash(&[])),
            "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        );
    }
}
