//! The node's in-memory keyring: validator keys loaded from key files, ready to sign.
//!
//! Owns: the key file format (`<dir>/<key_id>.key`, TOML with `key_id`, `profile` and `secret`,
//! mode 0600), loading a directory of them, and signing with a [`SignPermit`].
//! Must not: decide whether a message may be signed — a signature needs a [`SignPermit`], which
//! only the replicated state machine hands out after a quorum commit — or print secrets.
//!
//! Key files are the development path (`signer dev-cluster`, demos, tests); production keys are
//! replicated registry records sealed under a KEK (`crate::custody`), unsealed into this
//! keyring by the key loader. Each profile's scheme comes from
//! [`crate::scheme::validator::for_profile`].
//!
//! To ensure correctness:
//! - secrets live in zeroizing buffers and the scheme key types, never in `Debug` output;
//! - a key file readable by group or others is refused.

use crate::protection::Profile;
use crate::scheme::validator::{for_profile, ValidatorSecret};
use crate::scheme::SchemeError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// Errors loading or writing key files.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyringError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// A key file is malformed.
    #[error("{path}: {reason}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong (never key material).
        reason: String,
    },
    /// A key file's permissions let others read it.
    #[error("{path}: mode {mode:o} lets others read the key; chmod 600 it")]
    TooOpen {
        /// The file.
        path: PathBuf,
        /// Its mode bits.
        mode: u32,
    },
    /// The secret does not decode for the profile's scheme.
    #[error("{path}: {source}")]
    BadKey {
        /// The file.
        path: PathBuf,
        /// The scheme error.
        source: SchemeError,
    },
    /// Two files hold the same key id.
    #[error("duplicate key id {0:?}")]
    Duplicate(String),
}

/// A key file's content. The secret is `BLS_SIGNING_KEY~…` (espresso) or 0x-hex (eth2).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFile {
    /// Cluster-wide key id, e.g. `demo-espresso`.
    pub key_id: String,
    /// Which protection profile (and so which scheme) the key serves.
    pub profile: Profile,
    /// The secret in its usual text form.
    secret: Zeroizing<String>,
}

impl std::fmt::Debug for KeyFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyFile")
            .field("key_id", &self.key_id)
            .field("profile", &self.profile)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl KeyFile {
    /// A fresh random key for `profile`.
    pub fn generate(key_id: &str, profile: Profile) -> Result<Self, SchemeError> {
        let secret = for_profile(profile).generate_text()?;
        Ok(KeyFile {
            key_id: key_id.to_owned(),
            profile,
            secret,
        })
    }

    /// Write to a new file (refusing to overwrite), mode 0600, fsynced.
    pub fn write_new(&self, path: &Path) -> Result<(), KeyringError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let io = |source| KeyringError::Io {
            path: path.to_owned(),
            source,
        };
        let text = Zeroizing::new(toml::to_string(self).map_err(|e| KeyringError::Malformed {
            path: path.to_owned(),
            reason: e.to_string(),
        })?);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(io)?;
        f.write_all(text.as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)
    }

    /// Decode the secret into a signing key.
    fn signing_key(&self, path: &Path) -> Result<Box<dyn ValidatorSecret>, KeyringError> {
        for_profile(self.profile)
            .secret_from_text(&self.secret)
            .map_err(|source| match source {
                SchemeError::Encoding(reason) => KeyringError::Malformed {
                    path: path.to_owned(),
                    reason,
                },
                source => KeyringError::BadKey {
                    path: path.to_owned(),
                    source,
                },
            })
    }
}

/// Proof that the replicated state machine accepted signing `message` with one key.
///
/// Only the replica module creates one (the constructor is crate-private), from the applied
/// outcome of a committed entry that decided `Signed` or `Resigned` for exactly this key and
/// message. It names the key by id *and* public key, is not `Clone`, and is consumed by the one
/// signature it allows ([`LoadedKey::sign`]).
#[derive(Debug, PartialEq, Eq)]
pub struct SignPermit {
    key_id: String,
    public_key: Vec<u8>,
    message: Vec<u8>,
}

