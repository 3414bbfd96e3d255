//! Failover for validator clients that take one signer URL: Debian's HAProxy (the config in
//! `data/web3signer-haproxy.cfg`) in front of a 3-node cluster's Web3Signer-compatible API, TLS
//! passed through so the client certificate stays the identity, `/upcheck` health checks
//! choosing the node. A validator-like client signs blocks and attestations through HAProxy
//! while the leader is SIGKILLed twice (first the node HAProxy sends to, then another one), and
//! each killed node is started again.
//!
//! What must hold:
//! - every answer is 200 or 412, except in the gap after each kill: 503s and transport errors
//!   are allowed from the SIGKILL until the client has signed for 2 s without one; only then is
//!   the node started again, and a failure after that fails the test. The gap (from the kill to
//!   the first answer after its last failure) must end within 15 s, a bound, not a target; it
//!   is printed with a timeline of what the client, HAProxy and each node's `/upcheck` saw;
//! - every 200 carries a signature that verifies against the signing root this file computes
//!   itself from the JSON it sent (its own SSZ, checked against the remerkleable vectors);
//! - no slot and no attestation target has two different signed roots; identical data always
//!   gets the identical signature;
//! - the 412s are exactly the deliberately conflicting requests, each with its reason code. A
//!   retry of an ambiguous failure (a transport error or a 503: the request may have been
//!   committed) re-sends the identical request and must be re-signed, never refused; a
//!   *different* message for that slot or target afterwards is one of the conflicting requests;
//! - at the end every node exports the protection state the client saw.
//!
//! HAProxy is started by the test and killed when it ends (also on panic). A missing
//! `/usr/sbin/haproxy` fails the test (`./test.sh` installs it); it is never skipped.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod support;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use signer_node::client::web3signer::{HttpAnswer, Web3SignerConnection};
use signer_node::pb;
use signer_node::protection::interchange;
use signer_node::scheme::bls12_381;
use signer_node::tls::TlsMaterial;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{Cluster, GVR};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const HAPROXY: &str = "/usr/sbin/haproxy";
const CONFIG_TEMPLATE: &str = include_str!("data/web3signer-haproxy.cfg");

/// Mainnet-like positions, in electra (fork epoch 364032, before fulu).
const START_SLOT: u64 = 11_700_000;
const START_TARGET: u64 = 365_700;
/// How long one request is retried after transport errors and 503s before the client gives
/// up on it (it is then "possibly signed").
const RETRY_BUDGET: Duration = Duration::from_secs(20);
/// The longest gap after a kill the test accepts (a bound, not a timing target).
const MAX_GAP: Duration = Duration::from_secs(15);
/// A connection is replaced after this many requests, as client pools do, so new connections
/// follow HAProxy's current choice of node.
const REQUESTS_PER_CONNECTION: u32 = 25;
/// How long the client must sign without a failure before a gap counts as over.
const STABLE: Duration = Duration::from_secs(2);

// ---- signing roots, computed here -------------------------------------------------------------

fn sha256_pair(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(a);
    h.update(b);
    h.finalize().into()
}

fn uint64_chunk(v: u64) -> [u8; 32] {
    let mut chunk = [0u8; 32];
    chunk[..8].copy_from_slice(&v.to_le_bytes());
    chunk
}

/// SSZ `hash_tree_root` of a container whose fields have the roots `fields`.
fn merkleize(mut layer: Vec<[u8; 32]>) -> [u8; 32] {
    layer.resize(layer.len().next_power_of_two(), [0; 32]);
    while layer.len() > 1 {
        layer = layer.chunks(2).map(|p| sha256_pair(&p[0], &p[1])).collect();
    }
    layer[0]
}

fn uint(v: &Value) -> u64 {
    match v {
        Value::String(s) => s.parse().unwrap(),
        other => other.as_u64().unwrap(),
    }
}

fn hex_bytes<const N: usize>(v: &Value) -> [u8; N] {
    let text = v.as_str().unwrap();
    hex::decode(text.trim_start_matches("0x"))
        .unwrap()
        .try_into()
        .unwrap()
}

fn checkpoint_root(cp: &Value) -> [u8; 32] {
    sha256_pair(&uint64_chunk(uint(&cp["epoch"])), &hex_bytes(&cp["root"]))
}

