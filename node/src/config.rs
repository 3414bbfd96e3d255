//! The node's configuration file (`node.toml`).
//!
//! Owns: the [`NodeConfig`] schema, reading it from TOML, resolving relative paths against the
//! config file's directory, and validating it once, with errors that name the field; building
//! one in code goes through [`NodeConfig::builder`] (module `builder`), whose defaults every
//! generated config shares.
//! Must not: open sockets, read TLS or key files, or touch the data directory; a valid config
//! says nothing about whether those files exist (their loaders report that, naming the path).
//!
//! To ensure correctness:
//! - unknown fields are errors (`deny_unknown_fields`), so a typo never silently means a default;
//! - every member of the cluster, this node included, is listed once in `[[peers]]`.
//!
//! Example:
//! ```toml
//! node_id = 1
//! cluster_id = "dev"
//! client_listen = "127.0.0.1:7100"
//! peer_listen = "127.0.0.1:7101"
//! metrics_listen = "127.0.0.1:7106" # optional; Prometheus `GET /metrics`, off when absent
//! data_dir = "data"            # relative paths are relative to this file's directory
//! keys_dir = "keys"
//! bootstrap = true             # initialize the cluster when the log is empty
//! sync_writes = true           # fsync every acknowledged write (default)
//! keyring_cache = true         # keep the registry keys this node unsealed in <data_dir>/keyring.cache,
//!                              # sealed again under the KEK: one KMS call at restart
//!
//! [tls]
//! ca = "../pki/ca.pem"
//! cert = "../pki/node-1.pem"
//! key = "../pki/node-1.key"
//!
//! [[peers]]
//! id = 1
//! peer_addr = "127.0.0.1:7101"
//! client_addr = "127.0.0.1:7100"
//!
//! [raft]                       # optional; these are the defaults
//! heartbeat_ms = 50
//! election_min_ms = 150
//! election_max_ms = 300
//! snapshot_every = 10000       # log entries since the last snapshot that trigger the next one
//! snapshot_after_audit_bytes = 4194304  # or this many bytes of audit records, whichever first
//! logs_to_keep = 1000          # entries kept behind a snapshot for followers that lag a little
//!
//! [web3signer]                 # optional; the Web3Signer-compatible eth2 REST API, off when absent
//! listen = "127.0.0.1:9000"    # HTTPS with this node's certificate; the client certificate is
//!                              # the identity, with the same grants and rate limits as on gRPC
//! # insecure_loopback_identity = "vc-1"  # plain HTTP instead, loopback `listen` only: every
//! #                                      # caller uses the grant of this client identity
//!
//! [eth2]                       # optional; default mainnet
//! genesis_validators_root = "0x4b363db94e286120d76eb905340fdd4e54bfe9f06bf33ff6cf5ad27f511bfe95"
//! ```

pub mod admin;
mod builder;

pub use builder::NodeConfigBuilder;

use crate::bytes::FixedBytes;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Mainnet's genesis validators root, the default for `[eth2] genesis_validators_root`.
pub const MAINNET_GENESIS_VALIDATORS_ROOT: [u8; 32] = [
    0x4b, 0x36, 0x3d, 0xb9, 0x4e, 0x28, 0x61, 0x20, 0xd7, 0x6e, 0xb9, 0x05, 0x34, 0x0f, 0xdd, 0x4e,
    0x54, 0xbf, 0xe9, 0xf0, 0x6b, 0xf3, 0x3f, 0xf6, 0xcf, 0x5a, 0xd2, 0x7f, 0x51, 0x1b, 0xfe, 0x95,
];

/// Errors reading or validating a config file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema (toml's message names the field and line).
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, where.
        message: String,
    },
    /// A field has a value that cannot work.
    #[error("config field `{field}`: {reason}")]
    Invalid {
        /// The field, e.g. `raft.election_min_ms` or `peers[2].id`.
        field: String,
        /// Why.
        reason: String,
    },
}

