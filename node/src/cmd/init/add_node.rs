//! `signer add-node`: the files one more host needs to join an existing cluster made by
//! `signer init` — a `node-<id>` certificate from the cluster CA, its node.toml (the peers
//! plus itself, `bootstrap = false`), its host bundle — and its entry in `cluster.json`.
//! Run where the CA key is kept, like `signer init`; the node becomes a member only when the
//! admins approve `signerctl node add` (or `node replace`).
//!
//! Owns: writing those files from the first node's config. Must not: start the node, change
//! the membership, or touch existing nodes' files.

use super::bundle::{self, InstallRoot};
use anyhow::{bail, Context, Result};
use signer_node::client::{ClusterDescriptor, NodeEndpoint, DESCRIPTOR_FILE};
use signer_node::config::{NodeConfig, PeerConfig};
use std::path::{Path, PathBuf};

/// Write node `node.id`'s certificate, config and bundle into `dir`; returns the bundle.
pub fn run(
    dir: &Path,
    node: &NodeEndpoint,
    install_root: &InstallRoot,
    signer_path: &Path,
) -> Result<PathBuf> {
    let descriptor = ClusterDescriptor::load(&dir.join(DESCRIPTOR_FILE))
        .with_context(|| format!("{} is not a `signer init` directory", dir.display()))?;
    if descriptor.nodes.iter().any(|n| n.id == node.id) {
        bail!(
            "node-{} is already in {}: a new node needs a new id (a removed node's id is \
             never accepted again)",
            node.id,
            dir.display()
        );
    }
    if let Some(n) = descriptor
        .nodes
        .iter()
        .find(|n| n.client_addr == node.client_addr || n.peer_addr == node.peer_addr)
    {
        bail!(
            "node-{} already uses {} or {}",
            n.id,
            node.client_addr,
            node.peer_addr
        );
    }
    if !signer_path.is_absolute() {
        bail!(
            "--signer-path {}: must be absolute (the unit's ExecStart)",
            signer_path.display()
        );
    }
    let first = descriptor
        .nodes
        .first()
        .map(|n| n.id)
        .context("cluster.json lists no nodes")?;
    let first_path = dir.join(format!("node-{first}/node.toml"));
    let text = std::fs::read_to_string(&first_path)
        .with_context(|| format!("reading {}", first_path.display()))?;
    // Parsed against "" so that its paths stay relative to node.toml.
    let first_config = NodeConfig::from_toml(&text, Path::new(""))
        .with_context(|| format!("reading {}", first_path.display()))?;
    let pki = signer_node::tls::DevPki::open(&dir.join("pki"))?;
    let node_dir = dir.join(format!("node-{}", node.id));
    std::fs::create_dir(&node_dir).with_context(|| format!("creating {}", node_dir.display()))?;
    let mut issued = false;
    let written = (|| -> Result<PathBuf> {
        pki.issue_node(node.id)
            .with_context(|| format!("issuing node-{}'s certificate", node.id))?;
        issued = true;
        // Key files (development) are the same on every node.
        let keys_from = dir
            .join(format!("node-{first}"))
            .join(&first_config.keys_dir);
        let keys_to = node_dir.join("keys");
        std::fs::create_dir(&keys_to)?;
        if let Ok(entries) = std::fs::read_dir(&keys_from) {
            for entry in entries {
                let from = entry?.path();
                if let Some(name) = from.file_name().filter(|_| from.is_file()) {
                    let bytes = std::fs::read(&from)?;
                    signer_node::tls::write_new_file(&keys_to.join(name), &bytes, 0o600)?;
                }
            }
        }
        let mut config = first_config.for_joining_node(PeerConfig {
            id: node.id,
            client_addr: node.client_addr,
            peer_addr: node.peer_addr,
        });
        // Metrics on loopback above every member's ports, as `signer init` places them, so
        // that nodes sharing a machine (tests, namespaces) do not collide either.
        if let Some(metrics) = config.metrics_listen.as_mut() {
            let top = config
                .peers
                .iter()
                .flat_map(|p| [p.client_addr.port(), p.peer_addr.port()])
                .max()
                .unwrap_or(0);
            let port = u16::try_from(node.id)
                .ok()
                .and_then(|id| top.checked_add(id))
                .context("no metrics port left above the members' ports")?;
            metrics.set_port(port);
        }
        config.tls.cert = PathBuf::from(format!("../pki/node-{}.pem", node.id));
        config.tls.key = PathBuf::from(format!("../pki/node-{}.key", node.id));
        config.validate()?;
        let path = node_dir.join("node.toml");
        let text = format!(
            "# Node {} of cluster {} (added by `signer add-node`; a member once the admins \
             approve `signerctl node add`).\n# Relative paths are relative to this file's \
             directory.\n{}",
            node.id,
            config.cluster_id,
            config.to_toml()?
        );
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        let bundle = bundle::write(dir, &config, install_root, signer_path)?;
        ClusterDescriptor::record_node(&dir.join(DESCRIPTOR_FILE), node.clone())?;
        Ok(bundle)
    })();
    if written.is_err() {
        // Nothing half-written stays behind (a certificate issued here included).
        let _ = std::fs::remove_dir_all(&node_dir);
        let _ = std::fs::remove_dir_all(dir.join(format!("hosts/node-{}", node.id)));
        if issued {
            let _ = std::fs::remove_file(pki.node_cert_path(node.id));
            let _ = std::fs::remove_file(pki.node_key_path(node.id));
        }
    }
    written
}
