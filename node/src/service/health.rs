//! gRPC health (`grpc.health.v1.Health`) for the client port: SERVING only while this node
//! knows a leader (and, as leader, has heard from a quorum within the lease) and has every
//! active registry key loaded; NOT_SERVING otherwise.
//!
//! Owns: deciding whether this node can sign ([`Readiness`], also read by the
//! Web3Signer-compatible API's `/upcheck`) and publishing it as the gRPC serving status.
//! Must not: block the sign path or report SERVING for a node that cannot take part in
//! signing.

use crate::keyring::Keyring;
use crate::replica::Raft;
use openraft::async_runtime::WatchReceiver;
use std::sync::Arc;
use std::time::Duration;
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;

/// The service name health is reported for, besides the overall status ("").
pub const SIGNER_SERVICE: &str = "signer.v1.Signer";

/// How often the status is re-evaluated (also on every Raft metrics change).
const RECHECK: Duration = Duration::from_millis(250);

/// A leader that has not heard from a quorum for this long cannot commit: not serving.
const QUORUM_STALE: Duration = Duration::from_secs(2);

/// Whether this node can take part in signing right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Readiness {
    /// Its Raft runs and knows a leader (and, as the leader, has heard from a quorum within
    /// the lease).
    pub leader: bool,
    /// Active registry keys it has not loaded yet.
    pub keys_pending: usize,
}

impl Readiness {
    /// This node's readiness now.
    pub fn of(raft: &Raft, keyring: &Keyring) -> Readiness {
        use openraft::Instant as _;
        let leader = {
            let metrics = raft.metrics();
            let m = metrics.borrow_watched();
            let leading = m.state.is_leader();
            let quorum_fresh = m
                .last_quorum_acked
                .as_ref()
                .is_some_and(|t| t.elapsed() < QUORUM_STALE);
            // Raft that stopped (a storage failure, a panicked core) keeps its last metrics:
            // it takes part in nothing, whatever leader they name.
            m.running_state.is_ok() && m.current_leader.is_some() && (!leading || quorum_fresh)
        };
        Readiness {
            leader,
            keys_pending: keyring.pending().len(),
        }
    }

    /// Whether a node in this state should say SERVING: a leader, and every key loaded.
    pub fn serving(&self) -> bool {
        self.leader && self.keys_pending == 0
    }
}

/// Keep the health status of "" and `signer.v1.Signer` up to date until the process stops.
pub fn spawn(reporter: HealthReporter, raft: Raft, keyring: Arc<Keyring>) {
    tokio::spawn(async move {
        let mut metrics = raft.metrics();
        let mut last = None;
        loop {
            let now = Readiness::of(&raft, &keyring).serving();
            if last != Some(now) {
                let status = if now {
                    ServingStatus::Serving
                } else {
                    ServingStatus::NotServing
                };
                reporter.set_service_status("", status).await;
                reporter.set_service_status(SIGNER_SERVICE, status).await;
                last = Some(now);
            }
            tokio::select! {
                changed = metrics.changed() => if changed.is_err() {
                    // Raft is gone: never leave a stale SERVING behind.
                    reporter.set_service_status("", ServingStatus::NotServing).await;
                    reporter.set_service_status(SIGNER_SERVICE, ServingStatus::NotServing).await;
                    return;
                },
                _ = tokio::time::sleep(RECHECK) => {}
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serving_needs_a_leader_and_every_key() {
        let ready = |leader, keys_pending| Readiness {
            leader,
            keys_pending,
        };
        assert!(ready(true, 0).serving());
        assert!(!ready(false, 0).serving());
        assert!(!ready(true, 1).serving());
    }
}
