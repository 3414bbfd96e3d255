//! One namespace's AvidmGf2 commitment (HotShot protocol 0.6 on).
//!
//! Source: espresso-network vid/src/avidm_gf2.rs (the revision with `raw_commit` and
//! `encode_recovery`, BLAKE3 shard digests; read at the stored version beside
//! vid/src/utils/blake3.rs@c1b05c9f), namespaced.rs@0e2edb1b, and
//! crates/hotshot/types/src/vid/avidm_gf2.rs@0b3abd0f (`init_avidm_gf2_param`):
//! 1. `k = ceil(n / 3)` original shards, `n − k` recovery shards, `n = total_weight`.
//! 2. `shard_bytes = ceil((len + 1) / k)`, rounded up to even.
//! 3. The bytes ‖ `0x01` ‖ zeros, `k · shard_bytes` long, cut into `k` shards.
//! 4. `reed_solomon_simd::encode(k, n − k, shards)` gives the recovery shards (crates.io
//!    `reed-solomon-simd` 3.1, the version espresso-network pins; GF(2^16), Leopard-style
//!    additive FFT; the encoder picks high or low rate from the counts). With `n = 1` there is
//!    no recovery shard and nothing is encoded.
//! 5. Shard digests `BLAKE3(shard)` for the `k` originals then the `n − k` recovery shards;
//!    the namespace commitment is their BLAKE3 arity-4 Merkle root ([`Tree::Blake3x4`]).
//!
//! An earlier revision (vid/src/avidm_gf2.rs@131ec5c0, @82d848b2) hashed shards with Keccak into
//! the arity-3 tree and could not disperse to a total weight of 1. HotShot's own 0.6 fixtures
//! (data/v6/new_protocol_messages.json@18c80e56: weight 1, one namespace) are reproduced by this
//! revision (`tests.rs`), so it is the one implemented.

use super::merkle::Tree;
use super::{VidError, VidParams};

/// The commitment (Merkle root) of one namespace's bytes.
pub fn commit(params: &VidParams, payload: &[u8]) -> Result<[u8; 32], VidError> {
    let n = usize::try_from(params.total_weight)
        .map_err(|_| VidError::Encoding("total weight does not fit".into()))?;
    let k = usize::try_from(params.recovery_threshold())
        .map_err(|_| VidError::Encoding("threshold does not fit".into()))?;
    if k == 0 || k > n {
        return Err(VidError::Encoding(format!(
            "bad AvidmGf2 parameters n={n} k={k}: need 0 < k <= n"
        )));
    }
    let mut shard_bytes = (payload.len() + 1).div_ceil(k);
    if !shard_bytes.is_multiple_of(2) {
        shard_bytes += 1;
    }
    let mut padded = vec![0u8; shard_bytes * k];
    padded
        .get_mut(..payload.len())
        .ok_or_else(|| VidError::Encoding("padding shorter than payload".into()))?
        .copy_from_slice(payload);
    if let Some(marker) = padded.get_mut(payload.len()) {
        *marker = 1;
    }
    let original: Vec<&[u8]> = padded.chunks(shard_bytes).collect();
    let recovery = match n - k {
        0 => Vec::new(),
        r => reed_solomon_simd::encode(k, r, &original)
            .map_err(|e| VidError::Encoding(e.to_string()))?,
    };
    let digests: Vec<[u8; 32]> = original
        .iter()
        .copied()
        .chain(recovery.iter().map(Vec::as_slice))
        .map(|shard| *blake3::hash(shard).as_bytes())
        .collect();
    Ok(Tree::Blake3x4.root(&digests))
}
