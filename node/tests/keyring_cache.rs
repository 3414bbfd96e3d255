//! The key loader with its keyring cache, over a state machine applied as a cluster commits
//! (approved admin entries) and a real local KEK whose calls the node's metrics count:
//! - a restart loads every registry key with one KEK unwrap (the cache's data key), where
//!   without the cache it takes one per key;
//! - a key disabled while loaded leaves the cache file at once;
//! - a stale file that still holds a disabled key (restored from before the change) does not
//!   bring it back: the registry decides, and the file is rewritten without it;
//! - keys the node sealed one after another (one shared data key) load with one unwrap even
//!   without the cache, beside a record of an older format with its own data key; the running
//!   loader keeps that data key while keys arrive and forgets it a minute after (paused time).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod admin_log;
mod scrape;

use openraft::type_config::TypeConfigExt;
use scrape::Scrape;
use signer_node::admin::Action;
use signer_node::custody::{seal, EncryptionContext, KekBackend, LocalKek};
use signer_node::keyloader::cache::{KeyringCache, Opened};
use signer_node::keyloader::{reconcile, Keks, KEEP_OPENED};
use signer_node::keyring::{Keyring, LoadedKey};
use signer_node::metrics::{MeteredKek, Metrics};
use signer_node::protection::Profile;
use signer_node::registry::{KeyRecord, KeyState};
use signer_node::replica::{Command, EventSink, StateMachine, TypeConfig};
use std::path::Path;
use std::sync::Arc;

const CLUSTER: &str = "c";
const AT_MS: u64 = 1_700_000_000_000;
const KEYS: [&str; 4] = ["k1", "k2", "k3", "k4"];

/// An eth2 secret (a big-endian scalar) whose last byte is `seed`.
fn secret(seed: u8) -> [u8; 32] {
    let mut s = [0u8; 32];
    s[31] = seed;
    s
}

/// A node's KEKs: the local KEK file in `dir`, counted in a fresh `Metrics` (a restarted node
/// starts its counters at zero).
fn node_keks(dir: &Path) -> (Keks, Arc<Metrics>) {
    let local = LocalKek::open(&dir.join("kek.key")).unwrap();
    let metrics = Arc::new(Metrics::new(1).unwrap());
    let keks = Keks::new(
        CLUSTER,
        vec![MeteredKek::new(KekBackend::Local(local), metrics.clone())],
    );
    (keks, metrics)
}

/// How many times the node called the KEK for `op`, from its Prometheus text.
fn kek_calls(metrics: &Metrics, op: &str) -> u64 {
    let text = metrics.encode().unwrap();
    Scrape::parse(&text).sum("signer_kms_call_seconds_count", &[("op", op)]) as u64
}

/// How `add_keys` seals.
#[derive(Clone, Copy)]
enum Sealing {
    /// Each record with its own data key (as formats 1 to 3 wrote).
    Own,
    /// With the node's sealer: one shared data key.
    Shared,
}

/// The bootstrap and the approved `AddKey` entries of `ids` (secret seeds 1, 2, …), sealed
/// under the node's KEK, and the keys' public keys.
async fn add_keys(
    keks: &Keks,
    admin: &admin_log::SoloAdmin,
    ids: &[&str],
    sealing: Sealing,
) -> (Vec<Command>, Vec<Vec<u8>>) {
    let mut commands = vec![admin.bootstrap()];
    let mut public_keys = Vec::new();
    for (id, seed) in ids.iter().zip(1u8..) {
        let ctx = EncryptionContext::validator_key(CLUSTER, *id).unwrap();
        let public_key = LoadedKey::from_secret(id, Profile::Eth2, &secret(seed))
            .unwrap()
            .public_key;
        public_keys.push(public_key.clone());
        let record = KeyRecord {
            key_id: (*id).into(),
            profile: Profile::Eth2,
            public_key,
            sealed: Some(
                match sealing {
                    Sealing::Own => seal(&keks.backends[0], &ctx, &secret(seed)).await,
                    Sealing::Shared => {
                        keks.sealer
                            .seal(&keks.backends[0], &ctx, &secret(seed))
                            .await
                    }
                }
                .unwrap(),
            ),
            state: KeyState::Active,
            origin: "generated".into(),
        };
        commands.extend(admin.approved(seed, &Action::AddKey(record), AT_MS));
    }
    (commands, public_keys)
}

fn loaded(keyring: &Keyring) -> Vec<String> {
    let mut ids: Vec<String> = keyring.keys().iter().map(|k| k.key_id.clone()).collect();
    ids.sort();
    ids
}

