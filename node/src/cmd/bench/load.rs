//! The bench's load: requests that never conflict, closed-loop clients (gRPC `Sign`,
//! `SignBatch`, the Web3Signer-compatible REST path), an open-loop schedule, and raw
//! in-process signing of the same scheme.
//!
//! Owns: generating load and turning the answers into a [`Measurement`]. Must not: start or
//! stop clusters, or print (the report does).

use super::local::LocalCluster;
use anyhow::{anyhow, Context, Result};
use signer_node::client::web3signer::Web3SignerConnection;
use signer_node::pb;
use signer_node::pb::signer_client::SignerClient;
use signer_node::protection::Profile;
use signer_node::scheme::{bls12_381, bn254};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tonic::transport::Channel;

/// What one measurement found.
pub struct Measurement {
    /// Successful signatures per second of wall time.
    pub per_second: f64,
    /// Latency percentiles of the successful calls (per call; a batch is one call).
    pub p50: Duration,
    pub p99: Duration,
    pub p999: Duration,
    /// Calls (or batch items) that did not sign, and the first reason.
    pub failures: u64,
    pub first_error: Option<String>,
}

/// SignBatch measurement: this many clients, each sending batches of this many requests.
pub const BATCH_CLIENTS: usize = 8;
pub const BATCH_SIZE: usize = 32;

/// Each measurement signs above every earlier one, so keys never see stale requests.
static NEXT_BASE: AtomicU64 = AtomicU64::new(1);

fn next_base() -> u64 {
    NEXT_BASE.fetch_add(1, Ordering::SeqCst) << 40
}

/// The eth2 attestation a client signs at its `n`-th step (source `n`, target `n + 1`).
fn eth2_attestation(n: u64) -> eth2_messages::Eth2Message {
    let mut root = [0u8; 32];
    root[..8].copy_from_slice(&n.to_le_bytes());
    let network = eth2_messages::NetworkSpec::mainnet();
    signer_node::client::eth2::attestation(&network, n, n + 1, root)
}

/// A request for key `<profile>-<key>` at step `n`: always new data, never conflicting as
/// long as each key's steps arrive in increasing order.
pub fn request(profile: Profile, key: usize, n: u64) -> pb::SignRequest {
    let message = match profile {
        Profile::Eth2 => signer_node::client::eth2::typed(&eth2_attestation(n), None),
        Profile::Espresso => pb::sign_request::Message::Espresso(pb::EspressoMessage {
            kind: Some(pb::espresso_message::Kind::QuorumVote(pb::QuorumVote {
                view: n,
                leaf_commit: {
                    let mut r = vec![7u8; 32];
                    r[..8].copy_from_slice(&n.to_le_bytes());
                    r
                },
                epoch: None,
                block_number: None,
            })),
        }),
    };
    pb::SignRequest {
        request_id: String::new(),
        key_id: format!("{}-{key}", profile.name()),
        message: Some(message),
    }
}

/// `clients` closed-loop clients on their own connections to the leader, each signing with
/// its own key for `seconds`.
pub async fn closed_loop(
    cluster: &LocalCluster,
    leader: u64,
    profile: Profile,
    clients: usize,
    seconds: u64,
) -> Result<Measurement> {
    let base = next_base();
    let connected = connected_clients(cluster, leader, clients).await?;
    let started = Instant::now();
    let end = started + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for (c, mut client) in connected.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            let mut n = base;
            while Instant::now() < end {
                n += 1;
                let started = Instant::now();
                let answer = client.sign(request(profile, c, n)).await;
                tally.record(started, answer.map_err(|e| status_text(&e)));
            }
            tally
        }));
    }
    summarize(tasks, started).await
}

