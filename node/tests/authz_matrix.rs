//! The authorization matrix: every Admin and Signer RPC × {no client certificate, a
//! certificate from another CA, a certificate of another identity, a non-admin (for Admin RPCs:
//! a sequencer; for Signer RPCs: an admin), one approval short (changing Admin actions, with a
//! 2-of-2 policy), the authorized caller}. Every cell has one exact expected outcome: the TLS
//! alert the server ends the handshake with (and the RPC never reaches a service), the gRPC
//! code and message of the refusal, an approval that stays pending and changes nothing, or —
//! for the authorized caller only — success with the value the RPC must return (signatures
//! verified over digests the test computes itself, with `oracle/`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod oracle;
mod support;

use rustls::AlertDescription;
use signer_node::pb;
use signer_node::pb::propose_request::Request as P;
use signer_node::scheme::{bls12_381, bn254};
use std::time::Duration;
use support::{eth2_block, local_kek, quorum_vote, Cluster, ESPRESSO_KEY, ETH2_KEY, GVR};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::Code;

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

#[derive(Clone, Copy, Debug, PartialEq)]
enum Rpc {
    // Admin: changing (propose + approvals), then reads.
    ProposeAndApprove,
    ListChallenges,
    ListKeys,
    GetAdminState,
    ExportProtection,
    // Audit: a backup of the replicated state (auditors and enrolled admins).
    Backup,
    // Signer.
    Sign,
    SignBatch,
    GetPublicKeys,
    GetClusterStatus,
}

const RPCS: [Rpc; 10] = [
    Rpc::ProposeAndApprove,
    Rpc::ListChallenges,
    Rpc::ListKeys,
    Rpc::GetAdminState,
    Rpc::ExportProtection,
    Rpc::Backup,
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

    /// Whether the caller presents the admin column's identity (admin-1 when authorized).
    fn as_admin(self) -> bool {
        self.is_admin() || self == Rpc::Backup
    }
}

/// What one cell of the matrix did.
#[derive(Debug, PartialEq)]
enum Outcome {
    /// The server ended the TLS handshake with this alert, and the RPC over the same
    /// credentials failed in the transport (no service answered it).
    Handshake(AlertDescription),
    /// The RPC failed in the transport (no gRPC status from a service).
    Transport(String),
    /// A service answered with this status: code and message.
    Status(Code, String),
    /// The approval counted (by these admins) but the action is pending and not in effect.
    Pending { approved_by: Vec<String> },
    /// The call succeeded, and what it returned or changed was checked.
    Done,
    /// Anything else (described).
    Other(String),
}

/// The one outcome `caller` must get from `rpc`.
fn expected(rpc: Rpc, caller: Caller) -> Outcome {
    // The identities whose grants or enrollment are missing (see `Matrix::channel`).
    let denied = |who: &str| {
        let message = match rpc {
            _ if rpc.is_admin() => format!("{who:?} is not an enrolled admin"),
            Rpc::Backup => format!("{who:?} is not an auditor or an enrolled admin"),
            Rpc::GetClusterStatus => format!(
                "{who:?} has no access grant and is neither an enrolled admin nor an auditor"
            ),
            _ => format!("client {who:?} has no access grant"),
        };
        Outcome::Status(Code::PermissionDenied, message)
    };
    match caller {
        Caller::NoCert => Outcome::Handshake(AlertDescription::CertificateRequired),
        Caller::WrongCa => Outcome::Handshake(AlertDescription::UnknownCA),
        Caller::OtherIdentity => denied("nobody-1"),
        Caller::NonAdmin if rpc.as_admin() => denied("seq-1"),
        // An enrolled admin reads every node's loaded and pending keys.
        Caller::NonAdmin if rpc == Rpc::GetClusterStatus => Outcome::Done,
        Caller::NonAdmin => denied("admin-1"),
        Caller::OneApprovalShort => Outcome::Pending {
            approved_by: vec!["admin-1".into()],
        },
        Caller::Authorized => Outcome::Done,
    }
}

/// The outcome of a failed RPC: a transport failure, or the status a service answered.
fn failed(status: tonic::Status) -> Outcome {
    if support::is_transport_failure(&status) {
        Outcome::Transport(format!("{status:?}"))
    } else {
        Outcome::Status(status.code(), status.message().to_owned())
    }
}

