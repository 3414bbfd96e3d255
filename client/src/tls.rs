//! The cluster's PKI and mutual-TLS settings.
//!
//! Owns: the development PKI ([`DevPki`]: a CA, node certificates, client certificates, all made
//! with rcgen), the tonic TLS settings for servers and clients (always mutual TLS against the
//! cluster CA), and reading the authenticated peer's identity off its verified certificate.
//! Must not: decide what an identity may do (that is authorization, in the services), open
//! sockets, or print private keys.
//!
//! Identities: a node's certificate names `node-<id>` (CN and first DNS SAN, plus `localhost` and
//! `127.0.0.1` so that clients may dial loopback addresses); a client's names the client, e.g.
//! `seq-1`. The identity of a peer is its leaf certificate's first DNS SAN, else its CN.
//!
//! To ensure correctness:
//! - [`peer_identity`] is only meaningful on certificates rustls has verified against the
//!   cluster CA — which is what tonic's `Request::peer_certs()` returns on a server built with
//!   [`server_tls_config`] (client certificates are required, never optional);
//! - client names may not start with `node-`, so that no client certificate can pass for a node;
//! - private key files are created new (never overwritten) with mode 0600.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

/// How long a TLS handshake may take before the connection is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long development certificates are valid.
const DEV_CERT_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// Errors creating the PKI or building TLS settings.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// A file that must be created new already exists.
    #[error("{0} already exists; refusing to overwrite it")]
    Exists(PathBuf),
    /// Certificate or key generation failed.
    #[error("generating {what}: {reason}")]
    Generate {
        /// Which certificate or key.
        what: String,
        /// rcgen's reason.
        reason: String,
    },
    /// A node id or client name cannot be used in a certificate.
    #[error("invalid identity {name:?}: {reason}")]
    InvalidName {
        /// The name.
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// A private key file others than its owner may read (or write).
    #[error(
        "{path}: private key file has mode {mode:04o}; it must be readable by its owner only \
         (chmod 600 {path})"
    )]
    KeyTooOpen {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// PEM input holds no usable certificate or key.
    #[error("{what}: {reason}")]
    BadPem {
        /// Which input (`CA certificate`, `certificate`, `private key`).
        what: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// A development PKI in one directory: `ca.pem`/`ca.key`, `node-<id>.pem`/`.key`,
/// `client-<name>.pem`/`.key`. Not for production: the CA key sits on disk next to the certs.
#[derive(Debug, Clone)]
pub struct DevPki {
    dir: PathBuf,
}

impl DevPki {
    /// Create a new CA in `dir` (created if missing; `ca.pem` must not exist yet) and issue a
    /// certificate for each node id and each client name.
    pub fn create(dir: &Path, node_ids: &[u64], client_names: &[&str]) -> Result<DevPki, TlsError> {
        std::fs::create_dir_all(dir).map_err(|source| TlsError::Io {
            path: dir.to_owned(),
            source,
        })?;
        let pki = DevPki {
            dir: dir.to_owned(),
        };
        for path in [pki.ca_cert_path(), pki.ca_key_path()] {
            if path.exists() {
                return Err(TlsError::Exists(path));
            }
        }
        let key = rcgen::KeyPair::generate().map_err(gen_err("CA key"))?;
        let name = format!(
            "Quorum Signer dev CA {}",
            hex::encode(rand::random::<[u8; 4]>())
        );
        let mut params = ca_params(&name);
        set_validity(&mut params);
        let cert = params
            .self_signed(&key)
            .map_err(gen_err("CA certificate"))?;
        write_new_file(&pki.ca_key_path(), key.serialize_pem().as_bytes(), 0o600)?;
        write_new_file(&pki.ca_cert_path(), cert.pem().as_bytes(), 0o644)?;
        for &id in node_ids {
            pki.issue_node(id)?;
        }
        for name in client_names {
            pki.issue_client(name)?;
        }
        Ok(pki)
    }

    /// An existing PKI directory (its `ca.pem` and `ca.key` must exist).
    pub fn open(dir: &Path) -> Result<DevPki, TlsError> {
        let pki = DevPki {
            dir: dir.to_owned(),
        };
        for path in [pki.ca_cert_path(), pki.ca_key_path()] {
            std::fs::metadata(&path).map_err(|source| TlsError::Io { path, source })?;
        }
        Ok(pki)
    }

    /// Issue `node-<id>.pem`/`.key`: CN and DNS SANs `node-<id>`, `localhost`, IP `127.0.0.1`;
    /// usable as server and as client (nodes dial each other).
    pub fn issue_node(&self, id: u64) -> Result<(), TlsError> {
        if id == 0 {
            return Err(TlsError::InvalidName {
                name: "node-0".into(),
                reason: "node ids start at 1",
            });
        }
        let name = node_identity(id);
        self.issue(
            &name,
            vec![name.clone(), "localhost".into(), "127.0.0.1".into()],
            vec![
                rcgen::ExtendedKeyUsagePurpose::ServerAuth,
                rcgen::ExtendedKeyUsagePurpose::ClientAuth,
            ],
            &self.node_cert_path(id),
            &self.node_key_path(id),
        )
    }

    /// Issue `client-<name>.pem`/`.key`: CN and DNS SAN `<name>`, client authentication only.
    pub fn issue_client(&self, name: &str) -> Result<(), TlsError> {
        self.issue_client_to(
            name,
            &self.client_cert_path(name),
            &self.client_key_path(name),
        )
        .map(drop)
    }

    /// Issue a client certificate for `name` (CN and DNS SAN `<name>`, client authentication
    /// only) into `cert_path` and its new private key into `key_path` (0600); neither may
    /// exist. Returns the certificate (DER).
    pub fn issue_client_to(
        &self,
        name: &str,
        cert_path: &Path,
        key_path: &Path,
    ) -> Result<Vec<u8>, TlsError> {
        check_client_name(name)?;
        self.issue(
            name,
            vec![name.to_owned()],
            vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth],
            cert_path,
            key_path,
        )?;
        read_certificate(cert_path)
    }

    fn issue(
        &self,
        cn: &str,
        sans: Vec<String>,
        usages: Vec<rcgen::ExtendedKeyUsagePurpose>,
        cert_path: &Path,
        key_path: &Path,
    ) -> Result<(), TlsError> {
        for path in [cert_path, key_path] {
            if path.exists() {
                return Err(TlsError::Exists(path.to_owned()));
            }
        }
        let ca_key_pem = read_file(&self.ca_key_path())?;
        let ca_key = rcgen::KeyPair::from_pem(&String::from_utf8_lossy(&ca_key_pem))
            .map_err(gen_err("reading the CA key"))?;
        // The issuer is rebuilt from the CA's name (read back from `ca.pem`) and key.
        let ca_pem = read_file(&self.ca_cert_path())?;
        let ca_name = CertificateDer::pem_slice_iter(&ca_pem)
            .next()
            .and_then(Result::ok)
            .and_then(|der| certificate_identity(&der))
            .ok_or_else(|| TlsError::BadPem {
                what: "CA certificate",
                reason: format!("{} names no CA", self.ca_cert_path().display()),
            })?;
        let issuer = rcgen::Issuer::new(ca_params(&ca_name), ca_key);
        let mut params = rcgen::CertificateParams::new(sans).map_err(gen_err(cn))?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = usages;
        params.use_authority_key_identifier_extension = true;
        set_validity(&mut params);
        let key = rcgen::KeyPair::generate().map_err(gen_err(cn))?;
        let cert = params.signed_by(&key, &issuer).map_err(gen_err(cn))?;
        write_new_file(key_path, key.serialize_pem().as_bytes(), 0o600)?;
        write_new_file(cert_path, cert.pem().as_bytes(), 0o644)
    }

    /// The PKI directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    /// `ca.pem`.
    pub fn ca_cert_path(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
    /// `ca.key` (0600).
    pub fn ca_key_path(&self) -> PathBuf {
        self.dir.join("ca.key")
    }
    /// `node-<id>.pem`.
    pub fn node_cert_path(&self, id: u64) -> PathBuf {
        self.dir.join(format!("{}.pem", node_identity(id)))
    }
    /// `node-<id>.key` (0600).
    pub fn node_key_path(&self, id: u64) -> PathBuf {
        self.dir.join(format!("{}.key", node_identity(id)))
    }
    /// `client-<name>.pem`.
    pub fn client_cert_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("client-{name}.pem"))
    }
    /// `client-<name>.key` (0600).
    pub fn client_key_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("client-{name}.key"))
    }
}

