//! Hostile and malformed inputs on a real cluster, each answered with its exact status and
//! changing nothing: every peer RPC called with a certificate of the cluster's CA that is not a
//! member node's (a client's, as a hostile sequencer holds, and a node certificate of a
//! non-member id), and Raft messages of a member speaking for another node; a `SignBatch` over
//! `MAX_BATCH`; key ids out of bounds on `Sign`, key
//! generation and import, and grants; a threshold of 0; more than the pending challenges the
//! admin plane keeps.
//!
//! "Nothing changed" is observed on every node: term, leader, voters, applied index and audit
//! head are what they were, and a view a refused request named is still free to sign.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod support;

use futures::StreamExt as _;
use openraft::entry::RaftEntry;
use openraft::{BasicNode, EntryPayload, Membership, StoredMembership};
use signer_node::audit::{self, AuditEvent, NodeEvent};
use signer_node::pb;
use signer_node::pb::raft_client::RaftClient;
use signer_node::replica::network::{snapshot_chunks, to_message};
use signer_node::replica::{
    Command, Entry, LogId, Proposal, SnapshotData, SnapshotMeta, TypeConfig, Vote,
};
use signer_node::service::convert::SignRequest;
use signer_node::service::signing::{ForwardedSign, MAX_BATCH};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};
use support::{quorum_vote, Cluster, ESPRESSO_KEY, ETH2_KEY};
use tonic::transport::Channel;
use tonic::Code;

/// What an accepted hostile message or a proposal would change on one node.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Observed {
    node: u64,
    term: u64,
    leader: u64,
    voters: Vec<u64>,
    applied: u64,
    audit_head: (u64, Vec<u8>),
}

/// The (node, key id) pairs of the key-loaded records in node `id`'s audit log.
async fn key_loads(cluster: &Cluster, id: u64) -> BTreeSet<(u64, String)> {
    cluster
        .audit_entries(id)
        .await
        .iter()
        .filter_map(|e| match audit::decode(&e.record).unwrap().event {
            AuditEvent::Node(NodeEvent::KeyLoaded { node, key_id }) => Some((node, key_id)),
            _ => None,
        })
        .collect()
}

