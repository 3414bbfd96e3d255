//! The authorization matrix: every Admin and Signer RPC × {no client certificate, a
//! certificate from another CA, a certificate of another identity, a non-admin (for Admin RPCs:
//! a sequencer; for Signer RPCs: an admin), one approval short (changing Admin actions, with a
//! 2-of-2 policy), the authorized caller}. Only the last succeeds; for changing actions
//! "succeeds" means the action took effect.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use signer_node::pb;
use signer_node::pb::propose_request::Request as P;
use std::time::Duration;
use support::{eth2_block, local_kek, quorum_vote, Cluster};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Caller {
    NoCert,
    WrongCa,
    OtherIdentity,
    NonAdmin,
    OneApprovalShort,
    Authorized,
}

const CALLERS: [Caller; 6] = [
    Caller::NoCert,
    Caller::WrongCa,
    Caller::OtherIdentity,
    Caller::NonAdmin,
    Caller::OneApprovalShort,
    Caller::Authorized,
];

#[derive(Clone, Copy, Debug)]
enum Rpc {
    // Admin: changing (propose + approvals), then reads.
    ProposeAndApprove,
    ListChallenges,
    ListKeys,
    GetAdminState,
    ExportProtection,
    // Signer.
    Sign,
    SignBatch,
    GetPublicKeys,
    GetClusterStatus,
}

const RPCS: [Rpc; 9] = [
    Rpc::ProposeAndApprove,
    Rpc::ListChallenges,
    Rpc::ListKeys,
    Rpc::GetAdminState,
    Rpc::ExportProtection,
    Rpc::Sign,
    Rpc::SignBatch,
    Rpc::GetPublicKeys,
    Rpc::GetClusterStatus,
];

impl Rpc {
    fn is_admin(self) -> bool {
        matches!(
            self,
            Rpc::ProposeAndApprove
                | Rpc::ListChallenges
                | Rpc::ListKeys
                | Rpc::GetAdminState
                | Rpc::ExportProtection
        )
    }
}

struct Matrix {
    cluster: Cluster,
    leader: u64,
    _other_ca_dir: tempfile::TempDir,
    other_pki: signer_node::tls::DevPki,
    view: u64,
}

impl Matrix {
    fn endpoint(&self) -> Endpoint {
        Endpoint::from_shared(format!(
            "https://{}",
            self.cluster.node(self.leader).client_addr
        ))
        .unwrap()
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(10))
    }

    /// The channel `caller` uses for `rpc`.
    fn channel(&self, caller: Caller, rpc: Rpc) -> Channel {
        let ca = Certificate::from_pem(std::fs::read(self.cluster.pki.ca_cert_path()).unwrap());
        let name = format!("node-{}", self.leader);
        let identity = |admin: &str, seq: &str| if rpc.is_admin() { admin } else { seq }.to_owned();
        let tls = match caller {
            Caller::NoCert => ClientTlsConfig::new().ca_certificate(ca).domain_name(name),
            Caller::WrongCa => {
                let id = identity("admin-1", "seq-1");
                signer_node::tls::TlsMaterial::read(
                    &self.cluster.pki.ca_cert_path(),
                    &self.other_pki.client_cert_path(&id),
                    &self.other_pki.client_key_path(&id),
                )
                .unwrap()
                .client_config(&name)
                .unwrap()
            }
            Caller::OtherIdentity => self.cluster.tls("nobody-1").client_config(&name).unwrap(),
            Caller::NonAdmin => self
                .cluster
                .tls(&identity("seq-1", "admin-1"))
                .client_config(&name)
                .unwrap(),
            Caller::OneApprovalShort | Caller::Authorized => self
                .cluster
                .tls(&identity("admin-1", "seq-1"))
                .client_config(&name)
                .unwrap(),
        };
        self.endpoint().tls_config(tls).unwrap().connect_lazy()
    }

    /// Call `rpc` as `caller`; Ok when it succeeded (for a changing action: took effect).
    async fn call(&mut self, caller: Caller, rpc: Rpc) -> Result<(), String> {
        let channel = self.channel(caller, rpc);
        let mut admin = pb::admin_client::AdminClient::new(channel.clone());
        let mut signer = pb::signer_client::SignerClient::new(channel);
        self.view += 1;
        match rpc {
            Rpc::ProposeAndApprove => {
                let key_id = format!("m-{caller:?}");
                let challenge = admin
                    .propose(pb::ProposeRequest {
                        request: Some(P::GenerateKey(pb::GenerateKeyRequest {
                            key_id: key_id.clone(),
                            profile: "espresso".into(),
                        })),
                    })
                    .await
                    .map_err(|s| format!("{s:?}"))?
                    .into_inner();
                // admin-1 approves through this caller's channel; the authorized caller's
                // challenge also gets admin-2's approval (2 of 2).
                let reviewed = signer_node::client::review(&challenge, "test-cluster").unwrap();
                let mut a1 = self.cluster.approver("admin-1");
                let sig =
                    signer_node::client::Approver::sign(&mut a1, &reviewed.statement).unwrap();
                admin
                    .approve(pb::ApproveRequest {
                        challenge_id: challenge.id.clone(),
                        signature: sig,
                    })
                    .await
                    .map_err(|s| format!("{s:?}"))?;
                if caller == Caller::Authorized {
                    self.cluster
                        .approve_as("admin-2", &challenge)
                        .await
                        .map_err(|s| format!("{s:?}"))?;
                }
                match self.cluster.key_info(&key_id).await {
                    Some(_) => Ok(()),
                    None => Err("approved, but not in effect".into()),
                }
            }
            Rpc::ListChallenges => status_of(
                admin
                    .list_challenges(pb::ListChallengesRequest { all: true })
                    .await,
            ),
            Rpc::ListKeys => status_of(admin.list_keys(pb::ListKeysRequest {}).await),
            Rpc::GetAdminState => {
                status_of(admin.get_admin_state(pb::GetAdminStateRequest {}).await)
            }
            Rpc::ExportProtection => status_of(
                admin
                    .export_protection(pb::ExportProtectionRequest {})
                    .await,
            ),
            Rpc::Sign => status_of(signer.sign(quorum_vote(self.view, 1, "")).await),
            Rpc::SignBatch => status_of(
                signer
                    .sign_batch(pb::SignBatchRequest {
                        requests: vec![eth2_block(self.view, 1)],
                    })
                    .await
                    .and_then(|r| {
                        // A batch answers per request; the call succeeds only if its request
                        // was signed.
                        let r = r.into_inner();
                        match r.results.first().and_then(|x| x.result.as_ref()) {
                            Some(pb::sign_batch_result::Result::Signed(_)) => Ok(()),
                            other => Err(tonic::Status::unknown(format!("{other:?}"))),
                        }
                    }),
            ),
            Rpc::GetPublicKeys => {
                let keys = signer
                    .get_public_keys(pb::GetPublicKeysRequest {})
                    .await
                    .map_err(|s| format!("{s:?}"))?
                    .into_inner()
                    .keys;
                if keys.is_empty() {
                    Err("no keys listed".into())
                } else {
                    Ok(())
                }
            }
            Rpc::GetClusterStatus => status_of(
                signer
                    .get_cluster_status(pb::GetClusterStatusRequest {})
                    .await,
            ),
        }
    }
}

