//! The layouts of format 1 that format 2 changed, and their upgrade: format 2 added the revoked
//! certificates to the admin state ([`AdminState::revoked`]), so the admin state and the
//! snapshot body that carries it have a format-1 layout here.
//!
//! Owns: [`AdminStateV1`], [`SnapshotBodyV1`] and their `From` upgrades, which
//! [`crate::format::decode_upgrading`] uses for stored data of format 1. Must not: be written
//! (nothing encodes these types: a node writes format 2 only), or change: their fields, types
//! and order are format 1's bytes, pinned by `node/tests/data/format-v1/`.

use super::{AuditChain, SnapshotBody, StoredRecords};
use crate::admin::state::{hex_list, legacy_roots, Challenge};
use crate::admin::{AdminRecord, AdminState, ClientGrant, Policy};
use crate::protection::ethereum::Root;
use crate::protection::ProtectionState;
use crate::registry::Registry;
use serde::Deserialize;
use std::collections::BTreeMap;

/// [`AdminState`] as format 1 stored it: every field but `revoked`, in the same order.
#[derive(Deserialize)]
pub struct AdminStateV1 {
    bootstrapped: bool,
    cluster_id: String,
    admins: BTreeMap<String, AdminRecord>,
    policy: Policy,
    clients: BTreeMap<String, ClientGrant>,
    paused: bool,
    challenges: BTreeMap<String, Challenge>,
    #[serde(with = "hex_list", default = "legacy_roots")]
    attestation_roots: Vec<Vec<u8>>,
    #[serde(default)]
    genesis_validators_root: Option<Root>,
}

impl From<AdminStateV1> for AdminState {
    /// Format 1 had no revocations: none are revoked.
    fn from(v1: AdminStateV1) -> AdminState {
        AdminState {
            bootstrapped: v1.bootstrapped,
            cluster_id: v1.cluster_id,
            admins: v1.admins,
            policy: v1.policy,
            clients: v1.clients,
            paused: v1.paused,
            challenges: v1.challenges,
            attestation_roots: v1.attestation_roots,
            genesis_validators_root: v1.genesis_validators_root,
            revoked: BTreeMap::new(),
        }
    }
}

/// [`SnapshotBody`] as format 1 stored and sent it (its admin state in the format-1 layout).
#[derive(Deserialize)]
pub struct SnapshotBodyV1 {
    protection: ProtectionState,
    registry: Registry,
    admin: AdminStateV1,
    audit_chain: AuditChain,
    #[serde(with = "super::records_as_bytes")]
    audit_records: StoredRecords,
}

impl From<SnapshotBodyV1> for SnapshotBody {
    fn from(v1: SnapshotBodyV1) -> SnapshotBody {
        SnapshotBody {
            protection: v1.protection,
            registry: v1.registry,
            admin: v1.admin.into(),
            audit_chain: v1.audit_chain,
            audit_records: v1.audit_records,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::admin::RevokedCertificate;

    /// Format-1 bytes of a state: this version's encoding without the `revoked` map (the
    /// last field), under a format-1 header.
    fn as_format_1(state: &AdminState) -> Vec<u8> {
        assert!(state.revoked.is_empty());
        let mut bytes = crate::format::encode(state).unwrap();
        bytes[2] = 1;
        // An empty map is one varint 0 byte at the end.
        assert_eq!(bytes.pop(), Some(0));
        bytes
    }

    #[test]
    fn a_format_1_admin_state_upgrades_with_nothing_revoked() {
        let state = AdminState {
            bootstrapped: true,
            cluster_id: "c".into(),
            paused: true,
            genesis_validators_root: Some(crate::bytes::FixedBytes([4; 32])),
            ..AdminState::default()
        };
        let v1 = as_format_1(&state);
        let upgraded: AdminState =
            crate::format::decode_upgrading::<AdminState, AdminStateV1>(&v1).unwrap();
        assert_eq!(upgraded, state);
        // Format-2 bytes are read as they are, revocations included.
        let mut revoked = state.clone();
        revoked.revoked.insert(
            "ab".repeat(32),
            RevokedCertificate {
                identity: Some("seq-2".into()),
            },
        );
        let v2 = crate::format::encode(&revoked).unwrap();
        assert_eq!(
            crate::format::decode_upgrading::<AdminState, AdminStateV1>(&v2).unwrap(),
            revoked
        );
    }
}
