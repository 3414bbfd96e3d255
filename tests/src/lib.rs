//! Quorum Signer's cross-crate test package: vector harnesses (EIP-3076, BLS12-381, Espresso)
//! and property tests live in `tests/tests/`; vendored vectors in `tests/vectors/`. This library
//! target is empty on purpose.
#![forbid(unsafe_code)]
