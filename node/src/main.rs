//! The `signer` binary: the node, the dev cluster, the demo and benchmark, and offline tools
//! over the protection core and the signing schemes.
//!
//! Owns: argument parsing, reading files, printing results and exit codes. Must not: contain
//! protection or signing logic (it calls the library), print secret keys, or take secrets from
//! the command line (they come from files).

#![forbid(unsafe_code)]

mod cmd;

/// mimalloc instead of glibc's malloc: under load, glibc's allocator (malloc, free and their
/// consolidation) took about 9% of a node's CPU in `signer bench` profiles.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use signer_node::bytes::FixedBytes;
use signer_node::protection::ethereum::Eth2State;
use signer_node::protection::interchange::{self, ImportPolicy};
use signer_node::scheme::{bls12_381, bn254};
use std::path::PathBuf;
use std::process::ExitCode;
use zeroize::Zeroizing;

/// `signer init --help`: an example, as it is typed.
const INIT_EXAMPLE: &str = "\
Example for three hosts, keys wrapped by AWS KMS, two of three YubiKey admins to approve:
  signer init --dir prod --cluster-id espresso-main \\
    --node 1=10.0.0.1:7100,10.0.0.1:7101 --node 2=10.0.0.2:7100,10.0.0.2:7101 \\
    --node 3=10.0.0.3:7100,10.0.0.3:7101 \\
    --kms-key-id alias/quorum-signer --kms-region eu-west-1 \\
    --admin alice=alice-9c.der,alice-f9.der --admin bob=bob-9c.der,bob-f9.der \\
    --admin carol=carol-9c.der,carol-f9.der --threshold 2
Then copy prod/hosts/node-<id>/ to each host and follow its INSTALL.md. Get a card's
certificates with `ykman piv keys generate --touch-policy always 9c -`, `ykman piv keys
attest 9c alice-9c.pem` and `ykman piv certificates export f9 alice-f9.pem` (convert to DER
with `openssl x509 -outform der`).";

