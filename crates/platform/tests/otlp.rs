//! Trace export end to end: a real OTLP/gRPC receiver runs in the test, a
//! platform server handles a call that carries a W3C `traceparent`, and the
//! exported span arrives as the child of the caller's trace.
//!
//! Its own test binary, because telemetry is initialised once per process.

#[path = "server/slow_service.rs"]
#[allow(dead_code)] // shared with the server suite, which uses all of it
mod slow_service;

use std::time::Duration;

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use platform::telemetry::{LogFormat, TelemetrySettings};
use platform::{CancellationToken, Server};
use tokio::net::TcpListener;

#[tokio::test(flavor = "multi_thread")]
async fn server_spans_are_exported_over_otlp_as_children_of_the_callers_trace() {
    let (receiver, collector) = testkit::otlp::Receiver::start().await;

    let settings = TelemetrySettings {
        service_name: Some("otlp-test".to_owned()),
        log_format: LogFormat::Json,
        log_filter: "warn".to_owned(),
        otlp_endpoint: Some(collector),
    };
    let guard = platform::telemetry::init(&settings, "unused").unwrap();

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let service = slow_service::SlowService::new(Duration::ZERO);
    let server = tokio::spawn(Server::new("test").grpc_service(service).serve(listener, shutdown.clone()));

    let trace_id = "0af7651916cd43dd8448eb211c80319c";
    let caller_span_id = "b7ad6b7169203331";
    let channel = tonic::transport::Channel::from_shared(format!("http://{address}")).unwrap().connect().await.unwrap();
    let mut client = tonic::client::Grpc::new(channel);
    client.ready().await.unwrap();
    let mut request = tonic::Request::new(());
    request.metadata_mut().insert("traceparent", format!("00-{trace_id}-{caller_span_id}-01").parse().unwrap());
    let path = http::uri::PathAndQuery::from_static("/test.v1.SlowService/Call");
    client.unary(request, path, tonic_prost::ProstCodec::<(), ()>::default()).await.unwrap();

    // The server span closes when the server is done with the call, which may
    // be just after the client has its answer: stop the server first.
    drop(client);
    shutdown.cancel();
    server.await.unwrap().unwrap();
    // Dropping the guard flushes the batch exporter.
    tokio::task::spawn_blocking(move || drop(guard)).await.unwrap();

    let exports = receiver.exports();
    let resource_spans: Vec<_> = exports.iter().flat_map(|e| &e.resource_spans).collect();
    // The resource names the service, its build and this process.
    let resource_attribute = |key: &str| -> Vec<String> {
        resource_spans
            .iter()
            .filter_map(|rs| rs.resource.as_ref())
            .flat_map(|r| &r.attributes)
            .filter(|kv| kv.key == key)
            .filter_map(|kv| match kv.value.as_ref()?.value.as_ref()? {
                Value::StringValue(s) => Some(s.clone()),
                _ => None,
            })
            .collect()
    };
    let service_names = resource_attribute("service.name");
    assert!(service_names.iter().any(|n| n == "otlp-test"), "service names: {service_names:?}");
    assert!(resource_attribute("service.version").iter().all(|v| v == env!("CARGO_PKG_VERSION")));
    assert!(!resource_attribute("service.version").is_empty(), "a service.version");
    let instances = resource_attribute("service.instance.id");
    assert!(instances.iter().all(|id| uuid::Uuid::parse_str(id).is_ok()), "instance ids: {instances:?}");
    assert!(!instances.is_empty(), "a service.instance.id");

    let spans: Vec<_> = resource_spans.iter().flat_map(|rs| &rs.scope_spans).flat_map(|ss| &ss.spans).collect();
    let call = spans.iter().find(|span| span.name == "test.v1.SlowService/Call").unwrap_or_else(|| {
        panic!("no span for the call among {:?}", spans.iter().map(|s| &s.name).collect::<Vec<_>>())
    });
    assert_eq!(hex(&call.trace_id), trace_id, "the span joins the caller's trace");
    assert_eq!(hex(&call.parent_span_id), caller_span_id, "the caller's span is the parent");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
