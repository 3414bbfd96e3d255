//! What operators read: records as JSON (one line each in exports) and one-line text, times as
//! RFC 3339 UTC, and the filters of `signerctl audit tail|export`.

use super::{AuditEvent, AuditRecord, Hash, NodeEvent};
use serde_json::{json, Value};

fn hex32(h: &Hash) -> String {
    format!("0x{}", hex::encode(h))
}

/// A record as JSON: its fields, `hash` (of the canonical encoding), `at` (RFC 3339) and
/// `encoded` (the canonical bytes, hex), from which `signerctl audit verify --file` recomputes
/// the chain.
pub fn to_json(record: &AuditRecord, hash: &Hash, encoded: &[u8]) -> Value {
    let event = match &record.event {
        AuditEvent::Sign(d) => json!({
            "request_id": d.request_id,
            "client": d.client,
            "key_id": d.key_id,
            "profile": d.profile,
            "kind": d.kind,
            "outcome": d.outcome.name(),
            "reason_code": d.reason_code,
            "reason": d.reason,
            "watermark": d.watermark.iter().map(|(k, v)| json!({k: v})).collect::<Vec<_>>(),
            "message": hex32(&d.message),
        }),
        AuditEvent::Admin {
            action,
            actor,
            approvers,
            result,
        } => json!({"action": action, "actor": actor, "approvers": approvers, "result": result}),
        AuditEvent::KeyChange {
            action,
            key_id,
            result,
        } => json!({"action": action, "key_id": key_id, "result": result}),
        AuditEvent::Membership { voters, learners } => {
            json!({"voters": voters, "learners": learners})
        }
        AuditEvent::Node(NodeEvent::KeyLoaded { node, key_id }) => {
            json!({"node": node, "key_id": key_id})
        }
        AuditEvent::Node(NodeEvent::KeyUnloaded {
            node,
            key_id,
            reason,
        }) => json!({"node": node, "key_id": key_id, "reason": reason}),
        AuditEvent::Node(NodeEvent::KmsFailure {
            node,
            key_id,
            detail,
        }) => json!({"node": node, "key_id": key_id, "detail": detail}),
        AuditEvent::Node(NodeEvent::AccessDenied {
            node,
            client,
            key_id,
            profile,
            reason,
        }) => json!({"node": node, "client": client, "key_id": key_id, "profile": profile,
                     "reason": reason}),
        AuditEvent::Compacted {
            up_to_seq,
            last_hash,
        } => json!({"up_to_seq": up_to_seq, "last_hash": hex32(last_hash)}),
    };
    json!({
        "seq": record.seq,
        "at": format_rfc3339(record.at_ms),
        "at_ms": record.at_ms,
        "log_index": record.log_index,
        "type": record.event.type_name(),
        "event": event,
        "prev_hash": hex32(&record.prev_hash),
        "hash": hex32(hash),
        "encoded": hex::encode(encoded),
    })
}

impl AuditRecord {
    /// One line of text: seq, time, type and the essentials.
    pub fn summary(&self) -> String {
        let what = match &self.event {
            AuditEvent::Sign(d) => {
                let wm: Vec<String> = d
                    .watermark
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                let mut s = format!(
                    "{} {} key={} client={} {} {} message={}",
                    d.outcome.name(),
                    d.profile,
                    d.key_id,
                    d.client,
                    d.kind,
                    wm.join(" "),
                    hex32(&d.message)
                );
                if !d.reason_code.is_empty() {
                    s.push_str(&format!(" reason={}: {}", d.reason_code, d.reason));
                }
                if !d.request_id.is_empty() {
                    s.push_str(&format!(" request_id={}", d.request_id));
                }
                s
            }
            AuditEvent::Admin {
                action,
                actor,
                approvers,
                result,
            } => format!(
                "{action} by {actor} approved by [{}]: {result}",
                approvers.join(", ")
            ),
            AuditEvent::KeyChange {
                action,
                key_id,
                result,
            } => format!("{action} key={key_id}: {result}"),
            AuditEvent::Membership { voters, learners } => {
                format!("voters={voters:?} learners={learners:?}")
            }
            AuditEvent::Node(NodeEvent::KeyLoaded { node, key_id }) => {
                format!("node-{node} key={key_id}")
            }
            AuditEvent::Node(NodeEvent::KeyUnloaded {
                node,
                key_id,
                reason,
            }) => format!("node-{node} key={key_id} ({reason})"),
            AuditEvent::Node(NodeEvent::KmsFailure {
                node,
                key_id,
                detail,
            }) => format!("node-{node} key={key_id}: {detail}"),
            AuditEvent::Node(NodeEvent::AccessDenied {
                node,
                client,
                key_id,
                profile,
                reason,
            }) => format!("node-{node} client={client} key={key_id} profile={profile}: {reason}"),
            AuditEvent::Compacted {
                up_to_seq,
                last_hash,
            } => format!(
                "records up to {up_to_seq} dropped; anchor {}",
                hex32(last_hash)
            ),
        };
        format!(
            "{:>8}  {}  {:<13} {what}",
            self.seq,
            format_rfc3339(self.at_ms),
            self.event.type_name()
        )
    }
}

/// Which records to show: every set field must match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Records about this key.
    pub key_id: Option<String>,
    /// Records about this client (or admin) identity.
    pub client: Option<String>,
    /// Records with this result word (`signed`, `resigned`, `refused`, `key_inactive`,
    /// `denied`, `failed`, `ok`, …).
    pub result: Option<String>,
    /// Records at or after this time (ms since the Unix epoch).
    pub since_ms: Option<u64>,
    /// Records before this time.
    pub until_ms: Option<u64>,
}

