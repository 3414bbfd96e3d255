//! Certificate revocation on a real 3-node cluster (an approved admin action, by SHA-256
//! fingerprint): once a node applied it, the certificate is refused on its next call on that
//! node — on the leader and on a follower, over gRPC on a connection opened before the
//! revocation and on a new one, over the Web3Signer REST API on a keep-alive connection and on
//! a new one — with the exact status and message; the health paths still answer; a certificate
//! issued again for the same name signs; a revoked admin can no longer read or approve, a
//! revoked auditor's following audit stream ends, and a revoked node certificate is refused on
//! the peer port while that node keeps following. The refusals reach the audit log at most once
//! per identity per node (the access-denial bound).
//!
//! Owns: nothing but these checks. Must not: use fixed ports or sleep as synchronization (it
//! polls the nodes' applied state).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use signer_node::admin::Fingerprint;
use signer_node::client::web3signer::Web3SignerConnection;
use signer_node::pb;
use signer_node::pb::propose_request::Request as P;
use signer_node::tls::DevPki;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::{eth2_block, Cluster};
use tonic::transport::Channel;
use tonic::Code;

/// The certificate (DER) in a PEM file.
fn der_of(pem: &Path) -> Vec<u8> {
    signer_node::tls::read_certificate(pem).unwrap()
}

/// The pair of `name`'s files in the cluster PKI.
fn client_files(cluster: &Cluster, name: &str) -> (PathBuf, PathBuf) {
    let pki = cluster.dir().join("pki");
    (
        pki.join(format!("client-{name}.pem")),
        pki.join(format!("client-{name}.key")),
    )
}

/// Revoke the certificate in `pem` (admin-1 proposes and approves; threshold 1) and wait until
/// every node applied it. Returns its fingerprint.
async fn revoke(cluster: &Cluster, pem: &Path) -> Fingerprint {
    let der = der_of(pem);
    let fingerprint = Fingerprint::of(&der);
    let name = signer_node::tls::certificate_identity(&der).unwrap();
    let approved = cluster
        .admin_exec(P::RevokeCertificate(pb::RevokeCertificateAction {
            fingerprint: fingerprint.0.to_vec(),
            certificate: der,
        }))
        .await
        .unwrap();
    assert_eq!(approved.status, "executed", "{approved:?}");
    assert_eq!(
        approved.detail,
        format!("certificate sha256 {fingerprint} of {name:?} revoked")
    );
    wait_applied(cluster, &fingerprint).await;
    fingerprint
}