/// The signing root of a Web3Signer `BLOCK_V2` (header form) or `ATTESTATION` body, from the
/// consensus specs alone: `compute_signing_root(object, compute_domain(type, version, gvr))`
/// with `version` chosen by `get_domain` (the previous version before `fork.epoch`). `None` for
/// other bodies.
fn signing_root_of(body: &Value) -> Option<[u8; 32]> {
    let (domain_type, epoch, object_root) = match body["type"].as_str()? {
        "BLOCK_V2" => {
            let h = body["beacon_block"].get("block_header")?;
            let slot = uint(&h["slot"]);
            let root = merkleize(vec![
                uint64_chunk(slot),
                uint64_chunk(uint(&h["proposer_index"])),
                hex_bytes(&h["parent_root"]),
                hex_bytes(&h["state_root"]),
                hex_bytes(&h["body_root"]),
            ]);
            ([0u8, 0, 0, 0], slot / 32, root) // DOMAIN_BEACON_PROPOSER
        }
        "ATTESTATION" => {
            let a = &body["attestation"];
            let root = merkleize(vec![
                uint64_chunk(uint(&a["slot"])),
                uint64_chunk(uint(&a["index"])),
                hex_bytes(&a["beacon_block_root"]),
                checkpoint_root(&a["source"]),
                checkpoint_root(&a["target"]),
            ]);
            ([1u8, 0, 0, 0], uint(&a["target"]["epoch"]), root) // DOMAIN_BEACON_ATTESTER
        }
        _ => return None,
    };
    let fork = &body["fork_info"]["fork"];
    let version: [u8; 4] = if epoch < uint(&fork["epoch"]) {
        hex_bytes(&fork["previous_version"])
    } else {
        hex_bytes(&fork["current_version"])
    };
    let mut padded = [0u8; 32];
    padded[..4].copy_from_slice(&version);
    let fork_data_root = sha256_pair(
        &padded,
        &hex_bytes(&body["fork_info"]["genesis_validators_root"]),
    );
    let mut domain = [0u8; 32];
    domain[..4].copy_from_slice(&domain_type);
    domain[4..].copy_from_slice(&fork_data_root[..28]);
    Some(sha256_pair(&object_root, &domain))
}

/// `signing_root_of` agrees with the independent (remerkleable) vectors on every header-form
/// block and every attestation of every mainnet fork file.
fn check_signing_roots_against_vectors() -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors/eth2-signing-roots");
    let mut checked = BTreeMap::<String, usize>::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !(name.starts_with("mainnet-") && name.ends_with(".json")) {
            continue;
        }
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for case in doc["cases"].as_array().into_iter().flatten() {
            if let Some(root) = signing_root_of(&case["request"]) {
                let expected: [u8; 32] = hex_bytes(&case["signing_root"]);
                assert_eq!(root, expected, "{name}: {}", case["name"]);
                *checked
                    .entry(case["request"]["type"].as_str().unwrap().into())
                    .or_default() += 1;
            }
        }
    }
    assert!(
        checked.get("BLOCK_V2") >= Some(&3) && checked.get("ATTESTATION") >= Some(&3),
        "too few vector cases checked: {checked:?}"
    );
    checked.values().sum()
}

// ---- what the validator asks --------------------------------------------------------------------

fn hex0x(bytes: &[u8]) -> String {
    format!("0x{}", hex::encode(bytes))
}

/// A root derived from a label, a position and a variant (variants are conflicting data).
fn derived(label: &str, n: u64, variant: u8) -> String {
    let mut h = Sha256::new();
    h.update(label.as_bytes());
    h.update(n.to_le_bytes());
    h.update([variant]);
    hex0x(&h.finalize())
}

fn fork_info() -> Value {
    json!({
        "fork": {"previous_version": "0x04000000", "current_version": "0x05000000", "epoch": "364032"},
        "genesis_validators_root": hex0x(&GVR),
    })
}

/// One message the validator asks to sign; `variant` 0 is the honest one, others conflict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Duty {
    Block { slot: u64, variant: u8 },
    Attestation { target: u64, variant: u8 },
}

impl Duty {
    fn body(&self) -> Value {
        match *self {
            Duty::Block { slot, variant } => json!({
                "type": "BLOCK_V2",
                "fork_info": fork_info(),
                "beacon_block": {"version": "ELECTRA", "block_header": {
                    "slot": slot.to_string(),
                    "proposer_index": "54487",
                    "parent_root": derived("parent", slot, 0),
                    "state_root": derived("state", slot, variant),
                    "body_root": derived("body", slot, variant),
                }},
            }),
            Duty::Attestation { target, variant } => json!({
                "type": "ATTESTATION",
                "fork_info": fork_info(),
                "attestation": {
                    "slot": (target * 32 + 7).to_string(),
                    "index": "0",
                    "beacon_block_root": derived("head", target, variant),
                    "source": {"epoch": (target - 1).to_string(), "root": derived("checkpoint", target - 1, 0)},
                    "target": {"epoch": target.to_string(), "root": derived("checkpoint", target, 0)},
                },
            }),
        }
    }

