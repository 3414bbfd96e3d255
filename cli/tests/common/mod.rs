//! The PIV emulator harness shared by the YubiKey tests: start `tests/fixtures/piv_emulator.py`
//! as the card in pcscd's vpcd reader, wait until pcscd powered it, open it with the real
//! `yubikey` crate. One reader, so one card at a time (a process-wide lock); a test "swaps
//! cards" by dropping one emulator and starting another with another state file.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use signerctl::piv;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{mpsc, Mutex, MutexGuard};
use std::time::Duration;

const PCSCD_SOCKET: &str = "/run/pcscd/pcscd.comm";

static READER: Mutex<()> = Mutex::new(());

/// A running emulated card; stops (and, for a temporary one, deletes its directory) on drop.
pub struct Emulator {
    child: Child,
    stdin: Option<ChildStdin>,
    /// Where the test root (`test-root.pem`) is.
    pub out_dir: PathBuf,
    temporary: bool,
    _turn: MutexGuard<'static, ()>,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        drop(self.stdin.take());
        for _ in 0..50 {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if self.temporary {
            let _ = std::fs::remove_dir_all(&self.out_dir);
        }
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A fresh card with its own temporary test root, named `name`.
pub fn start_temporary(name: &str, serial: u32) -> Emulator {
    let dir = std::env::temp_dir().join(format!("piv-emulator-{name}-{}", std::process::id()));
    let mut e = start(serial, &dir, None);
    e.temporary = true;
    e
}

/// A card with serial `serial` whose test root lives in `out_dir` (shared by every card of a
/// test) and whose keys persist in `state_file`, if given.
pub fn start(serial: u32, out_dir: &Path, state_file: Option<&Path>) -> Emulator {
    let turn = READER.lock().unwrap_or_else(|e| e.into_inner());
    assert!(
        Path::new(PCSCD_SOCKET).exists(),
        "pcscd is not running ({PCSCD_SOCKET} is missing): run ./test.sh, which installs \
         pcscd + vsmartcard-vpcd and starts pcscd"
    );
    let root = workspace_root();
    let python = root.join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run ./test.sh to create the venv with `cryptography`",
        python.display()
    );
    let mut command = Command::new(python);
    command
        .arg(root.join("tests/fixtures/piv_emulator.py"))
        .args(["--ready", "--serial", &serial.to_string(), "--out-dir"])
        .arg(out_dir);
    if let Some(state) = state_file {
        command.arg("--state-file").arg(state);
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tests/fixtures/piv_emulator.py");
    let stdin = child.stdin.take();
    let stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.trim() == "ready" {
                let _ = tx.send(());
            }
        }
    });
    let mut emulator = Emulator {
        child,
        stdin,
        out_dir: out_dir.to_owned(),
        temporary: false,
        _turn: turn,
    };
    if rx.recv_timeout(Duration::from_secs(30)).is_err() {
        let _ = emulator.child.kill();
        let mut err = String::new();
        let _ = stderr.read_to_string(&mut err);
        panic!(
            "the PIV emulator did not become ready within 30 s (is pcscd running with the vpcd \
             driver? run ./test.sh). Emulator stderr:\n{err}"
        );
    }
    std::thread::spawn(move || {
        // Keep draining stderr so the emulator never blocks on a full pipe.
        let _ = std::io::copy(&mut stderr, &mut std::io::sink());
    });
    emulator
}

/// The test root of `out_dir`, DER (from its `test-root.pem`).
pub fn test_root(out_dir: &Path) -> Vec<u8> {
    use base64::Engine as _;
    let pem = std::fs::read_to_string(out_dir.join("test-root.pem")).unwrap();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap()
}

/// Open the card with `serial`. pcscd notices a new card by polling; opening right after
/// "ready" can still race it.
pub fn open_card(serial: u32) -> piv::Piv {
    let mut last = None;
    for _ in 0..50 {
        match piv::open(Some(serial)) {
            Ok(card) => return card,
            Err(e) => last = Some(e),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("cannot open the virtual YubiKey: {last:?}");
}
