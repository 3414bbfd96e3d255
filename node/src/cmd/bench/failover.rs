//! The bench's failover measurement: a dev cluster of three `signer node` processes (the
//! binary running the bench), a client signing through the failover pool, the leader killed
//! with SIGKILL while a second client keeps signing, and the time from the kill to the first
//! signature of a request sent after it.
//!
//! Owns: that procedure and taking its cluster down, also on errors. Must not: assert
//! anything (it reports times).

use super::load::request;
use anyhow::{anyhow, Result};
use signer_node::client::SignerPool;
use signer_node::devcluster::DevCluster;
use signer_node::protection::Profile;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const NODES: usize = 3;

/// Kill the leader `kills` times under load; each time, the milliseconds from the SIGKILL to
/// the first successful signature of a request sent after it. The killed node is restarted
/// and caught up before the next kill.
pub async fn failover(kills: usize) -> Result<Vec<f64>> {
    let processes = super::processes::Processes::create("signer-bench-failover-", NODES)?;
    measure(&processes.cluster, &processes.exe, kills).await
}

async fn measure(cluster: &DevCluster, exe: &Path, kills: usize) -> Result<Vec<f64>> {
    cluster.start_stopped(exe)?;
    cluster.wait_for_leader(Duration::from_secs(30)).await?;
    let pool = Arc::new(cluster.pool().await?);
    // The background load: eth2 attestations on the other demo key, back to back.
    let stop = Arc::new(AtomicBool::new(false));
    let background_signed = Arc::new(AtomicU64::new(0));
    let background = tokio::spawn({
        let (pool, stop, signed) = (pool.clone(), stop.clone(), background_signed.clone());
        async move {
            let mut n = 1u64 << 40;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                match pool.sign(demo_request(Profile::Eth2, n)).await {
                    Ok(_) => {
                        signed.fetch_add(1, Ordering::Relaxed);
                    }
                    // The pool already retried across nodes: pause rather than spin.
                    Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                }
            }
        }
    });
    let mut view = 1u64;
    let mut times = Vec::with_capacity(kills);
    let mut result = Ok(());
    for _ in 0..kills {
        if let Err(e) = wait_caught_up(&pool, Duration::from_secs(30)).await {
            result = Err(e);
            break;
        }
        // Signing is running on both keys before the kill.
        view += 1;
        if let Err(e) = pool.sign(demo_request(Profile::Espresso, view)).await {
            result = Err(anyhow!(e).context("signing before the kill"));
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let killed_at = Instant::now();
        let killed = match cluster.kill_leader().await {
            Ok((id, _)) => id,
            Err(e) => {
                result = Err(anyhow!(e).context("killing the leader"));
                break;
            }
        };
        let resumed = loop {
            view += 1;
            let sent = Instant::now();
            if pool
                .sign(demo_request(Profile::Espresso, view))
                .await
                .is_ok()
                && sent >= killed_at
            {
                break killed_at.elapsed();
            }
            if killed_at.elapsed() > Duration::from_secs(60) {
                break Duration::MAX;
            }
        };
        if resumed == Duration::MAX {
            result = Err(anyhow!("no signature within 60 s of killing node-{killed}"));
            break;
        }
        times.push(resumed.as_secs_f64() * 1000.0);
        if let Err(e) = cluster.start_node(exe, killed) {
            result = Err(anyhow!(e).context("restarting the killed node"));
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let _ = background.await;
    result?;
    if background_signed.load(Ordering::Relaxed) == 0 {
        return Err(anyhow!("the background load signed nothing"));
    }
    Ok(times)
}

/// A request for the dev cluster's demo key of `profile` at step `n`.
fn demo_request(profile: Profile, n: u64) -> signer_node::pb::SignRequest {
    let mut r = request(profile, 0, n);
    r.key_id = format!("demo-{}", profile.name());
    r
}

/// Wait until every node answers and has applied what the leader had applied when asked.
async fn wait_caught_up(pool: &SignerPool, within: Duration) -> Result<()> {
    let deadline = Instant::now() + within;
    loop {
        let statuses = pool.cluster_statuses().await;
        let leader = statuses
            .iter()
            .filter_map(|(_, s)| s.as_ref().ok())
            .find(|s| s.leader_id == s.node_id && s.leader_id != 0)
            .map(|s| s.last_applied_index);
        if let Some(target) = leader {
            if statuses.len() == NODES
                && statuses
                    .iter()
                    .all(|(_, s)| s.as_ref().is_ok_and(|s| s.last_applied_index >= target))
            {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            return Err(anyhow!("the cluster did not catch up within {within:?}"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
