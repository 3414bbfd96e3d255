//! Node processes seen through /proc and signalled with the system's `kill` program.
//!
//! Owns: recognizing a node's process by its command line, waiting for it to exit, sending it
//! signals, and reading the end of its log (since its last start). Must not: start processes (the cluster does) or
//! signal a process whose command line does not name the node's config.

use super::{io, DevClusterError};
use std::path::Path;
use std::time::{Duration, Instant};

/// Whether `pid` is alive and its command line names `config` (so it is that node).
pub(super) fn is_node_process(pid: u32, config: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let want = config.as_os_str().as_encoded_bytes();
    cmdline.split(|&b| b == 0).any(|arg| arg == want)
}

/// Poll until the node process is gone; true if it went within `timeout`.
pub(super) fn wait_exit(pid: u32, config: &Path, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if !is_node_process(pid, config) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Send `SIG<name>` with the system's `kill` program.
pub(super) fn signal(pid: u32, name: &str) -> Result<(), DevClusterError> {
    let kill = Path::new("kill");
    // A non-zero exit means the process is already gone, which is what the callers want.
    std::process::Command::new(kill)
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .stderr(std::process::Stdio::null())
        .status()
        .map_err(io(kill))?;
    Ok(())
}

/// The line a node's log gets each time the cluster starts it: the log is appended to, so
/// what one start printed is what follows the last such line.
pub(super) fn start_mark(id: u64) -> String {
    format!("-- signer dev-cluster: starting node-{id} --")
}

/// The last `lines` lines a text file holds after its last line starting with `mark` (or
/// from its start when it has none; empty if unreadable): what the node printed since it was
/// last started, not again what an earlier start printed.
pub(super) fn tail(path: &Path, mark: &str, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    let since = all
        .iter()
        .rposition(|l| l.starts_with(mark))
        .map_or(0, |at| at + 1);
    let all = &all[since..];
    all[all.len().saturating_sub(lines)..].join("\n")
}
