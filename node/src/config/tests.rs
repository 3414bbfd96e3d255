//! Config parsing and validation: every error names its field.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;

const GOOD: &str = r#"
node_id = 2
cluster_id = "dev"
client_listen = "127.0.0.1:7102"
peer_listen = "127.0.0.1:7103"
data_dir = "data"
keys_dir = "/abs/keys"
bootstrap = false

[tls]
ca = "../pki/ca.pem"
cert = "../pki/node-2.pem"
key = "../pki/node-2.key"

[[peers]]
id = 1
peer_addr = "127.0.0.1:7101"
client_addr = "127.0.0.1:7100"

[[peers]]
id = 2
peer_addr = "127.0.0.1:7103"
client_addr = "127.0.0.1:7102"

[[peers]]
id = 3
peer_addr = "127.0.0.1:7105"
client_addr = "127.0.0.1:7104"
"#;

fn good() -> NodeConfig {
    NodeConfig::from_toml(GOOD, Path::new("/cluster/node-2")).unwrap()
}

/// The field named by a validation error.
fn field_of(result: Result<NodeConfig, ConfigError>) -> String {
    match result {
        Err(ConfigError::Invalid { field, .. }) => field,
        other => panic!("expected a validation error, got {other:?}"),
    }
}

fn edited(edit: impl FnOnce(&mut NodeConfig)) -> Result<NodeConfig, ConfigError> {
    let mut config = good();
    edit(&mut config);
    config.validate().map(|()| config)
}

