//! What an approver reads of an action beyond its one-line description
//! ([`Action::describe`]): for an interchange import, its network, each validator with its
//! records and maxima and what the import changes; for a grant or a revocation, what changes
//! in the identity's grant.
//!
//! Owns: [`Action::review`] and the grant diff ([`grant_change`]). Must not: read anything but
//! the action: the review is a pure function of the action's bytes, so every approver (and
//! `signerctl`, which decodes the bytes itself) reads the same text, and what it compares
//! against ([`super::Prior`]) is checked again by every replica when the action applies.

use super::{Action, ClientGrant, Prior};
use crate::protection::interchange;

impl Action {
    /// The lines an approver reads after [`Action::describe`]; empty when the description
    /// says everything.
    pub fn review(&self) -> Vec<String> {
        match self {
            Action::ImportProtection {
                interchange: text,
                minify,
                prior,
            } => match interchange::parse(text) {
                Ok(doc) => {
                    let seen = match prior {
                        Prior::Recorded(seen) => Some(seen.as_slice()),
                        Prior::Unrecorded => None,
                    };
                    interchange::review::review(&doc, *minify, seen)
                }
                Err(e) => vec![format!(
                    "the file does not parse, and applying refuses it: {e}"
                )],
            },
            Action::GrantClient {
                identity,
                grant,
                prior,
            } => match prior {
                Prior::Recorded(None) => vec![format!("new: client {identity:?} has no grant now")],
                Prior::Recorded(Some(old)) => {
                    let mut lines = vec![format!("replaces client {identity:?}'s grant:")];
                    lines.extend(grant_change(old, grant));
                    lines
                }
                Prior::Unrecorded => vec![unrecorded(identity)],
            },
            Action::RevokeClient { identity, prior } => match prior {
                Prior::Recorded(old) => vec![format!("removes: {}", old.describe())],
                Prior::Unrecorded => vec![unrecorded(identity)],
            },
            _ => Vec::new(),
        }
    }
}

fn unrecorded(identity: &str) -> String {
    format!(
        "client {identity:?}'s current grant is not in this proposal (an older signer proposed \
         it); `signerctl client list` shows it"
    )
}

