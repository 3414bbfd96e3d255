//! Model-based adversarial test of the sign path below Raft: random request sequences from
//! hostile clients, run through the real request conversion (`service::convert::intent`), the
//! real replicated decision (`Applied::decide_signs`, the function `apply` runs), the real
//! permits (`replica::decide_permits`) and the real keyring signing, with the same log applied
//! through `StateMachine::apply` on two replicas (one of them restarted from disk mid-run).
//!
//! The generator plays what the safety review found: request ids reused across keys, kinds
//! and clients; digests of one kind copied into another (a vote's digest inside a proposal,
//! an attestation's root sent as a raw block root); key ids shared by a key file and a
//! registry key, with the node's view of which key an id names taken either way; retries.
//! The oracle (`oracle/mod.rs`) sees only requests, received signatures and public keys, and
//! fails on any two conflicting messages one key signed. After each sequence the replicas'
//! protection state and audit chain must be identical, and equal to the pure run's.
//!
//! Bounded for CI (see `CASES`); `PROPTEST_CASES=2000 cargo nextest run -p signer-node --test
//! adversarial_model` is the long soak.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod admin_log;
mod oracle;

use openraft::entry::RaftEntry;
use openraft::storage::RaftStateMachine;
use openraft::EntryPayload;
use oracle::requests::{build, msg_or_request, Msg};
use oracle::{Oracle, Scheme};
use proptest::prelude::*;
use signer_node::admin::Action;
use signer_node::keyring::{Keyring, LoadedKey};
use signer_node::pb;
use signer_node::protection::Profile;
use signer_node::registry::{KeyRecord, KeyState};
use signer_node::replica::{
    decide_permits, Command, Entry, SignEntry, SignOutcome, StateMachine, TypeConfig,
};
use signer_node::service::convert::{self, KeyIdentity};
use signer_node::state::Applied;
use std::path::Path;

/// Cases per run in CI; each is a sequence of up to `MAX_OPS` operations.
const CASES: u32 = 32;
const MAX_OPS: usize = 40;

// ---- the keys -------------------------------------------------------------------------------

/// Where a key id comes from on the node.
#[derive(Clone, Copy)]
enum Source {
    /// A key file (node-local).
    File,
    /// The replicated registry.
    Registry,
}

struct KeySpec {
    id: &'static str,
    profile: Profile,
    seed: u8,
    source: Source,
}

/// Key ids and the keys behind them; `shared-*` ids name a key file AND a registry key with
/// another secret.
const KEYS: &[KeySpec] = &[
    KeySpec {
        id: "eth-a",
        profile: Profile::Eth2,
        seed: 1,
        source: Source::File,
    },
    KeySpec {
        id: "eth-b",
        profile: Profile::Eth2,
        seed: 2,
        source: Source::Registry,
    },
    KeySpec {
        id: "shared-eth",
        profile: Profile::Eth2,
        seed: 3,
        source: Source::File,
    },
    KeySpec {
        id: "shared-eth",
        profile: Profile::Eth2,
        seed: 4,
        source: Source::Registry,
    },
    KeySpec {
        id: "esp-a",
        profile: Profile::Espresso,
        seed: 5,
        source: Source::File,
    },
    KeySpec {
        id: "esp-b",
        profile: Profile::Espresso,
        seed: 6,
        source: Source::Registry,
    },
    KeySpec {
        id: "shared-esp",
        profile: Profile::Espresso,
        seed: 7,
        source: Source::File,
    },
    KeySpec {
        id: "shared-esp",
        profile: Profile::Espresso,
        seed: 8,
        source: Source::Registry,
    },
];
const KEY_IDS: &[&str] = &[
    "eth-a",
    "eth-b",
    "shared-eth",
    "esp-a",
    "esp-b",
    "shared-esp",
];
const CLIENTS: &[&str] = &["seq-1", "seq-2", "seq-3"];

fn loaded(spec: &KeySpec) -> LoadedKey {
    let mut secret = [0u8; 32];
    match spec.profile {
        // Big-endian scalar, far below the group order.
        Profile::Eth2 => secret[31] = spec.seed,
        // Little-endian scalar.
        Profile::Espresso => secret[0] = spec.seed,
    }
    LoadedKey::from_secret(spec.id, spec.profile, &secret).unwrap()
}

fn record(spec: &KeySpec) -> KeyRecord {
    admin_log::record(spec.id, spec.profile, loaded(spec).public_key)
}

