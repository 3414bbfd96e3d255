//! `signerctl` as a library: the parts integration tests (and the `signerctl` binary) share.
//!
//! Owns: nothing of its own; it only exposes [`piv`] (feature `yubikey`) so that
//! `cli/tests/piv_emulator.rs` can drive the real YubiKey code against a virtual card.

#![forbid(unsafe_code)]

#[cfg(feature = "yubikey")]
pub mod piv;
