//! The `signer.v1.Admin` calls of [`SignerPool`], and the approver side of the M-of-N flow:
//! reviewing a challenge and signing its statement.
//!
//! Owns: [`Approver`] (anything that signs approval statements as one admin) with the
//! development implementation [`SoftApprover`] (an Ed25519 key file), [`review`] (decode the
//! challenge's action from its bytes, recompute its digest, check the cluster, build the
//! statement), and the admin RPCs through the pool's failover loop. Must not: decide rules (the
//! cluster does), read PINs or talk to a YubiKey (`signerctl --features yubikey` does), or
//! retry a definitive answer.
//!
//! The pool's client certificate is the caller's identity: it must name an enrolled admin, and
//! an approval sent through a pool must be signed by that admin's key.
//!
//! To ensure correctness:
//! - an approver signs only a statement built from a challenge whose action bytes it decoded
//!   and whose digest it recomputed itself, for the cluster it expects; the node's description
//!   is not trusted;
//! - an [`ImportSecret`] is neither `Clone` nor printable and lives in zeroizing buffers.

use super::{ClientError, SignerPool};
use crate::pb;
use crate::pb::admin_client::AdminClient;
use signer_core::admin::codec as admin_codec;
use signer_core::admin::{approval, Action};
use signer_core::protection::Profile;
use std::future::Future;
use std::path::Path;
use tonic::transport::Channel;
use tonic::Status;
use zeroize::Zeroizing;

/// The secret of a key to import.
pub enum ImportSecret {
    /// The 32-byte secret scalar: big-endian for eth2, little-endian (jf-signature) for
    /// espresso.
    Raw(Zeroizing<Vec<u8>>),
    /// An EIP-2335 keystore (eth2 only), decrypted by the cluster with `password`.
    Keystore {
        /// The keystore file's JSON text.
        json: String,
        /// The keystore's password.
        password: Zeroizing<String>,
    },
}

impl std::fmt::Debug for ImportSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ImportSecret::Raw(_) => f.write_str("ImportSecret::Raw(<redacted>)"),
            ImportSecret::Keystore { .. } => f.write_str("ImportSecret::Keystore(<redacted>)"),
        }
    }
}

impl ImportSecret {
    /// The import proposal for `key_id`.
    pub fn request(&self, key_id: &str, profile: Profile) -> pb::propose_request::Request {
        let secret = match self {
            ImportSecret::Raw(bytes) => pb::import_key_request::Secret::RawSecret(bytes.to_vec()),
            ImportSecret::Keystore { json, password } => {
                pb::import_key_request::Secret::Keystore(pb::Eip2335Keystore {
                    keystore_json: json.clone(),
                    password: password.as_str().to_owned(),
                })
            }
        };
        pb::propose_request::Request::ImportKey(pb::ImportKeyRequest {
            key_id: key_id.to_owned(),
            profile: profile.name().to_owned(),
            secret: Some(secret),
        })
    }
}

/// Signs approval statements as one admin.
pub trait Approver {
    /// The admin's name (= the identity of their client certificate).
    fn name(&self) -> &str;
    /// Sign `statement` (see [`approval::statement`]).
    fn sign(&mut self, statement: &[u8]) -> Result<Vec<u8>, ClientError>;
}

/// A development approver: an Ed25519 key file (32-byte seed, hex).
pub struct SoftApprover {
    name: String,
    key: ed25519_dalek::SigningKey,
}

impl SoftApprover {
    /// Read `name`'s key from `path`.
    pub fn load(name: &str, path: &Path) -> Result<SoftApprover, ClientError> {
        let bad = |reason: String| ClientError::Descriptor {
            path: path.to_owned(),
            reason,
        };
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?);
        let bytes = Zeroizing::new(
            hex::decode(text.trim().trim_start_matches("0x"))
                .map_err(|e| bad(format!("not hex: {e}")))?,
        );
        let seed: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
            bad(format!(
                "expected a 32-byte seed, got {} bytes",
                bytes.len()
            ))
        })?;
        Ok(SoftApprover {
            name: name.to_owned(),
            key: ed25519_dalek::SigningKey::from_bytes(&seed),
        })
    }

    /// The public key in the `ed25519:<hex>` form admins are enrolled with.
    pub fn public_key(&self) -> signer_core::admin::ApproverKey {
        signer_core::admin::ApproverKey::Ed25519(self.key.verifying_key().to_bytes().to_vec())
    }
}

impl Approver for SoftApprover {
    fn name(&self) -> &str {
        &self.name
    }

    fn sign(&mut self, statement: &[u8]) -> Result<Vec<u8>, ClientError> {
        use ed25519_dalek::Signer as _;
        Ok(self.key.sign(statement).to_bytes().to_vec())
    }
}

/// A challenge as an approver checked it.
#[derive(Debug)]
pub struct Reviewed {
    /// The action, decoded from the challenge's bytes. What to show the approver is
    /// [`Action::describe`] and [`Action::review`] of it: functions of these bytes alone (what
    /// an action replaces travels inside them, and every replica checks it when applying), so
    /// every approver reads the same text, bound to the digest they sign.
    pub action: Action,
    /// The statement to sign.
    pub statement: Vec<u8>,
}

