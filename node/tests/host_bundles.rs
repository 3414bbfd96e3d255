//! `signer init`'s host bundles, checked from outside: the files and modes a host receives,
//! the node config it runs (every path inside the install root, the KEK the operator asked
//! for), the systemd unit as systemd itself judges it (`systemd-analyze verify` and its offline
//! security score), and the exact refusals of bad options, which leave nothing behind.
//! Running nodes from installed bundles, on hosts in network namespaces, is
//! `node/tests/multihost.rs`.
//!
//! Must not: start nodes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use signer_node::config::NodeConfig;
use signer_node::custody::KekConfig;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn signer() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_signer"))
}

fn init(dir: &Path, extra: &[&str]) -> Output {
    let mut args: Vec<String> = ["init", "--dir"].map(String::from).to_vec();
    args.push(dir.display().to_string());
    for (id, port) in [(1, 17100), (2, 17102), (3, 17104)] {
        args.push("--node".into());
        args.push(format!("{id}=127.0.0.1:{port},127.0.0.1:{}", port + 1));
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    Command::new(signer()).args(&args).output().unwrap()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Every file under `dir`, relative to it, with its mode.
fn tree(dir: &Path) -> Vec<(String, u32)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(dir).unwrap().display().to_string();
            out.push((rel, mode(&path)));
            if path.is_dir() {
                stack.push(path);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn every_host_gets_its_own_bundle_with_owner_only_secrets_and_a_hardened_unit() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("prod");
    let root = tmp.path().join("root-{id}");
    let exe = signer();
    let out = init(
        &dir,
        &[
            "--local-kek",
            "--key",
            "validator-1:espresso",
            "--install-root",
            root.to_str().unwrap(),
            "--signer-path",
            exe.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{out:?}");

    for id in 1..=3u64 {
        let bundle = dir.join(format!("hosts/node-{id}"));
        assert_eq!(mode(&bundle), 0o700);
        // What a host receives, exactly: its own certificate and key, the CA certificate, the
        // KEK and the key file asked for, the config, the unit; never the CA key, another
        // node's key or a client's key.
        let want: Vec<(String, u32)> = [
            ("INSTALL.md", 0o644),
            ("etc", 0o755),
            ("etc/quorum-signer", 0o700),
            ("etc/quorum-signer/kek.key", 0o600),
            ("etc/quorum-signer/keys", 0o700),
            ("etc/quorum-signer/keys/validator-1.key", 0o600),
            ("etc/quorum-signer/node.toml", 0o644),
            ("etc/quorum-signer/tls", 0o700),
            ("etc/quorum-signer/tls/ca.pem", 0o644),
            ("etc/quorum-signer/tls/node.key", 0o600),
            ("etc/quorum-signer/tls/node.pem", 0o644),
            ("etc/systemd", 0o755),
            ("etc/systemd/system", 0o755),
            ("etc/systemd/system/quorum-signer.service", 0o644),
            ("var", 0o755),
            ("var/lib", 0o755),
            ("var/lib/quorum-signer", 0o700),
        ]
        .map(|(p, m)| (p.to_owned(), m))
        .to_vec();
        assert_eq!(tree(&bundle), want, "node {id}");
        // The files are the cluster's own: the node's certificate, the shared KEK.
        let same = |a: &str, b: &str| {
            assert_eq!(
                std::fs::read(bundle.join(a)).unwrap(),
                std::fs::read(dir.join(b)).unwrap(),
                "{a} vs {b}"
            )
        };
        same(
            "etc/quorum-signer/tls/node.pem",
            &format!("pki/node-{id}.pem"),
        );
        same(
            "etc/quorum-signer/tls/node.key",
            &format!("pki/node-{id}.key"),
        );
        same("etc/quorum-signer/tls/ca.pem", "pki/ca.pem");
        same("etc/quorum-signer/kek.key", "kek.key");

        // The config, read the way a node reads it, points only inside the install root.
        let installed = tmp.path().join(format!("root-{id}"));
        let etc = installed.join("etc/quorum-signer");
        let text = std::fs::read_to_string(bundle.join("etc/quorum-signer/node.toml")).unwrap();
        let config = NodeConfig::from_toml(&text, Path::new("/nonexistent")).unwrap();
        assert_eq!(config.node_id, id);
        assert_eq!(config.data_dir, installed.join("var/lib/quorum-signer"));
        assert_eq!(config.keys_dir, etc.join("keys"));
        assert_eq!(
            (config.tls.ca, config.tls.cert, config.tls.key),
            (
                etc.join("tls/ca.pem"),
                etc.join("tls/node.pem"),
                etc.join("tls/node.key")
            )
        );
        assert_eq!(
            config.kek,
            Some(KekConfig::Local {
                path: etc.join("kek.key")
            })
        );
        assert_eq!(config.peers.len(), 3);

        // systemd's own judgement of the unit: it parses, and its exposure is low.
        let unit = bundle.join("etc/systemd/system/quorum-signer.service");
        let text = std::fs::read_to_string(&unit).unwrap();
        assert!(
            text.contains(&format!(
                "ExecStart={} node --config {} --log-json\n",
                exe.display(),
                etc.join("node.toml").display()
            )),
            "{text}"
        );
        let verify = Command::new("systemd-analyze")
            .arg("verify")
            .arg(&unit)
            .output()
            .expect("systemd-analyze (Debian: systemd) is needed");
        assert!(verify.status.success(), "{verify:?}");
        assert_eq!(String::from_utf8_lossy(&verify.stderr), "", "{verify:?}");
        let security = Command::new("systemd-analyze")
            .args(["security", "--offline=true"])
            .arg(&unit)
            .output()
            .unwrap();
        let report = String::from_utf8_lossy(&security.stdout);
        let exposure: f64 = report
            .lines()
            .find_map(|l| l.strip_prefix("→ Overall exposure level for quorum-signer.service: "))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no exposure level in:\n{report}"));
        // systemd rates 0–10 (10: unprotected); below 2 it calls "OK".
        assert!(exposure < 2.0, "exposure {exposure}:\n{report}");
    }
}

#[test]
fn a_kms_kek_is_configured_on_every_host_and_no_key_file_is_shipped() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("prod");
    let out = init(
        &dir,
        &[
            "--kms-key-id",
            "alias/quorum-signer",
            "--kms-region",
            "eu-west-1",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    for id in 1..=3 {
        let bundle = dir.join(format!("hosts/node-{id}"));
        let text = std::fs::read_to_string(bundle.join("etc/quorum-signer/node.toml")).unwrap();
        let config = NodeConfig::from_toml(&text, Path::new("/")).unwrap();
        assert_eq!(
            config.kek,
            Some(KekConfig::AwsKms {
                key_id: "alias/quorum-signer".into(),
                region: Some("eu-west-1".into()),
                endpoint_url: None,
            })
        );
        assert!(!bundle.join("etc/quorum-signer/kek.key").exists());
        assert!(std::fs::read_dir(bundle.join("etc/quorum-signer/keys"))
            .unwrap()
            .next()
            .is_none());
        // The node configs of the cluster directory say the same.
        let own = NodeConfig::load(&dir.join(format!("node-{id}/node.toml"))).unwrap();
        assert_eq!(own.kek, config.kek);
    }
    assert!(!dir.join("kek.key").exists());
}

#[test]
fn bad_options_are_refused_by_name_and_write_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("prod");
    let junk = tmp.path().join("junk.der");
    std::fs::write(&junk, b"not a certificate").unwrap();
    let junk = junk.to_str().unwrap();
    let missing = tmp.path().join("missing.der");
    let missing = missing.to_str().unwrap();
    let cases: Vec<(Vec<String>, i32, String)> = vec![
        (
            vec!["--threshold".into(), "2".into()],
            1,
            "error: --threshold applies to --admin admins; no --admin given\n".into(),
        ),
        (
            vec!["--signer-path".into(), "bin/signer".into()],
            1,
            "error: --signer-path bin/signer: must be absolute (the unit's ExecStart)\n".into(),
        ),
        (
            vec!["--admin".into(), format!("alice={missing},{junk}")],
            1,
            format!(
                "error: --admin: admin.admins[alice]: {missing}: No such file or directory (os \
                 error 2)\n"
            ),
        ),
        (
            vec![
                "--admin".into(),
                format!("alice={junk},{junk}"),
                "--admin".into(),
                format!("bob={junk},{junk}"),
                "--threshold".into(),
                "3".into(),
            ],
            1,
            "error: --threshold 3: must be between 1 and the 2 --admin admin(s)\n".into(),
        ),
    ];
    for (args, code, stderr) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = init(&dir, &args);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), stderr, "{args:?}");
        assert!(!dir.exists(), "{args:?} left {}", dir.display());
    }
    // Certificates that do not parse are refused with the parser's reason.
    let out = init(&dir, &["--admin", &format!("alice={junk},{junk}")]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).starts_with(
            "error: --admin: admin.admins[alice]: attestation: the slot attestation certificate \
             does not parse: "
        ),
        "{out:?}"
    );
    assert!(!dir.exists());
    // Names are checked as the command line is read (exit 2, clap's usage error).
    for (spec, reason) in [
        (
            "node-4=a.der,b.der".to_owned(),
            "invalid identity \"node-4\": client names may not start with node- (reserved for nodes)",
        ),
        (
            "alice=a.der".to_owned(),
            "expected SLOT_CERT.der,DEVICE_CERT.der after '='",
        ),
    ] {
        let out = init(&dir, &["--admin", &spec]);
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("{spec:?}: {reason}")),
            "{spec}: {err}"
        );
    }
    let out = init(&dir, &["--kms-key-id", "k", "--local-kek"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(!dir.exists());
}

#[test]
fn add_node_writes_one_more_host_and_refuses_a_taken_id_or_address() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("prod");
    let root = tmp.path().join("root-{id}");
    let exe = signer();
    let common = [
        "--install-root",
        root.to_str().unwrap(),
        "--signer-path",
        exe.to_str().unwrap(),
    ];
    let mut args = vec!["--local-kek"];
    args.extend(common);
    assert!(init(&dir, &args).status.success());
    let add = |spec: &str| {
        let mut args = vec!["add-node", "--dir", dir.to_str().unwrap(), "--node", spec];
        args.extend(common);
        Command::new(signer()).args(&args).output().unwrap()
    };
    let out = add("4=127.0.0.1:17106,127.0.0.1:17107");
    assert!(out.status.success(), "{out:?}");

    // The new host's bundle holds what the others' do, with its own certificate.
    let bundle = dir.join("hosts/node-4");
    assert_eq!(tree(&bundle), tree(&dir.join("hosts/node-1")));
    assert_eq!(
        std::fs::read(bundle.join("etc/quorum-signer/tls/node.pem")).unwrap(),
        std::fs::read(dir.join("pki/node-4.pem")).unwrap()
    );
    let text = std::fs::read_to_string(bundle.join("etc/quorum-signer/node.toml")).unwrap();
    let config = NodeConfig::from_toml(&text, Path::new("/")).unwrap();
    let peers: Vec<(u64, String, String)> = config
        .peers
        .iter()
        .map(|p| (p.id, p.client_addr.to_string(), p.peer_addr.to_string()))
        .collect();
    let want: Vec<(u64, String, String)> = [(1, 17100), (2, 17102), (3, 17104), (4, 17106)]
        .map(|(id, port)| {
            (
                id,
                format!("127.0.0.1:{port}"),
                format!("127.0.0.1:{}", port + 1),
            )
        })
        .to_vec();
    assert_eq!((config.node_id, config.bootstrap, peers), (4, false, want));
    assert_eq!(
        config.tls.cert,
        tmp.path().join("root-4/etc/quorum-signer/tls/node.pem")
    );
    let descriptor =
        signer_node::client::ClusterDescriptor::load(&dir.join("cluster.json")).unwrap();
    assert_eq!(
        descriptor.nodes.iter().map(|n| n.id).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );

    // A taken id or address is refused, and nothing changes.
    let before = tree(&dir);
    let out = add("4=127.0.0.1:17108,127.0.0.1:17109");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "error: node-4 is already in {}: a new node needs a new id (a removed node's id is \
             never accepted again)\n",
            dir.display()
        )
    );
    let out = add("5=127.0.0.1:17100,127.0.0.1:17111");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: node-1 already uses 127.0.0.1:17100 or 127.0.0.1:17111\n"
    );
    assert_eq!(tree(&dir), before);
}
