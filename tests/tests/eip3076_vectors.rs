//! EIP-3076 interchange vector harness.
//!
//! Runs `$EIP3076_VECTORS` (default `tests/vectors/eip3076`), a directory (every `*.json` file
//! directly inside it) or a single vector file, against a fresh protection state per file,
//! prints one line per case and a final `N passed, M failed, K skipped; E cases in F files`
//! line, and fails on any mismatch. Each file runs twice:
//! - `minify` policy: slashable files import (maxima only), every signing check must match
//!   `should_succeed` exactly (our strategy is minimal) and must never sign what
//!   `should_succeed_complete` marks false;
//! - `refuse-slashable` policy (the product default): an import may be refused only when the step
//!   says `contains_slashable_data`; then the rest of the file is skipped, as the format allows,
//!   and every skipped case is printed as `SKIP`.
//!
//! Failing loudly: every `*.json` file given must be a vector (a file without a `steps` array,
//! such as the EIP's JSON schema, is an error, not a skip), a directory must hold at least one,
//! and the cases run (passed, failed or skipped) must equal the cases in the files, counted
//! independently of the harness: one per object with a `should_succeed` field (each step's
//! import and each signing check), plus one determinism check, per file and policy.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use serde_json::Value;
use signer_node::bytes::FixedBytes;
use signer_node::protection::ethereum::{Eth2Intent, Eth2State};
use signer_node::protection::interchange::{self, ImportPolicy};
use signer_node::protection::Decision;
use signer_tests::{
    count_objects_with_key, json_files, output_text, read_json, run_own_test, TempDir,
};
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Pass,
    Fail,
    Skip,
}

struct Tally {
    passed: usize,
    failed: usize,
    skipped: usize,
    /// Count without printing (for the determinism re-run and the harness's own tests).
    quiet: bool,
}

impl Tally {
    fn new(quiet: bool) -> Self {
        Tally {
            passed: 0,
            failed: 0,
            skipped: 0,
            quiet,
        }
    }

    fn record(&mut self, outcome: Outcome, line: String) {
        let word = match outcome {
            Outcome::Pass => {
                self.passed += 1;
                "PASS"
            }
            Outcome::Fail => {
                self.failed += 1;
                "FAIL"
            }
            Outcome::Skip => {
                self.skipped += 1;
                "SKIP"
            }
        };
        if !self.quiet {
            println!("{word} {line}");
        }
    }

    fn check(&mut self, ok: bool, line: String) {
        self.record(if ok { Outcome::Pass } else { Outcome::Fail }, line);
    }
}

/// What one run over a directory or file found.
#[derive(Debug, PartialEq, Eq)]
struct Summary {
    files: usize,
    passed: usize,
    failed: usize,
    skipped: usize,
    /// The cases in the files, counted from their contents (not by the harness's walk).
    expected: usize,
}

impl Summary {
    fn line(&self) -> String {
        format!(
            "{} passed, {} failed, {} skipped; {} cases in {} files",
            self.passed, self.failed, self.skipped, self.expected, self.files
        )
    }
}

fn vendored_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("vectors/eip3076")
}

fn vectors_path() -> PathBuf {
    std::env::var_os("EIP3076_VECTORS")
        .map(PathBuf::from)
        .unwrap_or_else(vendored_dir)
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

/// The vector files at `path`: the file itself, or every `*.json` file directly inside the
/// directory. Any file that is not a vector (not JSON, or without a `steps` array) is an error.
fn load(path: &Path) -> Result<Vec<(String, Value)>, String> {
    let files = if path.is_dir() {
        let files = json_files(path)?;
        if files.is_empty() {
            return Err(format!("{}: no *.json vector files", path.display()));
        }
        files
    } else {
        vec![path.to_path_buf()]
    };
    files
        .iter()
        .map(|file| {
            let vector = read_json(file)?;
            if !vector["steps"].is_array() {
                return Err(format!(
                    "{}: not an EIP-3076 test vector: no \"steps\" array",
                    file.display()
                ));
            }
            let name = file
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            Ok((name, vector))
        })
        .collect()
}

/// A step's signing checks, in the order the format runs them (blocks, then attestations).
fn checks(step: &Value) -> Vec<(String, Eth2Intent, &Value)> {
    let blocks = step["blocks"].as_array().into_iter().flatten().map(|b| {
        let intent = Eth2Intent::Block {
            pubkey: FixedBytes::from_hex(text(b, "pubkey")).unwrap(),
            slot: num(b, "slot"),
            signing_root: FixedBytes::from_hex(text(b, "signing_root")).unwrap(),
        };
        (format!("block slot {}", num(b, "slot")), intent, b)
    });
    let attestations = step["attestations"]
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
        });
    blocks.chain(attestations).collect()
}

