//! Generates the gRPC code for `proto/*.proto` with tonic/prost, using a vendored `protoc` so a
//! fresh machine needs nothing installed.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    std::env::set_var("PROTOC", protoc);
    println!("cargo:rerun-if-changed=../proto");
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_protos(
            &[
                "../proto/signer.proto",
                "../proto/raft.proto",
                "../proto/admin.proto",
            ],
            &["../proto"],
        )?;
    Ok(())
}
