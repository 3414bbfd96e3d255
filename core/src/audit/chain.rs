//! Chaining records: each record carries the hash of the one before it; verification walks the
//! stored bytes and names the first record that does not fit.

use super::encoding::{decode, encode};
use super::{AuditEvent, AuditRecord, Hash};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The `prev_hash` of the very first record.
pub const GENESIS: Hash = [0; 32];

/// A point of the chain: a record's seq and hash (seq 0 with [`GENESIS`] before record 1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainPoint {
    /// The record's seq.
    pub seq: u64,
    /// The record's hash.
    pub hash: Hash,
}

/// Why a chain does not verify: the first record that does not fit, and how.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("audit record {first_bad_seq}: {reason}")]
pub struct ChainError {
    /// The first record found bad (missing, altered, out of place).
    pub first_bad_seq: u64,
    /// What is wrong with it.
    pub reason: String,
}

/// SHA-256 of a record's canonical encoding.
pub fn hash(record: &AuditRecord) -> Hash {
    hash_bytes(&encode(record))
}

/// SHA-256 of encoded record bytes (as stored; also for bytes that no longer decode).
pub fn hash_bytes(encoded: &[u8]) -> Hash {
    Sha256::digest(encoded).into()
}

/// The record that follows `prev` in the chain, its canonical encoding, and the new head.
pub fn link(
    prev: ChainPoint,
    at_ms: u64,
    log_index: u64,
    event: AuditEvent,
) -> (AuditRecord, Vec<u8>, ChainPoint) {
    let record = AuditRecord {
        seq: prev.seq + 1,
        prev_hash: prev.hash,
        at_ms,
        log_index,
        event,
    };
    let encoded = encode(&record);
    let head = ChainPoint {
        seq: record.seq,
        hash: hash_bytes(&encoded),
    };
    (record, encoded, head)
}

/// Verify stored records `(seq, encoded bytes)`, in seq order, that follow `anchor`; when the
/// store also keeps its head, pass it as `head` so that an edit of the newest record is
/// caught too. Returns the chain's head.
///
/// Blame: when the link from record `n-1` to record `n` is broken, the edited record is `n`
/// if its own link to `n+1` is broken as well (its `prev_hash` was changed, which changes its
/// hash), else `n-1` (its content was changed after `n` was linked to it).
pub fn verify_chain(
    records: &[(u64, Vec<u8>)],
    anchor: ChainPoint,
    head: Option<ChainPoint>,
) -> Result<ChainPoint, ChainError> {
    verify_chain_from(records.iter().map(|(seq, b)| (*seq, b)), anchor, head)
}

