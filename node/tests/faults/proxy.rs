//! The fault-injection TCP proxy: one listener in front of each node's peer port (every node
//! dials it, as the Raft membership names it) and one in front of each node's client and REST
//! ports (the test's clients dial those). Each connection belongs to a directed link
//! `(from, to)`; a link's mode is switched at run time and applies to its open connections at
//! once: pass, delay (each chunk, both directions), blackhole (accept and hold, forward
//! nothing; what was held is forwarded when the link passes again, as TCP would retransmit
//! after a partition) or reset (close with RST).
//!
//! Which node dialed a peer listener is found from the kernel: the accepted connection's
//! remote port is the dialer's local port, `/proc/net/tcp` names that socket's inode, and the
//! node process (its command line names `node-<id>/node.toml` under the cluster's directory)
//! that holds the inode is the sender. So every directed pair of nodes can be cut on its own
//! although all nodes dial the same address for a peer.
//!
//! Owns: the listeners, the per-connection pumps (joined or aborted on drop) and the record of
//! the first bytes of client connections (for the replay check). Must not: look inside the
//! bytes (TLS is end to end), or change what a node is configured with.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// The `from` of a link whose sender is the test's clients.
pub const CLIENTS: u64 = 0;
/// The `from` of a connection whose sender could not be identified (counted, passed).
pub const UNKNOWN: u64 = u64::MAX;
/// How many bytes of a client connection are recorded for a replay.
const RECORD_LIMIT: usize = 64 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Pass,
    Delay(Duration),
    Blackhole,
    Reset,
}

/// What a listener stands in front of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Port {
    Peer,
    Client,
    Rest,
}

#[derive(Default)]
struct Links {
    modes: BTreeMap<(u64, u64), Mode>,
    /// Recorded client→node bytes of client-port connections, by node.
    recorded: BTreeMap<u64, Vec<Vec<u8>>>,
    unknown_senders: usize,
}

/// The proxy. Dropping it stops every listener and connection.
pub struct Proxy {
    links: Arc<Mutex<Links>>,
    changed: watch::Sender<u64>,
    /// Every listener: (port kind, node) → (listen address, real address).
    fronts: Mutex<BTreeMap<(Port, u64), (SocketAddr, SocketAddr)>>,
    tasks: Mutex<JoinSet<()>>,
    /// The cluster's directory: node processes are recognized by it in their command line.
    cluster_dir: Mutex<Option<PathBuf>>,
}

impl Proxy {
    pub fn new() -> Arc<Proxy> {
        Arc::new(Proxy {
            links: Arc::default(),
            changed: watch::channel(0).0,
            fronts: Mutex::default(),
            tasks: Mutex::new(JoinSet::new()),
            cluster_dir: Mutex::new(None),
        })
    }

    /// Name the cluster directory whose node processes dial the peer listeners.
    pub fn set_cluster_dir(&self, dir: PathBuf) {
        *self.cluster_dir.lock().unwrap() = Some(dir);
    }

    /// A listener in front of node `to`'s `port` at `real`; returns its address. Idempotent.
    pub fn front(self: &Arc<Self>, port: Port, to: u64, real: SocketAddr) -> SocketAddr {
        if let Some((addr, _)) = self.fronts.lock().unwrap().get(&(port, to)) {
            return *addr;
        }
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap();
        self.fronts.lock().unwrap().insert((port, to), (addr, real));
        let me = Arc::clone(self);
        self.tasks.lock().unwrap().spawn(async move {
            let listener = TcpListener::from_std(std_listener).unwrap();
            loop {
                let Ok((inbound, remote)) = listener.accept().await else {
                    continue;
                };
                let from = match port {
                    Port::Peer => me.sender(remote, addr).await,
                    Port::Client | Port::Rest => CLIENTS,
                };
                let record = port == Port::Client;
                let me2 = Arc::clone(&me);
                me.tasks.lock().unwrap().spawn(async move {
                    me2.serve(inbound, from, to, real, record).await;
                });
            }
        });
        addr
    }

    /// The listener address in front of node `to`'s `port`.
    pub fn addr(&self, port: Port, to: u64) -> SocketAddr {
        self.fronts.lock().unwrap()[&(port, to)].0
    }

    pub fn set(&self, from: u64, to: u64, mode: Mode) {
        self.links.lock().unwrap().modes.insert((from, to), mode);
        self.changed.send_modify(|g| *g += 1);
    }

    /// Both directions between `a` and `b`.
    pub fn set_both(&self, a: u64, b: u64, mode: Mode) {
        self.set(a, b, mode);
        self.set(b, a, mode);
    }

    /// Every link passes again.
    pub fn heal(&self) {
        self.links.lock().unwrap().modes.clear();
        self.changed.send_modify(|g| *g += 1);
    }

    pub fn mode(&self, from: u64, to: u64) -> Mode {
        mode_of(&self.links, from, to)
    }

    pub fn unknown_senders(&self) -> usize {
        self.links.lock().unwrap().unknown_senders
    }

    /// The recorded first bytes of the client connections made to node `to` so far.
    pub fn recorded(&self, to: u64) -> Vec<Vec<u8>> {
        self.links
            .lock()
            .unwrap()
            .recorded
            .get(&to)
            .cloned()
            .unwrap_or_default()
    }

