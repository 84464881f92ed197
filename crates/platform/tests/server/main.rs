//! The platform server as its users see it: a real server on 127.0.0.1:0,
//! driven by real gRPC and HTTP clients.

mod edge;
mod slow_service;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use platform::{CancellationToken, Server};
use slow_service::SlowService;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

struct TestServer {
    address: SocketAddr,
    shutdown: CancellationToken,
    handle: JoinHandle<Result<(), platform::ServeError>>,
}

impl TestServer {
    async fn start(server: Server) -> Self {
        platform::telemetry::init_for_tests();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(server.serve(listener, shutdown.clone()));
        Self { address, shutdown, handle }
    }

    async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.address)).unwrap().connect().await.unwrap()
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }
}

/// A plain HTTP/1.1 GET, the way curl or a kubelet probe asks.
async fn http_get(url: &str) -> (u16, String) {
    let uri: http::Uri = url.parse().unwrap();
    let stream = tokio::net::TcpStream::connect(uri.authority().unwrap().as_str()).await.unwrap();
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await.unwrap();
    tokio::spawn(connection);
    let request = http::Request::get(uri.path())
        .header(http::header::HOST, uri.authority().unwrap().as_str())
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    let body = http_body_util::BodyExt::collect(response.into_body()).await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

async fn health_check(channel: Channel, service: &str) -> Result<HealthCheckResponse, tonic::Status> {
    let request = HealthCheckRequest { service: service.to_owned() };
    HealthClient::new(channel).check(request).await.map(tonic::Response::into_inner)
}

fn slow_server(service: SlowService) -> Server {
    Server::new("test")
        .grpc_service(service)
        .descriptor_set(slow_service::descriptor_set())
        .grace_period(Duration::from_secs(5))
}

#[tokio::test]
async fn health_check_reports_serving_for_the_server_and_each_service() {
    let server = TestServer::start(slow_server(SlowService::new(Duration::ZERO))).await;
    for service in ["", "test.v1.SlowService"] {
        let response = health_check(server.channel().await, service).await.unwrap();
        assert_eq!(response.status(), ServingStatus::Serving, "service {service:?}");
    }
    let unknown = health_check(server.channel().await, "nope.Service").await.unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
}

#[tokio::test]
async fn reflection_lists_every_service_in_v1_and_v1alpha() {
    use tonic_reflection::pb::{v1, v1alpha};

    let server = TestServer::start(slow_server(SlowService::new(Duration::ZERO))).await;
    let expected = [
        "test.v1.SlowService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    ];

    let request = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(String::new())),
    };
    let mut client = v1::server_reflection_client::ServerReflectionClient::new(server.channel().await);
    let mut responses = client.server_reflection_info(tokio_stream::iter([request])).await.unwrap().into_inner();
    let response = responses.message().await.unwrap().unwrap();
    let Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) = response.message_response
    else {
        panic!("unexpected reflection response {response:?}");
    };
    let names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
    for name in expected {
        assert!(names.iter().any(|n| n == name), "v1 lists {names:?}, missing {name}");
    }

    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1alpha::server_reflection_request::MessageRequest::ListServices(String::new())),
    };
    let mut client = v1alpha::server_reflection_client::ServerReflectionClient::new(server.channel().await);
    let mut responses = client.server_reflection_info(tokio_stream::iter([request])).await.unwrap().into_inner();
    let response = responses.message().await.unwrap().unwrap();
    let Some(v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        response.message_response
    else {
        panic!("unexpected reflection response {response:?}");
    };
    let names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
    for name in expected {
        assert!(names.iter().any(|n| n == name), "v1alpha lists {names:?}, missing {name}");
    }
}

