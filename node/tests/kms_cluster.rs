//! A cluster whose KEK is AWS KMS (a real local KMS server, moto, behind a proxy the test can
//! cut): keys generated in the cluster are sealed by KMS; with the KMS unreachable, restarted
//! nodes start, report the keys as not loaded (the KMS unreachable, also behind an endpoint that
//! closes every connection unanswered) and refuse to sign with them; once the KMS is back they
//! load the keys and sign. A KEK rotation between two KMS keys leaves keys that load and sign
//! without the old KMS key.
#![cfg(feature = "aws-kms")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod oracle;
mod scrape;
mod support;

use scrape::Scrape;
use signer_node::custody::KekConfig;
use signer_node::keyloader::cache::{KeyringCache, Opened};
use signer_node::pb;
use signer_node::scheme::{bls12_381, bn254};
use support::moto::{KmsProxy, Moto, REGION};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kms_outage_leaves_keys_pending_until_the_kms_returns() {
    let moto = Moto::start();
    let kms_key = moto.create_key().await;
    let proxy = KmsProxy::start(moto.port).await;
    let endpoint = proxy.endpoint();
    let cluster = Cluster::start_with(3, |_| {
        Some(KekConfig::AwsKms {
            key_id: kms_key.clone(),
            region: Some(REGION.into()),
            endpoint_url: Some(endpoint.clone()),
        })
    })
    .await;

    // Generate a key inside the cluster, sealed by KMS.
    let info = cluster.generate_key("kms-1", "espresso").await.unwrap();
    assert_eq!(info.kek, format!("aws-kms:{kms_key}"));
    cluster
        .wait_all("kms-1 loaded everywhere", |s| {
            s.keys_loaded.iter().any(|k| k == "kms-1")
        })
        .await;
    let pk = bn254::PublicKey::from_bytes(&info.public_key).unwrap();
    let mut req = quorum_vote(1, 1, "");
    req.key_id = "kms-1".into();
    let resp = cluster
        .client(1, "seq-1")
        .await
        .sign(req)
        .await
        .unwrap()
        .into_inner();
    let message = oracle::requests::quorum_vote_digest(1, 1);
    assert_eq!(resp.signed_message, message);
    assert!(bn254::Signature::from_bytes(&resp.signature)
        .unwrap()
        .verify(&pk, &message));

    // KMS unreachable; every node restarts.
    proxy.set_up(false);
    cluster.restart_all().await;
    cluster
        .wait_all("kms-1 pending (KMS unreachable) on every node", |s| {
            s.keys_pending.iter().any(|p| p.key_id == "kms-1")
                && !s.keys_loaded.iter().any(|k| k == "kms-1")
                && s.keys_loaded.iter().any(|k| k == ESPRESSO_KEY)
        })
        .await;
    // Every node names the shared data key, the KMS operation and the KMS key that could not be
    // reached (the detail after it is the transport's own words). Checked at the end, so the
    // rest of the story runs.
    let unreachable = format!("KMS unreachable (Decrypt with key {kms_key}): ");
    let says_unreachable = |reason: &str| {
        reason
            .strip_prefix("shared data key sdk-")
            .and_then(|rest| rest.split_at_checked(32))
            .is_some_and(|(id, rest)| {
                id.bytes().all(|b| b.is_ascii_hexdigit())
                    && rest
                        .strip_prefix(": ")
                        .is_some_and(|r| r.starts_with(&unreachable))
            })
    };
    let mut wrong_reasons = Vec::new();
    for id in 1..=3 {
        let pending = cluster.status(id).await.unwrap().keys_pending;
        assert_eq!(pending.len(), 1, "node {id}: {pending:?}");
        assert_eq!(pending[0].key_id, "kms-1");
        if !says_unreachable(&pending[0].reason) {
            wrong_reasons.push(format!("node {id}: {:?}", pending[0].reason));
        }
    }
    let mut req = quorum_vote(2, 1, "");
    req.key_id = "kms-1".into();
    let err = cluster
        .client(2, "seq-1")
        .await
        .sign(req.clone())
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
    let why = err
        .message()
        .strip_prefix("key \"kms-1\" is not loaded on the leader: ")
        .unwrap_or_else(|| panic!("{err:?}"));
    if !says_unreachable(why) {
        wrong_reasons.push(format!("Sign on node 2: {why:?}"));
    }
    // The node keeps serving the keys it holds.
    let resp = cluster
        .client(2, "seq-1")
        .await
        .sign(quorum_vote(5, 1, ""))
        .await
        .unwrap()
        .into_inner();
    let message = oracle::requests::quorum_vote_digest(5, 1);
    assert_eq!(resp.signed_message, message);
    let demo_pk = bn254::PublicKey::from_bytes(&cluster.espresso_public_key).unwrap();
    assert!(bn254::Signature::from_bytes(&resp.signature)
        .unwrap()
        .verify(&demo_pk, &message));

    // KMS back: the keys load with the loader's backoff, and sign.
    proxy.set_up(true);
    cluster
        .wait_all("kms-1 loaded after the KMS returned", |s| {
            s.keys_loaded.iter().any(|k| k == "kms-1") && s.keys_pending.is_empty()
        })
        .await;
    let resp = cluster
        .client(3, "seq-1")
        .await
        .sign(req)
        .await
        .unwrap()
        .into_inner();
    let message = oracle::requests::quorum_vote_digest(2, 1);
    assert_eq!(resp.signed_message, message);
    assert!(bn254::Signature::from_bytes(&resp.signature)
        .unwrap()
        .verify(&pk, &message));

    // Another outage shape: an endpoint that accepts connections and closes them unanswered
    // (a load balancer whose backends are gone). The nodes must say the KMS is unreachable
    // here too, not that the request "could not be sent" (a configuration error).
    let black_hole = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hole_url = format!("http://{}", black_hole.local_addr().unwrap());
    let hole = tokio::spawn(async move {
        while let Ok((connection, _)) = black_hole.accept().await {
            drop(connection);
        }
    });
    cluster
        .restart_all_with(|config| {
            if let Some(KekConfig::AwsKms { endpoint_url, .. }) = &mut config.kek {
                *endpoint_url = Some(hole_url.clone());
            }
        })
        .await;
    cluster
        .wait_all(
            "kms-1 pending behind an endpoint that closes connections",
            |s| s.keys_pending.iter().any(|p| p.key_id == "kms-1"),
        )
        .await;
    for id in 1..=3 {
        let pending = cluster.status(id).await.unwrap().keys_pending;
        assert_eq!(pending.len(), 1, "node {id}: {pending:?}");
        if !says_unreachable(&pending[0].reason) {
            wrong_reasons.push(format!(
                "node {id}, endpoint closing connections: {:?}",
                pending[0].reason
            ));
        }
    }
    hole.abort();
    assert!(
        wrong_reasons.is_empty(),
        "pending reasons that do not say the KMS was unreachable (expected \"shared data key \
         sdk-<id>: {unreachable}…\"):\n{}",
        wrong_reasons.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kek_rotation_between_two_kms_keys() {
    let moto = Moto::start();
    let old_key = moto.create_key().await;
    let new_key = moto.create_key().await;
    let endpoint = moto.endpoint();
    let kms = |key_id: &str| KekConfig::AwsKms {
        key_id: key_id.to_owned(),
        region: Some(REGION.into()),
        endpoint_url: Some(endpoint.clone()),
    };
    let cluster = Cluster::start_with(3, |_| Some(kms(&old_key))).await;
    let info = cluster.generate_key("rot-1", "eth2").await.unwrap();
    assert_eq!(info.kek, format!("aws-kms:{old_key}"));
    cluster
        .restart_all_with(|config| {
            config.kek = Some(kms(&new_key));
            config.retired_keks = vec![kms(&old_key)];
        })
        .await;
    cluster
        .wait_all("rot-1 loaded with the retired KMS key", |s| {
            s.keys_loaded.iter().any(|k| k == "rot-1")
        })
        .await;
    let rotated = cluster.rotate_kek().await.unwrap();
    assert_eq!(rotated.1.status, "executed");
    assert!(rotated.0.notes.is_empty(), "{:?}", rotated.0.notes);
    let listed = cluster
        .on_leader(|mut a| async move { a.list_keys(pb::ListKeysRequest {}).await })
        .await
        .unwrap();
    assert_eq!(listed.keys[0].kek, format!("aws-kms:{new_key}"));
    assert_eq!(rotated.1.detail, "1 key(s) re-wrapped");

    // Without the old KMS key configured anywhere, the key loads from its re-wrapped record
    // and signs: its signature verifies under the record's public key, over the signing root
    // the test computes itself.
    cluster
        .restart_all_with(|config| config.retired_keks.clear())
        .await;
    cluster
        .wait_all("rot-1 loaded with only the new KMS key", |s| {
            s.keys_loaded.iter().any(|k| k == "rot-1") && s.keys_pending.is_empty()
        })
        .await;
    let mut block = eth2_block(3, 4);
    block.key_id = "rot-1".into();
    let resp = sign_retrying(&mut cluster.client(1, "seq-1").await, block)
        .await
        .unwrap();
    let (_, fork_info) =
        signer_node::client::eth2::newest_fork_info(&eth2_messages::NetworkSpec::mainnet());
    let root = oracle::signing_root(
        oracle::header_root(3, 0, [0; 32], [0; 32], [4; 32]),
        oracle::domain(0, fork_info.fork.current_version, GVR),
    );
    assert_eq!(resp.signed_message, root);
    let pk = bls12_381::PublicKey::from_bytes(&info.public_key).unwrap();
    let sig = bls12_381::Signature::from_bytes(&resp.signature).unwrap();
    assert!(sig.verify(&pk, &root));
}

/// The keyring cache and shared data keys under a real KMS: after the keys are loaded (and the
/// cache written), a restart of every node makes one KMS `Decrypt` per node (the cache's data
/// key), counted by each node's own metrics; with `keyring_cache = false` the same restart
/// makes one per shared data key, and the leader sealed all six keys under one, so it is one
/// too (records with their own data keys, as older formats wrote, cost one each: shown in
/// `keyring_cache.rs`). (That the cache never stands in for the KMS itself is shown
/// above: in `kms_outage_leaves_keys_pending_until_the_kms_returns` the nodes restart with a
/// cache file written and the KMS unreachable, and the keys stay pending.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restart_opens_the_keyring_cache_with_one_kms_decrypt() {
    const KEYS: usize = 6;
    let moto = Moto::start();
    let kms_key = moto.create_key().await;
    let kek = KekConfig::AwsKms {
        key_id: kms_key.clone(),
        region: Some(REGION.into()),
        endpoint_url: Some(moto.endpoint()),
    };
    let cluster = Cluster::start_with(3, |_| Some(kek.clone())).await;
    let ids: Vec<String> = (1..=KEYS).map(|i| format!("cached-{i}")).collect();
    for (i, id) in ids.iter().enumerate() {
        let profile = if i % 2 == 0 { "eth2" } else { "espresso" };
        cluster.generate_key(id, profile).await.unwrap();
    }
    cluster
        .wait_all("every generated key loaded", |s| {
            ids.iter().all(|id| s.keys_loaded.contains(id))
        })
        .await;
    // Each node writes its cache within the flush interval; read every file as the node
    // would at its next start (with the same KMS key) until it holds every key.
    let backend = moto.kek(&kms_key).await;
    for id in 1..=3 {
        let config = signer_node::config::NodeConfig::load(&cluster.node(id).config_path).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let cache = KeyringCache::new(&config.data_dir, &config.cluster_id, id).unwrap();
            let held = match cache.open(&backend).await.unwrap() {
                Opened::Read(_) => cache.key_ids(),
                _ => Vec::new(),
            };
            if held == ids {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "node {id}: the cache file holds {held:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }

    let decrypts = |on: bool| {
        let cluster = &cluster;
        let ids = &ids;
        async move {
            cluster
                .restart_all_with(|config| config.keyring_cache = on)
                .await;
            cluster
                .wait_all("every generated key loaded after the restart", |s| {
                    ids.iter().all(|id| s.keys_loaded.contains(id)) && s.keys_pending.is_empty()
                })
                .await;
            let mut counts = Vec::new();
            for id in 1..=3 {
                let scrape = Scrape::parse(&cluster.http_get(id, "/metrics").await.body);
                let calls = |op| scrape.sum("signer_kms_call_seconds_count", &[("op", op)]) as u64;
                counts.push((calls("unwrap_data_key"), calls("generate_data_key")));
            }
            counts
        }
    };
    assert_eq!(decrypts(true).await, [(1, 0); 3], "with the cache");
    assert_eq!(decrypts(false).await, [(1, 0); 3], "without it");

    // The keys that came out of the cache sign, and verify under their records' public keys.
    cluster
        .restart_all_with(|config| config.keyring_cache = true)
        .await;
    cluster
        .wait_all("every generated key loaded from the cache", |s| {
            ids.iter().all(|id| s.keys_loaded.contains(id))
        })
        .await;
    let info = cluster.key_info("cached-2").await.unwrap();
    let mut req = quorum_vote(7, 3, "");
    req.key_id = "cached-2".into();
    let resp = sign_retrying(&mut cluster.client(1, "seq-1").await, req)
        .await
        .unwrap();
    let message = oracle::requests::quorum_vote_digest(7, 3);
    assert_eq!(resp.signed_message, message);
    let pk = bn254::PublicKey::from_bytes(&info.public_key).unwrap();
    assert!(bn254::Signature::from_bytes(&resp.signature)
        .unwrap()
        .verify(&pk, &message));
}
