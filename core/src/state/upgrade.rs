//! The layouts of older formats that later formats changed, and their upgrade to this one:
//! format 2 added the revoked certificates to the admin state ([`AdminState::revoked`]), and
//! format 3 the Espresso view horizon ([`AdminState::espresso_view_horizon`]), so the admin
//! state and the snapshot body that carries it have a format-1 and a format-2 layout here.
//! Format 4 (shared data keys, [`crate::sealed::WrappedDataKey`]) changed no layout: format-3
//! data is read in this format's layout as it is.
//!
//! Owns: [`AdminStateV1`], [`AdminStateV2`], [`SnapshotBodyV1`], [`SnapshotBodyV2`], their
//! upgrades, and [`decode_admin_state`] / [`decode_snapshot_body`], which read stored data of
//! any format this build reads. Must not: be written (nothing encodes these types: a node
//! writes format 4 only), or change: their fields, types and order are those formats' bytes,
//! pinned by `node/tests/data/format-v1/` and `format-v2/`.

use super::{AuditChain, SnapshotBody, StoredRecords};
use crate::admin::state::{hex_list, legacy_roots, Challenge};
use crate::admin::{AdminRecord, AdminState, ClientGrant, Policy, RevokedCertificate};
use crate::format::{decode_body, decode_upgrading, FormatError};
use crate::protection::espresso::ViewHorizon;
use crate::protection::ethereum::Root;
use crate::protection::ProtectionState;
use crate::registry::Registry;
use serde::Deserialize;
use std::collections::BTreeMap;

/// A stored admin state of any format this build reads, upgraded to this format's layout.
pub fn decode_admin_state(bytes: &[u8]) -> Result<AdminState, FormatError> {
    decode_upgrading(bytes, |version, body| match version {
        1 => decode_body::<AdminStateV1>(body).map(AdminState::from),
        2 => decode_body::<AdminStateV2>(body).map(AdminState::from),
        // Format 3's layout is this format's.
        _ => decode_body::<AdminState>(body),
    })
}

/// A stored or backed-up snapshot body of any format this build reads, upgraded to this
/// format's layout.
pub fn decode_snapshot_body(bytes: &[u8]) -> Result<SnapshotBody, FormatError> {
    decode_upgrading(bytes, |version, body| match version {
        1 => decode_body::<SnapshotBodyV1>(body).map(SnapshotBody::from),
        2 => decode_body::<SnapshotBodyV2>(body).map(SnapshotBody::from),
        // Format 3's layout is this format's.
        _ => decode_body::<SnapshotBody>(body),
    })
}

/// [`AdminState`] as format 1 stored it: every field before `revoked`, in the same order.
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
        AdminState::from(AdminStateV2 {
            v1,
            revoked: BTreeMap::new(),
        })
    }
}

/// [`AdminState`] as format 2 stored it: format 1's fields, then `revoked`. (bincode writes a
/// struct as its fields one after the other, so format 1's fields nested here are read from
/// exactly the bytes of the same fields listed flat.)
#[derive(Deserialize)]
pub struct AdminStateV2 {
    v1: AdminStateV1,
    revoked: BTreeMap<String, RevokedCertificate>,
}

