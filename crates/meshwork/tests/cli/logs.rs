//! The log stream an operator collects: in JSON mode every line a process
//! writes is one JSON object (its start-up address and its failures too,
//! nothing on stdout), and a line written while serving a call names the
//! call's trace and span, the trace the caller started included.

use contract::orders::CreateOrderRequest;
use contract::orders::order_service_client::OrderServiceClient;
use contract::products::CreateProductRequest;
use contract::products::product_service_client::ProductServiceClient;
use contract::users::CreateUserRequest;
use contract::users::user_service_client::UserServiceClient;
use std::io::Read;
use tonic::transport::Channel;

use crate::harness::{Running, run};

/// The caller's W3C trace context, as a client that traces sends it.
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

async fn channel(address: &str) -> Channel {
    Channel::from_shared(format!("http://{address}")).unwrap().connect().await.unwrap()
}

fn assert_every_line_is_json(lines: &[String]) {
    for line in lines {
        let json: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("a log line that is not JSON ({e}): {line}"));
        assert!(json["level"].is_string() && json["timestamp"].is_string(), "{line}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_component_writes_only_json_lines_and_nothing_on_stdout() {
    let mut env = vec![("PORT", "0"), ("MESHWORK_HOST", "127.0.0.1")];
    env.extend(crate::harness::UNREACHABLE_UPSTREAMS);
    let mut running = Running::start(&["gateway"], &env);
    running.listening("gateway");
    assert!(running.terminate().success());
    let mut stdout = String::new();
    running.stdout.read_to_string(&mut stdout).unwrap();
    assert_eq!(stdout, "", "stdout is not the log stream");
    assert_every_line_is_json(&running.log());
}

#[test]
fn a_failure_after_start_is_a_json_line_too() {
    // Orders without its broker: found missing once logging has begun.
    let env = [
        ("DATABASE_URL", "postgres://127.0.0.1:1/orders"),
        ("USER_SERVICE_URL", "http://127.0.0.1:1"),
        ("PRODUCT_SERVICE_URL", "http://127.0.0.1:1"),
    ];
    let output = run(&["orders"], &env);
    assert_eq!(output.status.code(), Some(64), "an invalid configuration");
    let log = String::from_utf8(output.stderr).unwrap();
    let lines: Vec<String> = log.lines().map(str::to_owned).collect();
    assert_every_line_is_json(&lines);
    assert!(lines.iter().any(|line| line.contains("RABBITMQ_URL")), "names what is missing: {log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_line_written_in_a_call_names_its_trace_and_span() {
    let data_dir = std::env::temp_dir().join(format!("meshwork-logs-{}", uuid::Uuid::new_v4()));
    let mut running = Running::start(&["up", "--base-port", "0"], &[("MESHWORK_DATA_DIR", data_dir.to_str().unwrap())]);
    let banner = running.read_up_banner();
    let mut users = UserServiceClient::new(channel(&banner[1].1).await);
    let mut products = ProductServiceClient::new(channel(&banner[2].1).await);
    let mut orders = OrderServiceClient::new(channel(&banner[3].1).await);
    let user = CreateUserRequest { email: "log@example.com".to_owned(), name: "Log".to_owned(), password: None };
    let user_id = users.create_user(user).await.unwrap().into_inner().user.unwrap().id;
    let product = CreateProductRequest {
        id: "logged".to_owned(),
        name: "Logged".to_owned(),
        description: String::new(),
        price: 1.0,
        stock: 5,
        currency: String::new(),
    };
    products.create_product(product).await.unwrap();

    let mut request = tonic::Request::new(CreateOrderRequest {
        user_id,
        product_id: "logged".to_owned(),
        quantity: 1,
        ..Default::default()
    });
    request.metadata_mut().insert("traceparent", TRACEPARENT.parse().unwrap());
    let order = orders.create_order(request).await.unwrap().into_inner().order.unwrap();

    let line = running.wait_for_log("of the order created", |line| {
        line["message"] == "order created" && line["order_id"] == order.id.as_str()
    });
    assert_eq!(line["trace_id"], TRACE_ID, "the caller's trace: {line}");
    let span_id = line["span_id"].as_str().unwrap_or_else(|| panic!("no span_id: {line}"));
    assert!(span_id.len() == 16 && span_id.chars().all(|c| c.is_ascii_hexdigit()), "{line}");
    assert_ne!(span_id, "00f067aa0ba902b7", "the server's own span, not the caller's");

    assert!(running.terminate().success());
    assert_every_line_is_json(&running.log());
    std::fs::remove_dir_all(data_dir).unwrap();
}
