//! The pool against real tonic servers on 127.0.0.1:0 with mutual TLS: failover on
//! unavailability, no retry on answers, refusal decoding, timeouts; the descriptor round trip.
//! The admin calls over the same fakes are in `tests/admin.rs`.
//!
//! No test measures time. Which timer ended an attempt is shown by what the servers saw (the
//! `grpc-timeout` a request carried, the connections a frozen node accepted) and by deadlines
//! set far beyond the timer under test, so that a pool waiting for the wrong one fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::pb::signer_server::{Signer, SignerServer};
use crate::tls::DevPki;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use tonic::transport::Server;
use tonic::{Request, Response};

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "qs-client-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[derive(Clone, Copy)]
enum Behavior {
    /// Sign: the signature text is `sig-<node>-<request id>`.
    Sign,
    /// UNAVAILABLE, as a node without a leader answers.
    NoLeader,
    /// FAILED_PRECONDITION with a Refusal detail.
    Refuse,
    /// INVALID_ARGUMENT.
    BadRequest,
    /// The handler never returns (the server still honours the request's `grpc-timeout`).
    Hang,
    /// No gRPC server: connections are accepted (as the kernel does for a stopped process)
    /// and never read or answered. Each accepted connection is recorded as [`CONNECTION`].
    Frozen,
}

/// What a frozen node records for each connection it accepts.
const CONNECTION: &str = "<connection>";

#[derive(Clone)]
struct Fake {
    node: u64,
    behavior: Behavior,
    seen: Arc<Mutex<Vec<String>>>,
    /// The `grpc-timeout` of each request, as sent.
    timeouts: Arc<Mutex<Vec<Option<Duration>>>>,
}