/// Quorum Signer: a slashing-protected remote signer for validator keys.
///
/// A small Raft cluster (3 or 5 nodes) serves `signer.v1.Signer` over mutual TLS and signs only
/// after the slashing-protection watermark that allows a signature is committed by a quorum.
/// Try `signer demo` for the whole story, `signer dev-cluster up --dir DIR` for a local
/// cluster to sign against with `signerctl`, and `signer node --config FILE` to run a node.
#[derive(Parser)]
#[command(name = "signer", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a signer node (one member of the Raft cluster) until SIGINT/SIGTERM.
    ///
    /// Serves signer.v1.Signer on `client_listen` and the Raft peer API on `peer_listen`,
    /// both over mutual TLS. Logs go to stderr (RUST_LOG filters, e.g. RUST_LOG=debug).
    ///
    /// The node binds its addresses itself, unless it is handed listening sockets: under
    /// systemd socket activation (LISTEN_PID and LISTEN_FDS set for this process, e.g. a
    /// .socket unit with one ListenStream= per address) or with --listen-fd. An inherited
    /// socket serves the configured address equal to its local address; one that matches no
    /// configured address stops the start with an error.
    Node {
        /// The node's TOML configuration (see `signer dev-cluster up` for generated examples).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Log as one JSON object per line (for log shippers) instead of text.
        #[arg(long)]
        log_json: bool,
        /// Serve on the listening TCP socket inherited as file descriptor FD instead of
        /// binding: it takes the place of whichever of client_listen, peer_listen,
        /// metrics_listen and [web3signer] listen equals its local address (repeatable).
        #[arg(long = "listen-fd", value_name = "FD")]
        listen_fds: Vec<i32>,
    },
    /// Write a new cluster's directory: PKI, node configs, key files, cluster.json.
    ///
    /// Nothing is started. `--key` is for development only: it writes the key's secret in
    /// plaintext to every node's keys/ directory. In production, add a KMS `kek` to every
    /// node.toml and generate or import keys in the cluster (`signerctl key generate|import`),
    /// sealed under the KEK.
    #[command(after_long_help = INIT_EXAMPLE)]
    Init {
        /// The directory to create (must not exist).
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// The cluster's name (default: a random dev-… name).
        #[arg(long)]
        cluster_id: Option<String>,
        /// A node as ID=CLIENT_ADDR,PEER_ADDR (repeat for each node; the first bootstraps).
        #[arg(long = "node", value_name = "SPEC", required = true, value_parser = cmd::init::parse_node)]
        nodes: Vec<signer_node::client::NodeEndpoint>,
        /// Development only: a validator key to generate as KEY_ID:PROFILE (repeatable;
        /// profile eth2 or espresso), written in plaintext (mode 0600) to every node.
        #[arg(long = "key", value_name = "SPEC", value_parser = cmd::init::parse_key)]
        keys: Vec<(String, signer_node::protection::Profile)>,
        /// The AWS KMS key (id, ARN or alias) that wraps every registry key, on every node.
        #[arg(long, value_name = "KEY_ID", conflicts_with = "local_kek")]
        kms_key_id: Option<String>,
        /// The KMS key's AWS region (default: the hosts' AWS configuration).
        #[arg(long, value_name = "REGION", requires = "kms_key_id")]
        kms_region: Option<String>,
        /// A KMS endpoint URL (a VPC endpoint; a local KMS in tests).
        #[arg(long, value_name = "URL", requires = "kms_key_id")]
        kms_endpoint_url: Option<String>,
        /// Development only: a new local KEK file, copied to every host (it decrypts every
        /// registry key).
        #[arg(long)]
        local_kek: bool,
        /// A first admin by YubiKey attestation, as NAME=SLOT_CERT.der,DEVICE_CERT.der (the
        /// slot 9c and device f9 certificates; repeat per admin). Replaces the development
        /// admin-1 key, requires attestation from the start, and issues NAME a client
        /// certificate.
        #[arg(long = "admin", value_name = "SPEC", value_parser = cmd::init::parse_admin)]
        admins: Vec<cmd::init::AttestedAdmin>,
        /// Approvals every admin action needs (default: a majority of the --admin admins).
        #[arg(long, value_name = "M")]
        threshold: Option<u32>,
        /// A further trusted attestation root (PEM), besides Yubico's (repeatable).
        #[arg(long = "attestation-root", value_name = "PEM")]
        attestation_roots: Vec<PathBuf>,
        /// Where the host bundles' files are installed: the root of each host ("/"), or a
        /// directory per node with {id} in it (several nodes on one machine).
        #[arg(long, value_name = "DIR", default_value = "/")]
        install_root: String,
        /// Where the `signer` binary is installed on the hosts (the unit's ExecStart).
        #[arg(long, value_name = "PATH", default_value = "/usr/local/bin/signer")]
        signer_path: PathBuf,
    },
    /// Write the files one more host needs to join a cluster made by `signer init`.
    ///
    /// Issues a node-ID certificate from the cluster CA in DIR/pki (run where the CA key is
    /// kept), writes DIR/node-ID/node.toml (every peer plus this node, bootstrap = false),
    /// the host bundle DIR/hosts/node-ID/ (see its INSTALL.md) and the node's entry in
    /// cluster.json. Nothing is started and the membership does not change: install and start
    /// the node, then an admin proposes `signerctl node add node-ID --addr CLIENT_ADDR
    /// --peer-addr PEER_ADDR` (or `node replace OLD --with node-ID …` for a dead node) and the
    /// approvals make it a member.
    AddNode {
        /// The cluster directory `signer init` wrote.
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// The new node as ID=CLIENT_ADDR,PEER_ADDR (a new id: removed ids never rejoin).
        #[arg(long = "node", value_name = "SPEC", value_parser = cmd::init::parse_node)]
        node: signer_node::client::NodeEndpoint,
        /// Where the bundle's files are installed (as for `signer init`).
        #[arg(long, value_name = "DIR", default_value = "/")]
        install_root: String,
        /// Where the `signer` binary is installed on the host (the unit's ExecStart).
        #[arg(long, value_name = "PATH", default_value = "/usr/local/bin/signer")]
        signer_path: PathBuf,
    },
    /// Measure what a signer's user asks of its speed, in one run on this machine.
    ///
    /// closed: three nodes inside this process (loopback, mutual TLS, fsync on) sign with each
    /// --clients level of concurrent clients (each with its own key, always new data), with 8
    /// clients sending SignBatch calls of 32, and for eth2 over the Web3Signer-compatible REST
    /// path (one keep-alive HTTPS connection per client, ATTESTATION bodies); signs/s and
    /// p50/p99/p99.9 latency next to raw in-process signing of the same scheme on the same
    /// cores, measured just before and just after each row. open: requests offered at half of
    /// raw capacity (measured just before), latency counted from each
    /// request's scheduled send time. failover: three `signer node` processes, the leader
    /// SIGKILLed --kills times under load, time to the next signature. keys: --keys registry
    /// keys generated and sealed under a local KEK, and again under an AWS KMS key (a local
    /// moto_server, --moto-server; skipped with a note when it is not installed), every node
    /// restarted, time until every node holds them all (with each node's keyring cache, and
    /// again cold, the cache files deleted), memory, one key's latency before, and
    /// after against a second cluster of only the demo keys signing alternately with it (the
    /// extra latency the keys cost, measured side by side so that this machine's drift affects
    /// both alike). import: a --keys validator EIP-3076 file imported as an approved action.
    ///
    /// Example: signer bench --seconds 4 --clients 1,64,256 --json > bench.json
    Bench {
        /// Seconds per measurement.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        /// Concurrency levels to measure (comma-separated).
        #[arg(long, value_delimiter = ',', default_value = "1,64")]
        clients: Vec<usize>,
        /// Profiles to measure (comma-separated): eth2, espresso.
        #[arg(long, value_delimiter = ',', default_value = "eth2,espresso")]
        profiles: Vec<signer_node::protection::Profile>,
        /// Parts to run (comma-separated): closed, open, failover, keys, import.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "closed,open,failover,keys,import"
        )]
        parts: Vec<cmd::bench::Part>,
        /// Leader kills of the failover part.
        #[arg(long, default_value_t = 5)]
        kills: usize,
        /// Registry keys of the keys part and validators of the import part.
        #[arg(long, default_value_t = 10_000)]
        keys: usize,
        /// KEKs the keys part seals under (comma-separated): local, aws-kms.
        #[arg(long, value_delimiter = ',', default_value = "local,aws-kms")]
        keys_keks: Vec<cmd::bench::KeysKek>,
        /// The moto_server executable (the local AWS KMS) for the keys part's aws-kms run;
        /// `./test.sh` installs it in .venv.
        #[arg(long, value_name = "PATH")]
        moto_server: Option<std::path::PathBuf>,
        /// Print the results as JSON on stdout (progress and the table go to stderr).
        #[arg(long)]
        json: bool,
    },
    /// A development cluster on 127.0.0.1 in one directory: up, down, restart one node, kill-leader, status.
    #[command(subcommand)]
    DevCluster(cmd::dev_cluster::DevClusterCommand),
    /// The cluster PKI: issue a client certificate for a new identity (run where the CA key
    /// is kept, never on a node).
    #[command(subcommand)]
    Pki(cmd::pki::PkiCommand),
    /// Tell the story end to end: a 3-node dev cluster signs, refuses a double sign, loses its
    /// leader to SIGKILL, resumes signing on a new leader and still refuses the double sign.
    ///
    /// Prints each step with its timings and exits 1 if any step does not behave as told, so it
    /// doubles as a smoke test. The cluster runs in a temporary directory on free loopback ports
    /// and is taken down at the end, also on errors and Ctrl-C.
    Demo(cmd::demo::DemoArgs),
    /// Seed the bootstrapping node of a new cluster with a backup (`signerctl backup`),
    /// offline, before its first start.
    ///
    /// Verifies the file's digest and format; refuses another cluster id, a node whose config
    /// has bootstrap = false, a data directory that is not empty, and any member of the
    /// backed-up cluster (or another member of the new one) that accepts a connection on its
    /// peer address. The restored cluster refuses, for every key, everything at or below the
    /// backup's highest eth2 epoch plus --eth2-margin-epochs and highest Espresso view plus
    /// --espresso-margin-views (docs/DESIGN.md, "Backup and restore"). Start the other members
    /// with empty data directories afterwards: they receive the state from this node.
    Restore {
        /// The backup file (`signerctl backup --out FILE`).
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// The node.toml of the new cluster's bootstrapping node (its data_dir is written).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// eth2 epochs above the backup's highest epoch that stay refused: must cover every
        /// epoch the backed-up cluster may have signed after the backup was taken.
        #[arg(long, value_name = "N", default_value_t = cmd::restore::DEFAULT_ETH2_MARGIN_EPOCHS)]
        eth2_margin_epochs: u64,
        /// Espresso views above the backup's highest view that stay refused.
        #[arg(long, value_name = "N", default_value_t = cmd::restore::DEFAULT_ESPRESSO_MARGIN_VIEWS)]
        espresso_margin_views: u64,
    },
    /// Slashing-protection history (EIP-3076 interchange files).
    #[command(subcommand)]
    Protection(ProtectionCommand),
    /// Validator keys: derive public keys, generate keys.
    #[command(subcommand)]
    Key(KeyCommand),
}

