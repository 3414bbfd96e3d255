//! Creating a dev-cluster directory, and starting/stopping processes with a stand-in program
//! (a shell script) in place of the node binary.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::config::NodeConfig;
use crate::keyring::Keyring;
use std::os::unix::fs::PermissionsExt;

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "qs-dc-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Stops a cluster's processes when dropped, so a failing test leaves none behind.
struct StopOnDrop<'a>(&'a DevCluster);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        let _ = self.0.stop(Duration::from_secs(2));
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// A free base port for `n` nodes (3n consecutive free ports: client, peer and metrics), so
/// parallel tests don't clash.
fn free_base(n: usize) -> u16 {
    'search: for _ in 0..200 {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = probe.local_addr().unwrap().port();
        drop(probe);
        if base < 1024 || u32::from(base) + 3 * n as u32 > 65_000 {
            continue;
        }
        for p in base..base + 3 * n as u16 {
            if std::net::TcpListener::bind(("127.0.0.1", p)).is_err() {
                continue 'search;
            }
        }
        return base;
    }
    panic!("no free ports");
}

#[test]
fn creates_a_complete_cluster_directory() {
    let tmp = TempDir::new("create");
    let dir = tmp.0.join("c");
    let (cluster, created) = DevCluster::open_or_create(&dir, None, Some(7300)).unwrap();
    assert!(created);
    let d = cluster.descriptor();
    assert_eq!(d.nodes.len(), 3);
    assert_eq!(d.nodes[0].client_addr, "127.0.0.1:7300".parse().unwrap());
    assert_eq!(d.nodes[0].peer_addr, "127.0.0.1:7301".parse().unwrap());
    assert_eq!(d.nodes[2].client_addr, "127.0.0.1:7304".parse().unwrap());
    assert_eq!(d.nodes[2].peer_addr, "127.0.0.1:7305".parse().unwrap());
    assert_eq!(d.keys, vec!["demo-espresso", "demo-eth2"]);
    assert!(d.cluster_id.starts_with("dev-"));
    assert_eq!(d.ca, cluster.dir().join("pki/ca.pem"));
    assert!(d.clients[SEQUENCER].cert.exists());
    assert_eq!(mode(&d.clients[SEQUENCER].key), 0o600);
    assert_eq!(mode(&cluster.dir().join("pki/ca.key")), 0o600);
    // The admin client certificate names the identity the Admin service accepts.
    assert_eq!(
        d.clients.keys().collect::<Vec<_>>(),
        vec![ADMIN, "admin-2", AUDITOR, SEQUENCER]
    );
    assert_eq!(mode(&d.clients[ADMIN].key), 0o600);
    assert_eq!(
        d.client_tls(ADMIN).unwrap().identity().as_deref(),
        Some(ADMIN)
    );
    assert_eq!(
        d.client_tls(SEQUENCER).unwrap().identity().as_deref(),
        Some(SEQUENCER)
    );
    // One local KEK for the cluster.
    let kek_path = cluster.dir().join(KEK_FILE);
    assert_eq!(mode(&kek_path), 0o600);
    let kek = crate::custody::LocalKek::open(&kek_path).unwrap();

    let admin = &d.admins[ADMIN];
    assert_eq!(mode(&admin.key), 0o600);
    let seed = std::fs::read_to_string(&admin.key).unwrap();
    let seed = hex::decode(seed.trim()).unwrap();
    let sk = crate::scheme::ed25519::SecretKey::from_bytes(&seed).unwrap();
    assert_eq!(
        admin.public_key,
        format!("0x{}", hex::encode(sk.public_key().to_bytes()))
    );

    let mut public_keys = Vec::new();
    for node in &d.nodes {
        let config = NodeConfig::load(&cluster.config_path(node.id)).unwrap();
        assert_eq!(config.node_id, node.id);
        assert_eq!(config.cluster_id, d.cluster_id);
        assert_eq!(config.bootstrap, node.id == 1);
        assert!(config.sync_writes);
        assert_eq!(config.client_listen, node.client_addr);
        // Metrics on loopback, after every client and peer port: 7306, 7307, 7308.
        assert_eq!(
            config.metrics_listen,
            Some(std::net::SocketAddr::from((
                [127, 0, 0, 1],
                7305 + node.id as u16
            )))
        );
        assert_eq!(config.peers.len(), 3);
        assert!(config.tls.cert.exists(), "{}", config.tls.cert.display());
        assert!(config.tls.ca.exists());
        assert!(config.keys_dir.starts_with(cluster.node_dir(node.id)));
        // Every node seals and opens registry keys with the cluster's one KEK file, named
        // relative to its config file.
        let text = std::fs::read_to_string(cluster.config_path(node.id)).unwrap();
        assert!(
            text.contains("[kek]\nbackend = \"local\"\npath = \"../kek.key\""),
            "{text}"
        );
        match &config.kek {
            Some(crate::custody::KekConfig::Local { path }) => {
                assert_eq!(
                    std::fs::canonicalize(path).unwrap(),
                    std::fs::canonicalize(&kek_path).unwrap()
                );
                use crate::custody::Kek;
                let opened = crate::custody::LocalKek::open(path).unwrap();
                assert_eq!(opened.descriptor(), kek.descriptor());
            }
            other => panic!("node-{}: kek {other:?}", node.id),
        }
        assert!(config.retired_keks.is_empty());
        for (key_id, _) in DEMO_KEYS {
            assert_eq!(mode(&config.keys_dir.join(format!("{key_id}.key"))), 0o600);
        }
        let ring = Keyring::load_dir(&config.keys_dir).unwrap();
        let keys: Vec<(String, String)> = ring
            .keys()
            .into_iter()
            .map(|k| (k.key_id.clone(), k.public_key_text.clone()))
            .collect();
        public_keys.push(keys);
    }
    // Every node holds the same two keys.
    assert_eq!(public_keys[0], public_keys[1]);
    assert_eq!(public_keys[0], public_keys[2]);
    assert!(public_keys[0][0].1.starts_with("BLS_VER_KEY~"));
    assert!(public_keys[0][1].1.starts_with("0x"));

    // Opening again keeps everything; mismatched options are refused.
    let (again, created) = DevCluster::open_or_create(&dir, None, None).unwrap();
    assert!(!created);
    assert_eq!(again.descriptor(), cluster.descriptor());
    assert!(DevCluster::open_or_create(&dir, Some(3), Some(7300)).is_ok());
    assert!(matches!(
        DevCluster::open_or_create(&dir, Some(5), None),
        Err(DevClusterError::InvalidOption(_))
    ));
    assert!(matches!(
        DevCluster::open_or_create(&dir, None, Some(7400)),
        Err(DevClusterError::InvalidOption(_))
    ));
    // Nothing is left beside the directory.
    let siblings: Vec<_> = std::fs::read_dir(&tmp.0).unwrap().collect();
    assert_eq!(siblings.len(), 1);
}

