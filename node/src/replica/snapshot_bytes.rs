//! A snapshot's body as openraft passes it around ([`SnapshotBytes`], the type config's
//! `SnapshotData`): bytes in memory, the stored snapshot read from its files on demand, or a
//! body received from a leader into a file ([`IncomingBody`]).
//!
//! Owns: where a body's bytes are and reading them, whole or a range at a time, and the file a
//! received body is written to. Must not: decode a body (the state machine does) or write
//! snapshot files (`snapshot_files` does).
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
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A snapshot's body (see the module docs). A clone of a stored body shares the file handle
/// (reads do not move a shared position: each says its offset).
#[derive(Debug, Clone)]
pub enum SnapshotBytes {
    /// The whole body in memory: a legacy snapshot file, or a test's.
    InMemory(Vec<u8>),
    /// A body received from a leader: all of it in an unnamed file ([`IncomingBody`]).
    Received {
        /// The file (gone from its directory: it lives as long as its handles).
        file: Arc<File>,
        /// The body's length.
        len: u64,
    },
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
            SnapshotBytes::Received { len, .. } => *len,
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
        if offset >= self.len() {
            return Ok(Vec::new());
        }
        let end = self.len().min(offset.saturating_add(len as u64));
        let mut out = vec![0; (end - offset) as usize];
        self.read_exact_at(&mut out, offset)?;
        Ok(out)
    }

    /// Fill `buf` with the body's bytes from `offset`; an error if the body ends before.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let end = offset.saturating_add(buf.len() as u64);
        if end > self.len() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "snapshot body of {} bytes read up to byte {end}",
                    self.len()
                ),
            ));
        }
        match self {
            SnapshotBytes::InMemory(bytes) => {
                buf.copy_from_slice(&bytes[offset as usize..end as usize]);
            }
            SnapshotBytes::Received { file, .. } => file.read_exact_at(buf, offset)?,
            SnapshotBytes::Stored {
                head,
                records,
                records_len,
            } => {
                let head_len = head.len() as u64;
                let mut filled = 0;
                if offset < head_len {
                    let head_end = end.min(head_len);
                    filled = (head_end - offset) as usize;
                    buf[..filled].copy_from_slice(&head[offset as usize..head_end as usize]);
                }
                if filled < buf.len() {
                    let from = offset.max(head_len) - head_len;
                    records
                        .read_exact_at(&mut buf[filled..], from)
                        .map_err(|e| short_records(e, *records_len))?;
                }
            }
        }
        Ok(())
    }

    /// The body's bytes from `offset` on, as a reader (unbuffered: each read is a file read
    /// for a stored body, so wrap it in a buffer). Blocking file IO: off the async runtime.
    pub fn reader(&self, offset: u64) -> BodyReader<'_> {
        BodyReader {
            body: self,
            at: offset,
        }
    }

    /// The whole body in memory. Blocking file IO for a stored body: call it off the async
    /// runtime.
    pub fn into_bytes(self) -> io::Result<Vec<u8>> {
        match self {
            SnapshotBytes::InMemory(bytes) => Ok(bytes),
            in_files => {
                let len = usize::try_from(in_files.len()).map_err(|_| {
                    io::Error::other("snapshot body larger than this machine addresses")
                })?;
                in_files.read_range(0, len)
            }
        }
    }
}

/// [`SnapshotBytes::reader`].
#[derive(Debug)]
pub struct BodyReader<'a> {
    body: &'a SnapshotBytes,
    at: u64,
}

impl io::Read for BodyReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.body.len().saturating_sub(self.at);
        let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        self.body.read_exact_at(&mut buf[..n], self.at)?;
        self.at += n as u64;
        Ok(n)
    }
}

/// How the name of a received body's file starts (it has that name only while it is created).
pub const INCOMING_PREFIX: &str = "state.snapshot-incoming-";

/// A body being received from a leader, written to a file as its chunks arrive, so that a
/// follower never holds a snapshot of hundreds of MB in memory. The file is created in the
/// node's data directory and removed from it at once: it takes disk space only while held, and
/// a crash leaves nothing behind.
#[derive(Debug)]
pub struct IncomingBody {
    file: Arc<File>,
    len: u64,
}

impl IncomingBody {
    /// An empty body in a new file in `dir`.
    pub fn create_in(dir: &Path) -> io::Result<Self> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!("{INCOMING_PREFIX}{}-{n}", std::process::id()));
        let named = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(named)?;
        std::fs::remove_file(&path).map_err(named)?;
        Ok(IncomingBody {
            file: Arc::new(file),
            len: 0,
        })
    }

    /// Append `bytes` to the body (file IO off the async runtime).
    pub async fn append(&mut self, bytes: Vec<u8>) -> io::Result<()> {
        let (file, at) = (self.file.clone(), self.len);
        let n = bytes.len() as u64;
        tokio::task::spawn_blocking(move || file.write_all_at(&bytes, at))
            .await
            .map_err(io::Error::other)??;
        self.len += n;
        Ok(())
    }

    /// The received body.
    pub fn finish(self) -> SnapshotBytes {
        SnapshotBytes::Received {
            file: self.file,
            len: self.len,
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
