//! A signer node: opens storage, loads keys, starts Raft and both gRPC servers, and runs until
//! shutdown.
//!
//! Owns: wiring the parts together and the node's lifecycle, including the background tasks it
//! starts (audit-event delivery, the key loader, the admin-plane bootstrap, approved membership
//! changes), which it joins on
//! shutdown. Servers take their listeners and a shutdown future, so tests bind `127.0.0.1:0`
//! and stop nodes by themselves; a node process may also be handed its listening sockets
//! ([`inherited`]: systemd socket activation, `signer node --listen-fd`).
//! Must not: contain protection, storage or service logic.
//!
//! To ensure correctness:
//! - shutdown runs in one order, on every exit once Raft has started (a clean stop or a
//!   failure while starting): servers drained, the node's tasks told to stop and joined
//!   (aborted after a grace period), Raft shut down, and the state machine synced last, when
//!   no entry can be applied any more;
//! - dropping the node's task set aborts what it holds, so no exit leaves those tasks running.

use crate::config::NodeConfig;
use crate::keyloader::cache::KeyringCache;
use crate::keyloader::{self, Keks};
use crate::keyring::{Keyring, KeyringError};
use crate::metrics::{MeteredKek, Metrics};
use crate::pb;
use crate::replica::network::{PeerTls, MAX_PEER_MESSAGE};
use crate::replica::{
    EventSink, LogStore, PeerNetwork, Raft, StateMachine, LOG_DATABASE_FILE, STATE_DATABASE_FILE,
};
use crate::service::access::RateLimiter;
use crate::service::admin::AdminService;
use crate::service::audit::AuditService;
use crate::service::peer::PeerService;
use crate::service::signing::{Proposer, SignPath, SignerService};
use crate::service::web3signer::Web3SignerApi;
use crate::tls::{TlsError, TlsMaterial};
use openraft::async_runtime::WatchReceiver;
use openraft::{BasicNode, Config, SnapshotPolicy};
use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_stream::StreamExt;

pub mod inherited;
pub use inherited::{InheritedListeners, ListenError};

/// Largest client request accepted (DA proposals carry their transactions).
pub const MAX_CLIENT_MESSAGE: usize = 4 * 1024 * 1024;

/// Why a node could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// Storage could not be opened.
    #[error("storage: {0}")]
    Storage(std::io::Error),
    /// Keys could not be loaded.
    #[error("keys: {0}")]
    Keys(KeyringError),
    /// TLS material is missing or invalid.
    #[error("tls: {0}")]
    Tls(TlsError),
    /// Raft could not start.
    #[error("raft: {0}")]
    Raft(String),
    /// The reflection service could not be built from the descriptors.
    #[error("reflection: {0}")]
    Reflection(String),
    /// A KEK could not be opened.
    #[error("kek: {0}")]
    Custody(crate::custody::CustodyError),
    /// A gRPC server failed.
    #[error("server: {0}")]
    Server(tonic::transport::Error),
    /// The metrics registry could not be built.
    #[error("metrics: {0}")]
    Metrics(String),
    /// The `[admin]` section could not be used (roots, bootstrap admins).
    #[error("{0}")]
    Admin(String),
    /// The `[eth2]` section names no network the node knows.
    #[error("{0}")]
    Eth2(String),
}

// Each variant's message already shows its cause, so the cause is not also a `source` (an
// error chain printed with `{:#}` would say it twice); `?` converts through these.
impl From<std::io::Error> for NodeError {
    fn from(e: std::io::Error) -> Self {
        NodeError::Storage(e)
    }
}

impl From<KeyringError> for NodeError {
    fn from(e: KeyringError) -> Self {
        NodeError::Keys(e)
    }
}

impl From<TlsError> for NodeError {
    fn from(e: TlsError) -> Self {
        NodeError::Tls(e)
    }
}

impl From<tonic::transport::Error> for NodeError {
    fn from(e: tonic::transport::Error) -> Self {
        NodeError::Server(e)
    }
}

