//! Key custody end to end on a real cluster: keys generated inside the cluster and imported,
//! sealed under a KEK in the replicated registry, unsealed by every node, disabled, enabled,
//! deleted, reloaded after a restart of every node; admin authorization; and no secret in any
//! node's log.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod oracle;
mod support;

use signer_node::custody::{KekConfig, LocalKek};
use signer_node::pb;
use signer_node::scheme::{bls12_381, bn254};
use std::time::{Duration, Instant};
use support::*;
use tonic::Code;

fn vote(key: &str, view: u64, leaf: u8) -> pb::SignRequest {
    let mut r = quorum_vote(view, leaf, "");
    r.key_id = key.into();
    r
}

/// A status's code and message.
fn code_and_message(status: &tonic::Status) -> (Code, String) {
    (status.code(), status.message().to_owned())
}

/// `resp` is the BN254 key `pk`'s signature over the quorum vote for `[leaf; 32]` at `view`,
/// whose message the oracle computes.
fn assert_signed_vote(resp: &pb::SignResponse, pk: &bn254::PublicKey, view: u64, leaf: u8) {
    let message = oracle::requests::quorum_vote_digest(view, leaf);
    assert_eq!(resp.signed_message, message, "view {view}");
    let sig = bn254::Signature::from_bytes(&resp.signature).unwrap();
    assert!(sig.verify(pk, &message), "view {view}");
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
    assert_eq!(
        code_and_message(&err),
        (
            Code::NotFound,
            "key_id: no active key \"gen-1\" on this cluster".to_owned()
        )
    );
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
    assert_eq!(
        code_and_message(&err),
        (
            Code::PermissionDenied,
            "\"seq-1\" is not an enrolled admin".to_owned()
        )
    );

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
        assert_signed_vote(&resp, &pk, 10 + node, 1);
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
    // One public key, one key id.
    assert_eq!(
        code_and_message(&dup),
        (
            Code::AlreadyExists,
            "this public key is already held as \"imp-1\"".to_owned()
        )
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
    assert_eq!(
        code_and_message(&err),
        (
            Code::NotFound,
            "key_id: key \"gen-1\" was disabled or deleted".to_owned()
        )
    );
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
    assert_eq!(
        refusal(&err),
        Some((
            "view_below_watermark".to_owned(),
            format!(
                "quorum-vote at view 11 is below the last signed view 13 (commitment 0x{} was \
                 signed there)",
                hex::encode(oracle::requests::quorum_vote_digest(13, 1))
            )
        ))
    );

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
    assert_signed_vote(&resp, &pk, 30, 1);

    // Delete is a tombstone: unloaded, id stays taken.
    cluster.set_key_state("imp-1", "deleted").await.unwrap();
    cluster
        .wait_all("imp-1 unloaded", |s| {
            !s.keys_loaded.iter().any(|k| k == "imp-1")
        })
        .await;
    let again = cluster.generate_key("imp-1", "eth2").await.unwrap_err();
    assert_eq!(
        code_and_message(&again),
        (
            Code::AlreadyExists,
            "key_id: \"imp-1\" is already taken by a key of the cluster's registry".to_owned()
        )
    );
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
    let keys_before = cluster
        .on_leader(|mut a| async move { a.list_keys(pb::ListKeysRequest {}).await })
        .await
        .unwrap()
        .keys;
    assert_eq!(keys_before.len(), 3);
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
    assert_eq!(rotated.1.detail, "3 key(s) re-wrapped");
    let listed = cluster
        .on_leader(|mut a| async move { a.list_keys(pb::ListKeysRequest {}).await })
        .await
        .unwrap();
    let new_ref = listed.keys[0].kek.clone();
    assert!(listed.keys.iter().all(|k| k.kek == new_ref));
    assert_ne!(new_ref, keys_before[0].kek);
    // Repeating a finished rotation changes nothing: there is nothing to propose.
    let again = cluster.rotate_kek().await.unwrap_err();
    assert_eq!(
        code_and_message(&again),
        (
            Code::FailedPrecondition,
            format!("every key is already sealed under {new_ref}")
        )
    );

    // Drop the old KEK everywhere: the keys still load, from records under the new one.
    cluster
        .restart_all_with(|config| config.retired_keks.clear())
        .await;
    cluster
        .wait_all("keys load with only the new KEK", |s| {
            s.keys_loaded.len() == 5 && s.keys_pending.is_empty()
        })
        .await;
    // Every re-wrapped key signs, with the public key its record had before the rotation,
    // over the message the test computes itself.
    let before: std::collections::HashMap<String, Vec<u8>> = keys_before
        .iter()
        .map(|k| (k.key_id.clone(), k.public_key.clone()))
        .collect();
    let resp = cluster
        .client(1, "seq-1")
        .await
        .sign(vote("r-2", 1, 1))
        .await
        .unwrap()
        .into_inner();
    assert_signed_vote(
        &resp,
        &bn254::PublicKey::from_bytes(&before["r-2"]).unwrap(),
        1,
        1,
    );
    let (_, fork_info) =
        signer_node::client::eth2::newest_fork_info(&eth2_messages::NetworkSpec::mainnet());
    for key_id in ["r-1", "r-3"] {
        let mut block = eth2_block(7, 3);
        block.key_id = key_id.into();
        let resp = cluster
            .client(2, "seq-1")
            .await
            .sign(block)
            .await
            .unwrap()
            .into_inner();
        let root = oracle::signing_root(
            oracle::header_root(7, 0, [0; 32], [0; 32], [3; 32]),
            oracle::domain(0, fork_info.fork.current_version, GVR),
        );
        assert_eq!(resp.signed_message, root, "{key_id}");
        let pk = bls12_381::PublicKey::from_bytes(&before[key_id]).unwrap();
        let sig = bls12_381::Signature::from_bytes(&resp.signature).unwrap();
        assert!(sig.verify(&pk, &root), "{key_id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_without_the_kek_reports_keys_pending_and_keeps_serving_others() {
    let cluster = Cluster::start_with(3, local_kek).await;
    let info = cluster.generate_key("p-1", "espresso").await.unwrap();
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
                assert_eq!(
                    p.reason,
                    format!(
                        "sealed under {}, which this node is not configured with",
                        info.kek
                    )
                );
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
