//! Turning a proposal request into a complete [`Action`]: everything that needs randomness or
//! a KEK happens here, on the proposing node, before the challenge exists, so approvers
//! approve exactly what will be committed. What a grant, a revocation or an import replaces is
//! read from this node's applied state into the action ([`Prior`]), for the approvers' review;
//! this node is not trusted for it: every replica checks it when applying.
//!
//! Must not: commit anything, keep a plaintext secret longer than needed to seal it, or vouch
//! for anything the replicas must check themselves: an enrollment carries the attestation
//! certificates as given, and every replica verifies them when applying.

use crate::admin::codec as admin_codec;
use crate::admin::{Action, EnrollKey, Prior};
use crate::custody::{unseal_in, EncryptionContext, Kek, OpenedDataKeys};
use crate::keyloader::Keks;
use crate::keyring::LoadedKey;
use crate::pb;
use crate::protection::espresso::ViewHorizon;
use crate::protection::ethereum::Root;
use crate::protection::{interchange, Profile};
use crate::registry::{KeyRecord, KeyState, Rewrap};
use crate::replica::StateMachine;
use crate::scheme::{bls12_381, bn254};
use tonic::Status;
use zeroize::Zeroizing;

/// What a node needs to prepare actions.
pub struct Preparer<'a> {
    /// The KEKs (current first).
    pub keks: &'a Keks,
    /// The key registry as applied here.
    pub keys: Vec<KeyRecord>,
    /// The ids of the keys this node holds (key files and loaded registry keys).
    pub loaded: Vec<String>,
    /// The eth2 network (interchange imports must match it; checked early here for a clear
    /// error, and authoritatively in `apply` against the replicated root).
    pub genesis_validators_root: Root,
    /// The applied state: what a grant, a revocation or an import replaces is read from it
    /// into the action ([`Prior`]), and every replica checks it again when applying.
    pub state: &'a StateMachine,
}

/// A prepared action and notes for the proposer (e.g. keys not re-sealed).
pub struct Prepared {
    /// The action.
    pub action: Action,
    /// Notes.
    pub notes: Vec<String>,
}

