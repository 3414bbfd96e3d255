#![allow(clippy::unwrap_used, clippy::panic)]

use super::*;
use crate::audit::AuditEvent;
use crate::format::{encode, encode_part_into};
use crate::state::{encode_snapshot_record_into, StoredRecords};
use proptest::prelude::*;

/// A state whose chain has seen `total` records, of which the first `compacted` were
/// compacted away (when that leaves one), with events of `sizes` voters; and its kept
/// records.
fn state_and_records(total: u64, compacted: u64, sizes: &[u8]) -> (Applied, StoredRecords) {
    let mut state = Applied::default();
    state.admin.cluster_id = "body-reader".into();
    let mut records = Vec::new();
    for i in 1..=total {
        let voters = (0..u64::from(sizes[i as usize % sizes.len()])).collect();
        let event = AuditEvent::Membership {
            voters,
            learners: vec![i],
        };
        records.push(state.audit.append(1_000 + i, i, event));
    }
    if compacted > 0 && compacted < total {
        state.audit.compact(compacted).unwrap();
        records.drain(..compacted as usize);
    }
    (state, records)
}

/// Everything the streamed reading of `body` yields: its state and records, or the first error.
fn read_streamed(body: &[u8]) -> Result<(SnapshotState, StoredRecords), FormatError> {
    match open_snapshot_body(body, body.len() as u64)? {
        OpenedSnapshotBody::Streamed { state, records } => {
            Ok((state, records.collect::<Result<Vec<_>, _>>()?))
        }
        OpenedSnapshotBody::Whole(_) => panic!("a body of this layout was read whole"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The streamed reading yields exactly what the whole decoding does, and the records read
    /// again from the offset it reports are the same.
    #[test]
    fn it_reads_what_the_whole_decoding_reads(
        total in 0u64..80,
        compacted_share in 0u64..4,
        sizes in proptest::collection::vec(0u8..40, 1..8),
    ) {
        let compacted = total * compacted_share / 4;
        let (state, records) = state_and_records(total, compacted, &sizes);
        let bytes = encode(&state.snapshot_body(records.clone())).unwrap();
        let whole = decode_snapshot_body(&bytes).unwrap().into_parts();
        let (streamed_state, streamed_records) = read_streamed(&bytes).unwrap();
        prop_assert_eq!(&streamed_state, &whole.0);
        prop_assert_eq!(&streamed_records, &whole.1);
        prop_assert_eq!(&streamed_records, &records);

        let OpenedSnapshotBody::Streamed { records: first, .. } =
            open_snapshot_body(&bytes[..], bytes.len() as u64).unwrap()
        else {
            panic!("read whole");
        };
        let (offset, count) = (first.offset(), first.remaining());
        prop_assert_eq!(count, records.len() as u64);
        let again = SnapshotRecords::resume(&bytes[offset as usize..], offset, count, bytes.len() as u64)
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        prop_assert_eq!(again, records);
    }
}

#[test]
fn every_cut_of_a_body_and_a_byte_past_its_end_are_refused_as_the_whole_decoding_refuses_them() {
    let (state, records) = state_and_records(6, 2, &[3, 0, 17]);
    let bytes = encode(&state.snapshot_body(records)).unwrap();
    for cut in 0..bytes.len() {
        let short = &bytes[..cut];
        assert!(decode_snapshot_body(short).is_err(), "cut at {cut}");
        assert!(read_streamed(short).is_err(), "cut at {cut} was read");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(decode_snapshot_body(&longer).is_err());
    assert_eq!(
        read_streamed(&longer).unwrap_err(),
        FormatError::Malformed("the snapshot body has 1 bytes after its last record".into())
    );
}

#[test]
fn a_length_prefix_cannot_claim_more_than_the_body_holds() {
    let (state, _) = state_and_records(1, 0, &[1]);
    let mut bytes = crate::state::snapshot_body_head(&state).unwrap();
    // Record 1 claims 1 GiB; the body holds ten more bytes.
    encode_part_into(&mut bytes, &1u64).unwrap();
    encode_part_into(&mut bytes, &(1u64 << 30)).unwrap();
    bytes.extend_from_slice(&[0; 10]);
    let claimed_at = bytes.len() - 10 - 6;
    assert_eq!(
        read_streamed(&bytes).unwrap_err(),
        FormatError::Malformed(format!(
            "kept audit record 1 of 1, at byte {claimed_at} of {}: the size limit has been reached",
            bytes.len()
        ))
    );
    // A count of records the body does not hold ends where the bytes do.
    let (state, records) = state_and_records(3, 0, &[2]);
    let mut bytes = crate::state::snapshot_body_head(&state).unwrap();
    encode_snapshot_record_into(&mut bytes, records[0].0, &records[0].1).unwrap();
    let OpenedSnapshotBody::Streamed { state: _, records } =
        open_snapshot_body(&bytes[..], bytes.len() as u64).unwrap()
    else {
        panic!("read whole");
    };
    let read: Vec<_> = records.collect();
    assert_eq!(read.len(), 2);
    assert!(read[0].is_ok());
    assert_eq!(
        read[1],
        Err(FormatError::Malformed(format!(
            "kept audit record 2 of 3, at byte {0} of {0}: the size limit has been reached",
            bytes.len()
        )))
    );
}

#[test]
fn a_newer_format_is_refused_by_name_and_an_older_layout_is_read_whole_and_upgraded() {
    let (state, records) = state_and_records(4, 1, &[2, 5]);
    let body = state.snapshot_body(records.clone());
    let mut newer = encode(&body).unwrap();
    newer[2] = 5;
    assert_eq!(
        read_streamed(&newer).unwrap_err(),
        FormatError::Newer {
            found: 5,
            supported: 4
        }
    );

    // Formats 1 and 2: the admin state without the fields they lacked (the view horizon, the
    // last byte of its encoding; format 1 also without the empty map of revocations before).
    for version in [1u8, 2] {
        let mut older = vec![b'Q', b'S', version, 0];
        encode_part_into(&mut older, &(&body.protection, &body.registry)).unwrap();
        let mut admin = encode(&body.admin).unwrap().split_off(4);
        assert_eq!(admin.pop(), Some(32));
        if version == 1 {
            assert_eq!(admin.pop(), Some(0));
        }
        older.extend_from_slice(&admin);
        encode_part_into(&mut older, &body.audit_chain).unwrap();
        encode_part_into(&mut older, &(records.len() as u64)).unwrap();
        for (seq, bytes) in &records {
            encode_snapshot_record_into(&mut older, *seq, bytes).unwrap();
        }
        match open_snapshot_body(&older[..], older.len() as u64).unwrap() {
            OpenedSnapshotBody::Whole(read) => {
                assert_eq!(read, body, "format {version}");
                assert_eq!(read, decode_snapshot_body(&older).unwrap());
            }
            OpenedSnapshotBody::Streamed { .. } => panic!("format {version} was streamed"),
        }
    }
}
