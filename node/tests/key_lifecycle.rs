//! Key custody end to end on a real cluster: keys generated inside the cluster and imported,
//! sealed under a KEK in the replicated registry, unsealed by every node, disabled, enabled,
//! deleted, reloaded after a restart of every node; admin authorization; and no secret in any
//! node's log.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod support;

use signer_node::custody::{KekConfig, LocalKek};
use signer_node::pb;
use signer_node::scheme::{bls12_381, bn254};
use std::time::{Duration, Instant};
use support::*;

fn vote(key: &str, view: u64, leaf: u8) -> pb::SignRequest {
    let mut r = quorum_vote(view, leaf, "");
    r.key_id = key.into();
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keys_are_generated_sealed_loaded_everywhere_and_follow_their_lifecycle() {
    let cluster = Cluster::start_with(3, local_kek).await;

    // Only admin identities may act.
    let err = cluster
        .client(1, "seq-1")
        .await
        .sign(vote("gen-1", 1, 1))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    let tls = cluster.tls("seq-1").client_config("node-1").unwrap();
    let channel =
        tonic::transport::Endpoint::from_shared(format!("https://{}", cluster.node(1).client_addr))
            .unwrap()
            .tls_config(tls)
            .unwrap()
            .connect_lazy();
    let err = pb::admin_client::AdminClient::new(channel)
        .propose(pb::ProposeRequest {
            request: Some(pb::propose_request::Request::GenerateKey(
                pb::GenerateKeyRequest {
                    key_id: "x".into(),
                    profile: "eth2".into(),
                },
            )),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied);

    // Generate inside the cluster: the record holds only the sealed secret.
    let info = cluster.generate_key("gen-1", "espresso").await.unwrap();
    assert_eq!(info.state, "active");
    assert!(info.kek.starts_with("local:"), "{}", info.kek);
    cluster
        .wait_all("gen-1 loaded on every node", |s| {
            s.keys_loaded.iter().any(|k| k == "gen-1")
        })
        .await;
    let pk = bn254::PublicKey::from_bytes(&info.public_key).unwrap();
    for node in 1..=3 {
        let resp = cluster
            .client(node, "seq-1")
            .await
            .sign(vote("gen-1", 10 + node, 1))
            .await
            .unwrap()
            .into_inner();
        let sig = bn254::Signature::from_bytes(&resp.signature).unwrap();
        assert!(sig.verify(&pk, &resp.signed_message));
    }

    // Import a raw eth2 secret (dev path) with a secret we know, to grep the logs for it later.
    let secret = [0x5au8; 32];
    let imported = cluster.import_key("imp-1", "eth2", &secret).await.unwrap();
    let expected_pk = bls12_381::SecretKey::from_bytes(&secret)
        .unwrap()
        .public_key();
    assert_eq!(imported.public_key, expected_pk.to_bytes().to_vec());
    let dup = cluster
        .import_key("imp-2", "eth2", &secret)
        .await
        .unwrap_err();
    assert_eq!(
        dup.code(),
        tonic::Code::AlreadyExists,
        "one public key, one key id"
    );

    // Disable: every node unloads it and signing is refused; enable: it signs again.
    cluster.set_key_state("gen-1", "disabled").await.unwrap();
    cluster
        .wait_all("gen-1 unloaded everywhere", |s| {
            !s.keys_loaded.iter().any(|k| k == "gen-1")
        })
        .await;
    let err = cluster
        .client(2, "seq-1")
        .await
        .sign(vote("gen-1", 20, 1))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    cluster.set_key_state("gen-1", "active").await.unwrap();
    cluster
        .wait_all("gen-1 loaded again", |s| {
            s.keys_loaded.iter().any(|k| k == "gen-1")
        })
        .await;
    // Protection history survived the disable: view 11 is below the watermark.
    let err = cluster
        .client(1, "seq-1")
        .await
        .sign(vote("gen-1", 11, 2))
        .await
        .unwrap_err();
    assert_eq!(refusal_code(&err).as_deref(), Some("view_below_watermark"));

    // Restart every node: the registry is replicated state; keys are unsealed again.
    cluster.restart_all().await;
    cluster
        .wait_all("keys reloaded after restart", |s| {
            ["gen-1", "imp-1"]
                .iter()
                .all(|k| s.keys_loaded.iter().any(|l| l == k))
        })
        .await;
    let resp = cluster
        .client(3, "seq-1")
        .await
        .sign(vote("gen-1", 30, 1))
        .await
        .unwrap()
        .into_inner();
    assert!(bn254::Signature::from_bytes(&resp.signature)
        .unwrap()
        .verify(&pk, &resp.signed_message));

    // Delete is a tombstone: unloaded, id stays taken.
    cluster.set_key_state("imp-1", "deleted").await.unwrap();
    cluster
        .wait_all("imp-1 unloaded", |s| {
            !s.keys_loaded.iter().any(|k| k == "imp-1")
        })
        .await;
    let again = cluster.generate_key("imp-1", "eth2").await.unwrap_err();
    assert_eq!(again.code(), tonic::Code::AlreadyExists);
    let listed = cluster
        .on_leader(|mut a| async move { a.list_keys(pb::ListKeysRequest {}).await })
        .await
        .unwrap();
    let states: Vec<(String, String)> = listed
        .keys
        .iter()
        .map(|k| (k.key_id.clone(), k.state.clone()))
        .collect();
    assert_eq!(
        states,
        vec![
            ("gen-1".into(), "active".into()),
            ("imp-1".into(), "deleted".into())
        ]
    );

    // No node ever logged the imported secret, in hex or base64.
    use base64::Engine;
    let forms = [
        hex::encode(secret),
        hex::encode_upper(secret),
        base64::engine::general_purpose::STANDARD.encode(secret),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret),
    ];
    for id in 1..=3 {
        let log = cluster.log_of(id);
        assert!(log.contains("key loaded"), "node {id} log is empty?");
        for form in &forms {
            assert!(!log.contains(form.as_str()), "node {id} logged the secret");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kek_rotation_rewraps_every_key_and_resumes_after_interruption() {
    let cluster = Cluster::start_with(3, local_kek).await;
    for (id, profile) in [("r-1", "eth2"), ("r-2", "espresso"), ("r-3", "eth2")] {
        cluster.generate_key(id, profile).await.unwrap();
    }
    cluster
        .wait_all("three keys loaded", |s| s.keys_loaded.len() == 5)
        .await;
    let old_kek = cluster.dir().join("kek.key");
    let new_kek = cluster.dir().join("kek-new.key");
    LocalKek::create(&new_kek).unwrap();

    // New KEK current, old one retired, on every node; restart them all.
    cluster
        .restart_all_with(|config| {
            config.kek = Some(KekConfig::Local {
                path: new_kek.clone(),
            });
            config.retired_keks = vec![KekConfig::Local {
                path: old_kek.clone(),
            }];
        })
        .await;
    cluster
        .wait_all("old records still load with the retired KEK", |s| {
            s.keys_loaded.len() == 5
        })
        .await;

    let rotated = cluster.rotate_kek().await.unwrap();
    assert_eq!(rotated.1.status, "executed");
    assert!(rotated.0.notes.is_empty(), "{:?}", rotated.0.notes);
    assert!(
        rotated.1.detail.contains("3 key(s) re-wrapped"),
        "{}",
        rotated.1.detail
    );
    // Repeating a finished rotation changes nothing: there is nothing to propose.
    let again = cluster.rotate_kek().await.unwrap_err();
    assert_eq!(again.code(), tonic::Code::FailedPrecondition);
    assert!(
        again.message().contains("already sealed"),
        "{}",
        again.message()
    );
    let listed = cluster
        .on_leader(|mut a| async move { a.list_keys(pb::ListKeysRequest {}).await })
        .await
        .unwrap();
    let new_ref = listed.keys[0].kek.clone();
    assert!(listed.keys.iter().all(|k| k.kek == new_ref));

    // Drop the old KEK everywhere: the keys still load, from records under the new one.
    cluster
        .restart_all_with(|config| config.retired_keks.clear())
        .await;
    cluster
        .wait_all("keys load with only the new KEK", |s| {
            s.keys_loaded.len() == 5 && s.keys_pending.is_empty()
        })
        .await;
    let resp = cluster
        .client(1, "seq-1")
        .await
        .sign(vote("r-2", 1, 1))
        .await
        .unwrap()
        .into_inner();
    assert!(!resp.signature.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_without_the_kek_reports_keys_pending_and_keeps_serving_others() {
    let cluster = Cluster::start_with(3, local_kek).await;
    cluster.generate_key("p-1", "espresso").await.unwrap();
    cluster
        .wait_all("p-1 loaded", |s| s.keys_loaded.iter().any(|k| k == "p-1"))
        .await;
    // Node 3 restarts with a different KEK: it cannot open the record and says why, while the
    // key files it holds still serve.
    let other = cluster.dir().join("other-kek.key");
    LocalKek::create(&other).unwrap();
    cluster.restart_with(3, |config| {
        config.kek = Some(KekConfig::Local { path: other })
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(s) = cluster.status(3).await {
            if let Some(p) = s.keys_pending.iter().find(|p| p.key_id == "p-1") {
                assert!(p.reason.contains("not configured"), "{}", p.reason);
                assert!(s.keys_loaded.iter().any(|k| k == ESPRESSO_KEY));
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "node 3 never reported p-1 pending"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
