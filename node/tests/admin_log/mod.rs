//! Admin commands for tests that apply a log to the state machine directly: one development
//! admin (Ed25519, policy 1 of 1) that bootstraps the cluster and approves actions — the only
//! way keys, grants, policy and the audit log change.
//!
//! Must not: reach around the admin gate (it builds the same Propose/Approve entries a cluster
//! commits, with real approval signatures).
#![allow(dead_code)]

use ed25519_dalek::Signer as _;
use signer_node::admin::state::Bootstrap;
use signer_node::admin::{approval, Action, AdminCommand, AdminRecord, ApproverKey, Policy};
use signer_node::custody::{BackendKind, KekRef, SealedKey};
use signer_node::protection::Profile;
use signer_node::registry::{KeyRecord, KeyState};
use signer_node::replica::Command;

/// An active registry record for `public_key`, sealed under a placeholder local KEK: enough
/// for the state machine (which never unseals), not for a node's key loader.
pub fn record(key_id: &str, profile: Profile, public_key: Vec<u8>) -> KeyRecord {
    KeyRecord {
        key_id: key_id.into(),
        profile,
        public_key,
        sealed: Some(SealedKey {
            kek: KekRef {
                backend: BackendKind::Local,
                key_id: "test".into(),
            },
            wrapped_dek: vec![0; 60],
            nonce: [0; 12],
            ciphertext: vec![0; 48],
        }),
        state: KeyState::Active,
        origin: "generated".into(),
    }
}

/// `admin-1` of cluster `cluster_id`.
pub struct SoloAdmin {
    cluster_id: &'static str,
    key: ed25519_dalek::SigningKey,
}

impl SoloAdmin {
    /// The admin of `cluster_id`, with a key derived from `seed`.
    pub fn new(cluster_id: &'static str, seed: u8) -> SoloAdmin {
        SoloAdmin {
            cluster_id,
            key: ed25519_dalek::SigningKey::from_bytes(&[seed; 32]),
        }
    }

    /// The bootstrap entry: this admin alone, the default policy, no client grants.
    pub fn bootstrap(&self) -> Command {
        Command::Admin(AdminCommand::Bootstrap(Bootstrap {
            cluster_id: self.cluster_id.into(),
            admins: vec![AdminRecord {
                name: "admin-1".into(),
                key: ApproverKey::Ed25519(self.key.verifying_key().to_bytes().to_vec()),
                attestation: None,
            }],
            policy: Policy::default(),
            clients: Default::default(),
            attestation_roots: Vec::new(),
            genesis_validators_root: None,
        }))
    }

    /// `action` proposed as challenge `[id; 32]` and approved, as two entries; the proposal
    /// must be applied at `at_ms` (the challenge expires a policy TTL later).
    pub fn approved(&self, id: u8, action: &Action, at_ms: u64) -> Vec<Command> {
        let bytes = signer_node::admin::codec::encode_action(action);
        let expires = at_ms + Policy::default().challenge_ttl_ms;
        let statement = approval::statement(
            self.cluster_id,
            &[id; 32],
            &approval::action_digest(&bytes),
            expires,
        );
        vec![
            Command::Admin(AdminCommand::Propose {
                id: [id; 32],
                proposer: "admin-1".into(),
                action_bytes: bytes,
            }),
            Command::Admin(AdminCommand::Approve {
                id: [id; 32],
                admin: "admin-1".into(),
                signature: self.key.sign(&statement).to_bytes().to_vec(),
            }),
        ]
    }
}

/// Apply `commands` to `sm` as log entries of term 1 from index `first` on, each proposed at
/// `at_ms`; returns the index after the last.
pub async fn apply_commands(
    sm: &mut signer_node::replica::StateMachine,
    first: u64,
    at_ms: u64,
    commands: Vec<Command>,
) -> u64 {
    use openraft::entry::RaftEntry;
    use openraft::storage::RaftStateMachine;
    let next = first + commands.len() as u64;
    let entries = commands.into_iter().zip(first..).map(|(command, index)| {
        Ok((
            signer_node::replica::Entry::new(
                openraft::testing::log_id::<signer_node::replica::TypeConfig>(1, 1, index),
                openraft::EntryPayload::Normal(signer_node::replica::Proposal { at_ms, command }),
            ),
            None,
        ))
    });
    sm.apply(futures::stream::iter(entries)).await.unwrap();
    next
}