/// Every node's [`Observed`], once every node's start-up records (each node's two key files
/// loaded, delivered best-effort with retries) are in every log and two polls 300 ms apart
/// agree.
async fn settled(cluster: &Cluster) -> Vec<Observed> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let all_loads: BTreeSet<(u64, String)> = cluster
        .running()
        .into_iter()
        .flat_map(|node| [ESPRESSO_KEY, ETH2_KEY].map(|key| (node, key.to_owned())))
        .collect();
    for id in cluster.running() {
        loop {
            let loads = key_loads(cluster, id).await;
            if loads == all_loads {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node {id}: key loads recorded: {loads:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let mut last: Option<Vec<Observed>> = None;
    loop {
        let mut now = Vec::new();
        for id in cluster.running() {
            let (Some(s), Ok(head)) = (
                cluster.status(id).await,
                cluster
                    .auditor(id)
                    .verify(pb::AuditVerifyRequest { at_seq: 0 })
                    .await,
            ) else {
                break;
            };
            let head = head.into_inner();
            assert!(head.ok, "node {id}: audit chain does not verify: {head:?}");
            now.push(Observed {
                node: id,
                term: s.term,
                leader: s.leader_id,
                voters: s.voters,
                applied: s.last_applied_index,
                audit_head: (head.head_seq, head.head_hash),
            });
        }
        if now.len() == cluster.running().len() && last.as_ref() == Some(&now) {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "the cluster did not settle: {now:?}"
        );
        last = Some(now);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn log_id(term: u64, node: u64, index: u64) -> LogId {
    openraft::testing::log_id::<TypeConfig>(term, node, index)
}

/// Who calls the peer port.
#[derive(Clone, Copy, Debug)]
enum Caller {
    /// A client certificate (`client-<name>.pem`).
    Client(&'static str),
    /// A node certificate (`node-<id>.pem`).
    Node(u64),
}

/// A channel to node `to`'s peer port with `caller`'s certificate.
fn peer_channel(cluster: &Cluster, to: u64, caller: Caller) -> Channel {
    let pki = &cluster.pki;
    let (cert, key) = match caller {
        Caller::Client(name) => (pki.client_cert_path(name), pki.client_key_path(name)),
        Caller::Node(id) => (pki.node_cert_path(id), pki.node_key_path(id)),
    };
    cluster.peer_channel_with(to, &cert, &key)
}

/// The Raft RPCs, and with `forwards` also the forwarding RPCs, each carrying what would
/// change the cluster if it were accepted: Raft messages speaking for node 9 in a later term
/// (a log that replaces the node's, a vote for a longer log, a snapshot of a membership of
/// node 9 alone), a forwarded sign of `view` for seq-1, and a forged audit event. Returns each
/// RPC's name and status; panics if one is accepted.
async fn call_peer_rpcs(
    raft: &mut RaftClient<Channel>,
    term: u64,
    view: u64,
    forwards: bool,
) -> Vec<(&'static str, tonic::Status)> {
    let later = term + 5;
    let events = vec![NodeEvent::KmsFailure {
        node: 9,
        key_id: "forged".into(),
        detail: "forged by a non-member".into(),
    }];
    let append = openraft::raft::AppendEntriesRequest::<TypeConfig> {
        vote: Vote::new_committed(later, 9),
        prev_log_id: None,
        entries: vec![Entry::new(
            log_id(later, 9, 1),
            EntryPayload::Normal(Proposal {
                at_ms: 1_700_000_000_000,
                command: Command::Event(events.clone()),
            }),
        )],
        leader_commit: Some(log_id(later, 9, 1)),
    };
    let vote = openraft::raft::VoteRequest::<TypeConfig>::new(
        Vote::new(later, 9),
        Some(log_id(later, 9, 1_000_000)),
    );
    let membership = Membership::<u64, BasicNode>::new(
        vec![BTreeSet::from([9])],
        BTreeMap::from([(9, BasicNode::new("127.0.0.1:9"))]),
    )
    .unwrap();
    let meta = SnapshotMeta {
        last_log_id: Some(log_id(later, 9, 1_000_000)),
        last_membership: StoredMembership::new(Some(log_id(later, 9, 1)), membership),
    };
    let chunks: Vec<pb::SnapshotChunk> = snapshot_chunks(
        Vote::new_committed(later, 9),
        meta,
        SnapshotData::InMemory(b"not the cluster's state".to_vec()),
    )
    .unwrap()
    .collect()
    .await;
    let forward = ForwardedSign {
        client: "seq-1".into(),
        request: SignRequest::try_from(quorum_vote(view, 1, "forged")).unwrap(),
    };
    let refused =
        |name: &'static str, r: Result<tonic::Response<pb::RaftMessage>, tonic::Status>| match r {
            Ok(answer) => panic!("{name} was accepted: {answer:?}"),
            Err(status) => (name, status),
        };
    let mut answers = vec![
        refused(
            "append_entries",
            raft.append_entries(to_message(&append).unwrap()).await,
        ),
        refused("vote", raft.vote(to_message(&vote).unwrap()).await),
        refused(
            "install_snapshot_chunks",
            raft.install_snapshot_chunks(tokio_stream::iter(chunks))
                .await,
        ),
    ];
    if forwards {
        answers.push(refused(
            "forward_typed_sign",
            raft.forward_typed_sign(to_message(&forward).unwrap()).await,
        ));
        answers.push(refused(
            "forward_events",
            raft.forward_events(to_message(&events).unwrap()).await,
        ));
    }
    answers
}

/// `answers` as (RPC, code, message).
fn seen(answers: Vec<(&'static str, tonic::Status)>) -> Vec<(&'static str, Code, String)> {
    answers
        .into_iter()
        .map(|(rpc, s)| (rpc, s.code(), s.message().to_owned()))
        .collect()
}

/// Each of `rpcs` refused with PERMISSION_DENIED and `message`.
fn denied(rpcs: &[&'static str], message: &str) -> Vec<(&'static str, Code, String)> {
    rpcs.iter()
        .map(|rpc| (*rpc, Code::PermissionDenied, message.to_owned()))
        .collect()
}

const RAFT_RPCS: [&str; 3] = ["append_entries", "vote", "install_snapshot_chunks"];
const EVERY_PEER_RPC: [&str; 5] = [
    "append_entries",
    "vote",
    "install_snapshot_chunks",
    "forward_typed_sign",
    "forward_events",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_rpcs_refuse_a_client_or_non_member_certificate_and_a_member_speaking_for_another() {
    let cluster = Cluster::start(3).await;
    // A node certificate from the cluster's own CA, for an id that is not a member.
    cluster.pki.issue_node(9).unwrap();
    let leader = cluster.wait_leader(Duration::from_secs(30)).await;
    let follower = (1..=3).find(|&id| id != leader).unwrap();
    let before = settled(&cluster).await;
    let term = before[0].term;
    let view = 40;

    let callers = [
        // What a hostile sequencer holds.
        (Caller::Client("seq-1"), "\"seq-1\" is not a node identity"),
        // An admin's client certificate.
        (
            Caller::Client("admin-1"),
            "\"admin-1\" is not a node identity",
        ),
        (Caller::Node(9), "node 9 is not a member of this cluster"),
    ];
    for target in [leader, follower] {
        for (caller, message) in callers {
            let mut raft = RaftClient::new(peer_channel(&cluster, target, caller));
            assert_eq!(
                seen(call_peer_rpcs(&mut raft, term, view, true).await),
                denied(&EVERY_PEER_RPC, message),
                "{caller:?} on node {target}"
            );
        }
        // A member's own certificate, speaking for another node in Raft messages. (Its
        // forwards are a member's to make: not called.)
        let member = (1..=3).find(|&id| id != target).unwrap();
        let mut raft = RaftClient::new(peer_channel(&cluster, target, Caller::Node(member)));
        assert_eq!(
            seen(call_peer_rpcs(&mut raft, term, view, false).await),
            denied(
                &RAFT_RPCS,
                &format!("node {member} sent a message on behalf of node 9")
            ),
            "node {member} on node {target}"
        );
    }

    // No node moved: same term, leader, voters, applied index and audit head.
    assert_eq!(settled(&cluster).await, before);
    // The forwarded sign signed nothing: the view is free for another commitment.
    let mut client = cluster.client(leader, "seq-1").await;
    let signed = client
        .sign(quorum_vote(view, 2, "after"))
        .await
        .unwrap()
        .into_inner();
    assert!(!signed.resigned);
    // And the member nodes still talk to each other: the signature was committed by a quorum.
    let committed = settled(&cluster).await;
    for (now, then) in committed.iter().zip(&before) {
        assert!(now.applied > then.applied, "{now:?} after {then:?}");
    }
}

/// A batch item's error as (code, message).
fn batch_error(result: &pb::SignBatchResult) -> (Code, String) {
    match &result.result {
        Some(pb::sign_batch_result::Result::Error(e)) => (Code::from(e.code), e.message.clone()),
        other => panic!("not an error: {other:?}"),
    }
}

fn with_key_id(mut request: pb::SignRequest, key_id: &str) -> pb::SignRequest {
    request.key_id = key_id.to_owned();
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_batch_and_out_of_bounds_key_ids_are_invalid_and_propose_nothing() {
    let cluster = Cluster::start(1).await;
    let before = settled(&cluster).await;
    let mut client = cluster.client(1, "seq-1").await;

    // One request over the limit: refused whole, before any request is looked at.
    let first_view = 100;
    let over: Vec<pb::SignRequest> = (0..=MAX_BATCH as u64)
        .map(|i| quorum_vote(first_view + i, 1, "over"))
        .collect();
    assert_eq!(over.len(), 257);
    let status = client
        .sign_batch(pb::SignBatchRequest { requests: over })
        .await
        .unwrap_err();
    assert_eq!(
        (status.code(), status.message()),
        (
            Code::InvalidArgument,
            "requests: at most 256 per batch, got 257"
        )
    );

    // Key ids out of bounds, on Sign and as batch items.
    let long = "k".repeat(129);
    let cases = [
        ("", "key_id: missing"),
        (long.as_str(), "key_id: longer than 128 bytes"),
    ];
    for (key_id, message) in cases {
        let status = client
            .sign(with_key_id(quorum_vote(first_view, 1, ""), key_id))
            .await
            .unwrap_err();
        assert_eq!(
            (status.code(), status.message()),
            (Code::InvalidArgument, message),
            "{key_id:?}"
        );
        let results = client
            .sign_batch(pb::SignBatchRequest {
                requests: vec![with_key_id(quorum_vote(first_view, 1, ""), key_id)],
            })
            .await
            .unwrap()
            .into_inner()
            .results;
        assert_eq!(results.len(), 1);
        assert_eq!(
            batch_error(&results[0]),
            (Code::InvalidArgument, message.to_owned())
        );
    }
    // At the bound, and with characters no registry key may have: a well-formed request for
    // a key that does not exist.
    for key_id in ["k".repeat(128), "a b".into(), "../x".into()] {
        let status = client
            .sign(with_key_id(quorum_vote(first_view, 1, ""), &key_id))
            .await
            .unwrap_err();
        assert_eq!(
            (status.code(), status.message().to_owned()),
            (
                Code::NotFound,
                format!("key_id: no active key {key_id:?} on this cluster")
            )
        );
    }
    assert_eq!(settled(&cluster).await, before, "something was proposed");

    // Exactly MAX_BATCH is accepted: the lowest view the refused batch named, with another
    // commitment, 256 times. It is newly signed once and re-signed 255 times, so the refused
    // batch signed nothing (a signature at any of its views 100..=356 would refuse view 100,
    // as an equivocation or as below the watermark).
    let at_limit = vec![quorum_vote(first_view, 2, "at-limit"); MAX_BATCH];
    let results = client
        .sign_batch(pb::SignBatchRequest { requests: at_limit })
        .await
        .unwrap()
        .into_inner()
        .results;
    let resigned: Vec<bool> = results
        .iter()
        .map(|r| match &r.result {
            Some(pb::sign_batch_result::Result::Signed(s)) => s.resigned,
            other => panic!("not signed: {other:?}"),
        })
        .collect();
    assert_eq!(resigned.len(), MAX_BATCH);
    assert_eq!(resigned.iter().filter(|r| !**r).count(), 1, "{resigned:?}");
}

fn generate(key_id: &str) -> pb::propose_request::Request {
    pb::propose_request::Request::GenerateKey(pb::GenerateKeyRequest {
        key_id: key_id.into(),
        profile: "eth2".into(),
    })
}

fn import(key_id: &str) -> pb::propose_request::Request {
    let mut secret = vec![0u8; 32];
    secret[31] = 5;
    pb::propose_request::Request::ImportKey(pb::ImportKeyRequest {
        key_id: key_id.into(),
        profile: "eth2".into(),
        secret: Some(pb::import_key_request::Secret::RawSecret(secret)),
    })
}

fn grant(keys: &[&str]) -> pb::propose_request::Request {
    pb::propose_request::Request::GrantClient(pb::ClientGrant {
        identity: "seq-9".into(),
        keys: keys.iter().map(|k| (*k).to_owned()).collect(),
        profiles: vec!["eth2".into()],
        rate_per_second: 0,
        rate_burst: 0,
        raw_roots: false,
    })
}

async fn open_challenges(cluster: &Cluster) -> Vec<pb::Challenge> {
    cluster
        .on_leader(|mut a| async move {
            a.list_challenges(pb::ListChallengesRequest { all: true })
                .await
        })
        .await
        .unwrap()
        .challenges
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_key_ids_a_zero_threshold_and_too_many_challenges_are_refused_exactly() {
    let cluster = Cluster::start_with(1, support::local_kek).await;
    let before = settled(&cluster).await;

    // Key ids a new key may not have: refused before a challenge exists.
    let key_id_rule = "key_id: 1 to 128 letters, digits, '-', '_' or '.'";
    let long = "k".repeat(129);
    let bad = [
        "",
        "a b",
        "key/1",
        "../k",
        "ключ",
        "k\n",
        "*",
        long.as_str(),
    ];
    for key_id in bad {
        for request in [generate(key_id), import(key_id)] {
            let status = cluster.propose(request).await.unwrap_err();
            assert_eq!(
                (status.code(), status.message()),
                (Code::InvalidArgument, key_id_rule),
                "{key_id:?}"
            );
        }
        if key_id == "*" {
            continue; // in a grant, "*" is every key (granted below)
        }
        // A grant naming it, beside a valid id.
        let status = cluster
            .propose(grant(&["demo-eth2", key_id]))
            .await
            .unwrap_err();
        assert_eq!(
            (status.code(), status.message().to_owned()),
            (
                Code::InvalidArgument,
                format!(
                    "keys: key_id {key_id:?}: 1 to 128 letters, digits, '-', '_' or '.', or \
                     \"*\" for every key"
                )
            ),
            "{key_id:?}"
        );
    }
    assert_eq!(open_challenges(&cluster).await, Vec::new());
    assert_eq!(settled(&cluster).await, before, "something was proposed");

    // The bounds themselves are accepted: a 128-character id, each allowed character, "*".
    let at_bound = format!("{}-_.9", "k".repeat(124));
    assert_eq!(at_bound.len(), 128);
    cluster.generate_key(&at_bound, "eth2").await.unwrap();
    cluster
        .import_key("Key.import_1-x", "eth2", &{
            let mut s = vec![0u8; 32];
            s[31] = 5;
            s
        })
        .await
        .unwrap();
    let executed = cluster
        .admin_exec(grant(&["*", &at_bound, "Key.import_1-x"]))
        .await
        .unwrap();
    assert_eq!(executed.status, "executed");

    // A threshold of 0 is refused by the replicated policy check; no challenge opens.
    let zero = pb::propose_request::Request::SetPolicy(pb::ApprovalPolicy {
        threshold: 0,
        require_attestation: false,
        require_touch_always: true,
        challenge_ttl_ms: 15 * 60 * 1000,
    });
    let challenges = open_challenges(&cluster).await.len();
    let status = cluster.propose(zero).await.unwrap_err();
    assert_eq!(
        (status.code(), status.message()),
        (
            Code::FailedPrecondition,
            "threshold 0 must be between 1 and the number of admins (1)"
        )
    );
    assert_eq!(open_challenges(&cluster).await.len(), challenges);

    // At most 256 undecided challenges: the 257th is refused while they are pending.
    let pending = |cs: &[pb::Challenge]| cs.iter().filter(|c| c.status == "pending").count();
    assert_eq!(pending(&open_challenges(&cluster).await), 0);
    for _ in 0..256 {
        cluster
            .propose(pb::propose_request::Request::Pause(pb::PauseRequest {}))
            .await
            .unwrap();
    }
    let status = cluster
        .propose(pb::propose_request::Request::Pause(pb::PauseRequest {}))
        .await
        .unwrap_err();
    assert_eq!(
        (status.code(), status.message()),
        (
            Code::ResourceExhausted,
            "256 challenges are pending; approve or let some expire first"
        )
    );
    let all = open_challenges(&cluster).await;
    assert_eq!(pending(&all), 256);
    // Deciding one frees one place.
    let first = all.iter().find(|c| c.status == "pending").unwrap();
    let approved = cluster.approve_as("admin-1", first).await.unwrap();
    assert_eq!(approved.status, "executed");
    cluster
        .propose(pb::propose_request::Request::Pause(pb::PauseRequest {}))
        .await
        .unwrap();
    assert_eq!(pending(&open_challenges(&cluster).await), 256);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_key_file_others_may_read_refuses_to_start_naming_the_file_and_mode() {
    use std::os::unix::fs::PermissionsExt;
    let cluster = Cluster::start(1).await;
    cluster.kill(1);
    let key_file = cluster
        .dir()
        .join("node-1")
        .join("keys")
        .join(format!("{ETH2_KEY}.key"));
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let log_before = cluster.log_of(1).len();
    cluster.spawn(1);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        let exited = cluster
            .node(1)
            .child
            .lock()
            .unwrap()
            .as_mut()
            .unwrap()
            .try_wait()
            .unwrap();
        if let Some(status) = exited {
            break status;
        }
        assert!(Instant::now() < deadline, "the node is still running");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status.code(), Some(1));
    let log = cluster.log_of(1);
    let last = log[log_before..]
        .lines()
        .last()
        .unwrap_or_default()
        .to_owned();
    let refusal = format!(
        "{}: mode 644 lets others read the key; chmod 600 it",
        key_file.display()
    );
    // Said once: the start-up error shows its cause in its own message only.
    assert_eq!(last, format!("error: keys: {refusal}"));
}
