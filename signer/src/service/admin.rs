//! The `signer.v1.Admin` service: key lifecycle through Raft (generate, import, list, state,
//! KEK rotation).
//!
//! Owns: authorizing admin callers, turning requests into registry changes, sealing new secrets
//! under the current KEK before they are proposed. Must not: keep a plaintext secret longer than
//! needed to seal it, log secrets or passwords, or change anything without a committed entry.
//!
//! Authorization (interim, until the M-of-N approval plane): the caller's client certificate
//! must name an identity starting with `admin-`.
//!
//! To ensure correctness:
//! - a generated secret exists only in this process's memory until it is sealed; only the
//!   sealed record is replicated;
//! - every change is a committed [`KeyChange`]; a refusal by the registry changes nothing.

use super::convert;
use crate::custody::{seal, unseal, EncryptionContext, Kek};
use crate::keyloader::Keks;
use crate::keyring::{Keyring, LoadedKey};
use crate::pb;
use crate::protection::Profile;
use crate::registry::{KeyChange, KeyRecord, KeyRefusal, KeyState, Rewrap};
use crate::replica::{commit_key_change, Raft, StateMachine};
use crate::scheme::{bls12_381, bn254};
use std::sync::Arc;
use tonic::{Request, Response, Status};
use zeroize::Zeroizing;

/// The admin service.
pub struct AdminService {
    raft: Raft,
    state: StateMachine,
    keyring: Arc<Keyring>,
    keks: Arc<Keks>,
}

impl AdminService {
    /// An admin service over this node's Raft handle, state, keyring and KEKs.
    pub fn new(raft: Raft, state: StateMachine, keyring: Arc<Keyring>, keks: Arc<Keks>) -> Self {
        AdminService {
            raft,
            state,
            keyring,
            keks,
        }
    }

    fn info(&self, record: &KeyRecord) -> pb::AdminKeyInfo {
        let text = match record.profile {
            Profile::Eth2 => format!("0x{}", hex::encode(&record.public_key)),
            Profile::Espresso => bn254::PublicKey::from_bytes(&record.public_key)
                .map(|pk| pk.to_tagged())
                .unwrap_or_else(|_| format!("0x{}", hex::encode(&record.public_key))),
        };
        pb::AdminKeyInfo {
            key_id: record.key_id.clone(),
            profile: record.profile.name().to_owned(),
            public_key: record.public_key.clone(),
            public_key_text: text,
            state: record.state.to_string(),
            kek: record
                .sealed
                .as_ref()
                .map(|s| s.kek.to_string())
                .unwrap_or_default(),
            origin: record.origin.clone(),
            loaded_here: self.keyring.get(&record.key_id).is_some(),
            pending_reason: self
                .keyring
                .pending()
                .remove(&record.key_id)
                .unwrap_or_default(),
        }
    }

    fn record(&self, key_id: &str) -> Result<KeyRecord, Status> {
        self.state
            .read()
            .registry
            .keys
            .get(key_id)
            .cloned()
            .ok_or_else(|| Status::not_found(format!("key_id: no key {key_id:?}")))
    }

    /// Seal `secret` for `key_id` and commit it as a new active key.
    async fn add(
        &self,
        key_id: &str,
        profile: Profile,
        secret: &[u8],
        origin: &str,
    ) -> Result<pb::AdminKeyInfo, Status> {
        let key = LoadedKey::from_secret(key_id, profile, secret)
            .map_err(|e| Status::invalid_argument(format!("secret: {e}")))?;
        let kek = self.keks.current().ok_or_else(|| {
            Status::failed_precondition("no KEK is configured on this node (config `kek`)")
        })?;
        let ctx = EncryptionContext::validator_key(&self.keks.cluster_id, key_id)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let sealed = seal(kek, &ctx, secret)
            .await
            .map_err(|e| Status::unavailable(format!("sealing under {}: {e}", kek.descriptor())))?;
        let record = KeyRecord {
            key_id: key_id.to_owned(),
            profile,
            public_key: key.public_key.clone(),
            sealed: Some(sealed),
            state: KeyState::Active,
            origin: origin.to_owned(),
        };
        drop(key);
        self.commit(KeyChange::Add(record)).await?;
        Ok(self.info(&self.record(key_id)?))
    }

