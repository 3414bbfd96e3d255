//! The fault-injection suite (issue 19): a real 3-node cluster whose every peer link and every
//! client link runs through the test's own TCP proxy (`faults/proxy.rs`), with scenarios that
//! cut, delay, blackhole and reset links, pause and kill nodes, fill a node's data directory
//! (a tmpfs) and slow its `fsync` (strace fault injection), while seeded clients send honest
//! and conflicting requests over gRPC and the Web3Signer REST API (`faults/load.rs`).
//!
//! Judged from outside: the oracle (`oracle/mod.rs`) sees only what clients received and the
//! public keys; it verifies every signature and reports every conflicting pair. The suite fails
//! on any conflict, on an unexpected answer, on a watermark lost after recovery (a message
//! refused before the fault must stay refused; a witness with its exact refusal code), on a
//! node that does not come back to serving once the fault is healed, and on replicas whose
//! audit chains or protection exports differ at the end. It prints a table per scenario.
//!
//! Seeded and bounded: `FAULTS_SEED` replays a run, `FAULTS_SECONDS` (default 3) is how long
//! each fault is held, `FAULTS_ROUNDS` (default 1) repeats the scenario list,
//! `FAULTS_SCENARIOS` (comma-separated names) selects scenarios, `FAULTS_CLIENTS` (default 4)
//! is the number of client tasks. The README's "Fault-injection suite" section says how to
//! soak.
//!
//! Not covered here: packet-level loss, duplication and reordering (netem); duplication is
//! covered as the replay of recorded client connections to a node (a TLS session cannot be
//! replayed: the node must close it).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod adversarial;
#[path = "faults/host.rs"]
mod host;
#[path = "faults/load.rs"]
mod load;
mod oracle;
#[path = "faults/proxy.rs"]
mod proxy;
#[allow(dead_code)]
#[path = "web3signer_haproxy/roots.rs"]
mod roots;
mod support;

use adversarial::{public_keys, Keys};
use load::{Answer, Clients, Judge, Load, Positions, Request, Tally};
use oracle::requests::Msg;
use proxy::{Mode, Port, Proxy};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{Cluster, ESPRESSO_KEY, ETH2_KEY};

/// Every scenario, in the order a round runs them.
const SCENARIOS: &[&str] = &[
    "leader-isolated",
    "minority-partition",
    "flapping-links",
    "leader-paused",
    "follower-far-behind",
    "kill-during-snapshot-install",
    "slow-fsync-leader",
    "disk-full-leader",
    "disk-full-follower",
    "client-replay",
];

/// A node must serve again within this long after a fault is healed.
const RECOVER_WITHIN: Duration = Duration::from_secs(90);
/// Each node's data directory is a tmpfs of this many MiB (filled in the disk-full scenarios).
const TMPFS_MB: u64 = 64;
/// `[raft]` compaction: a snapshot every 64 entries, 8 kept behind it, so a follower paused or
/// down for a few seconds of load is sent a snapshot.
const SNAPSHOT_EVERY: u64 = 64;
const LOGS_TO_KEEP: u64 = 8;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok()?.parse().ok()
}

/// One line of the table.
struct Row {
    name: String,
    tally: Tally,
    conflicts: usize,
    lost: Vec<String>,
    recover: Option<Duration>,
    note: String,
}

struct Ctx {
    cluster: Cluster,
    proxy: Arc<Proxy>,
    clients: Arc<Clients>,
    judge: Arc<Judge>,
    positions: Arc<Positions>,
    rng: Mutex<StdRng>,
    hold: Duration,
    tasks: usize,
    seed: u64,
    privileged: bool,
    /// Witness messages refused before a fault, with the code they were refused with.
    witnesses: Mutex<Vec<(Request, String)>>,
}

impl Ctx {
    fn rand(&self, range: std::ops::Range<u64>) -> u64 {
        self.rng.lock().unwrap().gen_range(range)
    }

    async fn leader(&self) -> u64 {
        self.cluster.wait_leader(Duration::from_secs(30)).await
    }

