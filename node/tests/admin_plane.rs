//! The admin plane on a real cluster (node processes, mutual TLS, Raft): M-of-N approvals
//! with development keys, single-use challenges, client grants, rate limits, pause, and the
//! authorization matrix of every Admin and Signer RPC.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod oracle;
mod support;

use signer_node::client::Approver;
use signer_node::pb;
use signer_node::pb::propose_request::Request as P;
use signer_node::scheme::bls12_381;
use std::time::{Duration, Instant};
use support::{eth2_block, local_kek, quorum_vote, refusal, Cluster, ESPRESSO_KEY, ETH2_KEY, GVR};
use tonic::Code;

/// A status's code and message.
fn code_and_message(status: &tonic::Status) -> (Code, &str) {
    (status.code(), status.message())
}

/// Wait until the leader lists `challenge` as expired (its lifetime passed on the leader's
/// clock); fails after 20 s.
async fn wait_expired(cluster: &Cluster, challenge: &pb::Challenge) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let listed = cluster
            .on_leader(|mut a| async move {
                a.list_challenges(pb::ListChallengesRequest { all: true })
                    .await
            })
            .await
            .unwrap();
        let status = listed
            .challenges
            .iter()
            .find(|c| c.id == challenge.id)
            .map(|c| c.status.clone());
        if status.as_deref() == Some("expired") {
            return;
        }
        assert_eq!(status.as_deref(), Some("pending"));
        assert!(Instant::now() < deadline, "the challenge never expired");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

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