    async fn commit(&self, change: KeyChange) -> Result<String, Status> {
        match commit_key_change(&self.raft, change).await {
            Ok(Ok(key_id)) => Ok(key_id),
            Ok(Err(refusal)) => Err(refusal_status(&refusal)),
            Err(e) => Err(convert::propose_failure(&e)),
        }
    }
}

fn refusal_status(r: &KeyRefusal) -> Status {
    match r {
        KeyRefusal::IdTaken(_) | KeyRefusal::PublicKeyTaken(_) => {
            Status::already_exists(r.to_string())
        }
        KeyRefusal::Unknown(_) => Status::not_found(r.to_string()),
        _ => Status::failed_precondition(r.to_string()),
    }
}

/// Interim admin authorization: the certificate must name an `admin-…` identity.
fn authorize<T>(req: &Request<T>) -> Result<String, Status> {
    let identity = crate::tls::peer_identity(req.peer_certs())
        .ok_or_else(|| Status::unauthenticated("a client certificate is required"))?;
    if identity.starts_with("admin-") {
        Ok(identity)
    } else {
        Err(Status::permission_denied(format!(
            "{identity:?} is not an admin identity"
        )))
    }
}

fn check_key_id(key_id: &str) -> Result<(), Status> {
    let ok = !key_id.is_empty()
        && key_id.len() <= convert::MAX_KEY_ID
        && key_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Status::invalid_argument(
            "key_id: 1 to 128 letters, digits, '-', '_' or '.'",
        ))
    }
}

fn profile(text: &str) -> Result<Profile, Status> {
    text.parse()
        .map_err(|e: String| Status::invalid_argument(format!("profile: {e}")))
}

#[tonic::async_trait]
impl pb::admin_server::Admin for AdminService {
    async fn generate_key(
        &self,
        request: Request<pb::GenerateKeyRequest>,
    ) -> Result<Response<pb::AdminKeyInfo>, Status> {
        let admin = authorize(&request)?;
        let req = request.into_inner();
        check_key_id(&req.key_id)?;
        let profile = profile(&req.profile)?;
        let mut rng = rand::rngs::OsRng;
        let secret: Zeroizing<Vec<u8>> = match profile {
            Profile::Eth2 => {
                let sk = bls12_381::SecretKey::generate(&mut rng)
                    .map_err(|e| Status::internal(e.to_string()))?;
                Zeroizing::new(sk.to_bytes().to_vec())
            }
            Profile::Espresso => {
                Zeroizing::new(bn254::SecretKey::generate(&mut rng).to_le_bytes().to_vec())
            }
        };
        let info = self.add(&req.key_id, profile, &secret, "generated").await?;
        tracing::info!(%admin, key_id = %req.key_id, %profile, "key generated");
        Ok(Response::new(info))
    }

    async fn import_key(
        &self,
        request: Request<pb::ImportKeyRequest>,
    ) -> Result<Response<pb::AdminKeyInfo>, Status> {
        let admin = authorize(&request)?;
        let req = request.into_inner();
        check_key_id(&req.key_id)?;
        let profile = profile(&req.profile)?;
        let secret: Zeroizing<Vec<u8>> = match req.secret {
            Some(pb::import_key_request::Secret::RawSecret(raw)) => Zeroizing::new(raw),
            Some(pb::import_key_request::Secret::Keystore(ks)) => {
                if profile != Profile::Eth2 {
                    return Err(Status::invalid_argument(
                        "keystore: EIP-2335 keystores hold eth2 keys",
                    ));
                }
                let password = Zeroizing::new(ks.password);
                let decrypted = crate::keystore::decrypt(&ks.keystore_json, &password)
                    .map_err(|e| Status::invalid_argument(format!("keystore: {e}")))?;
                Zeroizing::new(decrypted.secret.to_vec())
            }
            None => return Err(Status::invalid_argument("secret: missing")),
        };
        let info = self.add(&req.key_id, profile, &secret, "imported").await?;
        tracing::info!(%admin, key_id = %req.key_id, %profile, "key imported");
        Ok(Response::new(info))
    }

