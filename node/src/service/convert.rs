//! Wire ↔ domain conversion at the service boundary, and the one place errors become gRPC
//! statuses.
//!
//! Owns: `TryFrom`-style parsing of `pb::SignRequest` into a typed [`Intent`] (rejecting
//! missing and malformed fields with INVALID_ARGUMENT that names the field), and the mapping of
//! refusals and failures to `tonic::Status`. Must not: decide or sign anything.

use crate::bytes::FixedBytes;
use crate::keyring::LoadedKey;
use crate::pb;
use crate::protection::espresso::leaf::{EpochFields, ProposedLeaf, ViewChangeEvidence};
use crate::protection::espresso::message::{
    Commitment, DaData, HexBytes, Message, QuorumData, UpgradeData, Version, ViewSyncPhase,
};
use crate::protection::espresso::EspressoIntent;
use crate::protection::ethereum::Eth2Intent;
use crate::protection::{Intent, Profile, Violation};
use crate::replica::ProposeError;
use eth2_messages::{Eth2Message, NetworkSpec};
use prost::Message as _;
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
}

impl From<&LoadedKey> for KeyIdentity {
    fn from(k: &LoadedKey) -> Self {
        KeyIdentity {
            key_id: k.key_id.clone(),
            profile: k.profile,
            public_key: k.public_key.clone(),
        }
    }
}

/// Longest accepted `request_id`.
pub const MAX_REQUEST_ID: usize = 64;
/// Longest accepted `key_id`.
pub const MAX_KEY_ID: usize = 128;

fn invalid(field: &str, problem: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!("{field}: {problem}"))
}

fn fixed<const N: usize>(bytes: &[u8], field: &str) -> Result<FixedBytes<N>, Status> {
    FixedBytes::<N>::from_slice(bytes).map_err(|e| invalid(field, e))
}

fn required<'a, T>(v: &'a Option<T>, field: &str) -> Result<&'a T, Status> {
    v.as_ref().ok_or_else(|| invalid(field, "missing"))
}

/// Validate the fields common to every request: ids within bounds.
pub fn check_ids(req: &pb::SignRequest) -> Result<(), Status> {
    if req.request_id.len() > MAX_REQUEST_ID {
        return Err(invalid(
            "request_id",
            format!("longer than {MAX_REQUEST_ID} bytes"),
        ));
    }
    if req.key_id.is_empty() {
        return Err(invalid("key_id", "missing"));
    }
    if req.key_id.len() > MAX_KEY_ID {
        return Err(invalid("key_id", format!("longer than {MAX_KEY_ID} bytes")));
    }
    Ok(())
}

