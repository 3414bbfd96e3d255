//! The keyring cache: the registry keys this node has unsealed, sealed again for this node
//! under one data key, so that a restart opens them with one KEK call instead of one per data
//! key the records use (one per key for records sealed before format 4, which shared none:
//! 10,000 such keys under AWS KMS cost 10,000 `Decrypt` calls without it).
//!
//! Owns: the cache file (`<data_dir>/keyring.cache`), its layout, its data key, and the rule
//! for which entry may stand in for which registry record. Must not: decide which keys load
//! (the key loader asks it only for records active in the registry, and checks the public key
//! of whatever it returns exactly as after a KEK unseal), hold plaintext secrets (entries stay
//! encrypted in memory; only the cache's data key is held, zeroizing and locked in RAM where
//! permitted), or keep a key the node has dropped.
//!
//! To ensure correctness:
//! - the data key is made by the node's current KEK for the context (cluster id, `node-<id>`,
//!   [`PURPOSE_KEYRING_CACHE`]): opening the file needs the same KEK access as the registry,
//!   and a file copied to another node or another cluster does not open;
//! - each entry is AES-256-GCM under that data key with a fresh random nonce, and its
//!   associated data binds the key id and a digest of the exact sealed record it was unsealed
//!   from ([`record_digest`]): it stands in for that record only, so a re-sealed or replaced
//!   record, or another key's record, never takes a cached secret;
//! - a dropped key leaves the file at once: it is rewritten without the entry, or deleted if
//!   it cannot be rewritten ([`KeyringCache::flush`]); on opening, entries of records that are
//!   no longer active or were sealed again go too (the key loader's `retain`), while entries of
//!   records not applied yet stay for the log replay that brings them;
//! - anything wrong with the file (missing, truncated, oversized, another format, node,
//!   cluster or KEK, tampered) means
//!   no cached keys: they load from the registry as before, and the file is written anew.
//!
//! What it costs in custody terms (SECURITY.md): the same secrets as the registry, under the
//! same KEK, one more file on the node's disk; AWS CloudTrail shows one `Decrypt` of the cache
//! at start instead of one per data key the records use (the audit log still records every
//! key loaded).

use crate::custody::envelope::{aead_open, aead_seal};
use crate::custody::{
    fill_random, CustodyError, EncryptionContext, Kek, KekRef, SecretBytes, DATA_KEY_LEN,
};
use crate::registry::KeyRecord;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use signer_core::sealed::{SealedKey, NONCE_LEN};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// The cache file's name in the node's data directory.
pub const FILE_NAME: &str = "keyring.cache";

/// The purpose in the encryption context of the cache's data key.
pub const PURPOSE_KEYRING_CACHE: &str = "keyring-cache";

/// The label of an entry's associated data.
const ENTRY_LABEL: &str = "keyring-cache-entry";

/// Longest an added key waits before the file is rewritten with it: while thousands of keys
/// are generated one by one, the file is rewritten at this pace, not once per key.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(2);

/// Largest cache file read (an entry is about 130 bytes: room for some 500,000 keys); a larger
/// file is not this cache, and is replaced rather than read into memory.
pub const MAX_FILE: u64 = 64 << 20;

/// Why the cache could not be used or written. None of them carries key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// The KEK could not make or unwrap the cache's data key.
    #[error("keyring cache: {0}")]
    Custody(#[from] CustodyError),
    /// Reading, writing or removing the file failed.
    #[error("keyring cache {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// The cache could not be encoded.
    #[error("keyring cache: {0}")]
    Encode(String),
}

/// The file: the KEK and wrapped data key, then the entries.
#[derive(Serialize, Deserialize)]
struct CacheFile {
    kek: KekRef,
    wrapped_dek: Vec<u8>,
    entries: Vec<Entry>,
}

/// One key's secret, encrypted under the cache's data key.
#[derive(Clone, Serialize, Deserialize)]
struct Entry {
    key_id: String,
    record_digest: [u8; 32],
    nonce: [u8; NONCE_LEN],
    ciphertext: Vec<u8>,
}