/// The key ids in the cache file in `data`, read by a cache of its own with its own handle on
/// the KEK file in `dir` (so the node's counters do not see it).
async fn in_file(dir: &Path, data: &Path) -> Vec<String> {
    let kek = LocalKek::open(&dir.join("kek.key")).unwrap();
    let cache = KeyringCache::new(data, CLUSTER, 1).unwrap();
    match cache.open(&kek).await.unwrap() {
        Opened::Read(_) => cache.key_ids(),
        other => panic!("the cache file did not open: {other:?}"),
    }
}

/// Apply the approved entries (challenge `id`) that set `key_id`'s state, from index `next`;
/// returns the index after them.
async fn set_state(
    admin: &admin_log::SoloAdmin,
    sm: &mut StateMachine,
    next: u64,
    id: u8,
    key_id: &str,
    state: KeyState,
) -> u64 {
    let action = Action::SetKeyState {
        key_id: key_id.into(),
        state,
    };
    admin_log::apply_commands(sm, next, AT_MS, admin.approved(id, &action, AT_MS)).await
}

/// A node's directory with a local KEK file and an empty data directory, its admin, and the
/// entries that add [`KEYS`] (and their public keys).
struct Setup {
    dir: tempfile::TempDir,
    data: std::path::PathBuf,
    events: EventSink,
    admin: admin_log::SoloAdmin,
    commands: Vec<Command>,
    public_keys: Vec<Vec<u8>>,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    LocalKek::create(&dir.path().join("kek.key")).unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let (keks, _) = node_keks(dir.path());
    let admin = admin_log::SoloAdmin::new(CLUSTER, 7);
    let (commands, public_keys) = add_keys(&keks, &admin, &KEYS, Sealing::Own).await;
    Setup {
        dir,
        data,
        events: EventSink::disabled(1),
        admin,
        commands,
        public_keys,
    }
}

#[test]
fn a_restart_loads_every_key_with_one_unwrap_and_a_dropped_key_stays_dropped() {
    TypeConfig::run(async {
        let Setup {
            dir,
            data,
            events,
            admin,
            commands,
            public_keys,
        } = setup().await;
        let mut sm = StateMachine::open(&dir.path().join("state.redb"), true).unwrap();
        let mut next = admin_log::apply_commands(&mut sm, 1, AT_MS, commands).await;

        // First start: no cache file; every key is unsealed (one unwrap each), the cache is made
        // (one generate) and written.
        let (keks, metrics) = node_keks(dir.path());
        let cache = KeyringCache::new(&data, CLUSTER, 1).unwrap();
        let keyring = Keyring::default();
        assert!(!reconcile(&keks, Some(&cache), &sm, &keyring, &events).await);
        assert_eq!(loaded(&keyring), KEYS);
        assert_eq!(kek_calls(&metrics, "unwrap_data_key"), 4);
        assert_eq!(kek_calls(&metrics, "generate_data_key"), 1);
        assert_eq!(in_file(dir.path(), &data).await, KEYS);

        // Restart: one unwrap, the same keys with the same public keys.
        let (keks, metrics) = node_keks(dir.path());
        let cache = KeyringCache::new(&data, CLUSTER, 1).unwrap();
        let keyring = Keyring::default();
        assert!(!reconcile(&keks, Some(&cache), &sm, &keyring, &events).await);
        assert_eq!(loaded(&keyring), KEYS);
        for (id, pk) in KEYS.iter().zip(&public_keys) {
            assert_eq!(&keyring.get(id).unwrap().public_key, pk, "{id}");
        }
        assert_eq!(kek_calls(&metrics, "unwrap_data_key"), 1);
        assert_eq!(kek_calls(&metrics, "generate_data_key"), 0);

        // Without the cache, the same restart takes one unwrap per key.
        let (keks_off, metrics_off) = node_keks(dir.path());
        let keyring_off = Keyring::default();
        assert!(!reconcile(&keks_off, None, &sm, &keyring_off, &events).await);
        assert_eq!(loaded(&keyring_off), KEYS);
        assert_eq!(kek_calls(&metrics_off, "unwrap_data_key"), 4);

        // k2 is disabled while loaded: it is unloaded, and leaves the file in the same pass.
        let stale = std::fs::read(cache.path()).unwrap();
        next = set_state(&admin, &mut sm, next, 9, "k2", KeyState::Disabled).await;
        assert!(!reconcile(&keks, Some(&cache), &sm, &keyring, &events).await);
        assert_eq!(loaded(&keyring), ["k1", "k3", "k4"]);
        assert_eq!(in_file(dir.path(), &data).await, ["k1", "k3", "k4"]);

        // The file from before the change is put back, and the node restarts: k2 stays
        // unloaded (the registry says disabled), and the file is rewritten without it.
        std::fs::write(cache.path(), &stale).unwrap();
        assert_eq!(in_file(dir.path(), &data).await, KEYS);
        let (keks, metrics) = node_keks(dir.path());
        let cache = KeyringCache::new(&data, CLUSTER, 1).unwrap();
        let keyring = Keyring::default();
        assert!(!reconcile(&keks, Some(&cache), &sm, &keyring, &events).await);
        assert_eq!(loaded(&keyring), ["k1", "k3", "k4"]);
        assert_eq!(kek_calls(&metrics, "unwrap_data_key"), 1);
        assert_eq!(in_file(dir.path(), &data).await, ["k1", "k3", "k4"]);

        // Re-enabled: k2 loads again, unsealed from its record (its entry is gone), and
        // rejoins the cache at the next flush.
        set_state(&admin, &mut sm, next, 10, "k2", KeyState::Active).await;
        assert!(!reconcile(&keks, Some(&cache), &sm, &keyring, &events).await);
        assert_eq!(loaded(&keyring), KEYS);
        assert_eq!(kek_calls(&metrics, "unwrap_data_key"), 2);
        cache.flush().await.unwrap();
        assert_eq!(in_file(dir.path(), &data).await, KEYS);
    });
}