/// Decode and check `challenge` for `cluster_id`: the action comes from the bytes, the digest
/// is recomputed, and the statement binds this cluster, challenge, digest and expiry.
pub fn review(challenge: &pb::Challenge, cluster_id: &str) -> Result<Reviewed, ClientError> {
    let reject = |m: String| ClientError::Other(Box::new(Status::failed_precondition(m)));
    if challenge.cluster_id != cluster_id {
        return Err(reject(format!(
            "challenge is for cluster {:?}, not {cluster_id:?}",
            challenge.cluster_id
        )));
    }
    let id: [u8; 32] = challenge
        .id
        .as_slice()
        .try_into()
        .map_err(|_| reject("challenge id is not 32 bytes".into()))?;
    let action =
        admin_codec::decode_action(&challenge.action).map_err(|e| reject(e.to_string()))?;
    let digest = approval::action_digest(&challenge.action);
    if challenge.action_digest != digest {
        return Err(reject(
            "the challenge's digest does not match its action bytes".into(),
        ));
    }
    Ok(Reviewed {
        action,
        statement: approval::statement(cluster_id, &id, &digest, challenge.expires_at_ms),
    })
}

impl SignerPool {
    /// Propose an admin action; returns the open challenge.
    pub async fn propose(
        &self,
        request: pb::propose_request::Request,
    ) -> Result<pb::Challenge, ClientError> {
        let message = pb::ProposeRequest {
            request: Some(request),
        };
        self.admin_call(
            || message.clone(),
            |mut admin, rpc| async move { admin.propose(rpc).await },
        )
        .await
        .map(|(_, c)| c)
    }

    /// Review `challenge` for `cluster_id` and send `approver`'s approval. The pool's client
    /// certificate must be `approver`'s identity.
    pub async fn approve(
        &self,
        challenge: &pb::Challenge,
        cluster_id: &str,
        approver: &mut dyn Approver,
    ) -> Result<pb::ApproveResponse, ClientError> {
        let reviewed = review(challenge, cluster_id)?;
        let signature = approver.sign(&reviewed.statement)?;
        self.send_approval(&challenge.id, &signature).await
    }

    /// Send an approval signature as it is (tests use this to replay or misuse approvals).
    pub async fn send_approval(
        &self,
        challenge_id: &[u8],
        signature: &[u8],
    ) -> Result<pb::ApproveResponse, ClientError> {
        let message = pb::ApproveRequest {
            challenge_id: challenge_id.to_vec(),
            signature: signature.to_vec(),
        };
        self.admin_call(
            || message.clone(),
            |mut admin, rpc| async move { admin.approve(rpc).await },
        )
        .await
        .map(|(_, r)| r)
    }

    /// Propose and approve with `approver` (enough on its own when the threshold is 1).
    pub async fn propose_and_approve(
        &self,
        request: pb::propose_request::Request,
        cluster_id: &str,
        approver: &mut dyn Approver,
    ) -> Result<(pb::Challenge, pb::ApproveResponse), ClientError> {
        let challenge = self.propose(request).await?;
        let response = self.approve(&challenge, cluster_id, approver).await?;
        Ok((challenge, response))
    }

    /// Open challenges (with `all`, also decided ones still retained).
    pub async fn challenges(&self, all: bool) -> Result<Vec<pb::Challenge>, ClientError> {
        self.admin_call(
            || pb::ListChallengesRequest { all },
            |mut admin, rpc| async move { admin.list_challenges(rpc).await },
        )
        .await
        .map(|(_, r)| r.challenges)
    }

    /// The challenge whose hex id starts with `prefix` (at least 8 hex digits).
    pub async fn challenge(&self, prefix: &str) -> Result<pb::Challenge, ClientError> {
        let prefix = prefix.to_ascii_lowercase();
        let not_found = |m: String| ClientError::Other(Box::new(Status::not_found(m)));
        if prefix.len() < 8 {
            return Err(not_found(
                "give at least 8 hex digits of the challenge id".into(),
            ));
        }
        let mut matching: Vec<pb::Challenge> = self
            .challenges(true)
            .await?
            .into_iter()
            .filter(|c| hex::encode(&c.id).starts_with(&prefix))
            .collect();
        match matching.len() {
            1 => Ok(matching.remove(0)),
            0 => Err(not_found(format!("no challenge {prefix}"))),
            n => Err(not_found(format!(
                "{n} challenges start with {prefix}; give more digits"
            ))),
        }
    }

    /// Every key of the registry, with the id of the node that answered (`loaded_here` and
    /// `pending_reason` are that node's).
    pub async fn list_keys(&self) -> Result<(u64, Vec<pb::AdminKeyInfo>), ClientError> {
        self.admin_call(
            || pb::ListKeysRequest {},
            |mut admin, rpc| async move { admin.list_keys(rpc).await },
        )
        .await
        .map(|(node, response)| (node, response.keys))
    }

    /// Admins, policy, client grants and pause state.
    pub async fn admin_state(&self) -> Result<pb::AdminStateResponse, ClientError> {
        self.admin_call(
            || pb::GetAdminStateRequest {},
            |mut admin, rpc| async move { admin.get_admin_state(rpc).await },
        )
        .await
        .map(|(_, r)| r)
    }

    /// The eth2 slashing-protection records as an EIP-3076 document.
    pub async fn export_protection(&self) -> Result<String, ClientError> {
        self.admin_call(
            || pb::ExportProtectionRequest {},
            |mut admin, rpc| async move { admin.export_protection(rpc).await },
        )
        .await
        .map(|(_, r)| r.interchange_json)
    }

    /// One admin RPC with failover: `request` builds each attempt's message.
    async fn admin_call<R, T, B, F, Fut>(&self, request: B, rpc: F) -> Result<(u64, T), ClientError>
    where
        B: Fn() -> R,
        F: Fn(AdminClient<Channel>, tonic::Request<R>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        self.with_failover(ClientError::from_admin_answer, |channel, timeout| {
            let mut message = tonic::Request::new(request());
            message.set_timeout(timeout);
            let call = rpc(AdminClient::new(channel), message);
            async move { call.await.map(tonic::Response::into_inner) }
        })
        .await
    }
}