impl Preparer<'_> {
    /// Prepare `request` as an action.
    pub async fn prepare(&self, request: pb::ProposeRequest) -> Result<Prepared, Status> {
        use pb::propose_request::Request as R;
        let plain = |action| {
            Ok(Prepared {
                action,
                notes: Vec::new(),
            })
        };
        match request
            .request
            .ok_or_else(|| Status::invalid_argument("request: missing"))?
        {
            R::GenerateKey(g) => {
                check_key_id(&g.key_id)?;
                self.check_id_free(&g.key_id)?;
                let profile = profile(&g.profile)?;
                let secret = generate(profile)?;
                plain(Action::AddKey(
                    self.seal(&g.key_id, profile, &secret, "generated").await?,
                ))
            }
            R::ImportKey(i) => {
                check_key_id(&i.key_id)?;
                self.check_id_free(&i.key_id)?;
                let profile = profile(&i.profile)?;
                let secret = import_secret(profile, i.secret)?;
                plain(Action::AddKey(
                    self.seal(&i.key_id, profile, &secret, "imported").await?,
                ))
            }
            R::SetKeyState(s) => plain(Action::SetKeyState {
                state: admin_codec::parse_key_state(&s.state)
                    .map_err(|e| Status::invalid_argument(e.to_string()))?,
                key_id: s.key_id,
            }),
            R::RotateKek(_) => self.rewrap().await,
            R::GrantClient(g) => {
                for key_id in g.keys.iter().filter(|k| *k != crate::admin::ALL_KEYS) {
                    if !valid_key_id(key_id) {
                        return Err(Status::invalid_argument(format!(
                            "keys: key_id {key_id:?}: 1 to 128 letters, digits, '-', '_' or \
                             '.', or \"*\" for every key"
                        )));
                    }
                }
                let (identity, grant) = admin_codec::grant_from_pb(g)
                    .map_err(|e| Status::invalid_argument(e.to_string()))?;
                let previous = self.state.read().admin.clients.get(&identity).cloned();
                plain(Action::GrantClient {
                    identity,
                    grant,
                    prior: Prior::Recorded(previous),
                })
            }
            R::RevokeClient(identity) => {
                let previous = self.state.read().admin.clients.get(&identity).cloned();
                let Some(previous) = previous else {
                    return Err(Status::failed_precondition(format!(
                        "client {identity:?} has no grant"
                    )));
                };
                plain(Action::RevokeClient {
                    identity,
                    prior: Prior::Recorded(previous),
                })
            }
            R::EnrollAdmin(e) => plain(enrollment(e)?),
            R::RemoveAdmin(name) => plain(Action::RemoveAdmin { name }),
            R::SetPolicy(p) => plain(Action::SetPolicy(admin_codec::policy_from_pb(&p))),
            R::SetEspressoViewHorizon(views) => plain(Action::SetEspressoViewHorizon(
                ViewHorizon::new(views).map_err(|e| {
                    Status::invalid_argument(format!("set_espresso_view_horizon: {e}"))
                })?,
            )),
            R::ImportProtection(i) => {
                let doc = interchange::parse(&i.interchange_json)
                    .map_err(|e| Status::invalid_argument(format!("interchange: {e}")))?;
                if doc.genesis_validators_root != self.genesis_validators_root {
                    return Err(Status::invalid_argument(format!(
                        "interchange: genesis_validators_root {} is not this cluster's ({})",
                        doc.genesis_validators_root, self.genesis_validators_root
                    )));
                }
                // The cluster's records of the file's validators, for the approvers' review.
                let seen = interchange::review::seen(&self.state.read().protection.eth2, &doc);
                plain(Action::ImportProtection {
                    interchange: i.interchange_json,
                    minify: i.minify,
                    prior: Prior::Recorded(seen),
                })
            }
            R::Pause(_) => plain(Action::Pause),
            R::AddNode(n) => plain(Action::AddNode(admin_codec::node_from_pb(n))),
            R::RemoveNode(id) => plain(Action::RemoveNode { id }),
            R::ReplaceNode(r) => plain(Action::ReplaceNode {
                old: r.old_node_id,
                new: admin_codec::node_from_pb(
                    r.with
                        .ok_or_else(|| Status::invalid_argument("replace_node.with: missing"))?,
                ),
            }),
            R::Resume(_) => plain(Action::Resume),
            R::CompactAudit(up_to_seq) => plain(Action::CompactAudit { up_to_seq }),
            R::RevokeCertificate(r) => plain(revocation(r)?),
        }
    }

    /// Refuse a new key under an id already in use: in the registry (apply refuses it again,
    /// deterministically) or by a key this node holds, e.g. a key file. Key files are
    /// node-local, so apply cannot see them; what it can enforce is that a sign entry names the
    /// registry's public key for a registry id (`key_mismatch` otherwise), and a permit signs
    /// only with the key it names, so a shared id never lets one key sign for another's record.
    fn check_id_free(&self, key_id: &str) -> Result<(), Status> {
        if self.keys.iter().any(|k| k.key_id == key_id) {
            return Err(Status::already_exists(format!(
                "key_id: {key_id:?} is already taken by a key of the cluster's registry"
            )));
        }
        if self.loaded.iter().any(|id| id == key_id) {
            return Err(Status::already_exists(format!(
                "key_id: {key_id:?} is already taken by a key this node holds (a key file in \
                 its keys_dir); choose another id"
            )));
        }
        Ok(())
    }

    /// Seal `secret` for `key_id` under the current KEK (the node's shared data key of it).
    async fn seal(
        &self,
        key_id: &str,
        profile: Profile,
        secret: &[u8],
        origin: &str,
    ) -> Result<KeyRecord, Status> {
        let key = LoadedKey::from_secret(key_id, profile, secret)
            .map_err(|e| Status::invalid_argument(format!("secret: {e}")))?;
        let kek = self.keks.current().ok_or_else(|| {
            Status::failed_precondition("no KEK is configured on this node (config `kek`)")
        })?;
        let ctx = EncryptionContext::validator_key(&self.keks.cluster_id, key_id)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let sealed = self
            .keks
            .sealer
            .seal(kek, &ctx, secret)
            .await
            .map_err(|e| Status::unavailable(format!("sealing under {}: {e}", kek.descriptor())))?;
        Ok(KeyRecord {
            key_id: key_id.to_owned(),
            profile,
            public_key: key.public_key.clone(),
            sealed: Some(sealed),
            state: KeyState::Active,
            origin: origin.to_owned(),
        })
    }

    /// Re-seal every key not under the current KEK. Keys that fail are reported in the notes
    /// and left for the next rotation (which resumes where this one stopped). Each shared data
    /// key of the old KEKs is unwrapped once, and the new records share the sealer's data key:
    /// rotating 10,000 keys sealed together takes two KEK calls, not 20,000.
    async fn rewrap(&self) -> Result<Prepared, Status> {
        let current = self.keks.current().ok_or_else(|| {
            Status::failed_precondition("no KEK is configured on this node (config `kek`)")
        })?;
        let target = current.descriptor();
        let (mut items, mut notes) = (Vec::new(), Vec::new());
        let opened = OpenedDataKeys::new();
        for record in &self.keys {
            let Some(sealed) = record.sealed.clone() else {
                continue;
            };
            if sealed.kek == target {
                continue;
            }
            let resealed = async {
                let old = self.keks.for_record(record).ok_or_else(|| {
                    format!(
                        "{}: sealed under {}, not configured here",
                        record.key_id, sealed.kek
                    )
                })?;
                let ctx = EncryptionContext::validator_key(&self.keks.cluster_id, &record.key_id)
                    .map_err(|e| e.to_string())?;
                let secret = unseal_in(&opened, old, &ctx, &sealed)
                    .await
                    .map_err(|e| format!("{}: {e}", record.key_id))?;
                self.keks
                    .sealer
                    .seal(current, &ctx, secret.expose_secret())
                    .await
                    .map_err(|e| format!("{}: {e}", record.key_id))
            };
            match resealed.await {
                Ok(sealed_new) => items.push(Rewrap {
                    key_id: record.key_id.clone(),
                    from: sealed.kek.clone(),
                    sealed: sealed_new,
                }),
                Err(e) => notes.push(e),
            }
        }
        if items.is_empty() {
            let mut message = format!("every key is already sealed under {target}");
            if !notes.is_empty() {
                message = format!("no key could be re-sealed: {}", notes.join("; "));
            }
            return Err(Status::failed_precondition(message));
        }
        Ok(Prepared {
            action: Action::RotateKek(items),
            notes,
        })
    }
}