/// The node's keyring as the key loader leaves it: key files first, then registry keys
/// (a registry key whose id a key file holds is refused and stays pending).
fn keyring() -> Keyring {
    let ring = Keyring::default();
    for spec in KEYS.iter().filter(|k| matches!(k.source, Source::File)) {
        ring.insert(loaded(spec)).unwrap();
    }
    for spec in KEYS.iter().filter(|k| matches!(k.source, Source::Registry)) {
        let result = ring.insert(loaded(spec));
        assert_eq!(result.is_err(), spec.id.starts_with("shared"));
    }
    ring
}

const AT_MS: u64 = 1_700_000_000_000;

/// The log that sets the registry up the only way keys change: a bootstrap with one admin,
/// then every registry key proposed and approved (1 of 1).
fn registry_commands() -> Vec<Command> {
    let admin = admin_log::SoloAdmin::new("model", 9);
    let mut commands = vec![admin.bootstrap()];
    let registry_keys = KEYS.iter().filter(|k| matches!(k.source, Source::Registry));
    for (i, spec) in registry_keys.enumerate() {
        commands.extend(admin.approved(i as u8 + 1, &Action::AddKey(record(spec)), AT_MS));
    }
    commands
}

fn public_keys() -> Vec<(Scheme, Vec<u8>)> {
    KEYS.iter()
        .map(|k| {
            let scheme = match k.profile {
                Profile::Eth2 => Scheme::Bls12381,
                Profile::Espresso => Scheme::Bn254,
            };
            (scheme, loaded(k).public_key)
        })
        .collect()
}

// ---- requests -------------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct Req {
    client: usize,
    /// 0: no request id; otherwise one of a few ids, shared across everything.
    request_id: u8,
    key: usize,
    msg: Msg,
    /// The node resolves the key id from its keyring instead of the registry (a stale or
    /// hostile view of which key an id names).
    identity_from_keyring: bool,
}

#[derive(Clone, Debug)]
enum Op {
    /// One `SignBatch` (or a single `Sign` when it holds one request).
    Batch(Vec<Req>),
    /// An earlier request sent again by the same client with the same request id and
    /// message, to the key `key` (a retry when it is the same key; a reused id otherwise).
    Retry {
        of: proptest::sample::Index,
        key: usize,
    },
    /// Replica A restarts from its database.
    Restart,
}

fn req() -> impl Strategy<Value = Req> {
    (
        0..CLIENTS.len(),
        0u8..3,
        0..KEY_IDS.len(),
        msg_or_request(),
        any::<bool>(),
    )
        .prop_map(
            |(client, request_id, key, msg, identity_from_keyring)| Req {
                client,
                request_id,
                key,
                msg,
                identity_from_keyring,
            },
        )
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    let op = prop_oneof![
        8 => req().prop_map(|r| Op::Batch(vec![r])),
        2 => proptest::collection::vec(req(), 2..5).prop_map(Op::Batch),
        3 => (any::<proptest::sample::Index>(), 0..KEY_IDS.len())
            .prop_map(|(of, key)| Op::Retry { of, key }),
        1 => Just(Op::Restart),
    ];
    proptest::collection::vec(op, 1..MAX_OPS)
}

// ---- the node edge and the run --------------------------------------------------------------

/// The key a node believes `key_id` names: the registry's record, disabled or deleted ones
/// marked inactive and still proposed (as the service resolves it), or, for `from_keyring`,
/// whatever its keyring holds under the id.
fn identity(
    applied: &Applied,
    ring: &Keyring,
    key_id: &str,
    from_keyring: bool,
) -> Option<KeyIdentity> {
    let from_ring = || ring.get(key_id).map(|k| KeyIdentity::from(k.as_ref()));
    if from_keyring {
        return from_ring();
    }
    match applied.registry.keys.get(key_id) {
        Some(r) => Some(KeyIdentity {
            key_id: r.key_id.clone(),
            profile: r.profile,
            public_key: r.public_key.clone(),
            inactive: r.state != KeyState::Active,
        }),
        None => from_ring(),
    }
}

fn log_entry(index: u64, command: Command) -> Entry {
    Entry::new(
        openraft::testing::log_id::<TypeConfig>(1, 1, index),
        EntryPayload::Normal(signer_node::replica::Proposal {
            at_ms: AT_MS,
            command,
        }),
    )
}

