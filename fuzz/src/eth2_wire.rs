//! Target `eth2_wire`: the versioned binary form of an eth2 message (`Eth2Message::from_bytes`),
//! which a client sends as `eth2.typed` in a gRPC `SignRequest` and a follower forwards to the
//! leader.
//!
//! Owns: the properties of that format. Must not: repeat the gRPC framing (the
//! `grpc_sign_request` target covers the protobuf around it).
//!
//! Properties: only canonical encodings decode (`to_bytes(from_bytes(b)) == b`, as the
//! format's documentation promises); a decoded message has a JSON form that parses back to it;
//! its signing root on its own network is deterministic; and the slot or epochs the rules see
//! are the message's own.

use eth2_messages::{parse_web3signer, Eth2Message, NetworkSpec, Slashable};

/// One fuzz input.
pub fn check(data: &[u8]) {
    let Ok(message) = Eth2Message::from_bytes(data) else {
        return;
    };
    assert_eq!(
        message.to_bytes(),
        data,
        "a non-canonical encoding decoded (the format must refuse it)"
    );
    let json = message
        .to_web3signer_json(None)
        .expect("a decoded message has a JSON form");
    let text = serde_json::to_vec(&json).expect("JSON values serialize");
    let (again, root) = parse_web3signer(&text).expect("the JSON form parses");
    assert_eq!(again, message, "JSON round trip changes the message");
    assert_eq!(root, None);

    let network = message
        .fork_info()
        .and_then(|i| NetworkSpec::by_genesis_validators_root(&i.genesis_validators_root))
        .unwrap_or_else(NetworkSpec::mainnet);
    let a = message.signing_root(&network).map_err(|e| e.to_string());
    let b = again.signing_root(&network).map_err(|e| e.to_string());
    assert_eq!(a, b, "the signing root is not deterministic");

    match (message.kind(), message.slashing()) {
        ("BLOCK_V2", Slashable::Block { .. }) => {}
        ("ATTESTATION", Slashable::Attestation { .. }) => {}
        ("BLOCK_V2", other) | ("ATTESTATION", other) => {
            panic!("{} is {other:?} to the rules", message.kind())
        }
        (_, Slashable::NotSlashable) => {}
        (kind, other) => panic!("{kind} is {other:?} to the rules"),
    }
}
