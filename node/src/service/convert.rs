//! Wire ↔ domain conversion at the service boundary, and the one place sign-path errors
//! become gRPC statuses.
//!
//! Owns: the typed [`SignRequest`] and its one conversion from `pb::SignRequest`
//! ([`TryFrom`], rejecting missing and malformed fields with [`SignError::Invalid`], which
//! names the field), building the [`Intent`] from a typed request for a key ([`intent`]), the
//! typed answer's wire form ([`Signed`] → `pb::SignResponse`, one batch item), and the mapping
//! of [`SignError`] to `tonic::Status` ([`status`]: code, message, and the `signer.v1.Refusal`
//! detail of a refusal). Must not: decide or sign anything.
//!
//! To ensure correctness:
//! - a request is converted once, on the node the client called; a follower forwards the
//!   typed request, and the leader builds the intent from it under its own view of the key,
//!   the network and the client's grant (an eth2 request keeps its form, typed or raw root);
//! - a typed request holds no digest: the node that builds the intent computes every signed
//!   byte string itself (a DA proposal travels with its payload; an Espresso message holding
//!   a DA digest is refused);
//! - a refusal is FAILED_PRECONDITION with a `signer.v1.Refusal` detail whose code is the
//!   stable reason code (what `signer-client` decodes); a batch item carries the same code,
//!   message and detail that Sign would have returned;
//! - [`SignError::code`] is the only table of gRPC codes: the status and the metric's reason
//!   label both read it.

use super::authn::AuthnError;
use super::signing::{key_mismatch_reason, SignError, Signed, PAUSED_REASON};
use crate::bytes::FixedBytes;
use crate::keyring::LoadedKey;
use crate::pb;
use crate::protection::espresso::leaf::{
    EpochFields, LeafLayout, ProposedLeaf, ViewChangeEvidence,
};
use crate::protection::espresso::message::{
    Commitment, DaData, HexBytes, Message, QuorumData, UpgradeData, Version, ViewSyncPhase,
};
use crate::protection::espresso::new_protocol::{
    LockView, ReVoteRequest, TimeoutData3, UpgradeProposalData2, Vote2Data,
};
use crate::protection::espresso::request::is_vid_request_preimage;
use crate::protection::espresso::vid::{self, VidCommitment, VidParams, VidVersion};
use crate::protection::espresso::{EspressoIntent, Request};
use crate::protection::ethereum::{Eth2Intent, Root};
use crate::protection::{Intent, Profile};
use crate::replica::ProposeError;
use eth2_messages::{Eth2Message, NetworkSpec};
use prost::Message as _;
use serde::{Deserialize, Serialize};
use tonic::{Code, Status};

/// What the sign path needs to know about a key before it holds the secret: its id, profile
/// and public key (from the replicated registry, or from a key file).
#[derive(Clone, Debug)]
pub struct KeyIdentity {
    /// Key id.
    pub key_id: String,
    /// Profile.
    pub profile: Profile,
    /// Public key bytes.
    pub public_key: Vec<u8>,
    /// The registry record is disabled or deleted. The request is still proposed, so that
    /// the state machine decides `key_inactive` and the audit log records the attempt; no
    /// secret is needed because nothing is signed.
    pub inactive: bool,
}

impl From<&LoadedKey> for KeyIdentity {
    fn from(k: &LoadedKey) -> Self {
        KeyIdentity {
            key_id: k.key_id.clone(),
            profile: k.profile,
            public_key: k.public_key.clone(),
            inactive: false,
        }
    }
}

/// Longest accepted `request_id`.
pub const MAX_REQUEST_ID: usize = 64;
/// Longest accepted `key_id`.
pub const MAX_KEY_ID: usize = 128;

fn invalid(field: &str, problem: impl std::fmt::Display) -> SignError {
    SignError::Invalid {
        field: field.to_owned(),
        reason: problem.to_string(),
    }
}

fn fixed<const N: usize>(bytes: &[u8], field: &str) -> Result<FixedBytes<N>, SignError> {
    FixedBytes::<N>::from_slice(bytes).map_err(|e| invalid(field, e))
}

fn required<'a, T>(v: &'a Option<T>, field: &str) -> Result<&'a T, SignError> {
    v.as_ref().ok_or_else(|| invalid(field, "missing"))
}

/// A sign request as the node handles it: converted once, where a client's request enters
/// ([`TryFrom<pb::SignRequest>`]), and forwarded in this form to the leader (in the binary
/// format, inside a [`super::signing::ForwardedSign`]). Typed, but not yet an [`Intent`]: the
/// intent depends on the key, the cluster's network and the client's grant, so every node
/// that decides builds it itself ([`intent`]); an eth2 request keeps its form (typed message
/// or raw root) so that the leader checks the grant's trust in raw roots again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignRequest {
    /// Client-chosen id, at most [`MAX_REQUEST_ID`] bytes; empty when the client gave none.
    pub request_id: String,
    /// The key's cluster-wide id, 1 to [`MAX_KEY_ID`] bytes.
    pub key_id: String,
    /// What to sign.
    pub message: RequestMessage,
}

