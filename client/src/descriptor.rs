//! The dev-cluster descriptor, `cluster.json`: what a client needs to reach a cluster.
//!
//! Owns: the descriptor's schema, reading it (paths made absolute against its directory) and
//! writing it atomically. Must not: open connections or generate anything it describes.

use super::ClientError;
use crate::tls::TlsMaterial;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The descriptor's file name inside a dev-cluster directory.
pub const DESCRIPTOR_FILE: &str = "cluster.json";

/// One node of a dev cluster, as clients see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeEndpoint {
    /// Node id.
    pub id: u64,
    /// Where its Signer service listens.
    pub client_addr: SocketAddr,
    /// Where its Raft service listens.
    pub peer_addr: SocketAddr,
    /// The base URL of its Web3Signer-compatible eth2 REST API (`https://…`), when it serves
    /// one: what a validator client's remote-signer URL is set to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web3signer_url: Option<String>,
}

/// A client identity's TLS files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientFiles {
    /// Certificate (PEM).
    pub cert: PathBuf,
    /// Private key (PEM, 0600).
    pub key: PathBuf,
}

/// A dev admin's soft key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminKey {
    /// File with the Ed25519 32-byte seed as hex (0600).
    pub key: PathBuf,
    /// The Ed25519 public key, 0x-hex.
    pub public_key: String,
}

/// What a client needs to reach a dev cluster: `cluster.json` in the cluster's directory.
/// Paths are stored relative to that directory and made absolute by [`Self::load`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterDescriptor {
    /// The cluster's id.
    pub cluster_id: String,
    /// Every node.
    pub nodes: Vec<NodeEndpoint>,
    /// The cluster CA certificate.
    pub ca: PathBuf,
    /// Client identities by name (e.g. `seq-1`).
    pub clients: BTreeMap<String, ClientFiles>,
    /// Dev admin soft keys by name (e.g. `admin-1`).
    #[serde(default)]
    pub admins: BTreeMap<String, AdminKey>,
    /// The key ids every node holds.
    pub keys: Vec<String>,
}

impl ClusterDescriptor {
    /// Read `cluster.json` (`path` may be the file or its directory) and make its paths absolute.
    pub fn load(path: &Path) -> Result<ClusterDescriptor, ClientError> {
        let (file, mut descriptor) = Self::read_stored(path)?;
        if descriptor.nodes.is_empty() {
            return Err(ClientError::Descriptor {
                path: file,
                reason: "lists no nodes".into(),
            });
        }
        let base = file.parent().unwrap_or(Path::new("."));
        let absolute = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        absolute(&mut descriptor.ca);
        for files in descriptor.clients.values_mut() {
            absolute(&mut files.cert);
            absolute(&mut files.key);
        }
        for admin in descriptor.admins.values_mut() {
            absolute(&mut admin.key);
        }
        Ok(descriptor)
    }

    /// The descriptor file at `path` (the file or its directory) and its contents as stored
    /// (paths as written, relative ones not resolved).
    fn read_stored(path: &Path) -> Result<(PathBuf, ClusterDescriptor), ClientError> {
        let file = if path.is_dir() {
            path.join(DESCRIPTOR_FILE)
        } else {
            path.to_owned()
        };
        let bad = |reason: String| ClientError::Descriptor {
            path: file.clone(),
            reason,
        };
        let text = std::fs::read_to_string(&file).map_err(|e| bad(e.to_string()))?;
        let stored = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        Ok((file, stored))
    }

    /// Record client identity `name` with `files` (relative to the descriptor's directory, as
    /// stored) in the descriptor at `path` (the file or its directory), replacing an entry of
    /// that name; the rest of the file is kept as it is stored.
    pub fn record_client(path: &Path, name: &str, files: ClientFiles) -> Result<(), ClientError> {
        let (file, mut stored) = Self::read_stored(path)?;
        stored.clients.insert(name.to_owned(), files);
        stored.save(&file)
    }

    /// Add `node` to the descriptor at `path` (a dev cluster's new node), replacing a node of
    /// the same id.
    pub fn record_node(path: &Path, node: NodeEndpoint) -> Result<(), ClientError> {
        let (file, mut stored) = Self::read_stored(path)?;
        stored.nodes.retain(|n| n.id != node.id);
        stored.nodes.push(node);
        stored.save(&file)
    }

    /// Drop admin `name`'s soft key record from the descriptor at `path` (the file or its
    /// directory); returns its key file's path as stored (relative to the directory).
    pub fn forget_admin(path: &Path, name: &str) -> Result<Option<PathBuf>, ClientError> {
        let (file, mut stored) = Self::read_stored(path)?;
        let removed = stored.admins.remove(name).map(|a| a.key);
        stored.save(&file)?;
        Ok(removed)
    }

    /// Write to `path` (a file; `cluster.json` inside it when it is a directory) atomically.
    pub fn save(&self, path: &Path) -> Result<(), ClientError> {
        let file = if path.is_dir() {
            path.join(DESCRIPTOR_FILE)
        } else {
            path.to_owned()
        };
        let bad = |reason: String| ClientError::Descriptor {
            path: file.clone(),
            reason,
        };
        let text = serde_json::to_string_pretty(self).map_err(|e| bad(e.to_string()))?;
        let tmp = file.with_extension("json.tmp");
        std::fs::write(&tmp, text + "\n").map_err(|e| bad(e.to_string()))?;
        std::fs::rename(&tmp, &file).map_err(|e| bad(e.to_string()))
    }

    /// The node with this id.
    pub fn node(&self, id: u64) -> Option<&NodeEndpoint> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// Read the TLS files of client identity `name`.
    pub fn client_tls(&self, name: &str) -> Result<TlsMaterial, ClientError> {
        let files = self
            .clients
            .get(name)
            .ok_or_else(|| ClientError::Descriptor {
                path: PathBuf::from(DESCRIPTOR_FILE),
                reason: format!(
                    "no client identity {name:?} (known: {})",
                    self.clients.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            })?;
        Ok(TlsMaterial::read(&self.ca, &files.cert, &files.key)?)
    }
}