/// Record every case from step `from` on as skipped: its checks, then later steps' imports and
/// checks.
fn skip_rest(label: &str, steps: &[Value], from: usize, why: &str, tally: &mut Tally) {
    for (i, step) in steps.iter().enumerate().skip(from) {
        if i > from {
            tally.record(Outcome::Skip, format!("{label} step {i} import: {why}"));
        }
        for (what, _, _) in checks(step) {
            tally.record(Outcome::Skip, format!("{label} step {i} {what}: {why}"));
        }
    }
}

/// Run one vector file under one import policy; returns the final state (for determinism checks).
fn run_file(name: &str, vector: &Value, policy: ImportPolicy, tally: &mut Tally) -> Eth2State {
    let mode = match policy {
        ImportPolicy::Minify => "minify",
        ImportPolicy::RefuseSlashable => "refuse-slashable",
    };
    let file_label = format!("[{mode}] {name}");
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
        let label = format!("{file_label} step {i} import");
        match result {
            Err(e) if !should_succeed => {
                tally.check(
                    state == before,
                    format!("{label}: refused as expected ({e})"),
                );
                skip_rest(
                    &file_label,
                    steps,
                    i,
                    "not run: the format ends a vector at an import that must fail",
                    tally,
                );
                return state;
            }
            Err(e) if slashable && policy == ImportPolicy::RefuseSlashable => {
                tally.check(
                    state == before,
                    format!("{label}: refused slashable file ({e}); later checks skipped as the format allows"),
                );
                skip_rest(
                    &file_label,
                    steps,
                    i,
                    "not run: the slashable import was refused, as the format allows",
                    tally,
                );
                return state;
            }
            Err(e) => {
                tally.check(false, format!("{label}: unexpected refusal: {e}"));
                skip_rest(
                    &file_label,
                    steps,
                    i,
                    "not run after a failed import",
                    tally,
                );
                return state;
            }
            Ok(_) if !should_succeed => {
                tally.check(false, format!("{label}: imported but must fail"));
                skip_rest(
                    &file_label,
                    steps,
                    i,
                    "not run after a failed import",
                    tally,
                );
                return state;
            }
            Ok(summary) => tally.check(
                true,
                format!(
                    "{label}: {} validators, {} blocks, {} attestations",
                    summary.validators, summary.blocks, summary.attestations
                ),
            ),
        }
        for (what, intent, check) in checks(step) {
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
            tally.check(
                ok,
                format!(
                    "{file_label} step {i} {what}: expected {}, got {}{reason}",
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

/// Run every vector at `path` under both policies. `Err` when `path` holds anything that is not
/// a vector, or nothing at all.
fn run(path: &Path, quiet: bool) -> Result<Summary, String> {
    let vectors = load(path)?;
    let mut tally = Tally::new(quiet);
    let mut expected = 0;
    for (name, vector) in &vectors {
        // Per policy: one case per step import and per signing check, plus determinism.
        expected += 2 * (count_objects_with_key(vector, "should_succeed") + 1);
        for policy in [ImportPolicy::Minify, ImportPolicy::RefuseSlashable] {
            let first = run_file(name, vector, policy, &mut tally);
            let second = run_file(name, vector, policy, &mut Tally::new(true));
            tally.check(
                first == second,
                format!("[determinism] {name}: a second run reaches the identical state"),
            );
        }
    }
    Ok(Summary {
        files: vectors.len(),
        passed: tally.passed,
        failed: tally.failed,
        skipped: tally.skipped,
        expected,
    })
}

#[test]
fn eip3076_interchange_vectors() {
    let path = vectors_path();
    let summary = run(&path, false).unwrap_or_else(|e| panic!("{e}"));
    println!("{} vector files", summary.files);
    println!("{}", summary.line());
    assert_eq!(
        summary.passed + summary.failed + summary.skipped,
        summary.expected,
        "the harness ran another number of cases than {} holds",
        path.display()
    );
    assert_eq!(
        summary.failed, 0,
        "{} EIP-3076 cases failed",
        summary.failed
    );
}

/// The vendored directory is the complete v5.3.0 set (FORMAT.md "Counts"): 38 files, 49 steps,
/// 150 signing checks (counted here by the field only checks carry), and under the minify
/// policy nothing is skipped.
#[test]
fn the_vendored_directory_is_the_complete_official_set() {
    let dir = vendored_dir();
    let vectors = load(&dir).unwrap();
    let checks: usize = vectors
        .iter()
        .map(|(_, v)| count_objects_with_key(v, "should_succeed_complete"))
        .sum();
    let steps: usize = vectors
        .iter()
        .map(|(_, v)| v["steps"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!((vectors.len(), steps, checks), (38, 49, 150));
    let summary = run(&dir, true).unwrap();
    assert_eq!(summary.expected, 2 * (49 + 150 + 38));
    // The 10 skipped: the signing checks of the 5 slashable files that have checks after an
    // import the default policy refuses (the format then ignores the rest of the file).
    assert_eq!(
        (summary.passed, summary.failed, summary.skipped),
        (464, 0, 10),
        "{summary:?}"
    );
    let mut minify = Tally::new(true);
    for (name, vector) in &vectors {
        run_file(name, vector, ImportPolicy::Minify, &mut minify);
    }
    assert_eq!(
        (minify.passed, minify.failed, minify.skipped),
        (49 + 150, 0, 0)
    );
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

fn copy_vector(name: &str, into: &Path) {
    let from = vendored_dir().join(name);
    std::fs::copy(&from, into.join(name)).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
}

/// A directory with one valid vector and one JSON file without `steps` fails the harness: its
/// loading step names the file, and the `#[test]` itself, run with `EIP3076_VECTORS` set to that
/// directory, fails with that message.
#[test]
fn a_file_without_steps_fails_the_harness() {
    let dir = TempDir::new("eip3076-no-steps").unwrap();
    copy_vector("single_validator_single_block.json", dir.path());
    write(&dir.path().join("notes.json"), r#"{"name": "notes"}"#);
    let want = format!(
        "{}: not an EIP-3076 test vector: no \"steps\" array",
        dir.path().join("notes.json").display()
    );
    assert_eq!(run(dir.path(), true), Err(want.clone()));

    let out = run_own_test(
        "eip3076_interchange_vectors",
        &[("EIP3076_VECTORS", dir.path().as_os_str())],
    )
    .unwrap();
    let text = output_text(&out);
    assert!(!out.status.success(), "the harness passed:\n{text}");
    assert!(text.contains(&want), "{text}");
    assert!(
        !text.contains("PASS "),
        "nothing may run before the load fails:\n{text}"
    );

    // `steps` that is not an array, an empty directory and a file that is not JSON fail too.
    let dir = TempDir::new("eip3076-bad").unwrap();
    assert_eq!(
        run(dir.path(), true),
        Err(format!("{}: no *.json vector files", dir.path().display()))
    );
    let odd = dir.path().join("odd.json");
    write(&odd, r#"{"steps": {}}"#);
    assert_eq!(
        run(&odd, true),
        Err(format!(
            "{}: not an EIP-3076 test vector: no \"steps\" array",
            odd.display()
        ))
    );
    write(&odd, "steps");
    assert!(run(&odd, true)
        .unwrap_err()
        .starts_with(&format!("{}: not JSON: ", odd.display())));
}

/// The README's modes: `EIP3076_VECTORS` names a directory or a single file; the `#[test]` run
/// with either prints every case and the exact final tally.
#[test]
fn the_env_var_takes_a_directory_or_a_single_file() {
    // single_validator_single_block: 1 step, 4 block checks; single_message_gap: 2 steps, 8
    // checks; nothing is slashable, so nothing is skipped. Per file and policy: steps + checks
    // + 1 determinism line: (1 + 4 + 1) * 2 = 12 and (2 + 8 + 1) * 2 = 22.
    let file = vendored_dir().join("single_validator_single_block.json");
    let out = run_own_test(
        "eip3076_interchange_vectors",
        &[("EIP3076_VECTORS", file.as_os_str())],
    )
    .unwrap();
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("\n1 vector files\n12 passed, 0 failed, 0 skipped; 12 cases in 1 files\n"),
        "{text}"
    );
    // Every case printed: 1 import + 4 checks + 1 determinism line, under both policies.
    assert_eq!(text.matches("PASS [").count(), 12, "{text}");

    let dir = TempDir::new("eip3076-dir").unwrap();
    copy_vector("single_validator_single_block.json", dir.path());
    copy_vector(
        "multiple_interchanges_single_validator_single_message_gap.json",
        dir.path(),
    );
    write(&dir.path().join("README.md"), "not JSON, not read");
    let out = run_own_test(
        "eip3076_interchange_vectors",
        &[("EIP3076_VECTORS", dir.path().as_os_str())],
    )
    .unwrap();
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("\n2 vector files\n34 passed, 0 failed, 0 skipped; 34 cases in 2 files\n"),
        "{text}"
    );
}