/// The profile a request's message belongs to.
pub fn request_profile(req: &pb::SignRequest) -> Result<Profile, Status> {
    use pb::sign_request::Message as M;
    match req.message {
        Some(M::Eth2(_)) => Ok(Profile::Eth2),
        Some(M::Espresso(_)) => Ok(Profile::Espresso),
        None => Err(invalid("message", "missing")),
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

/// Turn a request for `key` into the typed intent the protection rules see. Every digest is
/// computed here from typed fields; eth2 messages for another network are refused, and raw
/// eth2 roots are accepted only when `eth2.raw_roots` says the client's grant trusts them.
pub fn intent(
    req: &pb::SignRequest,
    key: &KeyIdentity,
    eth2: Eth2Context<'_>,
) -> Result<Intent, Status> {
    use pb::sign_request::Message as M;
    let profile = request_profile(req)?;
    if profile != key.profile {
        return Err(invalid(
            "message",
            format!(
                "key {:?} is a {} key; this is a {} request",
                key.key_id, key.profile, profile
            ),
        ));
    }
    match &req.message {
        Some(M::Eth2(r)) => {
            let pubkey = fixed::<48>(&key.public_key, "key public key")?;
            eth2_request(r, pubkey, eth2).map(Intent::Eth2)
        }
        Some(M::Espresso(m)) => Ok(Intent::Espresso(EspressoIntent {
            public_key: fixed(&key.public_key, "key public key")?,
            message: espresso_message(m)?,
        })),
        None => Err(invalid("message", "missing")),
    }
}

/// An eth2 request: the typed message (the signer computes its root), or a raw root for a
/// client whose grant trusts it.
fn eth2_request(
    r: &pb::Eth2Request,
    pubkey: FixedBytes<48>,
    eth2: Eth2Context<'_>,
) -> Result<Eth2Intent, Status> {
    use pb::eth2_request::Form;
    let raw_refused = || {
        Status::permission_denied(
            "eth2: raw signing roots are accepted only from a client whose grant trusts them \
             (raw_roots); send the typed message (eth2.typed) and the signer computes the root",
        )
    };
    match required(&r.form, "eth2.form")? {
        Form::Typed(bytes) => {
            let message = Eth2Message::from_bytes(bytes).map_err(|e| invalid("eth2.typed", e))?;
            let intent = Eth2Intent::from_message(pubkey, &message, eth2.network)
                .map_err(|e| invalid("eth2.typed", e))?;
            if !r.signing_root.is_empty() {
                let sent = fixed::<32>(&r.signing_root, "eth2.signing_root")?;
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
        Form::RootBlock(b) if eth2.raw_roots => Ok(Eth2Intent::Block {
            pubkey,
            slot: b.slot,
            signing_root: fixed(&b.signing_root, "eth2.root_block.signing_root")?,
        }),
        Form::RootAttestation(a) if eth2.raw_roots => Ok(Eth2Intent::Attestation {
            pubkey,
            source_epoch: a.source_epoch,
            target_epoch: a.target_epoch,
            signing_root: fixed(&a.signing_root, "eth2.root_attestation.signing_root")?,
        }),
        Form::RootBlock(_) | Form::RootAttestation(_) => Err(raw_refused()),
    }
}

fn version(v: &Option<pb::Version>, path: &str) -> Result<Version, Status> {
    let v = required(v, path)?;
    let narrow = |x: u32, f: &str| {
        u16::try_from(x).map_err(|_| invalid(&format!("{path}.{f}"), "does not fit in 16 bits"))
    };
    Ok(Version {
        major: narrow(v.major, "major")?,
        minor: narrow(v.minor, "minor")?,
    })
}

/// Parse the typed Espresso message.
pub fn espresso_message(m: &pb::EspressoMessage) -> Result<Message, Status> {
    use pb::espresso_message::Kind as K;
    let quorum = |q: &pb::QuorumVote, path: &str| -> Result<(u64, QuorumData), Status> {
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
        K::UpgradeVote(u) => {
            let old_version = version(&u.old_version, "espresso.upgrade_vote.old_version")?;
            let new_version = version(&u.new_version, "espresso.upgrade_vote.new_version")?;
            let hash = HexBytes(u.new_version_hash.clone());
            let data = if u.v2 {
                UpgradeData::V2 {
                    old_version,
                    new_version,
                    hash,
                    epoch: u.epoch,
                }
            } else {
                let need = |v: Option<u64>, f: &str| {
                    v.ok_or_else(|| {
                        invalid(
                            &format!("espresso.upgrade_vote.{f}"),
                            "missing (required for v1)",
                        )
                    })
                };
                UpgradeData::V1 {
                    old_version,
                    new_version,
                    decide_by: need(u.decide_by, "decide_by")?,
                    new_version_hash: hash,
                    old_version_last_view: need(u.old_version_last_view, "old_version_last_view")?,
                    new_version_first_view: need(
                        u.new_version_first_view,
                        "new_version_first_view",
                    )?,
                }
            };
            Message::UpgradeVote { view: u.view, data }
        }
        K::QuorumProposal(p) => Message::quorum_proposal(quorum_proposal(p)?),
        // The signer hashes the payload here; only the digest travels on.
        K::DaProposal(p) => Message::da_proposal(p.view, &p.encoded_transactions),
    })
}

/// The typed leaf of a quorum proposal: every commitment exactly 32 bytes, and the epoch-only
/// fields only inside `with_epoch`.
fn quorum_proposal(p: &pb::QuorumProposal) -> Result<ProposedLeaf, Status> {
    const PATH: &str = "espresso.quorum_proposal";
    let field = |bytes: &[u8], name: &str| fixed(bytes, &format!("{PATH}.{name}"));
    let optional = |bytes: &Option<Vec<u8>>, name: &str| -> Result<Option<Commitment>, Status> {
        bytes.as_deref().map(|b| field(b, name)).transpose()
    };
    let with_epoch = match &p.with_epoch {
        None => None,
        Some(e) => {
            use pb::leaf_epoch::ViewChangeEvidence as E;
            let evidence = match &e.view_change_evidence {
                None => None,
                Some(E::TimeoutCertCommit(b)) => Some(ViewChangeEvidence::TimeoutCert(field(
                    b,
                    "with_epoch.timeout_cert_commit",
                )?)),
                Some(E::ViewSyncCertCommit(b)) => Some(ViewChangeEvidence::ViewSyncCert(field(
                    b,
                    "with_epoch.view_sync_cert_commit",
                )?)),
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
    Ok(ProposedLeaf {
        view: p.view,
        parent_leaf: field(&p.parent_leaf, "parent_leaf")?,
        block_header_commit: field(&p.block_header_commit, "block_header_commit")?,
        justify_qc_commit: field(&p.justify_qc_commit, "justify_qc_commit")?,
        upgrade_certificate_commit: optional(
            &p.upgrade_certificate_commit,
            "upgrade_certificate_commit",
        )?,
        with_epoch,
    })
}

/// A slashing-protection refusal: FAILED_PRECONDITION with a `signer.v1.Refusal` detail.
pub fn refusal(v: &Violation) -> Status {
    let detail = pb::Refusal {
        code: v.code().to_owned(),
        message: v.to_string(),
    };
    Status::with_details(
        Code::FailedPrecondition,
        format!("refused by slashing protection: {}: {v}", v.code()),
        detail.encode_to_vec().into(),
    )
}

/// The registry holds `key_id` under another public key than the one the request was built
/// for (a key file sharing a registry id): FAILED_PRECONDITION with refusal code
/// `key_mismatch`. Nothing was signed or recorded for either key.
pub fn key_mismatch(key_id: &str) -> Status {
    let message = format!(
        "key {key_id:?}: the cluster's registry holds this id under another public key; \
         rename the key file or the registry key"
    );
    let detail = pb::Refusal {
        code: "key_mismatch".to_owned(),
        message: message.clone(),
    };
    Status::with_details(
        Code::FailedPrecondition,
        format!("refused: key_mismatch: {message}"),
        detail.encode_to_vec().into(),
    )
}

/// One failed request of a batch, as data: the status Sign would have returned.
pub fn sign_error(status: &Status) -> pb::SignError {
    pb::SignError {
        code: status.code() as i32,
        message: status.message().to_owned(),
        refusal: (status.code() == Code::FailedPrecondition)
            .then(|| pb::Refusal::decode(status.details()).ok())
            .flatten(),
    }
}

/// A proposal that did not get decided.
pub fn propose_failure(e: &ProposeError) -> Status {
    match e {
        ProposeError::NotLeader { .. } => {
            Status::unavailable("no leader can accept the request right now; retry")
        }
        ProposeError::Unknown => Status::unavailable(
            "leadership changed while the request was in flight; retry the identical request",
        ),
        ProposeError::Fatal(m) => {
            Status::unavailable(format!("replication stopped on this node: {m}"))
        }
        ProposeError::Internal(m) => Status::internal(*m),
    }
}

/// How a sign request ended, for `signer_sign_requests_total`: signed, re-signed, refused
/// (with the refusal code, also when the leader refused a forwarded request) or failed (with
/// the gRPC code name). Label values stay a bounded set: a refusal code that is not a plain
/// `snake_case` word of at most 64 bytes counts as `unknown`.
pub fn sign_result(result: &Result<pb::SignResponse, Status>) -> crate::metrics::SignResult {
    use crate::metrics::SignResult;
    let status = match result {
        Ok(r) if r.resigned => return SignResult::Resigned,
        Ok(_) => return SignResult::Signed,
        Err(status) => status,
    };
    if status.code() == Code::FailedPrecondition {
        if let Ok(refusal) = pb::Refusal::decode(status.details()) {
            let plain = !refusal.code.is_empty()
                && refusal.code.len() <= 64
                && refusal
                    .code
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            return SignResult::Refused(if plain {
                refusal.code
            } else {
                "unknown".into()
            });
        }
    }
    SignResult::Failed(code_name(status.code()))
}

/// The gRPC code's canonical name in `snake_case`, e.g. `invalid_argument`.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "ok",
        Code::Cancelled => "cancelled",
        Code::Unknown => "unknown",
        Code::InvalidArgument => "invalid_argument",
        Code::DeadlineExceeded => "deadline_exceeded",
        Code::NotFound => "not_found",
        Code::AlreadyExists => "already_exists",
        Code::PermissionDenied => "permission_denied",
        Code::ResourceExhausted => "resource_exhausted",
        Code::FailedPrecondition => "failed_precondition",
        Code::Aborted => "aborted",
        Code::OutOfRange => "out_of_range",
        Code::Unimplemented => "unimplemented",
        Code::Internal => "internal",
        Code::Unavailable => "unavailable",
        Code::DataLoss => "data_loss",
        Code::Unauthenticated => "unauthenticated",
    }
}

/// Signing is paused by the admins.
pub fn paused() -> Status {
    Status::unavailable("signing is paused by the admins (signerctl resume, with approvals)")
}
