//! libFuzzer target `keystore`: the checks are in `signer_fuzz::keystore`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| signer_fuzz::keystore::check(data));
