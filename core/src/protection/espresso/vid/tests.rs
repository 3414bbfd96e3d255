//! Known answers and hostile inputs for [`super::payload_commitment`].
//!
//! `tests/vectors/espresso/vid.json` (see `VID.md` beside it) holds real HotShot commitments
//! from espresso-network's recorded protocol-0.3 chain and cases derived with the independent
//! Python reference `vid_ref.py`; every case is recomputed here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use base64::Engine;
use proptest::prelude::*;
use serde::Deserialize;

use super::*;

const VECTORS: &str = include_str!("../../../../../tests/vectors/espresso/vid.json");

#[derive(Deserialize)]
struct Vectors {
    cases: Vec<Case>,
    rejected_ns_tables: Vec<Rejected>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    origin: String,
    version: VidVersion,
    total_weight: u32,
    payload: String,
    ns_table: String,
    commitment: String,
    tagged: String,
}

#[derive(Deserialize)]
struct Rejected {
    name: String,
    payload: String,
    ns_table: String,
}

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s.strip_prefix("0x").unwrap()).unwrap()
}

fn params(total_weight: u32) -> VidParams {
    VidParams { total_weight }
}

fn ns_table(ends: &[u32]) -> Vec<u8> {
    let mut t = (ends.len() as u32).to_le_bytes().to_vec();
    for (i, end) in ends.iter().enumerate() {
        t.extend_from_slice(&(101 + i as u32).to_le_bytes());
        t.extend_from_slice(&end.to_le_bytes());
    }
    t
}

#[test]
fn vector_file() {
    let v: Vectors = serde_json::from_str(VECTORS).unwrap();
    let real = v.cases.iter().filter(|c| c.origin == "hotshot").count();
    assert!(real >= 7, "the real HotShot cases are missing");
    assert!(v.cases.iter().any(|c| c.version == VidVersion::AvidmGf2));
    for c in &v.cases {
        let got = payload_commitment(
            c.version,
            &unhex(&c.payload),
            &unhex(&c.ns_table),
            &params(c.total_weight),
        )
        .unwrap_or_else(|e| panic!("{}: {e}", c.name));
        assert_eq!(
            hex::encode(got.signed_bytes()),
            c.commitment[2..],
            "{}",
            c.name
        );
        assert_eq!(got.to_tagged(), c.tagged, "{}", c.name);
        assert_eq!(
            VidCommitment::from_tagged(&c.tagged).unwrap(),
            got,
            "{}",
            c.name
        );
    }
    for r in &v.rejected_ns_tables {
        for version in [VidVersion::AvidM, VidVersion::AvidmGf2] {
            let err =
                payload_commitment(version, &unhex(&r.payload), &unhex(&r.ns_table), &params(5))
                    .unwrap_err();
            assert!(matches!(err, VidError::NsTable(_)), "{}: {err}", r.name);
        }
    }
}

/// Real HotShot output, quoted here so the test stands without the vector file:
/// espresso-network `data/legacy-chains/v3/blocks.json`@892cae16, heights 1 and 71
/// (`payload.raw_payload`, `payload.ns_table`, `vid_common…total_weights`, `payload_commitment`).
#[test]
fn hotshot_legacy_chain_known_answers() {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.decode(s).unwrap();
    for (payload, table, weight, want) in [
        (
            "AQAAAAgAAAABAAAAAAAAAA==",
            "AQAAAGYAAAAQAAAA",
            5,
            "AvidMCommit~D45frEnCRV-vbz-tpAZE8dGl2FqY-W3qr2BcfKdIrVtK",
        ),
        (
            "AQAAAAgAAAAyAAAAAAAAAA==",
            "AQAAAGUAAAAQAAAA",
            1003,
            "AvidMCommit~xnUgSy6JV7EAqYl9SnkenY6KLxvytbMZvMKIuD_gqjDZ",
        ),
        (
            "",
            "AAAAAA==",
            1,
            "AvidMCommit~8JNU_HGmIatiu1NdaEgDp-VIdiHrlYRz49Cq6TE3kzZf",
        ),
    ] {
        let got = payload_commitment(
            VidVersion::AvidM,
            &b64(payload),
            &b64(table),
            &params(weight),
        )
        .unwrap();
        assert_eq!(got.to_tagged(), want);
    }
}

/// Real HotShot output for protocol 0.6 (AvidmGf2): espresso-network
/// `data/v6/new_protocol_messages.json`@18c80e56 — a VID share of a one-namespace block (its
/// `ns_commit` and `payload_commitment`, parameters `recovery_threshold 1, total_weights 1`,
/// the payload `[1,0,0,0,3,0,0,0,1,2,3]` with the block's `ns_table`) and the genesis header's
/// `payload_commitment` (empty payload, empty table).
#[test]
fn hotshot_v6_avidm_gf2_known_answers() {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.decode(s).unwrap();
    let payload = [1u8, 0, 0, 0, 3, 0, 0, 0, 1, 2, 3];
    let ns_commit = avidm_gf2::commit(&params(1), &payload).unwrap();
    assert_eq!(
        VidCommitment::new(VidVersion::AvidmGf2, ns_commit).to_tagged(),
        "AvidmGf2Commit~w-oXBlrpclni_EskEGeymNrefgkpQzD4Twu1jC1qk519"
    );
    for (payload, table, want) in [
        (
            &payload[..],
            b64("AQAAAAEAAAALAAAA"),
            "AvidmGf2Commit~9LKLS9Ujz0CW4SMEkrri7lN9W7b-ckN2MXiy50gHKdo4",
        ),
        (
            &[][..],
            b64("AAAAAA=="),
            "AvidmGf2Commit~qhlWCuUhwJGLdE1KYKb86uDfDCtkx_8goi2YjW-6kuQ2",
        ),
    ] {
        let got = payload_commitment(VidVersion::AvidmGf2, payload, &table, &params(1)).unwrap();
        assert_eq!(got.to_tagged(), want);
    }
}

