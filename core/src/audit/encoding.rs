//! The canonical byte encoding of an [`AuditRecord`] (version 1).
//!
//! Length-prefixed binary, fields in a fixed order, chosen over JSON because JSON has no single
//! canonical form (escaping, number formats and key order vary between serializers and their
//! versions) and a hash must never change with a dependency upgrade:
//!
//! ```text
//! record   = MAGIC(8) seq:u64 prev_hash:32 at_ms:u64 log_index:u64 event
//! event    = tag:u8 fields…       (tags below; fields in declaration order)
//! u64      = 8 bytes big-endian          str  = len:u32 big-endian, UTF-8 bytes
//! list<T>  = count:u32 big-endian, T…    pair = str u64
//! ```
//! Tags: 1 sign, 2 admin, 3 key-change, 4 membership, 5 key-loaded, 6 key-unloaded,
//! 7 kms-failure, 8 access-denied, 9 compacted. Sign outcomes: 1 signed, 2 resigned,
//! 3 refused, 4 key_inactive, 5 paused.

use super::{AuditEvent, AuditRecord, Hash, NodeEvent, SignDecision, SignResult};

/// The first 8 bytes of every encoded record: format name and version.
pub const MAGIC: &[u8; 8] = b"QSAUDIT1";

/// Longest string or list accepted by [`decode`].
const MAX_LEN: usize = 1 << 20;

/// Why bytes are not a canonically encoded record.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not an audit record: {0}")]
pub struct DecodeError(pub String);

struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn len(&mut self, n: usize) {
        // Strings and lists are bounded far below u32::MAX by the services that make them.
        self.0
            .extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes());
    }
    fn str(&mut self, s: &str) {
        self.len(s.len());
        self.0.extend_from_slice(s.as_bytes());
    }
    fn hash(&mut self, h: &Hash) {
        self.0.extend_from_slice(h);
    }
    fn strs(&mut self, v: &[String]) {
        self.len(v.len());
        v.iter().for_each(|s| self.str(s));
    }
    fn ids(&mut self, v: &[u64]) {
        self.len(v.len());
        v.iter().for_each(|&x| self.u64(x));
    }
}

/// The canonical encoding of `record`.
pub fn encode(record: &AuditRecord) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(256));
    w.0.extend_from_slice(MAGIC);
    w.u64(record.seq);
    w.hash(&record.prev_hash);
    w.u64(record.at_ms);
    w.u64(record.log_index);
    match &record.event {
        AuditEvent::Sign(d) => {
            w.u8(1);
            w.str(&d.request_id);
            w.str(&d.client);
            w.str(&d.key_id);
            w.str(&d.profile);
            w.str(&d.kind);
            w.u8(match d.outcome {
                SignResult::Signed => 1,
                SignResult::Resigned => 2,
                SignResult::Refused => 3,
                SignResult::KeyInactive => 4,
                SignResult::Paused => 5,
            });
            w.str(&d.reason_code);
            w.str(&d.reason);
            w.len(d.watermark.len());
            for (name, value) in &d.watermark {
                w.str(name);
                w.u64(*value);
            }
            w.hash(&d.message);
        }
        AuditEvent::Admin {
            action,
            actor,
            approvers,
            result,
        } => {
            w.u8(2);
            w.str(action);
            w.str(actor);
            w.strs(approvers);
            w.str(result);
        }
        AuditEvent::KeyChange {
            action,
            key_id,
            result,
        } => {
            w.u8(3);
            w.str(action);
            w.str(key_id);
            w.str(result);
        }
        AuditEvent::Membership { voters, learners } => {
            w.u8(4);
            w.ids(voters);
            w.ids(learners);
        }
        AuditEvent::Node(NodeEvent::KeyLoaded { node, key_id }) => {
            w.u8(5);
            w.u64(*node);
            w.str(key_id);
        }
        AuditEvent::Node(NodeEvent::KeyUnloaded {
            node,
            key_id,
            reason,
        }) => {
            w.u8(6);
            w.u64(*node);
            w.str(key_id);
            w.str(reason);
        }
        AuditEvent::Node(NodeEvent::KmsFailure {
            node,
            key_id,
            detail,
        }) => {
            w.u8(7);
            w.u64(*node);
            w.str(key_id);
            w.str(detail);
        }
        AuditEvent::Node(NodeEvent::AccessDenied {
            node,
            client,
            key_id,
            profile,
            reason,
        }) => {
            w.u8(8);
            w.u64(*node);
            w.str(client);
            w.str(key_id);
            w.str(profile);
            w.str(reason);
        }
        AuditEvent::Compacted {
            up_to_seq,
            last_hash,
        } => {
            w.u8(9);
            w.u64(*up_to_seq);
            w.hash(last_hash);
        }
    }
    w.0
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], DecodeError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| DecodeError(format!("truncated at byte {}", self.at)))?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(b))
    }
    fn len(&mut self) -> Result<usize, DecodeError> {
        let mut b = [0u8; 4];
        b.copy_from_slice(self.take(4)?);
        let n = u32::from_be_bytes(b) as usize;
        if n > MAX_LEN {
            return Err(DecodeError(format!("length {n} at byte {}", self.at - 4)));
        }
        Ok(n)
    }
    fn str(&mut self) -> Result<String, DecodeError> {
        let n = self.len()?;
        let at = self.at;
        String::from_utf8(self.take(n)?.to_vec())
            .map_err(|_| DecodeError(format!("invalid UTF-8 at byte {at}")))
    }
    fn hash(&mut self) -> Result<Hash, DecodeError> {
        let mut h = [0u8; 32];
        h.copy_from_slice(self.take(32)?);
        Ok(h)
    }
    fn strs(&mut self) -> Result<Vec<String>, DecodeError> {
        (0..self.len()?).map(|_| self.str()).collect()
    }
    fn ids(&mut self) -> Result<Vec<u64>, DecodeError> {
        (0..self.len()?).map(|_| self.u64()).collect()
    }
}