/// The open cache: its data key and entries, and what the file still lacks.
struct Open {
    kek: KekRef,
    wrapped_dek: Vec<u8>,
    /// Boxed, at a stable address, and locked in RAM where permitted ([`locked`]).
    dek: Box<Zeroizing<[u8; DATA_KEY_LEN]>>,
    entries: BTreeMap<String, Entry>,
    /// An entry was removed since the file was written: rewrite now.
    removed: bool,
    /// An entry was added since the file was written: rewrite within [`FLUSH_INTERVAL`].
    added: bool,
    written_at: Option<Instant>,
    /// The last flush failed at this time: the next try waits [`FLUSH_INTERVAL`] after it.
    failed_at: Option<Instant>,
    /// Counts changes, so a flush marks the file up to date only if nothing changed while
    /// it was writing.
    changes: u64,
}

impl Open {
    /// A cache opened under `kek`; `replace_file`: whatever file is there is not this cache,
    /// so the first flush rewrites it.
    fn new(
        kek: KekRef,
        wrapped_dek: Vec<u8>,
        dek: Box<Zeroizing<[u8; DATA_KEY_LEN]>>,
        entries: BTreeMap<String, Entry>,
        replace_file: bool,
    ) -> Open {
        Open {
            kek,
            wrapped_dek,
            dek,
            entries,
            removed: replace_file,
            added: false,
            written_at: None,
            failed_at: None,
            changes: 0,
        }
    }

    /// An entry was removed: the file must be rewritten at once.
    fn removed_one(&mut self) {
        self.removed = true;
        self.changes += 1;
    }

    /// An entry was added: the file must be rewritten within [`FLUSH_INTERVAL`].
    fn added_one(&mut self) {
        self.added = true;
        self.changes += 1;
    }
}

/// How [`KeyringCache::open`] found the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    /// Already open (nothing was read).
    AlreadyOpen,
    /// The file opened, with this many entries.
    Read(usize),
    /// The file was not usable (the reason); the cache starts empty under a new data key.
    Fresh(String),
}

/// The node's keyring cache (see the module docs).
pub struct KeyringCache {
    path: PathBuf,
    context: EncryptionContext,
    open: Mutex<Option<Open>>,
}

impl std::fmt::Debug for KeyringCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyringCache")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// SHA-256 of a sealed record's fields, each length-prefixed: what a cache entry is bound to.
pub fn record_digest(sealed: &SealedKey) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(b"quorum-signer/keyring-cache-record/v1\0");
    let kek = sealed.kek.to_string();
    for field in [
        kek.as_bytes(),
        &sealed.wrapped_dek,
        &sealed.nonce,
        &sealed.ciphertext,
    ] {
        hash.update((field.len() as u64).to_be_bytes());
        hash.update(field);
    }
    hash.finalize().into()
}

