//! The seed corpora: real inputs for every target, taken from the project's vectors
//! (`tests/vectors/`, `examples/`) and from encodings the code itself produces, written to
//! `fuzz/corpus/<target>/seed-*` by `fuzz/run.sh --seeds` (the `write_seeds` binary).
//!
//! Owns: what each target starts from. Must not: be needed to run the targets (the seeds are
//! checked in; this regenerates them), or write anywhere but the directory it is given.
//!
//! Seeds are deterministic (fixed keys, a seeded RNG) except the certificates, which rcgen
//! makes with new keys and ECDSA signatures each time: regenerating rewrites those files.

use futures::StreamExt as _;
use openraft::entry::RaftEntry;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::{BasicNode, EntryPayload, Membership, StoredMembership};
use prost::Message as _;
use rand::SeedableRng;
use signer_node::admin::action::{EnrollKey, Prior};
use signer_node::admin::codec::encode_action;
use signer_node::admin::{Action, AdminCommand, ClientGrant, Fingerprint, Policy, RateLimit};
use signer_node::audit::{ChainPoint, NodeEvent};
use signer_node::bytes::FixedBytes;
use signer_node::format;
use signer_node::pb;
use signer_node::protection::ethereum::Eth2Intent;
use signer_node::protection::interchange::review::RecordSeen;
use signer_node::protection::{Intent, Profile};
use signer_node::registry::KeyState;
use signer_node::replica::network::{snapshot_chunks, to_message, SnapshotHeader};
use signer_node::replica::{Entry, LogId, SnapshotData, SnapshotMeta, TypeConfig, Vote};
use signer_node::scheme::{bls12_381, bn254};
use signer_node::service::convert::SignRequest;
use signer_node::service::signing::{ForwardedSign, SignError, Signed};
use signer_node::state::{Applied, AuditChain, Command, Proposal, SignEntry};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The seeds of one target, as they are written.
struct Seeds {
    dir: PathBuf,
    written: usize,
}

impl Seeds {
    fn new(out: &Path, target: &str) -> io::Result<Seeds> {
        let dir = out.join(target);
        fs::create_dir_all(&dir)?;
        Ok(Seeds { dir, written: 0 })
    }

    fn put(&mut self, name: &str, bytes: &[u8]) -> io::Result<()> {
        let safe: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        fs::write(self.dir.join(format!("seed-{safe}")), bytes)?;
        self.written += 1;
        Ok(())
    }
}

fn json_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    Ok(files)
}

fn read_json(path: &Path) -> io::Result<serde_json::Value> {
    serde_json::from_slice(&fs::read(path)?).map_err(io::Error::other)
}

/// Write every target's seeds under `out` (normally `fuzz/corpus`), reading the vectors of the
/// repository at `repo`. Returns how many seeds were written.
pub fn write_all(repo: &Path, out: &Path) -> io::Result<usize> {
    let bodies = web3signer_bodies(repo)?;
    Ok(web3signer(out, &bodies)?
        + eth2_wire(out, &bodies)?
        + grpc(out, &bodies)?
        + peer(out)?
        + snapshot_stream(out)?
        + interchange(repo, out)?
        + keystore(repo, out)?
        + admin(repo, out)?
        + certificates(out)?
        + tagged(out)?
        + audit(out)?
        + protection(out)?)
}

/// Every Web3Signer request body among the eth2 fixtures and examples: (name, JSON bytes).
fn web3signer_bodies(repo: &Path) -> io::Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    for file in json_files(&repo.join("tests/vectors/eth2-signing-roots"))? {
        let doc = read_json(&file)?;
        let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("x");
        for (i, case) in doc
            .get("cases")
            .and_then(|c| c.as_array())
            .into_iter()
            .flatten()
            .enumerate()
        {
            if let Some(request) = case.get("request") {
                let bytes = serde_json::to_vec(request).map_err(io::Error::other)?;
                out.push((format!("{stem}-{i}"), bytes));
            }
        }
    }
    out.push((
        "example-block-v2".into(),
        fs::read(repo.join("examples/eth2-block-v2.json"))?,
    ));
    Ok(out)
}

fn web3signer(out: &Path, bodies: &[(String, Vec<u8>)]) -> io::Result<usize> {
    let mut s = Seeds::new(out, "web3signer_json")?;
    for (name, bytes) in bodies {
        s.put(name, bytes)?;
    }
    Ok(s.written)
}

