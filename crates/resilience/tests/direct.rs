//! Unary calls on a direct connection (`resilience::direct`) against a real
//! gRPC server (tonic's health service): the answer and the status come
//! back as a `Channel` gives them, a connection the server closed is made
//! again (once for all the calls that find it missing), a dead one is
//! found by its unanswered ping, and a connection that could not be made
//! is a request never sent. A generated client's calls go over the same
//! connection as the forwarded ones. Passed-through calls stream their
//! bodies and are reset when given up; a body that came whole goes within
//! the upstream's window, and is reset too when given up while the window
//! holds it back; against an upstream that tells
//! what it got, a call's head carries neither HTTP/1's hop-by-hop headers
//! nor a status or call header the caller's metadata tried to set.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use http::uri::PathAndQuery;
use prost::Message;
use resilience::direct::{ConnectFailed, DirectConnection, Framed, Target};
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

/// A health server on a port of its own, serving until the sender it
/// returns is dropped.
async fn health_server() -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel();
    serve_health(listener, stopped);
    (address, stop)
}

fn connection(url: &str) -> DirectConnection {
    DirectConnection::new(Arc::new(Target::new(url, Duration::from_secs(2)).unwrap()))
}

async fn check(connection: &DirectConnection, service: &str) -> Result<HealthCheckResponse, tonic::Status> {
    let request = Framed::encode(&[HealthCheckRequest { service: service.to_owned() }])?;
    let answer = connection.unary(&CHECK, http::HeaderMap::new(), &request, FIVE_SECONDS).await?;
    Ok(HealthCheckResponse::decode(answer.message).unwrap())
}

#[tokio::test]
async fn a_call_gets_the_answer_or_the_status_the_server_sent() {
    let (address, _stop) = health_server().await;
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

    let request = Framed::encode(&[HealthCheckRequest::default()]).unwrap();
    let path = CHECK;
    let call = connection.unary(&path, http::HeaderMap::new(), &request, FIVE_SECONDS);
    let failed = tokio::time::timeout(FIVE_SECONDS, call).await.expect("the call ended before its deadline");
    assert_eq!(failed.unwrap_err().status.code(), tonic::Code::Unavailable);
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
    let (serving, _stop) = health_server().await;
    let policy =
        Policy { breaker: BreakerConfig { failure_threshold: 1000, ..BreakerConfig::default() }, ..Policy::default() };
    let upstream = Upstream::new("test", policy);
    upstream.set_endpoints(&[format!("http://{refused}"), format!("http://{serving}")]).unwrap();
    let attempts = AtomicU32::new(0);
    let request = Framed::encode(&[HealthCheckRequest::default()]).unwrap();
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

/// `n` health checks on `connection` at once, each in a task of its own.
async fn at_once(connection: &Arc<DirectConnection>, n: usize) -> Vec<Result<HealthCheckResponse, tonic::Status>> {
    let calls: Vec<_> = (0..n)
        .map(|_| {
            let connection = connection.clone();
            tokio::spawn(async move { check(&connection, "").await })
        })
        .collect();
    let mut answers = Vec::with_capacity(n);
    for call in calls {
        answers.push(call.await.expect("the call's task ran to its end"));
    }
    answers
}

/// A health server that counts the connections made to it.
async fn counting_health_server() -> (std::net::SocketAddr, Arc<AtomicU32>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicU32::new(0));
    let counted = accepted.clone();
    let incoming = futures::StreamExt::inspect(tokio_stream::wrappers::TcpListenerStream::new(listener), move |_| {
        counted.fetch_add(1, Ordering::SeqCst);
    });
    let (_, health) = tonic_health::server::health_reporter();
    tokio::spawn(tonic::transport::Server::builder().add_service(health).serve_with_incoming(incoming));
    (address, accepted)
}

