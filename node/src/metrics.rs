//! Prometheus metrics of one node: the series, their registry, the sampler that copies Raft's
//! and the keyring's state into gauges, the KEK wrapper that times KMS calls, and the
//! `GET /metrics` endpoint ([`serve`], in [`http`]).
//!
//! Owns: the [`Metrics`] struct (one per node, with its own `prometheus::Registry`: `signer
//! bench` and some tests run several nodes in one process, so nothing is registered globally),
//! the names, help texts, labels and buckets of every series, the labels of a sign request's
//! typed answer ([`sign_labels`]), and [`MeteredKek`].
//! Must not: decide anything (services report outcomes here, nothing reads them back), read a
//! gRPC status to learn an outcome, block a request path (recording is a few atomic
//! operations), or write the text format by hand (the `prometheus` crate's `TextEncoder`
//! does).
//!
//! To ensure correctness:
//! - no label value is ever a secret, a message, a request id or a key id; labels are profile
//!   names, outcome words, reason codes ([`crate::protection::Violation::code`] or a gRPC code
//!   name), KEK backend names, operation names, peer node ids and client identities;
//! - every label has bounded cardinality: profiles, outcomes, reasons, backends and operations
//!   are fixed sets, peers are the Raft membership, and clients are the identities in client
//!   certificates that passed authentication and the ACL (only authenticated, authorized
//!   identities may be passed to [`Metrics::rate_limited`]);
//! - a sign request is counted once, on the node the client called; a request a follower
//!   forwarded is not counted again at the leader (the leader's `signer_batch_entries` does
//!   include it).
//!
//! Series (see the README's SRE section for an example scrape):
//! - `signer_sign_requests_total{profile,outcome,reason}` counter; outcome `signed`,
//!   `resigned`, `refused` (reason: the refusal code) or `failed` (reason: the gRPC code name)
//! - `signer_sign_latency_seconds{profile}` histogram, 0.5 ms to 5 s
//! - `signer_batch_entries` histogram: sign requests per proposed Raft entry (leader)
//! - `signer_raft_term`, `signer_raft_leader_id` (0: none known), `signer_raft_is_leader`,
//!   `signer_raft_last_log_index`, `signer_raft_commit_index`, `signer_raft_applied_index`
//! - `signer_raft_replication_lag_entries{peer}`: the leader's last log index minus what the
//!   peer has matched (only on the leader)
//! - `signer_kms_call_seconds{backend,op}` histogram and `signer_kms_errors_total{backend,op}`;
//!   op `generate_data_key` (sealing) or `unwrap_data_key` (unsealing)
//! - `signer_rate_limited_total{client}` counter
//! - `signer_keys_loaded`, `signer_keys_pending` gauges; `signer_node_id` gauge

pub mod http;

pub use http::serve;

use crate::custody::{CustodyError, DataKey, EncryptionContext, Kek, KekRef, DATA_KEY_LEN};
use crate::keyring::Keyring;
use crate::replica::{NodeId, Raft};
use crate::service::signing::{SignError, Signed};
use openraft::async_runtime::WatchReceiver;
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};
use std::collections::BTreeSet;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tonic::Code;
use zeroize::Zeroizing;

/// Buckets of `signer_sign_latency_seconds`: 0.5 ms to 1 s where sign requests live, plus
/// 2.5 s and 5 s to show requests that ran into the forwarding timeout.
const SIGN_LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];
/// Buckets of `signer_batch_entries`: powers of two up to `MAX_BATCH` (256).
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];
/// Buckets of `signer_kms_call_seconds`: a local KEK takes microseconds, AWS KMS tens of
/// milliseconds, a struggling KMS seconds.
const KMS_BUCKETS: &[f64] = &[
    0.0001, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// How often the keyring gauges are sampled (Raft gauges follow every Raft metrics change).
const KEYS_SAMPLE: Duration = Duration::from_secs(1);

/// The `outcome` and `reason` labels of a sign request's answer, read from the typed answer
/// (never from a status): `signed` or `resigned` (no reason), `refused` with the refusal code
/// ([`crate::protection::Violation::code`], or `key_mismatch`), or `failed` with the name of
/// the gRPC code the client got ([`SignError::code`]). The only place these labels are made.
pub fn sign_labels(result: &Result<Signed, SignError>) -> (&'static str, &'static str) {
    match result {
        Ok(signed) if signed.resigned => ("resigned", ""),
        Ok(_) => ("signed", ""),
        Err(SignError::Refused(v)) => ("refused", v.code()),
        Err(SignError::KeyMismatch(_)) => ("refused", "key_mismatch"),
        Err(e) => ("failed", code_name(e.code())),
    }
}

/// The gRPC code's canonical name in `snake_case`, e.g. `invalid_argument`.
fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "ok",
        Code::Cancelled => "cancelled",
        Code::Unknown => "unknown",
        Code::InvalidArgument => "invalid_argument",
        Code::DeadlineExceeded => "deadline_exceeded",
        Code::NotFound => "not_found",
        Code::AlreadyExists => "already_exists",
        Code::PermissionDenied => "permission_denied",
        Code::ResourceExhausted => "resource_exhausted",
        Code::FailedPrecondition => "failed_precondition",
        Code::Aborted => "aborted",
        Code::OutOfRange => "out_of_range",
        Code::Unimplemented => "unimplemented",
        Code::Internal => "internal",
        Code::Unavailable => "unavailable",
        Code::DataLoss => "data_loss",
        Code::Unauthenticated => "unauthenticated",
    }
}

