//! The canonical wire form of admin actions: [`Action`] ↔ `signer.v1.AdminAction`, and the
//! admin-plane records ↔ their protobuf messages.
//!
//! Owns: [`encode_action`] (the bytes whose digest approvers sign) and [`decode_action`] (what
//! `signerctl approve` shows). Must not: apply or authorize anything.
//!
//! To ensure correctness:
//! - `decode_action(encode_action(a)) == a` for every action (tested), so the action an
//!   approver reads from the bytes is the action the node commits;
//! - prost encodes fields in field-number order with no maps, so the encoding of a given
//!   action is the same on every node and client.

use crate::admin::{
    Action, AdminRecord, ApproverKey, AttestationFacts, ClientGrant, Policy, RateLimit,
};
use crate::custody::{KekRef, SealedKey};
use crate::pb;
use crate::registry::{KeyRecord, KeyState, Rewrap};
use prost::Message;

/// Why bytes are not a valid action.
#[derive(Debug, thiserror::Error)]
#[error("admin action: {0}")]
pub struct CodecError(String);

fn err(message: impl Into<String>) -> CodecError {
    CodecError(message.into())
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
        Action::GrantClient { identity, grant } => A::GrantClient(grant_to_pb(identity, grant)),
        Action::RevokeClient { identity } => A::RevokeClient(identity.clone()),
        Action::EnrollAdmin(a) => A::EnrollAdmin(admin_to_pb(a)),
        Action::RemoveAdmin { name } => A::RemoveAdmin(name.clone()),
        Action::SetPolicy(p) => A::SetPolicy(policy_to_pb(p)),
        Action::ImportProtection {
            interchange,
            minify,
        } => A::ImportProtection(pb::ImportProtectionRequest {
            interchange_json: interchange.clone(),
            minify: *minify,
        }),
        Action::Pause => A::Pause(pb::PauseRequest {}),
        Action::Resume => A::Resume(pb::ResumeRequest {}),
        Action::CompactAudit { up_to_seq } => A::CompactAudit(*up_to_seq),
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
            Action::GrantClient { identity, grant }
        }
        A::RevokeClient(identity) => Action::RevokeClient { identity },
        A::EnrollAdmin(a) => Action::EnrollAdmin(admin_from_pb(a)?),
        A::RemoveAdmin(name) => Action::RemoveAdmin { name },
        A::SetPolicy(p) => Action::SetPolicy(policy_from_pb(&p)),
        A::ImportProtection(i) => Action::ImportProtection {
            interchange: i.interchange_json,
            minify: i.minify,
        },
        A::Pause(_) => Action::Pause,
        A::Resume(_) => Action::Resume,
        A::CompactAudit(up_to_seq) => Action::CompactAudit { up_to_seq },
    })
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

/// A protobuf admin record.
pub fn admin_from_pb(a: pb::AdminInfo) -> Result<AdminRecord, CodecError> {
    Ok(AdminRecord {
        key: ApproverKey::from_text(&a.key).map_err(|e| err(e.to_string()))?,
        attestation: a.attested.then_some(AttestationFacts {
            serial: a.serial,
            firmware: a.firmware,
            pin_policy: a.pin_policy,
            touch_policy: a.touch_policy,
        }),
        name: a.name,
    })
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
        let soft = ApproverKey::Ed25519(
            ed25519_dalek::SigningKey::from_bytes(&[3; 32])
                .verifying_key()
                .to_bytes()
                .to_vec(),
        );
        let actions = vec![
            Action::SetKeyState {
                key_id: "k".into(),
                state: KeyState::Disabled,
            },
            Action::RotateKek(vec![]),
            Action::GrantClient {
                identity: "seq-1".into(),
                grant: ClientGrant {
                    keys: ["a".to_owned(), "b".to_owned()].into(),
                    profiles: [Profile::Eth2, Profile::Espresso].into(),
                    rate_limit: Some(RateLimit {
                        per_second: 5,
                        burst: 9,
                    }),
                },
            },
            Action::RevokeClient {
                identity: "seq-1".into(),
            },
            Action::EnrollAdmin(AdminRecord {
                name: "admin-x".into(),
                key: soft,
                attestation: Some(AttestationFacts {
                    serial: 7,
                    firmware: "5.4.3".into(),
                    pin_policy: "once".into(),
                    touch_policy: "always".into(),
                }),
            }),
            Action::RemoveAdmin {
                name: "admin-x".into(),
            },
            Action::SetPolicy(Policy::default()),
            Action::ImportProtection {
                interchange: "{}".into(),
                minify: true,
            },
            Action::Pause,
            Action::Resume,
            Action::CompactAudit { up_to_seq: 42 },
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
}
