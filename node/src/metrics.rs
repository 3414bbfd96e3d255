//! Prometheus metrics of one node: the series, their registry, the sampler that copies Raft's,
//! the keyring's, health's and the data directory's state into gauges, and the `GET /metrics`
//! endpoint ([`serve`], in [`http`]). Submodules: [`kek`] (the KEK wrapper that times KMS
//! calls), [`files`] (certificate expiry and data-directory space), [`audit`] (the periodic
//! local verification of the audit chain).
//!
//! Owns: the [`Metrics`] struct (one per node, with its own `prometheus::Registry`: `signer
//! bench` and some tests run several nodes in one process, so nothing is registered globally),
//! the names, help texts, labels and buckets of every series, the labels of a sign request's
//! typed answer ([`sign_labels`], [`client_refusal_reason`]), and [`MeteredKek`].
//! Must not: decide anything (services report outcomes here, nothing reads them back), read a
//! gRPC status to learn an outcome, block a request path (recording is a few atomic
//! operations), or write the text format by hand (the `prometheus` crate's `TextEncoder`
//! does).
//!
//! To ensure correctness:
//! - no label value is ever a secret, a message or a request id; labels are profile names,
//!   outcome words, reason codes ([`crate::protection::Violation::code`] or a gRPC code name),
//!   KEK backend names, operation names, peer node ids, client identities, certificate names
//!   and subjects, and — in `signer_key_pending` only — the ids of keys this node cannot load;
//! - every label has bounded cardinality: profiles, outcomes, reasons, backends and operations
//!   are fixed sets, peers are the Raft membership, certificates are the node's own two files,
//!   pending keys are at most [`MAX_PENDING_KEY_SERIES`] registry ids (their number is in
//!   `signer_keys_pending`), and clients are the identities in client certificates that passed
//!   authentication and the ACL (only authenticated, authorized identities may be passed to
//!   [`Metrics::rate_limited`]; a refusal of an identity the ACL does not know is counted
//!   under [`UNGRANTED_CLIENT`], never under its name);
//! - a sign request is counted once, on the node the client called; a request a follower
//!   forwarded is not counted again at the leader (the leader's `signer_batch_entries` does
//!   include it).
//!
//! Series (see the README's SRE section for an example scrape, and `deploy/prometheus/` for
//! the alert rules that read them):
//! - `signer_sign_requests_total{profile,outcome,reason}` counter; outcome `signed`,
//!   `resigned`, `refused` (reason: the refusal code) or `failed` (reason: the gRPC code name)
//! - `signer_client_refusals_total{client,profile,reason}` counter: requests of one client
//!   refused by slashing protection (reason: the refusal code or `key_mismatch`) or denied by
//!   the ACL (`access_denied`, `raw_roots_denied`)
//! - `signer_sign_latency_seconds{profile}` histogram, 0.5 ms to 5 s
//! - `signer_batch_entries` histogram: sign requests per proposed Raft entry (leader)
//! - `signer_raft_term`, `signer_raft_leader_id` (0: none known), `signer_raft_is_leader`,
//!   `signer_raft_last_log_index`, `signer_raft_commit_index`, `signer_raft_applied_index`,
//!   `signer_raft_voters` (members of the membership this node knows)
//! - `signer_raft_replication_lag_entries{peer}`: the leader's last log index minus what the
//!   peer has matched (only on the leader)
//! - `signer_health_serving`: 1 while gRPC health says SERVING (a leader, every key loaded)
//! - `signer_kms_call_seconds{backend,op}` histogram and `signer_kms_errors_total{backend,op}`;
//!   op `generate_data_key` (sealing) or `unwrap_data_key` (unsealing); the error counters
//!   exist at 0 for every configured KEK, so a first error is an increase
//! - `signer_rate_limited_total{client}` counter
//! - `signer_keys_loaded`, `signer_keys_pending` gauges; `signer_key_pending{key}` 1 per key
//!   this node cannot load; `signer_node_id` gauge
//! - `signer_certificate_not_after_seconds{certificate,subject}` ([`files`])
//! - `signer_data_dir_available_bytes`, `signer_data_dir_size_bytes`, `signer_snapshot_bytes`
//!   ([`files`])
//! - `signer_audit_chain_verified`, `signer_audit_chain_first_bad_seq`,
//!   `signer_audit_chain_head_seq`, `signer_audit_chain_checked_timestamp_seconds`
//!   ([`audit`]; they appear after the first verification)

pub mod audit;
pub mod files;
pub mod http;
pub mod kek;
pub mod labels;

pub use http::serve;
pub use kek::MeteredKek;
pub use labels::{client_refusal_reason, sign_labels};

