//! A HotShot (Espresso) node's BLS staking key held by a Quorum Signer cluster: every message a
//! HotShot node signs, as a typed call in HotShot's own vocabulary (view, epoch, leaf fields,
//! payload), sent over the cluster's gRPC API with failover across its nodes.
//!
//! A sequencer integrator replaces `BLSPrivKey::sign(&key, bytes)` with the call of the
//! message's kind on a [`RemoteStakingKey`]: the cluster builds the bytes HotShot signs from
//! the typed fields, checks them against its slashing-protection record, commits the record
//! through Raft and only then signs. See the README's "Espresso sequencer integration" section.
//!
//! Owns: the mapping from HotShot's message fields to `signer.v1.EspressoMessage`, and the check
//! of every answer. Must not: decide whether something may be signed (the cluster does), retry
//! a refusal, or link node code (Raft, storage, KMS).
//!
//! To ensure correctness:
//! - every answer is checked before it is returned: the bytes the cluster says it signed must
//!   be the bytes this crate computes itself from the same typed fields (HotShot's layouts, in
//!   `signer-core`), and the signature must verify under the key's public key, so a caller never
//!   forwards a signature over anything but what it asked for;
//! - a refusal (slashing protection, horizon, paused) is returned as [`SignError::Refused`]
//!   with its stable code and is never retried; only "no node can answer now" is retried, with
//!   the same request id (the cluster re-signs an identical message, never a different one).

use signer_client::{pb, ClientError, SignerPool};
use signer_core::protection::espresso::vid::{self, VidCommitment, VidParams, VidVersion};
use signer_core::protection::espresso::{Message, TransactionsDigest};
use signer_core::scheme::bn254;

mod convert;

pub use signer_core::protection::espresso::{
    Commitment, DaData, DrbResult, EpochFields, HexBytes, ProposedLeaf, QuorumData, Request,
    UpgradeData, Version, ViewChangeEvidence, ViewSyncPhase,
};

/// A block payload as HotShot's `vid_commitment(payload, ns_table, total_weight, version)`
/// takes it.
#[derive(Clone, Copy, Debug)]
pub struct VidInput<'a> {
    /// The encoded transactions.
    pub payload: &'a [u8],
    /// The namespace table's bytes.
    pub ns_table: &'a [u8],
    /// The stake table's total (approximate) weight.
    pub total_weight: u32,
    /// The protocol version of the view (selects the VID scheme).
    pub protocol_version: Version,
}

impl VidInput<'_> {
    /// The payload commitment, computed here as the cluster computes it.
    pub fn commitment(&self) -> Result<VidCommitment, SignError> {
        let version =
            VidVersion::for_protocol(self.protocol_version.major, self.protocol_version.minor)
                .map_err(|e| SignError::Input(e.to_string()))?;
        vid::payload_commitment(
            version,
            self.payload,
            self.ns_table,
            &VidParams {
                total_weight: self.total_weight,
            },
        )
        .map_err(|e| SignError::Input(e.to_string()))
    }
}
pub use signer_core::protection::espresso::leaf::LeafLayout;
pub use signer_core::protection::espresso::new_protocol::{
    LockView, NewProtocolLeaf, ReVoteRequest, TimeoutData3, TimeoutEvidence, UpgradeProposalData2,
    Vote2Data,
};
pub use signer_core::scheme::bn254::{PublicKey, Signature};

/// Why a signature was not obtained.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// The cluster refused: slashing protection (`equivocation`, `view_below_watermark`,
    /// `outside_window`, `beyond_view_horizon`, …), or the key is paused. Never retried.
    #[error("refused: {code}: {message}")]
    Refused {
        /// Stable reason code.
        code: String,
        /// The reason in words, naming the conflicting record.
        message: String,
    },
    /// No node could answer within the pool's attempts and deadline, or a node gave another
    /// definitive answer (bad request, unknown key).
    #[error(transparent)]
    Client(ClientError),
    /// The input cannot be signed as given (e.g. a VID payload of a protocol version whose
    /// scheme the signer does not compute); nothing was sent.
    #[error("{0}")]
    Input(String),
    /// The key is not an Espresso key the cluster holds.
    #[error("key {0:?} is not an espresso key of this cluster")]
    UnknownKey(String),
    /// The cluster's answer does not check: other bytes signed, or a signature that does not
    /// verify. Never returned by a correct cluster; the signature is not handed out.
    #[error("the cluster's answer does not check: {0}")]
    BadAnswer(String),
}

impl From<ClientError> for SignError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Refused { code, message } => SignError::Refused { code, message },
            other => SignError::Client(other),
        }
    }
}

/// A HotShot staking key held by the cluster under `key_id`.
pub struct RemoteStakingKey {
    pool: SignerPool,
    key_id: String,
    public_key: PublicKey,
}