fn parsed(bodies: &[(String, Vec<u8>)]) -> Vec<(String, Vec<u8>, Option<[u8; 32]>)> {
    bodies
        .iter()
        .filter_map(|(name, body)| {
            let (m, root) = eth2_messages::parse_web3signer(body).ok()?;
            Some((name.clone(), m.to_bytes(), root))
        })
        .collect()
}

fn eth2_wire(out: &Path, bodies: &[(String, Vec<u8>)]) -> io::Result<usize> {
    let mut s = Seeds::new(out, "eth2_wire")?;
    for (name, bytes, _) in parsed(bodies) {
        s.put(&name, &bytes)?;
    }
    Ok(s.written)
}

fn sign_request(key_id: &str, message: pb::sign_request::Message) -> pb::SignRequest {
    pb::SignRequest {
        request_id: "req-1".into(),
        key_id: key_id.into(),
        message: Some(message),
    }
}

/// Espresso messages of every kind, in their gRPC form.
fn espresso_requests() -> Vec<(&'static str, pb::EspressoMessage)> {
    use pb::espresso_message::Kind as K;
    let c = |b: u8| vec![b; 32];
    let quorum = pb::QuorumVote {
        view: 10,
        leaf_commit: c(1),
        epoch: Some(2),
        block_number: Some(30),
    };
    let upgrade = |v2: bool| pb::UpgradeVote {
        view: 12,
        old_version: Some(pb::Version { major: 0, minor: 2 }),
        new_version: Some(pb::Version { major: 0, minor: 3 }),
        new_version_hash: vec![9; 8],
        decide_by: (!v2).then_some(100),
        new_version_first_view: (!v2).then_some(120),
        old_version_last_view: (!v2).then_some(110),
        epoch: v2.then_some(4),
        v2,
    };
    let proposal = |epoch: bool| pb::QuorumProposal {
        view: 14,
        parent_leaf: c(2),
        block_header_commit: c(3),
        justify_qc_commit: c(4),
        upgrade_certificate_commit: (!epoch).then(|| c(5)),
        with_epoch: epoch.then(|| pb::LeafEpoch {
            next_epoch_justify_qc_commit: Some(c(6)),
            next_drb_result: Some(c(7)),
            view_change_evidence: Some(pb::leaf_epoch::ViewChangeEvidence::TimeoutCertCommit(c(8))),
        }),
        layout: match epoch {
            true => pb::LeafLayout::Epochs,
            false => pb::LeafLayout::PreEpoch,
        } as i32,
    };
    let kinds = vec![
        ("quorum-vote", K::QuorumVote(quorum.clone())),
        (
            "quorum-vote-v1",
            K::QuorumVote(pb::QuorumVote {
                epoch: None,
                block_number: None,
                ..quorum.clone()
            }),
        ),
        ("next-epoch-quorum-vote", K::NextEpochQuorumVote(quorum)),
        (
            "da-vote",
            K::DaVote(pb::DaVote {
                view: 11,
                payload_commit: c(9),
                next_epoch_payload_commit: Some(c(10)),
                epoch: Some(3),
            }),
        ),
        (
            "timeout-vote",
            K::TimeoutVote(pb::TimeoutVote {
                view: 13,
                epoch: Some(3),
            }),
        ),
        (
            "view-sync-vote",
            K::ViewSyncVote(pb::ViewSyncVote {
                phase: pb::ViewSyncPhase::Commit as i32,
                round: 15,
                relay: 2,
                epoch: None,
            }),
        ),
        ("upgrade-vote-v1", K::UpgradeVote(upgrade(false))),
        ("upgrade-vote-v2", K::UpgradeVote(upgrade(true))),
        ("quorum-proposal", K::QuorumProposal(proposal(false))),
        ("quorum-proposal-epoch", K::QuorumProposal(proposal(true))),
        (
            "da-proposal",
            K::DaProposal(pb::DaProposal {
                view: 16,
                encoded_transactions: b"tx-1tx-2".to_vec(),
            }),
        ),
    ];
    kinds
        .into_iter()
        .map(|(name, kind)| (name, pb::EspressoMessage { kind: Some(kind) }))
        .collect()
}

