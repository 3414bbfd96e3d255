//! The adversarial model over a real cluster: three `signer node` processes (see `support`),
//! key files and registry keys of both profiles, hostile sequencer clients, and leader
//! SIGKILLs with restarts in the middle of the run. The oracle (`oracle/mod.rs`) sees only what
//! clients received and the public keys the cluster publishes; it verifies every signature and
//! fails on any two conflicting messages one key signed. At the end every node must export
//! the same eth2 protection state (Admin `ExportProtection`) and report the same verified
//! audit head (Audit `Verify`).
//!
//! Then each request shape of the safety review, reproduced on a real cluster with its exact
//! outcome: a request id reused with another key; digests copied across kinds; a registry
//! key taking a key file's id; probing key ids without a grant; file modes of the data dir;
//! the audit volume of a burst of denied requests.
//!
//! The model is seeded: the seed is printed, and `ADVERSARIAL_CLUSTER_SEED=<n>` replays it
//! (`ADVERSARIAL_CLUSTER_CASES`, `ADVERSARIAL_CLUSTER_OPS` for a longer soak).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod oracle;
mod support;

use oracle::requests::{build, msg, quorum_vote_digest, Built, Msg};
use oracle::{Meaning, Oracle, Scheme};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use signer::audit::{self, AuditEvent, NodeEvent};
use signer::pb;
use signer::pb::audit_client::AuditClient;
use signer::protection::interchange;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use support::{local_kek, refusal_code, sign_retrying, Cluster, ESPRESSO_KEY, ETH2_KEY};
use tonic::Code;

/// Registry keys the tests generate through the admin plane (next to the key files
/// `demo-espresso` and `demo-eth2` that every node of a support cluster loads).
const REGISTRY_ESPRESSO: &str = "registry-espresso";
const REGISTRY_ETH2: &str = "registry-eth2";
const MISSING_KEY: &str = "no-such-key";
const CLIENTS: [&str; 3] = ["seq-1", "seq-2", "seq-3"];
/// Sequences per run and operations per sequence (all on one cluster).
const CASES: u32 = 2;
const OPS: usize = 60;
/// Every code the protection rules refuse with.
const REFUSALS: &[&str] = &[
    "double_block_proposal",
    "block_slot_not_above_watermark",
    "double_vote",
    "target_below_watermark",
    "source_below_watermark",
    "source_after_target",
    "view_below_watermark",
    "equivocation",
    "outside_window",
];

// ---- keys ------------------------------------------------------------------------------------

/// The keys the cluster publishes: key id → (scheme, public key).
#[derive(Clone, Debug, PartialEq)]
struct Keys(BTreeMap<String, (Scheme, Vec<u8>)>);

impl Keys {
    fn oracle(&self) -> Oracle {
        Oracle::new(self.0.values().cloned().collect())
    }

    fn public_key(&self, key_id: &str) -> &[u8] {
        &self.0[key_id].1
    }

    /// Whether `signature` over `message` verifies under `key_id`'s public key.
    fn verifies(&self, key_id: &str, message: &[u8], signature: &[u8]) -> bool {
        let (scheme, pk) = &self.0[key_id];
        verify(*scheme, pk, message, signature)
    }
}

fn verify(scheme: Scheme, pk: &[u8], message: &[u8], signature: &[u8]) -> bool {
    use signer::scheme::{bls12_381, bn254};
    match scheme {
        Scheme::Bls12381 => bls12_381::verify_bytes(pk, message, signature),
        Scheme::Bn254 => match (
            bn254::PublicKey::from_bytes(pk),
            bn254::Signature::from_bytes(signature),
        ) {
            (Ok(pk), Ok(sig)) => sig.verify(&pk, message),
            _ => false,
        },
    }
}

/// The keys a GetPublicKeys answer lists.
fn keys_of(listed: Vec<pb::KeyInfo>) -> Keys {
    Keys(
        listed
            .into_iter()
            .map(|k| {
                let scheme = match k.profile.as_str() {
                    "eth2" => Scheme::Bls12381,
                    "espresso" => Scheme::Bn254,
                    other => panic!("unknown profile {other:?}"),
                };
                (k.key_id, (scheme, k.public_key))
            })
            .collect(),
    )
}

/// GetPublicKeys on every running node (as seq-1, whose grant covers every key); every node
/// must publish the same keys.
async fn public_keys(cluster: &Cluster) -> Keys {
    let mut by_node = public_keys_by_node(cluster).await.into_iter();
    let (_, first) = by_node.next().unwrap();
    for (id, keys) in by_node {
        assert_eq!(first, keys, "node {id} publishes other keys");
    }
    first
}

/// A cluster with a local KEK, and one registry key per profile generated through the admin
/// plane and loaded on every node.
async fn cluster_with_registry_keys() -> (Cluster, Keys) {
    let cluster = Cluster::start_with(3, local_kek).await;
    cluster
        .generate_key(REGISTRY_ESPRESSO, "espresso")
        .await
        .unwrap();
    cluster.generate_key(REGISTRY_ETH2, "eth2").await.unwrap();
    cluster
        .wait_all("registry keys loaded on every node", |s| {
            [REGISTRY_ESPRESSO, REGISTRY_ETH2]
                .iter()
                .all(|k| s.keys_loaded.iter().any(|l| l == k))
        })
        .await;
    let keys = public_keys(&cluster).await;
    let ids: Vec<&str> = keys.0.keys().map(String::as_str).collect();
    assert_eq!(
        ids,
        [ESPRESSO_KEY, ETH2_KEY, REGISTRY_ESPRESSO, REGISTRY_ETH2],
        "two key files and two registry keys"
    );
    (cluster, keys)
}

// ---- requests and outcomes ----------------------------------------------------------------

/// A request for `msg` with `key_id`, with the oracle's meaning(s) and digest for it.
struct Asked {
    request: pb::SignRequest,
    meaning: Meaning,
    digest: [u8; 32],
    copied: Vec<(Meaning, [u8; 32])>,
}

