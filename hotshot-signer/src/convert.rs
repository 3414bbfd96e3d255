//! The typed messages of `signer-core` as `signer.v1.EspressoMessage`, the wire form the
//! cluster converts back (node `service/convert.rs`).
//!
//! Owns: that mapping, field by field. Must not: compute what is signed (the cluster does,
//! and [`super::check_answer`] compares), or carry a digest where the wire wants the data a
//! digest is computed from (a DA proposal or VID disperse travels with its payload:
//! [`to_wire`] has no form for one built from a digest).

use crate::VidInput;
use signer_client::pb;
use signer_core::protection::espresso::leaf::LeafLayout;
use signer_core::protection::espresso::{
    EpochFields, Message, ProposedLeaf, Request, UpgradeData, Version, ViewChangeEvidence,
    ViewSyncPhase,
};

use pb::espresso_message::Kind as K;

/// The wire form of `message`; `None` for a DA proposal (its payload is not in the message).
pub fn to_wire(message: &Message) -> Option<pb::EspressoMessage> {
    let kind = match message {
        Message::QuorumVote { view, data } => K::QuorumVote(quorum_vote(*view, data)),
        Message::NextEpochQuorumVote { view, data } => {
            K::NextEpochQuorumVote(quorum_vote(*view, data))
        }
        Message::DaVote { view, data } => K::DaVote(pb::DaVote {
            view: *view,
            payload_commit: data.payload_commit.0.to_vec(),
            next_epoch_payload_commit: data.next_epoch_payload_commit.map(|c| c.0.to_vec()),
            epoch: data.epoch,
        }),
        Message::TimeoutVote { view, epoch } => K::TimeoutVote(pb::TimeoutVote {
            view: *view,
            epoch: *epoch,
        }),
        Message::ViewSyncVote {
            phase,
            round,
            relay,
            epoch,
        } => K::ViewSyncVote(pb::ViewSyncVote {
            phase: match phase {
                ViewSyncPhase::PreCommit => pb::ViewSyncPhase::PreCommit,
                ViewSyncPhase::Commit => pb::ViewSyncPhase::Commit,
                ViewSyncPhase::Finalize => pb::ViewSyncPhase::Finalize,
            } as i32,
            round: *round,
            relay: *relay,
            epoch: *epoch,
        }),
        Message::UpgradeVote { view, data } => K::UpgradeVote(upgrade(*view, data)),
        Message::UpgradeProposal { view, data } => K::UpgradeProposal(upgrade(*view, data)),
        Message::QuorumProposal(leaf) => {
            K::QuorumProposal(quorum_proposal(LeafLayout::Unversioned, leaf))
        }
        Message::Request(r) => K::Request(request(r)),
        Message::Vote2 { view, data } => K::Vote2(pb::Vote2 {
            view: *view,
            leaf_commit: data.leaf_commit.0.to_vec(),
            epoch: data.epoch,
            block_number: data.block_number,
        }),
        Message::TimeoutVote3(t) => K::TimeoutVote3(pb::TimeoutVote3 {
            view: t.view,
            epoch: t.epoch,
            lock: t.lock.map(|l| pb::LockView {
                epoch: l.epoch,
                view: l.view,
            }),
        }),
        Message::ReVoteRequest(r) => K::RevoteRequest(pb::ReVoteRequest {
            view: r.view,
            epoch: r.epoch,
            cert1_commit: r.cert1_commit.0.to_vec(),
            timeout_cert_commit: r.timeout_cert_commit.map(|c| c.0.to_vec()),
        }),
        Message::UpgradeVote2 { view, data } => K::UpgradeVote2(pb::UpgradeVote2 {
            view: *view,
            old_version: Some(version(data.old_version)),
            new_version: Some(version(data.new_version)),
            decide_by: data.decide_by,
            new_version_hash: data.new_version_hash.0.clone(),
            old_version_last_view: data.old_version_last_view,
            new_version_first_view: data.new_version_first_view,
            epoch: data.epoch,
        }),
        Message::DaProposal { .. } | Message::VidDisperse { .. } => return None,
    };
    Some(pb::EspressoMessage { kind: Some(kind) })
}

/// The wire form of a request message (a builder query's parent given as a commitment).
fn request(r: &Request) -> pb::EspressoRequest {
    use pb::espresso_request::Kind as R;
    let kind = match r {
        Request::ProposalFetch { view } => R::ProposalFetch(pb::ViewRequest { view: *view }),
        Request::Vid { view } => R::Vid(pb::ViewRequest { view: *view }),
        Request::CatchUp { request, timestamp } => R::CatchUp(pb::CatchUpRequest {
            request: request.0.clone(),
            timestamp: *timestamp,
        }),
        Request::Libp2pAuth { peer_id } => R::Libp2pAuth(pb::PeerIdAuth {
            peer_id: peer_id.0.clone(),
        }),
        Request::DhtRecord { value } => R::DhtRecord(pb::PeerIdAuth {
            peer_id: value.0.clone(),
        }),
        Request::PushCdnAuth { timestamp } => R::PushCdnAuth(pb::PushCdnAuth {
            timestamp: *timestamp,
        }),
        Request::BuilderAvailableBlocks {
            parent_commitment,
            view,
        } => R::BuilderAvailableBlocks(pb::BuilderAvailableBlocks {
            view: *view,
            parent: Some(pb::builder_available_blocks::Parent::ParentCommitment(
                parent_commitment.0.to_vec(),
            )),
        }),
        Request::BuilderClaim { block_hash, view } => R::BuilderClaim(pb::BuilderClaim {
            view: *view,
            block_hash: block_hash.0.to_vec(),
        }),
    };
    pb::EspressoRequest { kind: Some(kind) }
}

