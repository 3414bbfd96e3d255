//! One self-contained bundle per host, written by `signer init` under `DIR/hosts/node-<id>/`:
//! the host's files at the paths they take once installed, so that installing is copying the
//! tree onto the host's root.
//!
//! ```text
//! hosts/node-<id>/                                  0700
//!   INSTALL.md                                      what to run on the host
//!   etc/quorum-signer/node.toml                     the config, every path absolute
//!   etc/quorum-signer/tls/{ca.pem,node.pem}         certificates
//!   etc/quorum-signer/tls/node.key                  0600
//!   etc/quorum-signer/kek.key                       0600, only with --local-kek
//!   etc/quorum-signer/keys/*.key                    0600, only with --key (development)
//!   etc/quorum-signer/admins/*.der, roots/*.pem     attestation files of the first admins
//!   etc/systemd/system/quorum-signer.service        the hardened unit
//!   var/lib/quorum-signer/                          0700, the data directory
//! ```
//!
//! Owns: the bundle's layout and file modes. Must not: write outside `DIR/hosts`, hold the CA
//! key or any client key, or change the cluster's node configs.

use super::unit::{self, SERVICE, USER};
use anyhow::{anyhow, Context, Result};
use signer_node::config::NodeConfig;
use signer_node::custody::KekConfig;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Where a bundle's files go once installed: the host's root, or (several hosts on one machine,
/// tests) a directory per node, `{id}` replaced by the node id.
pub struct InstallRoot(pub String);

impl InstallRoot {
    fn for_node(&self, id: u64) -> PathBuf {
        PathBuf::from(self.0.replace("{id}", &id.to_string()))
    }
}

/// Paths inside the install root.
const ETC: &str = "etc/quorum-signer";
const DATA: &str = "var/lib/quorum-signer";
const UNIT_DIR: &str = "etc/systemd/system";

/// Write `DIR/hosts/node-<id>/` from the cluster's `node-<id>/node.toml` (paths relative to
/// it) for a signer binary installed at `signer`.
pub fn write(
    dir: &Path,
    config: &NodeConfig,
    install_root: &InstallRoot,
    signer: &Path,
) -> Result<PathBuf> {
    let id = config.node_id;
    let node_dir = dir.join(format!("node-{id}"));
    let bundle = dir.join("hosts").join(format!("node-{id}"));
    let root = install_root.for_node(id);
    let installed = |p: &str| root.join(p);
    make_dir(&bundle, 0o700)?;
    // Only the bundle's root and what the node owns are 0700: the others stand for system
    // directories (etc, etc/systemd/system, var/lib) and keep the usual 0755.
    for (sub, mode) in [
        ("etc", 0o755),
        (ETC, 0o700),
        (&format!("{ETC}/tls"), 0o700),
        (&format!("{ETC}/keys"), 0o700),
        ("etc/systemd", 0o755),
        (UNIT_DIR, 0o755),
        ("var", 0o755),
        ("var/lib", 0o755),
        (DATA, 0o700),
    ] {
        make_dir(&bundle.join(sub), mode)?;
    }
    let source = |p: &Path| node_dir.join(p);
    let mut host = config.clone();
    host.data_dir = installed(DATA);
    host.keys_dir = installed(&format!("{ETC}/keys"));
    for (field, name, mode) in [
        (&mut host.tls.ca, "ca.pem", 0o644),
        (&mut host.tls.cert, "node.pem", 0o644),
        (&mut host.tls.key, "node.key", 0o600),
    ] {
        let to = format!("{ETC}/tls/{name}");
        copy(&source(field), &bundle.join(&to), mode)?;
        *field = installed(&to);
    }
    if let Some(KekConfig::Local { path }) = &mut host.kek {
        let to = format!("{ETC}/kek.key");
        copy(&source(path), &bundle.join(&to), 0o600)?;
        *path = installed(&to);
    }
    // Development key files, if any.
    let keys_from = source(&config.keys_dir);
    if let Ok(entries) = std::fs::read_dir(&keys_from) {
        for entry in entries {
            let entry = entry.with_context(|| format!("reading {}", keys_from.display()))?;
            let to = format!("{ETC}/keys/{}", entry.file_name().to_string_lossy());
            copy(&entry.path(), &bundle.join(to), 0o600)?;
        }
    }
    // The first admins' attestation files and extra roots.
    let attested = host
        .admin
        .admins
        .iter()
        .any(|a| a.slot_certificate.is_some());
    if attested || !host.admin.attestation_roots.is_empty() {
        make_dir(&bundle.join(format!("{ETC}/admins")), 0o700)?;
    }
    for admin in &mut host.admin.admins {
        for (file, suffix) in [
            (&mut admin.slot_certificate, "9c"),
            (&mut admin.device_certificate, "f9"),
        ] {
            if let Some(path) = file {
                let to = format!("{ETC}/admins/{}-{suffix}.der", admin.name);
                copy(&source(path), &bundle.join(&to), 0o644)?;
                *path = installed(&to);
            }
        }
    }
    for (i, path) in host.admin.attestation_roots.iter_mut().enumerate() {
        let to = format!("{ETC}/admins/root-{}.pem", i + 1);
        copy(&source(path), &bundle.join(&to), 0o644)?;
        *path = installed(&to);
    }
    let config_path = installed(&format!("{ETC}/node.toml"));
    let text = format!(
        "# Node {id} of cluster {} on its host (written by `signer init`).\n{}",
        host.cluster_id,
        host.to_toml()?
    );
    write_file(
        &bundle.join(format!("{ETC}/node.toml")),
        text.as_bytes(),
        0o644,
    )?;
    let description = format!("Quorum Signer node {id} of cluster {}", host.cluster_id);
    let unit_text = unit::unit(&description, signer, &config_path, &installed(DATA));
    write_file(
        &bundle.join(format!("{UNIT_DIR}/{SERVICE}.service")),
        unit_text.as_bytes(),
        0o644,
    )?;
    write_file(
        &bundle.join("INSTALL.md"),
        install_notes(id, &root, signer).as_bytes(),
        0o644,
    )?;
    Ok(bundle)
}

fn install_notes(id: u64, root: &Path, signer: &Path) -> String {
    let root = root.display();
    format!(
        "\
# Installing node {id}

On node {id}'s host, as root, in this directory (copied there; keep it 0700):

```
useradd --system --no-create-home --shell /usr/sbin/nologin {USER}
install -m 0755 signer {signer}                  # the release binary
install -d -m 0700 -o {USER} -g {USER} {root}/{ETC} {root}/{DATA}
cp -a {ETC}/. {root}/{ETC}/
chown -R {USER}: {root}/{ETC}
install -m 0644 {UNIT_DIR}/{SERVICE}.service {root}/{UNIT_DIR}/
systemctl daemon-reload
systemctl enable --now {SERVICE}
journalctl -u {SERVICE} -f                       # it logs JSON lines
```

The node serves clients and peers on the addresses in node.toml; open those ports between
the hosts (peers) and from the sequencers (clients) only. Never copy another node's
var/lib/quorum-signer here: a node's data directory is its own, and a copied one can sign
what the original already signed.
",
        signer = signer.display(),
    )
}

fn make_dir(path: &Path, mode: u32) -> Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(path)
        .with_context(|| format!("creating {}", path.display()))?;
    // The umask may have narrowed the mode; set it exactly.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {}", path.display()))
}

fn copy(from: &Path, to: &Path, mode: u32) -> Result<()> {
    let bytes = std::fs::read(from).with_context(|| format!("reading {}", from.display()))?;
    write_file(to, &bytes, mode)
}

fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    signer_node::tls::write_new_file(path, bytes, mode)
        .map_err(|e| anyhow!("writing {}: {e}", path.display()))
}
