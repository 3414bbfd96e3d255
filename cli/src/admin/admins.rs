//! `signerctl admin enroll|remove|list|policy`: the admins who approve changes and the
//! approval policy.
//!
//! Owns: these commands' arguments and help, their local inputs (a development key file,
//! created 0600 when missing and then recorded in cluster.json; a YubiKey enrollment with its
//! attestation) and their output. Must not: judge attestations (the cluster does, against
//! Yubico's roots) or enroll anyone itself (enrolling is an approved action).

use super::{admin_exit_codes, change, ProposeOpts, Session, Work, ADMIN_EXIT_CODES};
use crate::approver::Choice;
use crate::Failure;
use clap::{Args, Subcommand};
use signer_client::pb;
use signer_client::pb::propose_request::Request;
use signer_client::SoftApprover;
use std::io::Read;
use std::path::{Path, PathBuf};

const ENROLL_HELP: &str = concat!(
    "\
Examples:
  # a development admin (Ed25519 key file, created 0600 when missing):
  signerctl --dir DIR admin enroll --name admin-2 --soft-key-file admin-2.key
  # a YubiKey admin: the card plugged in here gets a new P-256 key in slot 9c (touch policy
  # always), and its attestation is sent; the PIN is asked without echo:
  signerctl --dir DIR admin enroll --name admin-alice --on-yubikey
  signerctl --dir DIR admin list

",
    admin_exit_codes!()
);

const POLICY_HELP: &str = concat!(
    "\
Examples:
  # 2 of N admins must approve every change; challenges stay open 30 minutes:
  signerctl --dir DIR admin policy --threshold 2 --challenge-ttl 1800
  # production: only attested YubiKey admins, touch required (the default):
  signerctl --dir DIR admin policy --threshold 2 --require-attestation

",
    admin_exit_codes!()
);

#[derive(Subcommand)]
pub enum AdminCommand {
    /// Admin: enroll a new admin (their key then approves changes).
    ///
    /// NAME is also the identity of the new admin's client certificate (e.g. admin-alice).
    /// With --soft-key-file, a development Ed25519 key (refused when the policy requires
    /// attestation): the file is created with a new random key (mode 0600) if it does not
    /// exist, and recorded in cluster.json as NAME's key so that `--client NAME` approves
    /// with it. With --on-yubikey, a P-256 key is generated in slot 9c of the YubiKey plugged
    /// in here (PIN policy always, touch policy always; this replaces any key in that slot),
    /// and its attestation (slot and device certificates) is sent; the cluster checks it
    /// against Yubico's roots. Needs a signerctl built with --features yubikey.
    #[command(after_help = ADMIN_EXIT_CODES, after_long_help = ENROLL_HELP)]
    Enroll(EnrollArgs),
    /// Admin: remove an admin (the policy's threshold must stay reachable).
    #[command(after_help = ADMIN_EXIT_CODES)]
    Remove(RemoveArgs),
    /// Admin: the enrolled admins, the approval policy, and whether signing is paused.
    #[command(after_help = ADMIN_EXIT_CODES)]
    List,
    /// Admin: replace the approval policy (threshold M of the N admins, attestation, touch,
    /// challenge lifetime).
    ///
    /// The policy is replaced as a whole: a requirement whose flag is absent is not required.
    /// --challenge-ttl defaults to the current lifetime.
    #[command(after_help = ADMIN_EXIT_CODES, after_long_help = POLICY_HELP)]
    Policy(PolicyArgs),
}

