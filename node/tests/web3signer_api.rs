//! The Web3Signer-compatible eth2 REST API end to end, judged by an independent client:
//! `tests/fixtures/web3signer_client.py` computes every signing root with the remerkleable
//! implementation of `tests/vectors/eth2-signing-roots/generate.py` and verifies every
//! signature with py_ecc; it expects the documented statuses and codes. This file starts a
//! 3-node cluster, sets up the clients the script needs (seq-3 granted only the espresso key,
//! nobody-1 without a grant), runs the script's phases against a follower (forwarded to the
//! leader) and the leader, and shows that the 400/404 phase changed nothing: the audit heads,
//! every node's applied Raft index and the protection export are the same before and after it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod support;

use signer_node::pb;
use signer_node::pb::propose_request::Request as P;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use support::{Cluster, ESPRESSO_KEY};

/// A run of the script may take this long. The sign phase verifies ~150 signatures with py_ecc
/// at ~0.4 s each: about a minute on an idle core, 2-3 times that on a loaded machine. The
/// bound stays below nextest's 300 s limit for cluster tests.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(280);

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The repository venv's Python, with the modules the client imports; fails (never skips)
/// when they are missing.
fn python() -> PathBuf {
    let python = repo_root().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run ./test.sh, which creates .venv with requests, py_ecc and remerkleable",
        python.display()
    );
    let check = std::process::Command::new(&python)
        .args(["-c", "import requests, py_ecc, remerkleable"])
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{} lacks requests, py_ecc or remerkleable: run ./test.sh, which installs them\n{}",
        python.display(),
        String::from_utf8_lossy(&check.stderr)
    );
    python
}

struct Client<'a> {
    cluster: &'a Cluster,
    python: PathBuf,
}