fn request(key_id: &str, request_id: &str, msg: &Msg) -> Asked {
    let Built {
        message,
        meaning,
        digest,
        copied,
    } = build(msg);
    Asked {
        request: pb::SignRequest {
            request_id: request_id.into(),
            key_id: key_id.into(),
            message: Some(message),
        },
        meaning,
        digest,
        copied,
    }
}

impl Asked {
    /// Tell the oracle what this request stands for.
    fn announce(&self, oracle: &mut Oracle) {
        oracle.asked(self.meaning.clone(), self.digest);
        for (m, d) in &self.copied {
            oracle.asked(m.clone(), *d);
        }
    }
}

fn is_eth2(msg: &Msg) -> bool {
    matches!(
        msg,
        Msg::Block { .. }
            | Msg::Attestation { .. }
            | Msg::RawBlockCopyingAttestation { .. }
            | Msg::Randao { .. }
            | Msg::AggregationSlot { .. }
    )
}

/// How one request ended, whether answered by Sign or inside a SignBatch.
#[derive(Debug)]
enum Outcome {
    Signed(pb::SignResponse),
    Failed {
        code: Code,
        message: String,
        refusal: Option<String>,
    },
}

impl Outcome {
    fn of(result: Result<pb::SignResponse, tonic::Status>) -> Outcome {
        match result {
            Ok(r) => Outcome::Signed(r),
            Err(s) => Outcome::Failed {
                code: s.code(),
                message: s.message().to_owned(),
                refusal: refusal_code(&s),
            },
        }
    }

    fn of_batch(result: pb::SignBatchResult) -> Outcome {
        use pb::sign_batch_result::Result as R;
        match result.result {
            Some(R::Signed(r)) => Outcome::Signed(r),
            Some(R::Error(e)) => Outcome::Failed {
                code: Code::from_i32(e.code),
                message: e.message,
                refusal: e.refusal.map(|r| r.code),
            },
            None => panic!("a batch result without a result"),
        }
    }

    fn code(&self) -> Code {
        match self {
            Outcome::Signed(_) => Code::Ok,
            Outcome::Failed { code, .. } => *code,
        }
    }

    /// The outcome class counted in the report.
    fn class(&self) -> String {
        match self {
            Outcome::Signed(r) if r.resigned => "resigned".into(),
            Outcome::Signed(_) => "signed".into(),
            Outcome::Failed {
                refusal: Some(r), ..
            } => format!("refused:{r}"),
            Outcome::Failed { code, .. } => format!("{code:?}"),
        }
    }
}

/// Send `requests` as `client` starting at the `node`-th running node: one Sign for a single
/// request, else one SignBatch. Requests answered UNAVAILABLE are sent again (the identical
/// request, as `support::sign_retrying` does) on the next running node until a 20 s deadline.
/// Returns the outcomes in request order and how many UNAVAILABLE answers were retried.
async fn send(
    cluster: &Cluster,
    client: &str,
    node: usize,
    requests: &[pb::SignRequest],
) -> (Vec<Outcome>, usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut outcomes: Vec<Option<Outcome>> = requests.iter().map(|_| None).collect();
    let mut pending: Vec<usize> = (0..requests.len()).collect();
    let (mut retried, mut attempt) = (0, 0);
    while !pending.is_empty() {
        let running = cluster.running();
        let id = running[(node + attempt) % running.len()];
        attempt += 1;
        let mut c = cluster.client(id, client).await;
        let answers: Vec<Outcome> = if requests.len() == 1 {
            vec![Outcome::of(
                c.sign(requests[0].clone())
                    .await
                    .map(tonic::Response::into_inner),
            )]
        } else {
            let batch = pb::SignBatchRequest {
                requests: pending.iter().map(|&i| requests[i].clone()).collect(),
            };
            match c.sign_batch(batch).await {
                Ok(r) => {
                    let results = r.into_inner().results;
                    assert_eq!(results.len(), pending.len(), "one result per request");
                    results.into_iter().map(Outcome::of_batch).collect()
                }
                Err(s) => pending
                    .iter()
                    .map(|_| Outcome::Failed {
                        code: s.code(),
                        message: s.message().to_owned(),
                        refusal: None,
                    })
                    .collect(),
            }
        };
        let mut again = Vec::new();
        for (i, outcome) in pending.iter().zip(answers) {
            if outcome.code() == Code::Unavailable && Instant::now() < deadline {
                again.push(*i);
                retried += 1;
            } else {
                outcomes[*i] = Some(outcome);
            }
        }
        pending = again;
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    (outcomes.into_iter().map(Option::unwrap).collect(), retried)
}

// ---- the model ------------------------------------------------------------------------------

/// Which key a request names, relative to its message's profile.
#[derive(Clone, Debug)]
enum KeyPick {
    /// A key of the message's profile: 0 the key file, 1 the registry key.
    Own(usize),
    /// A key of the other profile.
    Foreign(usize),
    /// An id no key has.
    Missing,
}

impl KeyPick {
    fn key_id(&self, msg: &Msg) -> &'static str {
        let eth2 = [ETH2_KEY, REGISTRY_ETH2];
        let espresso = [ESPRESSO_KEY, REGISTRY_ESPRESSO];
        let (own, other) = if is_eth2(msg) {
            (eth2, espresso)
        } else {
            (espresso, eth2)
        };
        match self {
            KeyPick::Own(i) => own[*i],
            KeyPick::Foreign(i) => other[*i],
            KeyPick::Missing => MISSING_KEY,
        }
    }

    /// The status a request must get when it is not decided by the protection rules.
    fn expected_code(&self, msg: &Msg) -> Option<Code> {
        match self {
            // seq-1..3 may use every key id, so the grant passes and the id is looked up.
            KeyPick::Missing => Some(Code::NotFound),
            KeyPick::Foreign(_) => Some(Code::InvalidArgument),
            // No model client's grant trusts raw roots.
            KeyPick::Own(_) if matches!(msg, Msg::RawBlockCopyingAttestation { .. }) => {
                Some(Code::PermissionDenied)
            }
            KeyPick::Own(_) => None,
        }
    }
}