fn grpc_requests(bodies: &[(String, Vec<u8>)]) -> Vec<(String, pb::SignRequest)> {
    use pb::eth2_request::Form;
    use pb::sign_request::Message as M;
    let mut out = Vec::new();
    for (i, (name, bytes, root)) in parsed(bodies).into_iter().enumerate() {
        // Every third fixture, with and without the client's root: enough shapes, a small
        // corpus (the eth2_wire target has them all).
        if i % 3 != 0 {
            continue;
        }
        out.push((
            format!("typed-{name}"),
            sign_request(
                "k-eth2",
                M::Eth2(pb::Eth2Request {
                    form: Some(Form::Typed(bytes)),
                    signing_root: root.map(|r| r.to_vec()).unwrap_or_default(),
                }),
            ),
        ));
    }
    out.push((
        "raw-block".into(),
        sign_request(
            "k-eth2",
            M::Eth2(pb::Eth2Request {
                form: Some(Form::RootBlock(pb::RootBlock {
                    slot: 32,
                    signing_root: vec![0x11; 32],
                })),
                signing_root: Vec::new(),
            }),
        ),
    ));
    out.push((
        "raw-attestation".into(),
        sign_request(
            "k-eth2",
            M::Eth2(pb::Eth2Request {
                form: Some(Form::RootAttestation(pb::RootAttestation {
                    source_epoch: 3,
                    target_epoch: 4,
                    signing_root: vec![0x22; 32],
                })),
                signing_root: Vec::new(),
            }),
        ),
    ));
    for (name, m) in espresso_requests() {
        out.push((name.into(), sign_request("k-espresso", M::Espresso(m))));
    }
    out
}

fn grpc(out: &Path, bodies: &[(String, Vec<u8>)]) -> io::Result<usize> {
    let mut s = Seeds::new(out, "grpc_sign_request")?;
    for (name, req) in grpc_requests(bodies) {
        s.put(&name, &req.encode_to_vec())?;
    }
    Ok(s.written)
}

fn log_id(term: u64, node: u64, index: u64) -> LogId {
    openraft::testing::log_id::<TypeConfig>(term, node, index)
}

fn membership() -> Membership<u64, BasicNode> {
    let nodes: BTreeMap<u64, BasicNode> = (1..=3)
        .map(|id| (id, BasicNode::new(format!("127.0.0.1:700{id}"))))
        .collect();
    Membership::new(vec![BTreeSet::from([1, 2, 3])], nodes).unwrap_or_default()
}

fn meta() -> SnapshotMeta {
    SnapshotMeta {
        last_log_id: Some(log_id(3, 1, 40)),
        last_membership: StoredMembership::new(Some(log_id(1, 1, 1)), membership()),
    }
}

fn events() -> Vec<NodeEvent> {
    vec![
        NodeEvent::KeyLoaded {
            node: 2,
            key_id: "key-1".into(),
        },
        NodeEvent::KeyUnloaded {
            node: 2,
            key_id: "key-1".into(),
            reason: "disabled".into(),
        },
        NodeEvent::KmsFailure {
            node: 2,
            key_id: "key-2".into(),
            detail: "KMS unreachable".into(),
        },
        NodeEvent::AccessDenied {
            node: 3,
            client: "seq-9".into(),
            key_id: "key-1".into(),
            profile: "eth2".into(),
            reason: "no grant".into(),
        },
    ]
}

fn sign_entries() -> Vec<SignEntry> {
    let espresso = signer_node::protection::espresso::EspressoIntent {
        public_key: FixedBytes([0xa0; 128]),
        message: signer_node::protection::espresso::Message::TimeoutVote {
            view: 3,
            epoch: None,
        },
    };
    vec![
        SignEntry {
            request_id: "req-7".into(),
            client: "seq-1".into(),
            key_id: "key-1".into(),
            intent: Intent::Eth2(Eth2Intent::Attestation {
                pubkey: FixedBytes([0xab; 48]),
                source_epoch: 9,
                target_epoch: 10,
                signing_root: FixedBytes([7; 32]),
            }),
        },
        SignEntry {
            request_id: String::new(),
            client: "seq-1".into(),
            key_id: "key-1".into(),
            intent: Intent::Eth2(Eth2Intent::Block {
                pubkey: FixedBytes([0xab; 48]),
                slot: 5,
                signing_root: FixedBytes([8; 32]),
            }),
        },
        SignEntry {
            request_id: "r".into(),
            client: "seq-2".into(),
            key_id: "key-2".into(),
            intent: Intent::Espresso(espresso),
        },
    ]
}

fn commands() -> Vec<Command> {
    vec![
        Command::Sign(sign_entries()),
        Command::Event(events()),
        Command::Admin(AdminCommand::Approve {
            id: [5; 32],
            admin: "alice".into(),
            signature: vec![1, 2, 3],
        }),
    ]
}

