//! Negative cases of the admin policy, with exact outcomes: a threshold of 0, the bound on
//! pending challenges, and what a pending challenge needs after an admin is removed or the
//! threshold changes. Pure: the state functions only, times passed in.

use super::*;

/// Policy `threshold` with the default lifetime and attestation rules.
fn policy(threshold: u32) -> Policy {
    Policy {
        threshold,
        ..Policy::default()
    }
}

fn threshold_refusal(threshold: u32, admins: usize) -> AdminRefusal {
    AdminRefusal::Invalid(format!(
        "threshold {threshold} must be between 1 and the number of admins ({admins})"
    ))
}

/// `a` approves challenge `id` at `at_ms`; on reaching the threshold the action is executed
/// and the challenge finished, as the state machine does.
fn approve_as(s: &mut AdminState, id: [u8; 32], a: &Admin, at_ms: u64) -> Tally {
    let signature = sign(s, &id, a);
    let tally = s.approve(&id, a.name, &signature, at_ms).unwrap();
    if let Tally::Reached {
        action,
        approvers,
        threshold,
    } = &tally
    {
        let result = s.execute(action).map_err(|e| e.to_string());
        let decided = Decided {
            at_ms,
            threshold: *threshold,
            approvers: approvers.clone(),
        };
        s.finish(&id, decided, &result);
    }
    tally
}

fn pending(tally: &Tally) -> (Vec<&str>, u32) {
    match tally {
        Tally::Pending {
            approvers,
            threshold,
        } => (approvers.iter().map(String::as_str).collect(), *threshold),
        Tally::Reached { approvers, .. } => panic!("reached with {approvers:?}"),
    }
}

fn reached(tally: &Tally) -> Vec<&str> {
    match tally {
        Tally::Reached { approvers, .. } => approvers.iter().map(String::as_str).collect(),
        Tally::Pending { approvers, .. } => panic!("still pending with {approvers:?}"),
    }
}

fn status(s: &AdminState, id: [u8; 32]) -> &ChallengeStatus {
    &s.challenges[&hex::encode(id)].status
}

#[test]
fn a_threshold_of_0_is_refused_at_bootstrap_at_proposal_and_in_apply() {
    let (a, b) = (admin("admin-a", 1), admin("admin-b", 2));
    // Bootstrap: refused, nothing set.
    let mut fresh = AdminState::default();
    let err = fresh
        .bootstrap(&Bootstrap {
            cluster_id: "c1".into(),
            admins: vec![record(&a), record(&b)],
            policy: policy(0),
            clients: BTreeMap::new(),
            attestation_roots: Vec::new(),
            genesis_validators_root: None,
        })
        .unwrap_err();
    assert_eq!(err, threshold_refusal(0, 2));
    assert_eq!(
        err.to_string(),
        "threshold 0 must be between 1 and the number of admins (2)"
    );
    assert_eq!(fresh, AdminState::default());

    // Proposal: refused before a challenge opens.
    let mut s = bootstrapped(&[&a, &b], 1);
    let before = s.clone();
    let zero = Action::SetPolicy(policy(0));
    assert_eq!(
        s.propose([1; 32], "admin-a", &canon(&zero), 1_000)
            .unwrap_err(),
        threshold_refusal(0, 2)
    );
    assert_eq!(s, before);
    // Apply (a policy proposed when it was valid, executed later): refused, policy kept.
    assert_eq!(s.execute(&zero).unwrap_err(), threshold_refusal(0, 2));
    assert_eq!(s, before);
    // Above the number of admins: refused the same way; the bounds themselves are accepted.
    assert_eq!(
        s.execute(&Action::SetPolicy(policy(3))).unwrap_err(),
        threshold_refusal(3, 2)
    );
    assert_eq!(s, before);
    assert_eq!(
        s.execute(&Action::SetPolicy(policy(2))).unwrap(),
        "policy set"
    );
    assert_eq!(s.policy.threshold, 2);
    assert_eq!(
        s.execute(&Action::SetPolicy(policy(1))).unwrap(),
        "policy set"
    );
    assert_eq!(s.policy.threshold, 1);
}