/// One node's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// This node's id (≥ 1); its certificates name `node-<id>`.
    pub node_id: u64,
    /// The cluster's name; every member must use the same one.
    pub cluster_id: String,
    /// Where the client API (Signer, Admin, Audit, health, reflection) listens.
    pub client_listen: SocketAddr,
    /// Where the peer API (Raft) listens.
    pub peer_listen: SocketAddr,
    /// Where the Prometheus metrics endpoint (plain HTTP, `GET /metrics`) listens; absent: no
    /// endpoint. Generated configs put it on 127.0.0.1: it is unauthenticated and
    /// unencrypted, so bind another address only on a network only Prometheus reaches (the
    /// text holds no secrets: see `signer_node::metrics`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<SocketAddr>,
    /// The Web3Signer-compatible eth2 REST API (`[web3signer]`); absent: not served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web3signer: Option<Web3SignerConfig>,
    /// Raft log and state machine databases.
    pub data_dir: PathBuf,
    /// Key files (`<key_id>.key`, mode 0600).
    pub keys_dir: PathBuf,
    /// This node's TLS files.
    pub tls: TlsPaths,
    /// Every member of the cluster, this node included.
    pub peers: Vec<PeerConfig>,
    /// This node initializes the cluster (with all `peers` as voters) when its log is empty.
    #[serde(default)]
    pub bootstrap: bool,
    /// Raft timing.
    #[serde(default)]
    pub raft: RaftConfig,
    /// Ethereum settings.
    #[serde(default)]
    pub eth2: Eth2Config,
    /// The key-encryption key that seals this cluster's validator keys (the same on every
    /// node). Without one the node serves only keys from key files. A local KEK file's
    /// relative `path` is relative to this file's directory, like every path here.
    #[serde(default)]
    pub kek: Option<crate::custody::KekConfig>,
    /// Earlier KEKs, still needed to open records not yet re-wrapped by a KEK rotation.
    #[serde(default)]
    pub retired_keks: Vec<crate::custody::KekConfig>,
    /// fsync every write before acknowledging it (default true; false only for throwaway tests).
    #[serde(default = "default_true")]
    pub sync_writes: bool,
    /// Keep the registry keys this node has unsealed in `<data_dir>/keyring.cache`, sealed
    /// again for this node under one data key from the current KEK, so a restart makes one KEK
    /// call (default true). False: every key is unsealed from the registry at every start: one
    /// KEK call (a `Decrypt` in AWS CloudTrail) per shared data key, and one per key for keys
    /// sealed before format 4. See [`crate::keyloader::cache`].
    #[serde(default = "default_true")]
    pub keyring_cache: bool,
    /// The admin plane: trusted attestation roots and the initial admins, policy and client
    /// grants (applied once, by the first leader).
    #[serde(default)]
    pub admin: admin::AdminConfig,
}

/// `[web3signer]`: where the Web3Signer-compatible eth2 REST API listens, and how callers are
/// identified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Web3SignerConfig {
    /// The API's address. HTTPS with the node's certificate ([tls]); a caller's client
    /// certificate (issued by the cluster CA) is its identity.
    pub listen: SocketAddr,
    /// Serve plain HTTP instead of HTTPS, and treat every caller as this client identity (its
    /// grant and rate limit apply). Only for a `listen` address on loopback, where only
    /// processes of this machine can call; any other address is refused when the config loads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_loopback_identity: Option<String>,
}

impl Web3SignerConfig {
    /// HTTPS on `listen`, callers identified by their client certificates.
    pub fn https(listen: SocketAddr) -> Self {
        Web3SignerConfig {
            listen,
            insecure_loopback_identity: None,
        }
    }
}

/// The TLS files of a node: the cluster CA, and this node's certificate and key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsPaths {
    /// CA certificate (PEM) that issued every node and client certificate.
    pub ca: PathBuf,
    /// This node's certificate (PEM), naming `node-<id>`.
    pub cert: PathBuf,
    /// This node's private key (PEM).
    pub key: PathBuf,
}

/// One cluster member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    /// The member's node id.
    pub id: u64,
    /// Its peer (Raft) address, as other nodes dial it.
    pub peer_addr: SocketAddr,
    /// Its client address, as clients and forwarding nodes dial it.
    pub client_addr: SocketAddr,
}

