//! The canonical form of admin actions: [`Action`] ↔ `signer.v1.AdminAction` bytes, and the
//! admin-plane records ↔ their protobuf messages. This is the one encoder and the one decoder:
//! the proposing node encodes with it, the state machine decodes the committed bytes with it
//! in `apply` and executes what they say, and `signerctl` decodes them with it to show the
//! approver what they sign.
//!
//! Owns: [`encode_action`] (the bytes whose digest approvers sign), [`decode_action`] and
//! [`CanonicalAction`] (bytes and their decoding, inseparable). Must not: apply or authorize
//! anything, or depend on the gRPC services (the replica imports this module). It is the one
//! place in [`crate::admin`] that reads protobuf types, because the bytes *are* the protobuf.
//!
//! To ensure correctness:
//! - `decode_action(encode_action(a)) == a` for every action (tested), so the action an
//!   approver reads from the bytes is the action the node commits;
//! - prost encodes fields in field-number order with no maps, so the encoding of a given
//!   action is the same on every node and client;
//! - a typed action travels only inside a [`CanonicalAction`], made only by decoding bytes,
//!   so no code path can hold an action that differs from the bytes approvers signed.

use crate::admin::action::{EnrollKey, Prior};
use crate::admin::membership::NewNode;
use crate::admin::{Action, AdminRecord, ClientGrant, Fingerprint, Policy, RateLimit};
use crate::pb;
use crate::protection::espresso::ViewHorizon;
use crate::protection::interchange::review::RecordSeen;
use crate::registry::{KeyRecord, KeyState, Rewrap};
use crate::sealed::{KekRef, SealedKey};
use prost::Message;

/// Why bytes are not a valid action.
#[derive(Debug, thiserror::Error)]
#[error("admin action: {0}")]
pub struct CodecError(String);

fn err(message: impl Into<String>) -> CodecError {
    CodecError(message.into())
}

/// Canonical action bytes and what they decode to. The only constructor is
/// [`CanonicalAction::decode`]: the typed action is, by construction, the meaning of the bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CanonicalAction {
    bytes: Vec<u8>,
    action: Action,
}

impl CanonicalAction {
    /// Decode `bytes` (the only way to make one).
    pub fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        Ok(CanonicalAction {
            action: decode_action(bytes)?,
            bytes: bytes.to_vec(),
        })
    }

    /// The decoded action.
    pub fn action(&self) -> &Action {
        &self.action
    }

    /// The bytes it was decoded from.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The decoded action, consuming the pair.
    pub fn into_action(self) -> Action {
        self.action
    }
}

/// The action in words for `bytes` (audit records, challenge views): its description, or why
/// the bytes do not decode.
pub fn describe_bytes(bytes: &[u8]) -> String {
    match decode_action(bytes) {
        Ok(action) => action.describe(),
        Err(e) => format!("undecodable action ({} bytes): {e}", bytes.len()),
    }
}

/// The canonical bytes of `action`.
pub fn encode_action(action: &Action) -> Vec<u8> {
    action_to_pb(action).encode_to_vec()
}

/// Parse canonical bytes back into an action.
pub fn decode_action(bytes: &[u8]) -> Result<Action, CodecError> {
    let pb = pb::AdminAction::decode(bytes).map_err(|e| err(e.to_string()))?;
    action_from_pb(pb)
}

