//! Real mutual-TLS handshakes on 127.0.0.1:0 with tonic, and the dev PKI's files.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::pb;
use crate::pb::signer_client::SignerClient;
use crate::pb::signer_server::{Signer, SignerServer};
use std::net::SocketAddr;
use tonic::transport::{Endpoint, Server};
use tonic::{Request, Response, Status};

/// A directory under the system temp dir, removed on drop.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    pub(crate) fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let dir = std::env::temp_dir().join(format!(
            "qs-{tag}-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Answers GetClusterStatus with the caller's authenticated identity in `keys_loaded`.
struct Echo;

#[tonic::async_trait]
impl Signer for Echo {
    async fn sign(
        &self,
        _: Request<pb::SignRequest>,
    ) -> Result<Response<pb::SignResponse>, Status> {
        Err(Status::unimplemented("test server"))
    }
    async fn sign_batch(
        &self,
        _request: Request<pb::SignBatchRequest>,
    ) -> Result<Response<pb::SignBatchResponse>, Status> {
        Err(Status::unimplemented("not used by this test server"))
    }

    async fn get_public_keys(
        &self,
        _: Request<pb::GetPublicKeysRequest>,
    ) -> Result<Response<pb::GetPublicKeysResponse>, Status> {
        Err(Status::unimplemented("test server"))
    }
    async fn get_cluster_status(
        &self,
        request: Request<pb::GetClusterStatusRequest>,
    ) -> Result<Response<pb::ClusterStatus>, Status> {
        let identity = peer_identity(request.peer_certs())
            .ok_or_else(|| Status::unauthenticated("no client certificate"))?;
        Ok(Response::new(pb::ClusterStatus {
            node_id: 1,
            keys_loaded: vec![identity],
            ..Default::default()
        }))
    }
}

struct Running {
    addr: SocketAddr,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn serve(pki: &DevPki, node: u64) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let tls = TlsMaterial::read(
        &pki.ca_cert_path(),
        &pki.node_cert_path(node),
        &pki.node_key_path(node),
    )
    .unwrap()
    .server_config()
    .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = Server::builder()
        .tls_config(tls)
        .unwrap()
        .add_service(SignerServer::new(Echo))
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(listener),
            async {
                let _ = stopped.await;
            },
        );
    tokio::spawn(server);
    Running { addr, _stop: stop }
}

/// Connect and call GetClusterStatus; the identity the server saw, or the error text.
async fn call(addr: SocketAddr, tls: ClientTlsConfig) -> Result<String, String> {
    let endpoint = Endpoint::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls)
        .map_err(|e| e.to_string())?
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(5));
    let channel = endpoint.connect().await.map_err(|e| format!("{e:?}"))?;
    let status = SignerClient::new(channel)
        .get_cluster_status(pb::GetClusterStatusRequest {})
        .await
        .map_err(|s| s.to_string())?;
    Ok(status.into_inner().keys_loaded.join(","))
}

fn client_material(pki: &DevPki, name: &str) -> TlsMaterial {
    TlsMaterial::read(
        &pki.ca_cert_path(),
        &pki.client_cert_path(name),
        &pki.client_key_path(name),
    )
    .unwrap()
}

#[tokio::test]
async fn ca_client_is_accepted_and_identified() {
    let dir = TempDir::new("tls-ok");
    let pki = DevPki::create(&dir.0, &[1, 2], &["seq-1"]).unwrap();
    let server = serve(&pki, 1).await;

    let seq = client_material(&pki, "seq-1");
    assert_eq!(seq.identity().as_deref(), Some("seq-1"));
    let seen = call(server.addr, seq.client_config("node-1").unwrap()).await;
    assert_eq!(seen, Ok("seq-1".to_owned()));

    // A node dialing another node is identified as that node.
    let node2 = TlsMaterial::read(
        &pki.ca_cert_path(),
        &pki.node_cert_path(2),
        &pki.node_key_path(2),
    )
    .unwrap();
    let seen = call(server.addr, node2.client_config("node-1").unwrap())
        .await
        .unwrap();
    assert_eq!(seen, "node-2");
    assert_eq!(node_id_from_identity(&seen), Some(2));
}

#[tokio::test]
async fn client_without_certificate_is_rejected() {
    let dir = TempDir::new("tls-nocert");
    let pki = DevPki::create(&dir.0, &[1], &[]).unwrap();
    let server = serve(&pki, 1).await;
    let ca = std::fs::read(pki.ca_cert_path()).unwrap();
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca))
        .domain_name("node-1");
    let result = call(server.addr, tls).await;
    let error = result.expect_err("the handshake must fail");
    assert!(error.contains("CertificateRequired"), "{error}");
}

#[tokio::test]
async fn client_from_another_ca_is_rejected() {
    let dir = TempDir::new("tls-ours");
    let other_dir = TempDir::new("tls-theirs");
    let pki = DevPki::create(&dir.0, &[1], &[]).unwrap();
    let other = DevPki::create(&other_dir.0, &[1], &["seq-1"]).unwrap();
    let server = serve(&pki, 1).await;
    // Trusts our CA for the server, but presents a certificate from the other CA.
    let tls = client_tls_config(
        &std::fs::read(pki.ca_cert_path()).unwrap(),
        &std::fs::read(other.client_cert_path("seq-1")).unwrap(),
        &std::fs::read(other.client_key_path("seq-1")).unwrap(),
        "node-1",
    )
    .unwrap();
    let result = call(server.addr, tls).await;
    let error = result.expect_err("the handshake must fail");
    assert!(error.contains("UnknownCA"), "{error}");
}

