//! Known answers for the new protocol's signed bytes: `tests/vectors/espresso/new_protocol.json`
//! (computed by the independent `new_protocol_ref.py`, see `NEW_PROTOCOL.md`), checked with this
//! module's types and core's BN254 scheme, plus layout facts that hold whatever the vectors say.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::bytes::FixedBytes;
use crate::protection::espresso::leaf::{EpochFields, ProposedLeaf, ViewChangeEvidence};
use crate::protection::espresso::message::{Message, QuorumData};
use crate::scheme::bn254::{SecretKey, Signature};
use serde_json::Value;

const VECTORS: &str = include_str!("../../../../../tests/vectors/espresso/new_protocol.json");
const KEYS: &str = include_str!("../../../../../tests/vectors/espresso/vectors.json");

fn hex32(v: &Value) -> [u8; 32] {
    let text = v.as_str().expect("hex string");
    FixedBytes::<32>::from_hex(text).expect("32 bytes").0
}

fn data<T: serde::de::DeserializeOwned>(case: &Value) -> T {
    serde_json::from_value(case["data"].clone()).expect("typed data")
}

/// (data commitment, signed bytes) of a case, computed by this module: through the
/// [`Message`] a sign request carries for every kind the signer accepts (the retired checkpoint
/// vote has none), and checked against the type's own `commit()`.
fn compute(case: &Value) -> (Option<[u8; 32]>, [u8; 32]) {
    let view = || case["view"].as_u64().expect("view");
    let through = |m: Message, direct: [u8; 32]| {
        assert_eq!(m.signing_message(), direct, "{m:?}");
        (m.data_commitment(), direct)
    };
    match case["kind"].as_str().expect("kind") {
        "proposal" => {
            let p: NewProtocolLeaf = data(case);
            let leaf = p.to_leaf();
            assert_eq!(leaf.layout, LeafLayout::NewProtocol);
            through(Message::quorum_proposal(leaf.leaf().clone()), p.commit())
        }
        "revote_request" => {
            let r: ReVoteRequest = data(case);
            let direct = r.commit();
            through(Message::ReVoteRequest(r), direct)
        }
        "vote1" => {
            let d: QuorumData = data(case);
            let direct = vote_commitment(&d.commit(), view());
            through(
                Message::QuorumVote {
                    view: view(),
                    data: d,
                },
                direct,
            )
        }
        "vote2" => {
            let d: Vote2Data = data(case);
            let direct = d.signing_message(view());
            through(
                Message::Vote2 {
                    view: view(),
                    data: d,
                },
                direct,
            )
        }
        "checkpoint" => {
            let d: CheckpointData = data(case);
            (Some(d.commit()), d.signing_message(view()))
        }
        "timeout3" => {
            let d: TimeoutData3 = data(case);
            let direct = d.signing_message();
            through(Message::TimeoutVote3(d), direct)
        }
        "upgrade_vote2" => {
            let d: UpgradeProposalData2 = data(case);
            let direct = d.signing_message(view());
            through(
                Message::UpgradeVote2 {
                    view: view(),
                    data: d,
                },
                direct,
            )
        }
        other => panic!("unknown kind {other}"),
    }
}

