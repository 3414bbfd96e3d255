//! A small client for a node's Web3Signer-compatible eth2 REST API: one keep-alive HTTP/1.1
//! connection, over mutual TLS with the caller's certificate (or plain HTTP to a loopback
//! endpoint served with `insecure_loopback_identity`). Used by `signer bench`, `signer
//! dev-cluster` checks and the tests; validator clients use their own.
//!
//! Owns: the connection and the request shape (`Host`, `Accept`, `Content-Type`). Must not:
//! interpret answers (the caller reads the status and body) or retry anything.

use crate::tls::{TlsError, TlsMaterial};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// How long connecting (TCP and TLS) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a call could not be made or answered (an HTTP error status is an answer, not this).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// The TLS settings could not be built.
    #[error("tls settings: {0}")]
    Tls(#[from] TlsError),
    /// The TCP connection or the TLS handshake failed.
    #[error("connecting to {addr}: {reason}")]
    Connect {
        /// The address dialed.
        addr: SocketAddr,
        /// Why.
        reason: String,
    },
    /// The request could not be sent or its answer read (the connection is unusable).
    #[error("{0}")]
    Transport(String),
}

/// One answer: its status, content type and body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpAnswer {
    /// The status code.
    pub status: u16,
    /// The `Content-Type` header, if any.
    pub content_type: Option<String>,
    /// The body.
    pub body: Vec<u8>,
}

impl HttpAnswer {
    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One HTTP/1.1 connection to a node's REST API.
pub struct Web3SignerConnection {
    sender: SendRequest<Full<Bytes>>,
    host: String,
}

impl Web3SignerConnection {
    /// Connect to `addr`: HTTPS presenting `tls`'s certificate and trusting its CA (the node's
    /// certificate names 127.0.0.1, `localhost` and `node-<id>`; `server_name` picks one), or
    /// plain HTTP when `tls` is `None`.
    pub async fn connect(
        addr: SocketAddr,
        tls: Option<(&TlsMaterial, &str)>,
    ) -> Result<Self, HttpError> {
        let connect_err = |reason: String| HttpError::Connect { addr, reason };
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr))
            .await
            .map_err(|_| connect_err("timed out".into()))?
            .map_err(|e| connect_err(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        let host = addr.to_string();
        let sender = match tls {
            None => handshake(TokioIo::new(tcp)).await,
            Some((material, server_name)) => {
                let config = Arc::new(material.https_client_config()?);
                let name = rustls::pki_types::ServerName::try_from(server_name.to_owned())
                    .map_err(|e| connect_err(format!("server name {server_name:?}: {e}")))?;
                let stream = tokio::time::timeout(
                    CONNECT_TIMEOUT,
                    tokio_rustls::TlsConnector::from(config).connect(name, tcp),
                )
                .await
                .map_err(|_| connect_err("TLS handshake timed out".into()))?
                .map_err(|e| connect_err(format!("TLS handshake: {e}")))?;
                handshake(TokioIo::new(stream)).await
            }
        }
        .map_err(|e| connect_err(e.to_string()))?;
        Ok(Web3SignerConnection { sender, host })
    }

    /// `GET path` with an optional `Accept` header.
    pub async fn get(&mut self, path: &str, accept: Option<&str>) -> Result<HttpAnswer, HttpError> {
        self.call("GET", path, accept, None).await
    }

    /// `POST /api/v1/eth2/sign/{identifier}` with a JSON body, asking for a JSON answer.
    pub async fn sign(&mut self, identifier: &str, body: Vec<u8>) -> Result<HttpAnswer, HttpError> {
        let path = format!("/api/v1/eth2/sign/{identifier}");
        self.call("POST", &path, Some("application/json"), Some(body))
            .await
    }

    /// One request; `body` is sent as `application/json`.
    pub async fn call(
        &mut self,
        method: &str,
        path: &str,
        accept: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Result<HttpAnswer, HttpError> {
        let transport = |e: &dyn std::fmt::Display| HttpError::Transport(e.to_string());
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, &self.host);
        if let Some(accept) = accept {
            request = request.header(hyper::header::ACCEPT, accept);
        }
        if body.is_some() {
            request = request.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| transport(&e))?;
        self.sender.ready().await.map_err(|e| transport(&e))?;
        let response = self
            .sender
            .send_request(request)
            .await
            .map_err(|e| transport(&e))?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| transport(&e))?
            .to_bytes()
            .to_vec();
        Ok(HttpAnswer {
            status,
            content_type,
            body,
        })
    }
}

/// The HTTP/1.1 handshake over `io`; the connection is driven by a task of its own, which
/// ends when the [`SendRequest`] is dropped or the peer closes.
async fn handshake<I>(io: I) -> Result<SendRequest<Full<Bytes>>, hyper::Error>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}
