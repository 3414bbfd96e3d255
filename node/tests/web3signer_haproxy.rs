//! Failover for validator clients that take one signer URL: Debian's HAProxy (the config in
//! `data/web3signer-haproxy.cfg`) in front of a 3-node cluster's Web3Signer-compatible API, TLS
//! passed through so the client certificate stays the identity, `/upcheck` health checks
//! choosing the node. A validator-like client signs blocks and attestations through HAProxy
//! while the leader is SIGKILLed twice (first the node HAProxy sends to, then another one), and
//! each killed node is started again.
//!
//! What must hold:
//! - every answer is 200 or 412, except in the gap after each kill: 503s and transport errors
//!   are allowed from the SIGKILL until the client has signed for 2 s without one; only then is
//!   the node started again, and a failure after that fails the test. The gap (from the kill to
//!   the first answer after its last failure) must end within 15 s, a bound, not a target; it
//!   is printed with a timeline of what the client, HAProxy and each node's `/upcheck` saw;
//! - every 200 carries a signature that verifies against the signing root the test computes
//!   itself from the JSON it sent (the oracle's SSZ from the specs, checked against the
//!   remerkleable vectors);
//! - no slot and no attestation target has two different signed roots; identical data always
//!   gets the identical signature;
//! - the 412s are exactly the deliberately conflicting requests, each with its reason code. A
//!   retry of an ambiguous failure (a transport error or a 503: the request may have been
//!   committed) re-sends the identical request and must be re-signed, never refused; a
//!   *different* message for that slot or target afterwards is one of the conflicting requests;
//! - at the end every node exports the protection state the client saw.
//!
//! HAProxy is started by the test and killed when it ends (also on panic). A missing
//! `/usr/sbin/haproxy` fails the test (`./test.sh` installs it); it is never skipped.
//!
//! The parts, in `web3signer_haproxy/`: `roots` (the signing roots computed here), `validator`
//! (the validator-like client and its attempt log), `haproxy` (the HAProxy process, its stats
//! socket and the state recorder) and `checks` (the assertions over the attempt log and the
//! export). This file holds the test's parameters and the test itself.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

// A test crate's root resolves `mod x;` beside itself (`tests/x.rs`), so the parts are named
// by path.
#[path = "web3signer_haproxy/checks.rs"]
mod checks;
#[path = "web3signer_haproxy/haproxy.rs"]
mod haproxy;
mod oracle;
#[path = "web3signer_haproxy/roots.rs"]
mod roots;
mod support;
#[path = "web3signer_haproxy/validator.rs"]
mod validator;

use checks::{
    check_answers, check_export, check_requests, check_signatures, client_events, describe_gaps,
    gap, Kill,
};
use haproxy::{record_states, server_states, tail, Haproxy};
use roots::{check_signing_roots_against_vectors, signing_root_of};
use signer_node::client::web3signer::Web3SignerConnection;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::Cluster;
use validator::{hex0x, secs, Attempt, Duty, Outcome, Validator};

