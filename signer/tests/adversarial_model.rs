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
//! Bounded for CI (see `CASES`); `PROPTEST_CASES=2000 cargo nextest run -p signer --test
//! adversarial_model` is the long soak.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod oracle;

use openraft::entry::RaftEntry;
use openraft::storage::RaftStateMachine;
use openraft::EntryPayload;
use oracle::{Meaning, Oracle, Scheme};
use proptest::prelude::*;
use signer::custody::{BackendKind, KekRef, SealedKey};
use signer::keyring::{Keyring, LoadedKey};
use signer::pb;
use signer::protection::Profile;
use signer::admin::state::Bootstrap;
use signer::admin::{approval, Action, AdminCommand, AdminRecord, ApproverKey, Policy};
use signer::registry::{KeyRecord, KeyState};
use signer::replica::state_machine::Applied;
use signer::replica::{decide_permits, Command, Entry, SignEntry, StateMachine, TypeConfig};
use signer::service::convert::{self, KeyIdentity};
use std::path::Path;

/// Cases per run in CI; each is a sequence of up to `MAX_OPS` operations.
const CASES: u32 = 32;
const MAX_OPS: usize = 40;

const GVR: [u8; 32] = signer::config::MAINNET_GENESIS_VALIDATORS_ROOT;
/// Mainnet's deneb and electra fork versions.
const FORK_PREVIOUS: [u8; 4] = [4, 0, 0, 0];
const FORK_CURRENT: [u8; 4] = [5, 0, 0, 0];
/// Epochs before this are signed with `FORK_PREVIOUS` (the fork boundary is inside the range).
const FORK_EPOCH: u64 = 2;

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
    KeySpec { id: "eth-a", profile: Profile::Eth2, seed: 1, source: Source::File },
    KeySpec { id: "eth-b", profile: Profile::Eth2, seed: 2, source: Source::Registry },
    KeySpec { id: "shared-eth", profile: Profile::Eth2, seed: 3, source: Source::File },
    KeySpec { id: "shared-eth", profile: Profile::Eth2, seed: 4, source: Source::Registry },
    KeySpec { id: "esp-a", profile: Profile::Espresso, seed: 5, source: Source::File },
    KeySpec { id: "esp-b", profile: Profile::Espresso, seed: 6, source: Source::Registry },
    KeySpec { id: "shared-esp", profile: Profile::Espresso, seed: 7, source: Source::File },
    KeySpec { id: "shared-esp", profile: Profile::Espresso, seed: 8, source: Source::Registry },
];
const KEY_IDS: &[&str] = &["eth-a", "eth-b", "shared-eth", "esp-a", "esp-b", "shared-esp"];
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
    KeyRecord {
        key_id: spec.id.into(),
        profile: spec.profile,
        public_key: loaded(spec).public_key,
        sealed: Some(SealedKey {
            kek: KekRef {
                backend: BackendKind::Local,
                key_id: "model".into(),
            },
            wrapped_dek: vec![0; 60],
            nonce: [0; 12],
            ciphertext: vec![0; 48],
        }),
        state: KeyState::Active,
        origin: "generated".into(),
    }
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
const CLUSTER_ID: &str = "model";

fn admin_key() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[9; 32])
}

