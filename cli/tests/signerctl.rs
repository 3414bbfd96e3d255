//! The operator commands end to end, as a user runs them: the real `signer` and `signerctl`
//! binaries against a real 3-node dev cluster on free loopback ports — up, key list, sign,
//! re-sign, a refused conflicting sign, eth2, kill the leader, down (unavailable), up again with
//! the data kept (the conflict still refused), down.
//!
//! Owns: nothing but this flow. Must not: leave node processes behind (a guard runs
//! `dev-cluster down` when dropped) or use fixed ports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const C1: &str = "0x1111111111111111111111111111111111111111111111111111111111111111";
const C2: &str = "0x2222222222222222222222222222222222222222222222222222222222222222";
const ROOT: &str = "0x3333333333333333333333333333333333333333333333333333333333333333";
const C4: &str = "0x4444444444444444444444444444444444444444444444444444444444444444";

fn signerctl_exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_signerctl"))
}

/// The `signer` binary next to `signerctl`, built (once per test process) so that it is
/// present and current: `cargo test --workspace` and `cargo nextest run --workspace` build it
/// already (then this is a no-op of a fraction of a second), but `cargo test -p signerctl` and
/// `cargo nextest run -p signerctl` do not, and a binary left from an earlier build may be stale.
fn signer_exe() -> &'static Path {
    static EXE: OnceLock<PathBuf> = OnceLock::new();
    EXE.get_or_init(|| {
        build_signer();
        let exe = signerctl_exe().with_file_name("signer");
        assert!(exe.exists(), "no signer binary at {}", exe.display());
        exe
    })
}

/// `cargo build -p signer --bin signer` into the target directory and profile `signerctl` was
/// built in.
fn build_signer() {
    let profile_dir = signerctl_exe().parent().unwrap();
    let profile = match profile_dir.file_name().unwrap().to_str().unwrap() {
        "debug" => "dev",
        other => other,
    };
    let mut target_dir = profile_dir.parent().unwrap();
    let mut cargo = Command::new(env!("CARGO"));
    cargo.args([
        "build",
        "-p",
        "signer",
        "--bin",
        "signer",
        "--profile",
        profile,
    ]);
    if !target_dir.join("CACHEDIR.TAG").exists() {
        // target/<triple>/<profile>: built with --target.
        cargo.arg("--target").arg(target_dir.file_name().unwrap());
        target_dir = target_dir.parent().unwrap();
    }
    // Without the variables Cargo sets for this test process: build scripts that watch one
    // (ring watches CARGO_MANIFEST_DIR) would otherwise rebuild for this call and again for the
    // next ordinary `cargo build`.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        let set_by_cargo = [
            "CARGO_MANIFEST_DIR",
            "CARGO_MANIFEST_PATH",
            "CARGO_CRATE_NAME",
            "CARGO_BIN_NAME",
            "CARGO_PRIMARY_PACKAGE",
            "CARGO_TARGET_TMPDIR",
            "CARGO_RUSTC_CURRENT_DIR",
        ]
        .contains(&name.as_ref())
            || name.starts_with("CARGO_PKG_")
            || name.starts_with("CARGO_BIN_EXE_");
        if set_by_cargo {
            cargo.env_remove(name.as_ref());
        }
    }
    cargo
        .arg("--target-dir")
        .arg(target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    let status = cargo.status().expect("running cargo build");
    assert!(
        status.success(),
        "cargo build -p signer --bin signer failed"
    );
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

/// A free range of 6 consecutive loopback ports, below the ephemeral range.
fn free_base_port() -> u16 {
    'search: for _ in 0..200 {
        let base = (10_000 + random() % 22_000) as u16 & !1;
        for port in base..base + 6 {
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
                continue 'search;
            }
        }
        return base;
    }
    panic!("no 6 consecutive free ports on 127.0.0.1");
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

/// `sign` an eth2 block, with `--dir` after the subcommand.
fn eth2_block(slot: &str, root: &str, dir: &str) -> Vec<String> {
    [
        "sign",
        "--key",
        "demo-eth2",
        "--profile",
        "eth2",
        "--kind",
        "block",
        "--slot",
        slot,
        "--signing-root",
        root,
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
