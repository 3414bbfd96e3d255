//! The Web3Signer-compatible eth2 REST API (`[web3signer]`), so that Ethereum validator
//! clients (Lighthouse, Teku, Prysm, Nimbus, Lodestar) use the cluster as their remote signer:
//! `GET /upcheck`, `GET /healthcheck`, `GET /api/v1/eth2/publicKeys` and
//! `POST /api/v1/eth2/sign/{identifier}` (paths and answers in [`routes`]).
//!
//! Owns: the listener, TLS, and who the caller is: the name in its client certificate
//! (verified against the cluster CA; the same identities, grants and revoked certificates as
//! the gRPC API, checked on every request: [`crate::service::authn`]), or the configured
//! `insecure_loopback_identity` on a plain-HTTP loopback listener. Must not: sign,
//! decide or check grants itself: every sign request goes through the one sign path
//! ([`SignPath::sign_typed`]), which checks the grant and rate limit, proposes through Raft
//! and signs only with the permit of the committed entry.
//!
//! To ensure correctness:
//! - a TLS connection without a client certificate is let through the handshake (load
//!   balancers' health checks carry none) but may only read `/upcheck` and `/healthcheck`,
//!   one request per connection; everything else answers 401;
//! - the client certificate is checked against the revocations on each request, not once per
//!   connection: a keep-alive connection whose certificate the admins revoke gets 401
//!   `certificate_revoked` from its next request on (the health paths answer anyone);
//! - at most [`MAX_CONNECTIONS`] connections at once, a client has [`HEADER_TIMEOUT`] to send
//!   each request head and [`crate::tls::HANDSHAKE_TIMEOUT`] for the TLS handshake; bodies are
//!   capped at [`routes::MAX_BODY`];
//! - on shutdown the accept loop stops and open connections finish their current request.

pub mod routes;

use crate::config::Web3SignerConfig;
use crate::http_server::{accept_loop, serve_connection, Stopping};
use crate::service::authn::{Authenticator, AuthnError, Revoked};
use crate::service::signing::SignPath;
use crate::tls::{TlsError, TlsMaterial};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::Request;
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};

/// Connections served at once (validator clients keep a few each).
pub const MAX_CONNECTIONS: usize = 1024;
/// Time a client has to send a request head.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// The API's state: the sign path, and how callers are identified.
pub struct Web3SignerApi {
    path: SignPath,
    authn: Authenticator,
    transport: Transport,
}

/// How connections arrive and who is calling.
enum Transport {
    /// HTTPS; the caller is named by its client certificate.
    Tls(tokio_rustls::TlsAcceptor),
    /// Plain HTTP on a loopback address; every caller is this identity.
    Loopback(String),
}

impl Web3SignerApi {
    /// The API for `config` over `path`; HTTPS with `tls` unless the config names a loopback
    /// identity (the config loader has checked that its address is loopback).
    pub fn new(
        config: &Web3SignerConfig,
        tls: &TlsMaterial,
        path: SignPath,
    ) -> Result<Self, TlsError> {
        let transport = match &config.insecure_loopback_identity {
            Some(identity) => Transport::Loopback(identity.clone()),
            None => Transport::Tls(tokio_rustls::TlsAcceptor::from(Arc::new(
                tls.https_server_config()?,
            ))),
        };
        Ok(Web3SignerApi {
            authn: path.authenticator(),
            path,
            transport,
        })
    }
}

/// Serve the API on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    api: Arc<Web3SignerApi>,
    shutdown: impl Future<Output = ()> + Send,
) {
    let connection = |stream, stop| connection(api.clone(), stream, stop);
    accept_loop(
        "web3signer",
        listener,
        MAX_CONNECTIONS,
        shutdown,
        connection,
    )
    .await;
}

/// One connection: the TLS handshake (if any), then HTTP/1.1 requests until the client closes
/// or the node stops.
async fn connection(api: Arc<Web3SignerApi>, stream: TcpStream, stop: Stopping) {
    match &api.transport {
        Transport::Loopback(identity) => {
            let credentials = Credentials::Loopback(identity.clone());
            http(api.clone(), stream, credentials, stop).await;
        }
        Transport::Tls(acceptor) => {
            let handshake = acceptor.accept(stream);
            let tls = match tokio::time::timeout(crate::tls::HANDSHAKE_TIMEOUT, handshake).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "web3signer API: TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!("web3signer API: TLS handshake timed out");
                    return;
                }
            };
            // rustls verified the chain against the cluster CA before this point.
            let leaf = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|certs| certs.first())
                .map(|leaf| Arc::<[u8]>::from(leaf.as_ref()));
            http(api.clone(), tls, Credentials::Certificate(leaf), stop).await;
        }
    }
}

/// What a connection presented: a client certificate (or none), or the loopback identity.
#[derive(Clone)]
enum Credentials {
    /// The verified leaf certificate (DER), if the client sent one.
    Certificate(Option<Arc<[u8]>>),
    /// Plain HTTP on loopback: every caller is this identity.
    Loopback(String),
}

impl Web3SignerApi {
    /// The identity of a request sent with `credentials`, checked now (the admins may have
    /// revoked the certificate since the connection opened). `Ok(None)`: no certificate
    /// naming anybody.
    fn caller(&self, credentials: &Credentials) -> Result<Option<String>, Revoked> {
        match credentials {
            Credentials::Loopback(identity) => Ok(Some(identity.clone())),
            Credentials::Certificate(leaf) => match self.authn.identify(leaf.as_deref()) {
                Ok(identity) => Ok(Some(identity)),
                Err(AuthnError::NoIdentity) => Ok(None),
                Err(AuthnError::Revoked(revoked)) => Err(revoked),
            },
        }
    }
}

/// Requests of one connection; a caller without a certificate gets one request per
/// connection (health checks). Each request is authenticated when it arrives.
async fn http<S>(api: Arc<Web3SignerApi>, stream: S, credentials: Credentials, stop: Stopping)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let keep_alive = match &credentials {
        Credentials::Loopback(_) => true,
        Credentials::Certificate(leaf) => leaf
            .as_deref()
            .and_then(crate::tls::certificate_identity)
            .is_some(),
    };
    let service = service_fn(move |req: Request<Incoming>| {
        let api = api.clone();
        // The health paths answer anyone: nothing to authenticate (or to audit) there.
        let caller = match routes::is_health(req.uri().path()) {
            true => Ok(None),
            false => api.caller(&credentials),
        };
        async move {
            let answer = match caller {
                Ok(identity) => routes::handle(&api, identity.as_deref(), req).await,
                Err(revoked) => routes::revoked(&revoked),
            };
            Ok::<_, Infallible>(answer)
        }
    });
    serve_connection(stream, service, HEADER_TIMEOUT, keep_alive, stop).await;
}
