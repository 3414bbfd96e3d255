//! Multi-node tests against real `signer node` processes: mutual TLS, Raft over loopback,
//! redb with fsync. Each test starts its own cluster on free loopback ports. Every message a
//! signature is checked against comes from `oracle/` (HotShot's committable layouts and the
//! eth2 signing root written from the specs) or from Espresso's own vectors
//! (`tests/vectors/espresso/vectors.json`), never from the signer's digest code.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod oracle;
mod support;

use signer_node::pb;
use signer_node::scheme::{bls12_381, bn254};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::*;
use tonic::Code;

/// The message HotShot signs for a v1 quorum vote for leaf `[leaf; 32]` at `view`, as the
/// oracle computes it.
fn expected_quorum_message(view: u64, leaf: u8) -> [u8; 32] {
    oracle::requests::quorum_vote_digest(view, leaf)
}

fn verify_espresso(cluster: &Cluster, msg: &[u8; 32], sig: &[u8]) -> bool {
    let pk = bn254::PublicKey::from_bytes(&cluster.espresso_public_key).unwrap();
    bn254::Signature::from_bytes(sig)
        .map(|s| s.verify(&pk, msg))
        .unwrap_or(false)
}

/// The refusal of a quorum vote for leaf `requested` at `view` where the vote for leaf
/// `signed` was signed: both commitments named (the oracle's digests).
fn equivocation(view: u64, signed: u8, requested: u8) -> Option<(String, String)> {
    Some((
        "equivocation".into(),
        format!(
            "quorum-vote at view {view}: commitment 0x{} was signed there; this request's \
             commitment is 0x{}",
            hex::encode(expected_quorum_message(view, signed)),
            hex::encode(expected_quorum_message(view, requested))
        ),
    ))
}

/// Whether `status` refuses the vote for leaf `requested` at `view` as an equivocation with
/// the vote for one of the other leaves `0..leaves` (which one won is not known here).
fn is_equivocation(status: &tonic::Status, view: u64, requested: u8, leaves: u8) -> bool {
    let refused = refusal(status);
    (0..leaves)
        .filter(|l| *l != requested)
        .any(|signed| refused == equivocation(view, signed, requested))
}

/// The refusal of a quorum vote at `view` below the last signed view `last`, where the vote
/// for leaf `last_leaf` was signed.
fn below_watermark(view: u64, last: u64, last_leaf: u8) -> Option<(String, String)> {
    Some((
        "view_below_watermark".into(),
        format!(
            "quorum-vote at view {view} is below the last signed view {last} (commitment 0x{} \
             was signed there)",
            hex::encode(expected_quorum_message(last, last_leaf))
        ),
    ))
}

/// The last signed view a `view_below_watermark` refusal of a quorum vote at `view` names,
/// when the commitment it names is the vote for one of the leaves `0..3` at that view.
fn refused_below(status: &tonic::Status, view: u64) -> Option<u64> {
    let (code, message) = refusal(status)?;
    let prefix = format!("quorum-vote at view {view} is below the last signed view ");
    let (last, _) = message.strip_prefix(&prefix)?.split_once(' ')?;
    let last: u64 = last.parse().ok()?;
    let named = (0..3u8)
        .any(|leaf| Some((code.clone(), message.clone())) == below_watermark(view, last, leaf));
    (code == "view_below_watermark" && named).then_some(last)
}

/// Espresso's own v1 quorum vote commitments (`verified` entries of the vendored vectors):
/// (view, leaf commitment, the message HotShot signed).
fn verified_quorum_votes() -> Vec<(u64, [u8; 32], [u8; 32])> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/vectors/espresso/vectors.json"
    );
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let hex32 = |v: &serde_json::Value| -> [u8; 32] {
        let s = v.as_str().unwrap();
        hex::decode(s.strip_prefix("0x").unwrap_or(s))
            .unwrap()
            .try_into()
            .unwrap()
    };
    let votes: Vec<_> = doc["vote_commitments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["provenance"].as_str().unwrap().starts_with("verified"))
        .filter_map(|v| {
            let q = v["message"].get("quorum_vote")?;
            let data = q["data"].as_object().unwrap();
            assert_eq!(data.len(), 1, "a v1 vote has only the leaf: {q}");
            Some((
                q["view"].as_u64().unwrap(),
                hex32(&data["leaf_commit"]),
                hex32(&v["signing_message_hex"]),
            ))
        })
        .collect();
    assert_eq!(votes.len(), 3, "the vectors file changed: {votes:?}");
    votes
}

