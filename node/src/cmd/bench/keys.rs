//! The bench's many-keys measurement: a dev cluster of three `signer node` processes with a
//! local KEK or an AWS KMS key (in a local `moto_server`), `count` registry keys generated in
//! the cluster (each an approved admin action, sealed under the KEK), then every node
//! restarted: the time until every node has every key, each node's memory, and the sign
//! latency of one key before the keys were generated and after. Both are taken right after
//! every node was restarted and reported ready. The restart is timed twice: with each node's
//! keyring cache (one KEK call per node), and cold, with the cache files deleted first (one
//! KEK call per shared data key and node, here one: a node's first start, or its first after
//! a KEK change; keys sealed before format 4 cost one call each).
//!
//! The figure the ≤10% target is judged by is paired: a second cluster with only the demo keys
//! (same binary, same KEK kind) runs beside the one with every key, and one key's signatures
//! alternate between the two, one at a time, so both medians come from the same minutes of
//! this machine. Before and after on one cluster are minutes apart, and this VM's speed moves
//! by more than 10% between them.
//!
//! Owns: that procedure and taking its two clusters down. Must not: assert anything.

use super::kms::LocalKms;
use super::load::request;
use super::processes::Processes;
use anyhow::{anyhow, Context, Result};

use signer_node::client::{PoolOptions, SignerPool, SoftApprover};
use signer_node::config::NodeConfig;
use signer_node::devcluster::{DevCluster, ADMIN};
use signer_node::keyloader;
use signer_node::pb;
use signer_node::protection::Profile;
use std::path::Path;
use std::time::{Duration, Instant};

const NODES: usize = 3;
/// Signatures timed (one at a time) for the latency before the keys were generated.
const LATENCY_SIGNS: u64 = 500;
/// Signatures timed on each cluster in the paired measurement.
const PAIRED_SIGNS: u64 = 2_000;
/// Key generations in flight at once (the admin plane allows 256 open challenges).
const IN_FLIGHT: usize = 32;

/// What the many-keys run found.
pub struct ManyKeys {
    pub keys: usize,
    /// "local" (a local KEK file) or "aws-kms" (a KMS key in a local moto_server).
    pub kek: &'static str,
    /// Generating and sealing every key, one approved action each.
    pub generate_s: f64,
    /// From starting the three stopped nodes to every node holding every key, with each
    /// node's keyring cache.
    pub start_ready_s: f64,
    /// The same with the keyring cache files deleted first: every key unsealed from the
    /// registry.
    pub start_ready_cold_s: f64,
    /// Resident memory of each node process once ready (MiB).
    pub rss_mib: Vec<f64>,
    /// Median latency of one key's signature with only the demo keys, and with every key.
    pub p50_ms_before: f64,
    pub p50_ms_after: f64,
    /// The paired measurement: the median with every key (`p50_ms_after`) against this one,
    /// from a cluster with only the demo keys, signing alternately with it.
    pub p50_ms_reference: f64,
    /// Signatures per cluster in the paired measurement.
    pub paired_signs: u64,
}

/// The measurement with keys sealed under a local KEK, or under a KMS key in the
/// `moto_server` given.
pub async fn many_keys(count: usize, moto_server: Option<&Path>) -> Result<ManyKeys> {
    let mut processes = Processes::create("signer-bench-keys-", NODES)?;
    // Declared after the cluster, so dropped (killed) only after the nodes stopped.
    let kms = match moto_server {
        Some(path) => {
            let kms = LocalKms::start(path).await?;
            kms.configure(&mut processes.cluster)?;
            Some(kms)
        }
        None => None,
    };
    let result = measure(&processes.cluster, &processes.exe, count, kms.as_ref()).await;
    drop(processes);
    drop(kms);
    result
}

