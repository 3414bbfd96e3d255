//! Target `web3signer_json`: the body of `POST /api/v1/eth2/sign/{pubkey}` on the
//! Web3Signer-compatible REST API, through `eth2_messages::parse_web3signer` and the typed
//! request the REST routes build from it (`service::web3signer::routes`: the same
//! `SignRequest` the gRPC API takes, then `convert::intent`).
//!
//! Owns: the properties of the JSON reading. Must not: start a server (the routes' HTTP
//! handling needs a node; what they do with a body is the parse and the conversion here).
//!
//! Properties: a refused body has a stable error code; an accepted body's message writes
//! back to JSON that parses to the same message and root; its binary form (what travels to
//! the leader) decodes to the same message; its signing root is deterministic; and the typed
//! request passes [`crate::grpc_sign::check_typed`] (so a sent `signingRoot` is the only root
//! that can be signed).

use eth2_messages::{parse_web3signer, Eth2Message, NetworkSpec};
use signer_node::bytes::FixedBytes;
use signer_node::service::convert::{Eth2Request, RequestMessage, SignRequest};

/// One fuzz input.
pub fn check(data: &[u8]) {
    let (message, root) = match parse_web3signer(data) {
        Ok(parsed) => parsed,
        Err(e) => {
            assert!(!e.code().is_empty(), "a refusal without a code: {e}");
            return;
        }
    };
    let json = message
        .to_web3signer_json(root.as_ref())
        .expect("an accepted message has a JSON form");
    let text = serde_json::to_vec(&json).expect("JSON values serialize");
    let (again, again_root) =
        parse_web3signer(&text).expect("the JSON form of an accepted message parses");
    assert_eq!(again, message, "JSON round trip changes the message");
    assert_eq!(again_root, root, "JSON round trip changes the signing root");

    let bytes = message.to_bytes();
    let decoded = Eth2Message::from_bytes(&bytes).expect("the binary form decodes");
    assert_eq!(decoded, message, "binary round trip changes the message");

    let network = NetworkSpec::mainnet();
    let a = message.signing_root(&network).map_err(|e| e.to_string());
    let b = decoded.signing_root(&network).map_err(|e| e.to_string());
    assert_eq!(a, b, "the signing root is not deterministic");

    let request = SignRequest {
        request_id: String::new(),
        key_id: "k-eth2".into(),
        message: RequestMessage::Eth2(Eth2Request::Typed {
            message,
            expected_root: root.map(FixedBytes),
        }),
    };
    crate::grpc_sign::check_typed(&request);
}
