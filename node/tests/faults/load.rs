//! The clients of the fault suite and what they saw: seeded sequencer clients sending honest
//! and deliberately conflicting requests over gRPC (espresso quorum votes, eth2 blocks and
//! attestations) and over the Web3Signer REST API (eth2 blocks and attestations), all through
//! the proxy's client listeners, to every node in turn.
//!
//! Every answer is classified exactly: signed (the signature is verified and handed to the
//! oracle), refused by the protection rules (with its refusal code), or unavailable (gRPC
//! UNAVAILABLE, a deadline, a transport failure; HTTP 503 or a transport failure). Anything
//! else is recorded as unexpected and fails the suite.
//!
//! Owns: request generation (positions only go up; conflicts reuse recent positions), sending,
//! classification, the per-scenario tally and the refusals kept for the watermark check. Must
//! not: decide what is a conflict (the oracle does) or use the signer's digest code (the
//! oracle's request builder and the REST roots compute every digest).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::adversarial::{Keys, REFUSALS};
use crate::oracle::requests::{build, Built, Msg};
use crate::oracle::{Meaning, Oracle};
use crate::proxy::{Port, Proxy};
use crate::roots::signing_root_of;
use crate::support::{is_transport_failure, refusal_code, Cluster, ESPRESSO_KEY, ETH2_KEY, GVR};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use signer_node::client::web3signer::Web3SignerConnection;
use signer_node::pb;
use signer_node::pb::signer_client::SignerClient;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tonic::transport::Channel;
use tonic::Code;

/// How long a client waits for one answer before it counts the request as unavailable.
pub const ANSWER_WITHIN: Duration = Duration::from_secs(3);
/// How long a client task sends elsewhere after a node did not answer.
const AVOID_FOR: Duration = Duration::from_secs(2);

/// One request as a client sends it.
#[derive(Clone, Debug)]
pub enum Wire {
    Grpc(pb::SignRequest),
    /// A Web3Signer body for ETH2_KEY.
    Rest(Value),
}

/// A request with what it stands for (computed by the oracle's code, not the signer's).
#[derive(Clone, Debug)]
pub struct Request {
    pub wire: Wire,
    pub meaning: Meaning,
    pub digest: [u8; 32],
    pub key_id: &'static str,
}

impl Request {
    pub fn grpc(key_id: &'static str, msg: &Msg) -> Request {
        let Built {
            message,
            meaning,
            digest,
            ..
        } = build(msg);
        Request {
            wire: Wire::Grpc(pb::SignRequest {
                request_id: String::new(),
                key_id: key_id.into(),
                message: Some(message),
            }),
            meaning,
            digest,
            key_id,
        }
    }

    /// A REST block at `slot` or attestation (source `target - 1`) at `target`; `variant` 0 is
    /// the honest data, others conflict with it.
    pub fn rest(block: bool, pos: u64, variant: u8) -> Request {
        let body = rest_body(block, pos, variant);
        let digest = signing_root_of(&body).unwrap();
        let meaning = if block {
            Meaning::Block { slot: pos }
        } else {
            Meaning::Attestation {
                source: pos - 1,
                target: pos,
            }
        };
        Request {
            wire: Wire::Rest(body),
            meaning,
            digest,
            key_id: ETH2_KEY,
        }
    }

    pub fn via(&self) -> &'static str {
        match self.wire {
            Wire::Grpc(_) => "grpc",
            Wire::Rest(_) => "rest",
        }
    }
}

fn derived(label: &str, n: u64, variant: u8) -> String {
    let mut h = Sha256::new();
    h.update(label.as_bytes());
    h.update(n.to_le_bytes());
    h.update([variant]);
    format!("0x{}", hex::encode(h.finalize()))
}

