//! Snapshots by size as well as by count. openraft asks for a snapshot every `snapshot_every`
//! log entries ([`crate::config::RaftConfig`]), but an entry carries one signature or hundreds
//! (a batch under load), so entries alone do not bound what a build has to write: after a
//! minute of heavy load, the first build flushed every apply since the node started (the state
//! database commits applies without fsync, and a snapshot's fsync writes them all, while
//! every apply on the node waits: 300-400 ms in the bench's open loop). This task also asks for
//! one whenever `[raft] snapshot_after_audit_bytes` (default [`SNAPSHOT_AFTER_AUDIT_BYTES`]) of
//! audit records were applied since the last.
//!
//! Owns: that trigger. Must not: build, store or defer a snapshot (the state machine does; a
//! trigger while a build runs is ignored by openraft, and a snapshot that could not fit is
//! deferred as any other).

use super::{Raft, StateMachine};
use std::future::Future;
use std::time::Duration;
use tokio::task::JoinHandle;

/// The default of `[raft] snapshot_after_audit_bytes`, the audit record bytes applied since the
/// last snapshot that trigger the next one: about 15,000 signatures. A build then flushes and
/// appends a few MB.
pub const SNAPSHOT_AFTER_AUDIT_BYTES: u64 = 4 << 20;

/// After a trigger, the time before the next check (a build starts within it).
const SETTLE: Duration = Duration::from_millis(500);

/// Ask `raft` for a snapshot whenever `state` applied `after_bytes` of audit records since its
/// last one, until `stop`.
pub fn spawn(
    raft: Raft,
    state: StateMachine,
    after_bytes: u64,
    stop: impl Future<Output = ()> + Send + 'static,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        tokio::select! {
            () = stop => {}
            () = drive(&raft, &state, after_bytes) => {}
        }
    })
}

async fn drive(raft: &Raft, state: &StateMachine, after_bytes: u64) {
    let mut appended = state.watch_audit();
    while appended.changed().await.is_ok() {
        if state.audit_bytes_since_snapshot() < after_bytes {
            continue;
        }
        if raft.trigger().snapshot().await.is_err() {
            // Raft stopped (shut down or a storage error): nothing left to trigger.
            return;
        }
        tokio::time::sleep(SETTLE).await;
    }
}
