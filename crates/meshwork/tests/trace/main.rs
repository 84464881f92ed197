//! One REST `POST /orders` is one trace an operator can read, under
//! `meshwork up` and as separate components on their production backends:
//! the platform exports to a real OTLP/gRPC receiver run by the test, and
//! the spans of the call form one tree under the caller's trace, following
//! the OpenTelemetry semantic conventions 1.37 (HTTP, RPC, messaging): each
//! gRPC hop a CLIENT span and the SERVER span under it, then the order's
//! event published (PRODUCER) and processed by the products consumer
//! (CONSUMER, the PRODUCER's child); each database call a CLIENT span
//! (database conventions) under the call that made it.
//!
//! Its own binary: telemetry (the exporter under test) is set up once per
//! process, before the harness would set up its own.

#[path = "../system/harness.rs"]
#[macro_use]
#[allow(dead_code)] // shared with the system suite, which uses all of it
mod harness;

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use harness::{Deployment, deploy};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use platform::telemetry::{LogFormat, TelemetryGuard, TelemetrySettings};
use testkit::otlp::Receiver;

/// The receiver, on a runtime of its own (each test has its own), and the
/// process's telemetry exporting to it.
fn receiver() -> &'static (Receiver, TelemetryGuard) {
    static RECEIVER: OnceLock<(Receiver, TelemetryGuard)> = OnceLock::new();
    RECEIVER.get_or_init(|| {
        let (started, ready) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().unwrap();
            runtime.block_on(async move {
                let (receiver, endpoint) = Receiver::start().await;
                let settings = TelemetrySettings {
                    service_name: None,
                    log_format: LogFormat::Json,
                    log_filter: "error".to_owned(),
                    otlp_endpoint: Some(endpoint),
                };
                started.send((receiver, platform::telemetry::init(&settings, "meshwork").unwrap())).unwrap();
                std::future::pending::<()>().await
            });
        });
        ready.recv().unwrap()
    })
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