impl RemoteStakingKey {
    /// The key `key_id` of the cluster behind `pool` (a [`SignerPool`] lists every node, so a
    /// call fails over to whichever node answers). Reads the public key from the cluster.
    pub async fn new(pool: SignerPool, key_id: &str) -> Result<Self, SignError> {
        let keys = pool.public_keys().await?;
        let info = keys
            .into_iter()
            .find(|k| k.key_id == key_id && k.profile == "espresso")
            .ok_or_else(|| SignError::UnknownKey(key_id.to_owned()))?;
        let public_key = PublicKey::from_bytes(&info.public_key)
            .map_err(|e| SignError::BadAnswer(format!("public key of {key_id:?}: {e}")))?;
        Ok(RemoteStakingKey {
            pool,
            key_id: key_id.to_owned(),
            public_key,
        })
    }

    /// The key's public key (HotShot's `BLSPubKey`; `to_tagged()` gives `BLS_VER_KEY~…`).
    pub fn public_key(&self) -> &PublicKey {
        &self.public_key
    }

    /// `QuorumVote` / `QuorumVote2` in `view` for `data` (`QuorumData{,2}`).
    pub async fn sign_quorum_vote(
        &self,
        view: u64,
        data: &QuorumData,
    ) -> Result<Signature, SignError> {
        self.sign_message(Message::QuorumVote {
            view,
            data: data.clone(),
        })
        .await
    }

    /// `NextEpochQuorumVote2` in `view` for `data` (the same bytes as the quorum vote).
    pub async fn sign_next_epoch_quorum_vote(
        &self,
        view: u64,
        data: &QuorumData,
    ) -> Result<Signature, SignError> {
        self.sign_message(Message::NextEpochQuorumVote {
            view,
            data: data.clone(),
        })
        .await
    }

    /// `DaVote` / `DaVote2` in `view` for `data`.
    pub async fn sign_da_vote(&self, view: u64, data: &DaData) -> Result<Signature, SignError> {
        self.sign_message(Message::DaVote {
            view,
            data: data.clone(),
        })
        .await
    }

    /// `TimeoutVote` / `TimeoutVote2` for `view` (the epoch is carried, not hashed).
    pub async fn sign_timeout_vote(
        &self,
        view: u64,
        epoch: Option<u64>,
    ) -> Result<Signature, SignError> {
        self.sign_message(Message::TimeoutVote { view, epoch })
            .await
    }

    /// A view-sync vote of `phase` for `round` and `relay`.
    pub async fn sign_view_sync_vote(
        &self,
        phase: ViewSyncPhase,
        round: u64,
        relay: u64,
        epoch: Option<u64>,
    ) -> Result<Signature, SignError> {
        self.sign_message(Message::ViewSyncVote {
            phase,
            round,
            relay,
            epoch,
        })
        .await
    }

    /// `UpgradeVote` / `UpgradeVote2` in `view` for `data`.
    pub async fn sign_upgrade_vote(
        &self,
        view: u64,
        data: &UpgradeData,
    ) -> Result<Signature, SignError> {
        self.sign_message(Message::UpgradeVote {
            view,
            data: data.clone(),
        })
        .await
    }

    /// The new protocol's Vote2 in `view` (its Vote1 is [`Self::sign_quorum_vote`] with epoch
    /// and block number set).
    pub async fn sign_vote2(&self, view: u64, data: &Vote2Data) -> Result<Signature, SignError> {
        self.sign_message(Message::Vote2 {
            view,
            data: data.clone(),
        })
        .await
    }

    /// The new protocol's timeout vote (`TimeoutData3`, from `TIMEOUT_EPOCH_VERSION` on).
    pub async fn sign_timeout_vote3(&self, data: &TimeoutData3) -> Result<Signature, SignError> {
        self.sign_message(Message::TimeoutVote3(data.clone())).await
    }

    /// The new protocol's upgrade vote in `view` over `UpgradeProposalData2`.
    pub async fn sign_upgrade_vote2(
        &self,
        view: u64,
        data: &UpgradeProposalData2,
    ) -> Result<Signature, SignError> {
        self.sign_message(Message::UpgradeVote2 {
            view,
            data: data.clone(),
        })
        .await
    }

    /// The new protocol's re-vote request (a leader's; signs `ReVote.commit()` itself).
    pub async fn sign_revote_request(
        &self,
        request: &ReVoteRequest,
    ) -> Result<Signature, SignError> {
        self.sign_message(Message::ReVoteRequest(request.clone()))
            .await
    }

    /// A leader's new-protocol proposal: `Leaf2::from(proposal).commit()`, the leaf sent
    /// under [`LeafLayout::NewProtocol`].
    pub async fn sign_new_protocol_proposal(
        &self,
        proposal: &NewProtocolLeaf,
    ) -> Result<Signature, SignError> {
        let leaf = proposal.to_leaf();
        self.sign_quorum_proposal(LeafLayout::NewProtocol, leaf.leaf())
            .await
    }

    /// A leader's upgrade proposal in `view` (signs `data.commit()` itself).
    pub async fn sign_upgrade_proposal(
        &self,
        view: u64,
        data: &UpgradeData,
    ) -> Result<Signature, SignError> {
        self.sign_message(Message::UpgradeProposal {
            view,
            data: data.clone(),
        })
        .await
    }

