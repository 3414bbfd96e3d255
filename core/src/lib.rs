//! Quorum Signer's core: what every replica computes identically, with no IO, no clock and no
//! async runtime.
//!
//! - [`protection`]: the slashing-protection rules (EIP-3076 for eth2, HotShot view rules for
//!   Espresso) and [`scheme`]: the signature schemes;
//! - [`admin`]: the admin plane's rules (M-of-N approvals, attestation, the canonical action
//!   encoding); [`audit`]: the hash-chained audit records; [`registry`]: the key registry and
//!   [`sealed`]: a key's sealed secret as replicas hold it;
//! - [`state`]: the replicated state as a value and `Applied::apply`, the whole replicated
//!   decision; [`format`]: the versioned binary format it is stored and sent in; [`backup`]:
//!   backup files of that state and the margins a restored cluster starts above;
//! - [`pb`]: the protobuf messages (the canonical admin action is protobuf bytes).
//!
//! The node (`signer-node`) stores, replicates and serves this; the client (`signer-client`)
//! speaks the gRPC API.
// No `unsafe` anywhere in the core.
#![forbid(unsafe_code)]

pub mod admin;
pub mod audit;
pub mod backup;
pub mod bytes;
pub mod format;
pub mod protection;
pub mod registry;
pub mod scheme;
pub mod sealed;
pub mod state;

/// Generated protobuf message types (`proto/*.proto`, package `signer.v1`), without services.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/signer.v1.rs"));
}