impl AuditFilter {
    /// True when `record` passes every set condition.
    pub fn matches(&self, record: &AuditRecord) -> bool {
        let e = &record.event;
        self.key_id.as_deref().is_none_or(|k| e.key_id() == Some(k))
            && self.client.as_deref().is_none_or(|c| e.client() == Some(c))
            && self.result.as_deref().is_none_or(|r| e.result() == r)
            && self.since_ms.is_none_or(|t| record.at_ms >= t)
            && self.until_ms.is_none_or(|t| record.at_ms < t)
    }
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `ms` since the Unix epoch as RFC 3339 UTC with milliseconds, e.g.
/// `2024-05-01T12:00:00.123Z`.
pub fn format_rfc3339(ms: u64) -> String {
    let secs = (ms / 1000) as i64;
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        s / 3600,
        s % 3600 / 60,
        s % 60,
        ms % 1000
    )
}

/// Parse a time given as milliseconds since the Unix epoch (digits only) or as RFC 3339
/// (`YYYY-MM-DDTHH:MM:SS[.fff](Z|±HH:MM)`, or a bare `YYYY-MM-DD` for midnight UTC). Years
/// are RFC 3339's 0000 to 9999 and offsets at most 23:59, so the arithmetic cannot overflow.
pub fn parse_time(text: &str) -> Result<u64, String> {
    let t = text.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return t.parse().map_err(|e| format!("{t:?}: {e}"));
    }
    let bad = || format!("{t:?}: expected RFC 3339 (2024-05-01T12:00:00Z) or unix milliseconds");
    let num = |s: &str| -> Result<i64, String> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        s.parse::<i64>().map_err(|_| bad())
    };
    let (date, rest) = match t.split_once(['T', 't', ' ']) {
        Some((d, r)) => (d, Some(r)),
        None => (t, None),
    };
    let parts: Vec<&str> = date.split('-').collect();
    let [y, mo, d] = parts.as_slice() else {
        return Err(bad());
    };
    let (y, mo, d) = (num(y)?, num(mo)?, num(d)?);
    if y > 9999 || !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return Err(bad());
    }
    let days = days_from_civil(y, mo as u32, d as u32);
    let mut ms = days * 86_400_000;
    if let Some(rest) = rest {
        let (clock, offset_min) = if let Some(c) = rest.strip_suffix(['Z', 'z']) {
            (c, 0)
        } else if let Some(i) = rest.rfind(['+', '-']) {
            let (c, off) = rest.split_at(i);
            let sign = if off.starts_with('-') { -1 } else { 1 };
            let (hh, mm) = off[1..].split_once(':').ok_or_else(bad)?;
            let (hh, mm) = (num(hh)?, num(mm)?);
            if hh > 23 || mm > 59 {
                return Err(bad());
            }
            (c, sign * (hh * 60 + mm))
        } else {
            return Err(bad());
        };
        let (hms, frac) = match clock.split_once('.') {
            Some((a, f)) => (a, Some(f)),
            None => (clock, None),
        };
        let hms: Vec<&str> = hms.split(':').collect();
        let [h, mi, s] = hms.as_slice() else {
            return Err(bad());
        };
        let (h, mi, s) = (num(h)?, num(mi)?, num(s)?);
        if h > 23 || mi > 59 || s > 60 {
            return Err(bad());
        }
        let frac_ms = match frac {
            Some(f) => {
                let digits: String = f.chars().chain("000".chars()).take(3).collect();
                num(&digits)?
            }
            None => 0,
        };
        ms += ((h * 60 + mi) * 60 + s) * 1000 + frac_ms - offset_min * 60_000;
    }
    u64::try_from(ms).map_err(|_| bad())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip() {
        for (text, ms) in [
            ("1970-01-01T00:00:00.000Z", 0),
            ("2024-02-29T23:59:59.999Z", 1_709_251_199_999),
            ("2000-03-01T00:00:00.000Z", 951_868_800_000),
        ] {
            assert_eq!(format_rfc3339(ms), text);
            assert_eq!(parse_time(text), Ok(ms));
        }
        assert_eq!(parse_time("1709251199999"), Ok(1_709_251_199_999));
        assert_eq!(parse_time("2024-02-29"), Ok(1_709_164_800_000));
        assert_eq!(
            parse_time("2024-03-01T01:00:00+01:00"),
            Ok(1_709_251_200_000)
        );
        assert!(parse_time("yesterday").is_err());
        assert!(parse_time("2024-13-01").is_err());
    }

    /// Found by the `audit_record` fuzz target: a year or an offset past RFC 3339's ranges
    /// overflowed the millisecond arithmetic (a panic in `signerctl audit --since`).
    #[test]
    fn times_out_of_range_are_refused() {
        for text in [
            "10000-01-01",
            "9223372036854775807-01-01",
            "584554051-01-01T00:00:00.000Z",
            "2024-01-01T00:00:00+9223372036854775807:00",
            "2024-01-01T00:00:00+24:00",
            "2024-01-01T00:00:00-00:60",
        ] {
            assert!(parse_time(text).is_err(), "{text}");
        }
        assert_eq!(
            parse_time("9999-12-31T23:59:59.999Z"),
            Ok(253_402_300_799_999)
        );
        assert_eq!(
            parse_time("1970-01-01T00:00:00+23:59"),
            Err(
                "\"1970-01-01T00:00:00+23:59\": expected RFC 3339 (2024-05-01T12:00:00Z) or unix \
             milliseconds"
                    .to_owned()
            )
        );
    }
}
