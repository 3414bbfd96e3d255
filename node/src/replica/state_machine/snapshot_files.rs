//! The replica's current snapshot on disk, laid out so that storing a new snapshot costs what
//! changed since the last one, not the whole audit log again.
//!
//! A snapshot body is the replicated state followed by every kept audit record
//! ([`crate::state::SnapshotBody`]). The records are most of it (hundreds of MB under load)
//! and, until a compaction, only grow at the end. So the body is kept in two parts, beside the
//! state database (`state.redb`):
//! - `state.snapshot-head`: the snapshot's meta, its body up to the records
//!   ([`crate::state::snapshot_body_head`]), and which records file holds the rest and how many
//!   of its bytes;
//! - `state.snapshot-records-<n>`: the kept records as the body encodes them, in seq order. A
//!   new snapshot whose chain keeps the same first record appends the records since the last
//!   snapshot to the same file; after a compaction (a new first record), an installed snapshot
//!   or without a head, the records go to a new file `<n+1>`.
//!
//! `state.snapshot` (the whole body in one file, as nodes before this layout stored it) is read
//! when no head exists and removed by the first snapshot stored after.
//!
//! Owns: those files, and the pace at which a snapshot is written. Must not: read the state
//! database (the caller hands it the records), decide when to build, or change a byte of a
//! records file that a stored head counts.
//!
//! To ensure correctness:
//! - a head is stored after the records it counts are durable, and atomically (written,
//!   fsynced, renamed, directory fsynced); a failed or interrupted write leaves the previous
//!   head and its bytes as they were (an append starts at the stored length, and cuts what a
//!   failed one left past it first);
//! - a reader takes the head and opens its records file under [`SnapshotFiles::current_lock`];
//!   records files are deleted only under that lock, after a new head names another, so a
//!   reader never finds its file gone;
//! - builds store one at a time ([`SnapshotFiles::build_lock`]); an install may land before or
//!   while a build writes (it writes a file number of its own), and the build then stores
//!   nothing: its head would replace a newer snapshot's;
//! - durable writes are paced ([`PacedWriter`]) so that a build leaves the disk to the Raft
//!   journal.

use super::super::snapshot_bytes::SnapshotBytes;
use super::super::{SnapshotMeta, STATE_DATABASE_FILE};
use crate::format;
use crate::state::{encode_snapshot_record_into, snapshot_body_head, Applied};
use std::fs::File;
use std::io::{self, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

/// Where a snapshot's records come from: called with the first seq wanted, it hands each
/// record from there on, (seq, canonical bytes) in seq order, to the sink.
pub(super) type RecordsFrom<'a> =
    dyn FnOnce(u64, &mut dyn FnMut(u64, &[u8]) -> io::Result<()>) -> io::Result<()> + 'a;

/// The records among `records` ((seq, bytes) in seq order) as a [`RecordsFrom`].
pub(super) fn from_list(records: &[(u64, Vec<u8>)]) -> Box<RecordsFrom<'_>> {
    Box::new(move |from, sink| {
        records
            .iter()
            .filter(|(seq, _)| *seq >= from)
            .try_for_each(|(seq, bytes)| sink(*seq, bytes))
    })
}

/// The head of the current snapshot, as stored in `state.snapshot-head`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct SnapshotHead {
    meta: SnapshotMeta,
    /// The body up to its records: header, state, count of kept records.
    #[serde(with = "crate::bytes::hex_or_raw")]
    body_head: Vec<u8>,
    /// `n` of the records file `state.snapshot-records-<n>`.
    records_file: u64,
    /// The bytes of that file that hold this snapshot's records.
    records_len: u64,
    /// The seq of the first record (the chain's anchor + 1).
    first_seq: u64,
    /// One past the seq of the last record (the chain's head + 1).
    next_seq: u64,
}

/// The legacy single-file snapshot: its meta and its whole body.
#[derive(serde::Deserialize)]
struct LegacySnapshot {
    meta: SnapshotMeta,
    #[serde(with = "crate::bytes::hex_or_raw")]
    data: Vec<u8>,
}