#[test]
fn removing_an_admin_below_the_threshold_is_refused_with_its_reason() {
    let (a, b) = (admin("admin-a", 1), admin("admin-b", 2));
    let mut s = bootstrapped(&[&a, &b], 2);
    let before = s.clone();
    let remove = Action::RemoveAdmin {
        name: "admin-b".into(),
    };
    assert_eq!(
        s.execute(&remove).unwrap_err(),
        AdminRefusal::Invalid(
            "removing \"admin-b\" would leave fewer admins than the threshold (2); lower the \
             threshold first"
                .into()
        )
    );
    assert_eq!(
        s.execute(&Action::RemoveAdmin {
            name: "admin-z".into()
        })
        .unwrap_err(),
        AdminRefusal::UnknownAdmin("admin-z".into())
    );
    assert_eq!(s, before);
    // With the threshold lowered first, the same removal executes.
    s.execute(&Action::SetPolicy(policy(1))).unwrap();
    assert_eq!(s.execute(&remove).unwrap(), "admin \"admin-b\" removed");
    assert_eq!(s.admins.keys().collect::<Vec<_>>(), ["admin-a"]);
}

/// The pending bound in force (`MAX_PENDING` in `state.rs`), written out.
const BOUND: usize = 256;

#[test]
fn at_most_256_challenges_are_pending_and_a_decided_or_expired_one_frees_a_place() {
    assert_eq!(MAX_PENDING, BOUND);
    let (a, b) = (admin("admin-a", 1), admin("admin-b", 2));
    let mut s = bootstrapped(&[&a, &b], 1);
    let id = |i: usize| {
        let mut id = [0u8; 32];
        id[..8].copy_from_slice(&(i as u64).to_be_bytes());
        id
    };
    let t0 = 1_000_000;
    for i in 0..BOUND {
        // Proposed over time, by both admins: the bound is the cluster's, not a proposer's.
        let proposer = if i % 2 == 0 { "admin-a" } else { "admin-b" };
        s.propose(id(i), proposer, &canon(&Action::Pause), t0 + i as u64)
            .unwrap();
    }
    let full = s.clone();
    let at = t0 + BOUND as u64;
    let err = s
        .propose(id(BOUND), "admin-b", &canon(&Action::Pause), at)
        .unwrap_err();
    assert_eq!(err, AdminRefusal::TooManyPending(BOUND));
    assert_eq!(
        err.to_string(),
        "256 challenges are pending; approve or let some expire first"
    );
    assert_eq!(s, full, "a refused proposal opens nothing");

    // One executed: one place free, and only one.
    assert_eq!(reached(&approve_as(&mut s, id(0), &a, at)), ["admin-a"]);
    assert!(matches!(
        status(&s, id(0)),
        ChallengeStatus::ExecutedUnder { .. }
    ));
    s.propose(id(BOUND), "admin-b", &canon(&Action::Pause), at)
        .unwrap();
    assert_eq!(
        s.propose(id(BOUND + 1), "admin-b", &canon(&Action::Pause), at)
            .unwrap_err(),
        AdminRefusal::TooManyPending(BOUND)
    );

    // One failed (approved, but applying it was refused): decided, so one place free too.
    let sig = sign(&s, &id(1), &b);
    let Tally::Reached {
        approvers,
        threshold,
        ..
    } = s.approve(&id(1), "admin-b", &sig, at).unwrap()
    else {
        panic!("not reached")
    };
    let decided = Decided {
        at_ms: at,
        threshold,
        approvers,
    };
    s.finish(&id(1), decided, &Err("refused".into()));
    s.propose(id(BOUND + 1), "admin-b", &canon(&Action::Pause), at)
        .unwrap();

    // A challenge counts while it can still be approved (up to and including its expiry)...
    let ttl = Policy::default().challenge_ttl_ms;
    let first_expiry = t0 + 2 + ttl; // id(2), the oldest still pending
    assert_eq!(
        s.challenges[&hex::encode(id(2))].expires_at_ms,
        first_expiry
    );
    assert_eq!(
        s.propose(
            id(BOUND + 2),
            "admin-a",
            &canon(&Action::Pause),
            first_expiry
        )
        .unwrap_err(),
        AdminRefusal::TooManyPending(BOUND)
    );
    // ...and frees its place one millisecond later, when approvals for it are refused.
    let sig = sign(&s, &id(2), &a);
    assert_eq!(
        s.approve(&id(2), "admin-a", &sig, first_expiry + 1)
            .unwrap_err(),
        AdminRefusal::Expired {
            id: hex::encode(id(2)),
            expires_at_ms: first_expiry,
            at_ms: first_expiry + 1
        }
    );
    s.propose(
        id(BOUND + 2),
        "admin-a",
        &canon(&Action::Pause),
        first_expiry + 1,
    )
    .unwrap();
    assert_eq!(
        s.propose(
            id(BOUND + 3),
            "admin-a",
            &canon(&Action::Pause),
            first_expiry + 1
        )
        .unwrap_err(),
        AdminRefusal::TooManyPending(BOUND)
    );
}

