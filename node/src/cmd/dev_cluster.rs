//! `signer dev-cluster …`: run a loopback development cluster from one directory.
//!
//! Owns: the subcommands' arguments, help text and output. Must not: manage files or processes
//! itself — [`signer_node::devcluster`] does — nor hold protection or signing logic.

use anyhow::{Context, Result};
use clap::Subcommand;
use signer_node::client::ClientError;
use signer_node::devcluster::{DevCluster, Stopped, ADMIN, DEFAULT_BASE_PORT, SEQUENCER};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// How long `up` waits for a leader.
const LEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `down` waits after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// A development cluster on 127.0.0.1, kept in one directory.
#[derive(Subcommand)]
pub enum DevClusterCommand {
    /// Create the cluster (first time) and start every node that is not running.
    ///
    /// On a new or empty DIR this writes a dev PKI (CA, node certificates, the client
    /// certificates `seq-1` for signing and `admin-1` for `signerctl key generate|import|…`),
    /// a dev admin soft key (admin-1.key), a local key-encryption key (kek.key) that every node
    /// seals registry keys under, one node.toml per node (node 1 bootstraps the cluster), the
    /// demo keys `demo-espresso` (BN254) and `demo-eth2` (BLS12-381) on every node, and
    /// cluster.json for clients. Node i listens on 127.0.0.1, client port P+2(i-1) and peer
    /// port P+2(i-1)+1.
    ///
    /// On an existing DIR nothing is regenerated: nodes that are not running are restarted with
    /// their data. Nodes run in the background (logs in DIR/node-<i>/node.log) until
    /// `signer dev-cluster down`. Waits up to 30 s for a leader, then prints the endpoints,
    /// the keys and how to sign.
    Up {
        /// The cluster directory.
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// Number of nodes of a new cluster: 3 or 5 (1 for tests) [default: 3].
        #[arg(long, value_name = "N")]
        nodes: Option<usize>,
        /// First port of a new cluster [default: 7100].
        #[arg(long, value_name = "P")]
        base_port: Option<u16>,
    },
    /// Stop every node (SIGTERM; SIGKILL after 10 s). Data and keys stay in DIR.
    Down {
        /// The cluster directory.
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
    },
    /// Kill the current leader with SIGKILL, to watch the cluster fail over.
    ///
    /// `signer dev-cluster up --dir DIR` restarts it afterwards.
    KillLeader {
        /// The cluster directory.
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
    },
    /// Restart one node (SIGTERM; SIGKILL after 10 s; then start it with its data), e.g.
    /// after editing its node.toml (`retired_keks`, `[kms]`), and wait until it sees a
    /// leader again.
    Restart {
        /// The cluster directory.
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// The node's number (node-N).
        #[arg(long, value_name = "N")]
        node: u64,
    },
    /// Prepare and start a new node (not yet a member) and print its name.
    ///
    /// Writes node-N's certificate (the dev CA), node.toml (the next free ports, copies of
    /// the key files, every peer listed) and its entry in cluster.json, and starts it. It
    /// joins once admins approve `signerctl --dir DIR node add node-N --addr … --peer-addr …`
    /// (printed on stderr).
    AddNode {
        /// The cluster directory.
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
    },
    /// Show each node's process and its view of the cluster: leader, term, applied index.
    Status {
        /// The cluster directory.
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
    },
}

/// Run one `dev-cluster` subcommand.
pub fn run(command: DevClusterCommand) -> Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match command {
        DevClusterCommand::Up {
            dir,
            nodes,
            base_port,
        } => runtime.block_on(up(&dir, nodes, base_port)),
        DevClusterCommand::Down { dir } => down(&dir),
        DevClusterCommand::KillLeader { dir } => runtime.block_on(kill_leader(&dir)),
        DevClusterCommand::Restart { dir, node } => runtime.block_on(restart(&dir, node)),
        DevClusterCommand::Status { dir } => runtime.block_on(status(&dir)),
        DevClusterCommand::AddNode { dir } => add_node(&dir),
    }
}

/// `add-node`: the new node's name on stdout, how to add it on stderr.
fn add_node(dir: &Path) -> Result<ExitCode> {
    let mut cluster = open(dir)?;
    let exe = std::env::current_exe().context("finding the signer binary")?;
    let (id, pid) = cluster.add_node(&exe)?;
    let node = cluster
        .descriptor()
        .node(id)
        .context("the new node is not in cluster.json")?;
    signer_client::outln!("node-{id}");
    eprintln!(
        "node-{id} started (pid {pid}; not a member yet): client {}, peer {}\nadd it with:\n  \
         signerctl --dir {} node add node-{id} --addr {} --peer-addr {}",
        node.client_addr,
        node.peer_addr,
        cluster.dir().display(),
        node.client_addr,
        node.peer_addr
    );
    Ok(ExitCode::SUCCESS)
}