impl From<AdminStateV2> for AdminState {
    /// Format 2 had no configurable horizon: the one every signer used then.
    fn from(v2: AdminStateV2) -> AdminState {
        let v1 = v2.v1;
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
            revoked: v2.revoked,
            espresso_view_horizon: ViewHorizon::DEFAULT,
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

/// [`SnapshotBody`] as format 2 stored and sent it (its admin state in the format-2 layout).
#[derive(Deserialize)]
pub struct SnapshotBodyV2 {
    protection: ProtectionState,
    registry: Registry,
    admin: AdminStateV2,
    audit_chain: AuditChain,
    #[serde(with = "super::records_as_bytes")]
    audit_records: StoredRecords,
}

impl From<SnapshotBodyV2> for SnapshotBody {
    fn from(v2: SnapshotBodyV2) -> SnapshotBody {
        SnapshotBody {
            protection: v2.protection,
            registry: v2.registry,
            admin: v2.admin.into(),
            audit_chain: v2.audit_chain,
            audit_records: v2.audit_records,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::format::{encode, FormatError};

    /// Older-format bytes of a state: this version's encoding without the fields `version`
    /// did not have (the default horizon, 32, is the one varint byte at the end; an empty
    /// `revoked` map is the one byte before it), under that version's header.
    fn as_format(version: u8, state: &AdminState) -> Vec<u8> {
        assert_eq!(state.espresso_view_horizon, ViewHorizon::DEFAULT);
        let mut bytes = encode(state).unwrap();
        bytes[2] = version;
        assert_eq!(bytes.pop(), Some(32));
        if version == 1 {
            assert!(state.revoked.is_empty());
            assert_eq!(bytes.pop(), Some(0));
        }
        bytes
    }

    fn a_state() -> AdminState {
        AdminState {
            bootstrapped: true,
            cluster_id: "c".into(),
            paused: true,
            genesis_validators_root: Some(crate::bytes::FixedBytes([4; 32])),
            ..AdminState::default()
        }
    }

    #[test]
    fn a_format_1_admin_state_upgrades_with_nothing_revoked_and_the_default_horizon() {
        let state = a_state();
        let upgraded = decode_admin_state(&as_format(1, &state)).unwrap();
        assert_eq!(upgraded, state);
        assert_eq!(upgraded.espresso_view_horizon.views(), 32);
    }

    #[test]
    fn a_format_2_admin_state_keeps_its_revocations_and_gets_the_default_horizon() {
        let mut state = a_state();
        state.revoked.insert(
            "ab".repeat(32),
            RevokedCertificate {
                identity: Some("seq-2".into()),
            },
        );
        assert_eq!(decode_admin_state(&as_format(2, &state)).unwrap(), state);
    }

    #[test]
    fn a_format_3_or_4_admin_state_is_read_as_is_and_an_out_of_range_horizon_is_refused() {
        let mut state = a_state();
        state.espresso_view_horizon = ViewHorizon::new(7).unwrap();
        let bytes = encode(&state).unwrap();
        assert_eq!(bytes[2..4], [4, 0]);
        assert_eq!(bytes.last(), Some(&7));
        assert_eq!(decode_admin_state(&bytes).unwrap(), state);
        // Format 3: the same layout.
        let mut v3 = bytes.clone();
        v3[2] = 3;
        assert_eq!(decode_admin_state(&v3).unwrap(), state);
        for version in [3u8, 4] {
            for views in [0u8, 33] {
                let mut bad = bytes.clone();
                bad[2] = version;
                *bad.last_mut().unwrap() = views;
                assert_eq!(
                    decode_admin_state(&bad),
                    Err(FormatError::Malformed(
                        crate::protection::espresso::ViewHorizonError(u64::from(views)).to_string()
                    ))
                );
            }
        }
    }

    /// A snapshot body holding [`a_state`] with a horizon of 7 views and one revocation
    /// (fields format 1 and 2 did not have).
    fn a_body() -> SnapshotBody {
        let mut admin = a_state();
        admin.espresso_view_horizon = ViewHorizon::new(7).unwrap();
        admin.revoked.insert(
            "cd".repeat(32),
            RevokedCertificate {
                identity: Some("seq-3".into()),
            },
        );
        let applied = crate::state::Applied {
            admin,
            ..crate::state::Applied::default()
        };
        applied.snapshot_body(Vec::new())
    }

    #[test]
    fn a_format_3_snapshot_body_and_backup_are_read_as_is() {
        use crate::backup::{self, AppliedPosition, BackupHeader};
        use sha2::Digest as _;
        let body = a_body();
        let mut bytes = encode(&body).unwrap();
        assert_eq!(bytes[2..4], [4, 0]);
        bytes[2] = 3;
        assert_eq!(decode_snapshot_body(&bytes).unwrap(), body);

        // A backup a format-3 node wrote: header and body both under format 3's header.
        let header = BackupHeader {
            version: backup::VERSION,
            cluster_id: "c".into(),
            applied: AppliedPosition {
                term: 2,
                leader: 1,
                index: 9,
            },
            created_at_ms: 1_700_000_000_000,
            audit_head: body.audit_chain.head,
            members: Vec::new(),
        };
        let mut file = backup::encode(&header, &bytes).unwrap();
        let content = backup::MAGIC.len();
        assert_eq!(file[content..content + 4], [b'Q', b'S', 4, 0]);
        file[content + 2] = 3;
        // Re-seal the changed bytes as a format-3 node's file would be.
        let end = file.len() - backup::DIGEST_LEN;
        let digest: [u8; 32] = sha2::Sha256::digest(&file[..end]).into();
        file[end..].copy_from_slice(&digest);
        let restored = backup::decode(&file).unwrap();
        assert_eq!(restored.header, header);
        assert_eq!(restored.body, body);
        assert_eq!(restored.body.admin.espresso_view_horizon.views(), 7);
    }
}
