//! Unit tests of the series: what a fresh node exposes, and what recording changes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::custody::{seal, unseal, EncryptionContext, Kek, LocalKek};
use std::collections::BTreeMap;

fn lines(metrics: &Metrics) -> Vec<String> {
    metrics
        .encode()
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn has(metrics: &Metrics, line: &str) -> bool {
    lines(metrics).iter().any(|l| l == line)
}

#[test]
fn a_fresh_node_exposes_every_unlabelled_series_and_zeroed_sign_counters() {
    let metrics = Metrics::new(3).unwrap();
    let text = metrics.encode().unwrap();
    for expected in [
        "# TYPE signer_node_id gauge",
        "signer_node_id 3",
        "# TYPE signer_raft_term gauge",
        "signer_raft_term 0",
        "signer_raft_leader_id 0",
        "signer_raft_is_leader 0",
        "signer_raft_last_log_index 0",
        "signer_raft_commit_index 0",
        "signer_raft_applied_index 0",
        "signer_keys_loaded 0",
        "signer_keys_pending 0",
        "signer_raft_voters 0",
        "signer_health_serving 0",
        "signer_data_dir_available_bytes 0",
        "signer_data_dir_size_bytes 0",
        "signer_snapshot_bytes 0",
        "# TYPE signer_batch_entries histogram",
        "signer_batch_entries_bucket{le=\"1\"} 0",
        "signer_batch_entries_bucket{le=\"256\"} 0",
        "signer_batch_entries_bucket{le=\"+Inf\"} 0",
        "signer_batch_entries_count 0",
        "# TYPE signer_sign_requests_total counter",
        "signer_sign_requests_total{outcome=\"signed\",profile=\"eth2\",reason=\"\"} 0",
        "signer_sign_requests_total{outcome=\"resigned\",profile=\"espresso\",reason=\"\"} 0",
        "# TYPE signer_sign_latency_seconds histogram",
        "signer_sign_latency_seconds_bucket{profile=\"espresso\",le=\"0.0005\"} 0",
        "signer_sign_latency_seconds_bucket{profile=\"eth2\",le=\"1\"} 0",
        "signer_sign_latency_seconds_count{profile=\"eth2\"} 0",
    ] {
        assert!(
            text.lines().any(|l| l == expected),
            "missing {expected:?} in\n{text}"
        );
    }
    // Every series has help text, and labelled families without values print nothing yet.
    assert!(text.contains("# HELP signer_raft_term "));
    assert!(!text.contains("signer_kms_call_seconds"));
    assert!(!text.contains("signer_rate_limited_total"));
    assert!(!text.contains("signer_raft_replication_lag_entries"));
    assert!(!text.contains("signer_client_refusals_total{"));
    assert!(!text.contains("signer_key_pending{"));
    assert!(!text.contains("signer_certificate_not_after_seconds{"));
    // The audit gauges appear with the first check of the chain, not before.
    assert!(!text.contains("signer_audit_chain"));
}

fn signed(resigned: bool) -> Signed {
    Signed {
        signature: vec![1; 64],
        signature_text: "sig".into(),
        resigned,
        signed_message: vec![2; 32],
    }
}

fn equivocation() -> SignError {
    SignError::Refused(crate::protection::Violation::Equivocation {
        kind: crate::protection::espresso::Kind::QuorumVote,
        view: 5,
        signed: crate::bytes::FixedBytes([1; 32]),
        requested: crate::bytes::FixedBytes([2; 32]),
    })
}

fn missing_key_id() -> SignError {
    SignError::Invalid {
        field: "key_id".into(),
        reason: "missing".into(),
    }
}

#[test]
fn every_sign_answer_has_the_labels_dashboards_read() {
    use crate::admin::AccessDenied;
    use crate::service::access::Denied;

    type Answer = Result<Signed, SignError>;
    let cases: Vec<(Answer, (&str, &str))> = vec![
        (Ok(signed(false)), ("signed", "")),
        (Ok(signed(true)), ("resigned", "")),
        (Err(equivocation()), ("refused", "equivocation")),
        (
            Err(SignError::Refused(
                crate::protection::Violation::DoubleVote {
                    target: 3,
                    signed_source: 1,
                    signed_root: None,
                    requested_source: 1,
                    requested_root: crate::bytes::FixedBytes([2; 32]),
                },
            )),
            ("refused", "double_vote"),
        ),
        (
            Err(SignError::KeyMismatch("k".into())),
            ("refused", "key_mismatch"),
        ),
        (Err(missing_key_id()), ("failed", "invalid_argument")),
        (
            Err(SignError::Unauthenticated),
            ("failed", "unauthenticated"),
        ),
        (
            Err(SignError::Denied(Denied::Access(
                AccessDenied::UnknownClient("x".into()),
            ))),
            ("failed", "permission_denied"),
        ),
        (
            Err(SignError::Denied(Denied::RateLimited {
                client: "x".into(),
                per_second: 1,
                burst: 1,
            })),
            ("failed", "resource_exhausted"),
        ),
        (
            Err(SignError::Denied(Denied::NotBootstrapped)),
            ("failed", "unavailable"),
        ),
        (
            Err(SignError::RawRootsRefused),
            ("failed", "permission_denied"),
        ),
        (
            Err(SignError::KeyNotFound("k".into())),
            ("failed", "not_found"),
        ),
        (
            Err(SignError::KeyInactive("k".into())),
            ("failed", "not_found"),
        ),
        (Err(SignError::Paused), ("refused", "paused")),
        (Err(SignError::NoLeader), ("failed", "unavailable")),
        (Err(SignError::OutcomeUnknown), ("failed", "unavailable")),
        (
            Err(SignError::Internal("bug".into())),
            ("failed", "internal"),
        ),
    ];
    for (result, (outcome, reason)) in cases {
        let what = format!("{result:?}");
        assert_eq!(sign_labels(&result), (outcome, reason), "{what}");
    }
}

#[test]
fn sign_results_are_counted_by_profile_outcome_and_reason() {
    let metrics = Metrics::new(1).unwrap();
    let ms = Duration::from_millis(3);
    metrics.sign_finished("seq-1", "espresso", &Ok(signed(false)), ms);
    metrics.sign_finished("seq-1", "espresso", &Ok(signed(false)), ms);
    metrics.sign_finished("seq-1", "espresso", &Err(equivocation()), ms);
    metrics.sign_finished("seq-1", "unknown", &Err(missing_key_id()), ms);
    for expected in [
        "signer_sign_requests_total{outcome=\"signed\",profile=\"espresso\",reason=\"\"} 2",
        "signer_sign_requests_total{outcome=\"refused\",profile=\"espresso\",reason=\"equivocation\"} 1",
        "signer_sign_requests_total{outcome=\"failed\",profile=\"unknown\",reason=\"invalid_argument\"} 1",
        "signer_sign_latency_seconds_bucket{profile=\"espresso\",le=\"0.0025\"} 0",
        "signer_sign_latency_seconds_bucket{profile=\"espresso\",le=\"0.005\"} 3",
        "signer_sign_latency_seconds_count{profile=\"espresso\"} 3",
    ] {
        assert!(has(&metrics, expected), "missing {expected:?}");
    }
    metrics.batch_proposed(3);
    assert!(has(&metrics, "signer_batch_entries_bucket{le=\"2\"} 0"));
    assert!(has(&metrics, "signer_batch_entries_bucket{le=\"4\"} 1"));
    assert!(has(&metrics, "signer_batch_entries_sum 3"));
    metrics.rate_limited("seq-1");
    metrics.rate_limited("seq-1");
    assert!(has(
        &metrics,
        "signer_rate_limited_total{client=\"seq-1\"} 2"
    ));
}

#[test]
fn raft_gauges_follow_the_sample_and_only_a_leader_reports_lag() {
    let metrics = Metrics::new(1).unwrap();
    metrics.observe_raft(&RaftSample {
        node_id: 1,
        term: 4,
        leader: Some(1),
        last_log_index: Some(20),
        commit_index: Some(19),
        applied_index: Some(18),
        replication: Some(vec![(1, Some(20)), (2, Some(17)), (3, None)]),
        voters: 3,
    });
    for expected in [
        "signer_raft_term 4",
        "signer_raft_leader_id 1",
        "signer_raft_is_leader 1",
        "signer_raft_last_log_index 20",
        "signer_raft_commit_index 19",
        "signer_raft_applied_index 18",
        "signer_raft_voters 3",
        "signer_raft_replication_lag_entries{peer=\"2\"} 3",
        "signer_raft_replication_lag_entries{peer=\"3\"} 20",
    ] {
        assert!(has(&metrics, expected), "missing {expected:?}");
    }
    assert!(!metrics.encode().unwrap().contains("peer=\"1\""));
    // Peer 3 left the membership: its series goes, peer 2's stays.
    metrics.observe_raft(&RaftSample {
        node_id: 1,
        term: 4,
        leader: Some(1),
        last_log_index: Some(21),
        commit_index: Some(21),
        applied_index: Some(21),
        replication: Some(vec![(1, Some(21)), (2, Some(21))]),
        voters: 2,
    });
    assert!(has(
        &metrics,
        "signer_raft_replication_lag_entries{peer=\"2\"} 0"
    ));
    assert!(!metrics.encode().unwrap().contains("peer=\"3\""));
    // Leadership moved: no lag series linger, and no leader reads as 0.
    metrics.observe_raft(&RaftSample {
        node_id: 1,
        term: 5,
        leader: None,
        ..RaftSample::default()
    });
    assert!(has(&metrics, "signer_raft_leader_id 0"));
    assert!(has(&metrics, "signer_raft_is_leader 0"));
    assert!(!metrics
        .encode()
        .unwrap()
        .contains("signer_raft_replication_lag_entries{"));
}

#[tokio::test]
async fn a_metered_kek_times_every_call_and_counts_failures() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Arc::new(Metrics::new(1).unwrap());
    let kek = MeteredKek::new(
        LocalKek::create(&dir.path().join("kek.key")).unwrap(),
        metrics.clone(),
    );
    assert_eq!(kek.descriptor(), kek.inner().descriptor());
    let ctx = EncryptionContext::validator_key("c", "k").unwrap();
    let sealed = seal(&kek, &ctx, b"secret").await.unwrap();
    let opened = unseal(&kek, &ctx, &sealed).await.unwrap();
    assert_eq!(opened.expose_secret(), b"secret");
    let other = EncryptionContext::validator_key("c", "other").unwrap();
    assert!(kek
        .unwrap_data_key(b"not a wrapped key", &other)
        .await
        .is_err());
    for expected in [
        "signer_kms_call_seconds_count{backend=\"local\",op=\"generate_data_key\"} 1",
        "signer_kms_call_seconds_count{backend=\"local\",op=\"unwrap_data_key\"} 2",
        "signer_kms_errors_total{backend=\"local\",op=\"unwrap_data_key\"} 1",
    ] {
        assert!(has(&metrics, expected), "missing {expected:?}");
    }
    // The error counters exist from the KEK's start, so a first error is an increase.
    assert!(has(
        &metrics,
        "signer_kms_errors_total{backend=\"local\",op=\"generate_data_key\"} 0"
    ));
}

