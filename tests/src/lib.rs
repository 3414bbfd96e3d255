//! Quorum Signer's cross-crate test package: vector harnesses (EIP-3076, BLS12-381, Espresso)
//! and property tests live in `tests/tests/`; vendored vectors in `tests/vectors/`.
//!
//! This library holds only what the harnesses share to fail loudly: counting the cases a vector
//! file holds *independently* of the harness that runs them (so a harness that silently skips a
//! case, a section or a file is caught by comparing the two numbers), listing a directory's JSON
//! files, temporary directories for the harnesses' own negative tests, and re-running one test of
//! the current test binary with an environment variable set (to exercise the env-var modes the
//! README documents).
//!
//! Must not: know any vector format beyond "JSON objects with a given key".
#![forbid(unsafe_code)]

use serde_json::Value;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

/// How many JSON objects anywhere inside `v` (itself included) have the field `key`.
///
/// A structural count over the whole document, not a walk along the harness's own path through
/// it: a harness that misses a nesting level or a list counts fewer cases than this.
pub fn count_objects_with_key(v: &Value, key: &str) -> usize {
    match v {
        Value::Object(map) => {
            usize::from(map.contains_key(key))
                + map
                    .values()
                    .map(|x| count_objects_with_key(x, key))
                    .sum::<usize>()
        }
        Value::Array(items) => items.iter().map(|x| count_objects_with_key(x, key)).sum(),
        _ => 0,
    }
}

/// How many JSON objects are elements of the document's top-level arrays (the entries of every
/// section of a `{"section": [{…}, …], …}` file, whatever the section's name).
pub fn count_section_entries(doc: &Value) -> usize {
    doc.as_object()
        .into_iter()
        .flat_map(|m| m.values())
        .filter_map(Value::as_array)
        .flatten()
        .filter(|e| e.is_object())
        .count()
}

/// The `*.json` files directly inside `dir`, sorted by name.
pub fn json_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| format!("{}: {e}", dir.display()))?.path();
        if path.is_file() && path.extension().is_some_and(|x| x == "json") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// How many `*.json` files lie anywhere under `root` (every depth).
pub fn count_json_files_under(root: &Path) -> Result<usize, String> {
    let mut count = 0;
    for entry in std::fs::read_dir(root).map_err(|e| format!("{}: {e}", root.display()))? {
        let path = entry
            .map_err(|e| format!("{}: {e}", root.display()))?
            .path();
        if path.is_dir() {
            count += count_json_files_under(&path)?;
        } else if path.extension().is_some_and(|x| x == "json") {
            count += 1;
        }
    }
    Ok(count)
}

/// Read and parse one JSON file; the error names the file.
pub fn read_json(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: not JSON: {e}", path.display()))
}

/// A fresh directory under the system temp dir, removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    /// A new empty directory whose name contains `label`, the process id and a counter.
    pub fn new(label: &str) -> Result<Self, String> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("qs-vectors-{label}-{}-{n}", std::process::id()));
        if path.exists() {
            std::fs::remove_dir_all(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        }
        std::fs::create_dir_all(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(TempDir(path))
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Run the single test `test` of the test binary that is running now (the harness the caller
/// lives in), with `vars` set in its environment, and return what it printed and its status.
///
/// This is how the harnesses show their env-var modes (`EIP3076_VECTORS=…` and the others) end
/// to end: the child is the very `#[test]` a developer runs, reading the variable itself.
pub fn run_own_test(test: &str, vars: &[(&str, &OsStr)]) -> Result<Output, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut cmd = Command::new(&exe);
    cmd.args([test, "--exact", "--nocapture", "--test-threads=1"]);
    for (name, value) in vars {
        cmd.env(name, value);
    }
    cmd.output()
        .map_err(|e| format!("running {}: {e}", exe.display()))
}

/// Stdout and stderr of a child, as one string (the child's panic message is on stderr).
pub fn output_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
