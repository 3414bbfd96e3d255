//! The Raft log's journal: the file that makes appended entries durable with one sequential
//! write and one `fdatasync`, while the database takes them without fsync.
//!
//! A redb commit with fsync writes each changed B-tree page, the allocator's pages and the
//! header wherever they lie in the file: its `fdatasync` took 0.43 ms (median) on the bench
//! machine, against about 0.1 ms for one write into blocks that are already allocated and
//! zeroed. So an append goes to the database with `Durability::None` (readable at once,
//! durable later) and to this file with `fdatasync`; a *checkpoint* (a database commit with
//! fsync) makes everything durable in the database and starts the journal over.
//!
//! The file has a fixed size, zero-filled when it is made, and holds records one after
//! another from offset 0:
//!
//! ```text
//! generation u64 LE | index u64 LE | length u32 LE | check 8 bytes | entry (length bytes)
//! check = SHA-256(generation | index | length | entry), its first 8 bytes
//! ```
//!
//! The generation is the database's `journal_generation` when the record was written; every
//! checkpoint raises it in its own transaction. So a record of an older generation (all of
//! them just after a checkpoint, and beyond the current end later) is never read as current,
//! and one of a truncated entry never comes back: a truncation is a checkpoint.
//!
//! Owns: the record format, writing a batch (one write, one `fdatasync`) and reading the
//! current generation back at open. Reading stops at the first record that is not whole,
//! current and checked: each batch is one write, synced before it is reported, so only an
//! unreported batch can be torn by a crash. Must not: touch the database or decide when to
//! checkpoint (the writer thread does both).

use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

/// Bytes before a record's entry.
const HEADER: usize = 8 + 8 + 4 + 8;

/// The journal of one log database, open for appending.
pub(super) struct Journal {
    file: File,
    capacity: u64,
    generation: u64,
    /// Where the next record goes.
    end: u64,
}

impl Journal {
    /// The size of a journal file: 8 MiB, so a checkpoint writes at most about that much
    /// to the database at once.
    pub(super) const CAPACITY: u64 = 8 << 20;

    /// The records of `generation` in the journal at `path` as (index, entry), in the order
    /// written: inserting them in this order redoes what the writer inserted. A missing file
    /// holds none.
    pub(super) fn read(path: &Path, generation: u64) -> io::Result<Vec<(u64, Vec<u8>)>> {
        let mut bytes = Vec::new();
        match File::open(path) {
            Ok(mut file) => file.read_to_end(&mut bytes)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut records = Vec::new();
        let mut at = 0;
        while let Some((index, entry, next)) = record_at(&bytes, at, generation) {
            records.push((index, entry.to_vec()));
            at = next;
        }
        Ok(records)
    }

    /// Open the journal at `path` for writing records of `generation` from its start, making
    /// the file (zero-filled, `capacity` bytes, owner-only) where it is missing or of
    /// another size. `generation` must be newer than every record in the file (a record of it
    /// left behind the new ones would be read as theirs), and the database must hold every
    /// record the file held.
    pub(super) fn start(path: &Path, capacity: u64, generation: u64) -> io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)?;
        if file.metadata()?.len() != capacity {
            zero_fill(&file, capacity)?;
            if let Some(dir) = path.parent() {
                File::open(dir)?.sync_all()?;
            }
        }
        Ok(Journal {
            file,
            capacity,
            generation,
            end: 0,
        })
    }

    /// Whether records of `entries` fit behind the ones written.
    pub(super) fn fits<'a>(&self, entries: impl IntoIterator<Item = &'a [u8]>) -> bool {
        let size: u64 = entries.into_iter().map(|e| (HEADER + e.len()) as u64).sum();
        self.end.saturating_add(size) <= self.capacity
    }

    /// Write records of `entries` (index, entry) behind the ones written, in one write, and
    /// `fdatasync`. The caller checked that they fit.
    pub(super) fn append<'a>(
        &mut self,
        entries: impl IntoIterator<Item = (u64, &'a [u8])>,
    ) -> io::Result<()> {
        let mut batch = Vec::new();
        for (index, entry) in entries {
            encode_record(&mut batch, self.generation, index, entry)?;
        }
        if self.end.saturating_add(batch.len() as u64) > self.capacity {
            return Err(io::Error::other(
                "Raft log journal: a batch larger than the space left (a checkpoint was due)",
            ));
        }
        self.file.write_all_at(&batch, self.end)?;
        self.file.sync_data()?;
        self.end += batch.len() as u64;
        Ok(())
    }

    /// A checkpoint made the database hold everything and raised its generation to
    /// `generation`: write from the start again.
    pub(super) fn restart(&mut self, generation: u64) {
        self.generation = generation;
        self.end = 0;
    }
}

