//! The metrics endpoint: plain HTTP/1.1 on its own listener, `GET /metrics` answered with the
//! node's [`Metrics`] in the Prometheus text format, anything else with 404 (405 for another
//! method on `/metrics`).
//!
//! Owns: the endpoint's limits and answers (connections are accepted and stopped by
//! [`crate::http_server`]). Must not: serve anything but the
//! encoded metrics (no other paths, no TLS, no authentication: the listener defaults to
//! loopback, and the text holds no secrets), or let scrapers hold resources without bound.
//!
//! To ensure correctness:
//! - at most [`MAX_CONNECTIONS`] scrape connections at once; more are closed on accept;
//! - a client has [`HEADER_TIMEOUT`] to send its request head;
//! - on shutdown the accept loop stops and open connections finish their current response.

use super::Metrics;
use crate::http_server::{accept_loop, serve_connection};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// The only path served.
pub const METRICS_PATH: &str = "/metrics";
/// Scrape connections served at once.
pub const MAX_CONNECTIONS: usize = 16;
/// Time a client has to send its request head.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Serve `GET /metrics` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send,
) {
    let connection = |stream, stop| {
        let metrics = metrics.clone();
        let service = service_fn(move |req: Request<Incoming>| {
            let response = respond(&metrics, &req);
            async move { Ok::<_, Infallible>(response) }
        });
        serve_connection(stream, service, HEADER_TIMEOUT, true, stop)
    };
    accept_loop("metrics", listener, MAX_CONNECTIONS, shutdown, connection).await;
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// The answer to one request.
fn respond<B>(metrics: &Metrics, req: &Request<B>) -> Response<Full<Bytes>> {
    if req.uri().path() != METRICS_PATH {
        return text(
            StatusCode::NOT_FOUND,
            format!("not found; metrics are at {METRICS_PATH}\n"),
        );
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "use GET\n");
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    match metrics.encode() {
        Ok(body) => {
            let mut response = text(StatusCode::OK, body);
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static(prometheus::TEXT_FORMAT),
            );
            response
        }
        Err(e) => {
            tracing::warn!(error = %e, "metrics endpoint: encoding failed");
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("encoding metrics failed: {e}\n"),
            )
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get(addr: std::net::SocketAddr, request: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut out = String::new();
        stream.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn serves_metrics_404s_other_paths_and_stops() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let metrics = Arc::new(Metrics::new(7).unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, metrics, async move {
            let _ = stopped.await;
        }));

        let ok = get(
            addr,
            "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(
            ok.contains("content-type: text/plain; version=0.0.4"),
            "{ok}"
        );
        assert!(ok.contains("\nsigner_node_id 7\n"), "{ok}");

        let missing = get(
            addr,
            "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(
            missing.starts_with("HTTP/1.1 404 Not Found\r\n"),
            "{missing}"
        );
        let post = get(
            addr,
            "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(post.starts_with("HTTP/1.1 405 "), "{post}");

        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .unwrap()
            .unwrap();
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    }
}