#[derive(Clone, Debug)]
struct Req {
    /// 0: no request id; else `r1`/`r2`, shared across keys, kinds and clients.
    request_id: u8,
    key: KeyPick,
    msg: Msg,
}

#[derive(Clone, Debug)]
enum Op {
    /// One Sign (one request) or one SignBatch from `client`, to the `node`-th running node.
    Call {
        client: usize,
        node: usize,
        reqs: Vec<Req>,
    },
    /// An earlier request sent again with its request id (one is chosen if it had none),
    /// optionally by another client or for another key.
    Retry {
        of: Index,
        client: Option<usize>,
        key: Option<KeyPick>,
        node: usize,
    },
    /// SIGKILL the leader; it is started again after `down_for` operations (or before the
    /// next kill, or at the end).
    KillLeader { down_for: usize },
}

fn key_pick() -> impl Strategy<Value = KeyPick> {
    prop_oneof![
        8 => (0usize..2).prop_map(KeyPick::Own),
        1 => (0usize..2).prop_map(KeyPick::Foreign),
        1 => Just(KeyPick::Missing),
    ]
}

fn req() -> impl Strategy<Value = Req> {
    (0u8..3, key_pick(), msg()).prop_map(|(request_id, key, msg)| Req {
        request_id,
        key,
        msg,
    })
}

fn op() -> impl Strategy<Value = Op> {
    let call = |reqs| (0..CLIENTS.len(), 0usize..3, reqs);
    prop_oneof![
        8 => call(req().prop_map(|r| vec![r]).boxed())
            .prop_map(|(client, node, reqs)| Op::Call { client, node, reqs }),
        3 => call(proptest::collection::vec(req(), 2..6).boxed())
            .prop_map(|(client, node, reqs)| Op::Call { client, node, reqs }),
        4 => (
            any::<Index>(),
            proptest::option::of(0..CLIENTS.len()),
            proptest::option::of(key_pick()),
            0usize..3,
        )
            .prop_map(|(of, client, key, node)| Op::Retry { of, client, key, node }),
    ]
}

/// `ops` operations with 1 to 3 leader kills at random positions.
fn sequence(ops: usize) -> impl Strategy<Value = Vec<Op>> {
    (
        proptest::collection::vec(op(), ops),
        proptest::collection::btree_map(0..ops, 1usize..8, 1..=3),
    )
        .prop_map(|(mut ops, kills)| {
            for (at, down_for) in kills.into_iter().rev() {
                ops.insert(at, Op::KillLeader { down_for });
            }
            ops
        })
}