    async fn list_keys(
        &self,
        request: Request<pb::ListKeysRequest>,
    ) -> Result<Response<pb::ListKeysResponse>, Status> {
        authorize(&request)?;
        let records: Vec<KeyRecord> = self.state.read().registry.keys.values().cloned().collect();
        Ok(Response::new(pb::ListKeysResponse {
            keys: records.iter().map(|r| self.info(r)).collect(),
        }))
    }

    async fn set_key_state(
        &self,
        request: Request<pb::SetKeyStateRequest>,
    ) -> Result<Response<pb::AdminKeyInfo>, Status> {
        let admin = authorize(&request)?;
        let req = request.into_inner();
        let state = match req.state.as_str() {
            "active" => KeyState::Active,
            "disabled" => KeyState::Disabled,
            "deleted" => KeyState::Deleted,
            other => {
                return Err(Status::invalid_argument(format!(
                    "state: {other:?} is not active, disabled or deleted"
                )))
            }
        };
        self.commit(KeyChange::SetState {
            key_id: req.key_id.clone(),
            state,
        })
        .await?;
        tracing::info!(%admin, key_id = %req.key_id, %state, "key state set");
        Ok(Response::new(self.info(&self.record(&req.key_id)?)))
    }

    async fn rotate_kek(
        &self,
        request: Request<pb::RotateKekRequest>,
    ) -> Result<Response<pb::RotateKekResponse>, Status> {
        let admin = authorize(&request)?;
        let current = self.keks.current().ok_or_else(|| {
            Status::failed_precondition("no KEK is configured on this node (config `kek`)")
        })?;
        let target = current.descriptor();
        let records: Vec<KeyRecord> = self.state.read().registry.keys.values().cloned().collect();
        // Unseal each record with its old KEK and seal it under the current one; then commit
        // all re-wraps as one action. A key that fails to re-seal is reported and left for
        // the next call (which resumes where this one stopped).
        let (mut items, mut errors) = (Vec::new(), Vec::new());
        for record in records {
            let Some(sealed) = record.sealed.clone() else {
                continue;
            };
            if sealed.kek == target {
                continue;
            }
            let resealed = async {
                let old = self.keks.for_record(&record).ok_or_else(|| {
                    format!(
                        "{}: sealed under {}, not configured here",
                        record.key_id, sealed.kek
                    )
                })?;
                let ctx = EncryptionContext::validator_key(&self.keks.cluster_id, &record.key_id)
                    .map_err(|e| e.to_string())?;
                let secret = unseal(old, &ctx, &sealed)
                    .await
                    .map_err(|e| format!("{}: {e}", record.key_id))?;
                seal(current, &ctx, secret.expose_secret())
                    .await
                    .map_err(|e| format!("{}: {e}", record.key_id))
            };
            match resealed.await {
                Ok(sealed_new) => items.push(Rewrap {
                    key_id: record.key_id.clone(),
                    from: sealed.kek.clone(),
                    sealed: sealed_new,
                }),
                Err(e) => errors.push(e),
            }
        }
        let mut rewrapped = 0u32;
        if !items.is_empty() {
            let count = items.len() as u32;
            match self.commit(KeyChange::Rewrap(items)).await {
                Ok(_) => rewrapped = count,
                Err(s) => errors.push(s.message().to_owned()),
            }
        }
        let remaining = self
            .state
            .read()
            .registry
            .keys
            .values()
            .filter(|r| r.sealed.as_ref().is_some_and(|s| s.kek != target))
            .count() as u32;
        tracing::info!(%admin, rewrapped, remaining, "KEK rotation step");
        Ok(Response::new(pb::RotateKekResponse {
            rewrapped,
            remaining,
            errors,
        }))
    }
}
