//! [`MeteredKek`]: a KEK whose calls are timed and counted.
//!
//! Owns: measuring every seal and unseal of the node (the KEKs in
//! [`crate::keyloader::Keks`] are wrapped in this). Must not: change what the wrapped KEK
//! returns, or record anything but the backend name, the operation and the outcome (never a
//! context, a key id or key material).

use super::Metrics;
use crate::custody::{CustodyError, DataKey, EncryptionContext, Kek, KekRef, DATA_KEY_LEN};
use std::sync::Arc;
use std::time::Instant;
use zeroize::Zeroizing;

/// A KEK whose calls are timed and counted in `signer_kms_call_seconds` and
/// `signer_kms_errors_total`. The one place KMS calls are measured: every seal and unseal of
/// the node goes through the KEKs in [`crate::keyloader::Keks`], which are wrapped in this.
pub struct MeteredKek<K> {
    inner: K,
    backend: String,
    metrics: Arc<Metrics>,
}

impl<K: Kek> MeteredKek<K> {
    /// Wrap `inner`, recording into `metrics` under its backend's name.
    pub fn new(inner: K, metrics: Arc<Metrics>) -> Self {
        let backend = inner.descriptor().backend.to_string();
        // The error counters exist at 0 from the start, so `increase()` sees the first error.
        for op in ["generate_data_key", "unwrap_data_key"] {
            metrics.kms_errors.with_label_values(&[&backend, op]);
        }
        MeteredKek {
            inner,
            backend,
            metrics,
        }
    }

    /// The wrapped KEK.
    pub fn inner(&self) -> &K {
        &self.inner
    }
}

impl<K: std::fmt::Debug> std::fmt::Debug for MeteredKek<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("MeteredKek").field(&self.inner).finish()
    }
}

impl<K: Kek> Kek for MeteredKek<K> {
    fn descriptor(&self) -> KekRef {
        self.inner.descriptor()
    }

    async fn generate_data_key(&self, ctx: &EncryptionContext) -> Result<DataKey, CustodyError> {
        let start = Instant::now();
        let result = self.inner.generate_data_key(ctx).await;
        self.metrics.kms_call(
            &self.backend,
            "generate_data_key",
            start.elapsed(),
            result.is_ok(),
        );
        result
    }

    async fn unwrap_data_key(
        &self,
        wrapped: &[u8],
        ctx: &EncryptionContext,
    ) -> Result<Zeroizing<[u8; DATA_KEY_LEN]>, CustodyError> {
        let start = Instant::now();
        let result = self.inner.unwrap_data_key(wrapped, ctx).await;
        self.metrics.kms_call(
            &self.backend,
            "unwrap_data_key",
            start.elapsed(),
            result.is_ok(),
        );
        result
    }
}
