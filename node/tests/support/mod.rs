//! Test support: a real cluster of `signer node` processes on loopback, with a dev PKI, shared
//! key files, and mutual-TLS gRPC clients. Nodes are separate processes so tests can SIGKILL
//! them; everything stops when the cluster is dropped.
//!
//! Owns: starting the processes tests need (nodes, moto) so that none outlives its test, even a
//! test killed by SIGKILL ([`spawn_tied`]), and the loopback ports they serve on, reserved for
//! the cluster's lifetime ([`Reservation`]) and handed to each node as listening sockets it
//! inherits (`signer node --listen-fd`). Must not: probe a port and release it before its
//! server binds it, or start a binary other than the `signer` just built
//! (`CARGO_BIN_EXE_signer`).
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs
)]

pub mod moto;

use signer_node::client::{Approver, SoftApprover};
use signer_node::config::admin::{AdminConfig, BootstrapAdmin, BootstrapClient};
use signer_node::config::{NodeConfig, PeerConfig, RaftConfig, TlsPaths, Web3SignerConfig};
use signer_node::keyring::{KeyFile, Keyring};
use signer_node::pb;
use signer_node::pb::signer_client::SignerClient;
use signer_node::protection::Profile;
use signer_node::tls::{DevPki, TlsMaterial};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, OnceLock};
use std::time::{Duration, Instant};
use tonic::transport::{Channel, Endpoint};

pub const ESPRESSO_KEY: &str = "demo-espresso";
/// Admins with soft keys in the cluster directory (`<name>.key`).
pub const ADMINS: [&str; 2] = ["admin-1", "admin-2"];

fn soft_approver(dir: &Path, name: &str) -> SoftApprover {
    SoftApprover::load(name, &dir.join(format!("{name}.key"))).unwrap()
}
pub const ETH2_KEY: &str = "demo-eth2";
/// The mainnet genesis validators root (the nodes' default).
pub const GVR: [u8; 32] = signer_node::config::MAINNET_GENESIS_VALIDATORS_ROOT;

pub struct Node {
    pub id: u64,
    pub config_path: PathBuf,
    pub client_addr: SocketAddr,
    pub peer_addr: SocketAddr,
    /// Prometheus `GET /metrics` (plain HTTP).
    pub metrics_addr: SocketAddr,
    /// The Web3Signer-compatible REST API (HTTPS, client certificates).
    pub web3signer_addr: SocketAddr,
    /// The four ports above, held for the cluster's lifetime (also while the node is down).
    pub ports: Vec<Reservation>,
    pub child: std::sync::Mutex<Option<Child>>,
}

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub pki: DevPki,
    pub nodes: Vec<Node>,
    /// Public keys by key id, as the nodes load them.
    pub espresso_public_key: Vec<u8>,
    pub eth2_public_key: Vec<u8>,
}

/// A loopback port held for as long as a test needs it, without listening on it: a socket
/// bound to `127.0.0.1:<port>` with `SO_REUSEADDR` and never put in the listening state.
///
/// Linux then gives the port to nobody else: `bind(…:0)` and the local ports of outgoing
/// connections skip a port that a bound socket holds, and a bind without `SO_REUSEADDR` fails.
/// Our own listeners on it ([`listen_on`]: std sets `SO_REUSEADDR`) bind it as often as a test
/// restarts its server. And as the reservation does not listen, connecting to the port is
/// refused whenever none of our listeners is open there, exactly as with a server that is down.
pub struct Reservation {
    _socket: tokio::net::TcpSocket,
    pub addr: SocketAddr,
}