/// A v1 quorum vote for the leaf commitment `leaf` at `view`.
fn quorum_vote_for(view: u64, leaf: [u8; 32]) -> pb::SignRequest {
    let mut request = quorum_vote(view, 0, "");
    if let Some(pb::sign_request::Message::Espresso(m)) = &mut request.message {
        if let Some(pb::espresso_message::Kind::QuorumVote(q)) = &mut m.kind {
            q.leaf_commit = leaf.to_vec();
        }
    }
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn signs_on_every_node_refuses_conflicts_and_resigns_identical_requests() {
    let cluster = Cluster::start(3).await;
    // Espresso's own commitments: the oracle agrees with every one, and the cluster signs
    // exactly HotShot's message for the view-12 vote.
    let vectors = verified_quorum_votes();
    for (view, leaf, message) in &vectors {
        assert_eq!(oracle::vote(oracle::quorum_data(*leaf), *view), *message);
    }
    let (view, leaf, message) = vectors.iter().find(|v| v.0 == 12).unwrap();
    let resp = cluster
        .client(1, "seq-1")
        .await
        .sign(quorum_vote_for(*view, *leaf))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.signed_message, message);
    assert!(verify_espresso(&cluster, message, &resp.signature));

    // Every node answers (followers forward to the leader).
    for id in 1..=3u64 {
        let mut c = cluster.client(id, "seq-1").await;
        let view = 12 + id;
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
    let err = c.sign(quorum_vote(15, 2, "")).await.unwrap_err();
    assert_eq!(refusal(&err), equivocation(15, 1, 2), "{err:?}");
    // Below the watermark.
    let err = c.sign(quorum_vote(14, 1, "")).await.unwrap_err();
    assert_eq!(refusal(&err), below_watermark(14, 15, 1), "{err:?}");
    // Identical request: the identical signature, marked as a re-sign.
    let first = cluster
        .client(3, "seq-1")
        .await
        .sign(quorum_vote(20, 7, ""))
        .await
        .unwrap()
        .into_inner();
    assert!(!first.resigned);
    let again = cluster
        .client(1, "seq-3")
        .await
        .sign(quorum_vote(20, 7, ""))
        .await
        .unwrap()
        .into_inner();
    assert!(again.resigned);
    assert_eq!(first.signature, again.signature);
    assert_eq!(again.signed_message, expected_quorum_message(20, 7));

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
    let expected = oracle::requests::support_block_root(5, 1);
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
    let double_proposal = Some((
        "double_block_proposal".to_owned(),
        format!(
            "double block proposal at slot 5: block 0x{} was signed there; this request's \
             signing root is 0x{}",
            hex::encode(oracle::requests::support_block_root(5, 1)),
            hex::encode(oracle::requests::support_block_root(5, 2))
        ),
    ));
    assert_eq!(refusal(&err), double_proposal, "{err:?}");
    let err = cluster
        .client(3, "seq-1")
        .await
        .sign(eth2_block(4, 9))
        .await
        .unwrap_err();
    assert_eq!(
        refusal(&err),
        Some((
            "block_slot_not_above_watermark".to_owned(),
            "block slot 4 is at or below the block watermark 5".to_owned()
        )),
        "{err:?}"
    );

    // SignBatch: each request decided on its own, results in request order. (The requests
    // are decided concurrently, so each conflicts only with what was signed before the batch.)
    let mut unknown = quorum_vote(31, 1, "");
    unknown.key_id = "no-such-key".into();
    let batch = cluster
        .client(2, "seq-1")
        .await
        .sign_batch(pb::SignBatchRequest {
            requests: vec![quorum_vote(30, 1, ""), eth2_block(5, 2), unknown],
        })
        .await
        .unwrap()
        .into_inner()
        .results;
    assert_eq!(batch.len(), 3);
    use pb::sign_batch_result::Result as R;
    match &batch[0].result {
        Some(R::Signed(s)) => {
            assert_eq!(s.signed_message, expected_quorum_message(30, 1));
            assert!(verify_espresso(
                &cluster,
                &expected_quorum_message(30, 1),
                &s.signature
            ));
        }
        other => panic!("first request of the batch: {other:?}"),
    }
    match &batch[1].result {
        Some(R::Error(e)) => {
            assert_eq!(e.code, Code::FailedPrecondition as i32, "{e:?}");
            let refusal = e
                .refusal
                .as_ref()
                .map(|r| (r.code.clone(), r.message.clone()));
            assert_eq!(refusal, double_proposal, "{e:?}");
        }
        other => panic!("second request of the batch: {other:?}"),
    }
    match &batch[2].result {
        Some(R::Error(e)) => {
            assert_eq!(e.code, Code::NotFound as i32, "{e:?}");
            assert_eq!(
                e.message,
                "key_id: no active key \"no-such-key\" on this cluster"
            );
            assert_eq!(e.refusal, None);
        }
        other => panic!("third request of the batch: {other:?}"),
    }
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
                Err(e) => assert!(is_equivocation(&e, view, j, 6), "round {round}: {e:?}"),
            }
        }
        assert_eq!(
            winners.len(),
            1,
            "round {round}: exactly one of six conflicting requests is signed"
        );
        let (j, won) = &winners[0];
        assert_eq!(won.signed_message, expected_quorum_message(view, *j));
        assert!(verify_espresso(
            &cluster,
            &expected_quorum_message(view, *j),
            &won.signature
        ));
    }
}

