//! The message kind is inside every preimage: kinds over the same object never share a root.
//! Plus the network rules (genesis validators root, EIP-7044, deposits) and what each message
//! reports to slashing protection, as case tables.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;

use common::mainnet_fork_info;
use eth2_messages::containers::altair::{SyncAggregatorSelectionData, SyncCommitteeMessageData};
use eth2_messages::containers::phase0::{DepositMessage, VoluntaryExit};
use eth2_messages::{
    compute_domain, compute_signing_root, BeaconBlockRequest, Eth2Error, Eth2Message, ForkName,
    NetworkSpec, Slashable, ValidatorRegistration, DOMAIN_VOLUNTARY_EXIT,
};
use proptest::prelude::*;

fn number_messages(n: u64, fork: ForkName) -> Vec<Eth2Message> {
    let fork_info = mainnet_fork_info(fork);
    vec![
        Eth2Message::AggregationSlot { fork_info, slot: n },
        Eth2Message::RandaoReveal {
            fork_info,
            epoch: n,
        },
    ]
}

proptest! {
    /// AGGREGATION_SLOT and RANDAO_REVEAL sign the same `uint64` object: only the domain keeps
    /// a slot signature from being a RANDAO reveal.
    #[test]
    fn slot_and_randao_over_the_same_number_differ(n in any::<u64>()) {
        let net = NetworkSpec::mainnet();
        let msgs = number_messages(n, ForkName::Fulu);
        prop_assert_eq!(msgs[0].object_root(), msgs[1].object_root());
        prop_assert_ne!(msgs[0].signing_root(&net).unwrap(), msgs[1].signing_root(&net).unwrap());
    }
}

/// One message of every kind, built so that several share their object (the same number, the
/// same root): all twelve signing roots are distinct, and so are the twelve domain types.
#[test]
fn every_kind_has_its_own_domain() {
    let net = NetworkSpec::mainnet();
    let fork_info = mainnet_fork_info(ForkName::Fulu);
    let slot = 13_164_576; // first slot of mainnet's fulu epoch + 1
    let root = [0x5a; 32];
    let header = eth2_messages::phase0::BeaconBlockHeader {
        slot,
        proposer_index: slot,
        parent_root: root,
        state_root: root,
        body_root: root,
    };
    let data = eth2_messages::phase0::AttestationData {
        slot,
        index: 0,
        beacon_block_root: root,
        source: eth2_messages::phase0::Checkpoint {
            epoch: slot / 32,
            root,
        },
        target: eth2_messages::phase0::Checkpoint {
            epoch: slot / 32,
            root,
        },
    };
    let all = vec![
        Eth2Message::BlockV2 {
            fork_info,
            block: BeaconBlockRequest::Fulu(header),
        },
        Eth2Message::Attestation { fork_info, data },
        Eth2Message::AggregationSlot { fork_info, slot },
        Eth2Message::RandaoReveal {
            fork_info,
            epoch: slot,
        },
        Eth2Message::VoluntaryExit {
            fork_info,
            exit: VoluntaryExit {
                epoch: slot,
                validator_index: slot,
            },
        },
        Eth2Message::SyncCommitteeMessage {
            fork_info,
            message: SyncCommitteeMessageData {
                beacon_block_root: root,
                slot,
            },
        },
        Eth2Message::SyncCommitteeSelectionProof {
            fork_info,
            data: SyncAggregatorSelectionData {
                slot,
                subcommittee_index: slot,
            },
        },
        Eth2Message::ValidatorRegistration {
            registration: ValidatorRegistration {
                fee_recipient: [0x5a; 20],
                gas_limit: slot,
                timestamp: slot,
                pubkey: [0x5a; 48],
            },
        },
        Eth2Message::Deposit {
            message: DepositMessage {
                pubkey: [0x5a; 48],
                withdrawal_credentials: root,
                amount: slot,
            },
            genesis_fork_version: net.genesis_fork_version,
        },
    ];
    let mut roots = BTreeMap::new();
    let mut domain_types = BTreeMap::new();
    for m in &all {
        let root = m.signing_root(&net).unwrap();
        assert!(
            roots.insert(root, m.kind()).is_none(),
            "{} collides",
            m.kind()
        );
        assert!(domain_types.insert(m.domain_type(), m.kind()).is_none());
    }
    // The sync committee message signs the bare root: same object root as a `Root`.
    assert_eq!(all[5].object_root(), root);
}

#[test]
fn network_rules_are_enforced() {
    let mainnet = NetworkSpec::mainnet();
    let sepolia = NetworkSpec::sepolia();
    let msg = &number_messages(5, ForkName::Electra)[0];
    assert_eq!(
        msg.signing_root(&sepolia),
        Err(Eth2Error::GenesisValidatorsRootMismatch {
            expected: sepolia.genesis_validators_root,
            got: mainnet.genesis_validators_root,
        })
    );
    let deposit = Eth2Message::Deposit {
        message: DepositMessage {
            pubkey: [1; 48],
            withdrawal_credentials: [2; 32],
            amount: 32_000_000_000,
        },
        genesis_fork_version: sepolia.genesis_fork_version,
    };
    assert_eq!(
        deposit.signing_root(&mainnet),
        Err(Eth2Error::GenesisForkVersionMismatch {
            expected: mainnet.genesis_fork_version,
            got: sepolia.genesis_fork_version,
        })
    );
    assert!(deposit.signing_root(&sepolia).is_ok());
}

