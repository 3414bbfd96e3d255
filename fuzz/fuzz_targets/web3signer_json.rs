//! libFuzzer target `web3signer_json`: the checks are in `signer_fuzz::web3signer`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| signer_fuzz::web3signer::check(data));
