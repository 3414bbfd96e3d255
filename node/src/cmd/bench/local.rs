//! The bench's in-process cluster: three real nodes as tasks of the bench process (loopback,
//! mutual TLS, redb with fsync), a bench client that may use every key, and a throwaway
//! admin that approves alone.
//!
//! Owns: starting and stopping that cluster and connecting to it. Must not: measure anything
//! (the other bench modules do).

use anyhow::{anyhow, Result};

use signer_node::client::{Approver, ClientError, PoolOptions, SignerPool};
use signer_node::config::admin::{AdminConfig, BootstrapAdmin, BootstrapClient};
use signer_node::config::{NodeConfig, PeerConfig, RaftConfig, TlsPaths, Web3SignerConfig};
use signer_node::keyring::KeyFile;
use signer_node::pb;
use signer_node::pb::signer_client::SignerClient;
use signer_node::protection::Profile;
use signer_node::tls::{DevPki, TlsMaterial};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tonic::transport::{Channel, Endpoint};

/// The cluster id of the bench cluster.
pub const CLUSTER_ID: &str = "bench";
/// The bench client's identity (granted every key and profile, no rate limit).
const CLIENT: &str = "bench";
/// The throwaway admin's identity (the policy's threshold is 1).
const ADMIN: &str = "bench-admin";

/// How long `stop` waits for the nodes to shut down before it aborts them.
const STOP_GRACE: Duration = Duration::from_secs(30);

/// A cluster of nodes running as tasks of this process. The tasks are owned: `stop` signals
/// and joins them, and dropping the cluster aborts any still running.
pub struct LocalCluster {
    _dir: tempfile::TempDir,
    stop: tokio::sync::watch::Sender<bool>,
    nodes: tokio::task::JoinSet<()>,
    client_addrs: Vec<(u64, std::net::SocketAddr)>,
    /// The Web3Signer-compatible API of each node.
    rest_addrs: Vec<(u64, std::net::SocketAddr)>,
    /// The bench client's certificate.
    pub tls: TlsMaterial,
    admin_tls: TlsMaterial,
    admin_key: ed25519_dalek::SigningKey,
}

impl LocalCluster {
    /// Start `n` nodes holding `keys_per_profile` key files of each profile (`eth2-<i>`,
    /// `espresso-<i>`).
    pub async fn start(n: u64, keys_per_profile: usize) -> Result<LocalCluster> {
        let dir = tempfile::tempdir()?;
        let ids: Vec<u64> = (1..=n).collect();
        let pki = DevPki::create(&dir.path().join("pki"), &ids, &[CLIENT, ADMIN])?;
        let keys_src = dir.path().join("keys");
        std::fs::create_dir_all(&keys_src)?;
        for i in 0..keys_per_profile {
            for (profile, name) in [(Profile::Eth2, "eth2"), (Profile::Espresso, "espresso")] {
                let id = format!("{name}-{i}");
                KeyFile::generate(&id, profile)?.write_new(&keys_src.join(format!("{id}.key")))?;
            }
        }
        let mut listeners = Vec::new();
        for &id in &ids {
            let client = TcpListener::bind("127.0.0.1:0").await?;
            let peer = TcpListener::bind("127.0.0.1:0").await?;
            let rest = TcpListener::bind("127.0.0.1:0").await?;
            listeners.push((id, client, peer, rest));
        }
        let peers: Vec<PeerConfig> = listeners
            .iter()
            .map(|(id, c, p, _)| -> Result<PeerConfig> {
                Ok(PeerConfig {
                    id: *id,
                    client_addr: c.local_addr()?,
                    peer_addr: p.local_addr()?,
                })
            })
            .collect::<Result<_>>()?;
        // The admin plane: a throwaway admin, and the bench client may use every key.
        let throwaway = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
        let admin = AdminConfig {
            admins: vec![BootstrapAdmin {
                name: ADMIN.into(),
                key: Some(format!(
                    "ed25519:{}",
                    hex::encode(throwaway.verifying_key().to_bytes())
                )),
                slot_certificate: None,
                device_certificate: None,
            }],
            clients: vec![BootstrapClient {
                identity: CLIENT.into(),
                keys: vec![signer_node::admin::ALL_KEYS.into()],
                profiles: vec![Profile::Eth2, Profile::Espresso],
                rate_per_second: 0,
                rate_burst: 0,
                raw_roots: false,
            }],
            ..AdminConfig::dev()
        };
        let (stop, _) = tokio::sync::watch::channel(false);
        let mut nodes = tokio::task::JoinSet::new();
        let mut client_addrs = Vec::new();
        let mut rest_addrs = Vec::new();
        for (id, client, peer, rest) in listeners {
            let tls = TlsPaths {
                ca: pki.ca_cert_path(),
                cert: pki.node_cert_path(id),
                key: pki.node_key_path(id),
            };
            let data_dir = dir.path().join(format!("node-{id}"));
            let config = NodeConfig::builder(id, CLUSTER_ID, data_dir, tls, peers.clone())
                .keys_dir(&keys_src)
                .raft(RaftConfig {
                    heartbeat_ms: 100,
                    election_min_ms: 400,
                    election_max_ms: 800,
                    ..RaftConfig::default()
                })
                .admin(admin.clone())
                .web3signer(Some(Web3SignerConfig::https(rest.local_addr()?)))
                .build()?;
            client_addrs.push((id, config.client_listen));
            rest_addrs.push((id, rest.local_addr()?));
            let mut stopped = stop.subscribe();
            let listeners = signer_node::node::Listeners {
                client,
                peer,
                metrics: None,
                web3signer: Some(rest),
            };
            nodes.spawn(async move {
                if let Err(e) = signer_node::node::run(config, listeners, async move {
                    let _ = stopped.wait_for(|s| *s).await;
                })
                .await
                {
                    eprintln!("node {id} stopped: {e}");
                }
            });
        }
        let read = |name: &str| {
            TlsMaterial::read(
                &pki.ca_cert_path(),
                &pki.client_cert_path(name),
                &pki.client_key_path(name),
            )
        };
        Ok(LocalCluster {
            _dir: dir,
            stop,
            nodes,
            client_addrs,
            rest_addrs,
            tls: read(CLIENT)?,
            admin_tls: read(ADMIN)?,
            admin_key: throwaway,
        })
    }

