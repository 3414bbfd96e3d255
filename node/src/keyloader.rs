//! The key loader: keeps the node's in-memory keyring in step with the replicated key registry.
//!
//! Owns: unsealing active records with the configured KEKs (at start, and whenever a change is
//! applied), or taking them from the node's keyring cache ([`cache`]) and keeping that cache in
//! step, dropping disabled and deleted keys, retrying unreachable KEKs with backoff, and
//! reporting which keys are pending and why, until the node's stop signal. Must not: change the
//! registry, keep a key whose unsealed secret does not match the record's public key, or
//! outlive the node (its task is joined on shutdown).
//!
//! To ensure correctness:
//! - a node whose KEK is unreachable keeps serving with the keys it already holds;
//! - a key is loaded only if its secret's public key equals the record's public key, whether
//!   the secret came from a KEK unseal or from the keyring cache;
//! - secrets exist only inside the keyring's key types; unsealed bytes are zeroized on drop;
//!   the shared data keys it opened are zeroized [`KEEP_OPENED`] after its last pass.

pub mod cache;

use crate::custody::{
    unseal_in, EncryptionContext, Kek, KekBackend, OpenedDataKeys, SecretBytes, SharedSealer,
};
use crate::keyring::{Keyring, LoadedKey};
use crate::metrics::MeteredKek;
use crate::registry::{KeyRecord, KeyState};
use crate::replica::{EventSink, StateMachine};
use cache::KeyringCache;
use futures::StreamExt as _;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// Longest wait between retries of a pending key.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// How long the loader keeps the shared data keys it opened after its last pass. Long enough
/// for a log replay or a burst of key generations (passes seconds apart at most), short
/// enough that a node does not hold them when no key is arriving.
pub const KEEP_OPENED: Duration = Duration::from_secs(60);

/// A configured KEK whose calls are timed in the node's metrics (`signer_kms_call_seconds`).
pub type NodeKek = MeteredKek<KekBackend>;

/// The KEKs a node can open records with (the current one and retired ones), and the sealer
/// it seals new records with under the current one.
pub struct Keks {
    /// Cluster id (part of every encryption context).
    pub cluster_id: String,
    /// Current KEK first, then retired ones.
    pub backends: Vec<NodeKek>,
    /// Seals this node's new records under a shared data key of the current KEK.
    pub sealer: SharedSealer,
    /// The shared data keys the loader opened recently: kept across its passes while keys
    /// arrive (a log replay at start applies them in many batches, and a burst of generated
    /// keys one by one), forgotten [`KEEP_OPENED`] after the last pass.
    pub opened: OpenedDataKeys,
}

impl Keks {
    /// The KEKs of cluster `cluster_id`, current first, with a sealer that has no shared data
    /// key yet.
    pub fn new(cluster_id: impl Into<String>, backends: Vec<NodeKek>) -> Self {
        Keks {
            cluster_id: cluster_id.into(),
            backends,
            sealer: SharedSealer::new(),
            opened: OpenedDataKeys::new(),
        }
    }

    /// The backend named by a record's KEK reference, if configured here.
    pub fn for_record(&self, record: &KeyRecord) -> Option<&NodeKek> {
        let sealed = record.sealed.as_ref()?;
        self.backends.iter().find(|b| b.descriptor() == sealed.kek)
    }

    /// The current KEK (new records are sealed under it).
    pub fn current(&self) -> Option<&NodeKek> {
        self.backends.first()
    }
}

/// Try to load one active record, from the keyring cache if it holds this record's secret,
/// else by unsealing it with its KEK (a shared data key from `keks.opened`; then remembering
/// it in the cache); `Err` carries a reason for the pending list.
async fn load(
    keks: &Keks,
    cache: Option<&KeyringCache>,
    record: &KeyRecord,
) -> Result<LoadedKey, String> {
    if let Some(secret) = cache.and_then(|c| c.secret_for(record)) {
        match checked_key(record, &secret) {
            Ok(key) => return Ok(key),
            // Cannot happen for an entry written by `remember` below; unseal instead.
            Err(reason) => {
                tracing::warn!(key_id = %record.key_id, %reason, "keyring cache entry refused; unsealing");
                if let Some(c) = cache {
                    c.forget(&record.key_id);
                }
            }
        }
    }
    let sealed = record
        .sealed
        .as_ref()
        .ok_or_else(|| "record has no sealed secret".to_owned())?;
    let kek = keks.for_record(record).ok_or_else(|| {
        format!(
            "sealed under {}, which this node is not configured with",
            sealed.kek
        )
    })?;
    let ctx = EncryptionContext::validator_key(&keks.cluster_id, &record.key_id)
        .map_err(|e| e.to_string())?;
    let secret = unseal_in(&keks.opened, kek, &ctx, sealed)
        .await
        .map_err(|e| e.to_string())?;
    let key = checked_key(record, &secret)?;
    if let Some(c) = cache {
        if let Err(e) = c.remember(record, secret.expose_secret()) {
            tracing::warn!(key_id = %record.key_id, error = %e, "key not added to the keyring cache");
        }
    }
    Ok(key)
}