#[test]
fn refusals_are_counted_per_client_and_ungranted_identities_under_one_label() {
    use crate::admin::AccessDenied;
    use crate::service::access::Denied;

    let metrics = Metrics::new(1).unwrap();
    let ms = Duration::from_millis(1);
    let denied = |e| Err(SignError::Denied(Denied::Access(e)));
    metrics.sign_finished("seq-2", "espresso", &Err(equivocation()), ms);
    metrics.sign_finished("seq-2", "espresso", &Err(equivocation()), ms);
    metrics.sign_finished(
        "seq-1",
        "eth2",
        &Err(SignError::KeyMismatch("k".into())),
        ms,
    );
    metrics.sign_finished(
        "seq-1",
        "eth2",
        &denied(AccessDenied::Profile {
            client: "seq-1".into(),
            profile: crate::protection::Profile::Eth2,
        }),
        ms,
    );
    metrics.sign_finished("seq-1", "eth2", &Err(SignError::RawRootsRefused), ms);
    for name in ["stranger-1", "stranger-2", "stranger-3"] {
        metrics.sign_finished(
            name,
            "espresso",
            &denied(AccessDenied::UnknownClient(name.into())),
            ms,
        );
    }
    // Answers that say nothing about the client's behaviour are not client refusals.
    metrics.sign_finished("seq-3", "espresso", &Ok(signed(false)), ms);
    metrics.sign_finished("seq-3", "espresso", &Ok(signed(true)), ms);
    metrics.sign_finished("seq-3", "espresso", &Err(SignError::Paused), ms);
    metrics.sign_finished("seq-3", "espresso", &Err(SignError::NoLeader), ms);
    metrics.sign_finished("seq-3", "espresso", &Err(missing_key_id()), ms);
    metrics.sign_finished(
        "seq-3",
        "espresso",
        &Err(SignError::Denied(Denied::RateLimited {
            client: "seq-3".into(),
            per_second: 1,
            burst: 1,
        })),
        ms,
    );
    let refusals: Vec<String> = lines(&metrics)
        .into_iter()
        .filter(|l| l.starts_with("signer_client_refusals_total{"))
        .collect();
    assert_eq!(
        refusals,
        [
            "signer_client_refusals_total{client=\"(ungranted)\",profile=\"espresso\",reason=\"access_denied\"} 3",
            "signer_client_refusals_total{client=\"seq-1\",profile=\"eth2\",reason=\"access_denied\"} 1",
            "signer_client_refusals_total{client=\"seq-1\",profile=\"eth2\",reason=\"key_mismatch\"} 1",
            "signer_client_refusals_total{client=\"seq-1\",profile=\"eth2\",reason=\"raw_roots_denied\"} 1",
            "signer_client_refusals_total{client=\"seq-2\",profile=\"espresso\",reason=\"equivocation\"} 2",
        ]
    );
    assert!(!metrics.encode().unwrap().contains("stranger"));
}

