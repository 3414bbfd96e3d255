//! Local development clusters: one directory holding everything a loopback cluster needs, and
//! the node processes started from it.
//!
//! Owns: the directory layout (below), creating it once, starting the nodes that are not
//! running as detached background processes (`<exe> node --config DIR/node-<i>/node.toml`),
//! stopping them (SIGTERM, then SIGKILL), killing the leader, and asking the nodes for their
//! status. Must not: print (the binaries do), hold any signing or protection logic, or be used
//! for production: the CA key and the validator keys sit in plain files.
//!
//! ```text
//! DIR/cluster.json            ClusterDescriptor: endpoints, CA, client identities, key ids
//! DIR/admin-1.key             dev admin soft key: Ed25519 seed, hex (0600)
//! DIR/kek.key                 the local KEK every node seals registry keys under (0600)
//! DIR/pki/                    ca.pem ca.key node-<i>.pem/.key
//!                             client-seq-1.pem/.key (sequencer), client-admin-1.pem/.key (admin)
//!                             client-auditor-1.pem/.key (auditor: signerctl audit …)
//! DIR/node-<i>/node.toml      the node's config (paths relative to this directory;
//!                             kek = { backend = "local", path = "../kek.key" };
//!                             metrics_listen = 127.0.0.1, after every client/peer port;
//!                             [web3signer] listen = 127.0.0.1, after the metrics ports)
//! DIR/node-<i>/keys/          demo-espresso.key demo-eth2.key (the same keys on every node, 0600)
//! DIR/node-<i>/data/          Raft log and state machine
//! DIR/node-<i>/node.log       the node's stdout and stderr
//! DIR/node-<i>/pid            the running node's process id
//! ```
//!
//! To ensure correctness:
//! - a directory is created complete or not at all (built beside DIR, then renamed into place),
//!   and an existing cluster's files are never regenerated — `up` only restarts nodes;
//! - a process counts as a node of this cluster only if its command line names the node's
//!   config file, so a recycled pid is never signalled.

mod layout;
mod process;

use crate::client::{ClientError, ClusterDescriptor, NodeEndpoint, PoolOptions, SignerPool};
use crate::config::ConfigError;
use crate::custody::CustodyError;
use crate::keyring::KeyringError;
use crate::pb;
use crate::protection::Profile;
use crate::scheme::SchemeError;
use crate::tls::TlsError;
use layout::build_layout;
pub use layout::{write_cluster, LayoutOptions};
use process::{is_node_process, signal, start_mark, tail, wait_exit};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Nodes in a new cluster unless told otherwise.
pub const DEFAULT_NODES: usize = 3;
/// First port of a new cluster unless told otherwise.
pub const DEFAULT_BASE_PORT: u16 = 7100;
pub use signer_client::dev::{ADMIN, AUDITOR, SEQUENCER};
/// The local KEK file of a dev cluster, in its directory.
pub const KEK_FILE: &str = "kek.key";
/// The demo keys every node holds.
pub const DEMO_KEYS: [(&str, Profile); 2] = [
    ("demo-espresso", Profile::Espresso),
    ("demo-eth2", Profile::Eth2),
];