/// The certificate identity of node `id`: `node-<id>`.
pub fn node_identity(id: u64) -> String {
    format!("node-{id}")
}

/// The node id named by an identity `node-<id>` (canonical decimal, id ≥ 1), else `None`.
pub fn node_id_from_identity(identity: &str) -> Option<u64> {
    let digits = identity.strip_prefix("node-")?;
    if digits.is_empty() || digits.starts_with('0') || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The identity of an authenticated peer: its leaf certificate's first DNS SAN, else its CN.
///
/// Pass `tonic::Request::peer_certs()` of a request received on a server configured with
/// [`server_tls_config`] (so the chain is verified). `None` without certificates or names.
pub fn peer_identity(peer_certs: Option<Arc<Vec<CertificateDer<'static>>>>) -> Option<String> {
    let certs = peer_certs?;
    certs.first().and_then(|leaf| certificate_identity(leaf))
}

/// The identity (first DNS SAN, else CN) of one DER certificate (the core's reading, which
/// revocations record too).
pub fn certificate_identity(der: &[u8]) -> Option<String> {
    signer_core::admin::certificate_identity(der)
}

/// The certificate in `path` (DER): the first `CERTIFICATE` block of a PEM file, or the file
/// itself when it is DER.
pub fn read_certificate(path: &Path) -> Result<Vec<u8>, TlsError> {
    let bytes = read_file(path)?;
    if let Some(first) = CertificateDer::pem_slice_iter(&bytes).next() {
        return first.map(|der| der.to_vec()).map_err(|e| TlsError::BadPem {
            what: "certificate",
            reason: format!("{}: {e}", path.display()),
        });
    }
    if x509_parser::parse_x509_certificate(&bytes).is_ok() {
        return Ok(bytes);
    }
    Err(TlsError::BadPem {
        what: "certificate",
        reason: format!(
            "{} holds no certificate (neither a PEM CERTIFICATE block nor DER)",
            path.display()
        ),
    })
}

/// Server settings: present `cert_pem`/`key_pem` and require a client certificate issued by
/// `ca_pem` (mutual TLS). The PEM inputs are checked here so that errors name the bad input.
pub fn server_tls_config(
    ca_pem: &[u8],
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<ServerTlsConfig, TlsError> {
    check_pem(ca_pem, cert_pem, key_pem)?;
    Ok(ServerTlsConfig::new()
        .identity(Identity::from_pem(cert_pem, key_pem))
        .client_ca_root(Certificate::from_pem(ca_pem))
        .client_auth_optional(false)
        .timeout(HANDSHAKE_TIMEOUT))
}

/// Client settings: trust only `ca_pem`, present `cert_pem`/`key_pem`, and expect the server to
/// be named `server_name` (e.g. `node-2`).
pub fn client_tls_config(
    ca_pem: &[u8],
    cert_pem: &[u8],
    key_pem: &[u8],
    server_name: &str,
) -> Result<ClientTlsConfig, TlsError> {
    check_pem(ca_pem, cert_pem, key_pem)?;
    Ok(ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca_pem))
        .identity(Identity::from_pem(cert_pem, key_pem))
        .domain_name(server_name)
        .timeout(HANDSHAKE_TIMEOUT))
}

