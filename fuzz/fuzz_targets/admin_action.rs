//! libFuzzer target `admin_action`: the checks are in `signer_fuzz::admin_action`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| signer_fuzz::admin_action::check(data));