fn open(dir: &Path) -> Result<DevCluster> {
    DevCluster::open(dir).with_context(|| {
        format!(
            "{} is not a dev cluster (create one with `signer dev-cluster up --dir {}`)",
            dir.display(),
            dir.display()
        )
    })
}

async fn up(dir: &Path, nodes: Option<usize>, base_port: Option<u16>) -> Result<ExitCode> {
    let (cluster, created) = DevCluster::open_or_create(dir, nodes, base_port)?;
    let d = cluster.descriptor();
    if created {
        signer_client::outln!(
            "created dev cluster {} in {}: {} nodes on 127.0.0.1, ports {}-{}",
            d.cluster_id,
            cluster.dir().display(),
            d.nodes.len(),
            d.nodes
                .first()
                .map_or(DEFAULT_BASE_PORT, |n| n.client_addr.port()),
            d.nodes
                .last()
                .map_or(DEFAULT_BASE_PORT, |n| n.peer_addr.port()),
        );
    } else {
        signer_client::outln!(
            "dev cluster {} in {}",
            d.cluster_id,
            cluster.dir().display()
        );
    }
    let exe = std::env::current_exe().context("finding the signer binary")?;
    let started = cluster.start_stopped(&exe)?;
    if started.is_empty() {
        signer_client::outln!("every node is already running");
    }
    for (id, pid) in &started {
        signer_client::outln!("started node-{id} (pid {pid})");
    }
    eprintln!(
        "waiting for a leader (up to {} s)...",
        LEADER_TIMEOUT.as_secs()
    );
    let leader = cluster.wait_for_leader(LEADER_TIMEOUT).await?;
    let pool = cluster.pool().await?;
    let keys = pool.public_keys().await.context("listing the keys")?;

    let dir_arg = cluster.dir().display().to_string();
    signer_client::outln!();
    signer_client::outln!("leader: node-{leader}");
    signer_client::outln!("nodes:");
    for n in &d.nodes {
        let p = cluster.process(n.id);
        signer_client::outln!(
            "  node-{}  client {}  peer {}  pid {}  log {}",
            n.id,
            n.client_addr,
            n.peer_addr,
            p.pid.map_or("-".into(), |p| p.to_string()),
            cluster.log_path(n.id).display()
        );
        if let Some(url) = &n.web3signer_url {
            signer_client::outln!(
                "          web3signer {url}  (eth2 remote-signer URL for validator clients)"
            );
        }
    }
    signer_client::outln!("keys:");
    for k in &keys {
        signer_client::outln!(
            "  {:<14} {:<9} {:<10} {}",
            k.key_id,
            k.profile,
            k.scheme,
            k.public_key_text
        );
    }
    let client = &d.clients[SEQUENCER];
    signer_client::outln!(
        "client identity {SEQUENCER}: {} (CA {})",
        client.cert.display(),
        d.ca.display()
    );
    if let Some(admin) = d.clients.get(ADMIN) {
        signer_client::outln!(
            "admin identity {ADMIN}: {} (signerctl key generate|import|registry|…)",
            admin.cert.display()
        );
    }
    signer_client::outln!();
    signer_client::outln!(
        "sign (prints only the signature; exit 3 = refused, 4 = no node answered):"
    );
    signer_client::outln!(
        "  signerctl --dir {dir_arg} sign --key demo-espresso --profile espresso --kind quorum --view 1 --commitment 0x{}",
        "11".repeat(32)
    );
    signer_client::outln!(
        "  signerctl --dir {dir_arg} sign --key demo-eth2 --profile eth2 --kind block --slot 1 --signing-root 0x{}",
        "22".repeat(32)
    );
    if let Some(url) = d.nodes.iter().find_map(|n| n.web3signer_url.as_ref()) {
        signer_client::outln!(
            "Web3Signer API (client certificate = identity): curl --cacert {ca} --cert {cert} \
             --key {key} {url}/api/v1/eth2/publicKeys",
            ca = d.ca.display(),
            cert = client.cert.display(),
            key = client.key.display(),
        );
    }
    signer_client::outln!("more: signerctl --dir {dir_arg} key list | status");
    signer_client::outln!(
        "keys: signerctl --dir {dir_arg} key generate --key my-key --profile eth2 | key registry"
    );
    signer_client::outln!("      signer dev-cluster status|kill-leader|down --dir {dir_arg}");
    signer_client::outln!("      signer dev-cluster restart --node N --dir {dir_arg}");
    Ok(ExitCode::SUCCESS)
}