/// The snapshot files beside one state database.
pub(super) struct SnapshotFiles {
    /// `state.snapshot`: the legacy file, and the stem of the others' names.
    legacy: PathBuf,
    /// Held while a head is read and its file opened, or a head replaced and files deleted;
    /// holds the highest records file number in use or handed out.
    current_lock: Mutex<u64>,
    /// Held by a build from its plan to its head (builds store one at a time).
    build_lock: Mutex<()>,
}

/// What a build stored.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Stored {
    /// The snapshot is the current one.
    Current,
    /// A snapshot as new or newer is stored (installed before or while this one was
    /// built): this one was not.
    Superseded,
}

impl SnapshotFiles {
    /// The snapshot files of the state database at `db_path`.
    pub(super) fn beside(db_path: &Path) -> io::Result<Self> {
        let files = Self::named(db_path);
        let highest = files.records_files()?.into_iter().max().unwrap_or(0);
        *files.current() = highest;
        Ok(files)
    }

    /// The files' names beside `db_path`, before the directory is read.
    fn named(db_path: &Path) -> Self {
        SnapshotFiles {
            legacy: db_path.with_extension("snapshot"),
            current_lock: Mutex::new(0),
            build_lock: Mutex::new(()),
        }
    }

    fn current(&self) -> MutexGuard<'_, u64> {
        self.current_lock.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn head_path(&self) -> PathBuf {
        self.legacy.with_extension("snapshot-head")
    }

    fn records_path(&self, n: u64) -> PathBuf {
        self.legacy.with_extension(format!("snapshot-records-{n}"))
    }

