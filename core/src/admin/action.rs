//! The admin actions, as the state machine applies them, and their description in words.
//!
//! Owns: [`Action`], [`EnrollKey`], [`Prior`] (what an action replaces, as proposed) and
//! [`Action::describe`] (the one-line description; the rest of what approvers read is
//! [`super::review`]). Must not: encode actions (that is
//! [`super::codec`]: an action's digest is over its protobuf encoding, `signer.v1.AdminAction`,
//! and the state machine executes what those bytes decode to), or apply them (that is
//! [`super::state`] for admin-plane state and the replica's state machine for keys and
//! protection records).
//!
//! Actions are complete: whatever needs randomness or a KMS (generating and sealing a key,
//! re-sealing under a new KEK) is done by the proposing node before the challenge exists, so
//! approvers approve exactly the record that will be committed, and applying is deterministic.
//! What needs checking against trust anchors (an attestation chain) is not done for the
//! action: it carries the evidence, and every replica checks it when applying.

use super::membership::{node_name, NewNode, NodeChange};
use super::revocation::{describe_certificate, Fingerprint};
use super::{attestation, ApproverKey, ClientGrant, Policy};
use crate::protection::espresso::ViewHorizon;
use crate::protection::interchange::{self, review::RecordSeen};
use crate::registry::{KeyRecord, KeyState, Rewrap};
use crate::scheme::validator::public_key_text;
use serde::{Deserialize, Serialize};

/// One admin action.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    /// Add a key (generated in the cluster or imported), sealed under the KEK.
    AddKey(KeyRecord),
    /// Enable, disable or delete a key.
    SetKeyState {
        /// The key.
        key_id: String,
        /// Its new state.
        state: KeyState,
    },
    /// Re-wrap keys under the current KEK (all or nothing).
    RotateKek(Vec<Rewrap>),
    /// Give a client identity access (replaces its previous grant).
    GrantClient {
        /// The client identity (certificate SAN).
        identity: String,
        /// What it may do.
        grant: ClientGrant,
        /// Its grant when proposed (`None`: it had none); applying refuses the action once
        /// the identity's grant is another.
        prior: Prior<Option<ClientGrant>>,
    },
    /// Remove a client identity's access.
    RevokeClient {
        /// The client identity.
        identity: String,
        /// The grant revoked, as it was when proposed; applying refuses the action once the
        /// identity's grant is another.
        prior: Prior<ClientGrant>,
    },
    /// Enroll an admin.
    EnrollAdmin {
        /// The admin's name (the identity of their client certificate).
        name: String,
        /// Their key, and what proves it.
        key: EnrollKey,
    },
    /// Remove an admin.
    RemoveAdmin {
        /// The admin's name.
        name: String,
    },
    /// Replace the approval policy.
    SetPolicy(Policy),
    /// Set the Espresso view horizon: how far ahead of a key's last vote its proposals and DA
    /// votes may run ([`ViewHorizon`]).
    SetEspressoViewHorizon(ViewHorizon),
    /// Import an EIP-3076 interchange document (watermarks only go up).
    ImportProtection {
        /// The document (JSON), as checked by the proposing node.
        interchange: String,
        /// Import even if the file is slashable on its own, keeping only the maxima.
        minify: bool,
        /// The cluster's records of the file's validators when proposed (one per distinct
        /// validator, ascending public key; `None`: no record); applying refuses the import
        /// once they are lower or differ at the watermark ([`interchange::review::check_seen`]).
        prior: Prior<Vec<Option<RecordSeen>>>,
    },
    /// Stop all signing until resumed.
    Pause,
    /// Resume signing.
    Resume,
    /// Drop audit records up to `up_to_seq` (export them first); the chain stays verifiable
    /// from the kept anchor hash.
    CompactAudit {
        /// The last record to drop.
        up_to_seq: u64,
    },
    /// Revoke one client or node certificate: every node refuses it on every authenticated
    /// call (client port, Web3Signer API, peer port) once it applied this action.
    RevokeCertificate {
        /// SHA-256 of the certificate's DER bytes.
        fingerprint: Fingerprint,
        /// The certificate itself (DER) when the proposer had it, else empty. When present,
        /// `apply` checks that it has this fingerprint, and records the identity it names.
        #[serde(with = "crate::bytes::hex_or_raw")]
        certificate: Vec<u8>,
    },
    /// Add a node: the leader adds it as a learner, waits until it is caught up, then makes it
    /// a voter ([`super::membership`]).
    AddNode(NewNode),
    /// Remove a voter; its id is never a member again.
    RemoveNode {
        /// The node's id (`node-<id>`).
        id: u64,
    },
    /// Replace a (dead) voter by a new node: the new one is added as a learner and caught up,
    /// then one joint change swaps them; the old id is never a member again.
    ReplaceNode {
        /// The voter to remove.
        old: u64,
        /// The node that takes its place.
        new: NewNode,
    },
}

