//! The floor under the gateway, for `scripts/bench-peers`: the least a
//! proxy built on the same crates (hyper, h2 through `resilience::direct`,
//! prost, serde_json, on a single-threaded runtime per core with its own
//! upstream connection, as the gateway's serving threads are) does to
//! serve the bench's two REST routes and pass gRPC through, the caller's
//! `authorization` passed on as any proxy in front of a backend that
//! checks it must. No guard, no metrics, no spans, no route table: what it
//! costs per request is what hyper and h2 cost, and the gateway's CPU per
//! request above it is what its guards and its generality cost.
//!
//!   cargo run --release -p meshwork-gateway --example floor_proxy -- rest|grpc 127.0.0.1:PORT http://BACKEND

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use resilience::direct::{DirectConnection, Framed, Target};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Clone, PartialEq, prost::Message)]
struct GetUserRequest {
    #[prost(string, tag = "1")]
    id: String,
}

#[derive(Clone, PartialEq, prost::Message, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateUserRequest {
    #[prost(string, tag = "1")]
    #[serde(default)]
    email: String,
    #[prost(string, tag = "2")]
    #[serde(default)]
    name: String,
}

#[derive(Clone, PartialEq, prost::Message, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct User {
    #[prost(string, tag = "1")]
    id: String,
    #[prost(string, tag = "2")]
    email: String,
    #[prost(string, tag = "3")]
    name: String,
    #[prost(string, tag = "4")]
    created_at: String,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: floor_proxy rest|grpc LISTEN_ADDRESS http://BACKEND";
    let mode = args.next().ok_or(usage)?;
    let address: SocketAddr = args.next().ok_or(usage)?.parse()?;
    let backend = Arc::new(Target::new(&args.next().ok_or(usage)?, Duration::from_secs(2))?);
    let grpc = match mode.as_str() {
        "rest" => false,
        "grpc" => true,
        other => return Err(format!("unknown mode {other:?}: {usage}").into()),
    };
    // Without a subscriber, tracing hands every span h2 and tower open to
    // the `log` crate, formatting its fields (13,200 instructions per GET
    // under callgrind): work no proxy does, so none is done here.
    tracing::subscriber::set_global_default(tracing::subscriber::NoSubscriber::default())?;
    // A thread per core, each with a runtime of its own and its own
    // connection to the backend; connections are dealt to them in turn.
    let threads: Vec<_> = (0..std::thread::available_parallelism().map_or(1, usize::from))
        .map(|_| {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime starts");
            let handle = runtime.handle().clone();
            std::thread::spawn(move || runtime.block_on(std::future::pending::<()>()));
            handle
        })
        .collect();
    let acceptor = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    Ok(acceptor.block_on(accept(address, backend, threads, grpc))?)
}

async fn accept(
    address: SocketAddr,
    backend: Arc<Target>,
    threads: Vec<tokio::runtime::Handle>,
    grpc: bool,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(address).await?;
    for turn in 0.. {
        let (stream, _) = listener.accept().await?;
        threads[turn % threads.len()].spawn(serve(stream.into_std()?, backend.clone(), grpc));
    }
    Ok(())
}

thread_local! {
    static DIRECT: std::cell::OnceCell<Arc<DirectConnection>> = const { std::cell::OnceCell::new() };
}

async fn serve(stream: std::net::TcpStream, backend: Arc<Target>, grpc: bool) {
    let Ok(stream) = tokio::net::TcpStream::from_std(stream) else { return };
    stream.set_nodelay(true).ok();
    let io = TokioIo::new(stream);
    let direct = DIRECT.with(|cell| cell.get_or_init(|| Arc::new(DirectConnection::new(backend))).clone());
    if grpc {
        let service = service_fn(move |request| pass_through(direct.clone(), request));
        hyper::server::conn::http2::Builder::new(TokioExecutor::new()).serve_connection(io, service).await.ok();
    } else {
        let service = service_fn(move |request| rest(direct.clone(), request));
        hyper::server::conn::http1::Builder::new().serve_connection(io, service).await.ok();
    }
}

async fn pass_through(
    direct: Arc<DirectConnection>,
    request: http::Request<Incoming>,
) -> Result<http::Response<tonic::body::Body>, Infallible> {
    Ok(match direct.exchange(request).await {
        Ok(response) => response.map(tonic::body::Body::new),
        Err(status) => status.into_http(),
    })
}

async fn rest(
    direct: Arc<DirectConnection>,
    request: http::Request<Incoming>,
) -> Result<http::Response<Full<Bytes>>, Infallible> {
    // The caller's credential goes on to the backend, as any proxy in front
    // of a backend that checks it must pass it (and as grpc-gateway does).
    let mut headers = http::HeaderMap::new();
    if let Some(authorization) = request.headers().get(http::header::AUTHORIZATION) {
        headers.insert(http::header::AUTHORIZATION, authorization.clone());
    }
    let (path, message) = if request.method() == http::Method::GET
        && let Some(id) = request.uri().path().strip_prefix("/v1/users/")
    {
        let path = http::uri::PathAndQuery::from_static("/bench.v1.UserService/GetUser");
        (path, Framed::encode(&[GetUserRequest { id: id.to_owned() }]))
    } else if request.method() == http::Method::POST && request.uri().path() == "/v1/users" {
        let body = request.into_body().collect().await.map(|collected| collected.to_bytes()).unwrap_or_default();
        let message: CreateUserRequest = match serde_json::from_slice(&body) {
            Ok(message) => message,
            Err(error) => return Ok(reply(http::StatusCode::BAD_REQUEST, error.to_string().into())),
        };
        let path = http::uri::PathAndQuery::from_static("/bench.v1.UserService/CreateUser");
        (path, Framed::encode(&[message]))
    } else {
        return Ok(reply(http::StatusCode::NOT_FOUND, Bytes::from_static(b"no route")));
    };
    let Ok(message) = message else {
        return Ok(reply(http::StatusCode::BAD_REQUEST, Bytes::from_static(b"request too large")));
    };
    let outcome = direct.unary(&path, headers, &message, Duration::from_secs(5)).await.map_err(tonic::Status::from);
    let outcome = outcome.and_then(|answer| {
        <User as prost::Message>::decode(answer.message).map_err(|e| tonic::Status::internal(e.to_string()))
    });
    Ok(match outcome {
        Ok(user) => reply(http::StatusCode::OK, serde_json::to_vec(&user).expect("a user serialises").into()),
        Err(status) => reply(http::StatusCode::BAD_GATEWAY, status.message().to_owned().into()),
    })
}

fn reply(status: http::StatusCode, body: Bytes) -> http::Response<Full<Bytes>> {
    let mut response = http::Response::new(Full::new(body));
    *response.status_mut() = status;
    response.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    response
}