impl SignPermit {
    /// Issued by the replica module from an applied sign outcome only.
    pub(crate) fn issue(key_id: String, public_key: Vec<u8>, message: Vec<u8>) -> Self {
        SignPermit {
            key_id,
            public_key,
            message,
        }
    }

    /// The exact bytes this permit allows signing.
    pub fn message(&self) -> &[u8] {
        &self.message
    }
}

/// Why a loaded key refused a permit: the permit names another key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the permit is for key {permit_key_id:?} with another public key, not this one")]
pub struct PermitMismatch {
    /// The key id the permit names.
    pub permit_key_id: String,
}

/// Why a key could not be added to the keyring.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("key id {key_id:?} is already loaded with another public key ({existing})")]
pub struct IdConflict {
    /// The key id.
    pub key_id: String,
    /// The public key (text form) already loaded under that id.
    pub existing: String,
}

/// A signature and its usual text form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureBytes {
    /// Raw bytes.
    pub bytes: Vec<u8>,
    /// `0x…` (eth2) or `BLS_SIG~…` (espresso).
    pub text: String,
}

/// One loaded key.
pub struct LoadedKey {
    /// Key id.
    pub key_id: String,
    /// Profile.
    pub profile: Profile,
    /// Public key bytes (48 or 128).
    pub public_key: Vec<u8>,
    /// Public key text (`0x…` or `BLS_VER_KEY~…`).
    pub public_key_text: String,
    secret: Box<dyn ValidatorSecret>,
}

impl LoadedKey {
    /// A key from its raw secret: 32 bytes, big-endian for eth2 (BLS12-381), little-endian for
    /// espresso (BN254, as jf-signature stores it).
    pub fn from_secret(
        key_id: &str,
        profile: Profile,
        secret: &[u8],
    ) -> Result<LoadedKey, SchemeError> {
        let secret = for_profile(profile).secret_from_bytes(secret)?;
        let public = secret.public_key();
        let (public_key, public_key_text) = (public.bytes, public.text);
        Ok(LoadedKey {
            key_id: key_id.to_owned(),
            profile,
            public_key,
            public_key_text,
            secret,
        })
    }

    /// Scheme name of the key.
    pub fn scheme(&self) -> &'static str {
        for_profile(self.profile).name()
    }

    /// Sign the permit's message, consuming the permit. The permit must name this key: the
    /// same id and the same public key.
    pub fn sign(&self, permit: SignPermit) -> Result<SignatureBytes, PermitMismatch> {
        if permit.key_id != self.key_id || permit.public_key != self.public_key {
            return Err(PermitMismatch {
                permit_key_id: permit.key_id,
            });
        }
        let signature = self.secret.sign(&permit.message);
        Ok(SignatureBytes {
            bytes: signature.bytes,
            text: signature.text,
        })
    }
}

impl std::fmt::Debug for LoadedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "LoadedKey({} {} {})",
            self.key_id, self.profile, self.public_key_text
        )
    }
}

/// All keys a node holds in memory, by key id: keys from key files (loaded at start) and keys
/// of the replicated registry (unsealed by the key loader as records are committed).
#[derive(Debug, Default)]
pub struct Keyring {
    keys: std::sync::RwLock<BTreeMap<String, std::sync::Arc<LoadedKey>>>,
    /// Registry keys not loaded yet, with the reason (e.g. KMS unreachable).
    pending: std::sync::RwLock<BTreeMap<String, String>>,
}