fn grant(identity: &str, keys: &[&str], profiles: &[&str], rate: u32, burst: u32) -> P {
    P::GrantClient(pb::ClientGrant {
        identity: identity.into(),
        keys: keys.iter().map(|k| (*k).into()).collect(),
        profiles: profiles.iter().map(|p| (*p).into()).collect(),
        rate_per_second: rate,
        rate_burst: burst,
        raw_roots: false,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_of_two_approvals_are_single_use_and_bound_to_their_challenge() {
    let cluster = Cluster::start_with(3, local_kek).await;

    // An expired challenge: with a 1 s lifetime, an approval once the leader lists it as
    // expired is refused.
    cluster.admin_exec(policy(1, 1_000)).await.unwrap();
    let late = cluster
        .propose(P::Pause(pb::PauseRequest {}))
        .await
        .unwrap();
    wait_expired(&cluster, &late).await;
    let err = cluster.approve_as("admin-1", &late).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    let expired = format!(
        "challenge {} expired at {} ms (now ",
        hex::encode(&late.id),
        late.expires_at_ms
    );
    assert!(err.message().starts_with(&expired), "{err:?}");
    let signed = cluster
        .client(1, "seq-1")
        .await
        .sign(quorum_vote(1, 1, ""))
        .await
        .expect("not paused: the expired approval changed nothing")
        .into_inner();
    assert_eq!(
        signed.signed_message,
        oracle::requests::quorum_vote_digest(1, 1)
    );

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
    assert_eq!(
        code_and_message(&err),
        (
            Code::AlreadyExists,
            "\"admin-1\" already approved this challenge"
        )
    );
    // admin-2 presenting admin-1's signature: not admin-2's key.
    let bad_signature = (
        Code::PermissionDenied,
        "the signature does not verify under admin-2's enrolled key",
    );
    let err = cluster
        .send_approval("admin-2", &a.id, &sig_a1)
        .await
        .unwrap_err();
    assert_eq!(code_and_message(&err), bad_signature);
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
    assert_eq!(code_and_message(&err), bad_signature);
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
    assert_eq!(code_and_message(&err), bad_signature);
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
    let decided = format!(
        "challenge {} is already decided; approvals cannot be reused",
        hex::encode(&a.id)
    );
    assert_eq!(
        code_and_message(&err),
        (Code::FailedPrecondition, decided.as_str())
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
    let no_grant = (
        Code::PermissionDenied,
        "client \"nobody-1\" has no access grant",
    );
    assert_eq!(code_and_message(&err), no_grant);

    // Grant nobody-1 the eth2 key only, 1 request/s with a burst of 3.
    cluster
        .admin_exec(grant("nobody-1", &[ETH2_KEY], &["eth2"], 1, 3))
        .await
        .unwrap();
    let err = nobody.sign(quorum_vote(1, 1, "")).await.unwrap_err();
    let other_key = format!("client \"nobody-1\" may not use key {ESPRESSO_KEY:?}");
    assert_eq!(
        code_and_message(&err),
        (Code::PermissionDenied, other_key.as_str())
    );
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
    // Eight requests at once, in one batch: the node admits a batch's requests one after the
    // other before deciding any (microseconds apart, so the 1/s refill adds nothing): exactly
    // the burst of three is signed, the other five are rate limited. How long the commits
    // take changes nothing.
    let batch = nobody
        .sign_batch(pb::SignBatchRequest {
            requests: (10..18).map(|slot| eth2_block(slot, 1)).collect(),
        })
        .await
        .unwrap()
        .into_inner()
        .results;
    assert_eq!(batch.len(), 8);
    let pk = bls12_381::PublicKey::from_bytes(&cluster.eth2_public_key).unwrap();
    let (mut signed, mut limited) = (0, 0);
    use pb::sign_batch_result::Result as R;
    for (slot, result) in (10..18).zip(&batch) {
        match &result.result {
            Some(R::Signed(s)) => {
                let root = oracle::requests::support_block_root(slot, 1);
                assert_eq!(s.signed_message, root, "slot {slot}");
                let sig = bls12_381::Signature::from_bytes(&s.signature).unwrap();
                assert!(sig.verify(&pk, &root), "slot {slot}");
                signed += 1;
            }
            Some(R::Error(e)) => {
                assert_eq!(
                    (Code::from(e.code), e.message.as_str(), &e.refusal),
                    (
                        Code::ResourceExhausted,
                        "client \"nobody-1\" exceeded its rate limit of 1/s (burst 3)",
                        &None
                    ),
                    "slot {slot}"
                );
                limited += 1;
            }
            None => panic!("slot {slot}: no result"),
        }
    }
    assert_eq!((signed, limited), (3, 5), "{batch:#?}");

    // Wrong profile: every key, but only espresso.
    cluster
        .admin_exec(grant("nobody-1", &["*"], &["espresso"], 0, 0))
        .await
        .unwrap();
    let err = nobody.sign(eth2_block(20, 1)).await.unwrap_err();
    assert_eq!(
        code_and_message(&err),
        (
            Code::PermissionDenied,
            "client \"nobody-1\" may not sign eth2 messages"
        )
    );
    let signed = nobody
        .sign(quorum_vote(3, 1, ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        signed.signed_message,
        oracle::requests::quorum_vote_digest(3, 1)
    );
    // Revoked: denied again.
    cluster
        .admin_exec(P::RevokeClient("nobody-1".into()))
        .await
        .unwrap();
    let err = nobody.sign(quorum_vote(4, 1, "")).await.unwrap_err();
    assert_eq!(code_and_message(&err), no_grant);

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
        assert_eq!(
            code_and_message(&err),
            (
                Code::FailedPrecondition,
                "refused: paused: signing is paused by the admins (signerctl resume, with \
                 approvals)"
            ),
            "node {id}"
        );
        assert_eq!(
            refusal(&err),
            Some((
                "paused".to_owned(),
                "signing is paused by the admins (signerctl resume, with approvals)".to_owned()
            )),
            "node {id}"
        );
    }
    cluster
        .admin_exec(P::Resume(pb::ResumeRequest {}))
        .await
        .unwrap();
    // Nothing was signed while paused: had any of views 11 to 13 been signed, view 11 would
    // now be below the watermark.
    let signed = cluster
        .client(1, "seq-1")
        .await
        .sign(quorum_vote(11, 1, ""))
        .await
        .unwrap()
        .into_inner();
    assert!(!signed.resigned);
    assert_eq!(
        signed.signed_message,
        oracle::requests::quorum_vote_digest(11, 1)
    );

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
    assert_eq!(imported.status, "executed");
    assert_eq!(
        imported.detail,
        "imported 1 validator(s), 1 block and 0 attestation record(s)"
    );
    // Below the imported slot: the block watermark; at it: the import keeps no signing root,
    // so no block there is known to be the same (and the refusal says so, not that another
    // root was signed); above it: signed.
    let refused = |slot: u64| {
        let cluster = &cluster;
        async move {
            let err = cluster
                .client(2, "seq-1")
                .await
                .sign(eth2_block(slot, 7))
                .await
                .unwrap_err();
            refusal(&err)
        }
    };
    assert_eq!(
        refused(999).await,
        Some((
            "block_slot_not_above_watermark".to_owned(),
            "block slot 999 is at or below the block watermark 1000".to_owned()
        ))
    );
    assert_eq!(
        refused(1000).await,
        Some((
            "double_block_proposal".to_owned(),
            "block at slot 1000: an interchange import set the block watermark to slot 1000, \
             and imported blocks keep no signing root, so no block at that slot can be shown to \
             be the one signed before, not even an identical one (EIP-3076)"
                .to_owned()
        ))
    );
    let signed = cluster
        .client(2, "seq-1")
        .await
        .sign(eth2_block(1001, 7))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        signed.signed_message,
        oracle::requests::support_block_root(1001, 7)
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
    let mismatch = format!(
        "interchange: genesis_validators_root 0x{} is not this cluster's (0x{})",
        "11".repeat(32),
        hex::encode(GVR)
    );
    assert_eq!(
        code_and_message(&err),
        (Code::InvalidArgument, mismatch.as_str())
    );

    // An Espresso view horizon outside 1..=32 is refused before anything is proposed; the
    // admin state keeps the default until a valid one is approved.
    for views in [0, 33] {
        let err = cluster
            .propose(P::SetEspressoViewHorizon(views))
            .await
            .unwrap_err();
        let refusal = format!(
            "set_espresso_view_horizon: a view horizon of {views} views is outside 1..=32: \
             above half the 64-view window, a message let through could push the key's DA \
             window past the views it votes in"
        );
        assert_eq!(
            code_and_message(&err),
            (Code::InvalidArgument, refusal.as_str())
        );
    }
    let horizon = || async {
        cluster
            .on_leader(|mut a| async move { a.get_admin_state(pb::GetAdminStateRequest {}).await })
            .await
            .unwrap()
            .espresso_view_horizon
    };
    assert_eq!(horizon().await, 32);
    cluster
        .admin_exec(P::SetEspressoViewHorizon(9))
        .await
        .unwrap();
    assert_eq!(horizon().await, 9);

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
    // The head when the action was applied: the records since `before` were added.
    let head: u64 = too_far
        .message()
        .strip_prefix(
            "approved, but applying it was refused: \
             up_to_seq must be above the anchor (0) and below the head (",
        )
        .and_then(|rest| rest.strip_suffix(')'))
        .and_then(|head| head.parse().ok())
        .unwrap_or_else(|| panic!("{too_far:?}"));
    assert!(head > before.head_seq, "{too_far:?}");
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
    assert!(
        gone.message().starts_with(&format!(
            "seq: no audit record {up_to} on node 1 (kept: {}..=",
            up_to + 1
        )),
        "{gone:?}"
    );
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
    // The reason, up to the certificate parser's own words.
    assert!(
        err.message().starts_with(
            "\"admin-forged\": attestation refused: the slot attestation certificate does \
             not parse: "
        ),
        "{err:?}"
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
