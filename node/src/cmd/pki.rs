//! `signer pki issue`: a client certificate for a new identity (a sequencer or validator
//! client, an admin, an auditor), issued by the cluster CA where its key is kept.
//!
//! Owns: the subcommand's arguments and help, what `--role` means (below), where the files go
//! and what is printed. Must not: run on a node or need one (it reads only the CA's files and
//! writes new ones), grant anything (grants, admin enrollment and revocations are approved
//! actions in the cluster: `signerctl client grant`, `admin enroll`, `cert revoke`), issue node
//! certificates, or overwrite a file.
//!
//! Roles. Every certificate is the same kind: CN and first DNS SAN the name, client
//! authentication only, from the cluster CA. What an identity may do is decided by the
//! cluster's replicated state, so `--role` decides only which names are allowed and what to do
//! next:
//! - `sequencer` (a sequencer or validator client that signs): any client name except
//!   `auditor-…` (which may read the audit log); next, `signerctl client grant NAME`;
//! - `admin`: the same names; next, `signerctl admin enroll --name NAME` (approved by the
//!   admins), after which the identity may propose and approve;
//! - `auditor`: `auditor-…` names only: the Audit service admits those (and enrolled admins);
//!   nothing to grant.
//!
//! No name may start with `node-` (those are node identities, and a client certificate must not
//! pass for a node).
//!
//! The CA is the one `signer init` or `signer dev-cluster` made ([`DevPki`]): the issuer is
//! rebuilt from its name (CN) and key, as for the certificates it issued first. Certificates
//! are valid for ten years, like those.

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use signer_node::admin::Fingerprint;
use signer_node::client::{ClientFiles, ClusterDescriptor, DESCRIPTOR_FILE};
use signer_node::tls::DevPki;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `signer pki issue --help`: examples.
const ISSUE_EXAMPLES: &str = "\
Examples:
  # a dev cluster or a `signer init` directory: CA in DIR/pki, files in DIR/pki, cluster.json
  # updated so that `signerctl --dir DIR --client seq-2` finds them
  signer pki issue --dir /tmp/qs --name seq-2 --role sequencer
  signerctl --dir /tmp/qs client grant seq-2 --keys '*' --profiles eth2

  # the CA kept elsewhere (offline): write the pair to OUT for the client's host
  signer pki issue --ca-dir /secure/ca --out ./vc-1 --name vc-1 --role sequencer

Exit codes: 0 issued; 1 refused (the message says why: a file exists, a node or invalid
name, no CA key here); 2 malformed arguments.";

/// The cluster PKI, where the CA key is kept (never on a node).
#[derive(Subcommand)]
pub enum PkiCommand {
    /// Issue a client certificate for a new identity from the cluster CA.
    ///
    /// Run it where the CA key (ca.key) is kept, never on a node; no node needs to run. It
    /// writes client-NAME.pem and client-NAME.key (the new private key, mode 0600) and never
    /// overwrites a file: to issue NAME again, revoke the old certificate (`signerctl cert
    /// revoke --cert FILE`, approved by the admins) and move its files away first.
    ///
    /// The certificate names NAME (CN and DNS SAN) and is for client authentication only.
    /// What NAME may do is decided by the cluster: --role sequencer (a sequencer or validator
    /// client: then `signerctl client grant NAME`), admin (then `signerctl admin enroll
    /// --name NAME`) or auditor (auditor-… names, which may read the audit log). Names are 1
    /// to 63 lower-case letters, digits and inner '-'; node-… names are refused (node
    /// identities), and auditor-… names are for --role auditor only.
    #[command(after_long_help = ISSUE_EXAMPLES)]
    Issue(IssueArgs),
}

/// What the identity is for (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Role {
    /// A sequencer or validator client that signs, once granted (`signerctl client grant`).
    Sequencer,
    /// An admin, once enrolled (`signerctl admin enroll`).
    Admin,
    /// An auditor: `auditor-…` names, which may read the audit log.
    Auditor,
}

