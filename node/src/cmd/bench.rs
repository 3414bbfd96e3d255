//! `signer bench`: sign throughput and latency of a real 3-node cluster (in this process, on
//! loopback, mutual TLS, redb with fsync) next to raw in-process signing of the same scheme,
//! measured in the same run on the same cores.
//!
//! Owns: the benchmark procedure and its report. Must not: be used as a test (numbers are
//! printed, never asserted).

use anyhow::{anyhow, Context, Result};
use signer_node::client::web3signer::Web3SignerConnection;
use signer_node::config::admin::{AdminConfig, BootstrapAdmin, BootstrapClient};
use signer_node::config::{NodeConfig, PeerConfig, RaftConfig, TlsPaths, Web3SignerConfig};
use signer_node::keyring::KeyFile;
use signer_node::pb;
use signer_node::pb::signer_client::SignerClient;
use signer_node::protection::Profile;
use signer_node::scheme::{bls12_381, bn254};
use signer_node::tls::{DevPki, TlsMaterial};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tonic::transport::{Channel, Endpoint};

/// Benchmark settings.
pub struct BenchOptions {
    /// Seconds per measurement.
    pub seconds: u64,
    /// Client concurrency levels.
    pub clients: Vec<usize>,
    /// Which profiles to measure.
    pub profiles: Vec<Profile>,
}

/// How long `stop` waits for the nodes to shut down before it aborts them.
const STOP_GRACE: Duration = Duration::from_secs(30);

/// A cluster of nodes running as tasks of this process. The tasks are owned: `stop` signals
/// and joins them, and dropping the cluster aborts any still running.
struct LocalCluster {
    _dir: tempfile::TempDir,
    stop: tokio::sync::watch::Sender<bool>,
    nodes: tokio::task::JoinSet<()>,
    client_addrs: Vec<(u64, std::net::SocketAddr)>,
    /// The Web3Signer-compatible API of each node.
    rest_addrs: Vec<(u64, std::net::SocketAddr)>,
    tls: TlsMaterial,
}

impl LocalCluster {
    /// Start `n` nodes holding `keys_per_profile` keys of each profile.
    async fn start(n: u64, keys_per_profile: usize) -> Result<LocalCluster> {
        let dir = tempfile::tempdir()?;
        let ids: Vec<u64> = (1..=n).collect();
        let pki = DevPki::create(&dir.path().join("pki"), &ids, &["bench"])?;
        let keys_src = dir.path().join("keys");
        std::fs::create_dir_all(&keys_src)?;
        for i in 0..keys_per_profile {
            for (profile, name) in [(Profile::Eth2, "eth2"), (Profile::Espresso, "espresso")] {
                let id = format!("{name}-{i}");
                KeyFile::generate(&id, profile)?.write_new(&keys_src.join(format!("{id}.key")))?;
            }
        }
        let mut listeners = Vec::new();
        for &id in &ids {
            let client = TcpListener::bind("127.0.0.1:0").await?;
            let peer = TcpListener::bind("127.0.0.1:0").await?;
            let rest = TcpListener::bind("127.0.0.1:0").await?;
            listeners.push((id, client, peer, rest));
        }
        let peers: Vec<PeerConfig> = listeners
            .iter()
            .map(|(id, c, p, _)| -> Result<PeerConfig> {
                Ok(PeerConfig {
                    id: *id,
                    client_addr: c.local_addr()?,
                    peer_addr: p.local_addr()?,
                })
            })
            .collect::<Result<_>>()?;
        // The admin plane: a throwaway admin, and the bench client may use every key.
        let throwaway = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
        let admin = AdminConfig {
            admins: vec![BootstrapAdmin {
                name: "bench-admin".into(),
                key: Some(format!(
                    "ed25519:{}",
                    hex::encode(throwaway.verifying_key().to_bytes())
                )),
                slot_certificate: None,
                device_certificate: None,
            }],
            clients: vec![BootstrapClient {
                identity: "bench".into(),
                keys: vec![signer_node::admin::ALL_KEYS.into()],
                profiles: vec![Profile::Eth2, Profile::Espresso],
                rate_per_second: 0,
                rate_burst: 0,
                raw_roots: false,
            }],
            ..AdminConfig::dev()
        };
        let (stop, _) = tokio::sync::watch::channel(false);
        let mut nodes = tokio::task::JoinSet::new();
        let mut client_addrs = Vec::new();
        let mut rest_addrs = Vec::new();
        for (id, client, peer, rest) in listeners {
            let tls = TlsPaths {
                ca: pki.ca_cert_path(),
                cert: pki.node_cert_path(id),
                key: pki.node_key_path(id),
            };
            let data_dir = dir.path().join(format!("node-{id}"));
            let config = NodeConfig::builder(id, "bench", data_dir, tls, peers.clone())
                .keys_dir(&keys_src)
                .raft(RaftConfig {
                    heartbeat_ms: 100,
                    election_min_ms: 400,
                    election_max_ms: 800,
                    ..RaftConfig::default()
                })
                .admin(admin.clone())
                .web3signer(Some(Web3SignerConfig::https(rest.local_addr()?)))
                .build()?;
            client_addrs.push((id, config.client_listen));
            rest_addrs.push((id, rest.local_addr()?));
            let mut stopped = stop.subscribe();
            let listeners = signer_node::node::Listeners {
                client,
                peer,
                metrics: None,
                web3signer: Some(rest),
            };
            nodes.spawn(async move {
                if let Err(e) = signer_node::node::run(config, listeners, async move {
                    let _ = stopped.wait_for(|s| *s).await;
                })
                .await
                {
                    eprintln!("node {id} stopped: {e}");
                }
            });
        }
        let tls = TlsMaterial::read(
            &pki.ca_cert_path(),
            &pki.client_cert_path("bench"),
            &pki.client_key_path("bench"),
        )?;
        Ok(LocalCluster {
            _dir: dir,
            stop,
            nodes,
            client_addrs,
            rest_addrs,
            tls,
        })
    }