impl KeyringCache {
    /// The cache of node `node_id` of `cluster_id`, in `data_dir`. Nothing is read yet.
    pub fn new(data_dir: &Path, cluster_id: &str, node_id: u64) -> Result<Self, CustodyError> {
        Ok(KeyringCache {
            path: data_dir.join(FILE_NAME),
            context: EncryptionContext::new(
                cluster_id,
                format!("node-{node_id}"),
                PURPOSE_KEYRING_CACHE,
            )?,
            open: Mutex::new(None),
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Open>> {
        // A panic while holding the lock leaves plain data behind: keep using it.
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// True once [`KeyringCache::open`] succeeded.
    pub fn is_open(&self) -> bool {
        self.lock().is_some()
    }

    /// Open the file with `kek` (one unwrap of its data key), or, if there is no usable file,
    /// start empty under a fresh data key from `kek` (one generate). An `Err` means the KEK
    /// could not be reached for either; the caller goes on without the cache and tries again
    /// later.
    pub async fn open<K: Kek>(&self, kek: &K) -> Result<Opened, CacheError> {
        if self.is_open() {
            return Ok(Opened::AlreadyOpen);
        }
        let (open, how) = match self.read(kek).await {
            Ok(Ok(open)) => {
                let n = open.entries.len();
                (open, Opened::Read(n))
            }
            Ok(Err(reason)) => (self.fresh(kek).await?, Opened::Fresh(reason)),
            Err(e) => return Err(e),
        };
        let mut slot = self.lock();
        if slot.is_none() {
            *slot = Some(open);
            return Ok(how);
        }
        Ok(Opened::AlreadyOpen)
    }

    /// The file's content opened with `kek`: `Ok(Err(reason))` when it is absent or unusable,
    /// `Err` only when the KEK failed in a way a retry may fix.
    async fn read<K: Kek>(&self, kek: &K) -> Result<Result<Open, String>, CacheError> {
        let bytes = match std::fs::metadata(&self.path).and_then(|meta| {
            if meta.len() > MAX_FILE {
                return Ok(Err(meta.len()));
            }
            std::fs::read(&self.path).map(Ok)
        }) {
            Ok(Ok(bytes)) => bytes,
            Ok(Err(len)) => {
                return Ok(Err(format!(
                    "{len} bytes, larger than a keyring cache ({MAX_FILE} bytes at most)"
                )))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Err("no cache file yet".into()))
            }
            Err(e) => return Ok(Err(format!("unreadable: {e}"))),
        };
        let file: CacheFile = match signer_core::format::decode(&bytes) {
            Ok(file) => file,
            Err(e) => return Ok(Err(format!("not a keyring cache of this build: {e}"))),
        };
        let current = kek.descriptor();
        if file.kek != current {
            return Ok(Err(format!(
                "sealed under KEK {}, not the current KEK {current}",
                file.kek
            )));
        }
        let dek = match kek.unwrap_data_key(&file.wrapped_dek, &self.context).await {
            // `dek` is zeroized as it drops, once copied into the locked box.
            Ok(dek) => locked(&dek),
            Err(e) if e.is_retryable() => return Err(e.into()),
            Err(e) => return Ok(Err(format!("its data key does not unwrap: {e}"))),
        };
        let mut entries = BTreeMap::new();
        for entry in file.entries {
            entries.insert(entry.key_id.clone(), entry);
        }
        Ok(Ok(Open::new(
            file.kek,
            file.wrapped_dek,
            dek,
            entries,
            false,
        )))
    }

    /// An empty cache under a fresh data key; the file is replaced at the first flush.
    async fn fresh<K: Kek>(&self, kek: &K) -> Result<Open, CacheError> {
        let data_key = kek.generate_data_key(&self.context).await?;
        let dek = locked(data_key.plaintext());
        Ok(Open::new(
            kek.descriptor(),
            data_key.into_wrapped(),
            dek,
            BTreeMap::new(),
            true,
        ))
    }

    /// The associated data of `key_id`'s entry for the record with `digest`.
    fn entry_aad(&self, key_id: &str, digest: &[u8; 32]) -> Vec<u8> {
        let mut aad = self.context.canonical_bytes(ENTRY_LABEL);
        aad.extend_from_slice(&(key_id.len() as u64).to_be_bytes());
        aad.extend_from_slice(key_id.as_bytes());
        aad.extend_from_slice(digest);
        aad
    }

    /// The cached secret for `record`, if the cache holds one unsealed from exactly this
    /// record (same key id, same sealed bytes). An entry that does not open is dropped.
    pub fn secret_for(&self, record: &KeyRecord) -> Option<SecretBytes> {
        let sealed = record.sealed.as_ref()?;
        let digest = record_digest(sealed);
        let mut slot = self.lock();
        let open = slot.as_mut()?;
        let entry = open.entries.get(&record.key_id)?;
        if entry.record_digest != digest {
            return None;
        }
        let aad = self.entry_aad(&record.key_id, &digest);
        match aead_open(&open.dek, &entry.nonce, &aad, &entry.ciphertext) {
            Some(secret) => Some(SecretBytes::new(secret)),
            None => {
                tracing::warn!(key_id = %record.key_id, "keyring cache entry does not authenticate; dropped");
                open.entries.remove(&record.key_id);
                open.removed_one();
                None
            }
        }
    }

    /// Remember `secret`, unsealed from `record` and checked against its public key.
    pub fn remember(&self, record: &KeyRecord, secret: &[u8]) -> Result<(), CustodyError> {
        let Some(sealed) = record.sealed.as_ref() else {
            return Ok(());
        };
        let digest = record_digest(sealed);
        let aad = self.entry_aad(&record.key_id, &digest);
        let mut slot = self.lock();
        let Some(open) = slot.as_mut() else {
            return Ok(());
        };
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce)?;
        let ciphertext = aead_seal(&open.dek, &nonce, &aad, secret)?;
        open.entries.insert(
            record.key_id.clone(),
            Entry {
                key_id: record.key_id.clone(),
                record_digest: digest,
                nonce,
                ciphertext,
            },
        );
        open.added_one();
        Ok(())
    }

    /// Drop `key_id`'s entry (the key was unloaded); the next flush rewrites the file at once.
    pub fn forget(&self, key_id: &str) {
        if let Some(open) = self.lock().as_mut() {
            if open.entries.remove(key_id).is_some() {
                open.removed_one();
            }
        }
    }

    /// Keep only the entries for which `keep(key_id, record_digest)` holds (after opening: the
    /// entries of records no longer active, or re-sealed, go).
    pub fn retain(&self, keep: impl Fn(&str, &[u8; 32]) -> bool) {
        if let Some(open) = self.lock().as_mut() {
            let before = open.entries.len();
            open.entries.retain(|id, e| keep(id, &e.record_digest));
            if open.entries.len() != before {
                open.removed_one();
            }
        }
    }

    /// The key ids with an entry, in order.
    pub fn key_ids(&self) -> Vec<String> {
        self.lock()
            .as_ref()
            .map(|open| open.entries.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// How long until the file must be rewritten: `Some(ZERO)` now (a removal, or an addition
    /// older than [`FLUSH_INTERVAL`]), `Some(wait)` for a recent addition or after a failed
    /// write (retried [`FLUSH_INTERVAL`] later, not in a loop), `None` if the file is up to
    /// date.
    pub fn flush_due(&self) -> Option<Duration> {
        let slot = self.lock();
        let open = slot.as_ref()?;
        if !open.removed && !open.added {
            return None;
        }
        let wait_after = |at: Option<Instant>| {
            at.map_or(Duration::ZERO, |at| {
                FLUSH_INTERVAL.saturating_sub(at.elapsed())
            })
        };
        let retry = wait_after(open.failed_at);
        if open.removed {
            return Some(retry);
        }
        Some(retry.max(wait_after(open.written_at)))
    }

    /// Rewrite the file if anything changed (atomically: a new file, synced, renamed over the
    /// old one). If a removal cannot be written, the file is deleted instead, so a dropped key
    /// never stays in it; a failed addition is retried at the next flush.
    pub async fn flush(&self) -> Result<(), CacheError> {
        let (bytes, changes) = {
            let slot = self.lock();
            let Some(open) = slot.as_ref() else {
                return Ok(());
            };
            if !open.removed && !open.added {
                return Ok(());
            }
            let file = CacheFile {
                kek: open.kek.clone(),
                wrapped_dek: open.wrapped_dek.clone(),
                entries: open.entries.values().cloned().collect(),
            };
            let bytes = signer_core::format::encode(&file)
                .map_err(|e| CacheError::Encode(e.to_string()))?;
            (bytes, open.changes)
        };
        let path = self.path.clone();
        let written = tokio::task::spawn_blocking(move || write_atomically(&path, &bytes))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
        let mut slot = self.lock();
        let Some(open) = slot.as_mut() else {
            return Ok(());
        };
        match written {
            Ok(()) => {
                open.written_at = Some(Instant::now());
                open.failed_at = None;
                if open.changes == changes {
                    open.removed = false;
                    open.added = false;
                }
                Ok(())
            }
            Err(source) => {
                open.failed_at = Some(Instant::now());
                if open.removed {
                    // A dropped key must not stay in the old file: delete it. What is left is
                    // then only in memory, and is written again as an addition.
                    let deleted = match std::fs::remove_file(&self.path) {
                        Ok(()) => true,
                        Err(e) => {
                            let gone = e.kind() == std::io::ErrorKind::NotFound;
                            if !gone {
                                tracing::error!(
                                    path = %self.path.display(), error = %e,
                                    "keyring cache: a dropped key could not be removed from \
                                     the file, nor the file deleted; delete it by hand"
                                );
                            }
                            gone
                        }
                    };
                    if deleted {
                        open.removed = false;
                        open.added = true;
                    }
                }
                Err(CacheError::Io {
                    path: self.path.clone(),
                    source,
                })
            }
        }
    }
}

/// A copy of `dek` in a box allocated at its final place (no copy left on the stack) with its
/// pages locked in RAM where permitted, like the keyring's secrets: it opens every entry.
fn locked(dek: &[u8; DATA_KEY_LEN]) -> Box<Zeroizing<[u8; DATA_KEY_LEN]>> {
    let mut boxed = Box::new(Zeroizing::new([0u8; DATA_KEY_LEN]));
    boxed.copy_from_slice(dek);
    crate::custody::hygiene::lock_memory(&boxed[..]);
    boxed
}

/// Write `bytes` to `path` through a new owner-only file in the same directory: synced,
/// renamed over `path`, the directory synced.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other("the cache path has no directory"))?;
    // tempfile creates the file with mode 0600.
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    file.write_all(bytes)?;
    file.as_file().sync_all()?;
    file.persist(path).map_err(|e| e.error)?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests;
