//! The operator commands end to end, as a user runs them: the real `signer` and `signerctl`
//! binaries against a real 3-node dev cluster on free loopback ports — up, key list, sign,
//! re-sign, a refused conflicting sign, eth2, kill the leader, down (unavailable), up again with
//! the data kept (the conflict still refused), down. The key lifecycle as an admin (each change
//! proposed and approved at once, threshold 1): generate, registry, sign, disable, enable,
//! delete, imports (raw secrets, an EIP-2335 keystore), KEK rotation, and a non-admin identity
//! turned away. And the admin plane: client grants, pause/resume, enrolling a second admin,
//! 2-of-2 approvals (pending, approve, no replay), and membership changes not supported yet.
//! New identities: `signer pki issue` certificates for a new admin and a new sequencer,
//! enrolled, granted and signing, a certificate revoked and refused on every node, issued again;
//! and the refusals of `pki issue` and `cert revoke`.
//!
//! Owns: nothing but these flows. Must not: leave node processes behind (a guard runs
//! `dev-cluster down` when dropped) or use fixed ports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const C1: &str = "0x1111111111111111111111111111111111111111111111111111111111111111";
const C2: &str = "0x2222222222222222222222222222222222222222222222222222222222222222";
const ROOT: &str = "0x3333333333333333333333333333333333333333333333333333333333333333";
const C4: &str = "0x4444444444444444444444444444444444444444444444444444444444444444";

mod node_binary;

use node_binary::signer_exe;

fn signerctl_exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_signerctl"))
}

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "signerctl-test-{}-{:x}",
            std::process::id(),
            random()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn random() -> u64 {
    RandomState::new().build_hasher().finish()
}

/// A free range of 9 consecutive loopback ports (3 nodes: client, peer, metrics), below the
/// ephemeral range.
fn free_base_port() -> u16 {
    'search: for _ in 0..200 {
        let base = (10_000 + random() % 22_000) as u16 & !1;
        for port in base..base + 9 {
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
                continue 'search;
            }
        }
        return base;
    }
    panic!("no 9 consecutive free ports on 127.0.0.1");
}

/// The dev cluster in a directory; `dev-cluster down` when dropped, so no node outlives the test.
struct Cluster {
    dir: PathBuf,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(signer_exe())
            .args(["dev-cluster", "down", "--dir"])
            .arg(&self.dir)
            .output();
    }
}

fn run(exe: &Path, args: &[&str]) -> Output {
    Command::new(exe)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", exe.display()))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Run and insist on exit code `code`; returns (stdout, stderr).
fn expect(exe: &Path, args: &[&str], code: i32) -> (String, String) {
    let out = run(exe, args);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(code),
        "{} {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        exe.display(),
        args.join(" ")
    );
    (stdout, stderr)
}

fn signer(args: &[&str]) -> String {
    expect(signer_exe(), args, 0).0
}

fn espresso_vote(dir: &str, view: &str, commitment: &str) -> Vec<String> {
    [
        "--dir",
        dir,
        "sign",
        "--key",
        "demo-espresso",
        "--profile",
        "espresso",
        "--kind",
        "quorum",
        "--view",
        view,
        "--commitment",
        commitment,
    ]
    .map(String::from)
    .to_vec()
}

/// A Web3Signer BLOCK_V2 body (mainnet, electra, header form) for `slot` with body root
/// `body_root`, written under `dir`; returns its path.
fn block_json(dir: &str, slot: &str, body_root: &str) -> String {
    let body = serde_json::json!({
        "type": "BLOCK_V2",
        "fork_info": {
            "fork": {
                "previous_version": "0x05000000",
                "current_version": "0x05000000",
                "epoch": "0"
            },
            "genesis_validators_root":
                "0x4b363db94e286120d76eb905340fdd4e54bfe9f06bf33ff6cf5ad27f511bfe95"
        },
        "beacon_block": {
            "version": "ELECTRA",
            "block_header": {
                "slot": slot,
                "proposer_index": "0",
                "parent_root": format!("0x{}", "00".repeat(32)),
                "state_root": format!("0x{}", "00".repeat(32)),
                "body_root": body_root
            }
        }
    });
    let path = format!("{dir}/block-{slot}-{}.json", &body_root[2..10]);
    std::fs::write(&path, body.to_string()).unwrap();
    path
}

/// `sign` a typed eth2 block (Web3Signer JSON), with `--dir` after the subcommand.
fn eth2_block(slot: &str, body_root: &str, dir: &str) -> Vec<String> {
    let json = block_json(dir, slot, body_root);
    [
        "sign",
        "--key",
        "demo-eth2",
        "--profile",
        "eth2",
        "--request-json",
        &json,
        "--dir",
        dir,
    ]
    .map(String::from)
    .to_vec()
}

fn ctl(args: &[String], code: i32) -> (String, String) {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    expect(signerctl_exe(), &args, code)
}

/// The only line of stdout, which must start with `prefix`.
fn only_signature(stdout: &str, prefix: &str) -> String {
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "stdout must hold only the signature: {stdout:?}"
    );
    assert!(lines[0].starts_with(prefix), "{stdout:?}");
    assert_eq!(stdout, format!("{}\n", lines[0]), "{stdout:?}");
    lines[0].to_owned()
}

#[test]
fn signerctl_operator_flow_end_to_end() {
    let tmp = TempDir::new();
    let dir_path = tmp.0.join("cluster");
    let dir = dir_path.to_str().unwrap().to_owned();
    let port = free_base_port().to_string();
    let _cluster = Cluster {
        dir: dir_path.clone(),
    };

    let up = signer(&["dev-cluster", "up", "--dir", &dir, "--base-port", &port]);
    assert!(up.contains("created dev cluster"), "{up}");
    assert!(up.contains("leader: node-"), "{up}");

    // Keys, as JSON.
    let (keys, _) = ctl(
        &["--dir", &dir, "key", "list", "--json"].map(String::from),
        0,
    );
    let keys: serde_json::Value = serde_json::from_str(&keys).unwrap();
    let public_key = |id: &str| -> String {
        let key = keys
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["key_id"] == id)
            .unwrap_or_else(|| panic!("{id} not listed: {keys}"));
        key["public_key"].as_str().unwrap().to_owned()
    };
    assert!(
        public_key("demo-espresso").starts_with("BLS_VER_KEY~"),
        "{keys}"
    );
    // A reader that goes away before the first line (`signerctl key list | head -0`) ends the
    // command quietly: exit 0, nothing on stderr, never a panic (exit 101). The same for the
    // `signer` binary.
    for (exe, args) in [
        (signerctl_exe(), ["--dir", dir.as_str(), "key", "list"]),
        (
            signer_exe(),
            ["dev-cluster", "status", "--dir", dir.as_str()],
        ),
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = Command::new(exe)
            .args(args)
            .stdout(writer)
            .output()
            .unwrap();
        assert_eq!(
            (out.status.code(), text(&out.stderr)),
            (Some(0), String::new()),
            "{} {args:?} with stdout closed",
            exe.display()
        );
    }
    let eth2_pk = public_key("demo-eth2");
    assert!(
        eth2_pk.starts_with("0x") && eth2_pk.len() == 2 + 96,
        "{keys}"
    );

    // Sign, re-sign the identical request, refuse a conflicting one.
    let (out, _) = ctl(&espresso_vote(&dir, "5", C1), 0);
    let signature = only_signature(&out, "BLS_SIG~");
    let (out, _) = ctl(&espresso_vote(&dir, "5", C1), 0);
    assert_eq!(
        only_signature(&out, "BLS_SIG~"),
        signature,
        "re-sign differs"
    );
    let (out, err) = ctl(&espresso_vote(&dir, "5", C2), 3);
    assert!(
        out.is_empty(),
        "a refusal prints nothing on stdout: {out:?}"
    );
    assert!(err.contains("refused: equivocation"), "{err}");

    // eth2, with --dir after the subcommand.
    let (out, _) = ctl(&eth2_block("7", ROOT, &dir), 0);
    let eth2_sig = only_signature(&out, "0x");
    assert_eq!(eth2_sig.len(), 2 + 192, "{eth2_sig}");
    // A raw signing root is refused for seq-1, whose grant does not trust raw roots.
    let raw = [
        "sign",
        "--key",
        "demo-eth2",
        "--profile",
        "eth2",
        "--kind",
        "block",
        "--slot",
        "9",
        "--signing-root",
        ROOT,
        "--dir",
        &dir,
    ]
    .map(String::from);
    let (_, err) = ctl(&raw, 5);
    assert_eq!(
        err,
        "error: not permitted: PermissionDenied: eth2: raw signing roots are accepted only from \
         a client whose grant trusts them (raw_roots); send the typed message (eth2.typed) and \
         the signer computes the root\n"
    );

    // Kill the leader: signing resumes (one request id, so retries are one request). An eth2
    // block, so that the espresso watermark stays at view 5 for the checks below.
    let killed = signer(&["dev-cluster", "kill-leader", "--dir", &dir]);
    assert!(killed.contains("with SIGKILL"), "{killed}");
    let mut resume = eth2_block("8", C4, &dir);
    resume.extend(["--request-id", "resume-8", "--timeout", "5"].map(String::from));
    let killed_at = Instant::now();
    loop {
        let out = run(
            signerctl_exe(),
            &resume.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        match out.status.code() {
            Some(0) => {
                only_signature(&text(&out.stdout), "0x");
                break;
            }
            Some(4) if killed_at.elapsed() < Duration::from_secs(30) => {
                std::thread::sleep(Duration::from_millis(100));
            }
            other => panic!(
                "signing did not resume after the kill ({other:?} after {:?}): {}",
                killed_at.elapsed(),
                text(&out.stderr)
            ),
        }
    }

    // grpc.health.v1 on every node: the killed one does not answer (exit 4), the other two
    // serve under the new leader.
    let killed_id = killed
        .strip_prefix("killed node-")
        .and_then(|rest| rest.split(' ').next())
        .unwrap()
        .to_owned();
    let (out, err) = ctl(&["--dir", &dir, "health"].map(String::from), 4);
    assert_eq!(err, "unavailable: 1 of 3 node(s) not serving\n");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    for line in lines {
        if line.starts_with(&format!("node-{killed_id} ")) {
            assert!(line.contains("  unreachable: "), "{out}");
        } else {
            assert!(line.ends_with("  SERVING"), "{out}");
        }
    }

    // Down: nothing answers.
    let down = signer(&["dev-cluster", "down", "--dir", &dir]);
    assert!(down.contains("stopped"), "{down}");
    let mut unavailable = espresso_vote(&dir, "7", C1);
    unavailable.extend(["--timeout", "1"].map(String::from));
    let (out, err) = ctl(&unavailable, 4);
    assert!(out.is_empty(), "{out:?}");
    assert!(err.contains("unavailable"), "{err}");

    // Up again: the same nodes with their data; the conflict is still refused, the identical
    // request still re-signs to the same signature.
    let up = signer(&["dev-cluster", "up", "--dir", &dir]);
    assert!(!up.contains("created"), "{up}");
    assert!(up.contains("started node-"), "{up}");
    let (_, err) = ctl(&espresso_vote(&dir, "5", C2), 3);
    assert!(err.contains("refused: equivocation"), "{err}");
    let (out, _) = ctl(&espresso_vote(&dir, "5", C1), 0);
    assert_eq!(only_signature(&out, "BLS_SIG~"), signature);

    // A backup, as the auditor (signerctl's default identity for it): written 0600, what it
    // reports is the file's own length and SHA-256, and a restore next to the live cluster
    // it came from is refused, naming the node that answers, and writes nothing.
    let backup = tmp.0.join("cluster.backup");
    let backup_arg = backup.to_str().unwrap().to_owned();
    let (out, _) = ctl(
        &["--dir", &dir, "--json", "backup", "--out", &backup_arg].map(String::from),
        0,
    );
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let bytes = std::fs::read(&backup).unwrap();
    assert!(bytes.starts_with(b"QSBACKUP"), "{report}");
    assert_eq!(report["bytes"], bytes.len(), "{report}");
    // The digest it reports is the one the file ends with: SHA-256 of everything before it.
    let (content, digest) = bytes.split_at(bytes.len() - 32);
    let body = tmp.0.join("backup-content");
    std::fs::write(&body, content).unwrap();
    let sha256 = Command::new("sha256sum").arg(&body).output().unwrap();
    let sha256 = text(&sha256.stdout);
    let sha256 = sha256.split_whitespace().next().unwrap();
    assert_eq!(report["sha256"].as_str().unwrap(), sha256, "{report}");
    assert_eq!(hex::encode(digest), sha256);
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&backup).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // The new node: node 1's config in a fresh directory (its data directory does not exist).
    let fresh = tmp.0.join("restored-node-1");
    std::fs::create_dir(&fresh).unwrap();
    std::fs::copy(dir_path.join("node-1/node.toml"), fresh.join("node.toml")).unwrap();
    let config = fresh.join("node.toml");
    let (_, err) = expect(
        signer_exe(),
        &["restore", &backup_arg, "--config", config.to_str().unwrap()],
        1,
    );
    let node_1_peer = format!("127.0.0.1:{}", port.parse::<u16>().unwrap() + 1);
    assert_eq!(
        err,
        format!(
            "error: refusing to restore: node 1 of the backed-up cluster answers on \
             {node_1_peer}; stop every node of the backed-up cluster, and start no node of the \
             new one, before restoring (a restored cluster next to a live one could sign \
             conflicting messages)\n"
        )
    );
    assert!(!fresh.join("data").exists());

    let down = signer(&["dev-cluster", "down", "--dir", &dir]);
    assert!(down.contains("stopped"), "{down}");
}

