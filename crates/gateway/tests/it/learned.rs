//! A service written in Python (grpcio, with reflection on) joins the
//! gateway with nothing but its address: the gateway learns its contract
//! from reflection, serves it over REST, gRPC, gRPC-Web and Connect under
//! the access rules it declares, lists it in `/openapi.json` and in its own
//! reflection, and learns it again when a new version is deployed. And a tonic service, whose
//! reflection answers with one file at a time, is learned with its imports.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use gateway::codec::DynamicCodec;
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, Value};

use crate::harness::{Builder, Harness};

const GREETER: &str = "acme.greeter.v1.Greeter";
const VERSION_1: &str = include_str!("../python/greeter.proto");
const VERSION_2_METHOD: &str = r#"
  // Says goodbye to anyone.
  rpc SayGoodbye(HelloRequest) returns (HelloReply) {
    option (meshwork.access.v1.access) = {audience: AUDIENCE_PUBLIC};
    option (google.api.http) = {get: "/v1/farewells/{name}"};
  }
"#;

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The Python greeter, killed when dropped.
struct Greeter {
    child: Child,
    port: u16,
}

impl Drop for Greeter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Greeter {
    /// Serves `proto` (the text of greeter.proto) on `port` (0: any).
    fn start(root: &Path, proto: &str, port: u16) -> Self {
        let dir = root.join("acme/greeter/v1");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("greeter.proto"), proto).unwrap();
        let repository = repository();
        let mut child = Command::new("python3")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/greeter_server.py"))
            .arg(root)
            .arg(repository.join("proto"))
            .arg(repository.join("third_party/googleapis"))
            .args(["--port", &port.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port = line.trim().parse().unwrap_or_else(|_| panic!("greeter_server.py printed {line:?}, not a port"));
        Self { child, port }
    }
}

/// Whether python3 has grpcio, grpcio-tools and grpcio-reflection; CI
/// (`MESHWORK_REQUIRE_SERVICES=1`) insists, as scripts/services installs them.
fn python_grpc_available() -> bool {
    let probe = Command::new("python3").args(["-c", "import grpc, grpc_tools, grpc_reflection"]).output();
    let available = probe.is_ok_and(|output| output.status.success());
    if !available {
        let required = std::env::var("MESHWORK_REQUIRE_SERVICES").is_ok_and(|v| v == "1");
        assert!(!required, "python3 lacks grpcio, grpcio-tools or grpcio-reflection (scripts/services installs them)");
        eprintln!("skipped: pip install grpcio grpcio-tools grpcio-reflection");
    }
    available
}

/// The greeter's descriptors, as a client of it would compile them.
fn client_pool(root: &Path) -> DescriptorPool {
    let repository = repository();
    let roots = [root.to_owned(), repository.join("proto"), repository.join("third_party/googleapis")];
    let mut compiler = protox::Compiler::new(roots).unwrap();
    compiler.include_imports(true).open_files(["acme/greeter/v1/greeter.proto"]).unwrap();
    DescriptorPool::decode(compiler.encode_file_descriptor_set().as_slice()).unwrap()
}

/// Polls the OpenAPI document until it has `path` (a bounded wait).
async fn wait_for_path(harness: &Harness, path: &str) {
    for _ in 0..200 {
        let document = harness.get("/openapi.json").await.json();
        if document["paths"].get(path).is_some() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ready = harness.get("/health/ready").await.json();
    panic!("{path} never appeared in /openapi.json; readiness: {ready}");
}

fn hello(pool: &DescriptorPool, name: &str) -> DynamicMessage {
    let mut request = DynamicMessage::new(pool.get_message_by_name("acme.greeter.v1.HelloRequest").unwrap());
    request.set_field_by_name("name", Value::String(name.to_owned()));
    request
}

fn message_of(reply: &DynamicMessage) -> String {
    reply.get_field_by_name("message").unwrap().as_str().unwrap().to_owned()
}

async fn grpc_call(
    harness: &Harness,
    pool: &DescriptorPool,
    method: &str,
    name: &str,
) -> Result<String, tonic::Status> {
    let mut client = tonic::client::Grpc::new(harness.channel().await);
    client.ready().await.unwrap();
    let path = http::uri::PathAndQuery::try_from(format!("/{GREETER}/{method}")).unwrap();
    let output = pool.get_message_by_name("acme.greeter.v1.HelloReply").unwrap();
    let reply = client.unary(tonic::Request::new(hello(pool, name)), path, DynamicCodec::new(output)).await?;
    Ok(message_of(reply.get_ref()))
}

async fn grpc_web_call(harness: &Harness, pool: &DescriptorPool, name: &str) -> String {
    let message = hello(pool, name).encode_to_vec();
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
    frame.extend_from_slice(&message);
    let body = String::from_utf8(frame).expect("this frame happens to be UTF-8");
    let headers = [("content-type", "application/grpc-web+proto"), ("x-grpc-web", "1")];
    let reply = harness.request("POST", &format!("/{GREETER}/SayHello"), Some(&body), &headers).await;
    assert_eq!((reply.status, reply.body[0]), (200, 0), "a data frame comes back");
    let length = u32::from_be_bytes(reply.body[1..5].try_into().unwrap()) as usize;
    let output = pool.get_message_by_name("acme.greeter.v1.HelloReply").unwrap();
    message_of(&DynamicMessage::decode(output, &reply.body[5..5 + length]).unwrap())
}

/// What grpcurl pointed at the gateway sees: the services its reflection
/// lists, and the methods of `service` in the file reflection gives for it
/// (empty if it gives none).
async fn reflected(harness: &Harness, service: &str) -> (Vec<String>, Vec<String>) {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let ask = |request| ServerReflectionRequest { host: String::new(), message_request: Some(request) };
    let requests = [
        ask(MessageRequest::ListServices(String::new())),
        ask(MessageRequest::FileContainingSymbol(service.to_owned())),
    ];
    let mut client = ServerReflectionClient::new(harness.channel().await);
    let mut responses = client.server_reflection_info(tokio_stream::iter(requests)).await.unwrap().into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) =
        responses.message().await.unwrap().unwrap().message_response
    else {
        panic!("expected a service list");
    };
    let services = list.service.into_iter().map(|service| service.name).collect();
    let methods = match responses.message().await.unwrap().unwrap().message_response {
        Some(MessageResponse::FileDescriptorResponse(files)) => files
            .file_descriptor_proto
            .iter()
            .map(|file| prost_types::FileDescriptorProto::decode(&file[..]).unwrap())
            .flat_map(|file| {
                let package = file.package().to_owned();
                file.service.into_iter().filter(move |s| format!("{package}.{}", s.name()) == service)
            })
            .flat_map(|service| service.method.into_iter().map(|method| method.name().to_owned()))
            .collect(),
        _ => Vec::new(),
    };
    (services, methods)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_python_service_joins_through_reflection_alone_and_its_new_version_is_learned() {
    if !python_grpc_available() {
        return;
    }
    let root = std::env::temp_dir().join(format!("greeter-{}", uuid::Uuid::new_v4().simple()));
    let greeter = Greeter::start(&root, VERSION_1, 0);
    let pool = client_pool(&root);
    let mut builder = Builder::new();
    builder.route(GREETER, vec![format!("http://127.0.0.1:{}", greeter.port)]);
    // A service whose upstream is not there: nothing is known of it.
    builder.route("acme.absent.v1.Absent", vec!["http://127.0.0.1:1".to_owned()]);
    builder.reflection_refresh = Duration::from_millis(200);
    // Version 2 is deployed below by stopping the greeter and starting it
    // again, which takes a Python start (seconds on a busy machine). The
    // learning polls that fail meanwhile open its breaker, by default for
    // 60 s, longer than this test waits for version 2 (a CI run failed so):
    // here it lets trial calls through again after 200 ms.
    builder.policy.breaker.open_for = Duration::from_millis(200);
    builder.auth_mode = gateway::auth::AuthMode::Required;
    let harness = builder.start().await;
    wait_for_path(&harness, "/v1/greetings/{name}").await;

    // REST, transcoded by the rules the service declared.
    let reply = harness.get("/v1/greetings/Ada").await;
    assert_eq!((reply.status, reply.json()["message"].as_str()), (200, Some("Hello, Ada!")));
    let document = harness.get("/openapi.json").await.json();
    let operation = &document["paths"]["/v1/greetings/{name}"]["get"];
    // (grpcio, like protoc's other plugins, embeds descriptors without their
    // comments: the summary is the gRPC method.)
    assert_eq!(operation["summary"], "/acme.greeter.v1.Greeter/SayHello");
    assert_eq!(operation["security"], serde_json::json!([]), "SayHello declares itself public");

    // Its access rules hold: undeclared is for signed-in callers, internal for nobody here.
    let reply = harness.request("POST", "/v1/notes", Some(r#"{"author":"Ada","text":"hi"}"#), &[]).await;
    assert_eq!(reply.status, 401, "{}", String::from_utf8_lossy(&reply.body));
    assert_eq!(document["paths"]["/v1/notes"]["post"]["security"][0], serde_json::json!({"bearerAuth": []}));
    let reply = harness.request("POST", "/v1/forget/Ada", Some("{}"), &[]).await;
    assert_eq!(reply.status, 403, "internal methods are not served here");
    assert!(document["paths"].get("/v1/forget/{name}").is_none());
    let status = grpc_call(&harness, &pool, "Forget", "Ada").await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");

    // A path of the shop's contract stays the shop's.
    let reply = harness.get("/products/p1").await;
    assert!(!String::from_utf8_lossy(&reply.body).contains("impostor"), "the learned route took /products/{{id}}");
    assert!(document["paths"]["/products/{id}"]["get"]["operationId"].as_str().unwrap().starts_with("ProductService"));

    // gRPC, gRPC-Web and Connect pass through to it.
    assert_eq!(grpc_call(&harness, &pool, "SayHello", "Bo").await.unwrap(), "Hello, Bo!");
    assert_eq!(grpc_web_call(&harness, &pool, "Cy").await, "Hello, Cy!");
    let connect = [("content-type", "application/json"), ("connect-protocol-version", "1")];
    let reply = harness.request("POST", &format!("/{GREETER}/SayHello"), Some(r#"{"name":"Di"}"#), &connect).await;
    assert_eq!((reply.status, reply.json()["message"].as_str()), (200, Some("Hello, Di!")));

    // The absent one: refused, not guessed at, and readiness says why.
    let mut client = tonic::client::Grpc::new(harness.channel().await);
    client.ready().await.unwrap();
    let output = pool.get_message_by_name("acme.greeter.v1.HelloReply").unwrap();
    let path = http::uri::PathAndQuery::from_static("/acme.absent.v1.Absent/Anything");
    let refused = client.unary(tonic::Request::new(hello(&pool, "x")), path, DynamicCodec::new(output)).await;
    let refused = refused.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
    assert!(refused.message().contains("not yet learned"), "{refused:?}");
    let ready = harness.get("/health/ready").await.json();
    let learned = &ready["learned_from_reflection"];
    // greeter.proto alone: its imports are the contract's (google/api, meshwork/access).
    assert_eq!(learned[GREETER]["learned_files"], 1, "{ready}");
    assert!(learned["acme.absent.v1.Absent"]["error"].is_string(), "{ready}");

    // grpcurl pointed at the gateway lists and describes it; not the absent one.
    let (services, methods) = reflected(&harness, GREETER).await;
    assert!(services.iter().any(|name| name == GREETER), "{services:?}");
    assert!(!services.iter().any(|name| name == "acme.absent.v1.Absent"), "{services:?}");
    assert!(
        methods.iter().any(|name| name == "SayHello") && !methods.iter().any(|name| name == "SayGoodbye"),
        "{methods:?}"
    );

    // Version 2 is deployed at the same address: learned without a restart.
    let port = greeter.port;
    drop(greeter);
    let version_2 = VERSION_1.replace("  // (version 2 of this file adds a method here)\n", VERSION_2_METHOD);
    assert_ne!(version_2, VERSION_1);
    let _greeter = Greeter::start(&root, &version_2, port);
    wait_for_path(&harness, "/v1/farewells/{name}").await;
    let reply = harness.get("/v1/farewells/Ada").await;
    assert_eq!((reply.status, reply.json()["message"].as_str()), (200, Some("Goodbye, Ada!")));
    let (_, methods) = reflected(&harness, GREETER).await;
    assert!(methods.iter().any(|name| name == "SayGoodbye"), "reflection describes version 2: {methods:?}");
    let _ = std::fs::remove_dir_all(&root);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_service_whose_reflection_sends_one_file_at_a_time_is_learned_with_its_imports() {
    let mut builder = Builder::new();
    let echo = builder.echo_upstream_with_reflection().await;
    builder.route("echo.v1.EchoService", vec![format!("http://{echo}")]);
    builder.load_echo_descriptors = false;
    let harness = builder.start().await;
    wait_for_path(&harness, "/v1/echo/{id}").await;
    // echo.proto imports google/protobuf/duration.proto and wrappers.proto,
    // which the contract does not: each was asked for by name.
    let ready = harness.get("/health/ready").await.json();
    let files = ready["learned_from_reflection"]["echo.v1.EchoService"]["learned_files"].as_u64();
    assert!(files.is_some_and(|files| files >= 2), "{ready}");
    let reply = harness.get("/v1/echo/e1?wait=1.5s&limit=7").await;
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    let request = &reply.json()["request"];
    assert_eq!((&request["id"], &request["wait"], &request["limit"]), (&"e1".into(), &"1.500s".into(), &7.into()));
}
