//! Quorum Signer: a slashing-protected remote signer for validator keys.
//!
//! The library holds the pure core — [`protection`] (what may be signed) and [`scheme`] (how to
//! sign) — which every replica runs identically. IO-bearing parts (replication, custody,
//! services) are added at the seams described in DESIGN.md.
#![forbid(unsafe_code)]

pub mod bytes;
pub mod protection;
pub mod scheme;