/// The log that sets the registry up the only way keys change: a bootstrap with one admin,
/// then every registry key proposed and approved (1 of 1).
fn registry_commands() -> Vec<Command> {
    use ed25519_dalek::Signer as _;
    let mut commands = vec![Command::Admin(AdminCommand::Bootstrap(Bootstrap {
        cluster_id: CLUSTER_ID.into(),
        admins: vec![AdminRecord {
            name: "admin-1".into(),
            key: ApproverKey::Ed25519(admin_key().verifying_key().to_bytes().to_vec()),
            attestation: None,
        }],
        policy: Policy::default(),
        clients: Default::default(),
        attestation_roots: Vec::new(),
        genesis_validators_root: None,
    }))];
    let registry_keys = KEYS.iter().filter(|k| matches!(k.source, Source::Registry));
    for (i, spec) in registry_keys.enumerate() {
        let id = [i as u8 + 1; 32];
        let bytes = signer::admin::codec::encode_action(&Action::AddKey(record(spec)));
        let expires = AT_MS + Policy::default().challenge_ttl_ms;
        let statement =
            approval::statement(CLUSTER_ID, &id, &approval::action_digest(&bytes), expires);
        commands.push(Command::Admin(AdminCommand::Propose {
            id,
            proposer: "admin-1".into(),
            action_bytes: bytes,
        }));
        commands.push(Command::Admin(AdminCommand::Approve {
            id,
            admin: "admin-1".into(),
            signature: admin_key().sign(&statement).to_bytes().to_vec(),
        }));
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

/// A message a client asks for, in terms small enough to collide often.
#[derive(Clone, Debug)]
enum Msg {
    Block { slot: u64, body: u8 },
    Attestation { source: u64, target: u64, root: u8 },
    /// A raw-root block carrying the signing root of a typed attestation.
    RawBlockCopyingAttestation { slot: u64, source: u64, target: u64, root: u8 },
    /// Messages no slashing rule covers, over the same small numbers as blocks and votes.
    Randao { epoch: u64 },
    AggregationSlot { slot: u64 },
    QuorumVote { view: u64, leaf: u8 },
    DaVote { view: u64, payload: u8 },
    Timeout { view: u64 },
    ViewSync { phase: u8, round: u64, relay: u64 },
    /// A quorum proposal built around the digest of a quorum vote.
    ProposalCopyingVote { view: u64, vote_view: u64, vote_leaf: u8 },
    DaProposal { view: u64, payload: u8 },
}

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
    Retry { of: proptest::sample::Index, key: usize },
    /// Replica A restarts from its database.
    Restart,
}

fn msg() -> impl Strategy<Value = Msg> {
    let small = 0u64..5;
    let byte = 0u8..3;
    prop_oneof![
        (small.clone(), byte.clone()).prop_map(|(slot, body)| Msg::Block { slot, body }),
        (small.clone(), small.clone(), byte.clone()).prop_map(|(source, target, root)| {
            Msg::Attestation { source, target, root }
        }),
        (small.clone(), small.clone(), small.clone(), byte.clone()).prop_map(
            |(slot, source, target, root)| Msg::RawBlockCopyingAttestation {
                slot: slot + 10,
                source,
                target,
                root
            }
        ),
        small.clone().prop_map(|epoch| Msg::Randao { epoch }),
        small.clone().prop_map(|slot| Msg::AggregationSlot { slot }),
        (small.clone(), byte.clone()).prop_map(|(view, leaf)| Msg::QuorumVote { view, leaf }),
        (small.clone(), byte.clone()).prop_map(|(view, payload)| Msg::DaVote { view, payload }),
        small.clone().prop_map(|view| Msg::Timeout { view }),
        (0u8..3, small.clone(), 0u64..2).prop_map(|(phase, round, relay)| Msg::ViewSync {
            phase,
            round,
            relay
        }),
        (small.clone(), small.clone(), byte.clone()).prop_map(|(view, vote_view, vote_leaf)| {
            Msg::ProposalCopyingVote { view, vote_view, vote_leaf }
        }),
        (small, byte).prop_map(|(view, payload)| Msg::DaProposal { view, payload }),
    ]
}

fn req() -> impl Strategy<Value = Req> {
    (0..CLIENTS.len(), 0u8..3, 0..KEY_IDS.len(), msg(), any::<bool>()).prop_map(
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

fn fork_info() -> eth2_messages::ForkInfo {
    eth2_messages::ForkInfo {
        fork: eth2_messages::Fork {
            previous_version: FORK_PREVIOUS,
            current_version: FORK_CURRENT,
            epoch: FORK_EPOCH,
        },
        genesis_validators_root: GVR,
    }
}

/// A typed eth2 request as the client sends it.
fn eth2(message: &eth2_messages::Eth2Message) -> pb::sign_request::Message {
    signer::client::eth2::typed(message, None)
}

fn version_at(epoch: u64) -> [u8; 4] {
    if epoch < FORK_EPOCH {
        FORK_PREVIOUS
    } else {
        FORK_CURRENT
    }
}

fn espresso(kind: pb::espresso_message::Kind) -> pb::sign_request::Message {
    pb::sign_request::Message::Espresso(pb::EspressoMessage { kind: Some(kind) })
}

/// The attestation of `Msg::Attestation` and its oracle digest.
fn attestation(source: u64, target: u64, root: u8) -> (eth2_messages::Eth2Message, [u8; 32]) {
    use eth2_messages::phase0::{AttestationData, Checkpoint};
    let data = AttestationData {
        slot: target * 32,
        index: 0,
        beacon_block_root: [root; 32],
        source: Checkpoint {
            epoch: source,
            root: [0; 32],
        },
        target: Checkpoint {
            epoch: target,
            root: [root; 32],
        },
    };
    let object = oracle::attestation_data_root(
        target * 32,
        0,
        [root; 32],
        (source, [0; 32]),
        (target, [root; 32]),
    );
    let digest = oracle::signing_root(object, oracle::domain(1, version_at(target), GVR));
    let message = eth2_messages::Eth2Message::Attestation {
        fork_info: fork_info(),
        data,
    };
    (message, digest)
}

fn quorum_vote_digest(view: u64, leaf: u8) -> [u8; 32] {
    oracle::vote(oracle::quorum_data([leaf; 32]), view)
}

fn esp(kind: &'static str, view: u64, relay: u64) -> Meaning {
    Meaning::Espresso { kind, view, relay }
}

/// The wire request for `msg`, the oracle's meaning and digest for it, and any other meaning
/// the request's bytes were built to stand for (a copied digest).
fn build(msg: &Msg) -> (pb::sign_request::Message, Meaning, [u8; 32], Vec<(Meaning, [u8; 32])>) {
    use pb::espresso_message::Kind as K;
    match *msg {
        Msg::Block { slot, body } => {
            let header = eth2_messages::phase0::BeaconBlockHeader {
                slot,
                proposer_index: 0,
                parent_root: [0; 32],
                state_root: [0; 32],
                body_root: [body; 32],
            };
            let object = oracle::header_root(slot, 0, [0; 32], [0; 32], [body; 32]);
            let digest =
                oracle::signing_root(object, oracle::domain(0, version_at(slot / 32), GVR));
            let message = eth2_messages::Eth2Message::BlockV2 {
                fork_info: fork_info(),
                block: eth2_messages::BeaconBlockRequest::Electra(header),
            };
            (eth2(&message), Meaning::Block { slot }, digest, vec![])
        }
        Msg::Attestation { source, target, root } => {
            let (message, digest) = attestation(source, target, root);
            (eth2(&message), Meaning::Attestation { source, target }, digest, vec![])
        }
        Msg::RawBlockCopyingAttestation { slot, source, target, root } => {
            let (_, digest) = attestation(source, target, root);
            let m = pb::sign_request::Message::Eth2(pb::Eth2Request {
                form: Some(pb::eth2_request::Form::RootBlock(pb::RootBlock {
                    slot,
                    signing_root: digest.to_vec(),
                })),
                signing_root: Vec::new(),
            });
            let copied = (Meaning::Attestation { source, target }, digest);
            (m, Meaning::Block { slot }, digest, vec![copied])
        }
        Msg::Randao { epoch } => {
            let message = eth2_messages::Eth2Message::RandaoReveal {
                fork_info: fork_info(),
                epoch,
            };
            let object = oracle::uint64_root(epoch);
            let digest = oracle::signing_root(object, oracle::domain(2, version_at(epoch), GVR));
            let meaning = Meaning::Eth2Other { kind: "RANDAO_REVEAL" };
            (eth2(&message), meaning, digest, vec![])
        }
        Msg::AggregationSlot { slot } => {
            let message = eth2_messages::Eth2Message::AggregationSlot {
                fork_info: fork_info(),
                slot,
            };
            let object = oracle::uint64_root(slot);
            let digest =
                oracle::signing_root(object, oracle::domain(5, version_at(slot / 32), GVR));
            let meaning = Meaning::Eth2Other { kind: "AGGREGATION_SLOT" };
            (eth2(&message), meaning, digest, vec![])
        }
        Msg::QuorumVote { view, leaf } => {
            let m = espresso(K::QuorumVote(pb::QuorumVote {
                view,
                leaf_commit: vec![leaf; 32],
                epoch: None,
                block_number: None,
            }));
            (m, esp("quorum-vote", view, 0), quorum_vote_digest(view, leaf), vec![])
        }
        Msg::DaVote { view, payload } => {
            let m = espresso(K::DaVote(pb::DaVote {
                view,
                payload_commit: vec![payload; 32],
                next_epoch_payload_commit: None,
                epoch: None,
            }));
            let digest = oracle::vote(oracle::da_data([payload; 32]), view);
            (m, esp("da-vote", view, 0), digest, vec![])
        }
        Msg::Timeout { view } => {
            let m = espresso(K::TimeoutVote(pb::TimeoutVote { view, epoch: None }));
            let digest = oracle::vote(oracle::timeout_data(view), view);
            (m, esp("timeout-vote", view, 0), digest, vec![])
        }
        Msg::ViewSync { phase, round, relay } => {
            let m = espresso(K::ViewSyncVote(pb::ViewSyncVote {
                phase: i32::from(phase) + 1,
                round,
                relay,
                epoch: None,
            }));
            let kind = ["view-sync-precommit", "view-sync-commit", "view-sync-finalize"]
                [phase as usize];
            let digest = oracle::vote(oracle::view_sync_data(phase, round, relay), round);
            (m, esp(kind, round, relay), digest, vec![])
        }
        Msg::ProposalCopyingVote { view, vote_view, vote_leaf } => {
            // Every 32-byte field of the proposal holds the digest of a vote.
            let copied_digest = quorum_vote_digest(vote_view, vote_leaf);
            let m = espresso(K::QuorumProposal(pb::QuorumProposal {
                view,
                parent_leaf: copied_digest.to_vec(),
                block_header_commit: copied_digest.to_vec(),
                justify_qc_commit: copied_digest.to_vec(),
                upgrade_certificate_commit: None,
                with_epoch: None,
            }));
            let copied = (esp("quorum-vote", vote_view, 0), copied_digest);
            let digest = oracle::leaf2(view, copied_digest, copied_digest, copied_digest);
            (m, esp("quorum-proposal", view, 0), digest, vec![copied])
        }
        Msg::DaProposal { view, payload } => {
            // The payload names its view, so a payload is never reused across views.
            let bytes = vec![view as u8, payload, 0xDA];
            let digest = oracle::da_proposal(&bytes);
            let m = espresso(K::DaProposal(pb::DaProposal {
                view,
                encoded_transactions: bytes,
            }));
            (m, esp("da-proposal", view, 0), digest, vec![])
        }
    }
}

// ---- the node edge and the run --------------------------------------------------------------

/// The key a node believes `key_id` names: the registry's active record (as the service
/// resolves it) or, for `from_keyring`, whatever its keyring holds under the id.
fn identity(applied: &Applied, ring: &Keyring, key_id: &str, from_keyring: bool) -> Option<KeyIdentity> {
    let from_ring = || ring.get(key_id).map(|k| KeyIdentity::from(k.as_ref()));
    if from_keyring {
        return from_ring();
    }
    match applied.registry.keys.get(key_id) {
        Some(r) if r.state == KeyState::Active => Some(KeyIdentity {
            key_id: r.key_id.clone(),
            profile: r.profile,
            public_key: r.public_key.clone(),
        }),
        Some(_) => None,
        None => from_ring(),
    }
}

fn log_entry(index: u64, command: Command) -> Entry {
    Entry::new(
        openraft::testing::log_id::<TypeConfig>(1, 1, index),
        EntryPayload::Normal(signer::replica::Proposal {
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

/// Run one sequence; returns the oracle's conflicts (empty when safe).
async fn run(ops: &[Op], dir: &Path) -> (Oracle, Vec<String>) {
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
    let registry_keys = KEYS.iter().filter(|k| matches!(k.source, Source::Registry)).count();
    assert_eq!(applied.registry.keys.len(), registry_keys, "every registry key approved");
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
            let (message, meaning, digest, copied) = build(&r.msg);
            oracle.asked(meaning, digest);
            for (m, d) in copied {
                oracle.asked(m, d);
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
                continue;
            };
            // No client of the model is trusted with raw roots.
            let context = convert::Eth2Context {
                network: &network,
                raw_roots: false,
            };
            let Ok(intent) = convert::intent(&request, &id, context) else {
                continue;
            };
            entries.push(SignEntry {
                request_id: request.request_id.clone(),
                client: CLIENTS[r.client].into(),
                key_id: key_id.into(),
                intent,
            });
            expected.push(digest);
        }
        if entries.is_empty() {
            continue;
        }
        let outcomes = applied.decide_signs(&entries);
        index += 1;
        apply(a.sm(), log_entry(index, Command::Sign(entries.clone()))).await;
        apply(b.sm(), log_entry(index, Command::Sign(entries.clone()))).await;
        let decided = decide_permits(&entries, outcomes).unwrap();
        for ((entry, d), digest) in entries.iter().zip(decided).zip(expected) {
            let (Some(permit), Some(key)) = (d.permit, ring.get(&entry.key_id)) else {
                continue;
            };
            let signed_message = *permit.message();
            if let Ok(signature) = key.sign(permit) {
                oracle.received(&signature.bytes, &signed_message, digest);
            }
        }
    }
    // Every replica decided the same, from the log alone.
    assert_eq!(a.sm().read().protection, b.sm().read().protection, "replicas diverged");
    assert_eq!(a.sm().read().protection, applied.protection, "apply differs from the pure decision");
    assert_eq!(
        a.sm().audit_records(0, usize::MAX).unwrap(),
        b.sm().audit_records(0, usize::MAX).unwrap(),
        "audit chains diverged"
    );
    let conflicts = oracle.conflicts();
    (oracle, conflicts)
}

fn run_blocking(ops: &[Op]) -> (Oracle, Vec<String>) {
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
        let (_, conflicts) = run_blocking(&ops);
        prop_assert!(conflicts.is_empty(), "conflicting signatures: {conflicts:#?}");
    }
}

/// The oracle is not blind: the sequences of the safety review, replayed here, each name the
/// exact request shape; a signer without the fixes gives a conflicting pair for each.
#[test]
fn the_review_sequences_obtain_no_conflicting_pair() {
    let quorum = |view, leaf, key, request_id| Req {
        client: 0,
        request_id,
        key,
        msg: Msg::QuorumVote { view, leaf },
        identity_from_keyring: false,
    };
    let esp_a = 3;
    let esp_b = 4;
    let shared_esp = 5;
    let sequences: Vec<(&str, Vec<Op>)> = vec![
        (
            "a reused request id with another key",
            vec![
                Op::Batch(vec![quorum(10, 1, esp_a, 1)]),
                Op::Batch(vec![quorum(10, 1, esp_b, 1)]),
                Op::Batch(vec![quorum(10, 2, esp_b, 2)]),
            ],
        ),
        (
            "a vote's digest inside a quorum proposal",
            vec![
                Op::Batch(vec![quorum(10, 1, esp_a, 0)]),
                Op::Batch(vec![quorum(10, 2, esp_a, 0)]),
                Op::Batch(vec![Req {
                    client: 0,
                    request_id: 0,
                    key: esp_a,
                    msg: Msg::ProposalCopyingVote { view: 11, vote_view: 10, vote_leaf: 2 },
                    identity_from_keyring: false,
                }]),
            ],
        ),
        (
            "an attestation's root as a raw block root",
            vec![
                Op::Batch(vec![Req {
                    client: 0,
                    request_id: 0,
                    key: 0,
                    msg: Msg::Attestation { source: 1, target: 2, root: 1 },
                    identity_from_keyring: false,
                }]),
                Op::Batch(vec![Req {
                    client: 0,
                    request_id: 0,
                    key: 0,
                    msg: Msg::RawBlockCopyingAttestation { slot: 40, source: 1, target: 2, root: 2 },
                    identity_from_keyring: false,
                }]),
            ],
        ),
        (
            "a key id shared by a key file and a registry key",
            vec![
                Op::Batch(vec![Req {
                    identity_from_keyring: true,
                    ..quorum(10, 1, shared_esp, 0)
                }]),
                Op::Batch(vec![quorum(10, 2, shared_esp, 0)]),
                Op::Batch(vec![Req {
                    identity_from_keyring: true,
                    ..quorum(10, 2, shared_esp, 0)
                }]),
            ],
        ),
    ];
    for (name, ops) in sequences {
        let (oracle, conflicts) = run_blocking(&ops);
        println!("{name}: {} signatures, {} conflicting pairs", oracle.signatures(), conflicts.len());
        assert!(conflicts.is_empty(), "{name}: {conflicts:#?}");
    }
}
