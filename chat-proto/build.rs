//! Compiles `../proto/*.proto` with protox (a pure-Rust protobuf compiler), so
//! a fresh machine needs no system `protoc`.

use std::path::PathBuf;

const PROTOS: &[&str] = &[
    "chat.proto",
    "admin.proto",
    "bidi_chat.proto",
    "number.proto",
    "route_guide.proto",
    "health.proto",
    "reflection.proto",
    "reflection_v1alpha.proto",
    "grpc/testing/test.proto",
];

/// Files the ones above import, watched for changes too.
const IMPORTED: &[&str] = &["grpc/testing/empty.proto", "grpc/testing/messages.proto"];

fn main() {
    // Read when the script runs, not when it is compiled: cargo reuses a
    // compiled build script for an identical copy of this crate elsewhere
    // (another checkout sharing the target directory).
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let proto_dir = PathBuf::from(manifest).join("../proto");
    for file in PROTOS.iter().chain(IMPORTED) {
        println!("cargo:rerun-if-changed={}", proto_dir.join(file).display());
    }
    let fds = match protox::compile(PROTOS, [&proto_dir]) {
        Ok(fds) => fds,
        Err(e) => panic!(
            "cannot compile the protos in {}: {e:?}",
            proto_dir.display()
        ),
    };
    write_descriptors(&fds);
    generate(fds);
}

/// Every file compiled, imports included, without source info, encoded:
/// what the reflection service serves.
fn write_descriptors(fds: &prost_types::FileDescriptorSet) {
    use prost::Message as _;
    let mut fds = fds.clone();
    for file in &mut fds.file {
        file.source_code_info = None;
    }
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    std::fs::write(out.join("file_descriptor_set.bin"), fds.encode_to_vec())
        .expect("writing the file descriptor set");
}

#[cfg(not(feature = "tonic"))]
fn generate(fds: prost_types::FileDescriptorSet) {
    prost_build::Config::new()
        .compile_fds(fds)
        .expect("prost code generation");
}

#[cfg(feature = "tonic")]
fn generate(fds: prost_types::FileDescriptorSet) {
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)
        .expect("tonic code generation");
}