    /// A Signer client of node `id`, as the bench client.
    pub fn client(&self, id: u64) -> Result<SignerClient<Channel>> {
        let addr = self
            .client_addrs
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, a)| *a)
            .ok_or_else(|| anyhow!("no node {id}"))?;
        let channel = Endpoint::from_shared(format!("https://{addr}"))?
            .tls_config(self.tls.client_config(&format!("node-{id}"))?)?
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(10))
            .connect_lazy();
        Ok(SignerClient::new(channel))
    }

    /// Node `id`'s Web3Signer-compatible API address.
    pub fn rest_addr(&self, id: u64) -> Result<std::net::SocketAddr> {
        self.rest_addrs
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, a)| *a)
            .ok_or_else(|| anyhow!("no node {id}"))
    }

    /// A failover pool over every node, as the throwaway admin, with its approver.
    pub async fn admin(&self) -> Result<(SignerPool, BenchApprover)> {
        let options = PoolOptions {
            rpc_timeout: Duration::from_secs(60),
            deadline: Duration::from_secs(120),
            ..PoolOptions::default()
        };
        let pool = SignerPool::from_endpoints(&self.client_addrs, &self.admin_tls, options).await?;
        Ok((pool, BenchApprover(self.admin_key.clone())))
    }

    /// The eth2 keys' public keys (`0x…` hex) by key id, as node `id` lists them.
    pub async fn eth2_public_keys(
        &self,
        id: u64,
    ) -> Result<std::collections::HashMap<String, String>> {
        let keys = self
            .client(id)?
            .get_public_keys(pb::GetPublicKeysRequest {})
            .await?
            .into_inner()
            .keys;
        Ok(keys
            .into_iter()
            .filter(|k| k.profile == Profile::Eth2.name())
            .map(|k| (k.key_id, format!("0x{}", hex::encode(k.public_key))))
            .collect())
    }

    /// Wait for a leader that has committed an entry; return its id.
    pub async fn leader(&self) -> Result<u64> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            for &(id, _) in &self.client_addrs {
                if let Ok(s) = self
                    .client(id)?
                    .get_cluster_status(pb::GetClusterStatusRequest {})
                    .await
                {
                    let s = s.into_inner();
                    if s.leader_id == id && s.last_applied_index > 0 {
                        return Ok(id);
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(anyhow!("no leader within 30 s"))
    }

    /// Tell every node to shut down and wait until they have (for at most [`STOP_GRACE`];
    /// nodes still running then are aborted).
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        let joined = tokio::time::timeout(STOP_GRACE, async {
            while let Some(result) = self.nodes.join_next().await {
                if let Err(e) = result {
                    eprintln!("a node task failed: {e}");
                }
            }
        })
        .await;
        if joined.is_err() {
            eprintln!(
                "{} node(s) still running after {STOP_GRACE:?}; aborted",
                self.nodes.len()
            );
            self.nodes.shutdown().await;
        }
    }
}

/// The throwaway admin's approvals (an Ed25519 key that exists only in this process).
pub struct BenchApprover(ed25519_dalek::SigningKey);

impl Approver for BenchApprover {
    fn name(&self) -> &str {
        ADMIN
    }

    fn sign(&mut self, statement: &[u8]) -> Result<Vec<u8>, ClientError> {
        use ed25519_dalek::Signer as _;
        Ok(self.0.sign(statement).to_bytes().to_vec())
    }
}
