//! libFuzzer target `revocation`: the checks are in `signer_fuzz::revocation`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| signer_fuzz::revocation::check(data));
