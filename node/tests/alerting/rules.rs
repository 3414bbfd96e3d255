//! Reading `deploy/prometheus/alerts.yml` in tests: each alert's name, `for:`, severity and
//! playbook link (a line-based reader for that one file's layout, cross-checked against the
//! number of rules `promtool check rules` finds, so a rule it misses fails the test), the
//! copy with scaled-down durations that the live test loads, and running `promtool`.
//!
//! Owns: nothing but test helpers. Must not: edit the shipped rule file.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// The workspace's `deploy/` directory.
pub fn deploy_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("deploy")
}

/// The shipped alert rules.
pub fn alerts_path() -> PathBuf {
    deploy_dir().join("prometheus/alerts.yml")
}

/// One alerting rule as the file states it.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub name: String,
    pub for_: Duration,
    pub severity: String,
    pub runbook_url: String,
    pub has_summary: bool,
    pub has_description: bool,
    pub has_expr: bool,
}

/// Every `- alert:` rule of `text`, in order. Panics on a rule without `for:`, a severity,
/// a summary, a description, an expression or a `runbook_url`.
pub fn parse_rules(text: &str) -> Vec<Rule> {
    let mut rules: Vec<Rule> = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('#') {
            continue;
        }
        if let Some(name) = t.strip_prefix("- alert:") {
            rules.push(Rule {
                name: name.trim().to_owned(),
                for_: Duration::MAX,
                severity: String::new(),
                runbook_url: String::new(),
                has_summary: false,
                has_description: false,
                has_expr: false,
            });
            continue;
        }
        if t.starts_with("- record:") {
            panic!("alerts.yml holds only alerting rules: {t}");
        }
        let Some(rule) = rules.last_mut() else {
            continue;
        };
        let value = |key: &str| {
            t.strip_prefix(key)
                .map(|v| v.trim().trim_matches('"').to_owned())
        };
        if let Some(v) = value("for:") {
            rule.for_ = parse_duration(&v);
        } else if let Some(v) = value("severity:") {
            rule.severity = v;
        } else if let Some(v) = value("runbook_url:") {
            rule.runbook_url = v;
        } else if t.starts_with("summary:") {
            rule.has_summary = true;
        } else if t.starts_with("description:") {
            rule.has_description = true;
        } else if t.starts_with("expr:") {
            rule.has_expr = true;
        }
    }
    for r in &rules {
        assert!(r.for_ != Duration::MAX, "{}: no for:", r.name);
        assert!(
            r.severity == "critical" || r.severity == "warning",
            "{}: severity {:?}",
            r.name,
            r.severity
        );
        assert!(
            r.has_summary && r.has_description && r.has_expr,
            "{r:?}: summary, description and expr are required"
        );
        assert!(!r.runbook_url.is_empty(), "{}: no runbook_url", r.name);
    }
    rules
}

/// A Prometheus duration of one unit (`0m`, `15s`, `5m`, `1h`, `2d`).
pub fn parse_duration(text: &str) -> Duration {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or_else(|| panic!("no unit in {text:?}"));
    let (n, unit) = text.split_at(split);
    let n: u64 = n
        .parse()
        .unwrap_or_else(|_| panic!("bad duration {text:?}"));
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86400,
        _ => panic!("unit of {text:?}: only s, m, h and d are used"),
    };
    Duration::from_secs(secs)
}

/// How much the live test shortens durations: `for:` and range/offset durations are divided
/// by this, and a nonzero `for:` is at least [`MIN_SCALED_FOR`].
pub const SCALE: u64 = 20;
/// The shortest scaled `for:` (elections and restarts must not fire alerts meant for minutes).
pub const MIN_SCALED_FOR: Duration = Duration::from_secs(5);

/// `for:` in the scaled copy.
pub fn scaled_for(d: Duration) -> Duration {
    if d.is_zero() {
        d
    } else {
        (d / SCALE as u32).max(MIN_SCALED_FOR)
    }
}

fn scaled_range(d: Duration) -> Duration {
    (d / SCALE as u32).max(Duration::from_secs(2))
}

fn seconds(d: Duration) -> String {
    format!("{}s", d.as_secs())
}

/// A copy of the rule file `text` for a test that cannot wait minutes: every `for:` scaled
/// with [`scaled_for`], and every range (`[5m]`) and `offset` duration divided by [`SCALE`].
/// Thresholds, labels and annotations stay as they are.
pub fn scale_rules(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let t = line.trim_start();
        if let Some(v) = t.strip_prefix("for:") {
            let indent = &line[..line.len() - t.len()];
            let d = scaled_for(parse_duration(v.trim()));
            out.push_str(&format!("{indent}for: {}\n", seconds(d)));
            continue;
        }
        if t.starts_with('#') || !(line.contains('[') || line.contains("offset ")) {
            out.push_str(line);
            out.push('\n');
            continue;
        }
        out.push_str(&scale_expr_line(line));
        out.push('\n');
    }
    out
}

/// Scale the durations inside `[…]` and after `offset ` on one line of an expression.
fn scale_expr_line(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    loop {
        let range = rest.find('[');
        let offset = rest.find("offset ");
        let (at, skip) = match (range, offset) {
            (None, None) => break,
            (Some(r), Some(o)) if o < r => (o, "offset ".len()),
            (Some(r), _) => (r, 1),
            (None, Some(o)) => (o, "offset ".len()),
        };
        out.push_str(&rest[..at + skip]);
        rest = &rest[at + skip..];
        let end = rest
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(rest.len());
        let d = parse_duration(&rest[..end]);
        out.push_str(&seconds(scaled_range(d)));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// Run `promtool` with `args`; returns (success, stdout + stderr).
pub fn promtool(args: &[&str]) -> (bool, String) {
    let out = Command::new("promtool")
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "promtool not found ({e}): ./test.sh installs Debian's prometheus, which ships it"
            )
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The number in promtool's `SUCCESS: N rules found`.
pub fn promtool_rule_count(output: &str) -> usize {
    let line = output
        .lines()
        .find(|l| l.contains("rules found"))
        .unwrap_or_else(|| panic!("no rule count in {output}"));
    line.split_whitespace()
        .find_map(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no number in {line:?}"))
}
