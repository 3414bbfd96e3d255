//! Invariant I4 on `apply` itself, with hostile inputs: what executes is what the committed
//! bytes decode to, attestation chains are verified by the replica, approvals count by key and
//! only at the threshold, and interchange files must name the cluster's replicated network.

use super::*;
use crate::admin::approval;
use crate::admin::attestation::tests::{chain, find_once, Slot};
use crate::admin::attestation::AttestationError;
use crate::admin::codec::encode_action;
use crate::admin::state::{Bootstrap, ChallengeStatus, Decided};
use crate::admin::{AdminRecord, ApproverKey, ClientGrant, EnrollKey, Policy, RateLimit};
use crate::bytes::FixedBytes;
use crate::protection::ethereum::Root;
use crate::protection::interchange::review::RecordSeen;
use crate::protection::Profile;
use ed25519_dalek::Signer as _;
use std::collections::BTreeMap;

const CLUSTER: &str = "c1";
const GVR: Root = FixedBytes([0x42; 32]);

struct Admin {
    name: &'static str,
    key: ed25519_dalek::SigningKey,
}

fn admin(name: &'static str, seed: u8) -> Admin {
    Admin {
        name,
        key: ed25519_dalek::SigningKey::from_bytes(&[seed; 32]),
    }
}

fn public(a: &Admin) -> Vec<u8> {
    a.key.verifying_key().to_bytes().to_vec()
}

fn bootstrapped(
    admins: &[&Admin],
    threshold: u32,
    roots: Vec<Vec<u8>>,
    gvr: Option<Root>,
) -> Applied {
    let mut applied = Applied::default();
    let b = Bootstrap {
        cluster_id: CLUSTER.into(),
        admins: admins
            .iter()
            .map(|a| AdminRecord {
                name: a.name.into(),
                key: ApproverKey::Ed25519(public(a)),
                attestation: None,
            })
            .collect(),
        policy: Policy {
            threshold,
            ..Policy::default()
        },
        clients: BTreeMap::new(),
        attestation_roots: roots,
        genesis_validators_root: gvr,
    };
    assert_eq!(
        run(&mut applied, &AdminCommand::Bootstrap(b)),
        AdminOutcome::Bootstrapped
    );
    applied
}

/// The whole replicated apply of one admin command (tally, effect, compaction, audit).
fn run(applied: &mut Applied, command: &AdminCommand) -> AdminOutcome {
    match applied
        .apply(&crate::state::Command::Admin(command.clone()), 1, 1_000)
        .0
    {
        crate::state::CommandResult::Admin(outcome) => outcome,
        other => panic!("an admin command returned {other:?}"),
    }
}

fn propose(applied: &mut Applied, id: u8, by: &Admin, bytes: Vec<u8>) -> AdminOutcome {
    run(
        applied,
        &AdminCommand::Propose {
            id: [id; 32],
            proposer: by.name.into(),
            action_bytes: bytes,
        },
    )
}

/// `by`'s signature over challenge `id`'s statement.
fn signature(applied: &Applied, id: u8, by: &Admin) -> Vec<u8> {
    let c = &applied.admin.challenges[&hex::encode([id; 32])];
    let st = approval::statement(CLUSTER, &c.id, &c.digest, c.expires_at_ms);
    by.key.sign(&st).to_bytes().to_vec()
}

fn approve_with(applied: &mut Applied, id: u8, name: &str, sig: Vec<u8>) -> AdminOutcome {
    run(
        applied,
        &AdminCommand::Approve {
            id: [id; 32],
            admin: name.into(),
            signature: sig,
        },
    )
}

fn approve(applied: &mut Applied, id: u8, by: &Admin) -> AdminOutcome {
    let sig = signature(applied, id, by);
    approve_with(applied, id, by.name, sig)
}

fn grant(identity: &str) -> Action {
    Action::GrantClient {
        identity: identity.into(),
        grant: ClientGrant {
            keys: ["k-1".to_owned()].into(),
            profiles: [Profile::Espresso].into(),
            rate_limit: Some(RateLimit {
                per_second: 3,
                burst: 4,
            }),
            raw_roots: false,
        },
        prior: Prior::Recorded(None),
    }
}