#[test]
fn a_removed_admins_approval_of_a_pending_challenge_no_longer_counts() {
    let (a, b, c) = (
        admin("admin-a", 1),
        admin("admin-b", 2),
        admin("admin-c", 3),
    );
    let mut s = bootstrapped(&[&a, &b, &c], 2);
    let x = [1u8; 32];
    let action = grant_action("seq-x");
    s.propose(x, "admin-a", &canon(&action), 1_000).unwrap();
    assert_eq!(
        pending(&approve_as(&mut s, x, &a, 1_001)),
        (vec!["admin-a"], 2)
    );
    let sig_a = sign(&s, &x, &a);

    // admin-a is removed by an approved action while challenge x is pending.
    let remove = [2u8; 32];
    s.propose(
        remove,
        "admin-b",
        &canon(&Action::RemoveAdmin {
            name: "admin-a".into(),
        }),
        1_002,
    )
    .unwrap();
    approve_as(&mut s, remove, &b, 1_003);
    assert_eq!(
        reached(&approve_as(&mut s, remove, &c, 1_004)),
        ["admin-b", "admin-c"]
    );
    assert!(!s.admins.contains_key("admin-a"));

    // Its recorded approval stays on the challenge but counts for nothing: with admin-b's,
    // one of two.
    assert_eq!(s.challenges[&hex::encode(x)].approvals.len(), 1);
    assert_eq!(
        pending(&approve_as(&mut s, x, &b, 1_005)),
        (vec!["admin-b"], 2)
    );
    assert!(s.clients.is_empty(), "nothing executed");
    // The removed admin cannot approve again (by name or with a valid old signature).
    assert_eq!(
        s.approve(&x, "admin-a", &sig_a, 1_006).unwrap_err(),
        AdminRefusal::UnknownAdmin("admin-a".into())
    );
    // The two remaining admins decide it.
    let Tally::Reached {
        approvers,
        action: got,
        ..
    } = approve_as(&mut s, x, &c, 1_007)
    else {
        panic!("not reached")
    };
    assert_eq!(approvers, ["admin-b", "admin-c"]);
    assert_eq!(got, action);
    assert!(s.clients.contains_key("seq-x"));
}

