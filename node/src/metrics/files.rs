//! What the node's own files say about its future: when its certificates expire
//! (`signer_certificate_not_after_seconds{certificate,subject}`) and how much room its data
//! directory has left (`signer_data_dir_available_bytes`, `signer_data_dir_size_bytes`), and
//! how close its snapshot is to the binary format's size limit (`signer_snapshot_bytes`).
//!
//! Owns: reading the notAfter of every certificate in the node's TLS files (as loaded at
//! start: the certificates the node presents and trusts until it restarts) and the
//! `statvfs` of the data directory's filesystem and the size of its snapshot files. Must not: judge what it reads (alert rules
//! do, in `deploy/prometheus/alerts.yml`), read anything but certificates (never the key
//! file), or fail the node: a certificate the parser cannot read is reported to the caller,
//! which logs it.
//!
//! To ensure correctness:
//! - `available` is what an unprivileged writer may still use (`f_bavail`, df's "Avail"), not
//!   the free blocks reserved for root; `size` is the filesystem's size (`f_blocks`), both in
//!   units of the fragment size (`f_frsize`), as `df -B1` computes them;
//! - a file holding several certificates gets one series per distinct subject; two
//!   certificates with one subject (a renewed CA beside the old one) report the later
//!   notAfter, the one that still works.

use super::{gauge, reg, Metrics};
use prometheus::{IntGauge, IntGaugeVec, Opts, Registry};
use std::collections::BTreeMap;
use std::path::Path;

/// Why a certificate file's expiry could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertificateError {
    /// A PEM block could not be read.
    #[error("{certificate} certificate file: bad PEM: {reason}")]
    Pem {
        /// Which certificate (`node`, `ca`).
        certificate: String,
        /// The parser's words.
        reason: String,
    },
    /// A certificate did not parse as X.509.
    #[error("{certificate} certificate file: bad X.509 certificate: {reason}")]
    X509 {
        /// Which certificate (`node`, `ca`).
        certificate: String,
        /// The parser's words.
        reason: String,
    },
    /// The file holds no certificate.
    #[error("{certificate} certificate file holds no certificate")]
    Empty {
        /// Which certificate (`node`, `ca`).
        certificate: String,
    },
}

/// The gauges of this module.
pub(super) struct FileGauges {
    not_after: IntGaugeVec,
    available: IntGauge,
    size: IntGauge,
    snapshot: IntGauge,
}

impl FileGauges {
    pub(super) fn new(registry: &Registry) -> Result<FileGauges, prometheus::Error> {
        Ok(FileGauges {
            not_after: reg(
                registry,
                IntGaugeVec::new(
                    Opts::new(
                        "signer_certificate_not_after_seconds",
                        "Expiry (notAfter, Unix seconds) of the certificates this node loaded at \
                         start: certificate node (its own, also served on the Web3Signer port) or \
                         ca (the cluster CA it trusts), by subject.",
                    ),
                    &["certificate", "subject"],
                )?,
            )?,
            available: reg(
                registry,
                IntGauge::new(
                    "signer_data_dir_available_bytes",
                    "Bytes an unprivileged writer may still use on the data directory's \
                     filesystem (statvfs f_bavail * f_frsize, df's Avail).",
                )?,
            )?,
            size: reg(
                registry,
                IntGauge::new(
                    "signer_data_dir_size_bytes",
                    "Size of the data directory's filesystem in bytes (statvfs f_blocks * \
                     f_frsize, df's Size).",
                )?,
            )?,
            snapshot: reg(
                registry,
                IntGauge::new(
                    "signer_snapshot_bytes",
                    "Size of this node's current Raft snapshot files (data_dir/state.snapshot-head \
                     and state.snapshot-records-N; 0 before the first). It grows with the kept audit log; a snapshot cannot be \
                     larger than the binary format's limit of 2 GiB: near it a node defers \
                     its snapshots and its Raft log grows. Export and compact the audit log \
                     long before.",
                )?,
            )?,
        })
    }
}

/// The (subject, notAfter in Unix seconds) of every certificate in the PEM text `pem`; one
/// entry per subject, with the latest notAfter.
pub fn certificate_expiries(
    certificate: &str,
    pem: &[u8],
) -> Result<BTreeMap<String, i64>, CertificateError> {
    let mut out: BTreeMap<String, i64> = BTreeMap::new();
    for block in x509_parser::pem::Pem::iter_from_buffer(pem) {
        let block = block.map_err(|e| CertificateError::Pem {
            certificate: certificate.to_owned(),
            reason: e.to_string(),
        })?;
        if block.label != "CERTIFICATE" {
            continue;
        }
        let cert = block.parse_x509().map_err(|e| CertificateError::X509 {
            certificate: certificate.to_owned(),
            reason: e.to_string(),
        })?;
        let not_after = cert.validity().not_after.timestamp();
        let entry = out.entry(cert.subject().to_string()).or_insert(not_after);
        *entry = (*entry).max(not_after);
    }
    if out.is_empty() {
        return Err(CertificateError::Empty {
            certificate: certificate.to_owned(),
        });
    }
    Ok(out)
}

impl Metrics {
    /// Export the expiry of every certificate in `pem` (the contents of one TLS file) under
    /// `certificate` (`node` or `ca`). Nothing is exported for a file that does not parse.
    pub fn observe_certificates(
        &self,
        certificate: &str,
        pem: &[u8],
    ) -> Result<(), CertificateError> {
        for (subject, not_after) in certificate_expiries(certificate, pem)? {
            self.files
                .not_after
                .with_label_values(&[certificate, &subject])
                .set(not_after);
        }
        Ok(())
    }

    /// Set the data-directory gauges from the `statvfs` of `dir`'s filesystem, and the
    /// snapshot's from the size of `dir`'s snapshot files
    /// ([`crate::replica::state_machine::snapshot_bytes_in`]; 0 when there are none yet).
    pub fn observe_data_dir(&self, dir: &Path) -> std::io::Result<()> {
        let fs = rustix::fs::statvfs(dir)?;
        let bytes = |blocks: u64| gauge(blocks.saturating_mul(fs.f_frsize));
        self.files.available.set(bytes(fs.f_bavail));
        self.files.size.set(bytes(fs.f_blocks));
        let snapshot = crate::replica::state_machine::snapshot_bytes_in(dir)?;
        self.files.snapshot.set(gauge(snapshot));
        Ok(())
    }
}

#[cfg(test)]
mod tests;
