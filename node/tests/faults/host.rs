//! Host-level faults on a node process: SIGSTOP/SIGCONT, a data directory on a small tmpfs that
//! is filled and freed, and slow `fsync`/`fdatasync` by `strace` attached to the running node
//! (syscall fault injection, `delay_enter`), detached when the fault is healed.
//!
//! Owns: the mounts (unmounted, lazily, on drop, even on panic) and the strace processes (tied
//! to the test process, stopped on drop). Must not: change the product, its config, or any
//! file of the node other than the filler file it writes beside the node's databases.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::support::{spawn_tied, Cluster};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

/// The pid of node `id`'s process (panics when it is not running).
pub fn pid(cluster: &Cluster, id: u64) -> i32 {
    cluster
        .node(id)
        .child
        .lock()
        .unwrap()
        .as_ref()
        .unwrap()
        .id() as i32
}

pub fn signal(cluster: &Cluster, id: u64, sig: libc::c_int) {
    let pid = pid(cluster, id);
    // A plain kill(2) on our own child; no memory is shared.
    #[allow(unsafe_code)]
    let r = unsafe { libc::kill(pid, sig) };
    assert_eq!(
        r,
        0,
        "kill({pid}, {sig}): {}",
        std::io::Error::last_os_error()
    );
}

/// Whether node `id`'s process has exited (reaped here; the cluster then counts it as down).
pub fn exited(cluster: &Cluster, id: u64) -> Option<std::process::ExitStatus> {
    let mut slot = cluster.node(id).child.lock().unwrap();
    let status = slot.as_mut()?.try_wait().unwrap()?;
    *slot = None;
    Some(status)
}

/// Whether this process may mount (tmpfs) and ptrace (strace): root.
pub fn privileged() -> bool {
    #[allow(unsafe_code)]
    let euid = unsafe { libc::geteuid() };
    euid == 0
}

/// The tmpfs mounts of a run: one per node data directory, each `size` bytes.
#[derive(Default)]
pub struct Mounts {
    points: Mutex<Vec<PathBuf>>,
}

impl Mounts {
    /// Mount a tmpfs of `size_mb` MiB at `dir` (created).
    pub fn mount(&self, dir: &Path, size_mb: u64) {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mb}m,mode=0700")])
            .arg("tmpfs")
            .arg(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mount tmpfs at {}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        self.points.lock().unwrap().push(dir.to_owned());
    }
}

impl Drop for Mounts {
    fn drop(&mut self) {
        for dir in self.points.lock().unwrap().drain(..) {
            // Lazy: the nodes may still hold files there; the tmpfs goes when they exit.
            let _ = Command::new("umount").arg("-l").arg(&dir).status();
            // The cluster's temp dir could not remove the mount point while it was mounted.
            for d in dir.ancestors().take(3) {
                let _ = std::fs::remove_dir(d);
            }
        }
    }
}

/// The filler file in a data directory.
fn filler(data_dir: &Path) -> PathBuf {
    data_dir.join("faults-filler")
}

/// Write a filler file into `data_dir` until the file system is full; returns the bytes written.
pub fn fill(data_dir: &Path) -> u64 {
    let mut f = std::fs::File::create(filler(data_dir)).unwrap();
    let chunk = vec![0xA5u8; 64 * 1024];
    let mut written = 0u64;
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(e) => panic!("filling {}: {e}", data_dir.display()),
        }
    }
    // Also the last page-sized pieces, so nothing is left for a node's next write.
    let small = [0xA5u8; 512];
    while let Ok(n) = f.write(&small) {
        if n == 0 {
            break;
        }
        written += n as u64;
    }
    written
}

/// Remove the filler file.
pub fn free(data_dir: &Path) {
    std::fs::remove_file(filler(data_dir)).unwrap();
}

/// `strace` attached to a running node, delaying every `fsync` and `fdatasync` (what redb calls
/// to make a commit durable) by `delay` on entry. Detached on drop.
pub struct SlowFsync {
    strace: Option<Child>,
}

impl SlowFsync {
    pub fn attach(cluster: &Cluster, id: u64, delay: Duration) -> SlowFsync {
        let pid = pid(cluster, id);
        let mut command = Command::new("strace");
        command
            .args([
                "-f",
                "-qq",
                "-o",
                "/dev/null",
                "-e",
                "trace=fsync,fdatasync",
            ])
            .arg("-e")
            .arg(format!(
                "inject=fsync,fdatasync:delay_enter={}",
                delay.as_micros()
            ))
            .arg("-p")
            .arg(pid.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let child =
            spawn_tied(command, &[]).expect("strace (apt package strace) must be installed");
        SlowFsync {
            strace: Some(child),
        }
    }

    /// Detach (strace detaches from every thread on SIGTERM) and wait for strace to exit.
    pub fn detach(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.strace.take() {
            #[allow(unsafe_code)]
            unsafe {
                libc::kill(child.id() as i32, libc::SIGTERM);
            }
            let _ = child.wait();
        }
    }
}

impl Drop for SlowFsync {
    fn drop(&mut self) {
        self.stop();
    }
}
