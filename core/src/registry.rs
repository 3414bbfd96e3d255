//! The replicated key registry: which validator keys the cluster holds, their public keys,
//! their sealed (KEK-encrypted) secrets and their state. Pure transitions, no IO.
//!
//! Owns: [`KeyRecord`], [`KeyState`], [`KeyChange`] and the rules for applying a change
//! ([`Registry::apply`]). Must not: see plaintext secrets (records hold only
//! [`crate::sealed::SealedKey`]), talk to a KMS, or decide what a key may sign.
//!
//! To ensure correctness:
//! - a key id is never reused, and a public key belongs to at most one key id, so protection
//!   history (kept by public key) can never be shared or lost by renaming;
//! - delete is a tombstone: the record stays (state `Deleted`, secret dropped), so the id and the
//!   public key stay taken and the protection history stays;
//! - a re-wrap (KEK rotation) is one committed action over many keys, applied only if every
//!   record is still sealed under the KEK it started from: a stale or repeated rotation
//!   changes nothing;
//! - every refusal leaves the registry unchanged.

use crate::protection::Profile;
use crate::sealed::{KekRef, SealedKey};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A key's lifecycle state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    /// Loaded and signing.
    Active,
    /// Kept, but not signing.
    Disabled,
    /// Tombstone: never signs again; id and public key stay taken.
    Deleted,
}

impl std::fmt::Display for KeyState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KeyState::Active => "active",
            KeyState::Disabled => "disabled",
            KeyState::Deleted => "deleted",
        })
    }
}

/// One validator key as replicated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRecord {
    /// Cluster-wide id.
    pub key_id: String,
    /// Protection profile (and so scheme).
    pub profile: Profile,
    /// Public key bytes (48 for eth2, 128 for espresso).
    #[serde(with = "crate::bytes::hex_or_raw")]
    pub public_key: Vec<u8>,
    /// The secret, sealed under a KEK for this cluster and key id; `None` once deleted.
    pub sealed: Option<SealedKey>,
    /// Lifecycle state.
    pub state: KeyState,
    /// How the key came to the cluster: `generated` or `imported`.
    pub origin: String,
}

/// A change to the registry, as replicated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyChange {
    /// Add a key (generated inside the cluster or imported).
    Add(KeyRecord),
    /// Set a key's state (enable, disable, delete).
    SetState {
        /// The key.
        key_id: String,
        /// The new state.
        state: KeyState,
    },
    /// KEK rotation: replace the sealed secrets of several keys with the same secrets sealed
    /// under another KEK, all in one committed action (all or nothing).
    Rewrap(Vec<Rewrap>),
}

/// One key's part of a [`KeyChange::Rewrap`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rewrap {
    /// The key.
    pub key_id: String,
    /// The KEK the record must still be sealed under.
    pub from: KekRef,
    /// The same secret sealed under the new KEK.
    pub sealed: SealedKey,
}

/// Why a change was refused (the registry is unchanged).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum KeyRefusal {
    /// The key id is taken (also by a deleted key).
    #[error("key id {0:?} is already taken")]
    IdTaken(String),
    /// The public key is already held under another id.
    #[error("this public key is already held as {0:?}")]
    PublicKeyTaken(String),
    /// No such key.
    #[error("no key {0:?}")]
    Unknown(String),
    /// The key is deleted; nothing can change it.
    #[error("key {0:?} is deleted")]
    Deleted(String),
    /// The record is no longer sealed under the KEK the re-wrap started from.
    #[error("key {key_id:?} is sealed under {current}, not {expected}")]
    StaleRewrap {
        /// The key.
        key_id: String,
        /// The KEK the re-wrap expected.
        expected: KekRef,
        /// The KEK the record is under.
        current: KekRef,
    },
    /// A new record must be active and carry a sealed secret.
    #[error("a new key must be active and sealed")]
    Malformed,
}

/// All key records, by key id.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registry {
    /// Records by key id.
    pub keys: BTreeMap<String, KeyRecord>,
}

impl Registry {
    /// Whether `change` would apply: the refusal [`Registry::apply`] would give, changing
    /// nothing.
    pub fn check(&self, change: &KeyChange) -> Result<(), KeyRefusal> {
        match change {
            KeyChange::Add(record) => {
                if record.state != KeyState::Active || record.sealed.is_none() {
                    return Err(KeyRefusal::Malformed);
                }
                if self.keys.contains_key(&record.key_id) {
                    return Err(KeyRefusal::IdTaken(record.key_id.clone()));
                }
                if let Some(other) = self
                    .keys
                    .values()
                    .find(|r| r.public_key == record.public_key)
                {
                    return Err(KeyRefusal::PublicKeyTaken(other.key_id.clone()));
                }
                Ok(())
            }
            KeyChange::SetState { key_id, .. } => {
                let record = self
                    .keys
                    .get(key_id)
                    .ok_or_else(|| KeyRefusal::Unknown(key_id.clone()))?;
                if record.state == KeyState::Deleted {
                    return Err(KeyRefusal::Deleted(key_id.clone()));
                }
                Ok(())
            }
            KeyChange::Rewrap(items) => {
                for item in items {
                    let record = self
                        .keys
                        .get(&item.key_id)
                        .ok_or_else(|| KeyRefusal::Unknown(item.key_id.clone()))?;
                    let current = match &record.sealed {
                        None => return Err(KeyRefusal::Deleted(item.key_id.clone())),
                        Some(s) => s.kek.clone(),
                    };
                    if current != item.from {
                        return Err(KeyRefusal::StaleRewrap {
                            key_id: item.key_id.clone(),
                            expected: item.from.clone(),
                            current,
                        });
                    }
                }
                Ok(())
            }
        }
    }

