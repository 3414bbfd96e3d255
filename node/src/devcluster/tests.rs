//! Creating a dev-cluster directory, and starting/stopping processes with a stand-in program
//! (a shell script) in place of the node binary.
//!
//! The stand-ins signal when they are ready (a marker file written after their signal
//! handling is set up), so no test sleeps to let a process get there; and they end when the
//! test process is gone (`start_stopped` detaches them, and a test killed by SIGKILL runs no
//! `StopOnDrop`). The clusters' ports are reserved for the test's lifetime ([`Ports`]).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::config::NodeConfig;
use crate::keyring::Keyring;
use std::net::SocketAddr;
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

/// The `4n` consecutive loopback ports of an `n`-node cluster (client and peer ports, then
/// metrics, then Web3Signer), held until dropped. Each is a socket bound with `SO_REUSEADDR`
/// that never listens: Linux gives the port to nobody else (`bind(…:0)` and the local ports of
/// outgoing connections skip it), while `start_stopped`'s own check, a listener with
/// `SO_REUSEADDR`, still binds it; connecting to one is refused, as no stand-in listens.
struct Ports {
    base: u16,
    _held: Vec<tokio::net::TcpSocket>,
}

/// Hold 127.0.0.1:`port` (0: a port the kernel picks) as [`Ports`] describes.
fn hold(port: u16) -> std::io::Result<tokio::net::TcpSocket> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    if port != 0 {
        // Nobody holds it now, not even with SO_REUSEADDR (as another test's reservation
        // would): a bind without that option succeeds only then.
        tokio::net::TcpSocket::new_v4()?.bind(addr)?;
    }
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    Ok(socket)
}

fn reserve_ports(n: usize) -> Ports {
    let count = 4 * n as u16;
    'search: for _ in 0..200 {
        let first = hold(0).unwrap();
        let base = first.local_addr().unwrap().port();
        if u32::from(base) + u32::from(count) > 65_000 {
            continue;
        }
        let mut held = vec![first];
        for port in base + 1..base + count {
            match hold(port) {
                Ok(socket) => held.push(socket),
                Err(_) => continue 'search,
            }
        }
        return Ports { base, _held: held };
    }
    panic!("no {count} consecutive free ports on 127.0.0.1");
}

/// Wait until `path` exists: a stand-in writes it once it is set up.
fn wait_for_file(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} not written within 10 s",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The marker a stand-in writes for node `id` once its signal handling is set up.
fn ready_marker(cluster: &DevCluster, id: u64) -> PathBuf {
    PathBuf::from(format!("{}.ready", cluster.config_path(id).display()))
}

/// Shell lines that end a stand-in when this test process is gone.
fn while_the_test_runs() -> String {
    format!(
        "while kill -0 {} 2>/dev/null; do sleep 0.1; done\n",
        std::process::id()
    )
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

/// A stand-in for the node binary (run as `<exe> node --config <node.toml>`): a shell script
/// that logs its arguments and then either exits at once, or sets up SIGTERM to exit, writes
/// its [`ready_marker`] and keeps running while the test does.
fn stand_in(dir: &Path, keep_running: bool) -> PathBuf {
    let path = dir.join(if keep_running {
        "fake-node"
    } else {
        "failing-node"
    });
    let body = if keep_running {
        format!(
            "#!/bin/sh\necho \"fake node $*\"\ntrap 'exit 0' TERM\ntouch \"$3.ready\"\n{}",
            while_the_test_runs()
        )
    } else {
        "#!/bin/sh\necho \"error: cannot load $3\" >&2\nexit 1\n".to_owned()
    };
    std::fs::write(&path, body).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[test]
fn starts_detached_processes_and_stops_them() {
    let tmp = TempDir::new("procs");
    let ports = reserve_ports(3);
    let cluster = DevCluster::create(&tmp.0.join("c"), 3, ports.base).unwrap();
    let exe = stand_in(&tmp.0, true);
    let _guard = StopOnDrop(&cluster);
    let started = cluster.start_stopped(&exe).unwrap();
    assert_eq!(started.len(), 3);
    for (id, _) in &started {
        wait_for_file(&ready_marker(&cluster, *id));
    }
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
    let ports = reserve_ports(1);
    let cluster = DevCluster::create(&tmp.0.join("c"), 1, ports.base).unwrap();
    let exe = tmp.0.join("stubborn-node");
    std::fs::write(
        &exe,
        format!(
            "#!/bin/sh\ntrap '' TERM\ntouch \"$3.ready\"\n{}",
            while_the_test_runs()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    let _guard = StopOnDrop(&cluster);
    let started = cluster.start_stopped(&exe).unwrap();
    // SIGTERM is ignored from here on.
    wait_for_file(&ready_marker(&cluster, 1));
    let stopped = cluster.stop(Duration::from_millis(300)).unwrap();
    assert_eq!(stopped, vec![(1, Stopped::Killed(started[0].1))]);
    assert!(!cluster.process(1).running);
}

#[tokio::test]
async fn waiting_for_a_leader_reports_nodes_that_exit() {
    let tmp = TempDir::new("exits");
    let ports = reserve_ports(3);
    let cluster = DevCluster::create(&tmp.0.join("c"), 3, ports.base).unwrap();
    let exe = stand_in(&tmp.0, false);
    cluster.start_stopped(&exe).unwrap();
    // NodeExited, not NoLeader: the exits were noticed before the timeout (which ends the wait
    // with NoLeader).
    match cluster.wait_for_leader(Duration::from_secs(20)).await {
        Err(DevClusterError::NodeExited { id, log, tail }) => {
            // Whichever node is named (they exit in no fixed order), its own log's end.
            assert!((1..=3).contains(&id), "{id}");
            assert_eq!(log, cluster.log_path(id));
            assert_eq!(
                tail,
                format!("error: cannot load {}", cluster.config_path(id).display())
            );
        }
        other => panic!("{other:?}"),
    }
    // Started again, the nodes' logs hold both starts' errors; what is shown is this start's
    // alone, once.
    cluster.start_stopped(&exe).unwrap();
    match cluster.wait_for_leader(Duration::from_secs(20)).await {
        Err(DevClusterError::NodeExited { id, tail, .. }) => assert_eq!(
            tail,
            format!("error: cannot load {}", cluster.config_path(id).display())
        ),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn waiting_for_a_leader_times_out_when_nodes_never_answer() {
    let tmp = TempDir::new("silent");
    let ports = reserve_ports(1);
    let cluster = DevCluster::create(&tmp.0.join("c"), 1, ports.base).unwrap();
    let exe = stand_in(&tmp.0, true);
    let _guard = StopOnDrop(&cluster);
    cluster.start_stopped(&exe).unwrap();
    wait_for_file(&ready_marker(&cluster, 1));
    let result = cluster.wait_for_leader(Duration::from_millis(500)).await;
    match result {
        Err(e @ DevClusterError::NoLeader { .. }) => {
            assert!(e.to_string().contains("node-1"), "{e}");
        }
        other => panic!("{other:?}"),
    }
}
