//! A cluster whose KEK is AWS KMS (a real local KMS server, moto, behind a proxy the test can
//! cut): keys generated in the cluster are sealed by KMS; with the KMS unreachable, restarted
//! nodes start, report the keys as not loaded and refuse to sign with them; once the KMS is back
//! they load the keys and sign.
#![cfg(feature = "aws-kms")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod support;

use signer_node::custody::KekConfig;
use signer_node::pb;
use signer_node::scheme::bn254;
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
    cluster.client(1, "seq-1").await.sign(req).await.unwrap();

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
    let reason = cluster.status(1).await.unwrap().keys_pending[0]
        .reason
        .clone();
    assert!(
        reason.to_lowercase().contains("unreachable") || reason.to_lowercase().contains("kms"),
        "{reason}"
    );
    let mut req = quorum_vote(2, 1, "");
    req.key_id = "kms-1".into();
    let err = cluster
        .client(2, "seq-1")
        .await
        .sign(req.clone())
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
    // The node keeps serving the keys it holds.
    cluster
        .client(2, "seq-1")
        .await
        .sign(quorum_vote(5, 1, ""))
        .await
        .unwrap();

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
    assert!(bn254::Signature::from_bytes(&resp.signature)
        .unwrap()
        .verify(&pk, &resp.signed_message));
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
    cluster.generate_key("rot-1", "eth2").await.unwrap();
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
}