fn peer_seed(s: &mut Seeds, selector: u8, name: &str, payload: &[u8]) -> io::Result<()> {
    let mut bytes = vec![selector];
    bytes.extend_from_slice(payload);
    s.put(name, &bytes)
}

fn encoded<T: serde::Serialize>(value: &T) -> io::Result<Vec<u8>> {
    to_message(value)
        .map(|m| m.payload)
        .map_err(io::Error::other)
}

fn peer(out: &Path) -> io::Result<usize> {
    let mut s = Seeds::new(out, "peer_message")?;
    let mut entries: Vec<Entry> = vec![Entry::new(log_id(3, 1, 41), EntryPayload::Blank)];
    for (i, command) in commands().into_iter().enumerate() {
        entries.push(Entry::new(
            log_id(3, 1, 42 + i as u64),
            EntryPayload::Normal(Proposal {
                at_ms: 1_700_000_000_000 + i as u64,
                command,
            }),
        ));
    }
    entries.push(Entry::new(
        log_id(3, 1, 50),
        EntryPayload::Membership(membership()),
    ));
    let append = AppendEntriesRequest::<TypeConfig> {
        vote: Vote::new_committed(3, 1),
        prev_log_id: Some(log_id(3, 1, 40)),
        entries,
        leader_commit: Some(log_id(2, 1, 39)),
    };
    peer_seed(&mut s, 0, "append-entries", &encoded(&append)?)?;
    let heartbeat = AppendEntriesRequest::<TypeConfig> {
        vote: Vote::new_committed(3, 1),
        prev_log_id: None,
        entries: Vec::new(),
        leader_commit: None,
    };
    peer_seed(&mut s, 0, "heartbeat", &encoded(&heartbeat)?)?;
    let vote = VoteRequest::<TypeConfig>::new(Vote::new(4, 2), Some(log_id(3, 1, 40)));
    peer_seed(&mut s, 1, "vote", &encoded(&vote)?)?;
    let bodies = Vec::new();
    for (name, req) in grpc_requests(&bodies) {
        let Ok(typed) = SignRequest::try_from(req) else {
            continue;
        };
        let fwd = ForwardedSign {
            client: "seq-1".into(),
            request: typed,
        };
        peer_seed(&mut s, 2, &format!("forward-{name}"), &encoded(&fwd)?)?;
    }
    peer_seed(&mut s, 3, "events", &encoded(&events())?)?;
    let header = SnapshotHeader {
        vote: Vote::new_committed(3, 1),
        meta: meta(),
        len: 3,
    };
    peer_seed(&mut s, 4, "snapshot-header", &encoded(&header)?)?;
    let signed: Result<Signed, SignError> = Ok(Signed {
        signature: vec![0x99; 96],
        signature_text: "0x99".into(),
        resigned: false,
        signed_message: vec![7; 32],
    });
    peer_seed(&mut s, 5, "forward-answer-signed", &encoded(&signed)?)?;
    let refused: Result<Signed, SignError> = Err(SignError::Invalid {
        field: "key_id".into(),
        reason: "missing".into(),
    });
    peer_seed(&mut s, 5, "forward-answer-refused", &encoded(&refused)?)?;
    let ok: Result<AppendEntriesResponse<TypeConfig>, String> = Ok(AppendEntriesResponse::Success);
    peer_seed(&mut s, 6, "append-answer", &encoded(&ok)?)?;
    let granted: Result<VoteResponse<TypeConfig>, String> = Ok(VoteResponse::new(
        Vote::new(4, 2),
        Some(log_id(3, 1, 40)),
        true,
    ));
    peer_seed(&mut s, 7, "vote-answer", &encoded(&granted)?)?;
    let snap: Result<SnapshotResponse<TypeConfig>, String> =
        Ok(SnapshotResponse::new(Vote::new_committed(3, 1)));
    peer_seed(&mut s, 8, "snapshot-answer", &encoded(&snap)?)?;
    let (applied, records) = applied_with_records();
    let body = applied.snapshot_body(records.clone());
    peer_seed(
        &mut s,
        9,
        "snapshot-body",
        &format::encode(&body).map_err(io::Error::other)?,
    )?;
    // Edge values of the audit chain a snapshot carries: a chain at the last seq, and an
    // anchor at the last seq with a record after it.
    let last = ChainPoint {
        seq: u64::MAX,
        hash: [9; 32],
    };
    let mut at_max = applied.snapshot_body(Vec::new());
    at_max.audit_chain = AuditChain {
        anchor: last,
        head: last,
        last_at_ms: 1,
    };
    peer_seed(
        &mut s,
        9,
        "snapshot-body-chain-at-max",
        &format::encode(&at_max).map_err(io::Error::other)?,
    )?;
    at_max.audit_records = records.into_iter().take(1).collect();
    peer_seed(
        &mut s,
        9,
        "snapshot-body-record-after-max",
        &format::encode(&at_max).map_err(io::Error::other)?,
    )?;
    Ok(s.written)
}

