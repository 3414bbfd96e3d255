//! `signer init`: write a new cluster's directory — PKI, node configs, validator key files and
//! `cluster.json` — for nodes at given addresses, and one bundle per host to install
//! (`bundle`, with its systemd unit from `unit`), without starting anything.
//!
//! Owns: parsing `--node`, `--admin` and KEK options, setting the custody and the first admins
//! in every node config, and reporting what was written. Must not: overwrite an existing
//! directory or start processes (that is the operator's service manager, or `signer
//! dev-cluster` on one machine).

pub mod add_node;
mod bundle;
mod unit;

pub use bundle::InstallRoot;

use anyhow::{anyhow, bail, Context, Result};
use signer_node::client::{ClusterDescriptor, NodeEndpoint, DESCRIPTOR_FILE};
use signer_node::config::admin::BootstrapAdmin;
use signer_node::config::NodeConfig;
use signer_node::custody::KekConfig;
use signer_node::devcluster::{write_cluster, LayoutOptions, ADMIN};
use signer_node::protection::Profile;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Where every node's key-encryption key comes from.
pub enum Kek {
    /// None yet: the operator adds `[kek]` to every node.toml before keys are generated.
    None,
    /// A new local KEK file, copied into every bundle (development and tests).
    Local,
    /// An AWS KMS symmetric key.
    AwsKms {
        key_id: String,
        region: Option<String>,
        endpoint_url: Option<String>,
    },
}

/// A first admin given by their YubiKey's attestation: slot 9c and device (f9) certificates
/// (DER files, e.g. from `ykman piv keys attest 9c` and `ykman piv certificates export f9`).
#[derive(Clone, Debug)]
pub struct AttestedAdmin {
    pub name: String,
    pub slot_certificate: PathBuf,
    pub device_certificate: PathBuf,
}

/// Everything `signer init` is told.
pub struct InitOptions {
    pub cluster_id: Option<String>,
    pub nodes: Vec<NodeEndpoint>,
    pub keys: Vec<(String, Profile)>,
    pub kek: Kek,
    pub admins: Vec<AttestedAdmin>,
    /// Approvals an action needs; default: a majority of `admins`.
    pub threshold: Option<u32>,
    /// Further attestation roots (PEM), besides Yubico's.
    pub attestation_roots: Vec<PathBuf>,
    pub install_root: InstallRoot,
    /// Where the `signer` binary is installed on the hosts.
    pub signer_path: PathBuf,
}

/// Parse `NAME=SLOT_DER,DEVICE_DER`.
pub fn parse_admin(spec: &str) -> Result<AttestedAdmin, String> {
    let (name, files) = spec
        .split_once('=')
        .ok_or_else(|| format!("{spec:?}: expected NAME=SLOT_CERT.der,DEVICE_CERT.der"))?;
    let (slot, device) = files
        .split_once(',')
        .ok_or_else(|| format!("{spec:?}: expected SLOT_CERT.der,DEVICE_CERT.der after '='"))?;
    signer_node::tls::check_client_name(name).map_err(|e| format!("{spec:?}: {e}"))?;
    Ok(AttestedAdmin {
        name: name.to_owned(),
        slot_certificate: slot.into(),
        device_certificate: device.into(),
    })
}

/// Parse `ID=CLIENT_ADDR,PEER_ADDR`, e.g. `1=10.0.0.1:7100,10.0.0.1:7101`.
pub fn parse_node(spec: &str) -> Result<NodeEndpoint, String> {
    let (id, addrs) = spec
        .split_once('=')
        .ok_or_else(|| format!("{spec:?}: expected ID=CLIENT_ADDR,PEER_ADDR"))?;
    let id: u64 = id
        .parse()
        .ok()
        .filter(|i| *i >= 1)
        .ok_or_else(|| format!("{spec:?}: node id must be an integer ≥ 1"))?;
    let (client, peer) = addrs
        .split_once(',')
        .ok_or_else(|| format!("{spec:?}: expected CLIENT_ADDR,PEER_ADDR after '='"))?;
    let parse = |a: &str, what: &str| -> Result<SocketAddr, String> {
        a.parse()
            .map_err(|_| format!("{spec:?}: {what} address {a:?} is not IP:PORT"))
    };
    Ok(NodeEndpoint {
        id,
        client_addr: parse(client, "client")?,
        peer_addr: parse(peer, "peer")?,
        web3signer_url: None,
    })
}

