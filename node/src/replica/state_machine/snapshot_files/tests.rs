#![allow(clippy::unwrap_used, clippy::panic)]

use super::*;
use crate::replica::{LogId, StoredMembership, TypeConfig};
use std::cell::Cell;

type LeaderId = <TypeConfig as openraft::RaftTypeConfig>::LeaderId;

fn meta(index: u64) -> SnapshotMeta {
    use openraft::vote::RaftLeaderIdExt as _;
    SnapshotMeta {
        last_log_id: Some(LogId::new(LeaderId::new_committed(1, 1), index)),
        last_membership: StoredMembership::default(),
    }
}

/// A replicated state and its kept audit records, grown and compacted as a replica's are.
#[derive(Default)]
struct Chain {
    state: Applied,
    records: Vec<(u64, Vec<u8>)>,
}

impl Chain {
    fn grow(&mut self, n: u64) {
        for _ in 0..n {
            let i = self.state.audit.chain.head.seq + 1;
            let changes = self.state.apply_membership(vec![1, 2, i], vec![], i);
            self.records.extend(changes.audit);
        }
    }

    /// Drop the records up to `up_to` as a compaction does. This module reads only the
    /// anchor's seq (the chain's hashes are checked where records are installed), so the
    /// anchor keeps the hash it had.
    fn compact(&mut self, up_to: u64) {
        self.state.audit.chain.anchor.seq = up_to;
        self.records.retain(|(seq, _)| *seq > up_to);
    }

    /// The body as the owned snapshot type encodes it: what every stored body must equal.
    fn body(&self) -> Vec<u8> {
        format::encode(&self.state.snapshot_body(self.records.clone())).unwrap()
    }

    /// A records source over a copy of the kept records that notes the first seq asked for.
    fn source<'a>(&self, asked: &'a Cell<Option<u64>>) -> Box<RecordsFrom<'a>> {
        let records = self.records.clone();
        Box::new(move |from, sink| {
            asked.set(Some(from));
            from_list(&records)(from, sink)
        })
    }
}

/// The current snapshot with its whole body read, as a follower receives it.
fn whole(files: &SnapshotFiles) -> io::Result<Option<(SnapshotMeta, Vec<u8>)>> {
    match files.read()? {
        Some((meta, body)) => Ok(Some((meta, body.into_bytes()?))),
        None => Ok(None),
    }
}

/// Store a build of `chain` at log index `index`: what was stored, the current body then, and
/// the first seq the build asked for.
fn build(files: &SnapshotFiles, index: u64, chain: &Chain) -> (Stored, Vec<u8>, Option<u64>) {
    let asked = Cell::new(None);
    let stored = files
        .store_built(true, &meta(index), &chain.state, chain.source(&asked))
        .unwrap();
    let (_, body) = whole(files).unwrap().unwrap();
    (stored, body, asked.get())
}

/// The names of the snapshot files in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("state.snapshot"))
        .collect();
    names.sort();
    names
}

fn setup() -> (tempfile::TempDir, SnapshotFiles) {
    let dir = tempfile::tempdir().unwrap();
    let files = SnapshotFiles::beside(&dir.path().join("state.redb")).unwrap();
    (dir, files)
}

#[test]
fn each_build_stores_its_body_and_appends_only_the_new_records_to_one_file() {
    let (dir, files) = setup();
    assert_eq!(whole(&files).unwrap(), None);
    let mut chain = Chain::default();
    chain.grow(5);
    let (stored, body, asked) = build(&files, 10, &chain);
    assert_eq!(stored, Stored::Current);
    assert_eq!(asked, Some(1));
    assert_eq!(body, chain.body());
    assert_eq!(whole(&files).unwrap(), Some((meta(10), chain.body())));
    let records_file = dir.path().join("state.snapshot-records-1");
    let first = std::fs::read(&records_file).unwrap();

    chain.grow(300);
    let (stored, body, asked) = build(&files, 20, &chain);
    assert_eq!(stored, Stored::Current);
    // Only the records since the last snapshot were read, and written after the old ones.
    assert_eq!(asked, Some(6));
    assert_eq!(body, chain.body());
    assert_eq!(whole(&files).unwrap(), Some((meta(20), chain.body())));
    let second = std::fs::read(&records_file).unwrap();
    assert!(second.len() > first.len());
    assert_eq!(second[..first.len()], first[..]);
    assert_eq!(
        names(dir.path()),
        ["state.snapshot-head", "state.snapshot-records-1"]
    );
}