#[test]
fn parses_with_defaults_and_resolves_paths() {
    let c = good();
    assert_eq!(c.node_id, 2);
    assert_eq!(c.data_dir, PathBuf::from("/cluster/node-2/data"));
    assert_eq!(c.keys_dir, PathBuf::from("/abs/keys"));
    assert_eq!(c.tls.ca, PathBuf::from("/cluster/node-2/../pki/ca.pem"));
    assert_eq!(c.raft, RaftConfig::default());
    assert_eq!(c.raft.heartbeat_ms, 50);
    assert_eq!(c.raft.election_min_ms, 150);
    assert_eq!(c.raft.election_max_ms, 300);
    assert_eq!(c.raft.snapshot_every, 10_000);
    assert_eq!(c.raft.logs_to_keep, 1_000);
    assert_eq!(c.raft.snapshot_after_audit_bytes, 4 << 20);
    assert_eq!(
        c.eth2.genesis_validators_root.to_hex(),
        "0x4b363db94e286120d76eb905340fdd4e54bfe9f06bf33ff6cf5ad27f511bfe95"
    );
    assert!(c.sync_writes);
    assert!(c.keyring_cache, "the keyring cache is on by default");
    assert!(!c.bootstrap);
    assert_eq!(c.peer(3).map(|p| p.client_addr.port()), Some(7104));
    assert_eq!(
        c.other_peers().map(|p| p.id).collect::<Vec<_>>(),
        vec![1, 3]
    );
    assert_eq!(
        c.member_ids().into_iter().collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
}

#[test]
fn local_kek_paths_resolve_against_the_config_directory() {
    let text = GOOD.replace(
        "bootstrap = false",
        "bootstrap = false\nkek = { backend = \"local\", path = \"../kek.key\" }\n\
         retired_keks = [{ backend = \"local\", path = \"/abs/old.key\" }, \
         { backend = \"aws-kms\", key_id = \"alias/old\" }]",
    );
    let c = NodeConfig::from_toml(&text, Path::new("/cluster/node-2")).unwrap();
    assert_eq!(
        c.kek,
        Some(crate::custody::KekConfig::Local {
            path: PathBuf::from("/cluster/node-2/../kek.key")
        })
    );
    assert_eq!(
        c.retired_keks,
        vec![
            crate::custody::KekConfig::Local {
                path: PathBuf::from("/abs/old.key")
            },
            crate::custody::KekConfig::AwsKms {
                key_id: "alias/old".into(),
                region: None,
                endpoint_url: None,
            },
        ]
    );
}

#[test]
fn round_trips_through_toml() {
    let c = good();
    let again = NodeConfig::from_toml(&c.to_toml().unwrap(), Path::new("/elsewhere")).unwrap();
    assert_eq!(again, c);
}

#[test]
fn explicit_sections_override_defaults() {
    let text = GOOD.replace(
        "bootstrap = false",
        "bootstrap = true\nsync_writes = false\nkeyring_cache = false",
    ) + "\n[raft]\nheartbeat_ms = 20\nelection_min_ms = 100\nelection_max_ms = 200\n"
        + "snapshot_every = 20\nlogs_to_keep = 5\nsnapshot_after_audit_bytes = 65536\n"
        + "[eth2]\ngenesis_validators_root = \"0x"
        + &"00".repeat(31)
        + "01\"\n";
    let c = NodeConfig::from_toml(&text, Path::new("/x")).unwrap();
    assert!(c.bootstrap);
    assert!(!c.sync_writes);
    assert!(!c.keyring_cache);
    assert_eq!(c.raft.heartbeat_ms, 20);
    assert_eq!(c.raft.election_max_ms, 200);
    assert_eq!(c.raft.heartbeat(), Duration::from_millis(20));
    assert_eq!(c.raft.snapshot_every, 20);
    assert_eq!(c.raft.logs_to_keep, 5);
    assert_eq!(c.raft.snapshot_after_audit_bytes, 65_536);
    assert_eq!(c.eth2.genesis_validators_root.0[31], 1);
}

#[test]
fn unknown_and_missing_fields_are_named() {
    let typo = GOOD.replace("bootstrap = false", "bootstrapp = false");
    match NodeConfig::from_toml(&typo, Path::new("/x")) {
        Err(ConfigError::Parse { message, .. }) => {
            assert!(message.contains("bootstrapp"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    let missing = GOOD.replace("cluster_id = \"dev\"", "");
    match NodeConfig::from_toml(&missing, Path::new("/x")) {
        Err(ConfigError::Parse { message, .. }) => {
            assert!(message.contains("cluster_id"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    let bad_addr = GOOD.replace("\"127.0.0.1:7102\"\npeer", "\"localhost\"\npeer");
    assert!(matches!(
        NodeConfig::from_toml(&bad_addr, Path::new("/x")),
        Err(ConfigError::Parse { .. })
    ));
    let bad_root = GOOD.replace(
        "bootstrap = false",
        "bootstrap = false\n[eth2]\ngenesis_validators_root = \"0x1234\"",
    );
    match NodeConfig::from_toml(&bad_root, Path::new("/x")) {
        Err(ConfigError::Parse { message, .. }) => {
            assert!(message.contains("genesis_validators_root"), "{message}");
            assert!(message.contains("32 bytes"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let unknown_tls = GOOD.replace("[tls]", "[tls]\npassword = \"x\"");
    assert!(matches!(
        NodeConfig::from_toml(&unknown_tls, Path::new("/x")),
        Err(ConfigError::Parse { .. })
    ));
}

#[test]
fn validation_errors_name_the_field() {
    type Edit = Box<dyn FnOnce(&mut NodeConfig)>;
    let cases: Vec<(&str, Edit)> = vec![
        ("node_id", Box::new(|c| c.node_id = 0)),
        ("cluster_id", Box::new(|c| c.cluster_id = String::new())),
        ("cluster_id", Box::new(|c| c.cluster_id = "a b".into())),
        ("peer_listen", Box::new(|c| c.peer_listen = c.client_listen)),
        ("data_dir", Box::new(|c| c.data_dir = PathBuf::new())),
        ("tls.key", Box::new(|c| c.tls.key = PathBuf::new())),
        ("peers", Box::new(|c| c.peers.clear())),
        ("peers", Box::new(|c| c.node_id = 9)),
        ("peers[0].id", Box::new(|c| c.peers[0].id = 0)),
        ("peers[1].id", Box::new(|c| c.peers[1].id = 1)),
        (
            "peers[2].peer_addr",
            Box::new(|c| c.peers[2].peer_addr = c.peers[0].peer_addr),
        ),
        (
            "peers[0].client_addr",
            Box::new(|c| c.peers[0].client_addr = c.peers[0].peer_addr),
        ),
        (
            "peers[1].peer_addr",
            Box::new(|c| c.peers[1].peer_addr = "0.0.0.0:7103".parse().unwrap()),
        ),
        ("raft.heartbeat_ms", Box::new(|c| c.raft.heartbeat_ms = 0)),
        (
            "raft.election_min_ms",
            Box::new(|c| c.raft.election_min_ms = 50),
        ),
        (
            "raft.election_max_ms",
            Box::new(|c| c.raft.election_max_ms = 150),
        ),
        (
            "raft.snapshot_every",
            Box::new(|c| c.raft.snapshot_every = 0),
        ),
        ("raft.logs_to_keep", Box::new(|c| c.raft.logs_to_keep = 0)),
        (
            "raft.snapshot_after_audit_bytes",
            Box::new(|c| c.raft.snapshot_after_audit_bytes = 0),
        ),
    ];
    for (want, edit) in cases {
        assert_eq!(field_of(edited(edit)), want);
    }
}

#[test]
fn error_messages_read_well() {
    let err = edited(|c| c.raft.election_max_ms = 100).unwrap_err();
    assert_eq!(
        err.to_string(),
        "config field `raft.election_max_ms`: must be greater than raft.election_min_ms (150)"
    );
    let err = edited(|c| c.raft.snapshot_every = 0).unwrap_err();
    assert_eq!(
        err.to_string(),
        "config field `raft.snapshot_every`: must be at least 1 (log entries between snapshots)"
    );
    let err = edited(|c| c.raft.logs_to_keep = 0).unwrap_err();
    assert_eq!(
        err.to_string(),
        "config field `raft.logs_to_keep`: must be at least 1 (log entries kept behind a snapshot)"
    );
    let err = edited(|c| c.raft.snapshot_after_audit_bytes = 0).unwrap_err();
    assert_eq!(
        err.to_string(),
        "config field `raft.snapshot_after_audit_bytes`: must be at least 1 (bytes of audit \
         records between snapshots)"
    );
}

#[test]
fn load_names_the_file() {
    let missing = NodeConfig::load(Path::new("/nonexistent/node.toml")).unwrap_err();
    assert!(missing.to_string().starts_with("/nonexistent/node.toml: "));

    let dir = std::env::temp_dir().join(format!("qs-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("node.toml");
    std::fs::write(&path, GOOD.replace("node_id = 2", "node_id = \"two\"")).unwrap();
    let err = NodeConfig::load(&path).unwrap_err();
    std::fs::write(&path, GOOD).unwrap();
    let ok = NodeConfig::load(&path).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    match err {
        ConfigError::Parse { path: p, message } => {
            assert_eq!(p, path);
            assert!(message.contains("node_id"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(ok.data_dir, dir.join("data"));
}

#[test]
fn the_metrics_endpoint_is_off_unless_configured_and_must_not_take_a_member_address() {
    assert_eq!(good().metrics_listen, None);
    assert!(!good().to_toml().unwrap().contains("metrics_listen"));
    let text = GOOD.replace(
        "bootstrap = false",
        "bootstrap = false\nmetrics_listen = \"127.0.0.1:7106\"",
    );
    let c = NodeConfig::from_toml(&text, Path::new("/cluster/node-2")).unwrap();
    assert_eq!(c.metrics_listen, Some("127.0.0.1:7106".parse().unwrap()));
    let again = NodeConfig::from_toml(&c.to_toml().unwrap(), Path::new("/elsewhere")).unwrap();
    assert_eq!(again, c);
    // Its own client port, or another member's peer port on the same host.
    for taken in ["127.0.0.1:7102", "127.0.0.1:7101"] {
        let result = edited(|c| c.metrics_listen = Some(taken.parse().unwrap()));
        assert_eq!(field_of(result), "metrics_listen");
    }
    assert!(edited(|c| c.metrics_listen = Some("127.0.0.1:0".parse().unwrap())).is_ok());
}

#[test]
fn the_eth2_network_is_built_in_or_described_and_never_guessed() {
    // The default: mainnet, found by its genesis validators root.
    let c = NodeConfig::from_toml(GOOD, Path::new("/x")).unwrap();
    assert_eq!(
        c.eth2.resolve_network().unwrap(),
        eth2_messages::NetworkSpec::mainnet()
    );
    // Another built-in network by its root.
    let sepolia = eth2_messages::NetworkSpec::sepolia();
    let text = format!(
        "{GOOD}\n[eth2]\ngenesis_validators_root = \"0x{}\"\n",
        hex::encode(sepolia.genesis_validators_root)
    );
    let c = NodeConfig::from_toml(&text, Path::new("/x")).unwrap();
    assert_eq!(c.eth2.resolve_network().unwrap(), sepolia);
    // An unknown root without a description: refused, naming what to add.
    let devnet_root = format!("0x{}01", "00".repeat(31));
    let text = format!("{GOOD}\n[eth2]\ngenesis_validators_root = \"{devnet_root}\"\n");
    let c = NodeConfig::from_toml(&text, Path::new("/x")).unwrap();
    let err = c.eth2.resolve_network().unwrap_err();
    assert_eq!(
        err,
        format!(
            "[eth2] genesis_validators_root {devnet_root} is not a built-in network \
             (mainnet, sepolia, holesky, hoodi); describe its forks in an [eth2.network] table"
        )
    );
    // Described in an [eth2.network] table: used as given.
    let table = format!(
        "{text}[eth2.network]\nname = \"devnet\"\ngenesis_validators_root = \"{devnet_root}\"\n\
         genesis_fork_version = \"0x10000000\"\naltair_fork_version = \"0x20000000\"\n\
         bellatrix_fork_version = \"0x30000000\"\ncapella_fork_version = \"0x40000000\"\n\
         deneb_fork_version = \"0x50000000\"\n"
    );
    let c = NodeConfig::from_toml(&table, Path::new("/x")).unwrap();
    let spec = c.eth2.resolve_network().unwrap();
    assert_eq!(spec.name, "devnet");
    assert_eq!(spec.capella_fork_version, [0x40, 0, 0, 0]);
    assert_eq!(spec.electra_fork_version, None);
    // A table whose root is not the [eth2] root: refused.
    let other = table.replacen(
        &format!("genesis_validators_root = \"{devnet_root}\"\ngenesis_fork"),
        &format!(
            "genesis_validators_root = \"0x{}02\"\ngenesis_fork",
            "00".repeat(31)
        ),
        1,
    );
    let c = NodeConfig::from_toml(&other, Path::new("/x")).unwrap();
    let err = c.eth2.resolve_network().unwrap_err();
    assert!(
        err.starts_with("[eth2.network] \"devnet\" has genesis_validators_root 0x")
            && err.ends_with(&format!("but [eth2] says {devnet_root}")),
        "{err}"
    );
}

/// The TLS paths and members of `GOOD`, for building configs in code.
fn parts() -> (TlsPaths, Vec<PeerConfig>) {
    let c = good();
    (c.tls, c.peers)
}

#[test]
fn the_builder_fills_in_the_shared_defaults() {
    let (tls, peers) = parts();
    let built = NodeConfig::builder(2, "dev", "/n2/data", tls.clone(), peers.clone())
        .build()
        .unwrap();
    let expected = NodeConfig {
        node_id: 2,
        cluster_id: "dev".into(),
        client_listen: "127.0.0.1:7102".parse().unwrap(),
        peer_listen: "127.0.0.1:7103".parse().unwrap(),
        metrics_listen: None,
        web3signer: None,
        data_dir: PathBuf::from("/n2/data"),
        keys_dir: PathBuf::from("/n2/keys"),
        tls: tls.clone(),
        peers: peers.clone(),
        bootstrap: false,
        raft: RaftConfig {
            heartbeat_ms: 50,
            election_min_ms: 150,
            election_max_ms: 300,
            snapshot_every: 10_000,
            logs_to_keep: 1_000,
            snapshot_after_audit_bytes: 4 << 20,
        },
        eth2: Eth2Config {
            genesis_validators_root: FixedBytes(MAINNET_GENESIS_VALIDATORS_ROOT),
            network: None,
        },
        kek: None,
        retired_keks: Vec::new(),
        sync_writes: true,
        keyring_cache: true,
        admin: admin::AdminConfig {
            trust_yubico_roots: true,
            attestation_roots: Vec::new(),
            threshold: 1,
            require_attestation: false,
            require_touch_always: true,
            challenge_ttl_secs: 900,
            admins: Vec::new(),
            clients: Vec::new(),
        },
    };
    assert_eq!(built, expected);

    // The lowest id bootstraps; a relative data dir gets a relative `keys` beside it.
    let first = NodeConfig::builder(1, "dev", "data", tls, peers)
        .build()
        .unwrap();
    assert!(first.bootstrap);
    assert_eq!(first.data_dir, PathBuf::from("data"));
    assert_eq!(first.keys_dir, PathBuf::from("keys"));
    assert_eq!(first.client_listen, "127.0.0.1:7100".parse().unwrap());
    assert_eq!(first.peer_listen, "127.0.0.1:7101".parse().unwrap());
}

#[test]
fn each_builder_method_sets_its_field_and_nothing_else() {
    let (tls, peers) = parts();
    let base = || NodeConfig::builder(3, "dev", "/n3/data", tls.clone(), peers.clone());
    let default = base().build().unwrap();
    let kek = crate::custody::KekConfig::Local {
        path: PathBuf::from("/kek.key"),
    };
    let old = crate::custody::KekConfig::Local {
        path: PathBuf::from("/old.key"),
    };
    let raft = RaftConfig {
        heartbeat_ms: 100,
        election_min_ms: 400,
        election_max_ms: 800,
        ..RaftConfig::default()
    };
    let eth2 = Eth2Config {
        genesis_validators_root: FixedBytes([1; 32]),
        network: None,
    };
    let admin = admin::AdminConfig {
        threshold: 2,
        ..admin::AdminConfig::dev()
    };
    let metrics: SocketAddr = "127.0.0.1:7106".parse().unwrap();
    type Expect = Box<dyn FnOnce(&mut NodeConfig)>;
    let cases: Vec<(NodeConfigBuilder, Expect)> = vec![
        (
            base().keys_dir("/shared/keys"),
            Box::new(|c| c.keys_dir = PathBuf::from("/shared/keys")),
        ),
        (
            base().metrics_listen(Some(metrics)),
            Box::new(move |c| c.metrics_listen = Some(metrics)),
        ),
        (base().bootstrap(true), Box::new(|c| c.bootstrap = true)),
        (base().raft(raft), Box::new(move |c| c.raft = raft)),
        (base().eth2(eth2.clone()), Box::new(move |c| c.eth2 = eth2)),
        (
            base().kek(Some(kek.clone())),
            Box::new(move |c| c.kek = Some(kek)),
        ),
        (
            base().retired_keks(vec![old.clone()]),
            Box::new(move |c| c.retired_keks = vec![old]),
        ),
        (
            base().sync_writes(false),
            Box::new(|c| c.sync_writes = false),
        ),
        (
            base().keyring_cache(false),
            Box::new(|c| c.keyring_cache = false),
        ),
        (
            base().admin(admin.clone()),
            Box::new(move |c| c.admin = admin),
        ),
    ];
    for (builder, expect) in cases {
        let mut expected = default.clone();
        expect(&mut expected);
        assert_eq!(builder.build().unwrap(), expected);
    }
}

#[test]
fn the_builder_refuses_what_validate_refuses() {
    let (tls, peers) = parts();
    let err = NodeConfig::builder(9, "dev", "/n9/data", tls.clone(), peers.clone())
        .build()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "config field `peers`: this node (9) must be listed among the peers"
    );
    let slow_heartbeat = RaftConfig {
        heartbeat_ms: 500,
        ..RaftConfig::default()
    };
    let built = NodeConfig::builder(2, "dev", "/n2/data", tls.clone(), peers.clone())
        .raft(slow_heartbeat)
        .build();
    assert_eq!(field_of(built), "raft.election_min_ms");
    let built = NodeConfig::builder(2, "no spaces", "/n2/data", tls, peers).build();
    assert_eq!(field_of(built), "cluster_id");
}

#[test]
fn a_built_config_reads_back_from_its_toml() {
    let (tls, peers) = parts();
    let built = NodeConfig::builder(1, "dev", "/n1/data", tls, peers)
        .metrics_listen(Some("127.0.0.1:7106".parse().unwrap()))
        .kek(Some(crate::custody::KekConfig::Local {
            path: PathBuf::from("/kek.key"),
        }))
        .build()
        .unwrap();
    let again = NodeConfig::from_toml(&built.to_toml().unwrap(), Path::new("/elsewhere")).unwrap();
    assert_eq!(again, built);
}

#[test]
fn web3signer_section_https_by_default_plain_http_only_on_loopback() {
    let text = format!("{GOOD}\n[web3signer]\nlisten = \"0.0.0.0:9000\"\n");
    let c = NodeConfig::from_toml(&text, Path::new("/c")).unwrap();
    assert_eq!(
        c.web3signer,
        Some(Web3SignerConfig::https("0.0.0.0:9000".parse().unwrap()))
    );
    // Plain HTTP on loopback, for a named client identity: accepted.
    let text = format!(
        "{GOOD}\n[web3signer]\nlisten = \"127.0.0.1:9000\"\ninsecure_loopback_identity = \"vc-1\"\n"
    );
    let c = NodeConfig::from_toml(&text, Path::new("/c")).unwrap();
    let w3s = c.web3signer.unwrap();
    assert_eq!(w3s.insecure_loopback_identity.as_deref(), Some("vc-1"));
    // Plain HTTP on any other address is refused when the config loads, naming the section.
    for addr in ["0.0.0.0:9000", "10.0.0.5:9000", "[::]:9000"] {
        let text = format!(
            "{GOOD}\n[web3signer]\nlisten = \"{addr}\"\ninsecure_loopback_identity = \"vc-1\"\n"
        );
        match NodeConfig::from_toml(&text, Path::new("/c")) {
            Err(ConfigError::Invalid { field, reason }) => {
                assert_eq!(field, "web3signer");
                assert!(reason.contains("only on a loopback"), "{reason}");
            }
            other => panic!("{addr}: expected a validation error, got {other:?}"),
        }
    }
    // An identity that could pass for a node, or none at all.
    for identity in ["node-1", ""] {
        let field = field_of(edited(|c| {
            c.web3signer = Some(Web3SignerConfig {
                listen: "127.0.0.1:9000".parse().unwrap(),
                insecure_loopback_identity: Some(identity.into()),
            })
        }));
        assert_eq!(field, "web3signer", "{identity:?}");
    }
    // Another listener's address.
    let field = field_of(edited(|c| {
        c.web3signer = Some(Web3SignerConfig::https(c.client_listen));
    }));
    assert_eq!(field, "web3signer");
    // Unknown fields are errors here too.
    let text = format!("{GOOD}\n[web3signer]\nlisten = \"127.0.0.1:9000\"\ntls = false\n");
    assert!(matches!(
        NodeConfig::from_toml(&text, Path::new("/c")),
        Err(ConfigError::Parse { .. })
    ));
}