impl Keyring {
    /// Load every `*.key` file in `dir` (a missing directory is an empty keyring).
    pub fn load_dir(dir: &Path) -> Result<Self, KeyringError> {
        use std::os::unix::fs::PermissionsExt;
        let ring = Keyring::default();
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ring),
            Err(source) => {
                return Err(KeyringError::Io {
                    path: dir.to_owned(),
                    source,
                })
            }
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "key"))
            .collect();
        paths.sort();
        for path in paths {
            let io = |source| KeyringError::Io {
                path: path.clone(),
                source,
            };
            let mode = std::fs::metadata(&path).map_err(io)?.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(KeyringError::TooOpen { path, mode });
            }
            let text = Zeroizing::new(std::fs::read_to_string(&path).map_err(io)?);
            let file: KeyFile = toml::from_str(&text).map_err(|e| KeyringError::Malformed {
                path: path.clone(),
                reason: e.message().to_owned(),
            })?;
            let secret = file.signing_key(&path)?;
            let public = secret.public_key();
            let (public_key, public_key_text) = (public.bytes, public.text);
            if ring.get(&file.key_id).is_some() {
                return Err(KeyringError::Duplicate(file.key_id.clone()));
            }
            ring.insert(LoadedKey {
                key_id: file.key_id.clone(),
                profile: file.profile,
                public_key,
                public_key_text,
                secret,
            })
            .map_err(|_| KeyringError::Duplicate(file.key_id.clone()))?;
        }
        Ok(ring)
    }

    /// The key with this id.
    pub fn get(&self, key_id: &str) -> Option<std::sync::Arc<LoadedKey>> {
        self.read_keys().get(key_id).cloned()
    }

    /// All keys, ordered by id.
    pub fn keys(&self) -> Vec<std::sync::Arc<LoadedKey>> {
        self.read_keys().values().cloned().collect()
    }

    /// Add a key; it is no longer pending. An id already loaded with another public key
    /// (e.g. a key file and a registry record sharing an id) is refused and nothing changes:
    /// one id always names one key on this node.
    pub fn insert(&self, key: LoadedKey) -> Result<(), IdConflict> {
        let id = key.key_id.clone();
        let mut keys = self.keys.write().unwrap_or_else(|p| p.into_inner());
        if let Some(existing) = keys.get(&id) {
            if existing.public_key != key.public_key {
                return Err(IdConflict {
                    key_id: id,
                    existing: existing.public_key_text.clone(),
                });
            }
        }
        let key = std::sync::Arc::new(key);
        // The secret scalar lives inline in the scheme's key type, which the key boxes: keep
        // the pages of that box (not of the `LoadedKey`, which holds only the pointer) out of
        // swap where allowed.
        crate::custody::hygiene::lock_value(&*key.secret);
        keys.insert(id.clone(), key);
        drop(keys);
        self.write_pending().remove(&id);
        Ok(())
    }

    /// Forget a key (disabled or deleted); returns whether it was loaded.
    pub fn remove(&self, key_id: &str) -> bool {
        self.write_pending().remove(key_id);
        self.keys
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key_id)
            .is_some()
    }

    /// Record that a registry key could not be loaded yet, and why.
    pub fn set_pending(&self, key_id: &str, reason: String) {
        self.write_pending().insert(key_id.to_owned(), reason);
    }

    /// Why the registry key `key_id` is not loaded yet, if it is pending.
    pub fn pending_reason(&self, key_id: &str) -> Option<String> {
        self.pending
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(key_id)
            .cloned()
    }

    /// Registry keys not loaded yet, with the reason.
    pub fn pending(&self) -> BTreeMap<String, String> {
        self.pending
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn read_keys(
        &self,
    ) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, std::sync::Arc<LoadedKey>>> {
        self.keys.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_pending(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, String>> {
        self.pending.write().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn key(id: &str, profile: Profile, seed: u8) -> LoadedKey {
        let mut secret = [0u8; 32];
        match profile {
            Profile::Eth2 => secret[31] = seed,
            Profile::Espresso => secret[0] = seed,
        }
        LoadedKey::from_secret(id, profile, &secret).unwrap()
    }

    #[test]
    fn a_permit_signs_only_with_the_key_it_names_by_id_and_public_key() {
        for profile in [Profile::Eth2, Profile::Espresso] {
            let k = key("k", profile, 1);
            let other = key("k", profile, 2);
            let message = [7u8; 32];
            // Same id, another public key (a key file and a registry key sharing an id).
            let foreign = SignPermit::issue("k".into(), other.public_key.clone(), message.to_vec());
            assert_eq!(
                k.sign(foreign),
                Err(PermitMismatch {
                    permit_key_id: "k".into()
                })
            );
            // Same public key, another id.
            let renamed = SignPermit::issue("j".into(), k.public_key.clone(), message.to_vec());
            assert_eq!(
                k.sign(renamed),
                Err(PermitMismatch {
                    permit_key_id: "j".into()
                })
            );
            // The permit's own key signs, and the signature verifies on the permit's message.
            let own = SignPermit::issue("k".into(), k.public_key.clone(), message.to_vec());
            let signature = k.sign(own).unwrap();
            // Verified by the scheme's own module, not by the trait the key signs through.
            let verifies = match profile {
                Profile::Eth2 => crate::scheme::bls12_381::verify_bytes(
                    &k.public_key,
                    &message,
                    &signature.bytes,
                ),
                Profile::Espresso => {
                    use crate::scheme::bn254;
                    let pk = bn254::PublicKey::from_bytes(&k.public_key).unwrap();
                    let sig = bn254::Signature::from_bytes(&signature.bytes).unwrap();
                    sig.verify(&pk, &message)
                }
            };
            assert!(verifies, "{profile}: signature does not verify");
        }
    }

    #[test]
    fn a_key_file_others_may_read_is_refused_naming_its_path_and_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        // A key file the owner alone may read, next to the one under test: a refused file
        // refuses the whole directory (no keyring with some of the keys).
        let good = dir.path().join("a-good.key");
        KeyFile::generate("a-good", Profile::Eth2)
            .unwrap()
            .write_new(&good)
            .unwrap();
        let path = dir.path().join("b-open.key");
        KeyFile::generate("b-open", Profile::Espresso)
            .unwrap()
            .write_new(&path)
            .unwrap();
        let chmod = |mode: u32| {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap()
        };
        for mode in [0o644, 0o640, 0o604, 0o660, 0o606, 0o610, 0o601, 0o777] {
            chmod(mode);
            let err = Keyring::load_dir(dir.path()).unwrap_err();
            let KeyringError::TooOpen {
                path: refused,
                mode: reported,
            } = &err
            else {
                panic!("{mode:o}: {err}")
            };
            assert_eq!((refused, *reported), (&path, mode), "{mode:o}");
            assert_eq!(
                err.to_string(),
                format!(
                    "{}: mode {mode:o} lets others read the key; chmod 600 it",
                    path.display()
                )
            );
        }
        chmod(0o644);
        assert_eq!(
            Keyring::load_dir(dir.path()).unwrap_err().to_string(),
            format!(
                "{}/b-open.key: mode 644 lets others read the key; chmod 600 it",
                dir.path().display()
            )
        );
        // Owner-only modes load, with both keys.
        for mode in [0o600, 0o400, 0o700] {
            chmod(mode);
            let ring = Keyring::load_dir(dir.path()).unwrap();
            let ids: Vec<String> = ring.keys().iter().map(|k| k.key_id.clone()).collect();
            assert_eq!(ids, ["a-good", "b-open"], "{mode:o}");
        }
    }

    #[test]
    fn one_id_names_one_key_on_a_node() {
        let ring = Keyring::default();
        ring.insert(key("shared", Profile::Espresso, 1)).unwrap();
        let loaded_first = ring.get("shared").unwrap().public_key.clone();
        let err = ring
            .insert(key("shared", Profile::Espresso, 2))
            .unwrap_err();
        assert_eq!(err.key_id, "shared");
        assert_eq!(err.existing, ring.get("shared").unwrap().public_key_text);
        // Nothing changed: the first key is still the one loaded under the id.
        assert_eq!(ring.get("shared").unwrap().public_key, loaded_first);
        // The same key again is not a conflict (a reload after a restart).
        ring.insert(key("shared", Profile::Espresso, 1)).unwrap();
    }
}
