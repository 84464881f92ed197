//! Unary calls on a direct connection (`resilience::direct`) against a real
//! gRPC server (tonic's health service): the answer and the status come
//! back as a `Channel` gives them, a connection the server closed is made
//! again, a dead one is found by its unanswered ping, and a connection that
//! could not be made is a request never sent.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use http::uri::PathAndQuery;
use prost::Message;
use resilience::direct::{ConnectFailed, DirectConnection, Target};
use resilience::{BreakerConfig, Policy, Upstream};
use tokio::net::TcpListener;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

const CHECK: PathAndQuery = PathAndQuery::from_static("/grpc.health.v1.Health/Check");
const FIVE_SECONDS: Duration = Duration::from_secs(5);

/// Serves the health service on `listener` until `stop` fires.
fn serve_health(listener: TcpListener, stop: tokio::sync::oneshot::Receiver<()>) -> tokio::task::JoinHandle<()> {
    let (_, health) = tonic_health::server::health_reporter();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(health)
            .serve_with_incoming_shutdown(tokio_stream::wrappers::TcpListenerStream::new(listener), async {
                stop.await.ok();
            })
            .await
            .unwrap();
    })
}

fn connection(url: &str) -> DirectConnection {
    DirectConnection::new(Arc::new(Target::new(url, Duration::from_secs(2)).unwrap()))
}

async fn check(connection: &DirectConnection, service: &str) -> Result<HealthCheckResponse, tonic::Status> {
    let request = HealthCheckRequest { service: service.to_owned() }.encode_to_vec();
    let answer = connection.unary(&CHECK, http::HeaderMap::new(), &request, FIVE_SECONDS).await?;
    Ok(HealthCheckResponse::decode(answer.message).unwrap())
}

#[tokio::test]
async fn a_call_gets_the_answer_or_the_status_the_server_sent() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (_stop, stopped) = tokio::sync::oneshot::channel();
    serve_health(listener, stopped);
    let connection = connection(&format!("http://{address}"));

    let answer = check(&connection, "").await.unwrap();
    assert_eq!(answer.status, tonic_health::ServingStatus::Serving as i32);
    let refused = check(&connection, "no.such.Service").await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::NotFound, "{refused:?}");
    assert!(refused.message().contains("not registered"), "{refused:?}");
}

#[tokio::test]
async fn a_connection_the_server_closed_is_made_again() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let server = serve_health(listener, stopped);
    let connection = connection(&format!("http://{address}"));
    check(&connection, "").await.unwrap();

    stop.send(()).unwrap();
    server.await.unwrap();
    let listener = TcpListener::bind(address).await.unwrap();
    let (_stop, stopped) = tokio::sync::oneshot::channel();
    serve_health(listener, stopped);
    // The first call may find the old connection not yet seen closed (and
    // fail UNAVAILABLE, which a caller's retry covers); the next one is on
    // a new connection.
    if let Err(status) = check(&connection, "").await {
        assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
        check(&connection, "").await.unwrap();
    }
}

#[tokio::test]
async fn a_connection_whose_ping_goes_unanswered_is_dropped_and_its_calls_fail() {
    // Takes the connection and reads it, but never answers anything.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = silent.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut socket, _) = silent.accept().await.unwrap();
        let mut sink = tokio::io::sink();
        tokio::io::copy(&mut socket, &mut sink).await.ok();
    });
    let target = Target::new(&format!("http://{address}"), Duration::from_secs(2))
        .unwrap()
        .keep_alive(Duration::from_millis(50), Duration::from_millis(100));
    let connection = DirectConnection::new(Arc::new(target));

    let request = HealthCheckRequest::default().encode_to_vec();
    let path = CHECK;
    let call = connection.unary(&path, http::HeaderMap::new(), &request, FIVE_SECONDS);
    let failed = tokio::time::timeout(FIVE_SECONDS, call).await.expect("the call ended before its deadline");
    assert_eq!(failed.unwrap_err().code(), tonic::Code::Unavailable);
}

#[tokio::test]
async fn a_connection_that_cannot_be_made_is_a_request_never_sent() {
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let refused = closed.local_addr().unwrap();
    drop(closed);
    let status = check(&connection(&format!("http://{refused}")), "").await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable);
    let source = std::error::Error::source(&status).expect("the connect error is the status's source");
    assert!(source.is::<ConnectFailed>(), "{source:?}");

    // So the call loop tries the next endpoint even for a call not safe to repeat.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let serving = listener.local_addr().unwrap();
    let (_stop, stopped) = tokio::sync::oneshot::channel();
    serve_health(listener, stopped);
    let policy =
        Policy { breaker: BreakerConfig { failure_threshold: 1000, ..BreakerConfig::default() }, ..Policy::default() };
    let upstream = Upstream::new("test", policy);
    upstream.set_endpoints(&[format!("http://{refused}"), format!("http://{serving}")]).unwrap();
    let attempts = AtomicU32::new(0);
    let request = HealthCheckRequest::default().encode_to_vec();
    let outcome = upstream
        .call_endpoint("grpc.health.v1.Health/Check", false, None, |endpoint, remaining| {
            attempts.fetch_add(1, Ordering::SeqCst);
            let request = request.clone();
            async move { endpoint.unary(&CHECK, http::HeaderMap::new(), &request, remaining).await }
        })
        .await;
    assert!(outcome.is_ok(), "the call moved on to the endpoint that serves");
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
}
