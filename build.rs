//! The one codegen point: `proto/` -> Rust messages, tonic clients and servers,
//! and the encoded descriptor set that reflection and the gateway read. The
//! googleapis files it imports are vendored apart, in `third_party/`.
//!
//! protox compiles the protos in-process, so no system `protoc` is needed. The
//! descriptor set is written from protox's own encoding: decoding it into
//! `prost_types` first would drop the `google.api.http` options.

use std::path::{Path, PathBuf};

const PROTO_ROOT: &str = "proto";
const GOOGLEAPIS: &str = "third_party/googleapis";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The shop's contract, and google.rpc's error details so that reflection
    // clients and the gateway can decode the details of an error status.
    let mut files = Vec::new();
    collect_protos(PROTO_ROOT, "shop", &mut files)?;
    collect_protos(PROTO_ROOT, "meshwork", &mut files)?;
    collect_protos(GOOGLEAPIS, "google/rpc", &mut files)?;
    files.sort();

    let mut compiler = protox::Compiler::new([PROTO_ROOT, GOOGLEAPIS])?;
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
    println!("cargo:rerun-if-changed={GOOGLEAPIS}");
    Ok(())
}

/// Every `.proto` under `root/dir`, named relative to `root` (an include
/// root: protox resolves files relative to it).
fn collect_protos(root: &str, dir: &str, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut pending = vec![Path::new(root).join(dir)];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|ext| ext == "proto") {
                out.push(path.strip_prefix(root).expect("under its root").to_path_buf());
            }
        }
    }
    Ok(())
}
