//! The admin plane on a real cluster (node processes, mutual TLS, Raft): M-of-N approvals
//! with development keys, single-use challenges, client grants, rate limits, pause, and the
//! authorization matrix of every Admin and Signer RPC.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use signer_node::client::Approver;
use signer_node::pb;
use signer_node::pb::propose_request::Request as P;
use std::time::Duration;
use support::{eth2_block, local_kek, quorum_vote, Cluster, ETH2_KEY};
use tonic::Code;

fn enroll_soft(cluster: &Cluster, name: &str) -> P {
    let key = cluster.approver(name).public_key();
    let signer_node::admin::ApproverKey::Ed25519(bytes) = key else {
        unreachable!()
    };
    P::EnrollAdmin(pb::EnrollAdminRequest {
        name: name.into(),
        key: Some(pb::enroll_admin_request::Key::Ed25519PublicKey(bytes)),
    })
}

fn policy(threshold: u32, ttl_ms: u64) -> P {
    P::SetPolicy(pb::ApprovalPolicy {
        threshold,
        require_attestation: false,
        require_touch_always: true,
        challenge_ttl_ms: ttl_ms,
    })
}

fn generate(key_id: &str) -> P {
    P::GenerateKey(pb::GenerateKeyRequest {
        key_id: key_id.into(),
        profile: "espresso".into(),
    })
}

