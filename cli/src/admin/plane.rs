//! `signerctl client grant|revoke|list`, `protection import|export` and
//! `node list|add|remove|replace`.
//!
//! Owns: these commands' arguments and help, their local input (an interchange file) and their
//! output. Must not: judge grants or membership changes (the cluster does: the proposing node,
//! then the leader that carries an approved change out).

use super::{admin_exit_codes, change, ProposeOpts, Session, Work, ADMIN_EXIT_CODES};
use crate::Failure;
use clap::{Args, Subcommand};
use signer_client::pb;
use signer_client::pb::propose_request::Request;
use std::io::Read;
use std::path::PathBuf;

const GRANT_HELP: &str = concat!(
    "\
Examples:
  signerctl --dir DIR client grant seq-9 --keys '*' --profiles eth2
  signerctl --dir DIR client grant seq-2 --keys validator-7,validator-8 \\
      --profiles eth2,espresso --rate 50 --burst 100
  signerctl --dir DIR client list

",
    admin_exit_codes!()
);

#[derive(Subcommand)]
pub enum ClientCommand {
    /// Admin: let a client identity sign with some keys and profiles, optionally rate
    /// limited (replaces its previous grant).
    ///
    /// IDENTITY is the sequencer's client-certificate identity. The rate limit is a token
    /// bucket on every node: --rate requests per second sustained, --burst at once
    /// (default: the rate). Without --rate, unlimited.
    #[command(after_help = ADMIN_EXIT_CODES, after_long_help = GRANT_HELP)]
    Grant(GrantArgs),
    /// Admin: remove a client identity's grant (it can no longer sign).
    #[command(after_help = ADMIN_EXIT_CODES)]
    Revoke(RevokeArgs),
    /// Admin: every client grant: keys, profiles, rate limit.
    #[command(after_help = ADMIN_EXIT_CODES)]
    List,
}

#[derive(Args, Debug, Clone)]
pub struct GrantArgs {
    /// The client identity (certificate identity, e.g. seq-2).
    #[arg(value_name = "IDENTITY")]
    pub identity: String,
    /// Key ids it may use, comma-separated, or '*' for every key (quote it in the shell).
    #[arg(long, value_name = "KEYS", value_delimiter = ',', required = true)]
    pub keys: Vec<String>,
    /// Profiles it may sign, comma-separated: eth2, espresso.
    #[arg(long, value_name = "PROFILES", value_delimiter = ',', required = true)]
    pub profiles: Vec<String>,
    /// Sustained requests per second (every node enforces it) [default: unlimited].
    #[arg(long, value_name = "N")]
    pub rate: Option<u32>,
    /// Largest burst of requests [default: the rate].
    #[arg(long, value_name = "B", requires = "rate")]
    pub burst: Option<u32>,
    /// Trust this client to send eth2 signing roots it computed itself instead of typed
    /// messages. The client then chooses what gets signed and only the slot or epochs it
    /// states are checked: grant it only to a validator client you trust as much as the key.
    #[arg(long)]
    pub raw_roots: bool,
    #[command(flatten)]
    pub propose: ProposeOpts,
}

#[derive(Args, Debug, Clone)]
pub struct RevokeArgs {
    /// The client identity.
    #[arg(value_name = "IDENTITY")]
    pub identity: String,
    #[command(flatten)]
    pub propose: ProposeOpts,
}