#[tokio::test]
async fn calls_that_find_no_connection_together_share_the_one_made_for_them() {
    let (address, accepted) = counting_health_server().await;
    let connection = Arc::new(connection(&format!("http://{address}")));

    for answer in at_once(&connection, 16).await {
        answer.unwrap();
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "16 calls at once made one connection");
}

#[tokio::test]
async fn a_generated_clients_calls_and_forwarded_calls_share_the_endpoints_one_connection() {
    use tonic_health::pb::health_client::HealthClient;

    let (address, accepted) = counting_health_server().await;
    let upstream = Upstream::new("test", Policy::default());
    upstream.set_endpoints(&[format!("http://{address}")]).unwrap();
    for _ in 0..2 {
        let answer = upstream
            .call("grpc.health.v1.Health/Check", true, None, |channel, _remaining| async move {
                HealthClient::new(channel).check(HealthCheckRequest { service: String::new() }).await
            })
            .await
            .map_err(|error| error.into_status("test"))
            .unwrap();
        assert_eq!(answer.into_inner().status, 1, "SERVING, through the generated client");
        let request = Framed::encode(&[HealthCheckRequest { service: String::new() }]).unwrap();
        let answer = upstream
            .call_endpoint("grpc.health.v1.Health/Check", true, None, |endpoint, remaining| {
                let request = request.clone();
                async move { endpoint.unary(&CHECK, http::HeaderMap::new(), &request, remaining).await }
            })
            .await
            .map_err(|error| error.into_status("test"))
            .unwrap();
        assert_eq!(HealthCheckResponse::decode(answer.message).unwrap().status, 1, "SERVING, forwarded");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "both kinds of call went over one connection");
}

#[tokio::test]
async fn a_connect_that_failed_fails_the_calls_that_waited_on_it_and_the_next_call_connects_anew() {
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = closed.local_addr().unwrap();
    drop(closed);
    let connection = Arc::new(connection(&format!("http://{address}")));
    for answer in at_once(&connection, 8).await {
        let status = answer.unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
        let source = std::error::Error::source(&status).expect("the connect error is the status's source");
        assert!(source.is::<ConnectFailed>(), "{source:?}");
    }

    let (_stop, stopped) = tokio::sync::oneshot::channel();
    serve_health(TcpListener::bind(address).await.unwrap(), stopped);
    check(&connection, "").await.expect("a call after the endpoint came back connects");
}

type Chunk = Result<http_body::Frame<bytes::Bytes>, tonic::Status>;

/// A request body that gives what `chunks` sends it, when it is sent.
fn streamed(
    chunks: tokio::sync::mpsc::Receiver<Chunk>,
) -> http_body_util::StreamBody<tokio_stream::wrappers::ReceiverStream<Chunk>> {
    http_body_util::StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(chunks))
}

fn framed(message: &[u8]) -> bytes::Bytes {
    let mut framed = vec![0];
    framed.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
    framed.extend_from_slice(message);
    framed.into()
}

fn grpc_request<B>(path: &str, body: B) -> http::Request<B> {
    http::Request::post(path).header("content-type", "application/grpc").header("te", "trailers").body(body).unwrap()
}

#[tokio::test]
async fn a_passed_through_call_sends_its_body_as_it_comes_and_answers_with_trailers() {
    use http_body_util::BodyExt;

    let (address, _stop) = health_server().await;
    let connection = connection(&format!("http://{address}"));

    // The body comes after the call has started: it is sent as it comes.
    let (chunks, body) = tokio::sync::mpsc::channel(1);
    let call = connection.exchange(grpc_request("/grpc.health.v1.Health/Check", streamed(body)));
    // Long enough for the call to be waiting on it, its body sent by the
    // task of its own.
    let late = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let request = HealthCheckRequest::default().encode_to_vec();
        chunks.send(Ok(http_body::Frame::data(framed(&request)))).await.unwrap();
        drop(chunks);
    };
    let (response, ()) = tokio::join!(call, late);
    let response = response.unwrap();
    assert_eq!(response.status(), http::StatusCode::OK);
    let collected = response.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned().expect("the status comes in trailers");
    assert_eq!(trailers.get("grpc-status").unwrap(), "0");
    let answer = HealthCheckResponse::decode(&collected.to_bytes()[5..]).unwrap();
    assert_eq!(answer.status, tonic_health::ServingStatus::Serving as i32);
}

