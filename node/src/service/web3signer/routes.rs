//! The Web3Signer-compatible API's requests and answers: routing, the caller's keys, the JSON
//! body into the typed request the gRPC API takes, and each outcome into the status and body
//! Web3Signer's clients expect.
//!
//! Owns: the paths, the answer shapes (`{"signature": …}` or the bare hex, by `Accept`; errors
//! as `{"code": …, "error": …}`) and the mapping of [`SignError`] to HTTP statuses. Must not:
//! compute or trust a signing root (the sign path computes it; a client's `signingRoot` is
//! only compared), decide anything the sign path decides, or answer differently for a key
//! that is not loaded and a key the caller may not use.

use super::Web3SignerApi;
use crate::protection::Profile;
use crate::service::access::Denied;
use crate::service::authn::Revoked;
use crate::service::convert::{Eth2Request, RequestMessage, SignRequest};
use crate::service::health::Readiness;
use crate::service::signing::SignError;
use eth2_messages::Eth2Error;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ACCEPT, ALLOW, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;

/// Largest request body read (a phase0 or altair block carries its whole body).
pub const MAX_BODY: usize = crate::node::MAX_CLIENT_MESSAGE;

const SIGN_PREFIX: &str = "/api/v1/eth2/sign/";
const PUBLIC_KEYS: &str = "/api/v1/eth2/publicKeys";
const JSON: &str = "application/json; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

/// One answer.
pub type Answer = Response<Full<Bytes>>;

/// Answer one request from `identity` (the verified client certificate's name, or the
/// configured loopback identity; `None`: a TLS caller without a certificate).
pub async fn handle(api: &Web3SignerApi, identity: Option<&str>, req: Request<Incoming>) -> Answer {
    let path = req.uri().path().to_owned();
    let get = req.method() == Method::GET || req.method() == Method::HEAD;
    match path.as_str() {
        "/upcheck" if get => upcheck(api),
        "/healthcheck" if get => healthcheck(api),
        PUBLIC_KEYS if get => public_keys(api, identity),
        "/upcheck" | "/healthcheck" | PUBLIC_KEYS => method_not_allowed("GET, HEAD"),
        p if p.starts_with(SIGN_PREFIX) => {
            if req.method() != Method::POST {
                return method_not_allowed("POST");
            }
            let identifier = p[SIGN_PREFIX.len()..].to_owned();
            let json = wants_json(req.headers().get(ACCEPT));
            match sign(api, identity, &identifier, req.into_body()).await {
                Ok(signature) => signature_answer(&signature, json),
                Err(e) => error(e),
            }
        }
        _ => error(Failure::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no such path {path:?}; the eth2 signing API is under /api/v1/eth2/"),
        )),
    }
}

/// Whether `path` is a health path: answered to anyone, with or without a certificate (load
/// balancers' checks), so the caller is not authenticated for it.
pub fn is_health(path: &str) -> bool {
    matches!(path, "/upcheck" | "/healthcheck")
}

/// The answer to a request sent with a certificate the admins revoked: 401
/// `certificate_revoked`, naming the certificate.
pub fn revoked(revoked: &Revoked) -> Answer {
    error(Failure::new(
        StatusCode::UNAUTHORIZED,
        "certificate_revoked",
        revoked.to_string(),
    ))
}

/// Why a request was not answered with a signature: the status, a stable code and the text.
#[derive(Debug)]
struct Failure {
    status: StatusCode,
    code: String,
    message: String,
}

impl Failure {
    fn new(status: StatusCode, code: impl Into<String>, message: impl Into<String>) -> Self {
        Failure {
            status,
            code: code.into(),
            message: message.into(),
        }
    }

    /// The one answer for a key this caller cannot use, whatever the reason.
    fn key_not_found(identifier: &str) -> Self {
        Failure::new(
            StatusCode::NOT_FOUND,
            "key_not_found",
            format!("no eth2 key {identifier:?} is available to this client"),
        )
    }

