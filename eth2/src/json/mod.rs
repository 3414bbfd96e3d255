//! Web3Signer's eth2 signing request bodies (`POST /api/v1/eth2/sign/{pubkey}`), read into an
//! [`Eth2Message`] and written back.
//!
//! Owns: the JSON shape of each `type` (Web3Signer OpenAPI `openapi-specs/eth2/signing`): field
//! names, `fork_info`, the optional client `signingRoot` (alias `signing_root`), `beacon_block
//! {version, block | block_header}` and `aggregate_and_proof {version, data}`.
//! Must not: compute or trust roots (the client's root is returned for the caller to compare),
//! or panic on any input.
//!
//! As in Web3Signer: `type` and `version` are case-insensitive, unknown fields are ignored, and
//! `fork_info` is required for every type but `VALIDATOR_REGISTRATION` and `DEPOSIT` (which
//! ignore one if sent). The deprecated `BLOCK` type (phase0 `block` at the top level) is not
//! accepted: every current validator client sends `BLOCK_V2`.

pub(crate) mod codec;
mod emit;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::containers::phase0::DepositMessage;
use crate::message::{PostElectra, PreElectra};
use crate::{
    BeaconBlockRequest, BlsPubkey, Eth2Error, Eth2Message, ForkInfo, ForkName, Root, Version,
    VersionedAggregateAndProof,
};
use codec::{from_hex, hex_bytes, quoted_u64};

type Object = Map<String, Value>;

/// `aggregation_slot {slot}`.
#[derive(Deserialize, serde::Serialize)]
struct SlotJson {
    #[serde(with = "quoted_u64")]
    slot: u64,
}

/// `randao_reveal {epoch}`.
#[derive(Deserialize, serde::Serialize)]
struct EpochJson {
    #[serde(with = "quoted_u64")]
    epoch: u64,
}

/// `deposit {pubkey, withdrawal_credentials, amount, genesis_fork_version}`.
#[derive(Deserialize, serde::Serialize)]
struct DepositJson {
    #[serde(with = "hex_bytes")]
    pubkey: BlsPubkey,
    #[serde(with = "hex_bytes")]
    withdrawal_credentials: Root,
    #[serde(with = "quoted_u64")]
    amount: u64,
    #[serde(with = "hex_bytes")]
    genesis_fork_version: Version,
}

/// Read a Web3Signer request body. Returns the typed message and the client's `signingRoot`
/// (if it sent one), which the caller must compare with the root it computes.
pub fn parse_web3signer(body: &[u8]) -> Result<(Eth2Message, Option<Root>), Eth2Error> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| Eth2Error::MalformedJson(e.to_string()))?;
    let Value::Object(obj) = value else {
        return Err(Eth2Error::MalformedJson(
            "the body is not a JSON object".into(),
        ));
    };
    let kind = match present(&obj, "type") {
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(invalid("type", "expected a string")),
        None => return Err(missing("type")),
    };
    let signing_root = client_signing_root(&obj)?;
    let message = match kind.to_ascii_uppercase().as_str() {
        "BLOCK_V2" => Eth2Message::BlockV2 {
            fork_info: fork_info(&obj)?,
            block: block_request(&obj)?,
        },
        "ATTESTATION" => Eth2Message::Attestation {
            fork_info: fork_info(&obj)?,
            data: field(&obj, "attestation")?,
        },
        "AGGREGATION_SLOT" => Eth2Message::AggregationSlot {
            fork_info: fork_info(&obj)?,
            slot: field::<SlotJson>(&obj, "aggregation_slot")?.slot,
        },
        "AGGREGATE_AND_PROOF" => Eth2Message::AggregateAndProof {
            fork_info: fork_info(&obj)?,
            message: Box::new(field(&obj, "aggregate_and_proof")?),
        },
        "AGGREGATE_AND_PROOF_V2" => Eth2Message::AggregateAndProofV2 {
            fork_info: fork_info(&obj)?,
            message: versioned_aggregate(&obj)?,
        },
        "RANDAO_REVEAL" => Eth2Message::RandaoReveal {
            fork_info: fork_info(&obj)?,
            epoch: field::<EpochJson>(&obj, "randao_reveal")?.epoch,
        },
        "VOLUNTARY_EXIT" => Eth2Message::VoluntaryExit {
            fork_info: fork_info(&obj)?,
            exit: field(&obj, "voluntary_exit")?,
        },
        "SYNC_COMMITTEE_MESSAGE" => Eth2Message::SyncCommitteeMessage {
            fork_info: fork_info(&obj)?,
            message: field(&obj, "sync_committee_message")?,
        },
        "SYNC_COMMITTEE_SELECTION_PROOF" => Eth2Message::SyncCommitteeSelectionProof {
            fork_info: fork_info(&obj)?,
            data: field(&obj, "sync_aggregator_selection_data")?,
        },
        "SYNC_COMMITTEE_CONTRIBUTION_AND_PROOF" => Eth2Message::SyncCommitteeContributionAndProof {
            fork_info: fork_info(&obj)?,
            message: Box::new(field(&obj, "contribution_and_proof")?),
        },
        "VALIDATOR_REGISTRATION" => Eth2Message::ValidatorRegistration {
            registration: field(&obj, "validator_registration")?,
        },
        "DEPOSIT" => {
            let d: DepositJson = field(&obj, "deposit")?;
            Eth2Message::Deposit {
                message: DepositMessage {
                    pubkey: d.pubkey,
                    withdrawal_credentials: d.withdrawal_credentials,
                    amount: d.amount,
                },
                genesis_fork_version: d.genesis_fork_version,
            }
        }
        _ => return Err(Eth2Error::UnknownType(kind)),
    };
    Ok((message, signing_root))
}