#[derive(Args, Debug, Clone)]
#[command(group(
    clap::ArgGroup::new("new_key")
        .required(true)
        .args(["soft_key_file", "on_yubikey"])
))]
pub struct EnrollArgs {
    /// The new admin's name = their client certificate's identity.
    #[arg(long, value_name = "NAME")]
    pub name: String,
    /// Development: the new admin's Ed25519 key file (32-byte seed, hex); created (0600)
    /// with a new random key when missing.
    #[arg(long, value_name = "FILE")]
    pub soft_key_file: Option<PathBuf>,
    /// Generate the new admin's key on the YubiKey plugged in here (slot 9c) and send its
    /// attestation. Not the card you approve with (--yubikey): its slot 9c would be replaced.
    #[arg(long)]
    pub on_yubikey: bool,
    /// With --on-yubikey: the serial of the card to enroll when several are connected.
    #[arg(long, value_name = "SERIAL", requires = "on_yubikey")]
    pub serial: Option<u32>,
    /// With --on-yubikey: a file holding the card's PIV management key as hex (default: the
    /// factory default key).
    #[arg(long, value_name = "FILE", requires = "on_yubikey")]
    pub management_key_file: Option<PathBuf>,
    #[command(flatten)]
    pub propose: ProposeOpts,
}

#[derive(Args, Debug, Clone)]
pub struct RemoveArgs {
    /// The admin to remove.
    #[arg(value_name = "NAME")]
    pub name: String,
    #[command(flatten)]
    pub propose: ProposeOpts,
}

#[derive(Args, Debug, Clone)]
pub struct PolicyArgs {
    /// How many distinct admins must approve each change (M of N).
    #[arg(long, value_name = "M")]
    pub threshold: u32,
    /// Refuse admins without a YubiKey attestation (development keys).
    #[arg(long)]
    pub require_attestation: bool,
    /// Accept attested keys whose touch policy is not "always" (development only).
    #[arg(long)]
    pub no_touch_always: bool,
    /// How long a challenge stays open for approvals, in seconds [default: unchanged].
    #[arg(long, value_name = "SECS")]
    pub challenge_ttl: Option<u64>,
    #[command(flatten)]
    pub propose: ProposeOpts,
}

/// A development key being enrolled: recorded in cluster.json once proposed.
pub struct SoftEnrollment {
    name: String,
    file: PathBuf,
    public_key: Vec<u8>,
}

/// Read `admin …` inputs (key files, the YubiKey enrollment).
pub fn prepare_admin(command: &AdminCommand, approver: Choice) -> Result<Work, Failure> {
    Ok(match command {
        AdminCommand::List => Work::AdminList,
        AdminCommand::Remove(args) => {
            change(Request::RemoveAdmin(args.name.clone()), &args.propose)
        }
        AdminCommand::Policy(args) => {
            if args.threshold == 0 {
                return Err(Failure::new(2, "error: --threshold: at least 1"));
            }
            Work::Policy(args.clone())
        }
        AdminCommand::Enroll(args) => enroll(args, approver)?,
    })
}

fn enroll(args: &EnrollArgs, approver: Choice) -> Result<Work, Failure> {
    if !signer_core::admin::valid_name(&args.name) {
        return Err(Failure::new(
            2,
            "error: --name: 1 to 64 letters, digits, '-', '_' or '.'",
        ));
    }
    let (key, soft) = match &args.soft_key_file {
        Some(file) => {
            let public_key = soft_key(&args.name, file)?;
            let file = std::fs::canonicalize(file)
                .map_err(|e| Failure::new(1, format!("error: {}: {e}", file.display())))?;
            (
                pb::enroll_admin_request::Key::Ed25519PublicKey(public_key.clone()),
                Some(SoftEnrollment {
                    name: args.name.clone(),
                    file,
                    public_key,
                }),
            )
        }
        None => (yubikey_enrollment(args, approver)?, None),
    };
    Ok(Work::Change {
        request: Request::EnrollAdmin(pb::EnrollAdminRequest {
            name: args.name.clone(),
            key: Some(key),
        }),
        no_approve: args.propose.no_approve,
        enrolled_soft_key: soft,
    })
}

