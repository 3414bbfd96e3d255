//! Quorum Signer's node: replication (openraft over redb), the gRPC services, key custody
//! (local KEK file, AWS KMS), the keyring, metrics and configuration — the IO around the pure
//! core in `signer-core`.
//!
//! The core's modules and the client crate are re-exported under their old paths
//! (`signer_node::protection`, `signer_node::pb`, `signer_node::client`, …), so a test or tool sees one tree.
// `unsafe` is denied crate-wide and allowed only in `custody::hygiene` (mlock, prctl, rlimit),
// `node::inherited` (taking over listening sockets passed by a supervisor) and `allocator` (one
// mimalloc option).
#![deny(unsafe_code)]

pub use signer_core::{admin, audit, backup, bytes, format, protection, registry, scheme, state};

pub use signer_client as client;
pub use signer_client::{pb, tls};

pub mod allocator;
pub mod config;
pub mod custody;
pub mod devcluster;
pub mod http_server;
pub mod keyloader;
pub mod keyring;
pub mod keystore;
pub mod metrics;
pub mod node;
pub mod replica;
pub mod service;