#[test]
fn refuses_bad_options_and_foreign_directories() {
    let tmp = TempDir::new("refuse");
    for n in [0, 2, 4, 7] {
        assert!(matches!(
            DevCluster::create(&tmp.0.join("x"), n, 7100),
            Err(DevClusterError::InvalidOption(_))
        ));
    }
    assert!(matches!(
        DevCluster::create(&tmp.0.join("x"), 3, 65_532),
        Err(DevClusterError::InvalidOption(_))
    ));
    assert!(matches!(
        DevCluster::create(&tmp.0.join("x"), 3, 80),
        Err(DevClusterError::InvalidOption(_))
    ));
    let foreign = tmp.0.join("foreign");
    std::fs::create_dir_all(&foreign).unwrap();
    std::fs::write(foreign.join("notes.txt"), "mine").unwrap();
    assert!(matches!(
        DevCluster::open_or_create(&foreign, None, None),
        Err(DevClusterError::NotACluster(_))
    ));
    assert_eq!(
        std::fs::read_to_string(foreign.join("notes.txt")).unwrap(),
        "mine"
    );
    // An empty directory is fine; one node is allowed.
    let empty = tmp.0.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let (one, _) = DevCluster::open_or_create(&empty, Some(1), Some(7500)).unwrap();
    assert_eq!(one.descriptor().nodes.len(), 1);
}

