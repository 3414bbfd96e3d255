//! Shared test builders: proptest strategies for every message kind, and a fixed mainnet-like
//! fork info.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use eth2_messages::containers::altair::{
    self, ContributionAndProof, SyncAggregate, SyncAggregatorSelectionData,
    SyncCommitteeContribution, SyncCommitteeMessageData,
};
use eth2_messages::containers::electra;
use eth2_messages::containers::phase0::{
    self, Attestation, AttestationData, AttesterSlashing, BeaconBlockHeader, Checkpoint, Deposit,
    DepositData, DepositMessage, Eth1Data, IndexedAttestation, ProposerSlashing,
    SignedBeaconBlockHeader, SignedVoluntaryExit, VoluntaryExit,
};
use eth2_messages::{
    BeaconBlockRequest, Eth2Message, Fork, ForkInfo, ForkName, NetworkSpec, PostElectra,
    PreElectra, ValidatorRegistration, VersionedAggregateAndProof,
};
use proptest::prelude::*;
use ssz_types::typenum::Unsigned;
use ssz_types::{BitList, BitVector, FixedVector, VariableList};

pub fn mainnet_fork_info(fork: ForkName) -> ForkInfo {
    let net = NetworkSpec::mainnet();
    let epochs = [0, 74240, 144896, 194048, 269568, 364032, 411392];
    let i = fork.tag() as usize;
    ForkInfo {
        fork: Fork {
            previous_version: net
                .fork_version(ForkName::ALL[i.saturating_sub(1)])
                .unwrap(),
            current_version: net.fork_version(fork).unwrap(),
            epoch: epochs[i],
        },
        genesis_validators_root: net.genesis_validators_root,
    }
}

pub fn bytes<const N: usize>() -> impl Strategy<Value = [u8; N]> {
    proptest::collection::vec(any::<u8>(), N).prop_map(|v| v.try_into().unwrap())
}

fn bitlist<N: Unsigned + Clone + std::fmt::Debug>(max: usize) -> impl Strategy<Value = BitList<N>> {
    proptest::collection::vec(any::<bool>(), 0..=max).prop_map(|bits| {
        let mut list = BitList::<N>::with_capacity(bits.len()).unwrap();
        for (i, b) in bits.iter().enumerate() {
            list.set(i, *b).unwrap();
        }
        list
    })
}

fn bitvector<N: Unsigned + Clone + std::fmt::Debug>() -> impl Strategy<Value = BitVector<N>> {
    proptest::collection::vec(any::<bool>(), N::to_usize()).prop_map(|bits| {
        let mut v = BitVector::<N>::new();
        for (i, b) in bits.iter().enumerate() {
            v.set(i, *b).unwrap();
        }
        v
    })
}

fn vec_of<T: std::fmt::Debug>(
    s: impl Strategy<Value = T>,
    max: usize,
) -> impl Strategy<Value = Vec<T>> {
    proptest::collection::vec(s, 0..=max)
}

pub fn fork_info() -> impl Strategy<Value = ForkInfo> {
    (bytes::<4>(), bytes::<4>(), any::<u64>(), bytes::<32>()).prop_map(|(p, c, e, g)| ForkInfo {
        fork: Fork {
            previous_version: p,
            current_version: c,
            epoch: e,
        },
        genesis_validators_root: g,
    })
}

fn checkpoint() -> impl Strategy<Value = Checkpoint> {
    (any::<u64>(), bytes::<32>()).prop_map(|(epoch, root)| Checkpoint { epoch, root })
}

pub fn attestation_data() -> impl Strategy<Value = AttestationData> {
    (
        any::<u64>(),
        any::<u64>(),
        bytes::<32>(),
        checkpoint(),
        checkpoint(),
    )
        .prop_map(
            |(slot, index, beacon_block_root, source, target)| AttestationData {
                slot,
                index,
                beacon_block_root,
                source,
                target,
            },
        )
}

pub fn header() -> impl Strategy<Value = BeaconBlockHeader> {
    (
        any::<u64>(),
        any::<u64>(),
        bytes::<32>(),
        bytes::<32>(),
        bytes::<32>(),
    )
        .prop_map(
            |(slot, proposer_index, parent_root, state_root, body_root)| BeaconBlockHeader {
                slot,
                proposer_index,
                parent_root,
                state_root,
                body_root,
            },
        )
}

fn attestation() -> impl Strategy<Value = Attestation> {
    (bitlist(40), attestation_data(), bytes::<96>()).prop_map(
        |(aggregation_bits, data, signature)| Attestation {
            aggregation_bits,
            data,
            signature,
        },
    )
}

fn electra_attestation() -> impl Strategy<Value = electra::Attestation> {
    (bitlist(70), attestation_data(), bytes::<96>(), bitvector()).prop_map(
        |(aggregation_bits, data, signature, committee_bits)| electra::Attestation {
            aggregation_bits,
            data,
            signature,
            committee_bits,
        },
    )
}