/// The node's listening sockets.
pub struct Listeners {
    /// Client API (Signer).
    pub client: TcpListener,
    /// Peer API (Raft).
    pub peer: TcpListener,
    /// Prometheus `GET /metrics` (plain HTTP); `None`: no metrics endpoint.
    pub metrics: Option<TcpListener>,
    /// The Web3Signer-compatible REST API; `None`: not served.
    pub web3signer: Option<TcpListener>,
}

impl Listeners {
    /// Bind the addresses in `config` (the metrics address only if configured).
    pub async fn bind(config: &NodeConfig) -> Result<Listeners, ListenError> {
        Listeners::open(config, InheritedListeners::default()).await
    }

    /// The listeners for the addresses in `config`: for each address, the inherited listener
    /// bound to exactly that address, else a new one bound here. Fails when an inherited
    /// listener is left over (bound to no configured address).
    pub async fn open(
        config: &NodeConfig,
        mut inherited: InheritedListeners,
    ) -> Result<Listeners, ListenError> {
        let mut listen = |addr: SocketAddr| -> Option<Result<TcpListener, ListenError>> {
            let (fd, listener) = inherited.claim(addr)?;
            tracing::info!(fd, %addr, "listening on an inherited socket");
            Some(
                TcpListener::from_std(listener).map_err(|e| ListenError::Unusable {
                    fd,
                    reason: format!("not usable by the runtime: {e}"),
                }),
            )
        };
        let client = listen(config.client_listen);
        let peer = listen(config.peer_listen);
        let metrics = config.metrics_listen.and_then(&mut listen);
        let web3signer = config.web3signer.as_ref().and_then(|w| listen(w.listen));
        inherited.finish()?;
        Ok(Listeners {
            client: open_or_bind(client, config.client_listen).await?,
            peer: open_or_bind(peer, config.peer_listen).await?,
            metrics: match config.metrics_listen {
                Some(addr) => Some(open_or_bind(metrics, addr).await?),
                None => None,
            },
            web3signer: match &config.web3signer {
                Some(w3s) => Some(open_or_bind(web3signer, w3s.listen).await?),
                None => None,
            },
        })
    }
}

/// `inherited` if there is one, else a listener bound to `addr` now.
async fn open_or_bind(
    inherited: Option<Result<TcpListener, ListenError>>,
    addr: SocketAddr,
) -> Result<TcpListener, ListenError> {
    match inherited {
        Some(listener) => listener,
        None => TcpListener::bind(addr)
            .await
            .map_err(|source| ListenError::Bind { addr, source }),
    }
}

/// Build openraft's configuration from ours. openraft's `purge_batch_size` stays at its
/// default (1): the log is purged as soon as a snapshot allows, down to `logs_to_keep` entries.
fn raft_config(config: &NodeConfig) -> Result<Arc<Config>, NodeError> {
    let raft = Config {
        cluster_name: config.cluster_id.clone(),
        heartbeat_interval: config.raft.heartbeat_ms,
        election_timeout_min: config.raft.election_min_ms,
        election_timeout_max: config.raft.election_max_ms,
        install_snapshot_timeout: 10_000,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(config.raft.snapshot_every),
        max_in_snapshot_log_to_keep: config.raft.logs_to_keep,
        ..Default::default()
    };
    raft.validate()
        .map(Arc::new)
        .map_err(|e| NodeError::Raft(e.to_string()))
}

/// Accepted connections with Nagle's algorithm off: replies are small and latency matters.
fn no_delay(
    listener: TcpListener,
) -> impl tokio_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    TcpListenerStream::new(listener).map(|conn| {
        if let Ok(stream) = &conn {
            let _ = stream.set_nodelay(true);
        }
        conn
    })
}

/// Create `dir` (and its parents) if missing, and make it readable by the owner only: it holds
/// the replicated state (sealed keys, grants, the audit chain).
fn private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    owner_only(dir, 0o700)
}