/// Append the record of `entry` at `index` to `out`.
fn encode_record(out: &mut Vec<u8>, generation: u64, index: u64, entry: &[u8]) -> io::Result<()> {
    let length = u32::try_from(entry.len())
        .map_err(|_| io::Error::other("Raft log journal: an entry of 4 GiB or more"))?;
    let start = out.len();
    out.extend_from_slice(&generation.to_le_bytes());
    out.extend_from_slice(&index.to_le_bytes());
    out.extend_from_slice(&length.to_le_bytes());
    let check = check(&out[start..start + 20], entry);
    out.extend_from_slice(&check);
    out.extend_from_slice(entry);
    Ok(())
}

/// The record at `at` if it is whole, of `generation` and checked: (index, entry, where the
/// next one starts).
fn record_at(bytes: &[u8], at: usize, generation: u64) -> Option<(u64, &[u8], usize)> {
    let header = bytes.get(at..at.checked_add(HEADER)?)?;
    let field = |from: usize, to: usize| header.get(from..to);
    let u64_at = |from: usize| Some(u64::from_le_bytes(field(from, from + 8)?.try_into().ok()?));
    if u64_at(0)? != generation {
        return None;
    }
    let index = u64_at(8)?;
    let length = u32::from_le_bytes(field(16, 20)?.try_into().ok()?) as usize;
    let start = at + HEADER;
    let end = start.checked_add(length)?;
    let entry = bytes.get(start..end)?;
    (field(20, HEADER)? == check(field(0, 20)?, entry)).then_some((index, entry, end))
}

/// The first 8 bytes of SHA-256 over a record's fixed fields and its entry.
fn check(fields: &[u8], entry: &[u8]) -> [u8; 8] {
    let digest = Sha256::new()
        .chain_update(fields)
        .chain_update(entry)
        .finalize();
    let mut check = [0; 8];
    check.copy_from_slice(&digest[..8]);
    check
}

