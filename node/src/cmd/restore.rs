//! `signer restore FILE --config node.toml`: seed the bootstrapping node of a new cluster with
//! the state of a backup (`signerctl backup`), offline, before the node's first start.
//!
//! Owns: the order of the checks and their refusal messages, and writing the seeded state
//! database. Must not: decide what the margins are (`signer_core::backup::margin`), verify the
//! file itself (`signer_core::backup::decode`), or run next to a live cluster: every member of
//! the backed-up cluster, and every other member of the new one, must refuse a connection.
//!
//! To ensure correctness:
//! - nothing is written unless every check passed: the digest and format, the cluster id, the
//!   node is the bootstrapping one, its data directory is empty or absent, and no member
//!   answers on its peer address;
//! - the restored protection state is the backup's raised to its maxima plus the margins
//!   (never lower: `margin::raise` only raises), so a restored cluster refuses everything the
//!   backed-up cluster signed, and what it may have signed within the margins after the backup;
//! - only this node is seeded: the other members start with empty data directories and get
//!   the same state from it as a Raft snapshot, so the members cannot start from different
//!   restores.

use signer_node::backup::margin::{self, Floors, Margin};
use signer_node::backup::{self, Backup, BackupError};
use signer_node::config::NodeConfig;
use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long a member has to accept a connection before it counts as down.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Default eth2 margin, in epochs.
pub const DEFAULT_ETH2_MARGIN_EPOCHS: u64 = 2;
/// Default Espresso margin, in views.
pub const DEFAULT_ESPRESSO_MARGIN_VIEWS: u64 = 1000;

/// What to restore, where, and with which margins.
pub struct RestoreOptions {
    /// The backup file.
    pub file: PathBuf,
    /// The bootstrapping node's config.
    pub config: PathBuf,
    /// The margins above the backup's maxima.
    pub margin: Margin,
}

