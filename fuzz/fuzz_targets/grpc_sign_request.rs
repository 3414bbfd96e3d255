//! libFuzzer target `grpc_sign_request`: the checks are in `signer_fuzz::grpc_sign`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| signer_fuzz::grpc_sign::check(data));