fn demo_key(index: u64) -> SecretKey {
    let keys: Value = serde_json::from_str(KEYS).unwrap();
    let entry = keys["demo_keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["index"].as_u64() == Some(index))
        .expect("demo key");
    SecretKey::from_tagged(entry["bls_signing_key"].as_str().unwrap()).unwrap()
}

fn cases() -> Vec<Value> {
    let doc: Value = serde_json::from_str(VECTORS).unwrap();
    doc["cases"].as_array().unwrap().clone()
}

#[test]
fn vectors_match_commitments_and_signatures() {
    let cases = cases();
    assert!(cases.len() >= 10, "too few cases");
    let mut signed = 0;
    for case in &cases {
        let name = case["name"].as_str().unwrap();
        let (data_commit, msg) = compute(case);
        match data_commit {
            Some(d) => assert_eq!(d, hex32(&case["data_commitment_hex"]), "{name}: data"),
            None => assert!(case.get("data_commitment_hex").is_none(), "{name}"),
        }
        assert_eq!(
            msg,
            hex32(&case["signing_message_hex"]),
            "{name}: signed bytes"
        );
        let Some(sig) = case.get("signature") else {
            continue;
        };
        let sk = demo_key(sig["signer_index"].as_u64().unwrap());
        let got = sk.sign(&msg);
        let want = Signature::from_tagged(sig["bls_sig"].as_str().unwrap()).unwrap();
        assert_eq!(got, want, "{name}: signature");
        assert_eq!(
            hex::encode(got.to_bytes()),
            sig["sig_uncompressed_hex"].as_str().unwrap(),
            "{name}: signature bytes"
        );
        assert!(want.verify(&sk.public_key(), &msg), "{name}: verify");
        let other = demo_key((sig["signer_index"].as_u64().unwrap() + 1) % 5);
        assert!(
            !want.verify(&other.public_key(), &msg),
            "{name}: another key"
        );
        signed += 1;
    }
    assert!(signed >= 5, "too few signed cases");
}

/// The brief's case: one demo key signs a Vote1 for the rival proposal and a Vote2 for the
/// decided one in the same view; the two are different bytes, each a valid signature, and
/// each names the leaf commitment of its proposal case.
#[test]
fn vote1_for_rival_and_vote2_for_decided_in_one_view() {
    let cases = cases();
    let by_name = |n: &str| {
        cases
            .iter()
            .find(|c| c["name"].as_str() == Some(n))
            .unwrap_or_else(|| panic!("no case {n}"))
            .clone()
    };
    let a = data::<NewProtocolLeaf>(&by_name("proposal A (decided) at view 1")).commit();
    let b = data::<NewProtocolLeaf>(&by_name("proposal B (rival) at view 1")).commit();
    assert_ne!(a, b);
    let v1 = by_name("vote1 for the rival B at view 1");
    let v2 = by_name("vote2 for the decided A at view 1");
    assert_eq!(data::<QuorumData>(&v1).leaf_commit.0, b);
    assert_eq!(data::<Vote2Data>(&v2).leaf_commit.0, a);
    assert_eq!(v1["view"], v2["view"]);
    assert_eq!(
        v1["signature"]["signer_index"],
        v2["signature"]["signer_index"]
    );
    let (m1, m2) = (compute(&v1).1, compute(&v2).1);
    assert_ne!(m1, m2);
    let pk = demo_key(v1["signature"]["signer_index"].as_u64().unwrap()).public_key();
    for (case, msg) in [(&v1, m1), (&v2, m2)] {
        let sig = Signature::from_tagged(case["signature"]["bls_sig"].as_str().unwrap()).unwrap();
        assert!(sig.verify(&pk, &msg));
    }
}

/// Vote1 (`QuorumData2`) and Vote2 over the same leaf, epoch and block differ: the tags differ.
#[test]
fn vote1_and_vote2_over_one_leaf_differ() {
    let leaf = FixedBytes([7; 32]);
    let v1 = QuorumData {
        leaf_commit: leaf,
        epoch: Some(3),
        block_number: Some(9),
    };
    let v2 = Vote2Data {
        leaf_commit: leaf,
        epoch: 3,
        block_number: 9,
    };
    assert_ne!(vote_commitment(&v1.commit(), 5), v2.signing_message(5));
}

#[test]
fn timeout3_preimage() {
    let tag = |s: &str| [s.as_bytes(), &[0xC0, 0x7F]].concat();
    let none = TimeoutData3 {
        view: 0x11,
        epoch: 0x22,
        lock: None,
    };
    let mut want = [
        tag("Timeout data v3"),
        tag("view number"),
        0x11u64.to_le_bytes().to_vec(),
        tag("epoch number"),
        0x22u64.to_le_bytes().to_vec(),
        tag("lock"),
        0u64.to_le_bytes().to_vec(),
    ]
    .concat();
    assert_eq!(none.commit(), keccak(&want));
    let some = TimeoutData3 {
        lock: Some(LockView {
            epoch: 0x22,
            view: 0x10,
        }),
        ..none
    };
    want.truncate(want.len() - 8);
    let want = [
        want,
        1u64.to_le_bytes().to_vec(),
        tag("lock epoch"),
        0x22u64.to_le_bytes().to_vec(),
        tag("lock view"),
        0x10u64.to_le_bytes().to_vec(),
    ]
    .concat();
    assert_eq!(some.commit(), keccak(&want));
    assert_eq!(
        some.signing_message(),
        vote_commitment(&some.commit(), 0x11)
    );
}

fn keccak(bytes: &[u8]) -> [u8; 32] {
    use sha3::{Digest, Keccak256};
    Keccak256::digest(bytes).into()
}

/// A new-protocol proposal hashes as the legacy `Leaf2` with `with_epoch`, no next-epoch QC,
/// whenever its evidence is a form the legacy leaf has.
#[test]
fn proposal_leaf_agrees_with_legacy_leaf2() {
    let np = NewProtocolLeaf {
        view: 7,
        parent_leaf: FixedBytes([1; 32]),
        block_header_commit: FixedBytes([2; 32]),
        justify_qc_commit: FixedBytes([3; 32]),
        upgrade_certificate_commit: Some(FixedBytes([4; 32])),
        next_drb_result: Some(FixedBytes([5; 32])),
        view_change_evidence: Some(TimeoutEvidence::TimeoutCert(FixedBytes([6; 32]))),
    };
    let legacy = ProposedLeaf {
        view: 7,
        parent_leaf: FixedBytes([1; 32]),
        block_header_commit: FixedBytes([2; 32]),
        justify_qc_commit: FixedBytes([3; 32]),
        upgrade_certificate_commit: Some(FixedBytes([4; 32])),
        with_epoch: Some(EpochFields {
            next_epoch_justify_qc_commit: None,
            next_drb_result: Some(FixedBytes([5; 32])),
            view_change_evidence: Some(ViewChangeEvidence::TimeoutCert(FixedBytes([6; 32]))),
        }),
    };
    assert_eq!(np.commit(), legacy.commit());
    let v3 = NewProtocolLeaf {
        view_change_evidence: Some(TimeoutEvidence::TimeoutCertV3(FixedBytes([6; 32]))),
        ..np
    };
    assert_ne!(v3.commit(), legacy.commit());
}

#[test]
fn serde_is_strict() {
    let bad = serde_json::json!({"view": 1, "epoch": 2, "lock": null, "extra": 1});
    assert!(serde_json::from_value::<TimeoutData3>(bad).is_err());
    let missing = serde_json::json!({"leaf_commit": format!("0x{}", "00".repeat(32)), "epoch": 1});
    assert!(serde_json::from_value::<Vote2Data>(missing).is_err());
}

/// A commitment computed by HotShot itself: espresso-network `data/v6/new_protocol_messages.json`
/// (the new protocol's message-compatibility fixtures), whose upgrade certificate carries
/// `UpgradeProposalData2::commit()` of these fields as its `vote_commitment`.
#[test]
fn upgrade_proposal_data2_known_answer_from_hotshot() {
    let data = UpgradeProposalData2 {
        old_version: Version { major: 0, minor: 1 },
        new_version: Version { major: 1, minor: 0 },
        decide_by: 0,
        new_version_hash: HexBytes(vec![]),
        old_version_last_view: 0,
        new_version_first_view: 0,
        epoch: 1,
    };
    assert_eq!(
        data.commit(),
        crate::protection::espresso::message::commitment_from_tagged(
            "COMMIT~58E6WzEWL9mBY0BAXZj5zZgFWB1hIEKANPhDXG_Va6Do"
        )
        .unwrap()
        .0
    );
}

/// Commitments computed by HotShot itself, from the same fixture file: the new protocol's
/// `Certificate1` (a quorum certificate over `QuorumData2`, Vote1's data) and `Certificate2`
/// (over `Vote2Data`) of one leaf carry their data's `commit()` as `vote_commitment`.
#[test]
fn vote1_and_vote2_data_known_answers_from_hotshot() {
    let tagged = |text: &str| {
        crate::protection::espresso::message::commitment_from_tagged(text)
            .unwrap()
            .0
    };
    let leaf = crate::protection::espresso::message::commitment_from_tagged(
        "COMMIT~C16WN3ZnAjtbeqU2_7OYdb2vsV45zJZCv32CpeEtrLpa",
    )
    .unwrap();
    let vote1 = QuorumData {
        leaf_commit: leaf,
        epoch: Some(1),
        block_number: Some(0),
    };
    assert_eq!(
        vote1.commit(),
        tagged("COMMIT~P0irsaMnQsR4UQDIT2og71MULgvYi1LO2ZDQlS2PNr-h")
    );
    let vote2 = Vote2Data {
        leaf_commit: leaf,
        epoch: 1,
        block_number: 0,
    };
    assert_eq!(
        vote2.commit(),
        tagged("COMMIT~eA4GNnwEAQ0GZ4ZY61UAV1Sf2rBkaUcv4FLbI1fUxenY")
    );
}
