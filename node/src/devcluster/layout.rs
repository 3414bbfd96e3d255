//! Writing a new dev-cluster directory: PKI, admin key, local KEK, demo keys, node configs,
//! descriptor.
//!
//! Owns: what goes where in DIR (see the parent module's doc) and the generated node configs.
//! Must not: overwrite anything (every file is created new) or start processes.

use super::{io, DevClusterError, ADMIN, AUDITOR, DEMO_KEYS, KEK_FILE, SEQUENCER};
use crate::client::{AdminKey, ClientFiles, ClusterDescriptor, NodeEndpoint};
use crate::config::{NodeConfig, PeerConfig, TlsPaths, Web3SignerConfig};
use crate::custody::{KekConfig, LocalKek};
use crate::keyring::KeyFile;
use crate::protection::Profile;
use crate::tls::DevPki;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// A second admin client identity, so that M-of-N approvals can be tried on a dev cluster: it
/// has a client certificate but is not enrolled (`signerctl admin enroll --name admin-2 …`).
pub const SECOND_ADMIN: &str = "admin-2";

pub(super) fn node_endpoints(nodes: usize, base_port: u16) -> Vec<NodeEndpoint> {
    (1..=nodes as u64)
        .map(|id| {
            let client = base_port + 2 * (id as u16 - 1);
            NodeEndpoint {
                id,
                client_addr: SocketAddr::from(([127, 0, 0, 1], client)),
                peer_addr: SocketAddr::from(([127, 0, 0, 1], client + 1)),
                web3signer_url: None,
            }
        })
        .collect()
}

/// What a new cluster directory holds besides the PKI and node configs.
pub struct LayoutOptions<'a> {
    /// Nodes with their addresses.
    pub endpoints: Vec<NodeEndpoint>,
    /// Validator keys to generate (copied into every node's keys dir).
    pub keys: Vec<(String, crate::protection::Profile)>,
    /// Cluster name; a random `dev-…` name when `None`.
    pub cluster_id: Option<String>,
    /// First line of every generated node.toml.
    pub generated_by: &'a str,
    /// Create a local KEK file, `DIR/kek.key`, and configure every node with it (development
    /// only: the file decrypts every registry key). Without it the nodes have no `kek` and
    /// serve only key files until one is configured.
    pub local_kek: bool,
    /// Serve the Web3Signer-compatible API on every node (HTTPS on 127.0.0.1, one port per
    /// node after the metrics ports), and write each URL into `cluster.json`.
    pub web3signer: bool,
}

/// Write a complete dev-cluster directory at `root` (which must not exist).
pub(super) fn build_layout(
    root: &Path,
    nodes: usize,
    base_port: u16,
) -> Result<(), DevClusterError> {
    write_cluster(
        root,
        LayoutOptions {
            endpoints: node_endpoints(nodes, base_port),
            keys: DEMO_KEYS
                .iter()
                .map(|(id, p)| ((*id).to_owned(), *p))
                .collect(),
            cluster_id: None,
            generated_by: "`signer dev-cluster up`",
            local_kek: true,
            web3signer: true,
        },
    )
}

