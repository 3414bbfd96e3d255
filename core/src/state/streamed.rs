//! A snapshot body encoded as it is read: the state borrowed, the kept audit records taken one
//! at a time from the caller's iterator (a storage read), so that a snapshot of millions of
//! records is written without a copy of them in memory.
//!
//! Owns: [`StreamedSnapshotBody`] and [`snapshot_body_bound`], the most bytes it can encode
//! to. Must not: read storage itself (the replica hands it an iterator over its records) or
//! have a layout of its own: it encodes to exactly the bytes of the [`SnapshotBody`] with the
//! same state and records, in every serde format (tested against that type on generated
//! states, `node/tests/determinism.rs`).
//!
//! To ensure correctness: the records must be exactly the chain's kept ones,
//! `anchor.seq + 1 ..= head.seq` in order; a missing, extra or out-of-order record, or a read
//! error, fails the encoding (the length prefix is written first, so a short iterator must not
//! leave a body that claims records it lacks).

use super::records_as_bytes::Record;
use super::{Applied, AuditChain};
use crate::format::{self, FormatError};
use serde::ser::{Error as _, SerializeSeq, SerializeStruct};
use serde::{Serialize, Serializer};
use std::cell::RefCell;
use std::fmt::Display;

/// [`Applied::snapshot_body`] without the copies: serialize it with [`crate::format`] (or any
/// serde format) once. A second serialization fails (the records were consumed).
pub struct StreamedSnapshotBody<'a, I> {
    state: &'a Applied,
    records: RefCell<Option<I>>,
}

impl<'a, I> StreamedSnapshotBody<'a, I> {
    /// The body of `state` whose kept records `records` yields, (seq, canonical bytes) in seq
    /// order, or the error that stopped the read.
    pub fn new(state: &'a Applied, records: I) -> Self {
        StreamedSnapshotBody {
            state,
            records: RefCell::new(Some(records)),
        }
    }
}

impl<I, B, E> Serialize for StreamedSnapshotBody<'_, I>
where
    I: Iterator<Item = Result<(u64, B), E>>,
    B: AsRef<[u8]>,
    E: Display,
{
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // The fields of `SnapshotBody`, in its order.
        let mut body = s.serialize_struct("SnapshotBody", 5)?;
        body.serialize_field("protection", &self.state.protection)?;
        body.serialize_field("registry", &self.state.registry)?;
        body.serialize_field("admin", &self.state.admin)?;
        body.serialize_field("audit_chain", &self.state.audit.chain)?;
        body.serialize_field(
            "audit_records",
            &KeptRecords {
                chain: self.state.audit.chain,
                records: &self.records,
            },
        )?;
        body.end()
    }
}

/// Most bytes a varint of the binary format takes (a `u64`: a tag byte and eight bytes).
const MAX_VARINT: u64 = 9;

/// The most bytes the encoded snapshot body of `state` can take (header included) when its
/// kept records hold `record_bytes` bytes together: the state's part exactly, then the
/// records' count, and for each record its bytes plus the most its seq and its length can
/// take. Computed without reading a record, so a replica can tell before it builds a snapshot
/// that the format could not hold it.
pub fn snapshot_body_bound(state: &Applied, record_bytes: u64) -> Result<u64, FormatError> {
    let chain = state.audit.chain;
    // The fields before the records, in `SnapshotBody`'s order (a tuple encodes as a struct).
    let before_records =
        format::encoded_len(&(&state.protection, &state.registry, &state.admin, &chain))?;
    let kept = chain.head.seq.saturating_sub(chain.anchor.seq);
    Ok(before_records
        .saturating_add(MAX_VARINT)
        .saturating_add(record_bytes)
        .saturating_add(kept.saturating_mul(2 * MAX_VARINT)))
}