/// At start the state machine may still be replaying the log: the cache keeps the entries of
/// records it has not applied yet, and serves them once they are, so a restart in the middle
/// of a replay still makes one unwrap; a key the replay disables leaves the cache without
/// ever loading.
#[test]
fn entries_of_records_not_yet_applied_wait_for_the_replay() {
    TypeConfig::run(async {
        let Setup {
            dir,
            data,
            events,
            admin,
            commands,
            ..
        } = setup().await;
        let (keks, _) = node_keks(dir.path());

        // A node that applied everything writes its cache.
        let mut full = StateMachine::open(&dir.path().join("full.redb"), true).unwrap();
        admin_log::apply_commands(&mut full, 1, AT_MS, commands.clone()).await;
        let cache = KeyringCache::new(&data, CLUSTER, 1).unwrap();
        assert!(!reconcile(&keks, Some(&cache), &full, &Keyring::default(), &events).await);
        assert_eq!(in_file(dir.path(), &data).await, KEYS);

        // It restarts with only the bootstrap and the first two keys applied.
        let mut replaying = StateMachine::open(&dir.path().join("replay.redb"), true).unwrap();
        let (first, rest) = commands.split_at(5);
        let next = admin_log::apply_commands(&mut replaying, 1, AT_MS, first.to_vec()).await;
        let (keks, metrics) = node_keks(dir.path());
        let cache = KeyringCache::new(&data, CLUSTER, 1).unwrap();
        let keyring = Keyring::default();
        assert!(!reconcile(&keks, Some(&cache), &replaying, &keyring, &events).await);
        assert_eq!(loaded(&keyring), ["k1", "k2"]);
        assert_eq!(cache.key_ids(), KEYS, "the entries of k3 and k4 are kept");
        // The replay reaches the other two, and k4's disabling, before the loader's next
        // pass: k3 loads from the cache, k4 never loads and leaves the cache.
        let next = admin_log::apply_commands(&mut replaying, next, AT_MS, rest.to_vec()).await;
        set_state(&admin, &mut replaying, next, 9, "k4", KeyState::Disabled).await;
        assert!(!reconcile(&keks, Some(&cache), &replaying, &keyring, &events).await);
        assert_eq!(loaded(&keyring), ["k1", "k2", "k3"]);
        assert_eq!(kek_calls(&metrics, "unwrap_data_key"), 1);
        assert_eq!(cache.key_ids(), ["k1", "k2", "k3"]);
        assert_eq!(in_file(dir.path(), &data).await, ["k1", "k2", "k3"]);
    });
}

