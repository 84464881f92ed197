//! The one codegen point: `proto/` -> Rust messages, tonic clients and servers,
//! and the encoded descriptor set that reflection and the gateway read.
//!
//! protox compiles the protos in-process, so no system `protoc` is needed. The
//! descriptor set is written from protox's own encoding: decoding it into
//! `prost_types` first would drop the `google.api.http` options.

use std::path::{Path, PathBuf};

const PROTO_ROOT: &str = "proto";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The shop's contract, and google.rpc's error details so that reflection
    // clients and the gateway can decode the details of an error status.
    let mut files = Vec::new();
    collect_protos(&Path::new(PROTO_ROOT).join("shop"), &mut files)?;
    collect_protos(&Path::new(PROTO_ROOT).join("meshwork"), &mut files)?;
    collect_protos(&Path::new(PROTO_ROOT).join("google").join("rpc"), &mut files)?;
    files.sort();

    let mut compiler = protox::Compiler::new([PROTO_ROOT])?;
    compiler.include_imports(true).include_source_info(true);
    compiler.open_files(&files)?;

    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out_dir.join("descriptor_set.bin"), compiler.encode_file_descriptor_set())?;

    // Type names (`prost::Name`) give every event its routing key and `Any`
    // type URL from the contract instead of a string typed by hand.
    let mut config = prost_build::Config::new();
    config.enable_type_names();
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds_with_config(compiler.file_descriptor_set(), config)?;

    println!("cargo:rerun-if-changed={PROTO_ROOT}");
    Ok(())
}

fn collect_protos(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_protos(&path, out)?;
        } else if path.extension().is_some_and(|ext| ext == "proto") {
            // protox resolves files relative to the include root.
            out.push(path.strip_prefix(PROTO_ROOT).expect("under root").to_path_buf());
        }
    }
    Ok(())
}
