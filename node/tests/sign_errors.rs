//! The wire form of every way a Sign call fails: each [`SignError`] becomes exactly the status
//! (code, message, `signer.v1.Refusal` detail) and the batch item that clients got before the
//! sign path had a typed error. The expected values are written out here by hand, from the
//! statuses the services built directly, so a change to a message or code fails this test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use prost::Message as _;
use signer_node::admin::AccessDenied;
use signer_node::bytes::FixedBytes;
use signer_node::pb;
use signer_node::protection::espresso::Kind;
use signer_node::protection::Violation;
use signer_node::service::access::Denied;
use signer_node::service::convert;
use signer_node::service::signing::SignError;
use tonic::Code;

/// What a client sees: code, message, and the refusal detail (code, message) when there is one.
type Wire = (Code, String, Option<(String, String)>);

fn wire(e: SignError) -> Wire {
    let status = convert::status(e);
    let detail = (!status.details().is_empty()).then(|| {
        let r = pb::Refusal::decode(status.details()).unwrap();
        (r.code, r.message)
    });
    (status.code(), status.message().to_owned(), detail)
}

fn plain(code: Code, message: &str) -> Wire {
    (code, message.to_owned(), None)
}

#[test]
fn every_sign_error_becomes_the_status_clients_know() {
    let cases: Vec<(SignError, Wire)> =
        vec![
        (
            SignError::Unauthenticated,
            plain(
                Code::Unauthenticated,
                "a client certificate naming the client is required",
            ),
        ),
        (
            SignError::Denied(Denied::NotBootstrapped),
            plain(
                Code::Unavailable,
                "the cluster's admin plane is not bootstrapped yet: no client has access",
            ),
        ),
        (
            SignError::Denied(Denied::Access(AccessDenied::Key {
                client: "seq-1".into(),
                key_id: "k2".into(),
            })),
            plain(
                Code::PermissionDenied,
                "client \"seq-1\" may not use key \"k2\"",
            ),
        ),
        (
            SignError::Denied(Denied::RateLimited {
                client: "seq-1".into(),
                per_second: 5,
                burst: 10,
            }),
            plain(
                Code::ResourceExhausted,
                "client \"seq-1\" exceeded its rate limit of 5/s (burst 10)",
            ),
        ),
        (
            SignError::NotReader("eve".into()),
            plain(
                Code::PermissionDenied,
                "\"eve\" has no access grant and is neither an enrolled admin nor an auditor",
            ),
        ),
        (
            SignError::Invalid {
                field: "key_id".into(),
                reason: "missing".into(),
            },
            plain(Code::InvalidArgument, "key_id: missing"),
        ),
        (
            SignError::RawRootsRefused,
            plain(
                Code::PermissionDenied,
                "eth2: raw signing roots are accepted only from a client whose grant trusts \
                 them (raw_roots); send the typed message (eth2.typed) and the signer computes \
                 the root",
            ),
        ),
        (
            SignError::KeyNotFound("nope".into()),
            plain(
                Code::NotFound,
                "key_id: no active key \"nope\" on this cluster",
            ),
        ),
        (
            SignError::KeyInactive("old".into()),
            plain(Code::NotFound, "key_id: key \"old\" was disabled or deleted"),
        ),
        (
            SignError::Refused(Violation::Equivocation {
                kind: Kind::QuorumVote,
                view: 5,
                signed: FixedBytes([0x11; 32]),
                requested: FixedBytes([0x22; 32]),
            }),
            (
                Code::FailedPrecondition,
                format!(
                    "refused by slashing protection: equivocation: quorum-vote at view 5: \
                     commitment 0x{} was signed there; this request's commitment is 0x{}",
                    "11".repeat(32),
                    "22".repeat(32)
                ),
                Some((
                    "equivocation".into(),
                    format!(
                        "quorum-vote at view 5: commitment 0x{} was signed there; this \
                         request's commitment is 0x{}",
                        "11".repeat(32),
                        "22".repeat(32)
                    ),
                )),
            ),
        ),
        (
            SignError::KeyMismatch("k1".into()),
            (
                Code::FailedPrecondition,
                "refused: key_mismatch: key \"k1\": the cluster's registry holds this id under \
                 another public key; rename the key file or the registry key"
                    .into(),
                Some((
                    "key_mismatch".into(),
                    "key \"k1\": the cluster's registry holds this id under another public key; \
                     rename the key file or the registry key"
                        .into(),
                )),
            ),
        ),
        // Paused is a definitive refusal (clients must not retry it on another node).
        (
            SignError::Paused,
            (
                Code::FailedPrecondition,
                "refused: paused: signing is paused by the admins (signerctl resume, with \
                 approvals)"
                    .into(),
                Some((
                    "paused".into(),
                    "signing is paused by the admins (signerctl resume, with approvals)".into(),
                )),
            ),
        ),
        (
            SignError::KeyNotLoaded {
                key_id: "k1".into(),
                why: "not loaded yet".into(),
            },
            plain(
                Code::Unavailable,
                "key \"k1\" is not loaded on the leader: not loaded yet",
            ),
        ),
        (
            SignError::NoLeader,
            plain(Code::Unavailable, "no leader elected yet; retry"),
        ),
        (
            SignError::NotLeader,
            plain(
                Code::Unavailable,
                "no leader can accept the request right now; retry",
            ),
        ),
        (
            SignError::LeaderAddressUnknown(2),
            plain(Code::Unavailable, "leader 2 has no known address; retry"),
        ),
        (
            SignError::LeaderChannel {
                leader: 2,
                reason: "bad address".into(),
            },
            plain(Code::Unavailable, "leader 2: bad address"),
        ),
        (
            SignError::LeaderUnreachable {
                leader: 3,
                reason: "connection refused".into(),
            },
            plain(Code::Unavailable, "leader 3 unreachable: connection refused"),
        ),
        (
            SignError::OutcomeUnknown,
            plain(
                Code::Unavailable,
                "leadership changed while the request was in flight; retry the identical request",
            ),
        ),
        (
            SignError::Stopped("shut down".into()),
            plain(
                Code::Unavailable,
                "replication stopped on this node: shut down",
            ),
        ),
        (
            SignError::Internal("accepted without a permit".into()),
            plain(Code::Internal, "accepted without a permit"),
        ),
    ];
    for (error, expected) in cases {
        let what = format!("{error:?}");
        assert_eq!(wire(error), expected, "{what}");
    }
}