/// Parse `KEY_ID:PROFILE`, e.g. `validator-7:eth2`.
pub fn parse_key(spec: &str) -> Result<(String, Profile), String> {
    let (id, profile) = spec
        .rsplit_once(':')
        .ok_or_else(|| format!("{spec:?}: expected KEY_ID:PROFILE (profile eth2 or espresso)"))?;
    if id.is_empty()
        || id.len() > 128
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(format!(
            "{spec:?}: key ids use letters, digits, '-', '_' and '.' (at most 128)"
        ));
    }
    Ok((id.to_owned(), profile.parse()?))
}

/// Write the cluster directory and the host bundles.
pub fn run(dir: &Path, opts: InitOptions) -> Result<()> {
    let nodes = &opts.nodes;
    if ![1, 3, 5].contains(&nodes.len()) {
        bail!(
            "a cluster has 3 or 5 nodes (1 for experiments); got {}",
            nodes.len()
        );
    }
    if dir.exists() {
        bail!(
            "{} already exists; `signer init` never overwrites",
            dir.display()
        );
    }
    if !opts.signer_path.is_absolute() {
        bail!(
            "--signer-path {}: must be absolute (the unit's ExecStart)",
            opts.signer_path.display()
        );
    }
    let threshold = match (opts.threshold, opts.admins.len() as u32) {
        (_, 0) if !opts.attestation_roots.is_empty() => {
            bail!("--attestation-root is for --admin attestations; no --admin given")
        }
        (Some(_), 0) => bail!("--threshold applies to --admin admins; no --admin given"),
        (Some(m), n) if m == 0 || m > n => {
            bail!("--threshold {m}: must be between 1 and the {n} --admin admin(s)")
        }
        (Some(m), _) => m,
        (None, n) => n / 2 + 1,
    };
    if !opts.admins.is_empty() {
        // The node's own check, before anything is written: a certificate that does not
        // verify fails here, not at the first start on three hosts.
        attested_admins(&opts, threshold, Path::new(""))
            .bootstrap(
                "init",
                signer_node::bytes::FixedBytes(
                    signer_node::config::MAINNET_GENESIS_VALIDATORS_ROOT,
                ),
            )
            .map_err(|e| anyhow!("--admin: {e}"))?;
    }
    // From here on, a failure removes what was written: the directory did not exist.
    let written = write(dir, &opts, threshold);
    if written.is_err() {
        let _ = std::fs::remove_dir_all(dir);
    }
    written?;
    report(dir, &opts, threshold);
    Ok(())
}

/// The admin settings for `opts.admins`, their files named under `files` (the directory
/// `DIR/admins` as a node config sees it; empty: the files as given).
fn attested_admins(
    opts: &InitOptions,
    threshold: u32,
    files: &Path,
) -> signer_node::config::admin::AdminConfig {
    let at = |given: &Path, copied: String| match files.as_os_str().is_empty() {
        true => given.to_owned(),
        false => files.join(copied),
    };
    signer_node::config::admin::AdminConfig {
        admins: opts
            .admins
            .iter()
            .map(|a| BootstrapAdmin {
                name: a.name.clone(),
                key: None,
                slot_certificate: Some(at(&a.slot_certificate, admin_file(a, "9c"))),
                device_certificate: Some(at(&a.device_certificate, admin_file(a, "f9"))),
            })
            .collect(),
        attestation_roots: opts
            .attestation_roots
            .iter()
            .enumerate()
            .map(|(i, root)| at(root, format!("root-{}.pem", i + 1)))
            .collect(),
        threshold,
        require_attestation: true,
        ..signer_node::config::admin::AdminConfig::dev()
    }
}

