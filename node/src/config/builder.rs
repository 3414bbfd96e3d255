//! Building a [`NodeConfig`] in code: the one place that says what a generated config holds
//! by default, shared by `signer dev-cluster`, `signer bench` and the test clusters.
//!
//! Owns: [`NodeConfigBuilder`] and its defaults (listed on [`NodeConfig::builder`]).
//! Must not: read or write files, or pick addresses or ports (callers bind or probe them);
//! [`NodeConfigBuilder::build`] only fills in fields and runs [`NodeConfig::validate`].
//!
//! To ensure correctness:
//! - a built config has passed [`NodeConfig::validate`], so a caller cannot write a config
//!   file that a node would refuse to start with;
//! - the listen addresses are this node's own `[[peers]]` entry, so a node listens where the
//!   other members dial it.

use super::admin::AdminConfig;
use super::{
    ConfigError, Eth2Config, NodeConfig, PeerConfig, RaftConfig, TlsPaths, Web3SignerConfig,
};
use crate::custody::KekConfig;
use std::net::SocketAddr;
use std::path::PathBuf;

/// A [`NodeConfig`] under construction; see [`NodeConfig::builder`] for the defaults.
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct NodeConfigBuilder {
    node_id: u64,
    cluster_id: String,
    data_dir: PathBuf,
    keys_dir: Option<PathBuf>,
    tls: TlsPaths,
    peers: Vec<PeerConfig>,
    metrics_listen: Option<SocketAddr>,
    web3signer: Option<Web3SignerConfig>,
    bootstrap: Option<bool>,
    raft: RaftConfig,
    eth2: Eth2Config,
    kek: Option<KekConfig>,
    retired_keks: Vec<KekConfig>,
    sync_writes: bool,
    keyring_cache: bool,
    admin: AdminConfig,
}

impl NodeConfig {
    /// Start a config for member `node_id` of `cluster_id`, with its Raft data in `data_dir`,
    /// its TLS files `tls`, and every member (this node included) in `peers`.
    ///
    /// Defaults, each changed by the method of the same name:
    /// - `client_listen`, `peer_listen`: this node's addresses in `peers` (not changeable);
    /// - `keys_dir`: `keys` beside `data_dir` (`data` → `keys`, `/n/data` → `/n/keys`);
    /// - `metrics_listen`: none (no metrics endpoint);
    /// - `web3signer`: none (no Web3Signer-compatible REST API);
    /// - `bootstrap`: true only for the member with the lowest id in `peers`;
    /// - `raft`: [`RaftConfig::default`]; `eth2`: [`Eth2Config::default`] (mainnet);
    /// - `kek`: none (key files only); `retired_keks`: none;
    /// - `sync_writes`: true; `keyring_cache`: true;
    /// - `admin`: [`AdminConfig::dev`] (no admins, so no admin-plane bootstrap).
    pub fn builder(
        node_id: u64,
        cluster_id: impl Into<String>,
        data_dir: impl Into<PathBuf>,
        tls: TlsPaths,
        peers: Vec<PeerConfig>,
    ) -> NodeConfigBuilder {
        NodeConfigBuilder {
            node_id,
            cluster_id: cluster_id.into(),
            data_dir: data_dir.into(),
            keys_dir: None,
            tls,
            peers,
            metrics_listen: None,
            web3signer: None,
            bootstrap: None,
            raft: RaftConfig::default(),
            eth2: Eth2Config::default(),
            kek: None,
            retired_keks: Vec::new(),
            sync_writes: true,
            keyring_cache: true,
            admin: AdminConfig::dev(),
        }
    }
}

impl NodeConfigBuilder {
    /// Where the key files are.
    pub fn keys_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.keys_dir = Some(dir.into());
        self
    }

    /// Serve Prometheus metrics on `addr` (`None`: no endpoint).
    pub fn metrics_listen(mut self, addr: Option<SocketAddr>) -> Self {
        self.metrics_listen = addr;
        self
    }

    /// Serve the Web3Signer-compatible eth2 REST API (`None`: not served).
    pub fn web3signer(mut self, web3signer: Option<Web3SignerConfig>) -> Self {
        self.web3signer = web3signer;
        self
    }

    /// Whether this node initializes the cluster when its log is empty.
    pub fn bootstrap(mut self, bootstrap: bool) -> Self {
        self.bootstrap = Some(bootstrap);
        self
    }

    /// Raft timing and compaction.
    pub fn raft(mut self, raft: RaftConfig) -> Self {
        self.raft = raft;
        self
    }

    /// Ethereum settings.
    pub fn eth2(mut self, eth2: Eth2Config) -> Self {
        self.eth2 = eth2;
        self
    }

    /// The KEK that seals the cluster's registry keys (`None`: key files only).
    pub fn kek(mut self, kek: Option<KekConfig>) -> Self {
        self.kek = kek;
        self
    }

    /// Earlier KEKs, still needed to open records not yet re-wrapped.
    pub fn retired_keks(mut self, keks: Vec<KekConfig>) -> Self {
        self.retired_keks = keks;
        self
    }

    /// fsync every write before acknowledging it (false only for throwaway runs).
    pub fn sync_writes(mut self, sync: bool) -> Self {
        self.sync_writes = sync;
        self
    }

    /// Keep unsealed registry keys in the node's keyring cache (see
    /// [`NodeConfig::keyring_cache`]).
    pub fn keyring_cache(mut self, on: bool) -> Self {
        self.keyring_cache = on;
        self
    }

    /// The admin plane's roots and initial state.
    pub fn admin(mut self, admin: AdminConfig) -> Self {
        self.admin = admin;
        self
    }

    /// The config, validated. Fails, naming the field, when the node is not among `peers` or
    /// when any other field does not validate.
    pub fn build(self) -> Result<NodeConfig, ConfigError> {
        let own = self
            .peers
            .iter()
            .find(|p| p.id == self.node_id)
            .cloned()
            .ok_or_else(|| ConfigError::Invalid {
                field: "peers".into(),
                reason: format!(
                    "this node ({}) must be listed among the peers",
                    self.node_id
                ),
            })?;
        let lowest = self.peers.iter().map(|p| p.id).min();
        let keys_dir = self
            .keys_dir
            .unwrap_or_else(|| self.data_dir.with_file_name("keys"));
        let config = NodeConfig {
            node_id: self.node_id,
            cluster_id: self.cluster_id,
            client_listen: own.client_addr,
            peer_listen: own.peer_addr,
            metrics_listen: self.metrics_listen,
            web3signer: self.web3signer,
            data_dir: self.data_dir,
            keys_dir,
            tls: self.tls,
            peers: self.peers,
            bootstrap: self.bootstrap.unwrap_or(lowest == Some(self.node_id)),
            raft: self.raft,
            eth2: self.eth2,
            kek: self.kek,
            retired_keks: self.retired_keks,
            sync_writes: self.sync_writes,
            keyring_cache: self.keyring_cache,
            admin: self.admin,
        };
        config.validate()?;
        Ok(config)
    }
}