/// Decode a canonically encoded record; anything else (other version, trailing bytes,
/// unknown tags, invalid UTF-8) is an error.
pub fn decode(bytes: &[u8]) -> Result<AuditRecord, DecodeError> {
    let mut r = Reader { bytes, at: 0 };
    if r.take(MAGIC.len())? != MAGIC {
        return Err(DecodeError("unknown format (magic)".into()));
    }
    let seq = r.u64()?;
    let prev_hash = r.hash()?;
    let at_ms = r.u64()?;
    let log_index = r.u64()?;
    let tag = r.u8()?;
    let event = match tag {
        1 => {
            let request_id = r.str()?;
            let client = r.str()?;
            let key_id = r.str()?;
            let profile = r.str()?;
            let kind = r.str()?;
            let outcome = match r.u8()? {
                1 => SignResult::Signed,
                2 => SignResult::Resigned,
                3 => SignResult::Refused,
                4 => SignResult::KeyInactive,
                5 => SignResult::Paused,
                other => return Err(DecodeError(format!("unknown sign outcome {other}"))),
            };
            let reason_code = r.str()?;
            let reason = r.str()?;
            let watermark = (0..r.len()?)
                .map(|_| Ok((r.str()?, r.u64()?)))
                .collect::<Result<Vec<_>, DecodeError>>()?;
            let message = r.hash()?;
            AuditEvent::Sign(SignDecision {
                request_id,
                client,
                key_id,
                profile,
                kind,
                outcome,
                reason_code,
                reason,
                watermark,
                message,
            })
        }
        2 => AuditEvent::Admin {
            action: r.str()?,
            actor: r.str()?,
            approvers: r.strs()?,
            result: r.str()?,
        },
        3 => AuditEvent::KeyChange {
            action: r.str()?,
            key_id: r.str()?,
            result: r.str()?,
        },
        4 => AuditEvent::Membership {
            voters: r.ids()?,
            learners: r.ids()?,
        },
        5 => AuditEvent::Node(NodeEvent::KeyLoaded {
            node: r.u64()?,
            key_id: r.str()?,
        }),
        6 => AuditEvent::Node(NodeEvent::KeyUnloaded {
            node: r.u64()?,
            key_id: r.str()?,
            reason: r.str()?,
        }),
        7 => AuditEvent::Node(NodeEvent::KmsFailure {
            node: r.u64()?,
            key_id: r.str()?,
            detail: r.str()?,
        }),
        8 => AuditEvent::Node(NodeEvent::AccessDenied {
            node: r.u64()?,
            client: r.str()?,
            key_id: r.str()?,
            profile: r.str()?,
            reason: r.str()?,
        }),
        9 => AuditEvent::Compacted {
            up_to_seq: r.u64()?,
            last_hash: r.hash()?,
        },
        other => return Err(DecodeError(format!("unknown event tag {other}"))),
    };
    if r.at != bytes.len() {
        return Err(DecodeError(format!(
            "{} trailing bytes",
            bytes.len() - r.at
        )));
    }
    Ok(AuditRecord {
        seq,
        prev_hash,
        at_ms,
        log_index,
        event,
    })
}