fn action_to_pb(action: &Action) -> pb::AdminAction {
    use pb::admin_action::Action as A;
    let a = match action {
        Action::AddKey(r) => A::AddKey(pb::AddKeyAction {
            key_id: r.key_id.clone(),
            profile: r.profile.name().to_owned(),
            public_key: r.public_key.clone(),
            origin: r.origin.clone(),
            sealed_secret: r
                .sealed
                .as_ref()
                .and_then(|s| serde_json::to_vec(s).ok())
                .unwrap_or_default(),
        }),
        Action::SetKeyState { key_id, state } => A::SetKeyState(pb::SetKeyStateRequest {
            key_id: key_id.clone(),
            state: state.to_string(),
        }),
        Action::RotateKek(items) => A::RotateKek(pb::RotateKekAction {
            items: items
                .iter()
                .map(|r| pb::RewrapItem {
                    key_id: r.key_id.clone(),
                    from_kek: serde_json::to_string(&r.from).unwrap_or_default(),
                    sealed_secret: serde_json::to_vec(&r.sealed).unwrap_or_default(),
                })
                .collect(),
        }),
        Action::GrantClient {
            identity,
            grant,
            prior,
        } => match prior {
            Prior::Recorded(previous) => A::GrantClientChecked(pb::GrantClientAction {
                grant: Some(grant_to_pb(identity, grant)),
                previous: previous.as_ref().map(|g| grant_to_pb(identity, g)),
            }),
            Prior::Unrecorded => A::GrantClient(grant_to_pb(identity, grant)),
        },
        Action::RevokeClient { identity, prior } => match prior {
            Prior::Recorded(previous) => A::RevokeClientChecked(pb::RevokeClientAction {
                identity: identity.clone(),
                previous: Some(grant_to_pb(identity, previous)),
            }),
            Prior::Unrecorded => A::RevokeClient(identity.clone()),
        },
        Action::EnrollAdmin { name, key } => A::EnrollAdmin(pb::EnrollAdminRequest {
            name: name.clone(),
            key: Some(match key {
                EnrollKey::Development { ed25519_public_key } => {
                    pb::enroll_admin_request::Key::Ed25519PublicKey(ed25519_public_key.clone())
                }
                EnrollKey::YubiKey {
                    slot_certificate,
                    device_certificate,
                } => pb::enroll_admin_request::Key::Yubikey(pb::YubiKeyAttestation {
                    slot_certificate: slot_certificate.clone(),
                    device_certificate: device_certificate.clone(),
                }),
            }),
        }),
        Action::RemoveAdmin { name } => A::RemoveAdmin(name.clone()),
        Action::SetPolicy(p) => A::SetPolicy(policy_to_pb(p)),
        Action::SetEspressoViewHorizon(h) => A::SetEspressoViewHorizon(h.views()),
        Action::ImportProtection {
            interchange,
            minify,
            prior,
        } => match prior {
            Prior::Recorded(seen) => A::ImportProtectionChecked(pb::ImportProtectionAction {
                interchange_json: interchange.clone(),
                minify: *minify,
                seen: seen.iter().map(seen_to_pb).collect(),
            }),
            Prior::Unrecorded => A::ImportProtection(pb::ImportProtectionRequest {
                interchange_json: interchange.clone(),
                minify: *minify,
            }),
        },
        Action::Pause => A::Pause(pb::PauseRequest {}),
        Action::Resume => A::Resume(pb::ResumeRequest {}),
        Action::CompactAudit { up_to_seq } => A::CompactAudit(*up_to_seq),
        Action::RevokeCertificate {
            fingerprint,
            certificate,
        } => A::RevokeCertificate(pb::RevokeCertificateAction {
            fingerprint: fingerprint.0.to_vec(),
            certificate: certificate.clone(),
        }),
        Action::AddNode(n) => A::AddNode(node_to_pb(n)),
        Action::RemoveNode { id } => A::RemoveNode(*id),
        Action::ReplaceNode { old, new } => A::ReplaceNode(pb::ReplaceNodeAction {
            old_node_id: *old,
            with: Some(node_to_pb(new)),
        }),
    };
    pb::AdminAction { action: Some(a) }
}