fn grant(identity: &str, keys: &[&str], profiles: &[&str], rate: u32) -> P {
    P::GrantClient(pb::ClientGrant {
        identity: identity.into(),
        keys: keys.iter().map(|k| (*k).into()).collect(),
        profiles: profiles.iter().map(|p| (*p).into()).collect(),
        rate_per_second: rate,
        rate_burst: rate,
        raw_roots: false,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_of_two_approvals_are_single_use_and_bound_to_their_challenge() {
    let cluster = Cluster::start_with(3, local_kek).await;

    // An expired challenge: with a 1 s lifetime, an approval 1.5 s later is refused.
    cluster.admin_exec(policy(1, 1_000)).await.unwrap();
    let late = cluster
        .propose(P::Pause(pb::PauseRequest {}))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let err = cluster.approve_as("admin-1", &late).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("expired"), "{}", err.message());
    cluster
        .client(1, "seq-1")
        .await
        .sign(quorum_vote(1, 1, ""))
        .await
        .expect("not paused: the expired approval changed nothing");

    // Enroll admin-2 and require both admins.
    cluster.admin_exec(policy(1, 900_000)).await.unwrap();
    let enrolled = cluster
        .admin_exec(enroll_soft(&cluster, "admin-2"))
        .await
        .unwrap();
    assert_eq!(enrolled.status, "executed");
    let two = cluster.propose(policy(2, 900_000)).await.unwrap();
    assert_eq!(
        cluster.approve_as("admin-1", &two).await.unwrap().status,
        "executed"
    );

    // One approval is not enough.
    let a = cluster.propose(generate("k-2of2")).await.unwrap();
    assert_eq!(a.threshold, 2);
    let first = cluster.approve_as("admin-1", &a).await.unwrap();
    assert_eq!(
        (first.status.as_str(), first.approved_by.len()),
        ("pending", 1)
    );
    assert!(
        cluster.key_info("k-2of2").await.is_none(),
        "nothing committed yet"
    );

    // admin-1's approval again: counted once.
    let statement_a = signer_node::client::review(&a, "test-cluster")
        .unwrap()
        .statement;
    let sig_a1 = cluster.approver("admin-1").sign(&statement_a).unwrap();
    let err = cluster
        .send_approval("admin-1", &a.id, &sig_a1)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
    // admin-2 presenting admin-1's signature: not admin-2's key.
    let err = cluster
        .send_approval("admin-2", &a.id, &sig_a1)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    // An approval of another action (challenge b) presented for a.
    let b = cluster
        .propose(P::Pause(pb::PauseRequest {}))
        .await
        .unwrap();
    let statement_b = signer_node::client::review(&b, "test-cluster")
        .unwrap()
        .statement;
    let sig_b2 = cluster.approver("admin-2").sign(&statement_b).unwrap();
    let err = cluster
        .send_approval("admin-2", &a.id, &sig_b2)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    // An approval signed for another cluster.
    let id: [u8; 32] = a.id.clone().try_into().unwrap();
    let digest: [u8; 32] = a.action_digest.clone().try_into().unwrap();
    let foreign =
        signer_node::admin::approval::statement("other-cluster", &id, &digest, a.expires_at_ms);
    let sig_foreign = cluster.approver("admin-2").sign(&foreign).unwrap();
    let err = cluster
        .send_approval("admin-2", &a.id, &sig_foreign)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(cluster.key_info("k-2of2").await.is_none());

    // The second admin's real approval commits the action.
    let done = cluster.approve_as("admin-2", &a).await.unwrap();
    assert_eq!(done.status, "executed", "{done:?}");
    assert_eq!(done.approved_by, vec!["admin-1", "admin-2"]);
    let info = cluster.key_info("k-2of2").await.expect("key committed");
    assert_eq!(info.state, "active");
    cluster
        .wait_all("k-2of2 loaded everywhere", |s| {
            s.keys_loaded.iter().any(|k| k == "k-2of2")
        })
        .await;

    // Replaying an approval of the executed challenge is refused: challenges are single-use.
    let sig_a2 = cluster.approver("admin-2").sign(&statement_a).unwrap();
    let err = cluster
        .send_approval("admin-2", &a.id, &sig_a2)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(
        err.message().contains("already decided"),
        "{}",
        err.message()
    );
    // b (pause) never got its approvals: signing still works.
    cluster
        .client(2, "seq-1")
        .await
        .sign(quorum_vote(2, 1, ""))
        .await
        .unwrap();
    // Every replica holds the same admin state.
    let mut states = Vec::new();
    for id in 1..=3 {
        let s = cluster
            .admin_as(id, "admin-1")
            .get_admin_state(pb::GetAdminStateRequest {})
            .await
            .unwrap()
            .into_inner();
        states.push((s.admins.len(), s.policy.map(|p| p.threshold), s.paused));
    }
    assert!(
        states.iter().all(|s| *s == (2, Some(2), false)),
        "{states:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn client_grants_rate_limits_pause_and_protection_import() {
    let cluster = Cluster::start(3).await;
    let mut nobody = cluster.client(1, "nobody-1").await;
    let err = nobody.sign(eth2_block(1, 1)).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(
        err.message().contains("no access grant"),
        "{}",
        err.message()
    );

    // Grant nobody-1 the eth2 key only, 2 requests/s.
    cluster
        .admin_exec(grant("nobody-1", &[ETH2_KEY], &["eth2"], 2))
        .await
        .unwrap();
    let err = nobody.sign(quorum_vote(1, 1, "")).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "another key: {err:?}");
    let keys = nobody
        .get_public_keys(pb::GetPublicKeysRequest {})
        .await
        .unwrap()
        .into_inner()
        .keys;
    assert_eq!(
        keys.iter().map(|k| k.key_id.as_str()).collect::<Vec<_>>(),
        vec![ETH2_KEY],
        "only granted keys are listed"
    );
    let mut results = Vec::new();
    for slot in 10..16 {
        results.push(nobody.sign(eth2_block(slot, 1)).await.map(|_| ()));
    }
    let limited = results
        .iter()
        .filter(|r| matches!(r, Err(s) if s.code() == Code::ResourceExhausted))
        .count();
    assert!(results[0].is_ok() && results[1].is_ok(), "{results:?}");
    assert!(
        limited >= 1,
        "6 requests at once against 2/s, burst 2: {results:?}"
    );

    // Wrong profile: every key, but only espresso.
    cluster
        .admin_exec(grant("nobody-1", &["*"], &["espresso"], 0))
        .await
        .unwrap();
    let err = nobody.sign(eth2_block(20, 1)).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    nobody.sign(quorum_vote(3, 1, "")).await.unwrap();
    // Revoked: denied again.
    cluster
        .admin_exec(P::RevokeClient("nobody-1".into()))
        .await
        .unwrap();
    let err = nobody.sign(quorum_vote(4, 1, "")).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");

    // Pause stops every signature on every node; resume restores them.
    cluster
        .admin_exec(P::Pause(pb::PauseRequest {}))
        .await
        .unwrap();
    for id in 1..=3 {
        let err = cluster
            .client(id, "seq-1")
            .await
            .sign(quorum_vote(10 + id, 1, ""))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unavailable, "{err:?}");
        assert!(err.message().contains("paused"), "{}", err.message());
    }
    cluster
        .admin_exec(P::Resume(pb::ResumeRequest {}))
        .await
        .unwrap();
    cluster
        .client(1, "seq-1")
        .await
        .sign(quorum_vote(20, 1, ""))
        .await
        .unwrap();

    // Interchange import as an approved action: watermarks only go up.
    let exported = cluster
        .admin_as(1, "admin-1")
        .export_protection(pb::ExportProtectionRequest {})
        .await
        .unwrap()
        .into_inner()
        .interchange_json;
    let mut doc: serde_json::Value = serde_json::from_str(&exported).unwrap();
    let pubkey = format!("0x{}", hex::encode(&cluster.eth2_public_key));
    doc["data"] = serde_json::json!([{
        "pubkey": pubkey,
        "signed_blocks": [{"slot": "1000"}],
        "signed_attestations": []
    }]);
    let imported = cluster
        .admin_exec(P::ImportProtection(pb::ImportProtectionRequest {
            interchange_json: doc.to_string(),
            minify: false,
        }))
        .await
        .unwrap();
    assert!(
        imported.detail.contains("imported 1 validator"),
        "{}",
        imported.detail
    );
    let err = cluster
        .client(2, "seq-1")
        .await
        .sign(eth2_block(999, 7))
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Code::FailedPrecondition,
        "below the imported watermark: {err:?}"
    );
    // Another network's file is refused before anything is proposed.
    doc["metadata"]["genesis_validators_root"] =
        serde_json::json!(format!("0x{}", "11".repeat(32)));
    let err = cluster
        .propose(P::ImportProtection(pb::ImportProtectionRequest {
            interchange_json: doc.to_string(),
            minify: false,
        }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");

    // Audit compaction is an approved action; the chain stays verifiable on every node.
    let verify = |id: u64| {
        let channel = cluster.channel(id, "auditor-1");
        async move {
            pb::audit_client::AuditClient::new(channel)
                .verify(pb::AuditVerifyRequest { at_seq: 0 })
                .await
                .unwrap()
                .into_inner()
        }
    };
    let before = verify(1).await;
    assert!(before.ok && before.head_seq > 10, "{before:?}");
    let up_to = before.head_seq - 5;
    let too_far = cluster
        .admin_exec(P::CompactAudit(before.head_seq + 1_000))
        .await
        .unwrap_err();
    assert_eq!(too_far.code(), Code::FailedPrecondition, "{too_far:?}");
    let done = cluster.admin_exec(P::CompactAudit(up_to)).await.unwrap();
    assert_eq!(done.status, "executed", "{done:?}");
    for id in 1..=3 {
        let mut after = verify(id).await;
        for _ in 0..50 {
            if after.anchor_seq == up_to {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            after = verify(id).await;
        }
        assert!(after.ok, "node {id}: {after:?}");
        assert_eq!(after.anchor_seq, up_to, "node {id}");
        assert!(
            after.head_seq > before.head_seq,
            "node {id}: the compaction is recorded"
        );
    }
    let gone = pb::audit_client::AuditClient::new(cluster.channel(1, "auditor-1"))
        .get(pb::AuditGetRequest { seq: up_to })
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound, "{gone:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_verify_an_enrollment_attestation_themselves() {
    let cluster = Cluster::start(3).await;
    // The proposing node passes the certificates through as the action's bytes; every replica
    // verifies the chain when applying. Certificates that are not a chain to the cluster's
    // roots are refused at proposal: no challenge, no admin.
    let err = cluster
        .propose(P::EnrollAdmin(pb::EnrollAdminRequest {
            name: "admin-forged".into(),
            key: Some(pb::enroll_admin_request::Key::Yubikey(
                pb::YubiKeyAttestation {
                    slot_certificate: b"not a certificate".to_vec(),
                    device_certificate: b"nor this".to_vec(),
                },
            )),
        }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(
        err.message().contains("attestation refused"),
        "{}",
        err.message()
    );
    for id in 1..=3 {
        let mut admin = cluster.admin_as(id, "admin-1");
        let state = admin
            .get_admin_state(pb::GetAdminStateRequest {})
            .await
            .unwrap()
            .into_inner();
        assert!(
            state.admins.iter().all(|a| a.name != "admin-forged"),
            "node {id}: {state:?}"
        );
        let open = admin
            .list_challenges(pb::ListChallengesRequest { all: true })
            .await
            .unwrap()
            .into_inner()
            .challenges;
        assert!(open.is_empty(), "node {id}: {open:?}");
    }
    // The refusal is a committed entry, so it is in the audit log.
    let refused = cluster
        .audit_entries(1)
        .await
        .iter()
        .any(|e| e.summary.contains("admin-forged") && e.summary.contains("refused"));
    assert!(refused, "no refused audit record for the forged enrollment");
}
