//! `signerctl key list|registry|generate|import|enable|disable|delete` and `kek rotate`.
//!
//! Owns: these commands' arguments and help, reading their secrets and confirmations before
//! any network use (through [`crate::input`]), and key output (text and JSON). Must not: decide
//! lifecycle rules (the cluster does), or print a secret.

use super::{admin_exit_codes, ProposeOpts, Session, Work, ADMIN_EXIT_CODES};
use crate::input;
use crate::request::ProfileArg;
use crate::Failure;
use clap::{Args, Subcommand};
use signer_client::pb;
use signer_client::{ClientError, ImportSecret};
use signer_core::protection::Profile;
use std::path::PathBuf;

/// `key generate --help`: examples and exit codes.
const GENERATE_HELP: &str = concat!(
    "\
Examples:
  signerctl --dir DIR key generate --key validator-7 --profile eth2
  signerctl --dir DIR key generate --key node-3-staking --profile espresso --json
  # only propose; other admins approve it (signerctl approve <id>):
  signerctl --dir DIR key generate --key validator-8 --profile eth2 --no-approve
  signerctl --dir DIR key registry

",
    admin_exit_codes!()
);

/// `key import --help`: examples and exit codes.
const IMPORT_HELP: &str = concat!(
    "\
Examples:
  # EIP-2335 keystore; the password is asked on the terminal:
  signerctl --dir DIR key import --key validator-7 --profile eth2 \\
      --keystore keystore-m_12381_3600_0_0_0.json
  # ... or read from a file (mode 0600):
  signerctl --dir DIR key import --key validator-7 --profile eth2 \\
      --keystore keystore-m_12381_3600_0_0_0.json --password-file pw.txt
  # development: a raw secret (0x-hex; BLS_SIGNING_KEY~… for espresso):
  signerctl --dir DIR key import --key dev-1 --profile espresso --raw-secret-file sk.txt

",
    admin_exit_codes!()
);

#[derive(Subcommand)]
pub enum KeyCommand {
    /// List the keys that can sign, with their profile, scheme and public key (0x-hex for
    /// eth2, BLS_VER_KEY~… for espresso).
    List,
    /// Admin: every key of the replicated registry, deleted ones included.
    ///
    /// Shows each key's id, profile, state (active, disabled, deleted), origin (generated,
    /// imported), the KEK its secret is sealed under, the nodes holding it in memory (every
    /// node is asked; a node that has not loaded it is listed with why, e.g. its KMS is
    /// unreachable), and its public key. With --json: {"node_id", "keys": [{key_id, profile,
    /// state, kek, origin, loaded, pending_reason, public_key, "nodes": {loaded_on,
    /// pending_on: [{node_id, reason}], unknown_on}}]} (`loaded` and `pending_reason` are the
    /// answering node's). Keys from key files are not in the registry (see `key list`).
    #[command(after_help = ADMIN_EXIT_CODES)]
    Registry,
    /// Admin: generate a new key inside the cluster; its secret never leaves the cluster.
    ///
    /// The node that takes the proposal generates the secret and seals it under the
    /// cluster's KEK; the challenge carries the sealed record and the public key, which the
    /// approvers see. Once approved, every node unseals and loads it. Prints the challenge
    /// and, when executed, the new key (with --json: {status, challenge, approval, key:
    /// {key_id, profile, state, kek, origin, loaded, pending_reason, public_key}}).
    #[command(after_help = ADMIN_EXIT_CODES, after_long_help = GENERATE_HELP)]
    Generate(GenerateArgs),
    /// Admin: import an existing key, sealed by the cluster under its KEK.
    ///
    /// From an EIP-2335 keystore (eth2): the password comes from --password-file or is asked
    /// on the terminal without echo, and is never accepted on the command line. Or, for
    /// development, from a raw secret file (--raw-secret-file). The secret travels to the
    /// cluster over mutual TLS, which seals it before opening the challenge. Make sure no
    /// other signer still uses the key: slashing protection covers only what this cluster
    /// signs.
    #[command(after_help = ADMIN_EXIT_CODES, after_long_help = IMPORT_HELP)]
    Import(ImportArgs),
    /// Admin: let a disabled key sign again (every node reloads it).
    #[command(after_help = ADMIN_EXIT_CODES)]
    Enable(KeyArg),
    /// Admin: stop a key from signing (every node unloads it; its record and protection
    /// history stay). `key enable` undoes this.
    #[command(after_help = ADMIN_EXIT_CODES)]
    Disable(KeyArg),
    /// Admin: delete a key for good.
    ///
    /// The record becomes a tombstone: its sealed secret is dropped, it never signs again, and
    /// its id and public key stay taken so that its protection history is never reused. Asks
    /// for the key id as confirmation on a terminal unless --yes is given.
    #[command(after_help = ADMIN_EXIT_CODES)]
    Delete(DeleteArgs),
}