#[test]
fn after_a_compaction_all_kept_records_go_to_a_new_file_and_the_old_one_is_deleted() {
    let (dir, files) = setup();
    let mut chain = Chain::default();
    chain.grow(8);
    build(&files, 10, &chain);
    chain.compact(5);
    chain.grow(2);
    let (stored, body, asked) = build(&files, 20, &chain);
    assert_eq!((stored, asked), (Stored::Current, Some(6)));
    assert_eq!(body, chain.body());
    assert_eq!(whole(&files).unwrap(), Some((meta(20), chain.body())));
    assert_eq!(
        names(dir.path()),
        ["state.snapshot-head", "state.snapshot-records-2"]
    );
    // A node started anew goes on from the highest number (never writes a file in use).
    let restarted = SnapshotFiles::beside(&dir.path().join("state.redb")).unwrap();
    chain.compact(7);
    let (_, body, _) = build(&restarted, 30, &chain);
    assert_eq!(body, chain.body());
    assert_eq!(
        names(dir.path()),
        ["state.snapshot-head", "state.snapshot-records-3"]
    );
}

#[test]
fn a_snapshot_installed_while_a_build_writes_stays_the_current_one() {
    let (dir, files) = setup();
    let mut chain = Chain::default();
    chain.grow(4);
    build(&files, 10, &chain);
    chain.grow(3);
    // The leader's snapshot, newer, arrives while the build reads its records.
    let mut leaders = Chain::default();
    leaders.grow(12);
    leaders.compact(2);
    let records = chain.records.clone();
    let stored = files
        .store_built(
            true,
            &meta(20),
            &chain.state,
            Box::new(|from, sink| {
                files
                    .store_installed(true, &meta(50), &leaders.state, from_list(&leaders.records))
                    .unwrap();
                from_list(&records)(from, sink)
            }),
        )
        .unwrap();
    assert_eq!(stored, Stored::Superseded);
    assert_eq!(whole(&files).unwrap(), Some((meta(50), leaders.body())));
    assert_eq!(
        names(dir.path()),
        ["state.snapshot-head", "state.snapshot-records-2"]
    );
}

#[test]
fn a_build_older_than_the_stored_snapshot_stores_nothing() {
    let (dir, files) = setup();
    let mut leaders = Chain::default();
    leaders.grow(9);
    files
        .store_installed(true, &meta(50), &leaders.state, from_list(&leaders.records))
        .unwrap();
    // A build of an older state (its copy taken before the install) is not stored, whether it
    // would append or write a new file, nor is one at the same position.
    for (index, records) in [(20, 12), (30, 3), (50, 9)] {
        let mut older = Chain::default();
        older.grow(records);
        let (stored, body, asked) = build(&files, index, &older);
        assert_eq!((stored, asked), (Stored::Superseded, None));
        assert_eq!(body, leaders.body());
    }
    assert_eq!(whole(&files).unwrap(), Some((meta(50), leaders.body())));
    assert_eq!(
        names(dir.path()),
        ["state.snapshot-head", "state.snapshot-records-1"]
    );
}

#[test]
fn a_failed_build_leaves_the_current_snapshot_and_the_next_one_cuts_what_was_left() {
    let (dir, files) = setup();
    let mut chain = Chain::default();
    chain.grow(5);
    build(&files, 10, &chain);
    chain.grow(5);
    let records = chain.records.clone();
    let failed = files.store_built(
        true,
        &meta(20),
        &chain.state,
        Box::new(|from, sink| {
            for (seq, bytes) in records.iter().filter(|(seq, _)| *seq >= from).take(3) {
                sink(*seq, bytes)?;
            }
            Err(io::Error::other("disk read failed"))
        }),
    );
    assert_eq!(failed.unwrap_err().to_string(), "disk read failed");
    let mut five = Chain::default();
    five.grow(5);
    assert_eq!(whole(&files).unwrap(), Some((meta(10), five.body())));
    // A crash mid-append leaves bytes past the counted length: the next build cuts them.
    let records_file = dir.path().join("state.snapshot-records-1");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&records_file)
        .unwrap();
    f.write_all(&[0xAB; 777]).unwrap();
    let (stored, body, asked) = build(&files, 20, &chain);
    assert_eq!((stored, asked), (Stored::Current, Some(6)));
    assert_eq!(body, chain.body());
    assert_eq!(whole(&files).unwrap(), Some((meta(20), chain.body())));
}

#[test]
fn records_that_are_not_exactly_the_kept_ones_fail_the_build_and_change_nothing() {
    let (_dir, files) = setup();
    let mut chain = Chain::default();
    chain.grow(5);
    build(&files, 10, &chain);
    let before = whole(&files).unwrap();
    chain.grow(5);
    let message = |records: Vec<(u64, Vec<u8>)>| {
        files
            .store_built(true, &meta(20), &chain.state, from_list(&records))
            .unwrap_err()
            .to_string()
    };
    let mut gap = chain.records.clone();
    gap.remove(7);
    assert_eq!(
        message(gap),
        "audit record 9 where the snapshot needs record 8"
    );
    let short = chain.records[..8].to_vec();
    assert_eq!(
        message(short),
        "audit records end before record 9 (the snapshot keeps up to 10)"
    );
    assert_eq!(whole(&files).unwrap(), before);
}

