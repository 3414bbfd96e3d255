//! A test KEK: a real [`LocalKek`] whose calls are counted, and which can be told to fail them
//! (as an unreachable KMS would), for the tests that assert how many KEK calls a path makes.
//!
//! Owns: only that wrapper. Must not: be compiled outside tests, or change what the real KEK
//! returns when it is not told to fail.
#![allow(clippy::unwrap_used)]

use super::{CustodyError, DataKey, EncryptionContext, Kek, KekRef, LocalKek, DATA_KEY_LEN};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use zeroize::Zeroizing;

/// A local KEK that counts its calls (the calls go to the real KEK, unless failing).
pub(crate) struct CountingKek {
    kek: LocalKek,
    generated: AtomicUsize,
    unwrapped: AtomicUsize,
    failing: AtomicBool,
}

impl CountingKek {
    /// A new KEK file `name` in `dir`.
    pub(crate) fn create(dir: &Path, name: &str) -> CountingKek {
        CountingKek {
            kek: LocalKek::create(&dir.join(name)).unwrap(),
            generated: AtomicUsize::new(0),
            unwrapped: AtomicUsize::new(0),
            failing: AtomicBool::new(false),
        }
    }

    /// (data keys generated, data keys unwrapped) so far, failed calls included.
    pub(crate) fn calls(&self) -> (usize, usize) {
        (
            self.generated.load(Ordering::SeqCst),
            self.unwrapped.load(Ordering::SeqCst),
        )
    }

    /// From now on, every call fails with [`failure`] (or works again).
    pub(crate) fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }
}

/// The error a failing [`CountingKek`] gives.
pub(crate) fn failure() -> CustodyError {
    CustodyError::Config("the test KEK is failing".into())
}

impl Kek for CountingKek {
    fn descriptor(&self) -> KekRef {
        self.kek.descriptor()
    }

    async fn generate_data_key(&self, ctx: &EncryptionContext) -> Result<DataKey, CustodyError> {
        self.generated.fetch_add(1, Ordering::SeqCst);
        if self.failing.load(Ordering::SeqCst) {
            return Err(failure());
        }
        self.kek.generate_data_key(ctx).await
    }

    async fn unwrap_data_key(
        &self,
        wrapped: &[u8],
        ctx: &EncryptionContext,
    ) -> Result<Zeroizing<[u8; DATA_KEY_LEN]>, CustodyError> {
        self.unwrapped.fetch_add(1, Ordering::SeqCst);
        if self.failing.load(Ordering::SeqCst) {
            return Err(failure());
        }
        self.kek.unwrap_data_key(wrapped, ctx).await
    }
}
