//! What the node's two HTTP/1.1 endpoints (Prometheus metrics, the Web3Signer-compatible API)
//! share: a bounded accept loop, and serving one connection with hyper until the node stops.
//!
//! Owns: accepting (with a back-off when accepting fails, e.g. out of file descriptors), the
//! connection cap, the request-head timeout, and stopping: on shutdown the loop stops
//! accepting and every open connection finishes its current request. Must not: route, answer
//! or authenticate requests (each endpoint passes its own service and TLS).

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

/// Fires when the node stops; a connection finishes its current request, then closes.
pub type Stopping = watch::Receiver<bool>;

/// Accept connections on `listener` until `shutdown` resolves, at most `max_connections` at
/// once (more are closed on accept), and hand each to `connection` on a task of its own.
/// `endpoint` names the endpoint in logs.
pub async fn accept_loop<F, Fut>(
    endpoint: &'static str,
    listener: TcpListener,
    max_connections: usize,
    shutdown: impl Future<Output = ()> + Send,
    connection: F,
) where
    F: Fn(TcpStream, Stopping) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (stop_tx, stop_rx) = watch::channel(false);
    let slots = Arc::new(Semaphore::new(max_connections));
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(endpoint, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!(
                endpoint,
                max_connections,
                "connection cap reached; closing a new one"
            );
            continue;
        };
        let _ = stream.set_nodelay(true);
        let served = connection(stream, stop_rx.clone());
        tokio::spawn(async move {
            served.await;
            drop(slot);
        });
    }
    let _ = stop_tx.send(true);
}

/// Serve HTTP/1.1 requests on `io` with `service` until the client closes or the node stops.
/// A client has `header_timeout` to send each request head; without `keep_alive` the
/// connection closes after one request.
pub async fn serve_connection<I, S>(
    io: I,
    service: S,
    header_timeout: Duration,
    keep_alive: bool,
    mut stop: Stopping,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::Service<
            Request<Incoming>,
            Response = Response<Full<Bytes>>,
            Error = Infallible,
        > + Send,
    S::Future: Send + 'static,
{
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(keep_alive)
        .serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let stopping = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    tokio::select! {
        _ = conn.as_mut() => {}
        () = stopping => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}