/// `signer pki issue`.
#[derive(Args)]
#[command(group(clap::ArgGroup::new("ca").required(true).args(["dir", "ca_dir"])))]
pub struct IssueArgs {
    /// The identity: the name in the certificate (e.g. seq-2, vc-1, admin-3, auditor-2).
    #[arg(long, value_name = "NAME")]
    pub name: String,
    /// What the identity is for: sequencer, admin or auditor.
    #[arg(long, value_enum)]
    pub role: Role,
    /// A cluster directory (`signer init`, `signer dev-cluster up`): the CA in DIR/pki, the
    /// files written to DIR/pki and recorded in DIR/cluster.json for `signerctl --client`.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["ca_dir", "out"])]
    pub dir: Option<PathBuf>,
    /// The directory holding the CA (ca.pem and ca.key), when it is not in a cluster
    /// directory: the CA `signer init` or `signer dev-cluster` made (its pki/ directory,
    /// moved offline).
    #[arg(long, value_name = "DIR", requires = "out")]
    pub ca_dir: Option<PathBuf>,
    /// With --ca-dir: where to write client-NAME.pem and client-NAME.key (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// Run one `pki` subcommand.
pub fn run(command: PkiCommand) -> Result<ExitCode> {
    match command {
        PkiCommand::Issue(args) => issue(&args),
    }
}

/// Refuse a name `role` may not have (beyond what every client name must be).
fn check_role_name(name: &str, role: Role) -> Result<()> {
    signer_node::tls::check_client_name(name)?;
    let auditor = name.starts_with("auditor-");
    match role {
        Role::Auditor if !auditor => bail!(
            "invalid identity {name:?} for --role auditor: the Audit service admits auditor-… \
             identities (and enrolled admins); name it auditor-{name}"
        ),
        Role::Sequencer | Role::Admin if auditor => bail!(
            "invalid identity {name:?} for --role {}: auditor-… identities may read the audit \
             log; use --role auditor",
            role_name(role)
        ),
        _ => Ok(()),
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Sequencer => "sequencer",
        Role::Admin => "admin",
        Role::Auditor => "auditor",
    }
}

fn issue(args: &IssueArgs) -> Result<ExitCode> {
    let name = args.name.as_str();
    check_role_name(name, args.role)?;
    let (ca_dir, out) = match (&args.dir, &args.ca_dir, &args.out) {
        (Some(dir), _, _) => {
            if !dir.join(DESCRIPTOR_FILE).is_file() {
                bail!(
                    "{} is not a cluster directory (no {DESCRIPTOR_FILE}); for a CA kept \
                     elsewhere use --ca-dir DIR --out DIR",
                    dir.display()
                );
            }
            (dir.join("pki"), dir.join("pki"))
        }
        (None, Some(ca_dir), Some(out)) => (ca_dir.clone(), out.clone()),
        _ => bail!("give --dir DIR, or --ca-dir DIR with --out DIR"),
    };
    let (ca_cert, ca_key) = (ca_dir.join("ca.pem"), ca_dir.join("ca.key"));
    if !ca_cert.is_file() {
        bail!("no CA certificate at {}", ca_cert.display());
    }
    if !ca_key.is_file() {
        bail!(
            "no CA key at {}: `signer pki issue` runs where the cluster CA's key is kept \
             (offline, never on a node)",
            ca_key.display()
        );
    }
    let cert_path = out.join(format!("client-{name}.pem"));
    let key_path = out.join(format!("client-{name}.key"));
    for path in [&cert_path, &key_path] {
        if path.exists() {
            bail!(
                "{} already exists; refusing to overwrite it (to issue {name:?} again, revoke \
                 the old certificate with `signerctl cert revoke --cert {}` and move its files \
                 away first)",
                path.display(),
                cert_path.display()
            );
        }
    }
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let der = DevPki::open(&ca_dir)?
        .issue_client_to(name, &cert_path, &key_path)
        .with_context(|| format!("issuing {name:?}"))?;
    let fingerprint = Fingerprint::of(&der);
    signer_client::outln!(
        "issued a client certificate for {name:?} (--role {}) from the CA in {}:",
        role_name(args.role),
        ca_dir.display()
    );
    signer_client::outln!("  {}", cert_path.display());
    signer_client::outln!("  {}   (its private key, mode 0600)", key_path.display());
    signer_client::outln!("  sha256 {fingerprint}   (what `signerctl cert revoke` names)");
    let ctl = match &args.dir {
        Some(dir) => {
            record(dir, name)?;
            signer_client::outln!(
                "recorded {name:?} in {} (signerctl --dir {} --client {name} …)",
                dir.join(DESCRIPTOR_FILE).display(),
                dir.display()
            );
            format!("signerctl --dir {}", dir.display())
        }
        None => "signerctl --dir DIR".to_owned(),
    };
    match args.role {
        Role::Sequencer => signer_client::outln!(
            "next: the admins grant it keys: {ctl} client grant {name} --keys KEYS --profiles \
             PROFILES"
        ),
        Role::Admin => signer_client::outln!(
            "next: the admins enroll it: {ctl} admin enroll --name {name} --on-yubikey (on \
             the new admin's card; or --soft-key-file FILE for development)"
        ),
        Role::Auditor => signer_client::outln!(
            "next: nothing to grant: {name} may read the audit log ({ctl} --client {name} \
             audit tail)"
        ),
    }
    Ok(ExitCode::SUCCESS)
}

/// Record `name`'s files in DIR/cluster.json, relative to DIR as the other clients are.
fn record(dir: &Path, name: &str) -> Result<()> {
    let files = ClientFiles {
        cert: PathBuf::from(format!("pki/client-{name}.pem")),
        key: PathBuf::from(format!("pki/client-{name}.key")),
    };
    ClusterDescriptor::record_client(dir, name, files)
        .with_context(|| format!("recording {name:?} in {}", dir.display()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn roles_allow_their_names_only() {
        assert!(check_role_name("seq-2", Role::Sequencer).is_ok());
        assert!(check_role_name("admin-3", Role::Admin).is_ok());
        assert!(check_role_name("auditor-2", Role::Auditor).is_ok());
        let refused = |name: &str, role| check_role_name(name, role).unwrap_err().to_string();
        assert_eq!(
            refused("node-4", Role::Sequencer),
            "invalid identity \"node-4\": client names may not start with node- (reserved for \
             nodes)"
        );
        assert_eq!(
            refused("bob", Role::Auditor),
            "invalid identity \"bob\" for --role auditor: the Audit service admits auditor-… \
             identities (and enrolled admins); name it auditor-bob"
        );
        assert_eq!(
            refused("auditor-x", Role::Admin),
            "invalid identity \"auditor-x\" for --role admin: auditor-… identities may read \
             the audit log; use --role auditor"
        );
        assert_eq!(
            refused("Seq_2", Role::Sequencer),
            "invalid identity \"Seq_2\": use lower-case letters, digits and inner '-' only"
        );
    }
}
