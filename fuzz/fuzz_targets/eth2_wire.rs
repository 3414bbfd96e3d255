//! libFuzzer target `eth2_wire`: the checks are in `signer_fuzz::eth2_wire`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| signer_fuzz::eth2_wire::check(data));
