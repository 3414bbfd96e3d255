//! EIP-3076 interchange vector harness.
//!
//! Runs every vector file in `$EIP3076_VECTORS` (default `tests/vectors/eip3076`) against a fresh
//! protection state, prints one line per case and a final `N passed, M failed` line, and fails on
//! any mismatch. Each file runs twice:
//! - `minify` policy: slashable files import (maxima only), every signing check must match
//!   `should_succeed` exactly (our strategy is minimal) and must never sign what
//!   `should_succeed_complete` marks false;
//! - `refuse-slashable` policy (the product default): an import may be refused only when the step
//!   says `contains_slashable_data`; then the rest of the file is skipped, as the format allows.
//!
//! A file without `steps` (such as `schema.json`) is not a vector and is listed as skipped.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use serde_json::Value;
use signer_node::bytes::FixedBytes;
use signer_node::protection::ethereum::{Eth2Intent, Eth2State};
use signer_node::protection::interchange::{self, ImportPolicy};
use signer_node::protection::Decision;
use std::path::PathBuf;

struct Tally {
    passed: usize,
    failed: usize,
    /// Count without printing (for the determinism re-run).
    quiet: bool,
}

impl Tally {
    fn new(quiet: bool) -> Self {
        Tally {
            passed: 0,
            failed: 0,
            quiet,
        }
    }

    fn record(&mut self, ok: bool, line: String) {
        if ok {
            self.passed += 1;
        } else {
            self.failed += 1;
        }
        if !self.quiet {
            println!("{} {line}", if ok { "PASS" } else { "FAIL" });
        }
    }
}

fn vectors_dir() -> PathBuf {
    std::env::var_os("EIP3076_VECTORS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("vectors/eip3076"))
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("vector field {key} missing: {v}"))
}

fn num(v: &Value, key: &str) -> u64 {
    text(v, key)
        .parse()
        .unwrap_or_else(|_| panic!("vector field {key} not a u64: {v}"))
}

fn flag(v: &Value, key: &str) -> bool {
    v[key]
        .as_bool()
        .unwrap_or_else(|| panic!("vector field {key} missing: {v}"))
}

/// Run one vector file under one import policy; returns the final state (for determinism checks).
fn run_file(name: &str, vector: &Value, policy: ImportPolicy, tally: &mut Tally) -> Eth2State {
    let mode = match policy {
        ImportPolicy::Minify => "minify",
        ImportPolicy::RefuseSlashable => "refuse-slashable",
    };
    let gvr = FixedBytes::<32>::from_hex(text(vector, "genesis_validators_root")).unwrap();
    let mut state = Eth2State::default();
    let steps = vector["steps"].as_array().expect("steps");
    for (i, step) in steps.iter().enumerate() {
        let should_succeed = flag(step, "should_succeed");
        let slashable = flag(step, "contains_slashable_data");
        let doc_text = serde_json::to_string(&step["interchange"]).unwrap();
        let before = state.clone();
        let result = interchange::parse(&doc_text)
            .and_then(|doc| interchange::import(&mut state, gvr, &doc, policy));
        let label = format!("[{mode}] {name} step {i} import");
        match result {
            Err(e) if !should_succeed => {
                tally.record(
                    state == before,
                    format!("{label}: refused as expected ({e})"),
                );
                return state;
            }
            Err(e) if slashable && policy == ImportPolicy::RefuseSlashable => {
                tally.record(
                    state == before,
                    format!("{label}: refused slashable file ({e}); later checks skipped as the format allows"),
                );
                return state;
            }
            Err(e) => {
                tally.record(false, format!("{label}: unexpected refusal: {e}"));
                return state;
            }
            Ok(_) if !should_succeed => {
                tally.record(false, format!("{label}: imported but must fail"));
                return state;
            }
            Ok(summary) => tally.record(
                true,
                format!(
                    "{label}: {} validators, {} blocks, {} attestations",
                    summary.validators, summary.blocks, summary.attestations
                ),
            ),
        }
        let checks = step["blocks"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|b| {
                let intent = Eth2Intent::Block {
                    pubkey: FixedBytes::from_hex(text(b, "pubkey")).unwrap(),
                    slot: num(b, "slot"),
                    signing_root: FixedBytes::from_hex(text(b, "signing_root")).unwrap(),
                };
                (format!("block slot {}", num(b, "slot")), intent, b)
            })
            .chain(
                step["attestations"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|a| {
                        let intent = Eth2Intent::Attestation {
                            pubkey: FixedBytes::from_hex(text(a, "pubkey")).unwrap(),
                            source_epoch: num(a, "source_epoch"),
                            target_epoch: num(a, "target_epoch"),
                            signing_root: FixedBytes::from_hex(text(a, "signing_root")).unwrap(),
                        };
                        let label = format!(
                            "attestation {}->{}",
                            num(a, "source_epoch"),
                            num(a, "target_epoch")
                        );
                        (label, intent, a)
                    }),
            )
            .collect::<Vec<_>>();
        for (what, intent, check) in checks {
            let expected = flag(check, "should_succeed");
            // Files older than v5.3.0 have no complete flag; the minimal one then stands for both.
            let complete = check["should_succeed_complete"]
                .as_bool()
                .unwrap_or(expected);
            let decision = state.decide(&intent);
            let signed = decision.allows_signing();
            let ok = signed == expected && (complete || !signed);
            let reason = match &decision {
                Decision::Refuse(v) => format!(" ({v})"),
                _ => String::new(),
            };
            tally.record(
                ok,
                format!(
                    "[{mode}] {name} step {i} {what}: expected {}, got {}{reason}",
                    verb(expected),
                    verb(signed)
                ),
            );
        }
    }
    state
}

fn verb(signed: bool) -> &'static str {
    if signed {
        "sign"
    } else {
        "refuse"
    }
}

#[test]
fn eip3076_interchange_vectors() {
    let dir = vectors_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let mut tally = Tally::new(false);
    let mut vectors = 0;
    for path in &files {
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let vector: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap())
            .unwrap_or_else(|e| panic!("{}: not JSON: {e}", path.display()));
        if vector.get("steps").is_none() {
            println!("SKIP {name}: not a vector file (no steps)");
            continue;
        }
        vectors += 1;
        for policy in [ImportPolicy::Minify, ImportPolicy::RefuseSlashable] {
            let first = run_file(&name, &vector, policy, &mut tally);
            let second = run_file(&name, &vector, policy, &mut Tally::new(true));
            tally.record(
                first == second,
                format!("[determinism] {name}: a second run reaches the identical state"),
            );
        }
    }
    println!("{vectors} vector files");
    println!("{} passed, {} failed", tally.passed, tally.failed);
    assert!(vectors > 0, "no vector files in {}", dir.display());
    assert_eq!(tally.failed, 0, "{} EIP-3076 cases failed", tally.failed);
}