#[test]
fn signerctl_bad_arguments_exit_2_without_a_cluster() {
    let tmp = TempDir::new();
    let dir = tmp.0.to_str().unwrap().to_owned();
    // No cluster.json in DIR.
    let (_, err) = ctl(&espresso_vote(&dir, "1", C1), 2);
    assert!(err.contains("--dir"), "{err}");
    // A malformed commitment is refused before any network use.
    let (_, err) = ctl(&espresso_vote(&dir, "1", "0x11"), 2);
    assert!(err.contains("expected 32 bytes"), "{err}");
}

/// Whether `signature` (0x-hex) verifies under `public_key` (0x-hex) on the signing root of
/// `block_json`'s block at `slot` (mainnet, body root `ROOT`).
fn block_signed_by(signature: &str, public_key: &str, slot: u64) -> bool {
    let tmp = TempDir::new();
    let json = block_json(tmp.0.to_str().unwrap(), &slot.to_string(), ROOT);
    let body = std::fs::read(json).unwrap();
    let (message, _) = eth2_messages::parse_web3signer(&body).unwrap();
    let root = message
        .signing_root(&eth2_messages::NetworkSpec::mainnet())
        .unwrap();
    let pk = hex::decode(public_key.trim_start_matches("0x")).unwrap();
    let sig = hex::decode(signature.trim_start_matches("0x")).unwrap();
    signer_node::scheme::bls12_381::verify_bytes(&pk, &root, &sig)
}

/// `sign` a typed eth2 block with `key`.
fn block_with(dir: &str, key: &str, slot: u64) -> Vec<String> {
    let slot = slot.to_string();
    let json = block_json(dir, &slot, ROOT);
    [
        "--dir",
        dir,
        "sign",
        "--key",
        key,
        "--profile",
        "eth2",
        "--request-json",
        &json,
    ]
    .map(String::from)
    .to_vec()
}

/// `signerctl --dir DIR <args>` (as the default client of the command).
fn admin(dir: &str, args: &[&str], code: i32) -> (String, String) {
    let mut all = vec!["--dir".to_owned(), dir.to_owned()];
    all.extend(args.iter().map(|a| (*a).to_owned()));
    ctl(&all, code)
}

