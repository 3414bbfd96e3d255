//! libFuzzer target `audit_record`: the checks are in `signer_fuzz::audit_record`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| signer_fuzz::audit_record::check(data));