    fn unauthenticated() -> Self {
        Failure::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "a client certificate issued by the cluster CA is required",
        )
    }

    fn malformed(e: &Eth2Error) -> Self {
        Failure::new(StatusCode::BAD_REQUEST, e.code(), e.to_string())
    }
}

/// `GET /upcheck`: `OK` only while this node can sign.
fn upcheck(api: &Web3SignerApi) -> Answer {
    let ready = Readiness::of(&api.path.raft, &api.path.keyring);
    if ready.serving() {
        return text(StatusCode::OK, "OK");
    }
    text(StatusCode::SERVICE_UNAVAILABLE, not_ready_reason(ready))
}

fn not_ready_reason(ready: Readiness) -> String {
    match (ready.leader, ready.keys_pending) {
        (false, _) => "no leader that hears a quorum".to_owned(),
        (true, n) => format!("{n} active keys are not loaded on this node yet"),
    }
}

/// `GET /healthcheck`: the same verdict as `/upcheck`, with its parts.
fn healthcheck(api: &Web3SignerApi) -> Answer {
    let ready = Readiness::of(&api.path.raft, &api.path.keyring);
    let up = |ok: bool| if ok { "UP" } else { "DOWN" };
    let body = json!({
        "status": up(ready.serving()),
        "outcome": up(ready.serving()),
        "checks": [
            {"id": "leader", "status": up(ready.leader)},
            {"id": "keys_loaded", "status": up(ready.keys_pending == 0),
             "keys_pending": ready.keys_pending},
        ],
    });
    let status = match ready.serving() {
        true => StatusCode::OK,
        false => StatusCode::SERVICE_UNAVAILABLE,
    };
    json_answer(status, &body)
}

/// `GET /api/v1/eth2/publicKeys`: the eth2 keys this caller may sign with on this node.
fn public_keys(api: &Web3SignerApi, identity: Option<&str>) -> Answer {
    let Some(client) = identity else {
        return error(Failure::unauthenticated());
    };
    match api.path.usable_keys(client) {
        Ok(keys) => {
            let keys: Vec<String> = keys
                .iter()
                .filter(|k| k.profile == Profile::Eth2)
                .map(|k| format!("0x{}", hex::encode(&k.public_key)))
                .collect();
            json_answer(StatusCode::OK, &json!(keys))
        }
        Err(e) => error(failure(e, None)),
    }
}

/// `POST /api/v1/eth2/sign/{identifier}`: the key, then the body, then the sign path.
async fn sign(
    api: &Web3SignerApi,
    identity: Option<&str>,
    identifier: &str,
    body: Incoming,
) -> Result<Vec<u8>, Failure> {
    let client = identity.ok_or_else(Failure::unauthenticated)?;
    let key_id = key_id_for(api, client, identifier)?;
    let body = read_body(body).await?;
    let (message, signing_root) =
        eth2_messages::parse_web3signer(&body).map_err(|e| Failure::malformed(&e))?;
    let request = SignRequest {
        request_id: String::new(),
        key_id,
        message: RequestMessage::Eth2(Eth2Request::Typed {
            message,
            expected_root: signing_root.map(crate::bytes::FixedBytes),
        }),
    };
    match api
        .path
        .sign_typed(client.to_owned(), request.clone())
        .await
    {
        Ok(signed) => Ok(signed.signature),
        Err(e) => Err(failure(e, Some((api, &request)))),
    }
}

/// The id of the eth2 key named by `identifier` (its public key, with or without `0x`, in any
/// case) among the keys `client` may use; a key it may not use, or no key, is the same 404.
fn key_id_for(api: &Web3SignerApi, client: &str, identifier: &str) -> Result<String, Failure> {
    let hex_text = identifier
        .strip_prefix("0x")
        .or_else(|| identifier.strip_prefix("0X"))
        .unwrap_or(identifier);
    let shown: String = identifier.chars().take(100).collect();
    let mut public_key = [0u8; 48];
    hex::decode_to_slice(hex_text, &mut public_key).map_err(|_| Failure::key_not_found(&shown))?;
    let keys = api.path.usable_keys(client).map_err(|e| failure(e, None))?;
    keys.iter()
        .find(|k| k.profile == Profile::Eth2 && k.public_key == public_key)
        .map(|k| k.key_id.clone())
        .ok_or_else(|| Failure::key_not_found(&format!("0x{}", hex::encode(public_key))))
}