/// A state after a few commands, and the audit records they wrote.
fn applied_with_records() -> (Applied, Vec<(u64, Vec<u8>)>) {
    let mut applied = Applied::default();
    let mut records = Vec::new();
    for (i, command) in commands().iter().enumerate() {
        let (_, changes) = applied.apply(command, 10 + i as u64, 1_700_000_000_000 + i as u64);
        records.extend(changes.audit);
    }
    (applied, records)
}

fn snapshot_stream(out: &Path) -> io::Result<usize> {
    let mut s = Seeds::new(out, "snapshot_stream")?;
    for (name, cap, data) in [
        ("empty", 1u8, Vec::new()),
        ("small", 1, b"snapshot bytes".to_vec()),
        ("at-cap", 1, vec![3; 64]),
        ("bigger", 2, vec![4; 700]),
    ] {
        let chunks = snapshot_chunks(
            Vote::new_committed(3, 1),
            meta(),
            SnapshotData::InMemory(data.clone()),
        )
        .map_err(io::Error::other)?;
        // An in-memory body's stream reads no file: it runs without a Tokio runtime.
        let chunks: Vec<pb::SnapshotChunk> = futures::executor::block_on(chunks.collect());
        let mut bytes = vec![cap];
        for chunk in chunks {
            let header = chunk.header.unwrap_or_default();
            let flags = u8::from(!header.is_empty());
            bytes.push(flags);
            if flags == 1 {
                bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
                bytes.extend_from_slice(&header);
            }
            // The snapshot's bytes in pieces of at most 100, as several chunks would carry
            // them.
            if chunk.data.is_empty() {
                bytes.extend_from_slice(&0u16.to_le_bytes());
            }
            for (i, piece) in chunk.data.chunks(100).enumerate() {
                if i > 0 {
                    bytes.push(0);
                }
                bytes.extend_from_slice(&(piece.len() as u16).to_le_bytes());
                bytes.extend_from_slice(piece);
            }
        }
        s.put(name, &bytes)?;
    }
    Ok(s.written)
}

fn interchange(repo: &Path, out: &Path) -> io::Result<usize> {
    let mut s = Seeds::new(out, "interchange")?;
    for file in json_files(&repo.join("tests/vectors/eip3076"))? {
        let doc = read_json(&file)?;
        let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("x");
        for (i, step) in doc
            .get("steps")
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
            .enumerate()
        {
            if let Some(ic) = step.get("interchange") {
                let text = serde_json::to_vec_pretty(ic).map_err(io::Error::other)?;
                s.put(&format!("{stem}-{i}"), &text)?;
            }
        }
    }
    s.put(
        "example",
        &fs::read(repo.join("examples/interchange.json"))?,
    )?;
    Ok(s.written)
}

