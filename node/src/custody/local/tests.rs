//! LocalKek tests: file creation and checks, wrapping, redaction, the development warning.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Mutex};

fn ctx(key: &str) -> EncryptionContext {
    EncryptionContext::validator_key("dev", key).unwrap()
}

fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

fn problem(err: CustodyError) -> KeyFileProblem {
    match err {
        CustodyError::KeyFile { reason, .. } => reason,
        other => panic!("not a key file error: {other}"),
    }
}

#[test]
fn create_writes_32_bytes_mode_0600_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kek.bin");
    let kek = LocalKek::create(&path).unwrap();
    assert_eq!(mode_of(&path), 0o600);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 32);
    assert_eq!(kek.path(), path);
    let before = std::fs::read(&path).unwrap();
    assert!(matches!(
        problem(LocalKek::create(&path).unwrap_err()),
        KeyFileProblem::Exists
    ));
    assert_eq!(std::fs::read(&path).unwrap(), before, "file unchanged");
    let reopened = LocalKek::open(&path).unwrap();
    assert_eq!(reopened.descriptor(), kek.descriptor());
    assert_eq!(kek.descriptor().backend, BackendKind::Local);
    assert_eq!(
        kek.descriptor().key_id.len(),
        16,
        "8 bytes of fingerprint in hex"
    );
    assert!(kek.descriptor().to_string().starts_with("local:"));
    let other = LocalKek::create(&dir.path().join("other.bin")).unwrap();
    assert_ne!(other.descriptor(), kek.descriptor());
}

#[test]
fn open_refuses_modes_wider_than_0600() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kek.bin");
    LocalKek::create(&path).unwrap();
    for mode in [0o644, 0o640, 0o604, 0o700, 0o660, 0o4600] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        match problem(LocalKek::open(&path).unwrap_err()) {
            KeyFileProblem::TooOpen(m) => assert_eq!(m, mode),
            other => panic!("{mode:o}: {other}"),
        }
    }
    for mode in [0o600, 0o400] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        LocalKek::open(&path).unwrap();
    }
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let text = LocalKek::open(&path).unwrap_err().to_string();
    assert!(text.contains("644") && text.contains("chmod 600"), "{text}");
}

#[test]
fn open_refuses_wrong_length_missing_file_and_directory() {
    let dir = tempfile::tempdir().unwrap();
    for len in [0usize, 31, 33, 64] {
        let path = dir.path().join(format!("kek-{len}"));
        std::fs::write(&path, vec![7u8; len]).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        match problem(LocalKek::open(&path).unwrap_err()) {
            KeyFileProblem::WrongLength(n) => assert_eq!(n, len as u64),
            other => panic!("{len}: {other}"),
        }
    }
    assert!(matches!(
        problem(LocalKek::open(&dir.path().join("missing")).unwrap_err()),
        KeyFileProblem::Io(_)
    ));
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o700)).unwrap();
    assert!(matches!(
        problem(LocalKek::open(&sub).unwrap_err()),
        KeyFileProblem::NotAFile
    ));
}

#[tokio::test]
async fn wraps_bound_to_the_context() {
    let dir = tempfile::tempdir().unwrap();
    let kek = LocalKek::create(&dir.path().join("kek.bin")).unwrap();
    let dk = kek.generate_data_key(&ctx("k1")).await.unwrap();
    assert_eq!(dk.wrapped().len(), WRAPPED_LEN);
    let back = kek.unwrap_data_key(dk.wrapped(), &ctx("k1")).await.unwrap();
    assert_eq!(&back[..], &dk.plaintext()[..]);
    let err = kek
        .unwrap_data_key(dk.wrapped(), &ctx("k2"))
        .await
        .unwrap_err();
    assert!(matches!(err, CustodyError::LocalUnwrap { .. }), "{err}");
    // Another KEK file cannot unwrap it.
    let other = LocalKek::create(&dir.path().join("other.bin")).unwrap();
    assert!(other
        .unwrap_data_key(dk.wrapped(), &ctx("k1"))
        .await
        .is_err());
    // Wrong lengths are malformed, not a crash.
    for len in [0, WRAPPED_LEN - 1, WRAPPED_LEN + 1] {
        let bytes = vec![0u8; len];
        assert!(matches!(
            kek.unwrap_data_key(&bytes, &ctx("k1")).await,
            Err(CustodyError::Malformed { .. })
        ));
    }
}

#[test]
fn debug_is_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kek.bin");
    let kek = LocalKek::create(&path).unwrap();
    let key_hex = hex::encode(std::fs::read(&path).unwrap());
    let text = format!("{kek:?}");
    assert!(text.contains("<redacted>"), "{text}");
    assert!(!text.contains(&key_hex), "{text}");
    assert!(!text.contains(&key_hex[..16]), "{text}");
}

/// Collects formatted log output.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn open_warns_loudly_without_logging_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kek.bin");
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        LocalKek::create(&path).unwrap();
        LocalKek::open(&path).unwrap();
    });
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    // Two warnings from the KEK (create, open); a once-per-process mlock warning may also land
    // here, depending on which test first meets the memlock limit.
    let kek_warnings = logs
        .lines()
        .filter(|l| l.contains("WARN") && !l.contains("mlock"))
        .count();
    assert_eq!(kek_warnings, 2, "{logs}");
    assert!(logs.contains("development and demos only"), "{logs}");
    assert!(logs.contains("NOT for production"), "{logs}");
    let key = std::fs::read(&path).unwrap();
    let hex_key = hex::encode(&key);
    use base64::Engine as _;
    let b64_key = base64::engine::general_purpose::STANDARD.encode(&key);
    assert!(
        !logs.contains(&hex_key) && !logs.contains(&b64_key),
        "{logs}"
    );
}