fn env_u64(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

/// What the run saw, for the final checks and the report.
#[derive(Default)]
struct Run {
    outcomes: BTreeMap<String, usize>,
    retried: usize,
    kills: usize,
    /// eth2 key id → (slot → signed root) of blocks the clients received.
    blocks: BTreeMap<&'static str, BTreeMap<u64, [u8; 32]>>,
    /// eth2 key id → attestations the clients received.
    attestations: BTreeMap<&'static str, Vec<SignedAttestation>>,
}

/// An attestation a client received: FFG source and target epochs, and the signed root.
type SignedAttestation = (u64, u64, [u8; 32]);

/// A node that is down and how many operations until it is started again.
struct Down {
    id: u64,
    ops_left: usize,
}

async fn run_sequence(
    cluster: &Cluster,
    keys: &Keys,
    oracle: &mut Oracle,
    ops: &[Op],
    run: &mut Run,
) {
    let mut sent: Vec<(usize, Req)> = Vec::new();
    let mut down: Option<Down> = None;
    for (step, op) in ops.iter().enumerate() {
        if let Some(d) = &mut down {
            if d.ops_left == 0 {
                cluster.spawn(d.id);
                down = None;
            } else {
                d.ops_left -= 1;
            }
        }
        let (client, node, reqs) = match op {
            Op::KillLeader { down_for } => {
                if let Some(d) = down.take() {
                    cluster.spawn(d.id);
                }
                let leader = cluster.wait_leader(Duration::from_secs(30)).await;
                cluster.kill(leader);
                run.kills += 1;
                println!("op {step}: SIGKILL leader node {leader} for {down_for} operations");
                down = Some(Down {
                    id: leader,
                    ops_left: *down_for,
                });
                continue;
            }
            Op::Retry { .. } if sent.is_empty() => continue,
            Op::Retry {
                of,
                client,
                key,
                node,
            } => {
                let (first_client, mut again) = of.get(&sent).clone();
                again.request_id = again.request_id.max(1);
                if let Some(k) = key {
                    again.key = k.clone();
                }
                (client.unwrap_or(first_client), *node, vec![again])
            }
            Op::Call { client, node, reqs } => (*client, *node, reqs.clone()),
        };
        sent.extend(reqs.iter().map(|r| (client, r.clone())));
        let built: Vec<Asked> = reqs
            .iter()
            .map(|r| {
                let id = match r.request_id {
                    0 => String::new(),
                    n => format!("r{n}"),
                };
                request(r.key.key_id(&r.msg), &id, &r.msg)
            })
            .collect();
        for b in &built {
            b.announce(oracle);
        }
        let wire: Vec<pb::SignRequest> = built.iter().map(|b| b.request.clone()).collect();
        let (outcomes, retried) = send(cluster, CLIENTS[client], node, &wire).await;
        run.retried += retried;
        for ((r, b), outcome) in reqs.iter().zip(&built).zip(outcomes) {
            let what = || format!("op {step}: {} {r:?}", CLIENTS[client]);
            *run.outcomes.entry(outcome.class()).or_default() += 1;
            let key_id = r.key.key_id(&r.msg);
            match (&outcome, r.key.expected_code(&r.msg)) {
                (
                    Outcome::Failed {
                        code: Code::Internal | Code::Unknown,
                        ..
                    },
                    _,
                ) => panic!("{}: {outcome:?}", what()),
                (Outcome::Failed { code, .. }, Some(expected)) => {
                    assert_eq!(*code, expected, "{}: {outcome:?}", what());
                }
                (Outcome::Signed(_), Some(expected)) => {
                    panic!("{}: signed, expected {expected:?}", what())
                }
                (
                    Outcome::Failed {
                        code: Code::FailedPrecondition,
                        refusal: Some(code),
                        ..
                    },
                    None,
                ) => assert!(REFUSALS.contains(&code.as_str()), "{}: {outcome:?}", what()),
                (Outcome::Failed { .. }, None) => {
                    panic!(
                        "{}: neither signed nor refused by protection: {outcome:?}",
                        what()
                    )
                }
                (Outcome::Signed(resp), None) => {
                    assert!(
                        keys.verifies(key_id, &resp.signed_message, &resp.signature),
                        "{}: the signature does not verify under {key_id}'s public key",
                        what()
                    );
                    oracle.received(&resp.signature, &resp.signed_message, b.digest);
                    match b.meaning {
                        Meaning::Block { slot } => {
                            run.blocks.entry(key_id).or_default().insert(slot, b.digest);
                        }
                        Meaning::Attestation { source, target } => {
                            run.attestations
                                .entry(key_id)
                                .or_default()
                                .push((source, target, b.digest));
                        }
                        _ => {}
                    }
                }
            }
        }
    }
    if let Some(d) = down {
        cluster.spawn(d.id);
    }
}

/// Every node's `ExportProtection`, once all are equal (followers may still be applying).
async fn converged_protection(cluster: &Cluster) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut exports = Vec::new();
        for id in 1..=3 {
            let answer = cluster
                .admin(id)
                .await
                .export_protection(pb::ExportProtectionRequest {})
                .await;
            if let Ok(r) = answer {
                exports.push(r.into_inner().interchange_json);
            }
        }
        if exports.len() == 3 && exports.windows(2).all(|w| w[0] == w[1]) {
            return exports.swap_remove(0);
        }
        assert!(
            Instant::now() < deadline,
            "the nodes' eth2 protection exports differ: {exports:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn auditor(cluster: &Cluster, id: u64) -> AuditClient<tonic::transport::Channel> {
    AuditClient::new(cluster.channel(id, "auditor-1"))
}

/// Wait until every node verifies its audit chain and all report the same head, twice in a
/// row 300 ms apart (node events are delivered after the sign path's entries). Returns it.
async fn converged_audit(cluster: &Cluster) -> (u64, Vec<u8>) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = None;
    loop {
        let mut heads = Vec::new();
        for id in 1..=3 {
            let answer = auditor(cluster, id)
                .verify(pb::AuditVerifyRequest { at_seq: 0 })
                .await;
            if let Ok(v) = answer {
                let v = v.into_inner();
                assert!(v.ok, "node {id}'s audit chain does not verify: {v:?}");
                heads.push((v.head_seq, v.head_hash));
            }
        }
        if heads.len() == 3 && heads.windows(2).all(|w| w[0] == w[1]) {
            if last.as_ref() == Some(&heads[0]) {
                return heads.swap_remove(0);
            }
            last = Some(heads[0].clone());
        } else {
            last = None;
        }
        assert!(
            Instant::now() < deadline,
            "audit heads did not converge: {heads:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The exported eth2 watermarks are what the clients received: per key, the highest signed
/// block slot with its root, and the highest attestation source and target with the root
/// signed at that target.
fn check_export(export: &str, keys: &Keys, run: &Run) {
    let doc = interchange::parse(export).unwrap();
    for key_id in [ETH2_KEY, REGISTRY_ETH2] {
        let pk = keys.public_key(key_id);
        let history: Vec<_> = doc.data.iter().filter(|h| h.pubkey.0 == pk).collect();
        let signed_blocks: Vec<_> = history.iter().flat_map(|h| &h.signed_blocks).collect();
        match run.blocks.get(key_id).and_then(|b| b.last_key_value()) {
            Some((slot, root)) => {
                assert_eq!(signed_blocks.len(), 1, "{key_id}: {signed_blocks:?}");
                assert_eq!(signed_blocks[0].slot, *slot, "{key_id}");
                assert_eq!(signed_blocks[0].signing_root.map(|r| r.0), Some(*root));
            }
            None => assert!(signed_blocks.is_empty(), "{key_id}: {signed_blocks:?}"),
        }
        let signed: Vec<_> = history
            .iter()
            .flat_map(|h| &h.signed_attestations)
            .collect();
        match run.attestations.get(key_id) {
            Some(atts) => {
                let source = atts.iter().map(|a| a.0).max().unwrap();
                let (_, target, root) = *atts.iter().max_by_key(|a| a.1).unwrap();
                assert_eq!(signed.len(), 1, "{key_id}: {signed:?}");
                assert_eq!(
                    (signed[0].source_epoch, signed[0].target_epoch),
                    (source, target),
                    "{key_id}"
                );
                assert_eq!(signed[0].signing_root.map(|r| r.0), Some(root), "{key_id}");
            }
            None => assert!(signed.is_empty(), "{key_id}: {signed:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_clients_and_leader_kills_obtain_no_conflicting_pair_and_replicas_agree() {
    let started = Instant::now();
    let seed = env_u64("ADVERSARIAL_CLUSTER_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
    });
    let cases = env_u64("ADVERSARIAL_CLUSTER_CASES").map_or(CASES, |c| c as u32);
    let ops = env_u64("ADVERSARIAL_CLUSTER_OPS").map_or(OPS, |o| o as usize);
    println!("seed {seed} (replay: ADVERSARIAL_CLUSTER_SEED={seed}); {cases} x {ops} operations");
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes),
    );

    let (cluster, keys) = cluster_with_registry_keys().await;
    let mut oracle = keys.oracle();
    let mut run = Run::default();
    for case in 0..cases {
        let ops = sequence(ops).new_tree(&mut runner).unwrap().current();
        println!("sequence {case}: {ops:?}");
        run_sequence(&cluster, &keys, &mut oracle, &ops, &mut run).await;
    }
    cluster.wait_leader(Duration::from_secs(30)).await;
    assert_eq!(cluster.running(), [1, 2, 3]);

    let conflicts = oracle.conflicts();
    assert!(
        conflicts.is_empty(),
        "conflicting signatures: {conflicts:#?}"
    );
    // The keys did not change under the run.
    assert_eq!(public_keys(&cluster).await, keys);
    let export = converged_protection(&cluster).await;
    check_export(&export, &keys, &run);
    let (head_seq, head_hash) = converged_audit(&cluster).await;
    let signed = run.outcomes.get("signed").copied().unwrap_or(0);
    assert!(signed > 0, "the run signed nothing: {:?}", run.outcomes);
    println!(
        "seed {seed}: {} signatures verified, 0 conflicting pairs, {} leader kills, {} UNAVAILABLE \
         answers retried; outcomes {:?}; protection export identical on 3 nodes ({} bytes); audit \
         head {head_seq} {} identical and verified on 3 nodes; {:.1} s",
        oracle.signatures(),
        run.kills,
        run.retried,
        run.outcomes,
        export.len(),
        hex::encode(&head_hash[..8]),
        started.elapsed().as_secs_f64()
    );
}

// ---- the review's reproductions -------------------------------------------------------------

/// Sign `b` as `client` on node `node` (retrying UNAVAILABLE), telling the oracle about it.
async fn sign(
    cluster: &Cluster,
    oracle: &mut Oracle,
    node: u64,
    client: &str,
    b: &Asked,
) -> Result<pb::SignResponse, tonic::Status> {
    b.announce(oracle);
    let mut c = cluster.client(node, client).await;
    let result = sign_retrying(&mut c, b.request.clone()).await;
    if let Ok(resp) = &result {
        oracle.received(&resp.signature, &resp.signed_message, b.digest);
    }
    result
}

fn assert_refused(result: Result<pb::SignResponse, tonic::Status>, code: &str) {
    let status = result.expect_err("refused");
    assert_eq!(refusal_code(&status).as_deref(), Some(code), "{status:?}");
}

fn vote(view: u64, leaf: u8) -> Msg {
    Msg::QuorumVote { view, leaf }
}

fn attestation(source: u64, target: u64, root: u8) -> Msg {
    Msg::Attestation {
        source,
        target,
        root,
    }
}

/// (1) A request id reused with another key: the second key decides by its own rules (a fresh
/// signature, recorded for that key), and neither key ever holds two conflicting signatures.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_id_reused_with_another_key_is_decided_by_that_keys_rules() {
    let (cluster, keys) = cluster_with_registry_keys().await;
    let mut oracle = keys.oracle();
    let cases = [
        (
            ESPRESSO_KEY,
            REGISTRY_ESPRESSO,
            vote(10, 1),
            vote(10, 2),
            "equivocation",
        ),
        (
            ETH2_KEY,
            REGISTRY_ETH2,
            attestation(1, 2, 1),
            attestation(1, 2, 2),
            "double_vote",
        ),
    ];
    for (file_key, registry_key, x, y, conflict) in cases {
        let first = sign(
            &cluster,
            &mut oracle,
            1,
            "seq-1",
            &request(file_key, "r1", &x),
        )
        .await
        .unwrap();
        assert!(!first.resigned);
        assert!(keys.verifies(file_key, &first.signed_message, &first.signature));
        // The same message and request id for the other key (through another node).
        let second = sign(
            &cluster,
            &mut oracle,
            2,
            "seq-1",
            &request(registry_key, "r1", &x),
        )
        .await
        .unwrap();
        assert!(!second.resigned, "a first signature for {registry_key}");
        assert_eq!(second.signed_message, first.signed_message);
        assert!(keys.verifies(registry_key, &second.signed_message, &second.signature));
        assert!(!keys.verifies(file_key, &second.signed_message, &second.signature));
        // It was recorded for the second key: Y is a conflict there, whatever the id.
        for id in ["r1", "r2", ""] {
            let y_req = request(registry_key, id, &y);
            assert_refused(
                sign(&cluster, &mut oracle, 3, "seq-2", &y_req).await,
                conflict,
            );
        }
        assert_refused(
            sign(
                &cluster,
                &mut oracle,
                1,
                "seq-1",
                &request(file_key, "r1", &y),
            )
            .await,
            conflict,
        );
        // The identical request again is a re-sign, for each key.
        let again = sign(
            &cluster,
            &mut oracle,
            3,
            "seq-3",
            &request(registry_key, "r1", &x),
        )
        .await
        .unwrap();
        assert!(again.resigned);
        assert_eq!(again.signature, second.signature);
    }
    assert_eq!(oracle.signatures(), 6);
    let conflicts = oracle.conflicts();
    assert!(conflicts.is_empty(), "{conflicts:#?}");
}

/// (2) Digests chosen by clients: a vote's digest inside a quorum proposal is signed only as
/// part of the proposal's own leaf commitment; an attestation's root sent as a raw block root
/// is refused for a client whose grant does not trust raw roots.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn digests_copied_across_kinds_are_never_signed_as_the_other_kind() {
    let cluster = Cluster::start(3).await;
    let keys = public_keys(&cluster).await;
    let mut oracle = keys.oracle();
    let x = request(ESPRESSO_KEY, "", &vote(10, 1));
    sign(&cluster, &mut oracle, 1, "seq-1", &x).await.unwrap();
    let y = request(ESPRESSO_KEY, "", &vote(10, 2));
    assert_refused(
        sign(&cluster, &mut oracle, 2, "seq-1", &y).await,
        "equivocation",
    );
    // A proposal at view 11 whose every 32-byte field is Y's vote digest.
    let copying = Msg::ProposalCopyingVote {
        view: 11,
        vote_view: 10,
        vote_leaf: 2,
    };
    let proposal = request(ESPRESSO_KEY, "", &copying);
    let resp = sign(&cluster, &mut oracle, 3, "seq-1", &proposal)
        .await
        .unwrap();
    let y_digest = quorum_vote_digest(10, 2);
    assert_eq!(y.digest, y_digest);
    assert_ne!(resp.signed_message, y_digest.to_vec());
    assert_eq!(
        resp.signed_message,
        proposal.digest.to_vec(),
        "the leaf2 commitment"
    );
    assert!(!keys.verifies(ESPRESSO_KEY, &y_digest, &resp.signature));

    // eth2: an attestation is signed; its root (and a conflicting one's) as a raw block root
    // is refused before anything is proposed.
    let att = request(ETH2_KEY, "", &attestation(1, 2, 1));
    sign(&cluster, &mut oracle, 1, "seq-1", &att).await.unwrap();
    for root in [1, 2] {
        let raw = Msg::RawBlockCopyingAttestation {
            slot: 40,
            source: 1,
            target: 2,
            root,
        };
        let status = sign(
            &cluster,
            &mut oracle,
            2,
            "seq-1",
            &request(ETH2_KEY, "", &raw),
        )
        .await
        .unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
        assert!(
            status.message().contains(
                "raw signing roots are accepted only from a client whose grant trusts them"
            ),
            "{status:?}"
        );
    }
    // The raw attestation form too.
    let raw_attestation = pb::SignRequest {
        request_id: String::new(),
        key_id: ETH2_KEY.into(),
        message: Some(pb::sign_request::Message::Eth2(pb::Eth2Request {
            form: Some(pb::eth2_request::Form::RootAttestation(
                pb::RootAttestation {
                    source_epoch: 1,
                    target_epoch: 2,
                    signing_root: quorum_vote_digest(10, 2).to_vec(),
                },
            )),
            signing_root: Vec::new(),
        })),
    };
    let status = cluster
        .client(3, "seq-1")
        .await
        .sign(raw_attestation)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    // A typed block that names the attestation's root as the root it expects is refused: the
    // signer computes the block's own root and never signs the one the client sent.
    let block = request(ETH2_KEY, "", &Msg::Block { slot: 40, body: 1 });
    let mut typed = block.request.clone();
    if let Some(pb::sign_request::Message::Eth2(r)) = &mut typed.message {
        r.signing_root = att.digest.to_vec();
    }
    let status = cluster
        .client(1, "seq-1")
        .await
        .sign(typed)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().starts_with(&format!(
            "eth2.signing_root: the signer computed 0x{} for this BLOCK_V2 message",
            hex::encode(block.digest)
        )),
        "{status:?}"
    );
    assert_eq!(oracle.signatures(), 3);
    let conflicts = oracle.conflicts();
    assert!(conflicts.is_empty(), "{conflicts:#?}");
}

