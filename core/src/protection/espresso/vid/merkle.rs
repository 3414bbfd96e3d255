//! The root of jf-merkle-tree's `HasherMerkleTree<Keccak256, HasherNode<Keccak256>>` built by
//! `from_elems(None, leaves)`, for 32-byte leaves.
//!
//! Source: jellyfish tag `jf-merkle-tree-v0.4.0` (c6f31145), which espresso-network pins
//! (Cargo.toml@00be77a7): merkle_tree/src/hasher.rs (`HasherMerkleTree = GenericHasherMerkleTree<H,
//! E, u64, 3>`, `HasherDigestAlgorithm`), merkle_tree/src/internal.rs (`build_tree_internal`,
//! `digest_branch`, `MerkleNode::value`), merkle_tree/src/prelude.rs (domain separators, added in
//! jellyfish #774/#775, April 2025):
//! - arity 3; height = the least `h` with `3^h ≥ n`;
//! - leaf at position `p`: `Keccak256("1" ‖ u64le(p) ‖ leaf)` (`pos` and the 32-byte
//!   `HasherNode` both through `serialize_uncompressed`);
//! - branch: `Keccak256("0" ‖ c0 ‖ c1 ‖ c2)`; missing children (right padding) are `Empty`, whose
//!   value is 32 zero bytes;
//! - one leaf (height 0): the root is that leaf's digest; no leaves: 32 zero bytes;
//! - the commitment is the root value alone (no height or leaf count).

use sha3::{Digest, Keccak256};

const LEAF_SEP: &[u8] = b"1";
const BRANCH_SEP: &[u8] = b"0";
const ARITY: usize = 3;

fn leaf_digest(pos: u64, leaf: &[u8; 32]) -> [u8; 32] {
    let mut h = Keccak256::new();
    h.update(LEAF_SEP);
    h.update(pos.to_le_bytes());
    h.update(leaf);
    h.finalize().into()
}

fn branch_digest(children: &[[u8; 32]]) -> [u8; 32] {
    let mut h = Keccak256::new();
    h.update(BRANCH_SEP);
    for i in 0..ARITY {
        h.update(children.get(i).unwrap_or(&[0u8; 32]));
    }
    h.finalize().into()
}

/// The Merkle root over `leaves`, in order.
pub fn root(leaves: &[[u8; 32]]) -> [u8; 32] {
    let mut height = 0u32;
    let mut capacity = 1usize;
    while capacity < leaves.len() {
        height += 1;
        capacity = capacity.saturating_mul(ARITY);
    }
    let mut level: Vec<[u8; 32]> = leaves
        .iter()
        .zip(0u64..)
        .map(|(leaf, pos)| leaf_digest(pos, leaf))
        .collect();
    match level.as_slice() {
        [] => return [0u8; 32],
        [only] if height == 0 => return *only,
        _ => {}
    }
    for _ in 0..height {
        level = level.chunks(ARITY).map(branch_digest).collect();
    }
    level.first().copied().unwrap_or([0u8; 32])
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
        assert_eq!(root(&[]), [0u8; 32]);
        assert_eq!(root(&[a]), leaf_digest(0, &a));
        let two = root(&[a, a]);
        assert_eq!(
            two,
            branch_digest(&[leaf_digest(0, &a), leaf_digest(1, &a)])
        );
        // Four leaves: height 2; the second branch holds one leaf and two empty children.
        let four = root(&[a, a, a, a]);
        let b0 = branch_digest(&[leaf_digest(0, &a), leaf_digest(1, &a), leaf_digest(2, &a)]);
        let b1 = branch_digest(&[leaf_digest(3, &a)]);
        assert_eq!(four, branch_digest(&[b0, b1]));
    }
}