/// The audit records `audit tail --json` prints with `filter` (as auditor-1), newest last.
fn audit_records(dir: &str, filter: &[&str]) -> Vec<serde_json::Value> {
    let mut args = vec!["audit", "tail", "-n", "1000", "--json"];
    args.extend_from_slice(filter);
    let (out, _) = admin(dir, &args, 0);
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// The registry entry of `key_id`, as `key registry --json` shows it.
fn registry_entry(dir: &str, key_id: &str) -> serde_json::Value {
    let (out, _) = admin(dir, &["key", "registry", "--json"], 0);
    let registry: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(registry["node_id"].as_u64().is_some(), "{registry}");
    registry["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["key_id"] == key_id)
        .cloned()
        .unwrap_or_else(|| panic!("{key_id} not in the registry: {registry}"))
}

/// Poll `key registry` until `key_id`'s entry satisfies `ok` (keys load asynchronously).
fn wait_for_entry(dir: &str, key_id: &str, ok: impl Fn(&serde_json::Value) -> bool) {
    let started = Instant::now();
    loop {
        let entry = registry_entry(dir, key_id);
        if ok(&entry) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "registry entry never got there: {entry}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Write a 0600 file in `dir`.
fn secret_file(dir: &Path, name: &str, content: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path.to_str().unwrap().to_owned()
}

/// The EIP-2335 PBKDF2 test vector (CC0) and its password.
const KEYSTORE: &str = include_str!("../../tests/vectors/eip2335/pbkdf2.json");
const KEYSTORE_PASSWORD: &str = "𝔱𝔢𝔰𝔱𝔭𝔞𝔰𝔰𝔴𝔬𝔯𝔡🔑";
const KEYSTORE_PUBKEY: &str = "0x9612d7a727c9d0a22e185a1c768478dfe919cada9266988cb32359c11f2b7b27f4ae4040902382ae2910c15e2b420d07";

#[test]
fn signerctl_key_lifecycle_end_to_end() {
    use signer_node::scheme::{bls12_381, bn254};

    let tmp = TempDir::new();
    let dir_path = tmp.0.join("cluster");
    let dir = dir_path.to_str().unwrap().to_owned();
    let dir = dir.as_str();
    let port = free_base_port().to_string();
    let _cluster = Cluster {
        dir: dir_path.clone(),
    };
    let up = signer(&["dev-cluster", "up", "--dir", dir, "--base-port", &port]);
    assert!(up.contains("admin identity admin-1"), "{up}");

    // The sequencer's identity is not an admin.
    let (out, err) = admin(dir, &["--client", "seq-1", "key", "registry"], 5);
    assert!(out.is_empty(), "{out:?}");
    assert!(err.contains("this identity is not an admin"), "{err}");
    let (_, err) = admin(
        dir,
        &[
            "key",
            "generate",
            "--key",
            "x",
            "--profile",
            "eth2",
            "--client",
            "seq-1",
        ],
        5,
    );
    assert!(err.contains("this identity is not an admin"), "{err}");

    // Generate: sealed under the cluster's local KEK, then loaded on every node.
    let (out, _) = admin(
        dir,
        &[
            "key",
            "generate",
            "--key",
            "gen-eth2",
            "--profile",
            "eth2",
            "--json",
        ],
        0,
    );
    let proposed: serde_json::Value = serde_json::from_str(&out).unwrap();
    // Threshold 1 in a dev cluster: proposed and approved by admin-1 at once, so executed.
    assert_eq!(proposed["status"], "executed", "{proposed}");
    assert_eq!(
        proposed["approval"]["approved_by"][0], "admin-1",
        "{proposed}"
    );
    let action = proposed["challenge"]["action"].as_str().unwrap();
    assert!(action.contains("\"gen-eth2\""), "{proposed}");
    let generated = &proposed["key"];
    assert_eq!(generated["state"], "active", "{generated}");
    assert_eq!(generated["origin"], "generated", "{generated}");
    assert!(
        generated["kek"].as_str().unwrap().starts_with("local:"),
        "{generated}"
    );
    // Sealed under the proposing node's shared data key, named as KMS would see it.
    assert!(
        generated["data_key"]
            .as_str()
            .unwrap()
            .strip_prefix("sdk-")
            .is_some_and(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())),
        "{generated}"
    );
    let public_key = generated["public_key"].as_str().unwrap().to_owned();
    assert_eq!(public_key.len(), 2 + 96, "{generated}");
    wait_for_entry(dir, "gen-eth2", |k| {
        k["state"] == "active" && k["loaded"] == true && k["public_key"] == public_key.as_str()
    });
    let (text, _) = admin(dir, &["key", "registry"], 0);
    assert!(
        text.contains("gen-eth2") && text.contains("active"),
        "{text}"
    );
    // The id is taken.
    let (_, err) = admin(
        dir,
        &[
            "key",
            "generate",
            "--key",
            "gen-eth2",
            "--profile",
            "espresso",
        ],
        2,
    );
    assert!(err.contains("already taken"), "{err}");

    // It signs.
    let (out, _) = ctl(&block_with(dir, "gen-eth2", 10), 0);
    let signature = only_signature(&out, "0x");

    // Disabled: not found for signing; enabled again: signs again.
    let (out, _) = admin(dir, &["key", "disable", "--key", "gen-eth2"], 0);
    assert!(out.contains("disabled key gen-eth2"), "{out}");
    let (_, err) = ctl(&block_with(dir, "gen-eth2", 11), 8);
    assert_eq!(
        err,
        "error: not found: NotFound: key_id: key \"gen-eth2\" was disabled or deleted\n"
    );
    assert_eq!(registry_entry(dir, "gen-eth2")["state"], "disabled");
    // The attempt is decided by the cluster and audited as key_inactive.
    let inactive = audit_records(dir, &["--result", "key_inactive", "--key", "gen-eth2"]);
    assert_eq!(inactive.len(), 1, "{inactive:?}");
    assert_eq!(inactive[0]["event"]["outcome"], "key_inactive");
    assert_eq!(
        inactive[0]["event"]["watermark"][0]["slot"], 11,
        "{inactive:?}"
    );
    admin(dir, &["key", "enable", "--key", "gen-eth2"], 0);
    let (out, _) = ctl(&block_with(dir, "gen-eth2", 12), 0);
    let again = only_signature(&out, "0x");
    assert_ne!(again, signature, "another slot, another signing root");
    assert!(
        block_signed_by(&again, &public_key, 12),
        "the re-enabled key is the same key"
    );

    // Delete: confirmation required without a terminal; --yes deletes for good.
    let (_, err) = admin(dir, &["key", "delete", "--key", "gen-eth2"], 2);
    assert!(err.contains("--yes"), "{err}");
    assert_eq!(registry_entry(dir, "gen-eth2")["state"], "active");
    let (out, _) = admin(dir, &["key", "delete", "--key", "gen-eth2", "--yes"], 0);
    assert!(out.contains("deleted key gen-eth2"), "{out}");
    let entry = registry_entry(dir, "gen-eth2");
    assert_eq!(entry["state"], "deleted", "{entry}");
    assert_eq!(entry["kek"], "", "a tombstone keeps no secret: {entry}");
    assert_eq!(entry["data_key"], "", "{entry}");
    let (_, err) = ctl(&block_with(dir, "gen-eth2", 13), 8);
    assert_eq!(
        err,
        "error: not found: NotFound: key_id: key \"gen-eth2\" was disabled or deleted\n"
    );
    let (_, err) = admin(dir, &["key", "enable", "--key", "gen-eth2"], 2);
    assert!(err.contains("deleted"), "{err}");
    let (_, err) = admin(dir, &["key", "disable", "--key", "nope"], 2);
    assert!(err.contains("no key \"nope\""), "{err}");

    // Import raw secrets: espresso as BLS_SIGNING_KEY~ and as little-endian hex, eth2 as
    // big-endian hex.
    let tagged = "BLS_SIGNING_KEY~lNDh4Pn-pTAyzyprOAFdXHwhrKhEwqwtMtkD3CZF4x3o";
    let espresso_pk = bn254::SecretKey::from_tagged(tagged)
        .unwrap()
        .public_key()
        .to_tagged();
    let file = secret_file(&tmp.0, "esp.txt", &format!("{tagged}\n"));
    let (out, _) = admin(
        dir,
        &["key", "import", "--key", "imp-esp", "--profile", "espresso"]
            .into_iter()
            .chain(["--raw-secret-file", &file, "--json"])
            .collect::<Vec<_>>(),
        0,
    );
    let imported = serde_json::from_str::<serde_json::Value>(&out).unwrap()["key"].clone();
    assert_eq!(imported["public_key"], espresso_pk.as_str(), "{imported}");
    assert_eq!(imported["origin"], "imported", "{imported}");
    let little_endian = bn254::SecretKey::from_tagged(
        "BLS_SIGNING_KEY~-DO72m_SFl6NQMYknm05FYpPEklkeqz-B3g2mFdbuS83",
    )
    .unwrap();
    let file = secret_file(
        &tmp.0,
        "esp-le.txt",
        &format!("0x{}", hex::encode(*little_endian.to_le_bytes())),
    );
    let (out, _) = admin(
        dir,
        &[
            "key",
            "import",
            "--key",
            "imp-esp-le",
            "--profile",
            "espresso",
            "--raw-secret-file",
            &file,
            "--json",
        ],
        0,
    );
    let imported = serde_json::from_str::<serde_json::Value>(&out).unwrap()["key"].clone();
    assert_eq!(
        imported["public_key"],
        little_endian.public_key().to_tagged().as_str()
    );
    let eth2_secret = "0x263dbd792f5b1be47ed85f8938c0f29586af0d3ac7b977f21c278fe1462040e3";
    let eth2_pk = bls12_381::SecretKey::from_bytes(&hex::decode(&eth2_secret[2..]).unwrap())
        .unwrap()
        .public_key()
        .to_hex();
    let file = secret_file(&tmp.0, "eth2.txt", eth2_secret);
    let (out, _) = admin(
        dir,
        &[
            "key",
            "import",
            "--key",
            "imp-eth2",
            "--profile",
            "eth2",
            "--raw-secret-file",
            &file,
            "--json",
        ],
        0,
    );
    let imported = serde_json::from_str::<serde_json::Value>(&out).unwrap()["key"].clone();
    assert_eq!(imported["public_key"], eth2_pk.as_str(), "{imported}");
    // The same secret again, under another id: its public key is taken.
    let (_, err) = admin(
        dir,
        &[
            "key",
            "import",
            "--key",
            "imp-eth2-again",
            "--profile",
            "eth2",
            "--raw-secret-file",
            &file,
        ],
        2,
    );
    assert!(err.contains("already held as \"imp-eth2\""), "{err}");
    // A raw secret of the wrong profile is refused before anything is sent.
    let (_, err) = admin(
        dir,
        &[
            "key",
            "import",
            "--key",
            "x",
            "--profile",
            "eth2",
            "--raw-secret-file",
            &tmp.0.join("esp.txt").to_string_lossy(),
        ],
        2,
    );
    assert!(err.contains("--profile espresso"), "{err}");

    // An EIP-2335 keystore, its password from a file (trailing newline ignored).
    let keystore = secret_file(&tmp.0, "keystore.json", KEYSTORE);
    let password = secret_file(&tmp.0, "password.txt", &format!("{KEYSTORE_PASSWORD}\n"));
    let (out, _) = admin(
        dir,
        &[
            "key",
            "import",
            "--key",
            "imp-keystore",
            "--profile",
            "eth2",
            "--keystore",
            &keystore,
            "--password-file",
            &password,
            "--json",
            // Decrypting the keystore (PBKDF2) on a debug node of a loaded machine is slow.
            "--timeout",
            "60",
        ],
        0,
    );
    let imported = serde_json::from_str::<serde_json::Value>(&out).unwrap()["key"].clone();
    assert_eq!(imported["public_key"], KEYSTORE_PUBKEY, "{imported}");
    let wrong = secret_file(&tmp.0, "wrong.txt", "not the password\n");
    let (_, err) = admin(
        dir,
        &[
            "key",
            "import",
            "--key",
            "imp-keystore-2",
            "--profile",
            "eth2",
            "--keystore",
            &keystore,
            "--password-file",
            &wrong,
            "--timeout",
            "60",
        ],
        2,
    );
    assert!(err.contains("wrong password"), "{err}");
    // Without --password-file and without a terminal, nothing is asked and nothing is sent.
    let (_, err) = admin(
        dir,
        &[
            "key",
            "import",
            "--key",
            "imp-keystore-2",
            "--profile",
            "eth2",
            "--keystore",
            &keystore,
        ],
        2,
    );
    assert!(err.contains("--password-file"), "{err}");

    // The imported keys load and sign.
    wait_for_entry(dir, "imp-keystore", |k| k["loaded"] == true);
    let (out, _) = ctl(&block_with(dir, "imp-keystore", 1), 0);
    only_signature(&out, "0x");
    let mut vote = espresso_vote(dir, "3", C1);
    vote[4] = "imp-esp".into();
    let (out, _) = ctl(&vote, 0);
    only_signature(&out, "BLS_SIG~");

    // Every key is already under the current KEK: nothing to re-wrap.
    let (out, _) = admin(dir, &["kek", "rotate", "--json"], 0);
    let rotated: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(rotated["rewrapped"], 0, "{rotated}");
    assert_eq!(rotated["remaining"], 0, "{rotated}");

    let down = signer(&["dev-cluster", "down", "--dir", dir]);
    assert!(down.contains("stopped"), "{down}");
}

/// The exit code of `signerctl` for a change that is proposed but needs more approvals.
const PENDING: i32 = 6;

/// `signer dev-cluster add-node` prepares and starts node-4 and prints its name; `signerctl
/// node add` makes it a voter once approved (threshold 1: the proposer's approval), `node
/// remove` takes it out again; the refusals exit 2 with the cluster's reason.
#[test]
fn signerctl_node_add_remove_end_to_end() {
    let tmp = TempDir::new();
    let dir_path = tmp.0.join("cluster");
    let dir = dir_path.to_str().unwrap().to_owned();
    let dir = dir.as_str();
    let port = free_base_port().to_string();
    let _cluster = Cluster {
        dir: dir_path.clone(),
    };
    signer(&["dev-cluster", "up", "--dir", dir, "--base-port", &port]);
    assert_eq!(
        signer(&["dev-cluster", "add-node", "--dir", dir]),
        "node-4\n"
    );
    let descriptor: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir_path.join("cluster.json")).unwrap())
            .unwrap();
    let node4 = descriptor["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == 4)
        .unwrap()
        .clone();
    let (client, peer) = (
        node4["client_addr"].as_str().unwrap(),
        node4["peer_addr"].as_str().unwrap(),
    );
    let add = [
        "node",
        "add",
        "node-4",
        "--addr",
        client,
        "--peer-addr",
        peer,
    ];
    let (out, _) = admin(dir, &add, 0);
    assert!(
        out.lines()
            .any(|l| l
                == format!("executed: node-4 joined as a voter (client {client}, peer {peer})")),
        "{out}"
    );
    let (out, _) = admin(dir, &["node", "list", "--json"], 0);
    let nodes: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(nodes["voters"], serde_json::json!([1, 2, 3, 4]), "{nodes}");
    // Not a node name; not a voter.
    let (_, err) = admin(dir, &["node", "remove", "seq-1"], 2);
    assert_eq!(
        err.trim_end(),
        "error: \"seq-1\" is not a node name (node-N, N from 1, as its certificate names it)"
    );
    let (out, _) = admin(dir, &["node", "remove", "node-4"], 0);
    assert!(
        out.lines()
            .any(|l| l == "executed: node-4 removed from the cluster"),
        "{out}"
    );
    let (_, err) = admin(dir, &["node", "remove", "node-3"], 2);
    assert!(
        err.ends_with(
            "removing node-3 would leave 2 voter(s); a cluster keeps at least 3 (add a node \
             first, or use `node replace`)\n"
        ),
        "{err}"
    );
    let (_, err) = admin(dir, &add, 2);
    assert!(
        err.ends_with(
            "node-4 was removed from this cluster and cannot rejoin with that identity; issue a \
             certificate for a new node id\n"
        ),
        "{err}"
    );
}

#[test]
fn signerctl_admin_plane_end_to_end() {
    let tmp = TempDir::new();
    let dir_path = tmp.0.join("cluster");
    let dir = dir_path.to_str().unwrap().to_owned();
    let dir = dir.as_str();
    let port = free_base_port().to_string();
    let _cluster = Cluster {
        dir: dir_path.clone(),
    };
    signer(&["dev-cluster", "up", "--dir", dir, "--base-port", &port]);

    // The members are listed (membership changes: `signerctl_node_add_remove_end_to_end`).
    let (out, _) = admin(dir, &["node", "list", "--json"], 0);
    let nodes: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(nodes["voters"].as_array().unwrap().len(), 3, "{nodes}");

    // A client grant executes at once (threshold 1) and is listed.
    let (out, _) = admin(
        dir,
        &[
            "client",
            "grant",
            "seq-9",
            "--keys",
            "*",
            "--profiles",
            "eth2",
        ],
        0,
    );
    assert!(out.contains("executed"), "{out}");
    assert!(out.contains("grant client \"seq-9\""), "{out}");
    let (out, _) = admin(dir, &["client", "list", "--json"], 0);
    let clients: serde_json::Value = serde_json::from_str(&out).unwrap();
    let seq9 = clients
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["identity"] == "seq-9")
        .unwrap_or_else(|| panic!("seq-9 not listed: {clients}"));
    assert_eq!(seq9["keys"], serde_json::json!(["*"]), "{clients}");
    assert_eq!(seq9["profiles"], serde_json::json!(["eth2"]), "{clients}");
    let (out, _) = admin(dir, &["client", "list"], 0);
    assert!(out.contains("seq-9") && out.contains("unlimited"), "{out}");
    // Decided challenges are kept for `pending --all`, not listed as open.
    let (out, _) = admin(dir, &["pending", "--json"], 0);
    assert_eq!(out.trim(), "[]", "{out}");
    let (out, _) = admin(dir, &["pending", "--all", "--json"], 0);
    let all: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        all.as_array()
            .unwrap()
            .iter()
            .any(|c| c["status"] == "executed"),
        "{all}"
    );

    // Each class of failure has its own exit code. Not permitted: admin-1 has no grant to sign.
    let mut as_admin = block_with(dir, "demo-eth2", 19);
    as_admin.extend(["--client", "admin-1"].map(String::from));
    let (_, err) = ctl(&as_admin, 5);
    assert_eq!(
        err,
        "error: not permitted: PermissionDenied: client \"admin-1\" has no access grant\n"
    );
    // Rate limited: seq-1 at 1/s with a burst of 1 gets exit 7 within a few quick requests
    // (each signerctl run is a new process, well under a second apart), then is restored.
    admin(
        dir,
        &[
            "client",
            "grant",
            "seq-1",
            "--keys",
            "*",
            "--profiles",
            "eth2,espresso",
            "--rate",
            "1",
            "--burst",
            "1",
        ],
        0,
    );
    let mut limited = None;
    for view in 400..410 {
        let out = run(
            signerctl_exe(),
            &espresso_vote(dir, &view.to_string(), C1)
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        );
        match out.status.code() {
            Some(0) => continue,
            Some(7) => {
                limited = Some(text(&out.stderr));
                break;
            }
            other => panic!("view {view}: exit {other:?}: {}", text(&out.stderr)),
        }
    }
    assert_eq!(
        limited.as_deref(),
        Some(
            "error: rate limited: ResourceExhausted: client \"seq-1\" exceeded its rate limit \
             of 1/s (burst 1)\n"
        )
    );
    admin(
        dir,
        &[
            "client",
            "grant",
            "seq-1",
            "--keys",
            "*",
            "--profiles",
            "eth2,espresso",
        ],
        0,
    );
    // Not found: a key id nothing holds.
    let (_, err) = ctl(&block_with(dir, "no-such-key", 19), 8);
    assert_eq!(
        err,
        "error: not found: NotFound: key_id: no active key \"no-such-key\" on this cluster\n"
    );

    // Pause: signing is refused, saying so; resume: it signs again.
    let (out, _) = admin(dir, &["pause"], 0);
    assert!(out.contains("pause all signing"), "{out}");
    let (out, _) = admin(dir, &["admin", "list"], 0);
    assert!(out.contains("PAUSED"), "{out}");
    // One paused request is one definitive refusal: exit 3, not retried on other nodes, so
    // the audit log holds exactly one record of it.
    let mut paused = block_with(dir, "demo-eth2", 20);
    paused.extend(["--request-id", "paused-once"].map(String::from));
    let (out, err) = ctl(&paused, 3);
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(
        err,
        "refused: paused: signing is paused by the admins (signerctl resume, with approvals)\n"
    );
    let records = audit_records(dir, &["--result", "paused"]);
    let ours: Vec<_> = records
        .iter()
        .filter(|r| r["event"]["request_id"] == "paused-once")
        .collect();
    assert_eq!(ours.len(), 1, "{records:?}");
    assert_eq!(ours[0]["event"]["reason_code"], "paused", "{records:?}");
    // `audit show` prints the same record's fields, strings bare.
    let seq = ours[0]["seq"].as_u64().unwrap().to_string();
    let (shown, _) = admin(dir, &["audit", "show", &seq], 0);
    let prev = ours[0]["prev_hash"].as_str().unwrap();
    assert!(
        shown.contains(&format!("\n  prev_hash  {prev}\n")),
        "{shown}"
    );
    assert!(shown.contains("\n  type       sign\n"), "{shown}");
    assert!(shown.contains("\n  request_id paused-once\n"), "{shown}");
    // A result word no record holds is an error, not an empty answer.
    let (_, err) = admin(dir, &["audit", "tail", "--result", "bogus"], 2);
    assert!(
        err.starts_with("error: invalid value 'bogus' for '--result <RESULT>'"),
        "{err}"
    );
    admin(dir, &["resume"], 0);
    let (out, _) = ctl(&block_with(dir, "demo-eth2", 20), 0);
    only_signature(&out, "0x");

    // A second admin with a development key (created 0600), then 2 of 2 approvals.
    let key_file = tmp.0.join("admin-2.key");
    let key_path = key_file.to_str().unwrap();
    let (out, _) = admin(
        dir,
        &[
            "admin",
            "enroll",
            "--name",
            "admin-2",
            "--soft-key-file",
            key_path,
        ],
        0,
    );
    assert!(out.contains("enroll admin \"admin-2\""), "{out}");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let descriptor = std::fs::read_to_string(dir_path.join("cluster.json")).unwrap();
    assert!(descriptor.contains(key_path), "{descriptor}");
    admin(dir, &["admin", "policy", "--threshold", "2"], 0);
    let (out, _) = admin(dir, &["admin", "list", "--json"], 0);
    let state: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(state["policy"]["threshold"], 2, "{state}");
    assert_eq!(state["admins"].as_array().unwrap().len(), 2, "{state}");

    // admin-1 proposes and approves: 1 of 2, pending (exit 6).
    let (out, err) = admin(
        dir,
        &[
            "key",
            "generate",
            "--key",
            "two-of-two",
            "--profile",
            "eth2",
            "--json",
        ],
        PENDING,
    );
    let proposed: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(proposed["status"], "pending", "{proposed}");
    let prefix = proposed["challenge"]["id_prefix"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        err.contains(&format!(
            "1 of 2 approvals; others run: signerctl approve {prefix}"
        )),
        "{err}"
    );
    let (out, _) = admin(dir, &["pending"], 0);
    assert!(out.contains(&prefix) && out.contains("two-of-two"), "{out}");
    // admin-1 cannot approve twice; nobody approves without --yes off a terminal.
    let (_, err) = admin(dir, &["approve", &prefix, "--yes"], 2);
    assert!(err.contains("already approved"), "{err}");
    let (_, err) = admin(dir, &["--client", "admin-2", "approve", &prefix], 2);
    assert!(err.contains("--yes"), "{err}");
    // admin-2's approval executes it.
    let (out, _) = admin(
        dir,
        &["--client", "admin-2", "approve", &prefix, "--yes", "--json"],
        0,
    );
    let approved: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(approved["status"], "executed", "{approved}");
    assert_eq!(approved["key"]["key_id"], "two-of-two", "{approved}");
    let approvers = approved["approval"]["approved_by"].as_array().unwrap();
    assert_eq!(approvers.len(), 2, "{approved}");
    wait_for_entry(dir, "two-of-two", |k| k["loaded"] == true);
    // Approvals are single-use: approving the decided challenge again is refused.
    let (_, err) = admin(
        dir,
        &["--client", "admin-2", "approve", &prefix, "--yes"],
        2,
    );
    assert!(err.contains("already executed"), "{err}");
    assert!(err.contains("single-use"), "{err}");

    // --no-approve only proposes.
    let (_, err) = admin(dir, &["pause", "--no-approve"], PENDING);
    assert!(err.contains("0 of 2 approvals"), "{err}");

    let down = signer(&["dev-cluster", "down", "--dir", dir]);
    assert!(down.contains("stopped"), "{down}");
}