/// What an action replaces, as the proposing node's applied state held it when it prepared
/// the action. It travels inside the action, so approvers review the change against it (every
/// approver the same text, under the digest they sign), and every replica checks it again when
/// applying: an action whose prior no longer holds (a stale or lying proposing node, or a
/// change applied meanwhile) fails and changes nothing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Prior<T> {
    /// Not recorded: the action is in its older encoding, from a signer that did not record
    /// what it replaces. Nothing is checked; the review says so.
    Unrecorded,
    /// What the applied state held.
    Recorded(T),
}

/// The key of an admin to enroll, as the action carries it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EnrollKey {
    /// A development Ed25519 key, without attestation: accepted only while the policy does not
    /// require attestation.
    Development {
        /// The 32-byte public key.
        #[serde(with = "crate::bytes::hex_or_raw")]
        ed25519_public_key: Vec<u8>,
    },
    /// A YubiKey PIV key, proven by its attestation. There is no separate public key: the
    /// admin's key is the one in the slot certificate, once the chain verifies against the
    /// cluster's replicated roots (checked in `apply`, on every replica).
    YubiKey {
        /// The slot 9c attestation certificate (DER).
        #[serde(with = "crate::bytes::hex_or_raw")]
        slot_certificate: Vec<u8>,
        /// The device (f9) attestation certificate (DER).
        #[serde(with = "crate::bytes::hex_or_raw")]
        device_certificate: Vec<u8>,
    },
}

impl EnrollKey {
    /// The key in words. For a YubiKey, what its slot certificate claims (the chain is not
    /// verified here; applying the action verifies it).
    pub fn describe(&self) -> String {
        match self {
            EnrollKey::Development { ed25519_public_key } => format!(
                "{} (development key (no attestation))",
                ApproverKey::Ed25519(ed25519_public_key.clone()).to_text()
            ),
            EnrollKey::YubiKey {
                slot_certificate, ..
            } => match attestation::inspect_slot(slot_certificate) {
                Ok(claimed) => {
                    let f = claimed.facts();
                    format!(
                        "{} (YubiKey serial {} firmware {} touch {} pin {}, as its attestation \
                         claims; every node verifies the chain when applying)",
                        ApproverKey::from(&claimed.public_key).to_text(),
                        f.serial,
                        f.firmware,
                        f.touch_policy,
                        f.pin_policy
                    )
                }
                Err(e) => format!("a YubiKey attestation that does not check out ({e})"),
            },
        }
    }
}

impl Action {
    /// Whether the action changes the key registry or the protection records (applied by the
    /// replicated state against them), rather than the admin plane's own state.
    pub fn is_record_action(&self) -> bool {
        matches!(
            self,
            Action::AddKey(_)
                | Action::SetKeyState { .. }
                | Action::RotateKek(_)
                | Action::ImportProtection { .. }
                | Action::CompactAudit { .. }
        )
    }

