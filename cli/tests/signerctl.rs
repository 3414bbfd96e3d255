//! The operator commands end to end, as a user runs them: the real `signer` and `signerctl`
//! binaries against a real 3-node dev cluster on free loopback ports — up, key list, sign,
//! re-sign, a refused conflicting sign, eth2, kill the leader, down (unavailable), up again with
//! the data kept (the conflict still refused), down. The key lifecycle as an admin (each change
//! proposed and approved at once, threshold 1): generate, registry, sign, disable, enable,
//! delete, imports (raw secrets, an EIP-2335 keystore), KEK rotation, and a non-admin identity
//! turned away. And the admin plane: client grants, pause/resume, enrolling a second admin,
//! 2-of-2 approvals (pending, approve, no replay), and membership changes not supported yet.
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
    let (_, err) = ctl(&raw, 1);
    assert!(
        err.contains("PermissionDenied: eth2: raw signing roots are accepted only from a client whose grant trusts them"),
        "{err}"
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
    let (_, err) = ctl(&block_with(dir, "gen-eth2", 11), 2);
    assert!(err.contains("no active key"), "{err}");
    assert_eq!(registry_entry(dir, "gen-eth2")["state"], "disabled");
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
    let (_, err) = ctl(&block_with(dir, "gen-eth2", 13), 2);
    assert!(err.contains("no active key"), "{err}");
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

    // Membership changes are visibly not supported; the members are listed.
    let (_, err) = admin(dir, &["node", "add", "--id", "4"], 2);
    assert!(err.contains("not supported yet"), "{err}");
    let (_, err) = admin(dir, &["node", "remove", "3"], 2);
    assert!(err.contains("not supported yet"), "{err}");
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

    // Pause: signing is refused, saying so; resume: it signs again.
    let (out, _) = admin(dir, &["pause"], 0);
    assert!(out.contains("pause all signing"), "{out}");
    let (out, _) = admin(dir, &["admin", "list"], 0);
    assert!(out.contains("PAUSED"), "{out}");
    let mut paused = block_with(dir, "demo-eth2", 20);
    paused.extend(["--timeout", "2"].map(String::from));
    let (out, err) = ctl(&paused, 4);
    assert!(out.is_empty(), "{out:?}");
    assert!(err.contains("paused"), "{err}");
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