#[derive(Subcommand)]
pub enum KekCommand {
    /// Admin: re-wrap every registry key not yet sealed under the current KEK.
    ///
    /// After configuring a new `kek` on every node (the old one moved to `retired_keks`), the
    /// node taking the proposal unseals each key with its old KEK and seals it under the new
    /// one; the approved challenge commits them all at once. Prints how many keys were
    /// re-wrapped, how many remain under an old KEK, and why; exits 1 while any remain.
    /// Safe to repeat: with nothing to re-wrap it proposes nothing and exits 0. With --json:
    /// {status, rewrapped, remaining, errors, challenge, approval}.
    #[command(after_help = ADMIN_EXIT_CODES)]
    Rotate(ProposeOpts),
}

/// `--key ID` of a key that exists.
#[derive(Args, Debug, Clone)]
pub struct KeyArg {
    /// The key's id (see `signerctl key registry`).
    #[arg(long, value_name = "KEY_ID")]
    pub key: String,
    #[command(flatten)]
    pub propose: ProposeOpts,
}

/// Arguments of `key generate`.
#[derive(Args, Debug, Clone)]
pub struct GenerateArgs {
    /// The new key's id: 1 to 128 letters, digits, '-', '_' or '.'. Ids are never reused,
    /// not even after a delete.
    #[arg(long, value_name = "KEY_ID")]
    pub key: String,
    /// What the key signs: eth2 (BLS12-381) or espresso (BLS over BN254).
    #[arg(long, value_enum)]
    pub profile: ProfileArg,
    #[command(flatten)]
    pub propose: ProposeOpts,
}

/// Arguments of `key import`.
#[derive(Args, Debug, Clone)]
#[command(group(
    clap::ArgGroup::new("secret")
        .required(true)
        .args(["keystore", "raw_secret_file"])
))]
pub struct ImportArgs {
    /// The new key's id: 1 to 128 letters, digits, '-', '_' or '.'.
    #[arg(long, value_name = "KEY_ID")]
    pub key: String,
    /// What the key signs: eth2 (BLS12-381) or espresso (BLS over BN254).
    #[arg(long, value_enum)]
    pub profile: ProfileArg,
    /// An EIP-2335 keystore (JSON, as written by the staking deposit tools); eth2 only. The
    /// cluster decrypts it with the password and seals the key under its KEK.
    #[arg(long, value_name = "FILE")]
    pub keystore: Option<PathBuf>,
    /// A file holding the keystore's password (one trailing newline is ignored). Without it,
    /// the password is asked on the terminal without echo. Never given on the command line.
    #[arg(long, value_name = "FILE", requires = "keystore")]
    pub password_file: Option<PathBuf>,
    /// Development: a file holding the 32-byte secret as 0x-hex — big-endian for eth2,
    /// little-endian (jf-signature) for espresso — or, for espresso, `BLS_SIGNING_KEY~…`.
    #[arg(long, value_name = "FILE")]
    pub raw_secret_file: Option<PathBuf>,
    #[command(flatten)]
    pub propose: ProposeOpts,
}

/// Arguments of `key delete`.
#[derive(Args, Debug, Clone)]
pub struct DeleteArgs {
    /// The key's id.
    #[arg(long, value_name = "KEY_ID")]
    pub key: String,
    /// Delete without asking for confirmation (required when standard input is not a
    /// terminal).
    #[arg(long)]
    pub yes: bool,
    #[command(flatten)]
    pub propose: ProposeOpts,
}

/// The profile the cluster knows for a command-line profile.
fn profile(arg: ProfileArg) -> Profile {
    match arg {
        ProfileArg::Eth2 => Profile::Eth2,
        ProfileArg::Espresso => Profile::Espresso,
    }
}

fn set_state(key: &str, state: &str, opts: &ProposeOpts) -> Work {
    Work::Change {
        request: pb::propose_request::Request::SetKeyState(pb::SetKeyStateRequest {
            key_id: key.to_owned(),
            state: state.to_owned(),
        }),
        no_approve: opts.no_approve,
        enrolled_soft_key: None,
    }
}

