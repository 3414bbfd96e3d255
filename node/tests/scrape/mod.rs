//! The Prometheus text exposition format (0.0.4) as tests read it: a scrape parsed into
//! samples, `# TYPE` and `# HELP` lines, and lookups by name and labels. Shared by the tests
//! that read a node's metrics (`GET /metrics` of a process, or `Metrics::encode` in-process).
//!
//! Must not: be lenient; a malformed line panics, naming it.
#![allow(dead_code, clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeMap;

/// One sample line: `name{label="value",…} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A parsed scrape: the samples, and each family's `# TYPE`.
#[derive(Debug, Default)]
pub struct Scrape {
    pub samples: Vec<Sample>,
    pub types: BTreeMap<String, String>,
    pub helps: BTreeMap<String, String>,
}

impl Scrape {
    /// Parse the Prometheus text format (0.0.4); panics on a malformed line.
    pub fn parse(text: &str) -> Scrape {
        let mut scrape = Scrape::default();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            if let Some(rest) = line.strip_prefix("# ") {
                let mut parts = rest.splitn(3, ' ');
                let (kind, name, value) = (
                    parts.next().unwrap(),
                    parts.next().unwrap().to_owned(),
                    parts.next().unwrap_or("").to_owned(),
                );
                match kind {
                    "TYPE" => scrape.types.insert(name, value),
                    "HELP" => scrape.helps.insert(name, value),
                    _ => None,
                };
                continue;
            }
            scrape.samples.push(parse_sample(line));
        }
        scrape
    }

    /// The value of the sample `name` whose labels include every pair in `labels`; panics
    /// unless exactly one matches.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found: Vec<&Sample> = self.matching(name, labels).collect();
        assert_eq!(
            found.len(),
            1,
            "{name}{labels:?}: expected one sample, found {found:?}"
        );
        found[0].value
    }

    /// The value of every sample `name` whose labels include every pair in `labels`, summed
    /// (0 when none matches: a counter that was never incremented has no series).
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels).map(|s| s.value).sum()
    }

    /// The samples `name` whose labels include every pair in `labels`.
    pub fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
    }
}

fn parse_sample(line: &str) -> Sample {
    let (series, value) = line
        .rsplit_once(' ')
        .unwrap_or_else(|| panic!("no value in {line:?}"));
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}")),
    };
    let Some((name, rest)) = series.split_once('{') else {
        return Sample {
            name: series.to_owned(),
            labels: BTreeMap::new(),
            value,
        };
    };
    let body = rest
        .strip_suffix('}')
        .unwrap_or_else(|| panic!("unclosed labels in {line:?}"));
    // label="value" pairs; values escape \\, \" and \n.
    let mut labels = BTreeMap::new();
    let mut chars = body.chars().peekable();
    while chars.peek().is_some() {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        assert_eq!(chars.next(), Some('"'), "label {key:?} in {line:?}");
        let mut val = String::new();
        loop {
            match chars.next() {
                Some('\\') => match chars.next() {
                    Some('n') => val.push('\n'),
                    Some(c) => val.push(c),
                    None => panic!("dangling escape in {line:?}"),
                },
                Some('"') => break,
                Some(c) => val.push(c),
                None => panic!("unterminated value in {line:?}"),
            }
        }
        labels.insert(key, val);
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
    Sample {
        name: name.to_owned(),
        labels,
        value,
    }
}
