//! The AWS KMS backend with the real AWS SDK against a real local KMS server (moto).
//!
//! Each test starts its own `moto_server` on a free loopback port from the repository's
//! `.venv` (made by `./test.sh`), creates KMS keys there with the SDK, and talks to it through
//! `KekConfig::AwsKms { endpoint_url, .. }` with credentials from the standard AWS chain
//! (environment variables). A missing venv fails the tests: they are never skipped.
//! Moto does not enforce disabled keys; that path is tested with aws-smithy-mocks in
//! `node/src/custody/aws/tests.rs`.
//!
//! No test here measures time: a KMS that is down is shown to fail on the refused connection
//! (not on a timeout), and a silent KMS is shown to be retried and cut off by counting the
//! requests it received. Also here, because moto and a node are the processes tests start: a
//! test's processes die with the test process, even when it is killed with SIGKILL.
#![cfg(feature = "aws-kms")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use signer_node::custody::aws::{ATTEMPT_TIMEOUT, OPERATION_TIMEOUT};
use signer_node::custody::{
    seal, unseal, unseal_in, BackendKind, CustodyError, EncryptionContext, Kek, KekConfig, KekRef,
    KmsError, OpenedDataKeys, SealedKey, SharedSealer, WrappedDataKey,
};
use signer_node::metrics::{MeteredKek, Metrics};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::moto::{standard_chain_credentials, Moto, REGION};
use support::{spawn_tied, Cluster};

mod scrape;
mod support;

const SECRET: &[u8] = b"validator secret: 32 bytes long!";

fn ctx(cluster: &str, key: &str) -> EncryptionContext {
    EncryptionContext::validator_key(cluster, key).unwrap()
}

fn kms_error(err: CustodyError) -> KmsError {
    match err {
        CustodyError::Kms(kms) => kms,
        other => panic!("not a KMS error: {other}"),
    }
}

#[tokio::test]
async fn seal_and_unseal_through_kms() {
    let moto = Moto::start();
    let key_id = moto.create_key().await;
    let kek = moto.kek(&key_id).await;
    let c = ctx("dev", "validator-1");
    let sealed = seal(&kek, &c, SECRET).await.unwrap();
    assert_eq!(
        sealed.kek,
        KekRef {
            backend: BackendKind::AwsKms,
            key_id: key_id.clone()
        }
    );
    assert!(!sealed
        .wrapped_dek
        .windows(SECRET.len())
        .any(|w| w == SECRET));
    assert_eq!(
        unseal(&kek, &c, &sealed).await.unwrap().expose_secret(),
        SECRET
    );

    // The replicated form, read back by another node (its own client, same KMS key).
    let json = serde_json::to_string(&sealed).unwrap();
    let record: SealedKey = serde_json::from_str(&json).unwrap();
    let other_node = moto.kek(&key_id).await;
    assert_eq!(
        unseal(&other_node, &c, &record)
            .await
            .unwrap()
            .expose_secret(),
        SECRET
    );
}

#[tokio::test]
async fn kms_refuses_another_context() {
    let moto = Moto::start();
    let key_id = moto.create_key().await;
    let kek = moto.kek(&key_id).await;
    let sealed = seal(&kek, &ctx("dev", "validator-1"), SECRET)
        .await
        .unwrap();
    for wrong in [
        ctx("dev", "validator-2"),
        ctx("other-cluster", "validator-1"),
        EncryptionContext::new("dev", "validator-1", "admin-key").unwrap(),
    ] {
        let err = unseal(&kek, &wrong, &sealed).await.unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("wrong context or not our ciphertext"),
            "{text}"
        );
        assert!(!err.is_retryable());
        assert!(
            matches!(kms_error(err), KmsError::InvalidCiphertext { .. }),
            "{text}"
        );
    }
    // Another record's data key with this record's ciphertext: KMS unwraps it (right
    // context), the envelope refuses it.
    let other = seal(&kek, &ctx("dev", "validator-1"), b"another secret")
        .await
        .unwrap();
    let swapped = SealedKey {
        wrapped_dek: other.wrapped_dek,
        ..sealed
    };
    assert!(matches!(
        unseal(&kek, &ctx("dev", "validator-1"), &swapped).await,
        Err(CustodyError::Unauthentic { .. })
    ));
}

/// How many times a metered KEK was called for `op`.
fn kek_calls(metrics: &Metrics, op: &str) -> u64 {
    scrape::Scrape::parse(&metrics.encode().unwrap())
        .sum("signer_kms_call_seconds_count", &[("op", op)]) as u64
}