/// [`StreamedSnapshotBody`]'s encoding of `state` up to its records: the header, the state's
/// fields and the count of kept records. Followed by [`encode_snapshot_record_into`]'s bytes
/// of each kept record in seq order (`anchor.seq + 1 ..= head.seq`), it is exactly that
/// encoding: a replica keeps the records' part in a file of its own and appends to it,
/// instead of encoding every record again for each snapshot.
pub fn snapshot_body_head(state: &Applied) -> Result<Vec<u8>, FormatError> {
    let chain = state.audit.chain;
    // The fields before the records, in `SnapshotBody`'s order (a tuple encodes as a struct).
    let mut head = format::encode(&(&state.protection, &state.registry, &state.admin, &chain))?;
    // A sequence's length is a u64 varint.
    let kept = chain.head.seq.saturating_sub(chain.anchor.seq);
    format::encode_part_into(&mut head, &kept)
        .map_err(|e| FormatError::Unencodable(e.to_string()))?;
    Ok(head)
}

/// One kept record as [`StreamedSnapshotBody`] encodes it in its records' part.
pub fn encode_snapshot_record_into<W: std::io::Write>(
    out: W,
    seq: u64,
    bytes: &[u8],
) -> std::io::Result<()> {
    format::encode_part_into(out, &(seq, Record(bytes)))
}

/// The records field: a sequence of the chain's kept length, checked record by record.
struct KeptRecords<'r, I> {
    chain: AuditChain,
    records: &'r RefCell<Option<I>>,
}

