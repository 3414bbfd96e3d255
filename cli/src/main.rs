//! `signerctl`: the Quorum Signer operator client.
//!
//! Owns: the command line of operators and sequencer operators — arguments, help text, output
//! formats and exit codes; which client identity a command uses by default (`seq-1` to sign,
//! `admin-1` for the admin commands). The admin commands live in `admin` (their approver in
//! `approver`), secret and confirmation input in `input`, sign requests in `request`. Must
//! not: hold protection, signing or lifecycle logic (the cluster decides), or retry anything
//! the cluster answered (the client library retries only nodes that cannot answer).

#![forbid(unsafe_code)]

mod admin;
mod approver;
mod audit;
mod exit;
mod input;
mod inspect;
mod request;

use clap::{Parser, Subcommand};
use signer_client::dev::{ADMIN, AUDITOR, SEQUENCER};
use signer_client::pb;
use signer_client::{ClientError, ClusterDescriptor, PoolOptions, SignerPool};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

const EXIT_CODES: &str = exit::exit_code_table!();

const SIGN_EXAMPLES: &str = concat!(
    "\
Examples (HEX32 is 32 bytes of hex, 0x optional):
  signerctl --dir DIR sign --key demo-espresso --profile espresso --kind quorum \\
      --view 10 --commitment HEX32
  signerctl --dir DIR sign --key demo-espresso --profile espresso --kind view-sync-commit \\
      --round 12 --relay 0
  signerctl --dir DIR sign --key demo-eth2 --profile eth2 --kind block --slot 5 \\
      --signing-root HEX32
  signerctl --dir DIR sign --key demo-eth2 --profile eth2 --kind attestation \\
      --source-epoch 1 --target-epoch 2 --signing-root HEX32

",
    exit::exit_code_table!()
);

