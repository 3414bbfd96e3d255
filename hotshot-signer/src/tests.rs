//! The answer check: a signature is handed out only if it signs exactly the bytes this crate
//! computed and verifies under the key's public key.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;

fn key(seed: u8) -> bn254::SecretKey {
    let mut bytes = [0u8; 32];
    bytes[0] = seed;
    bn254::SecretKey::from_le_bytes(&bytes).unwrap()
}

fn answer(signed: &[u8], signature: &Signature) -> pb::SignResponse {
    pb::SignResponse {
        signature: signature.to_bytes().to_vec(),
        signature_text: signature.to_tagged(),
        resigned: false,
        signed_message: signed.to_vec(),
    }
}

#[test]
fn an_answer_is_accepted_only_for_the_expected_bytes_and_key() {
    let sk = key(7);
    let pk = sk.public_key();
    let expected = [3u8; 32];
    let good = sk.sign(&expected);
    assert_eq!(
        check_answer(&pk, &expected, &answer(&expected, &good)).unwrap(),
        good
    );

    // Other bytes signed (and said so): refused, whatever the signature.
    let other = [4u8; 32];
    let err = check_answer(&pk, &expected, &answer(&other, &sk.sign(&other))).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the cluster's answer does not check: the cluster signed 32 bytes other than the 32 \
         this request stands for"
    );

    // The right bytes claimed, but the signature is over other bytes or by another key.
    for wrong in [sk.sign(&other), key(8).sign(&expected)] {
        let err = check_answer(&pk, &expected, &answer(&expected, &wrong)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the cluster's answer does not check: the signature does not verify under the \
             key's public key"
        );
    }

    // Not a signature at all.
    let mut garbage = answer(&expected, &good);
    garbage.signature = vec![0xff; 64];
    assert!(matches!(
        check_answer(&pk, &expected, &garbage),
        Err(SignError::BadAnswer(m)) if m.starts_with("signature: ")
    ));
}

#[test]
fn a_refusal_stays_a_refusal() {
    let e = SignError::from(ClientError::Refused {
        code: "equivocation".into(),
        message: "quorum-vote at view 9: …".into(),
    });
    assert!(matches!(e, SignError::Refused { code, .. } if code == "equivocation"));
}

#[test]
fn every_message_but_a_digest_only_da_proposal_has_a_wire_form() {
    let data = QuorumData {
        leaf_commit: signer_core::bytes::FixedBytes([1; 32]),
        epoch: Some(2),
        block_number: Some(3),
    };
    let wire = convert::to_wire(&Message::QuorumVote {
        view: 9,
        data: data.clone(),
    })
    .unwrap();
    assert_eq!(
        wire.kind,
        Some(pb::espresso_message::Kind::QuorumVote(pb::QuorumVote {
            view: 9,
            leaf_commit: vec![1; 32],
            epoch: Some(2),
            block_number: Some(3),
        }))
    );
    assert_eq!(convert::to_wire(&Message::da_proposal(9, b"txs")), None);
}