fn executed(outcome: &AdminOutcome) -> bool {
    matches!(outcome, AdminOutcome::Executed { .. })
}

#[test]
fn undecodable_bytes_are_refused_and_open_nothing() {
    let a = admin("admin-a", 1);
    let mut applied = bootstrapped(&[&a], 1, Vec::new(), Some(GVR));
    // The retired field 6: an `AdminInfo` naming a key nobody checked.
    let retired = {
        use prost::Message;
        let info = crate::pb::AdminInfo {
            name: "admin-evil".into(),
            key: format!("ed25519:{}", hex::encode([9u8; 32])),
            ..Default::default()
        }
        .encode_to_vec();
        let mut bytes = vec![(6 << 3) | 2, u8::try_from(info.len()).unwrap()];
        bytes.extend(info);
        bytes
    };
    for garbage in [vec![], vec![0xff, 0xff], b"\x0a\x05ab".to_vec(), retired] {
        let why = codec::decode_action(&garbage).unwrap_err().to_string();
        let outcome = propose(&mut applied, 1, &a, garbage.clone());
        assert_eq!(
            outcome,
            AdminOutcome::Refused(AdminRefusal::MalformedAction(why)),
            "{garbage:02x?}"
        );
        // Audited as a refusal that names the bytes as undecodable.
        let AuditEvent::Admin { action, result, .. } = audit_event(
            &applied,
            &AdminCommand::Propose {
                id: [1; 32],
                proposer: a.name.into(),
                action_bytes: garbage,
            },
            &outcome,
        ) else {
            panic!("not an admin record")
        };
        assert!(action.contains("undecodable action"), "{action}");
        assert!(result.starts_with("refused"), "{result}");
    }
    assert!(applied.admin.challenges.is_empty());
    assert_eq!(applied.admin.admins.len(), 1);
}

#[test]
fn what_executes_is_what_the_approved_bytes_decode_to() {
    let a = admin("admin-a", 1);
    let mut applied = bootstrapped(&[&a], 1, Vec::new(), Some(GVR));
    let action = grant("seq-7");
    let bytes = encode_action(&action);
    assert!(matches!(
        propose(&mut applied, 1, &a, bytes.clone()),
        AdminOutcome::Proposed { threshold: 1, .. }
    ));
    // The challenge keeps the bytes (and their digest) only: nothing else to disagree with.
    let c = &applied.admin.challenges[&hex::encode([1u8; 32])];
    assert_eq!(c.action_bytes, bytes);
    assert_eq!(c.digest, approval::action_digest(&bytes));
    assert!(executed(&approve(&mut applied, 1, &a)));
    let Action::GrantClient { grant, .. } = action else {
        unreachable!()
    };
    assert_eq!(applied.admin.clients.get("seq-7"), Some(&grant));
    assert_eq!(applied.admin.clients.len(), 1);
}

fn enroll_yubikey(name: &str, slot: Vec<u8>, device: Vec<u8>) -> Vec<u8> {
    encode_action(&Action::EnrollAdmin {
        name: name.into(),
        key: EnrollKey::YubiKey {
            slot_certificate: slot,
            device_certificate: device,
        },
    })
}

