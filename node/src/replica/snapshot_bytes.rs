//! A snapshot's body as openraft passes it around ([`SnapshotBytes`], the type config's
//! `SnapshotData`): bytes in memory, or the stored snapshot read from its files on demand.
//!
//! Owns: where a body's bytes are and reading them, whole or a range at a time. Must not:
//! decode a body (the state machine does) or write snapshot files (`snapshot_files` does).
//!
//! Why two forms: a body is as large as the kept audit log (hundreds of MB). A leader sends
//! the stored one to a follower that is behind; read whole, it took that much memory per
//! follower for as long as the transfer lasted. [`SnapshotBytes::Stored`] holds the head (the
//! state, small) and an open handle on the records file, and the sender reads
//! [`crate::replica::network::SNAPSHOT_CHUNK`] bytes at a time ([`SnapshotBytes::read_range`]).
//!
//! To ensure correctness:
//! - the bytes are exactly those of the whole body: the head, then the records file's first
//!   `records_len` bytes (what the head counts); [`SnapshotBytes::len`] is their sum;
//! - the records a stored body names do not change under it: a build only appends past the
//!   length its head counts, and a file replaced by a newer snapshot is unlinked, which leaves
//!   the open handle readable;
//! - a records file shorter than its head counts is an error when read, never a short body.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

/// A snapshot's body (see the module docs). A clone of a stored body shares the file handle
/// (reads do not move a shared position: each says its offset).
#[derive(Debug, Clone)]
pub enum SnapshotBytes {
    /// The whole body in memory: as received from a leader, or a legacy snapshot file.
    InMemory(Vec<u8>),
    /// The stored snapshot: its head in memory, its records in a file read on demand.
    Stored {
        /// The body's first bytes (the encoded state, up to the records).
        head: Vec<u8>,
        /// The records file (shared so that a send can read it off the async runtime).
        records: Arc<File>,
        /// How many of the file's bytes belong to this body.
        records_len: u64,
    },
}

impl SnapshotBytes {
    /// The body's length in bytes.
    pub fn len(&self) -> u64 {
        match self {
            SnapshotBytes::InMemory(bytes) => bytes.len() as u64,
            SnapshotBytes::Stored {
                head, records_len, ..
            } => (head.len() as u64).saturating_add(*records_len),
        }
    }

    /// Whether the body has no bytes (the body-less snapshot a build returns).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `len` bytes from `offset` (fewer at the end of the body). Blocking file IO for a stored
    /// body: call it off the async runtime.
    pub fn read_range(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let end = self.len().min(offset.saturating_add(len as u64));
        let mut out = Vec::with_capacity(end.saturating_sub(offset) as usize);
        match self {
            SnapshotBytes::InMemory(bytes) => {
                let (start, end) = (offset as usize, end as usize);
                out.extend_from_slice(bytes.get(start..end).unwrap_or_default());
            }
            SnapshotBytes::Stored {
                head,
                records,
                records_len,
            } => {
                let head_len = head.len() as u64;
                if offset < head_len {
                    let head_end = end.min(head_len);
                    out.extend_from_slice(&head[offset as usize..head_end as usize]);
                }
                let from = offset.max(head_len);
                if end > from {
                    let at = out.len();
                    out.resize(at + (end - from) as usize, 0);
                    records
                        .read_exact_at(&mut out[at..], from - head_len)
                        .map_err(|e| short_records(e, *records_len))?;
                }
            }
        }
        Ok(out)
    }

    /// The whole body in memory. Blocking file IO for a stored body: call it off the async
    /// runtime.
    pub fn into_bytes(self) -> io::Result<Vec<u8>> {
        match self {
            SnapshotBytes::InMemory(bytes) => Ok(bytes),
            stored @ SnapshotBytes::Stored { .. } => {
                let len = usize::try_from(stored.len()).map_err(|_| {
                    io::Error::other("snapshot body larger than this machine addresses")
                })?;
                stored.read_range(0, len)
            }
        }
    }
}

fn short_records(e: io::Error, records_len: u64) -> io::Error {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!(
                "snapshot records file is shorter than the {records_len} bytes its head counts"
            ),
        )
    } else {
        e
    }
}

#[cfg(test)]
mod tests;
