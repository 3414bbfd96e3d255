//! Client grants the admin state refuses, with their exact reasons: a malformed identity, a
//! grant that names no key or no profile, a rate limit of zero.

use super::*;

fn grant(keys: &[&str], profiles: &[Profile], rate: Option<(u32, u32)>) -> ClientGrant {
    ClientGrant {
        keys: keys.iter().map(|k| (*k).to_owned()).collect(),
        profiles: profiles.iter().copied().collect(),
        rate_limit: rate.map(|(per_second, burst)| RateLimit { per_second, burst }),
        raw_roots: false,
    }
}

fn set(s: &mut AdminState, identity: &str, g: ClientGrant) -> Result<String, AdminRefusal> {
    s.execute(&Action::GrantClient {
        identity: identity.to_owned(),
        grant: g,
        prior: Prior::Unrecorded,
    })
}

#[test]
fn malformed_grants_are_refused_and_change_nothing() {
    let a = admin("admin-a", 1);
    let mut s = bootstrapped(&[&a], 1);
    let before = s.clone();
    let ok = grant(&["k"], &[Profile::Eth2], Some((5, 10)));
    let refused = |identity: &str, reason: &str| {
        AdminRefusal::Invalid(format!("client {identity:?}: {reason}"))
    };
    let cases = [
        (
            "",
            ok.clone(),
            AdminRefusal::Invalid(
                "client identity \"\": 1 to 64 letters, digits, '-', '_' or '.'".into(),
            ),
        ),
        (
            "seq 1",
            ok.clone(),
            AdminRefusal::Invalid(
                "client identity \"seq 1\": 1 to 64 letters, digits, '-', '_' or '.'".into(),
            ),
        ),
        (
            "seq-1",
            grant(&[], &[Profile::Eth2], None),
            refused(
                "seq-1",
                "a grant names at least one key (or \"*\") and one profile",
            ),
        ),
        (
            "seq-1",
            grant(&["k"], &[], None),
            refused(
                "seq-1",
                "a grant names at least one key (or \"*\") and one profile",
            ),
        ),
        (
            "seq-1",
            grant(&["k"], &[Profile::Eth2], Some((0, 10))),
            refused(
                "seq-1",
                "rate limit must be at least 1/s with burst at least 1",
            ),
        ),
        (
            "seq-1",
            grant(&["k"], &[Profile::Eth2], Some((5, 0))),
            refused(
                "seq-1",
                "rate limit must be at least 1/s with burst at least 1",
            ),
        ),
    ];
    for (identity, g, want) in cases {
        assert_eq!(
            set(&mut s, identity, g.clone()),
            Err(want),
            "{identity:?} {g:?}"
        );
        assert_eq!(s, before);
    }
    assert!(set(&mut s, "seq-1", ok.clone()).is_ok());
    assert_eq!(s.clients["seq-1"], ok);
}
