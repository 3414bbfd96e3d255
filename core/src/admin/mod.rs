//! The admin plane's pure core: who the admins are, what they may do, and when an action has
//! enough approvals to take effect. No IO, no clock, no RNG: times and challenge ids travel
//! inside the replicated commands, so every replica reaches the same state.
//!
//! Owns: [`AdminRecord`], [`Policy`], client access grants ([`ClientGrant`]), the action
//! vocabulary ([`action::Action`]), what approvers read of an action ([`review`]) and its one
//! canonical encoding ([`codec`]), the approval
//! statement and its signature check ([`approval`]), attestation checks ([`attestation`]),
//! revoked certificates ([`revocation`]), the rules of membership changes ([`membership`]) and the replicated admin state with its tally
//! ([`state::AdminState`]).
//! Must not: touch keys, storage or the network; sign anything; read protobuf types outside
//! [`codec`] (whose bytes *are* the protobuf `signer.v1.AdminAction`; the service converts
//! every other wire type).

pub mod action;
pub mod approval;
pub mod attestation;
pub mod codec;
pub mod membership;
pub mod review;
pub mod revocation;
pub mod state;

use crate::protection::Profile;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

pub use action::{Action, EnrollKey, Prior};
pub use approval::ApproverKey;
pub use revocation::{certificate_identity, Fingerprint, RevokedCertificate};
pub use state::{AdminCommand, AdminOutcome, AdminRefusal, AdminState};

/// What an admin's key attestation proved at enrollment (absent for development keys).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttestationFacts {
    /// The YubiKey's serial number.
    pub serial: u32,
    /// Firmware version, `major.minor.patch`.
    pub firmware: String,
    /// PIN policy of the slot: `never`, `once`, `always` or `default`.
    pub pin_policy: String,
    /// Touch policy of the slot: `never`, `always`, `cached` or `default`.
    pub touch_policy: String,
}

/// An enrolled admin.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminRecord {
    /// The admin's name, which is also the identity (certificate SAN) of their client
    /// certificate, e.g. `admin-alice`.
    pub name: String,
    /// The key that signs their approvals.
    pub key: ApproverKey,
    /// What attestation proved about the key; `None` for a development (soft) key.
    pub attestation: Option<AttestationFacts>,
}

/// The cluster's approval policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// How many distinct admins must approve an action (M of N).
    pub threshold: u32,
    /// Refuse admin keys without an attestation (soft keys are for development only).
    pub require_attestation: bool,
    /// Refuse attested keys whose touch policy is not "always".
    pub require_touch_always: bool,
    /// How long a challenge stays open, in milliseconds.
    pub challenge_ttl_ms: u64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            threshold: 1,
            require_attestation: false,
            require_touch_always: true,
            challenge_ttl_ms: 15 * 60 * 1000,
        }
    }
}

/// A per-identity token bucket: `per_second` tokens added each second, up to `burst`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimit {
    /// Sustained requests per second.
    pub per_second: u32,
    /// Largest burst.
    pub burst: u32,
}

impl RateLimit {
    /// From the wire/config form: a rate of 0 means unlimited (`None`); a burst of 0 means one
    /// second's worth.
    pub fn from_parts(per_second: u32, burst: u32) -> Option<RateLimit> {
        let burst = if burst == 0 { per_second } else { burst };
        (per_second > 0).then_some(RateLimit { per_second, burst })
    }
}

/// The key ids a client may use: every key, or a list.
pub const ALL_KEYS: &str = "*";

/// What one sequencer identity may sign.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientGrant {
    /// Key ids it may use; [`ALL_KEYS`] means every key.
    pub keys: BTreeSet<String>,
    /// Profiles it may use.
    pub profiles: BTreeSet<Profile>,
    /// Its rate limit, enforced on every node; `None` = unlimited.
    pub rate_limit: Option<RateLimit>,
    /// The client is trusted to send eth2 signing roots it computed itself (`RootBlock`,
    /// `RootAttestation`) instead of typed messages. Off unless an admin grants it: with it,
    /// the client chooses the digest that gets signed, and only the slot or epochs it states
    /// are checked (see SECURITY.md).
    #[serde(default)]
    pub raw_roots: bool,
}

/// Why a client may not sign with a key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AccessDenied {
    /// The identity has no grant.
    #[error("client {0:?} has no access grant")]
    UnknownClient(String),
    /// The grant does not list the key.
    #[error("client {client:?} may not use key {key_id:?}")]
    Key {
        /// The client.
        client: String,
        /// The key asked for.
        key_id: String,
    },
    /// The grant does not list the profile.
    #[error("client {client:?} may not sign {profile} messages")]
    Profile {
        /// The client.
        client: String,
        /// The profile asked for.
        profile: Profile,
    },
}

impl ClientGrant {
    /// The grant in words: `keys [a, b] profiles [eth2] rate 5/s, burst 9`, and `raw-roots`
    /// when the client is trusted to send eth2 signing roots.
    pub fn describe(&self) -> String {
        format!(
            "keys [{}] profiles [{}] rate {}{}",
            self.keys_text(),
            self.profiles_text(),
            self.rate_text(),
            if self.raw_roots { " raw-roots" } else { "" }
        )
    }

    /// The key ids, comma-separated.
    pub fn keys_text(&self) -> String {
        let keys: Vec<&str> = self.keys.iter().map(String::as_str).collect();
        keys.join(", ")
    }

    /// The profiles, comma-separated.
    pub fn profiles_text(&self) -> String {
        let profiles: Vec<&str> = self.profiles.iter().map(|p| p.name()).collect();
        profiles.join(", ")
    }

    /// `5/s, burst 9` or `unlimited`.
    pub fn rate_text(&self) -> String {
        match self.rate_limit {
            Some(r) => format!("{}/s, burst {}", r.per_second, r.burst),
            None => "unlimited".to_owned(),
        }
    }

    /// Whether this grant lets `client` sign with `key_id` under `profile`.
    pub fn check(&self, client: &str, key_id: &str, profile: Profile) -> Result<(), AccessDenied> {
        if !self.keys.contains(ALL_KEYS) && !self.keys.contains(key_id) {
            return Err(AccessDenied::Key {
                client: client.to_owned(),
                key_id: key_id.to_owned(),
            });
        }
        if !self.profiles.contains(&profile) {
            return Err(AccessDenied::Profile {
                client: client.to_owned(),
                profile,
            });
        }
        Ok(())
    }
}

/// A name (admin or client identity): 1–64 letters, digits, `-`, `_`, `.`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}
