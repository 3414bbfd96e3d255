//! Client access control on the sign path: the replicated grant of the caller's identity, and
//! a per-identity token bucket on the node the client called.
//!
//! Owns: the token buckets (per node, in memory: a limit of N/s holds on each node the client
//! talks to) and the reasons for a denial ([`Denied`]; its gRPC status is made in
//! [`super::convert`], as a [`super::signing::SignError::Denied`]). Must not: change grants
//! (admins do, with approvals), propose anything, or build a `tonic::Status`.
//!
//! To ensure correctness:
//! - a request is checked against the grants applied on this node before anything is proposed;
//!   an identity without a grant, a key or profile not in its grant: PERMISSION_DENIED;
//! - a revoked grant stops new requests on a node as soon as the node applied the revocation;
//!   a request already proposed before that still completes (documented in SECURITY.md);
//! - buckets are bounded by the identities granted since the node started (an identity
//!   without a grant never gets one);
//! - denials (revoked certificates too: [`super::authn`] shares the throttle) reach the audit
//!   log at most once per identity per [`DENIAL_AUDIT_INTERVAL`] from each node, for at most
//!   [`DENIAL_AUDIT_IDENTITIES`] identities at a time: any certificate of the cluster CA can
//!   call, and must not be able to grow the replicated log without bound (every denial is
//!   still counted in metrics).

use crate::admin::{AccessDenied, AdminState, ClientGrant, RateLimit};
use crate::protection::Profile;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// Why a request was not let through. Travels back to a follower that forwarded the request
/// (inside a [`super::signing::SignError`], in the binary format).
#[derive(Debug, thiserror::Error, Serialize, Deserialize)]
pub enum Denied {
    /// The cluster has no admin state yet, so no client has a grant.
    #[error("the cluster's admin plane is not bootstrapped yet: no client has access")]
    NotBootstrapped,
    /// The grant does not allow it.
    #[error(transparent)]
    Access(
        #[from]
        #[serde(with = "AccessDeniedDef")]
        AccessDenied,
    ),
    /// The identity's rate limit is exhausted.
    #[error("client {client:?} exceeded its rate limit of {per_second}/s (burst {burst})")]
    RateLimited {
        /// The client.
        client: String,
        /// Its limit.
        per_second: u32,
        /// Its burst.
        burst: u32,
    },
}

/// The serde form of [`AccessDenied`] (a core type without serde): the same variants, fields
/// and names.
#[derive(Serialize, Deserialize)]
#[serde(remote = "AccessDenied")]
enum AccessDeniedDef {
    UnknownClient(String),
    Key { client: String, key_id: String },
    Profile { client: String, profile: Profile },
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
    limit: RateLimit,
}

/// Per-identity token buckets of this node.
#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    /// Take one token for `client` under `limit`; `false` when none is left.
    pub fn take(&self, client: &str, limit: RateLimit, now: Instant) -> bool {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let bucket = buckets.entry(client.to_owned()).or_insert(Bucket {
            tokens: f64::from(limit.burst),
            last: now,
            limit,
        });
        if bucket.limit != limit {
            // The admins changed the limit: start the new one full.
            bucket.limit = limit;
            bucket.tokens = f64::from(limit.burst);
        }
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        bucket.last = now;
        bucket.tokens =
            (bucket.tokens + elapsed * f64::from(limit.per_second)).min(f64::from(limit.burst));
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// How often one identity's denials are written to the audit log from one node.
pub const DENIAL_AUDIT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);
/// How many identities the denial throttle remembers; beyond that, denials are only counted.
pub const DENIAL_AUDIT_IDENTITIES: usize = 1024;

/// Decides which access denials are written to the audit log (see the module doc).
#[derive(Debug, Default)]
pub struct DenialThrottle {
    last: Mutex<HashMap<String, Instant>>,
}