/// EIP-7044: from deneb on the exit domain is capella's, whatever the exit epoch and whatever
/// `get_domain` would say; before deneb it is `get_domain`'s; an unknown fork version is refused.
#[test]
fn voluntary_exit_domains() {
    let net = NetworkSpec::mainnet();
    let capella_domain = compute_domain(
        DOMAIN_VOLUNTARY_EXIT,
        net.capella_fork_version,
        net.genesis_validators_root,
    );
    let exit = |epoch| VoluntaryExit {
        epoch,
        validator_index: 42,
    };
    for fork in [ForkName::Deneb, ForkName::Electra, ForkName::Fulu] {
        for epoch in [0, 194_047, 269_567, 364_031, 411_393, u64::MAX] {
            let m = Eth2Message::VoluntaryExit {
                fork_info: mainnet_fork_info(fork),
                exit: exit(epoch),
            };
            assert_eq!(m.domain(&net).unwrap(), capella_domain, "{fork} {epoch}");
            assert_eq!(
                m.signing_root(&net).unwrap(),
                compute_signing_root(&exit(epoch), capella_domain)
            );
        }
    }
    // Capella fork info: previous (bellatrix) before the capella epoch, capella from it on.
    let fork_info = mainnet_fork_info(ForkName::Capella);
    for (epoch, version) in [(194_047, [2, 0, 0, 0]), (194_048, [3, 0, 0, 0])] {
        let m = Eth2Message::VoluntaryExit {
            fork_info,
            exit: exit(epoch),
        };
        let expected = compute_domain(DOMAIN_VOLUNTARY_EXIT, version, net.genesis_validators_root);
        assert_eq!(m.domain(&net).unwrap(), expected);
    }
    // A fork version outside the schedule (gloas): refused, not guessed.
    let mut gloas = mainnet_fork_info(ForkName::Fulu);
    gloas.fork.current_version = [7, 0, 0, 0];
    let m = Eth2Message::VoluntaryExit {
        fork_info: gloas,
        exit: exit(500_000),
    };
    assert_eq!(
        m.signing_root(&net),
        Err(Eth2Error::UnknownForkVersion {
            version: [7, 0, 0, 0]
        })
    );
    // A devnet that schedules no deneb: a deneb version is outside its schedule, so refused.
    let mut devnet = net.clone();
    devnet.deneb_fork_version = None;
    devnet.electra_fork_version = None;
    devnet.fulu_fork_version = None;
    let m = Eth2Message::VoluntaryExit {
        fork_info: mainnet_fork_info(ForkName::Deneb),
        exit: exit(300_000),
    };
    assert_eq!(
        m.domain(&devnet),
        Err(Eth2Error::UnknownForkVersion {
            version: [4, 0, 0, 0]
        })
    );
}

#[test]
fn slashing_kind_and_epoch_table() {
    let fi = mainnet_fork_info(ForkName::Fulu);
    let data = eth2_messages::phase0::AttestationData {
        slot: 100,
        index: 0,
        beacon_block_root: [0; 32],
        source: eth2_messages::phase0::Checkpoint {
            epoch: 2,
            root: [0; 32],
        },
        target: eth2_messages::phase0::Checkpoint {
            epoch: 3,
            root: [0; 32],
        },
    };
    let header = eth2_messages::phase0::BeaconBlockHeader {
        slot: 65,
        proposer_index: 1,
        parent_root: [0; 32],
        state_root: [0; 32],
        body_root: [0; 32],
    };
    let cases = [
        (
            Eth2Message::BlockV2 {
                fork_info: fi,
                block: BeaconBlockRequest::Fulu(header),
            },
            "BLOCK_V2",
            Some(2),
            Slashable::Block { slot: 65 },
        ),
        (
            Eth2Message::Attestation {
                fork_info: fi,
                data,
            },
            "ATTESTATION",
            Some(3),
            Slashable::Attestation {
                source_epoch: 2,
                target_epoch: 3,
            },
        ),
        (
            Eth2Message::AggregationSlot {
                fork_info: fi,
                slot: 64,
            },
            "AGGREGATION_SLOT",
            Some(2),
            Slashable::NotSlashable,
        ),
        (
            Eth2Message::RandaoReveal {
                fork_info: fi,
                epoch: 9,
            },
            "RANDAO_REVEAL",
            Some(9),
            Slashable::NotSlashable,
        ),
        (
            Eth2Message::ValidatorRegistration {
                registration: ValidatorRegistration {
                    fee_recipient: [0; 20],
                    gas_limit: 1,
                    timestamp: 2,
                    pubkey: [0; 48],
                },
            },
            "VALIDATOR_REGISTRATION",
            None,
            Slashable::NotSlashable,
        ),
    ];
    for (m, kind, epoch, slashable) in cases {
        assert_eq!(m.kind(), kind);
        assert_eq!(m.epoch(), epoch, "{kind}");
        assert_eq!(m.slashing(), slashable, "{kind}");
    }
}