/// `signer pki issue` for `name` with `role` into the dev cluster `dir`; returns the
/// certificate's SHA-256 fingerprint as it prints it, after checking what it wrote.
fn pki_issue(dir: &str, name: &str, role: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let out = signer(&["pki", "issue", "--dir", dir, "--name", name, "--role", role]);
    let cert = format!("{dir}/pki/client-{name}.pem");
    let key = format!("{dir}/pki/client-{name}.key");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{key}");
    let der = signer_node::tls::read_certificate(Path::new(&cert)).unwrap();
    assert_eq!(
        signer_node::tls::certificate_identity(&der).as_deref(),
        Some(name)
    );
    let fingerprint = signer_node::admin::Fingerprint::of(&der).to_hex();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[..5],
        [
            format!(
                "issued a client certificate for {name:?} (--role {role}) from the CA in \
                 {dir}/pki:"
            ),
            format!("  {cert}"),
            format!("  {key}   (its private key, mode 0600)"),
            format!("  sha256 {fingerprint}   (what `signerctl cert revoke` names)"),
            format!(
                "recorded {name:?} in {dir}/cluster.json (signerctl --dir {dir} --client {name} …)"
            ),
        ],
        "{out}"
    );
    let descriptor: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{dir}/cluster.json")).unwrap())
            .unwrap();
    assert_eq!(
        descriptor["clients"][name],
        serde_json::json!({
            "cert": format!("pki/client-{name}.pem"),
            "key": format!("pki/client-{name}.key"),
        }),
        "{descriptor}"
    );
    fingerprint
}

