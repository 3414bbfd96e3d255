//! libFuzzer target `peer_message`: the checks are in `signer_fuzz::peer`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| signer_fuzz::peer::check(data));