use crate::keyring::Keyring;
use crate::replica::{NodeId, Raft};
use crate::service::health::Readiness;
use crate::service::signing::{SignError, Signed};
use openraft::async_runtime::WatchReceiver;
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
/// How often the keyring, health and data-directory gauges are sampled (Raft gauges follow
/// every Raft metrics change).
const KEYS_SAMPLE: Duration = Duration::from_secs(1);
/// At most this many keys get a `signer_key_pending{key}` series (the smallest ids); the
/// count of all pending keys is `signer_keys_pending`.
pub const MAX_PENDING_KEY_SERIES: usize = 100;
/// The `client` label of a refusal whose identity the ACL does not know (its name is in the
/// audit log's access-denial record, not in a label an unknown identity could multiply).
pub const UNGRANTED_CLIENT: &str = "(ungranted)";

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
    /// Voters in the membership this node knows.
    pub voters: usize,
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
            voters: m.membership_config.membership().voter_ids().count(),
        }
    }
}

/// One node's metrics. Cheap to share (`Arc<Metrics>`); recording takes `&self`.
pub struct Metrics {
    registry: Registry,
    sign_requests: IntCounterVec,
    client_refusals: IntCounterVec,
    sign_latency: HistogramVec,
    batch_entries: Histogram,
    raft_term: IntGauge,
    raft_leader_id: IntGauge,
    raft_is_leader: IntGauge,
    raft_last_log_index: IntGauge,
    raft_commit_index: IntGauge,
    raft_applied_index: IntGauge,
    raft_voters: IntGauge,
    raft_replication_lag: IntGaugeVec,
    /// The peers `raft_replication_lag` has series for (so a departed peer's series is removed
    /// without ever dropping a present one, which a scrape could observe).
    lag_peers: Mutex<BTreeSet<NodeId>>,
    health_serving: IntGauge,
    kms_call_seconds: HistogramVec,
    kms_errors: IntCounterVec,
    rate_limited: IntCounterVec,
    keys_loaded: IntGauge,
    keys_pending: IntGauge,
    key_pending: IntGaugeVec,
    /// The keys `key_pending` has series for (same reason as `lag_peers`).
    pending_keys: Mutex<BTreeSet<String>>,
    files: files::FileGauges,
    audit: audit::AuditGauges,
}

/// A gauge value from an index or id (saturating: gauges are `i64`).
fn gauge(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Register `c` in `registry` and return it.
fn reg<C: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    c: C,
) -> Result<C, prometheus::Error> {
    registry.register(Box::new(c.clone()))?;
    Ok(c)
}

/// Set one series of `vec` per key of `now` (label `label_of(key)`, value `value_of(key)`) and
/// remove the series of keys in `known` that are no longer in `now`; `known` becomes `now`'s
/// keys. Present series are overwritten, never removed and re-added, so a scrape never misses
/// one.
fn set_series<K: Ord + Clone>(
    vec: &IntGaugeVec,
    known: &Mutex<BTreeSet<K>>,
    now: &BTreeMap<K, i64>,
    label_of: impl Fn(&K) -> String,
) {
    let mut known = known.lock().unwrap_or_else(|e| e.into_inner());
    for (key, value) in now {
        vec.with_label_values(&[&label_of(key)]).set(*value);
    }
    let current: BTreeSet<K> = now.keys().cloned().collect();
    for gone in known.difference(&current) {
        let _ = vec.remove_label_values(&[&label_of(gone)]);
    }
    *known = current;
}

