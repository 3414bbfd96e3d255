//! A snapshot body being installed (one a leader sent, this node's own at a start behind it,
//! or a restore's seed), read from where it lies: its state decoded, its audit records read
//! once to rebuild the chain's hashes and verify the chain, and again as the writer stores
//! them in the snapshot files and the database, so that no step holds every record, or the
//! body, in memory.
//!
//! Owns: [`Installed`] and [`InstalledRecords`]. Must not: write the database or the snapshot
//! files (the persister's writer does, [`super::storage::replace_all`]).
//!
//! To ensure correctness: the state and records are exactly those
//! [`crate::state::upgrade::decode_snapshot_body`] reads from the same bytes (the core's body
//! reader is tested against it), and records read again are the bytes read the first time:
//! the body does not change while it is held (a received body is an unnamed file only this
//! node has; a stored one's records file is never changed in the bytes its head counts).

use super::super::io_err;
use super::super::snapshot_bytes::SnapshotBytes;
use super::snapshot_files::{from_list, RecordsFrom};
use super::until_error;
use crate::audit::{hash_bytes, verify_chain, verify_chain_from, ChainError, ChainPoint};
use crate::format::FormatError;
use crate::state::{
    open_snapshot_body, Applied, AuditRebuild, OpenedSnapshotBody, SnapshotRecords, StoredRecords,
};
use std::io::{self, BufReader};

/// How much of a body is read at a time.
const READ_BUFFER: usize = 1 << 20;

/// A snapshot's state and its kept audit records, ready to be stored.
#[derive(Debug)]
pub(crate) struct Installed {
    /// The replicated state the snapshot describes (its audit chain rebuilt from the records).
    pub(crate) state: Applied,
    /// The kept audit records.
    pub(crate) records: InstalledRecords,
}

/// Where an installed snapshot's kept audit records are.
#[derive(Debug)]
pub(crate) enum InstalledRecords {
    /// In memory: a body of an older layout (read whole to upgrade it), or a restore's.
    Listed(StoredRecords),
    /// In the body, from byte `offset`: read again each time they are asked for.
    InBody {
        /// The body.
        body: SnapshotBytes,
        /// Where the first record starts.
        offset: u64,
        /// How many records there are.
        count: u64,
        /// The records' bytes together.
        bytes: u64,
    },
}

fn body_error(e: FormatError) -> io::Error {
    io::Error::other(format!("snapshot body: {e}"))
}

impl Installed {
    /// Read the snapshot body `body`: its state, and its records once, to rebuild the audit
    /// chain's hashes and verify the chain (the second result: a chain that does not verify is
    /// the caller's to report; records that do not match the chain's positions are an error).
    /// Blocking file IO: off the async runtime.
    pub(crate) fn read(
        body: SnapshotBytes,
    ) -> io::Result<(Installed, Result<ChainPoint, ChainError>)> {
        let len = body.len();
        let opened = open_snapshot_body(BufReader::with_capacity(READ_BUFFER, body.reader(0)), len)
            .map_err(body_error)?;
        match opened {
            OpenedSnapshotBody::Whole(whole) => {
                let (state, records) = whole.into_state().map_err(io_err)?;
                let chain = state.audit.chain;
                let verified = verify_chain(&records, chain.anchor, Some(chain.head));
                let installed = Installed {
                    state,
                    records: InstalledRecords::Listed(records),
                };
                Ok((installed, verified))
            }
            OpenedSnapshotBody::Streamed { state, records } => {
                let (offset, count) = (records.offset(), records.remaining());
                let chain = state.audit_chain;
                let mut rebuild = AuditRebuild::new(chain).map_err(io_err)?;
                let mut bytes = 0u64;
                let verified = until_error(records, |read| {
                    let mut read = read.inspect(|(seq, record)| {
                        rebuild.push(*seq, hash_bytes(record));
                        bytes += record.len() as u64;
                    });
                    let verified = verify_chain_from(&mut read, chain.anchor, Some(chain.head));
                    // Verification stops at the first broken link; the rebuild takes them all.
                    read.for_each(drop);
                    verified
                })
                .map_err(body_error)?;
                let installed = Installed {
                    state: state.into_applied(rebuild.finish().map_err(io_err)?),
                    records: InstalledRecords::InBody {
                        body,
                        offset,
                        count,
                        bytes,
                    },
                };
                Ok((installed, verified))
            }
        }
    }
}

impl InstalledRecords {
    /// The records' bytes together.
    pub(crate) fn bytes(&self) -> u64 {
        match self {
            InstalledRecords::Listed(records) => {
                records.iter().map(|(_, bytes)| bytes.len() as u64).sum()
            }
            InstalledRecords::InBody { bytes, .. } => *bytes,
        }
    }

    /// The records as the snapshot files take them: from the list, or read again from the
    /// body (a reading error ends them and is returned).
    pub(crate) fn source(&self) -> Box<RecordsFrom<'_>> {
        match self {
            InstalledRecords::Listed(records) => from_list(records),
            InstalledRecords::InBody {
                body,
                offset,
                count,
                ..
            } => Box::new(move |from, sink| {
                let reader = BufReader::with_capacity(READ_BUFFER, body.reader(*offset));
                let records = SnapshotRecords::resume(reader, *offset, *count, body.len());
                until_error(records, |read| {
                    read.filter(|(seq, _)| *seq >= from)
                        .try_for_each(|(seq, bytes)| sink(seq, &bytes))
                })
                .map_err(body_error)?
            }),
        }
    }
}