/// [`verify_chain`] over records read one at a time (a node's database), so a long log is
/// never all in memory: the same checks, the same blame (one record of lookahead).
pub fn verify_chain_from<B: AsRef<[u8]>>(
    records: impl IntoIterator<Item = (u64, B)>,
    anchor: ChainPoint,
    head: Option<ChainPoint>,
) -> Result<ChainPoint, ChainError> {
    let bad = |seq: u64, reason: String| ChainError {
        first_bad_seq: seq,
        reason,
    };
    let mut prev = anchor;
    let mut records = records.into_iter().peekable();
    while let Some((key, bytes)) = records.next() {
        // Only the first record links to the anchor (each record moves `prev` on by one).
        let first = prev.seq == anchor.seq;
        let bytes = bytes.as_ref();
        let expected = prev.seq + 1;
        if key != expected {
            return Err(if key > expected {
                bad(
                    expected,
                    format!("missing (the next stored record is {key})"),
                )
            } else {
                bad(key, format!("out of place after record {}", prev.seq))
            });
        }
        let record = decode(bytes).map_err(|e| bad(key, e.to_string()))?;
        if record.seq != key {
            return Err(bad(
                key,
                format!("stored as {key} but says seq {}", record.seq),
            ));
        }
        let own = hash_bytes(bytes);
        if record.prev_hash != prev.hash {
            // Does this record's own link to the next one still hold?
            let next_link_holds = match records.peek() {
                Some((_, next)) => decode(next.as_ref()).is_ok_and(|n| n.prev_hash == own),
                None => head.is_none_or(|h| h.hash == own),
            };
            return Err(if next_link_holds && !first {
                bad(
                    prev.seq,
                    format!("altered: its hash no longer matches record {key}'s prev_hash"),
                )
            } else if first {
                bad(
                    key,
                    format!("prev_hash does not match the anchor (record {})", prev.seq),
                )
            } else {
                bad(
                    key,
                    format!("prev_hash does not match the hash of record {}", prev.seq),
                )
            });
        }
        prev = ChainPoint {
            seq: key,
            hash: own,
        };
    }
    if let Some(h) = head {
        if h.seq != prev.seq {
            return Err(bad(
                prev.seq.min(h.seq) + 1,
                format!(
                    "the store's head is record {} but its records end at {}",
                    h.seq, prev.seq
                ),
            ));
        }
        if h.hash != prev.hash {
            return Err(bad(
                prev.seq,
                "altered: its hash does not match the store's head".into(),
            ));
        }
    }
    Ok(prev)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::audit::{NodeEvent, SignDecision, SignResult};

    fn event(i: u64) -> AuditEvent {
        if i.is_multiple_of(2) {
            AuditEvent::Sign(SignDecision {
                request_id: format!("r{i}"),
                client: "seq-1".into(),
                key_id: "k".into(),
                profile: "eth2".into(),
                kind: "block".into(),
                outcome: SignResult::Signed,
                reason_code: String::new(),
                reason: String::new(),
                watermark: vec![("slot".into(), i)],
                message: [i as u8; 32],
            })
        } else {
            AuditEvent::Node(NodeEvent::KeyLoaded {
                node: i,
                key_id: "k".into(),
            })
        }
    }

    /// `n` records after `anchor`, and the head.
    fn chain_from(anchor: ChainPoint, n: u64) -> (Vec<(u64, Vec<u8>)>, ChainPoint) {
        let mut head = anchor;
        let mut out = Vec::new();
        for i in 0..n {
            let (r, bytes, h) = link(head, 1_000 + i, 10 + i, event(i));
            out.push((r.seq, bytes));
            head = h;
        }
        (out, head)
    }

    fn flip(bytes: &mut [u8], at: usize) {
        bytes[at] ^= 0x01;
    }

    #[test]
    fn encoding_round_trips_and_is_strict() {
        let (records, _) = chain_from(ChainPoint::default(), 6);
        for (_, bytes) in &records {
            let r = decode(bytes).unwrap();
            assert_eq!(&encode(&r), bytes);
        }
        let mut long = records[0].1.clone();
        long.push(0);
        assert!(decode(&long).is_err(), "trailing bytes");
        assert!(decode(&records[0].1[..20]).is_err(), "truncated");
        assert!(decode(b"QSAUDIT2").is_err(), "other version");
    }

    #[test]
    fn case_table() {
        let genesis = ChainPoint::default();
        let (intact, head) = chain_from(genesis, 6);
        // The last byte of a sign record is in its message hash; of a key-loaded record, in
        // its key id. Byte 20 is inside prev_hash (8 magic + 8 seq + 32 prev_hash).
        let last_byte = |b: &Vec<u8>| b.len() - 1;
        type Case = (
            &'static str,
            Box<dyn Fn(&mut Vec<(u64, Vec<u8>)>)>,
            Option<u64>,
        );
        let cases: Vec<Case> = vec![
            ("intact", Box::new(|_| {}), None),
            (
                "content of record 3 edited",
                Box::new(move |r| {
                    let at = last_byte(&r[2].1);
                    flip(&mut r[2].1, at)
                }),
                Some(3),
            ),
            (
                "prev_hash of record 4 edited",
                Box::new(|r| flip(&mut r[3].1, 20)),
                Some(4),
            ),
            (
                "record 1 edited",
                Box::new(move |r| {
                    let at = last_byte(&r[0].1);
                    flip(&mut r[0].1, at)
                }),
                Some(1),
            ),
            (
                "last record edited (caught by the head)",
                Box::new(move |r| {
                    let at = last_byte(&r[5].1);
                    flip(&mut r[5].1, at)
                }),
                Some(6),
            ),
            (
                "record 4 deleted",
                Box::new(|r| {
                    r.remove(3);
                }),
                Some(4),
            ),
            (
                "records 2 and 3 swapped (keys kept)",
                Box::new(|r| {
                    let b2 = r[1].1.clone();
                    r[1].1 = r[2].1.clone();
                    r[2].1 = b2;
                }),
                Some(2),
            ),
            (
                "magic of record 5 broken",
                Box::new(|r| flip(&mut r[4].1, 0)),
                Some(5),
            ),
            (
                "last record deleted",
                Box::new(|r| {
                    r.pop();
                }),
                Some(6),
            ),
        ];
        for (name, edit, want) in cases {
            let mut records = intact.clone();
            edit(&mut records);
            let got = verify_chain(&records, genesis, Some(head));
            match want {
                None => assert_eq!(got, Ok(head), "{name}"),
                Some(seq) => {
                    let err = got.expect_err(name);
                    assert_eq!(err.first_bad_seq, seq, "{name}: {err}");
                }
            }
        }
    }

    /// Which record a broken link blames, and why, when every record still decodes: an edited
    /// record is named by the link after it (if that link still holds), a record whose own
    /// `prev_hash` was changed by itself, and the first record against the anchor.
    #[test]
    fn a_broken_link_names_the_record_and_the_reason() {
        let genesis = ChainPoint::default();
        let (intact, head) = chain_from(genesis, 6);
        // Byte 48 is the first byte of `at_ms` (8 magic + 8 seq + 32 prev_hash): the record
        // still decodes, only its hash changes.
        const AT_MS: usize = 48;
        const PREV_HASH: usize = 20;
        type Records = Vec<(u64, Vec<u8>)>;
        let verify = |edit: &dyn Fn(&mut Records)| {
            let mut records = intact.clone();
            edit(&mut records);
            let err = verify_chain(&records, genesis, Some(head)).unwrap_err();
            (err.first_bad_seq, err.reason)
        };
        assert_eq!(
            verify(&|r| flip(&mut r[2].1, AT_MS)),
            (
                3,
                "altered: its hash no longer matches record 4's prev_hash".to_owned()
            )
        );
        // The record before the last one edited: the store's head still names the last record,
        // so the edit is blamed on record 5.
        assert_eq!(
            verify(&|r| flip(&mut r[4].1, AT_MS)),
            (
                5,
                "altered: its hash no longer matches record 6's prev_hash".to_owned()
            )
        );
        // Records 3 and 4 both edited: record 4's own link to 5 is broken too, so the first
        // broken link is named where it is seen.
        assert_eq!(
            verify(&|r| {
                flip(&mut r[2].1, AT_MS);
                flip(&mut r[3].1, AT_MS);
            }),
            (
                4,
                "prev_hash does not match the hash of record 3".to_owned()
            )
        );
        assert_eq!(
            verify(&|r| flip(&mut r[0].1, PREV_HASH)),
            (
                1,
                "prev_hash does not match the anchor (record 0)".to_owned()
            )
        );
    }

    #[test]
    fn a_compacted_chain_verifies_from_its_anchor() {
        let (all, head) = chain_from(ChainPoint::default(), 8);
        // Drop records 1..=5; the anchor is record 5's hash, which record 6 links to.
        let anchor = ChainPoint {
            seq: 5,
            hash: decode(&all[5].1).unwrap().prev_hash,
        };
        let kept = all[5..].to_vec();
        assert_eq!(verify_chain(&kept, anchor, Some(head)), Ok(head));
        // The exported part verifies from genesis up to the anchor.
        assert_eq!(
            verify_chain(&all[..5], ChainPoint::default(), None),
            Ok(anchor)
        );
        // A wrong anchor is caught at the first kept record.
        let wrong = ChainPoint {
            seq: 5,
            hash: [9; 32],
        };
        assert_eq!(
            verify_chain(&kept, wrong, Some(head))
                .unwrap_err()
                .first_bad_seq,
            6
        );
    }

    #[test]
    fn the_same_events_give_the_same_chain() {
        let (a, ha) = chain_from(ChainPoint::default(), 5);
        let (b, hb) = chain_from(ChainPoint::default(), 5);
        assert_eq!(a, b);
        assert_eq!(ha, hb);
        assert_eq!(hash(&decode(&a[4].1).unwrap()), ha.hash);
    }
}
