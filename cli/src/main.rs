//! `signerctl`: the Quorum Signer operator client.
//!
//! Owns: the command line of operators and sequencer operators — arguments, help text, output
//! formats and exit codes. Must not: hold protection or signing logic (the cluster decides), or
//! retry anything the cluster answered (the client library retries only unreachable nodes).

#![forbid(unsafe_code)]

mod request;

use clap::{Parser, Subcommand};
use signer::client::{ClientError, ClusterDescriptor, PoolOptions, SignerPool};
use signer::pb;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  other errors (files, unexpected answers)
  2  bad arguments (including requests the cluster rejects as malformed)
  3  refused by slashing protection (the reason is printed on stderr)
  4  unavailable: no node answered in time";

const SIGN_EXAMPLES: &str = "\
Examples (HEX32 is 32 bytes of hex, 0x optional):
  signerctl --dir DIR sign --key demo-espresso --profile espresso --kind quorum \\
      --view 10 --commitment HEX32
  signerctl --dir DIR sign --key demo-espresso --profile espresso --kind view-sync-commit \\
      --round 12 --relay 0
  signerctl --dir DIR sign --key demo-eth2 --profile eth2 --kind block --slot 5 \\
      --signing-root HEX32
  signerctl --dir DIR sign --key demo-eth2 --profile eth2 --kind attestation \\
      --source-epoch 1 --target-epoch 2 --signing-root HEX32

Exit codes:
  0  signed (stdout holds only the signature)
  1  other errors (files, unexpected answers)
  2  bad arguments (including requests the cluster rejects as malformed, e.g. unknown key)
  3  refused by slashing protection (`refused: <code>: <reason>` on stderr)
  4  unavailable: no node answered in time";

/// Operator client for a Quorum Signer cluster.
///
/// Talks to the cluster's nodes over mutual TLS as a client identity (by default the dev
/// sequencer `seq-1`). Endpoints, CA and client certificate come from the cluster.json of a
/// dev-cluster directory (`signer dev-cluster up --dir DIR`). Any node can be asked: a request
/// is retried on the next node while none answers, never after an answer.
#[derive(Parser)]
#[command(name = "signerctl", version, about, long_about, after_help = EXIT_CODES)]
struct Cli {
    /// The dev-cluster directory holding cluster.json (accepted before or after the
    /// subcommand).
    #[arg(long, global = true, value_name = "DIR", env = "SIGNERCTL_DIR")]
    dir: Option<PathBuf>,
    /// The client identity to authenticate as (a client named in cluster.json).
    #[arg(long, global = true, value_name = "NAME", default_value = "seq-1")]
    client: String,
    /// Print machine-readable JSON on stdout instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// Give up after this many seconds without an answer from any node.
    #[arg(long, global = true, value_name = "SECONDS", default_value_t = 10)]
    timeout: u64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Sign one typed message and print only the signature.
    ///
    /// The cluster signs only after the slashing-protection watermark that allows the message
    /// is committed by a quorum of nodes. Prints the signature on stdout: `BLS_SIG~…` for
    /// espresso keys, 0x-hex for eth2 keys (with --json: signature, raw hex, whether it was a
    /// re-sign of an identical message, and the 32 bytes that were signed). A refusal prints
    /// `refused: <code>: <reason>` on stderr and exits 3.
    #[command(after_help = EXIT_CODES, after_long_help = SIGN_EXAMPLES)]
    Sign(Box<request::SignArgs>),
    /// The cluster's validator keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Every node's view of the cluster: leader, term, applied log index, keys loaded.
    ///
    /// Exits 4 when no node answers.
    Status,
}

#[derive(Subcommand)]
enum KeyCommand {
    /// List key ids with their profile, scheme and public key (0x-hex for eth2,
    /// BLS_VER_KEY~… for espresso).
    List,
}