/// A cheap EIP-2335 keystore (the KDF runs in microseconds) of `secret` under `password`.
fn keystore_json(password: &str, scrypt_kdf: bool, secret: &[u8; 32], with_pubkey: bool) -> String {
    use aes::cipher::{KeyIvInit, StreamCipher};
    use sha2::{Digest, Sha256};
    let salt = [0x5a; 32];
    let iv = [0x17; 16];
    let mut dk = [0u8; 32];
    let kdf = if scrypt_kdf {
        if let Ok(params) = scrypt::Params::new(4, 8, 1) {
            let _ = scrypt::scrypt(password.as_bytes(), &salt, &params, &mut dk);
        }
        serde_json::json!({"function": "scrypt", "params": {"dklen": 32, "n": 16, "r": 8,
            "p": 1, "salt": hex::encode(salt)}, "message": ""})
    } else {
        let _ = pbkdf2::pbkdf2::<pbkdf2::hmac::Hmac<pbkdf2::sha2::Sha256>>(
            password.as_bytes(),
            &salt,
            2,
            &mut dk,
        );
        serde_json::json!({"function": "pbkdf2", "params": {"dklen": 32, "c": 2,
            "prf": "hmac-sha256", "salt": hex::encode(salt)}, "message": ""})
    };
    let mut cipher_message = *secret;
    if let Ok(mut c) = ctr::Ctr128BE::<aes::Aes128>::new_from_slices(&dk[..16], &iv) {
        let _ = c.try_apply_keystream(&mut cipher_message);
    }
    let checksum = Sha256::new()
        .chain_update(&dk[16..])
        .chain_update(cipher_message)
        .finalize();
    let mut doc = serde_json::json!({
        "crypto": {
            "kdf": kdf,
            "checksum": {"function": "sha256", "params": {}, "message": hex::encode(checksum)},
            "cipher": {"function": "aes-128-ctr", "params": {"iv": hex::encode(iv)},
                "message": hex::encode(cipher_message)},
        },
        "description": "fuzz seed",
        "path": "m/12381/3600/0/0/0",
        "uuid": "1d85ae20-35c5-4611-98e8-aa14a633906f",
        "version": 4,
    });
    if with_pubkey {
        if let (Ok(sk), Some(obj)) = (
            bls12_381::SecretKey::from_bytes(secret),
            doc.as_object_mut(),
        ) {
            obj.insert(
                "pubkey".into(),
                hex::encode(sk.public_key().to_bytes()).into(),
            );
        }
    }
    doc.to_string()
}

fn keystore(repo: &Path, out: &Path) -> io::Result<usize> {
    let mut s = Seeds::new(out, "keystore")?;
    let secret = bls12_381::SecretKey::from_ikm(&[0x42; 32])
        .map(|k| *k.to_bytes())
        .map_err(io::Error::other)?;
    for (name, scrypt_kdf, with_pubkey) in [
        ("pbkdf2", false, true),
        ("scrypt", true, true),
        ("pbkdf2-no-pubkey", false, false),
    ] {
        let json = keystore_json("testpassword", scrypt_kdf, &secret, with_pubkey);
        s.put(name, format!("testpassword\n{json}").as_bytes())?;
        s.put(
            &format!("{name}-wrong-password"),
            format!("another\n{json}").as_bytes(),
        )?;
    }
    // The EIP-2335 vectors (their KDFs are too slow for the target, which skips them, but
    // their shape is the standard one).
    for name in ["pbkdf2", "scrypt"] {
        let json = fs::read_to_string(repo.join(format!("tests/vectors/eip2335/{name}.json")))?;
        s.put(
            &format!("eip2335-{name}"),
            format!("testpassword\n{json}").as_bytes(),
        )?;
    }
    Ok(s.written)
}

fn admin(repo: &Path, out: &Path) -> io::Result<usize> {
    let mut s = Seeds::new(out, "admin_action")?;
    let soft = ed25519_dalek::SigningKey::from_bytes(&[3; 32])
        .verifying_key()
        .to_bytes()
        .to_vec();
    let grant = ClientGrant {
        keys: ["a".to_owned(), "b".to_owned()].into(),
        profiles: [Profile::Eth2, Profile::Espresso].into(),
        rate_limit: Some(RateLimit {
            per_second: 5,
            burst: 9,
        }),
        raw_roots: true,
    };
    let chain = attestation_chain(true);
    let interchange = fs::read_to_string(repo.join("examples/interchange.json"))?;
    let actions = vec![
        (
            "set-key-state",
            Action::SetKeyState {
                key_id: "k".into(),
                state: KeyState::Disabled,
            },
        ),
        ("rotate-kek", Action::RotateKek(vec![])),
        (
            "grant-new",
            Action::GrantClient {
                identity: "seq-1".into(),
                grant: grant.clone(),
                prior: Prior::Recorded(None),
            },
        ),
        (
            "grant-replace",
            Action::GrantClient {
                identity: "seq-1".into(),
                grant: grant.clone(),
                prior: Prior::Recorded(Some(ClientGrant {
                    raw_roots: false,
                    rate_limit: None,
                    ..grant.clone()
                })),
            },
        ),
        (
            "revoke-client",
            Action::RevokeClient {
                identity: "seq-1".into(),
                prior: Prior::Recorded(grant),
            },
        ),
        (
            "enroll-soft",
            Action::EnrollAdmin {
                name: "admin-x".into(),
                key: EnrollKey::Development {
                    ed25519_public_key: soft,
                },
            },
        ),
        (
            "enroll-yubikey",
            Action::EnrollAdmin {
                name: "admin-y".into(),
                key: EnrollKey::YubiKey {
                    slot_certificate: chain.2.clone(),
                    device_certificate: chain.1.clone(),
                },
            },
        ),
        (
            "remove-admin",
            Action::RemoveAdmin {
                name: "admin-x".into(),
            },
        ),
        ("set-policy", Action::SetPolicy(Policy::default())),
        (
            "import-protection",
            Action::ImportProtection {
                interchange: interchange.clone(),
                minify: false,
                prior: Prior::Recorded(vec![Some(RecordSeen {
                    block: Some((9, true)),
                    attestation: Some((3, 4, true)),
                })]),
            },
        ),
        (
            "import-protection-unrecorded",
            Action::ImportProtection {
                interchange,
                minify: true,
                prior: Prior::Unrecorded,
            },
        ),
        ("pause", Action::Pause),
        ("resume", Action::Resume),
        ("compact-audit", Action::CompactAudit { up_to_seq: 2 }),
        (
            "revoke-certificate",
            Action::RevokeCertificate {
                fingerprint: Fingerprint::of(&chain.2),
                certificate: chain.2.clone(),
            },
        ),
        (
            "revoke-fingerprint",
            Action::RevokeCertificate {
                fingerprint: Fingerprint([8; 32]),
                certificate: Vec::new(),
            },
        ),
    ];
    for (name, action) in actions {
        s.put(name, &encode_action(&action))?;
    }
    Ok(s.written)
}