/// (3) A key id shared by a key file and a registry key: the admin plane refuses a registry
/// key whose id a key file on the proposing node holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_registry_key_cannot_take_the_id_of_a_key_file() {
    let cluster = Cluster::start_with(3, local_kek).await;
    let proposed = cluster
        .propose(pb::propose_request::Request::GenerateKey(
            pb::GenerateKeyRequest {
                key_id: ESPRESSO_KEY.into(),
                profile: "espresso".into(),
            },
        ))
        .await;
    match proposed {
        Err(status) => {
            assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");
            let message = status.message();
            assert!(
                message.contains(&format!("{ESPRESSO_KEY:?}")) && message.contains("key file"),
                "{status:?}"
            );
        }
        Ok(challenge) => {
            // Accepted: record what it leads to, for the bug report, then fail.
            let approved = cluster.approve_as("admin-1", &challenge).await;
            let record = cluster.key_info(ESPRESSO_KEY).await;
            let mut c = cluster.client(1, "seq-1").await;
            let signed = sign_retrying(&mut c, support::quorum_vote(10, 1, "")).await;
            let outcome = signed
                .as_ref()
                .map(|r| hex::encode(&r.signature[..8]))
                .map_err(|s| (s.code(), refusal_code(s), s.message().to_owned()));
            panic!(
                "the admin plane accepted a registry key with the id of key file {ESPRESSO_KEY:?}: \
                 challenge {:?} ({}); approval: {:?}; registry record: {record:?}; a vote with \
                 {ESPRESSO_KEY:?} afterwards: {outcome:?}",
                challenge.description,
                hex::encode(&challenge.id),
                approved.map(|a| a.status)
            );
        }
    }
    // Importing under the other key file's id is refused the same way.
    let status = cluster
        .import_key(ETH2_KEY, "eth2", &[0x5a; 32])
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");
    assert!(
        status.message().contains(&format!("{ETH2_KEY:?}"))
            && status.message().contains("key file"),
        "{status:?}"
    );
    // Nothing changed: the registry has no such key, and the key file signs as before.
    assert!(cluster.key_info(ESPRESSO_KEY).await.is_none());
    assert!(cluster.key_info(ETH2_KEY).await.is_none());
    let keys = public_keys(&cluster).await;
    let mut c = cluster.client(2, "seq-1").await;
    let resp = sign_retrying(&mut c, support::quorum_vote(10, 1, ""))
        .await
        .unwrap();
    assert_eq!(keys.public_key(ESPRESSO_KEY), cluster.espresso_public_key);
    assert!(keys.verifies(ESPRESSO_KEY, &resp.signed_message, &resp.signature));
}

