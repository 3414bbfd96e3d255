//! gRPC services: `signer.v1.Signer` on the client port, `signer.v1.Raft` on the peer port; and
//! the Web3Signer-compatible REST API on its own port ([`web3signer`]).
//!
//! Owns: request authentication ([`authn`]: every caller's certificate, checked against the
//! revoked certificates), wire conversion ([`convert`], the only place statuses are
//! made from domain errors) and the sign path ([`signing`]). Must not: contain protection rules
//! or storage code.

pub mod access;
pub mod admin;
pub mod authn;

pub mod audit;
pub mod convert;
pub mod health;
pub mod peer;
pub mod signing;
pub mod web3signer;