async fn measure(
    cluster: &DevCluster,
    exe: &Path,
    count: usize,
    kms: Option<&LocalKms>,
) -> Result<ManyKeys> {
    let kek = if kms.is_some() { "aws-kms" } else { "local" };
    cluster.start_stopped(exe)?;
    cluster.wait_for_leader(Duration::from_secs(30)).await?;
    let pool = cluster.pool().await?;
    let demo_keys = cluster.descriptor().keys.len();
    let mut view = 0u64;
    restart(cluster, exe, &pool, demo_keys, Start::Cached).await?;
    let p50_ms_before = p50_sign_ms(&pool, &mut view).await?;

    let generate = Instant::now();
    generate_keys(cluster, count).await?;
    let generate_s = generate.elapsed().as_secs_f64();
    wait_loaded(&pool, demo_keys + count, Duration::from_secs(600)).await?;

    let started = Instant::now();
    let pids = restart(cluster, exe, &pool, demo_keys + count, Start::Cached).await?;
    let start_ready_s = started.elapsed().as_secs_f64();
    let rss_mib = pids
        .iter()
        .map(|(id, pid)| rss_mib(*pid).with_context(|| format!("node-{id}'s memory")))
        .collect::<Result<Vec<_>>>()?;
    let started = Instant::now();
    restart(cluster, exe, &pool, demo_keys + count, Start::Cold).await?;
    let start_ready_cold_s = started.elapsed().as_secs_f64();

    // Made only now, so that its ports are chosen while this cluster's are taken; dropped
    // (stopped) at the end of this function.
    let mut reference_processes = Processes::create("signer-bench-keys-ref-", NODES)?;
    if let Some(kms) = kms {
        kms.configure(&mut reference_processes.cluster)?;
    }
    let reference = &reference_processes.cluster;
    reference.start_stopped(exe)?;
    reference.wait_for_leader(Duration::from_secs(60)).await?;
    let reference_pool = reference.pool().await?;
    wait_loaded(&reference_pool, demo_keys, Duration::from_secs(600)).await?;
    let (p50_ms_after, p50_ms_reference) =
        paired_p50_ms((&pool, &mut view), (&reference_pool, &mut 0), PAIRED_SIGNS).await?;
    Ok(ManyKeys {
        keys: count,
        kek,
        generate_s,
        start_ready_s,
        start_ready_cold_s,
        rss_mib,
        p50_ms_before,
        p50_ms_after,
        p50_ms_reference,
        paired_signs: PAIRED_SIGNS,
    })
}

/// Generate `count` eth2 keys `many-<i>`, each proposed and approved by the dev admin.
async fn generate_keys(cluster: &DevCluster, count: usize) -> Result<()> {
    let descriptor = cluster.descriptor();
    let admin_key = descriptor
        .admins
        .get(ADMIN)
        .ok_or_else(|| anyhow!("the dev cluster has no {ADMIN} key"))?;
    let options = PoolOptions {
        rpc_timeout: Duration::from_secs(30),
        deadline: Duration::from_secs(120),
        ..PoolOptions::default()
    };
    let pool = SignerPool::connect_with(descriptor, ADMIN, options).await?;
    let next = std::sync::atomic::AtomicUsize::new(0);
    // The approver is not `Send`: the workers are futures of this task, not spawned tasks.
    let workers = (0..IN_FLIGHT).map(|_| async {
        let mut approver = SoftApprover::load(ADMIN, &admin_key.key)?;
        loop {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if i >= count {
                return Ok::<(), anyhow::Error>(());
            }
            let request = pb::propose_request::Request::GenerateKey(pb::GenerateKeyRequest {
                key_id: format!("many-{i}"),
                profile: Profile::Eth2.name().into(),
            });
            let (_, answer) = pool
                .propose_and_approve(request, &descriptor.cluster_id, &mut approver)
                .await
                .with_context(|| format!("generating key many-{i}"))?;
            if answer.status != "executed" {
                return Err(anyhow!(
                    "generating key many-{i}: {} ({})",
                    answer.status,
                    answer.detail
                ));
            }
        }
    });
    futures::future::try_join_all(workers).await?;
    Ok(())
}

