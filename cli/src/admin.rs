//! `signerctl key generate|import|enable|disable|delete|registry` and `signerctl kek rotate`:
//! the key lifecycle through the cluster's Admin service.
//!
//! Owns: these commands' arguments, their text and JSON output, and how the Admin service's
//! answers map to messages and exit codes ([`ADMIN_EXIT_CODES`]). Must not: decide lifecycle
//! rules (the cluster does, through Raft), or read secrets itself ([`crate::input`] does).

use crate::input;
use crate::request::ProfileArg;
use crate::Failure;
use clap::Args;
use signer::client::{ClientError, ImportSecret, SignerPool};
use signer::pb;
use signer::protection::Profile;
use signer::registry::KeyState;
use std::path::PathBuf;
use tonic::Code;

/// The admin commands' exit codes, as a literal for `concat!`.
macro_rules! admin_exit_codes {
    () => {
        "\
Admin commands authenticate as client admin-1 unless --client names another admin-… identity.

Exit codes:
  0  success
  1  other errors (files, unexpected answers); `kek rotate`: keys remain under an old KEK
  2  bad arguments, or the cluster rejected the request: unknown key, key id or public key
     already taken, bad secret or keystore password, deleted key, no KEK configured
  4  unavailable: no node answered in time (or no leader to accept the change)
  5  not permitted: the client identity is not an admin"
    };
}

/// Exit codes of the admin commands.
pub const ADMIN_EXIT_CODES: &str = admin_exit_codes!();

/// `key generate --help`: examples and exit codes.
pub const GENERATE_HELP: &str = concat!(
    "\
Examples:
  signerctl --dir DIR key generate --key validator-7 --profile eth2
  signerctl --dir DIR key generate --key node-3-staking --profile espresso --json
  signerctl --dir DIR key registry

",
    admin_exit_codes!()
);