/// Mainnet-like positions, in electra (fork epoch 364032, before fulu).
const START_SLOT: u64 = 11_700_000;
const START_TARGET: u64 = 365_700;
/// How long one request is retried after transport errors and 503s before the client gives
/// up on it (it is then "possibly signed").
const RETRY_BUDGET: Duration = Duration::from_secs(20);
/// The longest gap after a kill the test accepts (a bound, not a timing target).
const MAX_GAP: Duration = Duration::from_secs(15);
/// A connection is replaced after this many requests, as client pools do, so new connections
/// follow HAProxy's current choice of node.
const REQUESTS_PER_CONNECTION: u32 = 25;
/// How long the client must sign without a failure before a gap counts as over.
const STABLE: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_fails_over_between_nodes_without_conflicting_signatures() {
    let vector_cases = check_signing_roots_against_vectors();
    let cluster = Cluster::start(3).await;
    let t0 = Instant::now();
    // The leader first: `balance first` sends everything to it, so the first kill hits the node
    // HAProxy uses (the second kill then hits a node HAProxy does not use).
    let leader = cluster.wait_leader(Duration::from_secs(15)).await;
    let mut order = vec![leader];
    order.extend((1..=3).filter(|id| *id != leader));
    let mut haproxy = Haproxy::start(&cluster, &order);
    let all = haproxy.order.clone();
    haproxy.wait_up(&all, Duration::from_secs(20)).await;

    // Health through HAProxy, and the first request of each kind checked against the signer's
    // own parser (so a 400 would be the server's, not a malformed body here).
    let tls = cluster.tls("seq-1");
    let mut conn = Web3SignerConnection::connect(haproxy.addr, Some((&tls, "localhost")))
        .await
        .unwrap();
    let up = conn.get("/upcheck", None).await.unwrap();
    assert_eq!((up.status, up.text().trim()), (200, "OK"), "{up:?}");
    drop(conn);
    let first_block = Duty::Block {
        slot: START_SLOT,
        variant: 0,
    };
    let first_vote = Duty::Attestation {
        target: START_TARGET,
        variant: 0,
    };
    for duty in [first_block, first_vote] {
        let body = serde_json::to_vec(&duty.body()).unwrap();
        let (message, _) = eth2_messages::parse_web3signer(&body).unwrap();
        let theirs = message
            .signing_root(&eth2_messages::NetworkSpec::mainnet())
            .unwrap();
        assert_eq!(Some(theirs), signing_root_of(&duty.body()), "{duty:?}");
    }

    // The validator client, and a recorder of what HAProxy and the nodes report.
    let log = Arc::new(Mutex::new(Vec::<Attempt>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let validator = Validator::new(
        haproxy.addr,
        tls,
        hex0x(&cluster.eth2_public_key),
        t0,
        log.clone(),
    );
    let client = tokio::spawn(validator.run(stop.clone()));
    let events = Arc::new(Mutex::new(Vec::<(Duration, String)>::new()));
    let nodes: Vec<(u64, SocketAddr)> = (1..=3)
        .map(|id| (id, cluster.node(id).web3signer_addr))
        .collect();
    let recorder = tokio::spawn(record_states(
        haproxy.stats.clone(),
        nodes,
        cluster.tls("seq-1"),
        t0,
        events.clone(),
        stop.clone(),
    ));
    let diagnostics = |haproxy: &Haproxy| {
        let last: Vec<String> = log
            .lock()
            .unwrap()
            .iter()
            .rev()
            .take(5)
            .map(Attempt::describe)
            .collect();
        let nodes: Vec<String> = (1..=3)
            .map(|id| format!("--- node {id}\n{}", tail(&cluster.log_of(id), 15)))
            .collect();
        format!(
            "--- last attempts\n{}\n--- haproxy\n{}\n{}",
            last.join("\n"),
            haproxy.log_tail(30),
            nodes.join("\n")
        )
    };

    // Warm up: the client signs through HAProxy.
    let deadline = Instant::now() + Duration::from_secs(10);
    let signed = || {
        let log = log.lock().unwrap();
        log.iter()
            .filter(|a| matches!(a.outcome, Outcome::Signed(_)))
            .count()
    };
    while signed() < 20 {
        assert!(
            Instant::now() < deadline && !client.is_finished(),
            "fewer than 20 signatures through HAProxy in 10 s\n{}",
            diagnostics(&haproxy)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Two rounds: SIGKILL the leader; once the client has signed for `STABLE` without a failure
    // the gap is over and the node is started again; wait until HAProxy sees it up; keep
    // signing. A failure after the restart fails the test.
    let mut kills = Vec::new();
    for _ in 0..2 {
        let leader = cluster.wait_leader(Duration::from_secs(15)).await;
        let states = server_states(&haproxy.stats).await.unwrap_or_default();
        let used = haproxy
            .order
            .iter()
            .find(|name| {
                states
                    .get(*name)
                    .is_some_and(|s| s.status.starts_with("UP"))
            })
            .cloned();
        // Taken before the SIGKILL: the client may see the connection break while `kill` reaps.
        let at = t0.elapsed();
        cluster.kill(leader);
        events
            .lock()
            .unwrap()
            .push((at, format!("SIGKILL node-{leader} (the leader)")));
        let deadline = Instant::now() + MAX_GAP + STABLE;
        loop {
            let g = gap(&log.lock().unwrap(), at, Duration::MAX);
            if g.end.is_some_and(|end| t0.elapsed() >= end + STABLE) {
                break;
            }
            assert!(
                Instant::now() < deadline && !client.is_finished(),
                "the client did not sign for {STABLE:?} without failures within {MAX_GAP:?} \
                 of killing node {leader} ({g:?})\n{}",
                diagnostics(&haproxy)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let restarted = t0.elapsed();
        cluster.spawn(leader);
        events
            .lock()
            .unwrap()
            .push((restarted, format!("restart node-{leader}")));
        kills.push(Kill {
            node: leader,
            at,
            behind_haproxy: used.as_deref() == Some(format!("node-{leader}").as_str()),
            restarted,
        });
        haproxy
            .wait_up(&[format!("node-{leader}")], Duration::from_secs(20))
            .await;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    stop.store(true, Ordering::SeqCst);
    tokio::time::timeout(RETRY_BUDGET + Duration::from_secs(10), client)
        .await
        .expect("the client stops")
        .unwrap();
    recorder.await.unwrap();
    let final_states = server_states(&haproxy.stats).await.unwrap_or_default();
    let log = log.lock().unwrap().clone();
    let mut timeline = events.lock().unwrap().clone();
    timeline.extend(client_events(&log));
    timeline.sort();
    for (at, line) in &timeline {
        println!("{:>8}  {line}", secs(*at));
    }

    let gaps = check_answers(&log, &kills);
    let signed_at = check_signatures(&log, &cluster.eth2_public_key);
    let tally = check_requests(&log);
    let (slot, target) = check_export(&cluster, &signed_at).await;
    // Traffic really moved: the node HAProxy used first was not the only one that served.
    let served: Vec<String> = final_states
        .iter()
        .map(|(name, s)| format!("{name} {}", s.sessions))
        .collect();
    assert!(
        final_states.values().filter(|s| s.sessions > 0).count() >= 2,
        "{served:?}"
    );

    let count = |f: fn(&Outcome) -> bool| log.iter().filter(|a| f(&a.outcome)).count();
    println!(
        "web3signer_haproxy: {} requests in {} attempts ({} conflicting, {} of them after an \
         ambiguous failure; {} identical resends): 200 {}, 412 {}, 503 {}, transport errors {}; \
         gaps after SIGKILL: {}; sessions per node: {}; blocks up to slot {slot}, attestations \
         up to target {target}; {vector_cases} vector roots checked",
        tally.requests,
        log.len(),
        tally.conflicts,
        tally.after_ambiguity,
        tally.resends,
        count(|o| matches!(o, Outcome::Signed(_))),
        count(|o| matches!(o, Outcome::Refused(_))),
        count(|o| matches!(o, Outcome::Unavailable(_))),
        count(|o| matches!(o, Outcome::Transport(_))),
        describe_gaps(&kills, &gaps),
        served.join(", "),
    );
}