/// Make `file` exactly `size` zero bytes, written (not a hole: a write into a hole or an
/// unwritten extent changes metadata, which `fdatasync` would then have to journal), and
/// synced.
fn zero_fill(file: &File, size: u64) -> io::Result<()> {
    file.set_len(0)?;
    let chunk = vec![0u8; 1 << 20];
    let mut writer = io::BufWriter::new(file);
    let mut left = size;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        writer.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    writer.flush()?;
    file.sync_all()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn entries(range: std::ops::Range<u64>) -> Vec<(u64, Vec<u8>)> {
        range.map(|i| (i, vec![i as u8; 10 + i as usize])).collect()
    }

    fn write(journal: &mut Journal, records: &[(u64, Vec<u8>)]) {
        journal
            .append(records.iter().map(|(i, e)| (*i, e.as_slice())))
            .unwrap();
    }

    /// The record layout, checked against bytes written out by hand from the module doc.
    #[test]
    fn a_record_is_laid_out_as_documented() {
        let mut out = Vec::new();
        encode_record(&mut out, 7, 300, b"abc").unwrap();
        let mut fields = Vec::new();
        fields.extend_from_slice(&[7, 0, 0, 0, 0, 0, 0, 0]);
        fields.extend_from_slice(&[0x2c, 0x01, 0, 0, 0, 0, 0, 0]);
        fields.extend_from_slice(&[3, 0, 0, 0]);
        let digest = Sha256::digest([fields.as_slice(), b"abc"].concat());
        let expected = [fields.as_slice(), &digest[..8], b"abc"].concat();
        assert_eq!(out, expected);
    }

    #[test]
    fn records_read_back_in_order_and_only_of_their_generation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        assert_eq!(Journal::read(&path, 0).unwrap(), vec![]);
        let mut journal = Journal::start(&path, 4096, 3).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 4096);
        write(&mut journal, &entries(5..8));
        write(&mut journal, &entries(8..9));
        assert_eq!(Journal::read(&path, 3).unwrap(), entries(5..9));
        assert_eq!(Journal::read(&path, 2).unwrap(), vec![]);
        assert_eq!(Journal::read(&path, 4).unwrap(), vec![]);

        // After a checkpoint the old records beyond the new ones are not read.
        journal.restart(4);
        write(&mut journal, &entries(9..10));
        assert_eq!(Journal::read(&path, 4).unwrap(), entries(9..10));
        // Reopened at the same size, the file is not cleared (its records are of an older
        // generation than the next written); at another size it is made again.
        drop(journal);
        let journal = Journal::start(&path, 4096, 5).unwrap();
        assert_eq!(Journal::read(&path, 4).unwrap(), entries(9..10));
        drop(journal);
        Journal::start(&path, 8192, 5).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 8192);
        assert_eq!(Journal::read(&path, 4).unwrap(), vec![]);
    }

    /// A crash in the middle of a batch's write leaves part of it: every damage to the last
    /// batch ends the journal before that batch's first damaged record, and the batches
    /// before it read back whole.
    #[test]
    fn a_torn_last_batch_ends_the_journal_at_its_first_damaged_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let mut journal = Journal::start(&path, 4096, 1).unwrap();
        write(&mut journal, &entries(1..4));
        let reported = journal.end as usize;
        write(&mut journal, &entries(4..7));
        let written = journal.end as usize;
        drop(journal);
        let whole = std::fs::read(&path).unwrap();
        // Each byte of the last batch changed, and the batch cut short at each byte.
        for at in reported..written {
            let mut flipped = whole.clone();
            flipped[at] ^= 0x40;
            let mut cut = whole.clone();
            cut[at..written].fill(0);
            for damaged in [flipped, cut] {
                std::fs::write(&path, &damaged).unwrap();
                let read = Journal::read(&path, 1).unwrap();
                // The records before the damaged one, and none after.
                let first_damaged =
                    (4..7).position(|i| record_end(&whole, i) > at).unwrap() as u64 + 4;
                assert_eq!(read, entries(1..first_damaged), "damage at byte {at}");
            }
        }
    }

    /// Where record `index` of a file written by the test above ends.
    fn record_end(bytes: &[u8], index: u64) -> usize {
        let mut at = 0;
        loop {
            let (i, _, next) = record_at(bytes, at, 1).unwrap();
            if i == index {
                return next;
            }
            at = next;
        }
    }

    #[test]
    fn a_batch_fits_only_in_the_space_left() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::start(&dir.path().join("j"), 100, 1).unwrap();
        let entry = [0u8; 22]; // 50 bytes with its header
        assert!(journal.fits([&entry[..], &entry[..]]));
        assert!(!journal.fits([&entry[..], &entry[..], &[0u8][..]]));
        journal.append([(1, &entry[..])]).unwrap();
        assert!(journal.fits([&entry[..]]));
        assert!(!journal.fits([&entry[..], &[][..]]));
        let e = journal.append([(2, &entry[..]), (3, &[][..])]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Raft log journal: a batch larger than the space left (a checkpoint was due)"
        );
    }
}