/// A copy of `dir`'s cluster.json that lists only node `id`, in `dir/only-node-<id>`: signerctl
/// with `--dir` there asks that node and no other.
fn only_node(dir: &str, id: u64) -> String {
    let mut descriptor = signer_node::client::ClusterDescriptor::load(Path::new(dir)).unwrap();
    descriptor.nodes.retain(|n| n.id == id);
    let sub = format!("{dir}/only-node-{id}");
    std::fs::create_dir_all(&sub).unwrap();
    descriptor.save(Path::new(&sub)).unwrap();
    sub
}

/// Wait until node `only` (an `only_node` directory) lists `fingerprint` as revoked.
fn wait_revoked_on(only: &str, fingerprint: &str) {
    let started = Instant::now();
    loop {
        let (out, _) = admin(only, &["cert", "list", "--json"], 0);
        let list: serde_json::Value = serde_json::from_str(&out).unwrap();
        if list
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["fingerprint"] == fingerprint)
        {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{only}: never applied the revocation: {list}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The whole life of new identities through `signer` and `signerctl`: a certificate for a new
/// admin (`signer pki issue --role admin`), enrolled, approving; a certificate for a new
/// sequencer, granted with 2-of-2 approvals and signing (the signature verified under the
/// key's public key over the signing root computed here); its certificate revoked with 2-of-2
/// approvals and refused on every node with the exact error; a certificate issued again for
/// the same name signing again while the revoked one stays refused.
#[test]
fn signer_pki_issues_identities_that_are_granted_sign_and_are_revoked() {
    let tmp = TempDir::new();
    let dir_path = tmp.0.join("cluster");
    let dir = dir_path.to_str().unwrap().to_owned();
    let dir = dir.as_str();
    let port = free_base_port().to_string();
    let _cluster = Cluster {
        dir: dir_path.clone(),
    };
    signer(&["dev-cluster", "up", "--dir", dir, "--base-port", &port]);
    let (keys, _) = admin(dir, &["key", "list", "--json"], 0);
    let keys: serde_json::Value = serde_json::from_str(&keys).unwrap();
    let eth2_pk = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["key_id"] == "demo-eth2")
        .unwrap()["public_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let as_seq2 = |slot: u64| {
        let mut args = block_with(dir, "demo-eth2", slot);
        args.extend(["--client", "seq-2"].map(String::from));
        args
    };

    // Before: no certificate, so signerctl cannot even authenticate as them.
    let (_, err) = ctl(&as_seq2(1), 2);
    assert_eq!(
        err,
        format!(
            "error: --client seq-2: no such client identity in {dir} (known: admin-1, admin-2, \
             auditor-1, seq-1)\n"
        )
    );

    // A new admin: its certificate, its enrollment (approved by admin-1), then 2 of 2.
    pki_issue(dir, "admin-3", "admin");
    let soft = tmp.0.join("admin-3.key");
    admin(
        dir,
        &[
            "admin",
            "enroll",
            "--name",
            "admin-3",
            "--soft-key-file",
            soft.to_str().unwrap(),
        ],
        0,
    );
    admin(dir, &["admin", "policy", "--threshold", "2"], 0);

    // A new sequencer: issued, refused until granted; admin-1 proposes the grant, the new
    // admin approves it.
    let old_fingerprint = pki_issue(dir, "seq-2", "sequencer");
    let (_, err) = ctl(&as_seq2(1), 5);
    assert_eq!(
        err,
        "error: not permitted: PermissionDenied: client \"seq-2\" has no access grant\n"
    );
    let (out, _) = admin(
        dir,
        &[
            "client",
            "grant",
            "seq-2",
            "--keys",
            "demo-eth2",
            "--profiles",
            "eth2",
            "--json",
        ],
        PENDING,
    );
    let proposed: serde_json::Value = serde_json::from_str(&out).unwrap();
    let prefix = proposed["challenge"]["id_prefix"].as_str().unwrap();
    let (out, _) = admin(
        dir,
        &["--client", "admin-3", "approve", prefix, "--yes", "--json"],
        0,
    );
    let approved: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(approved["status"], "executed", "{approved}");
    assert_eq!(
        approved["approval"]["approved_by"],
        serde_json::json!(["admin-1", "admin-3"]),
        "{approved}"
    );
    let (out, _) = ctl(&as_seq2(1), 0);
    let signature = only_signature(&out, "0x");
    assert!(block_signed_by(&signature, &eth2_pk, 1), "{signature}");

    // Revoked by its certificate file: the new admin proposes, admin-1 approves.
    let cert = format!("{dir}/pki/client-seq-2.pem");
    let (out, _) = admin(
        dir,
        &[
            "--client", "admin-3", "cert", "revoke", "--cert", &cert, "--json",
        ],
        PENDING,
    );
    let proposed: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        proposed["challenge"]["action"],
        format!("revoke certificate sha256 {old_fingerprint} (names \"seq-2\")"),
        "{proposed}"
    );
    let prefix = proposed["challenge"]["id_prefix"].as_str().unwrap();
    let (out, _) = admin(dir, &["approve", prefix, "--yes"], 0);
    assert!(
        out.contains(&format!(
            "executed: certificate sha256 {old_fingerprint} of \"seq-2\" revoked"
        )),
        "{out}"
    );
    // Refused on every node (leader and followers alike) once it applied the revocation.
    let refused = format!(
        "error: not permitted: Unauthenticated: the certificate of \"seq-2\" (sha256 \
         {old_fingerprint}) was revoked by the admins; ask them for a new one\n"
    );
    for id in 1..=3 {
        let only = only_node(dir, id);
        wait_revoked_on(&only, &old_fingerprint);
        let mut args = as_seq2(2);
        args[1] = only.clone();
        let (out, err) = ctl(&args, 5);
        assert_eq!(
            (out.as_str(), err.as_str()),
            ("", refused.as_str()),
            "node-{id}"
        );
    }
    let (out, _) = admin(dir, &["cert", "list"], 0);
    assert_eq!(
        out,
        format!("{:<64}  IDENTITY\n{old_fingerprint}  seq-2\n", "SHA256")
    );
    // Once revoked is revoked: a second revocation is refused at proposal.
    let (_, err) = admin(
        dir,
        &["cert", "revoke", "--fingerprint", &old_fingerprint],
        2,
    );
    assert!(
        err.contains(&format!(
            "certificate sha256 {old_fingerprint} is already revoked"
        )),
        "{err}"
    );

    // Issued again (the revoked files moved away): another certificate, which signs; the
    // revoked one, put back under another name, is still refused.
    let (old_cert, old_key) = (tmp.0.join("old-seq-2.pem"), tmp.0.join("old-seq-2.key"));
    std::fs::rename(&cert, &old_cert).unwrap();
    std::fs::rename(format!("{dir}/pki/client-seq-2.key"), &old_key).unwrap();
    let new_fingerprint = pki_issue(dir, "seq-2", "sequencer");
    assert_ne!(new_fingerprint, old_fingerprint);
    let (out, _) = ctl(&as_seq2(3), 0);
    assert!(block_signed_by(&only_signature(&out, "0x"), &eth2_pk, 3));
    signer_node::client::ClusterDescriptor::record_client(
        Path::new(dir),
        "old-seq-2",
        signer_node::client::ClientFiles {
            cert: old_cert,
            key: old_key,
        },
    )
    .unwrap();
    let mut args = block_with(dir, "demo-eth2", 4);
    args.extend(["--client", "old-seq-2"].map(String::from));
    let (_, err) = ctl(&args, 5);
    assert_eq!(err, refused);

    let down = signer(&["dev-cluster", "down", "--dir", dir]);
    assert!(down.contains("stopped"), "{down}");
}

