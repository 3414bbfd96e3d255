//! The Prometheus endpoint of real `signer node` processes: each node's `GET /metrics` is
//! scraped over plain HTTP, parsed as the text exposition format, and checked against what the
//! test did (signed, refused, forwarded) and against the other nodes (one term, one leader).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod scrape;
mod support;

use scrape::Scrape;
use std::time::{Duration, Instant};
use support::*;

/// Scrape node `id` until `done` holds for its metrics (gauges are sampled in the background),
/// or fail with the last scrape.
async fn scrape_until(
    cluster: &Cluster,
    id: u64,
    what: &str,
    done: impl Fn(&Scrape) -> bool,
) -> Scrape {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let response = cluster.http_get(id, "/metrics").await;
        assert_eq!(response.status, 200, "{response:?}");
        let scrape = Scrape::parse(&response.body);
        if done(&scrape) {
            return scrape;
        }
        assert!(
            Instant::now() < deadline,
            "node {id}: timed out waiting for {what}; last scrape:\n{}",
            response.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_node_exposes_sign_results_raft_state_and_keys() {
    let cluster = Cluster::start(3).await;
    let leader = cluster.wait_leader(Duration::from_secs(30)).await;
    let follower = (1..=3).find(|id| *id != leader).unwrap();

    // On the leader: 5 espresso votes, 1 eth2 block, then a conflicting vote (refused).
    let mut c = cluster.client(leader, "seq-1").await;
    for view in 1..=5 {
        c.sign(quorum_vote(view, 1, "")).await.unwrap();
    }
    c.sign(eth2_block(7, 1)).await.unwrap();
    let err = c.sign(quorum_vote(5, 2, "")).await.unwrap_err();
    assert_eq!(refusal_code(&err).as_deref(), Some("equivocation"));
    // Through a follower (forwarded to the leader): counted once, by the follower.
    cluster
        .client(follower, "seq-2")
        .await
        .sign(quorum_vote(6, 1, ""))
        .await
        .unwrap();
    // A request naming no key fails validation.
    let mut bad = quorum_vote(8, 1, "");
    bad.key_id.clear();
    assert_eq!(
        c.sign(bad).await.unwrap_err().code(),
        tonic::Code::InvalidArgument
    );

    // The leader.
    let response = cluster.http_get(leader, "/metrics").await;
    assert_eq!(response.status, 200);
    assert!(
        response
            .head
            .to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{}",
        response.head
    );
    let m = scrape_until(&cluster, leader, "keys and raft gauges", |m| {
        m.value("signer_keys_loaded", &[]) == 2.0 && m.value("signer_raft_is_leader", &[]) == 1.0
    })
    .await;
    // Every family is typed and documented.
    for family in [
        "signer_sign_requests_total",
        "signer_sign_latency_seconds",
        "signer_batch_entries",
        "signer_raft_term",
        "signer_raft_leader_id",
        "signer_raft_commit_index",
        "signer_raft_applied_index",
        "signer_raft_replication_lag_entries",
        "signer_keys_loaded",
        "signer_keys_pending",
    ] {
        assert!(m.types.contains_key(family), "no # TYPE for {family}");
        assert!(m.helps.contains_key(family), "no # HELP for {family}");
    }
    assert_eq!(m.types["signer_sign_requests_total"], "counter");
    assert_eq!(m.types["signer_sign_latency_seconds"], "histogram");
    assert_eq!(m.types["signer_raft_term"], "gauge");
    let requests = |profile, outcome, reason| {
        m.value(
            "signer_sign_requests_total",
            &[
                ("profile", profile),
                ("outcome", outcome),
                ("reason", reason),
            ],
        )
    };
    assert_eq!(requests("espresso", "signed", ""), 5.0);
    assert_eq!(requests("eth2", "signed", ""), 1.0);
    assert_eq!(requests("espresso", "refused", "equivocation"), 1.0);
    assert_eq!(requests("espresso", "failed", "invalid_argument"), 1.0);
    assert_eq!(requests("espresso", "resigned", ""), 0.0);
    // Latency: every answered espresso request (5 signed, 1 refused, 1 invalid) is observed,
    // buckets are cumulative and end in +Inf.
    let espresso = [("profile", "espresso")];
    assert_eq!(m.value("signer_sign_latency_seconds_count", &espresso), 7.0);
    assert!(m.value("signer_sign_latency_seconds_sum", &espresso) > 0.0);
    let buckets: Vec<(f64, f64)> = m
        .matching("signer_sign_latency_seconds_bucket", &espresso)
        .map(|s| (s.labels["le"].parse::<f64>().unwrap(), s.value))
        .collect();
    assert!(buckets.len() >= 10, "{buckets:?}");
    assert!(buckets.iter().any(|(le, _)| *le == 0.0005));
    assert_eq!(buckets.last().unwrap(), &(f64::INFINITY, 7.0));
    assert!(buckets
        .windows(2)
        .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1));
    // The leader proposed every accepted request, the forwarded one included (the refused one
    // was refused before proposing).
    assert!(m.value("signer_batch_entries_sum", &[]) >= 7.0);
    assert!(m.value("signer_batch_entries_count", &[]) >= 1.0);
    assert!(m
        .matching("signer_batch_entries_bucket", &[("le", "256")])
        .next()
        .is_some());
    // Replication lag: one series per follower, none for the leader itself.
    let lag_peers: Vec<String> = m
        .matching("signer_raft_replication_lag_entries", &[])
        .map(|s| s.labels["peer"].clone())
        .collect();
    let mut followers: Vec<String> = (1..=3)
        .filter(|id| *id != leader)
        .map(|id| id.to_string())
        .collect();
    followers.sort();
    assert_eq!(lag_peers, followers);
    assert_eq!(m.value("signer_keys_pending", &[]), 0.0);

    // The follower counted the request it was sent, and only that.
    let f = scrape_until(&cluster, follower, "its answered request", |m| {
        m.value("signer_keys_loaded", &[]) == 2.0
    })
    .await;
    assert_eq!(
        f.value(
            "signer_sign_requests_total",
            &[("profile", "espresso"), ("outcome", "signed")]
        ),
        1.0
    );
    assert_eq!(
        f.matching("signer_sign_requests_total", &[("outcome", "refused")])
            .count(),
        0
    );
    assert_eq!(f.value("signer_raft_is_leader", &[]), 0.0);
    assert_eq!(
        f.matching("signer_raft_replication_lag_entries", &[])
            .count(),
        0
    );

    // Every node: the same term and leader, itself identified, the sign entries (after the
    // initial membership entry) committed and applied.
    let entries = m.value("signer_batch_entries_count", &[]);
    let leader_scrape = scrape_until(&cluster, leader, "applied sign entries", |m| {
        m.value("signer_raft_applied_index", &[]) > entries
    })
    .await;
    let term = leader_scrape.value("signer_raft_term", &[]);
    let commit = leader_scrape.value("signer_raft_commit_index", &[]);
    assert!(term >= 1.0);
    assert!(
        commit > entries,
        "commit index {commit}, {entries} sign entries"
    );
    for id in 1..=3u64 {
        let m = scrape_until(&cluster, id, "the leader's commit index applied", |m| {
            m.value("signer_raft_applied_index", &[]) >= commit
        })
        .await;
        assert_eq!(m.value("signer_node_id", &[]), id as f64);
        assert_eq!(m.value("signer_raft_term", &[]), term, "node {id}");
        assert_eq!(
            m.value("signer_raft_leader_id", &[]),
            leader as f64,
            "node {id}"
        );
        assert!(m.value("signer_raft_commit_index", &[]) >= commit);
        assert!(m.value("signer_raft_last_log_index", &[]) >= commit);
        assert_eq!(
            m.value("signer_raft_is_leader", &[]),
            f64::from(u8::from(id == leader))
        );
        // Without a KEK no KMS call was made, so no KMS series exist; nothing was rate limited.
        assert_eq!(m.matching("signer_kms_call_seconds_count", &[]).count(), 0);
        assert_eq!(m.matching("signer_rate_limited_total", &[]).count(), 0);
    }

    // Only /metrics is served.
    for path in ["/", "/metrics/", "/health", "/metricsx"] {
        let response = cluster.http_get(leader, path).await;
        assert_eq!(response.status, 404, "{path}: {response:?}");
    }
}