async fn one_post_orders_is_one_tree_of_spans(deployment: Deployment, test: &str) {
    let (receiver, telemetry) = receiver();
    let Some(platform) = deploy(deployment, test, &[("MESHWORK_AUTH", "optional")]).await else { return };
    let trace_id = uuid::Uuid::new_v4().simple().to_string();
    let caller = "00f067aa0ba902b7";
    let traceparent = format!("00-{trace_id}-{caller}-01");
    let headers = [("traceparent", traceparent.as_str())];
    let post = |path: &'static str, body: String| {
        let platform = &platform;
        async move {
            let reply = platform.rest_with(None, &headers, "POST", path, Some(body.as_bytes())).await;
            assert!((200..300).contains(&reply.status), "{path}: {}", String::from_utf8_lossy(&reply.body));
            reply.json()
        }
    };
    let user = post("/users", format!(r#"{{"email":"{test}@example.com","name":"T"}}"#)).await;
    post("/products", r#"{"id":"traced","name":"Traced","price":2.5,"stock":3}"#.to_owned()).await;
    let order = post("/orders", format!(r#"{{"userId":{},"productId":"traced","quantity":1}}"#, user["id"])).await;
    assert!(order["id"].is_string(), "{order}");

    // Every span of the order's trace, from the gateway to the consumer, arrives.
    let order_trace = || -> Vec<Span> {
        telemetry.flush();
        receiver.spans().into_iter().filter(|span| hex(&span.trace_id) == trace_id).collect()
    };
    testkit::eventually("the consumer's span to be exported", Duration::from_secs(20), || {
        let spans = order_trace();
        async move { spans.iter().any(|span| span.kind == SpanKind::Consumer as i32) }
    })
    .await;
    let spans = order_trace();
    let by_id: HashMap<String, &Span> = spans.iter().map(|span| (hex(&span.span_id), span)).collect();
    let names: Vec<_> = spans.iter().map(|span| (span.name.as_str(), span.kind)).collect();
    let parent = |span: &Span| by_id.get(&hex(&span.parent_span_id)).copied();
    let child = |name: &str, kind: SpanKind, of: &Span| -> &Span {
        spans
            .iter()
            .find(|span| {
                span.name == name && span.kind == kind as i32 && parent(span).is_some_and(|p| p.span_id == of.span_id)
            })
            .unwrap_or_else(|| panic!("no {kind:?} span {name} under {} among {names:?}", of.name))
    };

    // The gateway's HTTP SERVER span of the order, the child of the caller's span.
    let gateway = spans
        .iter()
        .find(|span| span.name == "POST /orders" && hex(&span.parent_span_id) == caller)
        .unwrap_or_else(|| panic!("no gateway span for POST /orders among {names:?}"));
    assert_eq!(gateway.kind, SpanKind::Server as i32);
    assert_eq!(string(gateway, "http.request.method"), "POST");
    assert_eq!(string(gateway, "http.route"), "/orders");
    assert!((200..300).contains(&int(gateway, "http.response.status_code")), "{gateway:?}");

    // Each gRPC hop: a CLIENT span under its caller, the SERVER span under it.
    let hop = |method: &str, caller: &Span| -> &Span {
        let client = child(method, SpanKind::Client, caller);
        let (service, name) = method.split_once('/').unwrap();
        assert_eq!(string(client, "rpc.system"), "grpc");
        assert_eq!(string(client, "rpc.service"), service);
        assert_eq!(string(client, "rpc.method"), name);
        assert_eq!(string(client, "server.address"), "127.0.0.1");
        assert!(int(client, "server.port") > 0, "{client:?}");
        assert_eq!(int(client, "rpc.grpc.status_code"), 0);
        let server = child(method, SpanKind::Server, client);
        assert_eq!(string(server, "rpc.system"), "grpc");
        assert_eq!(string(server, "rpc.service"), service);
        assert_eq!(string(server, "rpc.method"), name);
        assert_eq!(int(server, "rpc.grpc.status_code"), 0);
        server
    };
    let orders = hop("shop.orders.v1.OrderService/CreateOrder", gateway);
    let users = hop("shop.users.v1.UserService/GetUser", orders);
    let products = hop("shop.products.v1.ProductService/ReserveStock", orders);

    // Each database call: a CLIENT span under the call that made it, with
    // what ran and where, and never the statement or its values.
    let (sql, products_db, take_stock) = match deployment {
        Deployment::Up => ("sqlite", "sqlite", "UPDATE products"),
        Deployment::Components => ("postgresql", "mongodb", "findAndModify products"),
    };
    let db_call = |name: &str, system: &str, of: &Span| {
        let span = child(name, SpanKind::Client, of);
        assert_eq!(string(span, "db.system.name"), system, "{span:?}");
        let (operation, collection) = name.split_once(' ').unwrap_or((name, ""));
        assert_eq!(string(span, "db.operation.name"), operation, "{span:?}");
        if !collection.is_empty() {
            assert_eq!(string(span, "db.collection.name"), collection, "{span:?}");
        }
        for secret in ["db.query.text", "db.statement", "db.query.parameter"] {
            assert!(span.attributes.iter().all(|a| !a.key.starts_with(secret)), "{secret} in {span:?}");
        }
    };
    db_call("SELECT users", sql, users);
    db_call("INSERT orders", sql, orders);
    db_call("INSERT outbox", sql, orders);
    db_call("COMMIT", sql, orders);
    db_call(take_stock, products_db, products);

    // The order's event: published (PRODUCER, from the order's span) and
    // processed by the products consumer (CONSUMER, the PRODUCER's child).
    let (system, destination) = match deployment {
        Deployment::Up => ("meshwork_in_process", "events".to_owned()),
        Deployment::Components => ("rabbitmq", format!("{}events", platform.rabbitmq_prefix().unwrap())),
    };
    let producer = spans
        .iter()
        .find(|span| span.kind == SpanKind::Producer as i32)
        .unwrap_or_else(|| panic!("no PRODUCER span among {names:?}"));
    assert_eq!(producer.name, format!("publish {destination}"));
    assert!(parent(producer).is_some_and(|p| p.span_id == orders.span_id), "published from the order's span");
    let consumer = child(&format!("process {destination}"), SpanKind::Consumer, producer);
    for span in [producer, consumer] {
        assert_eq!(string(span, "messaging.system"), system);
        assert_eq!(string(span, "messaging.destination.name"), destination);
        assert_eq!(string(span, "messaging.message.id"), string(producer, "messaging.message.id"));
    }
    if matches!(deployment, Deployment::Up) {
        // The in-process publish is done once every subscription has the event.
        assert!(producer.end_time_unix_nano >= consumer.end_time_unix_nano, "{producer:?}\n{consumer:?}");
    }
    assert_eq!(string(producer, "messaging.operation.type"), "send");
    assert_eq!(string(consumer, "messaging.operation.type"), "process");
    assert_eq!(string(consumer, "messaging.consumer.group.name"), "products.order-events");
}

in_both_deployments!(one_post_orders_is_one_tree_of_spans);
