//! libFuzzer target `tagged_base64`: the checks are in `signer_fuzz::tagged`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| signer_fuzz::tagged::check(data));
