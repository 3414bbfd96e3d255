//! The replicated commands: what a Raft log entry carries ([`Proposal`], [`Command`]) and what
//! applying it returns ([`CommandResult`], [`SignOutcome`]).
//!
//! Owns: these types and their meaning. Must not: know how they are stored or sent (that is
//! [`crate::format`] and the replica), or read a clock (the proposer stamps `at_ms`).

use crate::protection::{Intent, Violation};
use serde::{Deserialize, Serialize};
use std::fmt;

/// One request to sign, as replicated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignEntry {
    /// Client-chosen id; empty when the client gave none.
    pub request_id: String,
    /// The authenticated client identity.
    pub client: String,
    /// The key's cluster-wide id.
    pub key_id: String,
    /// What is to be signed.
    pub intent: Intent,
}

/// A replicated command: one Raft log entry's application data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// A batch of sign requests, decided in order.
    Sign(Vec<SignEntry>),
    /// Events nodes observed outside the state machine (key loaded, KMS failure, access
    /// denied), recorded in the audit log; proposed best-effort through [`EventSink`].
    Event(Vec<crate::audit::NodeEvent>),
    /// An admin-plane command: bootstrap, a proposal, or an approval (which applies the
    /// action when it reaches the threshold). This is the only command that changes keys,
    /// grants, policy, admins or drops audit records, and (bootstrap aside) it does so only
    /// when M-of-N approvals of the action's canonical bytes are applied.
    Admin(crate::admin::AdminCommand),
}

/// What a Raft log entry carries: a command and the proposing leader's wall clock.
///
/// Every replica uses `at_ms` (never its own clock) for what it records, so audit records are
/// byte-identical on all nodes. The replica stamps it when it proposes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    /// Milliseconds since the Unix epoch on the proposer's clock.
    pub at_ms: u64,
    /// The command.
    pub command: Command,
}

impl fmt::Display for Proposal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.command, self.at_ms)
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Sign(batch) => write!(f, "Sign(batch of {})", batch.len()),
            Command::Event(events) => write!(f, "Event({} events)", events.len()),
            Command::Admin(c) => match c {
                crate::admin::AdminCommand::Bootstrap(_) => f.write_str("Admin(bootstrap)"),
                crate::admin::AdminCommand::Propose { id, .. } => {
                    write!(f, "Admin(propose {})", hex::encode(&id[..4]))
                }
                crate::admin::AdminCommand::Approve { id, admin, .. } => {
                    write!(f, "Admin(approve {} by {admin})", hex::encode(&id[..4]))
                }
                crate::admin::AdminCommand::NodeChangeDone { id, .. } => {
                    write!(f, "Admin(membership change {} done)", hex::encode(&id[..4]))
                }
            },
        }
    }
}

/// The decision for one sign entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SignOutcome {
    /// New data: the watermark advanced.
    Signed,
    /// Identical to data signed before: the state is unchanged.
    Resigned,
    /// Refused, with the reason; the state is unchanged.
    Refused(Violation),
    /// The key's registry record is not active (disabled or deleted) at this point of the log;
    /// the state is unchanged.
    KeyInactive,
    /// The admins paused signing at this point of the log; the state is unchanged.
    Paused,
    /// The registry holds this key id under another public key than the entry names (e.g. a
    /// key file and a registry key sharing one id); the state is unchanged.
    KeyMismatch,
}

/// What applying a command returned.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandResult {
    /// Blank and membership entries.
    #[default]
    None,
    /// One outcome per entry of a [`Command::Sign`] batch, in order.
    Sign(Vec<SignOutcome>),
    /// What a [`Command::Admin`] did.
    Admin(crate::admin::AdminOutcome),
}