fn down(dir: &Path) -> Result<ExitCode> {
    let cluster = open(dir)?;
    for (id, how) in cluster.stop(STOP_GRACE)? {
        print_stopped(id, how);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_stopped(id: u64, how: Stopped) {
    match how {
        Stopped::NotRunning => signer_client::outln!("node-{id}: not running"),
        Stopped::Terminated(pid) => signer_client::outln!("node-{id}: stopped (pid {pid})"),
        Stopped::Killed(pid) => signer_client::outln!(
            "node-{id}: killed (pid {pid}) after ignoring SIGTERM for {} s",
            STOP_GRACE.as_secs()
        ),
    }
}

async fn restart(dir: &Path, node: u64) -> Result<ExitCode> {
    let cluster = open(dir)?;
    if cluster.descriptor().node(node).is_none() {
        let ids: Vec<String> = cluster
            .descriptor()
            .nodes
            .iter()
            .map(|n| n.id.to_string())
            .collect();
        anyhow::bail!(
            "--node {node}: no such node in this cluster (nodes: {})",
            ids.join(", ")
        );
    }
    for (id, how) in cluster.stop_nodes(&[node], STOP_GRACE)? {
        print_stopped(id, how);
    }
    let exe = std::env::current_exe().context("finding the signer binary")?;
    let pid = cluster.start_node(&exe, node)?;
    signer_client::outln!("node-{node}: started (pid {pid})");
    let pool = cluster.pool().await?;
    let deadline = std::time::Instant::now() + LEADER_TIMEOUT;
    loop {
        match pool.cluster_status(node).await {
            Ok(s) if s.leader_id != 0 => {
                signer_client::outln!(
                    "node-{node}: serving; leader node-{}, applied {}",
                    s.leader_id,
                    s.last_applied_index
                );
                return Ok(ExitCode::SUCCESS);
            }
            _ if !cluster.process(node).running => anyhow::bail!(
                "node-{node} exited after starting; see {}",
                cluster.log_path(node).display()
            ),
            _ if std::time::Instant::now() >= deadline => anyhow::bail!(
                "node-{node} runs but sees no leader after {} s; see {}",
                LEADER_TIMEOUT.as_secs(),
                cluster.log_path(node).display()
            ),
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

async fn kill_leader(dir: &Path) -> Result<ExitCode> {
    let cluster = open(dir)?;
    let (id, pid) = cluster.kill_leader().await?;
    signer_client::outln!("killed node-{id} (pid {pid}), the leader, with SIGKILL");
    signer_client::outln!(
        "restart it with: signer dev-cluster up --dir {}",
        cluster.dir().display()
    );
    Ok(ExitCode::SUCCESS)
}

async fn status(dir: &Path) -> Result<ExitCode> {
    let cluster = open(dir)?;
    signer_client::outln!(
        "dev cluster {} in {}",
        cluster.descriptor().cluster_id,
        cluster.dir().display()
    );
    for r in cluster.report().await? {
        let process = match (r.process.pid, r.process.running) {
            (Some(pid), true) => format!("pid {pid}"),
            (Some(pid), false) => format!("pid {pid} (gone)"),
            (None, _) => "stopped".into(),
        };
        let view = match &r.status {
            Ok(s) => signer_client::describe_view(s),
            Err(ClientError::Unavailable { last_error, .. }) => {
                format!("unreachable: {last_error}")
            }
            Err(e) => format!("error: {e}"),
        };
        signer_client::outln!(
            "  node-{}  {}  {:<16} {view}",
            r.endpoint.id,
            r.endpoint.client_addr,
            process
        );
        for p in r.status.iter().flat_map(|s| &s.keys_pending) {
            signer_client::outln!("    pending {}: {}", p.key_id, p.reason);
        }
    }
    // Prometheus endpoints, as each node's config names them (absent: none configured).
    for node in &cluster.descriptor().nodes {
        let config = signer_node::config::NodeConfig::load(&cluster.config_path(node.id));
        if let Some(addr) = config.ok().and_then(|c| c.metrics_listen) {
            signer_client::outln!("  node-{}  metrics http://{addr}/metrics", node.id);
        }
    }
    Ok(ExitCode::SUCCESS)
}
