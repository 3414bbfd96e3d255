//! A 3-node cluster on three "hosts": network namespaces on a bridge, each node installed from
//! the host bundle `signer init` writes (`hosts/node-<id>/`, as its INSTALL.md says) and
//! started with `ip netns exec`. Clients in the root namespace reach the nodes over the bridge
//! with `cluster.json` and sign espresso quorum votes: every view's honest vote and a
//! conflicting one (same view, other leaf) race through two different nodes. Node 3 is cut off
//! (its link down) while the other two keep signing, then healed and caught up; then node 3 is
//! replaced by a node 4 in a fourth namespace, by an approved `node replace`, while clients
//! sign. The independent oracle (`oracle/`) verifies every signature received and finds no
//! conflicting pair; the live nodes report one audit head. A 5-host cluster loses two hosts
//! at once (a minority), keeps signing, and takes them back. A 3-host cluster that loses every
//! node and disk is rebuilt on its hosts from an auditor's backup (`signer restore`) and
//! refuses everything the backup and its margin cover.
//!
//! Owns: the bridge, the namespaces, the veth pairs and the node processes of one run, all
//! named with a random tag (parallel runs do not collide) and removed in `Drop`, also on
//! panic; node processes also die with the test process (`support::spawn_tied`). Must not:
//! skip when namespaces cannot be made (it fails, naming the `ip` command), touch interfaces
//! or namespaces it did not create, or start a binary other than the `signer` just built.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod adversarial;
#[path = "multihost/net.rs"]
mod net;
mod oracle;
mod support;

use adversarial::request;
use net::{run, Net};
use oracle::requests::Msg;
use oracle::Oracle;
use signer_node::client::{ClientError, ClusterDescriptor, PoolOptions, SignerPool, SoftApprover};
use signer_node::config::NodeConfig;
use signer_node::pb;
use signer_node::pb::propose_request::Request;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::ESPRESSO_KEY;

const SIGNER: &str = env!("CARGO_BIN_EXE_signer");
const CLIENT_PORT: u16 = 7100;
const PEER_PORT: u16 = 7101;