/// Raft timing (in milliseconds) and log compaction (in log entries).
///
/// Compaction: every `snapshot_every` log entries a node writes a snapshot of the replicated
/// state (with the whole kept audit chain) and then drops its log up to `logs_to_keep` entries
/// before the snapshot. A follower that is further behind than the leader's log reaches is sent
/// the snapshot instead of the entries, so `logs_to_keep` is how far a follower may fall behind
/// (a restart, a short partition) and still catch up from the log alone. Smaller values keep the
/// log database small and make a lagging follower install a snapshot sooner; larger values make
/// snapshots rarer (each one writes the state and the audit records since the last one).
/// An entry carries one signature or hundreds (a batch under load), so a node also snapshots
/// after `snapshot_after_audit_bytes` of audit records: that bounds what a build writes, and
/// how long it holds up the node's applies while it flushes them. All must be at least 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RaftConfig {
    /// Leader heartbeat interval.
    #[serde(default = "default_heartbeat_ms")]
    pub heartbeat_ms: u64,
    /// Lower bound of the randomized election timeout.
    #[serde(default = "default_election_min_ms")]
    pub election_min_ms: u64,
    /// Upper bound of the randomized election timeout.
    #[serde(default = "default_election_max_ms")]
    pub election_max_ms: u64,
    /// Log entries since the last snapshot that trigger a new snapshot (default 10 000).
    #[serde(default = "default_snapshot_every")]
    pub snapshot_every: u64,
    /// Log entries already in a snapshot that stay in the log for lagging followers (default
    /// 1 000); older ones are purged.
    #[serde(default = "default_logs_to_keep")]
    pub logs_to_keep: u64,
    /// Bytes of audit records applied since the last snapshot that trigger a new one (default
    /// 4 MiB, about 15,000 signatures).
    #[serde(default = "default_snapshot_after_audit_bytes")]
    pub snapshot_after_audit_bytes: u64,
}

impl Default for RaftConfig {
    fn default() -> Self {
        RaftConfig {
            heartbeat_ms: default_heartbeat_ms(),
            election_min_ms: default_election_min_ms(),
            election_max_ms: default_election_max_ms(),
            snapshot_every: default_snapshot_every(),
            logs_to_keep: default_logs_to_keep(),
            snapshot_after_audit_bytes: default_snapshot_after_audit_bytes(),
        }
    }
}

impl RaftConfig {
    /// The heartbeat interval.
    pub fn heartbeat(&self) -> Duration {
        Duration::from_millis(self.heartbeat_ms)
    }
}

/// Ethereum settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Eth2Config {
    /// The network's genesis validators root (0x-hex, 32 bytes); default mainnet.
    #[serde(default = "default_gvr")]
    pub genesis_validators_root: FixedBytes<32>,
    /// The fork schedule of a network other than mainnet, sepolia, holesky and hoodi (which
    /// are built in and found by their genesis validators root): an `[eth2.network]` table with
    /// `name`, `genesis_validators_root`, `genesis_fork_version` and the fork versions.
    #[serde(default)]
    pub network: Option<eth2_messages::NetworkSpec>,
}

impl Default for Eth2Config {
    fn default() -> Self {
        Eth2Config {
            genesis_validators_root: default_gvr(),
            network: None,
        }
    }
}

impl Eth2Config {
    /// The network this cluster signs eth2 messages for: the `[eth2.network]` table, or the
    /// built-in network with this genesis validators root. Signing roots depend on its fork
    /// versions (EIP-7044 exits, deposits, registrations), so an unknown network is an error.
    pub fn resolve_network(&self) -> Result<eth2_messages::NetworkSpec, String> {
        let gvr = self.genesis_validators_root;
        match &self.network {
            Some(spec) if spec.genesis_validators_root != gvr.0 => Err(format!(
                "[eth2.network] {:?} has genesis_validators_root {}, but [eth2] says {gvr}",
                spec.name,
                FixedBytes(spec.genesis_validators_root)
            )),
            Some(spec) => Ok(spec.clone()),
            None => {
                eth2_messages::NetworkSpec::by_genesis_validators_root(&gvr.0).ok_or_else(|| {
                    format!(
                        "[eth2] genesis_validators_root {gvr} is not a built-in network ({}); \
                         describe its forks in an [eth2.network] table",
                        eth2_messages::BUILT_IN_NETWORKS.join(", ")
                    )
                })
            }
        }
    }
}

fn default_true() -> bool {
    true
}
fn default_heartbeat_ms() -> u64 {
    50
}
fn default_election_min_ms() -> u64 {
    150
}
fn default_election_max_ms() -> u64 {
    300
}
fn default_snapshot_every() -> u64 {
    10_000
}
fn default_logs_to_keep() -> u64 {
    1_000
}
fn default_snapshot_after_audit_bytes() -> u64 {
    crate::replica::snapshot_trigger::SNAPSHOT_AFTER_AUDIT_BYTES
}
fn default_gvr() -> FixedBytes<32> {
    FixedBytes(MAINNET_GENESIS_VALIDATORS_ROOT)
}

