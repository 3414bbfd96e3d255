//! The `[admin]` section of a node config: the trusted attestation roots and the admin plane's
//! initial state (bootstrap admins, policy and client grants) written by `signer init`.
//!
//! Owns: the schema, and turning it into a replicated [`Bootstrap`] (reading and verifying
//! bootstrap YubiKey attestations). Must not: apply anything — the first leader proposes the
//! bootstrap, and the state machine accepts it only once per cluster.

use crate::admin::attestation;
use crate::admin::state::Bootstrap;
use crate::admin::{AdminRecord, ApproverKey, ClientGrant, Policy, RateLimit};
use crate::protection::Profile;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Admin-plane settings of a node (the same on every node of a cluster).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Trust Yubico's public attestation roots (shipped in the binary). Default true.
    #[serde(default = "super::default_true")]
    pub trust_yubico_roots: bool,
    /// Further trusted attestation roots (PEM files), e.g. a test root.
    #[serde(default)]
    pub attestation_roots: Vec<PathBuf>,
    /// Approvals an action needs (M of N). Default 1.
    #[serde(default = "one")]
    pub threshold: u32,
    /// Refuse admin keys without an attestation. Default false (development keys allowed).
    #[serde(default)]
    pub require_attestation: bool,
    /// Refuse YubiKey keys whose touch policy is not "always". Default true.
    #[serde(default = "super::default_true")]
    pub require_touch_always: bool,
    /// How long a challenge stays open, in seconds. Default 900.
    #[serde(default = "fifteen_minutes")]
    pub challenge_ttl_secs: u64,
    /// The first admins.
    #[serde(default)]
    pub admins: Vec<BootstrapAdmin>,
    /// The first client grants.
    #[serde(default)]
    pub clients: Vec<BootstrapClient>,
}

fn one() -> u32 {
    1
}

fn fifteen_minutes() -> u64 {
    900
}

/// A bootstrap admin: a development key, or a YubiKey's attestation certificates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootstrapAdmin {
    /// Name = the identity of the admin's client certificate.
    pub name: String,
    /// `ed25519:<hex>` (development) — or leave out and give the attestation files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The slot 9c attestation certificate (DER file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot_certificate: Option<PathBuf>,
    /// The device (f9) attestation certificate (DER file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_certificate: Option<PathBuf>,
}

/// A bootstrap client grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootstrapClient {
    /// The client's certificate identity.
    pub identity: String,
    /// Key ids, or `["*"]`.
    pub keys: Vec<String>,
    /// Profiles.
    pub profiles: Vec<Profile>,
    /// Requests per second (0 or absent = unlimited).
    #[serde(default)]
    pub rate_per_second: u32,
    /// Burst (default: one second's worth).
    #[serde(default)]
    pub rate_burst: u32,
    /// Trust this client to send eth2 signing roots it computed itself (default: no; every
    /// generated config leaves it off).
    #[serde(default)]
    pub raw_roots: bool,
}

impl AdminConfig {
    /// Defaults as serde fills them in (Yubico roots trusted, 1 of N, touch always, 15 min).
    pub fn dev() -> AdminConfig {
        AdminConfig {
            trust_yubico_roots: true,
            attestation_roots: Vec::new(),
            threshold: 1,
            require_attestation: false,
            require_touch_always: true,
            challenge_ttl_secs: 900,
            admins: Vec::new(),
            clients: Vec::new(),
        }
    }

    /// Paths relative to `base` become absolute.
    pub fn resolve_paths(&mut self, base: &Path) {
        let admin_paths = self.admins.iter_mut().flat_map(|a| {
            a.slot_certificate
                .iter_mut()
                .chain(a.device_certificate.iter_mut())
        });
        for path in self.attestation_roots.iter_mut().chain(admin_paths) {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        }
    }

    /// The trusted attestation roots (DER): Yubico's (unless turned off) and the configured
    /// files.
    pub fn roots(&self) -> Result<Vec<Vec<u8>>, String> {
        let mut roots = if self.trust_yubico_roots {
            attestation::yubico_roots()
        } else {
            Vec::new()
        };
        for path in &self.attestation_roots {
            let text = std::fs::read(path)
                .map_err(|e| format!("admin.attestation_roots: {}: {e}", path.display()))?;
            let (_, pem) = x509_parser::pem::parse_x509_pem(&text).map_err(|e| {
                format!(
                    "admin.attestation_roots: {}: not a PEM certificate: {e}",
                    path.display()
                )
            })?;
            roots.push(pem.contents);
        }
        Ok(roots)
    }

    /// The replicated initial state, or `None` when no admin is configured. It carries the
    /// trusted attestation roots and the eth2 `genesis_validators_root`, so that every replica
    /// checks enrollments and interchange imports against the same, replicated values.
    pub fn bootstrap(
        &self,
        cluster_id: &str,
        genesis_validators_root: crate::protection::ethereum::Root,
    ) -> Result<Option<Bootstrap>, String> {
        if self.admins.is_empty() {
            return Ok(None);
        }
        let roots = self.roots()?;
        let admins = self
            .admins
            .iter()
            .map(|a| bootstrap_admin(a, &roots))
            .collect::<Result<Vec<_>, _>>()?;
        let clients = self
            .clients
            .iter()
            .map(|c| {
                let grant = ClientGrant {
                    keys: c.keys.iter().cloned().collect(),
                    profiles: c.profiles.iter().copied().collect(),
                    rate_limit: RateLimit::from_parts(c.rate_per_second, c.rate_burst),
                    raw_roots: c.raw_roots,
                };
                (c.identity.clone(), grant)
            })
            .collect::<BTreeMap<_, _>>();
        Ok(Some(Bootstrap {
            cluster_id: cluster_id.to_owned(),
            admins,
            policy: Policy {
                threshold: self.threshold,
                require_attestation: self.require_attestation,
                require_touch_always: self.require_touch_always,
                challenge_ttl_ms: self.challenge_ttl_secs.saturating_mul(1000),
            },
            clients,
            attestation_roots: roots,
            genesis_validators_root: Some(genesis_validators_root),
        }))
    }
}

fn bootstrap_admin(a: &BootstrapAdmin, roots: &[Vec<u8>]) -> Result<AdminRecord, String> {
    let field = format!("admin.admins[{}]", a.name);
    match (&a.key, &a.slot_certificate, &a.device_certificate) {
        (Some(key), None, None) => Ok(AdminRecord {
            name: a.name.clone(),
            key: ApproverKey::from_text(key).map_err(|e| format!("{field}.key: {e}"))?,
            attestation: None,
        }),
        (None, Some(slot), Some(device)) => {
            let read = |p: &PathBuf| {
                std::fs::read(p).map_err(|e| format!("{field}: {}: {e}", p.display()))
            };
            let attested = attestation::verify_attestation(&read(slot)?, &read(device)?, roots)
                .map_err(|e| format!("{field}: attestation: {e}"))?;
            let key = ApproverKey::from(&attested.public_key);
            Ok(AdminRecord {
                name: a.name.clone(),
                key,
                attestation: Some(attested.facts()),
            })
        }
        _ => Err(format!(
            "{field}: give either `key` or both `slot_certificate` and `device_certificate`"
        )),
    }
}