/// The cluster directory, the installed hosts and their node processes.
struct Hosts {
    /// Killed before `net` goes (fields drop in order, after `Drop::drop`).
    nodes: Mutex<BTreeMap<u64, Child>>,
    net: Net,
    dir: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for (_, mut child) in std::mem::take(
            &mut *self
                .nodes
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        ) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Hosts {
    fn client_addr(&self, id: u64) -> SocketAddr {
        SocketAddr::from((self.net.addr(id), CLIENT_PORT))
    }

    fn peer_addr(&self, id: u64) -> SocketAddr {
        SocketAddr::from((self.net.addr(id), PEER_PORT))
    }

    fn root(&self, id: u64) -> PathBuf {
        self.dir.join(format!("root-{id}"))
    }

    fn etc(&self, id: u64) -> PathBuf {
        self.root(id).join("etc/quorum-signer")
    }

    /// Install `hosts/node-<from>/`'s tree into `root-<id>` as INSTALL.md says (no service
    /// user or systemd here: the test runs as root and starts the node itself).
    fn install(&self, from: u64, id: u64) {
        let (etc, data) = (self.etc(id), self.root(id).join("var/lib/quorum-signer"));
        let bundle = self
            .dir
            .join(format!("hosts/node-{from}/etc/quorum-signer/."));
        run("install", &["-d", "-m", "0700", path(&etc), path(&data)]);
        run("cp", &["-a", path(&bundle), path(&etc)]);
    }

    /// Start the installed node `id` in its namespace; its output goes to `root-<id>/node.log`.
    fn start(&self, id: u64) {
        let log = std::fs::File::create(self.root(id).join("node.log")).unwrap();
        let mut command = Command::new("ip");
        command
            .args([
                "netns",
                "exec",
                &self.net.ns(id),
                SIGNER,
                "node",
                "--config",
            ])
            .arg(self.etc(id).join("node.toml"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log));
        let child = support::spawn_tied(command, &[]).unwrap();
        self.nodes.lock().unwrap().insert(id, child);
    }

    fn stop(&self, id: u64) {
        let mut child = self.nodes.lock().unwrap().remove(&id).unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// A failover pool over nodes 1..=`nodes`, as client `name` of `cluster.json`.
    async fn pool(&self, name: &str, nodes: u64) -> SignerPool {
        let tls = ClusterDescriptor::load(&self.dir)
            .unwrap()
            .client_tls(name)
            .unwrap();
        let endpoints: Vec<(u64, SocketAddr)> =
            (1..=nodes).map(|id| (id, self.client_addr(id))).collect();
        let options = PoolOptions {
            rpc_timeout: Duration::from_secs(3),
            ..PoolOptions::default()
        };
        SignerPool::from_endpoints(&endpoints, &tls, options)
            .await
            .unwrap()
    }

    /// The last lines of every node's log, for a failure message.
    fn logs(&self) -> String {
        let ids: Vec<u64> = self.nodes.lock().unwrap().keys().copied().collect();
        ids.iter()
            .map(|id| {
                let text =
                    std::fs::read_to_string(self.root(*id).join("node.log")).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(15).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                format!("--- node {id}\n{}", tail.join("\n"))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `signer init` for nodes 1..=`n` on the bridge, each bundle installed and started in its
/// namespace.
fn start_cluster(n: u64) -> Hosts {
    let net = Net::create();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cluster");
    for id in 1..=n {
        net.add_host(id);
    }
    let hosts = Hosts {
        nodes: Mutex::new(BTreeMap::new()),
        net,
        dir: dir.clone(),
        _tmp: tmp,
    };
    let install_root = format!("{}/root-{{id}}", dir.display());
    let mut init = Command::new(SIGNER);
    init.args(["init", "--dir", path(&dir), "--local-kek"])
        .args(["--key", &format!("{ESPRESSO_KEY}:espresso")])
        .args(["--install-root", &install_root, "--signer-path", SIGNER]);
    for id in 1..=n {
        let spec = format!("{id}={},{}", hosts.client_addr(id), hosts.peer_addr(id));
        init.args(["--node", &spec]);
    }
    let out = init.output().unwrap();
    assert!(
        out.status.success(),
        "signer init: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for id in 1..=n {
        hosts.install(id, id);
        hosts.start(id);
    }
    hosts
}

/// Node `id`'s status, if it answers.
async fn status(pool: &SignerPool, id: u64) -> Option<pb::ClusterStatus> {
    pool.cluster_status(id).await.ok()
}

/// Wait until each of `ids` reports `pred` of its status.
async fn wait_all(
    hosts: &Hosts,
    pool: &SignerPool,
    ids: &[u64],
    what: &str,
    pred: impl Fn(&pb::ClusterStatus) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut seen = Vec::new();
        for &id in ids {
            seen.push((id, status(pool, id).await));
        }
        if seen.iter().all(|(_, s)| s.as_ref().is_some_and(&pred)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {seen:?}\n{}",
            hosts.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Clients signing until stopped: for each view, leaf 1 through one target node and
/// (conflicting) leaf 2 through the next, concurrently.
struct Load {
    stop: Arc<AtomicBool>,
    targets: Arc<Mutex<Vec<u64>>>,
    /// Signatures received, by the node that answered.
    signed: Arc<Mutex<BTreeMap<u64, usize>>>,
    task: tokio::task::JoinHandle<(Oracle, Tally)>,
}

/// What the load's clients received.
#[derive(Debug, Default)]
struct Tally {
    signed: usize,
    equivocations: usize,
    /// No answer, by the node asked: it could not answer now (a leader change, a cut link).
    unavailable: BTreeMap<u64, usize>,
    /// The first of those answers, for the report.
    first_unavailable: Vec<String>,
    /// Any other answer.
    other: Vec<String>,
}

impl Load {
    fn start(pool: Arc<SignerPool>, mut oracle: Oracle, targets: &[u64]) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let targets = Arc::new(Mutex::new(targets.to_vec()));
        let signed = Arc::new(Mutex::new(BTreeMap::new()));
        let (stopped, aim, count) = (stop.clone(), targets.clone(), signed.clone());
        let task = tokio::spawn(async move {
            let mut tally = Tally::default();
            let mut view = 0u64;
            while !stopped.load(Ordering::SeqCst) {
                view += 1;
                let nodes = aim.lock().unwrap().clone();
                let pick = |i: u64| nodes[((view + i) % nodes.len() as u64) as usize];
                let asked: Vec<_> = [(pick(0), 1u8), (pick(1), 2)]
                    .into_iter()
                    .map(|(node, leaf)| {
                        let msg = Msg::QuorumVote { view, leaf };
                        (
                            node,
                            request(ESPRESSO_KEY, &format!("v{view}-{leaf}"), &msg),
                        )
                    })
                    .collect();
                for (_, a) in &asked {
                    a.announce(&mut oracle);
                }
                let (first, second) = tokio::join!(
                    pool.sign_on(asked[0].0, asked[0].1.request.clone()),
                    pool.sign_on(asked[1].0, asked[1].1.request.clone())
                );
                let answers = [first, second];
                if answers
                    .iter()
                    .all(|a| a.as_ref().is_err_and(ClientError::is_unavailable))
                {
                    // No node could answer (an election): give it a moment.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                for ((node, a), answer) in asked.iter().zip(answers) {
                    match answer {
                        Ok(r) => {
                            oracle.received(&r.signature, &r.signed_message, a.digest, &a.meaning);
                            tally.signed += 1;
                            *count.lock().unwrap().entry(*node).or_insert(0) += 1;
                        }
                        Err(ClientError::Refused { code, .. }) if code == "equivocation" => {
                            tally.equivocations += 1
                        }
                        Err(e) if e.is_unavailable() => {
                            *tally.unavailable.entry(*node).or_insert(0) += 1;
                            if tally.first_unavailable.len() < 5 {
                                tally.first_unavailable.push(format!("view {view}: {e}"));
                            }
                        }
                        Err(e) => tally.other.push(format!("view {view} node {node}: {e}")),
                    }
                }
            }
            (oracle, tally)
        });
        Load {
            stop,
            targets,
            signed,
            task,
        }
    }

    fn aim_at(&self, nodes: &[u64]) {
        *self.targets.lock().unwrap() = nodes.to_vec();
    }

    fn count(&self, node: Option<u64>) -> usize {
        let signed = self.signed.lock().unwrap();
        match node {
            Some(id) => signed.get(&id).copied().unwrap_or(0),
            None => signed.values().sum(),
        }
    }

    /// Wait until the clients received `n` more signatures (through `node`, or any): signing
    /// goes on.
    async fn goes_on(&self, hosts: &Hosts, node: Option<u64>, n: usize) {
        let from = self.count(node);
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.count(node) < from + n {
            assert!(
                Instant::now() < deadline,
                "signing stopped (through {node:?})\n{}",
                hosts.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn finish(self) -> (Oracle, Tally) {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.unwrap()
    }
}

/// Node 4 prepared the way an operator would for a new host: `signer add-node` (certificate,
/// config, bundle, cluster.json entry), then its bundle installed as its INSTALL.md says.
fn prepare_node_4(hosts: &Hosts) {
    let install_root = format!("{}/root-{{id}}", hosts.dir.display());
    let spec = format!("4={},{}", hosts.client_addr(4), hosts.peer_addr(4));
    let out = Command::new(SIGNER)
        .args(["add-node", "--dir", path(&hosts.dir), "--node", &spec])
        .args(["--install-root", &install_root, "--signer-path", SIGNER])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "signer add-node: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    hosts.install(4, 4);
    let config = NodeConfig::load(&hosts.etc(4).join("node.toml")).unwrap();
    assert_eq!((config.node_id, config.bootstrap), (4, false));
}

/// The challenge `id` once executed or failed, as the leader lists it.
async fn decided(admin: &SignerPool, id: &[u8]) -> pb::Challenge {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let listed = admin.challenges(true).await.unwrap();
        let c = listed.into_iter().find(|c| c.id == id).unwrap();
        if c.status == "executed" || c.status == "failed" {
            return c;
        }
        assert_eq!(c.status, "executing", "{c:?}");
        assert!(Instant::now() < deadline, "still executing: {c:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every node of `ids` verifies its audit chain and reports the same head, twice in a row
/// 300 ms apart.
async fn converged_audit(hosts: &Hosts, auditor: &SignerPool, ids: &[u64]) -> (u64, Vec<u8>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = None;
    loop {
        let mut heads = Vec::new();
        for &id in ids {
            if let Ok(v) = auditor.audit_verify(id, 0).await {
                assert!(v.ok, "node {id}'s audit chain does not verify: {v:?}");
                heads.push((v.head_seq, v.head_hash));
            }
        }
        if heads.len() == ids.len() && heads.windows(2).all(|w| w[0] == w[1]) {
            if last.as_ref() == Some(&heads[0]) {
                return heads.swap_remove(0);
            }
            last = Some(heads[0].clone());
        } else {
            last = None;
        }
        assert!(
            Instant::now() < deadline,
            "audit heads did not converge: {heads:?}\n{}",
            hosts.logs()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn partition_heal_and_replacement_across_hosts_sign_no_conflicting_pair() {
    let started = Instant::now();
    let hosts = start_cluster(3);
    let descriptor = ClusterDescriptor::load(&hosts.dir).unwrap();
    // Every node that will exist, node 4 included (its channel connects on first use).
    let seq = Arc::new(hosts.pool("seq-1", 4).await);
    let admin = hosts.pool("admin-1", 4).await;
    let auditor = hosts.pool("auditor-1", 4).await;

    // 1-3. The cluster forms across the bridge; clients sign through every node.
    wait_all(
        &hosts,
        &seq,
        &[1, 2, 3],
        "a leader and the espresso key",
        |s| {
            s.leader_id != 0
                && s.voters == [1, 2, 3]
                && s.keys_loaded.iter().any(|k| k == ESPRESSO_KEY)
        },
    )
    .await;
    let keys = adversarial::keys_of(seq.public_keys().await.unwrap());
    let load = Load::start(seq.clone(), keys.oracle(), &[1, 2, 3]);
    for id in [1, 2, 3] {
        load.goes_on(&hosts, Some(id), 3).await;
    }

    // 4. Node 3 is cut off; nodes 1 and 2 keep signing.
    load.aim_at(&[1, 2]);
    let before = status(&seq, 3).await.unwrap().last_applied_index;
    hosts.net.set_link(3, false);
    load.goes_on(&hosts, None, 10).await;
    // Cut off indeed: clients cannot reach it.
    assert!(seq.cluster_status(3).await.unwrap_err().is_unavailable());
    hosts.net.set_link(3, true);
    // Healed: node 3 follows the leader and applies what it missed.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let leader = futures::future::join_all([1, 2].map(|id| status(&seq, id)))
            .await
            .into_iter()
            .flatten()
            .find(|s| s.leader_id == s.node_id);
        if let (Some(l), Some(s3)) = (&leader, status(&seq, 3).await) {
            if s3.leader_id == l.node_id && s3.last_applied_index >= l.last_applied_index {
                // It had entries to catch up on.
                assert!(l.last_applied_index > before, "{before} {l:?}");
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "node 3 did not catch up\n{}",
            hosts.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    load.aim_at(&[1, 2, 3]);
    load.goes_on(&hosts, Some(3), 3).await;

    // 5. Node 4 on a new host replaces node 3, by an approved change, while clients sign.
    hosts.net.add_host(4);
    prepare_node_4(&hosts);
    hosts.start(4);
    load.aim_at(&[1, 2]);
    let (c4, p4) = (hosts.client_addr(4), hosts.peer_addr(4));
    let mut approver = SoftApprover::load("admin-1", &descriptor.admins["admin-1"].key).unwrap();
    let (challenge, approval) = admin
        .propose_and_approve(
            Request::ReplaceNode(pb::ReplaceNodeAction {
                old_node_id: 3,
                with: Some(pb::NodeMember {
                    node_id: 4,
                    client_addr: c4.to_string(),
                    peer_addr: p4.to_string(),
                }),
            }),
            &descriptor.cluster_id,
            &mut approver,
        )
        .await
        .unwrap();
    assert_eq!(
        (approval.status.as_str(), approval.detail),
        (
            "executing",
            format!(
                "membership change approved: the leader carries it out ({})",
                challenge.description
            )
        )
    );
    let done = decided(&admin, &challenge.id).await;
    assert_eq!(
        (done.status.as_str(), done.detail),
        (
            "executed",
            format!("node-4 replaced node-3 as a voter (client {c4}, peer {p4})")
        )
    );
    wait_all(&hosts, &seq, &[1, 2, 4], "voters [1, 2, 4]", |s| {
        s.voters == [1, 2, 4] && s.leader_id != 0
    })
    .await;
    hosts.stop(3);
    load.aim_at(&[1, 2, 4]);
    load.goes_on(&hosts, Some(4), 3).await;
    load.goes_on(&hosts, None, 6).await;

    // 6. No conflicting pair among everything received; one audit head on the live nodes.
    let (oracle, tally) = load.finish().await;
    let conflicts = oracle.conflicts();
    assert!(
        conflicts.is_empty(),
        "conflicting signatures: {conflicts:#?}"
    );
    assert_eq!(oracle.signatures(), tally.signed);
    assert!(tally.other.is_empty(), "{tally:?}");
    let (head_seq, head_hash) = converged_audit(&hosts, &auditor, &[1, 2, 4]).await;
    println!(
        "{} signatures verified, 0 conflicting pairs; {tally:?}; audit head {head_seq} {} on \
         nodes 1, 2, 4; {:.1} s",
        oracle.signatures(),
        hex::encode(&head_hash[..8]),
        started.elapsed().as_secs_f64()
    );
}

/// Five hosts: two of them (a minority) cut off at once; the other three keep signing; both
/// healed, both catch up; no conflicting pair, one audit head on all five.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_hosts_keep_signing_with_two_cut_off_and_heal() {
    let hosts = start_cluster(5);
    let seq = Arc::new(hosts.pool("seq-1", 5).await);
    let auditor = hosts.pool("auditor-1", 5).await;
    let all = [1, 2, 3, 4, 5];
    wait_all(&hosts, &seq, &all, "a leader and the espresso key", |s| {
        s.leader_id != 0 && s.voters == all && s.keys_loaded.iter().any(|k| k == ESPRESSO_KEY)
    })
    .await;
    let keys = adversarial::keys_of(seq.public_keys().await.unwrap());
    let load = Load::start(seq.clone(), keys.oracle(), &all);
    load.goes_on(&hosts, None, 5).await;

    // Nodes 4 and 5 cut off together: 1, 2 and 3 are a majority and keep signing.
    load.aim_at(&[1, 2, 3]);
    hosts.net.set_link(4, false);
    hosts.net.set_link(5, false);
    load.goes_on(&hosts, None, 10).await;
    for id in [4, 5] {
        assert!(seq.cluster_status(id).await.unwrap_err().is_unavailable());
    }
    hosts.net.set_link(4, true);
    hosts.net.set_link(5, true);
    let target = futures::future::join_all([1, 2, 3].map(|id| status(&seq, id)))
        .await
        .into_iter()
        .flatten()
        .map(|s| s.last_applied_index)
        .max()
        .unwrap();
    wait_all(&hosts, &seq, &[4, 5], "nodes 4 and 5 caught up", |s| {
        s.leader_id != 0 && s.last_applied_index >= target
    })
    .await;
    load.aim_at(&all);
    for id in [4, 5] {
        load.goes_on(&hosts, Some(id), 3).await;
    }

    let (oracle, tally) = load.finish().await;
    let conflicts = oracle.conflicts();
    assert!(
        conflicts.is_empty(),
        "conflicting signatures: {conflicts:#?}"
    );
    assert_eq!(oracle.signatures(), tally.signed);
    assert!(tally.other.is_empty(), "{tally:?}");
    let (head_seq, _) = converged_audit(&hosts, &auditor, &all).await;
    println!(
        "5 hosts: {} signatures verified, 0 conflicting pairs; {tally:?}; audit head {head_seq}",
        oracle.signatures()
    );
}

/// Every host of a cluster lost at once (processes killed, data directories wiped) and the
/// cluster rebuilt on the same hosts from a backup an auditor took: `signer restore` on the
/// bootstrapping host, the others start empty and receive the state. Everything signed
/// before, and everything up to the backup's highest view plus the margin, is refused;
/// above it signs; the oracle finds no conflicting pair.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cluster_lost_on_its_hosts_is_restored_from_a_backup_and_signs_nothing_below_it() {
    const SIGNED: u64 = 20;
    const MARGIN: u64 = 1000; // `signer restore`'s default --espresso-margin-views
    let hosts = start_cluster(3);
    let seq = hosts.pool("seq-1", 3).await;
    let auditor = hosts.pool("auditor-1", 3).await;
    let all = [1, 2, 3];
    let ready = |s: &pb::ClusterStatus| {
        s.leader_id != 0 && s.voters == all && s.keys_loaded.iter().any(|k| k == ESPRESSO_KEY)
    };
    wait_all(&hosts, &seq, &all, "a leader and the espresso key", ready).await;
    let keys = adversarial::keys_of(seq.public_keys().await.unwrap());
    let mut oracle = keys.oracle();
    let ask = |oracle: &mut Oracle, view: u64, leaf: u8| {
        let asked = request(
            ESPRESSO_KEY,
            &format!("r{view}-{leaf}"),
            &Msg::QuorumVote { view, leaf },
        );
        asked.announce(oracle);
        asked
    };
    for view in 1..=SIGNED {
        let asked = ask(&mut oracle, view, 1);
        let r = seq.sign(asked.request.clone()).await.unwrap();
        oracle.received(
            &r.signature,
            &r.signed_message,
            asked.digest,
            &asked.meaning,
        );
    }

    // The backup, as an auditor takes it; then every host loses its node and its disk.
    let (_, file) = auditor.backup().await.unwrap();
    let backup = hosts.dir.join("cluster.backup");
    std::fs::write(&backup, &file).unwrap();
    for id in all {
        hosts.stop(id);
        let data = hosts.root(id).join("var/lib/quorum-signer");
        std::fs::remove_dir_all(&data).unwrap();
        run("install", &["-d", "-m", "0700", path(&data)]);
    }
    let config = hosts.etc(1).join("node.toml");
    let out = Command::new(SIGNER)
        .args(["restore", path(&backup), "--config", path(&config)])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "signer restore: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for id in all {
        hosts.start(id);
    }
    wait_all(&hosts, &seq, &all, "the restored cluster", ready).await;

    // What the old cluster signed and a conflicting vote at its views are below the restored
    // watermark (the backup's highest view plus the margin, held with no commitment); a vote
    // at the watermark itself conflicts with it. Above it: signed.
    let refusals = [
        (1, 1, "view_below_watermark"),
        (SIGNED, 1, "view_below_watermark"),
        (SIGNED, 2, "view_below_watermark"),
        (SIGNED + MARGIN - 1, 1, "view_below_watermark"),
        (SIGNED + MARGIN, 1, "equivocation"),
    ];
    for (view, leaf, want) in refusals {
        let asked = ask(&mut oracle, view, leaf);
        match seq.sign(asked.request.clone()).await {
            Err(ClientError::Refused { code, .. }) => {
                assert_eq!(code, want, "view {view} leaf {leaf}")
            }
            other => panic!("view {view} leaf {leaf}: {other:?}\n{}", hosts.logs()),
        }
    }
    let asked = ask(&mut oracle, SIGNED + MARGIN + 1, 1);
    let r = seq.sign(asked.request.clone()).await.unwrap();
    oracle.received(
        &r.signature,
        &r.signed_message,
        asked.digest,
        &asked.meaning,
    );
    let conflicts = oracle.conflicts();
    assert!(
        conflicts.is_empty(),
        "conflicting signatures: {conflicts:#?}"
    );
    assert_eq!(oracle.signatures() as u64, SIGNED + 1);
    converged_audit(&hosts, &auditor, &all).await;
}