/// A failure with the exit code it maps to.
struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    fn new(code: u8, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Failure {
        match &e {
            ClientError::Refused { .. } => Failure::new(3, e.to_string()),
            ClientError::Unavailable { .. } => Failure::new(4, format!("unavailable: {e}")),
            ClientError::Other(status)
                if matches!(
                    status.code(),
                    tonic::Code::InvalidArgument | tonic::Code::NotFound | tonic::Code::OutOfRange
                ) =>
            {
                Failure::new(2, format!("error: the cluster rejected the request: {e}"))
            }
            _ => Failure::new(1, format!("error: {e}")),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("{}", f.message);
            ExitCode::from(f.code)
        }
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    // Check the arguments before touching the network.
    let sign_request = match &cli.command {
        Command::Sign(args) => {
            Some(request::build(args).map_err(|e| Failure::new(2, format!("error: {e}")))?)
        }
        _ => None,
    };
    let dir = cli.dir.clone().ok_or_else(|| {
        Failure::new(
            2,
            "error: --dir DIR is required: the dev-cluster directory holding cluster.json \
             (see `signer dev-cluster up --help`)",
        )
    })?;
    let descriptor = ClusterDescriptor::load(&dir)
        .map_err(|e| Failure::new(2, format!("error: --dir {}: {e}", dir.display())))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(1, format!("error: starting the runtime: {e}")))?;
    runtime.block_on(async {
        let options = PoolOptions {
            deadline: Duration::from_secs(cli.timeout.max(1)),
            ..PoolOptions::default()
        };
        let pool = SignerPool::connect_with(&descriptor, &cli.client, options)
            .await
            .map_err(|e| match e {
                ClientError::Descriptor { .. } => {
                    Failure::new(2, format!("error: --client {}: {e}", cli.client))
                }
                other => Failure::new(1, format!("error: {other}")),
            })?;
        match (&cli.command, sign_request) {
            (Command::Sign(_), Some(request)) => sign(&pool, request, cli.json).await,
            (Command::Key(KeyCommand::List), _) => key_list(&pool, cli.json).await,
            (Command::Status, _) => status(&pool, &descriptor, cli.json).await,
            (Command::Sign(_), None) => Err(Failure::new(1, "error: no request built")),
        }
    })
}

async fn sign(pool: &SignerPool, request: pb::SignRequest, json: bool) -> Result<(), Failure> {
    let response = pool.sign(request).await?;
    if json {
        let value = serde_json::json!({
            "signature": response.signature_text,
            "signature_hex": format!("0x{}", hex::encode(&response.signature)),
            "resigned": response.resigned,
            "signed_message": format!("0x{}", hex::encode(&response.signed_message)),
        });
        println!("{value}");
    } else {
        println!("{}", response.signature_text);
    }
    Ok(())
}

async fn key_list(pool: &SignerPool, json: bool) -> Result<(), Failure> {
    let keys = pool.public_keys().await?;
    if json {
        let list: Vec<_> = keys
            .iter()
            .map(|k| {
                serde_json::json!({
                    "key_id": k.key_id,
                    "profile": k.profile,
                    "scheme": k.scheme,
                    "public_key": k.public_key_text,
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(list));
        return Ok(());
    }
    let width = keys
        .iter()
        .map(|k| k.key_id.len())
        .max()
        .unwrap_or(0)
        .max(6);
    println!(
        "{:<width$}  {:<8}  {:<9}  PUBLIC KEY",
        "KEY ID", "PROFILE", "SCHEME"
    );
    for k in &keys {
        println!(
            "{:<width$}  {:<8}  {:<9}  {}",
            k.key_id, k.profile, k.scheme, k.public_key_text
        );
    }
    Ok(())
}

async fn status(
    pool: &SignerPool,
    descriptor: &ClusterDescriptor,
    json: bool,
) -> Result<(), Failure> {
    let statuses = pool.cluster_statuses().await;
    let answered = statuses.iter().filter(|(_, s)| s.is_ok()).count();
    let addr = |id: u64| {
        descriptor
            .node(id)
            .map(|n| n.client_addr.to_string())
            .unwrap_or_default()
    };
    if json {
        let list: Vec<_> = statuses
            .iter()
            .map(|(id, s)| match s {
                Ok(s) => serde_json::json!({
                    "node_id": id,
                    "client_addr": addr(*id),
                    "leader_id": s.leader_id,
                    "term": s.term,
                    "last_applied_index": s.last_applied_index,
                    "voters": s.voters,
                    "keys_loaded": s.keys_loaded,
                }),
                Err(e) => serde_json::json!({
                    "node_id": id,
                    "client_addr": addr(*id),
                    "error": unreachable_text(e),
                }),
            })
            .collect();
        println!("{}", serde_json::Value::Array(list));
    } else {
        println!("cluster {}", descriptor.cluster_id);
        for (id, s) in &statuses {
            match s {
                Ok(s) => println!(
                    "  node-{id}  {}  leader {}  term {}  applied {}  voters {:?}  keys {}",
                    addr(*id),
                    if s.leader_id == 0 {
                        "none".to_owned()
                    } else {
                        format!("node-{}", s.leader_id)
                    },
                    s.term,
                    s.last_applied_index,
                    s.voters,
                    s.keys_loaded.join(",")
                ),
                Err(e) => println!("  node-{id}  {}  {}", addr(*id), unreachable_text(e)),
            }
        }
    }
    if answered == 0 {
        return Err(Failure::new(4, "unavailable: no node answered"));
    }
    Ok(())
}

fn unreachable_text(e: &ClientError) -> String {
    match e {
        ClientError::Unavailable { last_error, .. } => format!("unreachable: {last_error}"),
        other => format!("error: {other}"),
    }
}
