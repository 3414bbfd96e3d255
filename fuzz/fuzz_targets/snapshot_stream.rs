//! libFuzzer target `snapshot_stream`: the checks are in `signer_fuzz::snapshot_stream`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| signer_fuzz::snapshot_stream::check(data));
