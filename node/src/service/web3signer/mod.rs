//! The Web3Signer-compatible eth2 REST API (`[web3signer]`), so that Ethereum validator
//! clients (Lighthouse, Teku, Prysm, Nimbus, Lodestar) use the cluster as their remote signer:
//! `GET /upcheck`, `GET /healthcheck`, `GET /api/v1/eth2/publicKeys` and
//! `POST /api/v1/eth2/sign/{identifier}` (paths and answers in [`routes`]).
//!
//! Owns: the listener, TLS, and who the caller is: the name in its client certificate
//! (verified against the cluster CA; the same identities and grants as the gRPC API), or the
//! configured `insecure_loopback_identity` on a plain-HTTP loopback listener. Must not: sign,
//! decide or check grants itself: every sign request goes through the one sign path
//! ([`SignPath::sign_typed`]), which checks the grant and rate limit, proposes through Raft
//! and signs only with the permit of the committed entry.
//!
//! To ensure correctness:
//! - a TLS connection without a client certificate is let through the handshake (load
//!   balancers' health checks carry none) but may only read `/upcheck` and `/healthcheck`,
//!   one request per connection; everything else answers 401;
//! - at most [`MAX_CONNECTIONS`] connections at once, a client has [`HEADER_TIMEOUT`] to send
//!   each request head and [`crate::tls::HANDSHAKE_TIMEOUT`] for the TLS handshake; bodies are
//!   capped at [`routes::MAX_BODY`];
//! - on shutdown the accept loop stops and open connections finish their current request.

pub mod routes;

use crate::config::Web3SignerConfig;
use crate::http_server::{accept_loop, serve_connection, Stopping};
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
        Ok(Web3SignerApi { path, transport })
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
            let identity = Some(identity.clone());
            http(api.clone(), stream, identity, stop).await;
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
            let identity = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|certs| certs.first())
                .and_then(|leaf| crate::tls::certificate_identity(leaf));
            http(api.clone(), tls, identity, stop).await;
        }
    }
}

/// Requests of one connection from `identity`; a caller without a certificate gets one
/// request per connection (health checks).
async fn http<S>(api: Arc<Web3SignerApi>, stream: S, identity: Option<String>, stop: Stopping)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let keep_alive = identity.is_some();
    let service = service_fn(move |req: Request<Incoming>| {
        let api = api.clone();
        let identity = identity.clone();
        async move { Ok::<_, Infallible>(routes::handle(&api, identity.as_deref(), req).await) }
    });
    serve_connection(stream, service, HEADER_TIMEOUT, keep_alive, stop).await;
}