/// A stand-in for the node binary: a shell script that logs its arguments and then either
/// keeps running or exits at once.
fn stand_in(dir: &Path, keep_running: bool) -> PathBuf {
    let path = dir.join(if keep_running {
        "fake-node"
    } else {
        "failing-node"
    });
    let body = if keep_running {
        "#!/bin/sh\necho \"fake node $*\"\ntrap 'exit 0' TERM\nwhile true; do sleep 0.1; done\n"
    } else {
        "#!/bin/sh\necho \"error: cannot load $3\" >&2\nexit 1\n"
    };
    std::fs::write(&path, body).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[test]
fn starts_detached_processes_and_stops_them() {
    let tmp = TempDir::new("procs");
    let cluster = DevCluster::create(&tmp.0.join("c"), 3, free_base(3)).unwrap();
    let exe = stand_in(&tmp.0, true);
    let _guard = StopOnDrop(&cluster);
    let started = cluster.start_stopped(&exe).unwrap();
    assert_eq!(started.len(), 3);
    for (id, pid) in &started {
        let p = cluster.process(*id);
        assert_eq!(p.pid, Some(*pid));
        assert!(p.running);
    }
    // Running nodes are not started twice.
    assert!(cluster.start_stopped(&exe).unwrap().is_empty());
    // A pid file pointing at some other process does not count as the node.
    std::fs::write(cluster.pid_path(2), format!("{}\n", std::process::id())).unwrap();
    assert!(!cluster.process(2).running);
    std::fs::write(cluster.pid_path(2), format!("{}\n", started[1].1)).unwrap();

    let stopped = cluster.stop(Duration::from_secs(5)).unwrap();
    assert_eq!(
        stopped,
        started
            .iter()
            .map(|(id, pid)| (*id, Stopped::Terminated(*pid)))
            .collect::<Vec<_>>()
    );
    for p in cluster.processes() {
        assert_eq!(p.pid, None);
        assert!(!p.running);
    }
    let log = std::fs::read_to_string(cluster.log_path(1)).unwrap();
    let config = cluster.config_path(1);
    assert!(
        log.contains(&format!("fake node node --config {}", config.display())),
        "{log}"
    );
    // Stopping a stopped cluster is a no-op.
    assert!(cluster
        .stop(Duration::from_secs(1))
        .unwrap()
        .iter()
        .all(|(_, s)| *s == Stopped::NotRunning));
}

#[test]
fn a_process_that_ignores_sigterm_is_killed() {
    let tmp = TempDir::new("stubborn");
    let cluster = DevCluster::create(&tmp.0.join("c"), 1, free_base(1)).unwrap();
    let exe = tmp.0.join("stubborn-node");
    std::fs::write(
        &exe,
        "#!/bin/sh\ntrap '' TERM\nwhile true; do sleep 0.1; done\n",
    )
    .unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    let _guard = StopOnDrop(&cluster);
    let started = cluster.start_stopped(&exe).unwrap();
    // Give the shell a moment to install its trap (no harm if it is late: then TERM works).
    std::thread::sleep(Duration::from_millis(200));
    let stopped = cluster.stop(Duration::from_millis(300)).unwrap();
    assert_eq!(stopped, vec![(1, Stopped::Killed(started[0].1))]);
    assert!(!cluster.process(1).running);
}

#[tokio::test]
async fn waiting_for_a_leader_reports_nodes_that_exit() {
    let tmp = TempDir::new("exits");
    let cluster = DevCluster::create(&tmp.0.join("c"), 3, free_base(3)).unwrap();
    let exe = stand_in(&tmp.0, false);
    cluster.start_stopped(&exe).unwrap();
    let started = Instant::now();
    match cluster.wait_for_leader(Duration::from_secs(20)).await {
        Err(DevClusterError::NodeExited { tail, .. }) => {
            assert!(tail.contains("error: cannot load"), "{tail}");
            assert!(tail.contains("node.toml"), "{tail}");
        }
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn waiting_for_a_leader_times_out_when_nodes_never_answer() {
    let tmp = TempDir::new("silent");
    let cluster = DevCluster::create(&tmp.0.join("c"), 1, free_base(1)).unwrap();
    let exe = stand_in(&tmp.0, true);
    let _guard = StopOnDrop(&cluster);
    cluster.start_stopped(&exe).unwrap();
    let result = cluster.wait_for_leader(Duration::from_millis(500)).await;
    match result {
        Err(e @ DevClusterError::NoLeader { .. }) => {
            assert!(e.to_string().contains("node-1"), "{e}");
        }
        other => panic!("{other:?}"),
    }
}