async fn read_body(body: Incoming) -> Result<Bytes, Failure> {
    match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(Failure::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the request body is larger than {MAX_BODY} bytes"),
        )),
        Err(e) => Err(Failure::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            format!("the request body could not be read: {e}"),
        )),
    }
}

/// The status, code and text a client gets for `e`. `request` (the typed request that was
/// refused) is used only to name the eth2 reason of an invalid message precisely.
fn failure(e: SignError, request: Option<(&Web3SignerApi, &SignRequest)>) -> Failure {
    let message = e.to_string();
    let (status, code) = match &e {
        SignError::Unauthenticated => return Failure::unauthenticated(),
        SignError::Denied(Denied::Access(crate::admin::AccessDenied::UnknownClient(_)))
        | SignError::NotReader(_) => (StatusCode::FORBIDDEN, "no_grant".to_owned()),
        // The key was usable a moment ago (the grant changed in between): the key's answer.
        SignError::Denied(Denied::Access(_))
        | SignError::KeyNotFound(_)
        | SignError::KeyInactive(_) => {
            return Failure::new(StatusCode::NOT_FOUND, "key_not_found", message)
        }
        // The request field is `signingRoot` (or `signing_root`), not the gRPC field.
        SignError::Invalid { field, reason } if field == "eth2.signing_root" => {
            return Failure::new(
                StatusCode::BAD_REQUEST,
                "signing_root_mismatch",
                format!("signingRoot: {reason}"),
            )
        }
        SignError::Invalid { field, .. } if field == "eth2.typed" => {
            if let Some(precise) = request.and_then(|(api, r)| eth2_reason(api, r)) {
                return Failure::malformed(&precise);
            }
            (StatusCode::BAD_REQUEST, "invalid_field".to_owned())
        }
        SignError::Refused(v) => (StatusCode::PRECONDITION_FAILED, v.code().to_owned()),
        SignError::KeyMismatch(_) => (StatusCode::PRECONDITION_FAILED, "key_mismatch".to_owned()),
        // Paused is a decision the cluster committed, not an outage: a 503 would ask the
        // client (and the README's retry advice) to try again.
        SignError::Paused => (StatusCode::PRECONDITION_FAILED, "paused".to_owned()),
        // Everything else by its gRPC code: the rate limit, invalid fields, no leader or quorum
        // right now (retry), a status the leader answered a forwarded request with, a bug.
        other => by_grpc_code(other.code()),
    };
    Failure::new(status, code, message)
}

/// Why the network refuses a typed message (another network's root, a fork outside the
/// schedule), as the eth2 crate says it, with its code. Only on the error path: the sign path
/// reported the message invalid, and this computes the same verdict again to name it.
fn eth2_reason(api: &Web3SignerApi, request: &SignRequest) -> Option<Eth2Error> {
    let RequestMessage::Eth2(Eth2Request::Typed { message, .. }) = &request.message else {
        return None;
    };
    message.signing_root(&api.path.eth2_network).err()
}

