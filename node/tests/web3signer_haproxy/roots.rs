//! The signing roots the HAProxy test checks signatures against, computed by the test from the
//! JSON it sends.
//!
//! Owns: reading a Web3Signer `BLOCK_V2` (header form) or `ATTESTATION` body's fields, choosing
//! the domain, and the check that these roots agree with the remerkleable vectors. The SSZ
//! itself (header and attestation-data roots, domain, signing root) is the oracle's
//! implementation from the consensus specs.
//!
//! Must not: call the signer's digest code (`eth2_messages`, `signer_node`), nor carry a second
//! copy of the SSZ helpers the oracle already has.

use crate::oracle;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// `DOMAIN_BEACON_PROPOSER` and `DOMAIN_BEACON_ATTESTER`, as the oracle's `domain` takes them.
const DOMAIN_BEACON_PROPOSER: u32 = 0;
const DOMAIN_BEACON_ATTESTER: u32 = 1;

/// A uint64 field, as a decimal string or a JSON number.
fn uint(v: &Value) -> u64 {
    match v {
        Value::String(s) => s.parse().unwrap(),
        other => other.as_u64().unwrap(),
    }
}

/// A fixed-size `0x…` hex field.
fn hex_bytes<const N: usize>(v: &Value) -> [u8; N] {
    let text = v.as_str().unwrap();
    hex::decode(text.trim_start_matches("0x"))
        .unwrap()
        .try_into()
        .unwrap()
}

/// A checkpoint's `(epoch, root)`, as `oracle::attestation_data_root` takes it.
fn checkpoint(cp: &Value) -> (u64, [u8; 32]) {
    (uint(&cp["epoch"]), hex_bytes(&cp["root"]))
}

/// The signing root of a Web3Signer `BLOCK_V2` (header form) or `ATTESTATION` body, from the
/// consensus specs alone: `compute_signing_root(object, compute_domain(type, version, gvr))`
/// with `version` chosen by `get_domain` (the previous version before `fork.epoch`). `None` for
/// other bodies.
pub fn signing_root_of(body: &Value) -> Option<[u8; 32]> {
    let (domain_type, epoch, object_root) = match body["type"].as_str()? {
        "BLOCK_V2" => {
            let h = body["beacon_block"].get("block_header")?;
            let slot = uint(&h["slot"]);
            let root = oracle::header_root(
                slot,
                uint(&h["proposer_index"]),
                hex_bytes(&h["parent_root"]),
                hex_bytes(&h["state_root"]),
                hex_bytes(&h["body_root"]),
            );
            (DOMAIN_BEACON_PROPOSER, slot / 32, root)
        }
        "ATTESTATION" => {
            let a = &body["attestation"];
            let root = oracle::attestation_data_root(
                uint(&a["slot"]),
                uint(&a["index"]),
                hex_bytes(&a["beacon_block_root"]),
                checkpoint(&a["source"]),
                checkpoint(&a["target"]),
            );
            (DOMAIN_BEACON_ATTESTER, uint(&a["target"]["epoch"]), root)
        }
        _ => return None,
    };
    let fork = &body["fork_info"]["fork"];
    let version: [u8; 4] = if epoch < uint(&fork["epoch"]) {
        hex_bytes(&fork["previous_version"])
    } else {
        hex_bytes(&fork["current_version"])
    };
    let gvr = hex_bytes(&body["fork_info"]["genesis_validators_root"]);
    Some(oracle::signing_root(
        object_root,
        oracle::domain(domain_type, version, gvr),
    ))
}

/// `signing_root_of` agrees with the independent (remerkleable) vectors on every header-form
/// block and every attestation of every mainnet fork file.
pub fn check_signing_roots_against_vectors() -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors/eth2-signing-roots");
    let mut checked = BTreeMap::<String, usize>::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !(name.starts_with("mainnet-") && name.ends_with(".json")) {
            continue;
        }
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for case in doc["cases"].as_array().into_iter().flatten() {
            if let Some(root) = signing_root_of(&case["request"]) {
                let expected: [u8; 32] = hex_bytes(&case["signing_root"]);
                assert_eq!(root, expected, "{name}: {}", case["name"]);
                *checked
                    .entry(case["request"]["type"].as_str().unwrap().into())
                    .or_default() += 1;
            }
        }
    }
    assert!(
        checked.get("BLOCK_V2") >= Some(&3) && checked.get("ATTESTATION") >= Some(&3),
        "too few vector cases checked: {checked:?}"
    );
    checked.values().sum()
}
