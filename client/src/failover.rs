//! The pool's one failover loop, and what counts as "this node cannot answer now".
//!
//! Owns: classifying a status as unavailable (try another node) or definitive, describing a
//! node's failure for the error message, the retry loop over the nodes (attempts, deadline,
//! backoff) and the single-node call. Must not: know which RPC it runs (callers pass a closure
//! and how to read a definitive answer), or retry a definitive answer.

use super::{ClientError, SignerPool};
use crate::tls::node_identity;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tonic::transport::Channel;
use tonic::{Code, Status};

/// Whether tonic made `status` up on this side from a transport error rather than receiving
/// it from a server: such a status carries the error as its source, one a server sent does
/// not. A connection that breaks mid-call (the node exited, e.g. on a full disk) comes as
/// INTERNAL "h2 protocol error" with the HTTP/2 error as its source.
pub fn made_by_client(status: &Status) -> bool {
    std::error::Error::source(status).is_some()
}

/// Whether a status means "this node cannot answer now; another may": transport failures,
/// UNAVAILABLE (no leader, shutting down), deadlines and cancellations.
pub(super) fn is_unavailable(status: &Status) -> bool {
    match status.code() {
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled => true,
        Code::Unknown | Code::Internal => made_by_client(status),
        _ => false,
    }
}

/// `node-<id>: <Code>: <message>[: <root cause>]`, e.g.
/// `node-1: Unavailable: tcp connect error: Connection refused (os error 111)`.
pub(super) fn describe(node: u64, status: &Status) -> String {
    let mut text = format!(
        "{}: {:?}: {}",
        node_identity(node),
        status.code(),
        status.message()
    );
    let mut root = std::error::Error::source(status);
    while let Some(next) = root.and_then(std::error::Error::source) {
        root = Some(next);
    }
    if let Some(cause) = root.map(ToString::to_string) {
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

impl SignerPool {
    /// Run `call` on one node after another, starting at the node that answered last, until
    /// one answers or the attempts or the deadline run out. "Cannot answer now" (see
    /// [`is_unavailable`], and no answer within the RPC timeout) moves on to the next node,
    /// pausing with backoff after each full round; any other status is a definitive answer,
    /// made into an error by `answer` and returned at once. Returns the answering node's id
    /// with the value.
    pub(super) async fn with_failover<T, F, Fut>(
        &self,
        answer: fn(Status) -> ClientError,
        mut call: F,
    ) -> Result<(u64, T), ClientError>
    where
        F: FnMut(Channel, Duration) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        let n = self.nodes.len();
        let deadline = Instant::now() + self.options.deadline;
        let first = self.preferred.load(Ordering::Relaxed);
        let mut backoff = self.options.backoff;
        let mut attempts = 0u32;
        // The last failure of each node, so that the error names why each one did not answer
        // (a follower's "not the leader" does not hide the leader's own reason).
        let mut last_errors: Vec<Option<String>> = vec![None; n];
        while attempts < self.options.max_attempts {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                break;
            }
            let index = (first + attempts as usize) % n;
            let Some(node) = self.nodes.get(index) else {
                break;
            };
            attempts += 1;
            let timeout = remaining.min(self.options.rpc_timeout);
            let failure =
                match tokio::time::timeout(timeout, call(node.channel.clone(), timeout)).await {
                    Ok(Ok(value)) => {
                        self.preferred.store(index, Ordering::Relaxed);
                        return Ok((node.id, value));
                    }
                    Ok(Err(status)) if is_unavailable(&status) => describe(node.id, &status),
                    Ok(Err(status)) => return Err(answer(status)),
                    Err(_) => format!("{}: no answer within {timeout:?}", node_identity(node.id)),
                };
            if let Some(slot) = last_errors.get_mut(index) {
                *slot = Some(failure);
            }
            if (attempts as usize).is_multiple_of(n) {
                let remaining = deadline.saturating_duration_since(Instant::now());
                tokio::time::sleep(backoff.min(remaining)).await;
                backoff = (backoff * 2).min(self.options.max_backoff);
            }
        }
        let last_errors: Vec<String> = last_errors.into_iter().flatten().collect();
        Err(ClientError::Unavailable {
            attempts,
            last_error: if last_errors.is_empty() {
                String::from("no attempt was made")
            } else {
                last_errors.join("; ")
            },
        })
    }
}

pub(super) async fn single<T>(
    node_id: u64,
    timeout: Duration,
    call: impl Future<Output = Result<T, Status>>,
) -> Result<T, ClientError> {
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(status)) => Err(ClientError::from_status(status, node_id, 1)),
        Err(_) => Err(ClientError::Unavailable {
            attempts: 1,
            last_error: format!("{}: no answer within {timeout:?}", node_identity(node_id)),
        }),
    }
}