impl NodeConfig {
    /// Read, resolve relative paths against the file's directory, and validate.
    pub fn load(path: &Path) -> Result<NodeConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_owned(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        NodeConfig::from_toml(&text, base).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_owned(),
                message,
            },
            other => other,
        })
    }

    /// Parse TOML text, resolve relative paths against `base_dir`, and validate.
    pub fn from_toml(text: &str, base_dir: &Path) -> Result<NodeConfig, ConfigError> {
        let mut config: NodeConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::from("<config>"),
            message: e.to_string(),
        })?;
        config.resolve_paths(base_dir);
        config.validate()?;
        Ok(config)
    }

    /// The TOML text of this config (paths as they are held, absolute after [`Self::load`]).
    pub fn to_toml(&self) -> Result<String, ConfigError> {
        toml::to_string(self).map_err(|e| ConfigError::Parse {
            path: PathBuf::from("<config>"),
            message: e.to_string(),
        })
    }

    /// Make `data_dir`, `keys_dir`, the TLS paths and local KEK files (`kek`, `retired_keks`)
    /// absolute by joining relative ones to `base`.
    pub fn resolve_paths(&mut self, base: &Path) {
        self.admin.resolve_paths(base);
        let kek_paths = self
            .kek
            .iter_mut()
            .chain(self.retired_keks.iter_mut())
            .filter_map(|kek| match kek {
                crate::custody::KekConfig::Local { path } => Some(path),
                _ => None,
            });
        for path in [
            &mut self.data_dir,
            &mut self.keys_dir,
            &mut self.tls.ca,
            &mut self.tls.cert,
            &mut self.tls.key,
        ]
        .into_iter()
        .chain(kek_paths)
        {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        }
    }

    /// Check every field; the first problem found is returned, naming its field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |field: &str, reason: String| {
            Err(ConfigError::Invalid {
                field: field.to_owned(),
                reason,
            })
        };
        if self.node_id == 0 {
            return invalid("node_id", "node ids start at 1".into());
        }
        if let Err(reason) = check_cluster_id(&self.cluster_id) {
            return invalid("cluster_id", reason);
        }
        if self.client_listen == self.peer_listen {
            return invalid(
                "peer_listen",
                format!("same address as client_listen ({})", self.client_listen),
            );
        }
        if let Some(metrics) = self.metrics_listen {
            let mut taken = [self.client_listen, self.peer_listen]
                .into_iter()
                .chain(self.peers.iter().flat_map(|p| [p.client_addr, p.peer_addr]));
            if metrics.port() != 0 && taken.any(|a| a == metrics) {
                return invalid(
                    "metrics_listen",
                    format!("{metrics} is already the client or peer address of a member"),
                );
            }
        }
        if let Some(w3s) = &self.web3signer {
            let taken = [self.client_listen, self.peer_listen]
                .into_iter()
                .chain(self.metrics_listen)
                .chain(self.peers.iter().flat_map(|p| [p.client_addr, p.peer_addr]));
            if let Err(reason) = check_web3signer(w3s, taken) {
                return invalid("web3signer", reason);
            }
        }
        for (field, path) in [
            ("data_dir", &self.data_dir),
            ("keys_dir", &self.keys_dir),
            ("tls.ca", &self.tls.ca),
            ("tls.cert", &self.tls.cert),
            ("tls.key", &self.tls.key),
        ] {
            if path.as_os_str().is_empty() {
                return invalid(field, "must not be empty".into());
            }
        }
        if self.peers.is_empty() {
            return invalid(
                "peers",
                "list every cluster member, this node included".into(),
            );
        }
        let mut ids = BTreeSet::new();
        let mut addrs = BTreeSet::new();
        for (i, peer) in self.peers.iter().enumerate() {
            if peer.id == 0 {
                return invalid(&format!("peers[{i}].id"), "node ids start at 1".into());
            }
            if !ids.insert(peer.id) {
                return invalid(
                    &format!("peers[{i}].id"),
                    format!("node {} is listed twice", peer.id),
                );
            }
            if peer.peer_addr == peer.client_addr {
                return invalid(
                    &format!("peers[{i}].client_addr"),
                    format!("same address as peer_addr ({})", peer.peer_addr),
                );
            }
            for (field, addr) in [
                ("peer_addr", peer.peer_addr),
                ("client_addr", peer.client_addr),
            ] {
                if !addrs.insert(addr) {
                    return invalid(
                        &format!("peers[{i}].{field}"),
                        format!("{addr} is used by another member"),
                    );
                }
                if addr.ip().is_unspecified() || addr.port() == 0 {
                    return invalid(
                        &format!("peers[{i}].{field}"),
                        format!("{addr} cannot be dialed; give a concrete address and port"),
                    );
                }
            }
        }
        if !ids.contains(&self.node_id) {
            return invalid(
                "peers",
                format!(
                    "this node ({}) must be listed among the peers",
                    self.node_id
                ),
            );
        }
        let raft = &self.raft;
        if raft.heartbeat_ms == 0 {
            return invalid("raft.heartbeat_ms", "must be at least 1".into());
        }
        if raft.election_min_ms <= raft.heartbeat_ms {
            return invalid(
                "raft.election_min_ms",
                format!(
                    "must be greater than raft.heartbeat_ms ({}), or followers time out between heartbeats",
                    raft.heartbeat_ms
                ),
            );
        }
        if raft.election_max_ms <= raft.election_min_ms {
            return invalid(
                "raft.election_max_ms",
                format!(
                    "must be greater than raft.election_min_ms ({})",
                    raft.election_min_ms
                ),
            );
        }
        if raft.snapshot_every == 0 {
            return invalid(
                "raft.snapshot_every",
                "must be at least 1 (log entries between snapshots)".into(),
            );
        }
        if raft.logs_to_keep == 0 {
            return invalid(
                "raft.logs_to_keep",
                "must be at least 1 (log entries kept behind a snapshot)".into(),
            );
        }
        if raft.snapshot_after_audit_bytes == 0 {
            return invalid(
                "raft.snapshot_after_audit_bytes",
                "must be at least 1 (bytes of audit records between snapshots)".into(),
            );
        }
        Ok(())
    }

    /// This config made into the config of a node that joins the cluster later: `peer` added
    /// to the peers, and its id and listen addresses taken; it never bootstraps (it joins by an
    /// approved membership change). Paths, TLS and metrics are the caller's to set.
    pub fn for_joining_node(&self, peer: PeerConfig) -> NodeConfig {
        let mut config = self.clone();
        config.node_id = peer.id;
        config.client_listen = peer.client_addr;
        config.peer_listen = peer.peer_addr;
        config.bootstrap = false;
        config.peers.push(peer);
        config
    }

    /// The `[[peers]]` entry of node `id`.
    pub fn peer(&self, id: u64) -> Option<&PeerConfig> {
        self.peers.iter().find(|p| p.id == id)
    }

    /// The other members (every peer but this node).
    pub fn other_peers(&self) -> impl Iterator<Item = &PeerConfig> {
        self.peers.iter().filter(move |p| p.id != self.node_id)
    }

    /// The ids of every member, ascending.
    pub fn member_ids(&self) -> BTreeSet<u64> {
        self.peers.iter().map(|p| p.id).collect()
    }
}