/// Root, device and slot certificates (DER).
type Chain = (Vec<u8>, Vec<u8>, Vec<u8>);

/// A YubiKey-shaped attestation chain made with rcgen: (root, device, slot) DER, with a P-256
/// or an Ed25519 slot key.
fn attestation_chain(p256: bool) -> Chain {
    use rcgen::{
        BasicConstraints, CertificateParams, CustomExtension, DnType, IsCa, Issuer, KeyPair,
        PKCS_ECDSA_P256_SHA256, PKCS_ED25519,
    };
    let build = || -> Result<Chain, rcgen::Error> {
        let root_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut root = CertificateParams::new(Vec::<String>::new())?;
        root.distinguished_name
            .push(DnType::CommonName, "Fuzz Attestation Root");
        root.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let root_der = root.self_signed(&root_key)?.der().to_vec();
        let root_issuer = Issuer::new(root, root_key);
        let device_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut device = CertificateParams::new(Vec::<String>::new())?;
        device
            .distinguished_name
            .push(DnType::CommonName, "Yubico PIV Attestation");
        device.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        let device_der = device.signed_by(&device_key, &root_issuer)?.der().to_vec();
        let device_issuer = Issuer::new(device, device_key);
        let alg = if p256 {
            &PKCS_ECDSA_P256_SHA256
        } else {
            &PKCS_ED25519
        };
        let slot_key = KeyPair::generate_for(alg)?;
        let mut slot = CertificateParams::new(vec!["admin-y".to_owned()])?;
        slot.distinguished_name
            .push(DnType::CommonName, "YubiKey PIV Attestation 9c");
        let serial = vec![0x02, 0x04, 0x00, 0xbc, 0x61, 0x4e];
        for (arc, value) in [
            (3u64, vec![5, 7, 1]),
            (7, serial),
            (8, vec![0x02, 0x02]),
            (9, vec![0x01]),
        ] {
            slot.custom_extensions
                .push(CustomExtension::from_oid_content(
                    &[1, 3, 6, 1, 4, 1, 41482, 3, arc],
                    value,
                ));
        }
        let slot_der = slot.signed_by(&slot_key, &device_issuer)?.der().to_vec();
        Ok((root_der, device_der, slot_der))
    };
    build().unwrap_or_default()
}

fn framed(slot: &[u8], device: &[u8], root: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for part in [slot, device] {
        out.extend_from_slice(&(part.len() as u16).to_be_bytes());
        out.extend_from_slice(part);
    }
    out.extend_from_slice(root);
    out
}

