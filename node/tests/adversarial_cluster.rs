//! The adversarial model over a real cluster: three `signer node` processes (see `support`),
//! key files and registry keys of both profiles, hostile sequencer clients, and leader
//! SIGKILLs with restarts in the middle of the run. The oracle (`oracle/mod.rs`) sees only what
//! clients received and the public keys the cluster publishes; it verifies every signature and
//! fails on any two conflicting messages one key signed. At the end every node must export
//! the same eth2 protection state (Admin `ExportProtection`) and report the same verified
//! audit head (Audit `Verify`).
//!
//! The model is seeded: the seed is printed, and `ADVERSARIAL_CLUSTER_SEED=<n>` replays it
//! (`ADVERSARIAL_CLUSTER_CASES`, `ADVERSARIAL_CLUSTER_OPS` for a longer soak). The request
//! shapes of the safety review, one by one, are in `review_attacks.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod adversarial;
mod oracle;
mod support;

use adversarial::*;
use oracle::requests::{msg, Msg};
use oracle::{Meaning, Oracle};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use signer_node::pb;
use signer_node::protection::interchange;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use support::{Cluster, ESPRESSO_KEY, ETH2_KEY};
use tonic::Code;

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
        let asked: Vec<Asked> = reqs
            .iter()
            .map(|r| {
                let id = match r.request_id {
                    0 => String::new(),
                    n => format!("r{n}"),
                };
                request(r.key.key_id(&r.msg), &id, &r.msg)
            })
            .collect();
        for a in &asked {
            a.announce(oracle);
        }
        let wire: Vec<pb::SignRequest> = asked.iter().map(|a| a.request.clone()).collect();
        let (outcomes, retried) = send(cluster, CLIENTS[client], node, &wire).await;
        run.retried += retried;
        for ((r, b), outcome) in reqs.iter().zip(&asked).zip(outcomes) {
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
                    oracle.received(&resp.signature, &resp.signed_message, b.digest, &b.meaning);
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

/// Wait until every node verifies its audit chain and all report the same head, twice in a
/// row 300 ms apart (node events are delivered after the sign path's entries). Returns it.
async fn converged_audit(cluster: &Cluster) -> (u64, Vec<u8>) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = None;
    loop {
        let mut heads = Vec::new();
        for id in 1..=3 {
            let answer = cluster
                .auditor(id)
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
    // The keys did not change under the run (once a restarted node has unsealed its registry
    // keys again).
    wait_registry_keys_loaded(&cluster).await;
    assert_eq!(public_keys(&cluster).await, keys);
    let export = cluster
        .converged_protection(3, Duration::from_secs(30))
        .await;
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