/// Errors managing a dev cluster.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DevClusterError {
    /// A file or process operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or program.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// An option has a value that cannot work.
    #[error("{0}")]
    InvalidOption(String),
    /// DIR exists but is not a dev cluster.
    #[error("{0} exists but holds no cluster.json; pick a new or empty directory")]
    NotACluster(PathBuf),
    /// PKI generation failed.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// A generated config did not validate.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Writing key files failed.
    #[error(transparent)]
    Keyring(#[from] KeyringError),
    /// Key generation failed.
    #[error(transparent)]
    Scheme(#[from] SchemeError),
    /// Creating the local KEK failed.
    #[error(transparent)]
    Custody(#[from] CustodyError),
    /// Talking to the nodes failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// Too few nodes stayed up to elect a leader.
    #[error("node-{id} exited; see {}:\n{tail}", log.display())]
    NodeExited {
        /// The node.
        id: u64,
        /// Its log file.
        log: PathBuf,
        /// The log's last lines.
        tail: String,
    },
    /// No node reported a leader in time.
    #[error("no leader after {waited:?} ({detail}); see node-*/node.log in the cluster directory")]
    NoLeader {
        /// How long it waited.
        waited: Duration,
        /// What the nodes said last.
        detail: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DevClusterError + '_ {
    move |source| DevClusterError::Io {
        path: path.to_owned(),
        source,
    }
}

/// A dev cluster directory.
#[derive(Debug, Clone)]
pub struct DevCluster {
    dir: PathBuf,
    descriptor: ClusterDescriptor,
    /// Environment variables set for the node processes this value starts (beyond the
    /// inherited environment).
    node_env: Vec<(String, String)>,
}

/// A node's process as seen from its pid file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeProcess {
    /// Node id.
    pub id: u64,
    /// The pid in the pid file, if any.
    pub pid: Option<u32>,
    /// Whether that process is alive and is this node.
    pub running: bool,
}

/// How `stop` left a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// It was not running.
    NotRunning,
    /// It exited after SIGTERM.
    Terminated(u32),
    /// It ignored SIGTERM and was killed.
    Killed(u32),
}

/// One node's process and its own view of the cluster.
#[derive(Debug)]
pub struct NodeReport {
    /// Endpoint.
    pub endpoint: NodeEndpoint,
    /// Process.
    pub process: NodeProcess,
    /// Its answer to GetClusterStatus.
    pub status: Result<pb::ClusterStatus, ClientError>,
}

impl DevCluster {
    /// Open DIR if it holds a cluster, else create one there (DIR must not exist or be empty).
    /// `nodes`/`base_port` apply to a new cluster; given for an existing one, they must match.
    /// Returns the cluster and whether it was created.
    pub fn open_or_create(
        dir: &Path,
        nodes: Option<usize>,
        base_port: Option<u16>,
    ) -> Result<(DevCluster, bool), DevClusterError> {
        if dir.join(crate::client::DESCRIPTOR_FILE).exists() {
            let cluster = DevCluster::open(dir)?;
            let have = cluster.descriptor.nodes.len();
            if nodes.is_some_and(|n| n != have) {
                return Err(DevClusterError::InvalidOption(format!(
                    "{} is a {have}-node cluster; drop --nodes or use another --dir",
                    dir.display()
                )));
            }
            let first = cluster
                .descriptor
                .nodes
                .first()
                .map(|n| n.client_addr.port());
            if base_port.is_some() && base_port != first {
                return Err(DevClusterError::InvalidOption(format!(
                    "{} uses base port {}; drop --base-port or use another --dir",
                    dir.display(),
                    first.unwrap_or_default()
                )));
            }
            return Ok((cluster, false));
        }
        let cluster = DevCluster::create(
            dir,
            nodes.unwrap_or(DEFAULT_NODES),
            base_port.unwrap_or(DEFAULT_BASE_PORT),
        )?;
        Ok((cluster, true))
    }

    /// Set an environment variable for the node processes started from now on by this value
    /// (e.g. the credentials a local KMS takes; never a secret of the cluster's own).
    pub fn set_node_env(&mut self, key: &str, value: &str) {
        self.node_env.retain(|(k, _)| k != key);
        self.node_env.push((key.to_owned(), value.to_owned()));
    }

    /// Open an existing cluster directory.
    pub fn open(dir: &Path) -> Result<DevCluster, DevClusterError> {
        let dir = std::fs::canonicalize(dir).map_err(io(dir))?;
        if !dir.join(crate::client::DESCRIPTOR_FILE).exists() {
            return Err(DevClusterError::NotACluster(dir));
        }
        let descriptor = ClusterDescriptor::load(&dir)?;
        Ok(DevCluster {
            dir,
            descriptor,
            node_env: Vec::new(),
        })
    }

    /// Create a new cluster of `nodes` (1, 3 or 5) nodes on 127.0.0.1 ports `base_port..`
    /// (node i: client port base+2(i-1), peer port base+2(i-1)+1, metrics port
    /// base+2·nodes+(i-1)) in DIR.
    pub fn create(dir: &Path, nodes: usize, base_port: u16) -> Result<DevCluster, DevClusterError> {
        if ![1, 3, 5].contains(&nodes) {
            return Err(DevClusterError::InvalidOption(format!(
                "--nodes must be 3 or 5 (or 1 for tests), not {nodes}"
            )));
        }
        let last_port = u32::from(base_port) + 3 * nodes as u32 - 1;
        if base_port < 1024 || last_port > u32::from(u16::MAX) {
            return Err(DevClusterError::InvalidOption(format!(
                "--base-port {base_port}: ports {base_port}..={last_port} must lie in 1024..=65535"
            )));
        }
        match std::fs::read_dir(dir) {
            Ok(mut entries) => {
                if entries.next().is_some() {
                    return Err(DevClusterError::NotACluster(dir.to_owned()));
                }
                std::fs::remove_dir(dir).map_err(io(dir))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(DevClusterError::Io {
                    path: dir.to_owned(),
                    source,
                })
            }
        }
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "cluster".into());
        let partial = dir.with_file_name(format!(".{name}.partial-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&partial);
        let built = build_layout(&partial, nodes, base_port);
        if let Err(e) = built {
            let _ = std::fs::remove_dir_all(&partial);
            return Err(e);
        }
        std::fs::rename(&partial, dir).map_err(io(dir))?;
        DevCluster::open(dir)
    }

    /// The cluster directory (absolute).
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    /// The descriptor, paths absolute.
    pub fn descriptor(&self) -> &ClusterDescriptor {
        &self.descriptor
    }
    /// `DIR/node-<id>`.
    pub fn node_dir(&self, id: u64) -> PathBuf {
        self.dir.join(format!("node-{id}"))
    }
    /// `DIR/node-<id>/node.toml`.
    pub fn config_path(&self, id: u64) -> PathBuf {
        self.node_dir(id).join("node.toml")
    }
    /// `DIR/node-<id>/node.log`.
    pub fn log_path(&self, id: u64) -> PathBuf {
        self.node_dir(id).join("node.log")
    }
    /// `DIR/node-<id>/pid`.
    pub fn pid_path(&self, id: u64) -> PathBuf {
        self.node_dir(id).join("pid")
    }

    /// Node `id`'s process, per its pid file.
    pub fn process(&self, id: u64) -> NodeProcess {
        let pid = std::fs::read_to_string(self.pid_path(id))
            .ok()
            .and_then(|t| t.trim().parse::<u32>().ok());
        let running = pid.is_some_and(|pid| is_node_process(pid, &self.config_path(id)));
        NodeProcess { id, pid, running }
    }

    /// Every node's process.
    pub fn processes(&self) -> Vec<NodeProcess> {
        self.descriptor
            .nodes
            .iter()
            .map(|n| self.process(n.id))
            .collect()
    }

    /// Start every node that is not running (see [`Self::start_node`]). Returns the
    /// `(id, pid)` of each node started.
    pub fn start_stopped(&self, exe: &Path) -> Result<Vec<(u64, u32)>, DevClusterError> {
        let mut started = Vec::new();
        for node in &self.descriptor.nodes {
            if self.process(node.id).running {
                continue;
            }
            started.push((node.id, self.start_node(exe, node.id)?));
        }
        Ok(started)
    }

    /// Prepare a new node, `node-<highest id + 1>`, and start it (not a member yet: an
    /// approved `signerctl node add` makes it one): a certificate from the cluster's dev CA,
    /// the first node's config with this node's own ports (the three after the highest port
    /// any node uses), data and copies of its key files, every peer listed and no bootstrap;
    /// and its entry in cluster.json. Returns its id and pid.
    pub fn add_node(&mut self, exe: &Path) -> Result<(u64, u32), DevClusterError> {
        let first =
            self.descriptor.nodes.first().map(|n| n.id).ok_or_else(|| {
                DevClusterError::InvalidOption("the cluster has no nodes".to_owned())
            })?;
        let id = self
            .descriptor
            .nodes
            .iter()
            .map(|n| n.id)
            .max()
            .unwrap_or(0)
            + 1;
        let mut top = 0u16;
        for node in &self.descriptor.nodes {
            let c = crate::config::NodeConfig::load(&self.config_path(node.id))?;
            let ports = [Some(c.client_listen), Some(c.peer_listen), c.metrics_listen]
                .into_iter()
                .chain([c.web3signer.as_ref().map(|w| w.listen)])
                .flatten()
                .map(|a| a.port());
            top = ports.fold(top, u16::max);
        }
        let port = |n: u16| {
            top.checked_add(n)
                .ok_or_else(|| DevClusterError::InvalidOption(format!("no port left above {top}")))
        };
        let loopback = |p: u16| std::net::SocketAddr::from(([127, 0, 0, 1], p));
        let (client_addr, peer_addr) = (loopback(port(1)?), loopback(port(2)?));
        let metrics_addr = loopback(port(3)?);
        let pki = crate::tls::DevPki::open(&self.dir.join("pki"))?;
        pki.issue_node(id)?;
        let first_config = crate::config::NodeConfig::load(&self.config_path(first))?;
        let node_dir = self.node_dir(id);
        let keys_dir = node_dir.join("keys");
        std::fs::create_dir_all(&keys_dir).map_err(io(&keys_dir))?;
        for entry in
            std::fs::read_dir(&first_config.keys_dir).map_err(io(&first_config.keys_dir))?
        {
            let from = entry.map_err(io(&first_config.keys_dir))?.path();
            if let Some(name) = from.file_name().filter(|_| from.is_file()) {
                let to = keys_dir.join(name);
                std::fs::copy(&from, &to).map_err(io(&to))?;
            }
        }
        let mut config = first_config.for_joining_node(crate::config::PeerConfig {
            id,
            client_addr,
            peer_addr,
        });
        config.metrics_listen = Some(metrics_addr);
        config.web3signer = None;
        config.data_dir = node_dir.join("data");
        config.keys_dir = keys_dir;
        config.tls.cert = pki.node_cert_path(id);
        config.tls.key = pki.node_key_path(id);
        config.validate()?;
        let path = self.config_path(id);
        std::fs::write(&path, config.to_toml()?).map_err(io(&path))?;
        ClusterDescriptor::record_node(
            &self.dir,
            NodeEndpoint {
                id,
                client_addr,
                peer_addr,
                web3signer_url: None,
            },
        )?;
        self.descriptor = ClusterDescriptor::load(&self.dir)?;
        let pid = self.start_node(exe, id)?;
        Ok((id, pid))
    }

    /// Start node `id` as `<exe> node --config <node.toml>`, detached (own process group,
    /// stdin closed, output appended to its node.log), whether or not it is running (callers
    /// check). Returns its pid.
    pub fn start_node(&self, exe: &Path, id: u64) -> Result<u32, DevClusterError> {
        use std::os::unix::process::CommandExt;
        let node = self.descriptor.node(id).ok_or_else(|| {
            DevClusterError::InvalidOption(format!("no node-{id} in this cluster"))
        })?;
        for addr in [node.client_addr, node.peer_addr] {
            if let Err(e) = std::net::TcpListener::bind(addr) {
                return Err(DevClusterError::InvalidOption(format!(
                    "node-{} cannot listen on {addr} ({e}); is another cluster or program using it?",
                    node.id
                )));
            }
        }
        let log_path = self.log_path(node.id);
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(io(&log_path))?;
        // What this start prints follows this line (an error is not shown again later).
        std::io::Write::write_all(&mut log, format!("{}\n", start_mark(node.id)).as_bytes())
            .map_err(io(&log_path))?;
        let log_err = log.try_clone().map_err(io(&log_path))?;
        let mut child = std::process::Command::new(exe)
            .arg("node")
            .arg("--config")
            .arg(self.config_path(node.id))
            .envs(self.node_env.iter().map(|(k, v)| (k, v)))
            .current_dir(self.node_dir(node.id))
            .stdin(std::process::Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .process_group(0)
            .spawn()
            .map_err(io(exe))?;
        let pid = child.id();
        // Until the new program is in place, /proc shows an empty command line; wait for it
        // so that the node is seen as running from here on (or as exited, if it fails).
        let config = self.config_path(node.id);
        let exec_deadline = Instant::now() + Duration::from_secs(2);
        while !is_node_process(pid, &config) && Instant::now() < exec_deadline {
            if child.try_wait().ok().flatten().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        // Reap the child if it exits while this process lives (`signer demo`), so that it
        // does not linger as a zombie; the node itself outlives a short-lived CLI.
        std::thread::spawn(move || {
            let _ = child.wait();
        });
        let pid_path = self.pid_path(node.id);
        let tmp = pid_path.with_extension("tmp");
        std::fs::write(&tmp, format!("{pid}\n")).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &pid_path).map_err(io(&pid_path))?;
        Ok(pid)
    }

    /// A client pool as the dev sequencer, with short timeouts suited to loopback.
    pub async fn pool(&self) -> Result<SignerPool, DevClusterError> {
        let options = PoolOptions {
            rpc_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_millis(500),
            deadline: Duration::from_secs(10),
            ..PoolOptions::default()
        };
        Ok(SignerPool::connect_with(&self.descriptor, SEQUENCER, options).await?)
    }

    /// Wait until a node reports a leader; fails early when so many nodes have exited that
    /// no quorum is left. Returns the leader's id.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Result<u64, DevClusterError> {
        let pool = self.pool().await?;
        let started = Instant::now();
        let quorum = self.descriptor.nodes.len() / 2 + 1;
        loop {
            let statuses = pool.cluster_statuses().await;
            let leader = statuses
                .iter()
                .filter_map(|(_, s)| s.as_ref().ok())
                .filter(|s| s.leader_id != 0)
                .max_by_key(|s| s.term)
                .map(|s| s.leader_id);
            if let Some(leader) = leader {
                return Ok(leader);
            }
            let processes = self.processes();
            let running = processes.iter().filter(|p| p.running).count();
            if running < quorum {
                if let Some(dead) = processes.iter().find(|p| !p.running) {
                    return Err(DevClusterError::NodeExited {
                        id: dead.id,
                        log: self.log_path(dead.id),
                        tail: tail(&self.log_path(dead.id), &start_mark(dead.id), 15),
                    });
                }
            }
            if started.elapsed() >= timeout {
                let detail = statuses
                    .iter()
                    .map(|(id, s)| match s {
                        Ok(s) => format!("node-{id}: no leader known at term {}", s.term),
                        Err(e) => format!("node-{id}: {e}"),
                    })
                    .collect::<Vec<_>>()
                    .join("; ");
                return Err(DevClusterError::NoLeader {
                    waited: timeout,
                    detail,
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every node's process and status, asked concurrently.
    pub async fn report(&self) -> Result<Vec<NodeReport>, DevClusterError> {
        let pool = self.pool().await?;
        let mut statuses: BTreeMap<u64, _> = pool.cluster_statuses().await.into_iter().collect();
        Ok(self
            .descriptor
            .nodes
            .iter()
            .map(|n| NodeReport {
                endpoint: n.clone(),
                process: self.process(n.id),
                status: statuses
                    .remove(&n.id)
                    .unwrap_or(Err(ClientError::UnknownNode(n.id))),
            })
            .collect())
    }

    /// SIGKILL the leader. Returns its id and pid.
    pub async fn kill_leader(&self) -> Result<(u64, u32), DevClusterError> {
        let pool = self.pool().await?;
        let leader = pool
            .find_leader()
            .await
            .ok_or_else(|| DevClusterError::NoLeader {
                waited: Duration::ZERO,
                detail: "no node reports a leader".into(),
            })?;
        let process = self.process(leader);
        let pid = match process.pid {
            Some(pid) if process.running => pid,
            _ => {
                return Err(DevClusterError::InvalidOption(format!(
                    "node-{leader} is the leader but is not a process of this cluster directory"
                )))
            }
        };
        signal(pid, "KILL")?;
        wait_exit(pid, &self.config_path(leader), Duration::from_secs(5));
        let _ = std::fs::remove_file(self.pid_path(leader));
        Ok((leader, pid))
    }

    /// Stop every running node: SIGTERM, wait up to `grace`, then SIGKILL. Removes pid files.
    pub fn stop(&self, grace: Duration) -> Result<Vec<(u64, Stopped)>, DevClusterError> {
        let ids: Vec<u64> = self.descriptor.nodes.iter().map(|n| n.id).collect();
        self.stop_nodes(&ids, grace)
    }

    /// Stop the nodes `ids` that are running: SIGTERM to each, wait up to `grace` in all,
    /// then SIGKILL. Removes their pid files.
    pub fn stop_nodes(
        &self,
        ids: &[u64],
        grace: Duration,
    ) -> Result<Vec<(u64, Stopped)>, DevClusterError> {
        let mut outcome = Vec::new();
        let mut waiting = Vec::new();
        for &id in ids {
            let p = self.process(id);
            match p.pid {
                Some(pid) if p.running => {
                    signal(pid, "TERM")?;
                    waiting.push((p.id, pid));
                }
                _ => outcome.push((p.id, Stopped::NotRunning)),
            }
        }
        let deadline = Instant::now() + grace;
        for (id, pid) in waiting {
            let config = self.config_path(id);
            let left = deadline.saturating_duration_since(Instant::now());
            if wait_exit(pid, &config, left) {
                outcome.push((id, Stopped::Terminated(pid)));
            } else {
                signal(pid, "KILL")?;
                wait_exit(pid, &config, Duration::from_secs(5));
                outcome.push((id, Stopped::Killed(pid)));
            }
        }
        for &id in ids {
            if !self.process(id).running {
                let _ = std::fs::remove_file(self.pid_path(id));
            }
        }
        outcome.sort_by_key(|(id, _)| *id);
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests;
