//! Deadlines travel: a CreateOrder whose caller allows 200 ms stops then,
//! even while the products service it waits on never answers, and the
//! reservation it sent downstream carried no more time than was left, and
//! the caller's trace.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use contract::orders::CreateOrderRequest;
use orders::start::Upstreams;
use tokio::time::Instant;

use crate::helpers::{Backend, orders_service, shop};

/// What a downstream call carried.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    timeout: String,
    traceparent: String,
}

/// A server that takes any call, notes its `grpc-timeout` and
/// `traceparent`, and never answers.
async fn black_hole(shutdown: &platform::CancellationToken) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let noted = seen.clone();
    let swallow = Router::new().fallback(move |request: axum::extract::Request| {
        let noted = noted.clone();
        let header = |name: &str| request.headers().get(name).map_or("none", |v| v.to_str().unwrap_or("?")).to_owned();
        let path = request.uri().path().to_owned();
        let seen = Seen { path, timeout: header("grpc-timeout"), traceparent: header("traceparent") };
        async move {
            noted.lock().unwrap().push(seen);
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
    });
    let address = testkit::serve(platform::Server::new("black-hole").fallback(swallow), shutdown).await;
    (format!("http://{address}"), seen)
}

/// CreateOrder over plain HTTP/2 with `grpc-timeout: timeout` and no timer
/// on this side (tonic's client would keep the deadline itself and cancel
/// first): whatever status comes back is the orders service's own.
async fn create_order_with_deadline_header(
    address: std::net::SocketAddr,
    message: CreateOrderRequest,
    timeout: &str,
) -> tonic::Status {
    use http_body_util::{BodyExt, Full};
    use prost::Message;

    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<bytes::Bytes>>();
    let encoded = message.encode_to_vec();
    let mut frame = vec![0_u8];
    frame.extend_from_slice(&u32::try_from(encoded.len()).unwrap().to_be_bytes());
    frame.extend_from_slice(&encoded);
    let request = http::Request::post(format!("http://{address}/shop.orders.v1.OrderService/CreateOrder"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("grpc-timeout", timeout)
        .header("traceparent", TRACEPARENT)
        .body(Full::new(bytes::Bytes::from(frame)))
        .unwrap();
    let response = client.request(request).await.unwrap();
    if let Some(status) = tonic::Status::from_header_map(response.headers()) {
        return status;
    }
    let trailers = response.into_body().collect().await.unwrap().trailers().cloned().unwrap_or_default();
    tonic::Status::from_header_map(&trailers).unwrap_or_else(|| tonic::Status::ok(""))
}

/// The caller's trace, which every downstream call must carry on.
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn millis(timeout: &str) -> u64 {
    let (amount, unit) = timeout.split_at(timeout.len() - 1);
    let amount: u64 = amount.parse().unwrap();
    match unit {
        "m" => amount,
        "u" => amount / 1000,
        "n" => amount / 1_000_000,
        "S" => amount * 1000,
        other => panic!("unit {other} in {timeout}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_create_order_stops_at_its_callers_deadline_and_passes_on_only_what_is_left() {
    let Some(shop) = shop(Backend::Sqlite, "deadline_travels").await else { return };
    let user = shop.user().await;
    let (products, seen) = black_hole(&shop.shutdown).await;
    let upstreams =
        Upstreams { users: shop.upstreams.users.clone(), products: resilience::EndpointSource::single(products) };
    let address =
        orders_service(shop.order_store.clone(), &upstreams, Arc::new(shop.bus.clone()), &shop.shutdown).await;
    let request =
        CreateOrderRequest { user_id: user, product_id: "anything".to_owned(), quantity: 1, ..Default::default() };
    let started = Instant::now();
    let status = create_order_with_deadline_header(address, request, "200m").await;
    let took = started.elapsed();
    assert_eq!(status.code(), tonic::Code::DeadlineExceeded, "{status:?}");
    // The orders service's own limit for a dependency is 5 s; the caller's 200 ms wins.
    assert!(took < Duration::from_secs(2), "answered after {took:?}");
    let seen = seen.lock().unwrap().clone();
    assert!(!seen.is_empty(), "the reservation reached the products service");
    for call in &seen {
        match call.path.as_str() {
            "/shop.products.v1.ProductService/ReserveStock" => {
                assert!(millis(&call.timeout) <= 200, "the reservation was given {}", call.timeout);
            }
            // Undoing the reservation runs after the caller's time is spent,
            // on purpose (a saga ends consistently), with its own limit.
            "/shop.products.v1.ProductService/ReleaseStock" => {}
            other => panic!("an unexpected downstream call: {other}"),
        }
        assert!(call.traceparent.contains(TRACE_ID), "a downstream call lost the trace: {}", call.traceparent);
    }
    assert!(seen.iter().any(|call| call.path.ends_with("/ReserveStock")), "a ReserveStock among the calls: {seen:?}");
}
