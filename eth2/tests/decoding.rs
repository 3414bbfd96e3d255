//! Decoding hostile or malformed input: each mistake maps to its exact `Eth2Error` variant,
//! naming the field; nothing panics; the binary form round-trips every message (proptest).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use eth2_messages::{parse_web3signer, Eth2Error, Eth2Message, ForkName, WIRE_FORMAT_VERSION};
use proptest::prelude::*;
use serde_json::{json, Value};

fn fork_info() -> Value {
    json!({"fork": {"previous_version": "0x04000000", "current_version": "0x05000000",
                    "epoch": "364032"},
           "genesis_validators_root":
               "0x4b363db94e286120d76eb905340fdd4e54bfe9f06bf33ff6cf5ad27f511bfe95"})
}

fn attestation() -> Value {
    json!({"type": "ATTESTATION", "fork_info": fork_info(),
           "attestation": {"slot": "11648032", "index": "0",
               "beacon_block_root": format!("0x{}", "ab".repeat(32)),
               "source": {"epoch": "364000", "root": format!("0x{}", "01".repeat(32))},
               "target": {"epoch": "364001", "root": format!("0x{}", "02".repeat(32))}}})
}

type Parsed = (Eth2Message, Option<[u8; 32]>);
type Mutation = fn(&mut Value);

fn parse(v: &Value) -> Result<Parsed, Eth2Error> {
    parse_web3signer(&serde_json::to_vec(v).unwrap())
}

fn invalid(field: &str) -> impl Fn(&Eth2Error) -> bool + '_ {
    move |e| matches!(e, Eth2Error::InvalidField { field: f, .. } if f == field)
}

fn missing(field: &str) -> Eth2Error {
    Eth2Error::MissingField {
        field: field.into(),
    }
}

#[test]
fn well_formed_attestation_parses_with_quirks_tolerated() {
    let (msg, root) = parse(&attestation()).unwrap();
    assert_eq!(msg.kind(), "ATTESTATION");
    assert_eq!(root, None);
    // Lower-case type, a bare JSON integer, unknown fields, the snake_case root alias.
    let mut v = attestation();
    v["type"] = json!("attestation");
    v["attestation"]["index"] = json!(0);
    v["extra"] = json!({"ignored": true});
    v["signing_root"] = json!(format!("0x{}", "cd".repeat(32)));
    let (again, root) = parse(&v).unwrap();
    assert_eq!(again, msg);
    assert_eq!(root, Some([0xcd; 32]));
}

#[test]
fn json_errors_name_the_field() {
    let err = |v: &Value| parse(v).unwrap_err();
    assert!(matches!(
        parse_web3signer(b"{not json").unwrap_err(),
        Eth2Error::MalformedJson(_)
    ));
    assert!(matches!(
        parse_web3signer(b"[1, 2]").unwrap_err(),
        Eth2Error::MalformedJson(_)
    ));
    assert_eq!(err(&json!({"fork_info": fork_info()})), missing("type"));
    assert!(invalid("type")(&err(&json!({"type": 7}))));
    assert_eq!(
        err(&json!({"type": "SIGN_ANYTHING"})),
        Eth2Error::UnknownType("SIGN_ANYTHING".into())
    );
    assert_eq!(
        err(&json!({"type": "BLOCK", "fork_info": fork_info()})),
        Eth2Error::UnknownType("BLOCK".into())
    );

    let mut v = attestation();
    v.as_object_mut().unwrap().remove("fork_info");
    assert_eq!(err(&v), missing("fork_info"));
    let mut v = attestation();
    v["attestation"] = Value::Null;
    assert_eq!(err(&v), missing("attestation"));
    let mut v = attestation();
    v["attestation"].as_object_mut().unwrap().remove("target");
    assert_eq!(err(&v), missing("attestation.target"));

    let cases: [(&str, Mutation); 7] = [
        ("attestation.source.root", |v| {
            v["attestation"]["source"]["root"] = json!("0x0102")
        }),
        ("attestation.slot", |v| {
            v["attestation"]["slot"] = json!("-1")
        }),
        ("attestation.slot", |v| {
            v["attestation"]["slot"] = json!("18446744073709551616")
        }),
        ("attestation.index", |v| {
            v["attestation"]["index"] = json!(1.5)
        }),
        ("fork_info.fork.current_version", |v| {
            v["fork_info"]["fork"]["current_version"] = json!("0x0500000")
        }),
        ("signingRoot", |v| v["signingRoot"] = json!("0x1234")),
        ("signing_root", |v| {
            v["signingRoot"] = json!(format!("0x{}", "01".repeat(32)));
            v["signing_root"] = json!(format!("0x{}", "02".repeat(32)));
        }),
    ];
    for (field, mutate) in cases {
        let mut v = attestation();
        mutate(&mut v);
        let e = err(&v);
        assert!(invalid(field)(&e), "{field}: got {e:?}");
    }
}

#[test]
fn versioned_payload_errors_name_the_path() {
    let block = |version: &str, key: &str| {
        json!({"type": "BLOCK_V2", "fork_info": fork_info(),
               "beacon_block": {"version": version, key: {"slot": "1"}}})
    };
    let err = |v: Value| parse(&v).unwrap_err();
    assert_eq!(
        err(json!({"type": "BLOCK_V2", "fork_info": fork_info(), "beacon_block": {}})),
        missing("beacon_block.version")
    );
    assert!(invalid("beacon_block.version")(&err(block(
        "GLOAS",
        "block_header"
    ))));
    assert_eq!(
        err(block("ELECTRA", "block")),
        missing("beacon_block.block_header")
    );
    assert_eq!(
        err(block("ELECTRA", "block_header")),
        missing("beacon_block.block_header.proposer_index")
    );
    assert_eq!(
        err(
            json!({"type": "AGGREGATE_AND_PROOF_V2", "fork_info": fork_info(),
                   "aggregate_and_proof": {"version": "ELECTRA"}})
        ),
        missing("aggregate_and_proof.data")
    );
}