#[test]
fn a_pending_challenge_is_decided_by_the_threshold_in_force_when_it_is_approved() {
    let (a, b, c) = (
        admin("admin-a", 1),
        admin("admin-b", 2),
        admin("admin-c", 3),
    );
    // Raised from 2 to 3 while x has one approval: x needs three.
    let mut s = bootstrapped(&[&a, &b, &c], 2);
    let x = [1u8; 32];
    s.propose(x, "admin-a", &canon(&grant_action("seq-x")), 1_000)
        .unwrap();
    assert_eq!(
        pending(&approve_as(&mut s, x, &a, 1_001)),
        (vec!["admin-a"], 2)
    );
    let raise = [2u8; 32];
    s.propose(
        raise,
        "admin-b",
        &canon(&Action::SetPolicy(policy(3))),
        1_002,
    )
    .unwrap();
    approve_as(&mut s, raise, &b, 1_003);
    approve_as(&mut s, raise, &c, 1_004);
    assert_eq!(s.policy.threshold, 3);
    // A second approval would have executed x under the old threshold; now it does not.
    assert_eq!(
        pending(&approve_as(&mut s, x, &b, 1_005)),
        (vec!["admin-a", "admin-b"], 3)
    );
    assert!(s.clients.is_empty(), "executed under the old threshold");
    assert_eq!(status(&s, x), &ChallengeStatus::Pending);
    assert_eq!(
        reached(&approve_as(&mut s, x, &c, 1_006)),
        ["admin-a", "admin-b", "admin-c"]
    );
    assert!(s.clients.contains_key("seq-x"));

    // Lowered from 3 to 2 while y has one approval: y does not execute by itself; the next
    // distinct approval decides it under the new threshold, and the first approver cannot
    // count twice.
    let y = [3u8; 32];
    s.propose(y, "admin-a", &canon(&grant_action("seq-y")), 2_000)
        .unwrap();
    assert_eq!(
        pending(&approve_as(&mut s, y, &a, 2_001)),
        (vec!["admin-a"], 3)
    );
    let lower = [4u8; 32];
    s.propose(
        lower,
        "admin-b",
        &canon(&Action::SetPolicy(policy(2))),
        2_002,
    )
    .unwrap();
    approve_as(&mut s, lower, &a, 2_003);
    approve_as(&mut s, lower, &b, 2_004);
    approve_as(&mut s, lower, &c, 2_005);
    assert_eq!(s.policy.threshold, 2);
    assert_eq!(status(&s, y), &ChallengeStatus::Pending);
    assert!(!s.clients.contains_key("seq-y"));
    let again = sign(&s, &y, &a);
    assert_eq!(
        s.approve(&y, "admin-a", &again, 2_006).unwrap_err(),
        AdminRefusal::DuplicateApproval("admin-a".into())
    );
    assert_eq!(
        reached(&approve_as(&mut s, y, &b, 2_007)),
        ["admin-a", "admin-b"]
    );
    assert!(s.clients.contains_key("seq-y"));
}

/// A challenge lifetime from 1 s to 7 days, both bounds included (written out here).
#[test]
fn challenge_lifetimes_from_one_second_to_seven_days_are_accepted() {
    const SECOND: u64 = 1_000;
    const SEVEN_DAYS: u64 = 604_800_000;
    let (a, b) = (admin("admin-a", 1), admin("admin-b", 2));
    let mut s = bootstrapped(&[&a, &b], 1);
    let with_ttl = |ttl: u64| {
        Action::SetPolicy(Policy {
            challenge_ttl_ms: ttl,
            ..policy(1)
        })
    };
    for ttl in [SECOND, SEVEN_DAYS] {
        assert_eq!(s.execute(&with_ttl(ttl)).unwrap(), "policy set");
        assert_eq!(s.policy.challenge_ttl_ms, ttl);
    }
    for ttl in [SECOND - 1, SEVEN_DAYS + 1] {
        let before = s.clone();
        assert_eq!(
            s.execute(&with_ttl(ttl)).unwrap_err(),
            AdminRefusal::Invalid(format!(
                "challenge lifetime {ttl} ms must be between 1 s and 7 days"
            ))
        );
        assert_eq!(s, before);
    }
}

/// A decided or expired challenge is kept for a day after its expiry (an approval for it is
/// answered "expired" or "already decided", not "unknown"), then pruned when the next
/// challenge is proposed.
#[test]
fn challenges_are_kept_a_day_after_they_expire() {
    const DAY: u64 = 86_400_000;
    let a = admin("admin-a", 1);
    let mut s = bootstrapped(&[&a], 1);
    let t0 = 5_000;
    s.propose([1; 32], "admin-a", &canon(&Action::Pause), t0)
        .unwrap();
    let expiry = t0 + Policy::default().challenge_ttl_ms;
    let kept = hex::encode([1u8; 32]);
    s.propose([2; 32], "admin-a", &canon(&Action::Pause), expiry + DAY)
        .unwrap();
    assert!(
        s.challenges.contains_key(&kept),
        "kept up to a day after expiry"
    );
    assert_eq!(
        s.approve(&[1; 32], "admin-a", &sign(&s, &[1; 32], &a), expiry + DAY)
            .unwrap_err(),
        AdminRefusal::Expired {
            id: kept.clone(),
            expires_at_ms: expiry,
            at_ms: expiry + DAY,
        }
    );
    s.propose([3; 32], "admin-a", &canon(&Action::Pause), expiry + DAY + 1)
        .unwrap();
    assert!(!s.challenges.contains_key(&kept), "pruned after that");
    assert_eq!(
        s.approve(
            &[1; 32],
            "admin-a",
            &sign(&s, &[2; 32], &a),
            expiry + DAY + 1
        )
        .unwrap_err(),
        AdminRefusal::UnknownChallenge(kept)
    );
}