/// A `grpc-timeout` header value: up to 8 digits and a unit (H, M, S, m, u, n).
fn grpc_timeout(value: &str) -> Option<Duration> {
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[tonic::async_trait]
impl Signer for Fake {
    async fn sign(
        &self,
        request: Request<pb::SignRequest>,
    ) -> Result<Response<pb::SignResponse>, Status> {
        let id = request.get_ref().request_id.clone();
        self.seen.lock().unwrap().push(id.clone());
        let timeout = request
            .metadata()
            .get("grpc-timeout")
            .map(|v| grpc_timeout(v.to_str().unwrap()).unwrap());
        self.timeouts.lock().unwrap().push(timeout);
        match self.behavior {
            Behavior::Sign => Ok(Response::new(pb::SignResponse {
                signature_text: format!("sig-{}-{id}", self.node),
                ..Default::default()
            })),
            Behavior::NoLeader => Err(Status::unavailable("no leader known")),
            Behavior::Refuse => {
                let detail = pb::Refusal {
                    code: "double_vote".into(),
                    message: "view 5 already signed with another commitment".into(),
                };
                Err(Status::with_details(
                    Code::FailedPrecondition,
                    "refused",
                    tonic::codegen::Bytes::from(detail.encode_to_vec()),
                ))
            }
            Behavior::BadRequest => Err(Status::invalid_argument("unknown key")),
            Behavior::Hang => std::future::pending().await,
            Behavior::Frozen => unreachable!("a frozen node runs no gRPC server"),
        }
    }
    async fn sign_batch(
        &self,
        _request: Request<pb::SignBatchRequest>,
    ) -> Result<Response<pb::SignBatchResponse>, Status> {
        Err(Status::unimplemented("not used by this test server"))
    }

    async fn get_public_keys(
        &self,
        _: Request<pb::GetPublicKeysRequest>,
    ) -> Result<Response<pb::GetPublicKeysResponse>, Status> {
        Ok(Response::new(pb::GetPublicKeysResponse {
            keys: vec![pb::KeyInfo {
                key_id: "demo-eth2".into(),
                ..Default::default()
            }],
        }))
    }
    async fn get_cluster_status(
        &self,
        _: Request<pb::GetClusterStatusRequest>,
    ) -> Result<Response<pb::ClusterStatus>, Status> {
        Ok(Response::new(pb::ClusterStatus {
            node_id: self.node,
            leader_id: 3,
            term: self.node,
            ..Default::default()
        }))
    }
}

struct Cluster {
    _dir: TempDir,
    pool: SignerPool,
    endpoints: Vec<(u64, SocketAddr)>,
    seen: Vec<Arc<Mutex<Vec<String>>>>,
    timeouts: Vec<Arc<Mutex<Vec<Option<Duration>>>>>,
    _stops: Vec<tokio::sync::oneshot::Sender<()>>,
}

impl Cluster {
    fn calls(&self, index: usize) -> Vec<String> {
        self.seen[index].lock().unwrap().clone()
    }

    /// The `grpc-timeout` of each request node `index` received.
    fn timeouts(&self, index: usize) -> Vec<Option<Duration>> {
        self.timeouts[index].lock().unwrap().clone()
    }
}

/// Nodes 1..=n with these behaviors; `None` is a node that is down (connection refused).
async fn cluster(behaviors: &[Option<Behavior>], options: PoolOptions) -> Cluster {
    let dir = TempDir::new("pool");
    let ids: Vec<u64> = (1..=behaviors.len() as u64).collect();
    let pki = DevPki::create(&dir.0, &ids, &["seq-1"]).unwrap();
    let mut endpoints = Vec::new();
    let mut seen = Vec::new();
    let mut timeouts = Vec::new();
    let mut stops = Vec::new();
    for (&id, behavior) in ids.iter().zip(behaviors) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        endpoints.push((id, addr));
        let log = Arc::new(Mutex::new(Vec::new()));
        seen.push(log.clone());
        let deadlines = Arc::new(Mutex::new(Vec::new()));
        timeouts.push(deadlines.clone());
        let Some(behavior) = *behavior else {
            drop(listener);
            continue;
        };
        if let Behavior::Frozen = behavior {
            // Ends with the test's runtime.
            tokio::spawn(async move {
                let mut held = Vec::new();
                while let Ok((stream, _)) = listener.accept().await {
                    log.lock().unwrap().push(CONNECTION.to_owned());
                    held.push(stream);
                }
            });
            continue;
        }
        let tls = TlsMaterial::read(
            &pki.ca_cert_path(),
            &pki.node_cert_path(id),
            &pki.node_key_path(id),
        )
        .unwrap()
        .server_config()
        .unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        stops.push(stop);
        let fake = Fake {
            node: id,
            behavior,
            seen: log,
            timeouts: deadlines,
        };
        tokio::spawn(
            Server::builder()
                .tls_config(tls)
                .unwrap()
                .add_service(SignerServer::new(fake))
                .serve_with_incoming_shutdown(
                    tokio_stream::wrappers::TcpListenerStream::new(listener),
                    async {
                        let _ = stopped.await;
                    },
                ),
        );
    }
    let tls = TlsMaterial::read(
        &pki.ca_cert_path(),
        &pki.client_cert_path("seq-1"),
        &pki.client_key_path("seq-1"),
    )
    .unwrap();
    let pool = SignerPool::from_endpoints(&endpoints, &tls, options)
        .await
        .unwrap();
    Cluster {
        _dir: dir,
        pool,
        endpoints,
        seen,
        timeouts,
        _stops: stops,
    }
}

fn fast() -> PoolOptions {
    PoolOptions {
        rpc_timeout: Duration::from_millis(500),
        connect_timeout: Duration::from_millis(500),
        deadline: Duration::from_secs(3),
        ..PoolOptions::default()
    }
}