#[test]
fn nested_list_errors_carry_indices() {
    let doc: Value = serde_json::from_slice(
        &std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../tests/vectors/eth2-signing-roots/mainnet-phase0.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let block = doc["cases"][0]["request"].clone();
    assert_eq!(block["beacon_block"]["version"], "PHASE0");
    let mut v = block.clone();
    v["beacon_block"]["block"]["body"]["attestations"][0]["aggregation_bits"] = json!("0x00");
    let e = parse(&v).unwrap_err();
    assert!(
        invalid("beacon_block.block.body.attestations[0].aggregation_bits")(&e),
        "{e:?}"
    );
    let mut v = block;
    v["beacon_block"]["block"]["body"]["deposits"][0]["proof"]
        .as_array_mut()
        .unwrap()
        .pop();
    let e = parse(&v).unwrap_err();
    assert!(
        invalid("beacon_block.block.body.deposits[0].proof")(&e),
        "{e:?}"
    );
}

fn sample() -> Eth2Message {
    parse(&attestation()).unwrap().0
}

#[test]
fn binary_errors_are_exact() {
    let good = sample().to_bytes();
    assert_eq!(good[0], WIRE_FORMAT_VERSION);
    assert_eq!(
        Eth2Message::from_bytes(&[]),
        Err(Eth2Error::Truncated {
            needed: 1,
            available: 0
        })
    );
    let mut v = good.clone();
    v[0] = 2;
    assert_eq!(
        Eth2Message::from_bytes(&v),
        Err(Eth2Error::UnsupportedFormat(2))
    );
    for tag in [0u8, 13, 255] {
        let mut v = good.clone();
        v[1] = tag;
        assert_eq!(Eth2Message::from_bytes(&v), Err(Eth2Error::UnknownTag(tag)));
    }
    let mut v = good.clone();
    v.push(0);
    assert_eq!(
        Eth2Message::from_bytes(&v),
        Err(Eth2Error::TrailingBytes(1))
    );
    let v = &good[..good.len() - 1];
    assert!(matches!(
        Eth2Message::from_bytes(v),
        Err(Eth2Error::Truncated { .. })
    ));
    // A length prefix larger than the payload.
    let len_at = 2 + 48;
    let mut v = good.clone();
    v[len_at] += 1;
    assert!(matches!(
        Eth2Message::from_bytes(&v),
        Err(Eth2Error::Truncated { .. })
    ));
    // A consistent length prefix around a payload of the wrong size for its container.
    let mut v = good[..len_at].to_vec();
    v.extend_from_slice(&7u32.to_le_bytes());
    v.extend_from_slice(&[0u8; 7]);
    assert!(matches!(
        Eth2Message::from_bytes(&v),
        Err(Eth2Error::InvalidSsz {
            what: "ATTESTATION",
            ..
        })
    ));
}

#[test]
fn binary_fork_tag_is_checked() {
    let block = parse(&json!({"type": "BLOCK_V2", "fork_info": fork_info(),
        "beacon_block": {"version": "DENEB", "block_header": {"slot": "1", "proposer_index": "2",
            "parent_root": format!("0x{}", "00".repeat(32)),
            "state_root": format!("0x{}", "00".repeat(32)),
            "body_root": format!("0x{}", "00".repeat(32))}}}))
    .unwrap()
    .0;
    let mut v = block.to_bytes();
    assert_eq!(v[2], ForkName::Deneb.tag());
    v[2] = 7;
    assert_eq!(
        Eth2Message::from_bytes(&v),
        Err(Eth2Error::UnknownForkTag(7))
    );
    // A header payload under a PHASE0 tag is not a phase0 block.
    v[2] = ForkName::Phase0.tag();
    assert!(matches!(
        Eth2Message::from_bytes(&v),
        Err(Eth2Error::InvalidSsz { .. })
    ));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, .. ProptestConfig::default() })]

    #[test]
    fn binary_and_json_forms_round_trip(msg in common::message()) {
        let bytes = msg.to_bytes();
        prop_assert_eq!(Eth2Message::from_bytes(&bytes).unwrap(), msg.clone());
        let json = msg.to_web3signer_json(None).unwrap();
        let (again, root) = parse_web3signer(&serde_json::to_vec(&json).unwrap()).unwrap();
        prop_assert_eq!(again, msg);
        prop_assert_eq!(root, None);
    }

    #[test]
    fn mutated_bytes_never_panic_and_decode_canonically(
        msg in common::message(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        cut in any::<prop::sample::Index>(),
    ) {
        let good = msg.to_bytes();
        let mut flipped = good.clone();
        let i = at.index(flipped.len());
        flipped[i] ^= byte | 1;
        for input in [flipped, good[..cut.index(good.len())].to_vec()] {
            if let Ok(decoded) = Eth2Message::from_bytes(&input) {
                prop_assert_eq!(decoded.to_bytes(), input);
            }
        }
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = Eth2Message::from_bytes(&bytes);
        let _ = parse_web3signer(&bytes);
    }

    #[test]
    fn mutated_json_never_panics(msg in common::message(), at in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut body = serde_json::to_vec(&msg.to_web3signer_json(None).unwrap()).unwrap();
        let i = at.index(body.len());
        body[i] = byte;
        let _ = parse_web3signer(&body);
    }
}