    /// The real address behind a listener.
    pub fn real(&self, port: Port, to: u64) -> SocketAddr {
        self.fronts.lock().unwrap()[&(port, to)].1
    }

    /// The node whose process holds the other end of the connection from `remote` to `local`.
    async fn sender(&self, remote: SocketAddr, local: SocketAddr) -> u64 {
        let dir = self.cluster_dir.lock().unwrap().clone();
        for _ in 0..5 {
            let dir = dir.clone();
            let found =
                tokio::task::spawn_blocking(move || dialer(remote, local, dir.as_deref())).await;
            if let Ok(Some(id)) = found {
                return id;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.links.lock().unwrap().unknown_senders += 1;
        UNKNOWN
    }

    async fn serve(&self, inbound: TcpStream, from: u64, to: u64, real: SocketAddr, record: bool) {
        if self.mode(from, to) == Mode::Reset {
            let _ = inbound.set_zero_linger();
            return;
        }
        let Ok(outbound) = TcpStream::connect(real).await else {
            let _ = inbound.set_zero_linger();
            return;
        };
        let _ = inbound.set_nodelay(true);
        let _ = outbound.set_nodelay(true);
        let recording = record.then(|| {
            let mut links = self.links.lock().unwrap();
            let list = links.recorded.entry(to).or_default();
            list.push(Vec::new());
            list.len() - 1
        });
        let (in_r, in_w) = inbound.into_split();
        let (out_r, out_w) = outbound.into_split();
        let up = self.pump(in_r, out_w, from, to, recording);
        let down = self.pump(out_r, in_w, from, to, None);
        // Either direction ending ends the connection (both halves are dropped).
        tokio::select! {
            _ = up => {}
            _ = down => {}
        }
    }

    /// Copy `r` to `w` under the link's mode; returns when either side ends or on a reset.
    async fn pump(
        &self,
        mut r: tokio::net::tcp::OwnedReadHalf,
        mut w: tokio::net::tcp::OwnedWriteHalf,
        from: u64,
        to: u64,
        recording: Option<usize>,
    ) {
        let mut changed = self.changed.subscribe();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = tokio::select! {
                n = r.read(&mut buf) => match n {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                },
                _ = changed.changed() => {
                    if self.mode(from, to) == Mode::Reset {
                        return;
                    }
                    continue;
                }
            };
            if let Some(i) = recording {
                let mut links = self.links.lock().unwrap();
                let rec = &mut links.recorded.get_mut(&to).unwrap()[i];
                let room = RECORD_LIMIT.saturating_sub(rec.len()).min(n);
                rec.extend_from_slice(&buf[..room]);
            }
            loop {
                match self.mode(from, to) {
                    Mode::Pass => break,
                    Mode::Delay(d) => {
                        tokio::time::sleep(d).await;
                        break;
                    }
                    Mode::Reset => return,
                    Mode::Blackhole => {
                        let _ = changed.changed().await;
                    }
                }
            }
            if w.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.tasks.lock().unwrap().abort_all();
    }
}

fn mode_of(links: &Mutex<Links>, from: u64, to: u64) -> Mode {
    links
        .lock()
        .unwrap()
        .modes
        .get(&(from, to))
        .copied()
        .unwrap_or(Mode::Pass)
}

/// `127.0.0.1:port` as `/proc/net/tcp` writes it.
fn proc_addr(addr: SocketAddr) -> String {
    format!("0100007F:{:04X}", addr.port())
}

/// The id of the node process that holds the socket connected from `remote` to `local`.
fn dialer(
    remote: SocketAddr,
    local: SocketAddr,
    cluster_dir: Option<&std::path::Path>,
) -> Option<u64> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let (want_local, want_remote) = (proc_addr(remote), proc_addr(local));
    let inode = table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        (f.get(1) == Some(&want_local.as_str()) && f.get(2) == Some(&want_remote.as_str()))
            .then(|| f.get(9).map(|s| s.to_string()))
            .flatten()
    })?;
    let target = format!("socket:[{inode}]");
    let dir = cluster_dir?.to_string_lossy().into_owned();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if !cmdline.contains(&dir) || !cmdline.contains("node.toml") || cmdline.contains("strace") {
            continue;
        }
        let Some(id) = node_id_in(&cmdline) else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if std::fs::read_link(fd.path()).is_ok_and(|l| l.to_string_lossy() == target) {
                return Some(id);
            }
        }
    }
    None
}

/// The `<id>` of `node-<id>/node.toml` in a command line.
fn node_id_in(cmdline: &str) -> Option<u64> {
    let end = cmdline.find("/node.toml")?;
    let start = cmdline[..end].rfind("node-")? + "node-".len();
    cmdline[start..end].parse().ok()
}

/// Send `bytes` (a recorded client connection) to `addr` as a new connection and read until
/// the server closes it; returns how many bytes came back and whether the server closed the
/// connection within `within`.
pub async fn replay(addr: SocketAddr, bytes: &[u8], within: Duration) -> (usize, bool) {
    let Ok(mut s) = TcpStream::connect(addr).await else {
        return (0, true);
    };
    let _ = s.write_all(bytes).await;
    let mut got = 0;
    let mut buf = vec![0u8; 16 * 1024];
    let read_all = async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return true,
                Ok(n) => got += n,
            }
        }
    };
    let closed = tokio::time::timeout(within, read_all)
        .await
        .unwrap_or(false);
    (got, closed)
}
