//! Process memory hygiene for a node that holds plaintext keys: no core dumps, locked pages.
//!
//! Owns: [`harden_process`] (core dumps off, not ptrace-attachable by other unprivileged
//! processes), [`lock_memory`] (keep a secret's pages out of swap where the limits permit), and
//! [`core_dumps_disabled`] for health reports. One of three modules of the crate allowed to use
//! `unsafe` (the others are `node::inherited`, for inherited sockets, and `allocator`): six
//! `unsafe` blocks, each one `libc` call with its `// SAFETY:` argument (`setrlimit` and
//! `getrlimit` of `RLIMIT_CORE`, `prctl` to set and to read the dumpable flag, `mlock`, and
//! `sysconf` for the page size).
//! Must not: allocate, hold or print secrets itself, or fail the node where the system merely
//! does not permit locking memory (that is a warning).
//!
//! To ensure correctness:
//! - [`harden_process`] sets `RLIMIT_CORE` to 0 for both soft and hard limits (the process
//!   cannot raise it again) and `PR_SET_DUMPABLE` to 0 (Linux), and reports failure as an error
//!   so the node can refuse to start;
//! - [`lock_memory`] locks whole pages covering the buffer and never unlocks them (pages may be
//!   shared with other secrets; `mlock` does not nest); it warns once when locking is refused
//!   (`RLIMIT_MEMLOCK`, missing capability) and keeps going.
#![allow(unsafe_code)]

use std::sync::atomic::{AtomicBool, Ordering};

/// Errors hardening the process.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HygieneError {
    /// `setrlimit(RLIMIT_CORE, 0)` failed.
    #[error("cannot set RLIMIT_CORE to 0: {0}")]
    CoreLimit(std::io::Error),
    /// `prctl(PR_SET_DUMPABLE, 0)` failed.
    #[error("cannot clear the dumpable flag (PR_SET_DUMPABLE): {0}")]
    Dumpable(std::io::Error),
}

/// Turns core dumps off for this process: `RLIMIT_CORE` 0 (soft and hard) and, on Linux, not
/// dumpable (which also keeps other unprivileged processes from attaching with ptrace or reading
/// `/proc/<pid>/mem`). Call once at node start, before any secret is loaded.
pub fn harden_process() -> Result<(), HygieneError> {
    let zero = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `setrlimit` reads one `rlimit` struct through a pointer to a live, initialized
    // local; it has no other memory effects.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_CORE, &zero) };
    if rc != 0 {
        return Err(HygieneError::CoreLimit(std::io::Error::last_os_error()));
    }
    #[cfg(target_os = "linux")]
    {
        // SAFETY: `PR_SET_DUMPABLE` takes one integer argument (0) and touches no memory of
        // ours; every variadic argument is passed as the `unsigned long` prctl reads.
        let rc = unsafe { libc::prctl(libc::PR_SET_DUMPABLE, ZERO, ZERO, ZERO, ZERO) };
        if rc != 0 {
            return Err(HygieneError::Dumpable(std::io::Error::last_os_error()));
        }
    }
    Ok(())
}

/// True when this process will not write a core dump: `RLIMIT_CORE` is 0 and, on Linux, the
/// process is not dumpable.
pub fn core_dumps_disabled() -> bool {
    let limit_zero = core_limit().is_some_and(|(soft, _)| soft == 0);
    #[cfg(target_os = "linux")]
    {
        limit_zero && dumpable() == Some(false)
    }
    #[cfg(not(target_os = "linux"))]
    {
        limit_zero
    }
}

/// The zero argument of `prctl`, which reads its variadic arguments as `unsigned long`.
#[cfg(target_os = "linux")]
const ZERO: libc::c_ulong = 0;

static LOCK_WARNED: AtomicBool = AtomicBool::new(false);

/// Lock the pages holding `value` (e.g. a key type whose secret scalar is stored inline; for a
/// trait object, the concrete value it points to), with the same warn-don't-fail behaviour as
/// [`lock_memory`].
pub fn lock_value<T: ?Sized>(value: &T) -> bool {
    lock_region(
        value as *const T as *const u8 as usize,
        std::mem::size_of_val(value),
    )
}

