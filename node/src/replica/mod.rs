//! Replication: the openraft type configuration, the replicated commands, the redb log store,
//! the redb state machine, the peer network client and the node's audit-event delivery.
//!
//! Where openraft appears: its type configuration is declared here, and its storage and
//! network traits are implemented only here; every proposal goes through [`propose`]. Outside
//! this module openraft is used only through the handle and aliases defined here, for wiring
//! and observing, never to store or decide anything:
//! - `node.rs` turns the `[raft]` config into openraft's `Config`, initializes the membership
//!   (`BasicNode`) and shuts Raft down; [`membership`] changes it, only to carry out an
//!   approved admin action;
//! - `service/peer.rs` is the server half of the peer network: it decodes openraft's RPCs
//!   (append entries, vote, snapshot) and hands them to the [`Raft`] handle;
//! - `service/{signing,audit,health}.rs` and `metrics.rs` read `Raft::metrics()` (leader,
//!   term, applied index) for forwarding, status, health and gauges.
//!
//! Owns: what goes into the Raft log ([`Command`]), what applying it returns
//! ([`CommandResult`]), durable storage of both, and turning an applied sign decision into a
//! [`SignPermit`] ([`commit_signs`]).
//! Must not: sign (the service does, with a permit), or talk to clients.
//!
//! Version choice: openraft `=0.10.0-alpha.37`, pinned exactly. The 0.10 line batches log IO
//! and hands `apply` a stream of entries, so one redb transaction (one fsync) covers a whole
//! batch of sign decisions; its `ClientWriteError::LogEntryDiscarded` also tells a proposer
//! that an entry's outcome is unknown, which a signer must not confuse with "refused". The
//! stable 0.9 line lacks both. The alpha is pinned with `=` so an upgrade is a deliberate
//! change that reruns the storage conformance suite.
//!
//! To ensure correctness:
//! - a permit is issued only for an entry that the state machine applied (so a quorum
//!   committed it) with outcome `Signed` or `Resigned`;
//! - `apply` is deterministic: the outcome depends only on the entry and the state before it.

pub mod events;
pub mod log_store;
pub mod membership;
pub mod network;
pub mod snapshot_bytes;
pub mod snapshot_trigger;
pub mod state_machine;

use crate::keyring::SignPermit;
use openraft::errors::{ClientWriteError, ForwardToLeader, RaftError};

pub use events::EventSink;
pub use log_store::LogStore;
pub use network::PeerNetwork;
pub use state_machine::StateMachine;

pub use crate::state::command::{Command, CommandResult, Proposal, SignEntry, SignOutcome};

/// `command` stamped with this node's clock: every proposal is made here.
fn stamp(command: Command) -> Proposal {
    let at_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    Proposal { at_ms, command }
}

openraft::declare_raft_types!(
    /// The signer's Raft types: node ids are small integers, nodes carry their peer address.
    pub TypeConfig:
        D = Proposal,
        R = CommandResult,
        NodeId = u64,
        Node = openraft::BasicNode,
);

/// The Raft log's database in a node's data directory (its journal is beside it, with the
/// extension `journal`).
pub const LOG_DATABASE_FILE: &str = "raft-log.redb";
/// The state database in a node's data directory (the snapshot files are beside it).
pub const STATE_DATABASE_FILE: &str = "state.redb";

/// A node id.
pub type NodeId = u64;
/// A log id.
pub type LogId = openraft::alias::LogIdOf<TypeConfig>;
/// A vote.
pub type Vote = openraft::alias::VoteOf<TypeConfig>;
/// A log entry.
pub type Entry = openraft::alias::EntryOf<TypeConfig>;
/// Membership as stored.
pub type StoredMembership = openraft::alias::StoredMembershipOf<TypeConfig>;
/// Snapshot metadata.
pub type SnapshotMeta = openraft::alias::SnapshotMetaOf<TypeConfig>;
/// A snapshot's body: a self-contained snapshot in the versioned binary format
/// (`crate::format`), in memory or read from the stored files on demand ([`snapshot_bytes`]).
pub type SnapshotData = snapshot_bytes::SnapshotBytes;
/// A snapshot.
pub type Snapshot = openraft::alias::SnapshotOf<TypeConfig, SnapshotData>;
/// The Raft handle.
pub type Raft = openraft::Raft<TypeConfig, StateMachine>;

