//! The hash-chained audit log: record types, their canonical encoding, the chain rules and the
//! renderings operators read. Pure: no IO, no async, no clock — times travel inside records
//! (the proposing leader's clock, replicated in the Raft entry).
//!
//! Owns: [`AuditRecord`] and [`AuditEvent`], the canonical byte encoding ([`encode`],
//! [`decode`]), [`hash`], [`link`], [`verify_chain`] (and [`verify_chain_from`]), filters and the JSON / text renderings.
//! Must not: read storage or the network (the state machine stores records, the audit service
//! serves them), or depend on wire (`pb`) types.
//!
//! To ensure correctness:
//! - a record's hash is SHA-256 of its canonical encoding, which includes the previous
//!   record's hash, so editing, deleting or reordering any record breaks every later link;
//! - the encoding is defined here byte by byte (not by serde), so renaming a Rust field or
//!   upgrading a serializer never changes a hash; `decode` is strict (no trailing bytes,
//!   no unknown tags, valid UTF-8), so `encode(decode(b)) == b` for every accepted `b`;
//! - records are built only from replicated data (the entry, its log index, the leader's
//!   timestamp), so every replica builds byte-identical records.

mod chain;
mod encoding;
mod render;

pub use chain::{
    hash, hash_bytes, link, verify_chain, verify_chain_from, ChainError, ChainPoint, GENESIS,
};
pub use encoding::{decode, encode, DecodeError, MAGIC};
pub use render::{format_rfc3339, parse_time, to_json, AuditFilter};

use serde::{Deserialize, Serialize};

/// A SHA-256 digest.
pub type Hash = [u8; 32];

/// One entry of the audit log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Position in the chain, from 1, without gaps.
    pub seq: u64,
    /// The hash of record `seq - 1` (of the compaction anchor, or [`GENESIS`] for record 1).
    pub prev_hash: Hash,
    /// The proposing leader's wall clock, milliseconds since the Unix epoch, as replicated.
    pub at_ms: u64,
    /// The Raft log index of the entry that produced the record.
    pub log_index: u64,
    /// What happened.
    pub event: AuditEvent,
}

/// What an audit record records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum AuditEvent {
    /// A sign request decided by the state machine.
    Sign(SignDecision),
    /// An admin action, with the admins who approved it.
    Admin {
        /// What was done, in words (e.g. `key generate validator-7 eth2`).
        action: String,
        /// The identity that submitted it.
        actor: String,
        /// The identities whose approvals made it pass.
        approvers: Vec<String>,
        /// `ok`, or why it changed nothing.
        result: String,
    },
    /// A change to the key registry (generate, import, enable, disable, delete, re-wrap).
    KeyChange {
        /// `add`, `set-state <state>` or `rewrap`.
        action: String,
        /// The key(s) concerned.
        key_id: String,
        /// `ok`, or why it changed nothing.
        result: String,
    },
    /// A Raft membership change.
    Membership {
        /// Voter node ids.
        voters: Vec<u64>,
        /// Learner node ids.
        learners: Vec<u64>,
    },
    /// Something that happened on one node (reported by that node).
    Node(NodeEvent),
    /// Records up to `up_to_seq` were dropped from the log (after an export); `last_hash` is
    /// the hash of record `up_to_seq`, the anchor the remaining chain verifies from.
    Compacted {
        /// The last dropped record.
        up_to_seq: u64,
        /// Its hash.
        last_hash: Hash,
    },
}

/// The decision on one sign request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignDecision {
    /// Client-chosen request id (may be empty).
    pub request_id: String,
    /// The authenticated client identity.
    pub client: String,
    /// The key asked to sign.
    pub key_id: String,
    /// `eth2` or `espresso`.
    pub profile: String,
    /// Message kind: `block`, `attestation`, or an espresso kind such as `quorum-vote`.
    pub kind: String,
    /// What was decided.
    pub outcome: SignResult,
    /// Machine-readable refusal code (empty unless refused).
    pub reason_code: String,
    /// The refusal in words (empty unless refused).
    pub reason: String,
    /// The request's watermark fields, e.g. `slot`, `source_epoch`/`target_epoch`, `view`.
    pub watermark: Vec<(String, u64)>,
    /// The exact 32 bytes to be signed (signing root or message digest).
    pub message: Hash,
}

/// The outcome of a sign request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SignResult {
    /// New data; the watermark advanced.
    Signed,
    /// Identical to data signed before.
    Resigned,
    /// Refused by slashing protection.
    Refused,
    /// The key was disabled or deleted at this point of the log.
    KeyInactive,
    /// The admins had paused signing at this point of the log.
    Paused,
}

impl SignResult {
    /// Every result.
    pub const ALL: [SignResult; 5] = [
        SignResult::Signed,
        SignResult::Resigned,
        SignResult::Refused,
        SignResult::KeyInactive,
        SignResult::Paused,
    ];

    /// The lower-case name used in filters and renderings.
    pub fn name(self) -> &'static str {
        match self {
            SignResult::Signed => "signed",
            SignResult::Resigned => "resigned",
            SignResult::Refused => "refused",
            SignResult::KeyInactive => "key_inactive",
            SignResult::Paused => "paused",
        }
    }
}