/// The message of a [`SignRequest`]; its variant is the request's profile.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RequestMessage {
    /// An eth2 message.
    Eth2(Eth2Request),
    /// An Espresso message other than a DA proposal.
    Espresso(Message),
    /// An Espresso DA proposal, with its payload: every node that builds the intent hashes
    /// the payload itself, so no node signs a digest another node computed (a DA proposal's
    /// signed bytes are that digest alone).
    EspressoDaProposal {
        /// View of the proposal.
        view: u64,
        /// The encoded transactions.
        #[serde(with = "crate::bytes::hex_or_raw")]
        encoded_transactions: Vec<u8>,
    },
    /// An Espresso VID disperse, with its payload: like a DA proposal's, its commitment is
    /// computed by every node that builds the intent.
    EspressoVidDisperse {
        /// View of the disperse.
        view: u64,
        /// The payload.
        payload: VidPayload,
    },
    /// An Espresso builder `available_blocks` query with the parent payload, whose commitment
    /// every node that builds the intent computes.
    EspressoBuilderParent {
        /// View the block is for.
        view: u64,
        /// The parent block's payload.
        parent: VidPayload,
    },
}

/// A block payload as HotShot's `vid_commitment` takes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VidPayload {
    /// The VID scheme of the view's protocol version.
    pub version: VidVersion,
    /// The total weight.
    pub params: VidParams,
    /// The encoded transactions.
    #[serde(with = "crate::bytes::hex_or_raw")]
    pub payload: Vec<u8>,
    /// The namespace table.
    #[serde(with = "crate::bytes::hex_or_raw")]
    pub ns_table: Vec<u8>,
}

impl VidPayload {
    fn from_wire(p: &Option<pb::VidPayload>, path: &str) -> Result<Self, SignError> {
        let p = required(p, path)?;
        let v = version(&p.protocol_version, &format!("{path}.protocol_version"))?;
        let version = VidVersion::for_protocol(v.major, v.minor)
            .map_err(|e| invalid(&format!("{path}.protocol_version"), e))?;
        if p.payload.len() > vid::MAX_PAYLOAD_BYTES {
            return Err(invalid(
                &format!("{path}.payload"),
                format!(
                    "{} bytes, more than the {} a block may hold",
                    p.payload.len(),
                    vid::MAX_PAYLOAD_BYTES
                ),
            ));
        }
        Ok(VidPayload {
            version,
            params: VidParams {
                total_weight: p.total_weight,
            },
            payload: p.payload.clone(),
            ns_table: p.ns_table.clone(),
        })
    }

    /// HotShot's payload commitment of this payload (the signer's own computation).
    pub fn commitment(&self, path: &str) -> Result<VidCommitment, SignError> {
        vid::payload_commitment(self.version, &self.payload, &self.ns_table, &self.params)
            .map_err(|e| invalid(path, e))
    }
}

impl RequestMessage {
    /// Whether building this request's intent computes a VID commitment (up to a couple of
    /// seconds of CPU for the largest payloads: done off the async runtime).
    pub fn computes_vid(&self) -> bool {
        matches!(
            self,
            RequestMessage::EspressoVidDisperse { .. }
                | RequestMessage::EspressoBuilderParent { .. }
        )
    }
}

/// An eth2 request: a typed message (the signer computes its root), or a raw root.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Eth2Request {
    /// A typed message, and the root the client expects the signer to compute, if it sent one.
    Typed {
        /// The message.
        #[serde(with = "eth2_message_bytes")]
        message: Eth2Message,
        /// The signing root the client expects.
        expected_root: Option<Root>,
    },
    /// A block's signing root, computed by the client (only for a grant with `raw_roots`).
    RawBlock {
        /// The block's slot.
        slot: u64,
        /// The client's signing root.
        signing_root: Root,
    },
    /// An attestation's signing root, computed by the client (only for a grant with
    /// `raw_roots`).
    RawAttestation {
        /// FFG source epoch.
        source_epoch: u64,
        /// FFG target epoch.
        target_epoch: u64,
        /// The client's signing root.
        signing_root: Root,
    },
}

