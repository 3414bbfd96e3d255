//! Shared data keys against a real local KEK whose calls are counted: how many KEK calls
//! sealing and opening take, and every way a record of a shared key must fail closed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::custody::counting::{failure, CountingKek};
use crate::custody::{seal, unseal, unseal_in, LocalKek};
use proptest::prelude::*;
use std::collections::BTreeSet;

const CLUSTER: &str = "dev";

fn ctx(key_id: &str) -> EncryptionContext {
    EncryptionContext::validator_key(CLUSTER, key_id).unwrap()
}

fn secret(i: usize) -> Vec<u8> {
    format!("secret of key {i:05} .........").into_bytes()
}

/// The shared key id a record names (panics on a record's own key).
fn shared_id(sealed: &SealedKey) -> [u8; DATA_KEY_ID_LEN] {
    match sealed.data_key().unwrap() {
        WrappedDataKey::Shared { id, .. } => id,
        other => panic!("not a shared key: {other:?}"),
    }
}

/// `count` records `key-<i>` of `secret(i)`, sealed one after another by one new sealer.
async fn seal_keys(kek: &CountingKek, count: usize) -> Vec<(String, SealedKey)> {
    let sealer = SharedSealer::new();
    let mut records = Vec::new();
    for i in 0..count {
        let key_id = format!("key-{i}");
        let sealed = sealer.seal(kek, &ctx(&key_id), &secret(i)).await.unwrap();
        records.push((key_id, sealed));
    }
    records
}

/// The local KEK's refusal of shared key `id` of cluster `dev`.
fn not_unwrapped(kek: &LocalKek, id: &[u8; DATA_KEY_ID_LEN]) -> String {
    format!(
        "data key does not unwrap under local KEK {} for cluster \"dev\" key \"sdk-{}\" \
         purpose \"shared-data-key\": wrong context or not our wrapped key",
        kek.descriptor().key_id,
        hex::encode(id)
    )
}

/// Opens every record of `seal_keys` in one new batch, asserting each secret; returns the batch.
async fn open_all(kek: &CountingKek, records: &[(String, SealedKey)]) -> OpenedDataKeys {
    let opened = OpenedDataKeys::new();
    for (i, (key_id, sealed)) in records.iter().enumerate() {
        let back = unseal_in(&opened, kek, &ctx(key_id), sealed).await.unwrap();
        assert_eq!(back.expose_secret(), secret(i));
    }
    opened
}

#[tokio::test]
async fn a_thousand_records_cost_one_kek_call_to_seal_and_one_to_open() {
    let dir = tempfile::tempdir().unwrap();
    let kek = CountingKek::create(dir.path(), "kek");
    let records = seal_keys(&kek, 1000).await;
    assert_eq!(kek.calls(), (1, 0));
    // One shared key, its bytes in every record; a fresh nonce each.
    let ids: BTreeSet<_> = records.iter().map(|(_, s)| shared_id(s)).collect();
    assert_eq!(ids.len(), 1);
    assert!(records
        .iter()
        .all(|(_, s)| s.wrapped_dek == records[0].1.wrapped_dek));
    let nonces: BTreeSet<_> = records.iter().map(|(_, s)| s.nonce).collect();
    assert_eq!(nonces.len(), 1000);
    assert!(records.iter().all(|(_, s)| s.kek == kek.descriptor()));

    let opened = open_all(&kek, &records).await;
    assert_eq!(kek.calls(), (1, 1));
    assert_eq!(opened.len(), 1);
    // Without a batch, each record unwraps the shared key itself.
    let alone = unseal(&kek, &ctx("key-7"), &records[7].1).await.unwrap();
    assert_eq!(alone.expose_secret(), secret(7));
    assert_eq!(kek.calls(), (1, 2));
}

#[tokio::test]
async fn records_waiting_together_for_one_shared_key_make_one_kek_call() {
    let dir = tempfile::tempdir().unwrap();
    let kek = CountingKek::create(dir.path(), "kek");
    let records = seal_keys(&kek, 64).await;
    let opened = OpenedDataKeys::new();
    let contexts: Vec<_> = records.iter().map(|(key_id, _)| ctx(key_id)).collect();
    let opens = records
        .iter()
        .zip(&contexts)
        .map(|((_, sealed), c)| unseal_in(&opened, &kek, c, sealed));
    let secrets = futures::future::join_all(opens).await;
    for (i, s) in secrets.into_iter().enumerate() {
        assert_eq!(s.unwrap().expose_secret(), secret(i));
    }
    assert_eq!(kek.calls(), (1, 1));
}