/// Operator client for a Quorum Signer cluster.
///
/// Talks to the cluster's nodes over mutual TLS as a client identity: the dev sequencer
/// `seq-1` to sign and read keys, the dev admin `admin-1` for the admin commands (keys, KEK,
/// admins, clients, protection, pause/resume). Every admin change is a challenge that M of the
/// N enrolled admins approve: signerctl proposes it and approves it with your key
/// (`--no-approve` only proposes; others run `signerctl approve <id>`; `signerctl pending`
/// lists them). Your key is your admin's development key in cluster.json, or your YubiKey with
/// --yubikey. Endpoints, CA and client certificates come from the cluster.json of a
/// dev-cluster directory (`signer dev-cluster up --dir DIR`). Any node can be asked: a request
/// is retried on the next node while none answers (key changes move on until they reach the
/// leader), never after an answer.
#[derive(Parser)]
#[command(name = "signerctl", version, about, long_about, after_help = EXIT_CODES)]
struct Cli {
    /// The dev-cluster directory holding cluster.json (accepted before or after the
    /// subcommand).
    #[arg(long, global = true, value_name = "DIR", env = "SIGNERCTL_DIR")]
    dir: Option<PathBuf>,
    /// The client identity to authenticate as (a client named in cluster.json)
    /// [default: seq-1; admin-1 for the admin commands].
    #[arg(long, global = true, value_name = "NAME")]
    client: Option<String>,
    /// Print machine-readable JSON on stdout instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// Give up after this many seconds without an answer from any node.
    #[arg(long, global = true, value_name = "SECONDS", default_value_t = 10)]
    timeout: u64,
    /// Admin commands: approve with your YubiKey (PIV slot 9c, PIN asked without echo or read
    /// from one line of stdin) instead of your development key in cluster.json. Needs a
    /// signerctl built with `--features yubikey`.
    #[arg(long, global = true)]
    yubikey: bool,
    /// With --yubikey: the serial of your YubiKey when several are connected.
    #[arg(long, global = true, value_name = "SERIAL")]
    yubikey_serial: Option<u32>,
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
    #[command(flatten)]
    Admin(admin::Command),
    /// Every node's view of the cluster: leader, term, applied log index, keys loaded, and
    /// the registry keys it has not loaded with why (`pending KEY: REASON`, e.g. its KMS is
    /// unreachable or the key is sealed under a KEK it is not configured with).
    ///
    /// Readable by granted clients, enrolled admins and auditors. Exits 4 when no node
    /// answers.
    Status,
    /// Ask every node's standard gRPC health service (grpc.health.v1.Health/Check).
    ///
    /// A node answers SERVING only while it knows a leader (as leader: one that heard a
    /// quorum within 2 s) and has every active registry key loaded; otherwise NOT_SERVING.
    /// This is what load balancers and Kubernetes probes ask; no grant is needed (any
    /// certificate of the cluster CA). Prints one line per node (`--json`: [{node_id,
    /// client_addr, status}]). Exits 0 when every node is SERVING, 4 when any node is not or
    /// does not answer (the lines say which).
    Health(inspect::HealthArgs),
    /// Auditor: read, follow, verify and export the replicated, hash-chained audit log
    /// (every sign decision, admin action, membership change, key load and KMS failure).
    #[command(subcommand, after_help = audit::AUDIT_EXIT_CODES)]
    Audit(audit::AuditCommand),
    /// Auditor: write a backup of the cluster's replicated state to FILE.
    ///
    /// The leader confirms its leadership with a quorum, then sends its applied state
    /// (protection records, the sealed key registry, the admin state, the kept audit records
    /// and the chain's anchor and head) with a header and a SHA-256 digest; the file holds
    /// sealed key records only, never a plaintext secret. The file is verified before it is
    /// written (mode 0600; an existing FILE is not replaced). `signer restore FILE` seeds a
    /// new cluster from it. Authenticates as auditor-1 unless --client names another auditor
    /// or an enrolled admin.
    #[command(after_help = EXIT_CODES)]
    Backup {
        /// Where to write the backup.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

impl Command {
    /// Whether this is an admin command (default client `admin-1`).
    fn is_admin(&self) -> bool {
        matches!(self, Command::Admin(c) if c.is_admin())
    }
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
            ClientError::Refused { .. } => Failure::new(exit::REFUSED, e.to_string()),
            ClientError::Unavailable { .. } => {
                Failure::new(exit::UNAVAILABLE, format!("unavailable: {e}"))
            }
            ClientError::Other(status) => {
                let code = exit::of_status(status.code());
                let what = match code {
                    exit::USAGE => "the cluster rejected the request",
                    exit::NOT_PERMITTED => "not permitted",
                    exit::RATE_LIMITED => "rate limited",
                    exit::NOT_FOUND => "not found",
                    _ => "",
                };
                if what.is_empty() {
                    Failure::new(exit::OTHER, format!("error: {e}"))
                } else {
                    Failure::new(code, format!("error: {what}: {e}"))
                }
            }
            _ => Failure::new(exit::OTHER, format!("error: {e}")),
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

/// The bytes of FILE, or of stdin for `-`.
fn read_input(path: &std::path::Path) -> Result<Vec<u8>, String> {
    use std::io::Read as _;
    let mut body = Vec::new();
    let read = if path.as_os_str() == "-" {
        std::io::stdin().read_to_end(&mut body).map(|_| ())
    } else {
        std::fs::File::open(path).and_then(|mut f| f.read_to_end(&mut body).map(|_| ()))
    };
    read.map_err(|e| format!("--request-json {}: {e}", path.display()))?;
    Ok(body)
}

fn run(cli: Cli) -> Result<(), Failure> {
    // Check the arguments before touching the network.
    let sign_request = match &cli.command {
        Command::Sign(args) => {
            let built = match &args.request_json {
                Some(path) => read_input(path).and_then(|body| request::build_json(args, &body)),
                None => request::build(args),
            };
            Some(built.map_err(|e| Failure::new(2, format!("error: {e}")))?)
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
    let default_client = if matches!(cli.command, Command::Audit(_) | Command::Backup { .. }) {
        AUDITOR
    } else if cli.command.is_admin() {
        ADMIN
    } else {
        SEQUENCER
    };
    let client = cli.client.as_deref().unwrap_or(default_client);
    if !descriptor.clients.contains_key(client) {
        let known: Vec<&str> = descriptor.clients.keys().map(String::as_str).collect();
        let hint = if cli.client.is_none() && client == ADMIN {
            " (dev clusters created before the admin commands have none: create a new one)"
        } else if cli.client.is_none() && client == AUDITOR {
            " (dev clusters created before the audit commands have none: pass --client admin-1)"
        } else {
            ""
        };
        return Err(Failure::new(
            2,
            format!(
                "error: --client {client}: no such client identity in {} (known: {}){hint}",
                dir.display(),
                known.join(", ")
            ),
        ));
    }
    // Secrets, passwords and confirmations are read before any network use.
    let approver = approver::Choice {
        yubikey: cli.yubikey,
        serial: cli.yubikey_serial,
    };
    let admin_work = match &cli.command {
        Command::Admin(command) => Some(admin::prepare(command, approver)?),
        _ => None,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(1, format!("error: starting the runtime: {e}")))?;
    runtime.block_on(async {
        let options = PoolOptions {
            deadline: Duration::from_secs(cli.timeout.max(1)),
            ..PoolOptions::default()
        };
        let pool = SignerPool::connect_with(&descriptor, client, options)
            .await
            .map_err(|e| match e {
                ClientError::Descriptor { .. } => {
                    Failure::new(2, format!("error: --client {client}: {e}"))
                }
                other => Failure::new(1, format!("error: {other}")),
            })?;
        if let Some(work) = admin_work {
            let session = admin::Session {
                pool: &pool,
                descriptor: &descriptor,
                dir: &dir,
                client,
                json: cli.json,
                approver,
            };
            return admin::run(&session, work).await;
        }
        match (&cli.command, sign_request) {
            (Command::Sign(_), Some(request)) => sign(&pool, request, cli.json).await,
            (Command::Status, _) => inspect::status(&pool, &descriptor, cli.json).await,
            (Command::Health(args), _) => inspect::health(&pool, &descriptor, args, cli.json).await,
            (Command::Audit(command), _) => audit::run(&pool, command, cli.json).await,
            (Command::Backup { out }, _) => backup(&pool, out, cli.json).await,
            _ => Err(Failure::new(1, "error: no request built")),
        }
    })
}

/// `signerctl backup --out FILE`: fetch, verify and write a backup.
async fn backup(pool: &SignerPool, out: &std::path::Path, json: bool) -> Result<(), Failure> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let (node, file) = pool.backup().await?;
    let verified = signer_core::backup::decode(&file).map_err(|e| {
        Failure::new(
            exit::OTHER,
            format!("error: the backup node {node} sent does not verify: {e}"),
        )
    })?;
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .and_then(|mut f| {
            f.write_all(&file)?;
            f.sync_all()
        });
    written
        .map_err(|e| Failure::new(exit::OTHER, format!("error: --out {}: {e}", out.display())))?;
    let h = &verified.header;
    let digest = hex::encode(verified.digest);
    if json {
        let value = serde_json::json!({
            "file": out.display().to_string(),
            "node_id": node,
            "cluster_id": h.cluster_id,
            "applied_index": h.applied.index,
            "created_at_ms": h.created_at_ms,
            "audit_head_seq": h.audit_head.seq,
            "audit_head_hash": hex::encode(h.audit_head.hash),
            "bytes": file.len(),
            "sha256": digest,
        });
        signer_client::outln!("{value}");
    } else {
        signer_client::outln!(
            "backup of cluster {} from node {node}: applied index {}, audit head seq {}, {} bytes, sha256:{digest} -> {}",
            h.cluster_id,
            h.applied.index,
            h.audit_head.seq,
            file.len(),
            out.display()
        );
    }
    Ok(())
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
        signer_client::outln!("{value}");
    } else {
        signer_client::outln!("{}", response.signature_text);
    }
    Ok(())
}
