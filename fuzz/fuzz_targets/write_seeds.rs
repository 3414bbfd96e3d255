//! Not a fuzz target: writes the seed corpora (`signer_fuzz::seeds`) and exits, before
//! libFuzzer reads any input. Run by `fuzz/run.sh --seeds`.
#![no_main]

libfuzzer_sys::fuzz_target!(init: signer_fuzz::seeds::write_from_env(), |_data: &[u8]| {});