/// A challenge can be approved up to and including its expiry time, not a millisecond later.
#[test]
fn a_challenge_is_approved_up_to_its_expiry_inclusive() {
    let a = admin("admin-a", 1);
    let mut s = bootstrapped(&[&a], 1);
    let t0 = 5_000;
    let expiry = t0 + Policy::default().challenge_ttl_ms;
    for id in [[1u8; 32], [2u8; 32]] {
        s.propose(id, "admin-a", &canon(&Action::Pause), t0)
            .unwrap();
    }
    assert_eq!(
        s.approve(&[2; 32], "admin-a", &sign(&s, &[2; 32], &a), expiry + 1)
            .unwrap_err(),
        AdminRefusal::Expired {
            id: hex::encode([2u8; 32]),
            expires_at_ms: expiry,
            at_ms: expiry + 1,
        }
    );
    assert_eq!(
        reached(&approve_as(&mut s, [1; 32], &a, expiry)),
        ["admin-a"]
    );
}

/// A self-signed certificate naming `name` (DER).
fn certificate(name: &str) -> Vec<u8> {
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec![name.to_owned()]).unwrap();
    params.self_signed(&key).unwrap().der().to_vec()
}

fn revoke(certificate: &[u8]) -> Action {
    Action::RevokeCertificate {
        fingerprint: Fingerprint::of(certificate),
        certificate: certificate.to_vec(),
    }
}

/// A revocation is approved like every action and records the certificate's own identity; a
/// second revocation of the same certificate, a certificate that does not have the fingerprint
/// and bytes that are no certificate are refused at proposal and in apply, changing nothing.
#[test]
fn a_revocation_records_its_certificate_once_and_refuses_a_mismatch() {
    let (a, b) = (admin("admin-a", 1), admin("admin-b", 2));
    let mut s = bootstrapped(&[&a, &b], 2);
    let old = certificate("seq-2");
    let fp = Fingerprint::of(&old);
    s.propose([1; 32], "admin-a", &canon(&revoke(&old)), 1_000)
        .unwrap();
    assert_eq!(
        pending(&approve_as(&mut s, [1; 32], &a, 1_001)),
        (vec!["admin-a"], 2)
    );
    assert_eq!(s.revocation(&fp), None, "not before the threshold");
    assert_eq!(
        reached(&approve_as(&mut s, [1; 32], &b, 1_002)),
        ["admin-a", "admin-b"]
    );
    assert_eq!(
        status(&s, [1; 32]),
        &ChallengeStatus::ExecutedUnder {
            decided: Decided {
                at_ms: 1_002,
                threshold: 2,
                approvers: vec!["admin-a".into(), "admin-b".into()],
            },
            detail: format!("certificate sha256 {fp} of \"seq-2\" revoked"),
        }
    );
    assert_eq!(
        s.revocation(&fp),
        Some(&RevokedCertificate {
            identity: Some("seq-2".into())
        })
    );
    // A new certificate for the same name is another certificate: not revoked.
    let reissued = certificate("seq-2");
    assert_eq!(s.revocation(&Fingerprint::of(&reissued)), None);

    let before = s.clone();
    let again = AdminRefusal::Invalid(format!("certificate sha256 {fp} is already revoked"));
    assert_eq!(
        s.propose([2; 32], "admin-a", &canon(&revoke(&old)), 2_000)
            .unwrap_err(),
        again
    );
    let fingerprint_only = Action::RevokeCertificate {
        fingerprint: fp,
        certificate: Vec::new(),
    };
    assert_eq!(s.execute(&fingerprint_only).unwrap_err(), again);
    assert_eq!(s, before);

    // The certificate of another fingerprint: refused, naming both.
    let mismatch = Action::RevokeCertificate {
        fingerprint: Fingerprint::of(&reissued),
        certificate: old.clone(),
    };
    let refusal = AdminRefusal::Invalid(format!(
        "the certificate given has sha256 {fp}, not the fingerprint {} to revoke",
        Fingerprint::of(&reissued)
    ));
    assert_eq!(
        s.propose([3; 32], "admin-a", &canon(&mismatch), 2_000)
            .unwrap_err(),
        refusal
    );
    assert_eq!(s.execute(&mismatch).unwrap_err(), refusal);
    // Bytes that are not a certificate, under their own fingerprint.
    let junk = b"not a certificate".to_vec();
    assert_eq!(
        s.execute(&revoke(&junk)).unwrap_err(),
        AdminRefusal::Invalid(format!(
            "the certificate given for sha256 {} is not a certificate naming an identity",
            Fingerprint::of(&junk)
        ))
    );
    assert_eq!(s, before);

    // A fingerprint alone is recorded without an identity.
    let other = Fingerprint([9; 32]);
    let by_fingerprint = Action::RevokeCertificate {
        fingerprint: other,
        certificate: Vec::new(),
    };
    assert_eq!(
        s.execute(&by_fingerprint).unwrap(),
        format!("certificate sha256 {other} revoked")
    );
    assert_eq!(
        s.revocation(&other),
        Some(&RevokedCertificate { identity: None })
    );
}