/// `key import --help`: examples and exit codes.
pub const IMPORT_HELP: &str = concat!(
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

/// `--key ID` of a key that exists.
#[derive(Args, Debug, Clone)]
pub struct KeyArg {
    /// The key's id (see `signerctl key registry`).
    #[arg(long, value_name = "KEY_ID")]
    pub key: String,
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
}

/// One admin action, with its inputs read.
pub enum Action {
    /// `key generate`.
    Generate(GenerateArgs),
    /// `key import`, with the secret read.
    Import {
        /// The key id.
        key: String,
        /// The profile.
        profile: Profile,
        /// The secret.
        secret: ImportSecret,
    },
    /// `key enable|disable|delete`.
    SetState {
        /// The key id.
        key: String,
        /// The new state.
        state: KeyState,
    },
    /// `key registry`.
    Registry,
    /// `kek rotate`.
    RotateKek,
}

/// The profile the cluster knows for a command-line profile.
pub fn profile(arg: ProfileArg) -> Profile {
    match arg {
        ProfileArg::Eth2 => Profile::Eth2,
        ProfileArg::Espresso => Profile::Espresso,
    }
}

/// `key import`: read the secret (and ask for the keystore password) before any network use.
pub fn import(args: &ImportArgs) -> Result<Action, Failure> {
    let profile = profile(args.profile);
    let bad = |e: String| Failure::new(2, format!("error: {e}"));
    let secret = match (&args.keystore, &args.raw_secret_file) {
        (Some(keystore), None) => {
            if profile != Profile::Eth2 {
                return Err(bad(
                    "--keystore: EIP-2335 keystores hold eth2 keys; use --profile eth2".into(),
                ));
            }
            input::keystore(keystore, args.password_file.as_deref()).map_err(bad)?
        }
        (None, Some(file)) => input::raw_secret(file, profile).map_err(bad)?,
        _ => {
            return Err(bad(
                "give exactly one of --keystore FILE and --raw-secret-file FILE".into(),
            ))
        }
    };
    Ok(Action::Import {
        key: args.key.clone(),
        profile,
        secret,
    })
}

/// `key delete`: confirmed by `--yes` or on the terminal.
pub fn delete(args: &DeleteArgs) -> Result<Action, Failure> {
    if !args.yes {
        match input::confirm_delete(&args.key) {
            Ok(true) => {}
            Ok(false) => {
                return Err(Failure::new(
                    1,
                    "aborted: not confirmed; nothing was deleted",
                ));
            }
            Err(e) => return Err(Failure::new(2, format!("error: {e}"))),
        }
    }
    Ok(Action::SetState {
        key: args.key.clone(),
        state: KeyState::Deleted,
    })
}

/// Run `action` as `client` and print its outcome.
pub async fn run(
    pool: &SignerPool,
    action: Action,
    client: &str,
    json: bool,
) -> Result<(), Failure> {
    let failure = |e: ClientError| admin_failure(e, client);
    match action {
        Action::Generate(args) => {
            let info = pool
                .generate_key(&args.key, profile(args.profile))
                .await
                .map_err(failure)?;
            print_key(&info, "generated", json);
        }
        Action::Import {
            key,
            profile,
            secret,
        } => {
            let info = pool
                .import_key(&key, profile, &secret)
                .await
                .map_err(failure)?;
            drop(secret);
            print_key(&info, "imported", json);
        }
        Action::SetState { key, state } => {
            let info = pool.set_key_state(&key, state).await.map_err(failure)?;
            let done = match state {
                KeyState::Active => "enabled",
                KeyState::Disabled => "disabled",
                KeyState::Deleted => "deleted",
            };
            print_key(&info, done, json);
        }
        Action::Registry => {
            let (node, keys) = pool.list_keys().await.map_err(failure)?;
            print_registry(node, &keys, json);
        }
        Action::RotateKek => {
            let outcome = pool.rotate_kek().await.map_err(failure)?;
            return rotated(&outcome, json);
        }
    }
    Ok(())
}

/// How an admin call's failure reads and exits.
fn admin_failure(e: ClientError, client: &str) -> Failure {
    let ClientError::Other(status) = &e else {
        return Failure::from(e);
    };
    let message = status.message();
    match status.code() {
        Code::PermissionDenied | Code::Unauthenticated => Failure::new(
            5,
            format!(
                "error: this identity is not an admin: the cluster refused client {client:?} \
                 ({message}); admin commands need a client certificate naming an admin-… \
                 identity (--client, default admin-1)"
            ),
        ),
        Code::AlreadyExists => Failure::new(
            2,
            format!(
                "error: already exists: {message} (if an earlier attempt of this command \
                 timed out, it may have added the key: see `signerctl key registry`)"
            ),
        ),
        Code::NotFound => Failure::new(2, format!("error: not found: {message}")),
        Code::FailedPrecondition => Failure::new(2, format!("error: not possible: {message}")),
        Code::InvalidArgument | Code::OutOfRange => Failure::new(
            2,
            format!("error: the cluster rejected the request: {message}"),
        ),
        _ => Failure::new(1, format!("error: {e}")),
    }
}

fn key_json(k: &pb::AdminKeyInfo) -> serde_json::Value {
    serde_json::json!({
        "key_id": k.key_id,
        "profile": k.profile,
        "state": k.state,
        "kek": k.kek,
        "origin": k.origin,
        "loaded": k.loaded_here,
        "pending_reason": k.pending_reason,
        "public_key": k.public_key_text,
    })
}

fn print_key(k: &pb::AdminKeyInfo, done: &str, json: bool) {
    if json {
        println!("{}", key_json(k));
        return;
    }
    println!("{done} key {} ({})", k.key_id, k.profile);
    println!("  state       {}", k.state);
    println!("  origin      {}", k.origin);
    if !k.kek.is_empty() {
        println!("  sealed by   {}", k.kek);
    }
    println!("  public key  {}", k.public_key_text);
    if k.state == "deleted" {
        println!("  (a tombstone: it never signs again; its id and public key stay taken)");
    }
}

fn print_registry(node: u64, keys: &[pb::AdminKeyInfo], json: bool) {
    if json {
        let list: Vec<_> = keys.iter().map(key_json).collect();
        println!("{}", serde_json::json!({ "node_id": node, "keys": list }));
        return;
    }
    if keys.is_empty() {
        println!(
            "the key registry is empty (keys from key files: `signerctl key list`; \
             add keys with `signerctl key generate|import`)"
        );
        return;
    }
    let width = keys
        .iter()
        .map(|k| k.key_id.len())
        .max()
        .unwrap_or(0)
        .max(6);
    let kek_width = keys.iter().map(|k| k.kek.len()).max().unwrap_or(0).max(3);
    println!("key registry (LOADED: in memory on node-{node}, which answered)");
    println!(
        "{:<width$}  {:<8}  {:<8}  {:<9}  {:<6}  {:<kek_width$}  PUBLIC KEY",
        "KEY ID", "PROFILE", "STATE", "ORIGIN", "LOADED", "KEK"
    );
    for k in keys {
        let kek = if k.kek.is_empty() { "-" } else { &k.kek };
        println!(
            "{:<width$}  {:<8}  {:<8}  {:<9}  {:<6}  {:<kek_width$}  {}",
            k.key_id,
            k.profile,
            k.state,
            k.origin,
            if k.loaded_here { "yes" } else { "no" },
            kek,
            k.public_key_text
        );
        if !k.pending_reason.is_empty() {
            println!("{:<width$}  pending: {}", "", k.pending_reason);
        }
    }
}

fn rotated(r: &pb::RotateKekResponse, json: bool) -> Result<(), Failure> {
    if json {
        let value = serde_json::json!({
            "rewrapped": r.rewrapped,
            "remaining": r.remaining,
            "errors": r.errors,
        });
        println!("{value}");
    } else {
        println!(
            "re-wrapped {} key(s) under the current KEK; {} remaining",
            r.rewrapped, r.remaining
        );
        for e in &r.errors {
            println!("  error: {e}");
        }
    }
    if r.remaining > 0 {
        return Err(Failure::new(
            1,
            format!(
                "error: {} key(s) are still sealed under an older KEK; fix the errors above \
                 (is every retired KEK still configured?) and run `signerctl kek rotate` again",
                r.remaining
            ),
        ));
    }
    Ok(())
}