/// What replacing grant `old` by `new` changes, one line per part of the grant.
pub fn grant_change(old: &ClientGrant, new: &ClientGrant) -> Vec<String> {
    let set_change = |old: &std::collections::BTreeSet<String>,
                      new: &std::collections::BTreeSet<String>| {
        let added: Vec<&str> = new.difference(old).map(String::as_str).collect();
        let removed: Vec<&str> = old.difference(new).map(String::as_str).collect();
        let list = |s: &std::collections::BTreeSet<String>| {
            s.iter().map(String::as_str).collect::<Vec<_>>().join(", ")
        };
        if added.is_empty() && removed.is_empty() {
            return format!("[{}] (unchanged)", list(old));
        }
        let mut what = Vec::new();
        if !added.is_empty() {
            what.push(format!("adds {}", added.join(", ")));
        }
        if !removed.is_empty() {
            what.push(format!("removes {}", removed.join(", ")));
        }
        format!("[{}] -> [{}] ({})", list(old), list(new), what.join("; "))
    };
    let names = |g: &ClientGrant| {
        g.profiles
            .iter()
            .map(|p| p.name().to_owned())
            .collect::<std::collections::BTreeSet<_>>()
    };
    let change = |old: String, new: String| {
        if old == new {
            format!("{old} (unchanged)")
        } else {
            format!("{old} -> {new}")
        }
    };
    let raw = |g: &ClientGrant| {
        if g.raw_roots {
            "yes (the client chooses the eth2 signing roots it sends)".to_owned()
        } else {
            "no".to_owned()
        }
    };
    vec![
        format!("  keys: {}", set_change(&old.keys, &new.keys)),
        format!("  profiles: {}", set_change(&names(old), &names(new))),
        format!("  rate: {}", change(old.rate_text(), new.rate_text())),
        format!("  raw roots: {}", change(raw(old), raw(new))),
    ]
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::admin::RateLimit;
    use crate::protection::Profile;
    use crate::registry::{KeyRecord, KeyState};

    fn grant(keys: &[&str], profiles: &[Profile], rate: Option<(u32, u32)>) -> ClientGrant {
        ClientGrant {
            keys: keys.iter().map(|k| (*k).to_owned()).collect(),
            profiles: profiles.iter().copied().collect(),
            rate_limit: rate.map(|(per_second, burst)| RateLimit { per_second, burst }),
            raw_roots: false,
        }
    }

    /// An espresso key reads as `key list` prints it (Espresso's own demo key 0, written
    /// out), not as hex.
    #[test]
    fn a_new_key_is_shown_in_its_profiles_form() {
        const PK0: &str = "BLS_VER_KEY~bQszS-QKYvUij2g20VqS8asttGSb95NrTu2PUj0uMh1CBUxNy1FqyPDjZqB29M7ZbjWqj79QkEOWkpga84AmDYUeTuWmy-0P1AdKHD3ehc-dKvei78BDj5USwXPJiDUlCxvYs_9rWYhagaq-5_LXENr78xel17spftNd5MA1Mw5U";
        let public_key = crate::scheme::bn254::PublicKey::from_tagged(PK0)
            .unwrap()
            .to_bytes()
            .to_vec();
        let action = Action::AddKey(KeyRecord {
            key_id: "staking-1".into(),
            profile: Profile::Espresso,
            public_key,
            sealed: None,
            state: KeyState::Active,
            origin: "generated".into(),
        });
        assert_eq!(
            action.describe(),
            format!("add generated espresso key \"staking-1\" with public key {PK0}")
        );
        assert!(action.review().is_empty());
    }

    #[test]
    fn a_grant_shows_what_it_changes_in_the_current_grant() {
        let old = grant(&["validator-7", "validator-8"], &[Profile::Eth2], None);
        let new = ClientGrant {
            raw_roots: true,
            ..grant(
                &["validator-7", "validator-9"],
                &[Profile::Eth2],
                Some((50, 100)),
            )
        };
        let action = Action::GrantClient {
            identity: "seq-2".into(),
            grant: new.clone(),
            prior: Prior::Recorded(Some(old.clone())),
        };
        assert_eq!(
            action.describe(),
            "grant client \"seq-2\" keys [validator-7, validator-9] profiles [eth2] rate 50/s, \
             burst 100 raw-roots"
        );
        assert_eq!(
            action.review(),
            [
                "replaces client \"seq-2\"'s grant:",
                "  keys: [validator-7, validator-8] -> [validator-7, validator-9] (adds \
                 validator-9; removes validator-8)",
                "  profiles: [eth2] (unchanged)",
                "  rate: unlimited -> 50/s, burst 100",
                "  raw roots: no -> yes (the client chooses the eth2 signing roots it sends)",
            ]
        );
        let fresh = Action::GrantClient {
            identity: "seq-9".into(),
            grant: new.clone(),
            prior: Prior::Recorded(None),
        };
        assert_eq!(fresh.review(), ["new: client \"seq-9\" has no grant now"]);
        let legacy = Action::GrantClient {
            identity: "seq-9".into(),
            grant: new,
            prior: Prior::Unrecorded,
        };
        assert_eq!(
            legacy.review(),
            [
                "client \"seq-9\"'s current grant is not in this proposal (an older signer \
              proposed it); `signerctl client list` shows it"
            ]
        );
        let revoke = Action::RevokeClient {
            identity: "seq-2".into(),
            prior: Prior::Recorded(old),
        };
        assert_eq!(revoke.describe(), "revoke client \"seq-2\"");
        assert_eq!(
            revoke.review(),
            ["removes: keys [validator-7, validator-8] profiles [eth2] rate unlimited"]
        );
    }

    #[test]
    fn an_import_is_described_by_its_network_and_counts() {
        let gvr = "0x0000000000000000000000000000000000000000000000000000000000000001";
        let pk = "0xa99a76ed7796f7be22d5b7e85deeb7c5677e88e511e0b337618f8c4eb61349b4bf2d153f649f7b53359fe8b94a38e44c";
        let text = format!(
            r#"{{"metadata":{{"interchange_format_version":"5","genesis_validators_root":"{gvr}"}},
               "data":[{{"pubkey":"{pk}","signed_blocks":[{{"slot":"3"}}],
                         "signed_attestations":[{{"source_epoch":"1","target_epoch":"2"}}]}},
                       {{"pubkey":"{pk}","signed_blocks":[{{"slot":"4"}}],
                         "signed_attestations":[]}}]}}"#
        );
        let action = Action::ImportProtection {
            interchange: text,
            minify: true,
            prior: Prior::Recorded(vec![None]),
        };
        assert_eq!(
            action.describe(),
            format!(
                "import slashing-protection interchange for genesis validators root {gvr}: 1 \
                 validator(s), 2 block and 1 attestation record(s), minified"
            )
        );
        assert_eq!(
            action.review()[3..],
            [
                format!("validator {pk} (new: no record in the cluster)"),
                "  file: 2 block(s), highest slot 4; 1 attestation(s), highest source 1, \
                 highest target 2"
                    .to_owned(),
                "  block: no watermark -> slot 4".to_owned(),
                "  attestations: no watermarks -> source 1, target 2".to_owned(),
            ]
        );
        let garbage = Action::ImportProtection {
            interchange: "{".into(),
            minify: false,
            prior: Prior::Unrecorded,
        };
        assert_eq!(
            garbage.describe(),
            "import a slashing-protection interchange that does not parse (1 bytes): not valid \
             JSON: EOF while parsing an object at line 1 column 1"
        );
    }
}
