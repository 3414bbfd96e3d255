//! Who is calling: the identity named by the caller's verified certificate — refused when the
//! admins revoked that certificate. The one check every authenticated call passes, on every
//! port.
//!
//! Owns: [`Authenticator`]: reading the identity off the leaf certificate rustls verified
//! against the cluster CA (first DNS SAN, else CN), checking that certificate's SHA-256
//! fingerprint against the revocations this node applied ([`crate::admin::AdminState::revoked`]),
//! and recording a revoked certificate's refusal for the audit log (bounded like every access
//! denial: [`super::access::DenialThrottle`]). Must not: decide what an identity may do
//! (grants, enrolled admins, auditors: the services), build a `tonic::Status` (that is
//! [`super::convert::authn_status`]), or remember a verdict: every call reads the applied
//! state, so a revocation takes effect on this node's next call once it applied the
//! revocation, on connections opened before it too. What a certificate names is remembered
//! by its fingerprint ([`IdentityCache`]): the same bytes always name the same identity, and
//! parsing X.509 on every call was 1.5% of the sign path's CPU.
//!
//! To ensure correctness:
//! - every service that names its caller asks [`Authenticator::identify`]: Signer, Admin and
//!   Audit on the client port, the Web3Signer-compatible API on each request (not once per
//!   connection), and the peer service (node certificates); an audit `Tail --follow` stream
//!   checks again ([`Authenticator::recheck`]) before each page it sends;
//! - the fingerprint is over the leaf certificate's DER bytes, the certificate that names the
//!   caller; a certificate issued again for the same name has another fingerprint;
//! - what is not an authenticated call is not checked: the TLS handshake itself, gRPC health
//!   and reflection, and the Web3Signer API's `/upcheck` and `/healthcheck` (open to callers
//!   without a certificate).

use super::access::DenialThrottle;
use crate::admin::{certificate_identity, Fingerprint};
use crate::replica::{EventSink, StateMachine};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Why a caller has no identity here.
#[derive(Debug, thiserror::Error)]
pub enum AuthnError {
    /// No certificate, or one that names nobody.
    #[error("no certificate naming the caller")]
    NoIdentity,
    /// The admins revoked the caller's certificate.
    #[error(transparent)]
    Revoked(#[from] Revoked),
}

/// A revoked certificate presented by a caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the certificate of {identity:?} (sha256 {fingerprint}) was revoked by the admins; ask them \
     for a new one"
)]
pub struct Revoked {
    /// The identity the certificate names.
    pub identity: String,
    /// Its fingerprint.
    pub fingerprint: Fingerprint,
}

/// Authenticates callers of this node's services (cheap to clone).
#[derive(Clone)]
pub struct Authenticator {
    state: StateMachine,
    events: EventSink,
    denials: Arc<DenialThrottle>,
    identities: Arc<IdentityCache>,
}

/// What each certificate seen names, by fingerprint: a certificate is parsed once, not on
/// every call. Bounded: when full it starts again empty (only CA-signed certificates reach it,
/// a handful per deployment).
#[derive(Default)]
pub struct IdentityCache(Mutex<HashMap<Fingerprint, Option<String>>>);

impl IdentityCache {
    /// Certificates remembered at most.
    pub const CAPACITY: usize = 4096;

    /// What `leaf` (whose fingerprint is `fingerprint`) names.
    fn identity(&self, fingerprint: Fingerprint, leaf: &[u8]) -> Option<String> {
        let lock = || self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(known) = lock().get(&fingerprint) {
            return known.clone();
        }
        let named = certificate_identity(leaf);
        let mut known = lock();
        if known.len() >= Self::CAPACITY {
            known.clear();
        }
        known.insert(fingerprint, named.clone());
        named
    }
}

