//! The `signer` binary the CLI tests start nodes from (dev clusters, `signer demo`): the one
//! next to `signerctl` in this target directory, rebuilt when it is missing or older than the
//! node's sources, so a test never runs a stale node.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::SystemTime;

fn signerctl_exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_signerctl"))
}

/// The `signer` binary next to `signerctl`, current with the node's sources. `cargo test
/// --workspace` and `cargo nextest run --workspace` (the test command) build it with the
/// workspace's feature set, so it is normally used as it is. It is built here when it is
/// missing (e.g. `cargo test -p signerctl` in a fresh target dir) or older than any source file
/// of the crates it is made of (a node changed since the last workspace build): a test never
/// runs a stale node. (Building it unconditionally would rebuild the AWS SDK with another
/// feature set, for minutes, when nothing changed.)
pub fn signer_exe() -> &'static Path {
    static EXE: OnceLock<PathBuf> = OnceLock::new();
    EXE.get_or_init(|| {
        let exe = signerctl_exe().with_file_name("signer");
        if stale(&exe) {
            build_signer();
        }
        assert!(
            !stale(&exe),
            "{} is missing or older than the node's sources",
            exe.display()
        );
        exe
    })
}

/// Whether `exe` is missing or older than the newest source file of the workspace crates the
/// `signer` binary is built from.
fn stale(exe: &Path) -> bool {
    let Ok(built) = exe.metadata().and_then(|m| m.modified()) else {
        return true;
    };
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    ["node", "core", "client", "eth2", "proto"]
        .iter()
        .filter_map(|dir| newest_mtime(&workspace.join(dir)))
        .any(|changed| changed > built)
}

/// The newest modification time of the source files under `dir` (skipping `tests`, which the
/// binary is not built from).
fn newest_mtime(dir: &Path) -> Option<SystemTime> {
    let mut newest = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let time = if path.is_dir() {
            if name == "tests" || name == "target" || name == "proptest-regressions" {
                continue;
            }
            newest_mtime(&path)
        } else {
            entry.metadata().and_then(|m| m.modified()).ok()
        };
        newest = newest.max(time);
    }
    newest
}

/// `cargo build -p signer-node --bin signer` into the target directory and profile `signerctl` was
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
        "signer-node",
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
        "cargo build -p signer-node --bin signer failed"
    );
}