fn action_from_pb(pb: pb::AdminAction) -> Result<Action, CodecError> {
    use pb::admin_action::Action as A;
    Ok(match pb.action.ok_or_else(|| err("empty"))? {
        A::AddKey(k) => {
            let sealed: SealedKey = serde_json::from_slice(&k.sealed_secret)
                .map_err(|e| err(format!("add_key.sealed_secret: {e}")))?;
            Action::AddKey(KeyRecord {
                key_id: k.key_id,
                profile: k.profile.parse().map_err(err)?,
                public_key: k.public_key,
                sealed: Some(sealed),
                state: KeyState::Active,
                origin: k.origin,
            })
        }
        A::SetKeyState(s) => Action::SetKeyState {
            key_id: s.key_id,
            state: parse_key_state(&s.state)?,
        },
        A::RotateKek(r) => Action::RotateKek(
            r.items
                .into_iter()
                .map(|i| {
                    let from: KekRef = serde_json::from_str(&i.from_kek)
                        .map_err(|e| err(format!("rotate_kek.from_kek: {e}")))?;
                    let sealed: SealedKey = serde_json::from_slice(&i.sealed_secret)
                        .map_err(|e| err(format!("rotate_kek.sealed_secret: {e}")))?;
                    Ok(Rewrap {
                        key_id: i.key_id,
                        from,
                        sealed,
                    })
                })
                .collect::<Result<_, CodecError>>()?,
        ),
        A::GrantClient(g) => {
            let (identity, grant) = grant_from_pb(g)?;
            Action::GrantClient {
                identity,
                grant,
                prior: Prior::Unrecorded,
            }
        }
        A::GrantClientChecked(g) => {
            let (identity, grant) = grant_from_pb(
                g.grant
                    .ok_or_else(|| err("grant_client_checked.grant: missing"))?,
            )?;
            let previous = match g.previous {
                Some(p) => {
                    let (named, previous) = grant_from_pb(p)?;
                    if named != identity {
                        return Err(err(format!(
                            "grant_client_checked.previous: names {named:?}, not {identity:?}"
                        )));
                    }
                    Some(previous)
                }
                None => None,
            };
            Action::GrantClient {
                identity,
                grant,
                prior: Prior::Recorded(previous),
            }
        }
        A::RevokeClient(identity) => Action::RevokeClient {
            identity,
            prior: Prior::Unrecorded,
        },
        A::RevokeClientChecked(r) => {
            let (named, previous) = grant_from_pb(
                r.previous
                    .ok_or_else(|| err("revoke_client_checked.previous: missing"))?,
            )?;
            if named != r.identity {
                return Err(err(format!(
                    "revoke_client_checked.previous: names {named:?}, not {:?}",
                    r.identity
                )));
            }
            Action::RevokeClient {
                identity: r.identity,
                prior: Prior::Recorded(previous),
            }
        }
        A::EnrollAdmin(e) => {
            use pb::enroll_admin_request::Key;
            let key = match e.key.ok_or_else(|| err("enroll_admin.key: missing"))? {
                Key::Ed25519PublicKey(ed25519_public_key) => {
                    EnrollKey::Development { ed25519_public_key }
                }
                Key::Yubikey(y) => EnrollKey::YubiKey {
                    slot_certificate: y.slot_certificate,
                    device_certificate: y.device_certificate,
                },
            };
            Action::EnrollAdmin { name: e.name, key }
        }
        A::RemoveAdmin(name) => Action::RemoveAdmin { name },
        A::SetPolicy(p) => Action::SetPolicy(policy_from_pb(&p)),
        A::SetEspressoViewHorizon(views) => Action::SetEspressoViewHorizon(
            ViewHorizon::new(views).map_err(|e| err(format!("set_espresso_view_horizon: {e}")))?,
        ),
        A::ImportProtection(i) => Action::ImportProtection {
            interchange: i.interchange_json,
            minify: i.minify,
            prior: Prior::Unrecorded,
        },
        A::ImportProtectionChecked(i) => Action::ImportProtection {
            interchange: i.interchange_json,
            minify: i.minify,
            prior: Prior::Recorded(
                i.seen
                    .iter()
                    .enumerate()
                    .map(|(n, v)| seen_from_pb(n, v))
                    .collect::<Result<_, _>>()?,
            ),
        },
        A::Pause(_) => Action::Pause,
        A::Resume(_) => Action::Resume,
        A::CompactAudit(up_to_seq) => Action::CompactAudit { up_to_seq },
        A::RevokeCertificate(r) => Action::RevokeCertificate {
            fingerprint: fingerprint_from_pb(&r.fingerprint)?,
            certificate: r.certificate,
        },
        A::AddNode(n) => Action::AddNode(node_from_pb(n)),
        A::RemoveNode(id) => Action::RemoveNode { id },
        A::ReplaceNode(r) => Action::ReplaceNode {
            old: r.old_node_id,
            new: node_from_pb(r.with.ok_or_else(|| err("replace_node.with: missing"))?),
        },
    })
}

/// A joining node as its protobuf message.
pub fn node_to_pb(n: &NewNode) -> pb::NodeMember {
    pb::NodeMember {
        node_id: n.id,
        client_addr: n.client_addr.clone(),
        peer_addr: n.peer_addr.clone(),
    }
}

/// A protobuf joining node (its addresses are checked with the change:
/// [`crate::admin::membership::check_change`]).
pub fn node_from_pb(n: pb::NodeMember) -> NewNode {
    NewNode {
        id: n.node_id,
        client_addr: n.client_addr,
        peer_addr: n.peer_addr,
    }
}