#[tokio::test]
async fn a_request_body_that_fails_is_the_callers_error_whenever_it_fails() {
    let (address, _stop) = health_server().await;
    let connection = connection(&format!("http://{address}"));

    // At once: the body's own message is given.
    let (chunks, body) = tokio::sync::mpsc::channel(1);
    chunks.send(Err(tonic::Status::internal("not a gRPC-Web frame"))).await.unwrap();
    let refused = connection.exchange(grpc_request("/grpc.health.v1.Health/Watch", streamed(body))).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(refused.message().contains("not a gRPC-Web frame"), "{refused:?}");

    // Later, while the body is sent by a task of its own (the connection is
    // made: the call waits on the body by then).
    let (chunks, body) = tokio::sync::mpsc::channel(1);
    let call = connection.exchange(grpc_request("/grpc.health.v1.Health/Watch", streamed(body)));
    let failing = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        chunks.send(Err(tonic::Status::internal("the caller went away"))).await.unwrap();
    };
    let (refused, ()) = tokio::join!(call, failing);
    assert_eq!(refused.unwrap_err().code(), tonic::Code::InvalidArgument);
}

/// HTTP/2's initial window, which h2's server keeps unless told otherwise.
const DEFAULT_WINDOW: u32 = 65_535;

/// An upstream, its streams' window `window` bytes, that reads the first
/// request to its end without opening the window again, and says how the
/// request ended: "ended" or "reset".
async fn upstream_telling_how_the_request_ended(
    window: u32,
) -> (std::net::SocketAddr, tokio::sync::oneshot::Receiver<&'static str>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (ending, ended) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        let mut connection =
            h2::server::Builder::new().initial_window_size(window).handshake::<_, bytes::Bytes>(socket).await.unwrap();
        let (request, _respond) = connection.accept().await.unwrap().unwrap();
        tokio::spawn(async move { while connection.accept().await.is_some() {} });
        let mut body = request.into_body();
        let mut how = "ended";
        while let Some(chunk) = body.data().await {
            if chunk.is_err() {
                how = "reset";
                break;
            }
        }
        ending.send(how).unwrap();
    });
    (address, ended)
}

#[tokio::test]
async fn a_request_still_coming_when_its_answer_is_given_up_is_reset_at_once() {
    let (address, ended) = upstream_telling_how_the_request_ended(DEFAULT_WINDOW).await;
    let connection = connection(&format!("http://{address}"));

    let (chunks, body) = tokio::sync::mpsc::channel(1);
    chunks.send(Ok(http_body::Frame::data(framed(b"first")))).await.unwrap();
    let call = connection.exchange(grpc_request("/test.v1.Test/Upload", streamed(body)));
    // The caller gives up (its deadline, a disconnect) while the request is
    // still coming: the upstream is told at once, not when the body ends
    // (which hyper reports as a clean end for a cancelled stream, and which
    // would then look like a whole request).
    assert!(tokio::time::timeout(Duration::from_millis(200), call).await.is_err());
    let how = tokio::time::timeout(FIVE_SECONDS, ended).await.expect("the upstream was told").unwrap();
    assert_eq!(how, "reset");
    drop(chunks);
}