fn request() -> pb::SignRequest {
    pb::SignRequest {
        key_id: "demo-eth2".into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn fails_over_past_down_and_leaderless_nodes_with_one_request_id() {
    let c = cluster(
        &[None, Some(Behavior::NoLeader), Some(Behavior::Sign)],
        fast(),
    )
    .await;
    let response = c.pool.sign(request()).await.unwrap();
    let leaderless = c.calls(1);
    let signer = c.calls(2);
    assert_eq!(leaderless.len(), 1);
    assert_eq!(signer.len(), 1);
    // The generated request id is the same on every attempt.
    assert_eq!(leaderless[0], signer[0]);
    assert_eq!(leaderless[0].len(), 32);
    assert_eq!(response.signature_text, format!("sig-3-{}", signer[0]));
    // The next call starts at the node that answered.
    let mut again = request();
    again.request_id = "mine".into();
    let response = c.pool.sign(again).await.unwrap();
    assert_eq!(response.signature_text, "sig-3-mine");
    assert_eq!(c.calls(1).len(), 1);
}

#[tokio::test]
async fn refusal_is_decoded_and_not_retried() {
    let c = cluster(&[Some(Behavior::Refuse), Some(Behavior::Sign)], fast()).await;
    match c.pool.sign(request()).await {
        Err(ClientError::Refused { code, message }) => {
            assert_eq!(code, "double_vote");
            assert!(message.contains("view 5"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(c.calls(1).is_empty(), "a refusal was retried elsewhere");
    let text = ClientError::Refused {
        code: "double_vote".into(),
        message: "m".into(),
    }
    .to_string();
    assert_eq!(text, "refused: double_vote: m");
}

#[tokio::test]
async fn other_statuses_are_returned_at_once() {
    let c = cluster(&[Some(Behavior::BadRequest), Some(Behavior::Sign)], fast()).await;
    match c.pool.sign(request()).await {
        Err(ClientError::Other(status)) => assert_eq!(status.code(), Code::InvalidArgument),
        other => panic!("{other:?}"),
    }
    assert!(c.calls(1).is_empty());
}

/// Options whose call deadline is far beyond the RPC and connect timeouts (500 ms): a pool
/// that waited on a node for anything but those would run out of deadline, and fail the call.
fn patient() -> PoolOptions {
    PoolOptions {
        deadline: Duration::from_secs(60),
        ..fast()
    }
}

#[tokio::test]
async fn a_hanging_node_times_out_and_the_next_answers() {
    let c = cluster(&[Some(Behavior::Hang), Some(Behavior::Sign)], patient()).await;
    let response = c.pool.sign(request()).await.unwrap();
    let hung = c.calls(0);
    assert_eq!(hung.len(), 1);
    // The same request, with its one request id, went on to node 2, which signed it.
    assert_eq!(c.calls(1), hung);
    assert_eq!(response.signature_text, format!("sig-2-{}", hung[0]));
    // Each attempt carried the RPC timeout, not what was left of the call's deadline.
    assert_eq!(c.timeouts(0), vec![Some(Duration::from_millis(500))]);
    assert_eq!(c.timeouts(1), vec![Some(Duration::from_millis(500))]);
    // The next call starts at the node that answered.
    c.pool.sign(request()).await.unwrap();
    assert_eq!(c.calls(0).len(), 1);
    assert_eq!(c.calls(1).len(), 2);
}

#[tokio::test]
async fn a_frozen_node_is_left_on_the_clients_own_timeout() {
    // Nothing on a frozen node answers, not even a timeout status: only the pool's own timers
    // can end the attempt.
    let c = cluster(&[Some(Behavior::Frozen), Some(Behavior::Sign)], patient()).await;
    let response = c.pool.sign(request()).await.unwrap();
    assert_eq!(c.calls(0), vec![CONNECTION]);
    let signed = c.calls(1);
    assert_eq!(signed.len(), 1);
    assert_eq!(response.signature_text, format!("sig-2-{}", signed[0]));
}

#[tokio::test]
async fn unavailable_when_no_node_answers_within_the_deadline() {
    // Far more attempts allowed than fit in the deadline: only the deadline can end the call.
    let options = PoolOptions {
        deadline: Duration::from_secs(2),
        max_attempts: 1_000,
        ..fast()
    };
    let c = cluster(&[None, Some(Behavior::NoLeader), None], options).await;
    let (attempts, last_error) = match c.pool.sign(request()).await {
        Err(ClientError::Unavailable {
            attempts,
            last_error,
        }) => (attempts, last_error),
        other => panic!("{other:?}"),
    };
    assert!(
        attempts < 1_000,
        "the attempt bound ended the call: {attempts}"
    );
    // Round robin from node 1: node 2 got attempts 2, 5, 8, …; the others are down.
    assert_eq!(c.calls(1).len(), (attempts as usize + 1) / 3);
    // Every node was tried; the error names each one's last failure.
    let failures: Vec<&str> = last_error.split("; ").collect();
    assert_eq!(failures.len(), 3, "{last_error}");
    assert!(
        failures[0].starts_with("node-1: Unavailable: "),
        "{last_error}"
    );
    assert!(failures[0].contains("Connection refused"), "{last_error}");
    assert_eq!(failures[1], "node-2: Unavailable: no leader known");
    assert!(
        failures[2].starts_with("node-3: Unavailable: "),
        "{last_error}"
    );
    assert!(failures[2].contains("Connection refused"), "{last_error}");
    // Bounded attempts, too.
    let options = PoolOptions {
        max_attempts: 2,
        ..patient()
    };
    let c = cluster(&[Some(Behavior::NoLeader)], options).await;
    match c.pool.sign(request()).await {
        Err(ClientError::Unavailable { attempts, .. }) => assert_eq!(attempts, 2),
        other => panic!("{other:?}"),
    }
    assert_eq!(c.calls(0).len(), 2);
}

#[tokio::test]
async fn status_and_keys() {
    let c = cluster(&[None, Some(Behavior::Sign), Some(Behavior::Sign)], fast()).await;
    let statuses = c.pool.cluster_statuses().await;
    assert_eq!(statuses.len(), 3);
    assert!(statuses[0]
        .1
        .as_ref()
        .is_err_and(ClientError::is_unavailable));
    assert_eq!(statuses[2].1.as_ref().unwrap().node_id, 3);
    assert_eq!(c.pool.find_leader().await, Some(3));
    assert!(matches!(
        c.pool.cluster_status(9).await,
        Err(ClientError::UnknownNode(9))
    ));
    let keys = c.pool.public_keys().await.unwrap();
    assert_eq!(keys[0].key_id, "demo-eth2");
    assert_eq!(
        c.pool.sign_on(2, request()).await.unwrap().signature_text,
        "sig-2-"
    );
    assert!(c
        .pool
        .sign_on(1, request())
        .await
        .unwrap_err()
        .is_unavailable());
}

#[tokio::test]
async fn a_client_certificate_from_another_ca_gets_no_answer() {
    let c = cluster(&[Some(Behavior::Sign)], fast()).await;
    let other = TempDir::new("other-ca");
    let foreign = DevPki::create(&other.0, &[], &["seq-1"]).unwrap();
    // Trusts the cluster's CA, presents a certificate of another CA.
    let tls = TlsMaterial::read(
        &c._dir.0.join("ca.pem"),
        &foreign.client_cert_path("seq-1"),
        &foreign.client_key_path("seq-1"),
    )
    .unwrap();
    let options = PoolOptions {
        deadline: Duration::from_millis(700),
        ..fast()
    };
    let pool = SignerPool::from_endpoints(&c.endpoints, &tls, options)
        .await
        .unwrap();
    let result = pool.sign(request()).await;
    assert!(
        result.as_ref().is_err_and(ClientError::is_unavailable),
        "{result:?}"
    );
    assert!(c.calls(0).is_empty());
}

#[test]
fn descriptor_round_trips_and_resolves_paths() {
    let dir = TempDir::new("descriptor");
    let descriptor = ClusterDescriptor {
        cluster_id: "dev".into(),
        nodes: vec![NodeEndpoint {
            id: 1,
            client_addr: "127.0.0.1:7100".parse().unwrap(),
            peer_addr: "127.0.0.1:7101".parse().unwrap(),
            web3signer_url: None,
        }],
        ca: PathBuf::from("pki/ca.pem"),
        clients: BTreeMap::from([(
            "seq-1".to_owned(),
            ClientFiles {
                cert: PathBuf::from("pki/client-seq-1.pem"),
                key: PathBuf::from("/abs/client-seq-1.key"),
            },
        )]),
        admins: BTreeMap::from([(
            "admin-1".to_owned(),
            AdminKey {
                key: PathBuf::from("admin-1.key"),
                public_key: "0x00".into(),
            },
        )]),
        keys: vec!["demo-espresso".into(), "demo-eth2".into()],
    };
    descriptor.save(&dir.0).unwrap();
    let loaded = ClusterDescriptor::load(&dir.0).unwrap();
    assert_eq!(loaded.ca, dir.0.join("pki/ca.pem"));
    assert_eq!(
        loaded.clients["seq-1"].cert,
        dir.0.join("pki/client-seq-1.pem")
    );
    assert_eq!(
        loaded.clients["seq-1"].key,
        PathBuf::from("/abs/client-seq-1.key")
    );
    assert_eq!(loaded.admins["admin-1"].key, dir.0.join("admin-1.key"));
    assert_eq!(loaded.keys, descriptor.keys);
    assert_eq!(loaded.node(1), descriptor.node(1));
    assert_eq!(
        ClusterDescriptor::load(&dir.0.join(DESCRIPTOR_FILE)).unwrap(),
        loaded
    );
    assert!(matches!(
        loaded.client_tls("seq-9"),
        Err(ClientError::Descriptor { .. })
    ));

    std::fs::write(dir.0.join(DESCRIPTOR_FILE), "{\"cluster_id\": 1}").unwrap();
    assert!(matches!(
        ClusterDescriptor::load(&dir.0),
        Err(ClientError::Descriptor { .. })
    ));
    assert!(matches!(
        ClusterDescriptor::load(&dir.0.join("missing")),
        Err(ClientError::Descriptor { .. })
    ));
}

#[test]
fn a_view_names_a_few_keys_and_counts_many() {
    let status = |keys: usize| pb::ClusterStatus {
        leader_id: 2,
        term: 7,
        last_applied_index: 42,
        voters: vec![1, 2, 3],
        keys_loaded: (0..keys).map(|i| format!("k{i}")).collect(),
        ..Default::default()
    };
    assert_eq!(
        crate::describe_view(&status(2)),
        "leader node-2  term 7  applied 42  voters [1, 2, 3]  keys k0,k1"
    );
    assert_eq!(
        crate::describe_view(&status(10_000)),
        "leader node-2  term 7  applied 42  voters [1, 2, 3]  keys 10000 \
         (k0,k1,k2,k3,k4,k5,k6,k7,… — `signerctl key list` lists them)"
    );
}

/// What the pool retries on another node: statuses the client made up from a broken connection
/// (they carry the transport or HTTP/2 error as their source), never the same code sent by a
/// server (no source), which is a definitive answer.
#[test]
fn a_connection_broken_mid_call_is_unavailable_a_server_status_is_not() {
    use tonic::{Code, Status};
    let made_up = |code: Code| {
        let mut s = Status::new(code, "h2 protocol error: http2 error");
        s.set_source(Arc::new(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "connection reset",
        )));
        s
    };
    for code in [Code::Internal, Code::Unknown] {
        assert!(failover::is_unavailable(&made_up(code)), "{code:?}");
        assert!(
            !failover::is_unavailable(&Status::new(code, "x")),
            "{code:?}"
        );
    }
    for code in [Code::Unavailable, Code::DeadlineExceeded, Code::Cancelled] {
        assert!(
            failover::is_unavailable(&Status::new(code, "x")),
            "{code:?}"
        );
    }
    for code in [
        Code::FailedPrecondition,
        Code::PermissionDenied,
        Code::InvalidArgument,
    ] {
        assert!(!failover::is_unavailable(&made_up(code)), "{code:?}");
    }
}
