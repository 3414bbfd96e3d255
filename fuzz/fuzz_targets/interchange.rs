//! libFuzzer target `interchange`: the checks are in `signer_fuzz::interchange`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| signer_fuzz::interchange::check(data));
