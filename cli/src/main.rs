//! `signerctl`: the Quorum Signer operator client.
//!
//! Owns: the command line of operators and sequencer operators — arguments, help text, output
//! formats and exit codes; which client identity a command uses by default (`seq-1` to sign,
//! `admin-1` for key lifecycle). The admin commands live in `admin`, secret and confirmation
//! input in `input`, sign requests in `request`. Must not: hold protection, signing or
//! lifecycle logic (the cluster decides), or retry anything the cluster answered (the client
//! library retries only nodes that cannot answer).

#![forbid(unsafe_code)]

mod admin;
mod audit;
mod input;
mod inspect;
mod request;
#[cfg(feature = "yubikey")]
#[allow(unused_imports)] // the YubiKey approver (`signerctl::piv`); used by the admin commands
use signerctl::piv;

use clap::{Parser, Subcommand};
use signer::client::{ClientError, ClusterDescriptor, PoolOptions, SignerPool};
use signer::devcluster::{ADMIN, AUDITOR, SEQUENCER};
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
  4  unavailable: no node answered in time
  5  not permitted: the client identity is not an admin (key generate|import|enable|disable|
     delete|registry, kek rotate)";

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
/// Talks to the cluster's nodes over mutual TLS as a client identity: the dev sequencer
/// `seq-1` to sign and read keys, the dev admin `admin-1` to manage keys (`key generate`,
/// `import`, `enable`, `disable`, `delete`, `registry`; `kek rotate`). Endpoints, CA and client
/// certificates come from the cluster.json of a dev-cluster directory
/// (`signer dev-cluster up --dir DIR`). Any node can be asked: a request is retried on the next
/// node while none answers (key changes move on until they reach the leader), never after an
/// answer.
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
    /// The cluster's validator keys: list them, and (as an admin) generate, import, enable,
    /// disable and delete them.
    #[command(subcommand)]
    Key(KeyCommand),
    /// The key-encryption key (KEK) that seals the registry's keys.
    #[command(subcommand)]
    Kek(KekCommand),
    /// Every node's view of the cluster: leader, term, applied log index, keys loaded.
    ///
    /// Exits 4 when no node answers.
    Status,
    /// Auditor: read, follow, verify and export the replicated, hash-chained audit log
    /// (every sign decision, admin action, membership change, key load and KMS failure).
    #[command(subcommand, after_help = audit::AUDIT_EXIT_CODES)]
    Audit(audit::AuditCommand),
}

#[derive(Subcommand)]
enum KeyCommand {
    /// List the keys that can sign, with their profile, scheme and public key (0x-hex for
    /// eth2, BLS_VER_KEY~… for espresso).
    List,
    /// Admin: every key of the replicated registry, deleted ones included.
    ///
    /// Shows each key's id, profile, state (active, disabled, deleted), origin (generated,
    /// imported), the KEK its secret is sealed under, whether the node that answered has it
    /// loaded in memory (and if not, why it is pending), and its public key. With --json:
    /// {"node_id", "keys": [{key_id, profile, state, kek, origin, loaded, pending_reason,
    /// public_key}]}. Keys from key files are not in the registry (see `key list`).
    #[command(after_help = admin::ADMIN_EXIT_CODES)]
    Registry,
    /// Admin: generate a new key inside the cluster; its secret never leaves the cluster.
    ///
    /// The leader generates the secret, seals it under the cluster's KEK and commits the sealed
    /// record through Raft; every node then unseals and loads it. Prints the new key's public
    /// key (with --json: {key_id, profile, state, kek, origin, loaded, pending_reason,
    /// public_key}).
    #[command(after_help = admin::ADMIN_EXIT_CODES, after_long_help = admin::GENERATE_HELP)]
    Generate(admin::GenerateArgs),
    /// Admin: import an existing key, sealed by the cluster under its KEK.
    ///
    /// From an EIP-2335 keystore (eth2): the password comes from --password-file or is asked
    /// on the terminal without echo, and is never accepted on the command line. Or, for
    /// development, from a raw secret file (--raw-secret-file). The secret travels to the
    /// cluster over mutual TLS. Make sure no other signer still uses the key: slashing
    /// protection covers only what this cluster signs.
    #[command(after_help = admin::ADMIN_EXIT_CODES, after_long_help = admin::IMPORT_HELP)]
    Import(admin::ImportArgs),
    /// Admin: let a disabled key sign again (every node reloads it).
    #[command(after_help = admin::ADMIN_EXIT_CODES)]
    Enable(admin::KeyArg),
    /// Admin: stop a key from signing (every node unloads it; its record and protection
    /// history stay). `key enable` undoes this.
    #[command(after_help = admin::ADMIN_EXIT_CODES)]
    Disable(admin::KeyArg),
    /// Admin: delete a key for good.
    ///
    /// The record becomes a tombstone: its sealed secret is dropped, it never signs again, and
    /// its id and public key stay taken so that its protection history is never reused. Asks
    /// for the key id as confirmation on a terminal unless --yes is given.
    #[command(after_help = admin::ADMIN_EXIT_CODES)]
    Delete(admin::DeleteArgs),
}