/// The refusals of `signer pki issue` and `signerctl cert revoke`, each with its exact error
/// and exit code, without a running node (a `signer init` directory has the CA and
/// cluster.json): a file that exists, a node name, names a role does not allow, no CA key
/// here, a malformed fingerprint, an unreadable certificate. And `--ca-dir … --out …` writes a
/// pair for a CA kept elsewhere, touching no cluster.json.
#[test]
fn signer_pki_and_cert_revoke_refuse_with_exact_errors_without_a_node() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = TempDir::new();
    let dir = tmp.0.join("prod");
    let dir = dir.to_str().unwrap();
    signer(&[
        "init",
        "--dir",
        dir,
        "--node",
        "1=127.0.0.1:7100,127.0.0.1:7101",
    ]);
    let descriptor = std::fs::read(format!("{dir}/cluster.json")).unwrap();
    let issue = |args: &[&str], code: i32| -> String {
        let mut all = vec!["pki", "issue"];
        all.extend_from_slice(args);
        let (out, err) = expect(signer_exe(), &all, code);
        assert_eq!(out, "", "nothing issued");
        err
    };

    // A file that exists: never overwritten.
    let cert = format!("{dir}/pki/client-seq-1.pem");
    let before = std::fs::read(&cert).unwrap();
    assert_eq!(
        issue(&["--dir", dir, "--name", "seq-1", "--role", "sequencer"], 1),
        format!(
            "error: {cert} already exists; refusing to overwrite it (to issue \"seq-1\" again, \
             revoke the old certificate with `signerctl cert revoke --cert {cert}` and move its \
             files away first)\n"
        )
    );
    assert_eq!(std::fs::read(&cert).unwrap(), before);
    // Node identities and names a role does not allow.
    assert_eq!(
        issue(
            &["--dir", dir, "--name", "node-4", "--role", "sequencer"],
            1
        ),
        "error: invalid identity \"node-4\": client names may not start with node- (reserved \
         for nodes)\n"
    );
    assert_eq!(
        issue(&["--dir", dir, "--name", "Seq_2", "--role", "sequencer"], 1),
        "error: invalid identity \"Seq_2\": use lower-case letters, digits and inner '-' only\n"
    );
    assert_eq!(
        issue(&["--dir", dir, "--name", "bob", "--role", "auditor"], 1),
        "error: invalid identity \"bob\" for --role auditor: the Audit service admits auditor-… \
         identities (and enrolled admins); name it auditor-bob\n"
    );
    assert_eq!(
        issue(&["--dir", dir, "--name", "auditor-9", "--role", "admin"], 1),
        "error: invalid identity \"auditor-9\" for --role admin: auditor-… identities may read \
         the audit log; use --role auditor\n"
    );
    // Where the CA key is not: refused, nothing written.
    let elsewhere = tmp.0.join("no-key");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::copy(format!("{dir}/pki/ca.pem"), elsewhere.join("ca.pem")).unwrap();
    let out_dir = tmp.0.join("out");
    let (elsewhere, out) = (elsewhere.to_str().unwrap(), out_dir.to_str().unwrap());
    assert_eq!(
        issue(
            &[
                "--ca-dir",
                elsewhere,
                "--out",
                out,
                "--name",
                "vc-1",
                "--role",
                "sequencer"
            ],
            1
        ),
        format!(
            "error: no CA key at {elsewhere}/ca.key: `signer pki issue` runs where the cluster \
             CA's key is kept (offline, never on a node)\n"
        )
    );
    assert!(!out_dir.exists());
    // --dir with --ca-dir: malformed arguments (clap, exit 2).
    let err = issue(
        &[
            "--dir",
            dir,
            "--ca-dir",
            elsewhere,
            "--name",
            "vc-1",
            "--role",
            "sequencer",
        ],
        2,
    );
    assert!(
        err.starts_with("error: the argument '--dir <DIR>' cannot be used with '--ca-dir <DIR>'"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(format!("{dir}/cluster.json")).unwrap(),
        descriptor
    );

    // A CA kept elsewhere: the pair goes to --out (created), cluster.json is not touched.
    let ca = format!("{dir}/pki");
    let printed = signer(&[
        "pki",
        "issue",
        "--ca-dir",
        &ca,
        "--out",
        out,
        "--name",
        "vc-1",
        "--role",
        "sequencer",
    ]);
    let der = signer_node::tls::read_certificate(&out_dir.join("client-vc-1.pem")).unwrap();
    assert_eq!(
        signer_node::tls::certificate_identity(&der).as_deref(),
        Some("vc-1")
    );
    let mode = std::fs::metadata(out_dir.join("client-vc-1.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(
        printed.ends_with(
            "next: the admins grant it keys: signerctl --dir DIR client grant vc-1 --keys KEYS \
             --profiles PROFILES\n"
        ),
        "{printed}"
    );
    assert_eq!(
        std::fs::read(format!("{dir}/cluster.json")).unwrap(),
        descriptor
    );

    // signerctl reads the revocation's input before any network use.
    let revoke = |args: &[&str]| -> (String, String) {
        let mut all = vec!["--dir", dir, "cert", "revoke"];
        all.extend_from_slice(args);
        expect(signerctl_exe(), &all, 2)
    };
    assert_eq!(
        revoke(&["--fingerprint", "xyz"]),
        (
            String::new(),
            "error: --fingerprint: \"xyz\" is not a SHA-256 certificate fingerprint: expected 64 \
             hex digits (0x and ':' between bytes allowed)\n"
                .to_owned()
        )
    );
    let short = "ab".repeat(31);
    assert_eq!(
        revoke(&["--fingerprint", &short]).1,
        format!(
            "error: --fingerprint: \"{short}\" is not a SHA-256 certificate fingerprint: \
             expected 64 hex digits (0x and ':' between bytes allowed)\n"
        )
    );
    let missing = tmp.0.join("missing.pem");
    assert_eq!(
        revoke(&["--cert", missing.to_str().unwrap()]).1,
        format!(
            "error: --cert: {}: No such file or directory (os error 2)\n",
            missing.display()
        )
    );
    let not_a_cert = tmp.0.join("not-a-cert.pem");
    std::fs::write(&not_a_cert, "hello\n").unwrap();
    assert_eq!(
        revoke(&["--cert", not_a_cert.to_str().unwrap()]).1,
        format!(
            "error: --cert: certificate: {} holds no certificate (neither a PEM CERTIFICATE \
             block nor DER)\n",
            not_a_cert.display()
        )
    );
    let (_, err) = revoke(&[]);
    assert!(
        err.starts_with(
            "error: the following required arguments were not provided:\n  <--cert <FILE>|--fingerprint <HEX>>"
        ),
        "{err}"
    );
}

// ---- what approvers review, and what refusals say -------------------------------------------

/// The mainnet genesis validators root, which the dev cluster's `[eth2]` section names.
const MAINNET_GVR: &str = "0x4b363db94e286120d76eb905340fdd4e54bfe9f06bf33ff6cf5ad27f511bfe95";
/// Lighthouse's interop key 1 (a validator this cluster has no key or record for).
const OTHER_VALIDATOR: &str = "0xb89bebc699769726a318c8e9971bd3171297c61aea4a6578a7a4f94b547dcba5bac16a89108b6b6a1fe3695d1a874a0b";

/// The review lines of a challenge as `signerctl` prints it: the lines under `action`,
/// indented to its value.
fn review_lines(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("              "))
        .map(str::to_owned)
        .collect()
}

/// The challenge id prefix of `proposed challenge <prefix>`.
fn proposed_prefix(stdout: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("proposed challenge "))
        .unwrap_or_else(|| panic!("no challenge proposed: {stdout}"))
        .trim()
        .to_owned()
}

/// `lines` holds `block` as consecutive lines.
fn holds_in_order(lines: &[String], block: &[String]) -> bool {
    lines.windows(block.len()).any(|w| w == block)
}

