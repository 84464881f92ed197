//! For unit tests: the contract with the Python greeter of the gateway's
//! tests (`tests/python/greeter.proto`), as if learned from its reflection,
//! and a message with every kind of field.

use prost_reflect::{DescriptorPool, MessageDescriptor};

use crate::routes::RouteTable;

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

/// Every kind of field, and one route answering the whole message
/// (`/kinds`) and one answering each field named in `response_body`
/// (`/kinds/<field>`).
pub fn kinds() -> (MessageDescriptor, RouteTable) {
    const SOURCE: &str = r#"
        syntax = "proto3";
        package kinds;
        import "google/api/annotations.proto";
        import "google/protobuf/timestamp.proto";
        enum Level { LEVEL_UNSPECIFIED = 0; LEVEL_HIGH = 1; }
        message Inner { string text = 1; int64 count = 2; }
        message Tree { string label = 1; Tree child = 2; }
        message Kinds {
          float ratio = 1;
          double score = 2;
          bytes blob = 3;
          Level level = 4;
          map<string, Inner> by_name = 5;
          map<int64, Level> by_number = 6;
          map<bool, string> by_flag = 7;
          repeated float ratios = 8;
          oneof choice { string word = 9; Inner nested = 10; }
          optional int32 maybe = 11;
          Inner inner = 12;
          google.protobuf.Timestamp at = 13;
          repeated Inner inners = 14;
          uint64 big = 15;
          sint32 small = 16;
          sfixed64 wide = 17;
          fixed32 unsigned = 18;
          bool flag = 19;
          sint64 far = 20;
          int32 total = 21;
          Tree tree = 22;
        }
        service KindsService {
          rpc Get(Kinds) returns (Kinds) { option (google.api.http) = { get: "/kinds" }; }
          rpc Inner(Kinds) returns (Kinds) { option (google.api.http) = { get: "/kinds/inner" response_body: "inner" }; }
          rpc Inners(Kinds) returns (Kinds) { option (google.api.http) = { get: "/kinds/inners" response_body: "inners" }; }
          rpc ByName(Kinds) returns (Kinds) { option (google.api.http) = { get: "/kinds/by_name" response_body: "by_name" }; }
          rpc Word(Kinds) returns (Kinds) { option (google.api.http) = { get: "/kinds/word" response_body: "word" }; }
          rpc Maybe(Kinds) returns (Kinds) { option (google.api.http) = { get: "/kinds/maybe" response_body: "maybe" }; }
          rpc Score(Kinds) returns (Kinds) { option (google.api.http) = { get: "/kinds/score" response_body: "score" }; }
          rpc At(Kinds) returns (Kinds) { option (google.api.http) = { get: "/kinds/at" response_body: "at" }; }
        }
    "#;
    // One directory per call: the tests run side by side.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("meshwork-kinds-{}-{call}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("kinds.proto"), SOURCE).unwrap();
    let googleapis = concat!(env!("CARGO_MANIFEST_DIR"), "/../../third_party/googleapis");
    // Encoded by protox itself: prost-types' messages would drop the
    // `google.api.http` options.
    let mut compiler = protox::Compiler::new([dir.to_str().unwrap(), googleapis]).unwrap();
    compiler.include_imports(true).open_files(["kinds.proto"]).unwrap();
    let files = compiler.encode_file_descriptor_set();
    std::fs::remove_dir_all(&dir).unwrap();
    let pool = DescriptorPool::decode(files.as_slice()).unwrap();
    (pool.get_message_by_name("kinds.Kinds").unwrap(), RouteTable::from_pool(&pool).unwrap())
}
