//! The audit gauges: absent until the first check, then exactly what the check found; and the
//! verifier task on a real state database.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;

fn audit_lines(metrics: &Metrics) -> Vec<String> {
    metrics
        .encode()
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("signer_audit_chain_"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_gauges_appear_with_the_first_check_and_say_what_it_found() {
    let metrics = Metrics::new(1).unwrap();
    assert!(audit_lines(&metrics).is_empty());
    let at = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    metrics.observe_audit(&AuditCheck::Verified { head_seq: 42 }, at);
    assert_eq!(
        audit_lines(&metrics),
        [
            "signer_audit_chain_checked_timestamp_seconds 1700000000",
            "signer_audit_chain_first_bad_seq 0",
            "signer_audit_chain_head_seq 42",
            "signer_audit_chain_verified 1",
        ]
    );
    metrics.observe_audit(
        &AuditCheck::Broken {
            head_seq: 50,
            first_bad_seq: 17,
        },
        at + Duration::from_secs(300),
    );
    assert_eq!(
        audit_lines(&metrics),
        [
            "signer_audit_chain_checked_timestamp_seconds 1700000300",
            "signer_audit_chain_first_bad_seq 17",
            "signer_audit_chain_head_seq 50",
            "signer_audit_chain_verified 0",
        ]
    );
    metrics.observe_audit(&AuditCheck::Unreadable, at + Duration::from_secs(600));
    assert_eq!(
        audit_lines(&metrics),
        [
            "signer_audit_chain_checked_timestamp_seconds 1700000600",
            "signer_audit_chain_first_bad_seq 0",
            "signer_audit_chain_head_seq 0",
            "signer_audit_chain_verified 0",
        ]
    );
}

#[test]
fn a_check_reads_what_the_state_machine_verifies() {
    let err = AuditCheck::of(Err(std::io::Error::other("disk gone")));
    assert_eq!(err, AuditCheck::Unreadable);
}

#[tokio::test]
async fn the_verifier_checks_a_state_database_at_start_and_stops_when_told() {
    let dir = tempfile::tempdir().unwrap();
    let state = StateMachine::open(&dir.path().join("state.redb"), false).unwrap();
    let (chain, result) = state.audit_verify().unwrap();
    assert!(result.is_ok());
    let metrics = Arc::new(Metrics::new(1).unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let task = metrics.spawn_audit_verifier(state, async move {
        let _ = stopped.await;
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while audit_lines(&metrics).is_empty() {
        assert!(std::time::Instant::now() < deadline, "no check in 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let lines = audit_lines(&metrics);
    let checked: u64 = lines[0]
        .strip_prefix("signer_audit_chain_checked_timestamp_seconds ")
        .unwrap()
        .parse()
        .unwrap();
    assert!(checked >= before && checked <= before + 10, "{lines:?}");
    assert_eq!(
        lines[1..],
        [
            "signer_audit_chain_first_bad_seq 0".to_owned(),
            format!("signer_audit_chain_head_seq {}", chain.head.seq),
            "signer_audit_chain_verified 1".to_owned(),
        ]
    );
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
}