/// Set `path`'s mode to `mode` (owner-only bits) if it allows more.
fn owner_only(path: &std::path::Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let current = std::fs::metadata(path)?.permissions().mode() & 0o777;
    if current & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

/// Run a node until `shutdown` resolves.
pub async fn run(
    config: NodeConfig,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), NodeError> {
    let eth2_network = Arc::new(config.eth2.resolve_network().map_err(NodeError::Eth2)?);
    private_dir(&config.data_dir)?;
    if !config.sync_writes {
        tracing::warn!("sync_writes = false: acknowledged writes are NOT durable; never use this in production");
    }
    let log_path = config.data_dir.join(LOG_DATABASE_FILE);
    let state_path = config.data_dir.join(STATE_DATABASE_FILE);
    let log_store = LogStore::open(&log_path, config.sync_writes)?;
    let state = StateMachine::open(&state_path, config.sync_writes)?
        .applying_only_stored(log_store.durable_index());
    for path in [log_path.with_extension("journal"), log_path, state_path] {
        // No journal without `sync_writes`.
        if path.exists() {
            owner_only(&path, 0o600)?;
        }
    }
    let keyring = Arc::new(Keyring::load_dir(&config.keys_dir)?);
    for key in keyring.keys() {
        tracing::warn!(key_id = %key.key_id, profile = %key.profile, public_key = %key.public_key_text,
            "key loaded from a plaintext key file (development only; use the key registry with a KEK)");
    }
    let metrics =
        Arc::new(Metrics::new(config.node_id).map_err(|e| NodeError::Metrics(e.to_string()))?);
    let mut backends = Vec::new();
    for kek in config.kek.iter().chain(config.retired_keks.iter()) {
        let backend = kek.build().await.map_err(NodeError::Custody)?;
        backends.push(MeteredKek::new(backend, metrics.clone()));
    }
    let keks = Arc::new(Keks::new(config.cluster_id.clone(), backends));
    // The keyring cache needs a KEK to seal under; without one only key files load.
    let keyring_cache = match (&config.kek, config.keyring_cache) {
        (Some(_), true) => Some(Arc::new(
            KeyringCache::new(&config.data_dir, &config.cluster_id, config.node_id)
                .map_err(NodeError::Custody)?,
        )),
        _ => None,
    };
    let tls = TlsMaterial::read(&config.tls.ca, &config.tls.cert, &config.tls.key)?;
    for (certificate, pem) in [("node", &tls.cert_pem), ("ca", &tls.ca_pem)] {
        if let Err(e) = metrics.observe_certificates(certificate, pem) {
            tracing::warn!(error = %e, "metrics: certificate expiry not exported");
        }
    }
    let network = PeerNetwork::new(PeerTls {
        ca_pem: std::fs::read(&config.tls.ca)?,
        cert_pem: std::fs::read(&config.tls.cert)?,
        key_pem: std::fs::read(&config.tls.key)?,
    });
    let raft = Raft::new(
        config.node_id,
        raft_config(&config)?,
        network.clone(),
        log_store,
        state.clone(),
    )
    .await
    .map_err(|e| NodeError::Raft(e.to_string()))?;

    // From here on Raft runs; whatever happens next, it is shut down below.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let mut tasks = Tasks::default();
    let served: Result<(), NodeError> = async {
        let (audit_events, delivery) = EventSink::start(
            config.node_id,
            raft.clone(),
            network.clone(),
            stopped(stop_rx.clone()),
        );
        tasks.own("audit events", delivery);
        for key in keyring.keys() {
            audit_events.key_loaded(&key.key_id);
        }
        tasks.own(
            "key loader",
            keyloader::spawn(
                keks.clone(),
                keyring_cache.clone(),
                state.clone(),
                keyring.clone(),
                audit_events.clone(),
                stopped(stop_rx.clone()),
            ),
        );
        let (health_reporter, health) = tonic_health::server::health_reporter();
        crate::service::health::spawn(health_reporter, raft.clone(), keyring.clone());
        let keyring_for_metrics = keyring.clone();
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .build_v1()
            .map_err(|e| NodeError::Reflection(e.to_string()))?;
        config.admin.roots().map_err(NodeError::Admin)?;
        let bootstrap = config
            .admin
            .bootstrap(&config.cluster_id, config.eth2.genesis_validators_root)
            .map_err(NodeError::Admin)?;
        // One denial throttle for the node: access denials and revoked certificates alike.
        let denials = Arc::new(crate::service::access::DenialThrottle::default());
        let authn = crate::service::authn::Authenticator::new(
            state.clone(),
            audit_events.clone(),
            denials.clone(),
        );
        let admin = pb::admin_server::AdminServer::new(AdminService::new(
            authn.clone(),
            raft.clone(),
            state.clone(),
            keyring.clone(),
            keks,
            config.eth2.genesis_validators_root,
        ));
        let path = SignPath {
            node_id: config.node_id,
            raft: raft.clone(),
            state: state.clone(),
            keyring,
            network,
            proposer: Proposer::start(raft.clone(), metrics.clone()),
            metrics: metrics.clone(),
            events: audit_events,
            limiter: Arc::new(RateLimiter::default()),
            denials,
            eth2_network,
        };
        let web3signer = match (&config.web3signer, listeners.web3signer) {
            (Some(w3s), Some(listener)) => {
                let api = Web3SignerApi::new(w3s, &tls, path.clone())?;
                Some((listener, Arc::new(api)))
            }
            _ => None,
        };
        let web3signer_addr = match &web3signer {
            Some((l, _)) => Some(l.local_addr()?),
            None => None,
        };
        let web3signer_server = async {
            if let Some((listener, api)) = web3signer {
                crate::service::web3signer::serve(listener, api, stopped(stop_rx.clone())).await;
            }
        };
        let audit = pb::audit_server::AuditServer::new(AuditService::new(
            authn,
            config.node_id,
            config.cluster_id.clone(),
            raft.clone(),
            state.clone(),
        ));
        let signer = pb::signer_server::SignerServer::new(SignerService::new(path.clone()))
            .max_decoding_message_size(MAX_CLIENT_MESSAGE);
        let peer_service = PeerService::new(raft.clone(), path, config.data_dir.clone());
        let peer = pb::raft_server::RaftServer::new(peer_service)
            .max_decoding_message_size(MAX_PEER_MESSAGE)
            .max_encoding_message_size(MAX_PEER_MESSAGE);

        let client_server = tonic::transport::Server::builder()
            .tls_config(tls.server_config()?)?
            .add_service(signer)
            .add_service(admin)
            .add_service(audit)
            .add_service(health)
            .add_service(reflection)
            .serve_with_incoming_shutdown(no_delay(listeners.client), stopped(stop_rx.clone()));
        let peer_server = tonic::transport::Server::builder()
            .tls_config(tls.server_config()?)?
            .add_service(peer)
            .serve_with_incoming_shutdown(no_delay(listeners.peer), stopped(stop_rx.clone()));
        metrics.spawn_sampler(
            raft.clone(),
            keyring_for_metrics,
            config.data_dir.clone(),
            stopped(stop_rx.clone()),
        );
        tasks.own(
            "audit verifier",
            metrics.spawn_audit_verifier(state.clone(), stopped(stop_rx.clone())),
        );
        let metrics_addr = match &listeners.metrics {
            Some(l) => Some(l.local_addr()?),
            None => None,
        };
        let metrics_server = async {
            if let Some(listener) = listeners.metrics {
                crate::metrics::serve(listener, metrics, stopped(stop_rx.clone())).await;
            }
        };

        if config.bootstrap
            && !raft
                .is_initialized()
                .await
                .map_err(|e| NodeError::Raft(e.to_string()))?
        {
            let members: BTreeMap<u64, BasicNode> = config
                .peers
                .iter()
                .map(|p| (p.id, BasicNode::new(p.peer_addr.to_string())))
                .collect();
            tracing::info!(?members, "initializing a new cluster");
            if let Err(e) = raft.initialize(members).await {
                tracing::warn!(error = %e, "initialize refused (already initialized?)");
            }
        }
        tasks.own(
            "snapshots by size",
            crate::replica::snapshot_trigger::spawn(
                raft.clone(),
                state.clone(),
                config.raft.snapshot_after_audit_bytes,
                stopped(stop_rx.clone()),
            ),
        );
        tasks.own(
            "membership changes",
            crate::replica::membership::spawn(
                config.node_id,
                raft.clone(),
                state.clone(),
                stopped(stop_rx.clone()),
            ),
        );
        if let Some(bootstrap) = bootstrap {
            tasks.own(
                "admin bootstrap",
                spawn_admin_bootstrap(
                    config.node_id,
                    raft.clone(),
                    state.clone(),
                    bootstrap,
                    stopped(stop_rx.clone()),
                ),
            );
        }
        tracing::info!(node_id = config.node_id, client = %config.client_listen, peer = %config.peer_listen,
            metrics = ?metrics_addr, web3signer = ?web3signer_addr, "node serving");
        // `shutdown` is awaited here, beside the servers, not in a task of its own: when it
        // resolves the stop signal goes out and the servers drain.
        let servers = async {
            tokio::join!(client_server, peer_server, metrics_server, web3signer_server)
        };
        tokio::pin!(servers);
        // A storage failure stops the Raft core for good (openraft treats it as fatal): the
        // node then stops too, with an error, so that its supervisor restarts it, instead of
        // serving UNAVAILABLE forever (found by the fault suite's disk-full scenario).
        let raft_failed = async {
            let mut metrics = raft.metrics();
            loop {
                if let Err(fatal) = &metrics.borrow_watched().running_state {
                    return fatal.to_string();
                }
                if metrics.changed().await.is_err() {
                    return "the Raft core stopped".to_owned();
                }
            }
        };
        let (client_result, peer_result, (), ()) = tokio::select! {
            ended = &mut servers => ended,
            () = shutdown => {
                let _ = stop_tx.send(true);
                servers.await
            }
            fatal = raft_failed => {
                tracing::error!(error = %fatal, "the Raft core stopped; stopping the node");
                let _ = stop_tx.send(true);
                let _ = servers.await;
                return Err(NodeError::Raft(format!("the Raft core stopped: {fatal}")));
            }
        };
        client_result?;
        peer_result?;
        Ok(())
    }
    .await;

    // Stopping, whether the servers ended or the node failed to start: first the node's own
    // tasks (told to stop, joined for a bounded time), then Raft, and the state machine is
    // synced last, when nothing can apply an entry any more.
    let _ = stop_tx.send(true);
    tasks.join(TASK_GRACE).await;
    let _ = raft.shutdown().await;
    if let Err(e) = state.sync() {
        tracing::warn!(error = %e, "state database not synced at shutdown");
    }
    served
}

/// How long shutdown waits, in all, for the node's own background tasks before aborting them.
const TASK_GRACE: Duration = Duration::from_secs(5);

/// The node's own background tasks, owned the way mini-redis's server owns its connection
/// handlers: each one stops when the node's stop signal fires, and shutdown joins them (for at
/// most a grace period, then aborts the rest) before Raft shuts down. Dropping the set aborts
/// whatever is still running, so an early return leaves nothing behind.
#[derive(Default)]
struct Tasks(Vec<(&'static str, JoinHandle<()>)>);

impl Tasks {
    /// Own `handle`, named `name` in the shutdown log.
    fn own(&mut self, name: &'static str, handle: JoinHandle<()>) {
        self.0.push((name, handle));
    }

    /// Wait until every task has ended, for at most `grace` in all; abort those still running
    /// then, and wait for them to unwind.
    async fn join(mut self, grace: Duration) {
        let deadline = tokio::time::Instant::now() + grace;
        for (name, mut handle) in std::mem::take(&mut self.0) {
            let ended = match tokio::time::timeout_at(deadline, &mut handle).await {
                Ok(ended) => ended,
                Err(_) => {
                    tracing::warn!(
                        task = name,
                        ?grace,
                        "task still running at shutdown; aborting it"
                    );
                    handle.abort();
                    handle.await
                }
            };
            match ended {
                Ok(()) => tracing::debug!(task = name, "task joined"),
                Err(e) if e.is_cancelled() => {}
                Err(e) => tracing::warn!(task = name, error = %e, "task failed"),
            }
        }
    }
}

impl Drop for Tasks {
    fn drop(&mut self) {
        for (_, handle) in &self.0 {
            handle.abort();
        }
    }
}

/// Until the cluster's admin plane is bootstrapped: whenever this node is the leader, propose
/// the configured initial state. The state machine accepts the first bootstrap of a cluster
/// and refuses (and audits) any later one, so every node may carry the same section.
fn spawn_admin_bootstrap(
    node_id: u64,
    raft: Raft,
    state: StateMachine,
    bootstrap: crate::admin::state::Bootstrap,
    stop: impl Future<Output = ()> + Send + 'static,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        tokio::select! {
            () = stop => {}
            () = propose_bootstrap(node_id, &raft, &state, &bootstrap) => {}
        }
    })
}