/// Wait until every node lists `fingerprint` among the revoked certificates.
async fn wait_applied(cluster: &Cluster, fingerprint: &Fingerprint) {
    let deadline = Instant::now() + Duration::from_secs(20);
    for id in 1..=3 {
        loop {
            let state = cluster
                .admin(id)
                .await
                .get_admin_state(pb::GetAdminStateRequest {})
                .await;
            if let Ok(s) = state {
                if s.into_inner()
                    .revoked_certificates
                    .iter()
                    .any(|r| r.fingerprint == fingerprint.to_hex())
                {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "node-{id} never applied the revocation"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The message a caller with a revoked certificate gets.
fn revoked_message(name: &str, fingerprint: &Fingerprint) -> String {
    format!(
        "the certificate of {name:?} (sha256 {fingerprint}) was revoked by the admins; ask them \
         for a new one"
    )
}

fn assert_revoked(status: &tonic::Status, name: &str, fingerprint: &Fingerprint) {
    assert_eq!(
        (status.code(), status.message()),
        (
            Code::Unauthenticated,
            revoked_message(name, fingerprint).as_str()
        ),
        "{status:?}"
    );
}

async fn rest(cluster: &Cluster, id: u64, client: &str) -> Web3SignerConnection {
    let tls = cluster.tls(client);
    Web3SignerConnection::connect(cluster.node(id).web3signer_addr, Some((&tls, "localhost")))
        .await
        .unwrap()
}

/// The JSON error of a REST answer.
fn rest_error(answer: &signer_node::client::web3signer::HttpAnswer) -> (u16, serde_json::Value) {
    (answer.status, serde_json::from_slice(&answer.body).unwrap())
}

/// Sign an eth2 block at `slot` on `client` and check the signature over the bytes signed.
async fn signs(
    cluster: &Cluster,
    client: &mut pb::signer_client::SignerClient<Channel>,
    slot: u64,
) {
    let signed = client
        .sign(eth2_block(slot, 7))
        .await
        .unwrap_or_else(|s| panic!("slot {slot}: {s:?}"))
        .into_inner();
    assert!(signer_node::scheme::bls12_381::verify_bytes(
        &cluster.eth2_public_key,
        &signed.signed_message,
        &signed.signature
    ));
}

/// Access-denial records of `client` for a revoked certificate (their summaries), as node 1's
/// audit log holds them (the chains are identical), once `expected` of them arrived (events are
/// delivered asynchronously) and a second read a moment later finds the same.
async fn revocation_denials(cluster: &Cluster, client: &str, expected: usize) -> Vec<String> {
    let read = || async {
        cluster
            .audit_entries(1)
            .await
            .into_iter()
            .map(|e| e.summary)
            .filter(|s| {
                s.contains(&format!(
                    " client={client} key= profile=: the certificate of"
                )) && s.contains("was revoked by the admins")
            })
            .collect::<Vec<String>>()
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while read().await.len() < expected {
        assert!(
            Instant::now() < deadline,
            "fewer than {expected} denial records of {client}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    read().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_certificate_is_refused_on_every_node_and_path_on_its_next_call() {
    let cluster = Cluster::start(3).await;
    let leader = cluster.wait_leader(Duration::from_secs(30)).await;
    let follower = (1..=3).find(|&id| id != leader).unwrap();

    // Connections opened, and used, before the revocation.
    let mut grpc_leader = cluster.client(leader, "seq-1").await;
    let mut grpc_follower = cluster.client(follower, "seq-1").await;
    signs(&cluster, &mut grpc_leader, 1).await;
    signs(&cluster, &mut grpc_follower, 2).await;
    let mut rest_leader = rest(&cluster, leader, "seq-1").await;
    let mut rest_follower = rest(&cluster, follower, "seq-1").await;
    let pubkey = format!("0x{}", hex::encode(&cluster.eth2_public_key));
    for conn in [&mut rest_leader, &mut rest_follower] {
        let keys = conn.get("/api/v1/eth2/publicKeys", None).await.unwrap();
        assert_eq!((keys.status, keys.text()), (200, format!("[\"{pubkey}\"]")));
    }

    let (seq1_pem, seq1_key) = client_files(&cluster, "seq-1");
    let fingerprint = revoke(&cluster, &seq1_pem).await;
    let message = revoked_message("seq-1", &fingerprint);

    // gRPC, on the open connections and on new ones, leader and follower: every Signer RPC.
    for id in [leader, follower] {
        let mut fresh = cluster.client(id, "seq-1").await;
        let open = if id == leader {
            &mut grpc_leader
        } else {
            &mut grpc_follower
        };
        for client in [open, &mut fresh] {
            assert_revoked(
                &client.sign(eth2_block(3, 7)).await.unwrap_err(),
                "seq-1",
                &fingerprint,
            );
            assert_revoked(
                &client
                    .sign_batch(pb::SignBatchRequest {
                        requests: vec![eth2_block(3, 7)],
                    })
                    .await
                    .unwrap_err(),
                "seq-1",
                &fingerprint,
            );
            assert_revoked(
                &client
                    .get_public_keys(pb::GetPublicKeysRequest {})
                    .await
                    .unwrap_err(),
                "seq-1",
                &fingerprint,
            );
            assert_revoked(
                &client
                    .get_cluster_status(pb::GetClusterStatusRequest {})
                    .await
                    .unwrap_err(),
                "seq-1",
                &fingerprint,
            );
        }
    }

    // REST, on the keep-alive connections and on new ones: 401 certificate_revoked for the
    // key list and signing; the health paths answer as they do anyone.
    let body = serde_json::to_vec(&serde_json::json!({"type": "RANDAO_REVEAL"})).unwrap();
    let expected = (
        401,
        serde_json::json!({"code": "certificate_revoked", "error": message}),
    );
    for id in [leader, follower] {
        let mut fresh = rest(&cluster, id, "seq-1").await;
        let open = if id == leader {
            &mut rest_leader
        } else {
            &mut rest_follower
        };
        for conn in [open, &mut fresh] {
            let keys = conn.get("/api/v1/eth2/publicKeys", None).await.unwrap();
            assert_eq!(rest_error(&keys), expected);
            let signed = conn.sign(&pubkey, body.clone()).await.unwrap();
            assert_eq!(rest_error(&signed), expected);
            let up = conn.get("/upcheck", None).await.unwrap();
            assert_eq!((up.status, up.text()), (200, "OK".to_owned()));
        }
    }

    // The refusals reach the audit log once per node that refused (within the minute), as
    // every access denial does.
    let denials = revocation_denials(&cluster, "seq-1", 2).await;
    let mut nodes: Vec<String> = denials
        .iter()
        .map(|s| {
            s.split_whitespace()
                .find(|w| w.starts_with("node-"))
                .unwrap()
                .to_owned()
        })
        .collect();
    nodes.sort();
    let mut expected_nodes = vec![format!("node-{leader}"), format!("node-{follower}")];
    expected_nodes.sort();
    assert_eq!(nodes, expected_nodes, "{denials:#?}");
    assert!(
        denials.iter().all(|s| s.ends_with(&message)),
        "{denials:#?}"
    );

    // A certificate issued again for seq-1 (the old files moved away) is another certificate:
    // it signs. The revoked one stays refused.
    let old_pem = cluster.dir().join("revoked-seq-1.pem");
    let old_key = cluster.dir().join("revoked-seq-1.key");
    std::fs::rename(&seq1_pem, &old_pem).unwrap();
    std::fs::rename(&seq1_key, &old_key).unwrap();
    DevPki::open(&cluster.dir().join("pki"))
        .unwrap()
        .issue_client("seq-1")
        .unwrap();
    assert_ne!(Fingerprint::of(&der_of(&seq1_pem)), fingerprint);
    for (id, slot) in [(leader, 4), (follower, 5)] {
        signs(&cluster, &mut cluster.client(id, "seq-1").await, slot).await;
        let mut old =
            pb::signer_client::SignerClient::new(cluster.channel_with(id, &old_pem, &old_key));
        assert_revoked(
            &old.sign(eth2_block(6, 7)).await.unwrap_err(),
            "seq-1",
            &fingerprint,
        );
    }
    let mut reissued = rest(&cluster, follower, "seq-1").await;
    let keys = reissued.get("/api/v1/eth2/publicKeys", None).await.unwrap();
    assert_eq!((keys.status, keys.text()), (200, format!("[\"{pubkey}\"]")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_admin_auditor_and_node_certificates_are_refused_where_they_call() {
    let cluster = Cluster::start(3).await;
    let leader = cluster.wait_leader(Duration::from_secs(30)).await;
    let follower = (1..=3).find(|&id| id != leader).unwrap();
    let pki = DevPki::open(&cluster.dir().join("pki")).unwrap();

    // admin-2 enrolled (threshold stays 1): it reads the admin state; revoked, it cannot read
    // or approve, on a connection it had open.
    let key = cluster.approver("admin-2").public_key();
    let signer_node::admin::ApproverKey::Ed25519(bytes) = key else {
        unreachable!()
    };
    cluster
        .admin_exec(P::EnrollAdmin(pb::EnrollAdminRequest {
            name: "admin-2".into(),
            key: Some(pb::enroll_admin_request::Key::Ed25519PublicKey(bytes)),
        }))
        .await
        .unwrap();
    let mut admin2 = cluster.admin_as(follower, "admin-2");
    // The follower applies the enrollment a moment after the leader answered.
    let started = std::time::Instant::now();
    while let Err(status) = admin2.get_admin_state(pb::GetAdminStateRequest {}).await {
        assert_eq!(status.message(), "\"admin-2\" is not an enrolled admin");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the follower never applied the enrollment"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // An auditor with its own certificate follows the audit log.
    pki.issue_client("auditor-2").unwrap();
    let mut stream = pb::audit_client::AuditClient::new(cluster.channel(follower, "auditor-2"))
        .tail(pb::AuditTailRequest {
            from_seq: 0,
            last: 0,
            follow: true,
            filter: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(stream.message().await.unwrap().is_some());

    let (admin2_pem, _) = client_files(&cluster, "admin-2");
    let admin_fp = revoke(&cluster, &admin2_pem).await;
    assert_revoked(
        &admin2
            .get_admin_state(pb::GetAdminStateRequest {})
            .await
            .unwrap_err(),
        "admin-2",
        &admin_fp,
    );
    let pending = cluster
        .propose(P::Pause(pb::PauseRequest {}))
        .await
        .unwrap();
    assert_revoked(
        &cluster.approve_as("admin-2", &pending).await.unwrap_err(),
        "admin-2",
        &admin_fp,
    );
    // Still pending: admin-2's approval was never counted (admin-1 has not approved).
    let challenges = cluster
        .admin(leader)
        .await
        .list_challenges(pb::ListChallengesRequest { all: false })
        .await
        .unwrap()
        .into_inner()
        .challenges;
    let open = challenges.iter().find(|c| c.id == pending.id).unwrap();
    assert_eq!(
        (open.status.as_str(), open.approved_by.len()),
        ("pending", 0)
    );

    // The following stream ends once its certificate is revoked, with the revocation.
    let (auditor_pem, _) = client_files(&cluster, "auditor-2");
    let auditor_fp = revoke(&cluster, &auditor_pem).await;
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match stream.message().await {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("the stream ended without a status"),
                Err(status) => return status,
            }
        }
    })
    .await
    .expect("the following stream did not end");
    assert_revoked(&ended, "auditor-2", &auditor_fp);
    assert_revoked(
        &pb::audit_client::AuditClient::new(cluster.channel(leader, "auditor-2"))
            .get(pb::AuditGetRequest { seq: 1 })
            .await
            .unwrap_err(),
        "auditor-2",
        &auditor_fp,
    );

    // A follower's node certificate revoked: the peer port refuses it (before reading the
    // payload), while another member's certificate is still heard (its malformed payload is
    // what gets refused). The revoked node keeps following: it applies what the leader sends.
    let other = (1..=3).find(|&id| id != leader && id != follower).unwrap();
    let node_fp = revoke(
        &cluster,
        &cluster.dir().join(format!("pki/node-{follower}.pem")),
    )
    .await;
    let garbage = pb::RaftMessage {
        payload: b"not a vote".to_vec(),
    };
    let refused = pb::raft_client::RaftClient::new(cluster.peer_channel(leader, follower))
        .vote(garbage.clone())
        .await
        .unwrap_err();
    assert_revoked(&refused, &format!("node-{follower}"), &node_fp);
    let heard = pb::raft_client::RaftClient::new(cluster.peer_channel(leader, other))
        .vote(garbage)
        .await
        .unwrap_err();
    assert_eq!(heard.code(), Code::InvalidArgument, "{heard:?}");
    let before = cluster.status(follower).await.unwrap().last_applied_index;
    let mut seq1 = cluster.client(leader, "seq-1").await;
    let signed = seq1.sign(eth2_block(1, 9)).await.unwrap().into_inner();
    assert!(!signed.signature.is_empty());
    let deadline = Instant::now() + Duration::from_secs(10);
    while cluster.status(follower).await.unwrap().last_applied_index <= before {
        assert!(
            Instant::now() < deadline,
            "the revoked node stopped following"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