/// The three PEM files of one TLS identity, read into memory.
#[derive(Clone)]
pub struct TlsMaterial {
    /// The cluster CA certificate(s).
    pub ca_pem: Vec<u8>,
    /// This identity's certificate.
    pub cert_pem: Vec<u8>,
    /// This identity's private key.
    key_pem: zeroize::Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsMaterial")
            .field("key_pem", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl TlsMaterial {
    /// Read and check the CA, certificate and key files. The key file must not be readable
    /// or writable by group or others (mode 0600 or stricter), like every secret file.
    pub fn read(ca: &Path, cert: &Path, key: &Path) -> Result<TlsMaterial, TlsError> {
        let material = TlsMaterial {
            ca_pem: read_file(ca)?,
            cert_pem: read_file(cert)?,
            key_pem: zeroize::Zeroizing::new(read_file(key)?),
        };
        check_key_mode(key)?;
        check_pem(&material.ca_pem, &material.cert_pem, &material.key_pem).map_err(|e| {
            TlsError::BadPem {
                what: "TLS files",
                reason: format!(
                    "{e} (ca {}, cert {}, key {})",
                    ca.display(),
                    cert.display(),
                    key.display()
                ),
            }
        })?;
        Ok(material)
    }

    /// [`server_tls_config`] with this material.
    pub fn server_config(&self) -> Result<ServerTlsConfig, TlsError> {
        server_tls_config(&self.ca_pem, &self.cert_pem, &self.key_pem)
    }

    /// [`client_tls_config`] with this material, for a server named `server_name`.
    pub fn client_config(&self, server_name: &str) -> Result<ClientTlsConfig, TlsError> {
        client_tls_config(&self.ca_pem, &self.cert_pem, &self.key_pem, server_name)
    }

    /// rustls server settings for an HTTPS endpoint (the Web3Signer-compatible API): present
    /// this certificate; verify a client certificate against the cluster CA when one is sent,
    /// but let a connection without one through (health checks need none; the endpoint
    /// refuses unauthenticated calls to everything else). HTTP/1.1 only.
    pub fn https_server_config(&self) -> Result<rustls::ServerConfig, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(self.ca_roots()?),
            provider.clone(),
        )
        .allow_unauthenticated()
        .build()
        .map_err(|e| bad_pem("CA certificate", e))?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| bad_pem("TLS versions", e))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.cert_chain()?, self.private_key()?)
            .map_err(|e| bad_pem("certificate", e))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }

    /// rustls client settings for an HTTPS endpoint of the cluster: trust only the cluster CA
    /// and present this certificate. HTTP/1.1 only.
    pub fn https_client_config(&self) -> Result<rustls::ClientConfig, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| bad_pem("TLS versions", e))?
            .with_root_certificates(self.ca_roots()?)
            .with_client_auth_cert(self.cert_chain()?, self.private_key()?)
            .map_err(|e| bad_pem("certificate", e))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }

    fn ca_roots(&self) -> Result<rustls::RootCertStore, TlsError> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&self.ca_pem) {
            let cert = cert.map_err(|e| bad_pem("CA certificate", e))?;
            roots.add(cert).map_err(|e| bad_pem("CA certificate", e))?;
        }
        Ok(roots)
    }

    fn cert_chain(&self) -> Result<Vec<CertificateDer<'static>>, TlsError> {
        CertificateDer::pem_slice_iter(&self.cert_pem)
            .collect::<Result<_, _>>()
            .map_err(|e| bad_pem("certificate", e))
    }

    fn private_key(&self) -> Result<PrivateKeyDer<'static>, TlsError> {
        PrivateKeyDer::from_pem_slice(&self.key_pem).map_err(|e| bad_pem("private key", e))
    }

    /// The private key (PEM), e.g. for a peer channel's identity.
    pub fn key_pem(&self) -> &[u8] {
        &self.key_pem
    }

    /// The identity named by this material's own certificate.
    pub fn identity(&self) -> Option<String> {
        let der = CertificateDer::pem_slice_iter(&self.cert_pem)
            .next()?
            .ok()?;
        certificate_identity(&der)
    }
}

