//! Target `admin_action`: canonical admin action bytes (`signer.v1.AdminAction`), which an admin
//! proposes on the client port, every replica decodes in `apply`, and every approver decodes in
//! `signerctl` to read before signing (`admin::codec`, `Action::{describe, review}`,
//! `signer_client::review`), and the whole approved path: bootstrap, propose, one approval,
//! execution (`Applied::apply`).
//!
//! Owns: a one-admin development cluster (threshold 1, an Ed25519 key from a fixed seed) and
//! the properties. Must not: hold any secret a node would use (the key is a test constant).
//!
//! Properties: a decoded action re-encodes to bytes that decode to the same action, and that
//! encoding is stable; the description of the bytes is the action's; the approver's review
//! accepts the bytes exactly when they decode, with the same action; undecodable bytes never
//! open a challenge; proposing and approving is deterministic on two replicas, and every audit
//! record written decodes and re-encodes to its bytes.

use ed25519_dalek::Signer as _;
use signer_node::admin::approval;
use signer_node::admin::codec::{decode_action, describe_bytes, encode_action};
use signer_node::admin::state::Bootstrap;
use signer_node::admin::{Action, AdminCommand, AdminRecord, ApproverKey, Policy};
use signer_node::bytes::FixedBytes;
use signer_node::pb;
use signer_node::protection::interchange;
use signer_node::state::{Applied, Command};
use std::collections::BTreeMap;

const CLUSTER: &str = "fuzz-cluster";
const ADMIN: &str = "admin-1";
const ID: [u8; 32] = [7; 32];
const AT_MS: u64 = 1_700_000_000_000;

/// One fuzz input.
pub fn check(data: &[u8]) {
    let decoded = decode_action(data);
    let description = describe_bytes(data);
    match &decoded {
        Ok(action) => {
            let bytes = encode_action(action);
            let again = decode_action(&bytes).expect("an encoded action decodes");
            assert_eq!(&again, action, "action round trip");
            assert_eq!(
                encode_action(&again),
                bytes,
                "action encoding is not stable"
            );
            assert_eq!(description, action.describe());
            let _ = action.review();
        }
        Err(_) => assert!(description.starts_with("undecodable action")),
    }
    let challenge = pb::Challenge {
        id: ID.to_vec(),
        cluster_id: CLUSTER.into(),
        action: data.to_vec(),
        action_digest: approval::action_digest(data).to_vec(),
        ..Default::default()
    };
    match (signer_node::client::review(&challenge, CLUSTER), &decoded) {
        (Ok(reviewed), Ok(action)) => assert_eq!(&reviewed.action, action),
        (Err(_), Err(_)) => {}
        (r, d) => panic!(
            "the approver's review ({}) and the decoder ({}) disagree",
            r.is_ok(),
            d.is_ok()
        ),
    }
    let gvr = match &decoded {
        Ok(Action::ImportProtection { interchange, .. }) => interchange::parse(interchange)
            .map(|doc| doc.genesis_validators_root)
            .ok(),
        _ => None,
    };
    let a = execute(data, gvr);
    let b = execute(data, gvr);
    assert_eq!(a, b, "admin apply is not deterministic");
    if decoded.is_err() {
        assert!(
            a.admin.challenges.is_empty(),
            "undecodable action bytes opened a challenge"
        );
    }
}

fn admin_key() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[0x11; 32])
}

fn run(applied: &mut Applied, command: AdminCommand, index: u64) {
    let (_, changes) = applied.apply(&Command::Admin(command), index, AT_MS + index);
    for (seq, bytes) in &changes.audit {
        let record = signer_node::audit::decode(bytes).expect("an admin audit record decodes");
        assert_eq!(record.seq, *seq);
        assert_eq!(&signer_node::audit::encode(&record), bytes);
    }
}

/// Bootstrap a one-admin cluster, propose `bytes`, approve them: the state afterwards.
fn execute(bytes: &[u8], gvr: Option<FixedBytes<32>>) -> Applied {
    let key = admin_key();
    let mut applied = Applied::default();
    let bootstrap = Bootstrap {
        cluster_id: CLUSTER.into(),
        admins: vec![AdminRecord {
            name: ADMIN.into(),
            key: ApproverKey::Ed25519(key.verifying_key().to_bytes().to_vec()),
            attestation: None,
        }],
        policy: Policy::default(),
        clients: BTreeMap::new(),
        attestation_roots: signer_node::admin::attestation::yubico_roots(),
        genesis_validators_root: gvr,
    };
    run(&mut applied, AdminCommand::Bootstrap(bootstrap), 1);
    run(
        &mut applied,
        AdminCommand::Propose {
            id: ID,
            proposer: ADMIN.into(),
            action_bytes: bytes.to_vec(),
        },
        2,
    );
    let Some(c) = applied.admin.challenges.get(&hex::encode(ID)) else {
        return applied;
    };
    let statement = approval::statement(CLUSTER, &c.id, &c.digest, c.expires_at_ms);
    let signature = key.sign(&statement).to_bytes().to_vec();
    run(
        &mut applied,
        AdminCommand::Approve {
            id: ID,
            admin: ADMIN.into(),
            signature,
        },
        3,
    );
    applied
}