/// The espresso key's signature over `message`, verified.
fn verify_espresso(public_key: &[u8], message: &[u8; 32], signature: &[u8]) -> bool {
    let pk = bn254::PublicKey::from_bytes(public_key).unwrap();
    bn254::Signature::from_bytes(signature).is_ok_and(|s| s.verify(&pk, message))
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

    /// The identity `caller` presents for `rpc` (for the TLS rejections: the name in the
    /// foreign certificate; none for `NoCert`).
    fn identity(caller: Caller, rpc: Rpc) -> &'static str {
        let (admin, seq) = match caller {
            Caller::OtherIdentity => ("nobody-1", "nobody-1"),
            Caller::NonAdmin => ("seq-1", "admin-1"),
            _ => ("admin-1", "seq-1"),
        };
        if rpc.as_admin() {
            admin
        } else {
            seq
        }
    }

    /// The channel `caller` uses for `rpc`.
    fn channel(&self, caller: Caller, rpc: Rpc) -> Channel {
        let ca = Certificate::from_pem(std::fs::read(self.cluster.pki.ca_cert_path()).unwrap());
        let name = format!("node-{}", self.leader);
        let id = Self::identity(caller, rpc);
        let tls = match caller {
            Caller::NoCert => ClientTlsConfig::new().ca_certificate(ca).domain_name(name),
            Caller::WrongCa => signer_node::tls::TlsMaterial::read(
                &self.cluster.pki.ca_cert_path(),
                &self.other_pki.client_cert_path(id),
                &self.other_pki.client_key_path(id),
            )
            .unwrap()
            .client_config(&name)
            .unwrap(),
            _ => self.cluster.tls(id).client_config(&name).unwrap(),
        };
        self.endpoint().tls_config(tls).unwrap().connect_lazy()
    }

    /// The alert the leader's client port ends a bare TLS handshake with, for `caller`'s
    /// credentials (`NoCert` or `WrongCa`).
    async fn handshake_alert(&self, caller: Caller, rpc: Rpc) -> Result<AlertDescription, String> {
        let id = Self::identity(caller, rpc);
        let (cert, key) = (
            self.other_pki.client_cert_path(id),
            self.other_pki.client_key_path(id),
        );
        let client = match caller {
            Caller::NoCert => None,
            Caller::WrongCa => Some((cert.as_path(), key.as_path())),
            other => panic!("{other:?} is not a TLS rejection"),
        };
        support::handshake_alert(
            self.cluster.node(self.leader).client_addr,
            &format!("node-{}", self.leader),
            &self.cluster.pki.ca_cert_path(),
            client,
        )
        .await
    }

    /// Call `rpc` as `caller`.
    async fn call(&mut self, caller: Caller, rpc: Rpc) -> Outcome {
        if matches!(caller, Caller::NoCert | Caller::WrongCa) {
            let alert = match self.handshake_alert(caller, rpc).await {
                Ok(alert) => alert,
                Err(e) => return Outcome::Other(e),
            };
            // The same credentials through the gRPC client: refused below any service.
            return match self.rpc(caller, rpc).await {
                Outcome::Transport(_) => Outcome::Handshake(alert),
                other => other,
            };
        }
        self.rpc(caller, rpc).await
    }

    /// Call `rpc` as `caller` through the gRPC client; on success, check what it returned.
    async fn rpc(&mut self, caller: Caller, rpc: Rpc) -> Outcome {
        let channel = self.channel(caller, rpc);
        let mut admin = pb::admin_client::AdminClient::new(channel.clone());
        let mut auditor = pb::audit_client::AuditClient::new(channel.clone());
        let mut signer = pb::signer_client::SignerClient::new(channel);
        self.view += 1;
        let view = self.view;
        let cluster = &self.cluster;
        match rpc {
            Rpc::ProposeAndApprove => {
                let key_id = format!("m-{caller:?}");
                let challenge = match admin
                    .propose(pb::ProposeRequest {
                        request: Some(P::GenerateKey(pb::GenerateKeyRequest {
                            key_id: key_id.clone(),
                            profile: "espresso".into(),
                        })),
                    })
                    .await
                {
                    Ok(c) => c.into_inner(),
                    Err(s) => return failed(s),
                };
                assert_eq!(
                    (challenge.threshold, challenge.status.as_str()),
                    (2, "pending")
                );
                // admin-1 approves through this caller's channel; the authorized caller's
                // challenge also gets admin-2's approval (2 of 2).
                let reviewed = signer_node::client::review(&challenge, "test-cluster").unwrap();
                let mut a1 = cluster.approver("admin-1");
                let sig =
                    signer_node::client::Approver::sign(&mut a1, &reviewed.statement).unwrap();
                let first = match admin
                    .approve(pb::ApproveRequest {
                        challenge_id: challenge.id.clone(),
                        signature: sig,
                    })
                    .await
                {
                    Ok(r) => r.into_inner(),
                    Err(s) => return failed(s),
                };
                if (first.status.as_str(), first.threshold) != ("pending", 2) {
                    return Outcome::Other(format!("one of two approvals: {first:?}"));
                }
                if caller != Caller::Authorized {
                    return match cluster.key_info(&key_id).await {
                        None => Outcome::Pending {
                            approved_by: first.approved_by,
                        },
                        Some(info) => {
                            Outcome::Other(format!("in effect after one approval: {info:?}"))
                        }
                    };
                }
                let second = match cluster.approve_as("admin-2", &challenge).await {
                    Ok(r) => r,
                    Err(s) => return failed(s),
                };
                assert_eq!(second.status, "executed", "{second:?}");
                assert_eq!(second.approved_by, ["admin-1", "admin-2"]);
                let info = cluster
                    .key_info(&key_id)
                    .await
                    .expect("the key is in effect");
                assert_eq!(
                    (info.profile.as_str(), info.state.as_str()),
                    ("espresso", "active")
                );
                bn254::PublicKey::from_bytes(&info.public_key).expect("a BN254 public key");
                // Later rows sign and list keys on the leader: wait until it holds the key.
                cluster
                    .wait_all("the generated key is loaded on every node", |s| {
                        s.keys_loaded.contains(&key_id)
                    })
                    .await;
                Outcome::Done
            }
            Rpc::ListChallenges => {
                let mut list = match admin
                    .list_challenges(pb::ListChallengesRequest { all: true })
                    .await
                {
                    Ok(r) => r.into_inner().challenges,
                    Err(s) => return failed(s),
                };
                // The setup's enrollment and policy, then the matrix's two proposals (the other
                // callers never got to propose).
                list.sort_by_key(|c| c.created_at_ms);
                let seen: Vec<(&str, Vec<String>)> = list
                    .iter()
                    .map(|c| (c.status.as_str(), c.approved_by.clone()))
                    .collect();
                let a1 = || vec!["admin-1".to_owned()];
                let both = || vec!["admin-1".to_owned(), "admin-2".to_owned()];
                assert_eq!(
                    seen,
                    [
                        ("executed", a1()),
                        ("executed", a1()),
                        ("pending", a1()),
                        ("executed", both()),
                    ],
                    "{list:#?}"
                );
                assert!(
                    list[2].description.contains("m-OneApprovalShort"),
                    "{}",
                    list[2].description
                );
                assert!(
                    list[3].description.contains("m-Authorized"),
                    "{}",
                    list[3].description
                );
                Outcome::Done
            }
            Rpc::ListKeys => {
                let keys = match admin.list_keys(pb::ListKeysRequest {}).await {
                    Ok(r) => r.into_inner().keys,
                    Err(s) => return failed(s),
                };
                // The registry holds only the key the authorized caller's action generated.
                let listed: Vec<(&str, &str, &str)> = keys
                    .iter()
                    .map(|k| (k.key_id.as_str(), k.profile.as_str(), k.state.as_str()))
                    .collect();
                assert_eq!(listed, [("m-Authorized", "espresso", "active")]);
                Outcome::Done
            }
            Rpc::GetAdminState => {
                let state = match admin.get_admin_state(pb::GetAdminStateRequest {}).await {
                    Ok(r) => r.into_inner(),
                    Err(s) => return failed(s),
                };
                let mut admins: Vec<&str> = state.admins.iter().map(|a| a.name.as_str()).collect();
                admins.sort();
                assert_eq!(admins, ["admin-1", "admin-2"]);
                assert_eq!(state.policy.map(|p| p.threshold), Some(2));
                assert!(!state.paused);
                let mut clients: Vec<&str> =
                    state.clients.iter().map(|c| c.identity.as_str()).collect();
                clients.sort();
                assert_eq!(clients, ["seq-1", "seq-2", "seq-3"]);
                Outcome::Done
            }
            Rpc::ExportProtection => {
                let json = match admin
                    .export_protection(pb::ExportProtectionRequest {})
                    .await
                {
                    Ok(r) => r.into_inner().interchange_json,
                    Err(s) => return failed(s),
                };
                let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
                assert_eq!(
                    doc["metadata"]["genesis_validators_root"],
                    format!("0x{}", hex::encode(GVR))
                );
                assert_eq!(doc["metadata"]["interchange_format_version"], "5");
                // Nothing eth2 is signed before the SignBatch row.
                assert_eq!(doc["data"], serde_json::json!([]), "{json}");
                Outcome::Done
            }
            Rpc::Sign => {
                let signed = match signer.sign(quorum_vote(view, 1, "")).await {
                    Ok(r) => r.into_inner(),
                    Err(s) => return failed(s),
                };
                let digest = oracle::requests::quorum_vote_digest(view, 1);
                assert_eq!(signed.signed_message, digest);
                assert!(!signed.resigned);
                assert!(verify_espresso(
                    &cluster.espresso_public_key,
                    &digest,
                    &signed.signature
                ));
                Outcome::Done
            }
            Rpc::SignBatch => {
                let request = eth2_block(view, 1);
                let results = match signer
                    .sign_batch(pb::SignBatchRequest {
                        requests: vec![request],
                    })
                    .await
                {
                    Ok(r) => r.into_inner().results,
                    Err(s) => return failed(s),
                };
                assert_eq!(results.len(), 1);
                match results.into_iter().next().unwrap().result {
                    Some(pb::sign_batch_result::Result::Signed(s)) => {
                        let (_, fork_info) = signer_node::client::eth2::newest_fork_info(
                            &eth2_messages::NetworkSpec::mainnet(),
                        );
                        let digest = oracle::signing_root(
                            oracle::header_root(view, 0, [0; 32], [0; 32], [1; 32]),
                            oracle::domain(0, fork_info.fork.current_version, GVR),
                        );
                        assert_eq!(s.signed_message, digest);
                        let pk =
                            bls12_381::PublicKey::from_bytes(&cluster.eth2_public_key).unwrap();
                        let sig = bls12_381::Signature::from_bytes(&s.signature).unwrap();
                        assert!(sig.verify(&pk, &digest));
                        Outcome::Done
                    }
                    Some(pb::sign_batch_result::Result::Error(e)) => {
                        Outcome::Status(Code::from(e.code), e.message)
                    }
                    None => Outcome::Other("an empty batch result".into()),
                }
            }
            Rpc::GetPublicKeys => {
                let keys = match signer.get_public_keys(pb::GetPublicKeysRequest {}).await {
                    Ok(r) => r.into_inner().keys,
                    Err(s) => return failed(s),
                };
                let generated = cluster.key_info("m-Authorized").await.unwrap();
                let mut listed: Vec<(&str, &str, &[u8])> = keys
                    .iter()
                    .map(|k| {
                        (
                            k.key_id.as_str(),
                            k.profile.as_str(),
                            k.public_key.as_slice(),
                        )
                    })
                    .collect();
                listed.sort();
                assert_eq!(
                    listed,
                    [
                        (
                            ESPRESSO_KEY,
                            "espresso",
                            cluster.espresso_public_key.as_slice()
                        ),
                        (ETH2_KEY, "eth2", cluster.eth2_public_key.as_slice()),
                        ("m-Authorized", "espresso", generated.public_key.as_slice()),
                    ]
                );
                Outcome::Done
            }
            Rpc::Backup => {
                let mut stream = match auditor.backup(pb::BackupRequest {}).await {
                    Ok(r) => r.into_inner(),
                    Err(s) => return failed(s),
                };
                let mut file = Vec::new();
                while let Some(chunk) = stream.message().await.unwrap() {
                    file.extend_from_slice(&chunk.data);
                }
                let backup = signer_node::backup::decode(&file).unwrap();
                assert_eq!(backup.header.cluster_id, "test-cluster");
                assert!(backup.body.registry.keys.contains_key("m-Authorized"));
                Outcome::Done
            }
            Rpc::GetClusterStatus => {
                let status = match signer
                    .get_cluster_status(pb::GetClusterStatusRequest {})
                    .await
                {
                    Ok(r) => r.into_inner(),
                    Err(s) => return failed(s),
                };
                assert_eq!(
                    (status.node_id, status.leader_id),
                    (self.leader, self.leader)
                );
                assert_eq!(status.voters, [1, 2, 3]);
                let mut loaded = status.keys_loaded.clone();
                loaded.sort();
                assert_eq!(loaded, [ESPRESSO_KEY, ETH2_KEY, "m-Authorized"]);
                Outcome::Done
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_rpc_gives_each_caller_its_exact_outcome() {
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
    let mut wrong = Vec::new();
    for rpc in RPCS {
        for caller in CALLERS {
            // "One approval short" applies to actions that change something.
            if caller == Caller::OneApprovalShort && rpc != Rpc::ProposeAndApprove {
                continue;
            }
            let outcome = m.call(caller, rpc).await;
            let want = expected(rpc, caller);
            table.push(format!("{rpc:?} × {caller:?}: {outcome:?}"));
            if outcome != want {
                wrong.push(format!(
                    "{rpc:?} × {caller:?}:\n   got  {outcome:?}\n   want {want:?}"
                ));
            }
        }
    }
    println!("{}", table.join("\n"));
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // 5 Admin RPCs and Backup × 5 callers + one "one approval short" + 4 Signer RPCs × 5
    // callers.
    assert_eq!(table.len(), 6 * 5 + 1 + 4 * 5);
}
