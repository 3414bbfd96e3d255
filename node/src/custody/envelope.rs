//! Envelope encryption of one secret: the [`SealedKey`] record, [`seal`] and [`unseal`].
//!
//! Owns: the sealed record's fields and their JSON form (hex strings; raw bytes in binary
//! formats), the AES-256-GCM encryption of a secret under a fresh data key from a [`Kek`]
//! (a record with its own data key, as formats 1 to 3 wrote; a node seals new records with
//! [`super::shared::SharedSealer`]), and opening records of both kinds ([`unseal`],
//! [`unseal_in`]).
//! Must not: hold or serialize plaintext (a [`SealedKey`] is what replicas store and ship), talk
//! to a KMS itself (the [`Kek`] does), or keep a data key beyond one seal or unseal.
//!
//! To ensure correctness:
//! - [`seal`] makes one fresh random 256-bit data key and one fresh random 96-bit nonce per
//!   sealed secret, so a (key, nonce) pair is never reused (for shared keys, see
//!   [`super::shared`]);
//! - the [`EncryptionContext`] is bound twice: by the KEK (KMS encryption context, or the local
//!   KEK's associated data) and as AES-GCM associated data here ([`AAD_LABEL`]), so a wrong
//!   context, another record's ciphertext, another cluster's record or any flipped bit fails
//!   closed with an error, never with wrong plaintext;
//! - a record is only opened with the KEK it names ([`CustodyError::KekMismatch`] otherwise);
//! - data keys and plaintext stay in zeroizing buffers, allocated at their final size so no
//!   reallocation leaves an unzeroized copy behind.

use super::shared::{unwrap_shared, OpenedDataKeys};
use super::{fill_random, CustodyError, EncryptionContext, Kek, SecretBytes, DATA_KEY_LEN};
use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Tag};
pub use signer_core::sealed::{SealedKey, WrappedDataKey, NONCE_LEN, TAG_LEN};
use zeroize::Zeroizing;

/// The label of the envelope's associated data ([`EncryptionContext::canonical_bytes`]).
pub const AAD_LABEL: &str = "sealed-key";

/// Encrypts `secret` under a fresh data key from `kek`, bound to `ctx`.
pub async fn seal<K: Kek>(
    kek: &K,
    ctx: &EncryptionContext,
    secret: &[u8],
) -> Result<SealedKey, CustodyError> {
    ctx.validate()?;
    let data_key = kek.generate_data_key(ctx).await?;
    // `data_key`'s plaintext is zeroized when it drops, at the end of this call.
    seal_under(
        kek.descriptor(),
        data_key.plaintext(),
        data_key.wrapped(),
        ctx,
        secret,
    )
}

/// The record of `secret` for `ctx` under the data key `key`, wrapped by KEK `kek` as
/// `wrapped_dek`: a fresh random nonce, and `ctx` as the AES-GCM associated data. The one
/// sealing step of records with their own data key ([`seal`]) and of shared ones
/// ([`super::shared::SharedSealer`]).
pub(crate) fn seal_under(
    kek: super::KekRef,
    key: &[u8; DATA_KEY_LEN],
    wrapped_dek: &[u8],
    ctx: &EncryptionContext,
    secret: &[u8],
) -> Result<SealedKey, CustodyError> {
    let mut nonce = [0u8; NONCE_LEN];
    fill_random(&mut nonce)?;
    let ciphertext = aead_seal(key, &nonce, &ctx.canonical_bytes(AAD_LABEL), secret)?;
    Ok(SealedKey {
        kek,
        wrapped_dek: wrapped_dek.to_vec(),
        nonce,
        ciphertext,
    })
}

/// Decrypts a record sealed under `kek` for `ctx`. Fails closed: a record of another KEK, a
/// wrong context, a swapped or tampered field gives an error, never other plaintext. A shared
/// data key is unwrapped for this record alone; to open many records, use [`unseal_in`].
pub async fn unseal<K: Kek>(
    kek: &K,
    ctx: &EncryptionContext,
    sealed: &SealedKey,
) -> Result<SecretBytes, CustodyError> {
    open(kek, ctx, sealed, None).await
}