#[tokio::test]
async fn a_request_that_came_whole_is_sent_within_the_upstreams_window() {
    use http_body_util::BodyExt;

    // An upstream with a window far smaller than the request: it reads the
    // body to its end, opening the window as it takes each chunk (h2 fails
    // the connection if more is sent than the window allows), and answers
    // with how many bytes came.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        let mut connection =
            h2::server::Builder::new().initial_window_size(1024).handshake::<_, bytes::Bytes>(socket).await.unwrap();
        let (request, mut respond) = connection.accept().await.unwrap().unwrap();
        tokio::spawn(async move { while connection.accept().await.is_some() {} });
        let mut body = request.into_body();
        let mut received = 0;
        while let Some(chunk) = body.data().await {
            let chunk = chunk.unwrap();
            received += chunk.len();
            body.flow_control().release_capacity(chunk.len()).unwrap();
        }
        let response = http::Response::builder().header("content-type", "application/grpc").body(()).unwrap();
        let mut stream = respond.send_response(response, false).unwrap();
        let mut trailers = http::HeaderMap::new();
        trailers.insert("grpc-status", "0".parse().unwrap());
        trailers.insert("x-received", received.into());
        stream.send_trailers(trailers).unwrap();
    });
    let connection = connection(&format!("http://{address}"));

    // A body that is all there when the call starts, as a unary call's
    // most often is: it goes with the request's headers, not by a task of
    // its own, and h2 sends it as the window opens.
    let message = vec![7u8; 200_000];
    let body = http_body_util::Full::new(framed(&message));
    let call = connection.exchange(grpc_request("/test.v1.Test/Upload", body));
    let response = tokio::time::timeout(FIVE_SECONDS, call).await.expect("answered").unwrap();
    let collected = tokio::time::timeout(FIVE_SECONDS, response.into_body().collect()).await.unwrap().unwrap();
    let trailers = collected.trailers().cloned().expect("trailers");
    assert_eq!(trailers.get("grpc-status").unwrap(), "0");
    assert_eq!(trailers.get("x-received").unwrap(), &(message.len() + 5).to_string());
}

#[tokio::test]
async fn a_request_that_came_whole_but_waits_on_the_window_is_reset_when_given_up() {
    // The upstream never opens its small window: the request cannot all go.
    let (address, ended) = upstream_telling_how_the_request_ended(1024).await;
    let connection = connection(&format!("http://{address}"));

    let body = http_body_util::Full::new(framed(&[7u8; 10_000]));
    let call = connection.exchange(grpc_request("/test.v1.Test/Upload", body));
    // Given up with most of the body still held by h2: the upstream is told,
    // and does not take the part it got, or an end, for the request.
    assert!(tokio::time::timeout(Duration::from_millis(200), call).await.is_err());
    let how = tokio::time::timeout(FIVE_SECONDS, ended).await.expect("the upstream was told").unwrap();
    assert_eq!(how, "reset");
}

#[tokio::test]
async fn a_request_still_coming_stops_being_read_when_the_upstream_resets_it() {
    // An upstream that answers, then resets the request's stream without
    // reading the rest of it (as a server giving up on a request does).
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (answered, reset) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        let mut connection = h2::server::Builder::new().handshake::<_, bytes::Bytes>(socket).await.unwrap();
        let (_request, mut respond) = connection.accept().await.unwrap().unwrap();
        tokio::spawn(async move { while connection.accept().await.is_some() {} });
        let response = http::Response::builder().header("content-type", "application/grpc").body(()).unwrap();
        let mut stream = respond.send_response(response, false).unwrap();
        let _ = reset.await;
        stream.send_reset(h2::Reason::CANCEL);
    });
    let connection = connection(&format!("http://{address}"));

    let (chunks, body) = tokio::sync::mpsc::channel(1);
    chunks.send(Ok(http_body::Frame::data(framed(b"first")))).await.unwrap();
    let response = connection.exchange(grpc_request("/test.v1.Test/Upload", streamed(body))).await.unwrap();
    answered.send(()).unwrap();
    // The answer is held, so the caller still wants it: the reset alone
    // tells the pump, waiting on the caller's body, to stop, and it lets
    // go of the body.
    tokio::time::timeout(FIVE_SECONDS, chunks.closed()).await.expect("the pump stopped");
    drop(response);
}