/// The HTTP status and code of a sign-path error that needs no answer of its own, by the gRPC
/// code the same error gets on the gRPC API (also what a leader answered a forwarded request
/// with).
fn by_grpc_code(code: tonic::Code) -> (StatusCode, String) {
    use tonic::Code as C;
    let (status, code) = match code {
        C::InvalidArgument => (StatusCode::BAD_REQUEST, "invalid_field"),
        C::NotFound => (StatusCode::NOT_FOUND, "key_not_found"),
        C::FailedPrecondition => (StatusCode::PRECONDITION_FAILED, "refused"),
        C::PermissionDenied => (StatusCode::FORBIDDEN, "permission_denied"),
        C::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated"),
        C::ResourceExhausted => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
        C::Unavailable | C::DeadlineExceeded | C::Aborted | C::Cancelled => {
            (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
        }
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    };
    (status, code.to_owned())
}

/// Whether the caller accepts JSON: an `Accept` naming `application/json`, `application/*`
/// or `*/*`. Without an `Accept` header Web3Signer answers text, and so does this API.
fn wants_json(accept: Option<&HeaderValue>) -> bool {
    let Some(accept) = accept.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    accept.split(',').any(|range| {
        let media = range.split(';').next().unwrap_or("").trim();
        media.eq_ignore_ascii_case("application/json")
            || media.eq_ignore_ascii_case("application/*")
            || media == "*/*"
    })
}

fn signature_answer(signature: &[u8], json: bool) -> Answer {
    let hex = format!("0x{}", hex::encode(signature));
    match json {
        true => json_answer(StatusCode::OK, &json!({ "signature": hex })),
        false => text(StatusCode::OK, hex),
    }
}

fn error(f: Failure) -> Answer {
    json_answer(f.status, &json!({ "code": f.code, "error": f.message }))
}

fn method_not_allowed(allow: &'static str) -> Answer {
    let mut answer = error(Failure::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("use {allow}"),
    ));
    answer
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    answer
}

fn json_answer(status: StatusCode, body: &serde_json::Value) -> Answer {
    answer(status, JSON, body.to_string())
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Answer {
    answer(status, TEXT, body)
}

fn answer(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Answer {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_only_when_accept_allows_it() {
        let accept = |s: &'static str| Some(HeaderValue::from_static(s));
        assert!(wants_json(accept("application/json").as_ref()));
        assert!(wants_json(accept("*/*").as_ref()));
        assert!(wants_json(
            accept("text/plain;q=0.5, Application/JSON").as_ref()
        ));
        assert!(wants_json(accept("application/*").as_ref()));
        assert!(!wants_json(accept("text/plain").as_ref()));
        assert!(!wants_json(accept("application/jsonx").as_ref()));
        assert!(!wants_json(None));
    }

    #[test]
    fn sign_path_errors_keep_their_meaning_over_http() {
        let of = |e: SignError| {
            let f = failure(e, None);
            (f.status, f.code)
        };
        let unavailable = (StatusCode::SERVICE_UNAVAILABLE, "unavailable".to_owned());
        assert_eq!(of(SignError::NoLeader), unavailable);
        assert_eq!(of(SignError::OutcomeUnknown), unavailable);
        let unreachable = SignError::LeaderUnreachable {
            leader: 2,
            reason: "connection refused".into(),
        };
        assert_eq!(of(unreachable), unavailable);
        let relayed = SignError::LeaderStatus {
            code: tonic::Code::DeadlineExceeded,
            message: "timeout".into(),
        };
        assert_eq!(of(relayed), unavailable);
        let paused = (StatusCode::PRECONDITION_FAILED, "paused".to_owned());
        assert_eq!(of(SignError::Paused), paused);
        let internal = (StatusCode::INTERNAL_SERVER_ERROR, "internal".to_owned());
        assert_eq!(of(SignError::Internal("bug".into())), internal);
        let mismatch = SignError::Invalid {
            field: "eth2.signing_root".into(),
            reason: "differs".into(),
        };
        let bad_root = (StatusCode::BAD_REQUEST, "signing_root_mismatch".to_owned());
        assert_eq!(of(mismatch), bad_root);
        let not_found = (StatusCode::NOT_FOUND, "key_not_found".to_owned());
        assert_eq!(of(SignError::KeyInactive("k".into())), not_found);
        let limited = SignError::Denied(Denied::RateLimited {
            client: "vc-1".into(),
            per_second: 1,
            burst: 1,
        });
        let too_many = (StatusCode::TOO_MANY_REQUESTS, "rate_limited".to_owned());
        assert_eq!(of(limited), too_many);
    }
}
