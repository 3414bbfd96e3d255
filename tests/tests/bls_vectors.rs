//! BLS12-381 (Ethereum ciphersuite) vector harness, in the layout of `ethereum/bls12-381-tests`.
//!
//! Reads `$BLS_VECTORS` (default `tests/vectors/bls/json`), a directory with one subdirectory
//! per kind of case:
//! - `sign/*.json` (required): the expected signature, or a refusal when the output is `null`;
//! - `verify/*.json` (required): the expected boolean;
//! - `deserialization_G1/*.json`: whether a 48-byte public key decodes. The signer decodes keys
//!   with KeyValidate (IETF BLS §2.5), which also refuses the identity point: the one case whose
//!   input is the canonical encoding of the identity (`0xc0` then zeros) is expected to be
//!   refused although it is a valid G1 encoding (`output: true`), as the `verify` case
//!   `verify_infinity_pubkey_and_infinity_signature` requires;
//! - `deserialization_G2/*.json`: whether a 96-byte signature decodes (identity included).
//!
//! Prints one line per case and `N passed, M failed; E cases in the directory`; fails on any
//! mismatch. Failing loudly: a missing `sign/` or `verify/`, an empty kind directory, a
//! subdirectory of a kind the harness has no runner for, or a case file outside a kind directory
//! is an error, and the cases run must equal the `*.json` files under the directory, counted
//! independently at every depth.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use serde_json::Value;
use signer_node::scheme::bls12_381::{verify_bytes, PublicKey, SecretKey, Signature};
use signer_tests::{
    count_json_files_under, json_files, output_text, read_json, run_own_test, TempDir,
};
use std::path::{Path, PathBuf};

/// A case's check: `Ok` with a note for the output line (usually empty), or what went wrong.
type Runner = fn(&Value) -> Result<&'static str, String>;

/// Every kind the harness runs, and whether a directory must have it.
const KINDS: [(&str, Runner, bool); 4] = [
    ("sign", sign_case, true),
    ("verify", verify_case, true),
    ("deserialization_G1", g1_case, false),
    ("deserialization_G2", g2_case, false),
];

fn unhex(v: &Value) -> Result<Vec<u8>, String> {
    let s = v
        .as_str()
        .ok_or_else(|| format!("expected a hex string, got {v}"))?;
    hex::decode(s.trim_start_matches("0x")).map_err(|e| format!("bad hex {s}: {e}"))
}

fn output_bool(case: &Value) -> Result<bool, String> {
    case["output"]
        .as_bool()
        .ok_or_else(|| "output is not a boolean".to_string())
}

fn sign_case(case: &Value) -> Result<&'static str, String> {
    let input = &case["input"];
    let sk = SecretKey::from_bytes(&unhex(&input["privkey"])?);
    let msg = unhex(&input["message"])?;
    match (&case["output"], sk) {
        (Value::Null, Err(_)) => Ok(""),
        (Value::Null, Ok(_)) => Err("key accepted, expected refusal".into()),
        (_, Err(e)) => Err(format!("key refused: {e}")),
        (out, Ok(sk)) => {
            let sig = sk.sign(&msg);
            if sig.to_bytes().as_slice() != unhex(out)?.as_slice() {
                return Err(format!("signature {} differs from expected", sig.to_hex()));
            }
            if !sig.verify(&sk.public_key(), &msg) {
                return Err("own signature does not verify".into());
            }
            Ok("")
        }
    }
}

fn verify_case(case: &Value) -> Result<&'static str, String> {
    let input = &case["input"];
    let expected = output_bool(case)?;
    let got = verify_bytes(
        &unhex(&input["pubkey"])?,
        &unhex(&input["message"])?,
        &unhex(&input["signature"])?,
    );
    if got == expected {
        Ok("")
    } else {
        Err(format!("verify returned {got}, expected {expected}"))
    }
}

/// The compressed encoding of the G1 identity (compression and infinity flags, x = 0).
fn is_g1_identity(bytes: &[u8]) -> bool {
    bytes.len() == 48 && bytes[0] == 0xc0 && bytes[1..].iter().all(|b| *b == 0)
}

