//! The local key-encryption key: 32 random bytes in a mode-0600 file on the node.
//!
//! Owns: creating and opening the KEK file, and wrapping data keys under it with AES-256-GCM
//! bound to the [`EncryptionContext`]. Wrapped form: `nonce (12) || ciphertext (32) || tag (16)`.
//! Must not: be used in production — anyone who can read the file (or a backup of it) can
//! unwrap every key it protects; a KMS keeps the KEK out of the node. It says so at open.
//!
//! To ensure correctness:
//! - the file is created new (never overwritten) with mode 0600 and synced, and refused at
//!   open if its mode is wider than 0600, if it is not a regular file or not exactly 32 bytes
//!   (checked on the opened file, not the path, so a swap between check and read cannot pass);
//! - a wrapped data key unwraps only with the context it was made for ([`WRAP_LABEL`] associated
//!   data);
//! - the KEK lives in a zeroizing buffer (locked in memory where permitted); `Debug` prints its
//!   fingerprint, never the key; the fingerprint is a domain-separated SHA-256 of the key.

use super::envelope::{aead_open, aead_seal, NONCE_LEN, TAG_LEN};
use super::{
    fill_random, hygiene, BackendKind, CustodyError, DataKey, EncryptionContext, Kek, KekRef,
    KeyFileProblem, DATA_KEY_LEN,
};
use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// The label of the local wrap's associated data ([`EncryptionContext::canonical_bytes`]).
pub const WRAP_LABEL: &str = "local-kek-wrap";

/// Length of a data key wrapped by a [`LocalKek`].
pub const WRAPPED_LEN: usize = NONCE_LEN + DATA_KEY_LEN + TAG_LEN;

/// A KEK held in a local file. For development and demos only.
pub struct LocalKek {
    key: Box<Zeroizing<[u8; DATA_KEY_LEN]>>,
    key_id: String,
    path: PathBuf,
}

impl LocalKek {
    /// Creates a new KEK file at `path` (mode 0600, 32 random bytes, synced) and opens it.
    /// Refuses to replace an existing file.
    pub fn create(path: &Path) -> Result<LocalKek, CustodyError> {
        let io = |e: std::io::Error| key_file_error(path, KeyFileProblem::Io(e));
        let mut key = Box::new(Zeroizing::new([0u8; DATA_KEY_LEN]));
        fill_random(&mut key[..])?;
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    key_file_error(path, KeyFileProblem::Exists)
                } else {
                    io(e)
                }
            })?;
        if let Err(e) = file.write_all(&key[..]).and_then(|()| file.sync_all()) {
            // Leave no partial KEK file behind (a retry would find it and refuse).
            drop(file);
            let _ = std::fs::remove_file(path);
            return Err(io(e));
        }
        sync_parent_dir(path).map_err(io)?;
        Ok(Self::from_key(key, path))
    }

    /// Opens an existing KEK file, refusing one whose mode is wider than 0600, that is not a
    /// regular file, or that does not hold exactly 32 bytes. Logs a warning that a local KEK is
    /// for development and demos only.
    pub fn open(path: &Path) -> Result<LocalKek, CustodyError> {
        let io = |e: std::io::Error| key_file_error(path, KeyFileProblem::Io(e));
        let mut file = File::open(path).map_err(io)?;
        let meta = file.metadata().map_err(io)?;
        if !meta.file_type().is_file() {
            return Err(key_file_error(path, KeyFileProblem::NotAFile));
        }
        let mode = meta.mode() & 0o7777;
        if mode & !0o600 != 0 {
            return Err(key_file_error(path, KeyFileProblem::TooOpen(mode)));
        }
        if meta.len() != DATA_KEY_LEN as u64 {
            return Err(key_file_error(
                path,
                KeyFileProblem::WrongLength(meta.len()),
            ));
        }
        let mut key = Box::new(Zeroizing::new([0u8; DATA_KEY_LEN]));
        file.read_exact(&mut key[..]).map_err(io)?;
        // The file must end here (it could have grown since the metadata was read).
        let mut probe = [0u8; 1];
        if file.read(&mut probe).map_err(io)? != 0 {
            return Err(key_file_error(
                path,
                KeyFileProblem::WrongLength(meta.len() + 1),
            ));
        }
        Ok(Self::from_key(key, path))
    }

    fn from_key(key: Box<Zeroizing<[u8; DATA_KEY_LEN]>>, path: &Path) -> LocalKek {
        hygiene::lock_memory(&key[..]);
        let key_id = fingerprint(&key);
        tracing::warn!(
            kek = %key_id,
            path = %path.display(),
            "using a LOCAL key-encryption key file: for development and demos only, NOT for \
             production (anyone who can read the file can decrypt every key); configure \
             `[kek] backend = \"aws-kms\"` for real keys"
        );
        LocalKek {
            key,
            key_id,
            path: path.to_path_buf(),
        }
    }

    /// The KEK file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn wrap(
        &self,
        data_key: &[u8; DATA_KEY_LEN],
        ctx: &EncryptionContext,
    ) -> Result<Vec<u8>, CustodyError> {
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce)?;
        let sealed = aead_seal(
            &self.key,
            &nonce,
            &ctx.canonical_bytes(WRAP_LABEL),
            data_key,
        )?;
        let mut wrapped = Vec::with_capacity(WRAPPED_LEN);
        wrapped.extend_from_slice(&nonce);
        wrapped.extend_from_slice(&sealed);
        Ok(wrapped)
    }
}