/// Fifty records sealed by one node's sealer cost one `GenerateDataKey`; another node opens
/// them all with one `Decrypt`. KMS itself binds the shared key to its context: it refuses it
/// for another cluster, and its bytes as a record's own data key.
#[tokio::test]
async fn shared_data_keys_through_kms() {
    let moto = Moto::start();
    let key_id = moto.create_key().await;
    let sealing_metrics = Arc::new(Metrics::new(1).unwrap());
    let sealing = MeteredKek::new(moto.kek(&key_id).await, sealing_metrics.clone());
    let sealer = SharedSealer::new();
    let secret = |i: usize| format!("validator secret {i:03}: 32 bytes").into_bytes();
    let mut records = Vec::new();
    for i in 0..50 {
        let c = ctx("dev", &format!("validator-{i}"));
        records.push((
            c.clone(),
            sealer.seal(&sealing, &c, &secret(i)).await.unwrap(),
        ));
    }
    assert_eq!(kek_calls(&sealing_metrics, "generate_data_key"), 1);
    assert!(records
        .iter()
        .all(|(_, r)| r.wrapped_dek == records[0].1.wrapped_dek));

    let opening_metrics = Arc::new(Metrics::new(2).unwrap());
    let other_node = MeteredKek::new(moto.kek(&key_id).await, opening_metrics.clone());
    let opened = OpenedDataKeys::new();
    for (i, (c, record)) in records.iter().enumerate() {
        let back = unseal_in(&opened, &other_node, c, record).await.unwrap();
        assert_eq!(back.expose_secret(), secret(i));
    }
    assert_eq!(kek_calls(&opening_metrics, "unwrap_data_key"), 1);

    // Another cluster's context: KMS refuses the shared key.
    let err = unseal(
        &other_node,
        &ctx("other-cluster", "validator-0"),
        &records[0].1,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(kms_error(err), KmsError::InvalidCiphertext { .. }),
        "another cluster"
    );
    // The shared key's KMS bytes as the record's own data key: KMS refuses them under the
    // record's context.
    let WrappedDataKey::Shared { wrapped, .. } = records[0].1.data_key().unwrap() else {
        panic!("a shared data key")
    };
    let own = SealedKey {
        wrapped_dek: wrapped.to_vec(),
        ..records[0].1.clone()
    };
    let err = unseal(&other_node, &records[0].0, &own).await.unwrap_err();
    assert!(
        matches!(kms_error(err), KmsError::InvalidCiphertext { .. }),
        "as a record's own key"
    );
}

#[tokio::test]
async fn another_kms_key_cannot_open_the_record() {
    let moto = Moto::start();
    let key_a = moto.create_key().await;
    let key_b = moto.create_key().await;
    let kek_a = moto.kek(&key_a).await;
    let kek_b = moto.kek(&key_b).await;
    let c = ctx("dev", "validator-1");
    let sealed = seal(&kek_a, &c, SECRET).await.unwrap();
    assert!(matches!(
        unseal(&kek_b, &c, &sealed).await,
        Err(CustodyError::KekMismatch { .. })
    ));
    // Relabelled to key B: KMS refuses to decrypt A's ciphertext with KeyId B.
    let relabelled = SealedKey {
        kek: kek_b.descriptor(),
        ..sealed
    };
    let err = unseal(&kek_b, &c, &relabelled).await.unwrap_err();
    assert!(matches!(err, CustodyError::Kms(_)), "{err}");
}

#[tokio::test]
async fn alias_works() {
    let moto = Moto::start();
    let key_id = moto.create_key().await;
    moto.create_alias("alias/quorum-signer-test", &key_id).await;
    let kek = moto.kek("alias/quorum-signer-test").await;
    let c = ctx("dev", "validator-1");
    let sealed = seal(&kek, &c, SECRET).await.unwrap();
    assert_eq!(sealed.kek.key_id, "alias/quorum-signer-test");
    assert_eq!(
        unseal(&kek, &c, &sealed).await.unwrap().expose_secret(),
        SECRET
    );
    // An alias that does not exist says so.
    let missing = moto.kek("alias/no-such-alias").await;
    let err = seal(&missing, &c, SECRET).await.unwrap_err();
    assert!(
        matches!(kms_error(err), KmsError::NotFound { .. }),
        "missing alias"
    );
}