#[tokio::test]
async fn a_shared_key_seals_at_most_its_limit_then_the_next_is_made() {
    let dir = tempfile::tempdir().unwrap();
    let kek = CountingKek::create(dir.path(), "kek");
    let sealer = SharedSealer::with_max_seals(3);
    let mut ids = Vec::new();
    for i in 0..7 {
        let sealed = sealer
            .seal(&kek, &ctx(&format!("k{i}")), &secret(i))
            .await
            .unwrap();
        ids.push(shared_id(&sealed));
    }
    assert_eq!(kek.calls(), (3, 0));
    assert_eq!(ids[0..3], [ids[0]; 3]);
    assert_eq!(ids[3..6], [ids[3]; 3]);
    assert!(ids[0] != ids[3] && ids[3] != ids[6] && ids[0] != ids[6]);
    // The limit is clamped to 1..=MAX_SEALS_PER_DATA_KEY.
    assert_eq!(SharedSealer::with_max_seals(0).max_seals, 1);
    assert_eq!(
        SharedSealer::with_max_seals(u32::MAX).max_seals,
        MAX_SEALS_PER_DATA_KEY
    );
    assert_eq!(SharedSealer::new().max_seals, 1 << 16);
}

#[tokio::test]
async fn another_kek_or_cluster_gets_its_own_shared_key() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (
        CountingKek::create(dir.path(), "a"),
        CountingKek::create(dir.path(), "b"),
    );
    let sealer = SharedSealer::new();
    let under_a = sealer.seal(&a, &ctx("k1"), b"one").await.unwrap();
    let under_b = sealer.seal(&b, &ctx("k2"), b"two").await.unwrap();
    let other_cluster = EncryptionContext::validator_key("other", "k3").unwrap();
    let in_other = sealer.seal(&b, &other_cluster, b"three").await.unwrap();
    assert_eq!((a.calls(), b.calls()), ((1, 0), (2, 0)));
    assert_eq!(under_b.kek, b.descriptor());
    let ids = BTreeSet::from([
        shared_id(&under_a),
        shared_id(&under_b),
        shared_id(&in_other),
    ]);
    assert_eq!(ids.len(), 3);
    assert_eq!(
        unseal(&b, &other_cluster, &in_other)
            .await
            .unwrap()
            .expose_secret(),
        b"three"
    );
    // Back to a: a new shared key again (the sealer keeps one).
    sealer.seal(&a, &ctx("k4"), b"four").await.unwrap();
    assert_eq!(a.calls(), (2, 0));
}

#[tokio::test]
async fn a_record_of_a_shared_key_fails_closed_when_moved_or_tampered() {
    let dir = tempfile::tempdir().unwrap();
    let kek = LocalKek::create(&dir.path().join("kek")).unwrap();
    let sealer = SharedSealer::new();
    let one = sealer.seal(&kek, &ctx("key-1"), b"first").await.unwrap();
    let two = sealer.seal(&kek, &ctx("key-2"), b"second").await.unwrap();
    let unauthentic = |key_id: &str| {
        format!(
            "sealed key for cluster \"dev\" key \"{key_id}\" purpose \"validator-key\" does not \
             authenticate: wrong encryption context, another record's ciphertext, another \
             cluster's record, or tampered bytes"
        )
    };
    // The same data key opens both, but key-1's record does not open as key-2's.
    let err = unseal(&kek, &ctx("key-2"), &one).await.unwrap_err();
    assert_eq!(err.to_string(), unauthentic("key-2"));
    // key-2's nonce and ciphertext in key-1's record: refused too.
    let mut swapped = one.clone();
    swapped.nonce = two.nonce;
    swapped.ciphertext = two.ciphertext.clone();
    let err = unseal(&kek, &ctx("key-1"), &swapped).await.unwrap_err();
    assert_eq!(err.to_string(), unauthentic("key-1"));
    // Another shared key (it unwraps) under key-1's ciphertext: refused.
    let other_sealer = SharedSealer::new();
    let other = other_sealer.seal(&kek, &ctx("key-1"), b"x").await.unwrap();
    let mut rekeyed = one.clone();
    rekeyed.wrapped_dek = other.wrapped_dek.clone();
    let err = unseal(&kek, &ctx("key-1"), &rekeyed).await.unwrap_err();
    assert_eq!(err.to_string(), unauthentic("key-1"));
    // A shared key's id changed: it no longer unwraps (the id is in its context).
    let mut renamed = one.clone();
    renamed.wrapped_dek[16] ^= 1;
    let WrappedDataKey::Shared { id, .. } = renamed.data_key().unwrap() else {
        panic!("shared")
    };
    let err = unseal(&kek, &ctx("key-1"), &renamed).await.unwrap_err();
    assert_eq!(err.to_string(), not_unwrapped(&kek, &id));
    // One byte cut from the end of the wrapped key: malformed for the local KEK.
    let mut cut = one.clone();
    cut.wrapped_dek.pop();
    let err = unseal(&kek, &ctx("key-1"), &cut).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "malformed locally wrapped data key: 59 bytes, expected 60"
    );
    // Only the magic and part of an id: refused before any KEK call.
    let mut truncated = one.clone();
    truncated.wrapped_dek.truncate(20);
    let err = unseal(&kek, &ctx("key-1"), &truncated).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "malformed wrapped data key: wrapped data key of 20 bytes starts as a shared data key \
         but is shorter than its 33-byte header, id and wrapped key"
    );
    // The untouched record still opens.
    assert_eq!(
        unseal(&kek, &ctx("key-1"), &one)
            .await
            .unwrap()
            .expose_secret(),
        b"first"
    );
}