/// What the sampler copies from Raft's metrics into gauges (plain values, so the gauge logic is
/// testable without a Raft node).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RaftSample {
    /// This node.
    pub node_id: NodeId,
    /// Current term.
    pub term: u64,
    /// The leader this node knows of.
    pub leader: Option<NodeId>,
    /// Index of this node's last log entry.
    pub last_log_index: Option<u64>,
    /// Index of the last entry this node knows as committed.
    pub commit_index: Option<u64>,
    /// Index of the last entry applied to this node's state machine.
    pub applied_index: Option<u64>,
    /// On the leader: each peer's matched index (`None`: nothing matched yet).
    pub replication: Option<Vec<(NodeId, Option<u64>)>>,
}

impl RaftSample {
    /// Take the values out of the node's current Raft metrics.
    pub fn of(m: &openraft::RaftMetrics<crate::replica::TypeConfig>) -> RaftSample {
        RaftSample {
            node_id: m.id,
            term: m.current_term,
            leader: m.current_leader,
            last_log_index: m.last_log_index,
            commit_index: m.local_committed.map(|l| l.index),
            applied_index: m.last_applied.map(|l| l.index),
            replication: m.replication.as_ref().map(|r| {
                r.iter()
                    .map(|(peer, matched)| (*peer, matched.map(|l| l.index)))
                    .collect()
            }),
        }
    }
}

/// One node's metrics. Cheap to share (`Arc<Metrics>`); recording takes `&self`.
pub struct Metrics {
    registry: Registry,
    sign_requests: IntCounterVec,
    sign_latency: HistogramVec,
    batch_entries: Histogram,
    raft_term: IntGauge,
    raft_leader_id: IntGauge,
    raft_is_leader: IntGauge,
    raft_last_log_index: IntGauge,
    raft_commit_index: IntGauge,
    raft_applied_index: IntGauge,
    raft_replication_lag: IntGaugeVec,
    /// The peers `raft_replication_lag` has series for (so a departed peer's series is removed
    /// without ever dropping a present one, which a scrape could observe).
    lag_peers: Mutex<BTreeSet<NodeId>>,
    kms_call_seconds: HistogramVec,
    kms_errors: IntCounterVec,
    rate_limited: IntCounterVec,
    keys_loaded: IntGauge,
    keys_pending: IntGauge,
}