#[derive(Subcommand)]
pub enum ProtectionCommand {
    /// Admin: import an EIP-3076 slashing-protection interchange file (watermarks only go
    /// up; an approved action).
    ///
    /// Use it when moving validators from another signer, before their keys sign here. The
    /// file must be for this cluster's network (genesis_validators_root). A file that is
    /// slashable on its own is refused unless --minify, which keeps only each validator's
    /// maxima.
    #[command(after_help = ADMIN_EXIT_CODES)]
    Import(ImportProtectionArgs),
    /// Admin: export the eth2 slashing-protection records as an EIP-3076 interchange
    /// document (stdout, or --out FILE).
    #[command(after_help = ADMIN_EXIT_CODES)]
    Export(ExportArgs),
    /// Admin: set the Espresso view horizon (an approved action; `signerctl admin list` shows
    /// the current one).
    ///
    /// A DA vote, DA or quorum proposal, upgrade vote or proposal, or VID disperse more than
    /// VIEWS views above the key's last quorum, timeout or view-sync vote is refused
    /// (`beyond_view_horizon`), so a far-future leader cannot push the key's DA window past
    /// the views it votes in. A new cluster has 32, the largest allowed (half the 64-view
    /// window). Lower it to refuse more; a sequencer that restarts after downtime then waits
    /// for its first vote at the network's view before it proposes or DA-votes again.
    #[command(name = "espresso-horizon", after_help = ADMIN_EXIT_CODES)]
    EspressoHorizon(EspressoHorizonArgs),
}

#[derive(Args, Debug, Clone)]
pub struct EspressoHorizonArgs {
    /// The horizon, in views (1 to 32).
    #[arg(value_name = "VIEWS", value_parser = clap::value_parser!(u64).range(1..=32))]
    pub views: u64,
    #[command(flatten)]
    pub propose: ProposeOpts,
}

#[derive(Args, Debug, Clone)]
pub struct ImportProtectionArgs {
    /// The interchange file (JSON); `-` reads standard input.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Import a file that is slashable on its own, keeping only its maxima.
    #[arg(long)]
    pub minify: bool,
    #[command(flatten)]
    pub propose: ProposeOpts,
}

#[derive(Args, Debug, Clone)]
pub struct ExportArgs {
    /// Write the document to FILE (created or replaced) instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum NodeCommand {
    /// The cluster's members (Raft voters) and how each node answers.
    List,
    /// Admin: add a node (an approved action). Start the node first (its certificate names
    /// NAME, its config lists the peers); once approved, the leader adds it as a learner,
    /// waits until it has caught up (snapshot and log), then makes it a voter. Waits for
    /// that and prints the outcome.
    #[command(after_help = ADMIN_EXIT_CODES)]
    Add(AddNodeArgs),
    /// Admin: remove a voter (an approved action). Refused when fewer than 3 voters would
    /// remain, or fewer than a majority of the rest are caught up. Its name can never rejoin.
    #[command(after_help = ADMIN_EXIT_CODES)]
    Remove(RemoveNodeArgs),
    /// Admin: replace a (dead) voter by a new node in one approved action: the new node joins
    /// as a learner, catches up, then one joint change swaps them. OLD can never rejoin.
    #[command(after_help = ADMIN_EXIT_CODES)]
    Replace(ReplaceNodeArgs),
}

#[derive(Args, Debug, Clone)]
pub struct AddNodeArgs {
    /// The new node's name, `node-N` (as its certificate names it).
    #[arg(value_name = "NAME")]
    pub name: String,
    /// Where clients reach it.
    #[arg(long, value_name = "HOST:CLIENT_PORT")]
    pub addr: String,
    /// Where peers reach it (Raft).
    #[arg(long, value_name = "HOST:PEER_PORT")]
    pub peer_addr: String,
    #[command(flatten)]
    pub propose: ProposeOpts,
}

#[derive(Args, Debug, Clone)]
pub struct RemoveNodeArgs {
    /// The voter to remove, `node-N`.
    #[arg(value_name = "NAME")]
    pub name: String,
    #[command(flatten)]
    pub propose: ProposeOpts,
}

#[derive(Args, Debug, Clone)]
pub struct ReplaceNodeArgs {
    /// The voter to replace, `node-N`.
    #[arg(value_name = "OLD")]
    pub old: String,
    /// The new node's name, `node-M`.
    #[arg(long = "with", value_name = "NEW")]
    pub with: String,
    /// Where clients reach the new node.
    #[arg(long, value_name = "HOST:CLIENT_PORT")]
    pub addr: String,
    /// Where peers reach the new node (Raft).
    #[arg(long, value_name = "HOST:PEER_PORT")]
    pub peer_addr: String,
    #[command(flatten)]
    pub propose: ProposeOpts,
}

