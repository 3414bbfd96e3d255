//! The reverse of `parse_web3signer`: an [`Eth2Message`] as the Web3Signer request body a
//! validator client would send (for signerctl, tests and forwarding to a Web3Signer).
//!
//! Owns: [`Eth2Message::to_web3signer_json`]. Must not: change what a message means; parsing
//! the output gives back an equal message (tested over every fixture).

use serde::Serialize;
use serde_json::{Map, Value};

use super::codec::to_hex;
use super::{DepositJson, EpochJson, SlotJson};
use crate::{BeaconBlockRequest, Eth2Error, Eth2Message, Root, VersionedAggregateAndProof};

impl Eth2Message {
    /// This message as a Web3Signer request body, with `signingRoot` when `signing_root` is
    /// given.
    pub fn to_web3signer_json(&self, signing_root: Option<&Root>) -> Result<Value, Eth2Error> {
        let mut obj = Map::new();
        obj.insert("type".into(), Value::String(self.kind().into()));
        if let Some(fork_info) = self.fork_info() {
            obj.insert("fork_info".into(), to_value(fork_info)?);
        }
        let (key, value) = match self {
            Eth2Message::BlockV2 { block, .. } => {
                let mut inner = Map::new();
                inner.insert("version".into(), block.version().as_str().into());
                let (k, v) = match block {
                    BeaconBlockRequest::Phase0(b) => ("block", to_value(b)?),
                    BeaconBlockRequest::Altair(b) => ("block", to_value(b)?),
                    BeaconBlockRequest::Bellatrix(h)
                    | BeaconBlockRequest::Capella(h)
                    | BeaconBlockRequest::Deneb(h)
                    | BeaconBlockRequest::Electra(h)
                    | BeaconBlockRequest::Fulu(h) => ("block_header", to_value(h)?),
                };
                inner.insert(k.into(), v);
                ("beacon_block", Value::Object(inner))
            }
            Eth2Message::Attestation { data, .. } => ("attestation", to_value(data)?),
            Eth2Message::AggregationSlot { slot, .. } => {
                ("aggregation_slot", to_value(SlotJson { slot: *slot })?)
            }
            Eth2Message::AggregateAndProof { message, .. } => {
                ("aggregate_and_proof", to_value(message)?)
            }
            Eth2Message::AggregateAndProofV2 { message, .. } => {
                let mut inner = Map::new();
                inner.insert("version".into(), message.version().as_str().into());
                let data = match message {
                    VersionedAggregateAndProof::Phase0 { message, .. } => to_value(message)?,
                    VersionedAggregateAndProof::Electra { message, .. } => to_value(message)?,
                };
                inner.insert("data".into(), data);
                ("aggregate_and_proof", Value::Object(inner))
            }
            Eth2Message::RandaoReveal { epoch, .. } => {
                ("randao_reveal", to_value(EpochJson { epoch: *epoch })?)
            }
            Eth2Message::VoluntaryExit { exit, .. } => ("voluntary_exit", to_value(exit)?),
            Eth2Message::SyncCommitteeMessage { message, .. } => {
                ("sync_committee_message", to_value(message)?)
            }
            Eth2Message::SyncCommitteeSelectionProof { data, .. } => {
                ("sync_aggregator_selection_data", to_value(data)?)
            }
            Eth2Message::SyncCommitteeContributionAndProof { message, .. } => {
                ("contribution_and_proof", to_value(message)?)
            }
            Eth2Message::ValidatorRegistration { registration } => {
                ("validator_registration", to_value(registration)?)
            }
            Eth2Message::Deposit {
                message,
                genesis_fork_version,
            } => {
                let deposit = DepositJson {
                    pubkey: message.pubkey,
                    withdrawal_credentials: message.withdrawal_credentials,
                    amount: message.amount,
                    genesis_fork_version: *genesis_fork_version,
                };
                ("deposit", to_value(deposit)?)
            }
        };
        obj.insert(key.into(), value);
        if let Some(root) = signing_root {
            obj.insert("signingRoot".into(), Value::String(to_hex(root)));
        }
        Ok(Value::Object(obj))
    }
}

fn to_value<T: Serialize>(v: T) -> Result<Value, Eth2Error> {
    serde_json::to_value(v).map_err(|e| Eth2Error::InvalidField {
        field: "(serialize)".into(),
        reason: e.to_string(),
    })
}