/// A fingerprint field: exactly 32 bytes.
pub fn fingerprint_from_pb(bytes: &[u8]) -> Result<Fingerprint, CodecError> {
    <[u8; 32]>::try_from(bytes).map(Fingerprint).map_err(|_| {
        err(format!(
            "revoke_certificate.fingerprint: expected 32 bytes (SHA-256), got {}",
            bytes.len()
        ))
    })
}

/// A validator's record as an import's proposal saw it, as its protobuf message.
fn seen_to_pb(seen: &Option<RecordSeen>) -> pb::ValidatorSeen {
    let Some(r) = seen else {
        return pb::ValidatorSeen::default();
    };
    let (has_block, (block_slot, block_root)) = (r.block.is_some(), r.block.unwrap_or_default());
    let (has_attestation, (source_epoch, target_epoch, attestation_root)) =
        (r.attestation.is_some(), r.attestation.unwrap_or_default());
    pb::ValidatorSeen {
        known: true,
        has_block,
        block_slot,
        block_root,
        has_attestation,
        source_epoch,
        target_epoch,
        attestation_root,
    }
}

/// The record of `seen[n]`; a field set beside an absent part is refused, so one record has
/// one encoding.
fn seen_from_pb(n: usize, v: &pb::ValidatorSeen) -> Result<Option<RecordSeen>, CodecError> {
    let stray = (!v.has_block && (v.block_slot != 0 || v.block_root))
        || (!v.has_attestation
            && (v.source_epoch != 0 || v.target_epoch != 0 || v.attestation_root))
        || (!v.known && (v.has_block || v.has_attestation));
    if stray {
        return Err(err(format!(
            "import_protection_checked.seen[{n}]: a field is set beside an absent record"
        )));
    }
    Ok(v.known.then_some(RecordSeen {
        block: v.has_block.then_some((v.block_slot, v.block_root)),
        attestation: v.has_attestation.then_some((
            v.source_epoch,
            v.target_epoch,
            v.attestation_root,
        )),
    }))
}

/// `active` | `disabled` | `deleted`.
pub fn parse_key_state(text: &str) -> Result<KeyState, CodecError> {
    match text {
        "active" => Ok(KeyState::Active),
        "disabled" => Ok(KeyState::Disabled),
        "deleted" => Ok(KeyState::Deleted),
        other => Err(err(format!(
            "state: {other:?} is not active, disabled or deleted"
        ))),
    }
}

/// A grant as its protobuf message.
pub fn grant_to_pb(identity: &str, g: &ClientGrant) -> pb::ClientGrant {
    pb::ClientGrant {
        identity: identity.to_owned(),
        keys: g.keys.iter().cloned().collect(),
        profiles: g.profiles.iter().map(|p| p.name().to_owned()).collect(),
        rate_per_second: g.rate_limit.map_or(0, |r| r.per_second),
        rate_burst: g.rate_limit.map_or(0, |r| r.burst),
        raw_roots: g.raw_roots,
    }
}

/// A protobuf grant as (identity, grant). A zero rate means unlimited; a zero burst with a
/// rate means a burst of one second's worth.
pub fn grant_from_pb(g: pb::ClientGrant) -> Result<(String, ClientGrant), CodecError> {
    let profiles = g
        .profiles
        .iter()
        .map(|p| p.parse())
        .collect::<Result<_, String>>()
        .map_err(err)?;
    let rate_limit = RateLimit::from_parts(g.rate_per_second, g.rate_burst);
    Ok((
        g.identity,
        ClientGrant {
            keys: g.keys.into_iter().collect(),
            profiles,
            rate_limit,
            raw_roots: g.raw_roots,
        },
    ))
}

/// An admin record as its protobuf message.
pub fn admin_to_pb(a: &AdminRecord) -> pb::AdminInfo {
    let f = a.attestation.clone();
    pb::AdminInfo {
        name: a.name.clone(),
        key: a.key.to_text(),
        attested: f.is_some(),
        serial: f.as_ref().map_or(0, |f| f.serial),
        firmware: f.as_ref().map(|f| f.firmware.clone()).unwrap_or_default(),
        pin_policy: f.as_ref().map(|f| f.pin_policy.clone()).unwrap_or_default(),
        touch_policy: f.map(|f| f.touch_policy).unwrap_or_default(),
    }
}

/// A policy as its protobuf message.
pub fn policy_to_pb(p: &Policy) -> pb::ApprovalPolicy {
    pb::ApprovalPolicy {
        threshold: p.threshold,
        require_attestation: p.require_attestation,
        require_touch_always: p.require_touch_always,
        challenge_ttl_ms: p.challenge_ttl_ms,
    }
}