/// An eth2 message travels in its own versioned binary form ([`Eth2Message::to_bytes`]),
/// which decodes only canonical encodings.
mod eth2_message_bytes {
    use eth2_messages::Eth2Message;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(m: &Eth2Message, s: S) -> Result<S::Ok, S::Error> {
        crate::bytes::hex_or_raw::serialize(&m.to_bytes(), s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Eth2Message, D::Error> {
        let bytes = crate::bytes::hex_or_raw::deserialize(d)?;
        Eth2Message::from_bytes(&bytes).map_err(serde::de::Error::custom)
    }
}

impl RequestMessage {
    /// The profile this message belongs to.
    pub fn profile(&self) -> Profile {
        match self {
            RequestMessage::Eth2(_) => Profile::Eth2,
            RequestMessage::Espresso(_)
            | RequestMessage::EspressoDaProposal { .. }
            | RequestMessage::EspressoVidDisperse { .. }
            | RequestMessage::EspressoBuilderParent { .. } => Profile::Espresso,
        }
    }
}

impl SignRequest {
    /// The request's profile.
    pub fn profile(&self) -> Profile {
        self.message.profile()
    }

    /// The ids are within bounds (the leader checks a forwarded request again).
    pub fn check_ids(&self) -> Result<(), SignError> {
        check_ids(&self.request_id, &self.key_id)
    }
}

/// Validate the fields common to every request: ids within bounds.
fn check_ids(request_id: &str, key_id: &str) -> Result<(), SignError> {
    if request_id.len() > MAX_REQUEST_ID {
        return Err(invalid(
            "request_id",
            format!("longer than {MAX_REQUEST_ID} bytes"),
        ));
    }
    if key_id.is_empty() {
        return Err(invalid("key_id", "missing"));
    }
    if key_id.len() > MAX_KEY_ID {
        return Err(invalid("key_id", format!("longer than {MAX_KEY_ID} bytes")));
    }
    Ok(())
}

/// The checks that come before the client's grant is looked at: ids within bounds, and a
/// message (whose kind is the request's profile). The rest of the request is converted after
/// the grant and the key were checked, so that a client learns nothing about keys it may not
/// use, and every request it may not make is recorded as a denial.
pub fn precheck(req: &pb::SignRequest) -> Result<Profile, SignError> {
    check_ids(&req.request_id, &req.key_id)?;
    request_profile(req)
}

/// The profile a request's message belongs to.
pub fn request_profile(req: &pb::SignRequest) -> Result<Profile, SignError> {
    use pb::sign_request::Message as M;
    match req.message {
        Some(M::Eth2(_)) => Ok(Profile::Eth2),
        Some(M::Espresso(_)) => Ok(Profile::Espresso),
        None => Err(invalid("message", "missing")),
    }
}

/// The one conversion of a client's request: every field checked and typed (INVALID_ARGUMENT
/// naming the first bad field); the Espresso DA payload hashed.
impl TryFrom<pb::SignRequest> for SignRequest {
    type Error = SignError;

    fn try_from(req: pb::SignRequest) -> Result<SignRequest, SignError> {
        use pb::sign_request::Message as M;
        precheck(&req)?;
        let message = match &req.message {
            Some(M::Eth2(r)) => RequestMessage::Eth2(eth2_request(r)?),
            Some(M::Espresso(pb::EspressoMessage {
                kind: Some(pb::espresso_message::Kind::DaProposal(p)),
            })) => RequestMessage::EspressoDaProposal {
                view: p.view,
                encoded_transactions: p.encoded_transactions.clone(),
            },
            Some(M::Espresso(pb::EspressoMessage {
                kind: Some(pb::espresso_message::Kind::VidDisperse(d)),
            })) => RequestMessage::EspressoVidDisperse {
                view: d.view,
                payload: VidPayload::from_wire(&d.payload, "espresso.vid_disperse.payload")?,
            },
            Some(M::Espresso(pb::EspressoMessage {
                kind:
                    Some(pb::espresso_message::Kind::Request(pb::EspressoRequest {
                        kind:
                            Some(pb::espresso_request::Kind::BuilderAvailableBlocks(
                                pb::BuilderAvailableBlocks {
                                    view,
                                    parent:
                                        Some(pb::builder_available_blocks::Parent::ParentPayload(p)),
                                },
                            )),
                    })),
            })) => RequestMessage::EspressoBuilderParent {
                view: *view,
                parent: VidPayload::from_wire(
                    &Some(p.clone()),
                    "espresso.request.builder_available_blocks.parent_payload",
                )?,
            },
            Some(M::Espresso(m)) => RequestMessage::Espresso(espresso_message(m)?),
            None => return Err(invalid("message", "missing")),
        };
        Ok(SignRequest {
            request_id: req.request_id,
            key_id: req.key_id,
            message,
        })
    }
}

/// What converting an eth2 request needs besides the request: the cluster's network (fork
/// schedule and genesis validators root) and whether the client's grant trusts raw roots.
#[derive(Clone, Copy, Debug)]
pub struct Eth2Context<'a> {
    /// The network this cluster signs for.
    pub network: &'a NetworkSpec,
    /// The client may send signing roots it computed itself (`raw_roots` in its grant).
    pub raw_roots: bool,
}

/// A request of `profile` may be made with `key` only if the key is of that profile.
pub fn check_profile(profile: Profile, key: &KeyIdentity) -> Result<(), SignError> {
    if profile == key.profile {
        return Ok(());
    }
    Err(invalid(
        "message",
        format!(
            "key {:?} is a {} key; this is a {} request",
            key.key_id, key.profile, profile
        ),
    ))
}

/// Turn a request for `key` into the typed intent the protection rules see. Every digest is
/// computed here from typed fields; eth2 messages for another network are refused, and raw
/// eth2 roots are accepted only when `eth2.raw_roots` says the client's grant trusts them.
pub fn intent(
    req: &SignRequest,
    key: &KeyIdentity,
    eth2: Eth2Context<'_>,
) -> Result<Intent, SignError> {
    check_profile(req.profile(), key)?;
    match &req.message {
        RequestMessage::Eth2(r) => {
            let pubkey = fixed::<48>(&key.public_key, "key public key")?;
            eth2_intent(r, pubkey, eth2).map(Intent::Eth2)
        }
        // Only a hostile peer sends a digest in place of the payload.
        RequestMessage::Espresso(Message::DaProposal { .. }) => Err(invalid(
            "espresso.da_proposal",
            "a request carries the encoded transactions, never their digest",
        )),
        RequestMessage::Espresso(Message::VidDisperse { .. }) => Err(invalid(
            "espresso.vid_disperse",
            "a request carries the payload, never its commitment",
        )),
        RequestMessage::Espresso(Message::Request(r)) => {
            r.validate()
                .map_err(|e| invalid(&format!("espresso.request.{}", r.name()), e))?;
            // A builder's hash or a parent commitment given as is: any 32 bytes, so any vote.
            if r.requires_trusted_client() && !eth2.raw_roots {
                return Err(SignError::UntrustedBuilderRequest(
                    r.name().replace('-', "_"),
                ));
            }
            espresso_intent(key, Message::Request(r.clone()))
        }
        RequestMessage::Espresso(m) => espresso_intent(key, m.clone()),
        RequestMessage::EspressoDaProposal {
            view,
            encoded_transactions,
        } => {
            // A VID request's signature is SHA-256 of exactly such bytes: signed as a DA
            // proposal, they would give this key's VID request signature (and the other way
            // round). No real block payload has that shape.
            if is_vid_request_preimage(encoded_transactions) {
                return Err(invalid(
                    "espresso.da_proposal.encoded_transactions",
                    "these bytes are the encoding of a VID request, not a block payload",
                ));
            }
            espresso_intent(key, Message::da_proposal(*view, encoded_transactions))
        }
        RequestMessage::EspressoVidDisperse { view, payload } => espresso_intent(
            key,
            Message::VidDisperse {
                view: *view,
                computed_payload_commitment: payload.commitment("espresso.vid_disperse.payload")?,
            },
        ),
        RequestMessage::EspressoBuilderParent { view, parent } => {
            let commitment =
                parent.commitment("espresso.request.builder_available_blocks.parent_payload")?;
            espresso_intent(
                key,
                Message::Request(Request::BuilderAvailableBlocks {
                    parent_commitment: FixedBytes(commitment.to_bytes()),
                    view: *view,
                }),
            )
        }
    }
}

/// A timestamped Espresso request (catch-up, Push-CDN authentication) against this node's
/// clock, `now_unix_secs`, which is read only for such a request: refused when its timestamp is
/// too far ahead ([`crate::protection::espresso::request::MAX_TIMESTAMP_AHEAD_SECS`]). Kept
/// apart from [`intent`], which depends on the request alone.
pub fn check_request_clock(
    req: &SignRequest,
    now_unix_secs: impl FnOnce() -> Result<u64, SignError>,
) -> Result<(), SignError> {
    match &req.message {
        RequestMessage::Espresso(Message::Request(
            r @ (Request::CatchUp { .. } | Request::PushCdnAuth { .. }),
        )) => r
            .check_timestamp(now_unix_secs()?)
            .map_err(|e| invalid(&format!("espresso.request.{}.timestamp", r.name()), e)),
        _ => Ok(()),
    }
}

/// The Espresso intent of `message` for `key`.
fn espresso_intent(key: &KeyIdentity, message: Message) -> Result<Intent, SignError> {
    Ok(Intent::Espresso(EspressoIntent {
        public_key: fixed(&key.public_key, "key public key")?,
        message,
    }))
}

/// Parse an eth2 request: the typed message, or a raw root with its slot or epochs.
fn eth2_request(r: &pb::Eth2Request) -> Result<Eth2Request, SignError> {
    use pb::eth2_request::Form;
    Ok(match required(&r.form, "eth2.form")? {
        Form::Typed(bytes) => Eth2Request::Typed {
            message: Eth2Message::from_bytes(bytes).map_err(|e| invalid("eth2.typed", e))?,
            expected_root: match r.signing_root.is_empty() {
                true => None,
                false => Some(fixed(&r.signing_root, "eth2.signing_root")?),
            },
        },
        Form::RootBlock(b) => Eth2Request::RawBlock {
            slot: b.slot,
            signing_root: fixed(&b.signing_root, "eth2.root_block.signing_root")?,
        },
        Form::RootAttestation(a) => Eth2Request::RawAttestation {
            source_epoch: a.source_epoch,
            target_epoch: a.target_epoch,
            signing_root: fixed(&a.signing_root, "eth2.root_attestation.signing_root")?,
        },
    })
}

/// An eth2 intent: from the typed message (the signer computes its root, which must be the
/// one the client expects, if it named one), or from a raw root for a client whose grant
/// trusts it.
fn eth2_intent(
    r: &Eth2Request,
    pubkey: FixedBytes<48>,
    eth2: Eth2Context<'_>,
) -> Result<Eth2Intent, SignError> {
    match r {
        Eth2Request::Typed {
            message,
            expected_root,
        } => {
            let intent = Eth2Intent::from_message(pubkey, message, eth2.network)
                .map_err(|e| invalid("eth2.typed", e))?;
            if let Some(sent) = expected_root {
                if sent.0 != intent.signing_root() {
                    return Err(invalid(
                        "eth2.signing_root",
                        format!(
                            "the signer computed {} for this {} message, not {sent}",
                            FixedBytes(intent.signing_root()),
                            message.kind()
                        ),
                    ));
                }
            }
            Ok(intent)
        }
        Eth2Request::RawBlock { slot, signing_root } if eth2.raw_roots => Ok(Eth2Intent::Block {
            pubkey,
            slot: *slot,
            signing_root: *signing_root,
        }),
        Eth2Request::RawAttestation {
            source_epoch,
            target_epoch,
            signing_root,
        } if eth2.raw_roots => Ok(Eth2Intent::Attestation {
            pubkey,
            source_epoch: *source_epoch,
            target_epoch: *target_epoch,
            signing_root: *signing_root,
        }),
        Eth2Request::RawBlock { .. } | Eth2Request::RawAttestation { .. } => {
            Err(SignError::RawRootsRefused)
        }
    }
}

fn version(v: &Option<pb::Version>, path: &str) -> Result<Version, SignError> {
    let v = required(v, path)?;
    let narrow = |x: u32, f: &str| {
        u16::try_from(x).map_err(|_| invalid(&format!("{path}.{f}"), "does not fit in 16 bits"))
    };
    Ok(Version {
        major: narrow(v.major, "major")?,
        minor: narrow(v.minor, "minor")?,
    })
}

/// The upgrade data of an upgrade vote or proposal: `UpgradeData2` when `v2` is set, else
/// `UpgradeProposalData` (whose view fields are then required).
fn upgrade(u: &pb::UpgradeVote, path: &str) -> Result<UpgradeData, SignError> {
    let old_version = version(&u.old_version, &format!("{path}.old_version"))?;
    let new_version = version(&u.new_version, &format!("{path}.new_version"))?;
    let hash = version_hash(&u.new_version_hash, &format!("{path}.new_version_hash"))?;
    if u.v2 {
        return Ok(UpgradeData::V2 {
            old_version,
            new_version,
            hash,
            epoch: u.epoch,
        });
    }
    let need = |v: Option<u64>, f: &str| {
        v.ok_or_else(|| invalid(&format!("{path}.{f}"), "missing (required for v1)"))
    };
    Ok(UpgradeData::V1 {
        old_version,
        new_version,
        decide_by: need(u.decide_by, "decide_by")?,
        new_version_hash: hash,
        old_version_last_view: need(u.old_version_last_view, "old_version_last_view")?,
        new_version_first_view: need(u.new_version_first_view, "new_version_first_view")?,
    })
}

/// Longest upgrade `new_version_hash` accepted. HotShot's is a hash (32 bytes in practice); the
/// bound keeps a client from putting megabytes into every replica's log with one vote.
pub const MAX_VERSION_HASH_BYTES: usize = 1024;

/// An upgrade's `new_version_hash`, refused above [`MAX_VERSION_HASH_BYTES`].
fn version_hash(bytes: &[u8], path: &str) -> Result<HexBytes, SignError> {
    if bytes.len() > MAX_VERSION_HASH_BYTES {
        return Err(invalid(
            path,
            format!(
                "{} bytes, at most {MAX_VERSION_HASH_BYTES} accepted",
                bytes.len()
            ),
        ));
    }
    Ok(HexBytes(bytes.to_vec()))
}

/// Parse the typed Espresso message.
pub fn espresso_message(m: &pb::EspressoMessage) -> Result<Message, SignError> {
    use pb::espresso_message::Kind as K;
    let quorum = |q: &pb::QuorumVote, path: &str| -> Result<(u64, QuorumData), SignError> {
        Ok((
            q.view,
            QuorumData {
                leaf_commit: fixed(&q.leaf_commit, &format!("{path}.leaf_commit"))?,
                epoch: q.epoch,
                block_number: q.block_number,
            },
        ))
    };
    Ok(match required(&m.kind, "espresso.kind")? {
        K::QuorumVote(q) => {
            let (view, data) = quorum(q, "espresso.quorum_vote")?;
            Message::QuorumVote { view, data }
        }
        K::NextEpochQuorumVote(q) => {
            let (view, data) = quorum(q, "espresso.next_epoch_quorum_vote")?;
            Message::NextEpochQuorumVote { view, data }
        }
        K::DaVote(d) => Message::DaVote {
            view: d.view,
            data: DaData {
                payload_commit: fixed(&d.payload_commit, "espresso.da_vote.payload_commit")?,
                next_epoch_payload_commit: match &d.next_epoch_payload_commit {
                    Some(b) => Some(fixed(b, "espresso.da_vote.next_epoch_payload_commit")?),
                    None => None,
                },
                epoch: d.epoch,
            },
        },
        K::TimeoutVote(t) => Message::TimeoutVote {
            view: t.view,
            epoch: t.epoch,
        },
        K::ViewSyncVote(v) => Message::ViewSyncVote {
            phase: match pb::ViewSyncPhase::try_from(v.phase) {
                Ok(pb::ViewSyncPhase::PreCommit) => ViewSyncPhase::PreCommit,
                Ok(pb::ViewSyncPhase::Commit) => ViewSyncPhase::Commit,
                Ok(pb::ViewSyncPhase::Finalize) => ViewSyncPhase::Finalize,
                _ => {
                    return Err(invalid(
                        "espresso.view_sync_vote.phase",
                        "must be PRE_COMMIT, COMMIT or FINALIZE",
                    ))
                }
            },
            round: v.round,
            relay: v.relay,
            epoch: v.epoch,
        },
        K::UpgradeVote(u) => Message::UpgradeVote {
            view: u.view,
            data: upgrade(u, "espresso.upgrade_vote")?,
        },
        K::UpgradeProposal(u) => Message::UpgradeProposal {
            view: u.view,
            data: upgrade(u, "espresso.upgrade_proposal")?,
        },
        K::QuorumProposal(p) => Message::quorum_proposal(quorum_proposal(p)?),
        // The signer hashes the payload here; only the digest travels on.
        K::DaProposal(p) => Message::da_proposal(p.view, &p.encoded_transactions),
        K::VidDisperse(d) => Message::VidDisperse {
            view: d.view,
            computed_payload_commitment: VidPayload::from_wire(
                &d.payload,
                "espresso.vid_disperse.payload",
            )?
            .commitment("espresso.vid_disperse.payload")?,
        },
        K::Request(r) => Message::Request(espresso_request(r)?),
        K::Vote2(v) => Message::Vote2 {
            view: v.view,
            data: Vote2Data {
                leaf_commit: fixed(&v.leaf_commit, "espresso.vote2.leaf_commit")?,
                epoch: v.epoch,
                block_number: v.block_number,
            },
        },
        K::TimeoutVote3(t) => Message::TimeoutVote3(TimeoutData3 {
            view: t.view,
            epoch: t.epoch,
            lock: t.lock.as_ref().map(|l| LockView {
                epoch: l.epoch,
                view: l.view,
            }),
        }),
        K::RevoteRequest(r) => {
            const PATH: &str = "espresso.revote_request";
            Message::ReVoteRequest(ReVoteRequest {
                view: r.view,
                epoch: r.epoch,
                cert1_commit: fixed(&r.cert1_commit, &format!("{PATH}.cert1_commit"))?,
                timeout_cert_commit: r
                    .timeout_cert_commit
                    .as_deref()
                    .map(|b| fixed(b, &format!("{PATH}.timeout_cert_commit")))
                    .transpose()?,
            })
        }
        K::UpgradeVote2(u) => {
            const PATH: &str = "espresso.upgrade_vote2";
            Message::UpgradeVote2 {
                view: u.view,
                data: UpgradeProposalData2 {
                    old_version: version(&u.old_version, &format!("{PATH}.old_version"))?,
                    new_version: version(&u.new_version, &format!("{PATH}.new_version"))?,
                    decide_by: u.decide_by,
                    new_version_hash: version_hash(
                        &u.new_version_hash,
                        &format!("{PATH}.new_version_hash"),
                    )?,
                    old_version_last_view: u.old_version_last_view,
                    new_version_first_view: u.new_version_first_view,
                    epoch: u.epoch,
                },
            }
        }
    })
}

/// Parse a request or network message. A builder query that names its parent by payload is
/// converted with the payload ([`RequestMessage::EspressoBuilderParent`]), not here.
fn espresso_request(r: &pb::EspressoRequest) -> Result<Request, SignError> {
    use pb::espresso_request::Kind as R;
    const PATH: &str = "espresso.request";
    Ok(match required(&r.kind, &format!("{PATH}.kind"))? {
        R::ProposalFetch(v) => Request::ProposalFetch { view: v.view },
        R::Vid(v) => Request::Vid { view: v.view },
        R::CatchUp(c) => Request::CatchUp {
            request: HexBytes(c.request.clone()),
            timestamp: c.timestamp,
        },
        R::Libp2pAuth(p) => Request::Libp2pAuth {
            peer_id: HexBytes(p.peer_id.clone()),
        },
        R::DhtRecord(p) => Request::DhtRecord {
            value: HexBytes(p.peer_id.clone()),
        },
        R::PushCdnAuth(p) => Request::PushCdnAuth {
            timestamp: p.timestamp,
        },
        R::BuilderAvailableBlocks(b) => match &b.parent {
            Some(pb::builder_available_blocks::Parent::ParentCommitment(c)) => {
                Request::BuilderAvailableBlocks {
                    parent_commitment: fixed(
                        c,
                        &format!("{PATH}.builder_available_blocks.parent_commitment"),
                    )?,
                    view: b.view,
                }
            }
            Some(pb::builder_available_blocks::Parent::ParentPayload(_)) => {
                return Err(invalid(
                    &format!("{PATH}.builder_available_blocks.parent_payload"),
                    "converted with its payload (an internal path)",
                ))
            }
            None => {
                return Err(invalid(
                    &format!("{PATH}.builder_available_blocks.parent"),
                    "missing",
                ))
            }
        },
        R::BuilderClaim(c) => Request::BuilderClaim {
            block_hash: fixed(&c.block_hash, &format!("{PATH}.builder_claim.block_hash"))?,
            view: c.view,
        },
    })
}

/// The typed leaf of a quorum proposal: every commitment exactly 32 bytes, and the epoch-only
/// fields only inside `with_epoch`.
fn quorum_proposal(p: &pb::QuorumProposal) -> Result<ProposedLeaf, SignError> {
    const PATH: &str = "espresso.quorum_proposal";
    let field = |bytes: &[u8], name: &str| fixed(bytes, &format!("{PATH}.{name}"));
    let optional = |bytes: &Option<Vec<u8>>, name: &str| -> Result<Option<Commitment>, SignError> {
        bytes.as_deref().map(|b| field(b, name)).transpose()
    };
    let with_epoch = match &p.with_epoch {
        None => None,
        Some(e) => {
            use pb::leaf_epoch::ViewChangeEvidence as E;
            let evidence =
                match &e.view_change_evidence {
                    None => None,
                    Some(E::TimeoutCertCommit(b)) => Some(ViewChangeEvidence::TimeoutCert(field(
                        b,
                        "with_epoch.timeout_cert_commit",
                    )?)),
                    Some(E::ViewSyncCertCommit(b)) => Some(ViewChangeEvidence::ViewSyncCert(
                        field(b, "with_epoch.view_sync_cert_commit")?,
                    )),
                    Some(E::TimeoutCertV3Commit(b)) => Some(ViewChangeEvidence::TimeoutCertV3(
                        field(b, "with_epoch.timeout_cert_v3_commit")?,
                    )),
                };
            Some(EpochFields {
                next_epoch_justify_qc_commit: optional(
                    &e.next_epoch_justify_qc_commit,
                    "with_epoch.next_epoch_justify_qc_commit",
                )?,
                next_drb_result: optional(&e.next_drb_result, "with_epoch.next_drb_result")?,
                view_change_evidence: evidence,
            })
        }
    };
    let leaf = ProposedLeaf {
        view: p.view,
        parent_leaf: field(&p.parent_leaf, "parent_leaf")?,
        block_header_commit: field(&p.block_header_commit, "block_header_commit")?,
        justify_qc_commit: field(&p.justify_qc_commit, "justify_qc_commit")?,
        upgrade_certificate_commit: optional(
            &p.upgrade_certificate_commit,
            "upgrade_certificate_commit",
        )?,
        with_epoch,
    };
    let layout_path = format!("{PATH}.layout");
    let layout = match pb::LeafLayout::try_from(p.layout) {
        Ok(pb::LeafLayout::Unspecified) => LeafLayout::Unversioned,
        Ok(pb::LeafLayout::PreEpoch) => LeafLayout::PreEpoch,
        Ok(pb::LeafLayout::EpochsWithoutEvidence) => LeafLayout::EpochsWithoutEvidence,
        Ok(pb::LeafLayout::Epochs) => LeafLayout::Epochs,
        Ok(pb::LeafLayout::NewProtocol) => LeafLayout::NewProtocol,
        Err(_) => {
            return Err(invalid(
                &layout_path,
                format!("unknown leaf layout {}", p.layout),
            ))
        }
    };
    // Every layout hashes exactly the fields it accepts, so a leaf that passes is signed with
    // the one commitment `ProposedLeaf::commit` computes; only the check needs the layout.
    layout.check(&leaf).map_err(|e| invalid(&layout_path, e))?;
    Ok(leaf)
}

impl SignError {
    /// The gRPC code of the status this error becomes (also the metric's `reason` label for
    /// a failure).
    pub fn code(&self) -> Code {
        use super::access::Denied;
        match self {
            SignError::Unauthenticated => Code::Unauthenticated,
            SignError::Denied(Denied::RateLimited { .. }) => Code::ResourceExhausted,
            SignError::Denied(Denied::NotBootstrapped) => Code::Unavailable,
            SignError::Denied(Denied::Access(_))
            | SignError::NotReader(_)
            | SignError::RawRootsRefused
            | SignError::UntrustedBuilderRequest(_) => Code::PermissionDenied,
            SignError::Invalid { .. } => Code::InvalidArgument,
            SignError::KeyNotFound(_) | SignError::KeyInactive(_) => Code::NotFound,
            SignError::Refused(_) | SignError::KeyMismatch(_) | SignError::Paused => {
                Code::FailedPrecondition
            }
            SignError::KeyNotLoaded { .. }
            | SignError::NoLeader
            | SignError::NotLeader
            | SignError::LeaderAddressUnknown(_)
            | SignError::LeaderChannel { .. }
            | SignError::LeaderUnreachable { .. }
            | SignError::OutcomeUnknown
            | SignError::Stopped(_) => Code::Unavailable,
            SignError::LeaderStatus { code, .. } => *code,
            SignError::Internal(_) => Code::Internal,
        }
    }