    fn client(&self, id: u64) -> Result<SignerClient<Channel>> {
        let addr = self
            .client_addrs
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, a)| *a)
            .ok_or_else(|| anyhow!("no node {id}"))?;
        let channel = Endpoint::from_shared(format!("https://{addr}"))?
            .tls_config(self.tls.client_config(&format!("node-{id}"))?)?
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(10))
            .connect_lazy();
        Ok(SignerClient::new(channel))
    }

    /// The eth2 keys' public keys (`0x…` hex) by key id, as node `id` lists them.
    async fn eth2_public_keys(&self, id: u64) -> Result<std::collections::HashMap<String, String>> {
        let keys = self
            .client(id)?
            .get_public_keys(pb::GetPublicKeysRequest {})
            .await?
            .into_inner()
            .keys;
        Ok(keys
            .into_iter()
            .filter(|k| k.profile == Profile::Eth2.name())
            .map(|k| (k.key_id, format!("0x{}", hex::encode(k.public_key))))
            .collect())
    }

    /// Wait for a leader that has committed an entry; return its id.
    async fn leader(&self) -> Result<u64> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            for &(id, _) in &self.client_addrs {
                if let Ok(s) = self
                    .client(id)?
                    .get_cluster_status(pb::GetClusterStatusRequest {})
                    .await
                {
                    let s = s.into_inner();
                    if s.leader_id == id && s.last_applied_index > 0 {
                        return Ok(id);
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(anyhow!("no leader within 30 s"))
    }

    /// Tell every node to shut down and wait until they have (for at most [`STOP_GRACE`];
    /// nodes still running then are aborted).
    async fn stop(mut self) {
        let _ = self.stop.send(true);
        let joined = tokio::time::timeout(STOP_GRACE, async {
            while let Some(result) = self.nodes.join_next().await {
                if let Err(e) = result {
                    eprintln!("a node task failed: {e}");
                }
            }
        })
        .await;
        if joined.is_err() {
            eprintln!(
                "{} node(s) still running after {STOP_GRACE:?}; aborted",
                self.nodes.len()
            );
            self.nodes.shutdown().await;
        }
    }
}

/// The eth2 attestation client `c` signs at its `n`-th step (its key is `eth2-{c}`).
fn eth2_attestation(n: u64) -> eth2_messages::Eth2Message {
    let mut root = [0u8; 32];
    root[..8].copy_from_slice(&n.to_le_bytes());
    let network = eth2_messages::NetworkSpec::mainnet();
    signer_node::client::eth2::attestation(&network, n, n + 1, root)
}

/// A request for client `c`'s key at its `n`-th step: always new data, never conflicting.
fn request(profile: Profile, c: usize, n: u64) -> pb::SignRequest {
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
        key_id: format!("{}-{c}", profile.name()),
        message: Some(message),
    }
}