/// `node-N` as its id, or a usage failure.
fn node_id(name: &str) -> Result<u64, Failure> {
    signer_core::admin::membership::parse_node_name(name)
        .map_err(|e| Failure::new(crate::exit::USAGE, format!("error: {e}")))
}

/// Read `client …` inputs.
pub fn prepare_client(command: &ClientCommand) -> Result<Work, Failure> {
    Ok(match command {
        ClientCommand::List => Work::ClientList,
        ClientCommand::Revoke(args) => {
            change(Request::RevokeClient(args.identity.clone()), &args.propose)
        }
        ClientCommand::Grant(args) => {
            for p in &args.profiles {
                if p.parse::<signer_core::protection::Profile>().is_err() {
                    return Err(Failure::new(
                        2,
                        format!("error: --profiles: unknown profile {p:?} (eth2, espresso)"),
                    ));
                }
            }
            let rate = args.rate.unwrap_or(0);
            change(
                Request::GrantClient(pb::ClientGrant {
                    identity: args.identity.clone(),
                    keys: args.keys.clone(),
                    profiles: args.profiles.clone(),
                    rate_per_second: rate,
                    rate_burst: args.burst.unwrap_or(rate),
                    raw_roots: args.raw_roots,
                }),
                &args.propose,
            )
        }
    })
}

/// Read `protection …` inputs (the interchange file).
pub fn prepare_protection(command: &ProtectionCommand) -> Result<Work, Failure> {
    Ok(match command {
        ProtectionCommand::Export(args) => Work::ExportProtection(args.clone()),
        ProtectionCommand::EspressoHorizon(args) => {
            change(Request::SetEspressoViewHorizon(args.views), &args.propose)
        }
        ProtectionCommand::Import(args) => {
            let mut text = String::new();
            let read = if args.file.as_os_str() == "-" {
                std::io::stdin().read_to_string(&mut text).map(drop)
            } else {
                std::fs::read_to_string(&args.file).map(|t| text = t)
            };
            read.map_err(|e| Failure::new(2, format!("error: {}: {e}", args.file.display())))?;
            change(
                Request::ImportProtection(pb::ImportProtectionRequest {
                    interchange_json: text,
                    minify: args.minify,
                }),
                &args.propose,
            )
        }
    })
}

/// `node …`.
pub fn prepare_node(command: &NodeCommand) -> Result<Work, Failure> {
    let member = |name: &str, addr: &str, peer_addr: &str| -> Result<pb::NodeMember, Failure> {
        Ok(pb::NodeMember {
            node_id: node_id(name)?,
            client_addr: addr.to_owned(),
            peer_addr: peer_addr.to_owned(),
        })
    };
    Ok(match command {
        NodeCommand::List => Work::NodeList,
        NodeCommand::Add(a) => change(
            Request::AddNode(member(&a.name, &a.addr, &a.peer_addr)?),
            &a.propose,
        ),
        NodeCommand::Remove(a) => change(Request::RemoveNode(node_id(&a.name)?), &a.propose),
        NodeCommand::Replace(a) => change(
            Request::ReplaceNode(pb::ReplaceNodeAction {
                old_node_id: node_id(&a.old)?,
                with: Some(member(&a.with, &a.addr, &a.peer_addr)?),
            }),
            &a.propose,
        ),
    })
}