#[test]
fn an_enrollment_whose_chain_does_not_verify_here_is_refused_and_enrolls_nothing() {
    let a = admin("admin-a", 1);
    let (root, device, slot, slot_key) = chain(Slot::default());
    let (_, foreign_device, foreign_slot, _) = chain(Slot::default());
    let mut applied = bootstrapped(&[&a], 1, vec![root], Some(GVR));
    let before = applied.admin.clone();

    // "touch always" turned into "touch never" inside the signed slot certificate.
    let mut tampered = slot.clone();
    let at = find_once(&tampered, &[0x03, 0x08, 0x04, 0x02, 0x02, 0x02]);
    tampered[at + 5] = 0x01;
    let cases = [
        (
            foreign_slot.clone(),
            foreign_device,
            AttestationError::UntrustedDevice,
        ),
        (
            tampered,
            device.clone(),
            AttestationError::SlotNotSignedByDevice,
        ),
        // A real slot certificate presented with another key's device certificate.
        (
            foreign_slot,
            device.clone(),
            AttestationError::SlotNotSignedByDevice,
        ),
    ];
    for (slot_der, device_der, error) in cases {
        let outcome = propose(
            &mut applied,
            2,
            &a,
            enroll_yubikey("admin-yk", slot_der, device_der),
        );
        assert_eq!(
            outcome,
            AdminOutcome::Refused(AdminRefusal::Attestation {
                admin: "admin-yk".into(),
                reason: error.to_string(),
            })
        );
        assert_eq!(applied.admin.admins, before.admins);
        assert!(applied.admin.challenges.is_empty());
    }

    // The genuine chain enrolls the key of its slot certificate, and nothing else.
    assert!(matches!(
        propose(
            &mut applied,
            3,
            &a,
            enroll_yubikey("admin-yk", slot, device)
        ),
        AdminOutcome::Proposed { .. }
    ));
    assert!(executed(&approve(&mut applied, 3, &a)));
    let enrolled = &applied.admin.admins["admin-yk"];
    assert_eq!(
        enrolled.key,
        ApproverKey::P256(rcgen::PublicKeyData::der_bytes(&slot_key).to_vec())
    );
    assert!(enrolled.attestation.is_some());
}

#[test]
fn a_development_key_is_refused_in_apply_when_the_policy_requires_attestation() {
    use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
    let a = admin("admin-a", 1);
    let (root, device, slot, slot_key) = chain(Slot::default());
    let mut applied = bootstrapped(&[&a], 1, vec![root], Some(GVR));
    // Replace the soft admin by a YubiKey admin, who then requires attestation.
    propose(
        &mut applied,
        1,
        &a,
        enroll_yubikey("admin-yk", slot, device),
    );
    assert!(executed(&approve(&mut applied, 1, &a)));
    let remove = encode_action(&Action::RemoveAdmin {
        name: "admin-a".into(),
    });
    propose(&mut applied, 2, &a, remove);
    assert!(executed(&approve(&mut applied, 2, &a)));
    let rng = ring::rand::SystemRandom::new();
    let yk = EcdsaKeyPair::from_pkcs8(
        &ECDSA_P256_SHA256_ASN1_SIGNING,
        &slot_key.serialize_der(),
        &rng,
    )
    .unwrap();
    let as_yk = |applied: &mut Applied, id: u8, bytes: Vec<u8>| {
        let command = AdminCommand::Propose {
            id: [id; 32],
            proposer: "admin-yk".into(),
            action_bytes: bytes,
        };
        let proposed = run(applied, &command);
        if !matches!(proposed, AdminOutcome::Proposed { .. }) {
            return proposed;
        }
        let c = &applied.admin.challenges[&hex::encode([id; 32])];
        let st = approval::statement(CLUSTER, &c.id, &c.digest, c.expires_at_ms);
        let sig = yk.sign(&rng, &st).unwrap().as_ref().to_vec();
        approve_with(applied, id, "admin-yk", sig)
    };
    let strict = Action::SetPolicy(Policy {
        require_attestation: true,
        ..Policy::default()
    });
    assert!(executed(&as_yk(&mut applied, 3, encode_action(&strict))));
    let soft = admin("admin-soft", 5);
    let enroll = encode_action(&Action::EnrollAdmin {
        name: soft.name.into(),
        key: EnrollKey::Development {
            ed25519_public_key: public(&soft),
        },
    });
    let outcome = as_yk(&mut applied, 4, enroll);
    assert!(
        matches!(&outcome, AdminOutcome::Refused(AdminRefusal::Invalid(m)) if m.contains("requires an attested")),
        "{outcome:?}"
    );
    assert!(!applied.admin.admins.contains_key("admin-soft"));
}

