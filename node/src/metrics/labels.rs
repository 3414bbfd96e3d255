//! The labels of a sign request's answer: `outcome` and `reason` of
//! `signer_sign_requests_total` ([`sign_labels`]) and the `reason` a client's refusal is
//! counted under in `signer_client_refusals_total` ([`client_refusal_reason`]).
//!
//! Owns: the only mapping from a typed answer ([`SignError`], [`Signed`]) to label values.
//! Must not: read a gRPC status or a message text to learn an outcome, or produce a label
//! value outside the fixed sets (outcome words, refusal codes, gRPC code names).

use crate::service::access::Denied;
use crate::service::signing::{SignError, Signed};
use tonic::Code;

/// The `outcome` and `reason` labels of a sign request's answer, read from the typed answer
/// (never from a status): `signed` or `resigned` (no reason), `refused` with the refusal code
/// ([`crate::protection::Violation::code`], `key_mismatch`, or `paused` when the admins paused
/// signing), or `failed` with the name of the gRPC code the client got ([`SignError::code`]).
/// The only place these labels are made.
pub fn sign_labels(result: &Result<Signed, SignError>) -> (&'static str, &'static str) {
    match result {
        Ok(signed) if signed.resigned => ("resigned", ""),
        Ok(_) => ("signed", ""),
        Err(SignError::Refused(v)) => ("refused", v.code()),
        Err(SignError::KeyMismatch(_)) => ("refused", "key_mismatch"),
        Err(SignError::Paused) => ("refused", "paused"),
        Err(e) => ("failed", code_name(e.code())),
    }
}

/// The gRPC code's canonical name in `snake_case`, e.g. `invalid_argument`.
fn code_name(code: Code) -> &'static str {
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

/// The `reason` a refusal of the client is counted under in `signer_client_refusals_total`,
/// or `None` for an answer that says nothing about the client's behaviour (signed, re-signed,
/// a failure of the cluster, bad input, the rate limit — counted in
/// `signer_rate_limited_total` —, or signing paused by the admins).
pub fn client_refusal_reason(result: &Result<Signed, SignError>) -> Option<&'static str> {
    match result {
        Err(SignError::Refused(v)) => Some(v.code()),
        Err(SignError::KeyMismatch(_)) => Some("key_mismatch"),
        Err(SignError::Denied(Denied::Access(_))) => Some("access_denied"),
        Err(SignError::RawRootsRefused) => Some("raw_roots_denied"),
        _ => None,
    }
}

/// Whether `result` denies an identity that has no grant at all (counted under
/// [`UNGRANTED_CLIENT`]).
pub(super) fn ungranted(result: &Result<Signed, SignError>) -> bool {
    matches!(
        result,
        Err(SignError::Denied(Denied::Access(
            crate::admin::AccessDenied::UnknownClient(_)
        )))
    )
}