/// Read a key command's inputs: secrets and passwords, the delete confirmation.
pub fn prepare(command: &KeyCommand) -> Result<Work, Failure> {
    Ok(match command {
        KeyCommand::List => Work::KeyList,
        KeyCommand::Registry => Work::Registry,
        KeyCommand::Generate(args) => Work::Change {
            request: pb::propose_request::Request::GenerateKey(pb::GenerateKeyRequest {
                key_id: args.key.clone(),
                profile: profile(args.profile).name().to_owned(),
            }),
            no_approve: args.propose.no_approve,
            enrolled_soft_key: None,
        },
        KeyCommand::Import(args) => {
            let profile = profile(args.profile);
            let secret = import_secret(args, profile)?;
            Work::Change {
                request: secret.request(&args.key, profile),
                no_approve: args.propose.no_approve,
                enrolled_soft_key: None,
            }
        }
        KeyCommand::Enable(args) => set_state(&args.key, "active", &args.propose),
        KeyCommand::Disable(args) => set_state(&args.key, "disabled", &args.propose),
        KeyCommand::Delete(args) => {
            if !args.yes {
                match input::confirm_delete(&args.key) {
                    Ok(true) => {}
                    Ok(false) => {
                        return Err(Failure::new(
                            1,
                            "aborted: not confirmed; nothing was proposed",
                        ))
                    }
                    Err(e) => return Err(Failure::new(2, format!("error: {e}"))),
                }
            }
            set_state(&args.key, "deleted", &args.propose)
        }
    })
}

/// `key import`: read the secret (and ask for the keystore password).
fn import_secret(args: &ImportArgs, profile: Profile) -> Result<ImportSecret, Failure> {
    let bad = |e: String| Failure::new(2, format!("error: {e}"));
    match (&args.keystore, &args.raw_secret_file) {
        (Some(keystore), None) => {
            if profile != Profile::Eth2 {
                return Err(bad(
                    "--keystore: EIP-2335 keystores hold eth2 keys; use --profile eth2".into(),
                ));
            }
            input::keystore(keystore, args.password_file.as_deref()).map_err(bad)
        }
        (None, Some(file)) => input::raw_secret(file, profile).map_err(bad),
        _ => Err(bad(
            "give exactly one of --keystore FILE and --raw-secret-file FILE".into(),
        )),
    }
}

/// `kek rotate` when the proposal was refused because every key is already under the current
/// KEK: that is success (nothing to do).
pub fn nothing_to_rewrap(f: Failure, json: bool) -> Result<(), Failure> {
    if f.code != 2 || !f.message.contains("already sealed under") {
        return Err(f);
    }
    let reason = f.message.trim_start_matches("error: not possible: ");
    if json {
        let value = serde_json::json!({
            "status": "nothing_to_do",
            "rewrapped": 0,
            "remaining": 0,
            "errors": [],
            "detail": reason,
        });
        signer_client::outln!("{value}");
    } else {
        signer_client::outln!("nothing to re-wrap: {reason}");
    }
    Ok(())
}

/// After an executed `kek rotate`: how many keys moved, how many remain (exit 1 while any do).
pub fn rotated(
    rewrapped: usize,
    errors: &[String],
    json: bool,
    value: &mut serde_json::Value,
) -> Result<(), Failure> {
    value["rewrapped"] = rewrapped.into();
    value["remaining"] = errors.len().into();
    value["errors"] = errors.into();
    if !json {
        signer_client::outln!(
            "re-wrapped {rewrapped} key(s) under the current KEK; {} remaining",
            errors.len()
        );
        for e in errors {
            signer_client::outln!("  error: {e}");
        }
    }
    if !errors.is_empty() {
        return Err(Failure::new(
            1,
            format!(
                "error: {} key(s) are still sealed under an older KEK; fix the errors above \
                 (is every retired KEK still configured?) and run `signerctl kek rotate` again",
                errors.len()
            ),
        ));
    }
    Ok(())
}

/// A registry entry as JSON.
pub fn key_json(k: &pb::AdminKeyInfo) -> serde_json::Value {
    serde_json::json!({
        "key_id": k.key_id,
        "profile": k.profile,
        "state": k.state,
        "kek": k.kek,
        "data_key": k.data_key,
        "origin": k.origin,
        "loaded": k.loaded_here,
        "pending_reason": k.pending_reason,
        "public_key": k.public_key_text,
    })
}

/// A key after a change (`done`: generated, imported, enabled, disabled, deleted).
pub fn print_key(k: &pb::AdminKeyInfo, done: &str) {
    signer_client::outln!("{done} key {} ({})", k.key_id, k.profile);
    signer_client::outln!("  state       {}", k.state);
    signer_client::outln!("  origin      {}", k.origin);
    if !k.kek.is_empty() {
        signer_client::outln!("  sealed by   {}", k.kek);
    }
    if !k.data_key.is_empty() {
        signer_client::outln!("  data key    {}", k.data_key);
    }
    signer_client::outln!("  public key  {}", k.public_key_text);
    if k.state == "deleted" {
        signer_client::outln!(
            "  (a tombstone: it never signs again; its id and public key stay taken)"
        );
    }
}