/// The key of `secret`, if its public key is the record's.
fn checked_key(record: &KeyRecord, secret: &SecretBytes) -> Result<LoadedKey, String> {
    let key = LoadedKey::from_secret(&record.key_id, record.profile, secret.expose_secret())
        .map_err(|e| e.to_string())?;
    if key.public_key != record.public_key {
        return Err("unsealed secret does not match the record's public key".into());
    }
    Ok(key)
}

/// Open the keyring cache if it is not open yet, and drop its entries for records that are
/// no longer active or were sealed again (entries for records not applied yet stay). A KEK
/// that cannot be reached leaves it closed (this pass unseals every key; the next pass tries
/// again).
async fn open_cache(keks: &Keks, cache: &KeyringCache, state: &StateMachine) {
    if cache.is_open() {
        return;
    }
    let Some(kek) = keks.current() else {
        return;
    };
    match cache.open(kek).await {
        Ok(opened) => {
            let applied = state.read();
            // An entry whose record is not applied here yet stays: at start the state machine
            // may still be replaying the log, and the entry can only ever stand in for that
            // exact record. One whose record is no longer active, or was sealed again, goes.
            cache.retain(|key_id, digest| {
                applied.registry.keys.get(key_id).is_none_or(|record| {
                    record.state == KeyState::Active
                        && record
                            .sealed
                            .as_ref()
                            .is_some_and(|s| cache::record_digest(s) == *digest)
                })
            });
            match opened {
                cache::Opened::Read(n) => tracing::info!(
                    path = %cache.path().display(), entries = n,
                    "keyring cache opened"
                ),
                cache::Opened::Fresh(reason) => tracing::info!(
                    path = %cache.path().display(), %reason,
                    "keyring cache starts empty"
                ),
                cache::Opened::AlreadyOpen => {}
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "keyring cache not opened; keys are unsealed one by one")
        }
    }
}

/// Rewrite the keyring cache's file if it is due.
async fn flush_cache(cache: &KeyringCache) {
    if cache.flush_due() == Some(Duration::ZERO) {
        if let Err(e) = cache.flush().await {
            tracing::warn!(error = %e, "keyring cache not written");
        }
    }
}

/// Unseals in flight at once while loading: enough to hide a KMS round trip (16 per node is
/// about 1,000 keys a second at 15 ms per `Decrypt`), few enough to stay well inside a KMS
/// account's request quota with several nodes starting together.
const CONCURRENT_LOADS: usize = 16;

/// Bring the keyring in line with the registry once. Returns true if something is pending.
/// Loads, unloads and failures (each new failure reason once) go to the audit log via
/// `events`.
///
/// With a keyring `cache`, it is opened first (once), and kept in step: unloaded keys leave
/// it, unsealed keys join it, and its file is rewritten when due ([`cache::FLUSH_INTERVAL`]).
///
/// Cost: one pass over the registry under its read lock, copying only the records that need
/// work (it runs after every registry change, so with many keys it must not copy them all);
/// the unseals then run [`CONCURRENT_LOADS`] at a time, each key usable as soon as it loads.
/// A shared data key is unwrapped once however many records it sealed (the records waiting
/// for it wait together) and kept in `keks.opened` for the next passes; one that failed is
/// asked for again in the next pass.
pub async fn reconcile(
    keks: &Keks,
    cache: Option<&KeyringCache>,
    state: &StateMachine,
    keyring: &Keyring,
    events: &EventSink,
) -> bool {
    if let Some(cache) = cache {
        open_cache(keks, cache, state).await;
    }
    let (to_load, to_unload) = {
        let applied = state.read();
        let mut to_load = Vec::new();
        let mut to_unload = Vec::new();
        for record in applied.registry.keys.values() {
            // Only this record's key counts as loaded: a key file that shares the id stays
            // (and is refused by the state machine while the registry holds the id).
            let loaded = keyring
                .get(&record.key_id)
                .is_some_and(|k| k.public_key == record.public_key);
            match record.state {
                KeyState::Active if !loaded => to_load.push(record.clone()),
                KeyState::Disabled | KeyState::Deleted => {
                    // Out of the cache whether or not it was loaded here (a replay at start
                    // can bring a record and its disabling in one pass): a lookup, no copy.
                    if let Some(cache) = cache {
                        cache.forget(&record.key_id);
                    }
                    if loaded {
                        to_unload.push((record.key_id.clone(), record.state));
                    }
                }
                KeyState::Active => {}
            }
        }
        (to_load, to_unload)
    };
    for (key_id, state) in to_unload {
        if keyring.remove(&key_id) {
            tracing::info!(key_id = %key_id, state = %state, "key unloaded");
            events.key_unloaded(&key_id, &state.to_string());
        }
    }
    let mut pending = false;
    let mut loads = futures::stream::iter(to_load.into_iter().map(|record| async move {
        let loaded = load(keks, cache, &record).await;
        (record, loaded)
    }))
    .buffer_unordered(CONCURRENT_LOADS);
    while let Some((record, loaded)) = loads.next().await {
        match loaded.and_then(|key| {
            let text = key.public_key_text.clone();
            keyring
                .insert(key)
                .map(|()| text)
                .map_err(|e| e.to_string())
        }) {
            Ok(public_key) => {
                tracing::info!(key_id = %record.key_id, %public_key, "key loaded");
                events.key_loaded(&record.key_id);
            }
            Err(reason) => {
                tracing::warn!(key_id = %record.key_id, %reason, "key not loaded; will retry");
                // One lookup, not a copy of every pending key (a KMS outage at start can leave
                // thousands pending).
                if keyring.pending_reason(&record.key_id).as_ref() != Some(&reason) {
                    events.kms_failure(&record.key_id, &reason);
                }
                keyring.set_pending(&record.key_id, reason);
                pending = true;
            }
        }
    }
    keks.opened.forget_failures();
    if let Some(cache) = cache {
        flush_cache(cache).await;
    }
    pending
}