/// An event observed by one node outside the state machine, proposed for the audit log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum NodeEvent {
    /// A registry key was unsealed and loaded into the node's memory.
    KeyLoaded {
        /// The node.
        node: u64,
        /// The key.
        key_id: String,
    },
    /// A key was dropped from the node's memory.
    KeyUnloaded {
        /// The node.
        node: u64,
        /// The key.
        key_id: String,
        /// Why (e.g. `disabled`, `deleted`).
        reason: String,
    },
    /// Unsealing a key failed (KMS unreachable, wrong KEK, …).
    KmsFailure {
        /// The node.
        node: u64,
        /// The key.
        key_id: String,
        /// The error.
        detail: String,
    },
    /// A client was refused by access control before anything was proposed.
    AccessDenied {
        /// The node that refused.
        node: u64,
        /// The client identity.
        client: String,
        /// The key asked for.
        key_id: String,
        /// The profile asked for.
        profile: String,
        /// Why.
        reason: String,
    },
}

impl NodeEvent {
    /// The node that observed the event.
    pub fn node(&self) -> u64 {
        match self {
            NodeEvent::KeyLoaded { node, .. }
            | NodeEvent::KeyUnloaded { node, .. }
            | NodeEvent::KmsFailure { node, .. }
            | NodeEvent::AccessDenied { node, .. } => *node,
        }
    }

    /// The same event attributed to `node` (a leader stamps forwarded events with the
    /// authenticated sender).
    pub fn with_node(mut self, id: u64) -> NodeEvent {
        match &mut self {
            NodeEvent::KeyLoaded { node, .. }
            | NodeEvent::KeyUnloaded { node, .. }
            | NodeEvent::KmsFailure { node, .. }
            | NodeEvent::AccessDenied { node, .. } => *node = id,
        }
        self
    }
}

/// Drop the audit records up to and including `up_to_seq`, keeping the hash of the last one
/// as the chain's anchor. An admin-approved action: export first (`signerctl audit export`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditCompact {
    /// The last record to drop; must be below the head (the newest record stays).
    pub up_to_seq: u64,
}

impl AuditEvent {
    /// A short name of the event type (`sign`, `admin`, `key-change`, `membership`,
    /// `key-loaded`, `key-unloaded`, `kms-failure`, `access-denied`, `compacted`).
    pub fn type_name(&self) -> &'static str {
        match self {
            AuditEvent::Sign(_) => "sign",
            AuditEvent::Admin { .. } => "admin",
            AuditEvent::KeyChange { .. } => "key-change",
            AuditEvent::Membership { .. } => "membership",
            AuditEvent::Node(NodeEvent::KeyLoaded { .. }) => "key-loaded",
            AuditEvent::Node(NodeEvent::KeyUnloaded { .. }) => "key-unloaded",
            AuditEvent::Node(NodeEvent::KmsFailure { .. }) => "kms-failure",
            AuditEvent::Node(NodeEvent::AccessDenied { .. }) => "access-denied",
            AuditEvent::Compacted { .. } => "compacted",
        }
    }

    /// The key this event concerns, if any.
    pub fn key_id(&self) -> Option<&str> {
        match self {
            AuditEvent::Sign(d) => Some(&d.key_id),
            AuditEvent::KeyChange { key_id, .. } => Some(key_id),
            AuditEvent::Node(
                NodeEvent::KeyLoaded { key_id, .. }
                | NodeEvent::KeyUnloaded { key_id, .. }
                | NodeEvent::KmsFailure { key_id, .. }
                | NodeEvent::AccessDenied { key_id, .. },
            ) => Some(key_id),
            AuditEvent::Admin { .. } | AuditEvent::Membership { .. } => None,
            AuditEvent::Compacted { .. } => None,
        }
    }

    /// The client (or admin) identity this event concerns, if any.
    pub fn client(&self) -> Option<&str> {
        match self {
            AuditEvent::Sign(d) => Some(&d.client),
            AuditEvent::Admin { actor, .. } => Some(actor),
            AuditEvent::Node(NodeEvent::AccessDenied { client, .. }) => Some(client),
            _ => None,
        }
    }

    /// The result word used by filters, one of [`RESULT_WORDS`]: a sign outcome name,
    /// `denied` for access denials, `failed` for KMS failures, the first word of an admin
    /// result (`open`, `pending`, `executed`, `failed`, `refused`, `ok`), else `ok`.
    pub fn result(&self) -> &str {
        match self {
            AuditEvent::Sign(d) => d.outcome.name(),
            AuditEvent::Admin { result, .. } | AuditEvent::KeyChange { result, .. } => {
                first_word(result)
            }
            AuditEvent::Node(NodeEvent::AccessDenied { .. }) => "denied",
            AuditEvent::Node(NodeEvent::KmsFailure { .. }) => "failed",
            _ => "ok",
        }
    }
}

/// Every word [`AuditEvent::result`] can return: the values `audit tail --result` accepts.
pub const RESULT_WORDS: [&str; 11] = [
    "signed",
    "resigned",
    "refused",
    "key_inactive",
    "paused",
    "denied",
    "failed",
    "ok",
    "open",
    "pending",
    "executed",
];

/// The first word of an admin result text (`executed: …`, `open, needs 2 approval(s)`,
/// `pending (1 of 2)`).
fn first_word(text: &str) -> &str {
    text.split([':', ',', ' ', '(']).next().unwrap_or(text)
}