/// A gauge value from an index or id (saturating: gauges are `i64`).
fn gauge(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Metrics {
    /// Fresh series for node `node_id`, in a registry of their own. Fails only if a series is
    /// malformed (a programming error caught by the unit tests).
    pub fn new(node_id: NodeId) -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        fn reg<C: prometheus::core::Collector + Clone + 'static>(
            registry: &Registry,
            c: C,
        ) -> Result<C, prometheus::Error> {
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        }
        let int_gauge = |name: &str, help: &str| reg(&registry, IntGauge::new(name, help)?);
        let histogram = |name: &str, help: &str, buckets: &[f64], labels: &[&str]| {
            reg(
                &registry,
                HistogramVec::new(
                    HistogramOpts::new(name, help).buckets(buckets.to_vec()),
                    labels,
                )?,
            )
        };
        let counter = |name: &str, help: &str, labels: &[&str]| {
            reg(
                &registry,
                IntCounterVec::new(Opts::new(name, help), labels)?,
            )
        };
        let node = int_gauge("signer_node_id", "This node's id.")?;
        node.set(gauge(node_id));
        let metrics = Metrics {
            sign_requests: counter(
                "signer_sign_requests_total",
                "Sign requests answered to clients of this node, by profile, outcome (signed, \
                 resigned, refused, failed) and reason (refusal code or gRPC code name).",
                &["profile", "outcome", "reason"],
            )?,
            sign_latency: histogram(
                "signer_sign_latency_seconds",
                "Time from receiving a sign request to answering it, on the node the client called.",
                SIGN_LATENCY_BUCKETS,
                &["profile"],
            )?,
            batch_entries: reg(
                &registry,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "signer_batch_entries",
                        "Sign requests per proposed Raft log entry (on the leader).",
                    )
                    .buckets(BATCH_BUCKETS.to_vec()),
                )?,
            )?,
            raft_term: int_gauge("signer_raft_term", "Current Raft term.")?,
            raft_leader_id: int_gauge(
                "signer_raft_leader_id",
                "The Raft leader this node knows of (0: none).",
            )?,
            raft_is_leader: int_gauge("signer_raft_is_leader", "1 if this node is the leader.")?,
            raft_last_log_index: int_gauge(
                "signer_raft_last_log_index",
                "Index of this node's last Raft log entry.",
            )?,
            raft_commit_index: int_gauge(
                "signer_raft_commit_index",
                "Index of the last Raft log entry this node knows as committed.",
            )?,
            raft_applied_index: int_gauge(
                "signer_raft_applied_index",
                "Index of the last Raft log entry applied to this node's state machine.",
            )?,
            raft_replication_lag: reg(
                &registry,
                IntGaugeVec::new(
                    Opts::new(
                        "signer_raft_replication_lag_entries",
                        "On the leader: its last log index minus the index the peer has matched.",
                    ),
                    &["peer"],
                )?,
            )?,
            kms_call_seconds: histogram(
                "signer_kms_call_seconds",
                "Duration of key-encryption-key calls, by backend (local, aws-kms) and op \
                 (generate_data_key, unwrap_data_key), failed calls included.",
                KMS_BUCKETS,
                &["backend", "op"],
            )?,
            kms_errors: counter(
                "signer_kms_errors_total",
                "Failed key-encryption-key calls, by backend and op.",
                &["backend", "op"],
            )?,
            rate_limited: counter(
                "signer_rate_limited_total",
                "Requests refused by the rate limit, by authenticated client identity.",
                &["client"],
            )?,
            keys_loaded: int_gauge(
                "signer_keys_loaded",
                "Validator keys loaded on this node.",
            )?,
            keys_pending: int_gauge(
                "signer_keys_pending",
                "Active registry keys this node could not load yet.",
            )?,
            lag_peers: Mutex::new(BTreeSet::new()),
            registry,
        };
        // Series that exist from the start, so dashboards and rate() see zeros, not gaps.
        use crate::protection::Profile;
        for profile in [Profile::Eth2, Profile::Espresso] {
            let profile = profile.name();
            metrics.sign_latency.with_label_values(&[profile]);
            for outcome in ["signed", "resigned"] {
                metrics
                    .sign_requests
                    .with_label_values(&[profile, outcome, ""]);
            }
        }
        Ok(metrics)
    }

    /// Count a sign request answered to a client of this node ([`sign_labels`]), and its
    /// latency. `profile` is the request's profile name (`unknown` when the request named
    /// none).
    pub fn sign_finished(
        &self,
        profile: &str,
        result: &Result<Signed, SignError>,
        elapsed: Duration,
    ) {
        let (outcome, reason) = sign_labels(result);
        self.sign_requests
            .with_label_values(&[profile, outcome, reason])
            .inc();
        self.sign_latency
            .with_label_values(&[profile])
            .observe(elapsed.as_secs_f64());
    }

    /// Record one Raft entry proposed with `entries` sign requests.
    pub fn batch_proposed(&self, entries: usize) {
        self.batch_entries.observe(entries as f64);
    }

    /// Count a request from `client` refused by the rate limit. `client` must be an
    /// authenticated identity that the ACL knows (bounded cardinality), never a raw input.
    pub fn rate_limited(&self, client: &str) {
        self.rate_limited.with_label_values(&[client]).inc();
    }

    /// Record one KEK call of `backend` (`local`, `aws-kms`) doing `op`.
    pub fn kms_call(&self, backend: &str, op: &str, elapsed: Duration, ok: bool) {
        self.kms_call_seconds
            .with_label_values(&[backend, op])
            .observe(elapsed.as_secs_f64());
        if !ok {
            self.kms_errors.with_label_values(&[backend, op]).inc();
        }
    }

    /// Set the Raft gauges from `s`.
    pub fn observe_raft(&self, s: &RaftSample) {
        self.raft_term.set(gauge(s.term));
        self.raft_leader_id.set(gauge(s.leader.unwrap_or(0)));
        self.raft_is_leader
            .set(i64::from(s.leader == Some(s.node_id)));
        let index = |i: Option<u64>| gauge(i.unwrap_or(0));
        self.raft_last_log_index.set(index(s.last_log_index));
        self.raft_commit_index.set(index(s.commit_index));
        self.raft_applied_index.set(index(s.applied_index));
        // Only the leader replicates: a former leader's series, and a removed peer's, go.
        let last = s.last_log_index.unwrap_or(0);
        let lags: Vec<(NodeId, u64)> = s
            .replication
            .iter()
            .flatten()
            .filter(|(peer, _)| *peer != s.node_id)
            .map(|(peer, matched)| (*peer, matched.map_or(last, |m| last.saturating_sub(m))))
            .collect();
        let mut known = self.lag_peers.lock().unwrap_or_else(|e| e.into_inner());
        for (peer, lag) in &lags {
            self.raft_replication_lag
                .with_label_values(&[&peer.to_string()])
                .set(gauge(*lag));
        }
        let now: BTreeSet<NodeId> = lags.iter().map(|(peer, _)| *peer).collect();
        for gone in known.difference(&now) {
            let _ = self
                .raft_replication_lag
                .remove_label_values(&[&gone.to_string()]);
        }
        *known = now;
    }

    /// Set the keyring gauges.
    pub fn observe_keys(&self, loaded: usize, pending: usize) {
        self.keys_loaded.set(gauge(loaded as u64));
        self.keys_pending.set(gauge(pending as u64));
    }

    /// Every series in the Prometheus text format (version 0.0.4).
    pub fn encode(&self) -> Result<String, prometheus::Error> {
        prometheus::TextEncoder::new().encode_to_string(&self.registry.gather())
    }

    /// Copy Raft's metrics into the gauges on every change, and the keyring's counts every
    /// second, until `stop` resolves or Raft shuts down.
    pub fn spawn_sampler(
        self: &Arc<Self>,
        raft: Raft,
        keyring: Arc<Keyring>,
        stop: impl Future<Output = ()> + Send + 'static,
    ) {
        let metrics = self.clone();
        tokio::spawn(async move {
            tokio::pin!(stop);
            let mut watch = raft.metrics();
            let mut keys_due = Instant::now();
            loop {
                let sample = RaftSample::of(&watch.borrow_watched());
                metrics.observe_raft(&sample);
                if Instant::now() >= keys_due {
                    metrics.observe_keys(keyring.keys().len(), keyring.pending().len());
                    keys_due = Instant::now() + KEYS_SAMPLE;
                }
                tokio::select! {
                    changed = watch.changed() => if changed.is_err() { return },
                    _ = tokio::time::sleep_until(keys_due.into()) => {}
                    _ = &mut stop => return,
                }
            }
        });
    }
}