impl<I, B, E> Serialize for KeptRecords<'_, I>
where
    I: Iterator<Item = Result<(u64, B), E>>,
    B: AsRef<[u8]>,
    E: Display,
{
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let Some(mut records) = self.records.borrow_mut().take() else {
            return Err(S::Error::custom(
                "a streamed snapshot body is encoded once (its records were read)",
            ));
        };
        let (anchor, head) = (self.chain.anchor.seq, self.chain.head.seq);
        let kept = usize::try_from(head.saturating_sub(anchor))
            .map_err(|_| S::Error::custom("more kept audit records than this machine addresses"))?;
        let mut seq = s.serialize_seq(Some(kept))?;
        let first = anchor.saturating_add(1);
        for expected in (first..=head).take(kept) {
            match records.next() {
                Some(Ok((found, bytes))) if found == expected => {
                    seq.serialize_element(&(found, Record(bytes.as_ref())))?
                }
                Some(Ok((found, _))) => {
                    return Err(S::Error::custom(format!(
                        "audit record {found} where the chain needs record {expected}"
                    )))
                }
                Some(Err(e)) => {
                    return Err(S::Error::custom(format!("reading audit records: {e}")))
                }
                None => {
                    let kept = format!("{first}..={head}");
                    return Err(S::Error::custom(format!(
                        "audit records end before record {expected} (the chain keeps {kept})"
                    )));
                }
            }
        }
        match records.next() {
            None => seq.end(),
            Some(Ok((found, _))) => Err(S::Error::custom(format!(
                "audit record {found} past the chain's head {head}"
            ))),
            Some(Err(e)) => Err(S::Error::custom(format!("reading audit records: {e}"))),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::audit::AuditEvent;
    use crate::format;

    /// A state whose chain keeps records 3..=7 (1 and 2 compacted away), and those records.
    fn state_and_records() -> (Applied, Vec<(u64, Vec<u8>)>) {
        let mut state = Applied::default();
        let mut records = Vec::new();
        for i in 1..=7u64 {
            let event = AuditEvent::Membership {
                voters: vec![1, 2, i],
                learners: vec![],
            };
            records.push(state.audit.append(1_000 + i, i, event));
        }
        state.audit.compact(2).unwrap();
        records.drain(..2);
        (state, records)
    }

    fn streamed(
        state: &Applied,
        records: Vec<Result<(u64, Vec<u8>), String>>,
    ) -> Result<Vec<u8>, format::FormatError> {
        format::encode(&StreamedSnapshotBody::new(state, records.into_iter()))
    }

    #[test]
    fn it_encodes_the_bytes_of_the_snapshot_body_in_both_serde_formats() {
        let (state, records) = state_and_records();
        let owned = state.snapshot_body(records.clone());
        assert_eq!(
            streamed(&state, records.iter().cloned().map(Ok).collect()).unwrap(),
            format::encode(&owned).unwrap()
        );
        let json = serde_json::to_string(&StreamedSnapshotBody::new(
            &state,
            records
                .iter()
                .map(|(seq, bytes)| Ok::<_, String>((*seq, bytes))),
        ))
        .unwrap();
        assert_eq!(json, serde_json::to_string(&owned).unwrap());
    }

    #[test]
    fn a_body_head_and_its_records_encoded_apart_are_the_streamed_body() {
        let (state, records) = state_and_records();
        let mut assembled = snapshot_body_head(&state).unwrap();
        for (seq, bytes) in &records {
            encode_snapshot_record_into(&mut assembled, *seq, bytes).unwrap();
        }
        let owned = format::encode(&state.snapshot_body(records.clone())).unwrap();
        assert_eq!(assembled, owned);
        // More than 250 kept records: the count takes a varint of three bytes.
        let mut big = Applied::default();
        let mut records = Vec::new();
        for i in 1..=300u64 {
            let event = AuditEvent::Membership {
                voters: vec![i],
                learners: vec![],
            };
            records.push(big.audit.append(i, i, event));
        }
        let mut assembled = snapshot_body_head(&big).unwrap();
        for (seq, bytes) in &records {
            encode_snapshot_record_into(&mut assembled, *seq, bytes).unwrap();
        }
        assert_eq!(
            assembled,
            format::encode(&big.snapshot_body(records)).unwrap()
        );
    }

    #[test]
    fn the_bound_is_at_least_the_encoded_length_and_at_most_the_varints_above_it() {
        let (state, records) = state_and_records();
        let bytes: u64 = records.iter().map(|(_, b)| b.len() as u64).sum();
        let encoded = format::encode(&state.snapshot_body(records.clone()))
            .unwrap()
            .len() as u64;
        let bound = snapshot_body_bound(&state, bytes).unwrap();
        assert!(
            bound >= encoded,
            "bound {bound} below the encoding's {encoded}"
        );
        // Each of the 5 records' seq and length, and the count, could be a byte each here.
        assert!(bound - encoded <= 5 * 2 * (MAX_VARINT - 1) + (MAX_VARINT - 1));
        // No record kept: the state's part and the count.
        let empty = Applied::default();
        let encoded = format::encode(&empty.snapshot_body(vec![])).unwrap().len() as u64;
        assert_eq!(
            snapshot_body_bound(&empty, 0).unwrap(),
            encoded + MAX_VARINT - 1
        );
    }

    #[test]
    fn records_that_are_not_exactly_the_kept_ones_fail_the_encoding() {
        let (state, records) = state_and_records();
        let ok = |r: &[(u64, Vec<u8>)]| r.iter().cloned().map(Ok).collect::<Vec<_>>();
        let message = |result: Result<Vec<u8>, format::FormatError>| match result {
            Err(format::FormatError::Unencodable(m)) => m,
            other => panic!("expected an encoding error, got {other:?}"),
        };
        assert_eq!(
            message(streamed(&state, ok(&records[..4]))),
            "audit records end before record 7 (the chain keeps 3..=7)"
        );
        let mut extra = ok(&records);
        extra.push(Ok((8, vec![1])));
        assert_eq!(
            message(streamed(&state, extra)),
            "audit record 8 past the chain's head 7"
        );
        let mut swapped = ok(&records);
        swapped.swap(1, 2);
        assert_eq!(
            message(streamed(&state, swapped)),
            "audit record 5 where the chain needs record 4"
        );
        let mut failing = ok(&records);
        failing[3] = Err("disk read failed".into());
        assert_eq!(
            message(streamed(&state, failing)),
            "reading audit records: disk read failed"
        );
        // Encoded twice: the records were read by the first encoding.
        let body = StreamedSnapshotBody::new(&state, ok(&records).into_iter());
        assert!(format::encode(&body).is_ok());
        assert_eq!(
            message(format::encode(&body)),
            "a streamed snapshot body is encoded once (its records were read)"
        );
    }
}