#[test]
fn a_batch_item_carries_what_sign_would_have_returned() {
    let refused = SignError::Refused(Violation::DoubleVote {
        target: 7,
        signed_source: 6,
        signed_root: Some(FixedBytes([0xaa; 32])),
        requested_source: 6,
        requested_root: FixedBytes([0xbb; 32]),
    });
    let reason = format!(
        "double vote for target epoch 7: attestation 6→7 with signing root 0x{} was signed for \
         it; this request is 6→7 with signing root 0x{}",
        "aa".repeat(32),
        "bb".repeat(32)
    );
    let item = convert::batch_result(Err(refused));
    assert_eq!(
        item.result,
        Some(pb::sign_batch_result::Result::Error(pb::SignError {
            code: Code::FailedPrecondition as i32,
            message: format!("refused by slashing protection: double_vote: {reason}"),
            refusal: Some(pb::Refusal {
                code: "double_vote".into(),
                message: reason,
            }),
        }))
    );
    let item = convert::batch_result(Err(SignError::KeyNotFound("nope".into())));
    assert_eq!(
        item.result,
        Some(pb::sign_batch_result::Result::Error(pb::SignError {
            code: Code::NotFound as i32,
            message: "key_id: no active key \"nope\" on this cluster".into(),
            refusal: None,
        }))
    );
    let item = convert::batch_result(Ok(signer_node::service::signing::Signed {
        signature: vec![7; 96],
        signature_text: "0x07".into(),
        resigned: true,
        signed_message: vec![1; 32],
    }));
    assert_eq!(
        item.result,
        Some(pb::sign_batch_result::Result::Signed(pb::SignResponse {
            signature: vec![7; 96],
            signature_text: "0x07".into(),
            resigned: true,
            signed_message: vec![1; 32],
        }))
    );
}