/// The wire form of a payload for a VID commitment.
pub fn vid_payload(payload: &VidInput<'_>) -> pb::VidPayload {
    pb::VidPayload {
        payload: payload.payload.to_vec(),
        ns_table: payload.ns_table.to_vec(),
        total_weight: payload.total_weight,
        protocol_version: Some(version(payload.protocol_version)),
    }
}

fn quorum_vote(view: u64, data: &signer_core::protection::espresso::QuorumData) -> pb::QuorumVote {
    pb::QuorumVote {
        view,
        leaf_commit: data.leaf_commit.0.to_vec(),
        epoch: data.epoch,
        block_number: data.block_number,
    }
}

fn version(v: Version) -> pb::Version {
    pb::Version {
        major: u32::from(v.major),
        minor: u32::from(v.minor),
    }
}

fn upgrade(view: u64, data: &UpgradeData) -> pb::UpgradeVote {
    match data {
        UpgradeData::V1 {
            old_version,
            new_version,
            decide_by,
            new_version_hash,
            old_version_last_view,
            new_version_first_view,
        } => pb::UpgradeVote {
            view,
            old_version: Some(version(*old_version)),
            new_version: Some(version(*new_version)),
            new_version_hash: new_version_hash.0.clone(),
            decide_by: Some(*decide_by),
            new_version_first_view: Some(*new_version_first_view),
            old_version_last_view: Some(*old_version_last_view),
            epoch: None,
            v2: false,
        },
        UpgradeData::V2 {
            old_version,
            new_version,
            hash,
            epoch,
        } => pb::UpgradeVote {
            view,
            old_version: Some(version(*old_version)),
            new_version: Some(version(*new_version)),
            new_version_hash: hash.0.clone(),
            decide_by: None,
            new_version_first_view: None,
            old_version_last_view: None,
            epoch: *epoch,
            v2: true,
        },
    }
}

/// The wire form of a quorum proposal whose leaf follows `layout`.
pub fn quorum_proposal_message(layout: LeafLayout, leaf: &ProposedLeaf) -> pb::EspressoMessage {
    pb::EspressoMessage {
        kind: Some(K::QuorumProposal(quorum_proposal(layout, leaf))),
    }
}

fn quorum_proposal(layout: LeafLayout, leaf: &ProposedLeaf) -> pb::QuorumProposal {
    let layout = match layout {
        LeafLayout::Unversioned => pb::LeafLayout::Unspecified,
        LeafLayout::PreEpoch => pb::LeafLayout::PreEpoch,
        LeafLayout::EpochsWithoutEvidence => pb::LeafLayout::EpochsWithoutEvidence,
        LeafLayout::Epochs => pb::LeafLayout::Epochs,
        LeafLayout::NewProtocol => pb::LeafLayout::NewProtocol,
    };
    pb::QuorumProposal {
        layout: layout as i32,
        view: leaf.view,
        parent_leaf: leaf.parent_leaf.0.to_vec(),
        block_header_commit: leaf.block_header_commit.0.to_vec(),
        justify_qc_commit: leaf.justify_qc_commit.0.to_vec(),
        upgrade_certificate_commit: leaf.upgrade_certificate_commit.map(|c| c.0.to_vec()),
        with_epoch: leaf.with_epoch.as_ref().map(leaf_epoch),
    }
}

fn leaf_epoch(e: &EpochFields) -> pb::LeafEpoch {
    use pb::leaf_epoch::ViewChangeEvidence as E;
    pb::LeafEpoch {
        next_epoch_justify_qc_commit: e.next_epoch_justify_qc_commit.map(|c| c.0.to_vec()),
        next_drb_result: e.next_drb_result.map(|c| c.0.to_vec()),
        view_change_evidence: e.view_change_evidence.map(|v| match v {
            ViewChangeEvidence::TimeoutCert(c) => E::TimeoutCertCommit(c.0.to_vec()),
            ViewChangeEvidence::ViewSyncCert(c) => E::ViewSyncCertCommit(c.0.to_vec()),
            ViewChangeEvidence::TimeoutCertV3(c) => E::TimeoutCertV3Commit(c.0.to_vec()),
        }),
    }
}