/// A protobuf policy.
pub fn policy_from_pb(p: &pb::ApprovalPolicy) -> Policy {
    Policy {
        threshold: p.threshold,
        require_attestation: p.require_attestation,
        require_touch_always: p.require_touch_always,
        challenge_ttl_ms: p.challenge_ttl_ms,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::protection::Profile;

    #[test]
    fn every_action_round_trips() {
        let soft = ed25519_dalek::SigningKey::from_bytes(&[3; 32])
            .verifying_key()
            .to_bytes()
            .to_vec();
        let grant = ClientGrant {
            keys: ["a".to_owned(), "b".to_owned()].into(),
            profiles: [Profile::Eth2, Profile::Espresso].into(),
            rate_limit: Some(RateLimit {
                per_second: 5,
                burst: 9,
            }),
            raw_roots: true,
        };
        let actions = vec![
            Action::SetKeyState {
                key_id: "k".into(),
                state: KeyState::Disabled,
            },
            Action::RotateKek(vec![]),
            Action::GrantClient {
                identity: "seq-1".into(),
                grant: grant.clone(),
                prior: Prior::Unrecorded,
            },
            Action::GrantClient {
                identity: "seq-1".into(),
                grant: grant.clone(),
                prior: Prior::Recorded(None),
            },
            Action::GrantClient {
                identity: "seq-1".into(),
                grant: grant.clone(),
                prior: Prior::Recorded(Some(ClientGrant {
                    raw_roots: false,
                    rate_limit: None,
                    ..grant.clone()
                })),
            },
            Action::RevokeClient {
                identity: "seq-1".into(),
                prior: Prior::Unrecorded,
            },
            Action::RevokeClient {
                identity: "seq-1".into(),
                prior: Prior::Recorded(grant.clone()),
            },
            Action::EnrollAdmin {
                name: "admin-x".into(),
                key: EnrollKey::Development {
                    ed25519_public_key: soft,
                },
            },
            Action::EnrollAdmin {
                name: "admin-y".into(),
                key: EnrollKey::YubiKey {
                    slot_certificate: vec![0x30, 1, 2],
                    device_certificate: vec![0x30, 3, 4],
                },
            },
            Action::RemoveAdmin {
                name: "admin-x".into(),
            },
            Action::SetPolicy(Policy::default()),
            Action::SetEspressoViewHorizon(ViewHorizon::new(1).unwrap()),
            Action::SetEspressoViewHorizon(ViewHorizon::new(32).unwrap()),
            Action::ImportProtection {
                interchange: "{}".into(),
                minify: true,
                prior: Prior::Unrecorded,
            },
            Action::ImportProtection {
                interchange: "{}".into(),
                minify: false,
                prior: Prior::Recorded(vec![]),
            },
            Action::ImportProtection {
                interchange: "{}".into(),
                minify: false,
                prior: Prior::Recorded(vec![
                    None,
                    Some(RecordSeen::default()),
                    Some(RecordSeen {
                        block: Some((0, false)),
                        attestation: Some((3, 4, true)),
                    }),
                    Some(RecordSeen {
                        block: Some((9, true)),
                        attestation: None,
                    }),
                ]),
            },
            Action::Pause,
            Action::Resume,
            Action::CompactAudit { up_to_seq: 42 },
            Action::RevokeCertificate {
                fingerprint: Fingerprint([7; 32]),
                certificate: vec![0x30, 5, 6],
            },
            Action::RevokeCertificate {
                fingerprint: Fingerprint([8; 32]),
                certificate: Vec::new(),
            },
            Action::AddNode(NewNode {
                id: 4,
                client_addr: "127.0.0.1:7306".into(),
                peer_addr: "127.0.0.1:7307".into(),
            }),
            Action::RemoveNode { id: 3 },
            Action::ReplaceNode {
                old: 2,
                new: NewNode {
                    id: 5,
                    client_addr: "host-5:7100".into(),
                    peer_addr: "host-5:7101".into(),
                },
            },
        ];
        for action in actions {
            let bytes = encode_action(&action);
            assert_eq!(decode_action(&bytes).unwrap(), action);
            // Deterministic: the same action always encodes to the same bytes.
            assert_eq!(encode_action(&action), bytes);
        }
        assert!(decode_action(&[]).is_err());
        assert!(decode_action(&[0xff, 0xff]).is_err());
    }

    #[test]
    fn canonical_action_is_what_its_bytes_say() {
        let bytes = encode_action(&Action::Pause);
        let c = CanonicalAction::decode(&bytes).unwrap();
        assert_eq!((c.action(), c.bytes()), (&Action::Pause, bytes.as_slice()));
        assert!(CanonicalAction::decode(b"\x0a\xff").is_err());
        // A view horizon outside 1..=32 decodes to nothing that could execute, with the reason.
        for views in [0, 33, u64::MAX] {
            let bytes = pb::AdminAction {
                action: Some(pb::admin_action::Action::SetEspressoViewHorizon(views)),
            }
            .encode_to_vec();
            assert_eq!(
                CanonicalAction::decode(&bytes).unwrap_err().to_string(),
                format!(
                    "admin action: set_espresso_view_horizon: a view horizon of {views} views is \
                     outside 1..=32: above half the 64-view window, a message let through could \
                     push the key's DA window past the views it votes in"
                )
            );
        }
        // An enrollment without a key, and the retired field 6 (an `AdminInfo` carrying an
        // unchecked key), decode to nothing that could execute.
        let no_key = pb::AdminAction {
            action: Some(pb::admin_action::Action::EnrollAdmin(
                pb::EnrollAdminRequest {
                    name: "x".into(),
                    key: None,
                },
            )),
        };
        assert!(decode_action(&no_key.encode_to_vec()).is_err());
        let retired = pb::AdminInfo {
            name: "x".into(),
            key: "ed25519:00".into(),
            ..Default::default()
        };
        let mut field6 = vec![(6 << 3) | 2];
        let inner = retired.encode_to_vec();
        field6.push(u8::try_from(inner.len()).unwrap());
        field6.extend(inner);
        assert!(decode_action(&field6).is_err());
        assert!(describe_bytes(&field6).starts_with("undecodable action"));
        // A revocation names exactly 32 bytes.
        let short = pb::AdminAction {
            action: Some(pb::admin_action::Action::RevokeCertificate(
                pb::RevokeCertificateAction {
                    fingerprint: vec![1; 31],
                    certificate: Vec::new(),
                },
            )),
        };
        assert_eq!(
            decode_action(&short.encode_to_vec())
                .unwrap_err()
                .to_string(),
            "admin action: revoke_certificate.fingerprint: expected 32 bytes (SHA-256), got 31"
        );
    }

    /// The checked forms decode to one meaning only: a record field set beside an absent
    /// record, a missing grant, or a previous grant of another identity are refused.
    #[test]
    fn checked_forms_refuse_ambiguous_or_incomplete_priors() {
        use pb::admin_action::Action as A;
        let refused = |a: A| {
            decode_action(&pb::AdminAction { action: Some(a) }.encode_to_vec())
                .unwrap_err()
                .to_string()
        };
        let import = |seen: pb::ValidatorSeen| {
            A::ImportProtectionChecked(pb::ImportProtectionAction {
                interchange_json: "{}".into(),
                minify: false,
                seen: vec![pb::ValidatorSeen::default(), seen],
            })
        };
        let stray = "admin action: import_protection_checked.seen[1]: a field is set beside an \
                     absent record";
        for seen in [
            pb::ValidatorSeen {
                has_block: true,
                ..Default::default()
            },
            pb::ValidatorSeen {
                known: true,
                block_slot: 3,
                ..Default::default()
            },
            pb::ValidatorSeen {
                known: true,
                attestation_root: true,
                ..Default::default()
            },
        ] {
            assert_eq!(refused(import(seen)), stray);
        }
        let g = |identity: &str| pb::ClientGrant {
            identity: identity.into(),
            keys: vec!["*".into()],
            profiles: vec!["eth2".into()],
            ..Default::default()
        };
        assert_eq!(
            refused(A::GrantClientChecked(pb::GrantClientAction {
                grant: None,
                previous: None,
            })),
            "admin action: grant_client_checked.grant: missing"
        );
        assert_eq!(
            refused(A::GrantClientChecked(pb::GrantClientAction {
                grant: Some(g("seq-1")),
                previous: Some(g("seq-2")),
            })),
            "admin action: grant_client_checked.previous: names \"seq-2\", not \"seq-1\""
        );
        assert_eq!(
            refused(A::RevokeClientChecked(pb::RevokeClientAction {
                identity: "seq-1".into(),
                previous: None,
            })),
            "admin action: revoke_client_checked.previous: missing"
        );
    }
}
