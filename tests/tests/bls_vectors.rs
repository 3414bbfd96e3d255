//! BLS12-381 (Ethereum ciphersuite) sign and verify vector harness.
//!
//! Reads `$BLS_VECTORS` (default `tests/vectors/bls/json`): every `sign/*.json` case must produce
//! the expected signature (or be refused when the expected output is `null`), every
//! `verify/*.json` case must give the expected boolean. Prints one line per case and
//! `N passed, M failed`; fails on any mismatch.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use serde_json::Value;
use signer_node::scheme::bls12_381::{verify_bytes, SecretKey};
use std::path::{Path, PathBuf};

fn unhex(v: &Value) -> Vec<u8> {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("expected a hex string, got {v}"));
    hex::decode(s.trim_start_matches("0x")).unwrap_or_else(|e| panic!("bad hex {s}: {e}"))
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    files
}

fn sign_case(case: &Value) -> Result<(), String> {
    let input = &case["input"];
    let sk = SecretKey::from_bytes(&unhex(&input["privkey"]));
    let msg = unhex(&input["message"]);
    match (&case["output"], sk) {
        (Value::Null, Err(_)) => Ok(()),
        (Value::Null, Ok(_)) => Err("key accepted, expected refusal".into()),
        (_, Err(e)) => Err(format!("key refused: {e}")),
        (out, Ok(sk)) => {
            let sig = sk.sign(&msg);
            if sig.to_bytes().as_slice() != unhex(out).as_slice() {
                return Err(format!("signature {} differs from expected", sig.to_hex()));
            }
            if !sig.verify(&sk.public_key(), &msg) {
                return Err("own signature does not verify".into());
            }
            Ok(())
        }
    }
}

fn verify_case(case: &Value) -> Result<(), String> {
    let input = &case["input"];
    let expected = case["output"].as_bool().ok_or("output is not a boolean")?;
    let got = verify_bytes(
        &unhex(&input["pubkey"]),
        &unhex(&input["message"]),
        &unhex(&input["signature"]),
    );
    if got == expected {
        Ok(())
    } else {
        Err(format!("verify returned {got}, expected {expected}"))
    }
}

#[test]
fn bls12_381_sign_and_verify_vectors() {
    let root = std::env::var_os("BLS_VECTORS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("vectors/bls/json"));
    let (mut passed, mut failed) = (0, 0);
    type Runner = fn(&Value) -> Result<(), String>;
    let kinds: [(&str, Runner); 2] = [("sign", sign_case), ("verify", verify_case)];
    for (kind, run) in kinds {
        for path in json_files(&root.join(kind)) {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            let case: Value =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            match run(&case) {
                Ok(()) => {
                    passed += 1;
                    println!("PASS {kind} {name}");
                }
                Err(e) => {
                    failed += 1;
                    println!("FAIL {kind} {name}: {e}");
                }
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    assert!(
        passed + failed > 0,
        "no vectors found under {}",
        root.display()
    );
    assert_eq!(failed, 0);
}
