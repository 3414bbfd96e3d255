//! A snapshot body decoded as it is read: the state first, then the kept audit records one at
//! a time, so that a replica installs a body of millions of records (hundreds of MB) without
//! holding them, or the body, in memory.
//!
//! Owns: [`open_snapshot_body`] and [`SnapshotRecords`], the reading of the layout that
//! [`StreamedSnapshotBody`](super::StreamedSnapshotBody) writes. Must not: do IO of its own (it
//! reads the `io::Read` it is given) or check the records against the chain
//! ([`AuditState::rebuild_from`](super::AuditState::rebuild_from) and
//! [`crate::audit::verify_chain_from`] do, over the records it yields).
//!
//! To ensure correctness:
//! - it reads exactly the bytes [`decode_snapshot_body`] reads: the same values from a body of
//!   this layout, the same refusals of a newer format, trailing bytes or a short body (tested
//!   against it on generated bodies and on every cut of one);
//! - no length prefix makes it allocate more than the body's bytes left to read;
//! - a body of an older layout (formats 1 and 2) is read whole and upgraded, as
//!   [`decode_snapshot_body`] does: only a leader's snapshot built before an upgrade has one.

use super::records_as_bytes::OwnedRecord;
use super::upgrade::decode_snapshot_body;
use super::{Applied, AuditChain, AuditState, SnapshotBody};
use crate::admin::AdminState;
use crate::format::{self, FormatError};
use crate::protection::ProtectionState;
use crate::registry::Registry;
use std::io::Read;

/// A snapshot body's state: every field before its records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotState {
    /// Every key's protection record.
    pub protection: ProtectionState,
    /// The key registry.
    pub registry: Registry,
    /// The admin plane.
    pub admin: AdminState,
    /// Where the audit chain stands.
    pub audit_chain: AuditChain,
}

impl SnapshotState {
    /// The replicated state, with `audit` rebuilt from the records that followed.
    pub fn into_applied(self, audit: AuditState) -> Applied {
        Applied {
            protection: self.protection,
            registry: self.registry,
            audit,
            admin: self.admin,
        }
    }
}

/// What [`open_snapshot_body`] found.
#[derive(Debug)]
pub enum OpenedSnapshotBody<R> {
    /// A body of this format's layout: its state, and its records still to be read.
    Streamed {
        /// The fields before the records.
        state: SnapshotState,
        /// The records, read as they are asked for.
        records: SnapshotRecords<R>,
    },
    /// A body of an older layout, read whole and upgraded.
    Whole(SnapshotBody),
}

/// Open the snapshot body of `len` bytes that `reader` yields from its first byte: its header
/// and state are read here, its records by the [`SnapshotRecords`] returned. Wrap a file in a
/// buffer first: parts are read a few bytes at a time.
pub fn open_snapshot_body<R: Read>(
    reader: R,
    len: u64,
) -> Result<OpenedSnapshotBody<R>, FormatError> {
    let mut reader = Counted {
        inner: reader,
        read: 0,
    };
    let version = format::read_header(&mut reader)?;
    // Formats 1 and 2 laid the admin state out differently (`upgrade`); 3 and later as now.
    if version < 3 {
        let mut whole = Vec::new();
        whole.extend_from_slice(&format::MAGIC);
        whole.extend_from_slice(&version.to_le_bytes());
        reader
            .inner
            .take(len.saturating_sub(reader.read))
            .read_to_end(&mut whole)
            .map_err(|e| FormatError::Malformed(e.to_string()))?;
        return decode_snapshot_body(&whole).map(OpenedSnapshotBody::Whole);
    }
    let left = len.saturating_sub(reader.read);
    let (protection, registry, admin, audit_chain) = format::decode_part_from::<
        _,
        (ProtectionState, Registry, AdminState, AuditChain),
    >(&mut reader, left)?;
    let left = len.saturating_sub(reader.read);
    let kept: u64 = format::decode_part_from(&mut reader, left)?;
    let state = SnapshotState {
        protection,
        registry,
        admin,
        audit_chain,
    };
    let records = SnapshotRecords {
        offset: reader.read,
        reader,
        total: kept,
        left: kept,
        len,
        done: false,
    };
    Ok(OpenedSnapshotBody::Streamed { state, records })
}

/// The kept records of a snapshot body, (seq, canonical bytes) in the body's order, decoded
/// one at a time. After the last, the body must end: bytes left before its length are an
/// error. The first error is the last item.
#[derive(Debug)]
pub struct SnapshotRecords<R> {
    reader: Counted<R>,
    /// Where the records start in the body (the first record's first byte).
    offset: u64,
    total: u64,
    left: u64,
    len: u64,
    done: bool,
}

impl<R: Read> SnapshotRecords<R> {
    /// The records of the same body read again: `reader` yields the body from `offset`
    /// ([`Self::offset`] of the first reading), which holds `count` ([`Self::remaining`]) records
    /// and ends at `len`.
    pub fn resume(reader: R, offset: u64, count: u64, len: u64) -> Self {
        SnapshotRecords {
            reader: Counted {
                inner: reader,
                read: offset,
            },
            offset,
            total: count,
            left: count,
            len,
            done: false,
        }
    }

    /// Where in the body the records start.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// How many records are left to read (the body's count, before the first is read).
    pub fn remaining(&self) -> u64 {
        self.left
    }

    fn next_record(&mut self) -> Result<Option<(u64, Vec<u8>)>, FormatError> {
        if self.left == 0 {
            let extra = self.len.saturating_sub(self.reader.read);
            return match extra {
                0 => Ok(None),
                _ => Err(FormatError::Malformed(format!(
                    "the snapshot body has {extra} bytes after its last record"
                ))),
            };
        }
        let at = self.reader.read;
        let (seq, record): (u64, OwnedRecord) =
            format::decode_part_from(&mut self.reader, self.len.saturating_sub(at)).map_err(
                |e| {
                    let reason = match e {
                        FormatError::Malformed(reason) => reason,
                        other => other.to_string(),
                    };
                    FormatError::Malformed(format!(
                        "kept audit record {} of {}, at byte {at} of {}: {reason}",
                        self.total - self.left + 1,
                        self.total,
                        self.len
                    ))
                },
            )?;
        self.left -= 1;
        Ok(Some((seq, record.0)))
    }
}

impl<R: Read> Iterator for SnapshotRecords<R> {
    type Item = Result<(u64, Vec<u8>), FormatError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let next = self.next_record();
        self.done = !matches!(next, Ok(Some(_)));
        next.transpose()
    }
}

/// A reader that counts the bytes read through it.
#[derive(Debug)]
struct Counted<R> {
    inner: R,
    read: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests;