#[derive(Subcommand)]
enum ProtectionCommand {
    /// Validate an interchange file and summarize it, as an import would see it.
    ///
    /// Exits 0 when the file would import, 1 when it would be refused (the reason names the
    /// field or the conflicting records). Slashable files are refused unless
    /// --allow-slashable is given, in which case only their maxima would be kept.
    Check {
        /// The EIP-3076 interchange JSON file (format version 5).
        #[arg(long, value_name = "FILE")]
        interchange: PathBuf,
        /// The network's genesis validators root (0x-hex); the file must match it.
        /// Mainnet is 0x4b363db94e286120d76eb905340fdd4e54bfe9f06bf33ff6cf5ad27f511bfe95.
        #[arg(long, value_name = "HEX")]
        genesis_validators_root: Option<String>,
        /// Accept files whose records are slashable against each other (keep maxima only).
        #[arg(long)]
        allow_slashable: bool,
    },
    /// Print the minimal interchange equivalent of a file: one block and one attestation
    /// watermark per validator, exactly what this signer would store after importing it.
    Minify {
        /// The EIP-3076 interchange JSON file.
        #[arg(long, value_name = "FILE")]
        interchange: PathBuf,
        /// Accept files whose records are slashable against each other.
        #[arg(long)]
        allow_slashable: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum SchemeArg {
    /// Espresso consensus key: BLS over BN254; secret as `BLS_SIGNING_KEY~…`.
    Espresso,
    /// Ethereum validator key: BLS12-381; secret as 0x-hex of the 32-byte scalar.
    Eth2,
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Print the public key of a secret key file (never the secret).
    Inspect {
        /// Which kind of key the file holds.
        #[arg(long, value_enum)]
        scheme: SchemeArg,
        /// File holding the secret key (one line).
        #[arg(long, value_name = "FILE")]
        secret_file: PathBuf,
    },
    /// Generate a new secret key into a new file (mode 0600) and print its public key.
    Generate {
        /// Which kind of key to generate.
        #[arg(long, value_enum)]
        scheme: SchemeArg,
        /// Where to write the secret key; the file must not exist.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    signer_node::allocator::keep_freed_memory();
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Node {
            config,
            log_json,
            listen_fds,
        } => node_main(config, log_json, &listen_fds),
        Command::Init {
            dir,
            cluster_id,
            nodes,
            keys,
            kms_key_id,
            kms_region,
            kms_endpoint_url,
            local_kek,
            admins,
            threshold,
            attestation_roots,
            install_root,
            signer_path,
        } => {
            let kek = match (kms_key_id, local_kek) {
                (Some(key_id), _) => cmd::init::Kek::AwsKms {
                    key_id,
                    region: kms_region,
                    endpoint_url: kms_endpoint_url,
                },
                (None, true) => cmd::init::Kek::Local,
                (None, false) => cmd::init::Kek::None,
            };
            cmd::init::run(
                &dir,
                cmd::init::InitOptions {
                    cluster_id,
                    nodes,
                    keys,
                    kek,
                    admins,
                    threshold,
                    attestation_roots,
                    install_root: cmd::init::InstallRoot(install_root),
                    signer_path,
                },
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Command::AddNode {
            dir,
            node,
            install_root,
            signer_path,
        } => {
            let bundle = cmd::init::add_node::run(
                &dir,
                &node,
                &cmd::init::InstallRoot(install_root),
                &signer_path,
            )?;
            signer_client::outln!(
                "node-{}: certificate in {}/pki, config in {}/node-{}/node.toml, host bundle in \
                 {} (see its INSTALL.md), listed in cluster.json",
                node.id,
                dir.display(),
                dir.display(),
                node.id,
                bundle.display()
            );
            signer_client::outln!(
                "Next: install and start it on its host, then: signerctl --dir {} node add \
                 node-{} --addr {} --peer-addr {}",
                dir.display(),
                node.id,
                node.client_addr,
                node.peer_addr
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench {
            seconds,
            clients,
            profiles,
            parts,
            kills,
            keys,
            keys_keks,
            moto_server,
            json,
        } => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(cmd::bench::run(cmd::bench::BenchOptions {
                seconds,
                clients,
                profiles,
                parts,
                kills,
                keys,
                keys_keks,
                moto_server,
                json,
            }))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Restore {
            file,
            config,
            eth2_margin_epochs,
            espresso_margin_views,
        } => {
            let restored = cmd::restore::run(&cmd::restore::RestoreOptions {
                file,
                config,
                margin: signer_node::backup::margin::Margin {
                    eth2_epochs: eth2_margin_epochs,
                    espresso_views: espresso_margin_views,
                },
            })?;
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0);
            println!("{}", cmd::restore::describe(&restored, now_ms));
            Ok(ExitCode::SUCCESS)
        }
        Command::DevCluster(command) => cmd::dev_cluster::run(command),
        Command::Pki(command) => cmd::pki::run(command),
        Command::Demo(args) => cmd::demo::run(args),
        Command::Protection(ProtectionCommand::Check {
            interchange,
            genesis_validators_root,
            allow_slashable,
        }) => protection_check(interchange, genesis_validators_root, allow_slashable),
        Command::Protection(ProtectionCommand::Minify {
            interchange,
            allow_slashable,
        }) => protection_minify(interchange, allow_slashable),
        Command::Key(KeyCommand::Inspect {
            scheme,
            secret_file,
        }) => key_inspect(scheme, secret_file),
        Command::Key(KeyCommand::Generate { scheme, out }) => key_generate(scheme, out),
    }
}

fn node_main(config_path: PathBuf, log_json: bool, listen_fds: &[i32]) -> Result<ExitCode> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn"));
    // Colour codes only when stderr is a terminal: `signer node 2> node.log` stays plain text.
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if log_json {
        logs.json().init();
    } else {
        logs.init();
    }
    if let Err(e) = signer_node::custody::hygiene::harden_process() {
        tracing::warn!(error = %e, "could not turn off core dumps for this process");
    }
    // Before any thread starts: this reads and removes systemd's LISTEN_* variables.
    let inherited = signer_node::node::InheritedListeners::take(listen_fds)
        .context("taking over the inherited listening sockets")?;
    let config = signer_node::config::NodeConfig::load(&config_path)
        .with_context(|| format!("loading {}", config_path.display()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listeners = signer_node::node::Listeners::open(&config, inherited)
            .await
            .context("opening the node's listening sockets")?;
        signer_node::node::run(config, listeners, shutdown_signal()).await?;
        Ok(ExitCode::SUCCESS)
    })
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    tracing::info!("shutting down");
}

fn policy(allow_slashable: bool) -> ImportPolicy {
    if allow_slashable {
        ImportPolicy::Minify
    } else {
        ImportPolicy::RefuseSlashable
    }
}

fn read_interchange(path: &PathBuf) -> Result<interchange::Interchange> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    interchange::parse(&text)
        .with_context(|| format!("{} is not a valid interchange file", path.display()))
}

fn protection_check(path: PathBuf, gvr: Option<String>, allow_slashable: bool) -> Result<ExitCode> {
    let doc = read_interchange(&path)?;
    let expected = match gvr {
        Some(text) => FixedBytes::from_hex(&text)
            .map_err(|e| anyhow::anyhow!("--genesis-validators-root: {e}"))?,
        None => doc.genesis_validators_root,
    };
    let mut state = Eth2State::default();
    match interchange::import(&mut state, expected, &doc, policy(allow_slashable)) {
        Ok(summary) => {
            signer_client::outln!("ok: {} would import", path.display());
            signer_client::outln!("  genesis_validators_root {}", doc.genesis_validators_root);
            signer_client::outln!(
                "  {} validators, {} block records, {} attestation records",
                summary.validators,
                summary.blocks,
                summary.attestations
            );
            for s in &summary.slashable {
                signer_client::outln!(
                    "  warning: slashable data for {}: {} (only maxima kept)",
                    s.pubkey,
                    s.detail
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("refused: {}: {e}", path.display());
            Ok(ExitCode::from(1))
        }
    }
}

fn protection_minify(path: PathBuf, allow_slashable: bool) -> Result<ExitCode> {
    let doc = read_interchange(&path)?;
    let mut state = Eth2State::default();
    interchange::import(
        &mut state,
        doc.genesis_validators_root,
        &doc,
        policy(allow_slashable),
    )?;
    signer_client::outln!(
        "{}",
        interchange::export(&state, doc.genesis_validators_root).to_json()
    );
    Ok(ExitCode::SUCCESS)
}

fn read_secret(path: &PathBuf) -> Result<Zeroizing<String>> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
    );
    Ok(Zeroizing::new(text.trim().to_owned()))
}

fn key_inspect(scheme: SchemeArg, path: PathBuf) -> Result<ExitCode> {
    let secret = read_secret(&path)?;
    match scheme {
        SchemeArg::Espresso => {
            let sk = bn254::SecretKey::from_tagged(&secret).with_context(|| {
                format!("{} does not hold a BLS_SIGNING_KEY~ key", path.display())
            })?;
            signer_client::outln!("{}", sk.public_key().to_tagged());
        }
        SchemeArg::Eth2 => {
            let hex_text = secret.strip_prefix("0x").unwrap_or(&secret);
            let bytes = Zeroizing::new(
                hex::decode(hex_text)
                    .map_err(|_| anyhow::anyhow!("{}: not hex", path.display()))?,
            );
            let sk = bls12_381::SecretKey::from_bytes(&bytes)?;
            signer_client::outln!("{}", sk.public_key().to_hex());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn key_generate(scheme: SchemeArg, out: PathBuf) -> Result<ExitCode> {
    let mut rng = rand::rngs::OsRng;
    let (secret, public) = match scheme {
        SchemeArg::Espresso => {
            let sk = bn254::SecretKey::generate(&mut rng);
            (sk.to_tagged(), sk.public_key().to_tagged())
        }
        SchemeArg::Eth2 => {
            let sk = bls12_381::SecretKey::generate(&mut rng)?;
            let text = Zeroizing::new(format!("0x{}", hex::encode(sk.to_bytes().as_ref())));
            (text, sk.public_key().to_hex())
        }
    };
    write_new_private_file(&out, &secret)?;
    signer_client::outln!("{public}");
    Ok(ExitCode::SUCCESS)
}

/// Create `path` (refusing to overwrite) readable by the owner only, and write `text` to it.
fn write_new_private_file(path: &PathBuf, text: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if path.exists() {
        bail!(
            "{} already exists; refusing to overwrite a key file",
            path.display()
        );
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    writeln!(f, "{text}")?;
    f.sync_all()?;
    Ok(())
}
