//! Case tests for the tally and the admin-plane actions.

use super::*;
use crate::admin::attestation::tests::{chain, Slot};
use crate::admin::codec::encode_action;
use crate::admin::{approval, ApproverKey, Fingerprint, RateLimit, RevokedCertificate};
use crate::protection::Profile;
use ed25519_dalek::Signer as _;

mod encoding;
mod grants;
mod refusals;

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

fn record(a: &Admin) -> AdminRecord {
    AdminRecord {
        name: a.name.to_owned(),
        key: ApproverKey::Ed25519(a.key.verifying_key().to_bytes().to_vec()),
        attestation: None,
    }
}

fn enroll_soft(a: &Admin) -> Action {
    Action::EnrollAdmin {
        name: a.name.to_owned(),
        key: EnrollKey::Development {
            ed25519_public_key: a.key.verifying_key().to_bytes().to_vec(),
        },
    }
}

fn bootstrapped_with_roots(admins: &[&Admin], threshold: u32, roots: Vec<Vec<u8>>) -> AdminState {
    let mut s = AdminState::default();
    s.bootstrap(&Bootstrap {
        cluster_id: "c1".into(),
        admins: admins.iter().map(|a| record(a)).collect(),
        policy: Policy {
            threshold,
            ..Policy::default()
        },
        clients: BTreeMap::new(),
        attestation_roots: roots,
        genesis_validators_root: None,
    })
    .unwrap();
    s
}

fn bootstrapped(admins: &[&Admin], threshold: u32) -> AdminState {
    bootstrapped_with_roots(admins, threshold, Vec::new())
}

/// `action` as the state machine hands it over: decoded from its canonical bytes.
fn canon(action: &Action) -> CanonicalAction {
    CanonicalAction::decode(&encode_action(action)).unwrap()
}

fn sign(s: &AdminState, id: &[u8; 32], a: &Admin) -> Vec<u8> {
    let c = &s.challenges[&hex::encode(id)];
    let st = approval::statement(&s.cluster_id, &c.id, &c.digest, c.expires_at_ms);
    a.key.sign(&st).to_bytes().to_vec()
}

fn grant_action(identity: &str) -> Action {
    Action::GrantClient {
        identity: identity.into(),
        grant: ClientGrant {
            keys: [crate::admin::ALL_KEYS.to_owned()].into(),
            profiles: [Profile::Eth2].into(),
            rate_limit: Some(RateLimit {
                per_second: 10,
                burst: 20,
            }),
            raw_roots: false,
        },
        prior: Prior::Unrecorded,
    }
}

#[test]
fn two_of_two_needs_both_and_then_is_single_use() {
    let (a, b) = (admin("admin-a", 1), admin("admin-b", 2));
    let mut s = bootstrapped(&[&a, &b], 2);
    let id = [9u8; 32];
    let action = grant_action("seq-9");
    s.propose(id, "admin-a", &canon(&action), 1_000).unwrap();
    let sig_a = sign(&s, &id, &a);
    assert!(matches!(
        s.approve(&id, "admin-a", &sig_a, 2_000).unwrap(),
        Tally::Pending { ref approvers, threshold: 2 } if approvers == &["admin-a"]
    ));
    assert_eq!(
        s.approve(&id, "admin-a", &sig_a, 2_001).unwrap_err(),
        AdminRefusal::DuplicateApproval("admin-a".into())
    );
    let sig_b = sign(&s, &id, &b);
    let Tally::Reached {
        approvers,
        threshold,
        action: got,
    } = s.approve(&id, "admin-b", &sig_b, 3_000).unwrap()
    else {
        panic!("threshold not reached")
    };
    assert_eq!(approvers, vec!["admin-a", "admin-b"]);
    assert_eq!(threshold, 2);
    assert_eq!(got, action);
    let detail = s.execute(&got).unwrap();
    let decided = Decided {
        at_ms: 3_000,
        threshold,
        approvers,
    };
    s.finish(&id, decided.clone(), &Ok(detail.clone()));
    assert_eq!(
        s.challenges[&hex::encode(id)].status,
        ChallengeStatus::ExecutedUnder { decided, detail }
    );
    assert!(s.clients.contains_key("seq-9"));
    // Replaying either approval now is refused: the challenge is decided.
    assert_eq!(
        s.approve(&id, "admin-b", &sig_b, 3_001).unwrap_err(),
        AdminRefusal::AlreadyDecided(hex::encode(id))
    );
}