/// An enrollment action from a request: the development key or the attestation certificates,
/// as given. Whether they are acceptable is decided in `apply` by every replica.
fn enrollment(e: pb::EnrollAdminRequest) -> Result<Action, Status> {
    use pb::enroll_admin_request::Key;
    let key = match e.key {
        Some(Key::Ed25519PublicKey(ed25519_public_key)) => {
            EnrollKey::Development { ed25519_public_key }
        }
        Some(Key::Yubikey(y)) => EnrollKey::YubiKey {
            slot_certificate: y.slot_certificate,
            device_certificate: y.device_certificate,
        },
        None => return Err(Status::invalid_argument("key: missing")),
    };
    Ok(Action::EnrollAdmin { name: e.name, key })
}

/// Largest certificate a revocation may carry (a client certificate is well under 2 KiB).
const MAX_CERTIFICATE: usize = 16 * 1024;

/// A revocation from a request: the fingerprint, and the certificate as given (every replica
/// checks in `apply` that it has the fingerprint, and reads the identity it names).
fn revocation(r: pb::RevokeCertificateAction) -> Result<Action, Status> {
    let fingerprint = admin_codec::fingerprint_from_pb(&r.fingerprint)
        .map_err(|e| Status::invalid_argument(e.to_string()))?;
    if r.certificate.len() > MAX_CERTIFICATE {
        return Err(Status::invalid_argument(format!(
            "certificate: at most {MAX_CERTIFICATE} bytes, got {}",
            r.certificate.len()
        )));
    }
    Ok(Action::RevokeCertificate {
        fingerprint,
        certificate: r.certificate,
    })
}

fn generate(profile: Profile) -> Result<Zeroizing<Vec<u8>>, Status> {
    let mut rng = rand::rngs::OsRng;
    Ok(match profile {
        Profile::Eth2 => {
            let sk = bls12_381::SecretKey::generate(&mut rng)
                .map_err(|e| Status::internal(e.to_string()))?;
            Zeroizing::new(sk.to_bytes().to_vec())
        }
        Profile::Espresso => {
            Zeroizing::new(bn254::SecretKey::generate(&mut rng).to_le_bytes().to_vec())
        }
    })
}

fn import_secret(
    profile: Profile,
    secret: Option<pb::import_key_request::Secret>,
) -> Result<Zeroizing<Vec<u8>>, Status> {
    match secret {
        Some(pb::import_key_request::Secret::RawSecret(raw)) => Ok(Zeroizing::new(raw)),
        Some(pb::import_key_request::Secret::Keystore(ks)) => {
            if profile != Profile::Eth2 {
                return Err(Status::invalid_argument(
                    "keystore: EIP-2335 keystores hold eth2 keys",
                ));
            }
            let password = Zeroizing::new(ks.password);
            let decrypted = crate::keystore::decrypt(&ks.keystore_json, &password)
                .map_err(|e| Status::invalid_argument(format!("keystore: {e}")))?;
            Ok(Zeroizing::new(decrypted.secret.to_vec()))
        }
        None => Err(Status::invalid_argument("secret: missing")),
    }
}

/// A key id a new key or a grant may name: 1 to `MAX_KEY_ID` letters, digits, `-`, `_`, `.`.
fn valid_key_id(key_id: &str) -> bool {
    !key_id.is_empty()
        && key_id.len() <= super::super::convert::MAX_KEY_ID
        && key_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

fn check_key_id(key_id: &str) -> Result<(), Status> {
    if valid_key_id(key_id) {
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