#[test]
fn pending_keys_get_one_series_each_up_to_the_cap_and_lose_it_once_loaded() {
    let metrics = Metrics::new(1).unwrap();
    let pending = |ids: &[&str]| -> BTreeMap<String, String> {
        ids.iter()
            .map(|id| ((*id).to_owned(), "KMS unreachable".to_owned()))
            .collect()
    };
    metrics.observe_keys(2, &pending(&["kms-2", "kms-1"]));
    for expected in [
        "signer_keys_loaded 2",
        "signer_keys_pending 2",
        "signer_key_pending{key=\"kms-1\"} 1",
        "signer_key_pending{key=\"kms-2\"} 1",
    ] {
        assert!(has(&metrics, expected), "missing {expected:?}");
    }
    metrics.observe_keys(3, &pending(&["kms-2"]));
    assert!(has(&metrics, "signer_keys_pending 1"));
    assert!(has(&metrics, "signer_key_pending{key=\"kms-2\"} 1"));
    assert!(!metrics.encode().unwrap().contains("kms-1"));
    metrics.observe_keys(4, &BTreeMap::new());
    assert!(has(&metrics, "signer_keys_pending 0"));
    assert!(!metrics.encode().unwrap().contains("signer_key_pending{"));
    // 150 pending keys: all counted, the first 100 ids named.
    let many: Vec<String> = (0..150).map(|i| format!("k-{i:03}")).collect();
    let refs: Vec<&str> = many.iter().map(String::as_str).collect();
    metrics.observe_keys(0, &pending(&refs));
    assert!(has(&metrics, "signer_keys_pending 150"));
    let named = lines(&metrics)
        .into_iter()
        .filter(|l| l.starts_with("signer_key_pending{"))
        .count();
    assert_eq!(named, MAX_PENDING_KEY_SERIES);
    assert!(has(&metrics, "signer_key_pending{key=\"k-099\"} 1"));
    assert!(!metrics.encode().unwrap().contains("k-100"));
}

#[test]
fn health_serving_follows_readiness() {
    let metrics = Metrics::new(1).unwrap();
    let ready = |leader, keys_pending| Readiness {
        leader,
        keys_pending,
    };
    metrics.observe_health(&ready(true, 0));
    assert!(has(&metrics, "signer_health_serving 1"));
    metrics.observe_health(&ready(true, 1));
    assert!(has(&metrics, "signer_health_serving 0"));
    metrics.observe_health(&ready(true, 0));
    metrics.observe_health(&ready(false, 0));
    assert!(has(&metrics, "signer_health_serving 0"));
}