#[tokio::test]
async fn kms_down_then_back() {
    const ALIAS: &str = "alias/quorum-signer-restart";
    let moto = Moto::start();
    let key_id = moto.create_key().await;
    moto.create_alias(ALIAS, &key_id).await;
    let kek = moto.kek(ALIAS).await;
    let c = ctx("dev", "validator-1");
    let sealed = seal(&kek, &c, SECRET).await.unwrap();

    // KMS stops (its port stays reserved, so connecting is refused): unwrapping fails as
    // "unreachable" on the refused connection, not by waiting for a timeout, and may be
    // retried.
    let port = moto.stop();
    let err = unseal(&kek, &c, &sealed).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    match kms_error(err) {
        KmsError::Unreachable {
            operation,
            key_id,
            detail,
        } => {
            assert_eq!((operation, key_id.as_str()), ("Decrypt", ALIAS));
            assert!(detail.contains("Connection refused"), "{detail}");
        }
        other => panic!("not unreachable: {other}"),
    }
    match kms_error(seal(&kek, &c, SECRET).await.unwrap_err()) {
        KmsError::Unreachable {
            operation, detail, ..
        } => {
            assert_eq!(operation, "GenerateDataKey");
            assert!(detail.contains("Connection refused"), "{detail}");
        }
        other => panic!("seal while down: {other}"),
    }

    // KMS returns on the same endpoint. Moto keeps no state across a restart, so the old key
    // is gone; a fresh key under the same alias serves the same (unchanged) KEK again.
    let moto = Moto::start_on(port).unwrap();
    let fresh = moto.create_key().await;
    moto.create_alias(ALIAS, &fresh).await;
    let again = seal(&kek, &c, SECRET).await.unwrap();
    assert_eq!(
        unseal(&kek, &c, &again).await.unwrap().expose_secret(),
        SECRET
    );
    // The record of the lost key now fails with a KMS refusal, not as unreachable: moto
    // answers AccessDeniedException for a ciphertext of a key it does not hold.
    let err = unseal(&kek, &c, &sealed).await.unwrap_err();
    assert!(!err.is_retryable(), "{err}");
    match kms_error(err) {
        KmsError::AccessDenied {
            operation,
            key_id,
            code,
        } => assert_eq!(
            (operation, key_id.as_str(), code.as_str()),
            ("Decrypt", ALIAS, "AccessDeniedException")
        ),
        other => panic!("old record after the restart: {other:?}"),
    }
}

/// A KMS endpoint that accepts connections, reads each request and never answers; sends the
/// `X-Amz-Target` of every request it reads (e.g. `TrentService.Decrypt`). Runs on the test's
/// runtime, so it ends with the test.
async fn silent_kms() -> (u16, tokio::sync::mpsc::UnboundedReceiver<String>) {
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (requests, received) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let requests = requests.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let target = head
                    .lines()
                    .filter_map(|line| line.split_once(':'))
                    .find(|(name, _)| name.eq_ignore_ascii_case("x-amz-target"))
                    .map(|(_, value)| value.trim().to_owned())
                    .unwrap_or_default();
                let _ = requests.send(target);
                // Hold the connection without answering until the client gives up on it.
                while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
            });
        }
    });
    (port, received)
}

#[tokio::test]
async fn unresponsive_kms_is_retried_then_cut_off() {
    let (port, mut received) = silent_kms().await;
    standard_chain_credentials();
    let kek = KekConfig::AwsKms {
        key_id: "alias/silent".into(),
        region: Some(REGION.into()),
        endpoint_url: Some(format!("http://127.0.0.1:{port}")),
    }
    .build()
    .await
    .unwrap();
    let err = kek
        .unwrap_data_key(&[0u8; 64], &ctx("dev", "validator-1"))
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
    // The operation timeout ended the call (the SDK's TimeoutError), not a connection error.
    match kms_error(err) {
        KmsError::Unreachable {
            operation,
            key_id,
            detail,
        } => assert_eq!(
            (operation, key_id.as_str(), detail),
            (
                "Decrypt",
                "alias/silent",
                format!("no answer within {} s", OPERATION_TIMEOUT.as_secs())
            )
        ),
        other => panic!("not unreachable: {other}"),
    }
    // Exactly two attempts reached the server: the first was abandoned after ATTEMPT_TIMEOUT
    // (3 s) and retried after the standard retry's backoff (at most 1 s for a first retry);
    // the second was cut off by OPERATION_TIMEOUT (5 s) before a third could start.
    assert!(ATTEMPT_TIMEOUT + Duration::from_secs(1) < OPERATION_TIMEOUT);
    assert!(ATTEMPT_TIMEOUT * 2 > OPERATION_TIMEOUT);
    let mut targets = Vec::new();
    for _ in 0..2 {
        let target = tokio::time::timeout(Duration::from_secs(10), received.recv())
            .await
            .expect("the silent KMS read two requests");
        targets.push(target.unwrap());
    }
    assert_eq!(targets, ["TrentService.Decrypt", "TrentService.Decrypt"]);
    assert!(received.try_recv().is_err(), "a third attempt");
}