/// Locks the pages holding `buf` in RAM (no swap) where permitted. Returns whether they are
/// locked; on refusal logs one warning per process and returns false — never an error.
/// Keep the buffer at a stable address (e.g. boxed): the lock covers where it is now.
pub fn lock_memory(buf: &[u8]) -> bool {
    lock_region(buf.as_ptr() as usize, buf.len())
}

/// Lock the pages of the live region `[start, start + len)` of this process.
fn lock_region(start: usize, len: usize) -> bool {
    if len == 0 {
        return true;
    }
    let page = page_size();
    let aligned = start & !(page - 1);
    let Some(end) = start.checked_add(len) else {
        return false;
    };
    let len = end - aligned;
    // SAFETY: `mlock` only changes the residency of the pages in
    // [aligned, aligned + len), which all belong to this process: they cover a live borrowed
    // value or slice (see the callers), rounded out to page boundaries. It reads and writes no
    // memory.
    let rc = unsafe { libc::mlock(aligned as *const libc::c_void, len) };
    if rc == 0 {
        return true;
    }
    let err = std::io::Error::last_os_error();
    if !LOCK_WARNED.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            error = %err,
            "cannot lock key memory (mlock); secrets may be swapped to disk: raise \
             RLIMIT_MEMLOCK (ulimit -l) or grant CAP_IPC_LOCK"
        );
    } else {
        tracing::debug!(error = %err, "mlock refused");
    }
    false
}

fn page_size() -> usize {
    // SAFETY: `sysconf` reads a system constant; no memory of ours is involved.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    match usize::try_from(size) {
        Ok(size) if size.is_power_of_two() => size,
        _ => 4096,
    }
}

/// `RLIMIT_CORE` (soft, hard), if it can be read.
fn core_limit() -> Option<(u64, u64)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `getrlimit` writes one `rlimit` struct through a pointer to a live local.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_CORE, &mut limit) };
    (rc == 0).then_some((limit.rlim_cur, limit.rlim_max))
}

/// The dumpable flag (`PR_GET_DUMPABLE`), if it can be read.
#[cfg(target_os = "linux")]
fn dumpable() -> Option<bool> {
    // SAFETY: `PR_GET_DUMPABLE` takes no arguments, touches no memory and returns the flag.
    let rc = unsafe { libc::prctl(libc::PR_GET_DUMPABLE, ZERO, ZERO, ZERO, ZERO) };
    (rc >= 0).then_some(rc != 0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    const CHILD_ENV: &str = "QUORUM_SIGNER_HYGIENE_CHILD";
    const CHILD_MARKER: &str = "hygiene-child: core dumps off";
    const TEST_NAME: &str = "custody::hygiene::tests::harden_process_disables_core_dumps";

    /// Runs `harden_process` in a child process (this test binary, re-run with an environment
    /// variable) so the test process itself keeps its limits.
    #[test]
    fn harden_process_disables_core_dumps() {
        if std::env::var_os(CHILD_ENV).is_some() {
            harden_process().unwrap();
            assert_eq!(core_limit(), Some((0, 0)));
            #[cfg(target_os = "linux")]
            {
                assert_eq!(dumpable(), Some(false));
                let status = std::fs::read_to_string("/proc/self/limits").unwrap();
                let core = status
                    .lines()
                    .find(|l| l.starts_with("Max core file size"))
                    .unwrap();
                assert!(
                    core.split_whitespace().filter(|w| *w == "0").count() == 2,
                    "{core}"
                );
            }
            assert!(core_dumps_disabled());
            println!("{CHILD_MARKER}");
            return;
        }
        let exe = std::env::current_exe().unwrap();
        let out = std::process::Command::new(exe)
            .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stdout.contains(CHILD_MARKER),
            "child failed ({}):\n{stdout}\n{stderr}",
            out.status
        );
    }

    #[test]
    fn lock_memory_never_fails_hard() {
        let secret = Box::new([7u8; 64]);
        // Locked or not depends on RLIMIT_MEMLOCK here; either way it returns, never panics.
        let _ = lock_memory(&secret[..]);
        assert!(lock_memory(&[]));
    }
}