/// The single-file layout of nodes before this one: the snapshot's meta and whole body.
#[derive(serde::Serialize)]
struct LegacyWritten<'a> {
    meta: &'a SnapshotMeta,
    #[serde(serialize_with = "crate::bytes::hex_or_raw::serialize")]
    data: &'a [u8],
}

#[test]
fn a_legacy_snapshot_file_is_read_until_a_build_replaces_it() {
    let (dir, files) = setup();
    let mut chain = Chain::default();
    chain.grow(3);
    let legacy = LegacyWritten {
        meta: &meta(7),
        data: &chain.body(),
    };
    std::fs::write(
        dir.path().join("state.snapshot"),
        format::encode(&legacy).unwrap(),
    )
    .unwrap();
    assert_eq!(whole(&files).unwrap(), Some((meta(7), chain.body())));
    chain.grow(2);
    let (_, _, asked) = build(&files, 9, &chain);
    assert_eq!(asked, Some(1));
    assert_eq!(whole(&files).unwrap(), Some((meta(9), chain.body())));
    assert_eq!(
        names(dir.path()),
        ["state.snapshot-head", "state.snapshot-records-1"]
    );
}

#[test]
fn a_records_file_shorter_than_its_head_counts_fails_to_read_and_is_written_anew() {
    let (dir, files) = setup();
    let mut chain = Chain::default();
    chain.grow(5);
    build(&files, 10, &chain);
    let records_file = dir.path().join("state.snapshot-records-1");
    let len = std::fs::metadata(&records_file).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&records_file)
        .unwrap()
        .set_len(len - 1)
        .unwrap();
    let error = whole(&files).unwrap_err().to_string();
    assert_eq!(
        error,
        format!(
            "snapshot records file 1 is shorter than the {len} bytes its head counts: it holds {}",
            len - 1
        )
    );
    chain.grow(1);
    let (stored, body, asked) = build(&files, 11, &chain);
    assert_eq!((stored, asked), (Stored::Current, Some(1)));
    assert_eq!(body, chain.body());
    assert_eq!(whole(&files).unwrap(), Some((meta(11), chain.body())));
    assert_eq!(
        names(dir.path()),
        ["state.snapshot-head", "state.snapshot-records-2"]
    );
}

/// 3.5 MiB through the writer in one call: synced at each MiB when durable (paced or not),
/// never when not, and the file holds exactly what was written.
#[test]
fn a_durable_records_file_is_synced_every_step() {
    let dir = tempfile::tempdir().unwrap();
    let bytes: Vec<u8> = (0..7u32 << 19).map(|i| (i % 251) as u8).collect();
    for (durable, paced, syncs) in [(true, true, 3), (true, false, 3), (false, false, 0)] {
        let path = dir.path().join(format!("s-{durable}-{paced}"));
        let file = File::create(&path).unwrap();
        let writer = PacedWriter::new(file, durable, paced);
        let mut out = io::BufWriter::with_capacity(1 << 20, writer);
        out.write_all(&bytes).unwrap();
        let inner = out.into_inner().map_err(|e| e.into_error()).unwrap();
        assert_eq!(inner.syncs, syncs, "durable {durable}");
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "durable {durable}");
    }
}

/// A paced writer never runs ahead of [`SNAPSHOT_WRITE_RATE`]: 3 MiB of whole steps take at
/// least the time that rate gives them (a lower bound: the writer sleeps it off).
#[test]
fn a_paced_writer_keeps_to_its_rate() {
    let dir = tempfile::tempdir().unwrap();
    let file = File::create(dir.path().join("paced")).unwrap();
    let started = std::time::Instant::now();
    let mut out = PacedWriter::new(file, true, true);
    out.write_all(&vec![1u8; 3 << 20]).unwrap();
    let least = std::time::Duration::from_secs_f64((3 << 20) as f64 / SNAPSHOT_WRITE_RATE as f64);
    assert!(
        started.elapsed() >= least,
        "3 MiB written in {:?}, under the {least:?} the rate allows",
        started.elapsed()
    );
}

/// A damaged head that counts far more bytes than its records file holds is refused before
/// anything is allocated (an allocation of that size would abort the node).
#[test]
fn a_head_counting_more_than_its_file_holds_allocates_nothing() {
    let (dir, files) = setup();
    let mut chain = Chain::default();
    chain.grow(3);
    build(&files, 10, &chain);
    let mut head = files.read_head().unwrap().unwrap();
    let len = head.records_len;
    head.records_len = u64::MAX / 2;
    std::fs::write(
        dir.path().join("state.snapshot-head"),
        format::encode(&head).unwrap(),
    )
    .unwrap();
    assert_eq!(
        whole(&files).unwrap_err().to_string(),
        format!(
            "snapshot records file 1 is shorter than the {} bytes its head counts: it holds {len}",
            u64::MAX / 2
        )
    );
}