fn indexed() -> impl Strategy<Value = IndexedAttestation> {
    (vec_of(any::<u64>(), 4), attestation_data(), bytes::<96>()).prop_map(
        |(attesting_indices, data, signature)| IndexedAttestation {
            attesting_indices: VariableList::new(attesting_indices).unwrap(),
            data,
            signature,
        },
    )
}

fn signed_header() -> impl Strategy<Value = SignedBeaconBlockHeader> {
    (header(), bytes::<96>())
        .prop_map(|(message, signature)| SignedBeaconBlockHeader { message, signature })
}

fn deposit() -> impl Strategy<Value = Deposit> {
    (
        proptest::collection::vec(bytes::<32>(), 33),
        bytes::<48>(),
        bytes::<32>(),
        any::<u64>(),
        bytes::<96>(),
    )
        .prop_map(
            |(proof, pubkey, withdrawal_credentials, amount, signature)| Deposit {
                proof: FixedVector::new(proof).unwrap(),
                data: DepositData {
                    pubkey,
                    withdrawal_credentials,
                    amount,
                    signature,
                },
            },
        )
}

fn exit() -> impl Strategy<Value = VoluntaryExit> {
    (any::<u64>(), any::<u64>()).prop_map(|(epoch, validator_index)| VoluntaryExit {
        epoch,
        validator_index,
    })
}

fn phase0_body() -> impl Strategy<Value = phase0::BeaconBlockBody> {
    (
        bytes::<96>(),
        (bytes::<32>(), any::<u64>(), bytes::<32>()),
        bytes::<32>(),
        vec_of((signed_header(), signed_header()), 1),
        vec_of((indexed(), indexed()), 1),
        vec_of(attestation(), 2),
        vec_of(deposit(), 1),
        vec_of((exit(), bytes::<96>()), 2),
    )
        .prop_map(
            |(randao_reveal, (dr, dc, bh), graffiti, ps, asl, attestations, deposits, exits)| {
                phase0::BeaconBlockBody {
                    randao_reveal,
                    eth1_data: Eth1Data {
                        deposit_root: dr,
                        deposit_count: dc,
                        block_hash: bh,
                    },
                    graffiti,
                    proposer_slashings: VariableList::new(
                        ps.iter()
                            .map(|(a, b)| ProposerSlashing {
                                signed_header_1: a.clone(),
                                signed_header_2: b.clone(),
                            })
                            .collect(),
                    )
                    .unwrap(),
                    attester_slashings: VariableList::new(
                        asl.iter()
                            .map(|(a, b)| AttesterSlashing {
                                attestation_1: a.clone(),
                                attestation_2: b.clone(),
                            })
                            .collect(),
                    )
                    .unwrap(),
                    attestations: VariableList::new(attestations).unwrap(),
                    deposits: VariableList::new(deposits).unwrap(),
                    voluntary_exits: VariableList::new(
                        exits
                            .iter()
                            .map(|(message, signature)| SignedVoluntaryExit {
                                message: *message,
                                signature: *signature,
                            })
                            .collect(),
                    )
                    .unwrap(),
                }
            },
        )
}

fn block_request() -> impl Strategy<Value = BeaconBlockRequest> {
    let top = || (any::<u64>(), any::<u64>(), bytes::<32>(), bytes::<32>());
    prop_oneof![
        (top(), phase0_body()).prop_map(
            |((slot, proposer_index, parent_root, state_root), body)| {
                BeaconBlockRequest::Phase0(Box::new(phase0::BeaconBlock {
                    slot,
                    proposer_index,
                    parent_root,
                    state_root,
                    body,
                }))
            }
        ),
        (top(), phase0_body(), bitvector(), bytes::<96>()).prop_map(
            |((slot, proposer_index, parent_root, state_root), b, bits, sig)| {
                BeaconBlockRequest::Altair(Box::new(altair::BeaconBlock {
                    slot,
                    proposer_index,
                    parent_root,
                    state_root,
                    body: altair::BeaconBlockBody {
                        randao_reveal: b.randao_reveal,
                        eth1_data: b.eth1_data,
                        graffiti: b.graffiti,
                        proposer_slashings: b.proposer_slashings,
                        attester_slashings: b.attester_slashings,
                        attestations: b.attestations,
                        deposits: b.deposits,
                        voluntary_exits: b.voluntary_exits,
                        sync_aggregate: SyncAggregate {
                            sync_committee_bits: bits,
                            sync_committee_signature: sig,
                        },
                    },
                }))
            }
        ),
        (2u8..=6, header()).prop_map(|(tag, h)| {
            BeaconBlockRequest::from_header(ForkName::from_tag(tag).unwrap(), h).unwrap()
        }),
    ]
}