#[test]
fn approvals_count_by_key_so_a_re_enrolled_name_inherits_nothing() {
    let (a, b, c) = (
        admin("admin-a", 1),
        admin("admin-b", 2),
        admin("admin-c", 3),
    );
    let mut applied = bootstrapped(&[&a, &b, &c], 2, Vec::new(), Some(GVR));
    propose(&mut applied, 1, &a, encode_action(&grant("seq-x")));
    let old_sig = signature(&applied, 1, &a);
    assert_eq!(
        approve_with(&mut applied, 1, a.name, old_sig.clone()),
        AdminOutcome::Pending {
            approvers: vec!["admin-a".into()],
            threshold: 2
        }
    );

    // admin-a is removed and enrolled again under the same name with a new key.
    let a2 = admin("admin-a", 9);
    propose(
        &mut applied,
        2,
        &b,
        encode_action(&Action::RemoveAdmin {
            name: "admin-a".into(),
        }),
    );
    approve(&mut applied, 2, &b);
    assert!(executed(&approve(&mut applied, 2, &c)));
    let enroll = encode_action(&Action::EnrollAdmin {
        name: "admin-a".into(),
        key: EnrollKey::Development {
            ed25519_public_key: public(&a2),
        },
    });
    propose(&mut applied, 3, &b, enroll);
    approve(&mut applied, 3, &b);
    assert!(executed(&approve(&mut applied, 3, &c)));

    // The old key's approval of challenge 1 no longer counts: with admin-b's, one of two.
    assert_eq!(
        approve(&mut applied, 1, &b),
        AdminOutcome::Pending {
            approvers: vec!["admin-b".into()],
            threshold: 2
        }
    );
    assert!(applied.admin.clients.is_empty(), "nothing executed");
    // The old signature presented again under the name: not the enrolled key.
    assert!(matches!(
        approve_with(&mut applied, 1, "admin-a", old_sig),
        AdminOutcome::Refused(AdminRefusal::BadApproval(_))
    ));
    // The new key's own approval counts, once.
    assert_eq!(
        approve(&mut applied, 1, &a2),
        AdminOutcome::Executed {
            approvers: vec!["admin-a".into(), "admin-b".into()],
            detail: "client \"seq-x\" granted".into()
        }
    );
    // The audit record names the admins.
    let AuditEvent::Admin {
        actor, approvers, ..
    } = audit_event(
        &applied,
        &AdminCommand::Approve {
            id: [1; 32],
            admin: "admin-a".into(),
            signature: Vec::new(),
        },
        &AdminOutcome::Executed {
            approvers: vec!["admin-a".into(), "admin-b".into()],
            detail: String::new(),
        },
    )
    else {
        panic!("not an admin record")
    };
    assert_eq!((actor.as_str(), approvers.len()), ("admin-a", 2));
}

#[test]
fn approvals_below_the_threshold_execute_nothing() {
    let (a, b) = (admin("admin-a", 1), admin("admin-b", 2));
    let mut applied = bootstrapped(&[&a, &b], 2, Vec::new(), Some(GVR));
    let add_key = Action::SetKeyState {
        key_id: "nope".into(),
        state: crate::registry::KeyState::Disabled,
    };
    // A key action for a key that does not exist is hopeless: refused at proposal.
    assert!(matches!(
        propose(&mut applied, 1, &a, encode_action(&add_key)),
        AdminOutcome::Refused(AdminRefusal::Invalid(_))
    ));
    for (id, action) in [
        (2, Action::Pause),
        (3, grant("seq-y")),
        (4, Action::CompactAudit { up_to_seq: 1 }),
    ] {
        propose(&mut applied, id, &a, encode_action(&action));
        let before = (
            applied.admin.paused,
            applied.admin.clients.clone(),
            applied.registry.clone(),
            applied.protection.clone(),
        );
        assert!(matches!(
            approve(&mut applied, id, &a),
            AdminOutcome::Pending { .. }
        ));
        // The same key again, and a signature by a key that is no admin's.
        assert_eq!(
            approve(&mut applied, id, &a),
            AdminOutcome::Refused(AdminRefusal::DuplicateApproval("admin-a".into()))
        );
        let stranger = admin("admin-b", 7);
        assert!(matches!(
            approve(&mut applied, id, &stranger),
            AdminOutcome::Refused(AdminRefusal::BadApproval(_))
        ));
        let after = (
            applied.admin.paused,
            applied.admin.clients.clone(),
            applied.registry.clone(),
            applied.protection.clone(),
        );
        assert_eq!(before, after);
        let outcome = AdminOutcome::Pending {
            approvers: vec!["admin-a".into()],
            threshold: 2,
        };
        let approve_cmd = AdminCommand::Approve {
            id: [id; 32],
            admin: "admin-a".into(),
            signature: Vec::new(),
        };
        assert_eq!(approved_compaction(&applied, &approve_cmd, &outcome), None);
    }
}

