//! The shipped alert rules, their promtool unit tests and the on-call playbook, checked
//! against each other (no cluster needed):
//! - `promtool check rules` accepts `deploy/prometheus/alerts.yml`, and finds as many rules as
//!   the test reads (so every rule below is every rule Prometheus loads);
//! - `promtool test rules deploy/prometheus/alerts_test.yml` passes, and it tests every alert
//!   firing;
//! - `docs/PLAYBOOK.md` has a section for every alert, with what it means, how to confirm,
//!   what to do and what never to do; every rule's `runbook_url` points at an anchor that
//!   exists, and every in-page link resolves;
//! - every `signer` and `signerctl` command the playbook tells the on-call to run is a real
//!   command line: the binary accepts it (its subcommands and flags) when asked for `--help`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[path = "alerting/rules.rs"]
mod rules;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn playbook_path() -> PathBuf {
    rules::deploy_dir()
        .parent()
        .unwrap()
        .join("docs/PLAYBOOK.md")
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The playbook's `## ` sections: heading -> body (up to the next `## `).
fn sections(markdown: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut current: Option<(String, String)> = None;
    for line in markdown.lines() {
        if let Some(h) = line.strip_prefix("## ") {
            if let Some((name, body)) = current.take() {
                out.insert(name, body);
            }
            current = Some((h.trim().to_owned(), String::new()));
        } else if let Some((_, body)) = current.as_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    if let Some((name, body)) = current {
        out.insert(name, body);
    }
    out
}

#[test]
fn promtool_accepts_the_rules_and_their_unit_tests_cover_every_alert() {
    let alerts = rules::alerts_path();
    let text = std::fs::read_to_string(&alerts).unwrap();
    let parsed = rules::parse_rules(&text);
    let (ok, out) = rules::promtool(&["check", "rules", alerts.to_str().unwrap()]);
    println!("{out}");
    assert!(ok, "promtool check rules:\n{out}");
    assert_eq!(
        rules::promtool_rule_count(&out),
        parsed.len(),
        "promtool counts another number of rules than the test reads: {parsed:#?}"
    );
    let names: BTreeSet<&str> = parsed.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names.len(), parsed.len(), "duplicate alert names");

    let tests = rules::deploy_dir().join("prometheus/alerts_test.yml");
    let (ok, out) = rules::promtool(&["test", "rules", tests.to_str().unwrap()]);
    println!("{out}");
    assert!(ok, "promtool test rules:\n{out}");
    assert!(out.contains("SUCCESS"), "{out}");

    // Every alert has a case that expects it to fire (an `alertname:` followed by a non-empty
    // `exp_alerts:` list).
    let test_text = std::fs::read_to_string(&tests).unwrap();
    let lines: Vec<&str> = test_text.lines().map(str::trim).collect();
    let mut fired: BTreeSet<String> = BTreeSet::new();
    for (i, line) in lines.iter().enumerate() {
        if let Some(name) = line.strip_prefix("alertname:") {
            let expects = lines.get(i + 1) == Some(&"exp_alerts:")
                && lines
                    .get(i + 2)
                    .is_some_and(|l| l.starts_with("- exp_labels:"));
            if expects {
                fired.insert(name.trim().to_owned());
            }
        }
    }
    let missing: Vec<&&str> = names.iter().filter(|n| !fired.contains(**n)).collect();
    assert!(
        missing.is_empty(),
        "alerts never tested firing: {missing:?}"
    );
    let unknown: Vec<&String> = fired
        .iter()
        .filter(|n| !names.contains(n.as_str()))
        .collect();
    assert!(
        unknown.is_empty(),
        "tests of alerts not in alerts.yml: {unknown:?}"
    );
    println!("{} alerts, each tested firing by promtool", names.len());
}

#[test]
fn the_playbook_has_a_section_for_every_alert_and_every_link_resolves() {
    let rule_list = rules::parse_rules(&std::fs::read_to_string(rules::alerts_path()).unwrap());
    let markdown = std::fs::read_to_string(playbook_path()).unwrap();
    let sections = sections(&markdown);
    // Every heading's anchor (GitHub numbers repeated ones: -1, -2, …).
    let mut anchors: BTreeSet<String> = BTreeSet::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for line in markdown.lines() {
        let Some(h) = line.strip_prefix('#') else {
            continue;
        };
        let h = h.trim_start_matches('#');
        if !h.starts_with(' ') {
            continue;
        }
        let s = slug(h);
        let n = seen.entry(s.clone()).or_insert(0);
        anchors.insert(if *n == 0 {
            s.clone()
        } else {
            format!("{s}-{n}")
        });
        *n += 1;
    }
    for rule in &rule_list {
        let body = sections
            .get(&rule.name)
            .unwrap_or_else(|| panic!("docs/PLAYBOOK.md has no `## {}` section", rule.name));
        let (path, anchor) = rule
            .runbook_url
            .split_once('#')
            .unwrap_or_else(|| panic!("{}: runbook_url without an anchor", rule.name));
        assert_eq!(path, "docs/PLAYBOOK.md", "{}", rule.name);
        assert_eq!(anchor, slug(&rule.name), "{}: runbook_url", rule.name);
        assert!(
            anchors.contains(anchor),
            "{}: no anchor #{anchor}",
            rule.name
        );
        for part in [
            "### What it means",
            "### How to confirm",
            "### What to do",
            "### Never",
        ] {
            assert!(body.contains(part), "{}: no {part:?}", rule.name);
        }
        assert!(
            body.starts_with(&format!("\n**{}.**", rule.severity)),
            "{}: the section must open with its severity ({})",
            rule.name,
            rule.severity
        );
        let confirm = body
            .split("### How to confirm")
            .nth(1)
            .and_then(|s| s.split("### What to do").next())
            .unwrap();
        assert!(
            confirm.contains("signerctl --dir \"$QS\" "),
            "{}: no signerctl command under How to confirm",
            rule.name
        );
    }
    // No section for an alert that does not exist.
    let names: BTreeSet<&str> = rule_list.iter().map(|r| r.name.as_str()).collect();
    for heading in sections.keys() {
        if heading.starts_with("Signer") {
            assert!(names.contains(heading.as_str()), "stale section {heading}");
        }
    }
    // In-page links.
    for (i, _) in markdown.match_indices("](#") {
        let rest = &markdown[i + 3..];
        let anchor = &rest[..rest.find(')').unwrap()];
        assert!(anchors.contains(anchor), "broken link #{anchor}");
    }
    println!("{} alerts, each with its playbook section", rule_list.len());
}

/// Shell-like words of one command line: up to a pipe, a redirection or a comment, quotes
/// removed, `$QS` standing for a cluster directory.
fn words(line: &str) -> Vec<String> {
    let mut cut = line;
    for stop in [" | ", " > ", " # ", " && "] {
        if let Some(i) = cut.find(stop) {
            cut = &cut[..i];
        }
    }
    cut.split_whitespace()
        .map(|w| w.trim_matches('\'').trim_matches('"'))
        .map(|w| w.replace("$QS", "/nonexistent/qs"))
        .collect()
}

/// Every `signer …` and `signerctl …` command of the playbook: lines of code blocks and
/// inline code spans.
fn commands(markdown: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_block = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            in_block = !in_block;
            continue;
        }
        if in_block {
            let t = line.trim();
            if t.starts_with("signerctl ") || t.starts_with("signer ") {
                out.push(t.to_owned());
            }
            continue;
        }
        for (i, span) in line.split('`').enumerate() {
            if i % 2 == 1 && (span.starts_with("signerctl ") || span.starts_with("signer ")) {
                out.push(span.to_owned());
            }
        }
    }
    out
}