/// A KEK whose calls are timed and counted in `signer_kms_call_seconds` and
/// `signer_kms_errors_total`. The one place KMS calls are measured: every seal and unseal of
/// the node goes through the KEKs in [`crate::keyloader::Keks`], which are wrapped in this.
pub struct MeteredKek<K> {
    inner: K,
    backend: String,
    metrics: Arc<Metrics>,
}

impl<K: Kek> MeteredKek<K> {
    /// Wrap `inner`, recording into `metrics` under its backend's name.
    pub fn new(inner: K, metrics: Arc<Metrics>) -> Self {
        let backend = inner.descriptor().backend.to_string();
        MeteredKek {
            inner,
            backend,
            metrics,
        }
    }

    /// The wrapped KEK.
    pub fn inner(&self) -> &K {
        &self.inner
    }
}

impl<K: std::fmt::Debug> std::fmt::Debug for MeteredKek<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("MeteredKek").field(&self.inner).finish()
    }
}

impl<K: Kek> Kek for MeteredKek<K> {
    fn descriptor(&self) -> KekRef {
        self.inner.descriptor()
    }

    async fn generate_data_key(&self, ctx: &EncryptionContext) -> Result<DataKey, CustodyError> {
        let start = Instant::now();
        let result = self.inner.generate_data_key(ctx).await;
        self.metrics.kms_call(
            &self.backend,
            "generate_data_key",
            start.elapsed(),
            result.is_ok(),
        );
        result
    }

    async fn unwrap_data_key(
        &self,
        wrapped: &[u8],
        ctx: &EncryptionContext,
    ) -> Result<Zeroizing<[u8; DATA_KEY_LEN]>, CustodyError> {
        let start = Instant::now();
        let result = self.inner.unwrap_data_key(wrapped, ctx).await;
        self.metrics.kms_call(
            &self.backend,
            "unwrap_data_key",
            start.elapsed(),
            result.is_ok(),
        );
        result
    }
}

#[cfg(test)]
mod tests;
