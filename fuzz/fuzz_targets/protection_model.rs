//! libFuzzer target `protection_model`: the checks are in `signer_fuzz::protection`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| signer_fuzz::protection::check(data));
