//! A real local KMS for tests: `moto_server` from the repository's `.venv` (made by
//! `./test.sh`) on a reserved loopback port, killed on drop and when the test process dies;
//! and a TCP proxy in front of it that a test can cut to make the KMS unreachable without
//! losing moto's in-memory keys.
//!
//! Moto does not bind its port: it inherits a listening socket bound here, through Werkzeug's
//! own hand-over (`WERKZEUG_RUN_MAIN=true`, `WERKZEUG_SERVER_FD=<fd>`: how Werkzeug's reloader
//! passes its socket to the serving process), so no other process can take the port between a
//! probe and moto's bind.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::{spawn_tied, Reservation};
use signer_node::custody::{KekBackend, KekConfig};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};
use tokio::sync::watch;

pub const REGION: &str = "us-east-1";

/// A `moto_server` child process; killed on drop.
pub struct Moto {
    child: Child,
    pub port: u16,
    /// The port, held until the test is done with it (see [`Moto::stop`]).
    reservation: Option<Reservation>,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

pub fn moto_server_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/moto_server")
}

impl Moto {
    /// Starts moto on a loopback port reserved for it.
    pub fn start() -> Moto {
        Moto::start_on(Reservation::new()).unwrap_or_else(|e| panic!("moto_server: {e}"))
    }

    /// Starts moto on `port` and waits until it answers HTTP.
    pub fn start_on(port: Reservation) -> Result<Moto, String> {
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
        let listener = port.listen();
        let mut command = Command::new(&exe);
        command
            .args(["-H", "127.0.0.1", "-p", &port.addr.port().to_string()])
            .env("WERKZEUG_RUN_MAIN", "true")
            .env("WERKZEUG_SERVER_FD", listener.as_raw_fd().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        let child = spawn_tied(command, &[&listener])
            .map_err(|e| format!("spawn {}: {e}", exe.display()))?;
        // Moto holds the socket now; a copy here would keep the port accepting (into the
        // backlog) after moto stops.
        drop(listener);
        let mut moto = Moto {
            child,
            port: port.addr.port(),
            reservation: Some(port),
            log,
            _dir: dir,
        };
        moto.wait_serving(Duration::from_secs(30))?;
        Ok(moto)
    }

    /// Wait until moto answers an HTTP request (connections queue on the inherited socket
    /// before moto accepts them, so a connection alone says nothing), or fail when it exits or
    /// `within` passes.
    fn wait_serving(&mut self, within: Duration) -> Result<(), String> {
        let deadline = Instant::now() + within;
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).map_err(|e| e.to_string())?;
        stream
            .write_all(b"GET /moto-api/ HTTP/1.1\r\nHost: moto\r\nConnection: close\r\n\r\n")
            .map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        const OK: &[u8] = b"HTTP/1.1 200";
        let mut head = Vec::new();
        let mut buf = [0u8; 64];
        loop {
            match stream.read(&mut buf) {
                Ok(0) => {
                    let head = String::from_utf8_lossy(&head);
                    return Err(format!("answered {head:?} and closed: {}", self.log_text()));
                }
                Ok(n) => {
                    head.extend_from_slice(&buf[..n]);
                    if head.len() >= OK.len() {
                        if head.starts_with(OK) {
                            return Ok(());
                        }
                        let head = String::from_utf8_lossy(&head);
                        return Err(format!("answered {head:?}: {}", self.log_text()));
                    }
                    continue;
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => return Err(format!("{e}: {}", self.log_text())),
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("exited with {status}: {}", self.log_text()));
            }
            if Instant::now() > deadline {
                return Err(format!("no answer within {within:?}: {}", self.log_text()));
            }
        }
    }

    /// The process id of the server.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops the server and waits until it has exited. Its port stays reserved (connecting
    /// is refused, nobody else can take it) for a restart with [`Moto::start_on`].
    pub fn stop(mut self) -> Reservation {
        self.kill();
        self.reservation.take().unwrap()
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

/// A TCP proxy to moto that can be cut, so the KMS looks unreachable while moto keeps its
/// keys. Cut, nothing listens on its (reserved) port, so connecting is refused, as with a KMS
/// endpoint that is down, and the connections it was forwarding are closed; back up, it
/// listens on the same port again.
pub struct KmsProxy {
    pub port: u16,
    reservation: Reservation,
    /// The listener for the forwarding task to take, set while up.
    listener: Arc<Mutex<Option<std::net::TcpListener>>>,
    up: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl KmsProxy {
    pub async fn start(target_port: u16) -> KmsProxy {
        let reservation = Reservation::new();
        let port = reservation.addr.port();
        let listener = Arc::new(Mutex::new(None));
        let (up, state) = watch::channel(false);
        let task = tokio::spawn(forward(listener.clone(), state, target_port));
        let proxy = KmsProxy {
            port,
            reservation,
            listener,
            up,
            task,
        };
        proxy.set_up(true);
        proxy
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Up: listening from this call on. Cut: the forwarding task closes its listener and its
    /// connections as soon as it runs.
    pub fn set_up(&self, up: bool) {
        if *self.up.borrow() == up {
            return;
        }
        if up {
            let listener = self.reservation.listen();
            listener.set_nonblocking(true).unwrap();
            *self.listener.lock().unwrap() = Some(listener);
        }
        self.up.send_replace(up);
    }
}

/// While up, accept on the listener `set_up` left and forward each connection to moto; when
/// cut, drop the listener and every forwarded connection.
async fn forward(
    slot: Arc<Mutex<Option<std::net::TcpListener>>>,
    mut state: watch::Receiver<bool>,
    target_port: u16,
) {
    loop {
        if state.wait_for(|up| *up).await.is_err() {
            return;
        }
        let Some(listener) = slot.lock().unwrap().take() else {
            continue;
        };
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        loop {
            let accepted = tokio::select! {
                cut = state.wait_for(|up| !*up) => match cut {
                    Ok(_) => break,
                    Err(_) => return,
                },
                accepted = listener.accept() => accepted,
            };
            let Ok((mut inbound, _)) = accepted else {
                continue;
            };
            let mut cut = state.clone();
            tokio::spawn(async move {
                let Ok(mut outbound) =
                    tokio::net::TcpStream::connect(("127.0.0.1", target_port)).await
                else {
                    return;
                };
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                    _ = cut.wait_for(|up| !*up) => {}
                }
            });
        }
    }
}

impl Drop for KmsProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
