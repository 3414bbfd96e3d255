//! `signer demo`: the Quorum Signer story told end to end against a real 3-node dev cluster —
//! cluster up, leader elected, keys loaded, signs, a refused double sign, the leader killed,
//! signing resumed on a new leader, the same double sign still refused, the audit chain
//! verified and identical on every node, cluster down.
//!
//! Owns: the story's steps, what it prints (the story on stdout, a progress indicator on
//! stderr), its timings, and checking that every step behaves as told: the demo is also a smoke
//! test and exits 1 when a step does not. Must not: hold protection or signing logic (it asks
//! the cluster like any client and checks the answers), claim a step it does not check, or
//! leave node processes behind.
//!
//! To ensure correctness:
//! - the cluster goes down on every exit path: a guard stops it when dropped (errors, panics),
//!   and Ctrl-C/SIGTERM end the story through the same path;
//! - a fresh cluster on free loopback ports in a new directory, so runs never share state;
//! - every signature printed was verified here against the key's public key.

use anyhow::{anyhow, bail, ensure, Context, Result};
use signer_node::client::{ClientError, SignerPool};
use signer_node::devcluster::{DevCluster, Stopped, AUDITOR, DEMO_KEYS};
use signer_node::pb;
use signer_node::scheme::{bls12_381, bn254};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

mod progress;

use progress::with_progress;

/// Nodes in the demo cluster.
const NODES: usize = 3;
/// How long to wait for the first leader.
const LEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long to wait, after the kill, for a new leader and for signing to resume.
const FAILOVER_TIMEOUT: Duration = Duration::from_secs(20);
/// The refusal code of a second, different vote at a view already voted in.
const DOUBLE_VOTE: &str = "equivocation";
/// How long `down` waits after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Arguments of `signer demo`.
#[derive(clap::Args)]
pub struct DemoArgs {
    /// Build the cluster in DIR (new or empty) and keep it afterwards; by default a temporary
    /// directory is used and removed at the end (kept when the story fails, for its logs).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// First of the 6 consecutive loopback ports the nodes use [default: a free range].
    #[arg(long, value_name = "P")]
    base_port: Option<u16>,
}