/// Start the key loader: reconcile at start, on every registry change, and with exponential
/// backoff while keys are pending, until `stop` resolves (an unseal in flight is abandoned;
/// the keyring cache's file is then brought up to date). The node owns the returned task and
/// joins it on shutdown.
pub fn spawn(
    keks: Arc<Keks>,
    cache: Option<Arc<KeyringCache>>,
    state: StateMachine,
    keyring: Arc<Keyring>,
    events: EventSink,
    stop: impl Future<Output = ()> + Send + 'static,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let cache = cache.as_deref();
        tokio::select! {
            () = stop => {}
            () = keep_in_step(&keks, cache, &state, &keyring, &events) => {}
        }
        if let Some(cache) = cache {
            if let Err(e) = cache.flush().await {
                tracing::warn!(error = %e, "keyring cache not written at stop");
            }
        }
    })
}

/// Reconcile whenever the registry changes (and on a backoff while keys are pending, and when
/// the keyring cache's file is due); returns only if the state machine stops announcing
/// changes.
async fn keep_in_step(
    keks: &Keks,
    cache: Option<&KeyringCache>,
    state: &StateMachine,
    keyring: &Keyring,
    events: &EventSink,
) {
    let mut changes = state.watch_keys();
    let mut backoff = Duration::from_millis(250);
    loop {
        let pending = reconcile(keks, cache, state, keyring, events).await;
        let mut forget_opened_at =
            (!keks.opened.is_empty()).then(|| tokio::time::Instant::now() + KEEP_OPENED);
        let retry_at = pending.then(|| tokio::time::Instant::now() + backoff);
        backoff = if pending {
            (backoff * 2).min(MAX_BACKOFF)
        } else {
            Duration::from_millis(250)
        };
        // Wait for a change, the retry, the cache's flush or the time to forget the opened
        // shared keys, whichever comes first; a flush or a forget alone does not reconcile
        // again.
        loop {
            let now = tokio::time::Instant::now();
            let wait = [
                retry_at.map(|at| at.saturating_duration_since(now)),
                cache.and_then(KeyringCache::flush_due),
                forget_opened_at.map(|at| at.saturating_duration_since(now)),
            ]
            .into_iter()
            .flatten()
            .min();
            let woke = match wait {
                Some(wait) => tokio::select! {
                    changed = changes.changed() => Some(changed),
                    () = tokio::time::sleep(wait) => None,
                },
                None => Some(changes.changed().await),
            };
            match woke {
                Some(Err(_)) => return,
                Some(Ok(())) => break,
                None => {
                    if let Some(cache) = cache {
                        flush_cache(cache).await;
                    }
                    if forget_opened_at.is_some_and(|at| tokio::time::Instant::now() >= at) {
                        keks.opened.clear();
                        forget_opened_at = None;
                    }
                    if retry_at.is_some_and(|at| tokio::time::Instant::now() >= at) {
                        break;
                    }
                }
            }
        }
    }
}
