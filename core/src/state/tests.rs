//! What a sign entry's audit record keeps of its request: the 32 bytes that identify it
//! ([`Intent::message`]), for every outcome, checked against Espresso's verified vote
//! commitments (`tests/vectors/espresso/vectors.json`), not against this crate's hashing.
#![allow(clippy::unwrap_used, clippy::panic)]

use super::*;
use crate::audit::SignResult;
use crate::bytes::FixedBytes;
use crate::protection::espresso::{EspressoIntent, Kind, Message};
use crate::protection::ethereum::Eth2Intent;
use crate::protection::{Profile, Violation};
use crate::registry::KeyRecord;
use serde_json::Value;

const VECTORS: &str = include_str!("../../../tests/vectors/espresso/vectors.json");

/// Every typed vote of the vectors with the bytes Espresso signs for it.
fn vote_vectors() -> Vec<(Message, [u8; 32])> {
    let v: Value = serde_json::from_str(VECTORS).unwrap();
    v["vote_commitments"]
        .as_array()
        .unwrap()
        .iter()
        // A DA proposal is given as the client sends it (the service converts it); some
        // cases give only the data's commitment.
        .filter(|case| case["message"].get("da_proposal").is_none())
        .filter(|case| case.get("signing_message_hex").is_some())
        .map(|case| {
            let message: Message = serde_json::from_value(case["message"].clone()).unwrap();
            let digest = hex::decode(case["signing_message_hex"].as_str().unwrap()).unwrap();
            (message, digest.try_into().unwrap())
        })
        .collect()
}

fn espresso(key: u8, key_id: &str, message: &Message) -> SignEntry {
    SignEntry {
        request_id: String::new(),
        client: "seq-1".into(),
        key_id: key_id.into(),
        intent: Intent::Espresso(EspressoIntent {
            public_key: FixedBytes([key; crate::scheme::bn254::PUBLIC_KEY_LEN]),
            message: message.clone(),
        }),
    }
}

fn registry_key(key_id: &str, key: u8, state: KeyState) -> KeyRecord {
    KeyRecord {
        key_id: key_id.into(),
        profile: Profile::Espresso,
        public_key: vec![key; crate::scheme::bn254::PUBLIC_KEY_LEN],
        sealed: None,
        state,
        origin: "generated".into(),
    }
}

/// Apply `batch` as one sign entry; the outcomes and, per audit record, what it kept.
fn apply_signs(
    state: &mut Applied,
    batch: Vec<SignEntry>,
) -> Vec<(SignOutcome, SignResult, [u8; 32])> {
    let (result, changes) = state.apply(&Command::Sign(batch), 7, 1_000);
    let CommandResult::Sign(outcomes) = result else {
        panic!("a sign command answered {result:?}");
    };
    assert_eq!(outcomes.len(), changes.audit.len(), "one record per entry");
    outcomes
        .into_iter()
        .zip(changes.audit)
        .map(
            |(outcome, (_, bytes))| match crate::audit::decode(&bytes).unwrap().event {
                AuditEvent::Sign(d) => (outcome, d.outcome, d.message),
                other => panic!("a sign entry recorded {other:?}"),
            },
        )
        .collect()
}

#[test]
fn a_sign_record_keeps_the_bytes_espresso_signs_for_every_outcome() {
    let votes = vote_vectors();
    assert!(votes.len() >= 16, "the vectors hold {} votes", votes.len());
    let mut state = Applied::default();
    // An id the registry holds under another public key, and a disabled key.
    let moved = registry_key("moved", 0xee, KeyState::Active);
    let disabled = registry_key("disabled", 0xdd, KeyState::Disabled);
    state.registry.keys.insert(moved.key_id.clone(), moved);
    state
        .registry
        .keys
        .insert(disabled.key_id.clone(), disabled);

    let mut batch = Vec::new();
    let mut want = Vec::new();
    for (i, (message, digest)) in votes.iter().enumerate() {
        let key = u8::try_from(i).unwrap();
        batch.push(espresso(key, "file-key", message));
        want.push((SignOutcome::Signed, SignResult::Signed, *digest));
        batch.push(espresso(key, "file-key", message));
        want.push((SignOutcome::Resigned, SignResult::Resigned, *digest));
        batch.push(espresso(0xdd, "disabled", message));
        want.push((SignOutcome::KeyInactive, SignResult::KeyInactive, *digest));
        batch.push(espresso(key, "moved", message));
        want.push((SignOutcome::KeyMismatch, SignResult::Refused, *digest));
    }
    let got = apply_signs(&mut state, batch);
    assert_eq!(got.len(), want.len());
    for (n, ((outcome, result, kept), (want_outcome, want_result, want_digest))) in
        got.into_iter().zip(want).enumerate()
    {
        assert_eq!((outcome, result), (want_outcome, want_result), "entry {n}");
        assert_eq!(hex::encode(kept), hex::encode(want_digest), "entry {n}");
    }

    // A refusal by the rules: view 0 after view 12 on one key. The refusal names the
    // commitment signed at view 12, and the record the refused request's own.
    let unversioned_vote = |at: u64| {
        votes
            .iter()
            .find(|(m, _)| match m {
                Message::QuorumVote { view, data } => *view == at && data.epoch.is_none(),
                _ => false,
            })
            .unwrap()
            .clone()
    };
    let (high, low) = (unversioned_vote(12), unversioned_vote(0));
    let got = apply_signs(
        &mut state,
        vec![
            espresso(0xa0, "file-key", &high.0),
            espresso(0xa0, "file-key", &low.0),
        ],
    );
    let below = SignOutcome::Refused(Violation::ViewBelowWatermark {
        kind: Kind::QuorumVote,
        view: 0,
        last_view: 12,
        last_signed: FixedBytes(high.1),
    });
    assert_eq!(
        got,
        vec![
            (SignOutcome::Signed, SignResult::Signed, high.1),
            (below, SignResult::Refused, low.1),
        ]
    );

    // Paused: every request refused, each record still naming its request.
    state.admin.paused = true;
    let got = apply_signs(
        &mut state,
        votes
            .iter()
            .map(|(m, _)| espresso(0xb0, "file-key", m))
            .collect(),
    );
    for ((outcome, result, kept), (_, digest)) in got.into_iter().zip(&votes) {
        assert_eq!((outcome, result), (SignOutcome::Paused, SignResult::Paused));
        assert_eq!(kept, *digest);
    }
}

#[test]
fn an_eth2_sign_record_keeps_the_signing_root() {
    let root = [0x5c; 32];
    let mut state = Applied::default();
    let block = SignEntry {
        request_id: "r1".into(),
        client: "vc-1".into(),
        key_id: "v1".into(),
        intent: Intent::Eth2(Eth2Intent::Block {
            pubkey: FixedBytes([7; 48]),
            slot: 9,
            signing_root: FixedBytes(root),
        }),
    };
    let got = apply_signs(&mut state, vec![block.clone(), block]);
    assert_eq!(
        got,
        vec![
            (SignOutcome::Signed, SignResult::Signed, root),
            (SignOutcome::Resigned, SignResult::Resigned, root)
        ]
    );
}
