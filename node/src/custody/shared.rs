//! Shared data keys: one data key seals many records, so that a node opening 10,000 keys makes
//! one KEK call (one KMS `Decrypt`) per shared key instead of one per record.
//!
//! Owns: the [`SharedSealer`] a node seals new records with (it makes a shared data key on its
//! first seal and reuses it for up to [`MAX_SEALS_PER_DATA_KEY`] records), the shared key's
//! encryption context ([`shared_context`]), and [`OpenedDataKeys`], which unwraps each shared
//! key once for a batch of unseals (the key loader's passes while keys arrive, a KEK rotation)
//! and zeroizes them when cleared or dropped. Must not: persist a plaintext data key, keep one
//! beyond the process (the sealer's), or decide which records to open or how long its users
//! keep opened keys.
//!
//! To ensure correctness:
//! - a shared key is wrapped by the KEK under its own context (cluster id, `sdk-<id>`,
//!   [`PURPOSE_SHARED_DATA_KEY`]), which no record's own data key uses, so a shared key does not
//!   unwrap as a record's own key or in another cluster, and vice versa;
//! - each record is still encrypted with the record's own context as AES-GCM associated data
//!   (the envelope's), so a record's ciphertext moved to another key id, purpose or cluster does
//!   not open, although the data key is shared;
//! - every record gets a fresh random 96-bit nonce; a shared key encrypts at most
//!   [`MAX_SEALS_PER_DATA_KEY`] (2^16) records, so a nonce repeats with probability below
//!   2^-64 — far inside NIST SP 800-38D's 2^32 bound for random nonces;
//! - plaintext data keys live in zeroizing buffers (the sealer's boxed and locked in memory
//!   where permitted) and are never logged; a failed unwrap is remembered for the batch, so
//!   10,000 records of an unreachable shared key cost one KEK call, not 10,000.
//!
//! What sharing gives up: one KEK call opens every record of a shared key, so a KMS audit trail
//! shows one `Decrypt` for them, and a KMS key policy cannot allow one record and not another by
//! its context. A node opens every record of the registry anyway.

use super::envelope::seal_under;
use super::{
    fill_random, hygiene, CustodyError, EncryptionContext, Kek, KekRef, SealedKey, DATA_KEY_LEN,
};
use signer_core::sealed::{WrappedDataKey, DATA_KEY_ID_LEN};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::OnceCell;
use zeroize::Zeroizing;

/// The purpose in a shared data key's encryption context.
pub const PURPOSE_SHARED_DATA_KEY: &str = "shared-data-key";

/// Records one shared data key seals at most before the sealer makes the next.
pub const MAX_SEALS_PER_DATA_KEY: u32 = 1 << 16;

/// A shared data key's name: `sdk-<id in hex>`. The `key_id` of its KMS encryption context
/// (so a KMS audit trail names it), and how errors and `signerctl` name it.
pub fn data_key_name(id: &[u8; DATA_KEY_ID_LEN]) -> String {
    format!("sdk-{}", hex::encode(id))
}

/// The context a shared data key is wrapped under: the cluster, its [`data_key_name`] and
/// [`PURPOSE_SHARED_DATA_KEY`].
pub fn shared_context(
    cluster_id: &str,
    id: &[u8; DATA_KEY_ID_LEN],
) -> Result<EncryptionContext, CustodyError> {
    EncryptionContext::new(cluster_id, data_key_name(id), PURPOSE_SHARED_DATA_KEY)
}

/// The shared data key a sealer is using.
struct CurrentKey {
    kek: KekRef,
    cluster_id: String,
    /// The plaintext key, boxed so the memory lock covers where it stays.
    key: Box<Zeroizing<[u8; DATA_KEY_LEN]>>,
    /// The record's `wrapped_dek` bytes: magic, id, the KEK's wrapped key.
    wrapped_dek: Vec<u8>,
    seals: u32,
}

/// Seals a node's new records under a shared data key: made by the KEK on the first seal (and
/// after [`MAX_SEALS_PER_DATA_KEY`] seals, or for another KEK or cluster), then reused. One per
/// node; seals are serialized, so concurrent proposals make one shared key, not one each.
pub struct SharedSealer {
    current: tokio::sync::Mutex<Option<CurrentKey>>,
    max_seals: u32,
}

impl Default for SharedSealer {
    fn default() -> Self {
        Self::with_max_seals(MAX_SEALS_PER_DATA_KEY)
    }
}

impl std::fmt::Debug for SharedSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedSealer(<redacted>)")
    }
}

impl SharedSealer {
    /// A sealer with no shared key yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// A sealer whose shared keys each seal at most `max_seals` records (at least 1, at most
    /// [`MAX_SEALS_PER_DATA_KEY`]).
    pub fn with_max_seals(max_seals: u32) -> Self {
        SharedSealer {
            current: tokio::sync::Mutex::new(None),
            max_seals: max_seals.clamp(1, MAX_SEALS_PER_DATA_KEY),
        }
    }