#[tokio::test]
async fn metrics_parse_as_prometheus_text_and_count_each_rpc() {
    let server = TestServer::start(slow_server(SlowService::new(Duration::ZERO))).await;
    let channel = server.channel().await;
    slow_service::call(channel.clone()).await.unwrap();
    slow_service::call(channel.clone()).await.unwrap();
    let _ = health_check(channel.clone(), "nope.Service").await;
    // Methods the descriptors do not declare: one label, however many names.
    for path in ["/test.v1.SlowService/MadeUpOne", "/test.v1.SlowService/MadeUpTwo"] {
        let status = slow_service::call_path(channel.clone(), path).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unimplemented);
    }

    let (status, text) = http_get(&server.url("/metrics")).await;
    assert_eq!(status, 200);
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("valid Prometheus text");

    let handled = |method: &str, code: &str| -> f64 {
        scrape
            .samples
            .iter()
            .filter(|s| s.metric == "grpc_server_handled_total")
            .filter(|s| s.labels.get("grpc_method") == Some(method) && s.labels.get("grpc_code") == Some(code))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
                ref other => panic!("unexpected value {other:?}"),
            })
            .sum()
    };
    // Other tests in this binary share the process-wide registry: at least.
    assert!(handled("Call", "OK") >= 2.0, "{text}");
    assert!(!text.contains(r#"grpc_code="Ok""#), "one OK series, as gRPC names the code: {text}");
    assert!(handled("Check", "NotFound") >= 1.0, "{text}");
    assert!(handled("unknown", "Unimplemented") >= 2.0, "{text}");
    assert!(!text.contains("MadeUp"), "a made-up method name became a label: {text}");
    assert!(
        scrape
            .samples
            .iter()
            .any(|s| s.metric == "grpc_server_handling_seconds"
                && matches!(s.value, prometheus_parse::Value::Histogram(_))),
        "latency is a histogram: {text}"
    );
}

#[tokio::test]
async fn liveness_and_readiness_answer_over_http1() {
    let database_up = Arc::new(AtomicBool::new(true));
    let flag = database_up.clone();
    let server = TestServer::start(
        slow_server(SlowService::new(Duration::ZERO)).readiness_interval(Duration::from_millis(50)).readiness_check(
            "database",
            move || {
                let up = flag.load(Ordering::SeqCst);
                async move { if up { Ok(()) } else { Err("connection refused".to_owned()) } }
            },
        ),
    )
    .await;

    let (status, body) = http_get(&server.url("/health/live")).await;
    assert_eq!((status, body.as_str()), (200, r#"{"status":"live"}"#));
    let (status, body) = http_get(&server.url("/health/ready")).await;
    assert_eq!(status, 200, "{body}");

    database_up.store(false, Ordering::SeqCst);
    let (status, body) = http_get(&server.url("/health/ready")).await;
    assert_eq!(status, 503);
    assert!(body.contains("connection refused"), "{body}");
    wait_for_health(&server, ServingStatus::NotServing).await;

    database_up.store(true, Ordering::SeqCst);
    wait_for_health(&server, ServingStatus::Serving).await;
    assert_eq!(http_get(&server.url("/health/ready")).await.0, 200);
}

/// Polls gRPC health until it reports `expected` (the refresher runs every 50 ms).
async fn wait_for_health(server: &TestServer, expected: ServingStatus) {
    let channel = server.channel().await;
    for _ in 0..100 {
        if health_check(channel.clone(), "").await.unwrap().status() == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("gRPC health never became {expected:?}");
}

#[tokio::test]
async fn unknown_paths_get_404_over_http_and_unimplemented_over_grpc() {
    let server = TestServer::start(slow_server(SlowService::new(Duration::ZERO))).await;
    let (status, body) = http_get(&server.url("/nope")).await;
    assert_eq!(status, 404);
    assert!(body.contains("/nope"), "{body}");

    let status = slow_service::call_path(server.channel().await, "/test.v1.SlowService/Missing").await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unimplemented);
}

#[tokio::test]
async fn shutdown_lets_an_in_flight_call_finish_and_reports_not_serving() {
    let service = SlowService::new(Duration::from_millis(300));
    let started = service.started();
    let server = TestServer::start(slow_server(service)).await;
    let channel = server.channel().await;

    let mut watch = HealthClient::new(channel.clone())
        .watch(HealthCheckRequest { service: String::new() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(watch.message().await.unwrap().unwrap().status(), ServingStatus::Serving);

    let in_flight = tokio::spawn(slow_service::call(channel.clone()));
    started.notified().await;
    server.shutdown.cancel();

    let not_serving = watch.message().await.unwrap().expect("a status update");
    assert_eq!(not_serving.status(), ServingStatus::NotServing);
    drop(watch);

    in_flight.await.unwrap().expect("the in-flight call completes");
    let served = tokio::time::timeout(Duration::from_secs(5), server.handle).await;
    served.expect("server stops after draining").unwrap().unwrap();
    assert!(tokio::net::TcpStream::connect(server.address).await.is_err(), "listener is closed");
}

/// With serving threads, each connection is served on one of them, and a
/// shutdown drains and cuts their calls as on the shared runtime.
#[tokio::test]
async fn serving_threads_serve_every_connection_and_drain_on_shutdown() {
    let service = SlowService::new(Duration::from_millis(300));
    let server = TestServer::start(slow_server(service.clone()).serving_threads(2)).await;
    let mut calls = Vec::new();
    for _ in 0..4 {
        // A connection each: they are spread over the threads.
        calls.push(tokio::spawn(slow_service::call(server.channel().await)));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.shutdown.cancel();
    for call in calls {
        call.await.unwrap().expect("an in-flight call completes");
    }
    let served = tokio::time::timeout(Duration::from_secs(5), server.handle).await;
    served.expect("server stops after draining").unwrap().unwrap();
    let mut threads = service.threads();
    threads.sort();
    threads.dedup();
    assert_eq!(threads, ["meshwork-serve-0", "meshwork-serve-1"], "round-robin over both threads");

    a_call_outliving_the_grace_period_is_cut(2).await;
}

#[tokio::test]
async fn shutdown_is_bounded_by_the_grace_period() {
    a_call_outliving_the_grace_period_is_cut(0).await;
}

/// A server on `serving_threads` (0: the shared runtime) cuts the call
/// still running when the grace period ends, and stops.
async fn a_call_outliving_the_grace_period_is_cut(serving_threads: usize) {
    let service = SlowService::new(Duration::from_secs(60));
    let started = service.started();
    let server = Server::new("test").grpc_service(service).grace_period(Duration::from_millis(200));
    let server = TestServer::start(server.serving_threads(serving_threads)).await;
    let in_flight = tokio::spawn(slow_service::call(server.channel().await));
    started.notified().await;
    server.shutdown.cancel();

    let served = tokio::time::timeout(Duration::from_secs(5), server.handle).await;
    served.expect("serve returns after the grace period").unwrap().unwrap();
    assert!(in_flight.await.unwrap().is_err(), "the call that outlived the grace period was cut");
}

/// Sends one HTTP/2 POST with `headers` and gives the answer's headers.
async fn h2_post(address: SocketAddr, path: &str, headers: &[(&str, &str)]) -> (SocketAddr, http::HeaderMap) {
    let stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let local = stream.local_addr().unwrap();
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io).await.unwrap();
    tokio::spawn(connection);
    let mut request = http::Request::post(format!("http://{address}{path}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = sender.send_request(request.body(http_body_util::Empty::<bytes::Bytes>::new()).unwrap()).await;
    (local, response.unwrap().headers().clone())
}

#[tokio::test]
async fn native_grpc_for_a_service_served_elsewhere_goes_straight_to_the_forwarder() {
    let answered_by = |who: &'static str| {
        move |caller: Option<SocketAddr>| {
            let mut response = axum::response::Response::default();
            response.headers_mut().insert("answered-by", http::HeaderValue::from_static(who));
            if let Some(caller) = caller {
                response.headers_mut().insert("caller", caller.to_string().parse().unwrap());
            }
            response
        }
    };
    let (forwarder, fallback) = (answered_by("forwarder"), answered_by("fallback"));
    let server = slow_server(SlowService::new(Duration::ZERO))
        .fallback(tower::service_fn(move |request: axum::extract::Request| {
            // Where axum's `ConnectInfo` extractor finds the caller.
            let caller = request.extensions().get::<axum::extract::ConnectInfo<SocketAddr>>().map(|info| info.0);
            async move { Ok(fallback(caller)) }
        }))
        .forward_grpc(move |_, caller| async move { forwarder(Some(caller)) });
    let server = TestServer::start(server).await;
    let grpc = ("content-type", "application/grpc");

    let (caller, answer) = h2_post(server.address, "/elsewhere.v1.Service/Call", &[grpc]).await;
    assert_eq!(answer["answered-by"], "forwarder");
    assert_eq!(answer["caller"], caller.to_string().as_str(), "the forwarder is told who called");

    // A browser's call goes through the router, and any CORS layer there.
    let browser = [grpc, ("origin", "https://shop.example")];
    let (caller, answer) = h2_post(server.address, "/elsewhere.v1.Service/Call", &browser).await;
    assert_eq!(answer["answered-by"], "fallback");
    assert_eq!(answer["caller"], caller.to_string().as_str(), "the router's handlers are told who called");
    let (_, answer) =
        h2_post(server.address, "/elsewhere.v1.Service/Call", &[("content-type", "application/grpc-web")]).await;
    assert_eq!(answer["answered-by"], "fallback", "gRPC-Web is not native gRPC");

    // What the server serves itself is served, not forwarded.
    slow_service::call(server.channel().await).await.unwrap();
    let health = health_check(server.channel().await, "").await.unwrap();
    assert_eq!(health.status(), ServingStatus::Serving);
    let (_, answer) = h2_post(server.address, "/test.v1.SlowService/Call", &[grpc]).await;
    assert!(answer.get("answered-by").is_none(), "{answer:?}");
}
