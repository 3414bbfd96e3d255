//! The YubiKey admin flow end to end: a real 3-node cluster (node processes, mutual TLS, Raft),
//! `signerctl --features yubikey` and the unmodified `yubikey` crate over pcscd, with virtual
//! cards from `tests/fixtures/piv_emulator.py` (one reader: the test swaps cards, each keeping
//! its keys in a state file, as admins would plug in their own YubiKey).
//!
//! Enroll two YubiKey admins by attestation (chain to the emulator's test root, configured as
//! trusted for this cluster only), require 2 of 2 with attestation, propose a key creation,
//! approve with one card (nothing commits), then the other (it commits). A replayed approval,
//! an expired challenge, an approval of another action and a touch-never key are all refused,
//! and each refusal is in the audit chain.
#![cfg(feature = "yubikey")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod node_binary;

use signer_node::client::{ClusterDescriptor, PoolOptions, SignerPool};
use signer_node::config::NodeConfig;
use signer_node::devcluster::DevCluster;
use signer_node::pb;
use signer_node::pb::propose_request::Request as P;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;
use zeroize::Zeroizing;

const PIN: &str = "123456";

/// One virtual YubiKey: its serial and where it keeps its keys between insertions.
struct Card {
    serial: u32,
    state: PathBuf,
}

struct Setup {
    dir: PathBuf,
    attestation_dir: PathBuf,
    cluster: DevCluster,
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = self.cluster.stop(Duration::from_secs(5));
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Setup {
    /// Put `card` in the reader and wait until pcscd lists it (it polls for new cards).
    fn insert(&self, card: &Card) -> common::Emulator {
        let emulator = common::start(card.serial, &self.attestation_dir, Some(&card.state));
        drop(common::open_card(card.serial));
        emulator
    }

    fn card(&self, name: &str, serial: u32) -> Card {
        Card {
            serial,
            state: self.dir.join(format!("card-{name}.json")),
        }
    }

    /// `signerctl --dir CLUSTER args…` with the PIN on stdin.
    fn signerctl(&self, args: &[&str]) -> Output {
        let mut child = Command::new(env!("CARGO_BIN_EXE_signerctl"))
            .arg("--dir")
            .arg(self.cluster.dir())
            .args(["--timeout", "30"])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{PIN}\n").as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    async fn pool(&self, identity: &str) -> SignerPool {
        let descriptor = ClusterDescriptor::load(self.cluster.dir()).unwrap();
        SignerPool::connect_with(&descriptor, identity, PoolOptions::default())
            .await
            .unwrap()
    }
}

fn show(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn free_base_port() -> u16 {
    // Nine consecutive free ports (client, peer and metrics of three nodes).
    for _ in 0..200 {
        let base = 20_000 + (rand_u16() % 30_000);
        let free = (0..9).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok());
        if free {
            return base;
        }
    }
    panic!("no free port range");
}

fn rand_u16() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.finish() as u16
}

