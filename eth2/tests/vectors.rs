//! Runs every fixture file in `tests/vectors/eth2-signing-roots/` (any file of format
//! `eth2-signing-roots/v1`, not only the generated ones): each request body is parsed as a
//! validator client sends it, and its signing root must equal the root an independent
//! implementation computed (generate.py, remerkleable), or it must be refused with the stated
//! error code. Every case also round-trips through the binary form and the JSON form.
//! Prints one PASS line per case (`cargo test -p eth2-messages --test vectors -- --nocapture`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::PathBuf;

use eth2_messages::{
    parse_web3signer, Eth2Error, Eth2Message, ForkName, NetworkSpec, VersionedAggregateAndProof,
};
use serde_json::Value;

const FORMAT: &str = "eth2-signing-roots/v1";

fn vector_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors/eth2-signing-roots")
}

fn network(v: &Value) -> NetworkSpec {
    match v {
        Value::String(name) => NetworkSpec::by_name(name).unwrap(),
        other => serde_json::from_value(other.clone()).expect("fixture network"),
    }
}

fn hex32(s: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s.trim_start_matches("0x"), &mut out).unwrap();
    out
}

/// The fork a case exercises, for the coverage check (`None`: fork-independent types).
fn fork_of_case(msg: &Eth2Message, net: &NetworkSpec) -> Option<ForkName> {
    match msg {
        Eth2Message::BlockV2 { block, .. } => Some(block.version()),
        Eth2Message::AggregateAndProofV2 { message, .. } => Some(message.version()),
        other => other
            .fork_info()
            .and_then(|fi| net.fork_of(fi.fork.current_version)),
    }
}

/// The parsed message, its computed root and the client-sent root.
type Outcome = (Eth2Message, [u8; 32], Option<[u8; 32]>);

fn root_of(body: &[u8], net: &NetworkSpec) -> Result<Outcome, Eth2Error> {
    let (msg, client_root) = parse_web3signer(body)?;
    let root = msg.signing_root(net)?;
    Ok((msg, root, client_root))
}

#[test]
fn every_fixture_file_matches_the_independent_roots() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(vector_dir())
        .expect("vector directory")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixture files");

    let mut covered: BTreeSet<(String, Option<ForkName>)> = BTreeSet::new();
    let mut passed = 0usize;
    for path in &files {
        let file = path.file_name().unwrap().to_string_lossy().to_string();
        let doc: Value = serde_json::from_slice(&std::fs::read(path).unwrap())
            .unwrap_or_else(|e| panic!("{file}: not JSON: {e}"));
        assert_eq!(
            doc["format"], FORMAT,
            "{file}: not a fixture of format {FORMAT}"
        );
        let net = network(&doc["network"]);
        let cases = doc["cases"]
            .as_array()
            .unwrap_or_else(|| panic!("{file}: no cases"));
        for case in cases {
            let name = case["name"].as_str().unwrap();
            let body = serde_json::to_vec(&case["request"]).unwrap();
            let outcome = root_of(&body, &net);
            if let Some(code) = case["error"].as_str() {
                let err = outcome
                    .err()
                    .unwrap_or_else(|| panic!("{file}: {name}: not refused"));
                assert_eq!(err.code(), code, "{file}: {name}: {err}");
                println!("PASS {file}: {name} (refused: {err})");
                passed += 1;
                continue;
            }
            let expected = hex32(case["signing_root"].as_str().unwrap());
            let (msg, root, client_root) =
                outcome.unwrap_or_else(|e| panic!("{file}: {name}: {e}"));
            assert_eq!(hex::encode(root), hex::encode(expected), "{file}: {name}");
            if let Some(client_root) = client_root {
                assert_eq!(client_root, expected, "{file}: {name}: request signingRoot");
            }

            // The binary form gives back the same message.
            let bytes = msg.to_bytes();
            assert_eq!(
                Eth2Message::from_bytes(&bytes).unwrap(),
                msg,
                "{file}: {name}"
            );
            // So does the JSON form we write.
            let json = msg.to_web3signer_json(Some(&root)).unwrap();
            let again = parse_web3signer(&serde_json::to_vec(&json).unwrap()).unwrap();
            assert_eq!(again, (msg.clone(), Some(root)), "{file}: {name}");

            covered.insert((msg.kind().to_string(), fork_of_case(&msg, &net)));
            println!("PASS {file}: {name} 0x{}", hex::encode(root));
            passed += 1;
        }
    }
    println!("{passed} fixture cases passed in {} files", files.len());
    assert_coverage(&covered);
}

/// Every type at every fork where it exists has at least one passing case.
fn assert_coverage(covered: &BTreeSet<(String, Option<ForkName>)>) {
    use ForkName::*;
    let all = ForkName::ALL.to_vec();
    let from_altair = all[1..].to_vec();
    let until_deneb = vec![Phase0, Altair, Bellatrix, Capella, Deneb];
    let expected: Vec<(&str, Vec<ForkName>)> = vec![
        ("BLOCK_V2", all.clone()),
        ("ATTESTATION", all.clone()),
        ("AGGREGATION_SLOT", all.clone()),
        ("AGGREGATE_AND_PROOF", until_deneb),
        ("AGGREGATE_AND_PROOF_V2", all.clone()),
        ("RANDAO_REVEAL", all.clone()),
        ("VOLUNTARY_EXIT", all),
        ("SYNC_COMMITTEE_MESSAGE", from_altair.clone()),
        ("SYNC_COMMITTEE_SELECTION_PROOF", from_altair.clone()),
        ("SYNC_COMMITTEE_CONTRIBUTION_AND_PROOF", from_altair),
    ];
    let mut missing = Vec::new();
    for (kind, forks) in expected {
        for fork in forks {
            if !covered.contains(&(kind.to_string(), Some(fork))) {
                missing.push(format!("{kind}@{fork}"));
            }
        }
    }
    for kind in ["VALIDATOR_REGISTRATION", "DEPOSIT"] {
        if !covered.contains(&(kind.to_string(), None)) {
            missing.push(kind.to_string());
        }
    }
    assert!(missing.is_empty(), "no fixture covers: {missing:?}");
}

/// The Electra aggregate carries the electra container and the phase0 one does not (a sanity
/// check that the fixtures exercise both forms, independent of the coverage table).
#[test]
fn fixtures_exercise_both_aggregate_forms() {
    let doc: Value =
        serde_json::from_slice(&std::fs::read(vector_dir().join("mainnet-electra.json")).unwrap())
            .unwrap();
    let electra = doc["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| parse_web3signer(&serde_json::to_vec(&c["request"]).unwrap()).ok())
        .filter(|(m, _)| {
            matches!(
                m,
                Eth2Message::AggregateAndProofV2 {
                    message: VersionedAggregateAndProof::Electra { .. },
                    ..
                }
            )
        })
        .count();
    assert!(electra >= 1);
}