/// The public key of the development key in `file`, creating the file (0600, a new random
/// seed) when it does not exist.
fn soft_key(name: &str, file: &Path) -> Result<Vec<u8>, Failure> {
    if !file.exists() {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut seed = zeroize::Zeroizing::new([0u8; 32]);
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(seed.as_mut()))
            .map_err(|e| Failure::new(1, format!("error: reading /dev/urandom: {e}")))?;
        let text = zeroize::Zeroizing::new(format!("{}\n", hex::encode(*seed)));
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(file)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .map_err(|e| Failure::new(1, format!("error: {}: {e}", file.display())))?;
        eprintln!(
            "wrote a new development key for {name} to {} (0600)",
            file.display()
        );
    }
    let soft = SoftApprover::load(name, file)
        .map_err(|e| Failure::new(2, format!("error: --soft-key-file: {e}")))?;
    match soft.public_key() {
        signer_core::admin::ApproverKey::Ed25519(k) => Ok(k),
        other => Err(Failure::new(
            1,
            format!("error: unexpected key {}", other.to_text()),
        )),
    }
}

#[cfg(feature = "yubikey")]
fn yubikey_enrollment(
    args: &EnrollArgs,
    approver: Choice,
) -> Result<pb::enroll_admin_request::Key, Failure> {
    use signerctl::piv;
    if approver.yubikey && (args.serial.is_none() || args.serial == approver.serial) {
        return Err(Failure::new(
            2,
            "error: --on-yubikey with --yubikey: give the serial of the card to enroll \
             (--serial) and of yours (--yubikey-serial); they must differ, since enrolling \
             replaces the card's slot 9c key",
        ));
    }
    let bad = |e: piv::PivError| Failure::new(2, format!("error: --on-yubikey: {e}"));
    let mgmt = match &args.management_key_file {
        Some(file) => {
            let text = zeroize::Zeroizing::new(
                std::fs::read_to_string(file)
                    .map_err(|e| Failure::new(2, format!("error: {}: {e}", file.display())))?,
            );
            Some(zeroize::Zeroizing::new(hex::decode(text.trim()).map_err(
                |_| Failure::new(2, format!("error: {}: expected hex", file.display())),
            )?))
        }
        None => None,
    };
    let mut card = piv::open(args.serial).map_err(bad)?;
    eprintln!(
        "generating {}'s admin key in slot 9c of YubiKey {} (replaces any key there)",
        args.name,
        card.serial()
    );
    let pin = piv::read_pin().map_err(bad)?;
    let enrolled = card
        .generate_admin_key(&pin, mgmt.as_ref(), true)
        .map_err(bad)?;
    Ok(pb::enroll_admin_request::Key::Yubikey(
        pb::YubiKeyAttestation {
            slot_certificate: enrolled.slot_attestation_der,
            device_certificate: enrolled.device_cert_der,
        },
    ))
}

#[cfg(not(feature = "yubikey"))]
fn yubikey_enrollment(
    _args: &EnrollArgs,
    _approver: Choice,
) -> Result<pb::enroll_admin_request::Key, Failure> {
    Err(Failure::new(
        2,
        format!(
            "error: --on-yubikey: {}",
            crate::approver::BUILD_WITH_YUBIKEY
        ),
    ))
}