/// Why a restore was refused or failed. Nothing was written in any case but `Write`.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The config could not be read.
    #[error("loading {path}: {reason}")]
    Config {
        /// The config file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The backup file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a backup this build restores (digest, version, format).
    #[error("refusing to restore {path}: {source}")]
    Backup {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        source: BackupError,
    },
    /// The backup is of another cluster.
    #[error("refusing to restore: the backup is of cluster {backup:?}, this node's config is of cluster {config:?} (sealed keys and approvals are bound to the cluster id)")]
    ClusterId {
        /// The backup's cluster id.
        backup: String,
        /// The config's.
        config: String,
    },
    /// The node is not the bootstrapping one.
    #[error("refusing to restore on node {node_id}: its config has bootstrap = false; restore on the node whose config has bootstrap = true, and start the others with empty data directories (they receive the restored state from it)")]
    NotBootstrap {
        /// This node.
        node_id: u64,
    },
    /// The data directory holds something.
    #[error("refusing to restore into {dir}: the data directory is not empty (a restore seeds a new node; move the old data away first)")]
    DataDir {
        /// The data directory.
        dir: PathBuf,
    },
    /// A member of the backed-up cluster (or of the new one) answers.
    #[error("refusing to restore: node {id} of the {which} cluster answers on {addr}; stop every node of the backed-up cluster, and start no node of the new one, before restoring (a restored cluster next to a live one could sign conflicting messages)")]
    LiveMember {
        /// `backed-up` or `new`.
        which: &'static str,
        /// The member's id.
        id: u64,
        /// The address that accepted a connection.
        addr: String,
    },
    /// Writing the state database failed.
    #[error("writing the restored state into {dir}: {source}")]
    Write {
        /// The data directory.
        dir: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// What a restore did, for the operator.
pub struct Restored {
    /// The verified backup's header and digest.
    pub backup: Backup,
    /// The floors the restored protection state was raised to.
    pub floors: Floors,
    /// Where the state was written.
    pub data_dir: PathBuf,
}

/// Run the checks, then seed the node's state database.
pub fn run(options: &RestoreOptions) -> Result<Restored, RestoreError> {
    let config = NodeConfig::load(&options.config).map_err(|e| RestoreError::Config {
        path: options.config.clone(),
        reason: format!("{e:#}"),
    })?;
    let bytes = std::fs::read(&options.file).map_err(|source| RestoreError::Read {
        path: options.file.clone(),
        source,
    })?;
    let backup = backup::decode(&bytes).map_err(|source| RestoreError::Backup {
        path: options.file.clone(),
        source,
    })?;
    if backup.header.cluster_id != config.cluster_id {
        return Err(RestoreError::ClusterId {
            backup: backup.header.cluster_id.clone(),
            config: config.cluster_id.clone(),
        });
    }
    if !config.bootstrap {
        return Err(RestoreError::NotBootstrap {
            node_id: config.node_id,
        });
    }
    if !is_empty_or_absent(&config.data_dir) {
        return Err(RestoreError::DataDir {
            dir: config.data_dir.clone(),
        });
    }
    for member in &backup.header.members {
        if answers(&member.peer_addr) {
            return Err(RestoreError::LiveMember {
                which: "backed-up",
                id: member.id,
                addr: member.peer_addr.clone(),
            });
        }
    }
    for peer in config.peers.iter().filter(|p| p.id != config.node_id) {
        if answers(&peer.peer_addr.to_string()) {
            return Err(RestoreError::LiveMember {
                which: "new",
                id: peer.id,
                addr: peer.peer_addr.to_string(),
            });
        }
    }

    let body = backup.body.clone();
    let (mut applied, records) = body.into_state().map_err(|e| RestoreError::Backup {
        path: options.file.clone(),
        source: BackupError::Inconsistent(e.to_string()),
    })?;
    let floors = margin::floors(&applied.protection, options.margin);
    margin::raise(&mut applied.protection, &applied.registry, &floors);
    let voters: BTreeMap<u64, String> = config
        .peers
        .iter()
        .map(|p| (p.id, p.peer_addr.to_string()))
        .collect();
    let write = |source| RestoreError::Write {
        dir: config.data_dir.clone(),
        source,
    };
    private_dir(&config.data_dir).map_err(write)?;
    let db = config
        .data_dir
        .join(signer_node::replica::STATE_DATABASE_FILE);
    signer_node::replica::StateMachine::seed(
        &db,
        config.node_id,
        backup.header.applied.index.max(1),
        voters,
        &applied,
        records,
    )
    .map_err(write)?;
    owner_only(&db).map_err(write)?;
    Ok(Restored {
        backup,
        floors,
        data_dir: config.data_dir,
    })
}

fn is_empty_or_absent(dir: &Path) -> bool {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => entries.next().is_none(),
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
    }
}

/// Whether anything accepts a TCP connection on `addr` within [`PROBE_TIMEOUT`]. An address
/// that does not resolve answers nothing.
fn answers(addr: &str) -> bool {
    let addrs: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .map(Iterator::collect)
        .unwrap_or_default();
    addrs
        .iter()
        .any(|a| TcpStream::connect_timeout(a, PROBE_TIMEOUT).is_ok())
}

fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

fn owner_only(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

/// The operator's summary of a restore.
pub fn describe(restored: &Restored, now_ms: u64) -> String {
    let h = &restored.backup.header;
    let age_s = now_ms.saturating_sub(h.created_at_ms) / 1000;
    let floor =
        |v: Option<u64>| v.map_or_else(|| "none (no records)".to_owned(), |v| v.to_string());
    format!(
        "restored backup sha256:{digest}\n\
         cluster {cluster}, applied index {index}, taken {age_s} s ago, audit head seq {seq}\n\
         eth2 floor: epoch {epoch} (blocks refused up to slot {slot})\n\
         espresso floor: view {view}\n\
         into {dir}\n\
         Start this node, then the other members with empty data directories: they receive the \
         restored state from it.",
        digest = hex::encode(restored.backup.digest),
        cluster = h.cluster_id,
        index = h.applied.index,
        seq = h.audit_head.seq,
        epoch = floor(restored.floors.eth2_epoch),
        slot = floor(restored.floors.eth2_slot),
        view = floor(restored.floors.espresso_view),
        dir = restored.data_dir.display(),
    )
}