#[test]
fn approvals_are_bound_to_their_challenge_cluster_and_expiry() {
    let a = admin("admin-a", 1);
    let mut s = bootstrapped(&[&a], 1);
    let (id1, id2) = ([1u8; 32], [2u8; 32]);
    s.propose(id1, "admin-a", &canon(&grant_action("x")), 0)
        .unwrap();
    s.propose(id2, "admin-a", &canon(&grant_action("y")), 0)
        .unwrap();
    // An approval of challenge 1 presented for challenge 2.
    let sig1 = sign(&s, &id1, &a);
    assert!(matches!(
        s.approve(&id2, "admin-a", &sig1, 1).unwrap_err(),
        AdminRefusal::BadApproval(_)
    ));
    // Signed for another cluster.
    let c = &s.challenges[&hex::encode(id2)];
    let foreign = approval::statement("c2", &c.id, &c.digest, c.expires_at_ms);
    let sig = a.key.sign(&foreign).to_bytes().to_vec();
    assert!(matches!(
        s.approve(&id2, "admin-a", &sig, 1).unwrap_err(),
        AdminRefusal::BadApproval(_)
    ));
    // A valid approval after the expiry.
    let late = s.challenges[&hex::encode(id2)].expires_at_ms + 1;
    let sig2 = sign(&s, &id2, &a);
    assert!(matches!(
        s.approve(&id2, "admin-a", &sig2, late).unwrap_err(),
        AdminRefusal::Expired { .. }
    ));
    // Nothing changed: both challenges still pending without approvals.
    assert!(s.challenges.values().all(|c| c.approvals.is_empty()));
    assert!(s.clients.is_empty());
}

#[test]
fn unknown_admins_and_challenges_are_refused() {
    let a = admin("admin-a", 1);
    let mut s = bootstrapped(&[&a], 1);
    let before = s.clone();
    assert_eq!(
        s.propose([1; 32], "admin-z", &canon(&Action::Pause), 0)
            .unwrap_err(),
        AdminRefusal::UnknownAdmin("admin-z".into())
    );
    assert!(matches!(
        s.approve(&[7; 32], "admin-a", &[0; 64], 0).unwrap_err(),
        AdminRefusal::UnknownChallenge(_)
    ));
    assert_eq!(s, before);
    s.propose([1; 32], "admin-a", &canon(&Action::Pause), 0)
        .unwrap();
    assert!(matches!(
        s.propose([1; 32], "admin-a", &canon(&Action::Resume), 0)
            .unwrap_err(),
        AdminRefusal::ChallengeExists(_)
    ));
    let impostor = admin("admin-z", 3);
    let sig = sign(&s, &[1; 32], &impostor);
    assert_eq!(
        s.approve(&[1; 32], "admin-z", &sig, 1).unwrap_err(),
        AdminRefusal::UnknownAdmin("admin-z".into())
    );
    // admin-a's name with the impostor's signature.
    assert!(matches!(
        s.approve(&[1; 32], "admin-a", &sig, 1).unwrap_err(),
        AdminRefusal::BadApproval(_)
    ));
}

#[test]
fn policy_and_enrollment_rules() {
    let (a, b) = (admin("admin-a", 1), admin("admin-b", 2));
    let mut s = bootstrapped(&[&a], 1);
    let too_high = Action::SetPolicy(Policy {
        threshold: 2,
        ..Policy::default()
    });
    assert_eq!(
        s.execute(&too_high),
        Err(AdminRefusal::Invalid(
            "threshold 2 must be between 1 and the number of admins (1)".into()
        ))
    );
    s.execute(&enroll_soft(&b)).unwrap();
    s.execute(&too_high).unwrap();
    assert_eq!(s.policy.threshold, 2);
    let before = s.clone();
    // Removing an admin below the threshold is refused.
    assert_eq!(
        s.execute(&Action::RemoveAdmin {
            name: "admin-b".into()
        }),
        Err(AdminRefusal::Invalid(
            "removing \"admin-b\" would leave fewer admins than the threshold (2); lower the \
             threshold first"
                .into()
        ))
    );
    // Attestation cannot be required while soft keys are enrolled.
    let strict = Action::SetPolicy(Policy {
        threshold: 2,
        require_attestation: true,
        ..Policy::default()
    });
    assert_eq!(
        s.execute(&strict),
        Err(AdminRefusal::Invalid(
            "attestation cannot be required while admins [\"admin-a\", \"admin-b\"] use \
             development keys"
                .into()
        ))
    );
    // The same key cannot be enrolled twice under another name.
    let mut dup = enroll_soft(&a);
    if let Action::EnrollAdmin { name, .. } = &mut dup {
        *name = "admin-d".into();
    }
    assert_eq!(
        s.execute(&dup),
        Err(AdminRefusal::Invalid(
            "that key is already enrolled for another admin".into()
        ))
    );
    assert_eq!(s, before, "the refusals changed nothing");
}