    /// Apply `change`, or refuse it and change nothing: everything is checked
    /// ([`Registry::check`]) before anything changes. Returns the key id changed (for a
    /// re-wrap, the ids joined with commas).
    pub fn apply(&mut self, change: &KeyChange) -> Result<String, KeyRefusal> {
        self.check(change)?;
        match change {
            KeyChange::Add(record) => {
                self.keys.insert(record.key_id.clone(), record.clone());
                Ok(record.key_id.clone())
            }
            KeyChange::SetState { key_id, state } => {
                if let Some(record) = self.keys.get_mut(key_id) {
                    record.state = *state;
                    if *state == KeyState::Deleted {
                        record.sealed = None;
                    }
                }
                Ok(key_id.clone())
            }
            KeyChange::Rewrap(items) => {
                for item in items {
                    if let Some(record) = self.keys.get_mut(&item.key_id) {
                        record.sealed = Some(item.sealed.clone());
                    }
                }
                Ok(items
                    .iter()
                    .map(|i| i.key_id.as_str())
                    .collect::<Vec<_>>()
                    .join(","))
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::sealed::BackendKind;

    fn kek(id: &str) -> KekRef {
        KekRef {
            backend: BackendKind::Local,
            key_id: id.into(),
        }
    }

    fn sealed(k: &str, byte: u8) -> SealedKey {
        SealedKey {
            kek: kek(k),
            wrapped_dek: vec![byte; 60],
            nonce: [byte; 12],
            ciphertext: vec![byte; 48],
        }
    }

    fn record(id: &str, pk: u8) -> KeyRecord {
        KeyRecord {
            key_id: id.into(),
            profile: Profile::Eth2,
            public_key: vec![pk; 48],
            sealed: Some(sealed("old", pk)),
            state: KeyState::Active,
            origin: "generated".into(),
        }
    }

    #[test]
    fn lifecycle_case_table() {
        let mut r = Registry::default();
        assert_eq!(r.apply(&KeyChange::Add(record("a", 1))), Ok("a".into()));
        let before = r.clone();
        assert_eq!(
            r.apply(&KeyChange::Add(record("a", 2))),
            Err(KeyRefusal::IdTaken("a".into()))
        );
        assert_eq!(
            r.apply(&KeyChange::Add(record("b", 1))),
            Err(KeyRefusal::PublicKeyTaken("a".into()))
        );
        let mut inactive = record("c", 3);
        inactive.state = KeyState::Disabled;
        assert_eq!(
            r.apply(&KeyChange::Add(inactive)),
            Err(KeyRefusal::Malformed)
        );
        assert_eq!(r, before, "refusals change nothing");

        let disable = KeyChange::SetState {
            key_id: "a".into(),
            state: KeyState::Disabled,
        };
        r.apply(&disable).unwrap();
        assert_eq!(r.keys["a"].state, KeyState::Disabled);
        r.apply(&KeyChange::SetState {
            key_id: "a".into(),
            state: KeyState::Active,
        })
        .unwrap();

        // Re-wrap only from the KEK the record is under, all or nothing.
        r.apply(&KeyChange::Add(record("b", 2))).unwrap();
        let item = |id: &str, from: &str| Rewrap {
            key_id: id.into(),
            from: kek(from),
            sealed: sealed("new", 9),
        };
        let before = r.clone();
        let half_stale = KeyChange::Rewrap(vec![item("a", "old"), item("b", "other")]);
        assert!(matches!(
            r.apply(&half_stale),
            Err(KeyRefusal::StaleRewrap { .. })
        ));
        assert_eq!(r, before, "a refused re-wrap changes no record");
        let step = KeyChange::Rewrap(vec![item("a", "old"), item("b", "old")]);
        assert_eq!(r.apply(&step), Ok("a,b".into()));
        assert_eq!(r.keys["a"].sealed.as_ref().unwrap().kek, kek("new"));
        assert_eq!(r.keys["b"].sealed.as_ref().unwrap().kek, kek("new"));
        assert!(matches!(
            r.apply(&step),
            Err(KeyRefusal::StaleRewrap { .. })
        ));

        // Delete is a tombstone.
        r.apply(&KeyChange::SetState {
            key_id: "a".into(),
            state: KeyState::Deleted,
        })
        .unwrap();
        assert_eq!(r.keys["a"].sealed, None);
        assert_eq!(r.apply(&disable), Err(KeyRefusal::Deleted("a".into())));
        assert_eq!(
            r.apply(&KeyChange::Add(record("a", 5))),
            Err(KeyRefusal::IdTaken("a".into()))
        );
        assert_eq!(
            r.apply(&KeyChange::Add(record("z", 1))),
            Err(KeyRefusal::PublicKeyTaken("a".into()))
        );
        assert_eq!(
            r.apply(&KeyChange::SetState {
                key_id: "nope".into(),
                state: KeyState::Active
            }),
            Err(KeyRefusal::Unknown("nope".into()))
        );
    }
}