impl std::fmt::Debug for LocalKek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalKek")
            .field("key", &"<redacted>")
            .field("key_id", &self.key_id)
            .field("path", &self.path)
            .finish()
    }
}

impl Kek for LocalKek {
    fn descriptor(&self) -> KekRef {
        KekRef {
            backend: BackendKind::Local,
            key_id: self.key_id.clone(),
        }
    }

    async fn generate_data_key(&self, ctx: &EncryptionContext) -> Result<DataKey, CustodyError> {
        ctx.validate()?;
        let mut plaintext = Zeroizing::new([0u8; DATA_KEY_LEN]);
        fill_random(&mut plaintext[..])?;
        let wrapped = self.wrap(&plaintext, ctx)?;
        Ok(DataKey::new(plaintext, wrapped))
    }

    async fn unwrap_data_key(
        &self,
        wrapped: &[u8],
        ctx: &EncryptionContext,
    ) -> Result<Zeroizing<[u8; DATA_KEY_LEN]>, CustodyError> {
        ctx.validate()?;
        if wrapped.len() != WRAPPED_LEN {
            return Err(CustodyError::Malformed {
                what: "locally wrapped data key",
                reason: format!("{} bytes, expected {WRAPPED_LEN}", wrapped.len()),
            });
        }
        let (nonce, sealed) = wrapped.split_at(NONCE_LEN);
        let nonce = <[u8; NONCE_LEN]>::try_from(nonce).map_err(|_| CustodyError::Malformed {
            what: "locally wrapped data key",
            reason: "nonce".to_string(),
        })?;
        let plaintext = aead_open(&self.key, &nonce, &ctx.canonical_bytes(WRAP_LABEL), sealed)
            .ok_or_else(|| CustodyError::LocalUnwrap {
                kek: self.key_id.clone(),
                context: ctx.clone(),
            })?;
        let mut key = Zeroizing::new([0u8; DATA_KEY_LEN]);
        if plaintext.len() != DATA_KEY_LEN {
            return Err(CustodyError::Malformed {
                what: "locally wrapped data key",
                reason: format!("unwraps to {} bytes", plaintext.len()),
            });
        }
        key.copy_from_slice(&plaintext);
        Ok(key)
    }
}

/// The first 8 bytes, in hex, of SHA-256 over a domain label and the key: names a local
/// KEK in records and logs (shown as `local:<hex>`) without revealing it.
fn fingerprint(key: &[u8; DATA_KEY_LEN]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"quorum-signer/local-kek-id/v1\0");
    hasher.update(key);
    let digest = hasher.finalize();
    hex::encode(&digest[..8])
}

fn key_file_error(path: &Path, reason: KeyFileProblem) -> CustodyError {
    CustodyError::KeyFile {
        path: path.to_path_buf(),
        reason,
    }
}

/// Syncs the directory holding `path`, so the new file's directory entry is durable too.
fn sync_parent_dir(path: &Path) -> std::io::Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(parent)?.sync_all()
}

#[cfg(test)]
mod tests;
