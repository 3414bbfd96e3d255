//! A real local KMS for tests: `moto_server` from the repository's `.venv` (made by
//! `./test.sh`) on a free loopback port, killed on drop; and a TCP proxy in front of it that a
//! test can cut to make the KMS unreachable without losing moto's in-memory keys.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use signer_node::custody::{KekBackend, KekConfig};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

pub const REGION: &str = "us-east-1";

/// A `moto_server` child process; killed on drop.
pub struct Moto {
    child: Child,
    pub port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

pub fn moto_server_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/moto_server")
}

impl Moto {
    /// Starts moto on a free loopback port.
    pub fn start() -> Moto {
        let mut last = String::new();
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            match Moto::start_on(port) {
                Ok(moto) => return moto,
                Err(e) => last = e,
            }
        }
        panic!("moto_server did not start: {last}");
    }

    /// Starts moto on `port`, waiting until it accepts connections.
    pub fn start_on(port: u16) -> Result<Moto, String> {
        let exe = moto_server_path();
        assert!(
            exe.exists(),
            "{} not found: the KMS tests need the moto local KMS server. Run ./test.sh once \
             (it creates .venv with moto), or: python3 -m venv .venv && \
             .venv/bin/pip install moto flask flask-cors",
            exe.display()
        );
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("moto.log");
        let child = Command::new(&exe)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", exe.display()))?;
        let mut moto = Moto {
            child,
            port,
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(moto);
            }
            if let Ok(Some(status)) = moto.child.try_wait() {
                return Err(format!("exited with {status}: {}", moto.log_text()));
            }
            if Instant::now() > deadline {
                return Err(format!("not listening after 30 s: {}", moto.log_text()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops the server and waits until it has exited.
    pub fn stop(mut self) -> u16 {
        self.kill();
        self.port
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// A KMS client for test setup (creating keys and aliases), on plain HTTP.
    pub fn admin(&self) -> aws_sdk_kms::Client {
        let config = aws_sdk_kms::Config::builder()
            .behavior_version_latest()
            .region(aws_sdk_kms::config::Region::new(REGION))
            .endpoint_url(self.endpoint())
            .credentials_provider(aws_sdk_kms::config::Credentials::new(
                "test", "test", None, None, "test",
            ))
            .http_client(aws_smithy_http_client::Builder::new().build_http())
            .build();
        aws_sdk_kms::Client::from_conf(config)
    }

    pub async fn create_key(&self) -> String {
        let out = self.admin().create_key().send().await.unwrap();
        out.key_metadata().unwrap().key_id().to_string()
    }

    pub async fn create_alias(&self, alias: &str, key_id: &str) {
        self.admin()
            .create_alias()
            .alias_name(alias)
            .target_key_id(key_id)
            .send()
            .await
            .unwrap();
    }

    /// The node's KEK for `key_id`, built from config as a node does.
    pub async fn kek(&self, key_id: &str) -> KekBackend {
        standard_chain_credentials();
        KekConfig::AwsKms {
            key_id: key_id.to_string(),
            region: Some(REGION.to_string()),
            endpoint_url: Some(self.endpoint()),
        }
        .build()
        .await
        .unwrap()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Credentials for moto through the standard chain: environment variables, set once before
/// any test builds a KEK (every test passes through here first), never from node config.
pub fn standard_chain_credentials() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        std::env::set_var("AWS_ACCESS_KEY_ID", "test");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
        std::env::remove_var("AWS_SESSION_TOKEN");
        std::env::remove_var("AWS_PROFILE");
        std::env::set_var("AWS_CONFIG_FILE", "/nonexistent/aws-config");
        std::env::set_var(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/aws-credentials",
        );
        std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    });
}

/// A TCP proxy to moto that can be cut: while cut, it accepts and drops every connection, so
/// the KMS looks unreachable and moto keeps its keys.
pub struct KmsProxy {
    pub port: u16,
    up: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl KmsProxy {
    pub async fn start(target_port: u16) -> KmsProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let flag = up.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !flag.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                tokio::spawn(async move {
                    if let Ok(mut outbound) =
                        tokio::net::TcpStream::connect(("127.0.0.1", target_port)).await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        KmsProxy { port, up, task }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
    }
}

impl Drop for KmsProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