/// Why a batch of sign requests did not get decided.
#[derive(Debug, thiserror::Error)]
pub enum ProposeError {
    /// This node is not the leader (or cannot act as one right now).
    #[error("not the leader (leader: {leader:?})")]
    NotLeader {
        /// The leader, when known.
        leader: Option<NodeId>,
    },
    /// The entry was appended and then discarded by a new leader: its outcome is unknown.
    /// Retrying the identical request is safe (it re-signs or is refused).
    #[error("outcome unknown: leadership changed while the request was in flight")]
    Unknown,
    /// The Raft core stopped (storage failure or shutdown).
    #[error("replication stopped: {0}")]
    Fatal(String),
    /// The state machine answered something other than one outcome per entry.
    #[error("internal error: {0}")]
    Internal(&'static str),
}

/// A decided sign request: the outcome, and a permit when it may be signed.
#[derive(Debug)]
pub struct Decided {
    /// The outcome recorded by the state machine.
    pub outcome: SignOutcome,
    /// Present exactly when the outcome allows signing.
    pub permit: Option<SignPermit>,
}

/// Propose a batch of sign requests through Raft and wait until it is committed and applied.
/// Returns one decision per entry, in order, with a permit where the applied outcome allows
/// signing ([`decide_permits`]).
pub async fn commit_signs(
    raft: &Raft,
    batch: Vec<SignEntry>,
) -> Result<Vec<Decided>, ProposeError> {
    let entries = batch.clone();
    let response = propose(raft, Command::Sign(batch)).await?;
    let CommandResult::Sign(outcomes) = response else {
        return Err(ProposeError::Internal("sign command returned no outcomes"));
    };
    decide_permits(&entries, outcomes)
}

/// Pair each applied sign outcome with its entry; a permit is issued exactly for the entries
/// whose outcome is `Signed` or `Resigned`, naming that entry's key id, public key and
/// message. This is the only place a [`SignPermit`] is made. `outcomes` must be what the
/// state machine applied for `batch` (one per entry, in order).
pub fn decide_permits(
    batch: &[SignEntry],
    outcomes: Vec<SignOutcome>,
) -> Result<Vec<Decided>, ProposeError> {
    if outcomes.len() != batch.len() {
        return Err(ProposeError::Internal(
            "outcome count differs from batch size",
        ));
    }
    Ok(outcomes
        .into_iter()
        .zip(batch)
        .map(|(outcome, entry)| {
            let permit = match outcome {
                // The bytes are built from the entry's typed intent; they cannot fail for an
                // intent the conversion accepted (its key was parsed there), and if they did,
                // no permit means no signature (the service reports an internal error).
                SignOutcome::Signed | SignOutcome::Resigned => {
                    entry.intent.signed_bytes().ok().map(|message| {
                        SignPermit::issue(
                            entry.key_id.clone(),
                            entry.intent.public_key().to_vec(),
                            message,
                        )
                    })
                }
                SignOutcome::Refused(_)
                | SignOutcome::KeyInactive
                | SignOutcome::Paused
                | SignOutcome::KeyMismatch => None,
            };
            Decided { outcome, permit }
        })
        .collect())
}

/// Propose an admin-plane command and wait until it is committed and applied.
pub async fn commit_admin(
    raft: &Raft,
    command: crate::admin::AdminCommand,
) -> Result<crate::admin::AdminOutcome, ProposeError> {
    match propose(raft, Command::Admin(command)).await? {
        CommandResult::Admin(outcome) => Ok(outcome),
        _ => Err(ProposeError::Internal("admin command returned no outcome")),
    }
}

/// Propose `command`, stamped with this node's clock ([`stamp`]), and wait until it is
/// committed and applied; returns what applying it returned. Every proposal goes through here.
pub async fn propose(raft: &Raft, command: Command) -> Result<CommandResult, ProposeError> {
    raft.client_write(stamp(command))
        .await
        .map(|response| response.data)
        .map_err(propose_error)
}

fn propose_error(e: RaftError<TypeConfig, ClientWriteError<TypeConfig>>) -> ProposeError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(ForwardToLeader {
            leader_id,
            ..
        })) => ProposeError::NotLeader { leader: leader_id },
        RaftError::APIError(ClientWriteError::LogEntryDiscarded(_)) => ProposeError::Unknown,
        RaftError::APIError(other) => ProposeError::Fatal(other.to_string()),
        RaftError::Fatal(f) => ProposeError::Fatal(f.to_string()),
    }
}

/// Map any error into `io::Error` for openraft's storage traits.
pub(crate) fn io_err<E: std::error::Error + Send + Sync + 'static>(e: E) -> std::io::Error {
    std::io::Error::other(e)
}

/// One redb write transaction of `durability` holding `change` (the Raft log's and the state
/// database's writers both commit through it).
pub(crate) fn commit<T>(
    db: &redb::Database,
    durability: redb::Durability,
    change: impl FnOnce(&redb::WriteTransaction) -> std::io::Result<T>,
) -> std::io::Result<T> {
    let mut txn = db.begin_write().map_err(io_err)?;
    txn.set_durability(durability).map_err(io_err)?;
    let out = change(&txn)?;
    txn.commit().map_err(io_err)?;
    Ok(out)
}
