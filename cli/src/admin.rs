//! `signerctl`'s admin commands: key lifecycle, KEK rotation, the M-of-N approval flow
//! (`approve`, `pending`), admins and policy, client grants, certificate revocation (`cert`),
//! slashing-protection import and export, pause and resume, and the cluster's members
//! (read-only: membership changes are not built).
//!
//! Every change is proposed as a challenge that enrolled admins approve; `signerctl` proposes
//! and, unless `--no-approve`, approves with the caller's key at once. Owns: these commands'
//! arguments and help ([`keys`], [`admins`], [`plane`], [`certs`], [`flow`]), reading their
//! inputs before any network use ([`prepare`]), and running them ([`run`]). Must not: decide
//! lifecycle or approval rules (the cluster does, through Raft), or read secrets itself
//! ([`crate::input`] does).

mod admins;
mod certs;
mod flow;
mod keys;
mod plane;

pub use flow::Session;

use crate::Failure;
use clap::{Args, Subcommand};
use signer_client::pb;

/// The admin commands' exit codes, as a literal for `concat!`.
macro_rules! admin_exit_codes {
    () => {
        concat!(
            "\
Admin commands authenticate as client admin-1 unless --client names another admin-… identity,
and approve with that admin's development key from cluster.json, or with --yubikey.
`propose` is any changing command with --no-approve: it only opens the challenge (exit 6).
`kek rotate` exits 1 when keys remain under an old KEK.

",
            crate::exit::exit_code_table!()
        )
    };
}
pub(crate) use admin_exit_codes;

/// Exit codes of the admin commands.
pub const ADMIN_EXIT_CODES: &str = admin_exit_codes!();

/// `--no-approve`, for every command that changes something.
#[derive(Args, Debug, Clone, Default)]
pub struct ProposeOpts {
    /// Only propose: open the challenge and print it, without approving it with your key
    /// (exits 6: pending). Other admins then run `signerctl approve <id>`.
    #[arg(long)]
    pub no_approve: bool,
}

/// The admin commands (flattened into `signerctl`'s command list).
#[derive(Subcommand)]
pub enum Command {
    /// The cluster's validator keys: list them, and (as an admin) generate, import, enable,
    /// disable and delete them.
    #[command(subcommand)]
    Key(keys::KeyCommand),
    /// The key-encryption key (KEK) that seals the registry's keys.
    #[command(subcommand)]
    Kek(keys::KekCommand),
    /// Admin: approve an open challenge with your key (M-of-N).
    ///
    /// Fetches the challenge, decodes its action from the bytes and recomputes its digest
    /// (the node's own description is not trusted), shows both, and asks `approve? [y/N]` on a
    /// terminal unless --yes (without a terminal, --yes is required). The approval signs a
    /// statement binding this cluster, the challenge, the action digest and the expiry. The
    /// approval that reaches the policy's threshold executes the action.
    #[command(after_help = ADMIN_EXIT_CODES, after_long_help = flow::APPROVE_HELP)]
    Approve(flow::ApproveArgs),
    /// Admin: the open challenges (with --all, also decided and expired ones).
    #[command(after_help = ADMIN_EXIT_CODES)]
    Pending(flow::PendingArgs),
    /// Admin: the admins who approve changes, and the approval policy (M of N).
    #[command(subcommand)]
    Admin(admins::AdminCommand),
    /// Admin: which client (sequencer) identities may sign with which keys, and how fast.
    #[command(subcommand)]
    Client(plane::ClientCommand),
    /// Admin: revoke client (or node) certificates, and list the revoked ones. Certificates
    /// are issued by `signer pki issue`, where the CA key is kept.
    #[command(subcommand)]
    Cert(certs::CertCommand),
    /// Admin: import or export eth2 slashing-protection records (EIP-3076 interchange).
    #[command(subcommand)]
    Protection(plane::ProtectionCommand),
    /// Admin: stop all signing on every node until `resume` (an approved action).
    ///
    /// Every sign request is then refused at once with code `paused` ("signing is paused by
    /// the admins"; signerctl sign exits 3), recorded once in the audit log; clients do not
    /// retry it.
    #[command(after_help = ADMIN_EXIT_CODES)]
    Pause(ProposeOpts),
    /// Admin: let the cluster sign again after `pause` (an approved action).
    #[command(after_help = ADMIN_EXIT_CODES)]
    Resume(ProposeOpts),
    /// The cluster's members (voters). Membership changes are not built yet (no command).
    #[command(subcommand)]
    Node(plane::NodeCommand),
    /// Admin: drop audit records up to SEQ from every node (an approved action).
    ///
    /// Export them first (`signerctl audit export --jsonl`): the cluster keeps the hash of the
    /// last dropped record as the chain's anchor, so the kept records and the export both
    /// still verify. SEQ must be above the current anchor and below the head.
    #[command(name = "audit-compact", after_help = ADMIN_EXIT_CODES)]
    AuditCompact(AuditCompactArgs),
}