    /// Encrypts `secret` for `ctx` under the current shared data key of `kek`, making one first
    /// if needed. If the KEK fails, nothing is sealed and the next seal asks it again.
    pub async fn seal<K: Kek>(
        &self,
        kek: &K,
        ctx: &EncryptionContext,
        secret: &[u8],
    ) -> Result<SealedKey, CustodyError> {
        ctx.validate()?;
        let descriptor = kek.descriptor();
        let mut current = self.current.lock().await;
        let key = match current.take() {
            Some(c)
                if c.kek == descriptor
                    && c.cluster_id == ctx.cluster_id()
                    && c.seals < self.max_seals =>
            {
                c
            }
            // The old key, if any, is zeroized as it drops here.
            _ => new_shared_key(kek, descriptor.clone(), ctx.cluster_id()).await?,
        };
        let key = current.insert(key);
        let sealed = seal_under(descriptor, &key.key, &key.wrapped_dek, ctx, secret)?;
        key.seals += 1;
        Ok(sealed)
    }
}

/// A fresh shared data key of `kek` for `cluster_id`, with a fresh random id.
async fn new_shared_key<K: Kek>(
    kek: &K,
    descriptor: KekRef,
    cluster_id: &str,
) -> Result<CurrentKey, CustodyError> {
    let mut id = [0u8; DATA_KEY_ID_LEN];
    fill_random(&mut id)?;
    let data_key = kek
        .generate_data_key(&shared_context(cluster_id, &id)?)
        .await?;
    // Copied into its final place: no copy of the key is left on the stack.
    let mut key = Box::new(Zeroizing::new([0u8; DATA_KEY_LEN]));
    key.copy_from_slice(data_key.plaintext());
    hygiene::lock_memory(&key[..]);
    let wrapped_dek = WrappedDataKey::Shared {
        id,
        wrapped: data_key.wrapped(),
    }
    .to_bytes();
    tracing::info!(
        kek = %descriptor, data_key = %data_key_name(&id),
        "new shared data key for sealing keys"
    );
    Ok(CurrentKey {
        kek: descriptor,
        cluster_id: cluster_id.to_owned(),
        key,
        wrapped_dek,
        seals: 0,
    })
}

/// What one unwrap of a shared key gave: the key, or why not (the error's text).
type Unwrapped = Result<Zeroizing<[u8; DATA_KEY_LEN]>, String>;

/// Which shared key: the KEK that wrapped it, the cluster and its `wrapped_dek` bytes.
type SharedKeyName = (KekRef, String, Vec<u8>);

/// Shared data keys opened for a batch of unseals, each unwrapped by its KEK once (the first
/// record asks, the others wait for it) and zeroized when forgotten ([`OpenedDataKeys::clear`])
/// or dropped. A key the KEK could not unwrap stays failed until
/// [`OpenedDataKeys::forget_failures`].
#[derive(Default)]
pub struct OpenedDataKeys {
    keys: Mutex<HashMap<SharedKeyName, Arc<OnceCell<Unwrapped>>>>,
}

impl OpenedDataKeys {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// The shared key `id` of cluster `cluster_id`, wrapped by `kek` as `wrapped`: unwrapped by
    /// the KEK the first time, from this batch after.
    pub(crate) async fn open<K: Kek>(
        &self,
        kek: &K,
        cluster_id: &str,
        id: &[u8; DATA_KEY_ID_LEN],
        wrapped: &[u8],
    ) -> Result<Zeroizing<[u8; DATA_KEY_LEN]>, CustodyError> {
        let cell = {
            let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
            keys.entry((kek.descriptor(), cluster_id.to_owned(), wrapped.to_vec()))
                .or_default()
                .clone()
        };
        let unwrapped = cell
            .get_or_init(|| async {
                unwrap_shared(kek, cluster_id, id, wrapped)
                    .await
                    .map_err(|e| e.to_string())
            })
            .await;
        match unwrapped {
            Ok(key) => Ok(key.clone()),
            Err(reason) => Err(CustodyError::SharedDataKey {
                name: data_key_name(id),
                reason: reason.clone(),
            }),
        }
    }

    /// Forget the keys that failed to unwrap, so that the next unseal asks the KEK again.
    pub fn forget_failures(&self) {
        self.keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, cell| !matches!(cell.get(), Some(Err(_))));
    }

    /// Forget every key (each is zeroized as it drops; one an unseal still uses, when that
    /// unseal has finished with it).
    pub fn clear(&self) {
        self.keys.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// How many distinct shared keys this batch asked its KEKs for.
    pub fn len(&self) -> usize {
        self.keys.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// True if no shared key was asked for.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl std::fmt::Debug for OpenedDataKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OpenedDataKeys({} keys, <redacted>)", self.len())
    }
}

/// Unwrap shared key `id` with `kek` (one KEK call).
pub(crate) async fn unwrap_shared<K: Kek>(
    kek: &K,
    cluster_id: &str,
    id: &[u8; DATA_KEY_ID_LEN],
    wrapped: &[u8],
) -> Result<Zeroizing<[u8; DATA_KEY_LEN]>, CustodyError> {
    kek.unwrap_data_key(wrapped, &shared_context(cluster_id, id)?)
        .await
}

#[cfg(test)]
mod tests;