fn interchange(gvr: Root) -> String {
    let pk = "0xa99a76ed7796f7be22d5b7e85deeb7c5677e88e511e0b337618f8c4eb61349b4bf2d153f649f7b53359fe8b94a38e44c";
    format!(
        r#"{{"metadata":{{"interchange_format_version":"5","genesis_validators_root":"{gvr}"}},
           "data":[{{"pubkey":"{pk}","signed_blocks":[{{"slot":"1000"}}],"signed_attestations":[]}}]}}"#
    )
}

fn import(text: String) -> Vec<u8> {
    encode_action(&Action::ImportProtection {
        interchange: text,
        minify: false,
        prior: Prior::Recorded(vec![None]),
    })
}

#[test]
fn an_interchange_for_another_network_is_refused_in_apply() {
    let a = admin("admin-a", 1);
    let foreign: Root = FixedBytes([0x11; 32]);
    let mut applied = bootstrapped(&[&a], 1, Vec::new(), Some(GVR));
    assert_eq!(
        propose(&mut applied, 1, &a, import(interchange(foreign))),
        AdminOutcome::Refused(AdminRefusal::GenesisMismatch {
            expected: GVR,
            found: foreign
        })
    );
    assert!(applied.admin.challenges.is_empty());
    assert!(applied.protection.eth2.validators.is_empty());

    // The cluster's own network imports.
    propose(&mut applied, 2, &a, import(interchange(GVR)));
    assert!(executed(&approve(&mut applied, 2, &a)));
    assert_eq!(applied.protection.eth2.validators.len(), 1);

    // A cluster whose state predates the replicated root refuses every import.
    let mut legacy = bootstrapped(&[&a], 1, Vec::new(), None);
    assert_eq!(
        propose(&mut legacy, 1, &a, import(interchange(GVR))),
        AdminOutcome::Refused(AdminRefusal::NoGenesisRoot)
    );
    assert!(legacy.protection.eth2.validators.is_empty());
}

/// A grant carries the identity's grant when proposed. A proposing node that lies about it is
/// refused at proposal; a grant that changed between proposal and the last approval fails
/// there and changes nothing: the change the approvers reviewed is the change, or nothing.
#[test]
fn a_grant_reviewed_against_another_grant_never_applies() {
    let (a, b) = (admin("admin-a", 1), admin("admin-b", 2));
    let mut applied = bootstrapped(&[&a, &b], 2, Vec::new(), Some(GVR));
    let Action::GrantClient { grant: g, .. } = grant("seq-z") else {
        unreachable!()
    };
    // A node claims seq-z already holds a grant (so the approvers would read a small diff).
    let lying = Action::GrantClient {
        identity: "seq-z".into(),
        grant: g.clone(),
        prior: Prior::Recorded(Some(ClientGrant {
            keys: ["*".to_owned()].into(),
            ..g.clone()
        })),
    };
    assert_eq!(
        propose(&mut applied, 1, &a, encode_action(&lying)),
        AdminOutcome::Refused(AdminRefusal::Invalid(
            "client \"seq-z\"'s grant is not the one this change was reviewed against (keys [*] \
             profiles [espresso] rate 3/s, burst 4); it is now no grant: propose the change \
             again"
                .into()
        ))
    );
    assert!(applied.admin.challenges.is_empty());

    // Two grants for seq-z, both reviewed against "no grant": the first executes, the second
    // then fails at its threshold.
    let other = Action::GrantClient {
        identity: "seq-z".into(),
        grant: ClientGrant {
            raw_roots: true,
            ..g.clone()
        },
        prior: Prior::Recorded(None),
    };
    propose(&mut applied, 2, &a, encode_action(&grant("seq-z")));
    propose(&mut applied, 3, &a, encode_action(&other));
    approve(&mut applied, 2, &a);
    assert!(executed(&approve(&mut applied, 2, &b)));
    approve(&mut applied, 3, &a);
    let reason = "client \"seq-z\"'s grant is not the one this change was reviewed against (no \
                  grant); it is now keys [k-1] profiles [espresso] rate 3/s, burst 4: propose \
                  the change again";
    assert_eq!(
        approve(&mut applied, 3, &b),
        AdminOutcome::Failed {
            approvers: vec!["admin-a".into(), "admin-b".into()],
            reason: reason.into()
        }
    );
    assert_eq!(applied.admin.clients["seq-z"], g);
    assert_eq!(
        applied.admin.challenges[&hex::encode([3u8; 32])].status,
        ChallengeStatus::FailedUnder {
            decided: Decided {
                at_ms: 1_000,
                threshold: 2,
                approvers: vec!["admin-a".into(), "admin-b".into()],
            },
            reason: reason.into()
        }
    );
}