/// An upstream that tells the headers of each request it gets, and answers
/// each with an OK status and no message.
async fn telling_upstream() -> (std::net::SocketAddr, tokio::sync::mpsc::UnboundedReceiver<http::HeaderMap>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (seen, heard) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        let mut connection = h2::server::handshake(socket).await.unwrap();
        while let Some(Ok((request, mut respond))) = connection.accept().await {
            seen.send(request.headers().clone()).unwrap();
            let mut stream = respond.send_response(http::Response::new(()), false).unwrap();
            let mut trailers = http::HeaderMap::new();
            trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
            stream.send_trailers(trailers).unwrap();
        }
    });
    (address, heard)
}

#[tokio::test]
async fn a_passed_through_request_loses_its_hop_by_hop_headers_and_keeps_the_rest() {
    let (address, mut heard) = telling_upstream().await;
    let connection = connection(&format!("http://{address}"));
    let call = |request: http::request::Builder| {
        let request = request.header("content-type", "application/grpc").header("x-kept", "yes");
        connection.exchange(request.body(http_body_util::Empty::<bytes::Bytes>::new()).unwrap())
    };

    // As a gRPC-Web call over HTTP/1 may come: HTTP/2 forbids these, and
    // h2 would refuse to send them (RFC 9113 §8.2.2).
    let from_http1 = http::Request::post("/test.v1.Test/Get")
        .header("connection", "keep-alive")
        .header("keep-alive", "timeout=5")
        .header("proxy-connection", "keep-alive")
        .header("transfer-encoding", "chunked")
        .header("upgrade", "websocket")
        .header("te", "gzip");
    assert_eq!(call(from_http1).await.unwrap().status(), http::StatusCode::OK);
    let headers = heard.recv().await.unwrap();
    for gone in ["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te"] {
        assert!(!headers.contains_key(gone), "{gone} was passed on: {headers:?}");
    }
    assert_eq!(headers["x-kept"], "yes");

    // A gRPC call's own `te` stays.
    let grpc = http::Request::post("/test.v1.Test/Get").header("te", "trailers");
    assert_eq!(call(grpc).await.unwrap().status(), http::StatusCode::OK);
    let headers = heard.recv().await.unwrap();
    assert_eq!(headers["te"], "trailers");
    assert_eq!(headers["x-kept"], "yes");
}

#[tokio::test]
async fn a_callers_metadata_cannot_say_the_calls_own_headers_or_a_status() {
    let (address, mut heard) = telling_upstream().await;
    let connection = connection(&format!("http://{address}"));
    let mut metadata = http::HeaderMap::new();
    for (name, value) in [
        ("grpc-status", "13"),
        ("grpc-message", "made up"),
        ("grpc-message-type", "made.Up"),
        ("content-type", "text/plain"),
        ("te", "gzip"),
        ("user-agent", "someone-else/1.0"),
        ("x-kept", "yes"),
    ] {
        metadata.insert(name, http::HeaderValue::from_static(value));
    }
    metadata.append("content-type", http::HeaderValue::from_static("application/json"));
    let request = Framed::encode(&[HealthCheckRequest::default()]).unwrap();
    // The upstream answers no message; what it was sent is what counts.
    let _ = connection.unary(&CHECK, metadata, &request, FIVE_SECONDS).await;

    let headers = heard.recv().await.unwrap();
    for gone in ["grpc-status", "grpc-message", "grpc-message-type"] {
        assert!(!headers.contains_key(gone), "{gone} was passed on: {headers:?}");
    }
    let content_types: Vec<_> = headers.get_all("content-type").iter().collect();
    assert_eq!(content_types, ["application/grpc"], "the call's own, alone");
    assert_eq!(headers["te"], "trailers");
    assert!(headers["user-agent"].to_str().unwrap().starts_with("grpc-rust-meshwork/"));
    assert_eq!(headers["x-kept"], "yes");
    assert!(headers.contains_key("grpc-timeout"));
}