/// How the nodes start again.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Start {
    /// With the keyring cache each node wrote.
    Cached,
    /// With every node's keyring cache file deleted.
    Cold,
}

/// Stop every node, start them again, and wait until there is a leader and every node holds
/// `keys` keys; returns each node's process id.
async fn restart(
    cluster: &DevCluster,
    exe: &Path,
    pool: &SignerPool,
    keys: usize,
    start: Start,
) -> Result<Vec<(u64, u32)>> {
    cluster.stop(super::processes::STOP_GRACE)?;
    if start == Start::Cold {
        for id in 1..=NODES as u64 {
            let config = NodeConfig::load(&cluster.config_path(id))?;
            let path = config.data_dir.join(keyloader::cache::FILE_NAME);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).with_context(|| format!("removing {}", path.display())),
            }
        }
    }
    let pids = cluster.start_stopped(exe)?;
    cluster.wait_for_leader(Duration::from_secs(60)).await?;
    wait_loaded(pool, keys, Duration::from_secs(600)).await?;
    Ok(pids)
}

/// Wait until every node reports at least `keys` keys loaded.
async fn wait_loaded(pool: &SignerPool, keys: usize, within: Duration) -> Result<()> {
    let deadline = Instant::now() + within;
    loop {
        let statuses = pool.cluster_statuses().await;
        if statuses.len() == NODES
            && statuses
                .iter()
                .all(|(_, s)| s.as_ref().is_ok_and(|s| s.keys_loaded.len() >= keys))
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(anyhow!(
                "not every node loaded {keys} keys within {within:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Median latency of `LATENCY_SIGNS` signatures of the demo espresso key, one at a time.
async fn p50_sign_ms(pool: &SignerPool, view: &mut u64) -> Result<f64> {
    let mut latencies = Vec::new();
    for _ in 0..LATENCY_SIGNS {
        latencies.push(timed_sign(pool, view).await?);
    }
    Ok(median_ms(latencies))
}

/// Medians of `signs` signatures of the demo espresso key on each of two clusters, taken
/// alternately one at a time (which goes first alternates too), so that both see the same
/// moments of this machine.
async fn paired_p50_ms(
    (a, a_view): (&SignerPool, &mut u64),
    (b, b_view): (&SignerPool, &mut u64),
    signs: u64,
) -> Result<(f64, f64)> {
    let (mut a_latencies, mut b_latencies) = (Vec::new(), Vec::new());
    for i in 0..signs {
        if i % 2 == 0 {
            a_latencies.push(timed_sign(a, a_view).await?);
            b_latencies.push(timed_sign(b, b_view).await?);
        } else {
            b_latencies.push(timed_sign(b, b_view).await?);
            a_latencies.push(timed_sign(a, a_view).await?);
        }
    }
    Ok((median_ms(a_latencies), median_ms(b_latencies)))
}

/// One signature of the demo espresso key at the next view: how long it took.
async fn timed_sign(pool: &SignerPool, view: &mut u64) -> Result<Duration> {
    *view += 1;
    let mut r = request(Profile::Espresso, 0, *view);
    r.key_id = "demo-espresso".into();
    let started = Instant::now();
    pool.sign(r).await.context("signing with the demo key")?;
    Ok(started.elapsed())
}

fn median_ms(mut latencies: Vec<Duration>) -> f64 {
    latencies.sort_unstable();
    let median = latencies
        .get(latencies.len() / 2)
        .copied()
        .unwrap_or_default();
    median.as_secs_f64() * 1000.0
}

/// The resident memory of process `pid` in MiB (`VmRSS` of /proc/PID/status).
fn rss_mib(pid: u32) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| anyhow!("no VmRSS in /proc/{pid}/status"))?;
    Ok(kib / 1024.0)
}
