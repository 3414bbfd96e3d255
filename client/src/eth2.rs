//! Building typed eth2 sign requests on the client side: a Web3Signer JSON body or a few
//! common messages (a block header, an attestation) turned into `signer.v1.Eth2Request`.
//!
//! Owns: nothing but the conversion; the node computes the signing root again and refuses a
//! request whose `signing_root` differs. Must not: compute what gets signed on the node's
//! behalf (the root sent along is only a check).

use crate::pb;
use eth2_messages::phase0::{AttestationData, BeaconBlockHeader, Checkpoint};
use eth2_messages::{
    BeaconBlockRequest, Eth2Error, Eth2Message, Fork, ForkInfo, ForkName, NetworkSpec,
};

/// The request message for a typed eth2 message, with the signing root the client expects
/// (optional: when set, the node refuses the request if it computes another root).
pub fn typed(message: &Eth2Message, expected_root: Option<[u8; 32]>) -> pb::sign_request::Message {
    pb::sign_request::Message::Eth2(pb::Eth2Request {
        form: Some(pb::eth2_request::Form::Typed(message.to_bytes())),
        signing_root: expected_root.map(|r| r.to_vec()).unwrap_or_default(),
    })
}

/// A Web3Signer eth2 sign body (`type`, `fork_info`, the typed object, optionally
/// `signingRoot`) as a request message.
pub fn from_web3signer_json(body: &[u8]) -> Result<pb::sign_request::Message, Eth2Error> {
    let (message, root) = eth2_messages::parse_web3signer(body)?;
    Ok(typed(&message, root))
}

/// The fork info of `network` at its newest fork, activated at epoch 0 (for demos, tests and
/// benchmarks: every slot and epoch is signed with the newest fork version).
pub fn newest_fork_info(network: &NetworkSpec) -> (ForkName, ForkInfo) {
    let forks = [
        ForkName::Fulu,
        ForkName::Electra,
        ForkName::Deneb,
        ForkName::Capella,
    ];
    let (name, version) = forks
        .iter()
        .find_map(|f| network.fork_version(*f).map(|v| (*f, v)))
        .unwrap_or((ForkName::Capella, network.capella_fork_version));
    let info = ForkInfo {
        fork: Fork {
            previous_version: version,
            current_version: version,
            epoch: 0,
        },
        genesis_validators_root: network.genesis_validators_root,
    };
    (name, info)
}

/// A block proposal at `slot` (the header form every fork from bellatrix on signs), whose body
/// root is `body_root`, under `network`'s newest fork.
pub fn block(network: &NetworkSpec, slot: u64, body_root: [u8; 32]) -> Eth2Message {
    let (fork, fork_info) = newest_fork_info(network);
    let header = BeaconBlockHeader {
        slot,
        proposer_index: 0,
        parent_root: [0; 32],
        state_root: [0; 32],
        body_root,
    };
    let block = BeaconBlockRequest::from_header(fork, header)
        .unwrap_or(BeaconBlockRequest::Capella(header));
    Eth2Message::BlockV2 { fork_info, block }
}

/// An attestation with FFG `source → target` voting for `block_root`, under `network`'s
/// newest fork.
pub fn attestation(
    network: &NetworkSpec,
    source_epoch: u64,
    target_epoch: u64,
    block_root: [u8; 32],
) -> Eth2Message {
    let (_, fork_info) = newest_fork_info(network);
    let data = AttestationData {
        slot: target_epoch.saturating_mul(eth2_messages::SLOTS_PER_EPOCH),
        index: 0,
        beacon_block_root: block_root,
        source: Checkpoint {
            epoch: source_epoch,
            root: [0; 32],
        },
        target: Checkpoint {
            epoch: target_epoch,
            root: block_root,
        },
    };
    Eth2Message::Attestation { fork_info, data }
}
