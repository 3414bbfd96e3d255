//! Multi-node tests against real `signer node` processes: mutual TLS, Raft over loopback,
//! redb with fsync. Each test starts its own cluster on free loopback ports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod oracle;
mod support;

use signer_node::pb;
use signer_node::protection::espresso::message::{Message, QuorumData};
use signer_node::scheme::{bls12_381, bn254};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::*;

/// The commitment HotShot signs for a v1 quorum vote, computed by the client independently of
/// the signer's answer.
fn expected_quorum_message(view: u64, leaf: u8) -> [u8; 32] {
    Message::QuorumVote {
        view,
        data: QuorumData {
            leaf_commit: signer_node::bytes::FixedBytes([leaf; 32]),
            epoch: None,
            block_number: None,
        },
    }
    .signing_message()
}

fn verify_espresso(cluster: &Cluster, msg: &[u8; 32], sig: &[u8]) -> bool {
    let pk = bn254::PublicKey::from_bytes(&cluster.espresso_public_key).unwrap();
    bn254::Signature::from_bytes(sig)
        .map(|s| s.verify(&pk, msg))
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn signs_on_every_node_refuses_conflicts_and_resigns_identical_requests() {
    let cluster = Cluster::start(3).await;
    // Every node answers (followers forward to the leader).
    for id in 1..=3u64 {
        let mut c = cluster.client(id, "seq-1").await;
        let view = 10 + id;
        let resp = c.sign(quorum_vote(view, 1, "")).await.unwrap().into_inner();
        assert!(!resp.resigned);
        assert_eq!(resp.signed_message, expected_quorum_message(view, 1));
        assert!(verify_espresso(
            &cluster,
            &expected_quorum_message(view, 1),
            &resp.signature
        ));
        assert!(resp.signature_text.starts_with("BLS_SIG~"));
    }
    let mut c = cluster.client(2, "seq-2").await;
    // Same view, other commitment: equivocation.
    let err = c.sign(quorum_vote(13, 2, "")).await.unwrap_err();
    assert_eq!(
        refusal_code(&err).as_deref(),
        Some("equivocation"),
        "{err:?}"
    );
    // Below the watermark.
    let err = c.sign(quorum_vote(12, 1, "")).await.unwrap_err();
    assert_eq!(
        refusal_code(&err).as_deref(),
        Some("view_below_watermark"),
        "{err:?}"
    );
    // Identical request: the identical signature, marked as a re-sign.
    let first = cluster
        .client(3, "seq-1")
        .await
        .sign(quorum_vote(20, 7, ""))
        .await
        .unwrap()
        .into_inner();
    let again = cluster
        .client(1, "seq-3")
        .await
        .sign(quorum_vote(20, 7, ""))
        .await
        .unwrap()
        .into_inner();
    assert!(again.resigned);
    assert_eq!(first.signature, again.signature);

    // SignBatch: each request decided on its own, results in request order.
    let mut unknown = quorum_vote(31, 1, "");
    unknown.key_id = "no-such-key".into();
    let batch = cluster
        .client(2, "seq-1")
        .await
        .sign_batch(pb::SignBatchRequest {
            requests: vec![quorum_vote(30, 1, ""), quorum_vote(20, 8, ""), unknown],
        })
        .await
        .unwrap()
        .into_inner()
        .results;
    use pb::sign_batch_result::Result as R;
    match &batch[0].result {
        Some(R::Signed(s)) => assert!(verify_espresso(
            &cluster,
            &expected_quorum_message(30, 1),
            &s.signature
        )),
        other => panic!("first request of the batch: {other:?}"),
    }
    match &batch[1].result {
        Some(R::Error(e)) => {
            assert_eq!(e.code, tonic::Code::FailedPrecondition as i32);
            // View 20 was signed with another leaf; whether view 30 of the same batch was
            // decided before it (SignBatch orders nothing) decides which rule names it.
            let code = e.refusal.as_ref().map(|r| r.code.as_str());
            assert!(
                code == Some("equivocation") || code == Some("view_below_watermark"),
                "{code:?}"
            );
        }
        other => panic!("second request of the batch: {other:?}"),
    }
    match &batch[2].result {
        Some(R::Error(e)) => assert_eq!(e.code, tonic::Code::NotFound as i32),
        other => panic!("third request of the batch: {other:?}"),
    }

    // eth2 on the same cluster.
    let pk = bls12_381::PublicKey::from_bytes(&cluster.eth2_public_key).unwrap();
    let resp = cluster
        .client(1, "seq-1")
        .await
        .sign(eth2_block(5, 1))
        .await
        .unwrap()
        .into_inner();
    // The signer computed the signing root of the typed header; the oracle computes it too.
    let (_, fork_info) =
        signer_node::client::eth2::newest_fork_info(&eth2_messages::NetworkSpec::mainnet());
    let expected = oracle::signing_root(
        oracle::header_root(5, 0, [0; 32], [0; 32], [1; 32]),
        oracle::domain(0, fork_info.fork.current_version, GVR),
    );
    assert_eq!(resp.signed_message, expected);
    let sig = bls12_381::Signature::from_bytes(&resp.signature).unwrap();
    assert!(sig.verify(&pk, &expected));
    assert!(resp.signature_text.starts_with("0x"));
    let err = cluster
        .client(2, "seq-1")
        .await
        .sign(eth2_block(5, 2))
        .await
        .unwrap_err();
    assert_eq!(refusal_code(&err).as_deref(), Some("double_block_proposal"));
    let err = cluster
        .client(3, "seq-1")
        .await
        .sign(eth2_block(4, 9))
        .await
        .unwrap_err();
    assert_eq!(
        refusal_code(&err).as_deref(),
        Some("block_slot_not_above_watermark")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conflicting_requests_racing_on_different_nodes_exactly_one_wins() {
    let cluster = Arc::new(Cluster::start(3).await);
    for round in 0..8u64 {
        let view = 100 + round;
        let mut tasks = Vec::new();
        for j in 0..6u8 {
            let cluster = cluster.clone();
            tasks.push(tokio::spawn(async move {
                let node = u64::from(j % 3) + 1;
                let client = format!("seq-{}", j % 3 + 1);
                let mut c = cluster.client(node, &client).await;
                (j, c.sign(quorum_vote(view, j, "")).await)
            }));
        }
        let mut winners = Vec::new();
        for t in tasks {
            let (j, result) = t.await.unwrap();
            match result {
                Ok(r) => winners.push((j, r.into_inner())),
                Err(e) => assert_eq!(
                    refusal_code(&e).as_deref(),
                    Some("equivocation"),
                    "round {round}: {e:?}"
                ),
            }
        }
        assert_eq!(
            winners.len(),
            1,
            "round {round}: exactly one of six conflicting requests is signed"
        );
        let (j, won) = &winners[0];
        assert!(verify_espresso(
            &cluster,
            &expected_quorum_message(view, *j),
            &won.signature
        ));
    }
}

/// One signature a client received: the message signed and the signature bytes.
type ReceivedSignature = ([u8; 32], Vec<u8>);

/// What clients actually received, for the independent checker.
#[derive(Default)]
struct Received {
    /// View → every signature received for that view.
    by_view: BTreeMap<u64, Vec<ReceivedSignature>>,
}

/// Independent checker: no two different messages signed for one view, every signature valid
/// over the message the client asked for.
fn check_no_double_sign(cluster: &Cluster, received: &Received) -> usize {
    let mut total = 0;
    for (view, sigs) in &received.by_view {
        let first = sigs[0].0;
        for (msg, sig) in sigs {
            total += 1;
            assert_eq!(*msg, first, "double sign at view {view}");
            assert!(
                verify_espresso(cluster, msg, sig),
                "bad signature at view {view}"
            );
        }
    }
    total
}

/// Clients sign continuously; views advance slowly so several clients race on each view
/// with different commitments. Returns (successes, successes after `mark` was set).
async fn load(
    cluster: Arc<Cluster>,
    clients: usize,
    stop: Arc<AtomicBool>,
    mark: Arc<AtomicBool>,
    received: Arc<Mutex<Received>>,
) -> (u64, u64) {
    let counter = Arc::new(AtomicU64::new(0));
    let ok = Arc::new(AtomicU64::new(0));
    let ok_after = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (cluster, stop, mark, received, counter, ok, ok_after) = (
            cluster.clone(),
            stop.clone(),
            mark.clone(),
            received.clone(),
            counter.clone(),
            ok.clone(),
            ok_after.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::SeqCst) {
                i += 1;
                let view = 1000 + counter.fetch_add(1, Ordering::SeqCst) / 3;
                let leaf = ((c as u64 + i) % 3) as u8;
                let node = (c as u64 + i) % 3 + 1;
                let mut client = cluster.client(node, "seq-1").await;
                if let Ok(resp) = client.sign(quorum_vote(view, leaf, "")).await {
                    let resp = resp.into_inner();
                    assert_eq!(resp.signed_message, expected_quorum_message(view, leaf));
                    ok.fetch_add(1, Ordering::SeqCst);
                    if mark.load(Ordering::SeqCst) {
                        ok_after.fetch_add(1, Ordering::SeqCst);
                    }
                    let msg: [u8; 32] = resp.signed_message.as_slice().try_into().unwrap();
                    received
                        .lock()
                        .unwrap()
                        .by_view
                        .entry(view)
                        .or_default()
                        .push((msg, resp.signature));
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    (ok.load(Ordering::SeqCst), ok_after.load(Ordering::SeqCst))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failover_under_load_resumes_and_never_double_signs() {
    let cluster_arc = Arc::new(Cluster::start(3).await);
    let leader = cluster_arc.wait_leader(Duration::from_secs(10)).await;
    let stop = Arc::new(AtomicBool::new(false));
    let mark = Arc::new(AtomicBool::new(false));
    let received = Arc::new(Mutex::new(Received::default()));
    let load_task = tokio::spawn(load(
        cluster_arc.clone(),
        6,
        stop.clone(),
        mark.clone(),
        received.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // SIGKILL the leader while clients keep signing.
    cluster_arc.kill(leader);
    let new_leader = cluster_arc.wait_leader(Duration::from_secs(15)).await;
    assert_ne!(new_leader, leader);
    mark.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(2000)).await;
    stop.store(true, Ordering::SeqCst);
    let (ok, ok_after) = load_task.await.unwrap();
    assert!(
        ok_after > 0,
        "signing resumed after failover ({ok} before and after)"
    );
    let checked = check_no_double_sign(&cluster_arc, &received.lock().unwrap());
    assert_eq!(checked as u64, ok);
    println!(
        "failover: {ok} signatures received ({ok_after} after the new leader), 0 conflicting pairs"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crash_of_every_node_keeps_every_acknowledged_watermark() {
    let cluster = Arc::new(Cluster::start(3).await);
    let stop = Arc::new(AtomicBool::new(false));
    let mark = Arc::new(AtomicBool::new(false));
    let received = Arc::new(Mutex::new(Received::default()));
    let load_task = tokio::spawn(load(
        cluster.clone(),
        6,
        stop.clone(),
        mark.clone(),
        received.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // SIGKILL all nodes mid-load.
    for id in 1..=3 {
        cluster.kill(id);
    }
    stop.store(true, Ordering::SeqCst);
    let (ok, _) = load_task.await.unwrap();
    assert!(ok > 0);
    for id in 1..=3 {
        cluster.spawn(id);
    }
    cluster.wait_leader(Duration::from_secs(30)).await;
    let acknowledged: HashMap<u64, [u8; 32]> = received
        .lock()
        .unwrap()
        .by_view
        .iter()
        .map(|(v, sigs)| (*v, sigs[0].0))
        .collect();
    let mut c = cluster.client(2, "seq-1").await;
    let mut refused = 0;
    for (view, msg) in &acknowledged {
        // A conflicting vote at every acknowledged view is refused after the restart.
        let other_leaf = (0..3u8)
            .find(|l| expected_quorum_message(*view, *l) != *msg)
            .unwrap();
        // Right after the restart the new leader may still answer UNAVAILABLE (retry, as
        // clients do); every refusal is decided through the log.
        let err = sign_retrying(&mut c, quorum_vote(*view, other_leaf, ""))
            .await
            .unwrap_err();
        let code = refusal_code(&err);
        assert!(
            code.as_deref() == Some("equivocation")
                || code.as_deref() == Some("view_below_watermark"),
            "view {view}: {err:?}"
        );
        refused += 1;
    }
    assert_eq!(refused, acknowledged.len());
    check_no_double_sign(&cluster, &received.lock().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_inputs_get_clear_statuses_and_change_nothing() {
    let cluster = Cluster::start(3).await;
    let mut c = cluster.client(1, "seq-1").await;
    let code = |r: Result<tonic::Response<pb::SignResponse>, tonic::Status>| r.unwrap_err().code();

    let mut unknown = quorum_vote(5, 1, "");
    unknown.key_id = "no-such-key".into();
    assert_eq!(code(c.sign(unknown).await), tonic::Code::NotFound);

    let mut wrong_profile = eth2_block(5, 1);
    wrong_profile.key_id = ESPRESSO_KEY.into();
    assert_eq!(
        code(c.sign(wrong_profile).await),
        tonic::Code::InvalidArgument
    );

    let mut short = quorum_vote(5, 1, "");
    if let Some(pb::sign_request::Message::Espresso(m)) = &mut short.message {
        if let Some(pb::espresso_message::Kind::QuorumVote(q)) = &mut m.kind {
            q.leaf_commit.pop();
        }
    }
    let err = c.sign(short).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("leaf_commit"), "{}", err.message());

    let mut missing = quorum_vote(5, 1, "");
    missing.message = None;
    assert_eq!(code(c.sign(missing).await), tonic::Code::InvalidArgument);

    let long_id = quorum_vote(5, 1, &"x".repeat(65));
    assert_eq!(code(c.sign(long_id).await), tonic::Code::InvalidArgument);

    // A typed eth2 block for another network.
    let mut sepolia_block =
        signer_node::client::eth2::block(&eth2_messages::NetworkSpec::sepolia(), 5, [0; 32]);
    if let eth2_messages::Eth2Message::BlockV2 { fork_info, .. } = &mut sepolia_block {
        assert_ne!(fork_info.genesis_validators_root, GVR);
    }
    let other_network = pb::SignRequest {
        request_id: String::new(),
        key_id: ETH2_KEY.into(),
        message: Some(signer_node::client::eth2::typed(&sepolia_block, None)),
    };
    let err = c.sign(other_network).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(
        err.message().starts_with("eth2.typed: ") && err.message().contains("genesis"),
        "{err:?}"
    );

    // Oversized message.
    let huge = pb::SignRequest {
        request_id: String::new(),
        key_id: ESPRESSO_KEY.into(),
        message: Some(pb::sign_request::Message::Espresso(pb::EspressoMessage {
            kind: Some(pb::espresso_message::Kind::DaProposal(pb::DaProposal {
                view: 5,
                encoded_transactions: vec![0; 5 * 1024 * 1024],
            })),
        })),
    };
    let err = c.sign(huge).await.unwrap_err();
    assert!(
        matches!(
            err.code(),
            tonic::Code::OutOfRange | tonic::Code::ResourceExhausted
        ),
        "{err:?}"
    );

    // Nothing above changed the state: view 5 and slot 5 are still free.
    c.sign(quorum_vote(5, 1, "")).await.unwrap();
    c.sign(eth2_block(5, 1)).await.unwrap();

    // A client certificate from another CA is rejected by the TLS handshake.
    let other = tempfile::tempdir().unwrap();
    let other_pki = signer_node::tls::DevPki::create(other.path(), &[], &["seq-1"]).unwrap();
    let foreign = signer_node::tls::TlsMaterial::read(
        &cluster.pki.ca_cert_path(),
        &other_pki.client_cert_path("seq-1"),
        &other_pki.client_key_path("seq-1"),
    )
    .unwrap();
    let channel =
        tonic::transport::Endpoint::from_shared(format!("https://{}", cluster.node(1).client_addr))
            .unwrap()
            .tls_config(foreign.client_config("node-1").unwrap())
            .unwrap()
            .connect_lazy();
    let err = pb::signer_client::SignerClient::new(channel)
        .sign(quorum_vote(6, 1, ""))
        .await
        .unwrap_err();
    assert_ne!(err.code(), tonic::Code::Ok);

    // No client certificate at all.
    let ca =
        tonic::transport::Certificate::from_pem(std::fs::read(cluster.pki.ca_cert_path()).unwrap());
    let anon = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(ca)
        .domain_name("node-1");
    let channel =
        tonic::transport::Endpoint::from_shared(format!("https://{}", cluster.node(1).client_addr))
            .unwrap()
            .tls_config(anon)
            .unwrap()
            .connect_lazy();
    assert!(pb::signer_client::SignerClient::new(channel)
        .sign(quorum_vote(6, 1, ""))
        .await
        .is_err());

    // A client certificate on the peer port is not a node.
    let peer_as_client =
        tonic::transport::Endpoint::from_shared(format!("https://{}", cluster.node(1).peer_addr))
            .unwrap()
            .tls_config(cluster.tls("seq-1").client_config("node-1").unwrap())
            .unwrap()
            .connect_lazy();
    let err = pb::raft_client::RaftClient::new(peer_as_client)
        .vote(pb::RaftMessage {
            payload: b"{}".to_vec(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied);

    // Node 2's certificate speaking for node 3 is refused.
    let node2 = signer_node::tls::TlsMaterial::read(
        &cluster.pki.ca_cert_path(),
        &cluster.pki.node_cert_path(2),
        &cluster.pki.node_key_path(2),
    )
    .unwrap();
    let channel =
        tonic::transport::Endpoint::from_shared(format!("https://{}", cluster.node(1).peer_addr))
            .unwrap()
            .tls_config(node2.client_config("node-1").unwrap())
            .unwrap()
            .connect_lazy();
    let forged = openraft::raft::VoteRequest::<signer_node::replica::TypeConfig>::new(
        signer_node::replica::Vote::new(99, 3),
        None,
    );
    let err = pb::raft_client::RaftClient::new(channel)
        .vote(pb::RaftMessage {
            payload: signer_node::format::encode(&forged).unwrap(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");
    // The cluster kept its leader and term through all of this.
    let status = cluster
        .client(1, "seq-1")
        .await
        .get_cluster_status(pb::GetClusterStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(status.term < 99);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn health_flips_to_not_serving_when_the_node_loses_its_leader_and_reflection_lists_services()
{
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;
    let cluster = Cluster::start(3).await;
    let leader = cluster.wait_leader(Duration::from_secs(10)).await;
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    let status = |id: u64| {
        let channel = cluster.channel(id, "seq-1");
        async move {
            HealthClient::new(channel)
                .check(HealthCheckRequest {
                    service: "signer.v1.Signer".into(),
                })
                .await
                .map(|r| r.into_inner().status)
        }
    };
    let wait_for = |id: u64, want: ServingStatus| {
        let status = &status;
        async move {
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            loop {
                if status(id).await.ok() == Some(want as i32) {
                    return;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "node {id} never became {want:?}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    wait_for(follower, ServingStatus::Serving).await;
    wait_for(leader, ServingStatus::Serving).await;

    // Reflection: grpcurl-style listing of the services on the client port.
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = ServerReflectionClient::new(cluster.channel(1, "seq-1"))
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .unwrap()
        .into_inner();
    let response = responses.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected reflection answer {response:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for service in ["signer.v1.Signer", "signer.v1.Admin"] {
        assert!(names.iter().any(|n| n == service), "{names:?}");
    }

    // The follower loses its leader (and any quorum): NOT_SERVING.
    for id in (1..=3).filter(|id| *id != follower) {
        cluster.kill(id);
    }
    wait_for(follower, ServingStatus::NotServing).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn json_logs_carry_the_request_id_through_the_sign_path() {
    let cluster = Cluster::start(3).await;
    let leader = cluster.wait_leader(Duration::from_secs(10)).await;
    // Restart a follower with --log-json at debug level and sign through it: the request id
    // must appear in its JSON log lines (span fields), and every line must be JSON.
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    cluster.kill(follower);
    let before = cluster.log_of(follower).len();
    std::env::set_var("RUST_LOG", "info,signer=debug,openraft=warn");
    cluster.spawn_with_args(follower, &["--log-json"]);
    std::env::remove_var("RUST_LOG");
    cluster
        .wait_all("follower back", |s| {
            s.leader_id != 0 && s.keys_loaded.len() == 2
        })
        .await;
    let mut client = cluster.client(follower, "seq-1").await;
    sign_retrying(&mut client, quorum_vote(77, 1, "req-4242"))
        .await
        .unwrap();
    let log = cluster.log_of(follower)[before..].to_owned();
    let mut saw_request = false;
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        if line.contains("req-4242") {
            saw_request = true;
            assert!(
                v["span"]["request_id"] == "req-4242"
                    || v["spans"].to_string().contains("req-4242"),
                "{line}"
            );
        }
    }
    assert!(
        saw_request,
        "the request id never appeared in the JSON log:\n{log}"
    );
}