/// A 3-node dev cluster that trusts the emulator's test root, with client certificates for
/// the YubiKey admins.
async fn setup(dir: &Path) -> Setup {
    let attestation_dir = dir.join("attestation");
    let cluster_dir = dir.join("cluster");
    let cluster = DevCluster::create(&cluster_dir, 3, free_base_port()).unwrap();
    let setup = Setup {
        dir: dir.to_owned(),
        attestation_dir: attestation_dir.clone(),
        cluster,
    };
    // The first card creates the test root.
    drop(setup.insert(&setup.card("a", 1001)));
    let root = attestation_dir.join("test-root.pem");
    assert!(root.exists());
    for id in 1..=3 {
        let path = setup.cluster.config_path(id);
        let mut config = NodeConfig::load(&path).unwrap();
        config.admin.trust_yubico_roots = false;
        config.admin.attestation_roots = vec![root.clone()];
        std::fs::write(&path, config.to_toml().unwrap()).unwrap();
    }
    let pki = signer_node::tls::DevPki::open(&cluster_dir.join("pki")).unwrap();
    let mut descriptor = ClusterDescriptor::load(&cluster_dir).unwrap();
    for name in ["admin-yk-a", "admin-yk-b", "admin-yk-c"] {
        pki.issue_client(name).unwrap();
        descriptor.clients.insert(
            name.to_owned(),
            signer_node::client::ClientFiles {
                cert: pki.client_cert_path(name),
                key: pki.client_key_path(name),
            },
        );
    }
    descriptor
        .save(&cluster_dir.join(signer_node::client::DESCRIPTOR_FILE))
        .unwrap();
    setup
        .cluster
        .start_stopped(node_binary::signer_exe())
        .unwrap();
    setup
        .cluster
        .wait_for_leader(Duration::from_secs(30))
        .await
        .unwrap();
    // The admin plane is bootstrapped (admin-1, 1 of 1) once admin-1 can read it.
    let pool = setup.pool("admin-1").await;
    for _ in 0..100 {
        if pool.admin_state().await.is_ok() {
            return setup;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("admin plane not bootstrapped");
}

/// Sign `challenge`'s statement with the card that is in the reader.
fn sign_with_card(serial: u32, challenge: &pb::Challenge, cluster_id: &str) -> Vec<u8> {
    let reviewed = signer_node::client::review(challenge, cluster_id).unwrap();
    let digest: [u8; 32] = ring::digest::digest(&ring::digest::SHA256, &reviewed.statement)
        .as_ref()
        .try_into()
        .unwrap();
    let mut card = common::open_card(serial);
    card.sign_digest(&Zeroizing::new(PIN.to_owned()), &digest)
        .unwrap()
}

fn code(e: &signer_node::client::ClientError) -> tonic::Code {
    match e {
        signer_node::client::ClientError::Other(s) => s.code(),
        other => panic!("expected an answer from the cluster, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn yubikey_admins_enrolled_by_attestation_approve_two_of_two() {
    let dir = std::env::temp_dir().join(format!("qs-yubikey-admin-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let s = setup(&dir).await;
    let cluster_id = s.cluster.descriptor().cluster_id.clone();
    let (a, b, c) = (s.card("a", 1001), s.card("b", 1002), s.card("c", 1003));

    // Enroll two YubiKey admins (admin-1's development key approves, 1 of 1).
    for (name, card) in [("admin-yk-a", &a), ("admin-yk-b", &b)] {
        let _in_reader = s.insert(card);
        let out = s.signerctl(&[
            "--client",
            "admin-1",
            "admin",
            "enroll",
            "--name",
            name,
            "--on-yubikey",
            "--serial",
            &card.serial.to_string(),
        ]);
        assert_eq!(out.status.code(), Some(0), "enroll {name}: {}", show(&out));
    }
    let admin1 = s.pool("admin-1").await;
    let state = admin1.admin_state().await.unwrap();
    let yk_a = state
        .admins
        .iter()
        .find(|x| x.name == "admin-yk-a")
        .unwrap();
    assert!(yk_a.attested, "{yk_a:?}");
    assert_eq!((yk_a.serial, yk_a.touch_policy.as_str()), (1001, "always"));

    // A touch-never key is refused (and the refusal is committed, so audited).
    let touch_never = {
        let _in_reader = s.insert(&c);
        let mut card = common::open_card(c.serial);
        card.generate_admin_key(&Zeroizing::new(PIN.to_owned()), None, false)
            .unwrap()
    };
    let err = admin1
        .propose(P::EnrollAdmin(pb::EnrollAdminRequest {
            name: "admin-yk-c".into(),
            key: Some(pb::enroll_admin_request::Key::Yubikey(
                pb::YubiKeyAttestation {
                    slot_certificate: touch_never.slot_attestation_der,
                    device_certificate: touch_never.device_cert_der,
                },
            )),
        }))
        .await
        .unwrap_err();
    assert_eq!(code(&err), tonic::Code::FailedPrecondition, "{err}");
    assert!(err.to_string().contains("touch policy"), "{err}");

    // An expired challenge: admin-1 sets a 3 s lifetime, proposes, approves too late.
    let ttl = P::SetPolicy(pb::ApprovalPolicy {
        threshold: 1,
        require_attestation: false,
        require_touch_always: true,
        challenge_ttl_ms: 3_000,
    });
    let mut admin1_key = signer_node::client::SoftApprover::load(
        "admin-1",
        &s.cluster.descriptor().admins["admin-1"].key,
    )
    .unwrap();
    admin1
        .propose_and_approve(ttl, &cluster_id, &mut admin1_key)
        .await
        .unwrap();
    let late = admin1.propose(P::Pause(pb::PauseRequest {})).await.unwrap();
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    let err = admin1
        .approve(&late, &cluster_id, &mut admin1_key)
        .await
        .unwrap_err();
    assert_eq!(code(&err), tonic::Code::FailedPrecondition, "{err}");
    assert!(err.to_string().contains("expired"), "{err}");
    let restore = P::SetPolicy(pb::ApprovalPolicy {
        threshold: 1,
        require_attestation: false,
        require_touch_always: true,
        challenge_ttl_ms: 900_000,
    });
    admin1
        .propose_and_approve(restore, &cluster_id, &mut admin1_key)
        .await
        .unwrap();

    // Retire the development admin; then the YubiKeys require 2 of 2 with attestation.
    let out = s.signerctl(&["--client", "admin-1", "admin", "remove", "admin-1"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    {
        let _in_reader = s.insert(&a);
        let out = s.signerctl(&[
            "--client",
            "admin-yk-a",
            "--yubikey",
            "admin",
            "policy",
            "--threshold",
            "2",
            "--require-attestation",
            "--challenge-ttl",
            "900",
        ]);
        assert_eq!(out.status.code(), Some(0), "policy: {}", show(&out));
    }

    // Propose a key creation and approve it with card A: one approval does not commit.
    let proposal = {
        let _in_reader = s.insert(&a);
        let out = s.signerctl(&[
            "--client",
            "admin-yk-a",
            "--yubikey",
            "--json",
            "key",
            "generate",
            "--key",
            "yk-key",
            "--profile",
            "eth2",
        ]);
        assert_eq!(out.status.code(), Some(6), "pending: {}", show(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["challenge"]["id"].as_str().unwrap().to_owned()
    };
    let yk_a_pool = s.pool("admin-yk-a").await;
    let (_, keys) = yk_a_pool.list_keys().await.unwrap();
    assert!(
        keys.iter().all(|k| k.key_id != "yk-key"),
        "not committed yet"
    );

    // Card B signs the statement of another challenge (pause) and presents it for this one.
    let other = yk_a_pool
        .propose(P::Pause(pb::PauseRequest {}))
        .await
        .unwrap();
    let yk_b_pool = s.pool("admin-yk-b").await;
    let key_challenge = yk_b_pool.challenge(&proposal[..16]).await.unwrap();
    let (sig_other, sig_key) = {
        let _in_reader = s.insert(&b);
        (
            sign_with_card(b.serial, &other, &cluster_id),
            sign_with_card(b.serial, &key_challenge, &cluster_id),
        )
    };
    let err = yk_b_pool
        .send_approval(&key_challenge.id, &sig_other)
        .await
        .unwrap_err();
    assert_eq!(code(&err), tonic::Code::PermissionDenied, "{err}");
    let (_, keys) = yk_a_pool.list_keys().await.unwrap();
    assert!(keys.iter().all(|k| k.key_id != "yk-key"));

    // Card B's real approval commits it.
    let done = yk_b_pool
        .send_approval(&key_challenge.id, &sig_key)
        .await
        .unwrap();
    assert_eq!(done.status, "executed", "{done:?}");
    assert_eq!(done.approved_by, vec!["admin-yk-a", "admin-yk-b"]);
    let (_, keys) = yk_a_pool.list_keys().await.unwrap();
    assert!(keys
        .iter()
        .any(|k| k.key_id == "yk-key" && k.state == "active"));

    // Replaying card B's approval is refused: the challenge is used.
    let err = yk_b_pool
        .send_approval(&key_challenge.id, &sig_key)
        .await
        .unwrap_err();
    assert_eq!(code(&err), tonic::Code::FailedPrecondition, "{err}");

    // Every refusal above is in the audit chain.
    let auditor = s.pool("auditor-1").await;
    let (_, mut stream) = auditor
        .audit_tail(pb::AuditTailRequest {
            from_seq: 0,
            last: 0,
            follow: false,
            filter: None,
        })
        .await
        .unwrap();
    let mut summaries = Vec::new();
    while let Some(entry) = stream.message().await.unwrap() {
        summaries.push(entry.summary);
    }
    let refused: Vec<&String> = summaries.iter().filter(|x| x.contains("refused")).collect();
    for needle in [
        "touch policy",
        "expired",
        "does not verify",
        "already decided",
    ] {
        assert!(
            refused.iter().any(|x| x.contains(needle)),
            "no refused audit record mentioning {needle:?} in:\n{}",
            refused
                .iter()
                .map(|x| x.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    drop(s);
}
