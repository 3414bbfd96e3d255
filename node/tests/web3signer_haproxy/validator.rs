//! The validator-like client of the HAProxy test: the duties it asks to sign (honest ones and
//! the deliberately conflicting ones), how it retries, and the log of every attempt it made.
//!
//! Owns: `Duty` (the Web3Signer body of each message), `Intent`, `Outcome` (one HTTP answer,
//! classified), `Attempt` and `Validator`, which reconnects and retries like a client with one
//! signer URL.
//!
//! Must not: judge the attempts (that is `checks`), compute signing roots (that is `roots`) or
//! touch HAProxy or the nodes; it only talks HTTP to the URL it is given.

use super::{REQUESTS_PER_CONNECTION, RETRY_BUDGET, START_SLOT, START_TARGET};
use crate::support::GVR;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use signer_node::client::web3signer::{HttpAnswer, Web3SignerConnection};
use signer_node::tls::TlsMaterial;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub fn hex0x(bytes: &[u8]) -> String {
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
pub enum Duty {
    Block { slot: u64, variant: u8 },
    Attestation { target: u64, variant: u8 },
}

impl Duty {
    pub fn body(&self) -> Value {
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
    pub fn position(&self) -> (&'static str, u64) {
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
pub enum Intent {
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
pub enum Outcome {
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

    pub fn answered(&self) -> bool {
        matches!(self, Outcome::Signed(_) | Outcome::Refused(_))
    }

    pub fn ambiguous(&self) -> bool {
        matches!(self, Outcome::Unavailable(_) | Outcome::Transport(_))
    }
}

/// One HTTP attempt, as the client saw it (times since the test's start).
#[derive(Clone, Debug)]
pub struct Attempt {
    pub request: u64,
    pub duty: Duty,
    pub intent: Intent,
    pub started: Duration,
    pub ended: Duration,
    pub outcome: Outcome,
}

/// A validator client with one signer URL (HAProxy's): it reconnects on transport errors and
/// retries a request that got no answer, as-is, until it is answered.
pub struct Validator {
    url: SocketAddr,
    tls: TlsMaterial,
    identifier: String,
    conn: Option<(Web3SignerConnection, u32)>,
    t0: Instant,
    requests: u64,
    log: Arc<Mutex<Vec<Attempt>>>,
}

impl Validator {
    /// A client of the signer at `url`, as `identifier`'s validator, logging into `log` with
    /// times since `t0`.
    pub fn new(
        url: SocketAddr,
        tls: TlsMaterial,
        identifier: String,
        t0: Instant,
        log: Arc<Mutex<Vec<Attempt>>>,
    ) -> Validator {
        Validator {
            url,
            tls,
            identifier,
            conn: None,
            t0,
            requests: 0,
            log,
        }
    }

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

    pub async fn run(mut self, stop: Arc<AtomicBool>) {
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

pub fn secs(d: Duration) -> String {
    format!("{:.2}s", d.as_secs_f64())
}

impl Attempt {
    /// The exact request and answer, for failure messages.
    pub fn describe(&self) -> String {
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