#[tokio::test]
async fn server_with_another_name_is_rejected() {
    let dir = TempDir::new("tls-name");
    let pki = DevPki::create(&dir.0, &[1, 2], &["seq-1"]).unwrap();
    let server = serve(&pki, 1).await;
    let seq = client_material(&pki, "seq-1");
    // The client dials 127.0.0.1 expecting node-2; node-1 answers.
    let result = call(server.addr, seq.client_config("node-2").unwrap()).await;
    let error = result.expect_err("the handshake must fail");
    assert!(error.contains("NotValidForName"), "{error}");
}

#[test]
fn dev_pki_files_and_modes() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("pki-files");
    let pki = DevPki::create(&dir.0, &[1, 2, 3], &["seq-1", "seq-2"]).unwrap();
    let mode = |p: PathBuf| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(pki.ca_key_path()), 0o600);
    for id in [1, 2, 3] {
        assert_eq!(mode(pki.node_key_path(id)), 0o600);
        let pem = std::fs::read(pki.node_cert_path(id)).unwrap();
        let der = CertificateDer::from_pem_slice(&pem).unwrap();
        assert_eq!(certificate_identity(&der), Some(format!("node-{id}")));
    }
    for name in ["seq-1", "seq-2"] {
        assert_eq!(mode(pki.client_key_path(name)), 0o600);
    }
    // Never overwrites.
    assert!(matches!(
        DevPki::create(&dir.0, &[], &[]),
        Err(TlsError::Exists(_))
    ));
    assert!(matches!(
        pki.issue_client("seq-1"),
        Err(TlsError::Exists(_))
    ));
    // Reopened, it issues more.
    let reopened = DevPki::open(&dir.0).unwrap();
    reopened.issue_node(4).unwrap();
    assert!(reopened.node_cert_path(4).exists());
}

#[test]
fn client_names_cannot_pass_for_nodes() {
    let dir = TempDir::new("pki-names");
    let pki = DevPki::create(&dir.0, &[], &[]).unwrap();
    for bad in [
        "node-1",
        "",
        "Seq",
        "seq_1",
        "-seq",
        "seq-",
        "a/b",
        &"x".repeat(64),
    ] {
        assert!(
            matches!(pki.issue_client(bad), Err(TlsError::InvalidName { .. })),
            "{bad:?} was accepted"
        );
    }
    assert!(matches!(
        pki.issue_node(0),
        Err(TlsError::InvalidName { .. })
    ));
}

#[test]
fn identity_parsing() {
    let cases: &[(&str, Option<u64>)] = &[
        ("node-1", Some(1)),
        ("node-42", Some(42)),
        ("node-0", None),
        ("node-01", None),
        ("node-+1", None),
        ("node-", None),
        ("node-1x", None),
        ("seq-1", None),
        ("Node-1", None),
        ("node-18446744073709551616", None),
    ];
    for (text, want) in cases {
        assert_eq!(node_id_from_identity(text), *want, "{text}");
    }
    assert_eq!(node_identity(7), "node-7");
    assert_eq!(peer_identity(None), None);
    assert_eq!(peer_identity(Some(Arc::new(vec![]))), None);
}

#[test]
fn identity_falls_back_to_common_name() {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "only-cn");
    let cert = params.self_signed(&key).unwrap();
    assert_eq!(certificate_identity(cert.der()), Some("only-cn".to_owned()));
    assert_eq!(certificate_identity(b"not a certificate"), None);
}

#[test]
fn bad_pem_is_named() {
    let dir = TempDir::new("pki-badpem");
    let pki = DevPki::create(&dir.0, &[1], &[]).unwrap();
    let ca = std::fs::read(pki.ca_cert_path()).unwrap();
    let cert = std::fs::read(pki.node_cert_path(1)).unwrap();
    let key = std::fs::read(pki.node_key_path(1)).unwrap();
    assert!(server_tls_config(&ca, &cert, &key).is_ok());
    match server_tls_config(&ca, &cert, b"garbage") {
        Err(TlsError::BadPem { what, .. }) => assert_eq!(what, "private key"),
        other => panic!("{other:?}"),
    }
    match client_tls_config(b"", &cert, &key, "node-1") {
        Err(TlsError::BadPem { what, .. }) => assert_eq!(what, "CA certificate"),
        other => panic!("{other:?}"),
    }
    let missing = TlsMaterial::read(&dir.0.join("nope.pem"), &dir.0, &dir.0);
    assert!(matches!(missing, Err(TlsError::Io { .. })));
    // A private key group or others can read is refused, naming the file and the fix.
    {
        use std::os::unix::fs::PermissionsExt;
        let key_path = pki.node_key_path(1);
        assert!(TlsMaterial::read(&pki.ca_cert_path(), &pki.node_cert_path(1), &key_path).is_ok());
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err =
            TlsMaterial::read(&pki.ca_cert_path(), &pki.node_cert_path(1), &key_path).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{p}: private key file has mode 0644; it must be readable by its owner only \
                 (chmod 600 {p})",
                p = key_path.display()
            )
        );
    }
}