fn status_of<T>(r: Result<T, tonic::Status>) -> Result<(), String> {
    r.map(|_| ()).map_err(|s| format!("{s:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_the_authorized_caller_succeeds_for_every_rpc() {
    let cluster = Cluster::start_with(3, local_kek).await;
    // Two admins, both needed.
    let key = cluster.approver("admin-2").public_key();
    let signer_node::admin::ApproverKey::Ed25519(bytes) = key else {
        unreachable!()
    };
    cluster
        .admin_exec(P::EnrollAdmin(pb::EnrollAdminRequest {
            name: "admin-2".into(),
            key: Some(pb::enroll_admin_request::Key::Ed25519PublicKey(bytes)),
        }))
        .await
        .unwrap();
    cluster
        .admin_exec(P::SetPolicy(pb::ApprovalPolicy {
            threshold: 2,
            require_attestation: false,
            require_touch_always: true,
            challenge_ttl_ms: 900_000,
        }))
        .await
        .unwrap();
    let leader = cluster.wait_leader(Duration::from_secs(10)).await;
    let other_ca_dir = tempfile::tempdir().unwrap();
    let other_pki =
        signer_node::tls::DevPki::create(other_ca_dir.path(), &[], &["seq-1", "admin-1"]).unwrap();
    let mut m = Matrix {
        cluster,
        leader,
        _other_ca_dir: other_ca_dir,
        other_pki,
        view: 100,
    };

    let mut table = Vec::new();
    for rpc in RPCS {
        for caller in CALLERS {
            // "One approval short" applies to actions that change something.
            if caller == Caller::OneApprovalShort && !matches!(rpc, Rpc::ProposeAndApprove) {
                continue;
            }
            let result = m.call(caller, rpc).await;
            table.push(format!(
                "{rpc:?} × {caller:?}: {}",
                match &result {
                    Ok(()) => "ok".to_owned(),
                    Err(e) => format!("refused ({})", e.chars().take(90).collect::<String>()),
                }
            ));
            assert_eq!(
                result.is_ok(),
                caller == Caller::Authorized,
                "{rpc:?} × {caller:?}: {result:?}"
            );
        }
    }
    println!("{}", table.join("\n"));
}