impl Authenticator {
    /// Check callers against `state`'s revocations; record refusals in `events`, as far as
    /// `denials` lets them through (shared with the sign path's access denials).
    pub fn new(state: StateMachine, events: EventSink, denials: Arc<DenialThrottle>) -> Self {
        Authenticator {
            state,
            events,
            denials,
            identities: Arc::default(),
        }
    }

    /// The identity named by `leaf`, the verified leaf certificate (DER) of the caller, unless
    /// the admins revoked it.
    pub fn identify(&self, leaf: Option<&[u8]>) -> Result<String, AuthnError> {
        self.caller(leaf).map(|c| c.identity)
    }

    /// [`Self::identify`], keeping the certificate's fingerprint (for a long call that checks
    /// again with [`Self::recheck`]).
    pub fn caller(&self, leaf: Option<&[u8]>) -> Result<Caller, AuthnError> {
        let leaf = leaf.ok_or(AuthnError::NoIdentity)?;
        let fingerprint = Fingerprint::of(leaf);
        let caller = Caller {
            identity: self
                .identities
                .identity(fingerprint, leaf)
                .ok_or(AuthnError::NoIdentity)?,
            fingerprint,
        };
        self.recheck(&caller)?;
        Ok(caller)
    }

    /// Whether `caller`'s certificate is still not revoked (a streaming call checks again as
    /// it goes).
    pub fn recheck(&self, caller: &Caller) -> Result<(), Revoked> {
        if self
            .state
            .read()
            .admin
            .revocation(&caller.fingerprint)
            .is_none()
        {
            return Ok(());
        }
        let revoked = Revoked {
            identity: caller.identity.clone(),
            fingerprint: caller.fingerprint,
        };
        tracing::debug!(identity = %revoked.identity, fingerprint = %revoked.fingerprint, "revoked certificate refused");
        if self.denials.should_audit(&revoked.identity, Instant::now()) {
            self.events
                .access_denied(&revoked.identity, "", "", &revoked.to_string());
        }
        Err(revoked)
    }

    /// [`Self::identify`] for the caller of a gRPC request received over mutual TLS (tonic's
    /// `peer_certs`, verified against the cluster CA).
    pub fn identify_request<T>(&self, req: &tonic::Request<T>) -> Result<String, AuthnError> {
        self.request_caller(req).map(|c| c.identity)
    }

    /// [`Self::caller`] for a gRPC request.
    pub fn request_caller<T>(&self, req: &tonic::Request<T>) -> Result<Caller, AuthnError> {
        let certs = req.peer_certs();
        let leaf = certs.as_deref().and_then(|c| c.first());
        self.caller(leaf.map(|c| c.as_ref()))
    }
}

/// An authenticated caller: the identity its certificate names, and that certificate's
/// fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The identity (first DNS SAN, else CN).
    pub identity: String,
    /// SHA-256 of the certificate.
    pub fingerprint: Fingerprint,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn certificate(name: &str) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec![name.to_owned()]).unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn the_cache_names_what_the_certificate_names_and_stays_bounded() {
        let cache = IdentityCache::default();
        let seq = certificate("seq-1.example");
        let other = certificate("seq-2.example");
        for _ in 0..2 {
            assert_eq!(
                cache.identity(Fingerprint::of(&seq), &seq),
                Some("seq-1.example".to_owned())
            );
            assert_eq!(
                cache.identity(Fingerprint::of(&other), &other),
                Some("seq-2.example".to_owned())
            );
            assert_eq!(cache.identity(Fingerprint::of(b"junk"), b"junk"), None);
        }
        // Full: it starts again, and still names each certificate.
        for i in 0..IdentityCache::CAPACITY as u32 {
            let bytes = i.to_le_bytes();
            assert_eq!(cache.identity(Fingerprint::of(&bytes), &bytes), None);
        }
        assert!(cache.0.lock().unwrap().len() <= IdentityCache::CAPACITY);
        assert_eq!(
            cache.identity(Fingerprint::of(&seq), &seq),
            Some("seq-1.example".to_owned())
        );
    }
}