fn accepts(binary: &Path, args: &[String]) -> Result<(), String> {
    let out = std::process::Command::new(binary)
        .args(args)
        .arg("--help")
        .output()
        .map_err(|e| format!("{}: {e}", binary.display()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn every_command_in_the_playbook_is_a_real_command_line() {
    let markdown = std::fs::read_to_string(playbook_path()).unwrap();
    let signer = PathBuf::from(env!("CARGO_BIN_EXE_signer"));
    let signerctl = signer.with_file_name("signerctl");
    assert!(
        signerctl.exists(),
        "{} is missing: build it first (cargo build -p signerctl); the workspace test run does",
        signerctl.display()
    );
    let commands = commands(&markdown);
    assert!(commands.len() >= 20, "{commands:#?}");
    let mut bad = Vec::new();
    for command in &commands {
        let mut w = words(command);
        let program = w.remove(0);
        let binary = if program == "signerctl" {
            &signerctl
        } else {
            &signer
        };
        if let Err(e) = accepts(binary, &w) {
            bad.push(format!("{command}\n  {e}"));
        }
    }
    assert!(
        bad.is_empty(),
        "commands the binaries refuse:\n{}",
        bad.join("\n")
    );
    println!("{} playbook commands accepted", commands.len());
}

#[test]
fn the_live_tests_copy_of_the_rules_differs_only_in_durations() {
    let text = std::fs::read_to_string(rules::alerts_path()).unwrap();
    let scaled = rules::scale_rules(&text);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alerts.yml");
    std::fs::write(&path, &scaled).unwrap();
    let (ok, out) = rules::promtool(&["check", "rules", path.to_str().unwrap()]);
    assert!(ok, "promtool check rules (scaled copy):\n{out}\n{scaled}");
    let original = rules::parse_rules(&text);
    let copy = rules::parse_rules(&scaled);
    assert_eq!(rules::promtool_rule_count(&out), original.len());
    for (a, b) in original.iter().zip(&copy) {
        assert_eq!(a.name, b.name);
        assert_eq!(b.for_, rules::scaled_for(a.for_), "{}", a.name);
        assert_eq!((&a.severity, &a.runbook_url), (&b.severity, &b.runbook_url));
    }
    // Every other line is unchanged; no range or offset of minutes is left.
    assert_eq!(text.lines().count(), scaled.lines().count());
    for (a, b) in text.lines().zip(scaled.lines()) {
        if a != b {
            assert!(
                a.trim_start().starts_with("for:") || a.contains('[') || a.contains("offset "),
                "changed line: {a:?} -> {b:?}"
            );
        }
    }
    assert!(text.contains("[5m]") && text.contains("offset 5m"));
    let minutes_left = scaled
        .match_indices("m]")
        .any(|(i, _)| scaled[..i].ends_with(|c: char| c.is_ascii_digit()));
    assert!(!minutes_left, "a range of minutes is left in the copy");
    assert!(!scaled.contains("offset 5m"));
    assert!(scaled.contains("[15s]") && scaled.contains("offset 15s"));
}