/// Decided challenges are kept for a day after they expire, but at most 1,024 of them: beyond
/// that the oldest go first (an approval for one is then refused as unknown), so a day of bulk
/// key generation cannot grow the admin state without bound. Pending ones are never dropped
/// for it.
#[test]
fn at_most_1024_decided_challenges_are_kept_the_oldest_dropped_first() {
    assert_eq!(MAX_DECIDED, 1024);
    let a = admin("admin-a", 1);
    let mut s = bootstrapped(&[&a], 1);
    let id = |i: usize| {
        let mut id = [0u8; 32];
        id[..8].copy_from_slice(&(i as u64).to_be_bytes());
        id
    };
    let t0 = 1_000_000;
    let decided = MAX_DECIDED + 3;
    for i in 0..decided {
        let at = t0 + i as u64;
        s.propose(id(i), "admin-a", &canon(&Action::Pause), at)
            .unwrap();
        assert_eq!(reached(&approve_as(&mut s, id(i), &a, at)), ["admin-a"]);
    }
    // Each proposal prunes first: the 1,025th and 1,026th dropped the two oldest decided.
    assert_eq!(s.challenges.len(), MAX_DECIDED + 1);
    assert!(!s.challenges.contains_key(&hex::encode(id(1))));
    assert!(s.challenges.contains_key(&hex::encode(id(2))));
    // The next proposal drops the third.
    let at = t0 + decided as u64;
    s.propose(id(decided), "admin-a", &canon(&Action::Pause), at)
        .unwrap();
    assert_eq!(s.challenges.len(), MAX_DECIDED + 1);
    for gone in 0..3 {
        assert!(!s.challenges.contains_key(&hex::encode(id(gone))), "{gone}");
        // The challenge is gone, so no approval statement can be built: any signature.
        assert_eq!(
            s.approve(&id(gone), "admin-a", &[0u8; 64], at).unwrap_err(),
            AdminRefusal::UnknownChallenge(hex::encode(id(gone)))
        );
    }
    assert!(matches!(
        status(&s, id(3)),
        ChallengeStatus::ExecutedUnder { .. }
    ));
    assert_eq!(status(&s, id(decided)), &ChallengeStatus::Pending);

    // An expired challenge counts with the decided ones (neither can be approved): once the
    // last one expires, the next proposal drops the oldest decided one to make room.
    let expired_at = s.challenges[&hex::encode(id(decided))].expires_at_ms + 1;
    s.propose(
        id(decided + 1),
        "admin-a",
        &canon(&Action::Pause),
        expired_at,
    )
    .unwrap();
    assert!(!s.challenges.contains_key(&hex::encode(id(3))));
    assert!(s.challenges.contains_key(&hex::encode(id(4))));
    assert_eq!(status(&s, id(decided)), &ChallengeStatus::Pending);
    assert_eq!(s.challenges.len(), MAX_DECIDED + 1);
}
