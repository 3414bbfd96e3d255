//! Certificate expiry and data-directory space, each compared with what an independent tool
//! (openssl, df) reads from the same file or filesystem.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use std::process::Command;

/// A self-signed certificate for `cn` that expires at midnight UTC of `(y, m, d)`, as PEM.
fn certificate(cn: &str, (y, m, d): (i32, u8, u8)) -> String {
    let mut params = rcgen::CertificateParams::new(vec![cn.to_owned()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params.not_after = rcgen::date_time_ymd(y, m, d);
    let key = rcgen::KeyPair::generate().unwrap();
    params.self_signed(&key).unwrap().pem()
}

/// The notAfter (Unix seconds) and RFC 2253 subject of the first certificate in `path`, as
/// openssl and date(1) read them.
fn openssl(path: &Path) -> (i64, String) {
    let out = Command::new("openssl")
        .args([
            "x509", "-noout", "-enddate", "-subject", "-nameopt", "RFC2253", "-in",
        ])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap()
            .to_owned()
    };
    let date = Command::new("date")
        .args(["-u", "-d", &field("notAfter="), "+%s"])
        .output()
        .unwrap();
    let secs = String::from_utf8(date.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    (secs, field("subject="))
}

fn line(metrics: &Metrics, prefix: &str) -> Vec<String> {
    metrics
        .encode()
        .unwrap()
        .lines()
        .filter(|l| l.starts_with(prefix))
        .map(str::to_owned)
        .collect()
}

#[test]
fn certificate_expiry_is_the_not_after_openssl_reads() {
    let dir = tempfile::tempdir().unwrap();
    let node = dir.path().join("node.pem");
    std::fs::write(&node, certificate("node-1", (2031, 2, 3))).unwrap();
    // A CA bundle: an old and a renewed CA of one name, and another CA.
    let old = certificate("Test CA", (2027, 1, 1));
    let renewed = certificate("Test CA", (2035, 6, 7));
    let other = certificate("Other CA", (2029, 3, 4));
    let bundle = dir.path().join("ca.pem");
    std::fs::write(&bundle, format!("{old}{renewed}{other}")).unwrap();
    let renewed_path = dir.path().join("renewed.pem");
    std::fs::write(&renewed_path, &renewed).unwrap();
    let other_path = dir.path().join("other.pem");
    std::fs::write(&other_path, &other).unwrap();

    let metrics = Metrics::new(1).unwrap();
    metrics
        .observe_certificates("node", &std::fs::read(&node).unwrap())
        .unwrap();
    metrics
        .observe_certificates("ca", &std::fs::read(&bundle).unwrap())
        .unwrap();
    let (node_after, node_subject) = openssl(&node);
    let (ca_after, ca_subject) = openssl(&renewed_path);
    let (other_after, other_subject) = openssl(&other_path);
    assert_eq!(node_after, 1_927_843_200); // 2031-02-03T00:00:00Z
    let mut want = vec![
        format!(
            "signer_certificate_not_after_seconds{{certificate=\"ca\",subject=\"{other_subject}\"}} {other_after}"
        ),
        format!(
            "signer_certificate_not_after_seconds{{certificate=\"ca\",subject=\"{ca_subject}\"}} {ca_after}"
        ),
        format!(
            "signer_certificate_not_after_seconds{{certificate=\"node\",subject=\"{node_subject}\"}} {node_after}"
        ),
    ];
    want.sort();
    assert_eq!(
        line(&metrics, "signer_certificate_not_after_seconds{"),
        want
    );
}

#[test]
fn unreadable_certificate_files_are_reported_and_export_nothing() {
    let metrics = Metrics::new(1).unwrap();
    let empty = metrics.observe_certificates("ca", b"no certificate here\n");
    assert!(
        matches!(&empty, Err(CertificateError::Empty { certificate }) if certificate == "ca"),
        "{empty:?}"
    );
    let garbage = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    let bad = metrics.observe_certificates("node", garbage);
    assert!(matches!(bad, Err(CertificateError::X509 { .. })), "{bad:?}");
    assert!(line(&metrics, "signer_certificate_not_after_seconds{").is_empty());
}

/// `df -B1 --output=size,avail DIR`: (size, available) in bytes.
fn df(dir: &Path) -> (i64, i64) {
    let out = Command::new("df")
        .args(["-B1", "--output=size,avail"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let values: Vec<i64> = text
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect();
    (values[0], values[1])
}

#[test]
fn data_dir_space_is_what_df_reports() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Metrics::new(1).unwrap();
    // Other processes write to this filesystem: compare only when df saw the same numbers
    // just before and just after the node's reading.
    for _ in 0..100 {
        let before = df(dir.path());
        metrics.observe_data_dir(dir.path()).unwrap();
        let after = df(dir.path());
        if before != after {
            continue;
        }
        assert_eq!(
            line(&metrics, "signer_data_dir_"),
            [
                format!("signer_data_dir_available_bytes {}", before.1),
                format!("signer_data_dir_size_bytes {}", before.0),
            ]
        );
        return;
    }
    panic!("the filesystem never stood still for one df");
}

#[test]
fn the_snapshot_size_is_what_stat_reports_for_its_files_and_zero_before_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Metrics::new(1).unwrap();
    metrics.observe_data_dir(dir.path()).unwrap();
    assert_eq!(
        line(&metrics, "signer_snapshot_"),
        ["signer_snapshot_bytes 0"]
    );

    // The snapshot's head and records files, and a legacy single file; not the database, a
    // head being written, or another file.
    let ours = [
        ("state.snapshot-head", 1_001),
        ("state.snapshot-records-7", 123_457),
        ("state.snapshot", 50),
    ];
    for (name, len) in ours {
        std::fs::write(dir.path().join(name), vec![7u8; len]).unwrap();
    }
    for name in ["state.redb", "state.snapshot-head.tmp", "keyring.cache"] {
        std::fs::write(dir.path().join(name), vec![1u8; 999]).unwrap();
    }
    let out = Command::new("stat")
        .args(["-c", "%s"])
        .args(ours.map(|(name, _)| dir.path().join(name)))
        .output()
        .unwrap();
    let size: u64 = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.trim().parse::<u64>().unwrap())
        .sum();
    assert_eq!(size, 124_508);
    metrics.observe_data_dir(dir.path()).unwrap();
    assert_eq!(
        line(&metrics, "signer_snapshot_"),
        [format!("signer_snapshot_bytes {size}")]
    );
}

#[test]
fn a_missing_data_dir_is_an_error() {
    let metrics = Metrics::new(1).unwrap();
    let err = metrics
        .observe_data_dir(Path::new("/nonexistent/qs-data"))
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
}