/// Clients each sending SignBatch calls of `batch` requests, one key per (client, slot), so
/// no two requests of a batch touch the same key.
pub async fn closed_loop_batch(
    cluster: &LocalCluster,
    leader: u64,
    profile: Profile,
    clients: usize,
    batch: usize,
    seconds: u64,
) -> Result<Measurement> {
    let base = next_base();
    let connected = connected_clients(cluster, leader, clients).await?;
    let started = Instant::now();
    let end = started + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for (c, mut client) in connected.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            let mut n = base;
            while Instant::now() < end {
                n += 1;
                let requests = (0..batch)
                    .map(|j| request(profile, c * batch + j, n))
                    .collect();
                let started = Instant::now();
                match client.sign_batch(pb::SignBatchRequest { requests }).await {
                    Ok(resp) => {
                        tally.latencies.push(started.elapsed());
                        for r in resp.into_inner().results {
                            match r.result {
                                Some(pb::sign_batch_result::Result::Signed(_)) => tally.signed += 1,
                                Some(pb::sign_batch_result::Result::Error(e)) => {
                                    tally.fail(e.message)
                                }
                                None => tally.fail("an empty batch result".into()),
                            }
                        }
                    }
                    Err(e) => {
                        tally.failures += batch as u64 - 1;
                        tally.fail(status_text(&e));
                    }
                }
            }
            tally
        }));
    }
    summarize(tasks, started).await
}

/// Clients each on its own keep-alive HTTPS connection to the leader's Web3Signer-compatible
/// API, POSTing `ATTESTATION` bodies for their own key (the validator-client path).
pub async fn closed_loop_rest(
    cluster: &LocalCluster,
    leader: u64,
    clients: usize,
    seconds: u64,
) -> Result<Measurement> {
    let public_keys = cluster.eth2_public_keys(leader).await?;
    let addr = cluster.rest_addr(leader)?;
    let base = next_base();
    // Every connection is open before the clock starts: the window counts signing only.
    let mut connections = Vec::with_capacity(clients);
    for c in 0..clients {
        let identifier = public_keys
            .get(&format!("eth2-{c}"))
            .cloned()
            .ok_or_else(|| anyhow!("no key eth2-{c}"))?;
        let conn = Web3SignerConnection::connect(addr, Some((&cluster.tls, "localhost")))
            .await
            .context("connecting to the Web3Signer API")?;
        connections.push((identifier, conn));
    }
    let started = Instant::now();
    let end = started + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for (identifier, mut conn) in connections {
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            let mut n = base;
            while Instant::now() < end {
                n += 1;
                let body = match eth2_attestation(n).to_web3signer_json(None) {
                    Ok(v) => v.to_string().into_bytes(),
                    Err(e) => {
                        tally.fail(e.to_string());
                        break;
                    }
                };
                let started = Instant::now();
                let answer = match conn.sign(&identifier, body).await {
                    Ok(a) if a.status == 200 => Ok(()),
                    Ok(a) => Err(format!("{}: {}", a.status, a.text())),
                    Err(e) => {
                        // The connection is gone: this client stops.
                        tally.fail(e.to_string());
                        break;
                    }
                };
                tally.record(started, answer);
            }
            tally
        }));
    }
    summarize(tasks, started).await
}

/// Open loop: requests offered at `rate` per second for `seconds`, each sent at its scheduled
/// time whatever the earlier ones are doing, over `connections` HTTP/2 connections to the
/// leader, round-robin over `keys` keys. Latency counts from the scheduled send time, so a
/// slow cluster is not hidden by a client that waited for it (no coordinated omission).
pub async fn open_loop(
    cluster: &LocalCluster,
    leader: u64,
    profile: Profile,
    rate: f64,
    seconds: u64,
    keys: usize,
) -> Result<Measurement> {
    const CONNECTIONS: usize = 16;
    if !rate.is_finite() || rate <= 0.0 || keys == 0 {
        return Err(anyhow!("an open loop needs a positive rate and keys"));
    }
    let channels = (0..CONNECTIONS)
        .map(|_| cluster.client(leader))
        .collect::<Result<Vec<_>>>()?;
    let base = next_base();
    let total = (rate * seconds as f64) as u64;
    let started = Instant::now();
    let first = tokio::time::Instant::now() + Duration::from_millis(20);
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..total {
        let scheduled = first + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(scheduled).await;
        let mut client = channels[i as usize % CONNECTIONS].clone();
        let request = request(profile, i as usize % keys, base + i);
        calls.spawn(async move {
            let answer = client.sign(request).await;
            (scheduled.elapsed(), answer.map_err(|e| status_text(&e)))
        });
    }
    let mut tally = Tally::default();
    while let Some(done) = calls.join_next().await {
        let (latency, answer) = done?;
        match answer {
            Ok(_) => {
                tally.signed += 1;
                tally.latencies.push(latency);
            }
            Err(e) => tally.fail(e),
        }
    }
    Ok(tally.into_measurement(started.elapsed()))
}