    /// The numbers of the records files present.
    fn records_files(&self) -> io::Result<Vec<u64>> {
        let (Some(dir), Some(stem)) = (self.legacy.parent(), self.legacy.file_name()) else {
            return Ok(Vec::new());
        };
        let prefix = format!("{}-records-", stem.to_string_lossy());
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        let mut found = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let name = entry?.file_name();
            let name = name.to_string_lossy();
            if let Some(n) = name.strip_prefix(&prefix).and_then(|n| n.parse().ok()) {
                found.push(n);
            }
        }
        Ok(found)
    }

    fn read_head(&self) -> io::Result<Option<SnapshotHead>> {
        let path = self.head_path();
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        format::decode_stored(&bytes)
            .map(Some)
            .map_err(|e| io::Error::other(format!("snapshot head {}: {e}", path.display())))
    }

    /// The current snapshot, if one was built or installed: its meta and its body, whose
    /// records are read from their file when the body is (see `replica::snapshot_bytes`).
    pub(super) fn read(&self) -> io::Result<Option<(SnapshotMeta, SnapshotBytes)>> {
        let (head, file) = {
            let _current = self.current();
            match self.read_head()? {
                Some(head) => {
                    let path = self.records_path(head.records_file);
                    let file =
                        File::open(&path).map_err(|e| annotate(e, "snapshot records", &path))?;
                    (head, file)
                }
                None => return self.read_legacy(),
            }
        };
        let body = stored_body(head.body_head, file, head.records_len, head.records_file)?;
        Ok(Some((head.meta, body)))
    }

    fn read_legacy(&self) -> io::Result<Option<(SnapshotMeta, SnapshotBytes)>> {
        let bytes = match std::fs::read(&self.legacy) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let stored: LegacySnapshot = format::decode_stored(&bytes)
            .map_err(|e| io::Error::other(format!("snapshot {}: {e}", self.legacy.display())))?;
        Ok(Some((stored.meta, SnapshotBytes::InMemory(stored.data))))
    }

    /// Store the snapshot of `state` at `meta` that a build made, its records read from
    /// `records`. Appends the records since the current snapshot when that one keeps the same
    /// first record; writes all of them to a new file otherwise.
    pub(super) fn store_built(
        &self,
        durable: bool,
        meta: &SnapshotMeta,
        state: &Applied,
        records: Box<RecordsFrom<'_>>,
    ) -> io::Result<Stored> {
        let _build = self.build_lock.lock().unwrap_or_else(|p| p.into_inner());
        let chain = state.audit.chain;
        let (first, next) = (
            chain.anchor.seq.saturating_add(1),
            chain.head.seq.saturating_add(1),
        );
        // The plan, under the lock: the current head and the file to write (opened now, so a
        // file an install deletes meanwhile stays writable).
        let (planned, target) = {
            let mut highest = self.current();
            let planned = self.read_head()?;
            if planned
                .as_ref()
                .is_some_and(|h| h.meta.last_log_id >= meta.last_log_id)
            {
                return Ok(Stored::Superseded);
            }
            let append = planned
                .as_ref()
                .filter(|h| h.first_seq == first && h.next_seq <= next)
                .and_then(|h| Target::append(self.records_path(h.records_file), h));
            let target = match append {
                Some(target) => target,
                None => {
                    *highest += 1;
                    Target::new_file(self.records_path(*highest), *highest, first)?
                }
            };
            (planned, target)
        };
        let body_head = snapshot_body_head(state).map_err(io::Error::other)?;
        let head = target.write(durable, true, meta, body_head, next, records)?;
        let mut highest = self.current();
        if self.read_head()? != planned {
            drop(highest);
            if planned.as_ref().map(|h| h.records_file) != Some(head.records_file) {
                let _ = std::fs::remove_file(self.records_path(head.records_file));
            }
            return Ok(Stored::Superseded);
        }
        self.replace_head(&head, durable, &mut highest)
            .inspect_err(|_| self.discard_unless_current(&target, &head))?;
        Ok(Stored::Current)
    }

    /// Store the snapshot of `state` at `meta` that a leader sent (or a restore seeds), its
    /// kept records `records`, in a new records file.
    pub(super) fn store_installed(
        &self,
        durable: bool,
        meta: &SnapshotMeta,
        state: &Applied,
        records: Box<RecordsFrom<'_>>,
    ) -> io::Result<()> {
        let chain = state.audit.chain;
        let (first, next) = (
            chain.anchor.seq.saturating_add(1),
            chain.head.seq.saturating_add(1),
        );
        let body_head = snapshot_body_head(state).map_err(io::Error::other)?;
        let target = {
            let mut highest = self.current();
            *highest += 1;
            Target::new_file(self.records_path(*highest), *highest, first)?
        };
        // Not paced: a node installs a snapshot because it is behind, and serves no quorum
        // until it is stored.
        let head = target.write(durable, false, meta, body_head, next, records)?;
        let mut highest = self.current();
        self.replace_head(&head, durable, &mut highest)
            .inspect_err(|_| self.discard_unless_current(&target, &head))
    }

    /// After a failed [`Self::replace_head`]: undo `target`'s write unless `head` was stored
    /// all the same (the rename went through and a later step failed).
    fn discard_unless_current(&self, target: &Target, head: &SnapshotHead) {
        if self.read_head().ok().flatten().as_ref() != Some(head) {
            target.discard();
        }
    }

    /// Make `head` the current snapshot, then delete every records file it does not name and
    /// the legacy file. Called under [`Self::current_lock`] (`_held`).
    fn replace_head(&self, head: &SnapshotHead, durable: bool, _held: &mut u64) -> io::Result<()> {
        let path = self.head_path();
        let tmp = path.with_extension("snapshot-head.tmp");
        let written = (|| -> io::Result<()> {
            let mut f = create(&tmp)?;
            format::encode_into(&mut f, head)?;
            if durable {
                f.sync_all()?;
            }
            Ok(())
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(annotate(e, "snapshot head", &tmp));
        }
        std::fs::rename(&tmp, &path)?;
        if durable {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                File::open(dir)?.sync_all()?;
            }
        }
        // Left-overs are only space: a failure to delete one is not the snapshot's.
        for n in self.records_files().unwrap_or_default() {
            if n != head.records_file {
                let _ = std::fs::remove_file(self.records_path(n));
            }
        }
        let _ = std::fs::remove_file(&self.legacy);
        Ok(())
    }
}

