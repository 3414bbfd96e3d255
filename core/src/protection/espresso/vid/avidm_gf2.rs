//! One namespace's AvidmGf2 commitment (HotShot protocol 0.6 on).
//!
//! Source: espresso-network vid/src/avidm_gf2.rs@131ec5c0 (identical `raw_disperse` at
//! @82d848b2), crates/hotshot/types/src/vid/avidm_gf2.rs@0b3abd0f (`init_avidm_gf2_param`):
//! 1. `k = ceil(n / 3)` original shards, `n − k` recovery shards, `n = total_weight`.
//! 2. `shard_bytes = ceil((len + 1) / k)`, rounded up to even.
//! 3. The bytes ‖ `0x01` ‖ zeros, `k · shard_bytes` long, cut into `k` shards.
//! 4. `reed_solomon_simd::encode(k, n − k, shards)` gives the recovery shards (crates.io
//!    `reed-solomon-simd` 3.1, the version espresso-network pins; GF(2^16), Leopard-style
//!    additive FFT; the encoder picks high or low rate from the counts).
//! 5. Shard digests `Keccak256(shard)` for the `k` originals then the `n − k` recovery shards;
//!    the namespace commitment is the Merkle root ([`super::merkle`]) over them.
//!
//! `n = 1` has no recovery shard; reed-solomon-simd refuses it, as HotShot would (it unwraps),
//! so [`super::payload_commitment`] requires `n ≥ 2` for this scheme.

use sha3::{Digest, Keccak256};

use super::merkle::root;
use super::{VidError, VidParams};

/// The commitment (Merkle root) of one namespace's bytes.
pub fn commit(params: &VidParams, payload: &[u8]) -> Result<[u8; 32], VidError> {
    let n = usize::try_from(params.total_weight)
        .map_err(|_| VidError::Encoding("total weight does not fit".into()))?;
    let k = usize::try_from(params.recovery_threshold())
        .map_err(|_| VidError::Encoding("threshold does not fit".into()))?;
    if k == 0 || k >= n {
        return Err(VidError::Encoding(format!(
            "bad AvidmGf2 parameters n={n} k={k}: need 0 < k < n"
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
    let recovery = reed_solomon_simd::encode(k, n - k, &original)
        .map_err(|e| VidError::Encoding(e.to_string()))?;
    let digests: Vec<[u8; 32]> = original
        .iter()
        .copied()
        .chain(recovery.iter().map(Vec::as_slice))
        .map(|shard| Keccak256::digest(shard).into())
        .collect();
    Ok(root(&digests))
}
