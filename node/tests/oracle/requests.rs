//! The request shapes of the adversarial tests: small messages of every kind, each with the
//! wire request a client sends and the oracle's own meaning and digest for it.
//!
//! Owns: the generator (`Msg`, `msg()`) and `build`. Must not: use the signer's digest code
//! (digests come from the oracle's second implementation in `super`).
#![allow(dead_code)]

use super::{self as oracle, Meaning};
use proptest::prelude::*;
use signer_node::pb;

pub const GVR: [u8; 32] = signer_node::config::MAINNET_GENESIS_VALIDATORS_ROOT;
/// Mainnet's deneb and electra fork versions.
pub const FORK_PREVIOUS: [u8; 4] = [4, 0, 0, 0];
pub const FORK_CURRENT: [u8; 4] = [5, 0, 0, 0];
/// Epochs before this are signed with `FORK_PREVIOUS` (the fork boundary is inside the range).
pub const FORK_EPOCH: u64 = 2;

/// A message a client asks for, in terms small enough to collide often.
#[derive(Clone, Debug)]
pub enum Msg {
    Block {
        slot: u64,
        body: u8,
    },
    Attestation {
        source: u64,
        target: u64,
        root: u8,
    },
    /// A raw-root block carrying the signing root of a typed attestation.
    RawBlockCopyingAttestation {
        slot: u64,
        source: u64,
        target: u64,
        root: u8,
    },
    /// Messages no slashing rule covers, over the same small numbers as blocks and votes.
    Randao {
        epoch: u64,
    },
    AggregationSlot {
        slot: u64,
    },
    QuorumVote {
        view: u64,
        leaf: u8,
    },
    DaVote {
        view: u64,
        payload: u8,
    },
    Timeout {
        view: u64,
    },
    ViewSync {
        phase: u8,
        round: u64,
        relay: u64,
    },
    /// A quorum proposal built around the digest of a quorum vote.
    ProposalCopyingVote {
        view: u64,
        vote_view: u64,
        vote_leaf: u8,
    },
    DaProposal {
        view: u64,
        payload: u8,
    },
    /// The new protocol's second-phase vote (one per view and epoch).
    Vote2 {
        view: u64,
        leaf: u8,
        epoch: u64,
    },
    /// The new protocol's timeout vote (one per view and epoch), without a lock.
    Timeout3 {
        view: u64,
        epoch: u64,
    },
    /// The new protocol's re-vote request (one per view and epoch).
    ReVote {
        view: u64,
        epoch: u64,
        cert: u8,
    },
    /// The new protocol's upgrade vote over `UpgradeProposalData2` (one per view and epoch).
    UpgradeVote2 {
        view: u64,
        epoch: u64,
        decide_by: u64,
    },
    /// A new-protocol proposal whose every 32-byte field, its v3 timeout evidence included,
    /// holds the digest of a quorum vote.
    NewProtocolProposalCopyingVote {
        view: u64,
        vote_view: u64,
        vote_leaf: u8,
    },
    /// A builder claim whose block hash is the digest of a quorum vote (a client-chosen 32
    /// bytes: refused for a client not trusted with raw hashes).
    BuilderClaimCopyingVote {
        view: u64,
        vote_view: u64,
        vote_leaf: u8,
    },
    /// A catch-up request whose request bytes are the digest of a quorum vote (signed, but
    /// over `request ‖ u64le(timestamp) ‖ "espresso-request-response"`, never 32 bytes).
    CatchUpCopyingVote {
        vote_view: u64,
        vote_leaf: u8,
        timestamp: u64,
    },
    /// A Push-CDN authentication (signed freely, never remembered).
    PushCdnAuth {
        timestamp: u64,
    },
}

