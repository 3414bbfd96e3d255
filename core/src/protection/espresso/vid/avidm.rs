//! One namespace's AvidM commitment (HotShot protocol 0.3 up to 0.6).
//!
//! Source: espresso-network vid/src/avidm.rs@0ffc8d86 (`pad_to_fields`, `raw_encode`,
//! `VidScheme::commit`), vid/src/avidm/config.rs@88c3d0bd (`Keccak256Config`, selected by the
//! `keccak256` feature that espresso-network Cargo.toml@00be77a7 turns on for `vid`),
//! vid/src/utils/bytes_to_field.rs@0b6dabab:
//! 1. `k = recovery_threshold = ceil(n / 3)`, `n = total_weight`.
//! 2. Pad the bytes with `0x01` and then zeros to a multiple of `31·k` (31 =
//!    `(MODULUS_BIT_SIZE − 1) / 8` bytes per BN254 Fr element).
//! 3. Every 31 bytes → `Fr::from_le_bytes_mod_order` (never reduces: < 2^248).
//! 4. Each run of `k` elements is the coefficient vector of a polynomial, evaluated by FFT over
//!    ark-poly's `Radix2EvaluationDomain::new(n)` (size `N` = next power of two ≥ n, generator
//!    `Fr::get_root_of_unity(N)`, no coset); evaluation `i` = `p(ω^i)`, kept for `i < n`.
//! 5. Share `i` = the `i`-th evaluation of every chunk, in chunk order; its digest is
//!    `Keccak256(serialize_uncompressed(Vec<Fr>))` = `u64le(len) ‖ 32-byte LE limbs…`.
//! 6. The namespace commitment is the Merkle root ([`super::merkle`]) over the `n` digests.
//!
//! Memory stays O(n + chunk): evaluations go straight into per-share hashers.

use ark_bn254::Fr;
use ark_ff::{BigInteger, FftField, Field, One, PrimeField, Zero};
use sha3::{Digest, Keccak256};

use super::merkle::{keccak_with_len_prefix, Tree};
use super::{VidError, VidParams};

/// Bytes per field element.
pub const ELEM_BYTES: usize = 31;

/// In-place radix-2 FFT: `values` (length a power of two) holds coefficients on entry and
/// `p(ω^i)` in natural order on exit.
fn fft(values: &mut [Fr], omega: Fr) {
    let n = values.len();
    if n <= 1 {
        return;
    }
    let log_n = n.trailing_zeros();
    for i in 0..n {
        let j = i.reverse_bits() >> (usize::BITS - log_n);
        if i < j {
            values.swap(i, j);
        }
    }
    let mut len = 2;
    while len <= n {
        // ω_len = ω^(n/len), a primitive len-th root of unity.
        let w_len = omega.pow([(n / len) as u64]);
        for block in values.chunks_mut(len) {
            let (lo, hi) = block.split_at_mut(len / 2);
            let mut w = Fr::one();
            for (a, b) in lo.iter_mut().zip(hi.iter_mut()) {
                let t = *b * w;
                *b = *a - t;
                *a += t;
                w *= w_len;
            }
        }
        len *= 2;
    }
}

/// The commitment (Merkle root) of one namespace's bytes.
pub fn commit(params: &VidParams, payload: &[u8]) -> Result<[u8; 32], VidError> {
    let n = usize::try_from(params.total_weight)
        .map_err(|_| VidError::Encoding("total weight does not fit".into()))?;
    let k = usize::try_from(params.recovery_threshold())
        .map_err(|_| VidError::Encoding("threshold does not fit".into()))?;
    if n == 0 || k == 0 || k > n {
        return Err(VidError::Encoding(format!(
            "bad AvidM parameters n={n} k={k}"
        )));
    }
    let size = n.next_power_of_two();
    let omega = Fr::get_root_of_unity(size as u64)
        .ok_or_else(|| VidError::Encoding(format!("no FFT domain of size {size}")))?;

    let chunk_bytes = k * ELEM_BYTES;
    // Padded length: payload ‖ 0x01 ‖ zeros, rounded up to whole chunks.
    let num_chunks = (payload.len() + 1).div_ceil(chunk_bytes);
    let padded_len = num_chunks * chunk_bytes;

    let mut hashers: Vec<Keccak256> = (0..n)
        .map(|_| keccak_with_len_prefix(num_chunks as u64))
        .collect();
    let mut values = vec![Fr::zero(); size];
    let mut elem = [0u8; ELEM_BYTES];
    for c in 0..num_chunks {
        values.iter_mut().for_each(|v| *v = Fr::zero());
        for (j, value) in values.iter_mut().take(k).enumerate() {
            let start = c * chunk_bytes + j * ELEM_BYTES;
            for (b, out) in elem.iter_mut().enumerate() {
                let at = start + b;
                *out = match at.cmp(&payload.len()) {
                    std::cmp::Ordering::Less => payload.get(at).copied().unwrap_or(0),
                    std::cmp::Ordering::Equal => 1,
                    std::cmp::Ordering::Greater => 0,
                };
            }
            *value = Fr::from_le_bytes_mod_order(&elem);
        }
        debug_assert!(c * chunk_bytes < padded_len);
        fft(&mut values, omega);
        for (hasher, value) in hashers.iter_mut().zip(values.iter()) {
            hasher.update(value.into_bigint().to_bytes_le());
        }
    }
    let digests: Vec<[u8; 32]> = hashers.into_iter().map(|h| h.finalize().into()).collect();
    Ok(Tree::Keccak3.root(&digests))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    /// The FFT against direct evaluation.
    #[test]
    fn fft_matches_naive_evaluation() {
        for size in [1usize, 2, 4, 8, 16] {
            let omega = Fr::get_root_of_unity(size as u64).unwrap();
            let coeffs: Vec<Fr> = (0..size as u64).map(|i| Fr::from(i * i + 3)).collect();
            let mut fast = coeffs.clone();
            fft(&mut fast, omega);
            for (i, got) in fast.iter().enumerate() {
                let x = omega.pow([i as u64]);
                let want = coeffs.iter().rev().fold(Fr::zero(), |acc, c| acc * x + c);
                assert_eq!(*got, want, "size {size} point {i}");
            }
        }
    }
}