/// `client list`.
pub async fn client_list(session: &Session<'_>) -> Result<(), Failure> {
    let state = session
        .pool
        .admin_state()
        .await
        .map_err(|e| session.failure(e))?;
    let rate = |c: &pb::ClientGrant| {
        if c.rate_per_second == 0 {
            "unlimited".to_owned()
        } else {
            format!("{}/s burst {}", c.rate_per_second, c.rate_burst)
        }
    };
    if session.json {
        let list: Vec<_> = state
            .clients
            .iter()
            .map(|c| {
                serde_json::json!({
                    "identity": c.identity, "keys": c.keys, "profiles": c.profiles,
                    "rate_per_second": c.rate_per_second, "rate_burst": c.rate_burst,
                })
            })
            .collect();
        signer_client::outln!("{}", serde_json::Value::Array(list));
        return Ok(());
    }
    if state.clients.is_empty() {
        signer_client::outln!("no client may sign (grant access with `signerctl client grant`)");
        return Ok(());
    }
    let width = state
        .clients
        .iter()
        .map(|c| c.identity.len())
        .max()
        .unwrap_or(0)
        .max(8);
    signer_client::outln!(
        "{:<width$}  {:<20}  {:<16}  KEYS",
        "IDENTITY",
        "RATE",
        "PROFILES"
    );
    for c in &state.clients {
        signer_client::outln!(
            "{:<width$}  {:<20}  {:<16}  {}",
            c.identity,
            rate(c),
            c.profiles.join(","),
            c.keys.join(",")
        );
    }
    Ok(())
}

/// `protection export`.
pub async fn export_protection(session: &Session<'_>, args: &ExportArgs) -> Result<(), Failure> {
    let doc = session
        .pool
        .export_protection()
        .await
        .map_err(|e| session.failure(e))?;
    match &args.out {
        Some(file) => {
            std::fs::write(file, format!("{doc}\n"))
                .map_err(|e| Failure::new(1, format!("error: {}: {e}", file.display())))?;
            if session.json {
                signer_client::outln!("{}", serde_json::json!({ "out": file, "bytes": doc.len() }));
            } else {
                signer_client::outln!(
                    "wrote the interchange document ({} bytes) to {}",
                    doc.len(),
                    file.display()
                );
            }
        }
        None => signer_client::outln!("{doc}"),
    }
    Ok(())
}

/// `node list`: the voters as the nodes report them.
pub async fn node_list(session: &Session<'_>) -> Result<(), Failure> {
    let statuses = session.pool.cluster_statuses().await;
    let Some(seen) = statuses.iter().find_map(|(_, s)| s.as_ref().ok()) else {
        return Err(Failure::new(4, "unavailable: no node answered"));
    };
    let voters = seen.voters.clone();
    let leader = statuses
        .iter()
        .filter_map(|(_, s)| s.as_ref().ok())
        .map(|s| s.leader_id)
        .find(|&l| l != 0)
        .unwrap_or(0);
    let nodes: Vec<_> = session
        .descriptor
        .nodes
        .iter()
        .map(|n| {
            let answered = statuses.iter().any(|(id, s)| *id == n.id && s.is_ok());
            (n, voters.contains(&n.id), answered)
        })
        .collect();
    if session.json {
        let list: Vec<_> = nodes
            .iter()
            .map(|(n, voter, answered)| {
                serde_json::json!({
                    "node_id": n.id, "client_addr": n.client_addr.to_string(),
                    "peer_addr": n.peer_addr.to_string(), "voter": voter,
                    "leader": n.id == leader, "answered": answered,
                })
            })
            .collect();
        signer_client::outln!(
            "{}",
            serde_json::json!({ "voters": voters, "leader_id": leader, "nodes": list })
        );
        return Ok(());
    }
    signer_client::outln!("members (Raft voters): {voters:?}");
    for (n, voter, answered) in &nodes {
        signer_client::outln!(
            "  node-{}  client {}  peer {}  {}{}{}",
            n.id,
            n.client_addr,
            n.peer_addr,
            if *voter { "voter" } else { "not a voter" },
            if n.id == leader { ", leader" } else { "" },
            if *answered { "" } else { ", not answering" }
        );
    }
    Ok(())
}
