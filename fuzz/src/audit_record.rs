//! Target `audit_record`: the canonical bytes of an audit record (`audit::decode`), as a node
//! reads them from a snapshot a peer sent, from its own store, and as `signerctl audit verify
//! --file` reads an export; and what is then done with a record (`audit::{hash, to_json}`,
//! `AuditRecord::summary`, `AuditFilter::matches`, the time forms).
//!
//! Owns: the properties. Must not: build chains of many records (the `peer_message` target
//! verifies the chains apply writes).
//!
//! Properties: decoding is strict, so an accepted record re-encodes to exactly its bytes and
//! its hash is the hash of those bytes; it verifies as a chain of one after the point it
//! names; the renderings never fail and the JSON carries the
//! bytes it came from; a filter on a record's own key, client and result matches it; the
//! record's time prints as RFC 3339 that parses back to the same second.

use signer_node::audit::{self, AuditFilter};

/// One fuzz input.
pub fn check(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = audit::parse_time(text);
    }
    let Ok(record) = audit::decode(data) else {
        return;
    };
    assert_eq!(
        audit::encode(&record),
        data,
        "a record decoded from non-canonical bytes"
    );
    let hash = audit::hash(&record);
    assert_eq!(hash, audit::hash_bytes(data));
    let json = audit::to_json(&record, &hash, data);
    assert_eq!(
        json.get("encoded").and_then(|v| v.as_str()),
        Some(hex::encode(data).as_str())
    );
    if let Some(before) = record.seq.checked_sub(1) {
        let anchor = audit::ChainPoint {
            seq: before,
            hash: record.prev_hash,
        };
        let head = audit::verify_chain(&[(record.seq, data.to_vec())], anchor, None)
            .expect("a record verifies after the point it names");
        assert_eq!(head.seq, record.seq);
        assert_eq!(head.hash, hash);
    }
    let _ = record.summary();
    let own = AuditFilter {
        key_id: record.event.key_id().map(str::to_owned),
        client: record.event.client().map(str::to_owned),
        result: Some(record.event.result().to_owned()),
        since_ms: Some(record.at_ms),
        until_ms: record.at_ms.checked_add(1),
    };
    assert!(
        own.matches(&record),
        "a record does not match its own filter"
    );
    let printed = audit::format_rfc3339(record.at_ms);
    if let Ok(ms) = audit::parse_time(&printed) {
        assert_eq!(ms, record.at_ms, "{printed} parses to another time");
    } else if record.at_ms < 253_402_300_800_000 {
        // Before year 10000 the printed form is RFC 3339 and must parse.
        panic!("{printed} (the time of a record) does not parse");
    }
}
