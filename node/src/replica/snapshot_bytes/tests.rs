#![allow(clippy::unwrap_used, clippy::panic)]

use super::*;
use proptest::prelude::*;
use std::io::Write as _;

/// A stored body of `head` and `file`'s first `records_len` bytes.
fn stored(head: &[u8], file: &[u8], records_len: u64) -> SnapshotBytes {
    let mut f = tempfile::tempfile().unwrap();
    f.write_all(file).unwrap();
    SnapshotBytes::Stored {
        head: head.to_vec(),
        records: Arc::new(f),
        records_len,
    }
}

/// Every chunk of `chunk` bytes read in order, concatenated.
fn read_in_chunks(body: &SnapshotBytes, chunk: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut offset = 0;
    while offset < body.len() {
        let piece = body.read_range(offset, chunk).unwrap();
        assert!(!piece.is_empty() && piece.len() <= chunk);
        offset += piece.len() as u64;
        out.extend_from_slice(&piece);
    }
    out
}

proptest! {
    /// The bytes of a stored body, read whole or a chunk at a time from anywhere, are the head
    /// then the records the head counts, as an in-memory body of those bytes gives them; bytes
    /// appended to the file past that length (a later build) are not part of it.
    #[test]
    fn a_stored_body_reads_as_its_head_then_its_counted_records(
        head in proptest::collection::vec(any::<u8>(), 0..64),
        records in proptest::collection::vec(any::<u8>(), 0..300),
        appended in proptest::collection::vec(any::<u8>(), 0..40),
        chunk in 1usize..80,
        from in 0u64..400,
    ) {
        let mut file = records.clone();
        file.extend_from_slice(&appended);
        let body = stored(&head, &file, records.len() as u64);
        let expected: Vec<u8> = head.iter().chain(&records).copied().collect();
        prop_assert_eq!(body.len(), expected.len() as u64);
        prop_assert_eq!(read_in_chunks(&body, chunk), expected.clone());
        let start = (from as usize).min(expected.len());
        let end = (start + chunk).min(expected.len());
        prop_assert_eq!(body.read_range(from, chunk).unwrap(), expected[start..end].to_vec());
        let in_memory = SnapshotBytes::InMemory(expected.clone());
        prop_assert_eq!(in_memory.read_range(from, chunk).unwrap(), expected[start..end].to_vec());
        prop_assert_eq!(read_in_chunks(&in_memory, chunk), expected.clone());
        prop_assert_eq!(body.into_bytes().unwrap(), expected);
    }
}

#[test]
fn a_records_file_shorter_than_its_head_counts_is_an_error_not_a_short_body() {
    let body = stored(b"head", b"0123456789", 12);
    assert_eq!(body.len(), 16);
    // The head and the records that are there read as they are.
    assert_eq!(body.read_range(0, 14).unwrap(), b"head0123456789");
    for (offset, len) in [(0, 16), (10, 6), (14, 1)] {
        let e = body.read_range(offset, len).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(
            e.to_string(),
            "snapshot records file is shorter than the 12 bytes its head counts"
        );
    }
    let e = body.into_bytes().unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
}

#[test]
fn an_empty_body_has_no_bytes_to_read() {
    for body in [SnapshotBytes::InMemory(Vec::new()), stored(b"", b"abc", 0)] {
        assert!(body.is_empty());
        assert_eq!(body.read_range(0, 10).unwrap(), Vec::<u8>::new());
        assert_eq!(body.into_bytes().unwrap(), Vec::<u8>::new());
    }
}