struct Measurement {
    per_second: f64,
    p50: Duration,
    p99: Duration,
    failures: u64,
    first_error: Option<String>,
}

/// SignBatch measurement: this many clients, each sending batches of this many requests.
const BATCH_CLIENTS: usize = 8;
const BATCH_SIZE: usize = 32;

/// Each measurement signs above every earlier one, so keys never see stale requests.
static NEXT_BASE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

async fn measure_cluster(
    cluster: &LocalCluster,
    leader: u64,
    profile: Profile,
    clients: usize,
    seconds: u64,
) -> Result<Measurement> {
    let base = NEXT_BASE.fetch_add(1, std::sync::atomic::Ordering::SeqCst) << 40;
    let end = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let mut client = cluster.client(leader)?;
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            let mut n = base;
            while Instant::now() < end {
                n += 1;
                let started = Instant::now();
                let answer = client.sign(request(profile, c, n)).await;
                tally.record(
                    started,
                    answer.map_err(|e| format!("{}: {}", e.code(), e.message())),
                );
            }
            tally
        }));
    }
    summarize(tasks).await
}

/// Clients each on its own keep-alive HTTPS connection to the leader's Web3Signer-compatible
/// API, POSTing `ATTESTATION` bodies for their own key (the validator-client path).
async fn measure_rest(
    cluster: &LocalCluster,
    leader: u64,
    clients: usize,
    seconds: u64,
) -> Result<Measurement> {
    let public_keys = cluster.eth2_public_keys(leader).await?;
    let addr = cluster
        .rest_addrs
        .iter()
        .find(|(i, _)| *i == leader)
        .map(|(_, a)| *a)
        .ok_or_else(|| anyhow!("no node {leader}"))?;
    let base = NEXT_BASE.fetch_add(1, std::sync::atomic::Ordering::SeqCst) << 40;
    let end = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let identifier = public_keys
            .get(&format!("eth2-{c}"))
            .cloned()
            .ok_or_else(|| anyhow!("no key eth2-{c}"))?;
        let mut conn = Web3SignerConnection::connect(addr, Some((&cluster.tls, "localhost")))
            .await
            .context("connecting to the Web3Signer API")?;
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            let mut n = base;
            while Instant::now() < end {
                n += 1;
                let body = match eth2_attestation(n).to_web3signer_json(None) {
                    Ok(v) => v.to_string().into_bytes(),
                    Err(e) => {
                        tally.record::<()>(Instant::now(), Err(e.to_string()));
                        break;
                    }
                };
                let started = Instant::now();
                let answer = match conn.sign(&identifier, body).await {
                    Ok(a) if a.status == 200 => Ok(()),
                    Ok(a) => Err(format!("{}: {}", a.status, a.text())),
                    Err(e) => {
                        // The connection is gone: this client stops.
                        tally.record::<()>(started, Err(e.to_string()));
                        break;
                    }
                };
                tally.record(started, answer);
            }
            tally
        }));
    }
    summarize(tasks).await
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
            Err(e) => {
                self.failures += 1;
                self.first_error.get_or_insert(e);
            }
        }
    }
}

