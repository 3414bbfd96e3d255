//! The keyring cache against a real local KEK: what opens, what an entry stands in for, what a
//! hostile file gets, and a generated sequence of operations checked against a model.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::custody::counting::CountingKek as Counting;
use crate::custody::seal;
use crate::protection::Profile;
use crate::registry::KeyState;
use proptest::prelude::*;

const CLUSTER: &str = "c";

fn secret(seed: u8) -> [u8; 32] {
    let mut s = [0u8; 32];
    s[31] = seed;
    s
}

/// A record of `key_id` with `seed`'s secret sealed under `kek` (each call seals anew, so two
/// records of the same secret have different sealed bytes).
async fn record(kek: &impl Kek, key_id: &str, seed: u8) -> KeyRecord {
    let ctx = EncryptionContext::validator_key(CLUSTER, key_id).unwrap();
    KeyRecord {
        key_id: key_id.into(),
        profile: Profile::Eth2,
        public_key: vec![seed; 48],
        sealed: Some(seal(kek, &ctx, &secret(seed)).await.unwrap()),
        state: KeyState::Active,
        origin: "generated".into(),
    }
}

fn exposed(secret: Option<SecretBytes>) -> Option<Vec<u8>> {
    secret.map(|s| s.expose_secret().to_vec())
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_restart_opens_every_cached_key_with_one_unwrap() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let kek = Counting::create(dir.path(), "kek");
        let records = [
            record(&kek, "a", 1).await,
            record(&kek, "b", 2).await,
            record(&kek, "c", 3).await,
        ];
        let before = kek.calls();

        let cache = KeyringCache::new(dir.path(), CLUSTER, 1).unwrap();
        assert_eq!(
            cache.open(&kek).await.unwrap(),
            Opened::Fresh("no cache file yet".into())
        );
        for (r, seed) in records.iter().zip(1..) {
            cache.remember(r, &secret(seed)).unwrap();
        }
        cache.flush().await.unwrap();
        assert_eq!(
            kek.calls(),
            (before.0 + 1, before.1),
            "one generate, no unwrap"
        );
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(cache.path()).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);

        let restarted = KeyringCache::new(dir.path(), CLUSTER, 1).unwrap();
        assert_eq!(restarted.open(&kek).await.unwrap(), Opened::Read(3));
        assert_eq!(restarted.open(&kek).await.unwrap(), Opened::AlreadyOpen);
        for (r, seed) in records.iter().zip(1..) {
            assert_eq!(
                exposed(restarted.secret_for(r)),
                Some(secret(seed).to_vec()),
                "{}",
                r.key_id
            );
        }
        assert_eq!(kek.calls(), (before.0 + 1, before.1 + 1), "one unwrap");
        // Nothing changed, so nothing is due.
        assert_eq!(restarted.flush_due(), None);
    });
}

#[test]
fn an_entry_stands_in_only_for_the_record_it_was_unsealed_from() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let kek = Counting::create(dir.path(), "kek");
        let a = record(&kek, "a", 1).await;
        let cache = KeyringCache::new(dir.path(), CLUSTER, 1).unwrap();
        cache.open(&kek).await.unwrap();
        cache.remember(&a, &secret(1)).unwrap();

        // The same key id and secret, sealed again (a KEK rotation re-wraps it): not this entry.
        let resealed = record(&kek, "a", 1).await;
        assert_eq!(exposed(cache.secret_for(&resealed)), None);
        // Another key's record carrying a's sealed bytes under its own id: not a's entry.
        let mut other = record(&kek, "b", 2).await;
        other.sealed = a.sealed.clone();
        assert_eq!(exposed(cache.secret_for(&other)), None);
        // A record without a sealed secret (deleted): nothing.
        let mut deleted = a.clone();
        deleted.sealed = None;
        assert_eq!(exposed(cache.secret_for(&deleted)), None);
        // The record itself: its secret.
        assert_eq!(exposed(cache.secret_for(&a)), Some(secret(1).to_vec()));
    });
}

/// Rewrites the cache file at `path` with `edit` applied to its decoded content.
fn edit_file(path: &Path, edit: impl FnOnce(&mut CacheFile)) {
    let mut file: CacheFile = signer_core::format::decode(&std::fs::read(path).unwrap()).unwrap();
    edit(&mut file);
    std::fs::write(path, signer_core::format::encode(&file).unwrap()).unwrap();
}