/// Write the cluster directory, the node configs and the host bundles.
fn write(dir: &Path, opts: &InitOptions, threshold: u32) -> Result<()> {
    let nodes = &opts.nodes;
    let local_kek = matches!(opts.kek, Kek::Local);
    write_cluster(
        dir,
        LayoutOptions {
            endpoints: nodes.clone(),
            keys: opts.keys.clone(),
            cluster_id: opts.cluster_id.clone(),
            generated_by: "`signer init`",
            local_kek,
            // The operator adds `[web3signer]` where validator clients should call.
            web3signer: false,
        },
    )
    .with_context(|| format!("writing {}", dir.display()))?;
    if !opts.admins.is_empty() {
        replace_dev_admin(dir, &opts.admins)?;
    }
    let mut configs = Vec::new();
    for n in nodes {
        let path = dir.join(format!("node-{}", n.id)).join("node.toml");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        // Parsed against "" so that its paths stay relative to node.toml.
        let mut config = NodeConfig::from_toml(&text, Path::new(""))
            .with_context(|| format!("reading {}", path.display()))?;
        if let Kek::AwsKms {
            key_id,
            region,
            endpoint_url,
        } = &opts.kek
        {
            config.kek = Some(KekConfig::AwsKms {
                key_id: key_id.clone(),
                region: region.clone(),
                endpoint_url: endpoint_url.clone(),
            });
        }
        if !opts.admins.is_empty() {
            let clients = std::mem::take(&mut config.admin.clients);
            config.admin = signer_node::config::admin::AdminConfig {
                clients,
                ..attested_admins(opts, threshold, Path::new("../admins"))
            };
        }
        let header = text
            .lines()
            .take_while(|l| l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(&path, format!("{header}\n{}", config.to_toml()?))
            .with_context(|| format!("writing {}", path.display()))?;
        configs.push(config);
    }
    if !opts.admins.is_empty() {
        copy_attestations(dir, opts)?;
    }
    for config in &configs {
        bundle::write(dir, config, &opts.install_root, &opts.signer_path)?;
    }
    Ok(())
}

fn admin_file(a: &AttestedAdmin, slot: &str) -> String {
    format!("{}-{slot}.der", a.name)
}

/// Copy the attestation files and roots into `DIR/admins`, where the node configs name them.
fn copy_attestations(dir: &Path, opts: &InitOptions) -> Result<()> {
    let admins = dir.join("admins");
    std::fs::create_dir(&admins).with_context(|| format!("creating {}", admins.display()))?;
    let copy = |from: &Path, name: String| -> Result<()> {
        let bytes = std::fs::read(from).with_context(|| format!("reading {}", from.display()))?;
        signer_node::tls::write_new_file(&admins.join(name), &bytes, 0o644)
            .map_err(|e| anyhow!("{e}"))
    };
    for a in &opts.admins {
        copy(&a.slot_certificate, admin_file(a, "9c"))?;
        copy(&a.device_certificate, admin_file(a, "f9"))?;
    }
    for (i, root) in opts.attestation_roots.iter().enumerate() {
        copy(root, format!("root-{}.pem", i + 1))?;
    }
    Ok(())
}

/// With attested admins, the development admin (`admin-1`, a key file) is not an admin: issue
/// each attested admin a client certificate, and drop `admin-1`'s key file and record.
fn replace_dev_admin(dir: &Path, admins: &[AttestedAdmin]) -> Result<()> {
    let pki = signer_node::tls::DevPki::open(&dir.join("pki"))?;
    let descriptor_path = dir.join(DESCRIPTOR_FILE);
    for a in admins {
        pki.issue_client(&a.name)
            .with_context(|| format!("issuing {}'s client certificate", a.name))?;
        ClusterDescriptor::record_client(
            &descriptor_path,
            &a.name,
            signer_node::client::ClientFiles {
                cert: PathBuf::from(format!("pki/client-{}.pem", a.name)),
                key: PathBuf::from(format!("pki/client-{}.key", a.name)),
            },
        )?;
    }
    if let Some(key) = ClusterDescriptor::forget_admin(&descriptor_path, ADMIN)? {
        let key = dir.join(key);
        std::fs::remove_file(&key).with_context(|| format!("removing {}", key.display()))?;
    }
    Ok(())
}

fn report(dir: &Path, opts: &InitOptions, threshold: u32) {
    let nodes = &opts.nodes;
    signer_client::outln!("wrote a new cluster in {}:", dir.display());
    for n in nodes {
        signer_client::outln!(
            "  node-{}/node.toml   client {}  peer {}{}",
            n.id,
            n.client_addr,
            n.peer_addr,
            if n.id == nodes[0].id {
                "  (bootstraps the cluster)"
            } else {
                ""
            }
        );
    }
    signer_client::outln!(
        "  hosts/node-<id>/     one bundle per host: config, certificates, keys (0600, in 0700 \
         directories) and a hardened systemd unit; see its INSTALL.md"
    );
    signer_client::outln!(
        "  pki/                 CA and client certificates (keep pki/ca.key offline)"
    );
    signer_client::outln!("  cluster.json         endpoints for signerctl --dir");
    match &opts.kek {
        Kek::None => signer_client::outln!(
            "  no KEK: add the same `[kek]` (AWS KMS) to every node.toml before generating or \
             importing keys with `signerctl key …`"
        ),
        Kek::Local => signer_client::outln!(
            "  kek.key              a local KEK, copied to every host (development: it decrypts \
             every registry key)"
        ),
        Kek::AwsKms { key_id, .. } => {
            signer_client::outln!("  KEK: AWS KMS key {key_id} on every node")
        }
    }
    if opts.admins.is_empty() {
        signer_client::outln!(
            "  admin-1.key          the development admin (approves alone); move to YubiKeys \
             with `signerctl admin enroll --on-yubikey`"
        );
    } else {
        let names: Vec<&str> = opts.admins.iter().map(|a| a.name.as_str()).collect();
        signer_client::outln!(
            "  admins {} by YubiKey attestation; every action needs {threshold} of their \
             approvals",
            names.join(", ")
        );
    }
    for (id, profile) in &opts.keys {
        signer_client::outln!("  key {id} ({profile}) in every node's keys/ directory");
    }
    if !opts.keys.is_empty() {
        eprintln!(
            "warning: --key wrote {} secret key(s) in PLAINTEXT (mode 0600) to every node's \
             keys/ directory: development only. In production, generate or import keys in the \
             cluster (`signerctl key generate|import`), sealed under a KMS KEK.",
            opts.keys.len()
        );
    }
    signer_client::outln!();
    signer_client::outln!(
        "Next: copy hosts/node-<id>/ to each host and follow its INSTALL.md; start the \
         bootstrapping node first."
    );
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn node_and_key_specs_parse_or_explain() {
        let n = parse_node("2=10.0.0.2:7100,10.0.0.2:7101").unwrap();
        assert_eq!(
            (n.id, n.client_addr.port(), n.peer_addr.port()),
            (2, 7100, 7101)
        );
        assert!(parse_node("0=1.2.3.4:1,1.2.3.4:2")
            .unwrap_err()
            .contains("≥ 1"));
        assert!(parse_node("1=1.2.3.4:1")
            .unwrap_err()
            .contains("CLIENT_ADDR,PEER_ADDR"));
        assert!(parse_node("1=host:1,1.2.3.4:2")
            .unwrap_err()
            .contains("not IP:PORT"));
        assert_eq!(
            parse_key("v-1:eth2").unwrap(),
            ("v-1".into(), Profile::Eth2)
        );
        assert!(parse_key("v 1:eth2").is_err());
        assert!(parse_key("v1:cosmos")
            .unwrap_err()
            .contains("unknown profile"));
    }
}