#[tokio::test]
async fn a_record_with_its_own_key_does_not_open_as_a_shared_one_and_back() {
    let dir = tempfile::tempdir().unwrap();
    let kek = LocalKek::create(&dir.path().join("kek")).unwrap();
    // A record of formats 1 to 3, with its own data key, still opens.
    let own = seal(&kek, &ctx("key-1"), b"own").await.unwrap();
    assert_eq!(
        own.data_key().unwrap(),
        WrappedDataKey::Own(&own.wrapped_dek)
    );
    assert_eq!(
        unseal(&kek, &ctx("key-1"), &own)
            .await
            .unwrap()
            .expose_secret(),
        b"own"
    );
    // Its wrapped key dressed as a shared one: the KEK refuses it under the shared context.
    let id = [9u8; DATA_KEY_ID_LEN];
    let mut dressed = own.clone();
    dressed.wrapped_dek = WrappedDataKey::Shared {
        id,
        wrapped: &own.wrapped_dek,
    }
    .to_bytes();
    let err = unseal(&kek, &ctx("key-1"), &dressed).await.unwrap_err();
    assert_eq!(err.to_string(), not_unwrapped(&kek, &id));
    // A shared key's KEK bytes without the magic and id: refused under the record's context.
    let shared = SharedSealer::new()
        .seal(&kek, &ctx("key-1"), b"s")
        .await
        .unwrap();
    let WrappedDataKey::Shared { wrapped, .. } = shared.data_key().unwrap() else {
        panic!("shared")
    };
    let mut stripped = shared.clone();
    stripped.wrapped_dek = wrapped.to_vec();
    let err = unseal(&kek, &ctx("key-1"), &stripped).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "data key does not unwrap under local KEK {} for cluster \"dev\" key \"key-1\" \
             purpose \"validator-key\": wrong context or not our wrapped key",
            kek.descriptor().key_id
        )
    );
}

#[tokio::test]
async fn an_unreachable_kek_costs_one_call_per_batch_and_fails_every_record_alike() {
    let dir = tempfile::tempdir().unwrap();
    let kek = CountingKek::create(dir.path(), "kek");
    let records = seal_keys(&kek, 100).await;
    let id = hex::encode(shared_id(&records[0].1));
    kek.set_failing(true);
    let opened = OpenedDataKeys::new();
    for (key_id, sealed) in &records {
        let err = unseal_in(&opened, &kek, &ctx(key_id), sealed)
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("shared data key sdk-{id}: {}", failure())
        );
    }
    assert_eq!(kek.calls(), (1, 1));
    // The next batch asks again, and opens them once the KEK is back.
    kek.set_failing(false);
    open_all(&kek, &records).await;
    assert_eq!(kek.calls(), (1, 2));
}

#[tokio::test]
async fn a_failed_seal_leaves_nothing_and_the_next_seal_asks_the_kek_again() {
    let dir = tempfile::tempdir().unwrap();
    let kek = CountingKek::create(dir.path(), "kek");
    let sealer = SharedSealer::new();
    kek.set_failing(true);
    let err = sealer.seal(&kek, &ctx("key-1"), b"s").await.unwrap_err();
    assert_eq!(err.to_string(), failure().to_string());
    kek.set_failing(false);
    let sealed = sealer.seal(&kek, &ctx("key-1"), b"s").await.unwrap();
    assert_eq!(kek.calls(), (2, 0));
    assert_eq!(
        unseal(&kek, &ctx("key-1"), &sealed)
            .await
            .unwrap()
            .expose_secret(),
        b"s"
    );
}

