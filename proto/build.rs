//! Compiles `proto/**/*.proto` with protox (pure Rust, no `protoc` needed) and generates the
//! prost messages plus the tonic client and server for every service.

use std::{env, fs, io, path::PathBuf};

use prost::Message;

/// The proto files, relative to the include root `proto/`.
const PROTOS: &[&str] = &[
    "inference/model_config.proto",
    "inference/grpc_service.proto",
    "cerulean/jobs/v1/jobs.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?).join("proto");
    println!("cargo:rerun-if-changed={}", root.display());
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={}", root.join(proto).display());
    }

    let files: Vec<PathBuf> = PROTOS.iter().map(|p| root.join(p)).collect();
    // `protox::compile` keeps source info, so proto comments become Rust doc comments.
    let fds = protox::compile(&files, [&root])?;

    // The descriptor set shipped in the library (reflection, text format, JSON) does not need
    // the source info: strip it to keep the binary small.
    let mut runtime_fds = fds.clone();
    for file in &mut runtime_fds.file {
        file.source_code_info = None;
    }
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(
        out_dir.join("cerulean_descriptor.bin"),
        runtime_fds.encode_to_vec(),
    )?;

    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // Unimplemented RPCs answer `UNIMPLEMENTED` instead of being required trait methods.
        .generate_default_stubs(true)
        // Every proto `bytes` field (raw_input_contents, raw_output_contents, ...) is
        // `bytes::Bytes`, so decoding slices the request buffer instead of copying it.
        .bytes(".")
        .compile_fds(fds)
        .map_err(|e: io::Error| -> Box<dyn std::error::Error> { e.into() })?;
    Ok(())
}