impl DenialThrottle {
    /// Whether a denial of `client` at `now` should be audited; records it if so.
    pub fn should_audit(&self, client: &str, now: Instant) -> bool {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(at) = last.get(client) {
            if now.saturating_duration_since(*at) < DENIAL_AUDIT_INTERVAL {
                return false;
            }
        }
        if last.len() >= DENIAL_AUDIT_IDENTITIES && !last.contains_key(client) {
            last.retain(|_, at| now.saturating_duration_since(*at) < DENIAL_AUDIT_INTERVAL);
            if last.len() >= DENIAL_AUDIT_IDENTITIES {
                return false;
            }
        }
        last.insert(client.to_owned(), now);
        true
    }
}

/// `client`'s grant.
pub fn grant_of<'a>(admin: &'a AdminState, client: &str) -> Result<&'a ClientGrant, Denied> {
    if !admin.bootstrapped {
        return Err(Denied::NotBootstrapped);
    }
    admin
        .clients
        .get(client)
        .ok_or_else(|| Denied::Access(AccessDenied::UnknownClient(client.to_owned())))
}

/// Whether `identity` may read the cluster status: a granted client, an enrolled admin (who
/// needs each node's loaded and pending keys) or an `auditor-…` identity; before the admin
/// plane is bootstrapped, any certificate of the cluster CA (so operators and tools can watch
/// a new cluster come up).
pub fn may_read_status(admin: &AdminState, identity: &str) -> bool {
    !admin.bootstrapped
        || admin.clients.contains_key(identity)
        || admin.admins.contains_key(identity)
        || identity.starts_with("auditor-")
}

/// Whether `client` may sign with `key_id` under `profile`, and (when `rate` is set, i.e. on
/// the node the client called) whether its rate limit allows one more request. When it may,
/// returns whether its grant trusts its raw eth2 signing roots.
pub fn check(
    admin: &AdminState,
    limiter: &RateLimiter,
    client: &str,
    key_id: &str,
    profile: Profile,
    rate: bool,
) -> Result<bool, Denied> {
    let grant = grant_of(admin, client)?;
    grant.check(client, key_id, profile)?;
    if let (true, Some(limit)) = (rate, grant.rate_limit) {
        if !limiter.take(client, limit, Instant::now()) {
            return Err(Denied::RateLimited {
                client: client.to_owned(),
                per_second: limit.per_second,
                burst: limit.burst,
            });
        }
    }
    Ok(grant.raw_roots)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn denials_are_audited_once_per_interval_per_identity_and_bounded() {
        let throttle = DenialThrottle::default();
        let t0 = Instant::now();
        assert!(throttle.should_audit("stranger", t0));
        assert!(!throttle.should_audit("stranger", t0 + Duration::from_secs(59)));
        assert!(throttle.should_audit("other", t0 + Duration::from_secs(1)));
        assert!(throttle.should_audit("stranger", t0 + Duration::from_secs(61)));
        // A flood of fresh identities fills the table, then is only counted.
        let t1 = t0 + Duration::from_secs(200);
        let audited = (0..3 * DENIAL_AUDIT_IDENTITIES)
            .filter(|i| throttle.should_audit(&format!("id-{i}"), t1))
            .count();
        assert_eq!(audited, DENIAL_AUDIT_IDENTITIES);
        // Once the interval has passed, the table makes room again.
        assert!(throttle.should_audit("late", t1 + DENIAL_AUDIT_INTERVAL));
    }

    #[test]
    fn bucket_allows_burst_then_refills_at_rate() {
        let limiter = RateLimiter::default();
        let limit = RateLimit {
            per_second: 10,
            burst: 3,
        };
        let t0 = Instant::now();
        assert!((0..3).all(|_| limiter.take("c", limit, t0)));
        assert!(!limiter.take("c", limit, t0));
        // Another identity has its own bucket.
        assert!(limiter.take("d", limit, t0));
        // 100 ms at 10/s is one token.
        assert!(limiter.take("c", limit, t0 + Duration::from_millis(100)));
        assert!(!limiter.take("c", limit, t0 + Duration::from_millis(100)));
        // Never more than the burst, however long the pause.
        let later = t0 + Duration::from_secs(60);
        assert!((0..3).all(|_| limiter.take("c", limit, later)));
        assert!(!limiter.take("c", limit, later));
    }
}