/// `signerctl audit-compact`.
#[derive(Args)]
pub struct AuditCompactArgs {
    /// The last record to drop.
    #[arg(long = "up-to", value_name = "SEQ")]
    pub up_to: u64,
    #[command(flatten)]
    pub opts: ProposeOpts,
}

impl Command {
    /// Whether the command needs an admin identity (default client `admin-1`).
    pub fn is_admin(&self) -> bool {
        !matches!(
            self,
            Command::Key(keys::KeyCommand::List) | Command::Node(plane::NodeCommand::List)
        )
    }
}

/// A command with its inputs read (files, secrets, confirmations), ready to run.
pub enum Work {
    /// A change: propose it (and approve it unless `no_approve`).
    Change {
        /// The proposal.
        request: pb::propose_request::Request,
        /// Only propose.
        no_approve: bool,
        /// Local follow-up once proposed (e.g. record a new soft key in cluster.json).
        enrolled_soft_key: Option<admins::SoftEnrollment>,
    },
    /// `approve`.
    Approve(flow::ApproveArgs),
    /// `pending`.
    Pending {
        /// Include decided challenges.
        all: bool,
    },
    /// `key list` (the Signer service).
    KeyList,
    /// `key registry`.
    Registry,
    /// `admin list`.
    AdminList,
    /// `client list`.
    ClientList,
    /// `cert list`.
    CertList,
    /// `protection export`.
    ExportProtection(plane::ExportArgs),
    /// `admin policy` (needs the current policy for the defaults).
    Policy(admins::PolicyArgs),
    /// `node list`.
    NodeList,
}

/// A change proposed with `opts`.
fn change(request: pb::propose_request::Request, opts: &ProposeOpts) -> Work {
    Work::Change {
        request,
        no_approve: opts.no_approve,
        enrolled_soft_key: None,
    }
}

/// Read the command's inputs before any network use. `approver` is the caller's approver
/// choice (`admin enroll --on-yubikey` must not use the same card).
pub fn prepare(command: &Command, approver: crate::approver::Choice) -> Result<Work, Failure> {
    Ok(match command {
        Command::Key(k) => keys::prepare(k)?,
        Command::Kek(keys::KekCommand::Rotate(opts)) => change(
            pb::propose_request::Request::RotateKek(pb::RotateKekRequest {}),
            opts,
        ),
        Command::Approve(args) => Work::Approve(args.clone()),
        Command::Pending(args) => Work::Pending { all: args.all },
        Command::Admin(c) => admins::prepare_admin(c, approver)?,
        Command::Client(c) => plane::prepare_client(c)?,
        Command::Cert(c) => certs::prepare(c)?,
        Command::Protection(c) => plane::prepare_protection(c)?,
        Command::Pause(opts) => change(
            pb::propose_request::Request::Pause(pb::PauseRequest {}),
            opts,
        ),
        Command::Resume(opts) => change(
            pb::propose_request::Request::Resume(pb::ResumeRequest {}),
            opts,
        ),
        Command::Node(c) => plane::prepare_node(c)?,
        Command::AuditCompact(args) => change(
            pb::propose_request::Request::CompactAudit(args.up_to),
            &args.opts,
        ),
    })
}

/// Run prepared work in `session`.
pub async fn run(session: &Session<'_>, work: Work) -> Result<(), Failure> {
    match work {
        Work::Change {
            request,
            no_approve,
            enrolled_soft_key,
        } => {
            let rotate = matches!(request, pb::propose_request::Request::RotateKek(_));
            let proposed = match session.propose(request, no_approve).await {
                Err(f) if rotate => return keys::nothing_to_rewrap(f, session.json),
                other => other?,
            };
            if let Some(soft) = enrolled_soft_key {
                admins::record_soft_key(session, &soft);
            }
            session.finish(proposed).await
        }
        Work::Approve(args) => session.approve_command(&args).await,
        Work::Pending { all } => session.pending(all).await,
        Work::KeyList => crate::inspect::key_list(session.pool, session.json).await,
        Work::Registry => keys::registry(session).await,
        Work::AdminList => admins::admin_list(session).await,
        Work::ClientList => plane::client_list(session).await,
        Work::CertList => certs::list(session).await,
        Work::ExportProtection(args) => plane::export_protection(session, &args).await,
        Work::Policy(args) => admins::policy(session, &args).await,
        Work::NodeList => plane::node_list(session).await,
    }
}