#[test]
fn the_shared_context_names_the_key_in_hex() {
    let c = shared_context(CLUSTER, &[0xab; DATA_KEY_ID_LEN]).unwrap();
    assert_eq!(
        c.fields(),
        [
            ("cluster_id", "dev"),
            ("key_id", "sdk-abababababababababababababababab"),
            ("purpose", "shared-data-key"),
        ]
    );
    // Never a validator key's context.
    assert_ne!(c.purpose(), crate::custody::PURPOSE_VALIDATOR_KEY);
}

/// One seal of a generated sequence: key `key` of cluster `cluster`, under KEK `kek`.
#[derive(Debug, Clone)]
struct SealOp {
    kek: usize,
    cluster: usize,
    key: usize,
    secret: Vec<u8>,
}

/// Where a generated sequence flips one byte of a record.
#[derive(Debug, Clone, Copy)]
enum Flip {
    WrappedDek,
    Nonce,
    Ciphertext,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    /// Generated seals (two KEKs, two clusters, four key ids, a small per-key limit), then every
    /// record opened in one batch under every (KEK, cluster, key id): it opens exactly under
    /// the one it was sealed for, to exactly its secret, and the KEK calls are exactly the
    /// model's count (one per distinct shared key and cluster tried with the record's KEK). A
    /// record with one byte flipped never opens.
    #[test]
    fn generated_seals_open_only_as_sealed_with_the_modelled_kek_calls(
        max_seals in 1u32..4,
        ops in proptest::collection::vec(
            (0usize..2, 0usize..2, 0usize..4, proptest::collection::vec(any::<u8>(), 1..40))
                .prop_map(|(kek, cluster, key, secret)| SealOp { kek, cluster, key, secret }),
            1..24,
        ),
        flip in (0usize..3, any::<proptest::sample::Index>(), 1u8..=255),
    ) {
        futures::executor::block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let keks = [
                CountingKek::create(dir.path(), "a"),
                CountingKek::create(dir.path(), "b"),
            ];
            let clusters = ["c0", "c1"];
            let context = |cluster: usize, key: usize| {
                EncryptionContext::validator_key(clusters[cluster], format!("k{key}")).unwrap()
            };
            let sealer = SharedSealer::with_max_seals(max_seals);
            let mut records = Vec::new();
            for op in &ops {
                let sealed = sealer
                    .seal(&keks[op.kek], &context(op.cluster, op.key), &op.secret)
                    .await
                    .unwrap();
                records.push((op.clone(), sealed));
            }
            let opened = OpenedDataKeys::new();
            let before = [keks[0].calls().1, keks[1].calls().1];
            let mut model_calls = [BTreeSet::new(), BTreeSet::new()];
            for (op, sealed) in &records {
                for (kek, cluster, key) in
                    (0..2).flat_map(|k| (0..2).flat_map(move |c| (0..4).map(move |i| (k, c, i))))
                {
                    let result =
                        unseal_in(&opened, &keks[kek], &context(cluster, key), sealed).await;
                    if kek == op.kek {
                        model_calls[kek].insert((cluster, sealed.wrapped_dek.clone()));
                    }
                    if (kek, cluster, key) == (op.kek, op.cluster, op.key) {
                        let secret = result.unwrap();
                        prop_assert_eq!(secret.expose_secret(), op.secret.as_slice());
                    } else {
                        prop_assert!(result.is_err(), "{:?} opened as {:?}", op, (kek, cluster, key));
                    }
                }
            }
            for kek in 0..2 {
                prop_assert_eq!(keks[kek].calls().1 - before[kek], model_calls[kek].len());
            }

            // One byte flipped in one record: it opens under nothing.
            let (field, index, mask) = flip;
            let (op, sealed) = &records[index.index(records.len())];
            let mut tampered = sealed.clone();
            let bytes: &mut [u8] = match [Flip::WrappedDek, Flip::Nonce, Flip::Ciphertext][field] {
                Flip::WrappedDek => &mut tampered.wrapped_dek,
                Flip::Nonce => &mut tampered.nonce,
                Flip::Ciphertext => &mut tampered.ciphertext,
            };
            let at = index.index(bytes.len());
            bytes[at] ^= mask;
            let fresh = OpenedDataKeys::new();
            let result = unseal_in(&fresh, &keks[op.kek], &context(op.cluster, op.key), &tampered).await;
            prop_assert!(result.is_err(), "a flipped {field} opened");
            Ok(())
        })?;
    }
}