/// Run the demo; exit 0 when the whole story held, 1 when any step did not.
pub fn run(args: DemoArgs) -> Result<ExitCode> {
    let started = Instant::now();
    let (dir, temp) = match &args.dir {
        Some(dir) => (dir.clone(), None),
        None => {
            let temp = tempfile::Builder::new().prefix("signer-demo-").tempdir()?;
            (temp.path().join("cluster"), Some(temp))
        }
    };
    if dir.join(signer_node::client::DESCRIPTOR_FILE).exists() {
        bail!(
            "{} already holds a cluster; the demo builds a fresh one: give a new or empty --dir",
            dir.display()
        );
    }
    let base_port = match args.base_port {
        Some(port) => port,
        None => super::free_base_port(NODES)?,
    };
    let exe = std::env::current_exe().context("finding the signer binary")?;
    signer_client::outln!(
        "Quorum Signer demo: {NODES} signer nodes on this machine form a Raft group. A signature"
    );
    signer_client::outln!(
        "leaves the cluster only after a quorum has committed the slashing-protection watermark"
    );
    signer_client::outln!(
        "that allows it, so no single node, and no failover, can make a key sign twice."
    );

    // The story's blocking steps run on this thread inside `block_on`, so the progress
    // indicator (a task on the runtime's workers) keeps drawing meanwhile.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    step(1, "Cluster up");
    let created = Instant::now();
    let cluster = runtime.block_on(with_progress("writing the cluster directory", async {
        DevCluster::create(&dir, NODES, base_port)
    }))?;
    signer_client::outln!(
        "   dev PKI (CA, node and client certificates), node configs and two demo keys written in {}",
        secs(created.elapsed())
    );
    // From here on, the nodes go down whatever happens.
    let mut down = Down {
        cluster: &cluster,
        done: false,
    };
    let story = runtime.block_on(async {
        tokio::select! {
            outcome = tell(&cluster, &exe, base_port) => outcome,
            signal = interrupted() => Err(anyhow!("interrupted by {signal}")),
        }
    });

    step(10, "Cluster down");
    let stopped = runtime.block_on(with_progress("stopping the nodes", async { down.now() }));
    let total = started.elapsed();
    let mut failure = story.err();
    match stopped {
        Ok(outcome) => signer_client::outln!("   {}", describe_stops(&outcome)),
        Err(e) => {
            failure.get_or_insert(anyhow!(e).context("taking the cluster down"));
        }
    }
    match failure {
        None => {
            if args.dir.is_some() {
                signer_client::outln!("   data and logs kept in {}", cluster.dir().display());
            }
            signer_client::outln!();
            signer_client::outln!(
                "The story held: every signature verified against its public key, the double \
                 sign refused before and after failover, the audit chain identical on every \
                 node. Total {}.",
                secs(total)
            );
            drop(temp);
            Ok(ExitCode::SUCCESS)
        }
        Some(e) => {
            eprintln!();
            eprintln!("DEMO FAILED after {}: {e:#}", secs(total));
            let kept = temp.map_or_else(|| dir.clone(), tempfile::TempDir::keep);
            eprintln!(
                "The cluster directory is kept for inspection (node logs in node-*/node.log): {}",
                kept.display()
            );
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Steps 1 (rest) to 9 of the story.
async fn tell(cluster: &DevCluster, exe: &std::path::Path, base_port: u16) -> Result<()> {
    let d = cluster.descriptor();
    signer_client::outln!(
        "   cluster {} in {}, ports 127.0.0.1:{}-{}",
        d.cluster_id,
        cluster.dir().display(),
        base_port,
        u32::from(base_port) + 3 * NODES as u32 - 1
    );
    let t = Instant::now();
    let pids = cluster.start_stopped(exe)?;
    let list: Vec<String> = pids
        .iter()
        .map(|(id, pid)| format!("node-{id} (pid {pid})"))
        .collect();
    signer_client::outln!("   started {} in {}", list.join(", "), secs(t.elapsed()));

    step(2, "Leader elected");
    let t = Instant::now();
    let leader = with_progress("electing a leader", cluster.wait_for_leader(LEADER_TIMEOUT))
        .await
        .context("waiting for the first leader")?;
    signer_client::outln!(
        "   node-{leader} leads, elected {} after the nodes started",
        secs(t.elapsed())
    );

    step(3, "Keys loaded");
    let pool = cluster.pool().await?;
    let keys = pool.public_keys().await.context("listing the keys")?;
    for (id, _) in DEMO_KEYS {
        ensure!(
            keys.iter().any(|k| k.key_id == id),
            "the cluster does not list the demo key {id}"
        );
    }
    let loaded: Vec<String> = pool
        .cluster_statuses()
        .await
        .into_iter()
        .filter_map(|(node, s)| {
            s.ok()
                .filter(|s| {
                    DEMO_KEYS
                        .iter()
                        .all(|(k, _)| s.keys_loaded.iter().any(|l| l == k))
                })
                .map(|_| format!("node-{node}"))
        })
        .collect();
    ensure!(
        loaded.len() == NODES,
        "the demo keys are loaded on {} only",
        loaded.join(", ")
    );
    signer_client::outln!("   in memory on every node ({}):", loaded.join(", "));
    for k in &keys {
        signer_client::outln!("   {:<14} {:<9} {}", k.key_id, k.profile, k.public_key_text);
    }
    let key = |id: &str| {
        keys.iter()
            .find(|k| k.key_id == id)
            .ok_or_else(|| anyhow!("no key {id}"))
    };
    let (espresso, eth2) = (key("demo-espresso")?, key("demo-eth2")?);

    step(4, "Signing");
    signer_client::outln!(
        "   (the watermark is committed by a quorum first; each signature verified here)"
    );
    let mut view_2 = String::new();
    for (view, leaf) in [(1, [0x11; 32]), (2, [0x22; 32])] {
        let (response, took) = sign_fresh(&pool, quorum_vote(view, leaf, ""), espresso).await?;
        signer_client::outln!(
            "   espresso quorum vote  view {view}  leaf {}  ->  {}  {}",
            short_hex(&leaf),
            short_sig(&response.signature_text),
            millis(took)
        );
        view_2 = response.signature_text;
    }
    let root = [0xb1; 32];
    let (response, took) = sign_fresh(&pool, eth2_block(1, root, ""), eth2).await?;
    signer_client::outln!(
        "   eth2 block proposal   slot 1  root {}  ->  {}  {}",
        short_hex(&root),
        short_sig(&response.signature_text),
        millis(took)
    );

    step(5, "A double sign is refused");
    let conflicting = [0xee; 32];
    signer_client::outln!(
        "   espresso quorum vote  view 2  leaf {} (view 2 was signed for leaf {})",
        short_hex(&conflicting),
        short_hex(&[0x22; 32])
    );
    let t = Instant::now();
    let first_refusal = expect_refusal(
        pool.sign(quorum_vote(2, conflicting, "")).await,
        DOUBLE_VOTE,
    )?;
    signer_client::outln!("   {first_refusal}  {}", millis(t.elapsed()));

    step(6, "Leader killed");
    let killed_at = Instant::now();
    let (killed, pid) = cluster.kill_leader().await.context("killing the leader")?;
    signer_client::outln!("   node-{killed} (pid {pid}), the leader, killed with SIGKILL");

    step(7, "Failover");
    let resume_id = format!("demo-resume-{}", hex::encode(rand::random::<[u8; 8]>()));
    let (new_leader, resumed) = with_progress(
        "waiting for a new leader",
        futures::future::join(
            new_leader(&pool, killed, killed_at),
            resume(&pool, eth2_block(2, [0xb2; 32], &resume_id), killed_at),
        ),
    )
    .await;
    let (new_leader, elected) = new_leader?;
    let (response, resumed) = resumed?;
    verify(eth2, &response)?;
    signer_client::outln!(
        "   node-{new_leader} leads, elected {} after the kill",
        secs(elected)
    );
    signer_client::outln!(
        "   signing resumed {} after the kill: eth2 block proposal slot 2  ->  {}",
        secs(resumed),
        short_sig(&response.signature_text)
    );

    step(8, "The same double sign, refused again on the new leader");
    let t = Instant::now();
    let second = expect_refusal(
        pool.sign_on(new_leader, quorum_vote(2, conflicting, ""))
            .await,
        DOUBLE_VOTE,
    )?;
    signer_client::outln!("   node-{new_leader}: {second}  {}", millis(t.elapsed()));
    ensure!(
        second == first_refusal,
        "the new leader refused for another reason than the old one: {second} vs {first_refusal}"
    );
    let again = pool
        .sign_on(new_leader, quorum_vote(2, [0x22; 32], ""))
        .await
        .context("re-signing the identical view 2 vote on the new leader")?;
    ensure!(
        again.resigned,
        "the identical view 2 vote was not a re-sign on the new leader"
    );
    verify(espresso, &again)?;
    ensure!(
        again.signature_text == view_2,
        "the re-sign of the view 2 vote differs from its first signature"
    );
    signer_client::outln!(
        "   node-{new_leader}: the identical view 2 vote is re-signed, same signature  ->  {}",
        short_sig(&again.signature_text)
    );

    step(9, "Audit chain verified on all nodes");
    let t = Instant::now();
    cluster
        .start_stopped(exe)
        .context("restarting the killed node")?;
    let auditor = SignerPool::connect(cluster.descriptor(), AUDITOR)
        .await
        .context("connecting as the auditor")?;
    let (records, head) = with_progress(
        "every node recomputes its audit chain",
        audit_agree(&auditor),
    )
    .await?;
    signer_client::outln!(
        "   node-{killed} restarted and caught up; every node recomputed its hash chain from its \
         own database: {records} records, the same head {}  {}",
        short_hex(&head),
        secs(t.elapsed())
    );
    Ok(())
}

/// Wait until every node's audit chain verifies and all have the same head; return the head's
/// seq and hash. A chain that does not verify fails at once.
async fn audit_agree(pool: &SignerPool) -> Result<(u64, Vec<u8>)> {
    let deadline = Instant::now() + FAILOVER_TIMEOUT + LEADER_TIMEOUT;
    loop {
        let answers = pool.audit_verify_all(0).await;
        let mut heads = Vec::new();
        for (id, answer) in &answers {
            match answer {
                Ok(r) if !r.ok => bail!(
                    "node-{id}: audit record {} does not verify: {}",
                    r.first_bad_seq,
                    r.reason
                ),
                Ok(r) => heads.push((r.head_seq, r.head_hash.clone())),
                Err(_) => {}
            }
        }
        if heads.len() == answers.len() && heads.windows(2).all(|w| w[0] == w[1]) {
            if let Some(head) = heads.pop() {
                return Ok(head);
            }
        }
        if Instant::now() > deadline {
            bail!("the nodes' audit heads did not agree: {heads:?}");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Sign a message never signed before; check the signature, return it and the latency.
async fn sign_fresh(
    pool: &SignerPool,
    request: pb::SignRequest,
    key: &pb::KeyInfo,
) -> Result<(pb::SignResponse, Duration)> {
    let t = Instant::now();
    let response = pool
        .sign(request)
        .await
        .with_context(|| format!("signing with {}", key.key_id))?;
    let took = t.elapsed();
    ensure!(
        !response.resigned,
        "a new message was answered as a re-sign"
    );
    verify(key, &response)?;
    Ok((response, took))
}

/// `refused: <code>: <message>` when the answer is a refusal with reason `code`; an error
/// otherwise.
fn expect_refusal(answer: Result<pb::SignResponse, ClientError>, code: &str) -> Result<String> {
    match answer {
        Err(refusal @ ClientError::Refused { .. }) => {
            let text = refusal.to_string();
            match refusal {
                ClientError::Refused { code: got, .. } if got == code => Ok(text),
                _ => bail!("the double sign was refused, but not as {code}: {text}"),
            }
        }
        Ok(signed) => bail!(
            "the double sign was NOT refused: the cluster signed it ({})",
            signed.signature_text
        ),
        Err(other) => Err(anyhow!(other).context("expected a refusal")),
    }
}

/// Poll the surviving nodes until one names a leader other than `killed`.
async fn new_leader(pool: &SignerPool, killed: u64, since: Instant) -> Result<(u64, Duration)> {
    loop {
        let leader = pool
            .cluster_statuses()
            .await
            .into_iter()
            .filter_map(|(_, s)| s.ok())
            .filter(|s| s.leader_id != 0)
            .max_by_key(|s| s.term)
            .map(|s| s.leader_id);
        match leader {
            Some(id) if id != killed => return Ok((id, since.elapsed())),
            _ if since.elapsed() > FAILOVER_TIMEOUT => {
                bail!("no new leader {} after the kill", secs(since.elapsed()))
            }
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// Send `request` (with a fixed request id, so retries are one request) until it is signed.
async fn resume(
    pool: &SignerPool,
    request: pb::SignRequest,
    since: Instant,
) -> Result<(pb::SignResponse, Duration)> {
    loop {
        match pool.sign(request.clone()).await {
            Ok(response) => return Ok((response, since.elapsed())),
            Err(e) if e.is_unavailable() && since.elapsed() < FAILOVER_TIMEOUT => continue,
            Err(e) => return Err(anyhow!(e).context("signing after the kill")),
        }
    }
}

/// Check `response` against `key`'s public key.
fn verify(key: &pb::KeyInfo, response: &pb::SignResponse) -> Result<()> {
    let valid = match key.profile.as_str() {
        "espresso" => {
            ensure!(response.signature_text.starts_with("BLS_SIG~"));
            let pk = bn254::PublicKey::from_bytes(&key.public_key)?;
            bn254::Signature::from_bytes(&response.signature)?.verify(&pk, &response.signed_message)
        }
        "eth2" => {
            ensure!(response.signature_text.starts_with("0x"));
            bls12_381::verify_bytes(
                &key.public_key,
                &response.signed_message,
                &response.signature,
            )
        }
        other => bail!("key {} has an unknown profile {other}", key.key_id),
    };
    ensure!(
        valid,
        "signature {} does not verify with {}'s public key",
        response.signature_text,
        key.key_id
    );
    Ok(())
}

fn quorum_vote(view: u64, leaf: [u8; 32], request_id: &str) -> pb::SignRequest {
    pb::SignRequest {
        request_id: request_id.into(),
        key_id: "demo-espresso".into(),
        message: Some(pb::sign_request::Message::Espresso(pb::EspressoMessage {
            kind: Some(pb::espresso_message::Kind::QuorumVote(pb::QuorumVote {
                view,
                leaf_commit: leaf.to_vec(),
                epoch: None,
                block_number: None,
            })),
        })),
    }
}

/// A typed mainnet block proposal at `slot` whose body root is `body_root` (the cluster
/// computes the signing root).
fn eth2_block(slot: u64, body_root: [u8; 32], request_id: &str) -> pb::SignRequest {
    let network = eth2_messages::NetworkSpec::mainnet();
    let block = signer_node::client::eth2::block(&network, slot, body_root);
    pb::SignRequest {
        request_id: request_id.into(),
        key_id: "demo-eth2".into(),
        message: Some(signer_node::client::eth2::typed(&block, None)),
    }
}

/// Takes the cluster down when dropped unless [`Down::now`] already did: no node outlives the
/// demo, whichever way it ends.
struct Down<'a> {
    cluster: &'a DevCluster,
    done: bool,
}

impl Down<'_> {
    fn now(&mut self) -> Result<Vec<(u64, Stopped)>, signer_node::devcluster::DevClusterError> {
        self.done = true;
        self.cluster.stop(STOP_GRACE)
    }
}

impl Drop for Down<'_> {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.cluster.stop(STOP_GRACE);
        }
    }
}

fn describe_stops(outcome: &[(u64, Stopped)]) -> String {
    outcome
        .iter()
        .map(|(id, how)| match how {
            Stopped::NotRunning => format!("node-{id} already down"),
            Stopped::Terminated(_) => format!("node-{id} stopped"),
            Stopped::Killed(_) => format!("node-{id} killed after ignoring SIGTERM"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Resolves on SIGINT or SIGTERM with the signal's name.
async fn interrupted() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => tokio::select! {
            _ = tokio::signal::ctrl_c() => "SIGINT",
            _ = term.recv() => "SIGTERM",
        },
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            "SIGINT"
        }
    }
}

fn step(n: u32, title: &str) {
    signer_client::outln!();
    signer_client::outln!("{n}. {title}");
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn millis(d: Duration) -> String {
    format!("({:.1} ms)", d.as_secs_f64() * 1000.0)
}

/// `0x1111…1111`.
fn short_hex(bytes: &[u8]) -> String {
    let text = hex::encode(bytes);
    let (head, tail) = (
        &text[..4.min(text.len())],
        &text[text.len().saturating_sub(4)..],
    );
    format!("0x{head}…{tail}")
}

/// The signature's first 16 and last 6 characters.
fn short_sig(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= 24 {
        return text.to_owned();
    }
    let head: String = chars[..16].iter().collect();
    let tail: String = chars[chars.len() - 6..].iter().collect();
    format!("{head}…{tail}")
}