#[test]
fn a_hostile_file_gives_no_key_and_is_replaced() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let kek = Counting::create(dir.path(), "kek");
        let a = record(&kek, "a", 1).await;
        let b = record(&kek, "b", 2).await;
        let write = || async {
            let cache = KeyringCache::new(dir.path(), CLUSTER, 1).unwrap();
            cache.open(&kek).await.unwrap();
            cache.remember(&a, &secret(1)).unwrap();
            cache.remember(&b, &secret(2)).unwrap();
            cache.flush().await.unwrap();
            cache.path().to_path_buf()
        };

        // b's entry renamed to a (and bound to a's record): it does not authenticate.
        let path = write().await;
        edit_file(&path, |f| {
            let a_digest = f.entries[0].record_digest;
            f.entries.retain(|e| e.key_id == "b");
            f.entries[0].key_id = "a".into();
            f.entries[0].record_digest = a_digest;
        });
        let cache = KeyringCache::new(dir.path(), CLUSTER, 1).unwrap();
        assert_eq!(cache.open(&kek).await.unwrap(), Opened::Read(1));
        assert_eq!(exposed(cache.secret_for(&a)), None);
        assert_eq!(
            cache.key_ids(),
            Vec::<String>::new(),
            "the bad entry is dropped"
        );
        assert_eq!(
            cache.flush_due(),
            Some(Duration::ZERO),
            "and the file is rewritten"
        );

        // A flipped ciphertext bit: that entry gives nothing, the other still opens.
        let path = write().await;
        edit_file(&path, |f| f.entries[1].ciphertext[0] ^= 1);
        let cache = KeyringCache::new(dir.path(), CLUSTER, 1).unwrap();
        assert_eq!(cache.open(&kek).await.unwrap(), Opened::Read(2));
        assert_eq!(exposed(cache.secret_for(&b)), None);
        assert_eq!(exposed(cache.secret_for(&a)), Some(secret(1).to_vec()));

        // Another node's file (copied here), another cluster's, another KEK's, or a file cut
        // short: not opened; the cache starts empty under a fresh data key.
        let path = write().await;
        let node2 = KeyringCache::new(dir.path(), CLUSTER, 2).unwrap();
        match node2.open(&kek).await.unwrap() {
            Opened::Fresh(reason) => assert!(
                reason.starts_with(
                    "its data key does not unwrap: data key does not unwrap under local KEK"
                ),
                "{reason}"
            ),
            other => panic!("{other:?}"),
        }
        assert_eq!(exposed(node2.secret_for(&a)), None);
        let elsewhere = KeyringCache::new(dir.path(), "other-cluster", 1).unwrap();
        assert!(matches!(
            elsewhere.open(&kek).await.unwrap(),
            Opened::Fresh(_)
        ));
        assert_eq!(exposed(elsewhere.secret_for(&a)), None);

        let other_kek = Counting::create(dir.path(), "other-kek");
        let under_other = KeyringCache::new(dir.path(), CLUSTER, 1).unwrap();
        assert_eq!(
            under_other.open(&other_kek).await.unwrap(),
            Opened::Fresh(format!(
                "sealed under KEK {}, not the current KEK {}",
                kek.descriptor(),
                other_kek.descriptor()
            ))
        );

        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
        let cut = KeyringCache::new(dir.path(), CLUSTER, 1).unwrap();
        match cut.open(&kek).await.unwrap() {
            Opened::Fresh(reason) => {
                assert!(
                    reason.starts_with("not a keyring cache of this build: "),
                    "{reason}"
                )
            }
            other => panic!("{other:?}"),
        }
        // A file larger than any cache is not read at all.
        let huge = std::fs::File::create(&path).unwrap();
        huge.set_len(MAX_FILE + 1).unwrap();
        let too_large = KeyringCache::new(dir.path(), CLUSTER, 1).unwrap();
        assert_eq!(
            too_large.open(&kek).await.unwrap(),
            Opened::Fresh(format!(
                "{} bytes, larger than a keyring cache ({MAX_FILE} bytes at most)",
                MAX_FILE + 1
            ))
        );

        // A fresh cache replaces whatever file was there at its first flush.
        assert_eq!(cut.flush_due(), Some(Duration::ZERO));
        cut.flush().await.unwrap();
        let again = KeyringCache::new(dir.path(), CLUSTER, 1).unwrap();
        assert_eq!(again.open(&kek).await.unwrap(), Opened::Read(0));
    });
}

#[test]
fn a_removal_is_due_at_once_and_an_addition_within_the_interval() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let kek = Counting::create(dir.path(), "kek");
        let a = record(&kek, "a", 1).await;
        let b = record(&kek, "b", 2).await;
        let cache = KeyringCache::new(dir.path(), CLUSTER, 1).unwrap();
        // Closed: nothing to write, nothing remembered.
        assert_eq!(cache.flush_due(), None);
        cache.remember(&a, &secret(1)).unwrap();
        assert_eq!(cache.key_ids(), Vec::<String>::new());

        cache.open(&kek).await.unwrap();
        cache.flush().await.unwrap();
        assert_eq!(cache.flush_due(), None);
        cache.remember(&a, &secret(1)).unwrap();
        let due = cache.flush_due().unwrap();
        assert!(due > Duration::ZERO && due <= FLUSH_INTERVAL, "{due:?}");
        cache.flush().await.unwrap();
        cache.remember(&b, &secret(2)).unwrap();
        cache.forget("a");
        assert_eq!(cache.flush_due(), Some(Duration::ZERO));
        cache.flush().await.unwrap();
        let reopened = KeyringCache::new(dir.path(), CLUSTER, 1).unwrap();
        reopened.open(&kek).await.unwrap();
        assert_eq!(reopened.key_ids(), ["b"]);
        // Forgetting what is not there changes nothing.
        reopened.forget("a");
        assert_eq!(reopened.flush_due(), None);
        // `retain` drops what its predicate refuses, and makes the rewrite due.
        reopened.retain(|id, _| id != "b");
        assert_eq!(reopened.key_ids(), Vec::<String>::new());
        assert_eq!(reopened.flush_due(), Some(Duration::ZERO));
    });
}