pub fn msg() -> impl Strategy<Value = Msg> {
    let small = 0u64..5;
    let byte = 0u8..3;
    prop_oneof![
        (small.clone(), byte.clone()).prop_map(|(slot, body)| Msg::Block { slot, body }),
        (small.clone(), small.clone(), byte.clone()).prop_map(|(source, target, root)| {
            Msg::Attestation {
                source,
                target,
                root,
            }
        }),
        (small.clone(), small.clone(), small.clone(), byte.clone()).prop_map(
            |(slot, source, target, root)| Msg::RawBlockCopyingAttestation {
                slot: slot + 10,
                source,
                target,
                root
            }
        ),
        small.clone().prop_map(|epoch| Msg::Randao { epoch }),
        small.clone().prop_map(|slot| Msg::AggregationSlot { slot }),
        (small.clone(), byte.clone()).prop_map(|(view, leaf)| Msg::QuorumVote { view, leaf }),
        (small.clone(), byte.clone()).prop_map(|(view, payload)| Msg::DaVote { view, payload }),
        small.clone().prop_map(|view| Msg::Timeout { view }),
        (0u8..3, small.clone(), 0u64..2).prop_map(|(phase, round, relay)| Msg::ViewSync {
            phase,
            round,
            relay
        }),
        (small.clone(), small.clone(), byte.clone()).prop_map(|(view, vote_view, vote_leaf)| {
            Msg::ProposalCopyingVote {
                view,
                vote_view,
                vote_leaf,
            }
        }),
        (small.clone(), byte.clone()).prop_map(|(view, payload)| Msg::DaProposal { view, payload }),
        (small.clone(), byte, 0u64..2).prop_map(|(view, leaf, epoch)| Msg::Vote2 {
            view,
            leaf,
            epoch
        }),
        (small.clone(), 0u64..2).prop_map(|(view, epoch)| Msg::Timeout3 { view, epoch }),
        (small.clone(), 0u64..2, 0u8..3).prop_map(|(view, epoch, cert)| Msg::ReVote {
            view,
            epoch,
            cert
        }),
        (small.clone(), 0u64..2, 0u64..2).prop_map(|(view, epoch, decide_by)| {
            Msg::UpgradeVote2 {
                view,
                epoch,
                decide_by,
            }
        }),
        (small.clone(), small, 0u8..3).prop_map(|(view, vote_view, vote_leaf)| {
            Msg::NewProtocolProposalCopyingVote {
                view,
                vote_view,
                vote_leaf,
            }
        }),
    ]
}

/// `msg()` and the Espresso requests a hostile client can send, built around vote digests.
/// Only for tests below the service edge that check a request's status as the result: a
/// builder claim from an untrusted client is refused with PERMISSION_DENIED, which the
/// cluster suites do not expect of a message.
pub fn msg_or_request() -> impl Strategy<Value = Msg> {
    let small = 0u64..5;
    let byte = 0u8..3;
    prop_oneof![
        6 => msg(),
        1 => (small.clone(), small.clone(), byte.clone()).prop_map(
            |(view, vote_view, vote_leaf)| Msg::BuilderClaimCopyingVote {
                view,
                vote_view,
                vote_leaf,
            }
        ),
        1 => (small.clone(), byte, 0u64..3).prop_map(|(vote_view, vote_leaf, timestamp)| {
            Msg::CatchUpCopyingVote {
                vote_view,
                vote_leaf,
                timestamp,
            }
        }),
        1 => small.prop_map(|timestamp| Msg::PushCdnAuth { timestamp }),
    ]
}

pub fn fork_info() -> eth2_messages::ForkInfo {
    eth2_messages::ForkInfo {
        fork: eth2_messages::Fork {
            previous_version: FORK_PREVIOUS,
            current_version: FORK_CURRENT,
            epoch: FORK_EPOCH,
        },
        genesis_validators_root: GVR,
    }
}

/// A typed eth2 request as the client sends it.
pub fn eth2(message: &eth2_messages::Eth2Message) -> pb::sign_request::Message {
    signer_node::client::eth2::typed(message, None)
}

pub fn version_at(epoch: u64) -> [u8; 4] {
    if epoch < FORK_EPOCH {
        FORK_PREVIOUS
    } else {
        FORK_CURRENT
    }
}

pub fn espresso(kind: pb::espresso_message::Kind) -> pb::sign_request::Message {
    pb::sign_request::Message::Espresso(pb::EspressoMessage { kind: Some(kind) })
}

/// The attestation of `Msg::Attestation` and its oracle digest.
pub fn attestation(source: u64, target: u64, root: u8) -> (eth2_messages::Eth2Message, [u8; 32]) {
    use eth2_messages::phase0::{AttestationData, Checkpoint};
    let data = AttestationData {
        slot: target * 32,
        index: 0,
        beacon_block_root: [root; 32],
        source: Checkpoint {
            epoch: source,
            root: [0; 32],
        },
        target: Checkpoint {
            epoch: target,
            root: [root; 32],
        },
    };
    let object = oracle::attestation_data_root(
        target * 32,
        0,
        [root; 32],
        (source, [0; 32]),
        (target, [root; 32]),
    );
    let digest = oracle::signing_root(object, oracle::domain(1, version_at(target), GVR));
    let message = eth2_messages::Eth2Message::Attestation {
        fork_info: fork_info(),
        data,
    };
    (message, digest)
}

pub fn quorum_vote_digest(view: u64, leaf: u8) -> [u8; 32] {
    oracle::vote(oracle::quorum_data([leaf; 32]), view)
}