impl Reservation {
    /// Reserve a port the kernel picks on 127.0.0.1.
    pub fn new() -> Reservation {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        socket.bind(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
        let addr = socket.local_addr().unwrap();
        Reservation {
            _socket: socket,
            addr,
        }
    }

    /// A new listening socket on the reserved address.
    pub fn listen(&self) -> std::net::TcpListener {
        listen_on(self.addr)
    }
}

/// A listening socket on `addr` (std sets `SO_REUSEADDR`, so a [`Reservation`] of `addr` does
/// not stand in the way).
pub fn listen_on(addr: SocketAddr) -> std::net::TcpListener {
    std::net::TcpListener::bind(addr).unwrap_or_else(|e| panic!("cannot listen on {addr}: {e}"))
}

type SpawnJob = (Command, mpsc::Sender<std::io::Result<Child>>);

/// Start `command` so that it cannot outlive this test process, and let it inherit `inherit`
/// at their descriptor numbers here (which `command`'s arguments or environment must name).
///
/// The child gets a parent-death signal (`PR_SET_PDEATHSIG`, SIGKILL): it is killed when this
/// process dies, however it dies — SIGKILL by a test runner's timeout included, when no `Drop`
/// runs. Linux sends that signal when the *thread* that forked the child ends, not the
/// process. So no caller's thread forks: a test's own thread would do while the test runs, but
/// a Tokio worker ends with its runtime and a blocking-pool thread after 10 s idle, killing
/// a node that a test still uses. Every child is forked by one spawner thread that blocks on a
/// channel whose sender lives in a static, and therefore ends only with the process.
#[allow(unsafe_code)]
pub fn spawn_tied(
    mut command: Command,
    inherit: &[&std::net::TcpListener],
) -> std::io::Result<Child> {
    use std::os::unix::process::CommandExt;
    static SPAWNER: OnceLock<mpsc::Sender<SpawnJob>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (jobs, queue) = mpsc::channel::<SpawnJob>();
        std::thread::Builder::new()
            .name("test-child-spawner".into())
            .spawn(move || {
                for (mut command, reply) in queue {
                    let _ = reply.send(command.spawn());
                }
            })
            .unwrap();
        jobs
    });
    let parent = std::process::id();
    let fds: Vec<i32> = inherit.iter().map(|l| l.as_raw_fd()).collect();
    // SAFETY: the hook runs in the forked child before exec and calls only async-signal-safe
    // functions (prctl, getppid, fcntl); it reads `fds` and `parent` and allocates nothing.
    unsafe {
        command.pre_exec(move || {
            let kill = libc::SIGKILL as libc::c_ulong;
            if libc::prctl(libc::PR_SET_PDEATHSIG, kill) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before the signal was set up; then none will come.
            if libc::getppid() as u32 != parent {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            // The listeners are close-on-exec (as every std socket); only in this child,
            // clear the flag so that the program inherits them.
            for &fd in &fds {
                let flags = libc::fcntl(fd, libc::F_GETFD);
                if flags == -1 || libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let (reply, answer) = mpsc::channel();
    spawner.send((command, reply)).unwrap();
    answer.recv().unwrap()
}

/// The addresses `config` listens on, for the listeners a node inherits; port 0 (a port of the
/// node's choosing) is left to the node.
fn listen_addrs(config: &NodeConfig) -> Vec<SocketAddr> {
    let mut addrs = vec![config.client_listen, config.peer_listen];
    addrs.extend(config.metrics_listen);
    addrs.extend(config.web3signer.as_ref().map(|w| w.listen));
    addrs.retain(|a| a.port() != 0);
    addrs
}

impl Cluster {
    /// Start `n` nodes and wait until one is leader.
    pub async fn start(n: u64) -> Cluster {
        Self::start_with(n, |_| None).await
    }

    /// Start `n` nodes whose KEK config is `kek(dir)` (`dir` is the cluster's temp dir).
    pub async fn start_with(
        n: u64,
        kek: impl Fn(&Path) -> Option<signer_node::custody::KekConfig>,
    ) -> Cluster {
        Self::start_configured(n, kek, |_| {}).await
    }

    /// Start `n` nodes whose KEK config is `kek(dir)`, after `edit` has changed each node's
    /// config (e.g. its `[raft]` settings); the edited config must still validate.
    pub async fn start_configured(
        n: u64,
        kek: impl Fn(&Path) -> Option<signer_node::custody::KekConfig>,
        edit: impl Fn(&mut NodeConfig),
    ) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let ids: Vec<u64> = (1..=n).collect();
        let pki = DevPki::create(
            &dir.path().join("pki"),
            &ids,
            &[
                "seq-1",
                "seq-2",
                "seq-3",
                "admin-1",
                "admin-2",
                "auditor-1",
                "nobody-1",
            ],
        )
        .unwrap();
        let keys_src = dir.path().join("keys-src");
        std::fs::create_dir_all(&keys_src).unwrap();
        KeyFile::generate(ESPRESSO_KEY, Profile::Espresso)
            .unwrap()
            .write_new(&keys_src.join(format!("{ESPRESSO_KEY}.key")))
            .unwrap();
        KeyFile::generate(ETH2_KEY, Profile::Eth2)
            .unwrap()
            .write_new(&keys_src.join(format!("{ETH2_KEY}.key")))
            .unwrap();
        let ring = Keyring::load_dir(&keys_src).unwrap();
        let espresso_public_key = ring.get(ESPRESSO_KEY).unwrap().public_key.clone();
        let eth2_public_key = ring.get(ETH2_KEY).unwrap().public_key.clone();

        // Each node's client, peer, metrics and Web3Signer ports, reserved until the cluster
        // is dropped.
        let mut reserved: Vec<Vec<Reservation>> = ids
            .iter()
            .map(|_| (0..4).map(|_| Reservation::new()).collect())
            .collect();
        let addrs: Vec<(u64, SocketAddr, SocketAddr, SocketAddr, SocketAddr)> = ids
            .iter()
            .zip(&reserved)
            .map(|(&id, r)| (id, r[0].addr, r[1].addr, r[2].addr, r[3].addr))
            .collect();
        let peers: Vec<PeerConfig> = addrs
            .iter()
            .map(|&(id, client_addr, peer_addr, _, _)| PeerConfig {
                id,
                peer_addr,
                client_addr,
            })
            .collect();
        // Admin soft keys: admin-1 is the bootstrap admin (1 of 1); admin-2 exists for tests
        // that enroll a second admin. seq-1..3 may use every key; nobody-1 has no grant.
        for name in ADMINS {
            let seed = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
            std::fs::write(
                dir.path().join(format!("{name}.key")),
                hex::encode(seed.to_bytes()),
            )
            .unwrap();
        }
        let admin_config = AdminConfig {
            admins: vec![BootstrapAdmin {
                name: "admin-1".into(),
                key: Some(soft_approver(dir.path(), "admin-1").public_key().to_text()),
                slot_certificate: None,
                device_certificate: None,
            }],
            clients: ["seq-1", "seq-2", "seq-3"]
                .iter()
                .map(|identity| BootstrapClient {
                    identity: (*identity).into(),
                    keys: vec!["*".into()],
                    profiles: vec![Profile::Eth2, Profile::Espresso],
                    rate_per_second: 0,
                    rate_burst: 0,
                    raw_roots: false,
                })
                .collect(),
            ..AdminConfig::dev()
        };
        let mut nodes = Vec::new();
        for (&(id, client_addr, peer_addr, metrics_addr, web3signer_addr), ports) in
            addrs.iter().zip(reserved.drain(..))
        {
            let node_dir = dir.path().join(format!("node-{id}"));
            let keys_dir = node_dir.join("keys");
            std::fs::create_dir_all(&keys_dir).unwrap();
            for key in [ESPRESSO_KEY, ETH2_KEY] {
                let to = keys_dir.join(format!("{key}.key"));
                std::fs::copy(keys_src.join(format!("{key}.key")), &to).unwrap();
            }
            let tls = TlsPaths {
                ca: pki.ca_cert_path(),
                cert: pki.node_cert_path(id),
                key: pki.node_key_path(id),
            };
            let mut config = NodeConfig::builder(
                id,
                "test-cluster",
                node_dir.join("data"),
                tls,
                peers.clone(),
            )
            .keys_dir(keys_dir)
            .metrics_listen(Some(metrics_addr))
            .web3signer(Some(Web3SignerConfig::https(web3signer_addr)))
            .raft(RaftConfig {
                heartbeat_ms: 100,
                election_min_ms: 400,
                election_max_ms: 800,
                ..RaftConfig::default()
            })
            .kek(kek(dir.path()))
            .admin(admin_config.clone())
            .build()
            .unwrap();
            edit(&mut config);
            config.validate().unwrap();
            let config_path = node_dir.join("node.toml");
            std::fs::write(&config_path, config.to_toml().unwrap()).unwrap();
            nodes.push(Node {
                id,
                config_path,
                client_addr,
                peer_addr,
                metrics_addr,
                web3signer_addr,
                ports,
                child: std::sync::Mutex::new(None),
            });
        }
        let cluster = Cluster {
            dir,
            pki,
            nodes,
            espresso_public_key,
            eth2_public_key,
        };
        for id in ids {
            cluster.spawn(id);
        }
        cluster.wait_leader(Duration::from_secs(30)).await;
        cluster.wait_bootstrapped().await;
        cluster
    }

    /// Node `id`'s Web3Signer-compatible API base URL (`https://127.0.0.1:<port>`; the node
    /// certificates name 127.0.0.1).
    pub fn web3signer_url(&self, id: u64) -> String {
        format!("https://{}", self.node(id).web3signer_addr)
    }

    /// Wait until every running node has applied the admin plane's bootstrap (admin-1 may
    /// read the admin state there). A node restarted before it applied the bootstrap
    /// answers clients `UNAVAILABLE` until it catches up, so tests wait for each node.
    pub async fn wait_bootstrapped(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        for id in self.running() {
            loop {
                let mut a = self.admin(id).await;
                if a.get_admin_state(pb::GetAdminStateRequest {}).await.is_ok() {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "admin plane not bootstrapped on node {id} in 20 s"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    /// `name`'s development approver (admin-1, admin-2).
    pub fn approver(&self, name: &str) -> SoftApprover {
        soft_approver(self.dir.path(), name)
    }

    /// An admin client to node `id` authenticated as admin `name`.
    pub fn admin_as(
        &self,
        id: u64,
        name: &str,
    ) -> signer_node::pb::admin_client::AdminClient<Channel> {
        signer_node::pb::admin_client::AdminClient::new(self.channel(id, name))
    }

    /// Propose `request` as admin-1 on the leader; returns the challenge.
    pub async fn propose(
        &self,
        request: pb::propose_request::Request,
    ) -> Result<pb::Challenge, tonic::Status> {
        self.on_leader(|mut a| {
            let request = request.clone();
            async move {
                a.propose(pb::ProposeRequest {
                    request: Some(request),
                })
                .await
            }
        })
        .await
    }

    /// Approve `challenge` as admin `name` (reviewed and signed with their soft key).
    pub async fn approve_as(
        &self,
        name: &str,
        challenge: &pb::Challenge,
    ) -> Result<pb::ApproveResponse, tonic::Status> {
        let reviewed = signer_node::client::review(challenge, "test-cluster").unwrap();
        let mut approver = self.approver(name);
        let signature = approver.sign(&reviewed.statement).unwrap();
        self.send_approval(name, &challenge.id, &signature).await
    }

    /// Send an approval signature as admin `name`, as it is.
    pub async fn send_approval(
        &self,
        name: &str,
        challenge_id: &[u8],
        signature: &[u8],
    ) -> Result<pb::ApproveResponse, tonic::Status> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            for id in self.running() {
                let call = self
                    .admin_as(id, name)
                    .approve(pb::ApproveRequest {
                        challenge_id: challenge_id.to_vec(),
                        signature: signature.to_vec(),
                    })
                    .await;
                match call {
                    Ok(r) => return Ok(r.into_inner()),
                    Err(s) if s.code() == tonic::Code::Unavailable => {}
                    Err(s) => return Err(s),
                }
            }
            assert!(Instant::now() < deadline, "no node accepted the approval");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Propose as admin-1 and approve as admin-1 (executes while the threshold is 1).
    pub async fn admin_exec(
        &self,
        request: pb::propose_request::Request,
    ) -> Result<pb::ApproveResponse, tonic::Status> {
        let challenge = self.propose(request).await?;
        self.approve_as("admin-1", &challenge).await
    }

    /// A key's registry record as the leader reports it.
    pub async fn key_info(&self, key_id: &str) -> Option<pb::AdminKeyInfo> {
        self.on_leader(|mut a| async move { a.list_keys(pb::ListKeysRequest {}).await })
            .await
            .unwrap()
            .keys
            .into_iter()
            .find(|k| k.key_id == key_id)
    }

    /// Generate a key through the admin plane (admin-1 approves).
    pub async fn generate_key(
        &self,
        key_id: &str,
        profile: &str,
    ) -> Result<pb::AdminKeyInfo, tonic::Status> {
        self.admin_exec(pb::propose_request::Request::GenerateKey(
            pb::GenerateKeyRequest {
                key_id: key_id.into(),
                profile: profile.into(),
            },
        ))
        .await?;
        Ok(self.key_info(key_id).await.unwrap())
    }

    /// Import a raw secret through the admin plane (admin-1 approves).
    pub async fn import_key(
        &self,
        key_id: &str,
        profile: &str,
        secret: &[u8],
    ) -> Result<pb::AdminKeyInfo, tonic::Status> {
        self.admin_exec(pb::propose_request::Request::ImportKey(
            pb::ImportKeyRequest {
                key_id: key_id.into(),
                profile: profile.into(),
                secret: Some(pb::import_key_request::Secret::RawSecret(secret.to_vec())),
            },
        ))
        .await?;
        Ok(self.key_info(key_id).await.unwrap())
    }

    /// Set a key's state through the admin plane (admin-1 approves).
    pub async fn set_key_state(
        &self,
        key_id: &str,
        state: &str,
    ) -> Result<pb::ApproveResponse, tonic::Status> {
        self.admin_exec(pb::propose_request::Request::SetKeyState(
            pb::SetKeyStateRequest {
                key_id: key_id.into(),
                state: state.into(),
            },
        ))
        .await
    }

    /// Rotate the KEK through the admin plane (admin-1 approves); the proposal's notes name
    /// keys that could not be re-sealed.
    pub async fn rotate_kek(&self) -> Result<(pb::Challenge, pb::ApproveResponse), tonic::Status> {
        let challenge = self
            .propose(pb::propose_request::Request::RotateKek(
                pb::RotateKekRequest {},
            ))
            .await?;
        let response = self.approve_as("admin-1", &challenge).await?;
        Ok((challenge, response))
    }

    /// Prepare node `id` outside the cluster, the way an operator would: a certificate
    /// naming `node-<id>` from the cluster CA, node-1's config with this node's own ports,
    /// data and key files, and every peer listed (it does not initialize a cluster), and start
    /// it. It is not a member until an approved `AddNode` makes it one.
    pub fn add_node(&mut self, id: u64) -> &Node {
        assert!(self.nodes.iter().all(|n| n.id != id), "node {id} exists");
        self.pki.issue_node(id).unwrap();
        let ports: Vec<Reservation> = (0..4).map(|_| Reservation::new()).collect();
        let (client_addr, peer_addr) = (ports[0].addr, ports[1].addr);
        let (metrics_addr, web3signer_addr) = (ports[2].addr, ports[3].addr);
        let node_dir = self.dir.path().join(format!("node-{id}"));
        let keys_dir = node_dir.join("keys");
        std::fs::create_dir_all(&keys_dir).unwrap();
        let mut config = NodeConfig::load(&self.nodes[0].config_path).unwrap();
        for key in [ESPRESSO_KEY, ETH2_KEY] {
            let file = format!("{key}.key");
            std::fs::copy(config.keys_dir.join(&file), keys_dir.join(&file)).unwrap();
        }
        config.peers.push(PeerConfig {
            id,
            client_addr,
            peer_addr,
        });
        config.node_id = id;
        config.client_listen = client_addr;
        config.peer_listen = peer_addr;
        config.metrics_listen = Some(metrics_addr);
        config.web3signer = Some(Web3SignerConfig::https(web3signer_addr));
        config.data_dir = node_dir.join("data");
        config.keys_dir = keys_dir;
        config.tls.cert = self.pki.node_cert_path(id);
        config.tls.key = self.pki.node_key_path(id);
        config.bootstrap = false;
        config.validate().unwrap();
        let config_path = node_dir.join("node.toml");
        std::fs::write(&config_path, config.to_toml().unwrap()).unwrap();
        self.nodes.push(Node {
            id,
            config_path,
            client_addr,
            peer_addr,
            metrics_addr,
            web3signer_addr,
            ports,
            child: std::sync::Mutex::new(None),
        });
        self.spawn(id);
        self.node(id)
    }

    pub fn node(&self, id: u64) -> &Node {
        self.nodes.iter().find(|n| n.id == id).unwrap()
    }

    /// Start node `id` as a process (its data stays where it was).
    pub fn spawn(&self, id: u64) {
        self.spawn_with_args(id, &[]);
    }

    /// Start node `id` with extra `signer node` arguments.
    ///
    /// The node does not bind its ports: it inherits listening sockets bound here
    /// (`--listen-fd`), one per address its config names now (a test may have edited it), on
    /// the node's reserved ports, so no other process can have taken a port, at the first
    /// start or at a restart. This process keeps no copy of them once the node runs: while a
    /// node is down nothing listens on its ports and connecting is refused, as with a real
    /// node that is down. (A copy kept here would accept connections into its backlog, and a
    /// failover test would see peers and clients wait for timeouts instead of refusals.)
    pub fn spawn_with_args(&self, id: u64, extra: &[&str]) {
        let node = self.node(id);
        let mut slot = node.child.lock().unwrap();
        assert!(slot.is_none(), "node {id} is already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(node.config_path.with_file_name("node.log"))
            .unwrap();
        let config = NodeConfig::load(&node.config_path).unwrap();
        let listeners: Vec<std::net::TcpListener> =
            listen_addrs(&config).into_iter().map(listen_on).collect();
        let mut command = Command::new(env!("CARGO_BIN_EXE_signer"));
        command
            // Credentials for a test KMS (moto) through the standard AWS chain.
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_PROFILE")
            .env("AWS_CONFIG_FILE", "/nonexistent/aws-config")
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                "/nonexistent/aws-credentials",
            )
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .arg("node")
            .arg("--config")
            .arg(&node.config_path)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::from(log));
        for listener in &listeners {
            command
                .arg("--listen-fd")
                .arg(listener.as_raw_fd().to_string());
        }
        let inherit: Vec<&std::net::TcpListener> = listeners.iter().collect();
        let child = spawn_tied(command, &inherit).unwrap();
        drop(listeners);
        *slot = Some(child);
    }

    /// SIGKILL node `id`, apply `edit` to its config file, and start it again (same data).
    pub fn restart_with(&self, id: u64, edit: impl FnOnce(&mut NodeConfig)) {
        self.kill(id);
        let path = &self.node(id).config_path;
        let mut config = NodeConfig::load(path).unwrap();
        edit(&mut config);
        std::fs::write(path, config.to_toml().unwrap()).unwrap();
        self.spawn(id);
    }

    /// SIGKILL every node, start them all again (same data, same config files) and wait until
    /// one is leader; returns its id. No node starts before every node has stopped.
    pub async fn restart_all(&self) -> u64 {
        self.restart_all_editing(None).await
    }

    /// [`Cluster::restart_all`], applying `edit` to each node's config file while all are
    /// stopped.
    pub async fn restart_all_with(&self, edit: impl Fn(&mut NodeConfig)) -> u64 {
        self.restart_all_editing(Some(&edit)).await
    }

    async fn restart_all_editing(&self, edit: Option<&dyn Fn(&mut NodeConfig)>) -> u64 {
        let ids: Vec<u64> = self.nodes.iter().map(|n| n.id).collect();
        for &id in &ids {
            self.kill(id);
        }
        if let Some(edit) = edit {
            for &id in &ids {
                let path = &self.node(id).config_path;
                let mut config = NodeConfig::load(path).unwrap();
                edit(&mut config);
                std::fs::write(path, config.to_toml().unwrap()).unwrap();
            }
        }
        for &id in &ids {
            self.spawn(id);
        }
        self.wait_leader(Duration::from_secs(30)).await
    }

    /// SIGKILL node `id` and reap it.
    pub fn kill(&self, id: u64) {
        if let Some(mut child) = self.node(id).child.lock().unwrap().take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    pub fn log_of(&self, id: u64) -> String {
        std::fs::read_to_string(self.node(id).config_path.with_file_name("node.log"))
            .unwrap_or_default()
    }

    pub fn running(&self) -> Vec<u64> {
        self.nodes
            .iter()
            .filter(|n| n.child.lock().unwrap().is_some())
            .map(|n| n.id)
            .collect()
    }

    pub fn tls(&self, client: &str) -> TlsMaterial {
        TlsMaterial::read(
            &self.pki.ca_cert_path(),
            &self.pki.client_cert_path(client),
            &self.pki.client_key_path(client),
        )
        .unwrap()
    }

    /// A channel to node `id`'s client port, authenticated as `client`.
    pub fn channel(&self, id: u64, client: &str) -> Channel {
        self.channel_with(
            id,
            &self.pki.client_cert_path(client),
            &self.pki.client_key_path(client),
        )
    }

    /// A channel to node `id`'s client port presenting `cert` (with `key`), e.g. one issued
    /// outside the dev PKI's names.
    pub fn channel_with(&self, id: u64, cert: &Path, key: &Path) -> Channel {
        self.mtls_channel(
            self.node(id).client_addr,
            id,
            cert,
            key,
            Duration::from_secs(10),
        )
    }

    /// A lazily connected mutual-TLS channel to `addr`, where node `id` answers, presenting
    /// `cert`/`key`, with an RPC `timeout`.
    pub fn mtls_channel(
        &self,
        addr: SocketAddr,
        id: u64,
        cert: &Path,
        key: &Path,
        timeout: Duration,
    ) -> Channel {
        let tls = TlsMaterial::read(&self.pki.ca_cert_path(), cert, key)
            .unwrap()
            .client_config(&format!("node-{id}"))
            .unwrap();
        Endpoint::from_shared(format!("https://{addr}"))
            .unwrap()
            .tls_config(tls)
            .unwrap()
            .connect_timeout(Duration::from_secs(2))
            .timeout(timeout)
            .connect_lazy()
    }

    /// An Audit client on node `id`, as `auditor-1`.
    pub fn auditor(&self, id: u64) -> pb::audit_client::AuditClient<Channel> {
        pb::audit_client::AuditClient::new(self.channel(id, "auditor-1"))
    }

    /// Node `id`'s audit chain as its Audit service verifies it from its database (anchor,
    /// head, records kept, last applied index).
    pub async fn audit_verify(&self, id: u64) -> pb::AuditVerifyResponse {
        self.auditor(id)
            .verify(pb::AuditVerifyRequest { at_seq: 0 })
            .await
            .unwrap()
            .into_inner()
    }

    /// Every running node's eth2 protection export (Admin `ExportProtection`), once all
    /// `nodes` agree (followers may still be applying); fails after `within`.
    pub async fn converged_protection(&self, nodes: u64, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let mut exports = Vec::new();
            for id in 1..=nodes {
                let answer = self
                    .admin(id)
                    .await
                    .export_protection(pb::ExportProtectionRequest {})
                    .await;
                if let Ok(r) = answer {
                    exports.push(r.into_inner().interchange_json);
                }
            }
            if exports.len() as u64 == nodes && exports.windows(2).all(|w| w[0] == w[1]) {
                return exports.swap_remove(0);
            }
            assert!(
                Instant::now() < deadline,
                "the nodes' eth2 protection exports differ: {exports:#?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Wait until every running node verifies its audit chain from its database, all report
    /// the same head (seq and hash), at least `min_seq`, and two polls 300 ms apart agree (late
    /// node events settle). Returns the nodes' answers, in `running()` order; panics after
    /// `timeout`.
    pub async fn converged_audit_heads(
        &self,
        min_seq: u64,
        timeout: Duration,
    ) -> Vec<pb::AuditVerifyResponse> {
        let deadline = Instant::now() + timeout;
        let mut last: Option<(u64, Vec<u8>)> = None;
        loop {
            let mut heads = Vec::new();
            for id in self.running() {
                if let Ok(v) = self
                    .auditor(id)
                    .verify(pb::AuditVerifyRequest { at_seq: 0 })
                    .await
                {
                    heads.push(v.into_inner());
                }
            }
            let all = heads.len() == self.running().len();
            let same = heads
                .windows(2)
                .all(|w| w[0].head_seq == w[1].head_seq && w[0].head_hash == w[1].head_hash);
            if all && same && heads.iter().all(|h| h.ok) && heads[0].head_seq >= min_seq {
                let now = (heads[0].head_seq, heads[0].head_hash.clone());
                if last.as_ref() == Some(&now) {
                    return heads;
                }
                last = Some(now);
            } else {
                last = None;
            }
            assert!(
                Instant::now() < deadline,
                "audit heads did not converge at or above {min_seq}: {heads:?}"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// A channel to node `to`'s peer port, authenticated with node `as_node`'s certificate (as
    /// the nodes dial each other).
    pub fn peer_channel(&self, to: u64, as_node: u64) -> Channel {
        let (cert, key) = (
            self.pki.node_cert_path(as_node),
            self.pki.node_key_path(as_node),
        );
        self.peer_channel_with(to, &cert, &key)
    }

    /// A channel to node `to`'s peer port presenting the certificate `cert` (with `key`), e.g.
    /// a client's, to see what the peer port makes of it.
    pub fn peer_channel_with(&self, to: u64, cert: &Path, key: &Path) -> Channel {
        self.mtls_channel(
            self.node(to).peer_addr,
            to,
            cert,
            key,
            Duration::from_secs(30),
        )
    }

    /// Every audit record node `id` keeps, as the Audit service sends them.
    pub async fn audit_entries(&self, id: u64) -> Vec<pb::AuditEntry> {
        let mut stream = self
            .auditor(id)
            .tail(pb::AuditTailRequest {
                from_seq: 0,
                last: 0,
                follow: false,
                filter: None,
            })
            .await
            .unwrap()
            .into_inner();
        let mut out = Vec::new();
        while let Some(e) = stream.message().await.unwrap() {
            out.push(e);
        }
        out
    }

    /// A client to node `id` authenticated as `client`.
    pub async fn client(&self, id: u64, client: &str) -> SignerClient<Channel> {
        SignerClient::new(self.channel(id, client))
    }

    /// An admin client to node `id` (identity `admin-1`).
    pub async fn admin(&self, id: u64) -> signer_node::pb::admin_client::AdminClient<Channel> {
        signer_node::pb::admin_client::AdminClient::new(self.channel(id, "admin-1"))
    }

    /// Retry an admin call on every running node until the leader accepts it (followers
    /// answer UNAVAILABLE); any other error is returned.
    pub async fn on_leader<T, F, Fut>(&self, mut call: F) -> Result<T, tonic::Status>
    where
        F: FnMut(signer_node::pb::admin_client::AdminClient<Channel>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            for id in self.running() {
                match call(self.admin(id).await).await {
                    Ok(r) => return Ok(r.into_inner()),
                    Err(s) if s.code() == tonic::Code::Unavailable => {}
                    Err(s) => return Err(s),
                }
            }
            assert!(Instant::now() < deadline, "no node accepted the admin call");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Node `id`'s status.
    pub async fn status(&self, id: u64) -> Option<pb::ClusterStatus> {
        let mut c = self.client(id, "seq-1").await;
        c.get_cluster_status(pb::GetClusterStatusRequest {})
            .await
            .ok()
            .map(|r| r.into_inner())
    }

    /// Wait until every running node reports `pred` of its status.
    pub async fn wait_all(&self, what: &str, pred: impl Fn(&pb::ClusterStatus) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let mut all = true;
            for id in self.running() {
                match self.status(id).await {
                    Some(s) if pred(&s) => {}
                    _ => all = false,
                }
            }
            if all {
                return;
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for: {what}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Wait until a running node reports a leader that is itself running; return its id.
    pub async fn wait_leader(&self, within: Duration) -> u64 {
        let deadline = Instant::now() + within;
        loop {
            for id in self.running() {
                let mut c = self.client(id, "seq-1").await;
                if let Ok(s) = c.get_cluster_status(pb::GetClusterStatusRequest {}).await {
                    let s = s.into_inner();
                    if s.leader_id == s.node_id && self.running().contains(&s.leader_id) {
                        return s.leader_id;
                    }
                }
            }
            if Instant::now() > deadline {
                let logs: Vec<String> = self
                    .running()
                    .iter()
                    .map(|&id| format!("--- node {id}\n{}", self.log_of(id)))
                    .collect();
                panic!("no leader within {within:?}\n{}", logs.join("\n"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `GET path` on node `id`'s metrics endpoint.
    pub async fn http_get(&self, id: u64, path: &str) -> HttpResponse {
        http_get(self.node(id).metrics_addr, path).await
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &self.nodes {
            if let Some(mut child) = node.child.lock().unwrap().take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// `client.sign(request)`, retried while the node answers UNAVAILABLE (as real clients do: a
/// node that just restarted may not have re-applied its log yet), for up to 15 s.
pub async fn sign_retrying(
    client: &mut SignerClient<Channel>,
    request: pb::SignRequest,
) -> Result<pb::SignResponse, tonic::Status> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match client.sign(request.clone()).await {
            Err(s) if s.code() == tonic::Code::Unavailable && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => return other.map(tonic::Response::into_inner),
        }
    }
}

/// A local KEK file shared by every node of a test cluster (for `Cluster::start_with`).
pub fn local_kek(dir: &Path) -> Option<signer_node::custody::KekConfig> {
    let path = dir.join("kek.key");
    if !path.exists() {
        signer_node::custody::LocalKek::create(&path).unwrap();
    }
    Some(signer_node::custody::KekConfig::Local { path })
}

/// An HTTP response as read off the socket.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    /// The status line and headers.
    pub head: String,
    pub body: String,
}

/// A plain HTTP/1.1 `GET path` to `addr` (`Connection: close`).
pub async fn http_get(addr: SocketAddr, path: &str) -> HttpResponse {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(
        Duration::from_secs(10),
        stream.read_to_string(&mut response),
    )
    .await
    .expect("the endpoint answered within 10 s")
    .unwrap();
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {response:?}"));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    HttpResponse {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

/// An espresso quorum vote request for view `view` voting for leaf commitment `[leaf; 32]`.
pub fn quorum_vote(view: u64, leaf: u8, request_id: &str) -> pb::SignRequest {
    pb::SignRequest {
        request_id: request_id.into(),
        key_id: ESPRESSO_KEY.into(),
        message: Some(pb::sign_request::Message::Espresso(pb::EspressoMessage {
            kind: Some(pb::espresso_message::Kind::QuorumVote(pb::QuorumVote {
                view,
                leaf_commit: vec![leaf; 32],
                epoch: None,
                block_number: None,
            })),
        })),
    }
}

/// A typed mainnet eth2 block proposal at `slot` whose body root is `[body; 32]`.
pub fn eth2_block(slot: u64, body: u8) -> pb::SignRequest {
    let network = eth2_messages::NetworkSpec::mainnet();
    let block = signer_node::client::eth2::block(&network, slot, [body; 32]);
    pb::SignRequest {
        request_id: String::new(),
        key_id: ETH2_KEY.into(),
        message: Some(signer_node::client::eth2::typed(&block, None)),
    }
}

/// The refusal code carried in a FAILED_PRECONDITION status.
pub fn refusal_code(status: &tonic::Status) -> Option<String> {
    use prost::Message;
    if status.code() != tonic::Code::FailedPrecondition {
        return None;
    }
    pb::Refusal::decode(status.details()).ok().map(|r| r.code)
}

/// The `signer.v1.Refusal` detail of a FAILED_PRECONDITION status: its code and message.
pub fn refusal(status: &tonic::Status) -> Option<(String, String)> {
    use prost::Message;
    if status.code() != tonic::Code::FailedPrecondition {
        return None;
    }
    pb::Refusal::decode(status.details())
        .ok()
        .map(|r| (r.code, r.message))
}

/// Whether `status` is a failure of the transport (the call reached no service), as opposed
/// to a status a service answered with.
pub fn is_transport_failure(status: &tonic::Status) -> bool {
    std::error::Error::source(status)
        .is_some_and(|e| e.downcast_ref::<tonic::transport::Error>().is_some())
}

/// A bare TLS handshake with `addr` (which must present the certificate of `server_name`,
/// issued by the CA in `ca`), offering `h2` as gRPC clients do and presenting `client`'s
/// certificate and key (PEM paths) or no certificate; then one read. Returns the alert the
/// server ended the connection with, or what happened instead. (A gRPC client cannot tell the
/// alert reliably: it writes its HTTP/2 preface before the alert arrives, and the server's
/// close may reset the connection first.)
pub async fn handshake_alert(
    addr: SocketAddr,
    server_name: &str,
    ca: &Path,
    client: Option<(&Path, &Path)>,
) -> Result<rustls::AlertDescription, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    use tokio::io::AsyncReadExt;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_file(key).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from(server_name.to_owned()).unwrap();
    let connect = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config)).connect(name, tcp);
    let mut stream = match tokio::time::timeout(Duration::from_secs(10), connect).await {
        Err(_) => return Err("the handshake did not finish in 10 s".into()),
        Ok(Err(e)) => return Err(format!("the client's side of the handshake failed: {e:?}")),
        Ok(Ok(stream)) => stream,
    };
    // TLS 1.3: the client's side of the handshake is done; the server checks the client's
    // certificate now, and refuses it with an alert.
    let mut buf = [0u8; 64];
    match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await {
        Err(_) => Err("no answer within 10 s of the handshake".into()),
        Ok(Ok(n)) => Err(format!("read {n} bytes instead of an alert")),
        Ok(Err(e)) => match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
            Some(rustls::Error::AlertReceived(alert)) => Ok(*alert),
            _ => Err(format!("not an alert: {e:?}")),
        },
    }
}
