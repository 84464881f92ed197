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

/// What the server sends, until `enough` (given all of it so far) says so
/// or the connection closes.
async fn read_until(stream: &mut TcpStream, enough: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    let mut received = Vec::new();
    let reading = async {
        let mut buffer = [0_u8; 4096];
        while !enough(&received) {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    };
    tokio::time::timeout(PATIENCE, reading).await.expect("the server answers or closes the connection");
    received
}

/// Everything the server sends until it closes the connection.
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    read_until(stream, |_| false).await
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
    let frame_types = frame_types_until(&mut stream, |_, _| false).await;
    const GOAWAY: u8 = 7;
    assert!(frame_types.contains(&GOAWAY), "frames received: {frame_types:?}");
}

/// HTTP/2 frames of `kind` on `stream` with `flags` and `payload`.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let length = u32::try_from(payload.len()).unwrap().to_be_bytes();
    let mut frame = vec![length[1], length[2], length[3], kind, flags];
    frame.extend_from_slice(&stream.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// The type and flags of each whole HTTP/2 frame in `bytes`, in order.
fn frames(bytes: &[u8]) -> Vec<(u8, u8)> {
    let (mut frames, mut rest) = (Vec::new(), bytes);
    while rest.len() >= 9 {
        let length = usize::from(rest[0]) << 16 | usize::from(rest[1]) << 8 | usize::from(rest[2]);
        if rest.len() < 9 + length {
            break;
        }
        frames.push((rest[3], rest[4]));
        rest = &rest[9 + length..];
    }
    frames
}

/// The types of the frames the server sends, in order, until `done` says
/// enough (given each one's type and flags) or the connection closes.
async fn frame_types_until(stream: &mut TcpStream, done: impl Fn(u8, u8) -> bool) -> Vec<u8> {
    let received =
        read_until(stream, |received| frames(received).into_iter().any(|(kind, flags)| done(kind, flags))).await;
    let mut types = Vec::new();
    for (kind, flags) in frames(&received) {
        types.push(kind);
        if done(kind, flags) {
            break;
        }
    }
    types
}

#[tokio::test]
async fn a_burst_of_cancelled_calls_does_not_cost_the_connection() {
    // A caller that carries many callers' calls, all of them giving up at
    // once: 100 requests, each reset as soon as it is sent, in one write.
    // h2's default closes the connection past 20 resets waiting to be taken
    // up, and every call still on it with it.
    const HEADERS: u8 = 1;
    const RST_STREAM: u8 = 3;
    const PING: u8 = 6;
    const GOAWAY: u8 = 7;
    let server = TestServer::start(edge_server(limits())).await;
    let mut stream = TcpStream::connect(server.address).await.unwrap();
    let mut burst = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    burst.extend(frame(4, 0, 0, &[]));
    for id in (1..200).step_by(2) {
        // POST, http, `/`: three entries of HPACK's static table.
        burst.extend(frame(HEADERS, 0x4 | 0x1, id, &[0x83, 0x86, 0x84]));
        burst.extend(frame(RST_STREAM, 0, id, &8_u32.to_be_bytes()));
    }
    burst.extend(frame(PING, 0, 0, b"stillok?"));
    stream.write_all(&burst).await.unwrap();
    let types = frame_types_until(&mut stream, |kind, flags| kind == PING && flags & 0x1 != 0).await;
    assert!(!types.contains(&GOAWAY), "the connection was closed: frames {types:?}");
    assert_eq!(types.last(), Some(&PING), "the ping is answered on the same connection: frames {types:?}");
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