    /// The message of the status this error becomes (its text).
    pub fn message(&self) -> String {
        self.to_string()
    }

    /// The refusal detail of a refusal (slashing protection, a key id the registry holds
    /// under another public key, or signing paused by the admins); `None` for every other
    /// error. A refusal is definitive: clients must not retry it on another node.
    pub fn refusal(&self) -> Option<pb::Refusal> {
        match self {
            SignError::Refused(v) => Some(pb::Refusal {
                code: v.code().to_owned(),
                message: v.to_string(),
            }),
            SignError::KeyMismatch(key_id) => Some(pb::Refusal {
                code: "key_mismatch".to_owned(),
                message: key_mismatch_reason(key_id),
            }),
            SignError::Paused => Some(pb::Refusal {
                code: "paused".to_owned(),
                message: PAUSED_REASON.to_owned(),
            }),
            _ => None,
        }
    }
}

/// The status a client gets for `e`: its code and text, and the `signer.v1.Refusal` detail of
/// a refusal.
pub fn status(e: SignError) -> Status {
    match e.refusal() {
        Some(detail) => Status::with_details(e.code(), e.message(), detail.encode_to_vec().into()),
        None => Status::new(e.code(), e.message()),
    }
}

impl From<SignError> for Status {
    fn from(e: SignError) -> Status {
        status(e)
    }
}

impl From<Signed> for pb::SignResponse {
    fn from(s: Signed) -> pb::SignResponse {
        pb::SignResponse {
            signature: s.signature,
            signature_text: s.signature_text,
            resigned: s.resigned,
            signed_message: s.signed_message,
        }
    }
}

/// One request of a batch: its signature, or, as data, the status Sign would have returned.
pub fn batch_result(r: Result<Signed, SignError>) -> pb::SignBatchResult {
    use pb::sign_batch_result::Result as R;
    pb::SignBatchResult {
        result: Some(match r {
            Ok(signed) => R::Signed(signed.into()),
            Err(e) => R::Error(pb::SignError {
                code: e.code() as i32,
                message: e.message(),
                refusal: e.refusal(),
            }),
        }),
    }
}

/// A proposal that did not get decided (also for the admin plane and forwarded events).
pub fn propose_failure(e: &ProposeError) -> Status {
    status(SignError::from(e))
}

/// The status of a caller that is not authenticated ([`super::authn`]): UNAUTHENTICATED, with
/// `missing` (the service's words) when no certificate names it, and the revocation, naming
/// the certificate, when the admins revoked its certificate.
pub fn authn_status(e: AuthnError, missing: &str) -> Status {
    match e {
        AuthnError::NoIdentity => Status::unauthenticated(missing),
        AuthnError::Revoked(revoked) => Status::unauthenticated(revoked.to_string()),
    }
}