/// Record a proposed development admin's key file in cluster.json, so `--client NAME`
/// approves with it. Only the `admins` entry changes; a failure is a warning.
pub fn record_soft_key(session: &Session<'_>, soft: &SoftEnrollment) {
    let file = if session.dir.is_dir() {
        session.dir.join(signer_client::DESCRIPTOR_FILE)
    } else {
        session.dir.to_owned()
    };
    let update = || -> Result<(), String> {
        let text = std::fs::read_to_string(&file).map_err(|e| e.to_string())?;
        let mut value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| e.to_string())?;
        let admins = value
            .as_object_mut()
            .ok_or("not a JSON object")?
            .entry("admins")
            .or_insert_with(|| serde_json::json!({}));
        admins
            .as_object_mut()
            .ok_or("`admins` is not an object")?
            .insert(
                soft.name.clone(),
                serde_json::json!({
                    "key": soft.file,
                    "public_key": format!("0x{}", hex::encode(&soft.public_key)),
                }),
            );
        let out = serde_json::to_string_pretty(&value).map_err(|e| e.to_string())? + "\n";
        let tmp = file.with_extension("json.tmp");
        std::fs::write(&tmp, out).map_err(|e| e.to_string())?;
        std::fs::rename(&tmp, &file).map_err(|e| e.to_string())
    };
    match update() {
        Ok(()) if !session.json => signer_client::outln!(
            "recorded {}'s key file in {} (approve as it with --client {})",
            soft.name,
            file.display(),
            soft.name
        ),
        Ok(()) => {}
        Err(e) => eprintln!(
            "warning: could not record {}'s key in {}: {e}",
            soft.name,
            file.display()
        ),
    }
}

/// `admin policy`: the new policy, with the current challenge lifetime by default.
pub async fn policy(session: &Session<'_>, args: &PolicyArgs) -> Result<(), Failure> {
    let ttl_ms = match args.challenge_ttl {
        Some(secs) => secs.saturating_mul(1000),
        None => session
            .pool
            .admin_state()
            .await
            .map_err(|e| session.failure(e))?
            .policy
            .map(|p| p.challenge_ttl_ms)
            .unwrap_or(15 * 60 * 1000),
    };
    let request = Request::SetPolicy(pb::ApprovalPolicy {
        threshold: args.threshold,
        require_attestation: args.require_attestation,
        require_touch_always: !args.no_touch_always,
        challenge_ttl_ms: ttl_ms,
    });
    let proposed = session.propose(request, args.propose.no_approve).await?;
    session.finish(proposed).await
}

/// `admin list`.
pub async fn admin_list(session: &Session<'_>) -> Result<(), Failure> {
    let state = session
        .pool
        .admin_state()
        .await
        .map_err(|e| session.failure(e))?;
    let policy = state.policy.unwrap_or_default();
    if session.json {
        let admins: Vec<_> = state
            .admins
            .iter()
            .map(|a| {
                serde_json::json!({
                    "name": a.name, "key": a.key, "attested": a.attested, "serial": a.serial,
                    "firmware": a.firmware, "pin_policy": a.pin_policy,
                    "touch_policy": a.touch_policy,
                })
            })
            .collect();
        let value = serde_json::json!({
            "cluster_id": state.cluster_id,
            "admins": admins,
            "policy": {
                "threshold": policy.threshold,
                "require_attestation": policy.require_attestation,
                "require_touch_always": policy.require_touch_always,
                "challenge_ttl_ms": policy.challenge_ttl_ms,
            },
            "paused": state.paused,
            "espresso_view_horizon": state.espresso_view_horizon,
        });
        signer_client::outln!("{value}");
        return Ok(());
    }
    signer_client::outln!(
        "cluster {}: {} of {} admin(s) approve each change; attestation {}, touch always {}, \
         challenges open {} s; Espresso view horizon {} views{}",
        state.cluster_id,
        policy.threshold,
        state.admins.len(),
        if policy.require_attestation {
            "required"
        } else {
            "optional"
        },
        if policy.require_touch_always {
            "required"
        } else {
            "optional"
        },
        policy.challenge_ttl_ms / 1000,
        state.espresso_view_horizon,
        if state.paused {
            "; SIGNING IS PAUSED"
        } else {
            ""
        }
    );
    for a in &state.admins {
        let how = if a.attested {
            format!(
                "YubiKey serial {} firmware {} pin {} touch {}",
                a.serial, a.firmware, a.pin_policy, a.touch_policy
            )
        } else {
            "development key".to_owned()
        };
        signer_client::outln!("  {:<16}  {how}  {}", a.name, a.key);
    }
    Ok(())
}
