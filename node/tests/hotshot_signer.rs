//! The integrator's client (`hotshot-signer`) against a real 3-node cluster holding Espresso's
//! public demo key 1: the signatures it returns are HotShot's own (a DA proposal signature
//! recorded from a real Espresso network, and quorum-vote signatures of the reference
//! implementation in `tests/vectors/espresso/vectors.json`), refusals come back as refusals
//! with their code, and signing goes on through a leader kill.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod support;

use hotshot_signer::{DaData, LeafLayout, QuorumData, RemoteStakingKey, SignError};
use signer_node::client::{PoolOptions, SignerPool};
use signer_node::protection::espresso::message::commitment_from_tagged;
use signer_node::protection::espresso::Message;
use std::time::Duration;
use support::{local_kek, Cluster};

/// Espresso's public demo key 1 (`ESPRESSO_DEMO_SEQUENCER_STAKING_PRIVATE_KEY_1`), little-endian.
const DEMO_KEY_1_LE: &str = "f833bbda6fd2165e8d40c6249e6d39158a4f1249647aacfe07783698575bb92f";
/// Its public key, as Espresso's test stake tables list it.
const DEMO_KEY_1_PUBLIC: &str =
    "BLS_VER_KEY~4zQnaCOFJ7m95OjxeNls0QOOwWbz4rfxaL3NwmN2zSdnf8t5Nw_dfmMHq05ee8jCegw6Bn5T8inmrnGGAsQJMMWLv77nd7FJziz2ViAbXg-XGGF7o4HyzELCmypDOIYF3X2UWferFE_n72ZX0iQkUhOvYZZ7cfXToXxRTtb_mwRR";
/// The signature of demo key 1 on a DA proposal of an empty payload, recorded from a real
/// Espresso network (`SampleDAEvent.signature`, espresso-network Go SDK fixture).
const DA_EMPTY_SIGNATURE: &str =
    "BLS_SIG~YkC0O16wIMY6udC53JCHQJj9gWfrbA9usk1HbE0uiwATt4Eq-XdEI60LW2UUc3_L8CHcsXxGRQsm2ZCYCsv8FUk";
/// Demo key 1's quorum vote for leaf `COMMIT~zaORM…` in view 12 (a vote commitment recorded in
/// a real QC, signed by the reference implementation).
const QUORUM_VOTE_12_SIGNATURE: &str =
    "BLS_SIG~RLDbts-j9lSr8ivArKWha5DNqcZfVaUTOAcXjbuYEyTAyOWiAlnAgcXFNPb--l2K5bSG1vqr9Em9Hr9fnGNaqAk";
const LEAF_12: &str = "COMMIT~zaORMZWZIlnqu00P22csaMNcTplixSCL0AmihTBlyyTG";