async fn apply(sm: &mut StateMachine, entry: Entry) {
    sm.apply(futures::stream::iter([Ok((entry, None))]))
        .await
        .unwrap();
}

struct Replica {
    path: std::path::PathBuf,
    sm: Option<StateMachine>,
}

impl Replica {
    fn open(path: &Path) -> Replica {
        Replica {
            path: path.to_owned(),
            sm: Some(StateMachine::open(path, false).unwrap()),
        }
    }

    fn sm(&mut self) -> &mut StateMachine {
        self.sm.as_mut().unwrap()
    }

    /// Close the database and open it again, as a restarted node does.
    fn restart(&mut self) {
        self.sm = None;
        self.sm = Some(StateMachine::open(&self.path, false).unwrap());
    }
}

/// What one run produced: the oracle, its conflicting pairs (empty when safe) and each
/// request's result in order (`Signed`, `Resigned`, a refusal code, or the edge's status code).
struct Run {
    oracle: Oracle,
    conflicts: Vec<String>,
    results: Vec<String>,
}

/// Run one sequence.
async fn run(ops: &[Op], dir: &Path) -> Run {
    let mut results = Vec::new();
    let ring = keyring();
    let network = eth2_messages::NetworkSpec::mainnet();
    let mut applied = Applied::default();
    let mut a = Replica::open(&dir.join("a.redb"));
    let mut b = Replica::open(&dir.join("b.redb"));
    let mut index = 0u64;
    for command in registry_commands() {
        index += 1;
        apply(a.sm(), log_entry(index, command.clone())).await;
        apply(b.sm(), log_entry(index, command)).await;
    }
    // The pure decision starts from the same replicated state.
    applied.registry = a.sm().read().registry.clone();
    applied.admin = a.sm().read().admin.clone();
    let registry_keys = KEYS
        .iter()
        .filter(|k| matches!(k.source, Source::Registry))
        .count();
    assert_eq!(
        applied.registry.keys.len(),
        registry_keys,
        "every registry key approved"
    );
    let mut oracle = Oracle::new(public_keys());
    let mut sent: Vec<Req> = Vec::new();
    for op in ops {
        let batch = match op {
            Op::Restart => {
                a.restart();
                continue;
            }
            Op::Retry { .. } if sent.is_empty() => continue,
            Op::Retry { of, key } => {
                let mut again = of.get(&sent).clone();
                again.key = *key;
                // The client keeps its request id (one is chosen if it had none).
                again.request_id = again.request_id.max(1);
                vec![again]
            }
            Op::Batch(batch) => batch.clone(),
        };
        sent.extend(batch.iter().cloned());
        let batch = &batch;
        let mut entries = Vec::new();
        let mut expected = Vec::new();
        for r in batch {
            let oracle::requests::Built {
                message,
                meaning,
                digest,
                signed,
                copied,
                digest_chosen_by_client,
            } = build(&r.msg);
            if !digest_chosen_by_client && signed.len() == 32 {
                oracle.asked(meaning.clone(), digest);
            }
            for (m, d) in &copied {
                oracle.asked(m.clone(), *d);
            }
            let key_id = KEY_IDS[r.key];
            let request = pb::SignRequest {
                request_id: if r.request_id == 0 {
                    String::new()
                } else {
                    format!("r{}", r.request_id)
                },
                key_id: key_id.into(),
                message: Some(message),
            };
            let Some(id) = identity(&applied, &ring, key_id, r.identity_from_keyring) else {
                results.push("no_key".into());
                continue;
            };
            // No client of the model is trusted with raw roots.
            let context = convert::Eth2Context {
                network: &network,
                raw_roots: false,
            };
            let typed = convert::SignRequest::try_from(request.clone());
            let intent = match typed.and_then(|typed| convert::intent(&typed, &id, context)) {
                Ok(intent) => intent,
                Err(status) => {
                    results.push(format!("{:?}", status.code()));
                    continue;
                }
            };
            entries.push(SignEntry {
                request_id: request.request_id.clone(),
                client: CLIENTS[r.client].into(),
                key_id: key_id.into(),
                intent,
            });
            expected.push((digest, signed, meaning, copied));
        }
        if entries.is_empty() {
            continue;
        }
        let outcomes = applied.decide_signs(&entries);
        index += 1;
        apply(a.sm(), log_entry(index, Command::Sign(entries.clone()))).await;
        apply(b.sm(), log_entry(index, Command::Sign(entries.clone()))).await;
        let decided = decide_permits(&entries, outcomes).unwrap();
        for ((entry, d), (digest, signed, meaning, copied)) in
            entries.iter().zip(decided).zip(expected)
        {
            let outcome = match &d.outcome {
                SignOutcome::Refused(v) => v.code().to_owned(),
                other => format!("{other:?}"),
            };
            let (Some(permit), Some(key)) = (d.permit, ring.get(&entry.key_id)) else {
                results.push(outcome);
                continue;
            };
            let signed_message = permit.message().to_vec();
            match key.sign(permit) {
                Ok(signature) => {
                    oracle.received_bytes(
                        &signature.bytes,
                        &signed_message,
                        &signed,
                        digest,
                        &meaning,
                    );
                    // A request built around a vote's digest never yields that vote.
                    for (m, d) in &copied {
                        assert!(
                            !oracle.verifies_as(&signature.bytes, d),
                            "{meaning:?} signed bytes that verify as {m:?}"
                        );
                    }
                    results.push(outcome);
                }
                Err(_) => results.push(format!("{outcome}, permit refused by the key")),
            }
        }
    }
    // Every replica decided the same, from the log alone.
    assert_eq!(
        a.sm().read().protection,
        b.sm().read().protection,
        "replicas diverged"
    );
    assert_eq!(
        a.sm().read().protection,
        applied.protection,
        "apply differs from the pure decision"
    );
    assert_eq!(
        a.sm().audit_records(0, usize::MAX).unwrap(),
        b.sm().audit_records(0, usize::MAX).unwrap(),
        "audit chains diverged"
    );
    let conflicts = oracle.conflicts();
    Run {
        oracle,
        conflicts,
        results,
    }
}

