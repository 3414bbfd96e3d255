//! `signerctl`: the Quorum Signer operator and admin client.
//!
//! Owns: the command line of operators, admins and auditors. Must not: hold protection logic.
//! This first version only reports what it is; its commands arrive with the node's Admin and
//! Signer services.

use clap::Parser;

/// Operator, admin and auditor client for a Quorum Signer cluster.
///
/// The cluster services it talks to (Signer, Admin, audit) are not built yet, so this build
/// has no subcommands; use the `signer` binary's offline tools meanwhile.
#[derive(Parser)]
#[command(name = "signerctl", version, about, long_about)]
struct Cli {}

fn main() {
    let _ = Cli::parse();
    println!(
        "signerctl {}: no cluster commands in this build yet (see `signer --help`)",
        env!("CARGO_PKG_VERSION")
    );
}