/// One signature a client received: the message signed and the signature bytes.
type ReceivedSignature = ([u8; 32], Vec<u8>);

/// What the load's clients got, by class. Every request ends in exactly one class.
#[derive(Debug, Default)]
struct Tally {
    /// Signed (the message checked against the oracle's).
    signed: u64,
    /// Signed, of the requests sent after the mark was set.
    signed_after_mark: u64,
    /// Refused: `equivocation` naming the requested view.
    equivocation: u64,
    /// Refused: `view_below_watermark` naming the requested view and a higher signed one.
    below_watermark: u64,
    /// UNAVAILABLE from a running node (no leader, leader unreachable, outcome unknown).
    unavailable: u64,
    /// A transport failure calling a node that was no longer running.
    node_down: u64,
    /// Anything else (the test fails on any): what was asked and what came back.
    unexpected: Vec<String>,
}

/// What clients actually received, for the independent checker, and how each request ended.
#[derive(Default)]
struct Received {
    /// View → every signature received for that view.
    by_view: BTreeMap<u64, Vec<ReceivedSignature>>,
    tally: Tally,
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

/// Record how one request of the load ended.
fn record(
    cluster: &Cluster,
    received: &Mutex<Received>,
    (node, view, leaf, after_mark): (u64, u64, u8, bool),
    result: Result<pb::SignResponse, tonic::Status>,
) {
    let mut received = received.lock().unwrap();
    match result {
        Ok(resp) => {
            let expected = expected_quorum_message(view, leaf);
            if resp.signed_message != expected {
                received.tally.unexpected.push(format!(
                    "view {view} leaf {leaf} on node {node}: signed {} instead of {}",
                    hex::encode(&resp.signed_message),
                    hex::encode(expected)
                ));
                return;
            }
            received.tally.signed += 1;
            if after_mark {
                received.tally.signed_after_mark += 1;
            }
            received
                .by_view
                .entry(view)
                .or_default()
                .push((expected, resp.signature));
        }
        Err(s) if is_equivocation(&s, view, leaf, 3) => received.tally.equivocation += 1,
        Err(s) if refused_below(&s, view).is_some_and(|last| last > view) => {
            received.tally.below_watermark += 1;
        }
        Err(s) if is_transport_failure(&s) && !cluster.running().contains(&node) => {
            received.tally.node_down += 1;
        }
        Err(s) if s.code() == Code::Unavailable && !is_transport_failure(&s) => {
            received.tally.unavailable += 1;
        }
        Err(s) => received
            .tally
            .unexpected
            .push(format!("view {view} leaf {leaf} on node {node}: {s:?}")),
    }
}

/// Clients sign continuously until `stop`; views advance slowly so several clients race on
/// each view with different commitments. Every answer is recorded in `received`.
async fn load(
    cluster: Arc<Cluster>,
    clients: usize,
    stop: Arc<AtomicBool>,
    mark: Arc<AtomicBool>,
    received: Arc<Mutex<Received>>,
) {
    let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (cluster, stop, mark, received, counter) = (
            cluster.clone(),
            stop.clone(),
            mark.clone(),
            received.clone(),
            counter.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::SeqCst) {
                i += 1;
                let view = 1000 + counter.fetch_add(1, Ordering::SeqCst) / 3;
                let leaf = ((c as u64 + i) % 3) as u8;
                let node = (c as u64 + i) % 3 + 1;
                let after_mark = mark.load(Ordering::SeqCst);
                let mut client = cluster.client(node, "seq-1").await;
                let result = client
                    .sign(quorum_vote(view, leaf, ""))
                    .await
                    .map(tonic::Response::into_inner);
                let answered =
                    result.is_ok() || result.as_ref().is_err_and(|s| refusal(s).is_some());
                record(&cluster, &received, (node, view, leaf, after_mark), result);
                if !answered {
                    // No leader or no node: back off a little, as real clients do.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// Wait until the load's tally satisfies `done`; fails after `within`.
async fn wait_tally(
    received: &Mutex<Received>,
    what: &str,
    within: Duration,
    done: impl Fn(&Tally) -> bool,
) {
    let deadline = Instant::now() + within;
    loop {
        {
            let received = received.lock().unwrap();
            if done(&received.tally) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not within {within:?}: {:?}",
                received.tally
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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
    wait_tally(
        &received,
        "30 signatures before the kill",
        Duration::from_secs(30),
        |t| t.signed >= 30,
    )
    .await;
    // SIGKILL the leader while clients keep signing.
    cluster_arc.kill(leader);
    let new_leader = cluster_arc.wait_leader(Duration::from_secs(15)).await;
    assert_ne!(new_leader, leader);
    // Signing resumes: requests sent after the new leader is known get signed.
    mark.store(true, Ordering::SeqCst);
    wait_tally(
        &received,
        "30 signatures of requests sent after the failover",
        Duration::from_secs(30),
        |t| t.signed_after_mark >= 30,
    )
    .await;
    stop.store(true, Ordering::SeqCst);
    load_task.await.unwrap();
    let received = received.lock().unwrap();
    let tally = &received.tally;
    assert!(tally.unexpected.is_empty(), "{tally:#?}");
    let checked = check_no_double_sign(&cluster_arc, &received);
    assert_eq!(checked as u64, tally.signed);
    println!("failover: {tally:?}, 0 conflicting pairs");
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
    wait_tally(
        &received,
        "30 signatures before the crash",
        Duration::from_secs(30),
        |t| t.signed >= 30,
    )
    .await;
    // SIGKILL all nodes mid-load.
    for id in 1..=3 {
        cluster.kill(id);
    }
    stop.store(true, Ordering::SeqCst);
    load_task.await.unwrap();
    {
        let received = received.lock().unwrap();
        assert!(
            received.tally.unexpected.is_empty(),
            "{:#?}",
            received.tally
        );
        println!("before the crash: {:?}", received.tally);
    }
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
    let highest = *acknowledged.keys().max().unwrap();
    let mut c = cluster.client(2, "seq-1").await;
    // A conflicting vote at every acknowledged view is refused after the restart. The last
    // signed view `last` is at least the highest acknowledged one (a signature may have been
    // committed and its answer lost in the crash); below it the refusal is the watermark's,
    // at it an equivocation. Refusals change nothing, so every one names the same `last`.
    let mut last_named = None;
    let mut refused = 0;
    let mut views: Vec<u64> = acknowledged.keys().copied().collect();
    views.sort();
    for view in views {
        let msg = acknowledged[&view];
        let other_leaf = (0..3u8)
            .find(|l| expected_quorum_message(view, *l) != msg)
            .unwrap();
        // Right after the restart the new leader may still answer UNAVAILABLE (retry, as
        // clients do); every refusal is decided through the log.
        let err = sign_retrying(&mut c, quorum_vote(view, other_leaf, ""))
            .await
            .unwrap_err();
        match refused_below(&err, view) {
            Some(last) => {
                assert!(last >= highest, "view {view}: {err:?}");
                assert_eq!(
                    *last_named.get_or_insert(last),
                    last,
                    "view {view}: {err:?}"
                );
            }
            None => {
                assert!(
                    is_equivocation(&err, view, other_leaf, 3),
                    "view {view}: {err:?}"
                );
                assert_eq!(
                    view, highest,
                    "an equivocation only at the last view: {err:?}"
                );
                assert_eq!(*last_named.get_or_insert(view), view, "{err:?}");
            }
        }
        refused += 1;
    }
    assert_eq!(refused, acknowledged.len());
    check_no_double_sign(&cluster, &received.lock().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_inputs_get_clear_statuses_and_change_nothing() {
    let cluster = Cluster::start(3).await;
    let mut c = cluster.client(1, "seq-1").await;
    let status = |r: Result<tonic::Response<pb::SignResponse>, tonic::Status>| {
        let s = r.unwrap_err();
        (s.code(), s.message().to_owned())
    };

    let mut unknown = quorum_vote(5, 1, "");
    unknown.key_id = "no-such-key".into();
    assert_eq!(
        status(c.sign(unknown).await),
        (
            Code::NotFound,
            "key_id: no active key \"no-such-key\" on this cluster".to_owned()
        )
    );

    let mut wrong_profile = eth2_block(5, 1);
    wrong_profile.key_id = ESPRESSO_KEY.into();
    assert_eq!(
        status(c.sign(wrong_profile).await),
        (
            Code::InvalidArgument,
            format!("message: key {ESPRESSO_KEY:?} is a espresso key; this is a eth2 request")
        )
    );

    let mut short = quorum_vote(5, 1, "");
    if let Some(pb::sign_request::Message::Espresso(m)) = &mut short.message {
        if let Some(pb::espresso_message::Kind::QuorumVote(q)) = &mut m.kind {
            q.leaf_commit.pop();
        }
    }
    assert_eq!(
        status(c.sign(short).await),
        (
            Code::InvalidArgument,
            "espresso.quorum_vote.leaf_commit: expected 32 bytes, got 31".to_owned()
        )
    );

    let mut missing = quorum_vote(5, 1, "");
    missing.message = None;
    assert_eq!(
        status(c.sign(missing).await),
        (Code::InvalidArgument, "message: missing".to_owned())
    );

    let long_id = quorum_vote(5, 1, &"x".repeat(65));
    assert_eq!(
        status(c.sign(long_id).await),
        (
            Code::InvalidArgument,
            "request_id: longer than 64 bytes".to_owned()
        )
    );

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
    assert_eq!(err.code(), Code::InvalidArgument);
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
    // The server's gRPC decoder refuses it (4 MiB limit) before the sign path sees it.
    assert_eq!(err.code(), Code::OutOfRange, "{err:?}");
    assert!(
        err.message()
            .starts_with("Error, decoded message length too large: found 5242912 bytes")
            && err.message().ends_with("the limit is: 4194304 bytes"),
        "{err:?}"
    );

    // Nothing above changed the state: view 5 and slot 5 are still free.
    let signed = c.sign(quorum_vote(5, 1, "")).await.unwrap().into_inner();
    assert!(!signed.resigned);
    assert_eq!(signed.signed_message, expected_quorum_message(5, 1));
    let signed = c.sign(eth2_block(5, 1)).await.unwrap().into_inner();
    assert!(!signed.resigned);
    assert_eq!(
        signed.signed_message,
        oracle::requests::support_block_root(5, 1)
    );

    // A client certificate from another CA is rejected by the TLS handshake: the server ends
    // it with `unknown_ca`, and the gRPC call fails below any service.
    let other = tempfile::tempdir().unwrap();
    let other_pki = signer_node::tls::DevPki::create(other.path(), &[], &["seq-1"]).unwrap();
    let alert = handshake_alert(
        cluster.node(1).client_addr,
        "node-1",
        &cluster.pki.ca_cert_path(),
        Some((
            &other_pki.client_cert_path("seq-1"),
            &other_pki.client_key_path("seq-1"),
        )),
    )
    .await;
    assert_eq!(alert, Ok(rustls::AlertDescription::UnknownCA));
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
    assert!(is_transport_failure(&err), "{err:?}");

    // No client certificate at all: `certificate_required`.
    let alert = handshake_alert(
        cluster.node(1).client_addr,
        "node-1",
        &cluster.pki.ca_cert_path(),
        None,
    )
    .await;
    assert_eq!(alert, Ok(rustls::AlertDescription::CertificateRequired));
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
    let err = pb::signer_client::SignerClient::new(channel)
        .sign(quorum_vote(6, 1, ""))
        .await
        .unwrap_err();
    assert!(is_transport_failure(&err), "{err:?}");
    // Neither reached the sign path: view 6 is still free.
    let signed = c.sign(quorum_vote(6, 1, "")).await.unwrap().into_inner();
    assert!(!signed.resigned);

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
    assert_eq!(
        (err.code(), err.message()),
        (Code::PermissionDenied, "\"seq-1\" is not a node identity"),
        "{err:?}"
    );

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
    assert_eq!(
        (err.code(), err.message()),
        (
            Code::PermissionDenied,
            "node 2 sent a message on behalf of node 3"
        ),
        "{err:?}"
    );
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

/// A node whose Raft stopped says NOT_SERVING (gRPC health, the metric, `/upcheck`), never a stale
/// SERVING. The stop is provoked the way an operator would: a follower's data directory wiped
/// and the follower restarted, which the leader's Raft refuses by stopping (a log that went
/// backwards).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_whose_raft_stopped_exits_for_its_supervisor_to_restart() {
    let cluster = Cluster::start(3).await;
    let leader = cluster.wait_leader(Duration::from_secs(10)).await;
    let mut client = cluster.client(leader, "seq-1").await;
    for view in 1..=5 {
        sign_retrying(&mut client, quorum_vote(view, 1, ""))
            .await
            .unwrap();
    }
    // A follower whose log went backwards (its data directory wiped) makes the leader's Raft
    // stop for good (openraft's log-reversion check): the leader must not stay up answering
    // as if it could serve, but exit with an error so that its supervisor restarts it.
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    cluster.kill(follower);
    let config =
        signer_node::config::NodeConfig::load(&cluster.node(follower).config_path).unwrap();
    std::fs::remove_dir_all(&config.data_dir).unwrap();
    cluster.spawn(follower);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        let exited = {
            let mut child = cluster.node(leader).child.lock().unwrap();
            child.as_mut().and_then(|c| c.try_wait().unwrap())
        };
        if let Some(status) = exited {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "leader {leader} still running\n{}",
            cluster.log_of(leader)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(status.code(), Some(1), "{}", cluster.log_of(leader));
    let log = cluster.log_of(leader);
    assert!(log.contains("log reversion"), "{log}");
    assert!(
        log.contains("the Raft core stopped; stopping the node"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn json_logs_carry_the_request_id_through_the_sign_path() {
    let cluster = Cluster::start(3).await;
    let leader = cluster.wait_leader(Duration::from_secs(10)).await;
    // Restart a follower with --log-json at debug level and sign through it: the request id
    // must appear in its JSON log lines (span fields), and every line must be JSON.
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    cluster.kill(follower);
    let plain = cluster.log_of(follower);
    assert!(plain.contains(" INFO "), "{plain}");
    // stderr is a file, not a terminal: no colour codes in it.
    assert!(
        !plain.contains('\u{1b}'),
        "ANSI escapes in a log file:\n{plain}"
    );
    let before = plain.len();
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