/// The stored body of a head: its first bytes, then `records_len` bytes of records file
/// `number` (`file`), read when the body is. The file's length is checked against the head
/// first, so a damaged head is an error now, and cannot make a reader allocate what the file
/// does not hold.
fn stored_body(
    head: Vec<u8>,
    file: File,
    records_len: u64,
    number: u64,
) -> io::Result<SnapshotBytes> {
    let on_disk = file.metadata()?.len();
    if on_disk < records_len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!(
                "snapshot records file {number} is shorter than the {records_len} bytes its \
                 head counts: it holds {on_disk}"
            ),
        ));
    }
    Ok(SnapshotBytes::Stored {
        head,
        records: std::sync::Arc::new(file),
        records_len,
    })
}

fn create(path: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

fn annotate(e: io::Error, what: &str, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

/// A records file about to be written: appended to from `len`, or new.
struct Target {
    path: PathBuf,
    number: u64,
    file: File,
    /// Bytes already there (kept) and the seq of the first record to write.
    len: u64,
    from_seq: u64,
    /// The seq of the file's first record.
    first_seq: u64,
    new: bool,
}

impl Target {
    /// The records file of `head`, to append to; `None` when it cannot be (missing, shorter
    /// than the head counts, unreadable): the records then go to a new file, all of them.
    fn append(path: PathBuf, head: &SnapshotHead) -> Option<Self> {
        let opened = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .and_then(|file| Ok((file.metadata()?.len(), file)));
        let file = match opened {
            Ok((len, file)) if len >= head.records_len => file,
            Ok((len, _)) => {
                tracing::warn!(
                    path = %path.display(),
                    len,
                    counted = head.records_len,
                    "snapshot records file shorter than its head counts: writing all records anew"
                );
                return None;
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "snapshot records file unreadable: writing all records anew");
                return None;
            }
        };
        Some(Target {
            path,
            number: head.records_file,
            file,
            len: head.records_len,
            from_seq: head.next_seq,
            first_seq: head.first_seq,
            new: false,
        })
    }

    fn new_file(path: PathBuf, number: u64, first_seq: u64) -> io::Result<Self> {
        let file = create(&path).map_err(|e| annotate(e, "snapshot records", &path))?;
        Ok(Target {
            path,
            number,
            file,
            len: 0,
            from_seq: first_seq,
            first_seq,
            new: true,
        })
    }

    /// Write the records `from_seq .. next` after the kept bytes, checking that they are
    /// exactly those, in order, and return the head of the snapshot at `meta` whose body starts
    /// with `body_head` and goes on with them. A failed write is undone ([`Self::discard`]).
    fn write(
        &self,
        durable: bool,
        paced: bool,
        meta: &SnapshotMeta,
        body_head: Vec<u8>,
        next: u64,
        records: Box<RecordsFrom<'_>>,
    ) -> io::Result<SnapshotHead> {
        let len = self
            .write_records(durable, paced, next, records)
            .inspect_err(|_| self.discard())?;
        Ok(SnapshotHead {
            meta: meta.clone(),
            body_head,
            records_file: self.number,
            records_len: len,
            first_seq: self.first_seq,
            next_seq: next,
        })
    }

    /// [`Self::write`]'s records; returns the file's length after them.
    fn write_records(
        &self,
        durable: bool,
        paced: bool,
        next: u64,
        records: Box<RecordsFrom<'_>>,
    ) -> io::Result<u64> {
        // What a failed write left past the kept bytes goes first.
        self.file.set_len(self.len)?;
        let mut file = self.file.try_clone()?;
        file.seek(io::SeekFrom::Start(self.len))?;
        let mut out = io::BufWriter::with_capacity(1 << 20, PacedWriter::new(file, durable, paced));
        let mut expected = self.from_seq;
        records(self.from_seq, &mut |seq, bytes| {
            if seq >= next {
                return Ok(());
            }
            if seq != expected {
                return Err(io::Error::other(format!(
                    "audit record {seq} where the snapshot needs record {expected}"
                )));
            }
            expected += 1;
            encode_snapshot_record_into(&mut out, seq, bytes)
        })?;
        if expected != next {
            return Err(io::Error::other(format!(
                "audit records end before record {expected} (the snapshot keeps up to {})",
                next.saturating_sub(1)
            )));
        }
        let paced = out.into_inner().map_err(io::IntoInnerError::into_error)?;
        let mut file = paced.file;
        file.flush()?;
        if durable {
            file.sync_data()?;
        }
        file.stream_position()
    }

    /// Undo a failed write: a new file is deleted, an appended one cut back.
    fn discard(&self) {
        if self.new {
            let _ = std::fs::remove_file(&self.path);
        } else {
            let _ = self.file.set_len(self.len);
        }
    }
}

/// Dirty bytes a snapshot file may gather before they are flushed to the device.
const SNAPSHOT_SYNC_STEP: u64 = 1 << 20;

/// The rate at which a build writes a snapshot's records, in bytes a second: about a
/// twentieth of what this project's 2-core test machine's virtual disk writes (300 MB/s), so
/// that a build leaves the disk to the Raft journal. The records since the last snapshot are
/// a few MB (a fraction of a second); all of them, after a compaction, take a minute a GB.
const SNAPSHOT_WRITE_RATE: u64 = 16 << 20;

/// A file whose data is flushed (`fdatasync`) every [`SNAPSHOT_SYNC_STEP`] bytes, when
/// `durable`, and written at most at [`SNAPSHOT_WRITE_RATE`] when also `paced`. Written at
/// once, a snapshot queued every Raft journal `fdatasync` on the node behind it (on ext4 with
/// ordered data the journal's sync also waits for other files' dirty data): the bench's open
/// loop had p99 327–455 ms against 17 ms without snapshots. In steps, a journal sync waits
/// for at most one.
struct PacedWriter {
    file: File,
    durable: bool,
    paced: bool,
    unsynced: u64,
    written: u64,
    started: std::time::Instant,
    /// `fdatasync` calls made so far.
    syncs: u64,
}

impl PacedWriter {
    fn new(file: File, durable: bool, paced: bool) -> Self {
        PacedWriter {
            file,
            durable,
            paced,
            unsynced: 0,
            written: 0,
            started: std::time::Instant::now(),
            syncs: 0,
        }
    }

    /// Sleep until the bytes written so far fit [`SNAPSHOT_WRITE_RATE`].
    fn keep_pace(&self) {
        if !self.paced {
            return;
        }
        let due =
            std::time::Duration::from_secs_f64(self.written as f64 / SNAPSHOT_WRITE_RATE as f64);
        if let Some(ahead) = due.checked_sub(self.started.elapsed()) {
            std::thread::sleep(ahead);
        }
    }
}

impl Write for PacedWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if !self.durable {
            return self.file.write(buf);
        }
        // At most up to the next step; `unsynced` is below the step here, so there is room
        // for at least one byte.
        let room = SNAPSHOT_SYNC_STEP.saturating_sub(self.unsynced).max(1);
        let room = usize::try_from(room).unwrap_or(usize::MAX);
        let n = self.file.write(&buf[..buf.len().min(room)])?;
        self.unsynced += n as u64;
        self.written += n as u64;
        if self.unsynced >= SNAPSHOT_SYNC_STEP {
            self.file.sync_data()?;
            self.unsynced = 0;
            self.syncs += 1;
            self.keep_pace();
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// The bytes the snapshot files in `dir` take: the legacy file, the head and the records
/// files beside the node's state database (`state.redb`), for `signer_snapshot_bytes`. While
/// a build or an install writes a new records file, the old one is counted too.
pub fn snapshot_bytes_in(dir: &Path) -> io::Result<u64> {
    let files = SnapshotFiles::named(&dir.join(STATE_DATABASE_FILE));
    let numbered = files.records_files()?.into_iter();
    let paths = [files.legacy.clone(), files.head_path()]
        .into_iter()
        .chain(numbered.map(|n| files.records_path(n)));
    let mut total = 0;
    for path in paths {
        match std::fs::metadata(&path) {
            Ok(m) => total += m.len(),
            // None yet, or deleted since the listing (a build replaced it).
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests;
