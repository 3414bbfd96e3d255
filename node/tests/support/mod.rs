//! Test support: a real cluster of `signer node` processes on loopback, with a dev PKI, shared
//! key files, and mutual-TLS gRPC clients. Nodes are separate processes so tests can SIGKILL
//! them; ports are probed free on 127.0.0.1; everything stops when the cluster is dropped.
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
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
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

/// `n` distinct free loopback addresses. The probing sockets stay open until all are chosen,
/// so the kernel cannot hand the same port out twice.
fn free_addrs(n: usize) -> Vec<SocketAddr> {
    let probes: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    probes.iter().map(|l| l.local_addr().unwrap()).collect()
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

        let addrs: Vec<(u64, SocketAddr, SocketAddr, SocketAddr, SocketAddr)> = ids
            .iter()
            .zip(free_addrs(4 * ids.len()).chunks(4))
            .map(|(&id, a)| (id, a[0], a[1], a[2], a[3]))
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
        for &(id, client_addr, peer_addr, metrics_addr, web3signer_addr) in &addrs {
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

    /// Wait until the admin plane is bootstrapped (admin-1 may read the admin state).
    pub async fn wait_bootstrapped(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            for id in self.running() {
                let mut a = self.admin(id).await;
                if a.get_admin_state(pb::GetAdminStateRequest {}).await.is_ok() {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "admin plane not bootstrapped in 20 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
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

    pub fn node(&self, id: u64) -> &Node {
        self.nodes.iter().find(|n| n.id == id).unwrap()
    }

    /// Start node `id` as a process (its data stays where it was).
    pub fn spawn(&self, id: u64) {
        self.spawn_with_args(id, &[]);
    }

    /// Start node `id` with extra `signer node` arguments.
    pub fn spawn_with_args(&self, id: u64, extra: &[&str]) {
        let node = self.node(id);
        let mut slot = node.child.lock().unwrap();
        assert!(slot.is_none(), "node {id} is already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(node.config_path.with_file_name("node.log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_signer"))
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
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
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
        let tls = self
            .tls(client)
            .client_config(&format!("node-{id}"))
            .unwrap();
        Endpoint::from_shared(format!("https://{}", self.node(id).client_addr))
            .unwrap()
            .tls_config(tls)
            .unwrap()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(10))
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
        let tls = TlsMaterial::read(
            &self.pki.ca_cert_path(),
            &self.pki.node_cert_path(as_node),
            &self.pki.node_key_path(as_node),
        )
        .unwrap()
        .client_config(&format!("node-{to}"))
        .unwrap();
        Endpoint::from_shared(format!("https://{}", self.node(to).peer_addr))
            .unwrap()
            .tls_config(tls)
            .unwrap()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(30))
            .connect_lazy()
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
