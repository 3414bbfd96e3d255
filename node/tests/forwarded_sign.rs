//! Forwarding a converted sign request to the leader (`ForwardTypedSign`): the typed request
//! and the typed answer travel in the binary format and come back as they were sent; the
//! leader takes a forward only from a member node's certificate, and checks the named client's
//! grant (the key, and its trust in raw roots) and the ids itself, whatever the follower
//! checked; and a forwarded request is signed exactly as the same request sent to the leader
//! directly. The signed digest is computed by the test oracle, not by the signer's code.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod oracle;
mod support;

use oracle::requests::quorum_vote_digest;
use signer_node::admin::AccessDenied;
use signer_node::bytes::FixedBytes;
use signer_node::pb;
use signer_node::protection::espresso::message::Message;
use signer_node::protection::espresso::Kind;
use signer_node::protection::Violation;
use signer_node::service::access::Denied;
use signer_node::service::convert::{self, Eth2Request, RequestMessage, SignRequest};
use signer_node::service::signing::{ForwardedSign, SignError, Signed};
use std::time::{Duration, Instant};
use support::{eth2_block, quorum_vote, Cluster, ESPRESSO_KEY, ETH2_KEY};
use tonic::Code;

type Answer = Result<Signed, SignError>;

/// What a client would see for an answer: code, message and refusal detail, or the signature.
fn seen(answer: &Answer) -> Result<Signed, (Code, String, Option<pb::Refusal>)> {
    match answer {
        Ok(signed) => Ok(signed.clone()),
        Err(e) => Err((e.code(), e.to_string(), e.refusal())),
    }
}

fn da_proposal(view: u64, encoded_transactions: &[u8]) -> pb::SignRequest {
    pb::SignRequest {
        request_id: String::new(),
        key_id: ESPRESSO_KEY.into(),
        message: Some(pb::sign_request::Message::Espresso(pb::EspressoMessage {
            kind: Some(pb::espresso_message::Kind::DaProposal(pb::DaProposal {
                view,
                encoded_transactions: encoded_transactions.to_vec(),
            })),
        })),
    }
}

fn typed(req: pb::SignRequest) -> SignRequest {
    SignRequest::try_from(req).unwrap()
}

#[test]
fn a_forwarded_request_and_its_answer_round_trip_in_the_binary_format() {
    let raw = SignRequest {
        request_id: "r-1".into(),
        key_id: ETH2_KEY.into(),
        message: RequestMessage::Eth2(Eth2Request::RawAttestation {
            source_epoch: 1,
            target_epoch: 2,
            signing_root: signer_node::bytes::FixedBytes([9; 32]),
        }),
    };
    for request in [
        typed(quorum_vote(5, 1, "v-5")),
        typed(eth2_block(7, 1)),
        typed(da_proposal(3, b"transactions")),
        raw,
    ] {
        let sent = ForwardedSign {
            client: "seq-1".into(),
            request,
        };
        let bytes = signer_node::format::encode(&sent).unwrap();
        assert_eq!(
            signer_node::format::decode::<ForwardedSign>(&bytes).unwrap(),
            sent
        );
    }
    // The typed eth2 message keeps the exact bytes the client sent.
    let block = eth2_block(7, 1);
    let Some(pb::sign_request::Message::Eth2(pb::Eth2Request {
        form: Some(pb::eth2_request::Form::Typed(sent_bytes)),
        ..
    })) = &block.message
    else {
        panic!("not a typed eth2 request")
    };
    let RequestMessage::Eth2(Eth2Request::Typed { message, .. }) = typed(block.clone()).message
    else {
        panic!("not converted to a typed eth2 request")
    };
    assert_eq!(&message.to_bytes(), sent_bytes);

    let answers: Vec<Answer> = vec![
        Ok(Signed {
            signature: vec![1; 64],
            signature_text: "BLS_SIG~x".into(),
            resigned: true,
            signed_message: vec![2; 32],
        }),
        Err(SignError::Refused(Violation::Equivocation {
            kind: Kind::QuorumVote,
            view: 5,
            signed: FixedBytes([1; 32]),
            requested: FixedBytes([2; 32]),
        })),
        Err(SignError::KeyMismatch("k".into())),
        Err(SignError::Denied(Denied::Access(AccessDenied::Key {
            client: "seq-1".into(),
            key_id: "k".into(),
        }))),
        Err(SignError::Denied(Denied::RateLimited {
            client: "seq-1".into(),
            per_second: 1,
            burst: 2,
        })),
        Err(SignError::Invalid {
            field: "key_id".into(),
            reason: "missing".into(),
        }),
        Err(SignError::RawRootsRefused),
        Err(SignError::KeyNotLoaded {
            key_id: "k".into(),
            why: "not loaded yet".into(),
        }),
        Err(SignError::Paused),
        Err(SignError::OutcomeUnknown),
    ];
    for answer in answers {
        let bytes = signer_node::format::encode(&answer).unwrap();
        let back: Answer = signer_node::format::decode(&bytes).unwrap();
        assert_eq!(seen(&back), seen(&answer), "{answer:?}");
    }
    // A status of the forwarding call itself is the follower's to relay, never sent.
    let local: Answer = Err(SignError::LeaderStatus {
        code: Code::DeadlineExceeded,
        message: "timeout".into(),
    });
    assert!(signer_node::format::encode(&local).is_err());
}