fn rest_body(block: bool, pos: u64, variant: u8) -> Value {
    let fork_info = json!({
        "fork": {"previous_version": "0x04000000", "current_version": "0x05000000", "epoch": "2"},
        "genesis_validators_root": format!("0x{}", hex::encode(GVR)),
    });
    if block {
        json!({
            "type": "BLOCK_V2",
            "fork_info": fork_info,
            "beacon_block": {"version": "ELECTRA", "block_header": {
                "slot": pos.to_string(),
                "proposer_index": "7",
                "parent_root": derived("parent", pos, 0),
                "state_root": derived("state", pos, variant),
                "body_root": derived("body", pos, variant),
            }},
        })
    } else {
        json!({
            "type": "ATTESTATION",
            "fork_info": fork_info,
            "attestation": {
                "slot": (pos * 32 + 3).to_string(),
                "index": "0",
                "beacon_block_root": derived("head", pos, variant),
                "source": {"epoch": (pos - 1).to_string(), "root": derived("cp", pos - 1, 0)},
                "target": {"epoch": pos.to_string(), "root": derived("cp", pos, 0)},
            },
        })
    }
}

/// How one request ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    Signed {
        signature: Vec<u8>,
        signed_message: Vec<u8>,
    },
    Refused(String),
    Unavailable(String),
    Unexpected(String),
}

/// The clients' connections: gRPC channels and REST connections through the proxy.
pub struct Clients {
    grpc: Mutex<BTreeMap<(u64, &'static str), SignerClient<Channel>>>,
    proxy: Arc<Proxy>,
    eth2_identifier: String,
    tls: signer_node::tls::TlsMaterial,
}

impl Clients {
    pub fn new(cluster: &Cluster, proxy: Arc<Proxy>) -> Clients {
        let mut grpc = BTreeMap::new();
        for node in &cluster.nodes {
            for client in ["seq-1", "seq-2", "seq-3"] {
                let channel = cluster.mtls_channel(
                    proxy.addr(Port::Client, node.id),
                    node.id,
                    &cluster.pki.client_cert_path(client),
                    &cluster.pki.client_key_path(client),
                    ANSWER_WITHIN,
                );
                grpc.insert((node.id, client), SignerClient::new(channel));
            }
        }
        Clients {
            grpc: Mutex::new(grpc),
            proxy,
            eth2_identifier: format!("0x{}", hex::encode(&cluster.eth2_public_key)),
            tls: cluster.tls("seq-1"),
        }
    }

