//! One REST `POST /orders` is one trace an operator can read: `meshwork up`
//! exports to a real OTLP/gRPC receiver run by the test, and the spans of
//! the call form one tree under the caller's trace, each hop a CLIENT span
//! and the SERVER span it leads to, with the OpenTelemetry semantic
//! conventions' attributes (1.37: HTTP, RPC).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use meshwork::components::Component;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use platform::{CancellationToken, Env, Settings};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

#[derive(Clone, Default)]
struct Receiver {
    spans: Arc<Mutex<Vec<Span>>>,
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let spans = request.into_inner().resource_spans.into_iter().flat_map(|r| r.scope_spans).flat_map(|s| s.spans);
        self.spans.lock().unwrap().extend(spans);
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attribute<'a>(span: &'a Span, key: &str) -> Option<&'a Value> {
    span.attributes.iter().find(|KeyValue { key: k, .. }| k == key)?.value.as_ref()?.value.as_ref()
}

fn string<'a>(span: &'a Span, key: &str) -> &'a str {
    match attribute(span, key) {
        Some(Value::StringValue(value)) => value,
        other => panic!("{}: {key} is {other:?}", span.name),
    }
}

fn int(span: &Span, key: &str) -> i64 {
    match attribute(span, key) {
        Some(Value::IntValue(value)) => *value,
        other => panic!("{}: {key} is {other:?}", span.name),
    }
}

async fn post(
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    url: String,
    body: String,
) -> serde_json::Value {
    let request = http::Request::post(url)
        .header("content-type", "application/json")
        .header("traceparent", format!("00-{TRACE_ID}-{CALLER_SPAN}-01"))
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let response = client.request(request).await.unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn one_post_orders_is_one_tree_of_client_and_server_spans() {
    let receiver = Receiver::default();
    let collector = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector_url = format!("http://{}", collector.local_addr().unwrap());
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(receiver.clone()))
            .serve_with_incoming(TcpListenerStream::new(collector)),
    );

    let data_dir = std::env::temp_dir().join(format!("meshwork-trace-{}", uuid::Uuid::new_v4().simple()));
    let env = Env::from_pairs([
        ("MESHWORK_DATA_DIR", data_dir.to_str().unwrap()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", collector_url.as_str()),
        ("RUST_LOG", "warn"),
    ]);
    let settings = Settings::load(&env, &meshwork::component_settings()).unwrap();
    let telemetry = platform::telemetry::init(&settings.telemetry, "meshwork").unwrap();
    let shutdown = CancellationToken::new();
    let up = meshwork::up::start(&settings, 0, None, shutdown.clone()).await.unwrap();
    let gateway = up.address(Component::Gateway);
    let running = tokio::spawn(up.wait());

    let client = Client::builder(TokioExecutor::new()).build_http();
    let user = post(&client, format!("http://{gateway}/users"), r#"{"email":"t@example.com","name":"T"}"#.into()).await;
    let product = r#"{"id":"traced","name":"Traced","price":2.5,"stock":3}"#;
    post(&client, format!("http://{gateway}/products"), product.into()).await;
    let order = format!(r#"{{"userId":{},"productId":"traced","quantity":1}}"#, user["id"]);
    let order = post(&client, format!("http://{gateway}/orders"), order).await;
    assert!(order["id"].is_string(), "{order}");

    shutdown.cancel();
    running.await.unwrap().unwrap();
    // Dropping the guard flushes the batch exporter.
    tokio::task::spawn_blocking(move || drop(telemetry)).await.unwrap();
    let _ = std::fs::remove_dir_all(&data_dir);

    let spans = receiver.spans.lock().unwrap();
    let by_id: HashMap<String, &Span> = spans.iter().map(|span| (hex(&span.span_id), span)).collect();
    let named = |name: &str, kind: SpanKind| -> Vec<&Span> {
        spans.iter().filter(|span| span.name == name && span.kind == kind as i32).collect()
    };
    let parent = |span: &Span| by_id.get(&hex(&span.parent_span_id)).copied();
    let all_names: Vec<_> = spans.iter().map(|span| (span.name.as_str(), span.kind)).collect();

    // The gateway's HTTP SERVER span, the child of the caller's span.
    let servers = named("POST /orders", SpanKind::Server);
    let [gateway] = servers.as_slice() else { panic!("one gateway span for POST /orders among {all_names:?}") };
    assert_eq!((hex(&gateway.trace_id).as_str(), hex(&gateway.parent_span_id).as_str()), (TRACE_ID, CALLER_SPAN));
    assert_eq!(string(gateway, "http.request.method"), "POST");
    assert_eq!(string(gateway, "http.route"), "/orders");
    assert!((200..300).contains(&int(gateway, "http.response.status_code")), "{gateway:?}");

    // Each hop: a CLIENT span under its caller, the SERVER span under it.
    let hop = |method: &str, caller: &Span| {
        let clients = named(method, SpanKind::Client);
        let client = clients
            .iter()
            .find(|client| parent(client).is_some_and(|p| p.span_id == caller.span_id))
            .unwrap_or_else(|| panic!("no CLIENT span {method} under {} among {all_names:?}", caller.name));
        let (service, name) = method.split_once('/').unwrap();
        assert_eq!(string(client, "rpc.system"), "grpc");
        assert_eq!(string(client, "rpc.service"), service);
        assert_eq!(string(client, "rpc.method"), name);
        assert_eq!(string(client, "server.address"), "127.0.0.1");
        assert!(int(client, "server.port") > 0, "{client:?}");
        assert_eq!(int(client, "rpc.grpc.status_code"), 0);
        let servers = named(method, SpanKind::Server);
        let server = servers
            .iter()
            .find(|server| parent(server).is_some_and(|p| p.span_id == client.span_id))
            .unwrap_or_else(|| panic!("no SERVER span {method} under its CLIENT span among {all_names:?}"));
        assert_eq!(string(server, "rpc.system"), "grpc");
        assert_eq!(string(server, "rpc.service"), service);
        assert_eq!(string(server, "rpc.method"), name);
        assert_eq!(int(server, "rpc.grpc.status_code"), 0);
        assert_eq!(hex(&server.trace_id), TRACE_ID);
        *server
    };
    let orders = hop("shop.orders.v1.OrderService/CreateOrder", gateway);
    hop("shop.users.v1.UserService/GetUser", orders);
    hop("shop.products.v1.ProductService/ReserveStock", orders);
}