impl Client<'_> {
    /// Run the script's `phases` against node `id` as seq-1 (seq-3: granted no eth2 key;
    /// nobody-1: no grant). Panics with its output unless every case passed and at least
    /// `min_cases` ran.
    async fn run(&self, id: u64, phases: &[&str], min_cases: usize) {
        let pki = &self.cluster.pki;
        let mut cmd = tokio::process::Command::new(&self.python);
        cmd.arg(repo_root().join("tests/fixtures/web3signer_client.py"))
            .arg("--url")
            .arg(self.cluster.web3signer_url(id))
            .arg("--ca")
            .arg(pki.ca_cert_path())
            .arg("--cert")
            .arg(pki.client_cert_path("seq-1"))
            .arg("--key")
            .arg(pki.client_key_path("seq-1"))
            .arg("--pubkey")
            .arg(format!("0x{}", hex::encode(&self.cluster.eth2_public_key)))
            .arg("--other-cert")
            .arg(pki.client_cert_path("seq-3"))
            .arg("--other-key")
            .arg(pki.client_key_path("seq-3"))
            .arg("--nogrant-cert")
            .arg(pki.client_cert_path("nobody-1"))
            .arg("--nogrant-key")
            .arg(pki.client_key_path("nobody-1"));
        for phase in phases {
            cmd.arg("--phase").arg(phase);
        }
        cmd.kill_on_drop(true);
        let started = Instant::now();
        let out = tokio::time::timeout(CLIENT_TIMEOUT, cmd.output())
            .await
            .unwrap_or_else(|_| panic!("web3signer_client.py {phases:?} on node {id}: timed out"))
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        println!(
            "--- web3signer_client.py {phases:?} on node {id} ({:.1} s)\n{stdout}{stderr}",
            started.elapsed().as_secs_f64()
        );
        let summary = stdout
            .lines()
            .rev()
            .find_map(|l| {
                let (passed, rest) = l.split_once(" passed, ")?;
                let (failed, _) = rest.split_once(" failed")?;
                Some((passed.parse::<usize>().ok()?, failed.parse::<usize>().ok()?))
            })
            .unwrap_or_else(|| panic!("no summary line from the client\n{stdout}\n{stderr}"));
        assert!(
            out.status.success() && summary.1 == 0 && summary.0 >= min_cases,
            "web3signer_client.py {phases:?} on node {id}: {} ({} passed, {} failed, at least \
             {min_cases} expected)\n{}\n{stderr}\n--- node {id} log (tail)\n{}",
            out.status,
            summary.0,
            summary.1,
            stdout
                .lines()
                .filter(|l| !l.starts_with("PASS "))
                .collect::<Vec<_>>()
                .join("\n"),
            tail(&self.cluster.log_of(id), 40),
        );
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// What a 400/404 must leave as it is: every node's audit head and applied Raft index, and
/// the protection export.
#[derive(Debug, PartialEq)]
struct Recorded {
    heads: Vec<(u64, u64, Vec<u8>, u64)>,
    protection: String,
}

async fn recorded(cluster: &Cluster, min_seq: u64) -> Recorded {
    let heads = cluster
        .converged_audit_heads(min_seq, Duration::from_secs(30))
        .await
        .into_iter()
        .map(|h| (h.node_id, h.head_seq, h.head_hash, h.last_applied_index))
        .collect();
    let protection = cluster
        .on_leader(|mut a| async move { a.export_protection(pb::ExportProtectionRequest {}).await })
        .await
        .unwrap()
        .interchange_json;
    Recorded { heads, protection }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_independent_client_signs_every_type_and_is_refused_as_documented() {
    let python = python();
    let cluster = Cluster::start(3).await;
    let leader = cluster.wait_leader(Duration::from_secs(30)).await;
    let follower = cluster
        .running()
        .into_iter()
        .find(|&id| id != leader)
        .unwrap();

    // seq-3 may use only the espresso key: the eth2 key must answer it as if it did not exist.
    cluster
        .admin_exec(P::GrantClient(pb::ClientGrant {
            identity: "seq-3".into(),
            keys: vec![ESPRESSO_KEY.into()],
            profiles: vec!["espresso".into()],
            rate_per_second: 0,
            rate_burst: 0,
            raw_roots: false,
        }))
        .await
        .unwrap();
    // Every node has applied the grant (identical audit heads).
    cluster
        .converged_audit_heads(1, Duration::from_secs(30))
        .await;

    let client = Client {
        cluster: &cluster,
        python,
    };
    client.run(follower, &["access"], 8).await;
    client.run(leader, &["access"], 8).await;
    // Every fixture once, through the follower (forwarded to the leader): it signs the
    // fixtures' blocks and attestations, so it cannot run twice on one cluster.
    client.run(follower, &["sign"], 157 + 16).await;
    // Repeatable: the second run re-signs the same block and attestation.
    client.run(leader, &["slashing"], 10).await;
    client.run(follower, &["slashing"], 10).await;

    let before = recorded(&cluster, 1).await;
    let pubkey = hex::encode(&cluster.eth2_public_key);
    assert!(
        before.protection.contains(&pubkey),
        "the export names the eth2 key after signing: {}",
        before.protection
    );
    client.run(follower, &["rejects"], 25).await;
    client.run(leader, &["rejects"], 25).await;
    let after = recorded(&cluster, before.heads[0].1).await;
    assert_eq!(
        before, after,
        "a 400 or 404 recorded something (audit head, applied Raft index or protection)"
    );
}

/// `insecure_loopback_identity`: plain HTTP on a loopback address, every caller acting as the
/// named client — its grant decides, as a certificate's name would; TLS is not spoken there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_on_loopback_acts_as_the_named_identity() {
    use signer_node::client::web3signer::Web3SignerConnection;
    let cluster = Cluster::start_configured(
        3,
        |_| None,
        |c| {
            let identity = match c.node_id {
                1 => "seq-1",
                2 => "nobody-1",
                _ => return,
            };
            if let Some(w3s) = c.web3signer.as_mut() {
                w3s.insecure_loopback_identity = Some(identity.into());
            }
        },
    )
    .await;
    let plain = |id: u64| Web3SignerConnection::connect(cluster.node(id).web3signer_addr, None);
    let pubkey = format!("0x{}", hex::encode(&cluster.eth2_public_key));

    // Node 1 answers as seq-1: its key, and a signature over the root generate.py computed.
    let mut node1 = plain(1).await.unwrap();
    let keys = node1.get("/api/v1/eth2/publicKeys", None).await.unwrap();
    assert_eq!((keys.status, keys.text()), (200, format!("[\"{pubkey}\"]")));
    let fixtures: serde_json::Value = serde_json::from_slice(
        &std::fs::read(repo_root().join("tests/vectors/eth2-signing-roots/mainnet-electra.json"))
            .unwrap(),
    )
    .unwrap();
    let randao = fixtures["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["request"]["type"] == "RANDAO_REVEAL")
        .unwrap();
    let root = hex::decode(
        randao["signing_root"]
            .as_str()
            .unwrap()
            .trim_start_matches("0x"),
    )
    .unwrap();
    let body = serde_json::to_vec(&randao["request"]).unwrap();
    let signed = node1.sign(&pubkey, body.clone()).await.unwrap();
    assert_eq!(signed.status, 200, "{}", signed.text());
    let answer: serde_json::Value = serde_json::from_slice(&signed.body).unwrap();
    let signature = hex::decode(
        answer["signature"]
            .as_str()
            .unwrap()
            .trim_start_matches("0x"),
    )
    .unwrap();
    assert!(signer_node::scheme::bls12_381::verify_bytes(
        &cluster.eth2_public_key,
        &root,
        &signature
    ));

    // Node 2 answers as nobody-1, which has no grant.
    let mut node2 = plain(2).await.unwrap();
    for answer in [
        node2.get("/api/v1/eth2/publicKeys", None).await.unwrap(),
        node2.sign(&pubkey, body.clone()).await.unwrap(),
    ] {
        assert_eq!(answer.status, 403, "{}", answer.text());
        let error: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
        assert_eq!(error["code"], "no_grant");
    }

    // Node 3 kept HTTPS: plain HTTP gets no answer, and a client without a certificate gets
    // 401 for the key list.
    let mut node3 = plain(3).await.unwrap();
    assert!(node3.get("/upcheck", None).await.is_err());
    let tls = cluster.tls("seq-1");
    let mut with_cert =
        Web3SignerConnection::connect(cluster.node(3).web3signer_addr, Some((&tls, "localhost")))
            .await
            .unwrap();
    let keys = with_cert
        .get("/api/v1/eth2/publicKeys", None)
        .await
        .unwrap();
    assert_eq!((keys.status, keys.text()), (200, format!("[\"{pubkey}\"]")));
}