fn certificates(out: &Path) -> io::Result<usize> {
    let mut s = Seeds::new(out, "attestation")?;
    let mut r = Seeds::new(out, "revocation")?;
    for (name, p256) in [("p256", true), ("ed25519", false)] {
        let (root, device, slot) = attestation_chain(p256);
        s.put(&format!("chain-{name}"), &framed(&slot, &device, &root))?;
        s.put(&format!("untrusted-{name}"), &framed(&slot, &device, &[]))?;
        r.put(&format!("slot-{name}"), &slot)?;
        r.put(&format!("device-{name}"), &device)?;
        let f = Fingerprint::of(&slot);
        r.put(&format!("fingerprint-{name}"), f.to_hex().as_bytes())?;
        let colons: Vec<String> = f.0.iter().map(|b| format!("{b:02X}")).collect();
        r.put(
            &format!("fingerprint-colons-{name}"),
            format!("sha256 Fingerprint={}", colons.join(":")).as_bytes(),
        )?;
        r.put(
            &format!("fingerprint-0x-{name}"),
            format!("0x{}", f.to_hex()).as_bytes(),
        )?;
    }
    for (i, root) in signer_node::admin::attestation::yubico_roots()
        .iter()
        .enumerate()
    {
        r.put(&format!("yubico-root-{i}"), root)?;
    }
    r.put("node-identity", b"node-3")?;
    r.put("node-identity-zero", b"node-03")?;
    Ok(s.written + r.written)
}

fn tagged(out: &Path) -> io::Result<usize> {
    use signer_node::protection::espresso::message::commitment_to_tagged;
    let mut s = Seeds::new(out, "tagged_base64")?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for i in 0..2 {
        let secret = bn254::SecretKey::generate(&mut rng);
        let public = secret.public_key();
        let sig = secret.sign(b"fuzz seed message");
        s.put(&format!("signing-key-{i}"), secret.to_tagged().as_bytes())?;
        s.put(&format!("ver-key-{i}"), public.to_tagged().as_bytes())?;
        s.put(&format!("sig-{i}"), sig.to_tagged().as_bytes())?;
        s.put(&format!("ver-key-bytes-{i}"), &public.to_bytes())?;
        s.put(&format!("sig-bytes-{i}"), &sig.to_bytes())?;
    }
    s.put(
        "commit",
        commitment_to_tagged(&FixedBytes([0x3c; 32])).as_bytes(),
    )?;
    let bls = bls12_381::SecretKey::from_ikm(&[0x42; 32]).map_err(io::Error::other)?;
    s.put("bls-public-key", &bls.public_key().to_bytes())?;
    s.put("bls-signature", &bls.sign(b"fuzz seed message").to_bytes())?;
    Ok(s.written)
}

fn audit(out: &Path) -> io::Result<usize> {
    let mut s = Seeds::new(out, "audit_record")?;
    let (_, records) = applied_with_records();
    for (seq, bytes) in records {
        s.put(&format!("record-{seq}"), &bytes)?;
    }
    s.put("time-rfc3339", b"2024-05-01T12:00:00.123Z")?;
    s.put("time-offset", b"2024-05-01T12:00:00+02:00")?;
    Ok(s.written)
}

fn protection(out: &Path) -> io::Result<usize> {
    let mut s = Seeds::new(out, "protection_model")?;
    // The first byte is the sequence's configuration (`protection::Config`), the rest steps:
    // a fixed pseudo-random stream (a linear congruential generator; no RNG crate needed)
    // under every configuration of one espresso kind and a view range, and under mixed ones.
    let mut x: u32 = 0x1234_5678;
    let mut noise = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (x >> 24) as u8
            })
            .collect()
    };
    for config in (0u8..8).chain([0x08, 0x18, 0x28, 0x48, 0x84, 0x88, 0x98, 0xa8, 0xc8, 0xd3]) {
        let mut bytes = vec![config];
        bytes.extend(noise(3000));
        s.put(&format!("config-{config:02x}"), &bytes)?;
    }
    let ramp: Vec<u8> = (0..=255u8).collect();
    s.put("ramp", &ramp)?;
    Ok(s.written)
}

/// For the `write_seeds` binary: write into `$SIGNER_FUZZ_SEEDS` (default `fuzz/corpus`)
/// from the repository at `$SIGNER_FUZZ_REPO` (default `.`), then exit.
pub fn write_from_env() {
    let repo =
        std::env::var_os("SIGNER_FUZZ_REPO").map_or_else(|| PathBuf::from("."), PathBuf::from);
    let out = std::env::var_os("SIGNER_FUZZ_SEEDS")
        .map_or_else(|| repo.join("fuzz/corpus"), PathBuf::from);
    match write_all(&repo, &out) {
        Ok(n) => {
            println!("wrote {n} seeds under {}", out.display());
            std::process::exit(0)
        }
        Err(e) => {
            eprintln!("writing seeds: {e}");
            std::process::exit(1)
        }
    }
}