    /// Where the protection rules put it: (kind, slot or target epoch).
    fn position(&self) -> (&'static str, u64) {
        match *self {
            Duty::Block { slot, .. } => ("block", slot),
            Duty::Attestation { target, .. } => ("attestation", target),
        }
    }

    /// Other data at `back` positions below this one, and the code that refuses it.
    fn conflicting(&self, back: u64, variant: u8) -> (Duty, &'static str) {
        match *self {
            Duty::Block { slot, .. } if back == 0 => {
                (Duty::Block { slot, variant }, "double_block_proposal")
            }
            Duty::Block { slot, .. } => (
                Duty::Block {
                    slot: slot - back,
                    variant,
                },
                "block_slot_not_above_watermark",
            ),
            Duty::Attestation { target, .. } if back == 0 => {
                (Duty::Attestation { target, variant }, "double_vote")
            }
            Duty::Attestation { target, .. } => (
                Duty::Attestation {
                    target: target - back,
                    variant,
                },
                // The source (one below the target) is checked first.
                "source_below_watermark",
            ),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Intent {
    /// The next slot or target: must be signed.
    Fresh,
    /// The identical message again, after its 200: must be re-signed identically.
    Resend,
    /// Different data where something is signed: must be refused with `code`.
    Conflict {
        code: &'static str,
        after_ambiguity: bool,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Outcome {
    Signed(Vec<u8>),
    Refused(String),
    Unavailable(String),
    Transport(String),
    Unexpected(String),
}

impl Outcome {
    fn of(answer: &HttpAnswer) -> Outcome {
        let json: Option<Value> = serde_json::from_slice(&answer.body).ok();
        let field = |name: &str| json.as_ref()?.get(name)?.as_str().map(str::to_owned);
        let is_json = answer
            .content_type
            .as_deref()
            .is_some_and(|c| c.starts_with("application/json"));
        let signature = field("signature")
            .and_then(|s| hex::decode(s.strip_prefix("0x")?).ok())
            .filter(|s| s.len() == 96);
        match (answer.status, signature, field("code")) {
            (200, Some(sig), _) if is_json => Outcome::Signed(sig),
            (412, _, Some(code)) if is_json => Outcome::Refused(code),
            (503, _, _) => Outcome::Unavailable(answer.text()),
            _ => Outcome::Unexpected(format!(
                "{} ({:?}) {}",
                answer.status,
                answer.content_type,
                answer.text()
            )),
        }
    }

    fn answered(&self) -> bool {
        matches!(self, Outcome::Signed(_) | Outcome::Refused(_))
    }

    fn ambiguous(&self) -> bool {
        matches!(self, Outcome::Unavailable(_) | Outcome::Transport(_))
    }
}

/// One HTTP attempt, as the client saw it (times since the test's start).
#[derive(Clone, Debug)]
struct Attempt {
    request: u64,
    duty: Duty,
    intent: Intent,
    started: Duration,
    ended: Duration,
    outcome: Outcome,
}

// ---- the validator client -----------------------------------------------------------------------

/// A validator client with one signer URL (HAProxy's): it reconnects on transport errors and
/// retries a request that got no answer, as-is, until it is answered.
struct Validator {
    url: SocketAddr,
    tls: TlsMaterial,
    identifier: String,
    conn: Option<(Web3SignerConnection, u32)>,
    t0: Instant,
    requests: u64,
    log: Arc<Mutex<Vec<Attempt>>>,
}

impl Validator {
    async fn attempt(&mut self, body: &[u8]) -> Outcome {
        if self
            .conn
            .as_ref()
            .is_some_and(|(_, n)| *n >= REQUESTS_PER_CONNECTION)
        {
            self.conn = None;
        }
        if self.conn.is_none() {
            let connect = Web3SignerConnection::connect(self.url, Some((&self.tls, "localhost")));
            match tokio::time::timeout(Duration::from_secs(3), connect).await {
                Ok(Ok(c)) => self.conn = Some((c, 0)),
                Ok(Err(e)) => return Outcome::Transport(format!("connect: {e}")),
                Err(_) => return Outcome::Transport("connect: no session within 3 s".into()),
            }
        }
        let (conn, used) = self.conn.as_mut().unwrap();
        *used += 1;
        let call = conn.sign(&self.identifier, body.to_vec());
        match tokio::time::timeout(Duration::from_secs(5), call).await {
            Ok(Ok(answer)) => Outcome::of(&answer),
            Ok(Err(e)) => {
                self.conn = None;
                Outcome::Transport(e.to_string())
            }
            Err(_) => {
                self.conn = None;
                Outcome::Transport("no answer within 5 s".into())
            }
        }
    }

    /// Ask until answered (or an unexpected answer, or the retry budget is spent); returns the
    /// last outcome and whether an attempt failed ambiguously on the way.
    async fn request(&mut self, duty: Duty, intent: Intent) -> (Outcome, bool) {
        self.requests += 1;
        let body = serde_json::to_vec(&duty.body()).unwrap();
        let first = Instant::now();
        let mut ambiguous = false;
        loop {
            let started = self.t0.elapsed();
            let outcome = self.attempt(&body).await;
            self.log.lock().unwrap().push(Attempt {
                request: self.requests,
                duty,
                intent,
                started,
                ended: self.t0.elapsed(),
                outcome: outcome.clone(),
            });
            if !outcome.ambiguous() || first.elapsed() > RETRY_BUDGET {
                return (outcome, ambiguous);
            }
            ambiguous = true;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sign `fresh`; after its 200, the deliberate extras of round `round`.
    async fn duty(&mut self, fresh: Duty, round: u64) {
        let (outcome, ambiguous) = self.request(fresh, Intent::Fresh).await;
        if !matches!(outcome, Outcome::Signed(_)) {
            return; // the checks report it
        }
        let mut extras = Vec::new();
        if ambiguous {
            // The identical retry was signed; other data at that position must now be refused.
            extras.push((fresh.conflicting(0, 1), true));
        }
        if round.is_multiple_of(7) {
            extras.push((fresh.conflicting(0, 2), false));
        }
        if round.is_multiple_of(11) && round > 3 {
            extras.push((fresh.conflicting(3, 3), false));
        }
        for ((duty, code), after_ambiguity) in extras {
            let intent = Intent::Conflict {
                code,
                after_ambiguity,
            };
            self.request(duty, intent).await;
        }
        if round.is_multiple_of(5) {
            self.request(fresh, Intent::Resend).await;
        }
    }

    async fn run(mut self, stop: Arc<AtomicBool>) {
        let deadline = Instant::now() + Duration::from_secs(90);
        let mut round = 0;
        while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
            let block = Duty::Block {
                slot: START_SLOT + round,
                variant: 0,
            };
            let attestation = Duty::Attestation {
                target: START_TARGET + round,
                variant: 0,
            };
            round += 1;
            self.duty(block, round).await;
            self.duty(attestation, round).await;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

// ---- HAProxy ------------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Eq)]
struct ServerState {
    /// `UP`, `DOWN`, `UP 1/2` (going down), `DOWN 1/2` (going up), …
    status: String,
    /// The last check's result (`L7OK`, `L7STS`, `L4CON`, …).
    check: String,
    /// Sessions sent to this server so far.
    sessions: u64,
}

/// HAProxy running on a config written for one cluster; killed when dropped.
struct Haproxy {
    child: Child,
    addr: SocketAddr,
    stats: PathBuf,
    log: PathBuf,
    /// The servers in config order (`node-<id>`).
    order: Vec<String>,
}

impl Haproxy {
    /// Write the config for `cluster`'s nodes, in `order`, into the cluster's temp dir and start
    /// HAProxy in the foreground.
    fn start(cluster: &Cluster, order: &[u64]) -> Haproxy {
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

    fn log_tail(&self, lines: usize) -> String {
        tail(
            &std::fs::read_to_string(&self.log).unwrap_or_default(),
            lines,
        )
    }

    /// Wait until HAProxy serves its stats socket and sees every server of `servers` UP, with
    /// its last check passed (`L7OK`).
    async fn wait_up(&mut self, servers: &[String], within: Duration) {
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

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The backend's servers as `show stat` on the stats socket reports them.
async fn server_states(socket: &Path) -> Option<BTreeMap<String, ServerState>> {
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
async fn record_states(
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

/// The client's unanswered attempts as timeline events: one per run of the same kind, naming
/// the request(s) it hit.
fn client_events(log: &[Attempt]) -> Vec<(Duration, String)> {
    struct Run {
        from: Duration,
        to: Duration,
        kind: &'static str,
        text: String,
        attempts: usize,
        requests: Vec<String>,
    }
    let flush = |run: Run| {
        let line = format!(
            "client: {} x {} until {} on {}: {}",
            run.attempts,
            run.kind,
            secs(run.to),
            run.requests.join(", "),
            run.text
        );
        (run.from, line)
    };
    let mut out = Vec::new();
    let mut current: Option<Run> = None;
    for a in log {
        let kind = match &a.outcome {
            Outcome::Unavailable(text) => Some(("503", text)),
            Outcome::Transport(e) => Some(("transport error", e)),
            _ => None,
        };
        let request = format!("#{} {:?} {:?}", a.request, a.duty, a.intent);
        match (&mut current, kind) {
            (Some(run), Some((k, _))) if run.kind == k => {
                run.to = a.ended;
                run.attempts += 1;
                if !run.requests.contains(&request) {
                    run.requests.push(request);
                }
            }
            (_, kind) => {
                out.extend(current.take().map(flush));
                current = kind.map(|(kind, text)| Run {
                    from: a.ended,
                    to: a.ended,
                    kind,
                    text: text.clone(),
                    attempts: 1,
                    requests: vec![request],
                });
            }
        }
    }
    out.extend(current.map(flush));
    out
}

// ---- the checks ---------------------------------------------------------------------------------

/// A SIGKILL of the leader, and when the node was started again (the gap is over by then).
struct Kill {
    node: u64,
    at: Duration,
    behind_haproxy: bool,
    restarted: Duration,
}

/// What the client saw after a kill at `at`, counting failures until `until`.
#[derive(Debug)]
struct Gap {
    /// The first answer (200 or 412) to a request sent after the kill.
    first_answer: Option<Duration>,
    /// The last 503 or transport error.
    last_failure: Option<Duration>,
    /// The first answer after the last failure: the gap is `at..end`.
    end: Option<Duration>,
}

fn gap(log: &[Attempt], at: Duration, until: Duration) -> Gap {
    let answered_from = |from: Duration| {
        log.iter()
            .filter(|a| a.started >= from && a.outcome.answered())
            .map(|a| a.ended)
            .min()
    };
    let last_failure = log
        .iter()
        .filter(|a| a.outcome.ambiguous() && a.ended >= at && a.ended < until)
        .map(|a| a.ended)
        .max();
    Gap {
        first_answer: answered_from(at),
        last_failure,
        end: answered_from(last_failure.unwrap_or(at)),
    }
}

fn secs(d: Duration) -> String {
    format!("{:.2}s", d.as_secs_f64())
}

impl Attempt {
    /// The exact request and answer, for failure messages.
    fn describe(&self) -> String {
        format!(
            "request #{} {:?} ({:?}) at {}..{}: {:?}\nPOST /api/v1/eth2/sign/<demo-eth2> {}",
            self.request,
            self.duty,
            self.intent,
            secs(self.started),
            secs(self.ended),
            self.outcome,
            self.duty.body()
        )
    }
}

/// Nothing but 200 and 412, except 503s and transport errors between a kill and the node's
/// restart; each gap (the kill to the first answer after its last failure) within `MAX_GAP`.
fn check_answers(log: &[Attempt], kills: &[Kill]) -> Vec<Gap> {
    if let Some(a) = log
        .iter()
        .find(|a| matches!(a.outcome, Outcome::Unexpected(_)))
    {
        panic!("unexpected answer:\n{}", a.describe());
    }
    let in_gap = |a: &Attempt| {
        kills
            .iter()
            .any(|k| a.ended >= k.at && a.ended < k.restarted)
    };
    if let Some(a) = log.iter().find(|a| a.outcome.ambiguous() && !in_gap(a)) {
        panic!(
            "a failure outside the gaps after the kills:\n{}",
            a.describe()
        );
    }
    let gaps: Vec<Gap> = kills.iter().map(|k| gap(log, k.at, k.restarted)).collect();
    for (k, g) in kills.iter().zip(&gaps) {
        let end = g.end.expect("answers after the gap");
        assert!(end - k.at <= MAX_GAP, "node {}: {g:?}", k.node);
    }
    gaps
}

/// Every signature verifies against the root computed here; identical data always gets the
/// identical signature; no slot or target has two signed roots. Returns the signed root per
/// position.
fn check_signatures(log: &[Attempt], pk: &[u8]) -> BTreeMap<(&'static str, u64), [u8; 32]> {
    let mut signature_of: BTreeMap<[u8; 32], &Vec<u8>> = BTreeMap::new();
    let mut signed_at: BTreeMap<(&'static str, u64), [u8; 32]> = BTreeMap::new();
    for a in log {
        let Outcome::Signed(sig) = &a.outcome else {
            continue;
        };
        let root = signing_root_of(&a.duty.body()).unwrap();
        assert!(
            bls12_381::verify_bytes(pk, &root, sig),
            "the signature does not verify:\n{}",
            a.describe()
        );
        let first = *signature_of.entry(root).or_insert(sig);
        assert_eq!(first, sig, "two signatures for one root:\n{}", a.describe());
        let signed = *signed_at.entry(a.duty.position()).or_insert(root);
        assert_eq!(
            signed,
            root,
            "conflicting signatures at {:?}:\n{}",
            a.duty.position(),
            a.describe()
        );
    }
    signed_at
}

#[derive(Debug, Default)]
struct Tally {
    requests: usize,
    conflicts: usize,
    after_ambiguity: usize,
    resends: usize,
}

/// Per request: fresh and resent ones end signed and are never refused (an identical retry
/// after an ambiguous failure is re-signed); conflicting ones end refused with their code and
/// are never signed. A fresh request never answered would be "possibly signed": that fails the
/// test too (the client retries longer than a gap may last).
fn check_requests(log: &[Attempt]) -> Tally {
    let mut requests: BTreeMap<u64, Vec<&Attempt>> = BTreeMap::new();
    for a in log {
        requests.entry(a.request).or_default().push(a);
    }
    let mut tally = Tally {
        requests: requests.len(),
        ..Tally::default()
    };
    let mut possibly_signed = Vec::new();
    for attempts in requests.values() {
        let last = attempts.last().unwrap();
        match last.intent {
            Intent::Fresh | Intent::Resend => {
                if let Some(a) = attempts
                    .iter()
                    .find(|a| matches!(a.outcome, Outcome::Refused(_)))
                {
                    panic!("an honest request was refused:\n{}", a.describe());
                }
                tally.resends += usize::from(last.intent == Intent::Resend);
                if !matches!(last.outcome, Outcome::Signed(_)) {
                    possibly_signed.push(last.duty);
                }
            }
            Intent::Conflict {
                code,
                after_ambiguity,
            } => {
                tally.conflicts += 1;
                tally.after_ambiguity += usize::from(after_ambiguity);
                assert_eq!(
                    last.outcome,
                    Outcome::Refused(code.into()),
                    "conflicting request:\n{}",
                    last.describe()
                );
            }
        }
    }
    assert!(
        possibly_signed.is_empty(),
        "requests never answered (possibly signed): {possibly_signed:?}"
    );
    tally
}

/// Every node exports what the client saw: the highest signed slot with its root, and the
/// highest source and target with the root signed at the target. Returns (slot, target).
async fn check_export(
    cluster: &Cluster,
    signed_at: &BTreeMap<(&'static str, u64), [u8; 32]>,
) -> (u64, u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let export = loop {
        let mut exports = Vec::new();
        for id in 1..=3 {
            let answer = cluster
                .admin(id)
                .await
                .export_protection(pb::ExportProtectionRequest {})
                .await;
            if let Ok(r) = answer {
                exports.push(r.into_inner().interchange_json);
            }
        }
        if exports.len() == 3 && exports.windows(2).all(|w| w[0] == w[1]) {
            break exports.swap_remove(0);
        }
        assert!(
            Instant::now() < deadline,
            "the nodes' protection exports differ: {exports:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let doc = interchange::parse(&export).unwrap();
    let pk = &cluster.eth2_public_key;
    let history: Vec<_> = doc.data.iter().filter(|h| h.pubkey.0 == pk[..]).collect();
    let blocks: Vec<_> = history.iter().flat_map(|h| &h.signed_blocks).collect();
    let votes: Vec<_> = history
        .iter()
        .flat_map(|h| &h.signed_attestations)
        .collect();
    let highest = |kind: &'static str| {
        let ((_, n), root) = signed_at
            .range((kind, 0)..=(kind, u64::MAX))
            .last()
            .unwrap();
        (*n, *root)
    };
    let (slot, block_root) = highest("block");
    let (target, vote_root) = highest("attestation");
    assert_eq!(blocks.len(), 1, "{export}");
    assert_eq!(
        (blocks[0].slot, blocks[0].signing_root.map(|r| r.0)),
        (slot, Some(block_root)),
        "{export}"
    );
    assert_eq!(votes.len(), 1, "{export}");
    assert_eq!(
        (
            votes[0].source_epoch,
            votes[0].target_epoch,
            votes[0].signing_root.map(|r| r.0)
        ),
        (target - 1, target, Some(vote_root)),
        "{export}"
    );
    (slot, target)
}

fn describe_gaps(kills: &[Kill], gaps: &[Gap]) -> String {
    let text: Vec<String> = kills
        .iter()
        .zip(gaps)
        .map(|(k, g)| {
            let behind = match k.behind_haproxy {
                true => "the node behind HAProxy",
                false => "not the node behind HAProxy",
            };
            let length = secs(g.end.unwrap() - k.at);
            match (g.first_answer, g.last_failure) {
                (Some(first), Some(last)) if last > first => format!(
                    "node-{} ({behind}) {length} (answered after {}, failures until {})",
                    k.node,
                    secs(first - k.at),
                    secs(last - k.at)
                ),
                _ => format!("node-{} ({behind}) {length}", k.node),
            }
        })
        .collect();
    text.join(", ")
}

// ---- the test -----------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_fails_over_between_nodes_without_conflicting_signatures() {
    let vector_cases = check_signing_roots_against_vectors();
    let cluster = Cluster::start(3).await;
    let t0 = Instant::now();
    // The leader first: `balance first` sends everything to it, so the first kill hits the node
    // HAProxy uses (the second kill then hits a node HAProxy does not use).
    let leader = cluster.wait_leader(Duration::from_secs(15)).await;
    let mut order = vec![leader];
    order.extend((1..=3).filter(|id| *id != leader));
    let mut haproxy = Haproxy::start(&cluster, &order);
    let all = haproxy.order.clone();
    haproxy.wait_up(&all, Duration::from_secs(20)).await;

    // Health through HAProxy, and the first request of each kind checked against the signer's
    // own parser (so a 400 would be the server's, not a malformed body here).
    let tls = cluster.tls("seq-1");
    let mut conn = Web3SignerConnection::connect(haproxy.addr, Some((&tls, "localhost")))
        .await
        .unwrap();
    let up = conn.get("/upcheck", None).await.unwrap();
    assert_eq!((up.status, up.text().trim()), (200, "OK"), "{up:?}");
    drop(conn);
    let first_block = Duty::Block {
        slot: START_SLOT,
        variant: 0,
    };
    let first_vote = Duty::Attestation {
        target: START_TARGET,
        variant: 0,
    };
    for duty in [first_block, first_vote] {
        let body = serde_json::to_vec(&duty.body()).unwrap();
        let (message, _) = eth2_messages::parse_web3signer(&body).unwrap();
        let theirs = message
            .signing_root(&eth2_messages::NetworkSpec::mainnet())
            .unwrap();
        assert_eq!(Some(theirs), signing_root_of(&duty.body()), "{duty:?}");
    }

    // The validator client, and a recorder of what HAProxy and the nodes report.
    let log = Arc::new(Mutex::new(Vec::<Attempt>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let validator = Validator {
        url: haproxy.addr,
        tls,
        identifier: hex0x(&cluster.eth2_public_key),
        conn: None,
        t0,
        requests: 0,
        log: log.clone(),
    };
    let client = tokio::spawn(validator.run(stop.clone()));
    let events = Arc::new(Mutex::new(Vec::<(Duration, String)>::new()));
    let nodes: Vec<(u64, SocketAddr)> = (1..=3)
        .map(|id| (id, cluster.node(id).web3signer_addr))
        .collect();
    let recorder = tokio::spawn(record_states(
        haproxy.stats.clone(),
        nodes,
        cluster.tls("seq-1"),
        t0,
        events.clone(),
        stop.clone(),
    ));
    let diagnostics = |haproxy: &Haproxy| {
        let last: Vec<String> = log
            .lock()
            .unwrap()
            .iter()
            .rev()
            .take(5)
            .map(Attempt::describe)
            .collect();
        let nodes: Vec<String> = (1..=3)
            .map(|id| format!("--- node {id}\n{}", tail(&cluster.log_of(id), 15)))
            .collect();
        format!(
            "--- last attempts\n{}\n--- haproxy\n{}\n{}",
            last.join("\n"),
            haproxy.log_tail(30),
            nodes.join("\n")
        )
    };

    // Warm up: the client signs through HAProxy.
    let deadline = Instant::now() + Duration::from_secs(10);
    let signed = || {
        let log = log.lock().unwrap();
        log.iter()
            .filter(|a| matches!(a.outcome, Outcome::Signed(_)))
            .count()
    };
    while signed() < 20 {
        assert!(
            Instant::now() < deadline && !client.is_finished(),
            "fewer than 20 signatures through HAProxy in 10 s\n{}",
            diagnostics(&haproxy)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Two rounds: SIGKILL the leader; once the client has signed for `STABLE` without a failure
    // the gap is over and the node is started again; wait until HAProxy sees it up; keep
    // signing. A failure after the restart fails the test.
    let mut kills = Vec::new();
    for _ in 0..2 {
        let leader = cluster.wait_leader(Duration::from_secs(15)).await;
        let states = server_states(&haproxy.stats).await.unwrap_or_default();
        let used = haproxy
            .order
            .iter()
            .find(|name| {
                states
                    .get(*name)
                    .is_some_and(|s| s.status.starts_with("UP"))
            })
            .cloned();
        // Taken before the SIGKILL: the client may see the connection break while `kill` reaps.
        let at = t0.elapsed();
        cluster.kill(leader);
        events
            .lock()
            .unwrap()
            .push((at, format!("SIGKILL node-{leader} (the leader)")));
        let deadline = Instant::now() + MAX_GAP + STABLE;
        loop {
            let g = gap(&log.lock().unwrap(), at, Duration::MAX);
            if g.end.is_some_and(|end| t0.elapsed() >= end + STABLE) {
                break;
            }
            assert!(
                Instant::now() < deadline && !client.is_finished(),
                "the client did not sign for {STABLE:?} without failures within {MAX_GAP:?} \
                 of killing node {leader} ({g:?})\n{}",
                diagnostics(&haproxy)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let restarted = t0.elapsed();
        cluster.spawn(leader);
        events
            .lock()
            .unwrap()
            .push((restarted, format!("restart node-{leader}")));
        kills.push(Kill {
            node: leader,
            at,
            behind_haproxy: used.as_deref() == Some(format!("node-{leader}").as_str()),
            restarted,
        });
        haproxy
            .wait_up(&[format!("node-{leader}")], Duration::from_secs(20))
            .await;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    stop.store(true, Ordering::SeqCst);
    tokio::time::timeout(RETRY_BUDGET + Duration::from_secs(10), client)
        .await
        .expect("the client stops")
        .unwrap();
    recorder.await.unwrap();
    let final_states = server_states(&haproxy.stats).await.unwrap_or_default();
    let log = log.lock().unwrap().clone();
    let mut timeline = events.lock().unwrap().clone();
    timeline.extend(client_events(&log));
    timeline.sort();
    for (at, line) in &timeline {
        println!("{:>8}  {line}", secs(*at));
    }

    let gaps = check_answers(&log, &kills);
    let signed_at = check_signatures(&log, &cluster.eth2_public_key);
    let tally = check_requests(&log);
    let (slot, target) = check_export(&cluster, &signed_at).await;
    // Traffic really moved: the node HAProxy used first was not the only one that served.
    let served: Vec<String> = final_states
        .iter()
        .map(|(name, s)| format!("{name} {}", s.sessions))
        .collect();
    assert!(
        final_states.values().filter(|s| s.sessions > 0).count() >= 2,
        "{served:?}"
    );

    let count = |f: fn(&Outcome) -> bool| log.iter().filter(|a| f(&a.outcome)).count();
    println!(
        "web3signer_haproxy: {} requests in {} attempts ({} conflicting, {} of them after an \
         ambiguous failure; {} identical resends): 200 {}, 412 {}, 503 {}, transport errors {}; \
         gaps after SIGKILL: {}; sessions per node: {}; blocks up to slot {slot}, attestations \
         up to target {target}; {vector_cases} vector roots checked",
        tally.requests,
        log.len(),
        tally.conflicts,
        tally.after_ambiguity,
        tally.resends,
        count(|o| matches!(o, Outcome::Signed(_))),
        count(|o| matches!(o, Outcome::Refused(_))),
        count(|o| matches!(o, Outcome::Unavailable(_))),
        count(|o| matches!(o, Outcome::Transport(_))),
        describe_gaps(&kills, &gaps),
        served.join(", "),
    );
}
