//! Target `revocation`: what names a certificate and who a certificate names
//! (`admin::revocation`: `Fingerprint::{parse, of}`, `certificate_identity`,
//! `describe_certificate`; `codec::fingerprint_from_pb`; the node id a peer certificate names,
//! `tls::node_id_from_identity`). The same bytes are read as a fingerprint text, a DER
//! certificate and an identity.
//!
//! Owns: naive references written here from the documented forms (a fingerprint is 64 hex
//! digits, optionally `0x`, either case, optionally `:` between bytes; a node identity is
//! exactly what `node_identity` prints for an id of 1 or more) and the properties. Must not:
//! verify chains (rustls does at the handshake).
//!
//! Properties: the fingerprint parser accepts exactly what the reference accepts, with the
//! same bytes, and every printed form parses back; a fingerprint is SHA-256 of the DER bytes,
//! and its protobuf form is accepted exactly at 32 bytes; reading a certificate's identity is
//! deterministic and its description names it; the node id reading agrees with the reference.

use sha2::{Digest, Sha256};
use signer_node::admin::codec::fingerprint_from_pb;
use signer_node::admin::revocation::describe_certificate;
use signer_node::admin::{certificate_identity, Fingerprint};
use signer_node::tls::{node_id_from_identity, node_identity};

/// The documented fingerprint forms, read without the product's code.
fn reference_fingerprint(text: &str) -> Option<[u8; 32]> {
    let t = text.trim();
    let t = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .unwrap_or(t);
    let pairs: Vec<&str> = if t.contains(':') {
        t.split(':').collect()
    } else {
        if t.len() != 64 || !t.is_ascii() {
            return None;
        }
        (0..32).map(|i| &t[2 * i..2 * i + 2]).collect()
    };
    if pairs.len() != 32 {
        return None;
    }
    let mut out = [0u8; 32];
    for (o, p) in out.iter_mut().zip(pairs) {
        if p.len() != 2 || !p.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        *o = u8::from_str_radix(p, 16).ok()?;
    }
    Some(out)
}

/// One fuzz input.
pub fn check(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let parsed = Fingerprint::parse(text).ok().map(|f| f.0);
        assert_eq!(
            parsed,
            reference_fingerprint(text),
            "fingerprint parsing disagrees with the documented forms for {text:?}"
        );
        if let Some(bytes) = parsed {
            let f = Fingerprint(bytes);
            assert_eq!(f.to_string(), f.to_hex());
            let upper_colons =
                f.0.iter()
                    .map(|b| format!("{b:02X}"))
                    .collect::<Vec<_>>()
                    .join(":");
            for form in [f.to_hex(), format!("0x{}", f.to_hex()), upper_colons] {
                assert_eq!(
                    Fingerprint::parse(&form).ok(),
                    Some(f),
                    "{form} does not parse"
                );
            }
        }
        let reference_id = text
            .strip_prefix("node-")
            .and_then(|d| d.parse::<u64>().ok())
            .filter(|id| *id >= 1 && node_identity(*id) == text);
        assert_eq!(
            node_id_from_identity(text),
            reference_id,
            "node id of {text:?}"
        );
    }

    let digest: [u8; 32] = Sha256::digest(data).into();
    assert_eq!(
        Fingerprint::of(data).0,
        digest,
        "a fingerprint is SHA-256 of the DER"
    );
    match fingerprint_from_pb(data) {
        Ok(f) => assert_eq!(f.0.as_slice(), data),
        Err(_) => assert_ne!(data.len(), 32, "32 bytes are a fingerprint"),
    }
    let identity = certificate_identity(data);
    assert_eq!(
        identity,
        certificate_identity(data),
        "identity is not deterministic"
    );
    let described = describe_certificate(data);
    match identity {
        Some(name) => assert!(described.contains(&format!("{name:?}"))),
        None if data.is_empty() => assert!(described.contains("not given")),
        None => assert_eq!(described, "not a readable certificate"),
    }
}