fn g1_case(case: &Value) -> Result<&'static str, String> {
    let bytes = unhex(&case["input"]["pubkey"])?;
    let identity = is_g1_identity(&bytes);
    let expected = output_bool(case)? && !identity;
    let got = PublicKey::from_bytes(&bytes).is_ok();
    if got == expected && identity {
        Ok(" (the identity: a valid encoding, refused as a key by KeyValidate)")
    } else if got == expected {
        Ok("")
    } else {
        Err(format!(
            "public key decoding gave {got}, expected {expected}"
        ))
    }
}

fn g2_case(case: &Value) -> Result<&'static str, String> {
    let bytes = unhex(&case["input"]["signature"])?;
    let expected = output_bool(case)?;
    let got = Signature::from_bytes(&bytes).is_ok();
    if got == expected {
        Ok("")
    } else {
        Err(format!(
            "signature decoding gave {got}, expected {expected}"
        ))
    }
}

#[derive(Debug, PartialEq, Eq)]
struct Summary {
    passed: usize,
    failed: usize,
    /// Cases run per kind, in `KINDS` order.
    per_kind: Vec<(String, usize)>,
    /// `*.json` files under the directory, counted by walking it at every depth.
    expected: usize,
}

fn vendored_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("vectors/bls/json")
}

/// A kind of case present in the directory: its name, its runner and its files.
type KindFiles = (&'static str, Runner, Vec<PathBuf>);

/// Check the directory's layout before running anything.
fn layout(root: &Path) -> Result<Vec<KindFiles>, String> {
    let entries = std::fs::read_dir(root).map_err(|e| format!("{}: {e}", root.display()))?;
    for entry in entries {
        let path = entry
            .map_err(|e| format!("{}: {e}", root.display()))?
            .path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if path.is_dir() {
            if !KINDS.iter().any(|(kind, _, _)| *kind == name) {
                return Err(format!(
                    "{}: no runner for this kind of case (the harness runs sign, verify, deserialization_G1, deserialization_G2)",
                    path.display()
                ));
            }
        } else if path.extension().is_some_and(|x| x == "json") {
            return Err(format!(
                "{}: a case file outside a kind directory",
                path.display()
            ));
        }
    }
    let mut kinds = Vec::new();
    for (kind, runner, required) in KINDS {
        let dir = root.join(kind);
        if !dir.is_dir() {
            if required {
                return Err(format!("{}: missing {kind}/ directory", root.display()));
            }
            continue;
        }
        let files = json_files(&dir)?;
        if files.is_empty() {
            return Err(format!("{}: no *.json cases", dir.display()));
        }
        kinds.push((kind, runner, files));
    }
    Ok(kinds)
}

fn run(root: &Path, quiet: bool) -> Result<Summary, String> {
    let kinds = layout(root)?;
    let expected = count_json_files_under(root)?;
    let (mut passed, mut failed) = (0, 0);
    let mut per_kind = Vec::new();
    for (kind, run_case, files) in kinds {
        for path in &files {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            let outcome = read_json(path).and_then(|case| run_case(&case));
            match outcome {
                Ok(note) => {
                    passed += 1;
                    if !quiet {
                        println!("PASS {kind} {name}{note}");
                    }
                }
                Err(e) => {
                    failed += 1;
                    if !quiet {
                        println!("FAIL {kind} {name}: {e}");
                    }
                }
            }
        }
        per_kind.push((kind.to_string(), files.len()));
    }
    Ok(Summary {
        passed,
        failed,
        per_kind,
        expected,
    })
}

#[test]
fn bls12_381_sign_and_verify_vectors() {
    let root = std::env::var_os("BLS_VECTORS")
        .map(PathBuf::from)
        .unwrap_or_else(vendored_dir);
    let s = run(&root, false).unwrap_or_else(|e| panic!("{e}"));
    println!(
        "{} passed, {} failed; {} cases in the directory",
        s.passed, s.failed, s.expected
    );
    assert_eq!(
        s.passed + s.failed,
        s.expected,
        "the harness ran another number of cases than {} holds",
        root.display()
    );
    assert_eq!(s.failed, 0, "{} BLS12-381 cases failed", s.failed);
}

/// The vendored directory has every kind, with the exact number of cases of each (see
/// tests/vectors/bls/PROVENANCE.md).
#[test]
fn the_vendored_directory_runs_every_kind() {
    let s = run(&vendored_dir(), true).unwrap();
    let per_kind: Vec<(&str, usize)> = s.per_kind.iter().map(|(k, n)| (k.as_str(), *n)).collect();
    assert_eq!(
        per_kind,
        [
            ("sign", 10),
            ("verify", 11),
            ("deserialization_G1", 13),
            ("deserialization_G2", 15)
        ]
    );
    assert_eq!((s.passed, s.failed, s.expected), (49, 0, 49));
}

fn copy_kind(kind: &str, into: &Path) {
    let to = into.join(kind);
    std::fs::create_dir_all(&to).unwrap();
    for file in json_files(&vendored_dir().join(kind)).unwrap() {
        std::fs::copy(&file, to.join(file.file_name().unwrap())).unwrap();
    }
}

/// A directory without one of the required kinds, with an empty kind, with a kind the harness
/// cannot run or with a stray case file is refused before anything runs; the `#[test]` run with
/// `BLS_VECTORS` set to it fails with that message.
#[test]
fn an_incomplete_or_unknown_layout_fails_the_harness() {
    let dir = TempDir::new("bls-missing").unwrap();
    copy_kind("sign", dir.path());
    let want = format!("{}: missing verify/ directory", dir.path().display());
    assert_eq!(run(dir.path(), true), Err(want.clone()));
    let out = run_own_test(
        "bls12_381_sign_and_verify_vectors",
        &[("BLS_VECTORS", dir.path().as_os_str())],
    )
    .unwrap();
    let text = output_text(&out);
    assert!(!out.status.success(), "the harness passed:\n{text}");
    assert!(text.contains(&want), "{text}");

    std::fs::create_dir(dir.path().join("verify")).unwrap();
    assert_eq!(
        run(dir.path(), true),
        Err(format!(
            "{}: no *.json cases",
            dir.path().join("verify").display()
        ))
    );
    copy_kind("verify", dir.path());
    assert_eq!(run(dir.path(), true).map(|s| s.passed), Ok(21));

    std::fs::create_dir(dir.path().join("aggregate")).unwrap();
    assert_eq!(
        run(dir.path(), true),
        Err(format!(
            "{}: no runner for this kind of case (the harness runs sign, verify, deserialization_G1, deserialization_G2)",
            dir.path().join("aggregate").display()
        ))
    );
    std::fs::remove_dir(dir.path().join("aggregate")).unwrap();

    let stray = dir.path().join("stray.json");
    std::fs::write(&stray, "{}").unwrap();
    assert_eq!(
        run(dir.path(), true),
        Err(format!(
            "{}: a case file outside a kind directory",
            stray.display()
        ))
    );
    std::fs::remove_file(&stray).unwrap();

    // A case nested one level too deep is counted but never run: the totals disagree.
    let nested = dir.path().join("sign").join("extra");
    std::fs::create_dir(&nested).unwrap();
    std::fs::copy(
        vendored_dir().join("sign/sign_case_zero_privkey.json"),
        nested.join("sign_case_zero_privkey.json"),
    )
    .unwrap();
    let s = run(dir.path(), true).unwrap();
    assert_eq!((s.passed, s.failed, s.expected), (21, 0, 22));
    let out = run_own_test(
        "bls12_381_sign_and_verify_vectors",
        &[("BLS_VECTORS", dir.path().as_os_str())],
    )
    .unwrap();
    let text = output_text(&out);
    assert!(!out.status.success(), "the harness passed:\n{text}");
    assert!(
        text.contains("the harness ran another number of cases than"),
        "{text}"
    );
}

/// The README's mode: `BLS_VECTORS` names a directory with `sign/` and `verify/` (the
/// deserialization kinds are run when present); the `#[test]` run with it passes and prints the
/// exact tally.
#[test]
fn the_env_var_takes_a_directory_with_sign_and_verify() {
    let dir = TempDir::new("bls-readme").unwrap();
    copy_kind("sign", dir.path());
    copy_kind("verify", dir.path());
    let out = run_own_test(
        "bls12_381_sign_and_verify_vectors",
        &[("BLS_VECTORS", dir.path().as_os_str())],
    )
    .unwrap();
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("\n21 passed, 0 failed; 21 cases in the directory\n"),
        "{text}"
    );
    assert_eq!(text.matches("PASS sign ").count(), 10, "{text}");
    assert_eq!(text.matches("PASS verify ").count(), 11, "{text}");
}