fn run_blocking(ops: &[Op]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(run(ops, dir.path()))
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(CASES),
        max_shrink_iters: 200,
        ..ProptestConfig::default()
    })]

    #[test]
    fn no_sequence_of_hostile_requests_obtains_two_conflicting_signatures(ops in ops()) {
        let run = run_blocking(&ops);
        prop_assert!(run.conflicts.is_empty(), "conflicting signatures: {:#?}", run.conflicts);
    }
}

/// The request shapes of the safety review, each replayed with the exact outcome of every
/// request. On the code the review ran against, each ended with the same key holding two
/// conflicting signatures; the oracle would report that pair.
#[test]
fn the_review_sequences_end_in_refusals_never_a_second_signature() {
    let req = |key, request_id, msg, identity_from_keyring| Req {
        client: 0,
        request_id,
        key,
        msg,
        identity_from_keyring,
    };
    let vote = |view, leaf| Msg::QuorumVote { view, leaf };
    let (eth_a, eth_b, esp_a, esp_b, shared_esp) = (0, 1, 3, 4, 5);
    let attestation = |root| Msg::Attestation {
        source: 1,
        target: 2,
        root,
    };
    let cases: Vec<(&str, Vec<Req>, Vec<&str>)> = vec![
        (
            // The second key's first request is decided by the rules (and recorded), so its
            // conflicting vote is refused.
            "a request id reused with another key (espresso)",
            vec![
                req(esp_a, 1, vote(10, 1), false),
                req(esp_b, 1, vote(10, 1), false),
                req(esp_b, 2, vote(10, 2), false),
            ],
            vec!["Signed", "Signed", "equivocation"],
        ),
        (
            "a request id reused with another key (eth2 attestation, shared root)",
            vec![
                req(eth_a, 1, attestation(1), false),
                req(eth_b, 1, attestation(1), false),
                req(eth_b, 2, attestation(2), false),
            ],
            vec!["Signed", "Signed", "double_vote"],
        ),
        (
            // The proposal is signed, but over its own leaf commitment (the oracle checks the
            // digest it received is the Leaf2 commitment, not the copied vote digest).
            "a refused vote's digest inside a quorum proposal",
            vec![
                req(esp_a, 0, vote(10, 1), false),
                req(esp_a, 0, vote(10, 2), false),
                req(
                    esp_a,
                    0,
                    Msg::ProposalCopyingVote {
                        view: 11,
                        vote_view: 10,
                        vote_leaf: 2,
                    },
                    false,
                ),
            ],
            vec!["Signed", "equivocation", "Signed"],
        ),
        (
            "a refused attestation's root as a raw block root",
            vec![
                req(eth_a, 0, attestation(1), false),
                req(eth_a, 0, attestation(2), false),
                req(
                    eth_a,
                    0,
                    Msg::RawBlockCopyingAttestation {
                        slot: 40,
                        source: 1,
                        target: 2,
                        root: 2,
                    },
                    false,
                ),
            ],
            vec!["Signed", "double_vote", "PermissionDenied"],
        ),
        (
            // The file key's request names the file key, which the registry does not hold under
            // this id: refused in apply. The registry key's request is decided for the registry
            // key, but the key loaded under the id (the file key) refuses its permit.
            "a key id shared by a key file and a registry key",
            vec![
                req(shared_esp, 0, vote(10, 1), true),
                req(shared_esp, 0, vote(10, 2), false),
                req(shared_esp, 0, vote(10, 2), true),
            ],
            vec![
                "KeyMismatch",
                "Signed, permit refused by the key",
                "KeyMismatch",
            ],
        ),
        (
            // HotShot signs these without a domain tag: a vote's digest as a builder's block
            // hash is refused (the client is not trusted with raw hashes); inside a catch-up
            // request it is signed, but over bytes that are not the vote's.
            "a refused vote's digest as a builder block hash and as a catch-up request",
            vec![
                req(esp_a, 0, vote(10, 1), false),
                req(esp_a, 0, vote(10, 2), false),
                req(
                    esp_a,
                    0,
                    Msg::BuilderClaimCopyingVote {
                        view: 10,
                        vote_view: 10,
                        vote_leaf: 2,
                    },
                    false,
                ),
                req(
                    esp_a,
                    0,
                    Msg::CatchUpCopyingVote {
                        vote_view: 10,
                        vote_leaf: 2,
                        timestamp: 1,
                    },
                    false,
                ),
                req(esp_a, 0, Msg::PushCdnAuth { timestamp: 1 }, false),
                req(esp_a, 0, Msg::PushCdnAuth { timestamp: 1 }, false),
            ],
            vec![
                "Signed",
                "equivocation",
                "PermissionDenied",
                "Signed",
                "Signed",
                "Signed",
            ],
        ),
        (
            // The new protocol: a Vote1 (a quorum vote) for a rival proposal and a Vote2 for
            // the decided one in the same view are both signed; a second Vote2 in that view and
            // epoch is not, one in the next epoch is; the v3 timeout vote has its own slot and
            // bars new Vote2s at or below its view.
            "Vote1 and Vote2 in one view, Vote2 per epoch, the v3 timeout vote",
            vec![
                req(esp_a, 0, vote(10, 1), false),
                req(
                    esp_a,
                    0,
                    Msg::Vote2 {
                        view: 10,
                        leaf: 2,
                        epoch: 1,
                    },
                    false,
                ),
                req(
                    esp_a,
                    0,
                    Msg::Vote2 {
                        view: 10,
                        leaf: 1,
                        epoch: 1,
                    },
                    false,
                ),
                req(
                    esp_a,
                    0,
                    Msg::Vote2 {
                        view: 10,
                        leaf: 1,
                        epoch: 0,
                    },
                    false,
                ),
                req(esp_a, 0, Msg::Timeout3 { view: 10, epoch: 1 }, false),
                req(esp_a, 0, Msg::Timeout3 { view: 10, epoch: 1 }, false),
                // After that timeout: the Vote2 signed before it re-signs, a new one at or
                // below view 10 is refused in any epoch, one above it is signed.
                req(
                    esp_a,
                    0,
                    Msg::Vote2 {
                        view: 10,
                        leaf: 2,
                        epoch: 1,
                    },
                    false,
                ),
                req(
                    esp_a,
                    0,
                    Msg::Vote2 {
                        view: 10,
                        leaf: 2,
                        epoch: 2,
                    },
                    false,
                ),
                req(
                    esp_a,
                    0,
                    Msg::Vote2 {
                        view: 11,
                        leaf: 2,
                        epoch: 1,
                    },
                    false,
                ),
            ],
            vec![
                "Signed",
                "Signed",
                "equivocation",
                "Signed",
                "Signed",
                "Resigned",
                "Resigned",
                "vote2_after_timeout",
                "Signed",
            ],
        ),
        (
            // The new protocol's leader and upgrade messages: a re-vote request and an upgrade
            // vote are one per view and epoch; a new-protocol proposal whose fields (its v3
            // timeout evidence included) copy a vote's digest signs a leaf commitment (the
            // oracle checks it verifies as no vote), and shares the quorum-proposal slot.
            "re-vote requests, new-protocol upgrade votes and proposals",
            vec![
                req(
                    esp_a,
                    0,
                    Msg::ReVote {
                        view: 4,
                        epoch: 1,
                        cert: 1,
                    },
                    false,
                ),
                req(
                    esp_a,
                    0,
                    Msg::ReVote {
                        view: 4,
                        epoch: 1,
                        cert: 2,
                    },
                    false,
                ),
                req(
                    esp_a,
                    0,
                    Msg::ReVote {
                        view: 4,
                        epoch: 2,
                        cert: 2,
                    },
                    false,
                ),
                req(
                    esp_a,
                    0,
                    Msg::UpgradeVote2 {
                        view: 4,
                        epoch: 1,
                        decide_by: 0,
                    },
                    false,
                ),
                req(
                    esp_a,
                    0,
                    Msg::UpgradeVote2 {
                        view: 4,
                        epoch: 1,
                        decide_by: 1,
                    },
                    false,
                ),
                req(esp_a, 0, vote(3, 1), false),
                req(
                    esp_a,
                    0,
                    Msg::NewProtocolProposalCopyingVote {
                        view: 4,
                        vote_view: 3,
                        vote_leaf: 1,
                    },
                    false,
                ),
                req(
                    esp_a,
                    0,
                    Msg::NewProtocolProposalCopyingVote {
                        view: 4,
                        vote_view: 3,
                        vote_leaf: 2,
                    },
                    false,
                ),
            ],
            vec![
                "Signed",
                "equivocation",
                "Signed",
                "Signed",
                "equivocation",
                "Signed",
                "Signed",
                "equivocation",
            ],
        ),
    ];
    for (name, requests, expected) in cases {
        let ops: Vec<Op> = requests.into_iter().map(|r| Op::Batch(vec![r])).collect();
        let run = run_blocking(&ops);
        println!(
            "{name}: {:?}, {} signatures, {} conflicting pairs",
            run.results,
            run.oracle.signatures(),
            run.conflicts.len()
        );
        assert_eq!(run.results, expected, "{name}");
        assert!(run.conflicts.is_empty(), "{name}: {:#?}", run.conflicts);
    }
}