/// A file of `tests/vectors/espresso/`.
fn espresso_vectors(name: &str) -> serde_json::Value {
    let path = format!(
        "{}/../tests/vectors/espresso/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

async fn pool(cluster: &Cluster) -> SignerPool {
    let endpoints: Vec<_> = (1..=3)
        .map(|id| (id, cluster.node(id).client_addr))
        .collect();
    let options = PoolOptions {
        rpc_timeout: Duration::from_secs(3),
        ..PoolOptions::default()
    };
    SignerPool::from_endpoints(&endpoints, &cluster.tls("seq-1"), options)
        .await
        .unwrap()
}

/// A 3-node cluster holding demo key 1 (imported through the admin plane, loaded on every
/// node), and the integrator's client for it as `seq-1`.
async fn demo_key_cluster() -> (Cluster, RemoteStakingKey) {
    let cluster = Cluster::start_with(3, local_kek).await;
    cluster.wait_bootstrapped().await;
    let imported = cluster
        .import_key(
            "hotshot-demo-1",
            "espresso",
            &hex::decode(DEMO_KEY_1_LE).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(imported.public_key_text, DEMO_KEY_1_PUBLIC);
    cluster
        .wait_all("demo key loaded everywhere", |s| {
            s.keys_loaded.iter().any(|k| k == "hotshot-demo-1")
        })
        .await;
    let key = RemoteStakingKey::new(pool(&cluster).await, "hotshot-demo-1")
        .await
        .unwrap();
    assert_eq!(key.public_key().to_tagged(), DEMO_KEY_1_PUBLIC);
    (cluster, key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_integrator_client_gets_hotshots_own_signatures_and_its_refusals() {
    let (cluster, key) = demo_key_cluster().await;

    // HotShot's own signatures, byte for byte.
    let vote = QuorumData {
        leaf_commit: commitment_from_tagged(LEAF_12).unwrap(),
        epoch: None,
        block_number: None,
    };
    let signature = key.sign_quorum_vote(12, &vote).await.unwrap();
    assert_eq!(signature.to_tagged(), QUORUM_VOTE_12_SIGNATURE);
    let signature = key.sign_da_proposal(13, &[]).await.unwrap();
    assert_eq!(signature.to_tagged(), DA_EMPTY_SIGNATURE);

    // A second, different DA proposal in view 13 is an equivocation: refused with its code.
    match key.sign_da_proposal(13, b"other transactions").await {
        Err(SignError::Refused { code, message }) => {
            assert_eq!(code, "equivocation");
            assert!(
                message.starts_with("da-proposal at view 13: commitment "),
                "{message}"
            );
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // A DA vote far above the key's last quorum vote (a far-future leader's proposal).
    let da = DaData {
        payload_commit: signer_node::bytes::FixedBytes([5; 32]),
        next_epoch_payload_commit: None,
        epoch: None,
    };
    match key.sign_da_vote(12 + 1_000, &da).await {
        Err(SignError::Refused { code, message }) => {
            assert_eq!(code, "beyond_view_horizon");
            assert_eq!(
                message,
                "da-vote at view 1012 is more than 32 views above view 12, the highest view \
                 this key has voted in (quorum, timeout or view-sync vote)"
            );
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    key.sign_da_vote(13, &da).await.unwrap();

    // The leader dies; the client fails over and the next vote is signed by the new leader,
    // which holds the watermark: view 12 is now below it.
    let leader = cluster.wait_leader(Duration::from_secs(10)).await;
    cluster.kill(leader);
    let next = QuorumData {
        leaf_commit: signer_node::bytes::FixedBytes([13; 32]),
        epoch: None,
        block_number: None,
    };
    let signature = key.sign_quorum_vote(13, &next).await.unwrap();
    assert!(signature.verify(
        key.public_key(),
        &signer_node::protection::espresso::message::vote_commitment(&next.commit(), 13)
    ));
    match key.sign_quorum_vote(12, &vote).await {
        Err(SignError::Refused { code, .. }) => assert_eq!(code, "view_below_watermark"),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Every request and network kind, a VID disperse and the new protocol's Vote2 through the
/// client: signatures equal the independent reference's (`tests/vectors/espresso/requests.json`,
/// signed there by demo key 1), the VID commitment is HotShot's recorded one, builder requests
/// naming 32 raw bytes are refused for a client not trusted with raw roots, and a DA payload
/// that is a VID request's encoding is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_vid_and_vote2_through_the_client() {
    use hotshot_signer::{Request, VidInput, Vote2Data};
    let (_cluster, key) = demo_key_cluster().await;

    let vectors = espresso_vectors("requests.json");
    let mut checked = 0;
    for case in vectors["cases"].as_array().unwrap() {
        if case["signer_index"] != 1 {
            continue;
        }
        let request: Request = serde_json::from_value(case["request"].clone()).unwrap();
        let result = key.sign_request(&request).await;
        if request.requires_trusted_client() {
            match result {
                Err(SignError::Client(e)) => assert!(
                    e.to_string().contains("PermissionDenied")
                        && e.to_string().contains("a builder request signs 32 bytes"),
                    "{e}"
                ),
                other => panic!(
                    "{}: expected PERMISSION_DENIED, got {other:?}",
                    case["kind"]
                ),
            }
        } else {
            let signature = result.unwrap();
            assert_eq!(signature.to_tagged(), case["bls_sig"], "{}", case["kind"]);
        }
        checked += 1;
    }
    assert!(checked >= 4, "only {checked} cases of demo key 1");

    // Timestamped requests far ahead of the cluster's clock are refused (a catch-up request
    // or Push-CDN authentication signed for the future could be replayed until then); one
    // stamped now is signed.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for (request, kind) in [
        (
            Request::CatchUp {
                request: hotshot_signer::HexBytes(vec![1, 2, 3]),
                timestamp: now + 3600,
            },
            "catch_up",
        ),
        (
            Request::PushCdnAuth {
                timestamp: now + 3600,
            },
            "push_cdn_auth",
        ),
    ] {
        match key.sign_request(&request).await {
            Err(SignError::Client(e)) => {
                let text = e.to_string();
                assert!(text.contains("InvalidArgument"), "{text}");
                assert!(
                    text.contains(&format!(
                        "espresso.request.{}.timestamp: {}: timestamp {} is ",
                        kind.replace('_', "-"),
                        kind.replace('_', "-"),
                        now + 3600
                    )) && text.contains(
                        " s ahead of this signer's clock (at most 30 s): a signature for a \
                         future time could be replayed until then"
                    ),
                    "{text}"
                );
            }
            other => panic!("{kind}: expected INVALID_ARGUMENT, got {other:?}"),
        }
    }
    key.sign_request(&Request::PushCdnAuth { timestamp: now })
        .await
        .unwrap();

    // A VID disperse of a block recorded from a HotShot network (protocol 0.3, AvidM).
    let vid = espresso_vectors("vid.json");
    let recorded = vid["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["origin"] == "hotshot")
        .max_by_key(|c| c["total_weight"].as_u64().unwrap())
        .unwrap();
    let hex_field = |name: &str| {
        hex::decode(recorded[name].as_str().unwrap().trim_start_matches("0x")).unwrap()
    };
    let (payload, ns_table) = (hex_field("payload"), hex_field("ns_table"));
    let input = VidInput {
        payload: &payload,
        ns_table: &ns_table,
        total_weight: recorded["total_weight"].as_u64().unwrap() as u32,
        protocol_version: hotshot_signer::Version { major: 0, minor: 3 },
    };
    let (commitment, signature) = key.sign_vid_disperse(20, &input).await.unwrap();
    assert_eq!(commitment.to_tagged(), recorded["tagged"]);
    assert!(signature.verify(key.public_key(), commitment.signed_bytes()));
    // The same payload as a builder query's parent: any client, the signer computed it.
    let parent = key.sign_builder_available_blocks(21, &input).await.unwrap();
    assert_eq!(parent, signature);

    // A DA payload that is a VID request's encoding would sign that request: refused.
    let preimage =
        signer_node::protection::espresso::request::vid_request_preimage(7, key.public_key());
    match key.sign_da_proposal(30, &preimage).await {
        Err(SignError::Client(e)) => assert!(
            e.to_string().contains(
                "espresso.da_proposal.encoded_transactions: these bytes are the encoding of a \
                 VID request"
            ),
            "{e}"
        ),
        other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
    }

    // The new protocol: Vote1 for a rival and Vote2 for the decided leaf in one view.
    let vote1 = QuorumData {
        leaf_commit: signer_node::bytes::FixedBytes([0xaa; 32]),
        epoch: Some(2),
        block_number: Some(5),
    };
    key.sign_quorum_vote(40, &vote1).await.unwrap();
    let decided = Vote2Data {
        leaf_commit: signer_node::bytes::FixedBytes([0xbb; 32]),
        epoch: 2,
        block_number: 5,
    };
    key.sign_vote2(40, &decided).await.unwrap();
    let rival = Vote2Data {
        leaf_commit: signer_node::bytes::FixedBytes([0xaa; 32]),
        ..decided
    };
    match key.sign_vote2(40, &rival).await {
        Err(SignError::Refused { code, .. }) => assert_eq!(code, "equivocation"),
        other => panic!("expected a refusal, got {other:?}"),
    }

    // A quorum proposal names its release's leaf layout: a leaf recorded from a HotShot chain
    // of protocol 0.5 signs its recorded commitment under 0.3-0.6, and is refused (before
    // anything is sent) under the pre-epoch layout, which does not hash its epoch clauses.
    let leaves = espresso_vectors("leaf2.json");
    let case = leaves["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| {
            c["layout"] == "v0.3-v0.6" && c["provenance"].as_str().unwrap().starts_with("verified")
        })
        .unwrap();
    let Message::QuorumProposal(leaf) = serde_json::from_value(case["message"].clone()).unwrap()
    else {
        panic!("not a quorum proposal: {case}")
    };
    let recorded = commitment_from_tagged(case["leaf_commit"].as_str().unwrap()).unwrap();
    let signature = key
        .sign_quorum_proposal(LeafLayout::Epochs, &leaf)
        .await
        .unwrap();
    assert!(signature.verify(key.public_key(), &recorded.0));
    match key.sign_quorum_proposal(LeafLayout::PreEpoch, &leaf).await {
        Err(SignError::Input(reason)) => assert_eq!(
            reason,
            "leaf layout PreEpoch has no epoch clauses, but the proposal carries with_epoch"
        ),
        other => panic!("expected the layout refused, got {other:?}"),
    }
}

/// The new protocol's leader and upgrade messages through the client, from
/// `tests/vectors/espresso/new_protocol.json` (computed by the independent
/// `new_protocol_ref.py`): a proposal under the new protocol's leaf layout (with `timeout cert
/// v3` evidence), re-vote requests and an `UpgradeProposalData2` vote each sign exactly the
/// vector's bytes; a second proposal, re-vote request or upgrade vote at the same view (and
/// epoch) with other data is refused as an equivocation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_protocol_proposals_revotes_and_upgrade_votes_through_the_client() {
    use hotshot_signer::{NewProtocolLeaf, ReVoteRequest, UpgradeProposalData2};
    let (_cluster, key) = demo_key_cluster().await;
    let vectors = espresso_vectors("new_protocol.json");
    let cases = vectors["cases"].as_array().unwrap();
    let case = |name: &str| {
        cases
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no case {name:?}"))
    };
    let signs = |case: &serde_json::Value, signature: &hotshot_signer::Signature| {
        let bytes = hex::decode(case["signing_message_hex"].as_str().unwrap()).unwrap();
        assert!(
            signature.verify(key.public_key(), &bytes),
            "{}: the signature is not over the vector's bytes",
            case["name"]
        );
    };
    let equivocation =
        |result: Result<hotshot_signer::Signature, SignError>, what: &str| match result {
            Err(SignError::Refused { code, .. }) => assert_eq!(code, "equivocation", "{what}"),
            other => panic!("{what}: expected an equivocation, got {other:?}"),
        };

    // Proposals: the decided one at view 1, then its rival is refused; then view 7 with a v3
    // timeout certificate, a DRB result and an upgrade certificate.
    let decided = case("proposal A (decided) at view 1");
    let leaf: NewProtocolLeaf = serde_json::from_value(decided["data"].clone()).unwrap();
    signs(
        decided,
        &key.sign_new_protocol_proposal(&leaf).await.unwrap(),
    );
    let rival: NewProtocolLeaf =
        serde_json::from_value(case("proposal B (rival) at view 1")["data"].clone()).unwrap();
    equivocation(
        key.sign_new_protocol_proposal(&rival).await,
        "rival proposal",
    );
    let v3 = case("proposal with DRB, upgrade certificate and TimeoutCertificate3 evidence");
    let leaf: NewProtocolLeaf = serde_json::from_value(v3["data"].clone()).unwrap();
    signs(v3, &key.sign_new_protocol_proposal(&leaf).await.unwrap());

    // Re-vote requests: one per view and epoch.
    for name in [
        "re-vote request without a timeout certificate",
        "re-vote request with a timeout certificate",
    ] {
        let c = case(name);
        let request: ReVoteRequest = serde_json::from_value(c["data"].clone()).unwrap();
        signs(c, &key.sign_revote_request(&request).await.unwrap());
        // The identical request re-signs (BLS is deterministic: the same signature).
        signs(c, &key.sign_revote_request(&request).await.unwrap());
        let other = ReVoteRequest {
            cert1_commit: signer_node::bytes::FixedBytes([0xee; 32]),
            ..request
        };
        equivocation(key.sign_revote_request(&other).await, name);
    }

    // The new protocol's upgrade vote.
    let c = case("upgrade vote over UpgradeProposalData2");
    let view = c["view"].as_u64().unwrap();
    let data: UpgradeProposalData2 = serde_json::from_value(c["data"].clone()).unwrap();
    signs(c, &key.sign_upgrade_vote2(view, &data).await.unwrap());
    let later = UpgradeProposalData2 {
        decide_by: data.decide_by + 1,
        ..data.clone()
    };
    equivocation(key.sign_upgrade_vote2(view, &later).await, "upgrade vote");
    // The next epoch's upgrade vote in the same view is another position: signed.
    let next_epoch = UpgradeProposalData2 {
        epoch: data.epoch + 1,
        ..later
    };
    key.sign_upgrade_vote2(view, &next_epoch).await.unwrap();
}
