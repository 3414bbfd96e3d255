//! A snapshot body being installed (one a leader sent, this node's own at a start behind it,
//! or a restore's seed), read from where it lies: its state decoded, its audit records read
//! once to rebuild the chain's hashes, again to verify the chain, and again as the writer
//! stores them, so that no step holds every record, or the body, in memory.
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
use crate::audit::{verify_chain_from, ChainError, ChainPoint};
use crate::format::FormatError;
use crate::state::{
    open_snapshot_body, Applied, AuditState, OpenedSnapshotBody, SnapshotRecords, StoredRecords,
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
    /// chain's hashes. Blocking file IO: off the async runtime.
    pub(crate) fn read(body: SnapshotBytes) -> io::Result<Installed> {
        let len = body.len();
        let opened = open_snapshot_body(BufReader::with_capacity(READ_BUFFER, body.reader(0)), len)
            .map_err(body_error)?;
        match opened {
            OpenedSnapshotBody::Whole(whole) => {
                let (state, records) = whole.into_state().map_err(io_err)?;
                Ok(Installed {
                    state,
                    records: InstalledRecords::Listed(records),
                })
            }
            OpenedSnapshotBody::Streamed { state, records } => {
                let (offset, count) = (records.offset(), records.remaining());
                let chain = state.audit_chain;
                let mut bytes = 0u64;
                let audit = until_error(records, |read| {
                    AuditState::rebuild_from(
                        chain,
                        read.inspect(|(_, record)| bytes += record.len() as u64),
                    )
                })
                .map_err(body_error)?
                .map_err(io_err)?;
                Ok(Installed {
                    state: state.into_applied(audit),
                    records: InstalledRecords::InBody {
                        body,
                        offset,
                        count,
                        bytes,
                    },
                })
            }
        }
    }

    /// The kept records verified from the chain's anchor to its head
    /// ([`crate::audit::verify_chain_from`]); an error reading them is the outer error.
    pub(crate) fn verify(&self) -> io::Result<Result<ChainPoint, ChainError>> {
        let chain = self.state.audit.chain;
        self.records
            .with_each(|records| verify_chain_from(records, chain.anchor, Some(chain.head)))
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

    /// `consume`'s result over the records, (seq, bytes) in order; an error reading them ends
    /// them early and is returned instead.
    fn with_each<T>(
        &self,
        consume: impl FnOnce(&mut dyn Iterator<Item = (u64, Vec<u8>)>) -> T,
    ) -> io::Result<T> {
        match self {
            InstalledRecords::Listed(records) => Ok(consume(&mut records.iter().cloned())),
            InstalledRecords::InBody {
                body,
                offset,
                count,
                ..
            } => {
                let reader = BufReader::with_capacity(READ_BUFFER, body.reader(*offset));
                let records = SnapshotRecords::resume(reader, *offset, *count, body.len());
                until_error(records, |read| consume(read)).map_err(body_error)
            }
        }
    }

    /// The records as the snapshot files take them.
    pub(crate) fn source(&self) -> Box<RecordsFrom<'_>> {
        if let InstalledRecords::Listed(records) = self {
            return from_list(records);
        }
        Box::new(move |from, sink| {
            self.with_each(|records| {
                records
                    .filter(|(seq, _)| *seq >= from)
                    .try_for_each(|(seq, bytes)| sink(seq, &bytes))
            })?
        })
    }
}

/// `consume`'s result over `records` up to their first error, which is returned instead.
fn until_error<I, T>(
    records: I,
    consume: impl FnOnce(&mut dyn Iterator<Item = (u64, Vec<u8>)>) -> T,
) -> Result<T, FormatError>
where
    I: Iterator<Item = Result<(u64, Vec<u8>), FormatError>>,
{
    let mut failed = None;
    let mut read = records.map_while(|record| match record {
        Ok(record) => Some(record),
        Err(e) => {
            failed = Some(e);
            None
        }
    });
    let result = consume(&mut read);
    drop(read);
    match failed {
        Some(e) => Err(e),
        None => Ok(result),
    }
}