fn phase0_aggregate() -> impl Strategy<Value = phase0::AggregateAndProof> {
    (any::<u64>(), attestation(), bytes::<96>()).prop_map(
        |(aggregator_index, aggregate, selection_proof)| phase0::AggregateAndProof {
            aggregator_index,
            aggregate,
            selection_proof,
        },
    )
}

fn versioned_aggregate() -> impl Strategy<Value = VersionedAggregateAndProof> {
    prop_oneof![
        (0u8..=4, phase0_aggregate()).prop_map(|(tag, m)| VersionedAggregateAndProof::Phase0 {
            version: PreElectra::from_fork(ForkName::from_tag(tag).unwrap()).unwrap(),
            message: Box::new(m),
        }),
        (5u8..=6, any::<u64>(), electra_attestation(), bytes::<96>()).prop_map(
            |(tag, aggregator_index, aggregate, selection_proof)| {
                VersionedAggregateAndProof::Electra {
                    version: PostElectra::from_fork(ForkName::from_tag(tag).unwrap()).unwrap(),
                    message: Box::new(electra::AggregateAndProof {
                        aggregator_index,
                        aggregate,
                        selection_proof,
                    }),
                }
            }
        ),
    ]
}

fn contribution() -> impl Strategy<Value = ContributionAndProof> {
    (
        any::<u64>(),
        any::<u64>(),
        bytes::<32>(),
        any::<u64>(),
        bitvector(),
        bytes::<96>(),
        bytes::<96>(),
    )
        .prop_map(|(aggregator_index, slot, root, sub, bits, sig, proof)| {
            ContributionAndProof {
                aggregator_index,
                contribution: SyncCommitteeContribution {
                    slot,
                    beacon_block_root: root,
                    subcommittee_index: sub,
                    aggregation_bits: bits,
                    signature: sig,
                },
                selection_proof: proof,
            }
        })
}

/// Any message of any kind.
pub fn message() -> impl Strategy<Value = Eth2Message> {
    prop_oneof![
        (fork_info(), block_request())
            .prop_map(|(fork_info, block)| Eth2Message::BlockV2 { fork_info, block }),
        (fork_info(), attestation_data())
            .prop_map(|(fork_info, data)| Eth2Message::Attestation { fork_info, data }),
        (fork_info(), any::<u64>())
            .prop_map(|(fork_info, slot)| Eth2Message::AggregationSlot { fork_info, slot }),
        (fork_info(), phase0_aggregate()).prop_map(|(fork_info, m)| {
            Eth2Message::AggregateAndProof {
                fork_info,
                message: Box::new(m),
            }
        }),
        (fork_info(), versioned_aggregate()).prop_map(|(fork_info, message)| {
            Eth2Message::AggregateAndProofV2 { fork_info, message }
        }),
        (fork_info(), any::<u64>())
            .prop_map(|(fork_info, epoch)| Eth2Message::RandaoReveal { fork_info, epoch }),
        (fork_info(), exit())
            .prop_map(|(fork_info, exit)| Eth2Message::VoluntaryExit { fork_info, exit }),
        (fork_info(), bytes::<32>(), any::<u64>()).prop_map(
            |(fork_info, beacon_block_root, slot)| {
                Eth2Message::SyncCommitteeMessage {
                    fork_info,
                    message: SyncCommitteeMessageData {
                        beacon_block_root,
                        slot,
                    },
                }
            }
        ),
        (fork_info(), any::<u64>(), any::<u64>()).prop_map(
            |(fork_info, slot, subcommittee_index)| {
                Eth2Message::SyncCommitteeSelectionProof {
                    fork_info,
                    data: SyncAggregatorSelectionData {
                        slot,
                        subcommittee_index,
                    },
                }
            }
        ),
        (fork_info(), contribution()).prop_map(|(fork_info, m)| {
            Eth2Message::SyncCommitteeContributionAndProof {
                fork_info,
                message: Box::new(m),
            }
        }),
        (bytes::<20>(), any::<u64>(), any::<u64>(), bytes::<48>()).prop_map(
            |(fee_recipient, gas_limit, timestamp, pubkey)| {
                Eth2Message::ValidatorRegistration {
                    registration: ValidatorRegistration {
                        fee_recipient,
                        gas_limit,
                        timestamp,
                        pubkey,
                    },
                }
            }
        ),
        (bytes::<48>(), bytes::<32>(), any::<u64>(), bytes::<4>()).prop_map(
            |(pubkey, withdrawal_credentials, amount, genesis_fork_version)| {
                Eth2Message::Deposit {
                    message: DepositMessage {
                        pubkey,
                        withdrawal_credentials,
                        amount,
                    },
                    genesis_fork_version,
                }
            }
        ),
    ]
}