/// `clients` Signer clients of node `leader`, each on its own connection, already open (TCP
/// and TLS handshakes happen before a measurement's window, not inside its latencies).
async fn connected_clients(
    cluster: &LocalCluster,
    leader: u64,
    clients: usize,
) -> Result<Vec<SignerClient<Channel>>> {
    let mut connected = Vec::with_capacity(clients);
    for _ in 0..clients {
        let mut client = cluster.client(leader)?;
        client
            .get_cluster_status(pb::GetClusterStatusRequest {})
            .await
            .context("opening a client connection")?;
        connected.push(client);
    }
    Ok(connected)
}

fn status_text(status: &tonic::Status) -> String {
    format!("{}: {}", status.code(), status.message())
}

/// What one client task counted.
#[derive(Default)]
struct Tally {
    signed: u64,
    latencies: Vec<Duration>,
    failures: u64,
    first_error: Option<String>,
}

impl Tally {
    /// Count one call started at `started`: signed, or failed with a description.
    fn record<T>(&mut self, started: Instant, answer: std::result::Result<T, String>) {
        match answer {
            Ok(_) => {
                self.signed += 1;
                self.latencies.push(started.elapsed());
            }
            Err(e) => self.fail(e),
        }
    }

    fn fail(&mut self, reason: String) {
        self.failures += 1;
        self.first_error.get_or_insert(reason);
    }

    fn merge(&mut self, other: Tally) {
        self.signed += other.signed;
        self.latencies.extend(other.latencies);
        self.failures += other.failures;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    fn into_measurement(mut self, elapsed: Duration) -> Measurement {
        self.latencies.sort_unstable();
        let all = &self.latencies;
        let pct = |p: f64| {
            all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
                .copied()
                .unwrap_or_default()
        };
        Measurement {
            per_second: self.signed as f64 / elapsed.as_secs_f64(),
            p50: pct(0.50),
            p99: pct(0.99),
            p999: pct(0.999),
            failures: self.failures,
            first_error: self.first_error,
        }
    }
}

/// Wait for the client tasks and turn their tallies into one measurement of the time since
/// `started` (when the window opened), so a signature counted is always inside the time.
async fn summarize(
    tasks: Vec<tokio::task::JoinHandle<Tally>>,
    started: Instant,
) -> Result<Measurement> {
    let mut all = Tally::default();
    for t in tasks {
        all.merge(t.await?);
    }
    Ok(all.into_measurement(started.elapsed()))
}
/// Raw signing throughput of the scheme on all cores, in this process, over `window`.
pub fn raw_throughput(profile: Profile, window: Duration) -> Result<f64> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let end = Instant::now() + window;
    let started = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            std::thread::spawn(move || -> u64 {
                let mut rng = rand::rngs::OsRng;
                let mut count = 0u64;
                let mut msg = [t as u8; 32];
                match profile {
                    Profile::Eth2 => {
                        let Ok(sk) = bls12_381::SecretKey::generate(&mut rng) else {
                            return 0;
                        };
                        while Instant::now() < end {
                            msg[..8].copy_from_slice(&count.to_le_bytes());
                            std::hint::black_box(sk.sign(&msg));
                            count += 1;
                        }
                    }
                    Profile::Espresso => {
                        let sk = bn254::SecretKey::generate(&mut rng);
                        while Instant::now() < end {
                            msg[..8].copy_from_slice(&count.to_le_bytes());
                            std::hint::black_box(sk.sign(&msg));
                            count += 1;
                        }
                    }
                }
                count
            })
        })
        .collect();
    let mut total = 0;
    for h in handles {
        total += h
            .join()
            .map_err(|_| anyhow!("raw signing thread panicked"))?;
    }
    Ok(total as f64 / started.elapsed().as_secs_f64())
}
