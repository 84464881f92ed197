//! The server's edge against clients that only hold resources: half a
//! request header, a connection that sends nothing, a body that stalls, and
//! more connections than the cap. Each is closed or refused; a connection
//! busy with a slow call is not, and a client whose idle connection was
//! closed carries on.

use std::time::Duration;

use axum::Router;
use axum::routing::post;
use platform::Server;
use platform::connections::ConnectionLimits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::slow_service::{self, SlowService};
use crate::{TestServer, http_get};

/// Long enough for any of these closes, short enough to fail a test quickly.
const PATIENCE: Duration = Duration::from_secs(15);

fn limits() -> ConnectionLimits {
    ConnectionLimits {
        header_read: Duration::from_millis(300),
        idle: Duration::from_millis(500),
        body_read: Duration::from_millis(300),
        max_connections: 100,
    }
}

/// A server with a slow gRPC call and `POST /echo`, which reads the whole body.
fn edge_server(limits: ConnectionLimits) -> Server {
    let echo = Router::new().route("/echo", post(|body: bytes::Bytes| async move { body.len().to_string() }));
    Server::new("test")
        .grpc_service(SlowService::new(Duration::from_millis(1500)))
        .http_routes(echo)
        .connection_limits(limits)
}

/// Everything the server sends until it closes the connection.
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    let reading = async {
        let mut buffer = [0_u8; 4096];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    };
    tokio::time::timeout(PATIENCE, reading).await.expect("the server closes the connection");
    received
}

#[tokio::test]
async fn half_a_request_header_is_cut_off() {
    let server = TestServer::start(edge_server(limits())).await;
    let mut stream = TcpStream::connect(server.address).await.unwrap();
    stream.write_all(b"GET /health/live HTTP/1.1\r\nHost: test\r\nX-Slow: ").await.unwrap();
    let received = read_until_closed(&mut stream).await;
    assert!(!String::from_utf8_lossy(&received).contains("200 OK"), "no request was served");
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed() {
    let server = TestServer::start(edge_server(limits())).await;
    let mut stream = TcpStream::connect(server.address).await.unwrap();
    assert!(read_until_closed(&mut stream).await.is_empty());
}

#[tokio::test]
async fn an_idle_http2_connection_gets_a_goaway_and_is_closed() {
    let server = TestServer::start(edge_server(limits())).await;
    let mut stream = TcpStream::connect(server.address).await.unwrap();
    // The client preface and an empty SETTINGS frame, then nothing: no
    // SETTINGS ack, no PING ack, no request.
    stream.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await.unwrap();
    stream.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await.unwrap();
    let received = read_until_closed(&mut stream).await;
    let mut frame_types = Vec::new();
    let mut rest = received.as_slice();
    while rest.len() >= 9 {
        let length = usize::from(rest[0]) << 16 | usize::from(rest[1]) << 8 | usize::from(rest[2]);
        frame_types.push(rest[3]);
        rest = &rest[(9 + length).min(rest.len())..];
    }
    const GOAWAY: u8 = 7;
    assert!(frame_types.contains(&GOAWAY), "frames received: {frame_types:?}");
}

#[tokio::test]
async fn a_stalled_request_body_fails_and_its_connection_closes() {
    let server = TestServer::start(edge_server(limits())).await;
    let mut stream = TcpStream::connect(server.address).await.unwrap();
    let head = "POST /echo HTTP/1.1\r\nHost: test\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(b"only ten b").await.unwrap();
    let received = String::from_utf8_lossy(&read_until_closed(&mut stream).await).into_owned();
    assert!(received.starts_with("HTTP/1.1 400"), "{received}");
}

#[tokio::test]
async fn a_call_longer_than_the_idle_timeout_completes_and_the_client_carries_on() {
    let server = TestServer::start(edge_server(limits())).await;
    let channel = server.channel().await;
    slow_service::call(channel.clone()).await.expect("a 1.5 s call outlives a 0.5 s idle timeout");
    // Long enough for the idle connection to be closed under the client...
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // ...which reconnects for the next call.
    slow_service::call(channel).await.expect("the channel reconnects after its idle connection closed");
}

#[tokio::test]
async fn connections_beyond_the_cap_are_closed_at_once() {
    let limits = ConnectionLimits { max_connections: 3, idle: Duration::from_secs(60), ..limits() };
    let server = TestServer::start(edge_server(limits)).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(server.address).await.unwrap());
    }
    let mut extra = TcpStream::connect(server.address).await.unwrap();
    assert!(read_until_closed(&mut extra).await.is_empty(), "the fourth connection is closed unanswered");

    drop(held.pop());
    // The freed slot is taken back once the server sees the close.
    let mut served = false;
    for _ in 0..100 {
        let mut probe = TcpStream::connect(server.address).await.unwrap();
        probe.write_all(b"GET /health/live HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").await.unwrap();
        if String::from_utf8_lossy(&read_until_closed(&mut probe).await).starts_with("HTTP/1.1 200") {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(served, "a connection is served again once one of the three closed");
    assert_eq!(http_get(&server.url("/health/live")).await.0, 200);
}