pub fn esp(kind: &'static str, view: u64, relay: u64) -> Meaning {
    Meaning::Espresso { kind, view, relay }
}

/// A request as the client sends it, with the oracle's view of it.
pub struct Built {
    /// The wire message.
    pub message: pb::sign_request::Message,
    /// What the request stands for.
    pub meaning: Meaning,
    /// Its digest, computed by the oracle: the 32 bytes a consensus message signs. A request
    /// that signs other than 32 bytes has none; this is then SHA-256 of `signed`, an
    /// identifier no meaning's digest equals.
    pub digest: [u8; 32],
    /// The exact bytes the signer must sign for it (`digest` for every 32-byte message).
    pub signed: Vec<u8>,
    /// Other messages the request's bytes were built to stand for (a copied digest).
    pub copied: Vec<(Meaning, [u8; 32])>,
    /// The client chose the digest (a raw signing root): `meaning` is only its claim, not
    /// something the oracle computed the digest from.
    pub digest_chosen_by_client: bool,
}

/// The wire request for `msg` and the oracle's meaning and digest for it.
pub fn build(msg: &Msg) -> Built {
    let (message, meaning, signed, copied) = build_parts(msg);
    let digest = match <[u8; 32]>::try_from(signed.as_slice()) {
        Ok(digest) => digest,
        Err(_) => oracle::da_proposal(&signed),
    };
    Built {
        message,
        meaning,
        digest,
        signed,
        copied,
        digest_chosen_by_client: matches!(
            msg,
            Msg::RawBlockCopyingAttestation { .. } | Msg::BuilderClaimCopyingVote { .. }
        ),
    }
}

type Parts = (
    pb::sign_request::Message,
    Meaning,
    Vec<u8>,
    Vec<(Meaning, [u8; 32])>,
);

fn build_parts(msg: &Msg) -> Parts {
    if is_request(msg) {
        return build_request(msg);
    }
    let (message, meaning, digest, copied) = build_consensus(msg);
    (message, meaning, digest.to_vec(), copied)
}

/// An Espresso request (not a consensus message).
fn is_request(msg: &Msg) -> bool {
    matches!(
        msg,
        Msg::BuilderClaimCopyingVote { .. }
            | Msg::CatchUpCopyingVote { .. }
            | Msg::PushCdnAuth { .. }
    )
}

/// A request's parts: the bytes it signs are built by the oracle from HotShot's layouts
/// (`signer_node`'s request module names the sources).
fn build_request(msg: &Msg) -> Parts {
    use pb::espresso_request::Kind as R;
    let request = |kind| {
        espresso(pb::espresso_message::Kind::Request(pb::EspressoRequest {
            kind: Some(kind),
        }))
    };
    match *msg {
        Msg::BuilderClaimCopyingVote {
            view,
            vote_view,
            vote_leaf,
        } => {
            let copied = quorum_vote_digest(vote_view, vote_leaf);
            let m = request(R::BuilderClaim(pb::BuilderClaim {
                view,
                block_hash: copied.to_vec(),
            }));
            let meaning = Meaning::Request {
                kind: "builder-claim",
            };
            let copy = (esp("quorum-vote", vote_view, 0), copied);
            (m, meaning, copied.to_vec(), vec![copy])
        }
        Msg::CatchUpCopyingVote {
            vote_view,
            vote_leaf,
            timestamp,
        } => {
            let copied = quorum_vote_digest(vote_view, vote_leaf);
            let m = request(R::CatchUp(pb::CatchUpRequest {
                request: copied.to_vec(),
                timestamp,
            }));
            let mut signed = copied.to_vec();
            signed.extend_from_slice(&timestamp.to_le_bytes());
            signed.extend_from_slice(b"espresso-request-response");
            let meaning = Meaning::Request { kind: "catch-up" };
            let copy = (esp("quorum-vote", vote_view, 0), copied);
            (m, meaning, signed, vec![copy])
        }
        Msg::PushCdnAuth { timestamp } => {
            let m = request(R::PushCdnAuth(pb::PushCdnAuth { timestamp }));
            let mut signed = b"espresso-cdn-user-marshal-auth".to_vec();
            signed.extend_from_slice(&timestamp.to_le_bytes());
            let meaning = Meaning::Request {
                kind: "push-cdn-auth",
            };
            (m, meaning, signed, vec![])
        }
        _ => unreachable!("not a request: {msg:?}"),
    }
}

type ConsensusParts = (
    pb::sign_request::Message,
    Meaning,
    [u8; 32],
    Vec<(Meaning, [u8; 32])>,
);

