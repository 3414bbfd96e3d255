//! Quorum Signer: a slashing-protected remote signer for validator keys.
//!
//! The library holds the pure core — [`protection`] (what may be signed) and [`scheme`] (how to
//! sign) — which every replica runs identically. IO-bearing parts (replication, custody,
//! services) are added at the seams described in DESIGN.md.
// `unsafe` is denied crate-wide and allowed only in `custody::hygiene` (mlock, prctl, rlimit).
#![deny(unsafe_code)]

pub mod admin;
pub mod audit;
pub mod bytes;
pub mod client;
pub mod config;
pub mod custody;
pub mod devcluster;
pub mod format;
pub mod keyloader;
pub mod keyring;
pub mod keystore;
pub mod metrics;
pub mod node;
pub mod protection;
pub mod registry;
pub mod replica;
pub mod scheme;
pub mod service;
pub mod state;
pub mod tls;

/// Generated protobuf and gRPC types (`proto/*.proto`, package `signer.v1`).
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod pb {
    tonic::include_proto!("signer.v1");

    /// The encoded descriptors of every service and message, for gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("signer_descriptor");
}