/// Call `ForwardTypedSign` on node `to`'s peer port with node `as_node`'s certificate.
async fn forward(
    cluster: &Cluster,
    to: u64,
    as_node: u64,
    sent: &ForwardedSign,
) -> Result<Answer, tonic::Status> {
    let mut peer = pb::raft_client::RaftClient::new(cluster.peer_channel(to, as_node));
    let payload = signer_node::format::encode(sent).unwrap();
    let answer = peer.forward_typed_sign(pb::RaftMessage { payload }).await?;
    Ok(signer_node::format::decode(&answer.into_inner().payload).unwrap())
}

/// Forward `sent` to the leader as another member would, again while leadership moves.
async fn forward_to_leader(cluster: &Cluster, sent: &ForwardedSign) -> (u64, Answer) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let leader = cluster.wait_leader(Duration::from_secs(10)).await;
        let follower = (1..=3).find(|id| *id != leader).unwrap();
        let answer = forward(cluster, leader, follower, sent).await.unwrap();
        match &answer {
            Err(SignError::NoLeader | SignError::NotLeader) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            _ => return (leader, answer),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_leader_authenticates_the_forwarder_and_checks_the_client_itself() {
    let cluster = Cluster::start(3).await;
    let vote = |client: &str, view: u64| ForwardedSign {
        client: client.into(),
        request: typed(quorum_vote(view, 1, "")),
    };

    // A member forwards a vote for seq-1: signed, over the digest the oracle computes.
    let (leader, answer) = forward_to_leader(&cluster, &vote("seq-1", 5)).await;
    let signed = answer.unwrap();
    assert!(!signed.resigned);
    assert_eq!(signed.signed_message, quorum_vote_digest(5, 1).to_vec());
    // The same request sent to the leader directly is the same signature, re-signed.
    let direct = cluster
        .client(leader, "seq-1")
        .await
        .sign(quorum_vote(5, 1, ""))
        .await
        .unwrap()
        .into_inner();
    assert!(direct.resigned);
    assert_eq!(direct.signature, signed.signature);
    assert_eq!(direct.signed_message, signed.signed_message);
    // A conflicting vote is refused, with the refusal as data.
    let conflicting = ForwardedSign {
        client: "seq-1".into(),
        request: typed(quorum_vote(5, 2, "")),
    };
    let (_, answer) = forward_to_leader(&cluster, &conflicting).await;
    let Err(SignError::Refused(v)) = &answer else {
        panic!("{answer:?}")
    };
    assert_eq!(v.code(), "equivocation");

    // A DA proposal travels with its payload, and the leader hashes it: the signed bytes are
    // SHA-256 of the transactions (computed here with the sha2 crate).
    let payload = b"tx-1 tx-2 tx-3".to_vec();
    let da = ForwardedSign {
        client: "seq-1".into(),
        request: typed(da_proposal(9, &payload)),
    };
    assert_eq!(
        da.request.message,
        RequestMessage::EspressoDaProposal {
            view: 9,
            encoded_transactions: payload.clone(),
        }
    );
    let (_, answer) = forward_to_leader(&cluster, &da).await;
    use sha2::Digest as _;
    assert_eq!(
        answer.unwrap().signed_message,
        sha2::Sha256::digest(&payload).to_vec()
    );

    // The checks below come before leadership matters: any node answers them the same way.
    let leader = cluster.wait_leader(Duration::from_secs(10)).await;
    let follower = (1..=3).find(|id| *id != leader).unwrap();

    // A client without a grant: denied by the leader, whatever the follower let through.
    let answer = forward(&cluster, leader, follower, &vote("nobody-1", 6))
        .await
        .unwrap();
    assert_eq!(
        seen(&answer),
        Err((
            Code::PermissionDenied,
            "client \"nobody-1\" has no access grant".to_owned(),
            None
        ))
    );
    // A raw eth2 root for a client whose grant does not trust raw roots: refused by the
    // leader (the typed request keeps its form, so the leader sees it is raw).
    let raw = ForwardedSign {
        client: "seq-1".into(),
        request: SignRequest {
            request_id: String::new(),
            key_id: ETH2_KEY.into(),
            message: RequestMessage::Eth2(Eth2Request::RawBlock {
                slot: 40,
                signing_root: signer_node::bytes::FixedBytes(quorum_vote_digest(6, 1)),
            }),
        },
    };
    let answer = forward(&cluster, leader, follower, &raw).await.unwrap();
    assert!(
        matches!(answer, Err(SignError::RawRootsRefused)),
        "{answer:?}"
    );
    // An espresso message for the eth2 key: the leader compares the key's profile itself.
    let mut wrong_key = vote("seq-1", 6);
    wrong_key.request.key_id = ETH2_KEY.into();
    let answer = forward(&cluster, leader, follower, &wrong_key)
        .await
        .unwrap();
    assert_eq!(
        seen(&answer),
        Err((
            Code::InvalidArgument,
            format!("message: key {ETH2_KEY:?} is a eth2 key; this is a espresso request"),
            None
        ))
    );
    // A digest in place of a DA payload (only a hostile peer sends one): refused, so no node
    // signs a digest another node computed.
    let digest_only = ForwardedSign {
        client: "seq-1".into(),
        request: SignRequest {
            request_id: String::new(),
            key_id: ESPRESSO_KEY.into(),
            message: RequestMessage::Espresso(Message::da_proposal(10, b"other")),
        },
    };
    let answer = forward(&cluster, leader, follower, &digest_only)
        .await
        .unwrap();
    assert_eq!(
        seen(&answer),
        Err((
            Code::InvalidArgument,
            "espresso.da_proposal: a request carries the encoded transactions, never their \
             digest"
                .to_owned(),
            None
        ))
    );
    // Ids out of bounds, and no client identity: the leader checks them again.
    let mut long_id = vote("seq-1", 6);
    long_id.request.key_id = "k".repeat(convert::MAX_KEY_ID + 1);
    let answer = forward(&cluster, leader, follower, &long_id).await.unwrap();
    assert_eq!(
        seen(&answer),
        Err((
            Code::InvalidArgument,
            format!("key_id: longer than {} bytes", convert::MAX_KEY_ID),
            None
        ))
    );
    let answer = forward(&cluster, leader, follower, &vote("", 6))
        .await
        .unwrap();
    assert_eq!(
        seen(&answer),
        Err((
            Code::InvalidArgument,
            "client_identity: missing".to_owned(),
            None
        ))
    );
    // A forward signed by no member node is refused before anything is read: a client's
    // certificate on the peer port.
    let tls = cluster
        .tls("seq-1")
        .client_config(&format!("node-{leader}"))
        .unwrap();
    let channel = tonic::transport::Endpoint::from_shared(format!(
        "https://{}",
        cluster.node(leader).peer_addr
    ))
    .unwrap()
    .tls_config(tls)
    .unwrap()
    .connect_lazy();
    let payload = signer_node::format::encode(&vote("seq-1", 6)).unwrap();
    let status = pb::raft_client::RaftClient::new(channel)
        .forward_typed_sign(pb::RaftMessage { payload })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert_eq!(status.message(), "\"seq-1\" is not a node identity");
    // Nothing of the refused forwards was signed: view 6 is still free for seq-1.
    let (_, answer) = forward_to_leader(&cluster, &vote("seq-1", 6)).await;
    assert!(!answer.unwrap().resigned);
}