impl Metrics {
    /// Fresh series for node `node_id`, in a registry of their own. Fails only if a series is
    /// malformed (a programming error caught by the unit tests).
    pub fn new(node_id: NodeId) -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        let int_gauge = |name: &str, help: &str| reg(&registry, IntGauge::new(name, help)?);
        let gauge_vec = |name: &str, help: &str, labels: &[&str]| {
            reg(&registry, IntGaugeVec::new(Opts::new(name, help), labels)?)
        };
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
            client_refusals: counter(
                "signer_client_refusals_total",
                "Sign requests of a client refused by slashing protection (reason: the refusal \
                 code or key_mismatch) or denied by the ACL (access_denied, raw_roots_denied), \
                 by client identity ((ungranted) for identities without a grant) and profile.",
                &["client", "profile", "reason"],
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
            raft_voters: int_gauge(
                "signer_raft_voters",
                "Voting members in the Raft membership this node knows.",
            )?,
            raft_replication_lag: gauge_vec(
                "signer_raft_replication_lag_entries",
                "On the leader: its last log index minus the index the peer has matched.",
                &["peer"],
            )?,
            health_serving: int_gauge(
                "signer_health_serving",
                "1 while this node's gRPC health says SERVING: it knows a leader (as leader, \
                 one that heard from a quorum) and has every active registry key loaded.",
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
            key_pending: gauge_vec(
                "signer_key_pending",
                "1 for each active registry key this node could not load yet (KMS unreachable, \
                 KEK not configured here, ...; the reason is in signerctl status), by key id; \
                 at most 100 series.",
                &["key"],
            )?,
            pending_keys: Mutex::new(BTreeSet::new()),
            lag_peers: Mutex::new(BTreeSet::new()),
            files: files::FileGauges::new(&registry)?,
            audit: audit::AuditGauges::new()?,
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

    /// Count a sign request of `client` answered to it by this node ([`sign_labels`]; a
    /// refusal also per client, [`client_refusal_reason`]), and its latency. `profile` is the
    /// request's profile name (`unknown` when the request named none); `client` is the
    /// authenticated identity.
    pub fn sign_finished(
        &self,
        client: &str,
        profile: &str,
        result: &Result<Signed, SignError>,
        elapsed: Duration,
    ) {
        let (outcome, reason) = sign_labels(result);
        self.sign_requests
            .with_label_values(&[profile, outcome, reason])
            .inc();
        if let Some(reason) = client_refusal_reason(result) {
            let client = if labels::ungranted(result) {
                UNGRANTED_CLIENT
            } else {
                client
            };
            self.client_refusals
                .with_label_values(&[client, profile, reason])
                .inc();
        }
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
        self.raft_voters.set(gauge(s.voters as u64));
        // Only the leader replicates: a former leader's series, and a removed peer's, go.
        let last = s.last_log_index.unwrap_or(0);
        let lags: BTreeMap<NodeId, i64> = s
            .replication
            .iter()
            .flatten()
            .filter(|(peer, _)| *peer != s.node_id)
            .map(|(peer, matched)| {
                let lag = matched.map_or(last, |m| last.saturating_sub(m));
                (*peer, gauge(lag))
            })
            .collect();
        set_series(
            &self.raft_replication_lag,
            &self.lag_peers,
            &lags,
            NodeId::to_string,
        );
    }

    /// Set the keyring gauges: `loaded` keys, and the keys this node cannot load yet (by id,
    /// with the reason, as [`Keyring::pending`] gives them).
    pub fn observe_keys(&self, loaded: usize, pending: &BTreeMap<String, String>) {
        self.keys_loaded.set(gauge(loaded as u64));
        self.keys_pending.set(gauge(pending.len() as u64));
        let series: BTreeMap<String, i64> = pending
            .keys()
            .take(MAX_PENDING_KEY_SERIES)
            .map(|key| (key.clone(), 1))
            .collect();
        set_series(&self.key_pending, &self.pending_keys, &series, Clone::clone);
    }

    /// Set `signer_health_serving` from this node's readiness (what gRPC health reports).
    pub fn observe_health(&self, readiness: &Readiness) {
        self.health_serving.set(i64::from(readiness.serving()));
    }

    /// Every series in the Prometheus text format (version 0.0.4).
    pub fn encode(&self) -> Result<String, prometheus::Error> {
        prometheus::TextEncoder::new().encode_to_string(&self.registry.gather())
    }

    /// Copy Raft's metrics into the gauges on every change, and every second the keyring's
    /// counts, this node's readiness and `data_dir`'s free space, until `stop` resolves. Once
    /// Raft's core has stopped (its metrics channel closed: shut down or panicked), the node
    /// reports no leader, no replication and not serving.
    pub fn spawn_sampler(
        self: &Arc<Self>,
        raft: Raft,
        keyring: Arc<Keyring>,
        data_dir: PathBuf,
        stop: impl Future<Output = ()> + Send + 'static,
    ) {
        let metrics = self.clone();
        tokio::spawn(async move {
            tokio::pin!(stop);
            let mut watch = raft.metrics();
            let mut keys_due = Instant::now();
            let mut disk_warned = false;
            // Raft's metrics channel closes when its core stops (shut down, or panicked): from
            // then on this node neither leads nor serves, whatever the last metrics said.
            let mut raft_stopped = false;
            loop {
                let mut sample = RaftSample::of(&watch.borrow_watched());
                if raft_stopped {
                    sample.leader = None;
                    sample.replication = None;
                }
                metrics.observe_raft(&sample);
                if Instant::now() >= keys_due {
                    let pending = keyring.pending();
                    metrics.observe_keys(keyring.keys().len(), &pending);
                    let readiness = Readiness {
                        leader: !raft_stopped && Readiness::of(&raft, &keyring).leader,
                        keys_pending: pending.len(),
                    };
                    metrics.observe_health(&readiness);
                    match metrics.observe_data_dir(&data_dir) {
                        Ok(()) => disk_warned = false,
                        Err(e) if !disk_warned => {
                            tracing::warn!(error = %e, dir = %data_dir.display(), "metrics: cannot read the data directory's free space");
                            disk_warned = true;
                        }
                        Err(_) => {}
                    }
                    keys_due = Instant::now() + KEYS_SAMPLE;
                }
                tokio::select! {
                    changed = watch.changed(), if !raft_stopped => {
                        if changed.is_err() {
                            tracing::warn!("metrics: Raft stopped; this node reports no leader and not serving");
                            raft_stopped = true;
                            keys_due = Instant::now();
                        }
                    }
                    _ = tokio::time::sleep_until(keys_due.into()) => {}
                    _ = &mut stop => return,
                }
            }
        });
    }
}

#[cfg(test)]
mod tests;