#[test]
fn a_failed_write_is_retried_after_the_interval_not_in_a_loop() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let kek = Counting::create(dir.path(), "kek");
        let a = record(&kek, "a", 1).await;
        // The "data directory" is a regular file: nothing can be written in it.
        let not_a_dir = dir.path().join("not-a-dir");
        std::fs::write(&not_a_dir, b"").unwrap();
        let cache = KeyringCache::new(&not_a_dir, CLUSTER, 1).unwrap();
        cache.open(&kek).await.unwrap();
        cache.remember(&a, &secret(1)).unwrap();
        cache.forget("a");
        match cache.flush().await {
            Err(CacheError::Io { path, source }) => {
                assert_eq!(path, not_a_dir.join(FILE_NAME));
                assert_eq!(source.kind(), std::io::ErrorKind::NotADirectory, "{source}");
            }
            other => panic!("{other:?}"),
        }
        let due = cache.flush_due().unwrap();
        assert!(
            due > Duration::ZERO && due <= FLUSH_INTERVAL,
            "a failed removal is retried after a wait, got {due:?}"
        );
    });
}

/// One step of a generated sequence.
#[derive(Debug, Clone)]
enum Op {
    /// Seal key `id` again (a new record); the keyring would reload it.
    Reseal(usize),
    /// Remember key `id`'s current record.
    Remember(usize),
    /// Forget key `id`.
    Forget(usize),
    Flush,
    /// Drop the cache and open its file again (a restart).
    Restart,
    /// Look key `id`'s current record up.
    Lookup(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let id = 0..4usize;
    prop_oneof![
        id.clone().prop_map(Op::Reseal),
        id.clone().prop_map(Op::Remember),
        id.clone().prop_map(Op::Forget),
        Just(Op::Flush),
        Just(Op::Restart),
        id.prop_map(Op::Lookup),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Model: a map key id → the record version remembered, and the same map as last flushed.
    /// A lookup gives the secret exactly when the model holds that key at the record's current
    /// version (a restart reads the flushed map).
    #[test]
    fn generated_sequences_follow_the_model(ops in proptest::collection::vec(op(), 1..40)) {
        rt().block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let kek = Counting::create(dir.path(), "kek");
            let mut records = Vec::new();
            for id in 0..4u8 {
                records.push((record(&kek, &format!("k{id}"), id + 1).await, 0u32));
            }
            let mut cache = KeyringCache::new(dir.path(), CLUSTER, 1).unwrap();
            cache.open(&kek).await.unwrap();
            let mut model: BTreeMap<usize, u32> = BTreeMap::new();
            let mut flushed: BTreeMap<usize, u32> = BTreeMap::new();
            for op in ops {
                match op {
                    Op::Reseal(i) => {
                        let seed = u8::try_from(i).unwrap() + 1;
                        records[i] = (record(&kek, &format!("k{i}"), seed).await, records[i].1 + 1);
                    }
                    Op::Remember(i) => {
                        let seed = u8::try_from(i).unwrap() + 1;
                        cache.remember(&records[i].0, &secret(seed)).unwrap();
                        model.insert(i, records[i].1);
                    }
                    Op::Forget(i) => {
                        cache.forget(&format!("k{i}"));
                        model.remove(&i);
                    }
                    Op::Flush => {
                        cache.flush().await.unwrap();
                        flushed = model.clone();
                    }
                    Op::Restart => {
                        cache = KeyringCache::new(dir.path(), CLUSTER, 1).unwrap();
                        cache.open(&kek).await.unwrap();
                        model = flushed.clone();
                    }
                    Op::Lookup(i) => {
                        let seed = u8::try_from(i).unwrap() + 1;
                        let expected = (model.get(&i) == Some(&records[i].1))
                            .then(|| secret(seed).to_vec());
                        assert_eq!(exposed(cache.secret_for(&records[i].0)), expected, "k{i}");
                    }
                }
                let ids: Vec<String> = model.keys().map(|i| format!("k{i}")).collect();
                assert_eq!(cache.key_ids(), ids);
            }
        });
    }
}