/// Set in the environment of [`owner_of_processes`]'s process.
const OWNER_ROLE: &str = "QS_TEST_OWNER_OF_PROCESSES";

/// The state field and start time (in clock ticks since boot) of process `pid`, from
/// `/proc/<pid>/stat`; `None` when there is no such process.
fn proc_state(pid: u32) -> Option<(char, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid …": comm may hold spaces, so split after its closing parenthesis.
    let fields: Vec<&str> = stat[stat.rfind(')')? + 2..].split(' ').collect();
    Some((fields[0].chars().next()?, fields[19].parse().ok()?))
}

fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

/// Runs as the child process of `processes_started_by_a_test_die_with_it` only: starts moto
/// and a one-node cluster from a thread that then ends, checks that both still serve, prints
/// their pids and waits to be killed.
#[test]
#[ignore = "a helper process of processes_started_by_a_test_die_with_it"]
fn owner_of_processes() {
    if std::env::var_os(OWNER_ROLE).is_none() {
        return;
    }
    let (moto, cluster) = std::thread::spawn(|| {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let moto = Moto::start();
        let cluster = runtime.block_on(Cluster::start(1));
        (moto, cluster)
    })
    .join()
    .unwrap();
    // The thread that asked for them has ended (with its runtime and its Tokio workers); the
    // processes must not have ended with it.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        assert_eq!(cluster.wait_leader(Duration::from_secs(30)).await, 1);
        moto.create_key().await;
    });
    // The node serves on the four sockets support bound for it (client, peer, metrics,
    // Web3Signer), not on ports it bound itself.
    let log = cluster.log_of(1);
    assert_eq!(
        log.matches("listening on an inherited socket").count(),
        4,
        "{log}"
    );
    let node = cluster.node(1).child.lock().unwrap().as_ref().unwrap().id();
    println!("pids: node={node} moto={}", moto.pid());
    loop {
        std::thread::park();
    }
}

#[test]
fn processes_started_by_a_test_die_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let stderr_path = dir.path().join("owner.stderr");
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "owner_of_processes",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(OWNER_ROLE, "1")
        // Its temporary directories (cluster, moto) go in ours: killed, it cleans up nothing.
        .env("TMPDIR", dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr_path).unwrap());
    let mut owner = spawn_tied(command, &[]).unwrap();
    let stdout = owner.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            // The test harness may have printed the test's name on the same line.
            if let Some((_, pids)) = line.split_once("pids: ") {
                let _ = tx.send(pids.to_owned());
            }
        }
    });
    let Ok(pids) = rx.recv_timeout(Duration::from_secs(120)) else {
        let _ = owner.kill();
        let _ = owner.wait();
        panic!(
            "the owner process reported no pids:\n{}",
            std::fs::read_to_string(&stderr_path).unwrap_or_default()
        );
    };
    let pid = |name: &str| -> u32 {
        pids.split(' ')
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} pid in {pids:?}"))
    };
    let (node, moto) = (pid("node"), pid("moto"));
    // They are what they should be, alive, children of the owner process.
    assert!(
        cmdline(node).starts_with(&format!("{} node --config ", env!("CARGO_BIN_EXE_signer"))),
        "{}",
        cmdline(node)
    );
    assert!(cmdline(moto).contains("moto_server"), "{}", cmdline(moto));
    let started: Vec<(u32, u64)> = [node, moto]
        .iter()
        .map(|&pid| {
            let (state, start) = proc_state(pid).unwrap();
            assert_ne!(state, 'Z', "{pid} is not running");
            (pid, start)
        })
        .collect();

    // SIGKILL: the owner runs no Drop, no guard, nothing.
    owner.kill().unwrap();
    let status = owner.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL)
    );

    // Gone means: no such process, a zombie waiting for init to reap it, or the pid taken by
    // a process started later.
    let gone = |(pid, start): (u32, u64)| match proc_state(pid) {
        None => true,
        Some((state, s)) => state == 'Z' || state == 'X' || s != start,
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !started.iter().all(|&p| gone(p)) {
        assert!(
            Instant::now() < deadline,
            "still running 10 s after their test process was killed: {:?}",
            started
                .iter()
                .filter(|&&p| !gone(p))
                .map(|&(pid, _)| format!("{pid}: {}", cmdline(pid)))
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
