//! gRPC health (`grpc.health.v1.Health`) for the client port: SERVING only while this node
//! knows a leader (and, as leader, has heard from a quorum within the lease) and has every
//! active registry key loaded; NOT_SERVING otherwise.
//!
//! Owns: deciding and publishing the serving status. Must not: block the sign path or report
//! SERVING for a node that cannot take part in signing.

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

/// Whether a node with this view should say SERVING.
pub fn serving(has_leader: bool, keys_pending: usize) -> bool {
    has_leader && keys_pending == 0
}

/// Keep the health status of "" and `signer.v1.Signer` up to date until the process stops.
pub fn spawn(reporter: HealthReporter, raft: Raft, keyring: Arc<Keyring>) {
    tokio::spawn(async move {
        let mut metrics = raft.metrics();
        let mut last = None;
        loop {
            let has_leader = {
                use openraft::Instant as _;
                let m = metrics.borrow_watched();
                let leading = m.state.is_leader();
                let quorum_fresh = m
                    .last_quorum_acked
                    .as_ref()
                    .is_some_and(|t| t.elapsed() < QUORUM_STALE);
                m.current_leader.is_some() && (!leading || quorum_fresh)
            };
            let now = serving(has_leader, keyring.pending().len());
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
                changed = metrics.changed() => if changed.is_err() { return },
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
        assert!(serving(true, 0));
        assert!(!serving(false, 0));
        assert!(!serving(true, 1));
    }
}