/// [`unseal`], taking a shared data key from `opened` (which unwraps each shared key once).
pub async fn unseal_in<K: Kek>(
    opened: &OpenedDataKeys,
    kek: &K,
    ctx: &EncryptionContext,
    sealed: &SealedKey,
) -> Result<SecretBytes, CustodyError> {
    open(kek, ctx, sealed, Some(opened)).await
}

async fn open<K: Kek>(
    kek: &K,
    ctx: &EncryptionContext,
    sealed: &SealedKey,
    opened: Option<&OpenedDataKeys>,
) -> Result<SecretBytes, CustodyError> {
    ctx.validate()?;
    let configured = kek.descriptor();
    if sealed.kek != configured {
        return Err(CustodyError::KekMismatch {
            record: sealed.kek.clone(),
            configured,
        });
    }
    if sealed.ciphertext.len() < TAG_LEN {
        return Err(CustodyError::Malformed {
            what: "sealed key ciphertext",
            reason: format!(
                "{} bytes, shorter than the {TAG_LEN}-byte tag",
                sealed.ciphertext.len()
            ),
        });
    }
    let data_key = match sealed.data_key() {
        Ok(WrappedDataKey::Own(wrapped)) => kek.unwrap_data_key(wrapped, ctx).await?,
        Ok(WrappedDataKey::Shared { id, wrapped }) => match opened {
            Some(opened) => opened.open(kek, ctx.cluster_id(), &id, wrapped).await?,
            None => unwrap_shared(kek, ctx.cluster_id(), &id, wrapped).await?,
        },
        Err(e) => {
            return Err(CustodyError::Malformed {
                what: "wrapped data key",
                reason: e.to_string(),
            })
        }
    };
    aead_open(
        &data_key,
        &sealed.nonce,
        &ctx.canonical_bytes(AAD_LABEL),
        &sealed.ciphertext,
    )
    .map(SecretBytes::new)
    .ok_or_else(|| CustodyError::Unauthentic {
        context: ctx.clone(),
    })
    // `data_key` is zeroized here, as it drops.
}

/// AES-256-GCM: `plaintext` encrypted under `key`, tag appended. The output is allocated once
/// at its final size and the plaintext is encrypted in it, so no copy of the plaintext is left.
pub(crate) fn aead_seal(
    key: &[u8; DATA_KEY_LEN],
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, CustodyError> {
    let len = plaintext.len();
    let mut out = Zeroizing::new(Vec::with_capacity(len + TAG_LEN));
    out.extend_from_slice(plaintext);
    let cipher = Aes256Gcm::new(key.into());
    let tag = cipher
        .encrypt_inout_detached(nonce.into(), aad, out.as_mut_slice().into())
        .map_err(|_| CustodyError::Encrypt { len })?;
    drop(cipher); // zeroizes the expanded key
    out.extend_from_slice(&tag);
    // `out` holds only ciphertext now; take the Vec out (no copy) and let the empty shell drop.
    Ok(std::mem::take(&mut *out))
}

/// AES-256-GCM decryption of `sealed` (ciphertext, tag appended) into a zeroizing buffer;
/// `None` if it does not authenticate under `key`, `nonce` and `aad`.
pub(crate) fn aead_open(
    key: &[u8; DATA_KEY_LEN],
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    sealed: &[u8],
) -> Option<Zeroizing<Vec<u8>>> {
    let split = sealed.len().checked_sub(TAG_LEN)?;
    let (ciphertext, tag) = sealed.split_at(split);
    let tag = Tag::try_from(tag).ok()?;
    let mut out = Zeroizing::new(ciphertext.to_vec());
    let cipher = Aes256Gcm::new(key.into());
    cipher
        .decrypt_inout_detached(nonce.into(), aad, out.as_mut_slice().into(), &tag)
        .ok()?;
    Some(out)
}

#[cfg(test)]
mod tests;
