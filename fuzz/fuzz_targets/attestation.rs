//! libFuzzer target `attestation`: the checks are in `signer_fuzz::attestation`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| signer_fuzz::attestation::check(data));