    /// A leader's quorum proposal whose leaf follows `layout`, the release the view runs
    /// (`LeafLayout::Epochs` for protocol 0.3 to 0.6, `PreEpoch` before, `NewProtocol` after
    /// the new protocol's cutover; `Unversioned` lets `with_epoch` alone decide): the cluster checks that the leaf carries exactly the fields
    /// that layout hashes and computes `Leaf2::commit()` from it. A leaf that does not fit its
    /// layout is refused here, before anything is sent.
    pub async fn sign_quorum_proposal(
        &self,
        layout: LeafLayout,
        leaf: &ProposedLeaf,
    ) -> Result<Signature, SignError> {
        let expected = leaf
            .commit_as(layout)
            .map_err(|e| SignError::Input(e.to_string()))?;
        let message = convert::quorum_proposal_message(layout, leaf);
        self.sign(message, &expected).await
    }

    /// A leader's DA proposal in `view`: the cluster signs `Sha256(encoded_transactions)`.
    pub async fn sign_da_proposal(
        &self,
        view: u64,
        encoded_transactions: &[u8],
    ) -> Result<Signature, SignError> {
        let expected = TransactionsDigest::compute(encoded_transactions).bytes();
        let message = pb::EspressoMessage {
            kind: Some(pb::espresso_message::Kind::DaProposal(pb::DaProposal {
                view,
                encoded_transactions: encoded_transactions.to_vec(),
            })),
        };
        self.sign(message, &expected).await
    }

    /// A VID disperse (leader) or VID share (DA member) in `view`: the cluster computes the
    /// payload commitment from `payload` and signs it; returns it with the signature.
    pub async fn sign_vid_disperse(
        &self,
        view: u64,
        payload: &VidInput<'_>,
    ) -> Result<(VidCommitment, Signature), SignError> {
        let commitment = payload.commitment()?;
        let message = pb::EspressoMessage {
            kind: Some(pb::espresso_message::Kind::VidDisperse(pb::VidDisperse {
                view,
                payload: Some(convert::vid_payload(payload)),
            })),
        };
        let signature = self.sign(message, commitment.signed_bytes()).await?;
        Ok((commitment, signature))
    }

    /// A builder `available_blocks` query for `view`, naming the parent by its payload (the
    /// cluster computes the commitment, so any client may ask).
    pub async fn sign_builder_available_blocks(
        &self,
        view: u64,
        parent: &VidInput<'_>,
    ) -> Result<Signature, SignError> {
        let commitment = parent.commitment()?;
        let message = pb::EspressoMessage {
            kind: Some(pb::espresso_message::Kind::Request(pb::EspressoRequest {
                kind: Some(pb::espresso_request::Kind::BuilderAvailableBlocks(
                    pb::BuilderAvailableBlocks {
                        view,
                        parent: Some(pb::builder_available_blocks::Parent::ParentPayload(
                            convert::vid_payload(parent),
                        )),
                    },
                )),
            })),
        };
        self.sign(message, commitment.signed_bytes()).await
    }

    /// A request or network message (proposal fetch, VID request, catch-up, libp2p / DHT /
    /// Push-CDN authentication, builder queries and claims) with its typed fields. Builder
    /// requests given a raw commitment or block hash are signed only for a client whose grant
    /// trusts raw roots.
    pub async fn sign_request(&self, request: &Request) -> Result<Signature, SignError> {
        let expected = request.signed_bytes(&self.public_key);
        let wire = convert::to_wire(&Message::Request(request.clone()))
            .ok_or_else(|| SignError::Input("a request has a wire form".into()))?;
        self.sign(wire, &expected).await
    }

    /// Sign a typed consensus message whose bytes this crate computes the same way.
    async fn sign_message(&self, message: Message) -> Result<Signature, SignError> {
        let expected = message.signing_message();
        let wire = convert::to_wire(&message)
            .ok_or_else(|| SignError::BadAnswer("a DA proposal needs its payload".into()))?;
        self.sign(wire, &expected).await
    }

    /// Send one request (with failover) and check the answer against `expected`.
    async fn sign(
        &self,
        message: pb::EspressoMessage,
        expected: &[u8],
    ) -> Result<Signature, SignError> {
        let request = pb::SignRequest {
            request_id: String::new(),
            key_id: self.key_id.clone(),
            message: Some(pb::sign_request::Message::Espresso(message)),
        };
        let answer = self.pool.sign(request).await?;
        check_answer(&self.public_key, expected, &answer)
    }
}

/// The signature of `answer`, if it signs exactly `expected` under `public_key`.
fn check_answer(
    public_key: &PublicKey,
    expected: &[u8],
    answer: &pb::SignResponse,
) -> Result<Signature, SignError> {
    if answer.signed_message != expected {
        return Err(SignError::BadAnswer(format!(
            "the cluster signed {} bytes other than the {} this request stands for",
            answer.signed_message.len(),
            expected.len()
        )));
    }
    let signature = bn254::Signature::from_bytes(&answer.signature)
        .map_err(|e| SignError::BadAnswer(format!("signature: {e}")))?;
    if !signature.verify(public_key, expected) {
        return Err(SignError::BadAnswer(
            "the signature does not verify under the key's public key".into(),
        ));
    }
    Ok(signature)
}

#[cfg(test)]
mod tests;
