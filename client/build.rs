//! Generates the gRPC services of `proto/*.proto` with tonic, using a vendored `protoc`. The
//! message types are `signer-core`'s (`signer_core::pb`), so the services refer to them instead
//! of generating a second copy.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    std::env::set_var("PROTOC", protoc);
    println!("cargo:rerun-if-changed=../proto");
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("signer_descriptor.bin"))
        .extern_path(".signer.v1", "::signer_core::pb")
        .build_server(true)
        .build_client(true)
        .compile_protos(
            &[
                "../proto/signer.proto",
                "../proto/raft.proto",
                "../proto/admin.proto",
                "../proto/audit.proto",
            ],
            &["../proto"],
        )?;
    Ok(())
}