fn enroll_yubikey(name: &str, slot: Vec<u8>, device: Vec<u8>) -> Action {
    Action::EnrollAdmin {
        name: name.into(),
        key: EnrollKey::YubiKey {
            slot_certificate: slot,
            device_certificate: device,
        },
    }
}

#[test]
fn yubikey_enrollment_takes_the_key_from_the_verified_chain() {
    let a = admin("admin-a", 1);
    let (root, device, slot, key) = chain(Slot::default());
    let mut s = bootstrapped_with_roots(&[&a], 1, vec![root]);
    let detail = s
        .execute(&enroll_yubikey("admin-yk", slot, device))
        .unwrap();
    assert!(detail.contains("attestation verified"), "{detail}");
    let enrolled = &s.admins["admin-yk"];
    assert_eq!(
        enrolled.key,
        ApproverKey::P256(rcgen::PublicKeyData::der_bytes(&key).to_vec())
    );
    let facts = enrolled.attestation.as_ref().unwrap();
    assert_eq!(
        (facts.serial, facts.touch_policy.as_str()),
        (12_345_678, "always")
    );

    // A touch-never key is refused under the default policy, with a valid chain.
    let (root, device, slot, _) = chain(Slot {
        policy: Some(vec![0x02, 0x01]),
        ..Slot::default()
    });
    let mut s = bootstrapped_with_roots(&[&a], 1, vec![root]);
    let err = s
        .execute(&enroll_yubikey("admin-c", slot, device))
        .unwrap_err();
    assert!(err.to_string().contains("touch policy"), "{err}");
    assert!(!s.admins.contains_key("admin-c"));
}

#[test]
fn yubikey_enrollment_against_other_roots_is_refused_and_enrolls_nothing() {
    let a = admin("admin-a", 1);
    let (_, device, slot, _) = chain(Slot::default());
    let (other_root, ..) = chain(Slot::default());
    for roots in [vec![], vec![other_root]] {
        let mut s = bootstrapped_with_roots(&[&a], 1, roots.clone());
        let before = s.clone();
        let err = s
            .execute(&enroll_yubikey("admin-yk", slot.clone(), device.clone()))
            .unwrap_err();
        let want = if roots.is_empty() {
            attestation::AttestationError::NoTrustedRoots
        } else {
            attestation::AttestationError::UntrustedDevice
        };
        assert_eq!(
            err,
            AdminRefusal::Attestation {
                admin: "admin-yk".into(),
                reason: want.to_string()
            }
        );
        assert_eq!(s, before);
        // And at proposal: no challenge opens for it.
        let action = canon(&enroll_yubikey("admin-yk", slot.clone(), device.clone()));
        assert!(matches!(
            s.propose([5; 32], "admin-a", &action, 0),
            Err(AdminRefusal::Attestation { .. })
        ));
        assert!(s.challenges.is_empty());
    }
}

#[test]
fn bootstrap_refuses_a_root_that_is_not_a_certificate() {
    let mut s = AdminState::default();
    let err = s
        .bootstrap(&Bootstrap {
            cluster_id: "c1".into(),
            admins: vec![record(&admin("admin-a", 1))],
            policy: Policy::default(),
            clients: BTreeMap::new(),
            attestation_roots: vec![b"not a certificate".to_vec()],
            genesis_validators_root: None,
        })
        .unwrap_err();
    assert!(matches!(err, AdminRefusal::Invalid(ref m) if m.contains("attestation root 0")));
    assert!(!s.bootstrapped);
}

#[test]
fn a_hopeless_action_is_refused_at_proposal() {
    let a = admin("admin-a", 1);
    let mut s = bootstrapped(&[&a], 1);
    let bad = Action::RevokeClient {
        identity: "nobody".into(),
        prior: Prior::Unrecorded,
    };
    assert!(s.propose([1; 32], "admin-a", &canon(&bad), 0).is_err());
    assert!(s.challenges.is_empty());
}

#[test]
fn bootstrap_is_once() {
    let a = admin("admin-a", 1);
    let mut s = bootstrapped(&[&a], 1);
    let again = Bootstrap {
        cluster_id: "other".into(),
        admins: vec![],
        policy: Policy::default(),
        clients: BTreeMap::new(),
        attestation_roots: Vec::new(),
        genesis_validators_root: None,
    };
    assert_eq!(s.bootstrap(&again), Err(AdminRefusal::AlreadyBootstrapped));
    assert_eq!(s.cluster_id, "c1");
}