/// Where one registry key is in memory: each node's answer to the cluster-status call.
#[derive(Default)]
struct Placement {
    /// Nodes that hold it loaded.
    loaded: Vec<u64>,
    /// Nodes that have not loaded it, with why.
    pending: Vec<(u64, String)>,
    /// Nodes that did not answer (or do not list it either way).
    unknown: Vec<u64>,
}

impl Placement {
    /// The key's placement across `statuses`.
    fn of(key_id: &str, statuses: &[(u64, Result<pb::ClusterStatus, ClientError>)]) -> Self {
        let mut p = Placement::default();
        for (node, status) in statuses {
            let Ok(s) = status else {
                p.unknown.push(*node);
                continue;
            };
            if s.keys_loaded.iter().any(|k| k == key_id) {
                p.loaded.push(*node);
            } else if let Some(pending) = s.keys_pending.iter().find(|k| k.key_id == key_id) {
                p.pending.push((*node, pending.reason.clone()));
            } else {
                p.unknown.push(*node);
            }
        }
        p
    }

    fn json(&self) -> serde_json::Value {
        let pending: Vec<_> = self
            .pending
            .iter()
            .map(|(node, reason)| serde_json::json!({"node_id": node, "reason": reason}))
            .collect();
        serde_json::json!({"loaded_on": self.loaded, "pending_on": pending, "unknown_on": self.unknown})
    }

    /// `1,2,3`, or `-` when no node has it loaded.
    fn loaded_text(&self) -> String {
        if self.loaded.is_empty() {
            return "-".to_owned();
        }
        let ids: Vec<String> = self.loaded.iter().map(u64::to_string).collect();
        ids.join(",")
    }
}

/// `key registry`: the replicated registry, and on which nodes each key is loaded or pending
/// (every node is asked; a node that does not answer is named).
pub async fn registry(session: &Session<'_>) -> Result<(), Failure> {
    let (node, keys) = session
        .pool
        .list_keys()
        .await
        .map_err(|e| session.failure(e))?;
    let statuses = session.pool.cluster_statuses().await;
    if session.json {
        let list: Vec<_> = keys
            .iter()
            .map(|k| {
                let mut v = key_json(k);
                v["nodes"] = Placement::of(&k.key_id, &statuses).json();
                v
            })
            .collect();
        signer_client::outln!("{}", serde_json::json!({ "node_id": node, "keys": list }));
        return Ok(());
    }
    if keys.is_empty() {
        signer_client::outln!(
            "the key registry is empty (keys from key files: `signerctl key list`; \
             add keys with `signerctl key generate|import`)"
        );
        return Ok(());
    }
    let width = keys
        .iter()
        .map(|k| k.key_id.len())
        .max()
        .unwrap_or(0)
        .max(6);
    let kek_width = keys.iter().map(|k| k.kek.len()).max().unwrap_or(0).max(3);
    let placements: Vec<Placement> = keys
        .iter()
        .map(|k| Placement::of(&k.key_id, &statuses))
        .collect();
    let loaded_width = placements
        .iter()
        .map(|p| p.loaded_text().len())
        .max()
        .unwrap_or(0)
        .max(9);
    signer_client::outln!("key registry (LOADED ON: the nodes holding the key in memory)");
    signer_client::outln!(
        "{:<width$}  {:<8}  {:<8}  {:<9}  {:<loaded_width$}  {:<kek_width$}  PUBLIC KEY",
        "KEY ID",
        "PROFILE",
        "STATE",
        "ORIGIN",
        "LOADED ON",
        "KEK"
    );
    for (k, placement) in keys.iter().zip(&placements) {
        let kek = if k.kek.is_empty() { "-" } else { &k.kek };
        signer_client::outln!(
            "{:<width$}  {:<8}  {:<8}  {:<9}  {:<loaded_width$}  {:<kek_width$}  {}",
            k.key_id,
            k.profile,
            k.state,
            k.origin,
            placement.loaded_text(),
            kek,
            k.public_key_text
        );
        for (node, reason) in &placement.pending {
            signer_client::outln!("{:<width$}  pending on node-{node}: {reason}", "");
        }
        // A disabled or deleted key is loaded nowhere, by design.
        if k.state == "active" && !placement.unknown.is_empty() {
            let ids: Vec<String> = placement
                .unknown
                .iter()
                .map(|n| format!("node-{n}"))
                .collect();
            signer_client::outln!("{:<width$}  not reported by: {}", "", ids.join(", "));
        }
    }
    Ok(())
}
