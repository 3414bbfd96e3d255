//! Target `grpc_sign_request`: the bytes of a `signer.v1.SignRequest` (what a client sends to
//! `Signer/Sign`, either profile), through the node's one conversion
//! (`service::convert::{precheck, SignRequest::try_from, intent}`).
//!
//! Owns: the properties of that conversion, and [`check_typed`], which the REST and peer
//! targets reuse for the typed requests they build or receive. Must not: look at how the node
//! answers beyond the status mapping (that needs a running node).
//!
//! Properties: `try_from` accepts only what `precheck` accepts, with the same profile; an
//! accepted request has ids within bounds and survives forwarding (the binary format) equal;
//! [`check_typed`]: the intent is deterministic, the same for the forwarded copy, refused for
//! a key of the other profile, refused for a raw root unless the grant trusts raw roots, and
//! signs the client's raw root or the root the client expected (never another); every error
//! maps to a status without panicking.

use prost::Message as _;
use signer_node::format;
use signer_node::pb;
use signer_node::protection::{Intent, Profile};
use signer_node::service::convert::{
    self, Eth2Context, Eth2Request, KeyIdentity, RequestMessage, SignRequest,
};
use signer_node::service::signing::{ForwardedSign, SignError};

use eth2_messages::NetworkSpec;

/// One fuzz input.
pub fn check(data: &[u8]) {
    let Ok(wire) = pb::SignRequest::decode(data) else {
        return;
    };
    let pre = convert::precheck(&wire);
    let profile = convert::request_profile(&wire);
    match SignRequest::try_from(wire) {
        Ok(typed) => {
            let pre = pre.expect("try_from accepted a request precheck refuses");
            assert_eq!(pre, typed.profile(), "precheck's profile is the request's");
            assert_eq!(profile.ok(), Some(pre));
            typed
                .check_ids()
                .expect("a converted request has ids within bounds");
            check_typed(&typed);
        }
        Err(e) => {
            let _ = convert::status(e);
        }
    }
}

/// The keys a request is tried with: one of each profile (public keys of the right lengths;
/// the rules never check a key's curve point).
fn keys() -> [KeyIdentity; 2] {
    [
        KeyIdentity {
            key_id: "k-eth2".into(),
            profile: Profile::Eth2,
            public_key: vec![0xa1; 48],
            inactive: false,
        },
        KeyIdentity {
            key_id: "k-espresso".into(),
            profile: Profile::Espresso,
            public_key: vec![0xb2; 128],
            inactive: false,
        },
    ]
}

/// The networks an eth2 request is tried on: mainnet, and the built-in network its
/// `fork_info` names (so that messages of every network reach a signing root).
fn networks(req: &SignRequest) -> Vec<NetworkSpec> {
    let mut out = vec![NetworkSpec::mainnet()];
    if let RequestMessage::Eth2(Eth2Request::Typed { message, .. }) = &req.message {
        if let Some(info) = message.fork_info() {
            if let Some(n) = NetworkSpec::by_genesis_validators_root(&info.genesis_validators_root)
            {
                if n.name != "mainnet" {
                    out.push(n);
                }
            }
        }
    }
    out
}

fn same(a: &Result<Intent, SignError>, b: &Result<Intent, SignError>) -> bool {
    match (a, b) {
        (Ok(x), Ok(y)) => x == y,
        (Err(x), Err(y)) => x.to_string() == y.to_string() && x.code() == y.code(),
        _ => false,
    }
}

/// The properties of a typed request (converted here, parsed from REST JSON, or forwarded
/// by a peer).
pub fn check_typed(req: &SignRequest) {
    let forwarded = ForwardedSign {
        client: "seq-1".into(),
        request: req.clone(),
    };
    let bytes = format::encode(&forwarded).expect("a typed request encodes");
    let back: ForwardedSign = format::decode(&bytes).expect("a forwarded request decodes");
    assert_eq!(back, forwarded, "forwarding changes the request");
    check_intents(req, Some(&back.request));
}

/// [`check_typed`] without the forwarding round trip (a request a peer sent may not be one a
/// conversion makes, e.g. an espresso message holding a DA digest).
pub fn check_intents(req: &SignRequest, forwarded: Option<&SignRequest>) {
    for network in networks(req) {
        for key in keys() {
            for raw_roots in [false, true] {
                let ctx = Eth2Context {
                    network: &network,
                    raw_roots,
                };
                let first = convert::intent(req, &key, ctx);
                let again = convert::intent(req, &key, ctx);
                assert!(same(&first, &again), "intent is not deterministic");
                if let Some(f) = forwarded {
                    let there = convert::intent(f, &key, ctx);
                    assert!(
                        same(&first, &there),
                        "the forwarded request decides otherwise"
                    );
                }
                check_intent(req, &key, raw_roots, first);
            }
        }
    }
}

fn check_intent(
    req: &SignRequest,
    key: &KeyIdentity,
    raw_roots: bool,
    result: Result<Intent, SignError>,
) {
    let intent = match result {
        Ok(intent) => intent,
        Err(e) => {
            if let RequestMessage::Eth2(Eth2Request::RawBlock { .. })
            | RequestMessage::Eth2(Eth2Request::RawAttestation { .. }) = &req.message
            {
                if key.profile == Profile::Eth2 && raw_roots {
                    panic!("a trusted raw root for an eth2 key was refused: {e}");
                }
            }
            let _ = convert::batch_result(Err(e));
            return;
        }
    };
    assert_eq!(
        key.profile,
        req.profile(),
        "a key of the other profile was used"
    );
    assert_eq!(intent.profile(), req.profile());
    assert_eq!(intent.public_key(), key.public_key.as_slice());
    match &req.message {
        RequestMessage::Eth2(Eth2Request::Typed {
            expected_root: Some(root),
            ..
        }) => assert_eq!(
            intent.message(),
            root.0,
            "the signer signs a root other than the one the client expected"
        ),
        RequestMessage::Eth2(Eth2Request::RawBlock { signing_root, .. })
        | RequestMessage::Eth2(Eth2Request::RawAttestation { signing_root, .. }) => {
            assert!(
                raw_roots,
                "a raw root was accepted without the grant's trust"
            );
            assert_eq!(intent.message(), signing_root.0);
        }
        _ => {}
    }
}