/// Node `id`'s status once it answers.
async fn status_of(cluster: &Cluster, id: u64) -> pb::ClusterStatus {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(s) = cluster.status(id).await {
            return s;
        }
        assert!(Instant::now() < deadline, "node {id} does not answer");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// (3) The same id as a key file on one follower only (which the proposing leader cannot
/// see) and as a registry key: the two keys never sign for each other. While another node
/// leads, the registry key signs; once the node with the key file leads, requests for the id
/// are refused `key_mismatch` (it never signs with its file key for the registry's record).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_key_file_on_one_node_and_a_registry_key_never_sign_for_each_other() {
    const SHARED: &str = "node-local";
    let cluster = Cluster::start_with(3, local_kek).await;
    let leader = cluster.wait_leader(Duration::from_secs(10)).await;
    let holder = (1..=3).find(|id| *id != leader).unwrap();
    cluster.kill(holder);
    signer::keyring::KeyFile::generate(SHARED, signer::protection::Profile::Espresso)
        .unwrap()
        .write_new(
            &cluster
                .dir()
                .join(format!("node-{holder}/keys/{SHARED}.key")),
        )
        .unwrap();
    cluster.spawn(holder);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !status_of(&cluster, holder)
        .await
        .keys_loaded
        .iter()
        .any(|k| k == SHARED)
    {
        assert!(
            Instant::now() < deadline,
            "node {holder} did not load its key file"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, file_pk) = public_keys_by_node(&cluster)
        .await
        .into_iter()
        .find(|(id, _)| *id == holder)
        .unwrap();
    assert_eq!(cluster.wait_leader(Duration::from_secs(10)).await, leader);

    // The node holding the key file refuses to prepare the key; the leader, which does not
    // hold it, prepares it.
    let generate = pb::ProposeRequest {
        request: Some(pb::propose_request::Request::GenerateKey(
            pb::GenerateKeyRequest {
                key_id: SHARED.into(),
                profile: "espresso".into(),
            },
        )),
    };
    let status = cluster
        .admin(holder)
        .await
        .propose(generate.clone())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");
    let challenge = cluster
        .admin(leader)
        .await
        .propose(generate)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        cluster
            .approve_as("admin-1", &challenge)
            .await
            .unwrap()
            .status,
        "executed"
    );
    let registry_pk = cluster.key_info(SHARED).await.unwrap().public_key;
    // Every node but the holder loads the registry key; the holder keeps its file key under
    // the id and reports the registry key pending.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let holder_status = status_of(&cluster, holder).await;
        let pending = holder_status
            .keys_pending
            .iter()
            .any(|p| p.key_id == SHARED);
        let keys = public_keys_by_node(&cluster).await;
        let others_loaded = keys
            .iter()
            .filter(|(id, _)| *id != holder)
            .all(|(_, k)| k.0.get(SHARED).map(|e| &e.1) == Some(&registry_pk));
        if pending && others_loaded {
            let on_holder = &keys.iter().find(|(id, _)| *id == holder).unwrap().1;
            assert_eq!(
                on_holder.0[SHARED], file_pk.0[SHARED],
                "the holder's file key"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "registry key not loaded: {keys:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (scheme, file_key) = file_pk.0[SHARED].clone();
    let vote_request = |view| request(SHARED, "", &vote(view, 1)).request;
    // Another node leads: the registry key signs, whichever node is asked.
    for id in 1..=3 {
        let mut c = cluster.client(id, "seq-1").await;
        let resp = sign_retrying(&mut c, vote_request(1)).await.unwrap();
        assert!(verify(
            scheme,
            &registry_pk,
            &resp.signed_message,
            &resp.signature
        ));
        assert!(!verify(
            scheme,
            &file_key,
            &resp.signed_message,
            &resp.signature
        ));
    }
    // The holder leads: it holds the id under another public key than the registry's, so it
    // refuses, for a new view and for the view the registry key signed. An answer counts only
    // if the holder led, in one term, from before the request until after it.
    for view in [2, 1] {
        let mut attempts = 0;
        loop {
            attempts += 1;
            assert!(attempts <= 10, "node {holder} did not keep the leadership");
            make_leader(&cluster, holder).await;
            let before = status_of(&cluster, holder).await;
            let mut c = cluster.client(holder, "seq-1").await;
            let result = sign_retrying(&mut c, vote_request(view)).await;
            let after = status_of(&cluster, holder).await;
            let held = before.leader_id == holder
                && after.leader_id == holder
                && after.term == before.term;
            if held {
                let status = result.unwrap_err();
                assert_eq!(
                    refusal_code(&status).as_deref(),
                    Some("key_mismatch"),
                    "{status:?}"
                );
                break;
            }
            // Another node led meanwhile: whatever was signed is the registry key's.
            if let Ok(resp) = result {
                assert!(verify(
                    scheme,
                    &registry_pk,
                    &resp.signed_message,
                    &resp.signature
                ));
            }
        }
    }
}

/// SIGKILL the leader (and start it again) until node `id` wins an election.
async fn make_leader(cluster: &Cluster, id: u64) {
    let mut attempts = 0;
    loop {
        let current = cluster.wait_leader(Duration::from_secs(30)).await;
        if current == id {
            return;
        }
        attempts += 1;
        assert!(attempts <= 12, "node {id} never won an election");
        cluster.kill(current);
        cluster.wait_leader(Duration::from_secs(30)).await;
        cluster.spawn(current);
    }
}

/// GetPublicKeys on every running node, as (node, keys).
async fn public_keys_by_node(cluster: &Cluster) -> Vec<(u64, Keys)> {
    let mut out = Vec::new();
    for id in cluster.running() {
        let listed = cluster
            .client(id, "seq-1")
            .await
            .get_public_keys(pb::GetPublicKeysRequest {})
            .await
            .unwrap()
            .into_inner()
            .keys;
        out.push((id, keys_of(listed)));
    }
    out
}

/// (5) Probing: an identity without a grant gets the same answer for an existing and a
/// nonexistent key id (it learns nothing about which ids exist); a granted client gets
/// NOT_FOUND for an id no key has.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn probing_key_ids_without_a_grant_learns_nothing() {
    let cluster = Cluster::start(3).await;
    let leader = cluster.wait_leader(Duration::from_secs(10)).await;
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    let cases = [
        (ESPRESSO_KEY, vote(5, 1)),
        (ETH2_KEY, Msg::Block { slot: 5, body: 1 }),
    ];
    for node in [leader, follower] {
        for (existing, msg) in &cases {
            let mut c = cluster.client(node, "nobody-1").await;
            let on_existing = c
                .sign(request(existing, "", msg).request)
                .await
                .unwrap_err();
            let on_missing = c
                .sign(request(MISSING_KEY, "", msg).request)
                .await
                .unwrap_err();
            for s in [&on_existing, &on_missing] {
                assert_eq!(s.code(), Code::PermissionDenied, "node {node}: {s:?}");
                assert_eq!(
                    s.message(),
                    "client \"nobody-1\" has no access grant",
                    "node {node}"
                );
            }
            assert_eq!(on_existing.message(), on_missing.message());
            assert!(on_existing.details().is_empty() && on_missing.details().is_empty());
            // The same inside a batch.
            let batch = pb::SignBatchRequest {
                requests: vec![
                    request(existing, "", msg).request,
                    request(MISSING_KEY, "", msg).request,
                ],
            };
            let results = cluster
                .client(node, "nobody-1")
                .await
                .sign_batch(batch)
                .await
                .unwrap()
                .into_inner()
                .results;
            let answers: Vec<Outcome> = results.into_iter().map(Outcome::of_batch).collect();
            for a in &answers {
                let Outcome::Failed { code, message, .. } = a else {
                    panic!("node {node}: {a:?}")
                };
                assert_eq!(*code, Code::PermissionDenied, "node {node}: {a:?}");
                assert_eq!(message, on_existing.message());
            }
        }
        // Nor does listing the keys tell it anything.
        let status = cluster
            .client(node, "nobody-1")
            .await
            .get_public_keys(pb::GetPublicKeysRequest {})
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
        assert_eq!(status.message(), "client \"nobody-1\" has no access grant");
        // A granted client is told the id does not exist.
        let status = cluster
            .client(node, "seq-1")
            .await
            .sign(request(MISSING_KEY, "", &vote(5, 1)).request)
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
        assert_eq!(
            status.message(),
            format!("key_id: no active key {MISSING_KEY:?} on this cluster")
        );
    }
}

fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// (5) File modes: a started node's data dir is 0700 and its databases 0600, and a node
/// tightens modes that were loosened while it was down.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn data_dir_and_databases_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let cluster = Cluster::start(3).await;
    let data = |id: u64| cluster.dir().join(format!("node-{id}/data"));
    let files = ["raft-log.redb", "state.redb"];
    for id in 1..=3 {
        assert_eq!(mode(&data(id)), 0o700, "node {id}'s data dir");
        for f in files {
            assert_eq!(mode(&data(id).join(f)), 0o600, "node {id}'s {f}");
        }
    }
    cluster.kill(3);
    let loosen = |path: &std::path::Path, m: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(m)).unwrap();
    };
    loosen(&data(3), 0o755);
    for f in files {
        loosen(&data(3).join(f), 0o644);
    }
    cluster.spawn(3);
    let deadline = Instant::now() + Duration::from_secs(30);
    while cluster.status(3).await.is_none() {
        assert!(Instant::now() < deadline, "node 3 did not come back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(mode(&data(3)), 0o700, "node 3's data dir after the restart");
    for f in files {
        assert_eq!(
            mode(&data(3).join(f)),
            0o600,
            "node 3's {f} after the restart"
        );
    }
}

/// Node `id`'s audit records, decoded.
async fn audit_records(cluster: &Cluster, id: u64) -> Vec<audit::AuditRecord> {
    let mut stream = auditor(cluster, id)
        .tail(pb::AuditTailRequest {
            from_seq: 0,
            last: 0,
            follow: false,
            filter: None,
        })
        .await
        .unwrap()
        .into_inner();
    let mut out = Vec::new();
    while let Some(e) = stream.message().await.unwrap() {
        out.push(audit::decode(&e.record).unwrap());
    }
    out
}

/// (node, client) of every access-denied record.
fn denials(records: &[audit::AuditRecord]) -> Vec<(u64, String)> {
    records
        .iter()
        .filter_map(|r| match &r.event {
            AuditEvent::Node(NodeEvent::AccessDenied { node, client, .. }) => {
                Some((*node, client.clone()))
            }
            _ => None,
        })
        .collect()
}

/// (5) A burst of requests from an identity without a grant adds one audit record on the node
/// it called (later denials within the interval are only counted).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_denied_requests_is_audited_once() {
    let cluster = Cluster::start(3).await;
    let node = 2;
    assert!(denials(&audit_records(&cluster, node).await).is_empty());
    let c = cluster.client(node, "nobody-1").await;
    let burst = (0..50u64).map(|i| {
        let mut c = c.clone();
        async move {
            c.sign(support::quorum_vote(100 + i, 1, &format!("burst-{i}")))
                .await
        }
    });
    for result in futures::future::join_all(burst).await {
        let status = result.unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    }
    // A marker: admin-2 has no client grant either; its denial is queued on the same node
    // after the burst's, so once it is in the log the burst's records are too.
    let marker = cluster
        .client(node, "admin-2")
        .await
        .sign(support::quorum_vote(1, 1, ""))
        .await
        .unwrap_err();
    assert_eq!(marker.code(), Code::PermissionDenied);
    let deadline = Instant::now() + Duration::from_secs(30);
    let found = loop {
        let found = denials(&audit_records(&cluster, node).await);
        if found.iter().any(|(_, client)| client == "admin-2") {
            break found;
        }
        assert!(
            Instant::now() < deadline,
            "the marker denial never reached the log: {found:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let burst: Vec<_> = found.iter().filter(|(_, c)| c == "nobody-1").collect();
    assert_eq!(burst, [&(node, "nobody-1".to_owned())], "{found:?}");
    // Every node holds the same records.
    let deadline = Instant::now() + Duration::from_secs(30);
    for id in 1..=3 {
        loop {
            if denials(&audit_records(&cluster, id).await) == found {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node {id} has other denial records"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