#[test]
fn protocol_versions() {
    assert!(matches!(
        VidVersion::for_protocol(0, 2),
        Err(VidError::UnsupportedProtocol { major: 0, minor: 2 })
    ));
    assert_eq!(VidVersion::for_protocol(0, 3).unwrap(), VidVersion::AvidM);
    assert_eq!(VidVersion::for_protocol(0, 5).unwrap(), VidVersion::AvidM);
    assert_eq!(
        VidVersion::for_protocol(0, 6).unwrap(),
        VidVersion::AvidmGf2
    );
    assert_eq!(
        VidVersion::for_protocol(1, 0).unwrap(),
        VidVersion::AvidmGf2
    );
    assert_eq!(
        serde_json::to_string(&VidVersion::AvidM).unwrap(),
        "\"avid-m\""
    );
    assert_eq!(
        serde_json::to_string(&VidVersion::AvidmGf2).unwrap(),
        "\"avidm-gf2\""
    );
}

#[test]
fn serde_and_text_forms() {
    let c = payload_commitment(VidVersion::AvidmGf2, b"abc", &ns_table(&[3]), &params(7)).unwrap();
    let json = serde_json::to_string(&c).unwrap();
    assert!(json.contains("\"avidm-gf2\"") && json.contains("\"0x"));
    assert_eq!(serde_json::from_str::<VidCommitment>(&json).unwrap(), c);
    assert!(c.to_tagged().starts_with("AvidmGf2Commit~"));
    assert_eq!(VidCommitment::from_tagged(&c.to_tagged()).unwrap(), c);
    assert!(VidCommitment::from_tagged("HASH~AAAA").is_err());
    assert!(VidCommitment::from_tagged("AvidMCommit~AAAA").is_err());
    let bad = json.replace("0x", "");
    assert!(serde_json::from_str::<VidCommitment>(&bad).is_err());
}

/// The namespace ids are not part of the VID commitment; only the ends are.
#[test]
fn namespace_ids_are_not_committed() {
    let payload = [9u8; 40];
    let a = ns_table(&[10, 40]);
    let mut b = a.clone();
    b[4..8].copy_from_slice(&7u32.to_le_bytes());
    for v in [VidVersion::AvidM, VidVersion::AvidmGf2] {
        let x = payload_commitment(v, &payload, &a, &params(5)).unwrap();
        assert_eq!(x, payload_commitment(v, &payload, &b, &params(5)).unwrap());
        let other = payload_commitment(v, &payload, &ns_table(&[11, 40]), &params(5)).unwrap();
        assert_ne!(x, other, "the split changes the commitment");
        let w = payload_commitment(v, &payload, &a, &params(6)).unwrap();
        assert_ne!(x, w, "the weight changes the commitment");
    }
    let m = payload_commitment(VidVersion::AvidM, &payload, &a, &params(5)).unwrap();
    let g = payload_commitment(VidVersion::AvidmGf2, &payload, &a, &params(5)).unwrap();
    assert_ne!(m.signed_bytes(), g.signed_bytes());
}

#[test]
fn hostile_inputs_are_refused() {
    let big = vec![0u8; MAX_PAYLOAD_BYTES + 1];
    let table = ns_table(&[big.len() as u32]);
    assert!(matches!(
        payload_commitment(VidVersion::AvidM, &big, &table, &params(5)),
        Err(VidError::PayloadTooLarge { .. })
    ));
    for (v, w) in [
        (VidVersion::AvidM, 0),
        (VidVersion::AvidM, MAX_TOTAL_WEIGHT + 1),
        (VidVersion::AvidmGf2, 0),
        (VidVersion::AvidmGf2, u32::MAX),
    ] {
        assert!(matches!(
            payload_commitment(v, b"x", &ns_table(&[1]), &params(w)),
            Err(VidError::BadTotalWeight { .. })
        ));
    }
    let many: Vec<u32> = vec![0; MAX_NAMESPACES + 1];
    assert!(matches!(
        payload_commitment(VidVersion::AvidM, b"", &ns_table(&many), &params(5)),
        Err(VidError::NsTable(_))
    ));
    // A count that would overflow a naive length computation.
    let mut huge = u32::MAX.to_le_bytes().to_vec();
    huge.extend_from_slice(&[0; 8]);
    assert!(payload_commitment(VidVersion::AvidM, b"", &huge, &params(5)).is_err());
    // Empty payloads: an empty table and explicit empty namespaces both work.
    for table in [ns_table(&[]), ns_table(&[0]), ns_table(&[0, 0])] {
        payload_commitment(VidVersion::AvidmGf2, b"", &table, &params(2)).unwrap();
    }
    payload_commitment(
        VidVersion::AvidM,
        b"",
        &ns_table(&many[..MAX_NAMESPACES]),
        &params(3),
    )
    .unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Arbitrary bytes never panic: every outcome is a commitment or an error.
    #[test]
    fn arbitrary_inputs_never_panic(
        payload in proptest::collection::vec(any::<u8>(), 0..200),
        table in proptest::collection::vec(any::<u8>(), 0..40),
        weight in 0u32..40,
        gf2 in any::<bool>(),
    ) {
        let v = if gf2 { VidVersion::AvidmGf2 } else { VidVersion::AvidM };
        let _ = payload_commitment(v, &payload, &table, &params(weight));
        // A valid table over the same payload always succeeds for valid weights.
        let len = payload.len() as u32;
        let ok = payload_commitment(v, &payload, &ns_table(&[len / 2, len]), &params(weight.max(2)));
        prop_assert!(ok.is_ok());
    }
}