/// The `[web3signer]` section: an address no other listener has, and plain HTTP only on a
/// loopback address for a client identity that cannot pass for a node.
fn check_web3signer(
    w3s: &Web3SignerConfig,
    mut taken: impl Iterator<Item = SocketAddr>,
) -> Result<(), String> {
    let listen = w3s.listen;
    if listen.port() != 0 && taken.any(|a| a == listen) {
        return Err(format!(
            "listen {listen} is already the client, peer or metrics address of a member"
        ));
    }
    let Some(identity) = &w3s.insecure_loopback_identity else {
        return Ok(());
    };
    if !listen.ip().is_loopback() {
        return Err(format!(
            "insecure_loopback_identity serves plain HTTP, which is allowed only on a loopback \
             address; listen is {listen} (remove insecure_loopback_identity to serve HTTPS with \
             client certificates)"
        ));
    }
    if identity.is_empty()
        || identity.starts_with("node-")
        || identity.chars().any(char::is_control)
    {
        return Err(format!(
            "insecure_loopback_identity {identity:?} must name a client (not empty, not `node-…`)"
        ));
    }
    Ok(())
}

fn check_cluster_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > 64 {
        return Err("must be 1 to 64 characters".into());
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(format!(
            "{id:?}: use letters, digits, '-', '_' and '.' only"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
