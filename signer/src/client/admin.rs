//! The `signer.v1.Admin` calls of [`SignerPool`]: generate and import keys, list the registry,
//! enable, disable or delete a key, and re-wrap keys under the current KEK.
//!
//! Owns: building the admin requests from typed arguments and running them through the pool's
//! one failover loop (the same as signing: UNAVAILABLE, as followers answer, moves on to the
//! next node, so a call ends up at the leader). Must not: decide lifecycle rules (the cluster
//! does), read secret files or ask for passwords (callers do), or retry a definitive answer.
//!
//! Authorization is the pool's client certificate: it must name an `admin-…` identity, else
//! every call answers PERMISSION_DENIED ([`ClientError::Other`]).
//!
//! To ensure correctness:
//! - an [`ImportSecret`] is neither `Clone` nor printable (`Debug` redacts it) and lives in
//!   zeroizing buffers; it is copied into each attempt's request only for that attempt;
//! - a definitive answer is never a [`ClientError::Refused`]: the admin service's
//!   FAILED_PRECONDITION ("key is deleted", "no KEK configured") is not a slashing refusal.

use super::{ClientError, SignerPool};
use crate::pb;
use crate::pb::admin_client::AdminClient;
use crate::protection::Profile;
use crate::registry::KeyState;
use std::future::Future;
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
    fn to_pb(&self) -> pb::import_key_request::Secret {
        match self {
            ImportSecret::Raw(bytes) => pb::import_key_request::Secret::RawSecret(bytes.to_vec()),
            ImportSecret::Keystore { json, password } => {
                pb::import_key_request::Secret::Keystore(pb::Eip2335Keystore {
                    keystore_json: json.clone(),
                    password: password.as_str().to_owned(),
                })
            }
        }
    }
}

impl SignerPool {
    /// Generate a new key `key_id` inside the cluster (the secret never leaves it).
    pub async fn generate_key(
        &self,
        key_id: &str,
        profile: Profile,
    ) -> Result<pb::AdminKeyInfo, ClientError> {
        let request = pb::GenerateKeyRequest {
            key_id: key_id.to_owned(),
            profile: profile.name().to_owned(),
        };
        self.admin_call(
            || request.clone(),
            |mut admin, rpc| async move { admin.generate_key(rpc).await },
        )
        .await
        .map(|(_, info)| info)
    }

    /// Import an existing key as `key_id`, sealed by the cluster under its KEK.
    pub async fn import_key(
        &self,
        key_id: &str,
        profile: Profile,
        secret: &ImportSecret,
    ) -> Result<pb::AdminKeyInfo, ClientError> {
        let request = || pb::ImportKeyRequest {
            key_id: key_id.to_owned(),
            profile: profile.name().to_owned(),
            secret: Some(secret.to_pb()),
        };
        self.admin_call(request, |mut admin, rpc| async move {
            admin.import_key(rpc).await
        })
        .await
        .map(|(_, info)| info)
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

    /// Enable (`Active`), disable or delete (a tombstone: final) key `key_id`.
    pub async fn set_key_state(
        &self,
        key_id: &str,
        state: KeyState,
    ) -> Result<pb::AdminKeyInfo, ClientError> {
        let request = pb::SetKeyStateRequest {
            key_id: key_id.to_owned(),
            state: state.to_string(),
        };
        self.admin_call(
            || request.clone(),
            |mut admin, rpc| async move { admin.set_key_state(rpc).await },
        )
        .await
        .map(|(_, info)| info)
    }

    /// Re-wrap every key not sealed under the current KEK (one step; repeat while
    /// `remaining > 0`).
    pub async fn rotate_kek(&self) -> Result<pb::RotateKekResponse, ClientError> {
        self.admin_call(
            || pb::RotateKekRequest {},
            |mut admin, rpc| async move { admin.rotate_kek(rpc).await },
        )
        .await
        .map(|(_, response)| response)
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
