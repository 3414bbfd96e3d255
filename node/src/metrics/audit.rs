//! The node's periodic local verification of its audit chain, as gauges: the same check as
//! `signerctl audit verify` asks each node for (the Audit service's `Verify`), run by the node
//! itself every [`AUDIT_VERIFY_EVERY`] so that an edited, deleted or reordered record pages
//! someone without anyone running a command.
//!
//! Owns: the verification task ([`Metrics::spawn_audit_verifier`]) and the series
//! `signer_audit_chain_verified` (1: the chain verifies from its anchor to its head; 0: it does
//! not, or the database could not be read), `signer_audit_chain_first_bad_seq` (the first
//! record that does not verify; 0 when none), `signer_audit_chain_head_seq` (the head the
//! check reached) and `signer_audit_chain_checked_timestamp_seconds` (when it finished).
//! Must not: change the chain, hold a lock that apply takes (it reads through its own redb
//! read transaction, off the async runtime), or report before the first check has finished:
//! the series appear only then, so a node that just started is not taken for a broken one.

use super::{gauge, Metrics};
use crate::audit::ChainError;
use crate::replica::StateMachine;
use crate::state::AuditChain;
use prometheus::IntGauge;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::task::JoinHandle;

/// How often a node verifies its whole audit chain (it reads every kept record: compact the
/// log with `signerctl audit-compact` to keep this cheap). The first check runs at start.
pub const AUDIT_VERIFY_EVERY: Duration = Duration::from_secs(300);

/// The gauges of this module, registered at the first check.
pub(super) struct AuditGauges {
    registered: AtomicBool,
    verified: IntGauge,
    first_bad_seq: IntGauge,
    head_seq: IntGauge,
    checked_at: IntGauge,
}

impl AuditGauges {
    pub(super) fn new() -> Result<AuditGauges, prometheus::Error> {
        Ok(AuditGauges {
            registered: AtomicBool::new(false),
            verified: IntGauge::new(
                "signer_audit_chain_verified",
                "1 if this node's last local check of its audit chain verified every kept \
                 record from the anchor to the head; 0 if a record did not verify or the \
                 database could not be read.",
            )?,
            first_bad_seq: IntGauge::new(
                "signer_audit_chain_first_bad_seq",
                "The first audit record the last local check found altered, deleted or out of \
                 order (0: none).",
            )?,
            head_seq: IntGauge::new(
                "signer_audit_chain_head_seq",
                "The newest audit record the last local check reached.",
            )?,
            checked_at: IntGauge::new(
                "signer_audit_chain_checked_timestamp_seconds",
                "When the last local check of the audit chain finished (Unix seconds).",
            )?,
        })
    }
}

/// What one local check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditCheck {
    /// The chain verifies up to its head record `head_seq`.
    Verified {
        /// The newest record.
        head_seq: u64,
    },
    /// Record `first_bad_seq` does not verify.
    Broken {
        /// The chain's head as stored.
        head_seq: u64,
        /// The first record that does not verify.
        first_bad_seq: u64,
    },
    /// The database could not be read.
    Unreadable,
}

impl AuditCheck {
    /// The check's finding from what [`StateMachine::audit_verify`] returned.
    pub fn of(
        result: std::io::Result<(AuditChain, Result<crate::audit::ChainPoint, ChainError>)>,
    ) -> AuditCheck {
        match result {
            Ok((chain, Ok(_))) => AuditCheck::Verified {
                head_seq: chain.head.seq,
            },
            Ok((chain, Err(e))) => AuditCheck::Broken {
                head_seq: chain.head.seq,
                first_bad_seq: e.first_bad_seq,
            },
            Err(_) => AuditCheck::Unreadable,
        }
    }
}

impl Metrics {
    /// Set the audit gauges from `check`, finished at `at` (registering them the first time).
    pub fn observe_audit(&self, check: &AuditCheck, at: SystemTime) {
        let g = &self.audit;
        let (verified, head, bad) = match *check {
            AuditCheck::Verified { head_seq } => (1, head_seq, 0),
            AuditCheck::Broken {
                head_seq,
                first_bad_seq,
            } => (0, head_seq, first_bad_seq),
            AuditCheck::Unreadable => (0, 0, 0),
        };
        g.verified.set(verified);
        g.first_bad_seq.set(gauge(bad));
        g.head_seq.set(gauge(head));
        let secs = at.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        g.checked_at.set(gauge(secs));
        if !g.registered.swap(true, Ordering::SeqCst) {
            for c in [&g.verified, &g.first_bad_seq, &g.head_seq, &g.checked_at] {
                if let Err(e) = self.registry.register(Box::new(c.clone())) {
                    tracing::warn!(error = %e, "metrics: audit gauge not registered");
                }
            }
        }
    }

    /// Verify this node's audit chain from `state` now and every [`AUDIT_VERIFY_EVERY`], until
    /// `stop` resolves; each result goes to the audit gauges (a broken chain is also logged as
    /// an error naming the record). The node owns the returned task.
    pub fn spawn_audit_verifier(
        self: &Arc<Self>,
        state: StateMachine,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> JoinHandle<()> {
        let metrics = self.clone();
        tokio::spawn(async move {
            tokio::pin!(stop);
            loop {
                let state = state.clone();
                let verify = tokio::task::spawn_blocking(move || state.audit_verify());
                let check = tokio::select! {
                    done = verify => match done {
                        Ok(result) => {
                            if let Ok((_, Err(e))) = &result {
                                tracing::error!(first_bad_seq = e.first_bad_seq, reason = %e.reason,
                                    "audit chain does not verify (local check)");
                            }
                            if let Err(e) = &result {
                                tracing::warn!(error = %e, "audit chain: cannot read the records (local check)");
                            }
                            AuditCheck::of(result)
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "audit chain: local check did not finish");
                            AuditCheck::Unreadable
                        }
                    },
                    _ = &mut stop => return,
                };
                metrics.observe_audit(&check, SystemTime::now());
                tokio::select! {
                    _ = tokio::time::sleep(AUDIT_VERIFY_EVERY) => {}
                    _ = &mut stop => return,
                }
            }
        })
    }
}

#[cfg(test)]
mod tests;