    /// Send `request` to node `node` as `client` (REST requests always as seq-1) and classify
    /// the answer.
    pub async fn send(&self, node: u64, client: &'static str, request: &Request) -> Answer {
        match &request.wire {
            Wire::Grpc(r) => {
                let mut c = self.grpc.lock().unwrap()[&(node, client)].clone();
                let answer = tokio::time::timeout(ANSWER_WITHIN, c.sign(r.clone())).await;
                match answer {
                    Err(_) => Answer::Unavailable("no answer in time".into()),
                    Ok(Ok(r)) => {
                        let r = r.into_inner();
                        Answer::Signed {
                            signature: r.signature,
                            signed_message: r.signed_message,
                        }
                    }
                    Ok(Err(s)) => classify_status(&s),
                }
            }
            Wire::Rest(body) => {
                let addr = self.proxy.addr(Port::Rest, node);
                let call = async {
                    let mut conn =
                        Web3SignerConnection::connect(addr, Some((&self.tls, "localhost")))
                            .await
                            .map_err(|e| e.to_string())?;
                    conn.sign(&self.eth2_identifier, serde_json::to_vec(body).unwrap())
                        .await
                        .map_err(|e| e.to_string())
                };
                match tokio::time::timeout(ANSWER_WITHIN, call).await {
                    Err(_) => Answer::Unavailable("no answer in time".into()),
                    Ok(Err(e)) => Answer::Unavailable(format!("transport: {e}")),
                    Ok(Ok(a)) => classify_http(a.status, &a.body),
                }
            }
        }
    }
}

pub fn classify_status(s: &tonic::Status) -> Answer {
    match (s.code(), refusal_code(s)) {
        (Code::FailedPrecondition, Some(code)) if REFUSALS.contains(&code.as_str()) => {
            Answer::Refused(code)
        }
        (Code::Unavailable | Code::DeadlineExceeded, _) => {
            Answer::Unavailable(format!("{:?}: {}", s.code(), s.message()))
        }
        _ if is_transport_failure(s) => Answer::Unavailable(format!("transport: {}", s.message())),
        // Made up by the client from a connection that broke mid-call (the node exited): the
        // HTTP/2 error is its source; a status a server sent has none.
        (Code::Internal | Code::Unknown, _) if std::error::Error::source(s).is_some() => {
            Answer::Unavailable(format!("connection lost: {}", s.message()))
        }
        _ => Answer::Unexpected(format!(
            "{:?}: {} {:?}",
            s.code(),
            s.message(),
            refusal_code(s)
        )),
    }
}

fn classify_http(status: u16, body: &[u8]) -> Answer {
    let json: Option<Value> = serde_json::from_slice(body).ok();
    let field = |name: &str| json.as_ref()?.get(name)?.as_str().map(str::to_owned);
    match status {
        200 => {
            match field("signature").and_then(|s| hex::decode(s.trim_start_matches("0x")).ok()) {
                Some(signature) => Answer::Signed {
                    signature,
                    signed_message: Vec::new(),
                },
                None => Answer::Unexpected(format!("200 without a signature: {json:?}")),
            }
        }
        412 => match field("code") {
            Some(code) if REFUSALS.contains(&code.as_str()) => Answer::Refused(code),
            other => Answer::Unexpected(format!("412 with code {other:?}")),
        },
        503 => Answer::Unavailable(format!("503 {}", String::from_utf8_lossy(body))),
        other => Answer::Unexpected(format!("{other} {}", String::from_utf8_lossy(body))),
    }
}

/// What the clients saw in one scenario.
#[derive(Default, Debug)]
pub struct Tally {
    pub requests: u64,
    pub signed: u64,
    pub refused: u64,
    pub unavailable: u64,
    pub unexpected: Vec<String>,
    /// Requests refused by the protection rules before the fault, with their codes.
    pub refused_before_fault: Vec<(Request, String)>,
}

/// The judge of what clients received: the oracle, behind a lock the client tasks share.
pub struct Judge {
    pub oracle: Mutex<Oracle>,
    pub keys: Keys,
}

impl Judge {
    /// Record a request's answer: verify a signature and hand it to the oracle; count.
    pub fn record(&self, request: &Request, answer: &Answer, tally: &Mutex<Tally>, before: bool) {
        let mut t = tally.lock().unwrap();
        t.requests += 1;
        match answer {
            Answer::Signed {
                signature,
                signed_message,
            } => {
                // REST answers carry only the signature: it must verify over the digest the
                // oracle computed for the body.
                let message = if signed_message.is_empty() {
                    request.digest.to_vec()
                } else {
                    signed_message.clone()
                };
                assert!(
                    self.keys.verifies(request.key_id, &message, signature),
                    "a {} signature for {:?} does not verify under {}'s public key",
                    request.via(),
                    request.meaning,
                    request.key_id
                );
                self.oracle.lock().unwrap().received(
                    signature,
                    &message,
                    request.digest,
                    &request.meaning,
                );
                t.signed += 1;
            }
            Answer::Refused(code) => {
                t.refused += 1;
                if before {
                    t.refused_before_fault.push((request.clone(), code.clone()));
                }
            }
            Answer::Unavailable(_) => t.unavailable += 1,
            Answer::Unexpected(what) => {
                t.unexpected
                    .push(format!("{} {:?}: {what}", request.via(), request.meaning))
            }
        }
    }
}

/// The running load: client tasks until `stop`.
pub struct Load {
    pub stop: Arc<AtomicBool>,
    /// True while no fault has been injected yet in this scenario.
    pub before_fault: Arc<AtomicBool>,
    pub tally: Arc<Mutex<Tally>>,
    tasks: tokio::task::JoinSet<()>,
}

/// Positions (slots, epochs, views) the load uses; they only go up across the whole run.
pub struct Positions(AtomicU64);

impl Positions {
    pub fn new(start: u64) -> Positions {
        Positions(AtomicU64::new(start))
    }
    fn next(&self) -> u64 {
        self.0.fetch_add(1, Ordering::SeqCst)
    }
    /// The next position, without taking it.
    pub fn peek(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
    fn recent(&self, rng: &mut StdRng) -> u64 {
        self.0.load(Ordering::SeqCst) - rng.gen_range(1..4)
    }
}

/// One request the generator picks: honest at the next position (60 %) or conflicting data at
/// a recent one, over gRPC (espresso quorum vote, eth2 block or attestation) or REST.
fn pick(rng: &mut StdRng, positions: &Positions) -> Request {
    let honest = rng.gen_bool(0.6);
    let pos = if honest {
        positions.next()
    } else {
        positions.recent(rng)
    };
    let variant = if honest { 0 } else { rng.gen_range(1..3) };
    match rng.gen_range(0..5) {
        0 => Request::grpc(
            ESPRESSO_KEY,
            &Msg::QuorumVote {
                view: pos,
                leaf: variant,
            },
        ),
        1 => Request::grpc(
            ETH2_KEY,
            &Msg::Block {
                slot: pos,
                body: variant,
            },
        ),
        2 => Request::grpc(
            ETH2_KEY,
            &Msg::Attestation {
                source: pos - 1,
                target: pos,
                root: variant,
            },
        ),
        3 => Request::rest(true, pos, variant),
        _ => Request::rest(false, pos, variant),
    }
}

impl Load {
    /// Start `clients` client tasks, each seeded from `seed`, sending to every node in turn.
    pub fn start(
        clients: Arc<Clients>,
        judge: Arc<Judge>,
        positions: Arc<Positions>,
        nodes: Vec<u64>,
        seed: u64,
        tasks_n: usize,
    ) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let before_fault = Arc::new(AtomicBool::new(true));
        let tally = Arc::new(Mutex::new(Tally::default()));
        let mut tasks = tokio::task::JoinSet::new();
        for t in 0..tasks_n {
            let (clients, judge, positions, nodes) = (
                clients.clone(),
                judge.clone(),
                positions.clone(),
                nodes.clone(),
            );
            let (stop, before_fault, tally) = (stop.clone(), before_fault.clone(), tally.clone());
            let client = ["seq-1", "seq-2", "seq-3"][t % 3];
            tasks.spawn(async move {
                let mut rng = StdRng::seed_from_u64(seed ^ (t as u64).wrapping_mul(0x9E37_79B9));
                // A node that did not answer is avoided for a while, as a client with several
                // signer URLs fails over (unless every node is avoided).
                let mut avoid: BTreeMap<u64, std::time::Instant> = BTreeMap::new();
                while !stop.load(Ordering::SeqCst) {
                    let request = pick(&mut rng, &positions);
                    let now = std::time::Instant::now();
                    avoid.retain(|_, until| *until > now);
                    let open: Vec<u64> = nodes
                        .iter()
                        .copied()
                        .filter(|n| !avoid.contains_key(n))
                        .collect();
                    let choice = if open.is_empty() { &nodes } else { &open };
                    let node = choice[rng.gen_range(0..choice.len())];
                    judge
                        .oracle
                        .lock()
                        .unwrap()
                        .asked(request.meaning.clone(), request.digest);
                    let before = before_fault.load(Ordering::SeqCst);
                    let answer = clients.send(node, client, &request).await;
                    judge.record(&request, &answer, &tally, before);
                    if matches!(answer, Answer::Unavailable(_)) {
                        avoid.insert(node, std::time::Instant::now() + AVOID_FOR);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            });
        }
        Load {
            stop,
            before_fault,
            tally,
            tasks,
        }
    }

    /// Stop the clients and wait for their last answers.
    pub async fn finish(mut self) -> Tally {
        self.stop.store(true, Ordering::SeqCst);
        while let Some(done) = self.tasks.join_next().await {
            if let Err(e) = done {
                // A client task's assertion (a signature that does not verify) fails the suite.
                std::panic::resume_unwind(e.into_panic());
            }
        }
        std::mem::take(&mut *self.tally.lock().unwrap())
    }
}