/// A node's first start without a cache file (or with the cache off): keys sealed together
/// share one data key, unwrapped once for the pass; a record of an older format, with its own
/// data key, costs its own unwrap beside them.
#[test]
fn keys_sealed_together_load_with_one_unwrap_without_the_cache() {
    TypeConfig::run(async {
        let dir = tempfile::tempdir().unwrap();
        LocalKek::create(&dir.path().join("kek.key")).unwrap();
        let (keks, metrics) = node_keks(dir.path());
        let admin = admin_log::SoloAdmin::new(CLUSTER, 7);
        let ids: Vec<String> = (1..=40).map(|i| format!("s{i:02}")).collect();
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        let (commands, public_keys) = add_keys(&keks, &admin, &ids, Sealing::Shared).await;
        assert_eq!(kek_calls(&metrics, "generate_data_key"), 1);
        let mut sm = StateMachine::open(&dir.path().join("state.redb"), true).unwrap();
        let next = admin_log::apply_commands(&mut sm, 1, AT_MS, commands).await;
        // One more key with its own data key, approved after them.
        let ctx = EncryptionContext::validator_key(CLUSTER, "own").unwrap();
        let own = KeyRecord {
            key_id: "own".into(),
            profile: Profile::Eth2,
            public_key: LoadedKey::from_secret("own", Profile::Eth2, &secret(99))
                .unwrap()
                .public_key,
            sealed: Some(seal(&keks.backends[0], &ctx, &secret(99)).await.unwrap()),
            state: KeyState::Active,
            origin: "generated".into(),
        };
        let approved = admin.approved(60, &Action::AddKey(own), AT_MS);
        admin_log::apply_commands(&mut sm, next, AT_MS, approved).await;

        let (keks, metrics) = node_keks(dir.path());
        let keyring = Keyring::default();
        let events = EventSink::disabled(1);
        assert!(!reconcile(&keks, None, &sm, &keyring, &events).await);
        let mut expected: Vec<&str> = ids.clone();
        expected.push("own");
        expected.sort();
        assert_eq!(loaded(&keyring), expected);
        for (id, pk) in ids.iter().zip(&public_keys) {
            assert_eq!(&keyring.get(id).unwrap().public_key, pk, "{id}");
        }
        assert_eq!(kek_calls(&metrics, "unwrap_data_key"), 2);
        assert_eq!(kek_calls(&metrics, "generate_data_key"), 0);
    });
}

/// The running loader keeps the shared data key it opened while keys arrive (a key added later
/// loads without another unwrap) and forgets it `KEEP_OPENED` after its last pass; the next
/// key of that data key then costs one unwrap again. Time is tokio's paused clock.
#[tokio::test(start_paused = true)]
async fn the_loader_forgets_opened_data_keys_a_minute_after_its_last_pass() {
    let dir = tempfile::tempdir().unwrap();
    LocalKek::create(&dir.path().join("kek.key")).unwrap();
    let (sealing, _) = node_keks(dir.path());
    let admin = admin_log::SoloAdmin::new(CLUSTER, 7);
    let (commands, _) = add_keys(&sealing, &admin, &KEYS, Sealing::Shared).await;
    // Bootstrap and k1, k2 now; k3 and k4 (same shared key) later.
    let (now, later) = commands.split_at(5);
    let mut sm = StateMachine::open(&dir.path().join("state.redb"), true).unwrap();
    let next = admin_log::apply_commands(&mut sm, 1, AT_MS, now.to_vec()).await;

    let (keks, metrics) = node_keks(dir.path());
    let keks = Arc::new(keks);
    let keyring = Arc::new(Keyring::default());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let loader = signer_node::keyloader::spawn(
        keks.clone(),
        None,
        sm.clone(),
        keyring.clone(),
        EventSink::disabled(1),
        async move {
            let _ = stopped.await;
        },
    );
    let wait_loaded = |n: usize| {
        let keyring = keyring.clone();
        async move {
            while keyring.keys().len() < n {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    };
    wait_loaded(2).await;
    assert_eq!(loaded(&keyring), ["k1", "k2"]);
    assert_eq!(
        (keks.opened.len(), kek_calls(&metrics, "unwrap_data_key")),
        (1, 1)
    );

    // k3 arrives 30 s later: loaded with the data key the loader kept.
    tokio::time::sleep(std::time::Duration::from_secs(30)).await;
    let next = admin_log::apply_commands(&mut sm, next, AT_MS, later[..2].to_vec()).await;
    wait_loaded(3).await;
    assert_eq!(kek_calls(&metrics, "unwrap_data_key"), 1);

    // Just short of a minute after that pass it is still kept; just past, forgotten.
    tokio::time::sleep(KEEP_OPENED - std::time::Duration::from_secs(1)).await;
    assert_eq!(keks.opened.len(), 1);
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(keks.opened.len(), 0);

    // k4 now costs an unwrap again.
    admin_log::apply_commands(&mut sm, next, AT_MS, later[2..].to_vec()).await;
    wait_loaded(4).await;
    assert_eq!(loaded(&keyring), KEYS);
    assert_eq!(kek_calls(&metrics, "unwrap_data_key"), 2);
    stop.send(()).unwrap();
    loader.await.unwrap();
}
