//! For unit tests: the contract with the Python greeter of the gateway's
//! tests (`tests/python/greeter.proto`), as if learned from its reflection.

use prost_reflect::DescriptorPool;

pub fn contract_and_greeter() -> DescriptorPool {
    let root = env!("CARGO_MANIFEST_DIR");
    let roots =
        [format!("{root}/tests/python"), format!("{root}/../../proto"), format!("{root}/../../third_party/googleapis")];
    let mut compiler = protox::Compiler::new(roots).unwrap();
    compiler.include_imports(true).open_files(["greeter.proto"]).unwrap();
    let mut pool = DescriptorPool::decode(contract::FILE_DESCRIPTOR_SET).unwrap();
    pool.decode_file_descriptor_set(compiler.encode_file_descriptor_set().as_slice()).unwrap();
    pool
}