    /// The leader as the nodes other than `paused` see it (a SIGSTOPped node answers nothing,
    /// so it is not asked).
    async fn leader_besides(&self, paused: u64) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            for id in self
                .cluster
                .running()
                .into_iter()
                .filter(|&id| id != paused)
            {
                let status = tokio::time::timeout(Duration::from_secs(1), self.cluster.status(id));
                if let Ok(Some(s)) = status.await {
                    if s.leader_id == s.node_id {
                        return s.node_id;
                    }
                }
            }
            assert!(Instant::now() < deadline, "no leader besides node {paused}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn follower(&self) -> u64 {
        let leader = self.leader().await;
        let others: Vec<u64> = self
            .cluster
            .running()
            .into_iter()
            .filter(|&id| id != leader)
            .collect();
        others[self.rand(0..others.len() as u64) as usize]
    }

    fn data_dir(&self, id: u64) -> std::path::PathBuf {
        self.cluster.node(id).config_path.with_file_name("data")
    }

    /// Send `request` until it is answered by any node (UNAVAILABLE answers are retried).
    async fn answered(&self, request: &Request) -> Answer {
        let deadline = Instant::now() + RECOVER_WITHIN;
        loop {
            for id in self.cluster.running() {
                let a = self.clients.send(id, "seq-1", request).await;
                if !matches!(a, Answer::Unavailable(_)) {
                    return a;
                }
            }
            assert!(Instant::now() < deadline, "{request:?}: no node answered");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A fresh DA proposal is signed, then other data at its view is refused: the refused one
    /// is this scenario's witness (DA proposals are a watermark kind no client task uses).
    async fn witness(&self) {
        let view = 1_000_000 + self.positions_now();
        // A timeout vote at the witness's view first: a DA proposal more than 32 views above
        // the key's own votes is refused (the view horizon), and the load votes far below.
        let anchor = Request::grpc(ESPRESSO_KEY, &Msg::Timeout { view });
        self.judge
            .oracle
            .lock()
            .unwrap()
            .asked(anchor.meaning.clone(), anchor.digest);
        let a = self.answered(&anchor).await;
        let tally = Mutex::new(Tally::default());
        self.judge.record(&anchor, &a, &tally, false);
        assert!(matches!(a, Answer::Signed { .. }), "witness anchor: {a:?}");
        let signed = Request::grpc(ESPRESSO_KEY, &Msg::DaProposal { view, payload: 0 });
        self.judge
            .oracle
            .lock()
            .unwrap()
            .asked(signed.meaning.clone(), signed.digest);
        let a = self.answered(&signed).await;
        self.judge.record(&signed, &a, &tally, false);
        assert!(matches!(a, Answer::Signed { .. }), "witness: {a:?}");
        let other = Request::grpc(ESPRESSO_KEY, &Msg::DaProposal { view, payload: 1 });
        self.judge
            .oracle
            .lock()
            .unwrap()
            .asked(other.meaning.clone(), other.digest);
        let a = self.answered(&other).await;
        self.judge.record(&other, &a, &tally, false);
        let Answer::Refused(code) = a else {
            panic!("witness conflict: {a:?}")
        };
        assert_eq!(code, "equivocation");
        self.witnesses.lock().unwrap().push((other, code));
    }

    fn positions_now(&self) -> u64 {
        self.positions.peek()
    }

    /// Re-send every witness (the newest must get its exact code again; older ones are below
    /// the newer witnesses' view) and the load's refusals from before this fault (still
    /// refused by the protection rules). Returns what was signed or refused differently.
    async fn lost_watermarks(&self, refused_before: &[(Request, String)]) -> Vec<String> {
        let mut lost = Vec::new();
        let witnesses = self.witnesses.lock().unwrap().clone();
        for (i, (request, code)) in witnesses.iter().enumerate() {
            let expected = if i + 1 == witnesses.len() {
                code.as_str()
            } else {
                "view_below_watermark"
            };
            let a = self.answered(request).await;
            if a != Answer::Refused(expected.into()) {
                lost.push(format!(
                    "witness {:?}: {a:?}, expected {expected}",
                    request.meaning
                ));
            }
        }
        for (request, code) in refused_before.iter().take(40) {
            self.judge
                .oracle
                .lock()
                .unwrap()
                .asked(request.meaning.clone(), request.digest);
            let a = self.answered(request).await;
            let tally = Mutex::new(Tally::default());
            self.judge.record(request, &a, &tally, false);
            if !matches!(a, Answer::Refused(_)) {
                lost.push(format!(
                    "{} {:?} (refused {code} before the fault): {a:?}",
                    request.via(),
                    request.meaning
                ));
            }
        }
        lost
    }

    /// Restart nodes whose process exited (as a supervisor would, at most [`MAX_RESTARTS`]
    /// times each), then wait until every node
    /// agrees on a leader and signs a randao reveal sent to it. Returns the time it took and
    /// the nodes restarted.
    async fn recover(&self) -> (Duration, Vec<u64>) {
        let started = Instant::now();
        let mut restarted = Vec::new();
        for node in &self.cluster.nodes {
            if let Some(status) = host::exited(&self.cluster, node.id) {
                println!("node {} exited ({status}); restarting it", node.id);
                restarted.push(node.id);
            }
            if !self.cluster.running().contains(&node.id) {
                self.cluster.spawn(node.id);
            }
        }
        for node in &self.cluster.nodes {
            let probe = Request::grpc(
                ETH2_KEY,
                &Msg::Randao {
                    epoch: self.positions_now(),
                },
            );
            self.judge
                .oracle
                .lock()
                .unwrap()
                .asked(probe.meaning.clone(), probe.digest);
            loop {
                let a = self.clients.send(node.id, "seq-1", &probe).await;
                if matches!(a, Answer::Signed { .. }) {
                    let tally = Mutex::new(Tally::default());
                    self.judge.record(&probe, &a, &tally, false);
                    break;
                }
                // A node that exits while catching up (status 1 when its Raft core stops) is
                // restarted, as `Restart=on-failure` would; a crash loop still fails below.
                if let Some(status) = host::exited(&self.cluster, node.id) {
                    let restarts = restarted.iter().filter(|&&id| id == node.id).count();
                    assert!(
                        restarts < MAX_RESTARTS,
                        "node {} exited ({status}) after {restarts} restarts:\n{}",
                        node.id,
                        tail(&self.cluster.log_of(node.id), 30)
                    );
                    println!(
                        "node {} exited ({status}) while recovering; restarting it",
                        node.id
                    );
                    restarted.push(node.id);
                    self.cluster.spawn(node.id);
                }
                assert!(
                    started.elapsed() < RECOVER_WITHIN,
                    "node {} did not come back to serving within {RECOVER_WITHIN:?} of the heal: \
                     {a:?}\n{}",
                    node.id,
                    tail(&self.cluster.log_of(node.id), 30)
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        (started.elapsed(), restarted)
    }
}

/// How often the recovery restarts one node that exits (a supervisor's restart limit).
const MAX_RESTARTS: usize = 3;

/// The last `lines` lines of a node's log, preceded by the first panic message in it (a
/// backtrace can push the message itself out of the tail).
fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    let panic = all
        .iter()
        .position(|l| l.contains("panicked at"))
        .map(|i| format!("{}\n…\n", all[i..(i + 3).min(all.len())].join("\n")))
        .unwrap_or_default();
    format!(
        "{panic}{}",
        all[all.len().saturating_sub(lines)..].join("\n")
    )
}

/// Inject `name`'s fault, hold it, heal it; returns a note for the table (or `None` when the
/// scenario cannot run here).
async fn fault(ctx: &Ctx, name: &str) -> Option<String> {
    let hold = ctx.hold;
    let cluster = &ctx.cluster;
    let ids: Vec<u64> = cluster.nodes.iter().map(|n| n.id).collect();
    Some(match name {
        "leader-isolated" => {
            let leader = ctx.leader().await;
            for &f in ids.iter().filter(|&&f| f != leader) {
                ctx.proxy.set_both(leader, f, Mode::Blackhole);
            }
            tokio::time::sleep(hold + Duration::from_secs(1)).await;
            ctx.proxy.heal();
            format!("leader {leader} cut from both followers, clients reach it")
        }
        "minority-partition" => {
            let f = ctx.follower().await;
            for &o in ids.iter().filter(|&&o| o != f) {
                ctx.proxy.set_both(f, o, Mode::Blackhole);
            }
            tokio::time::sleep(hold).await;
            ctx.proxy.heal();
            format!("node {f} partitioned from the majority")
        }
        "flapping-links" => {
            let until = Instant::now() + hold * 2;
            let mut flips = 0;
            while Instant::now() < until {
                let from = ctx.rand(0..4); // 0: the clients
                let mut to = ctx.rand(1..4);
                if to == from {
                    to = to % 3 + 1;
                }
                let mode = match ctx.rand(0..4) {
                    0 => Mode::Pass,
                    1 => Mode::Blackhole,
                    2 => Mode::Reset,
                    _ => Mode::Delay(Duration::from_millis(ctx.rand(20..200))),
                };
                ctx.proxy.set(from, to, mode);
                flips += 1;
                tokio::time::sleep(Duration::from_millis(ctx.rand(150..600))).await;
            }
            ctx.proxy.heal();
            format!("{flips} link changes (pass/blackhole/reset/delay, peers and clients)")
        }
        "leader-paused" => {
            let leader = ctx.leader().await;
            host::signal(cluster, leader, libc::SIGSTOP);
            let paused = hold.max(Duration::from_secs(2));
            tokio::time::sleep(paused).await;
            let new_leader = ctx.leader_besides(leader).await;
            host::signal(cluster, leader, libc::SIGCONT);
            format!(
                "leader {leader} SIGSTOPped {:.1} s (election timeout <= 0.8 s), node \
                 {new_leader} led meanwhile",
                paused.as_secs_f64()
            )
        }
        "follower-far-behind" => {
            let f = ctx.follower().await;
            let before = cluster.status(f).await.map_or(0, |s| s.last_applied_index);
            host::signal(cluster, f, libc::SIGSTOP);
            tokio::time::sleep(hold * 2).await;
            let leader = ctx.leader_besides(f).await;
            let at = cluster
                .status(leader)
                .await
                .map_or(0, |s| s.last_applied_index);
            host::signal(cluster, f, libc::SIGCONT);
            let behind = at.saturating_sub(before);
            format!(
                "node {f} paused {} s, {behind} entries behind{}",
                (hold * 2).as_secs(),
                if behind > SNAPSHOT_EVERY + LOGS_TO_KEEP {
                    " (beyond the kept log: caught up from a snapshot)"
                } else {
                    " (within the kept log)"
                }
            )
        }
        "kill-during-snapshot-install" => {
            let f = ctx.follower().await;
            cluster.kill(f);
            tokio::time::sleep(hold * 2).await;
            cluster.spawn(f);
            let after = Duration::from_millis(ctx.rand(200..900));
            tokio::time::sleep(after).await;
            let applied = cluster.status(f).await.map(|s| s.last_applied_index);
            cluster.kill(f);
            cluster.spawn(f);
            format!(
                "node {f} down {} s, restarted, SIGKILLed {} ms later while catching up \
                 (applied index then: {applied:?}), restarted",
                (hold * 2).as_secs(),
                after.as_millis()
            )
        }
        "slow-fsync-leader" => {
            if !ctx.privileged {
                return None;
            }
            let leader = ctx.leader().await;
            let slow = host::SlowFsync::attach(cluster, leader, Duration::from_millis(200));
            tokio::time::sleep(hold).await;
            slow.detach();
            format!("strace delays every fsync/fdatasync of leader {leader} by 200 ms")
        }
        "disk-full-leader" | "disk-full-follower" => {
            if !ctx.privileged {
                return None;
            }
            let id = if name == "disk-full-leader" {
                ctx.leader().await
            } else {
                ctx.follower().await
            };
            let filled = host::fill(&ctx.data_dir(id));
            tokio::time::sleep(hold).await;
            host::free(&ctx.data_dir(id));
            let exited = host::exited(cluster, id);
            format!(
                "node {id}'s data tmpfs ({TMPFS_MB} MiB) filled ({} MiB written), freed after \
                 {} s; process {}",
                filled >> 20,
                hold.as_secs(),
                match exited {
                    Some(s) => format!("had exited ({s}): restarted"),
                    None => "still running".into(),
                }
            )
        }
        "client-replay" => {
            let mut replays = 0;
            for &id in &ids {
                let real = ctx.proxy.real(Port::Client, id);
                for bytes in ctx.proxy.recorded(id).iter().rev().take(3) {
                    let (_, closed) = proxy::replay(real, bytes, Duration::from_secs(10)).await;
                    assert!(
                        closed,
                        "node {id} kept a replayed client connection open ({} bytes)",
                        bytes.len()
                    );
                    replays += 1;
                }
            }
            assert!(replays > 0, "no client connection was recorded");
            tokio::time::sleep(hold).await;
            format!("{replays} recorded client connections replayed; each closed by the node")
        }
        other => panic!("unknown scenario {other:?}; known: {SCENARIOS:?}"),
    })
}

async fn scenario(ctx: &Ctx, name: &str, round: u64) -> Row {
    println!("--- scenario {name} (round {round})");
    ctx.witness().await;
    let conflicts_before = ctx.judge.oracle.lock().unwrap().conflicts().len();
    let nodes: Vec<u64> = ctx.cluster.nodes.iter().map(|n| n.id).collect();
    let load = Load::start(
        ctx.clients.clone(),
        ctx.judge.clone(),
        ctx.positions.clone(),
        nodes,
        ctx.seed ^ (round << 32) ^ name.len() as u64,
        ctx.tasks,
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    load.before_fault.store(false, Ordering::SeqCst);
    let note = fault(ctx, name).await;
    let (recover, restarted) = ctx.recover().await;
    // A moment of load on the healed cluster, then the checks.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let tally = load.finish().await;
    let lost = ctx.lost_watermarks(&tally.refused_before_fault).await;
    let conflicts = ctx.judge.oracle.lock().unwrap().conflicts().len() - conflicts_before;
    let mut note = note.unwrap_or_else(|| "skipped: needs root (tmpfs, ptrace)".into());
    if !restarted.is_empty() {
        note.push_str(&format!("; restarted after exit: {restarted:?}"));
    }
    Row {
        name: name.into(),
        tally,
        conflicts,
        lost,
        recover: Some(recover),
        note,
    }
}

/// Every node's eth2 protection export, once all are the same document (compared as parsed
/// JSON: the key order of the text depends on how the `signer` binary was built, and a node
/// restarted during the run may run a binary rebuilt since).
async fn converged_protection(cluster: &Cluster) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut exports = Vec::new();
        for node in &cluster.nodes {
            let answer = cluster
                .admin(node.id)
                .await
                .export_protection(signer_node::pb::ExportProtectionRequest {})
                .await;
            if let Ok(r) = answer {
                exports.push(r.into_inner().interchange_json);
            }
        }
        let parsed: Vec<serde_json::Value> = exports
            .iter()
            .map(|e| serde_json::from_str(e).unwrap())
            .collect();
        if parsed.len() == cluster.nodes.len() && parsed.windows(2).all(|w| w[0] == w[1]) {
            return exports.swap_remove(0);
        }
        assert!(
            Instant::now() < deadline,
            "the nodes' eth2 protection exports differ: {exports:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn table(rows: &[Row], seed: u64, elapsed: Duration) -> String {
    let mut out = format!(
        "fault-injection suite, seed {seed} (replay: FAULTS_SEED={seed}), {:.1} s\n\
         {:<30} {:>8} {:>7} {:>8} {:>11} {:>9} {:>14} {:>11}  note\n",
        elapsed.as_secs_f64(),
        "scenario",
        "requests",
        "signed",
        "refused",
        "unavailable",
        "conflicts",
        "lost watermark",
        "recover (s)"
    );
    for r in rows {
        out.push_str(&format!(
            "{:<30} {:>8} {:>7} {:>8} {:>11} {:>9} {:>14} {:>11}  {}\n",
            r.name,
            r.tally.requests,
            r.tally.signed,
            r.tally.refused,
            r.tally.unavailable,
            r.conflicts,
            r.lost.len(),
            r.recover
                .map_or("-".into(), |d| format!("{:.2}", d.as_secs_f64())),
            r.note
        ));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn faults_leave_no_conflict_no_lost_watermark_and_every_node_serving() {
    let started = Instant::now();
    let seed = env_u64("FAULTS_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
    });
    let hold = Duration::from_secs(env_u64("FAULTS_SECONDS").unwrap_or(3));
    let rounds = env_u64("FAULTS_ROUNDS").unwrap_or(1);
    let tasks = env_u64("FAULTS_CLIENTS").unwrap_or(4) as usize;
    let selected: Vec<String> = match std::env::var("FAULTS_SCENARIOS") {
        Ok(list) => list.split(',').map(|s| s.trim().to_owned()).collect(),
        Err(_) => SCENARIOS.iter().map(|s| (*s).to_owned()).collect(),
    };
    for s in &selected {
        assert!(SCENARIOS.contains(&s.as_str()), "unknown scenario {s:?}");
    }
    println!(
        "seed {seed} (replay: FAULTS_SEED={seed}); hold {hold:?}, {rounds} round(s), {tasks} \
         client tasks; scenarios {selected:?}"
    );
    let privileged = host::privileged();
    // A scenario is never skipped: one that needs root fails the suite without it.
    let need_root: Vec<&String> = selected
        .iter()
        .filter(|s| {
            [
                "slow-fsync-leader",
                "disk-full-leader",
                "disk-full-follower",
            ]
            .contains(&s.as_str())
        })
        .collect();
    assert!(
        privileged || need_root.is_empty(),
        "scenarios {need_root:?} need root (tmpfs mounts, ptrace): run as root, or leave them \
         out with FAULTS_SCENARIOS"
    );
    let proxy = Proxy::new();
    let mounts = host::Mounts::default();
    let cluster = Cluster::start_configured(
        3,
        |_| None,
        |config| {
            config.raft.snapshot_every = SNAPSHOT_EVERY;
            config.raft.logs_to_keep = LOGS_TO_KEEP;
            // Every node dials every peer through the proxy (the membership holds these).
            for p in &mut config.peers {
                p.peer_addr = proxy.front(Port::Peer, p.id, p.peer_addr);
            }
            let cluster_dir = config.data_dir.parent().unwrap().parent().unwrap();
            proxy.set_cluster_dir(cluster_dir.to_owned());
            if privileged {
                mounts.mount(&config.data_dir, TMPFS_MB);
            }
        },
    )
    .await;
    for node in &cluster.nodes {
        proxy.front(Port::Client, node.id, node.client_addr);
        proxy.front(Port::Rest, node.id, node.web3signer_addr);
    }
    let keys: Keys = public_keys(&cluster).await;
    let clients = Arc::new(Clients::new(&cluster, proxy.clone()));
    let judge = Arc::new(Judge {
        oracle: Mutex::new(keys.oracle()),
        keys: keys.clone(),
    });
    let ctx = Ctx {
        cluster,
        proxy: proxy.clone(),
        clients,
        judge,
        positions: Arc::new(Positions::new(1_000)),
        rng: Mutex::new(StdRng::seed_from_u64(seed)),
        hold,
        tasks,
        seed,
        privileged,
        witnesses: Mutex::default(),
    };
    let mut rows = Vec::new();
    for round in 0..rounds {
        for name in &selected {
            let row = scenario(&ctx, name, round).await;
            println!(
                "{}",
                table(std::slice::from_ref(&row), seed, started.elapsed())
            );
            rows.push(row);
        }
    }

    // Replicas agree: one verified audit head and one protection export on every node.
    let heads = ctx
        .cluster
        .converged_audit_heads(0, Duration::from_secs(90))
        .await;
    let export = converged_protection(&ctx.cluster).await;
    let report = table(&rows, seed, started.elapsed());
    println!("{report}");
    eprintln!("{report}");
    let oracle = ctx.judge.oracle.lock().unwrap();
    println!(
        "{} signatures verified; audit head {} {} identical and verified on 3 nodes; protection \
         export identical on 3 nodes ({} bytes); {} proxied peer connections of unknown sender",
        oracle.signatures(),
        heads[0].head_seq,
        hex::encode(&heads[0].head_hash[..8]),
        export.len(),
        proxy.unknown_senders()
    );
    let conflicts = oracle.conflicts();
    assert!(
        conflicts.is_empty(),
        "conflicting signatures: {conflicts:#?}"
    );
    for r in &rows {
        assert!(
            r.tally.unexpected.is_empty(),
            "{}: unexpected answers: {:#?}",
            r.name,
            r.tally.unexpected
        );
        assert!(
            r.lost.is_empty(),
            "{}: lost watermarks: {:#?}",
            r.name,
            r.lost
        );
    }
    assert!(
        rows.iter().map(|r| r.tally.signed).sum::<u64>() > 0,
        "the run signed nothing"
    );
    drop(oracle);
    drop(ctx);
    drop(mounts);
}