fn fork_info(obj: &Object) -> Result<ForkInfo, Eth2Error> {
    field(obj, "fork_info")
}

/// `beacon_block {version, block | block_header}`.
fn block_request(obj: &Object) -> Result<BeaconBlockRequest, Eth2Error> {
    let inner = object(obj, "beacon_block", "beacon_block")?;
    let version = version(inner, "beacon_block.version")?;
    Ok(match version {
        ForkName::Phase0 => {
            BeaconBlockRequest::Phase0(Box::new(field_at(inner, "block", "beacon_block.block")?))
        }
        ForkName::Altair => {
            BeaconBlockRequest::Altair(Box::new(field_at(inner, "block", "beacon_block.block")?))
        }
        later => {
            let header = field_at(inner, "block_header", "beacon_block.block_header")?;
            BeaconBlockRequest::from_header(later, header)
                .ok_or_else(|| invalid("beacon_block.version", "needs a full block"))?
        }
    })
}

/// `aggregate_and_proof {version, data}` of `AGGREGATE_AND_PROOF_V2`.
fn versioned_aggregate(obj: &Object) -> Result<VersionedAggregateAndProof, Eth2Error> {
    let inner = object(obj, "aggregate_and_proof", "aggregate_and_proof")?;
    let fork = version(inner, "aggregate_and_proof.version")?;
    let path = "aggregate_and_proof.data";
    if let Some(version) = PreElectra::from_fork(fork) {
        return Ok(VersionedAggregateAndProof::Phase0 {
            version,
            message: Box::new(field_at(inner, "data", path)?),
        });
    }
    match PostElectra::from_fork(fork) {
        Some(version) => Ok(VersionedAggregateAndProof::Electra {
            version,
            message: Box::new(field_at(inner, "data", path)?),
        }),
        None => Err(invalid(
            "aggregate_and_proof.version",
            "unsupported version",
        )),
    }
}

/// A `version` field naming a fork.
fn version(obj: &Object, path: &str) -> Result<ForkName, Eth2Error> {
    match present(obj, "version") {
        Some(Value::String(s)) => ForkName::parse(s)
            .ok_or_else(|| invalid(path, &format!("unknown fork version name {s:?}"))),
        Some(_) => Err(invalid(path, "expected a string")),
        None => Err(missing(path)),
    }
}

/// `signingRoot` or its alias `signing_root`; if both are sent they must agree.
fn client_signing_root(obj: &Object) -> Result<Option<Root>, Eth2Error> {
    let mut found: Option<Root> = None;
    for key in ["signingRoot", "signing_root"] {
        let root = match present(obj, key) {
            None => continue,
            Some(Value::String(s)) => from_hex::<32>(s).map_err(|r| invalid(key, &r))?,
            Some(_) => return Err(invalid(key, "expected a 0x-hex string")),
        };
        if found.is_some_and(|prev| prev != root) {
            return Err(invalid(key, "signingRoot and signing_root differ"));
        }
        found = Some(root);
    }
    Ok(found)
}

/// A field that is present and not `null`.
fn present<'a>(obj: &'a Object, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

/// A nested object, by key.
fn object<'a>(obj: &'a Object, key: &str, path: &str) -> Result<&'a Object, Eth2Error> {
    match present(obj, key) {
        Some(Value::Object(inner)) => Ok(inner),
        Some(_) => Err(invalid(path, "expected an object")),
        None => Err(missing(path)),
    }
}

fn field<T: DeserializeOwned>(obj: &Object, key: &str) -> Result<T, Eth2Error> {
    field_at(obj, key, key)
}

/// Deserialize `obj[key]`, reporting errors at `path` plus the path inside the value.
fn field_at<T: DeserializeOwned>(obj: &Object, key: &str, path: &str) -> Result<T, Eth2Error> {
    let value = present(obj, key).ok_or_else(|| missing(path))?;
    serde_path_to_error::deserialize(value).map_err(|e| {
        let inner = e.path().to_string();
        let full = match inner.as_str() {
            "." => path.to_string(),
            i if i.starts_with('[') => format!("{path}{i}"),
            i => format!("{path}.{i}"),
        };
        let reason = e.into_inner().to_string();
        match missing_field_name(&reason) {
            Some(name) => missing(&format!("{full}.{name}")),
            None => invalid(&full, &reason),
        }
    })
}

/// The field name in serde's "missing field `name`" message.
fn missing_field_name(reason: &str) -> Option<&str> {
    reason.strip_prefix("missing field `")?.split('`').next()
}

fn missing(field: &str) -> Eth2Error {
    Eth2Error::MissingField {
        field: field.to_string(),
    }
}

fn invalid(field: &str, reason: &str) -> Eth2Error {
    Eth2Error::InvalidField {
        field: field.to_string(),
        reason: reason.to_string(),
    }
}