/// Wait for the client tasks and turn their tallies into one measurement.
async fn summarize(tasks: Vec<tokio::task::JoinHandle<Tally>>) -> Result<Measurement> {
    let started = Instant::now();
    let (mut signed, mut all, mut failures, mut first_error) = (0u64, Vec::new(), 0u64, None);
    for t in tasks {
        let tally = t.await?;
        signed += tally.signed;
        all.extend(tally.latencies);
        failures += tally.failures;
        if first_error.is_none() {
            first_error = tally.first_error;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Ok(Measurement {
        per_second: signed as f64 / elapsed,
        p50: pct(0.50),
        p99: pct(0.99),
        failures,
        first_error,
    })
}

/// Clients each sending SignBatch calls of `batch` requests, one key per (client, slot), so no
/// two requests of a batch touch the same key.
async fn measure_cluster_batch(
    cluster: &LocalCluster,
    leader: u64,
    profile: Profile,
    clients: usize,
    batch: usize,
    seconds: u64,
) -> Result<Measurement> {
    let base = NEXT_BASE.fetch_add(1, std::sync::atomic::Ordering::SeqCst) << 40;
    let end = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let mut client = cluster.client(leader)?;
        tasks.push(tokio::spawn(async move {
            let (mut signed, mut failures, mut latencies, mut first_error) =
                (0u64, 0u64, Vec::new(), None);
            let mut n = base;
            while Instant::now() < end {
                n += 1;
                let requests = (0..batch)
                    .map(|j| request(profile, c * batch + j, n))
                    .collect();
                let started = Instant::now();
                match client.sign_batch(pb::SignBatchRequest { requests }).await {
                    Ok(resp) => {
                        latencies.push(started.elapsed());
                        for r in resp.into_inner().results {
                            match r.result {
                                Some(pb::sign_batch_result::Result::Signed(_)) => signed += 1,
                                Some(pb::sign_batch_result::Result::Error(e)) => {
                                    failures += 1;
                                    first_error.get_or_insert(e.message);
                                }
                                None => failures += 1,
                            }
                        }
                    }
                    Err(e) => {
                        failures += batch as u64;
                        first_error.get_or_insert_with(|| e.message().to_owned());
                    }
                }
            }
            Tally {
                signed,
                latencies,
                failures,
                first_error,
            }
        }));
    }
    summarize(tasks).await
}

/// Raw signing throughput of the scheme on all cores, in this process.
fn measure_raw(profile: Profile, seconds: u64) -> Result<f64> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let end = Instant::now() + Duration::from_secs(seconds);
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

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

/// One line of the report.
fn print_row(profile: Profile, clients: &str, m: &Measurement, raw: f64, note: &str) {
    let failed = match &m.first_error {
        Some(e) => format!("  ({} failed, first: {e})", m.failures),
        None => String::new(),
    };
    signer_client::outln!(
        "{:<9} {:>8} {:>12.0} {:>9} {:>9} {:>12.0} {:>7.0}%{note}{failed}",
        profile.name(),
        clients,
        m.per_second,
        ms(m.p50),
        ms(m.p99),
        raw,
        100.0 * m.per_second / raw,
    );
}

/// Run the benchmark and print the report.
pub async fn run(opts: BenchOptions) -> Result<()> {
    let max_clients = opts
        .clients
        .iter()
        .copied()
        .max()
        .unwrap_or(1)
        .max(BATCH_CLIENTS * BATCH_SIZE);
    signer_client::outln!(
        "starting a 3-node cluster in this process (loopback, mutual TLS, redb fsync on)…"
    );
    let cluster = LocalCluster::start(3, max_clients)
        .await
        .context("starting the cluster")?;
    let leader = cluster.leader().await?;
    // Warm up: open connections and fill caches.
    for p in &opts.profiles {
        let mut c = cluster.client(leader)?;
        c.sign(request(*p, 0, 1)).await.context("warm-up sign")?;
    }
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    signer_client::outln!(
        "machine: {cores} cores; {} s per measurement; leader is node {leader}",
        opts.seconds
    );
    signer_client::outln!();
    signer_client::outln!(
        "{:<9} {:>8} {:>12} {:>9} {:>9} {:>12} {:>8}",
        "profile",
        "clients",
        "signs/s",
        "p50 ms",
        "p99 ms",
        "raw signs/s",
        "ratio"
    );
    for profile in &opts.profiles {
        let raw = measure_raw(*profile, opts.seconds)?;
        for &clients in &opts.clients {
            let m = measure_cluster(&cluster, leader, *profile, clients, opts.seconds).await?;
            print_row(*profile, &clients.to_string(), &m, raw, "");
        }
        let m = measure_cluster_batch(
            &cluster,
            leader,
            *profile,
            BATCH_CLIENTS,
            BATCH_SIZE,
            opts.seconds,
        )
        .await?;
        let label = format!("{BATCH_CLIENTS}x{BATCH_SIZE}");
        let note = format!("  (SignBatch of {BATCH_SIZE}; latency per call)");
        print_row(*profile, &label, &m, raw, &note);
        if *profile == Profile::Eth2 {
            for &clients in &opts.clients {
                let m = measure_rest(&cluster, leader, clients, opts.seconds).await?;
                let note = "  (Web3Signer REST: HTTPS keep-alive, ATTESTATION bodies)";
                print_row(*profile, &format!("{clients} REST"), &m, raw, note);
            }
        }
    }
    signer_client::outln!();
    signer_client::outln!(
        "raw = in-process signing of the same scheme on all {cores} cores, same run; the cluster's"
    );
    signer_client::outln!(
        "three nodes, clients and TLS share those cores. Latency is per Sign call at the client."
    );
    cluster.stop().await;
    Ok(())
}