/// Propose `bootstrap` whenever this node leads, until the state machine says the admin plane
/// is bootstrapped or Raft stops.
async fn propose_bootstrap(
    node_id: u64,
    raft: &Raft,
    state: &StateMachine,
    bootstrap: &crate::admin::state::Bootstrap,
) {
    let mut metrics = raft.metrics();
    loop {
        if state.read().admin.bootstrapped {
            return;
        }
        if metrics.borrow_watched().current_leader == Some(node_id) {
            let command = crate::admin::AdminCommand::Bootstrap(bootstrap.clone());
            match crate::replica::commit_admin(raft, command).await {
                Ok(outcome) => tracing::info!(?outcome, "admin plane bootstrap proposed"),
                Err(e) => {
                    tracing::warn!(error = %e, "admin plane bootstrap not committed; will retry")
                }
            }
            if state.read().admin.bootstrapped {
                return;
            }
        }
        let changed = tokio::time::timeout(Duration::from_millis(500), metrics.changed()).await;
        if let Ok(Err(_)) = changed {
            return; // Raft stopped.
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// Reports, through its channel, when the task holding it is dropped (ended or aborted).
    struct DropSignal(Option<tokio::sync::oneshot::Sender<()>>);
    impl Drop for DropSignal {
        fn drop(&mut self) {
            if let Some(tx) = self.0.take() {
                let _ = tx.send(());
            }
        }
    }

    /// A config whose listen addresses the tests set themselves.
    fn config_listening_on(
        client: SocketAddr,
        peer: SocketAddr,
        metrics: Option<SocketAddr>,
    ) -> NodeConfig {
        let tls = crate::config::TlsPaths {
            ca: "ca.pem".into(),
            cert: "node-1.pem".into(),
            key: "node-1.key".into(),
        };
        let peers = vec![crate::config::PeerConfig {
            id: 1,
            client_addr: "127.0.0.1:1".parse().unwrap(),
            peer_addr: "127.0.0.1:2".parse().unwrap(),
        }];
        let mut config = NodeConfig::builder(1, "test", "data", tls, peers)
            .build()
            .unwrap();
        config.client_listen = client;
        config.peer_listen = peer;
        config.metrics_listen = metrics;
        config
    }

    /// A listening socket on a port-0 loopback address, released to a bare descriptor.
    fn listening_fd() -> (std::os::fd::RawFd, SocketAddr) {
        use std::os::fd::IntoRawFd;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        (listener.into_raw_fd(), addr)
    }

    #[tokio::test]
    async fn open_serves_inherited_listeners_at_their_addresses_and_binds_the_rest() {
        let (client_fd, client) = listening_fd();
        let (metrics_fd, metrics) = listening_fd();
        // Given in another order than the addresses are configured.
        let inherited = InheritedListeners::from_fds(&[metrics_fd, client_fd]).unwrap();
        let any_port: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let config = config_listening_on(client, any_port, Some(metrics));
        let listeners = Listeners::open(&config, inherited).await.unwrap();
        use std::os::fd::AsRawFd;
        assert_eq!(listeners.client.as_raw_fd(), client_fd);
        assert_eq!(listeners.client.local_addr().unwrap(), client);
        let metrics_listener = listeners.metrics.unwrap();
        assert_eq!(metrics_listener.as_raw_fd(), metrics_fd);
        assert_eq!(metrics_listener.local_addr().unwrap(), metrics);
        // Bound here, on a port of its own.
        let peer = listeners.peer.local_addr().unwrap();
        assert_ne!(peer.port(), 0);
        assert!(![client_fd, metrics_fd].contains(&listeners.peer.as_raw_fd()));
        assert!(listeners.web3signer.is_none());
        // The inherited client listener accepts.
        let connect = tokio::net::TcpStream::connect(client);
        let (accepted, connected) = tokio::join!(listeners.client.accept(), connect);
        assert_eq!(
            accepted.unwrap().1,
            connected.unwrap().local_addr().unwrap()
        );
    }

    #[tokio::test]
    async fn open_refuses_an_inherited_listener_that_serves_no_address() {
        let (fd, stray) = listening_fd();
        let inherited = InheritedListeners::from_fds(&[fd]).unwrap();
        let any_port: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let config = config_listening_on(any_port, any_port, None);
        match Listeners::open(&config, inherited).await {
            Err(ListenError::Unused { fd: f, addr }) => assert_eq!((f, addr), (fd, stray)),
            Err(other) => panic!("{other}"),
            Ok(_) => panic!("opened with a stray inherited listener"),
        }
    }

    #[tokio::test]
    async fn join_waits_for_tasks_that_stop_on_the_signal() {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let finished = Arc::new(AtomicBool::new(false));
        let mut tasks = Tasks::default();
        for name in ["first", "second"] {
            let mut stop = stop_rx.clone();
            let finished = finished.clone();
            tasks.own(
                name,
                tokio::spawn(async move {
                    let _ = stop.wait_for(|s| *s).await;
                    finished.store(true, Ordering::SeqCst);
                }),
            );
        }
        stop_tx.send(true).unwrap();
        tasks.join(Duration::from_secs(3600)).await;
        assert!(finished.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn join_aborts_tasks_still_running_after_the_grace() {
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let (dropped_tx, dropped_rx) = tokio::sync::oneshot::channel();
        let finished = Arc::new(AtomicBool::new(false));
        let mut tasks = Tasks::default();
        let flag = finished.clone();
        tasks.own(
            "stubborn",
            tokio::spawn(async move {
                let _guard = DropSignal(Some(dropped_tx));
                let _ = started_tx.send(());
                std::future::pending::<()>().await;
                flag.store(true, Ordering::SeqCst);
            }),
        );
        started_rx.await.unwrap();
        tasks.join(Duration::ZERO).await;
        assert_eq!(dropped_rx.await, Ok(()));
        assert!(!finished.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn dropping_the_set_aborts_its_tasks() {
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let (dropped_tx, dropped_rx) = tokio::sync::oneshot::channel();
        let mut tasks = Tasks::default();
        tasks.own(
            "left behind",
            tokio::spawn(async move {
                let _guard = DropSignal(Some(dropped_tx));
                let _ = started_tx.send(());
                std::future::pending::<()>().await;
            }),
        );
        started_rx.await.unwrap();
        drop(tasks);
        assert_eq!(dropped_rx.await, Ok(()));
    }
}