/// The oracle itself: a raw-root block request is only the client's claim, so two different
/// attestations whose roots were also asked for as raw blocks at one slot are not a double
/// block; a raw root that *is* signed as a block counts as that block.
#[test]
fn the_oracle_counts_a_raw_block_claim_only_for_the_request_signed() {
    use signer_node::scheme::bls12_381::SecretKey;
    let key = SecretKey::from_ikm(&[7; 32]).unwrap();
    let public = key.public_key().to_bytes().to_vec();
    let raw = |root| Msg::RawBlockCopyingAttestation {
        slot: 14,
        source: 1,
        target: root as u64 + 2,
        root,
    };
    let sign = |oracle: &mut Oracle, msg: &Msg, signed_as: &Msg| {
        let asked = build(msg);
        if !asked.digest_chosen_by_client {
            oracle.asked(asked.meaning.clone(), asked.digest);
        }
        for (m, d) in &asked.copied {
            oracle.asked(m.clone(), *d);
        }
        let signed = build(signed_as);
        let signature = key.sign(&signed.digest).to_bytes();
        oracle.received(&signature, &signed.digest, signed.digest, &signed.meaning);
    };
    // Two raw-block requests refused; the attestations they copied signed as attestations.
    let mut oracle = Oracle::new(vec![(Scheme::Bls12381, public.clone())]);
    for root in [0u8, 1] {
        let attestation = Msg::Attestation {
            source: 1,
            target: root as u64 + 2,
            root,
        };
        sign(&mut oracle, &raw(root), &attestation);
    }
    assert_eq!(oracle.conflicts(), Vec::<String>::new());
    // The same two raw-block requests signed as blocks at slot 14: a double block.
    let mut oracle = Oracle::new(vec![(Scheme::Bls12381, public)]);
    for root in [0u8, 1] {
        sign(&mut oracle, &raw(root), &raw(root));
    }
    let conflicts = oracle.conflicts();
    assert_eq!(conflicts.len(), 1, "{conflicts:?}");
    assert!(conflicts[0].contains("Block { slot: 14 }"), "{conflicts:?}");
}