/// `key list --json`'s public key text of `key_id`, once a node has it loaded.
fn listed_public_key(dir: &str, key_id: &str) -> String {
    let started = Instant::now();
    loop {
        let (out, _) = admin(dir, &["key", "list", "--json"], 0);
        let keys: serde_json::Value = serde_json::from_str(&out).unwrap();
        if let Some(k) = keys
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["key_id"] == key_id)
        {
            return k["public_key"].as_str().unwrap().to_owned();
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{key_id} never listed: {keys}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Item 4 of the operator-experience issue, as an approver meets it: an import's review names
/// its network, each validator with its records and maxima (read off the file written here)
/// and what changes against the cluster's records; an espresso key reads as `key list` prints
/// it; a grant shows what it changes, and a grant reviewed against a grant that changed
/// before the last approval fails instead of applying another change; `pending --all` shows
/// the threshold each decided challenge met.
#[test]
fn signerctl_approvers_review_what_an_action_changes() {
    let tmp = TempDir::new();
    let dir_path = tmp.0.join("cluster");
    let dir = dir_path.to_str().unwrap().to_owned();
    let dir = dir.as_str();
    let port = free_base_port().to_string();
    let _cluster = Cluster {
        dir: dir_path.clone(),
    };
    signer(&["dev-cluster", "up", "--dir", dir, "--base-port", &port]);
    let config = std::fs::read_to_string(dir_path.join("node-1/node.toml")).unwrap();
    assert!(config.contains(MAINNET_GVR), "{config}");

    // demo-eth2 signs a block at slot 20: the cluster's record the import is reviewed against.
    ctl(&block_with(dir, "demo-eth2", 20), 0);
    let eth2_key = listed_public_key(dir, "demo-eth2");
    let interchange = serde_json::json!({
        "metadata": {"interchange_format_version": "5", "genesis_validators_root": MAINNET_GVR},
        "data": [
            {"pubkey": eth2_key,
             "signed_blocks": [{"slot": "30"}, {"slot": "25"}],
             "signed_attestations": [{"source_epoch": "3", "target_epoch": "4"},
                                     {"source_epoch": "5", "target_epoch": "6"}]},
            {"pubkey": OTHER_VALIDATOR,
             "signed_blocks": [{"slot": "7"}],
             "signed_attestations": []}
        ]
    });
    let file = tmp.0.join("interchange.json");
    std::fs::write(&file, interchange.to_string()).unwrap();
    let (out, _) = admin(
        dir,
        &[
            "protection",
            "import",
            file.to_str().unwrap(),
            "--no-approve",
        ],
        PENDING,
    );
    let import = proposed_prefix(&out);
    assert!(
        out.contains(&format!(
            "  action      import slashing-protection interchange for genesis validators root \
             {MAINNET_GVR}: 2 validator(s), 3 block and 2 attestation record(s)\n"
        )),
        "{out}"
    );
    let lines = review_lines(&out);
    assert_eq!(
        lines[0],
        format!("genesis validators root {MAINNET_GVR} (applying checks it is this cluster's)"),
        "{out}"
    );
    let ours = [
        format!("validator {eth2_key}"),
        "  file: 2 block(s), highest slot 30; 2 attestation(s), highest source 5, highest \
         target 6"
            .to_owned(),
        "  block: slot 20 -> 30".to_owned(),
        "  attestations: no watermarks -> source 5, target 6".to_owned(),
    ];
    let theirs = [
        format!("validator {OTHER_VALIDATOR} (new: no record in the cluster)"),
        "  file: 1 block(s), highest slot 7; no attestations".to_owned(),
        "  block: no watermark -> slot 7".to_owned(),
        "  attestations: no watermarks (unchanged)".to_owned(),
    ];
    assert!(holds_in_order(&lines, &ours), "{out}");
    assert!(holds_in_order(&lines, &theirs), "{out}");
    // The approver reads the same review before approving, from the committed bytes.
    let (out, _) = admin(dir, &["approve", &import, "--yes"], 0);
    assert_eq!(review_lines(&out), lines, "{out}");
    assert!(
        out.contains("executed: imported 2 validator(s), 3 block and 2 attestation record(s)"),
        "{out}"
    );

    // A generated espresso key reads as `key list` prints it.
    let (out, _) = admin(
        dir,
        &[
            "key",
            "generate",
            "--key",
            "esp-review",
            "--profile",
            "espresso",
        ],
        0,
    );
    let listed = listed_public_key(dir, "esp-review");
    assert!(listed.starts_with("BLS_VER_KEY~"), "{listed}");
    assert!(
        out.contains(&format!(
            "  action      add generated espresso key \"esp-review\" with public key {listed}\n"
        )),
        "{out}"
    );

    // A grant shows what it changes in the identity's grant.
    let (out, _) = admin(
        dir,
        &[
            "client",
            "grant",
            "seq-7",
            "--keys",
            "*",
            "--profiles",
            "espresso",
        ],
        0,
    );
    assert_eq!(
        review_lines(&out),
        ["new: client \"seq-7\" has no grant now"],
        "{out}"
    );
    let (out, _) = admin(
        dir,
        &[
            "client",
            "grant",
            "seq-7",
            "--keys",
            "demo-eth2,demo-espresso",
            "--profiles",
            "eth2,espresso",
            "--rate",
            "5",
            "--burst",
            "10",
            "--no-approve",
        ],
        PENDING,
    );
    let stale = proposed_prefix(&out);
    assert_eq!(
        review_lines(&out),
        [
            "replaces client \"seq-7\"'s grant:",
            "  keys: [*] -> [demo-espresso, demo-eth2] (adds demo-espresso, demo-eth2; removes *)",
            "  profiles: [espresso] -> [espresso, eth2] (adds eth2)",
            "  rate: unlimited -> 5/s, burst 10",
            "  raw roots: no (unchanged)",
        ],
        "{out}"
    );
    // Another grant for seq-7 executes first; the one reviewed against the old grant then
    // fails at its approval, and seq-7 keeps the grant that executed.
    let (out, _) = admin(
        dir,
        &[
            "client",
            "grant",
            "seq-7",
            "--keys",
            "*",
            "--profiles",
            "eth2",
            "--raw-roots",
        ],
        0,
    );
    assert_eq!(
        review_lines(&out)[1..],
        [
            "  keys: [*] (unchanged)",
            "  profiles: [espresso] -> [eth2] (adds eth2; removes espresso)",
            "  rate: unlimited (unchanged)",
            "  raw roots: no -> yes (the client chooses the eth2 signing roots it sends)",
        ],
        "{out}"
    );
    let (_, err) = admin(dir, &["approve", &stale, "--yes"], 2);
    assert!(
        err.contains(
            "approved, but applying it was refused: client \"seq-7\"'s grant is not the one \
             this change was reviewed against (keys [*] profiles [espresso] rate unlimited); it \
             is now keys [*] profiles [eth2] rate unlimited raw-roots: propose the change again"
        ),
        "{err}"
    );
    let (out, _) = admin(dir, &["client", "list", "--json"], 0);
    let clients: serde_json::Value = serde_json::from_str(&out).unwrap();
    let seq7 = clients
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["identity"] == "seq-7")
        .unwrap();
    assert_eq!(
        (&seq7["keys"], &seq7["profiles"]),
        (&serde_json::json!(["*"]), &serde_json::json!(["eth2"])),
        "{clients}"
    );

    // Two admins, threshold 2: the challenges decided under threshold 1 still say 1.
    let key_file = tmp.0.join("admin-2.key");
    admin(
        dir,
        &[
            "admin",
            "enroll",
            "--name",
            "admin-2",
            "--soft-key-file",
            key_file.to_str().unwrap(),
        ],
        0,
    );
    admin(dir, &["admin", "policy", "--threshold", "2"], 0);
    admin(dir, &["pause", "--no-approve"], PENDING);
    let (out, _) = admin(dir, &["pending", "--all", "--json"], 0);
    let all: serde_json::Value = serde_json::from_str(&out).unwrap();
    let by_prefix = |p: &str| {
        all.as_array()
            .unwrap()
            .iter()
            .find(|c| c["id_prefix"] == p)
            .unwrap_or_else(|| panic!("{p} not listed: {all}"))
            .clone()
    };
    let shown = |c: &serde_json::Value| {
        (
            c["status"].as_str().unwrap().to_owned(),
            c["approved_by"].clone(),
            c["threshold"].as_u64().unwrap(),
            c["threshold_source"].as_str().unwrap().to_owned(),
        )
    };
    let decided = |status: &str| {
        (
            status.to_owned(),
            serde_json::json!(["admin-1"]),
            1,
            "decided".to_owned(),
        )
    };
    assert_eq!(shown(&by_prefix(&import)), decided("executed"), "{all}");
    assert_eq!(shown(&by_prefix(&stale)), decided("failed"), "{all}");
    let policy = all
        .as_array()
        .unwrap()
        .iter()
        .find(|c| {
            c["action"]
                .as_str()
                .unwrap()
                .starts_with("set approval policy: 2")
        })
        .unwrap();
    assert_eq!(shown(policy), decided("executed"), "{all}");
    let pause = all
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["action"] == "pause all signing")
        .unwrap();
    assert_eq!(
        shown(pause),
        (
            "pending".to_owned(),
            serde_json::json!([]),
            2,
            "current".to_owned()
        ),
        "{all}"
    );
    // The table says the same.
    let (out, _) = admin(dir, &["pending", "--all"], 0);
    let row = |p: &str| {
        out.lines()
            .find(|l| l.starts_with(p))
            .unwrap_or_else(|| panic!("{p} not in the table: {out}"))
            .to_owned()
    };
    assert!(row(&import).contains("  executed  1 of 1  "), "{out}");
    assert!(row(&stale).contains("  failed    1 of 1  "), "{out}");
    assert!(
        row(pause["id_prefix"].as_str().unwrap()).contains("  pending   0 of 2  "),
        "{out}"
    );
    assert!(
        out.contains(
            "(executed and failed: the approvals that counted and the threshold they met when \
             decided; ? = not recorded by the signer that decided it)"
        ),
        "{out}"
    );

    let down = signer(&["dev-cluster", "down", "--dir", dir]);
    assert!(down.contains("stopped"), "{down}");
}