fn bad_pem(what: &'static str, e: impl std::fmt::Display) -> TlsError {
    TlsError::BadPem {
        what,
        reason: e.to_string(),
    }
}

fn check_pem(ca_pem: &[u8], cert_pem: &[u8], key_pem: &[u8]) -> Result<(), TlsError> {
    let certs = |what: &'static str, pem: &[u8]| -> Result<(), TlsError> {
        let mut n = 0usize;
        for item in CertificateDer::pem_slice_iter(pem) {
            item.map_err(|e| TlsError::BadPem {
                what,
                reason: e.to_string(),
            })?;
            n += 1;
        }
        if n == 0 {
            return Err(TlsError::BadPem {
                what,
                reason: "no PEM CERTIFICATE block".into(),
            });
        }
        Ok(())
    };
    certs("CA certificate", ca_pem)?;
    certs("certificate", cert_pem)?;
    PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| TlsError::BadPem {
        what: "private key",
        reason: e.to_string(),
    })?;
    Ok(())
}

/// Whether `name` may be a client certificate's identity: 1 to 63 lower-case letters, digits
/// and inner `-`, not starting with `node-` (reserved for nodes).
pub fn check_client_name(name: &str) -> Result<(), TlsError> {
    let bad = |reason| {
        Err(TlsError::InvalidName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() || name.len() > 63 {
        return bad("must be 1 to 63 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        || name.starts_with('-')
        || name.ends_with('-')
    {
        return bad("use lower-case letters, digits and inner '-' only");
    }
    if name.starts_with("node-") {
        return bad("client names may not start with node- (reserved for nodes)");
    }
    Ok(())
}

/// The dev CA's parameters (validity aside); the issuer fields of the certificates it issues
/// derive from them. Each CA has its own name, so two dev clusters' CAs are told apart.
fn ca_params(name: &str) -> rcgen::CertificateParams {
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    params
}

fn set_validity(params: &mut rcgen::CertificateParams) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    // One hour of slack for clocks that disagree a little.
    params.not_before = epoch + now.saturating_sub(Duration::from_secs(3600));
    params.not_after = epoch + now + DEV_CERT_VALIDITY;
}

fn gen_err(what: &str) -> impl Fn(rcgen::Error) -> TlsError + '_ {
    move |e| TlsError::Generate {
        what: what.to_owned(),
        reason: e.to_string(),
    }
}

/// Refuse a private key file that group or others may access.
fn check_key_mode(path: &Path) -> Result<(), TlsError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|source| TlsError::Io {
        path: path.to_owned(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(TlsError::KeyTooOpen {
            path: path.to_owned(),
            mode,
        });
    }
    Ok(())
}

fn read_file(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Create `path` (it must not exist) with `mode`, write `contents` and fsync.
pub fn write_new_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), TlsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source: std::io::Error| {
        if source.kind() == std::io::ErrorKind::AlreadyExists {
            TlsError::Exists(path.to_owned())
        } else {
            TlsError::Io {
                path: path.to_owned(),
                source,
            }
        }
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io)?;
    f.write_all(contents).map_err(io)?;
    f.sync_all().map_err(io)
}

#[cfg(test)]
mod tests;