/// A consensus message's parts.
fn build_consensus(msg: &Msg) -> ConsensusParts {
    use pb::espresso_message::Kind as K;
    match *msg {
        Msg::BuilderClaimCopyingVote { .. }
        | Msg::CatchUpCopyingVote { .. }
        | Msg::PushCdnAuth { .. } => unreachable!("a request: {msg:?}"),
        Msg::Block { slot, body } => {
            let header = eth2_messages::phase0::BeaconBlockHeader {
                slot,
                proposer_index: 0,
                parent_root: [0; 32],
                state_root: [0; 32],
                body_root: [body; 32],
            };
            let object = oracle::header_root(slot, 0, [0; 32], [0; 32], [body; 32]);
            let digest =
                oracle::signing_root(object, oracle::domain(0, version_at(slot / 32), GVR));
            let message = eth2_messages::Eth2Message::BlockV2 {
                fork_info: fork_info(),
                block: eth2_messages::BeaconBlockRequest::Electra(header),
            };
            (eth2(&message), Meaning::Block { slot }, digest, vec![])
        }
        Msg::Attestation {
            source,
            target,
            root,
        } => {
            let (message, digest) = attestation(source, target, root);
            (
                eth2(&message),
                Meaning::Attestation { source, target },
                digest,
                vec![],
            )
        }
        Msg::RawBlockCopyingAttestation {
            slot,
            source,
            target,
            root,
        } => {
            let (_, digest) = attestation(source, target, root);
            let m = pb::sign_request::Message::Eth2(pb::Eth2Request {
                form: Some(pb::eth2_request::Form::RootBlock(pb::RootBlock {
                    slot,
                    signing_root: digest.to_vec(),
                })),
                signing_root: Vec::new(),
            });
            let copied = (Meaning::Attestation { source, target }, digest);
            (m, Meaning::Block { slot }, digest, vec![copied])
        }
        Msg::Randao { epoch } => {
            let message = eth2_messages::Eth2Message::RandaoReveal {
                fork_info: fork_info(),
                epoch,
            };
            let object = oracle::uint64_root(epoch);
            let digest = oracle::signing_root(object, oracle::domain(2, version_at(epoch), GVR));
            let meaning = Meaning::Eth2Other {
                kind: "RANDAO_REVEAL",
            };
            (eth2(&message), meaning, digest, vec![])
        }
        Msg::AggregationSlot { slot } => {
            let message = eth2_messages::Eth2Message::AggregationSlot {
                fork_info: fork_info(),
                slot,
            };
            let object = oracle::uint64_root(slot);
            let digest =
                oracle::signing_root(object, oracle::domain(5, version_at(slot / 32), GVR));
            let meaning = Meaning::Eth2Other {
                kind: "AGGREGATION_SLOT",
            };
            (eth2(&message), meaning, digest, vec![])
        }
        Msg::QuorumVote { view, leaf } => {
            let m = espresso(K::QuorumVote(pb::QuorumVote {
                view,
                leaf_commit: vec![leaf; 32],
                epoch: None,
                block_number: None,
            }));
            (
                m,
                esp("quorum-vote", view, 0),
                quorum_vote_digest(view, leaf),
                vec![],
            )
        }
        Msg::DaVote { view, payload } => {
            let m = espresso(K::DaVote(pb::DaVote {
                view,
                payload_commit: vec![payload; 32],
                next_epoch_payload_commit: None,
                epoch: None,
            }));
            let digest = oracle::vote(oracle::da_data([payload; 32]), view);
            (m, esp("da-vote", view, 0), digest, vec![])
        }
        Msg::Timeout { view } => {
            let m = espresso(K::TimeoutVote(pb::TimeoutVote { view, epoch: None }));
            let digest = oracle::vote(oracle::timeout_data(view), view);
            (m, esp("timeout-vote", view, 0), digest, vec![])
        }
        Msg::ViewSync {
            phase,
            round,
            relay,
        } => {
            let m = espresso(K::ViewSyncVote(pb::ViewSyncVote {
                phase: i32::from(phase) + 1,
                round,
                relay,
                epoch: None,
            }));
            let kind = [
                "view-sync-precommit",
                "view-sync-commit",
                "view-sync-finalize",
            ][phase as usize];
            let digest = oracle::vote(oracle::view_sync_data(phase, round, relay), round);
            (m, esp(kind, round, relay), digest, vec![])
        }
        Msg::ProposalCopyingVote {
            view,
            vote_view,
            vote_leaf,
        } => {
            // Every 32-byte field of the proposal holds the digest of a vote.
            let copied_digest = quorum_vote_digest(vote_view, vote_leaf);
            let m = espresso(K::QuorumProposal(pb::QuorumProposal {
                view,
                parent_leaf: copied_digest.to_vec(),
                block_header_commit: copied_digest.to_vec(),
                justify_qc_commit: copied_digest.to_vec(),
                upgrade_certificate_commit: None,
                with_epoch: None,
                layout: pb::LeafLayout::PreEpoch as i32,
            }));
            let copied = (esp("quorum-vote", vote_view, 0), copied_digest);
            let digest = oracle::leaf2(view, copied_digest, copied_digest, copied_digest);
            (m, esp("quorum-proposal", view, 0), digest, vec![copied])
        }
        Msg::DaProposal { view, payload } => {
            // The payload names its view, so a payload is never reused across views.
            let bytes = vec![view as u8, payload, 0xDA];
            let digest = oracle::da_proposal(&bytes);
            let m = espresso(K::DaProposal(pb::DaProposal {
                view,
                encoded_transactions: bytes,
            }));
            (m, esp("da-proposal", view, 0), digest, vec![])
        }
        Msg::Vote2 { view, leaf, epoch } => {
            let m = espresso(K::Vote2(pb::Vote2 {
                view,
                leaf_commit: vec![leaf; 32],
                epoch,
                block_number: 0,
            }));
            let digest = oracle::vote(oracle::vote2_data([leaf; 32], epoch, 0), view);
            (m, esp("vote2", view, epoch), digest, vec![])
        }
        Msg::Timeout3 { view, epoch } => {
            let m = espresso(K::TimeoutVote3(pb::TimeoutVote3 {
                view,
                epoch,
                lock: None,
            }));
            let digest = oracle::vote(oracle::timeout_data3(view, epoch), view);
            (m, esp("timeout-vote3", view, epoch), digest, vec![])
        }
        Msg::ReVote { view, epoch, cert } => {
            let m = espresso(K::RevoteRequest(pb::ReVoteRequest {
                view,
                epoch,
                cert1_commit: vec![cert; 32],
                timeout_cert_commit: None,
            }));
            let digest = oracle::revote(view, epoch, [cert; 32]);
            (m, esp("re-vote-request", view, epoch), digest, vec![])
        }
        Msg::UpgradeVote2 {
            view,
            epoch,
            decide_by,
        } => {
            let m = espresso(K::UpgradeVote2(pb::UpgradeVote2 {
                view,
                old_version: Some(pb::Version { major: 0, minor: 6 }),
                new_version: Some(pb::Version { major: 0, minor: 7 }),
                decide_by,
                new_version_hash: vec![9; 32],
                old_version_last_view: 40,
                new_version_first_view: 50,
                epoch,
            }));
            let data = oracle::upgrade_data2((0, 6), (0, 7), decide_by, &[9; 32], 40, 50, epoch);
            let digest = oracle::vote(data, view);
            (m, esp("upgrade-vote2", view, epoch), digest, vec![])
        }
        Msg::NewProtocolProposalCopyingVote {
            view,
            vote_view,
            vote_leaf,
        } => {
            let copied_digest = quorum_vote_digest(vote_view, vote_leaf);
            let c = copied_digest.to_vec();
            let m = espresso(K::QuorumProposal(pb::QuorumProposal {
                view,
                parent_leaf: c.clone(),
                block_header_commit: c.clone(),
                justify_qc_commit: c.clone(),
                upgrade_certificate_commit: None,
                with_epoch: Some(pb::LeafEpoch {
                    next_epoch_justify_qc_commit: None,
                    next_drb_result: Some(c.clone()),
                    view_change_evidence: Some(
                        pb::leaf_epoch::ViewChangeEvidence::TimeoutCertV3Commit(c),
                    ),
                }),
                layout: pb::LeafLayout::NewProtocol as i32,
            }));
            let copied = (esp("quorum-vote", vote_view, 0), copied_digest);
            let digest = oracle::new_protocol_leaf(view, copied_digest);
            (m, esp("quorum-proposal", view, 0), digest, vec![copied])
        }
    }
}

/// The signing root of support's `eth2_block(slot, body)` request (mainnet, the fork version
/// the request's `fork_info` carries), as the oracle computes it.
pub fn support_block_root(slot: u64, body: u8) -> [u8; 32] {
    // The fork version is an input the request carries (fork_info), not something computed.
    let (_, fork_info) =
        signer_node::client::eth2::newest_fork_info(&eth2_messages::NetworkSpec::mainnet());
    oracle::signing_root(
        oracle::header_root(slot, 0, [0; 32], [0; 32], [body; 32]),
        oracle::domain(0, fork_info.fork.current_version, GVR),
    )
}
