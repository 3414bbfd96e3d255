//! Backup files: the whole replicated state of a cluster (the snapshot body: protection
//! records, the sealed key registry, the admin state and the kept audit records) behind a
//! small header, sealed by a SHA-256 digest over everything before it.
//!
//! Owns: the backup file layout ([`encode`], [`decode`]), its version ([`VERSION`]), the
//! header ([`BackupHeader`]) and the checks a file must pass before anything is restored from
//! it ([`BackupError`]); the margins a restored cluster starts above live in [`margin`]. Must
//! not: do IO, read a clock, or know openraft: the node takes the backup from its applied
//! state and the `signer restore` command writes the restored state.
//!
//! Layout: the magic `QSBACKUP`, then `{header, body}` in the versioned binary format
//! ([`crate::format`]; the body is the snapshot body's own encoded bytes, as a snapshot
//! carries them), then 32 bytes: SHA-256 over the magic and that value.
//!
//! To ensure correctness:
//! - the digest is checked before anything else is decoded: a file changed in any byte, cut
//!   short or extended is refused as [`BackupError::Digest`] (or [`BackupError::NotABackup`]);
//! - a header of another backup version is refused naming both versions;
//! - the header and the body agree (the audit head the header names is the body's), so a
//!   header cannot be moved onto another body without a new digest;
//! - the body holds sealed key records only: a backup never carries a plaintext secret.

pub mod margin;

use crate::audit::ChainPoint;
use crate::format::{self, FormatError};
use crate::state::upgrade::decode_snapshot_body;
use crate::state::SnapshotBody;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// The backup layout this build writes and reads.
pub const VERSION: u16 = 1;

/// Leading bytes of every backup file.
pub const MAGIC: [u8; 8] = *b"QSBACKUP";

/// Length of the trailing digest.
pub const DIGEST_LEN: usize = 32;

/// A member of the backed-up cluster: restore refuses while any of them answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The member's node id.
    pub id: u64,
    /// Its peer address (what the cluster itself uses to reach it).
    pub peer_addr: String,
}

/// The Raft log position the backed-up state was applied up to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedPosition {
    /// The term of the last applied entry.
    pub term: u64,
    /// The node that led that term.
    pub leader: u64,
    /// The index of the last applied entry.
    pub index: u64,
}

/// What a backup says about itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupHeader {
    /// The backup layout ([`VERSION`]).
    pub version: u16,
    /// The cluster the state belongs to (sealed keys and approvals are bound to it).
    pub cluster_id: String,
    /// Where in the log the state was taken (the leader's applied position after a
    /// linearizable read).
    pub applied: AppliedPosition,
    /// When the leader took it (ms since the Unix epoch, the leader's clock).
    pub created_at_ms: u64,
    /// The audit chain's head in the body: the chain a restored cluster continues.
    pub audit_head: ChainPoint,
    /// The voters of the backed-up cluster.
    pub members: Vec<Member>,
}

/// A decoded, verified backup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backup {
    /// Its header.
    pub header: BackupHeader,
    /// The replicated state.
    pub body: SnapshotBody,
    /// The file's SHA-256 digest (its last 32 bytes).
    pub digest: [u8; DIGEST_LEN],
}

/// Why bytes are not a backup this build restores.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackupError {
    /// No `QSBACKUP` magic, or too short to hold one and a digest.
    #[error("not a Quorum Signer backup file (no QSBACKUP header)")]
    NotABackup,
    /// The digest does not match the content.
    #[error("backup digest mismatch: the file was changed or cut short after it was written (content SHA-256 {computed}, recorded {recorded})")]
    Digest {
        /// SHA-256 of the content, hex.
        computed: String,
        /// The digest the file ends with, hex.
        recorded: String,
    },
    /// The header's backup version is not this build's.
    #[error(
        "backup version {found} is not supported (this signer reads backup version {supported})"
    )]
    Version {
        /// The version in the header.
        found: u16,
        /// The version this build reads.
        supported: u16,
    },
    /// The binary format of the header or body is wrong.
    #[error("backup {part}: {error}")]
    Format {
        /// `header` or `state`.
        part: &'static str,
        /// What is wrong.
        error: FormatError,
    },
    /// The header does not describe the body.
    #[error("backup header and state disagree: {0}")]
    Inconsistent(String),
}

/// The value between the magic and the digest.
#[derive(Serialize, Deserialize)]
struct Content {
    header: BackupHeader,
    #[serde(with = "crate::bytes::hex_or_raw")]
    body: Vec<u8>,
}

fn digest_of(bytes: &[u8]) -> [u8; DIGEST_LEN] {
    Sha256::digest(bytes).into()
}

/// The backup file of `header` and `body` (a snapshot body already encoded with
/// [`crate::format::encode`]).
pub fn encode(header: &BackupHeader, body: &[u8]) -> Result<Vec<u8>, BackupError> {
    let content = format::encode(&Content {
        header: header.clone(),
        body: body.to_vec(),
    })
    .map_err(|error| BackupError::Format {
        part: "header",
        error,
    })?;
    let mut out = Vec::with_capacity(MAGIC.len() + content.len() + DIGEST_LEN);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&content);
    let digest = digest_of(&out);
    out.extend_from_slice(&digest);
    Ok(out)
}

/// Verify and decode a backup file: digest first, then version, format and consistency.
pub fn decode(bytes: &[u8]) -> Result<Backup, BackupError> {
    if bytes.len() < MAGIC.len() + DIGEST_LEN || bytes[..MAGIC.len()] != MAGIC {
        return Err(BackupError::NotABackup);
    }
    let (signed, recorded) = bytes.split_at(bytes.len() - DIGEST_LEN);
    let computed = digest_of(signed);
    if computed.as_slice() != recorded {
        return Err(BackupError::Digest {
            computed: hex::encode(computed),
            recorded: hex::encode(recorded),
        });
    }
    let content: Content =
        format::decode_stored(&signed[MAGIC.len()..]).map_err(|error| BackupError::Format {
            part: "header",
            error,
        })?;
    if content.header.version != VERSION {
        return Err(BackupError::Version {
            found: content.header.version,
            supported: VERSION,
        });
    }
    let body: SnapshotBody =
        decode_snapshot_body(&content.body).map_err(|error| BackupError::Format {
            part: "state",
            error,
        })?;
    if body.audit_chain.head != content.header.audit_head {
        return Err(BackupError::Inconsistent(format!(
            "the header names audit head seq {}, the state's chain ends at seq {}",
            content.header.audit_head.seq, body.audit_chain.head.seq
        )));
    }
    let mut digest = [0; DIGEST_LEN];
    digest.copy_from_slice(recorded);
    Ok(Backup {
        header: content.header,
        body,
        digest,
    })
}

#[cfg(test)]
mod tests;
