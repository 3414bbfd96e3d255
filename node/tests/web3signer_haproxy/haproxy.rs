//! HAProxy for the failover test: the child process (killed when its guard drops, also on
//! panic), its config rendered from `data/web3signer-haproxy.cfg`, its stats socket, and a
//! recorder of what HAProxy and each node's `/upcheck` report over time.
//!
//! Owns: `Haproxy`, `ServerState`, `server_states` and `record_states`.
//!
//! Must not: sign, judge the client's attempts, or stop or start nodes; it only observes them.

use crate::support::Cluster;
use signer_node::client::web3signer::Web3SignerConnection;
use signer_node::tls::TlsMaterial;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const HAPROXY: &str = "/usr/sbin/haproxy";
const CONFIG_TEMPLATE: &str = include_str!("../data/web3signer-haproxy.cfg");

/// One backend server, as HAProxy's `show stat` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerState {
    /// `UP`, `DOWN`, `UP 1/2` (going down), `DOWN 1/2` (going up), …
    pub status: String,
    /// The last check's result (`L7OK`, `L7STS`, `L4CON`, …).
    pub check: String,
    /// Sessions sent to this server so far.
    pub sessions: u64,
}

/// HAProxy running on a config written for one cluster; killed when dropped.
pub struct Haproxy {
    child: Child,
    pub addr: SocketAddr,
    pub stats: PathBuf,
    log: PathBuf,
    /// The servers in config order (`node-<id>`).
    pub order: Vec<String>,
}

impl Haproxy {
    /// Write the config for `cluster`'s nodes, in `order`, into the cluster's temp dir and start
    /// HAProxy in the foreground.
    pub fn start(cluster: &Cluster, order: &[u64]) -> Haproxy {
        assert!(
            Path::new(HAPROXY).exists(),
            "{HAPROXY} is missing: run ./test.sh, which installs Debian's haproxy package"
        );
        let dir = cluster.dir().join("haproxy");
        std::fs::create_dir_all(&dir).unwrap();
        // A free port, probed (HAProxy exits at once if another process takes it meanwhile, and
        // `wait_up` reports that with its log).
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let stats = dir.join("stats.sock");
        let servers: Vec<String> = order
            .iter()
            .map(|id| format!("    server node-{id} {}", cluster.node(*id).web3signer_addr))
            .collect();
        let config = CONFIG_TEMPLATE
            .replace("@BIND@", &addr.to_string())
            .replace("@STATS_SOCKET@", stats.to_str().unwrap())
            .replace("@SERVERS@", &servers.join("\n"));
        for placeholder in ["@BIND@", "@STATS_SOCKET@", "@SERVERS@"] {
            assert!(
                !config.contains(placeholder),
                "{placeholder} left in:\n{config}"
            );
        }
        let config_path = dir.join("haproxy.cfg");
        std::fs::write(&config_path, &config).unwrap();
        let log = dir.join("haproxy.log");
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(HAPROXY)
            .arg("-f")
            .arg(&config_path)
            .arg("-db")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {HAPROXY}: {e}"));
        Haproxy {
            child,
            addr,
            stats,
            log,
            order: order.iter().map(|id| format!("node-{id}")).collect(),
        }
    }

    pub fn log_tail(&self, lines: usize) -> String {
        tail(
            &std::fs::read_to_string(&self.log).unwrap_or_default(),
            lines,
        )
    }

    /// Wait until HAProxy serves its stats socket and sees every server of `servers` UP, with
    /// its last check passed (`L7OK`).
    pub async fn wait_up(&mut self, servers: &[String], within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("haproxy exited ({status}):\n{}", self.log_tail(40));
            }
            let states = server_states(&self.stats).await.unwrap_or_default();
            let up = |name: &String| {
                states
                    .get(name)
                    .is_some_and(|s| s.status == "UP" && s.check == "L7OK")
            };
            if servers.iter().all(up) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "HAProxy did not see {servers:?} up within {within:?}: {states:#?}\n{}",
                self.log_tail(40)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The last `lines` lines of `text`.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The backend's servers as `show stat` on the stats socket reports them.
pub async fn server_states(socket: &Path) -> Option<BTreeMap<String, ServerState>> {
    let mut stream = tokio::net::UnixStream::connect(socket).await.ok()?;
    stream.write_all(b"show stat\n").await.ok()?;
    let mut csv = String::new();
    tokio::time::timeout(Duration::from_secs(2), stream.read_to_string(&mut csv))
        .await
        .ok()?
        .ok()?;
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next()?.trim_start_matches("# ").split(',').collect();
    let column = |name: &str| header.iter().position(|h| *h == name);
    let (px, sv, status, check, stot) = (
        column("pxname")?,
        column("svname")?,
        column("status")?,
        column("check_status")?,
        column("stot")?,
    );
    let mut out = BTreeMap::new();
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() > px.max(sv).max(status).max(check).max(stot)
            && f[px] == "signers"
            && f[sv].starts_with("node-")
        {
            out.insert(
                f[sv].to_owned(),
                ServerState {
                    status: f[status].to_owned(),
                    check: f[check].trim_start_matches("* ").to_owned(),
                    sessions: f[stot].parse().unwrap_or(0),
                },
            );
        }
    }
    Some(out)
}

/// Until `stop`: every change of HAProxy's view of the servers, and of each node's own
/// `/upcheck` answer (asked directly over a kept-alive connection, not through HAProxy), as
/// timeline events.
pub async fn record_states(
    stats: PathBuf,
    nodes: Vec<(u64, SocketAddr)>,
    tls: TlsMaterial,
    t0: Instant,
    events: Arc<Mutex<Vec<(Duration, String)>>>,
    stop: Arc<AtomicBool>,
) {
    let mut last = BTreeMap::new();
    let mut conns: BTreeMap<u64, Web3SignerConnection> = BTreeMap::new();
    let changed = |key: String, seen: String, last: &mut BTreeMap<String, String>| {
        if last.get(&key) != Some(&seen) {
            events
                .lock()
                .unwrap()
                .push((t0.elapsed(), format!("{key}: {seen}")));
            last.insert(key, seen);
        }
    };
    while !stop.load(Ordering::SeqCst) {
        for (name, s) in server_states(&stats).await.unwrap_or_default() {
            let seen = format!("{} (last check {})", s.status, s.check);
            changed(format!("haproxy sees {name}"), seen, &mut last);
        }
        for &(id, addr) in &nodes {
            if let std::collections::btree_map::Entry::Vacant(slot) = conns.entry(id) {
                let connect = Web3SignerConnection::connect(addr, Some((&tls, "localhost")));
                if let Ok(Ok(c)) = tokio::time::timeout(Duration::from_secs(1), connect).await {
                    slot.insert(c);
                }
            }
            let seen = match conns.get_mut(&id) {
                None => "unreachable".to_owned(),
                Some(c) => {
                    let get = c.get("/upcheck", None);
                    match tokio::time::timeout(Duration::from_secs(1), get).await {
                        Ok(Ok(a)) => format!("{} {}", a.status, a.text().trim()),
                        _ => {
                            conns.remove(&id);
                            "no answer".to_owned()
                        }
                    }
                }
            };
            changed(format!("node-{id} /upcheck"), seen, &mut last);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
