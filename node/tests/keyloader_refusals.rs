//! The key loader refuses a registry record whose sealed secret is not the record's key: the
//! unsealed secret's public key differs from the record's public key. The key stays pending
//! with the reason, on every retry, and nothing on the node can sign for the record. The
//! state machine is applied directly (approved admin entries, as a cluster commits them) and
//! a real local KEK seals and unseals.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod admin_log;

use openraft::type_config::TypeConfigExt;
use signer_node::admin::Action;
use signer_node::bytes::FixedBytes;
use signer_node::custody::{seal, EncryptionContext, KekBackend, LocalKek};
use signer_node::keyloader::{reconcile, Keks};
use signer_node::keyring::{Keyring, LoadedKey, PermitMismatch};
use signer_node::metrics::{MeteredKek, Metrics};
use signer_node::protection::ethereum::Eth2Intent;
use signer_node::protection::{Intent, Profile};
use signer_node::registry::{KeyRecord, KeyState};
use signer_node::replica::{
    decide_permits, EventSink, SignEntry, SignOutcome, StateMachine, TypeConfig,
};
use std::collections::BTreeMap;
use std::sync::Arc;

const CLUSTER: &str = "c";
const AT_MS: u64 = 1_700_000_000_000;
const MISMATCH: &str = "unsealed secret does not match the record's public key";

/// An eth2 secret (a big-endian scalar) whose last byte is `seed`.
fn secret(seed: u8) -> [u8; 32] {
    let mut s = [0u8; 32];
    s[31] = seed;
    s
}

fn public_key(seed: u8) -> Vec<u8> {
    LoadedKey::from_secret("any", Profile::Eth2, &secret(seed))
        .unwrap()
        .public_key
}

/// A record for `key_id` sealing `sealed_seed`'s secret under `kek`, naming `record_seed`'s
/// public key.
async fn record(
    kek: &MeteredKek<KekBackend>,
    key_id: &str,
    sealed_seed: u8,
    record_seed: u8,
) -> KeyRecord {
    let ctx = EncryptionContext::validator_key(CLUSTER, key_id).unwrap();
    KeyRecord {
        key_id: key_id.into(),
        profile: Profile::Eth2,
        public_key: public_key(record_seed),
        sealed: Some(seal(kek, &ctx, &secret(sealed_seed)).await.unwrap()),
        state: KeyState::Active,
        origin: "imported".into(),
    }
}

#[test]
fn a_secret_whose_public_key_is_not_the_records_stays_pending_and_never_signs() {
    TypeConfig::run(async {
        let dir = tempfile::tempdir().unwrap();
        let local = LocalKek::create(&dir.path().join("kek.key")).unwrap();
        let metrics = Arc::new(Metrics::new(1).unwrap());
        let keks = Keks::new(
            CLUSTER,
            vec![MeteredKek::new(KekBackend::Local(local), metrics)],
        );
        let kek = &keks.backends[0];
        // "swapped" seals secret 1 but names secret 2's public key; "good" is consistent.
        let swapped = record(kek, "swapped", 1, 2).await;
        let good = record(kek, "good", 3, 3).await;

        let mut sm = StateMachine::open(&dir.path().join("state.redb"), true).unwrap();
        let admin = admin_log::SoloAdmin::new(CLUSTER, 7);
        let mut commands = vec![admin.bootstrap()];
        commands.extend(admin.approved(1, &Action::AddKey(swapped.clone()), AT_MS));
        commands.extend(admin.approved(2, &Action::AddKey(good.clone()), AT_MS));
        admin_log::apply_commands(&mut sm, 1, AT_MS, commands).await;
        assert_eq!(sm.read().registry.keys["swapped"], swapped);
        assert_eq!(sm.read().registry.keys["good"], good);

        let keyring = Keyring::default();
        let events = EventSink::disabled(1);
        // Every retry gives the same answer: pending, with the reason; the consistent record
        // beside it loads.
        for attempt in 0..3 {
            let pending = reconcile(&keks, None, &sm, &keyring, &events).await;
            assert!(pending, "attempt {attempt}: reported nothing pending");
            assert!(
                keyring.get("swapped").is_none(),
                "attempt {attempt}: the swapped secret was loaded"
            );
            assert_eq!(
                keyring.pending(),
                BTreeMap::from([("swapped".to_owned(), MISMATCH.to_owned())]),
                "attempt {attempt}"
            );
            let loaded: Vec<(String, Vec<u8>)> = keyring
                .keys()
                .iter()
                .map(|k| (k.key_id.clone(), k.public_key.clone()))
                .collect();
            assert_eq!(loaded, [("good".to_owned(), public_key(3))]);
        }

        // Nothing can sign for the record. Even if the state machine allowed a message for it
        // (the permit names the record's id and public key, as the sign path builds it), the
        // node holds no key under the id, and the secret that was sealed refuses the permit.
        let entry = SignEntry {
            request_id: String::new(),
            client: "seq-1".into(),
            key_id: "swapped".into(),
            intent: Intent::Eth2(Eth2Intent::Block {
                pubkey: FixedBytes(swapped.public_key.clone().try_into().unwrap()),
                slot: 5,
                signing_root: FixedBytes([7; 32]),
            }),
        };
        let mut decided = decide_permits(&[entry], vec![SignOutcome::Signed]).unwrap();
        let permit = decided.remove(0).permit.unwrap();
        let sealed_secret = LoadedKey::from_secret("swapped", Profile::Eth2, &secret(1)).unwrap();
        assert_ne!(sealed_secret.public_key, swapped.public_key);
        assert_eq!(
            sealed_secret.sign(permit),
            Err(PermitMismatch {
                permit_key_id: "swapped".into()
            })
        );

        // A corrected record (the sealed secret's own public key, under a new id) loads.
        let corrected = record(kek, "corrected", 1, 1).await;
        admin_log::apply_commands(
            &mut sm,
            6,
            AT_MS,
            admin.approved(3, &Action::AddKey(corrected.clone()), AT_MS),
        )
        .await;
        assert!(reconcile(&keks, None, &sm, &keyring, &events).await);
        assert_eq!(
            keyring.get("corrected").unwrap().public_key,
            public_key(1),
            "the key loader loads a consistent record"
        );
        assert_eq!(
            keyring.pending(),
            BTreeMap::from([("swapped".to_owned(), MISMATCH.to_owned())])
        );
    });
}