/// Item 8 of the operator-experience issue, as an operator meets it: re-signing the block of
/// an imported slot with the identical root is refused (EIP-3076 minimal import) with a reason
/// that says why, not that "another root" was signed; an espresso refusal names the
/// commitment signed there and the one asked for; `signer node` with a key file others may
/// read says so once.
#[test]
fn signerctl_refusals_name_what_they_conflict_with() {
    use signer_core::scheme::bn254;
    let tmp = TempDir::new();
    let dir_path = tmp.0.join("cluster");
    let dir = dir_path.to_str().unwrap().to_owned();
    let dir = dir.as_str();
    let port = free_base_port().to_string();
    let _cluster = Cluster {
        dir: dir_path.clone(),
    };
    signer(&["dev-cluster", "up", "--dir", dir, "--base-port", &port]);

    // Espresso: the refusal names both commitments. The one signed there is what the first
    // signature verifies over; the one asked for is what another key signs for the same vote.
    let (out, _) = ctl(&espresso_vote(dir, "10", C1), 0);
    let first = only_signature(&out, "BLS_SIG~");
    let (_, err) = ctl(&espresso_vote(dir, "10", C2), 3);
    let prefix = "refused: equivocation: quorum-vote at view 10: commitment 0x";
    let rest = err
        .trim_end()
        .strip_prefix(prefix)
        .unwrap_or_else(|| panic!("{err}"));
    let (signed, requested) = rest
        .split_once(" was signed there; this request's commitment is 0x")
        .unwrap_or_else(|| panic!("{err}"));
    let digest = |h: &str| -> [u8; 32] { hex::decode(h).unwrap().try_into().unwrap() };
    let verifies = |key: &str, signature: &str, message: [u8; 32]| {
        let pk = bn254::PublicKey::from_tagged(key).unwrap();
        bn254::Signature::from_tagged(signature)
            .unwrap()
            .verify(&pk, &message)
    };
    let demo = listed_public_key(dir, "demo-espresso");
    assert!(verifies(&demo, &first, digest(signed)), "{err}");
    admin(
        dir,
        &["key", "generate", "--key", "esp-2", "--profile", "espresso"],
        0,
    );
    let other = listed_public_key(dir, "esp-2");
    let mut vote = espresso_vote(dir, "10", C2);
    vote[4] = "esp-2".into();
    let (out, _) = ctl(&vote, 0);
    let second = only_signature(&out, "BLS_SIG~");
    assert!(verifies(&other, &second, digest(requested)), "{err}");
    assert_ne!(signed, requested);

    // The Espresso view horizon: 32 views above the key's last vote (view 10) until the
    // admins set another; then DA votes further ahead than the new horizon are refused.
    let da_vote = |view: &str| {
        let mut v = espresso_vote(dir, view, C1);
        v[8] = "da".into();
        v
    };
    let (_, err) = ctl(&da_vote("43"), 3);
    assert_eq!(
        err,
        "refused: beyond_view_horizon: da-vote at view 43 is more than 32 views above view 10, \
         the highest view this key has voted in (quorum, timeout or view-sync vote)\n"
    );
    let (out, _) = admin(dir, &["protection", "espresso-horizon", "4"], 0);
    assert!(
        out.contains("set the Espresso view horizon to 4 views: refuse a DA vote"),
        "{out}"
    );
    let (listed, _) = admin(dir, &["admin", "list"], 0);
    assert!(
        listed.contains("; Espresso view horizon 4 views"),
        "{listed}"
    );
    let (_, err) = ctl(&da_vote("15"), 3);
    assert_eq!(
        err,
        "refused: beyond_view_horizon: da-vote at view 15 is more than 4 views above view 10, \
         the highest view this key has voted in (quorum, timeout or view-sync vote)\n"
    );
    let (out, _) = ctl(&da_vote("14"), 0);
    only_signature(&out, "BLS_SIG~");
    let (_, err) = admin(dir, &["protection", "espresso-horizon", "33"], 2);
    assert!(err.contains("33 is not in 1..=32"), "{err}");

    // eth2: a block signed at slot 40 re-signs while the cluster's own record holds its root;
    // another block there is refused naming the root signed (as the export shows it).
    let (signature, _) = ctl(&block_with(dir, "demo-eth2", 40), 0);
    let (again, _) = ctl(&block_with(dir, "demo-eth2", 40), 0);
    assert_eq!(again, signature);
    let export = tmp.0.join("export.json");
    admin(
        dir,
        &["protection", "export", "--out", export.to_str().unwrap()],
        0,
    );
    let exported: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&export).unwrap()).unwrap();
    let eth2_key = listed_public_key(dir, "demo-eth2");
    let ours = exported["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["pubkey"] == eth2_key.as_str())
        .unwrap_or_else(|| panic!("{exported}"));
    assert_eq!(ours["signed_blocks"][0]["slot"], "40", "{exported}");
    let root = ours["signed_blocks"][0]["signing_root"].as_str().unwrap();
    let body = format!("0x{}", "55".repeat(32));
    let other_block = [
        "--dir",
        dir,
        "sign",
        "--key",
        "demo-eth2",
        "--profile",
        "eth2",
        "--request-json",
        &block_json(dir, "40", &body),
    ]
    .map(String::from)
    .to_vec();
    let (_, err) = ctl(&other_block, 3);
    assert!(
        err.starts_with(&format!(
            "refused: double_block_proposal: double block proposal at slot 40: block {root} \
             was signed there; this request's signing root is 0x"
        )),
        "{err}"
    );
    // Importing that export (the record, with its root) drops the root at slot 40, as the
    // review warns; from then on not even the identical block is signed there, and the
    // refusal says why rather than claiming another root was signed.
    let (out, _) = admin(dir, &["protection", "import", export.to_str().unwrap()], 0);
    assert!(
        review_lines(&out).contains(
            &"  block: slot 40 (unchanged); the root signed there is dropped: that block is no \
              longer re-signed"
                .to_owned()
        ),
        "{out}"
    );
    let (_, err) = ctl(&block_with(dir, "demo-eth2", 40), 3);
    assert_eq!(
        err,
        "refused: double_block_proposal: block at slot 40: an interchange import set the block \
         watermark to slot 40, and imported blocks keep no signing root, so no block at that \
         slot can be shown to be the one signed before, not even an identical one (EIP-3076)\n"
    );
    assert!(!err.contains("another"), "{err}");

    // A key file others may read: `signer node` refuses to start and says so once.
    let down = signer(&["dev-cluster", "down", "--dir", dir]);
    assert!(down.contains("stopped"), "{down}");
    let keys_dir = dir_path.join("node-1/keys");
    let key_file = std::fs::read_dir(&keys_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "key"))
        .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let config = dir_path.join("node-1/node.toml");
    let (_, err) = expect(
        signer_exe(),
        &["node", "--config", config.to_str().unwrap()],
        1,
    );
    let refusal = format!(
        "{}: mode 644 lets others read the key; chmod 600 it",
        key_file.display()
    );
    assert_eq!(err.matches(&refusal).count(), 1, "{err}");
    assert!(err.ends_with(&format!("error: keys: {refusal}\n")), "{err}");
    // `signer dev-cluster up` shows the log of the node that exited: only what this start
    // printed, so a second `up` does not show the first one's error again.
    for id in 1..=3 {
        for entry in std::fs::read_dir(dir_path.join(format!("node-{id}/keys"))).unwrap() {
            use std::os::unix::fs::PermissionsExt;
            let path = entry.unwrap().path();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
    for attempt in 1..=2 {
        let (_, err) = expect(
            signer_exe(),
            &["dev-cluster", "up", "--dir", dir, "--base-port", &port],
            1,
        );
        assert_eq!(
            err.matches("mode 644 lets others read the key; chmod 600 it")
                .count(),
            1,
            "attempt {attempt}: {err}"
        );
    }
}

/// A node on another KEK: `status` and `key registry` name the key pending on that node and
/// why, in text and JSON; `dev-cluster restart --node N` restarts just that node.
#[test]
fn signerctl_shows_keys_pending_on_one_node_after_its_restart() {
    let tmp = TempDir::new();
    let dir_path = tmp.0.join("cluster");
    let dir = dir_path.to_str().unwrap().to_owned();
    let dir = dir.as_str();
    let port = free_base_port().to_string();
    let _cluster = Cluster {
        dir: dir_path.clone(),
    };
    signer(&["dev-cluster", "up", "--dir", dir, "--base-port", &port]);
    admin(
        dir,
        &["key", "generate", "--key", "gen-p", "--profile", "eth2"],
        0,
    );
    let kek = registry_entry(dir, "gen-p")["kek"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(kek.starts_with("local:"), "{kek}");

    // Node 3 gets a KEK of its own, and only node 3 restarts.
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(dir_path.join("node-3/other-kek.key"))
            .unwrap();
        std::io::Write::write_all(&mut file, &[7u8; 32]).unwrap();
    }
    let config = dir_path.join("node-3/node.toml");
    let toml = std::fs::read_to_string(&config).unwrap();
    assert!(toml.contains("path = \"../kek.key\""), "{toml}");
    std::fs::write(
        &config,
        toml.replace("path = \"../kek.key\"", "path = \"other-kek.key\""),
    )
    .unwrap();
    let pids_before: Vec<String> = (1..=3)
        .map(|i| std::fs::read_to_string(dir_path.join(format!("node-{i}/pid"))).unwrap())
        .collect();
    let restarted = signer(&["dev-cluster", "restart", "--node", "3", "--dir", dir]);
    let lines: Vec<&str> = restarted.lines().collect();
    assert_eq!(lines.len(), 3, "{restarted}");
    assert!(lines[0].starts_with("node-3: stopped (pid "), "{restarted}");
    assert!(lines[1].starts_with("node-3: started (pid "), "{restarted}");
    assert!(
        lines[2].starts_with("node-3: serving; leader node-"),
        "{restarted}"
    );
    let pids_after: Vec<String> = (1..=3)
        .map(|i| std::fs::read_to_string(dir_path.join(format!("node-{i}/pid"))).unwrap())
        .collect();
    assert_eq!(pids_after[..2], pids_before[..2], "only node 3 restarts");
    assert_ne!(pids_after[2], pids_before[2]);

    let reason = format!("sealed under {kek}, which this node is not configured with");
    let (out, _) = ctl(&["--dir", dir, "status"].map(String::from), 0);
    let node3: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.starts_with("  node-3 "))
        .collect();
    assert_eq!(node3.len(), 2, "{out}");
    assert_eq!(node3[1], format!("    pending gen-p: {reason}"), "{out}");
    assert_eq!(
        out.matches("    pending ").count(),
        1,
        "only node 3 has a pending key: {out}"
    );
    let (json, _) = ctl(&["--dir", dir, "status", "--json"].map(String::from), 0);
    let nodes: serde_json::Value = serde_json::from_str(&json).unwrap();
    for node in nodes.as_array().unwrap() {
        let expected = if node["node_id"] == 3 {
            serde_json::json!([{"key_id": "gen-p", "reason": reason}])
        } else {
            serde_json::json!([])
        };
        assert_eq!(node["keys_pending"], expected, "{json}");
    }

    // The admin's registry view: loaded on 1 and 2, pending on 3 with the reason.
    let entry = registry_entry(dir, "gen-p");
    assert_eq!(
        entry["nodes"],
        serde_json::json!({
            "loaded_on": [1, 2],
            "pending_on": [{"node_id": 3, "reason": reason}],
            "unknown_on": [],
        }),
        "{entry}"
    );
    let (out, _) = admin(dir, &["key", "registry"], 0);
    let row = out.lines().position(|l| l.starts_with("gen-p ")).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[row].contains("  1,2  "), "{out}");
    assert_eq!(
        lines[row + 1].trim_start(),
        format!("pending on node-3: {reason}"),
        "{out}"
    );

    // A node number the cluster does not have.
    let out = run(
        signer_exe(),
        &["dev-cluster", "restart", "--node", "9", "--dir", dir],
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "error: --node 9: no such node in this cluster (nodes: 1, 2, 3)\n"
    );
}

/// `signer init --help` shows its example as typed (one continued shell line per line, no
/// joined-up backslashes), and `--key` warns that it writes plaintext secrets.
#[test]
fn signer_init_help_shows_its_example_and_key_files_warn() {
    let help = signer(&["init", "--help"]);
    assert!(
        help.contains(
            "Example for three hosts, keys wrapped by AWS KMS, two of three YubiKey admins to \
             approve:\n  signer init --dir prod --cluster-id espresso-main \\\n    \
             --node 1=10.0.0.1:7100,10.0.0.1:7101 --node 2=10.0.0.2:7100,10.0.0.2:7101 \\\n    \
             --node 3=10.0.0.3:7100,10.0.0.3:7101 \\\n    \
             --kms-key-id alias/quorum-signer --kms-region eu-west-1 \\\n"
        ),
        "{help}"
    );
    assert!(!help.contains("\\ --node"), "{help}");

    let tmp = TempDir::new();
    let dir = tmp.0.join("dev");
    let dir = dir.to_str().unwrap();
    let (_, err) = expect(
        signer_exe(),
        &[
            "init",
            "--dir",
            dir,
            "--node",
            "1=127.0.0.1:7100,127.0.0.1:7101",
            "--key",
            "k1:eth2",
        ],
        0,
    );
    assert_eq!(
        err,
        "warning: --key wrote 1 secret key(s) in PLAINTEXT (mode 0600) to every node's keys/ \
         directory: development only. In production, generate or import keys in the cluster \
         (`signerctl key generate|import`), sealed under a KMS KEK.\n"
    );
}