/// An import carries the cluster's records of its validators when proposed. A node that
/// overstates them (making the import look like less than it is) is refused at proposal.
#[test]
fn an_import_reviewed_against_overstated_records_is_refused() {
    let a = admin("admin-a", 1);
    let mut applied = bootstrapped(&[&a], 1, Vec::new(), Some(GVR));
    propose(&mut applied, 1, &a, import(interchange(GVR)));
    assert!(executed(&approve(&mut applied, 1, &a)));
    let claimed = |slot| {
        encode_action(&Action::ImportProtection {
            interchange: interchange(GVR),
            minify: false,
            prior: Prior::Recorded(vec![Some(RecordSeen {
                block: Some((slot, false)),
                attestation: None,
            })]),
        })
    };
    assert_eq!(
        propose(&mut applied, 2, &a, claimed(5_000)),
        AdminOutcome::Refused(AdminRefusal::Invalid(
            "the protection records are not the ones this import was reviewed against: \
             validator 0xa99a76ed7796f7be22d5b7e85deeb7c5677e88e511e0b337618f8c4eb61349b4bf2d153f\
             649f7b53359fe8b94a38e44c: the import was reviewed against block slot 5000, no \
             attestation, and the cluster now holds block slot 1000, no attestation; propose \
             the import again"
                .into()
        ))
    );
    assert!(matches!(
        propose(&mut applied, 3, &a, claimed(1_000)),
        AdminOutcome::Proposed { .. }
    ));
}

/// A decided challenge keeps the threshold its approvals met: raising the threshold later (by
/// an action decided under the old one) does not rewrite it.
#[test]
fn a_decided_challenge_keeps_the_threshold_it_met() {
    let (a, b) = (admin("admin-a", 1), admin("admin-b", 2));
    let mut applied = bootstrapped(&[&a, &b], 1, Vec::new(), Some(GVR));
    let decided = |applied: &Applied, id: u8| {
        applied.admin.challenges[&hex::encode([id; 32])]
            .status
            .decided()
            .map(|d| (d.threshold, d.approvers.clone()))
    };
    propose(&mut applied, 1, &a, encode_action(&grant("seq-1")));
    assert!(executed(&approve(&mut applied, 1, &a)));
    let two = Action::SetPolicy(Policy {
        threshold: 2,
        ..Policy::default()
    });
    propose(&mut applied, 2, &b, encode_action(&two));
    assert!(executed(&approve(&mut applied, 2, &b)));
    propose(&mut applied, 3, &a, encode_action(&grant("seq-2")));
    approve(&mut applied, 3, &b);
    assert!(executed(&approve(&mut applied, 3, &a)));
    assert_eq!(applied.admin.policy.threshold, 2);
    assert_eq!(decided(&applied, 1), Some((1, vec!["admin-a".into()])));
    assert_eq!(decided(&applied, 2), Some((1, vec!["admin-b".into()])));
    assert_eq!(
        decided(&applied, 3),
        Some((2, vec!["admin-a".into(), "admin-b".into()]))
    );
}
