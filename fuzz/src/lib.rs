//! The checks behind the libFuzzer targets in `fuzz_targets/`: one module per input a stranger
//! or a peer can send a node, each a `check(data)` that feeds the bytes to the real entry point
//! and asserts what must hold for every input (round trips, determinism, agreement with an
//! independent model), so that a violated property is a crash libFuzzer keeps.
//!
//! Owns: the properties and the independent reference models ([`protection::model`], the
//! naive parsers in [`revocation`] and [`interchange`], the stream model in [`peer`]), and the
//! seed inputs ([`seeds`]). Must not: change what the product does, or derive a model from the
//! code it checks (a model shares only the types whose decisions it compares).
//!
//! To ensure correctness:
//! - a check never panics for an input the product handles correctly: every `assert!` and
//!   `expect` here is a property of the product, named in its message;
//! - every check is deterministic and bounded (the keystore check skips key derivations that
//!   would take more than a few milliseconds), so a replayed input gives the same verdict.

pub mod admin_action;
pub mod attestation;
pub mod audit_record;
pub mod eth2_wire;
pub mod grpc_sign;
pub mod interchange;
pub mod keystore;
pub mod peer;
pub mod protection;
pub mod revocation;
pub mod seeds;
pub mod snapshot_stream;
pub mod tagged;
pub mod web3signer;
