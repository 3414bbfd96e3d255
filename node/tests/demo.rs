//! `signer demo` run once as a user runs it: the whole story against a real 3-node cluster.
//!
//! Owns: checking the demo's exit code, its key phrases, and that it cleaned up after itself.
//! Must not: depend on timings (they are printed, never asserted).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

#[test]
fn demo_story_runs() {
    let out = Command::new(env!("CARGO_BIN_EXE_signer"))
        .arg("demo")
        .output()
        .expect("running signer demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "signer demo failed ({:?})\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    for phrase in [
        "1. Cluster up",
        "2. Leader elected",
        "leads, elected",
        "3. Keys loaded",
        "demo-espresso",
        "BLS_VER_KEY~",
        "demo-eth2",
        "4. Signing",
        "espresso quorum vote  view 1",
        "->  BLS_SIG~",
        "eth2 block proposal   slot 1",
        "5. A double sign is refused",
        "refused: equivocation:",
        "the leader, killed with SIGKILL",
        "7. Failover",
        "signing resumed",
        "8. The same double sign, refused again on the new leader",
        "re-signed, same signature",
        "9. Audit chain verified on all nodes",
        "the same head",
        "10. Cluster down",
        "The story held",
    ] {
        assert!(stdout.contains(phrase), "missing {phrase:?} in:\n{stdout}");
    }
    assert_eq!(
        stdout.matches("refused: equivocation:").count(),
        2,
        "the double sign is refused before and after failover:\n{stdout}"
    );
    // The temporary cluster directory is gone, so its nodes were stopped and nothing is left.
    let dir = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("cluster dev-"))
        .and_then(|l| l.split(" in ").nth(1))
        .and_then(|l| l.split(", ports").next())
        .expect("the demo names its cluster directory");
    assert!(!Path::new(dir).exists(), "{dir} was left behind");
}
