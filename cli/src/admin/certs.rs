//! `signerctl cert revoke|list`: revoking a client or node certificate (an approved action),
//! and the certificates the admins revoked.
//!
//! Owns: these commands' arguments and help, reading the certificate file (PEM or DER) or the
//! fingerprint before any network use, and the list's output. Must not: judge the revocation
//! (every replica checks that a given certificate has the fingerprint, and every node refuses
//! the certificate once it applied the revocation), or issue certificates (`signer pki issue`,
//! where the CA key is kept).

use super::{admin_exit_codes, change, ProposeOpts, Session, Work, ADMIN_EXIT_CODES};
use crate::{exit, Failure};
use clap::{Args, Subcommand};
use signer_client::pb;
use signer_core::admin::Fingerprint;
use std::path::PathBuf;

const REVOKE_HELP: &str = concat!(
    "\
Examples:
  signerctl --dir DIR cert revoke --cert DIR/pki/client-seq-2.pem
  signerctl --dir DIR cert revoke --fingerprint 3f2a…(64 hex digits; ':' between bytes allowed)
  signerctl --dir DIR cert list

The fingerprint is SHA-256 over the certificate's DER bytes: what `signer pki issue` prints,
and `openssl x509 -in FILE -noout -fingerprint -sha256` shows.

",
    admin_exit_codes!()
);

/// `signerctl cert …`.
#[derive(Subcommand)]
pub enum CertCommand {
    /// Admin: revoke a client (or node) certificate, an approved action.
    ///
    /// Once a node has applied the revocation, it refuses the certificate on every
    /// authenticated call: gRPC Sign, Admin and Audit (UNAUTHENTICATED, "the certificate of
    /// NAME (sha256 …) was revoked by the admins"), the Web3Signer API (401
    /// `certificate_revoked`) and the peer port — also on connections opened before. A new
    /// certificate for the same name (`signer pki issue`) is another certificate and works;
    /// the identity's grants and admin enrollment are not changed (`client revoke`, `admin
    /// remove` do that). With --cert the cluster checks the file's fingerprint and records the
    /// identity it names; with --fingerprint alone the identity is unknown.
    #[command(after_help = ADMIN_EXIT_CODES, after_long_help = REVOKE_HELP)]
    Revoke(RevokeArgs),
    /// Admin: the revoked certificates: fingerprint and the identity each names.
    #[command(after_help = ADMIN_EXIT_CODES)]
    List,
}

/// `cert revoke`.
#[derive(Args, Debug, Clone)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["cert", "fingerprint"])))]
pub struct RevokeArgs {
    /// The certificate to revoke (PEM or DER), e.g. DIR/pki/client-seq-2.pem.
    #[arg(long, value_name = "FILE")]
    pub cert: Option<PathBuf>,
    /// The SHA-256 fingerprint of the certificate to revoke: 64 hex digits (0x, upper case and
    /// ':' between bytes allowed), when the file is not at hand.
    #[arg(long, value_name = "HEX")]
    pub fingerprint: Option<String>,
    #[command(flatten)]
    pub propose: ProposeOpts,
}

/// Read `cert …` inputs: the certificate or the fingerprint.
pub fn prepare(command: &CertCommand) -> Result<Work, Failure> {
    let args = match command {
        CertCommand::List => return Ok(Work::CertList),
        CertCommand::Revoke(args) => args,
    };
    let (fingerprint, certificate) = match (&args.cert, &args.fingerprint) {
        (Some(file), _) => {
            let der = signer_client::tls::read_certificate(file)
                .map_err(|e| Failure::new(exit::USAGE, format!("error: --cert: {e}")))?;
            (Fingerprint::of(&der), der)
        }
        (None, Some(text)) => {
            let fingerprint = Fingerprint::parse(text)
                .map_err(|e| Failure::new(exit::USAGE, format!("error: --fingerprint: {e}")))?;
            (fingerprint, Vec::new())
        }
        (None, None) => {
            return Err(Failure::new(
                exit::USAGE,
                "error: give --cert FILE or --fingerprint HEX",
            ))
        }
    };
    Ok(change(
        pb::propose_request::Request::RevokeCertificate(pb::RevokeCertificateAction {
            fingerprint: fingerprint.0.to_vec(),
            certificate,
        }),
        &args.propose,
    ))
}

/// `cert list`.
pub async fn list(session: &Session<'_>) -> Result<(), Failure> {
    let state = session
        .pool
        .admin_state()
        .await
        .map_err(|e| session.failure(e))?;
    let revoked = &state.revoked_certificates;
    if session.json {
        let list: Vec<_> = revoked
            .iter()
            .map(|r| {
                serde_json::json!({
                    "fingerprint": r.fingerprint,
                    "identity": (!r.identity.is_empty()).then_some(&r.identity),
                })
            })
            .collect();
        signer_client::outln!("{}", serde_json::Value::Array(list));
        return Ok(());
    }
    if revoked.is_empty() {
        signer_client::outln!("no certificate is revoked");
        return Ok(());
    }
    signer_client::outln!("{:<64}  IDENTITY", "SHA256");
    for r in revoked {
        let identity = if r.identity.is_empty() {
            "(unknown: revoked by fingerprint)"
        } else {
            r.identity.as_str()
        };
        signer_client::outln!("{:<64}  {identity}", r.fingerprint);
    }
    Ok(())
}