#[derive(Subcommand)]
enum KekCommand {
    /// Admin: re-wrap every registry key not yet sealed under the current KEK.
    ///
    /// After configuring a new `kek` on every node (the old one moved to `retired_keks`), this
    /// unseals each key with its old KEK and seals it under the new one, committed through
    /// Raft. Prints how many keys were re-wrapped, how many remain under an old KEK, and the
    /// errors; exits 1 while any remain. Safe to repeat. With --json: {rewrapped, remaining,
    /// errors}.
    #[command(after_help = admin::ADMIN_EXIT_CODES)]
    Rotate,
}

impl Command {
    /// The admin action of this command, with its inputs read (files, password, confirmation),
    /// or `None` for a command of the Signer service.
    fn admin_action(&self) -> Result<Option<admin::Action>, Failure> {
        Ok(Some(match self {
            Command::Key(KeyCommand::Registry) => admin::Action::Registry,
            Command::Key(KeyCommand::Generate(args)) => admin::Action::Generate(args.clone()),
            Command::Key(KeyCommand::Import(args)) => admin::import(args)?,
            Command::Key(KeyCommand::Enable(args)) => admin::Action::SetState {
                key: args.key.clone(),
                state: signer::registry::KeyState::Active,
            },
            Command::Key(KeyCommand::Disable(args)) => admin::Action::SetState {
                key: args.key.clone(),
                state: signer::registry::KeyState::Disabled,
            },
            Command::Key(KeyCommand::Delete(args)) => admin::delete(args)?,
            Command::Kek(KekCommand::Rotate) => admin::Action::RotateKek,
            Command::Sign(_)
            | Command::Key(KeyCommand::List)
            | Command::Status
            | Command::Audit(_) => return Ok(None),
        }))
    }

    /// Whether this is an admin command (default client `admin-1`).
    fn is_admin(&self) -> bool {
        !matches!(
            self,
            Command::Sign(_) | Command::Key(KeyCommand::List) | Command::Status | Command::Audit(_)
        )
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
    let default_client = if matches!(cli.command, Command::Audit(_)) {
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
    let admin_action = cli.command.admin_action()?;
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
        if let Some(action) = admin_action {
            return admin::run(&pool, action, client, cli.json).await;
        }
        match (&cli.command, sign_request) {
            (Command::Sign(_), Some(request)) => sign(&pool, request, cli.json).await,
            (Command::Key(KeyCommand::List), _) => inspect::key_list(&pool, cli.json).await,
            (Command::Status, _) => inspect::status(&pool, &descriptor, cli.json).await,
            (Command::Audit(command), _) => audit::run(&pool, command, cli.json).await,
            _ => Err(Failure::new(1, "error: no request built")),
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
