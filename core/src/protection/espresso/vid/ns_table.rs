//! The namespace table, read as HotShot's VID reads it.
//!
//! Layout (crates/hotshot/types/src/data/ns_table.rs@2a0a96ae, `parse_ns_table`; the
//! sequencer's `NsTable` bytes): `u32le count`, then `count` entries of `u32le ns_id ‖ u32le
//! end`. Namespace `i` is the payload range `end[i-1]..end[i]` (`end[-1] = 0`). Only the ends
//! matter for the commitment: the namespace ids are not committed by VID (the header commits
//! to the table separately).
//!
//! HotShot never rejects a table: when it is malformed it logs a warning and commits to the
//! whole payload as one namespace. A signer that did the same would sign a commitment the
//! block's own table does not describe, so here every case HotShot would replace is an error.
//! Accepted tables give exactly HotShot's ranges:
//! - length `4 + 8·count` with `count` from the first word;
//! - ends non-decreasing (empty namespaces are allowed) and the last end equal to the payload
//!   length;
//! - `count = 0` only for an empty payload, which is then one empty namespace;
//! - at most [`super::MAX_NAMESPACES`] entries (a signer limit).

use std::ops::Range;

use super::{VidError, MAX_NAMESPACES};

const COUNT_LEN: usize = 4;
const ENTRY_LEN: usize = 8;

fn word(bytes: &[u8], at: usize) -> Result<u32, VidError> {
    let raw: [u8; 4] = bytes
        .get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| VidError::NsTable(format!("truncated at byte {at}")))?;
    Ok(u32::from_le_bytes(raw))
}

/// The namespace ranges of a payload of `payload_len` bytes, or why the table is refused.
pub fn parse(payload_len: usize, table: &[u8]) -> Result<Vec<Range<usize>>, VidError> {
    let bad = |why: String| Err(VidError::NsTable(why));
    if table.len() < COUNT_LEN || !(table.len() - COUNT_LEN).is_multiple_of(ENTRY_LEN) {
        return bad(format!("length {} is not 4 + 8 per entry", table.len()));
    }
    let entries = (table.len() - COUNT_LEN) / ENTRY_LEN;
    let count = word(table, 0)?;
    if usize::try_from(count).ok() != Some(entries) {
        return bad(format!("declares {count} entries but holds {entries}"));
    }
    if entries > MAX_NAMESPACES {
        return bad(format!(
            "{entries} namespaces exceed the limit of {MAX_NAMESPACES}"
        ));
    }
    if entries == 0 {
        if payload_len != 0 {
            return bad(format!(
                "no namespaces for a payload of {payload_len} bytes"
            ));
        }
        // HotShot's early return for an empty payload: one empty namespace.
        #[allow(clippy::single_range_in_vec_init)]
        return Ok(vec![0..0]);
    }
    let mut ranges = Vec::with_capacity(entries);
    let mut start = 0usize;
    for i in 0..entries {
        let at = COUNT_LEN + i * ENTRY_LEN + 4;
        let end = usize::try_from(word(table, at)?)
            .map_err(|_| VidError::NsTable("offset does not fit".into()))?;
        if end < start || end > payload_len {
            return bad(format!(
                "namespace {i} ends at {end}, outside {start}..={payload_len}"
            ));
        }
        ranges.push(start..end);
        start = end;
    }
    if start != payload_len {
        return bad(format!(
            "namespaces cover {start} of {payload_len} payload bytes"
        ));
    }
    Ok(ranges)
}