    /// The action in words, for approvers and the audit log.
    pub fn describe(&self) -> String {
        match self {
            Action::AddKey(r) => format!(
                "add {} {} key {:?} with public key {}",
                r.origin,
                r.profile,
                r.key_id,
                public_key_text(r.profile, &r.public_key)
            ),
            Action::SetKeyState { key_id, state } => format!("set key {key_id:?} to {state}"),
            Action::RotateKek(items) => {
                let keys: Vec<&str> = items.iter().map(|r| r.key_id.as_str()).collect();
                format!("re-wrap {} key(s) under the current KEK: {}", items.len(), keys.join(", "))
            }
            Action::GrantClient {
                identity, grant, ..
            } => format!("grant client {identity:?} {}", grant.describe()),
            Action::RevokeClient { identity, .. } => format!("revoke client {identity:?}"),
            Action::EnrollAdmin { name, key } => {
                format!("enroll admin {name:?} with {}", key.describe())
            }
            Action::RemoveAdmin { name } => format!("remove admin {name:?}"),
            Action::SetPolicy(p) => format!(
                "set approval policy: {} approval(s), attestation {}, touch always {}, challenges valid {} s",
                p.threshold,
                if p.require_attestation { "required" } else { "optional" },
                if p.require_touch_always { "required" } else { "optional" },
                p.challenge_ttl_ms / 1000
            ),
            Action::ImportProtection {
                interchange: text,
                minify,
                ..
            } => {
                let minified = if *minify { ", minified" } else { "" };
                match interchange::parse(text) {
                    Ok(doc) => format!(
                        "import slashing-protection interchange for genesis validators root {}: \
                         {} validator(s), {} block and {} attestation record(s){minified}",
                        doc.genesis_validators_root,
                        doc.merged().len(),
                        doc.data.iter().map(|v| v.signed_blocks.len()).sum::<usize>(),
                        doc.data.iter().map(|v| v.signed_attestations.len()).sum::<usize>(),
                    ),
                    Err(e) => format!(
                        "import a slashing-protection interchange that does not parse ({} \
                         bytes{minified}): {e}",
                        text.len()
                    ),
                }
            }
            Action::SetEspressoViewHorizon(h) => format!(
                "set the Espresso view horizon to {h}: refuse a DA vote, proposal, upgrade \
                 message or VID disperse more than {} views above the key's last vote",
                h.views()
            ),
            Action::Pause => "pause all signing".to_owned(),
            Action::Resume => "resume signing".to_owned(),
            Action::CompactAudit { up_to_seq } => format!(
                "compact the audit log: drop records up to {up_to_seq} (export them first)"
            ),
            Action::RevokeCertificate { fingerprint, certificate } => format!("revoke certificate sha256 {fingerprint} ({})", describe_certificate(certificate)),
            Action::AddNode(n) => format!(
                "add {} (client {}, peer {}): a learner until caught up, then a voter",
                node_name(n.id), n.client_addr, n.peer_addr
            ),
            Action::RemoveNode { id } => format!(
                "remove {} from the voters (its id can never rejoin)",
                node_name(*id)
            ),
            Action::ReplaceNode { old, new } => format!(
                "replace {} by {} (client {}, peer {}): {} joins as a learner, then one joint \
                 change swaps them ({} can never rejoin)",
                node_name(*old), node_name(new.id), new.client_addr, new.peer_addr,
                node_name(new.id), node_name(*old)
            ),
        }
    }

    /// The membership change this action makes, if it makes one.
    pub fn node_change(&self) -> Option<NodeChange<'_>> {
        match self {
            Action::AddNode(n) => Some(NodeChange::Add(n)),
            Action::RemoveNode { id } => Some(NodeChange::Remove(*id)),
            Action::ReplaceNode { old, new } => Some(NodeChange::Replace { old: *old, new }),
            _ => None,
        }
    }

    /// The node id this action removes from the cluster for good, if any.
    pub fn retires(&self) -> Option<u64> {
        match self {
            Action::RemoveNode { id } => Some(*id),
            Action::ReplaceNode { old, .. } => Some(*old),
            _ => None,
        }
    }
}