/// Write a new cluster directory at `root`: PKI (CA, node certificates, the `seq-1`,
/// `admin-1`, `auditor-1` and `admin-2` client certificates), a soft admin key, optionally a
/// local KEK (`kek.key`), the keys in `options`, one `node-<id>/node.toml` per node and
/// `cluster.json`. Nothing existing is overwritten.
pub fn write_cluster(root: &Path, options: LayoutOptions<'_>) -> Result<(), DevClusterError> {
    std::fs::create_dir_all(root).map_err(io(root))?;
    let mut endpoints = options.endpoints;
    let ids: Vec<u64> = endpoints.iter().map(|n| n.id).collect();
    let pki = DevPki::create(
        &root.join("pki"),
        &ids,
        &[SEQUENCER, ADMIN, AUDITOR, SECOND_ADMIN],
    )?;

    // One KEK for the whole cluster: every node must open every registry record.
    let kek = if options.local_kek {
        LocalKek::create(&root.join(KEK_FILE))?;
        Some(KekConfig::Local {
            path: Path::new("..").join(KEK_FILE),
        })
    } else {
        None
    };

    // The dev admin's soft key, for the admin plane.
    let admin = crate::scheme::ed25519::SecretKey::generate(&mut rand::rngs::OsRng);
    let seed = zeroize::Zeroizing::new(format!("{}\n", hex::encode(*admin.to_bytes())));
    let admin_file = format!("{ADMIN}.key");
    crate::tls::write_new_file(&root.join(&admin_file), seed.as_bytes(), 0o600)?;

    // The admin plane's initial state: admin-1 (this soft key) alone approves (1 of 1), and
    // the dev sequencer may use every key.
    let admin_config = crate::config::admin::AdminConfig {
        admins: vec![crate::config::admin::BootstrapAdmin {
            name: ADMIN.to_owned(),
            key: Some(format!(
                "ed25519:{}",
                hex::encode(admin.public_key().to_bytes())
            )),
            slot_certificate: None,
            device_certificate: None,
        }],
        clients: vec![crate::config::admin::BootstrapClient {
            identity: SEQUENCER.to_owned(),
            keys: vec![crate::admin::ALL_KEYS.to_owned()],
            profiles: vec![Profile::Eth2, Profile::Espresso],
            rate_per_second: 0,
            rate_burst: 0,
            raw_roots: false,
        }],
        ..crate::config::admin::AdminConfig::dev()
    };

    let keys = options
        .keys
        .iter()
        .map(|(id, profile)| KeyFile::generate(id, *profile))
        .collect::<Result<Vec<_>, _>>()?;
    let cluster_id = options
        .cluster_id
        .unwrap_or_else(|| format!("dev-{}", hex::encode(rand::random::<[u8; 4]>())));
    let peers: Vec<PeerConfig> = endpoints
        .iter()
        .map(|n| PeerConfig {
            id: n.id,
            peer_addr: n.peer_addr,
            client_addr: n.client_addr,
        })
        .collect();
    // Metrics endpoints on loopback, one port per node after the cluster's highest client or
    // peer port (7106, 7107, 7108 for a dev cluster at 7100), so nodes sharing a host (a dev
    // cluster) do not collide; an operator moves them with `metrics_listen`.
    let top_port = endpoints
        .iter()
        .flat_map(|n| [n.client_addr.port(), n.peer_addr.port()])
        .max()
        .unwrap_or(0);
    // The Web3Signer-compatible API after those (7109, 7110, 7111 for a dev cluster at 7100).
    let node_count = endpoints.len();
    for (i, node) in endpoints.iter_mut().enumerate() {
        let loopback_after_top = |n: usize| {
            u16::try_from(n)
                .ok()
                .and_then(|n| top_port.checked_add(n))
                .map(|port| SocketAddr::from(([127, 0, 0, 1], port)))
        };
        let metrics_listen = loopback_after_top(i + 1);
        let web3signer = match options.web3signer {
            true => loopback_after_top(node_count + i + 1).map(Web3SignerConfig::https),
            false => None,
        };
        node.web3signer_url = web3signer.as_ref().map(|w| format!("https://{}", w.listen));
        let node_dir = root.join(format!("node-{}", node.id));
        let keys_dir = node_dir.join("keys");
        std::fs::create_dir_all(&keys_dir).map_err(io(&keys_dir))?;
        std::fs::create_dir_all(node_dir.join("data")).map_err(io(&node_dir))?;
        for key in &keys {
            key.write_new(&keys_dir.join(format!("{}.key", key.key_id)))?;
        }
        let relative = |p: PathBuf| {
            Path::new("..")
                .join("pki")
                .join(p.file_name().unwrap_or_default())
        };
        let tls = TlsPaths {
            ca: relative(pki.ca_cert_path()),
            cert: relative(pki.node_cert_path(node.id)),
            key: relative(pki.node_key_path(node.id)),
        };
        // Paths relative to node.toml: `data`, and `keys` beside it (the builder's default).
        let config = NodeConfig::builder(node.id, cluster_id.clone(), "data", tls, peers.clone())
            .metrics_listen(metrics_listen)
            .web3signer(web3signer)
            .kek(kek.clone())
            .admin(admin_config.clone())
            .build()?;
        let text = format!(
            "# Node {} of cluster {} (generated by {}).\n\
             # Relative paths are relative to this file's directory.\n{}",
            node.id,
            config.cluster_id,
            options.generated_by,
            config.to_toml()?
        );
        let path = node_dir.join("node.toml");
        std::fs::write(&path, text).map_err(io(&path))?;
    }
    let descriptor = ClusterDescriptor {
        cluster_id,
        nodes: endpoints,
        ca: PathBuf::from("pki/ca.pem"),
        clients: [SEQUENCER, ADMIN, AUDITOR, SECOND_ADMIN]
            .into_iter()
            .map(|name| {
                let files = ClientFiles {
                    cert: PathBuf::from(format!("pki/client-{name}.pem")),
                    key: PathBuf::from(format!("pki/client-{name}.key")),
                };
                (name.to_owned(), files)
            })
            .collect(),
        admins: BTreeMap::from([(
            ADMIN.to_owned(),
            AdminKey {
                key: PathBuf::from(admin_file),
                public_key: format!("0x{}", hex::encode(admin.public_key().to_bytes())),
            },
        )]),
        keys: keys.iter().map(|k| k.key_id.clone()).collect(),
    };
    descriptor.save(&root.join(crate::client::DESCRIPTOR_FILE))?;
    Ok(())
}
