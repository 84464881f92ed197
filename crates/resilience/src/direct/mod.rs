//! gRPC calls made straight from the calling task on an HTTP/2 connection
//! of h2's: unary calls for a caller that holds its request encoded and
//! wants the response's bytes (the gateway's REST calls, [`DirectConnection::unary`]),
//! and calls of any kind passed through as they come (its gRPC and
//! gRPC-Web, [`DirectConnection::exchange`], which also carries a generated
//! client's calls: the services' calls to each other, through
//! [`crate::EndpointChannel`]).
//!
//! Why not through tonic's `Channel`: there a call passes from the caller's
//! task to the channel's buffer worker, then to hyper's connection task,
//! which spawns a task per call to wait for the response and hand it back
//! through a oneshot, beside the task that drives the connection. Here the
//! caller's task opens the stream, queues the request and reads the answer
//! itself; the one other task is the connection's driver, which reads and
//! writes the socket. On the floor proxy (`examples/floor_proxy`, REST GET,
//! wrk, 32 connections, four alternating rounds): 26.2-29.4 µs of CPU per
//! request through a `Channel`, 20.1-22.7 µs straight on h2. The gateway,
//! two builds side by side the same way: REST GET 70.7-74.1 -> 54.3-61.3
//! µs, POST 56.1-68.9 -> 48.7-54.8, gRPC pass-through 46.9-58.3 ->
//! 42.6-46.7.
//!
//! What the `Channel` did, this does too: the connection is made on the
//! first call (within the connect timeout) and made again after it fails,
//! once for all the calls that find it missing; it is pinged while calls
//! are in flight, and dropped when a ping goes unanswered; its windows and
//! send buffer are hyper's.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use bytes::{BufMut, Bytes, BytesMut};
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use h2::client::SendRequest;
use http::header::{CONTENT_TYPE, TE, USER_AGENT};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, Uri, Version};
use tonic::{Code, Status};

mod exchange;
pub use exchange::{ReadyToSend, ResponseBody};

/// The largest response message taken: tonic's default, which the calls
/// made through a `Channel` had.
pub const MAX_RESPONSE_MESSAGE: usize = 4 * 1024 * 1024;

/// hyper's HTTP/2 client defaults, which the `Channel` used: a stream's
/// and the connection's receive windows, and the most queued to send.
const STREAM_WINDOW: u32 = 2 * 1024 * 1024;
const CONNECTION_WINDOW: u32 = 5 * 1024 * 1024;
const SEND_BUFFER: usize = 1024 * 1024;
/// How often a connection with calls in flight is pinged, and how long
/// the ping may go unanswered (tonic's setting, hyper's default).
const KEEP_ALIVE: Duration = Duration::from_secs(30);
const PING_TIMEOUT: Duration = Duration::from_secs(20);

const GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");
// Names built once: a name given as a string is parsed again on every lookup.
const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
const GRPC_STATUS_DETAILS: HeaderName = HeaderName::from_static("grpc-status-details-bin");
/// Takes out of `headers` every one that `unwanted` picks (given its name,
/// which a `HeaderMap` holds in lower case, and a value).
///
/// Nearly every request has none of those asked for, so the headers are
/// walked once and only those found are looked up to be removed: a removal
/// by name hashes the name and probes the map whether it is there or not
/// (five such removals and a lookup had taken about 750 instructions a
/// passed-through call, a walk about 280; callgrind).
fn remove_where(headers: &mut HeaderMap, unwanted: impl Fn(&str, &HeaderValue) -> bool) {
    let mut found = Vec::new();
    for (name, value) in headers.iter() {
        if unwanted(name.as_str(), value) {
            found.push(name.clone());
        }
    }
    for name in found {
        headers.remove(name);
    }
}

/// Where the calls go and how the connection is kept.
#[derive(Debug)]
pub struct Target {
    url: String,
    scheme: Scheme,
    authority: Authority,
    connect_timeout: Duration,
    keep_alive: Duration,
    ping_timeout: Duration,
}

impl Target {
    /// `url` is `http://host:port`.
    pub fn new(url: &str, connect_timeout: Duration) -> Result<Self, String> {
        let uri: Uri = url.parse().map_err(|e| format!("invalid endpoint {url}: {e}"))?;
        let (Some(scheme), Some(authority)) = (uri.scheme().cloned(), uri.authority().cloned()) else {
            return Err(format!("invalid endpoint {url}: expected http://host:port"));
        };
        Ok(Self {
            url: url.to_owned(),
            scheme,
            authority,
            connect_timeout,
            keep_alive: KEEP_ALIVE,
            ping_timeout: PING_TIMEOUT,
        })
    }

    /// The URI of a call of `path` on this endpoint (h2 takes a stream's
    /// `:scheme` and `:authority` from it).
    fn uri(&self, path: PathAndQuery) -> Uri {
        let mut uri = http::uri::Parts::default();
        uri.scheme = Some(self.scheme.clone());
        uri.authority = Some(self.authority.clone());
        uri.path_and_query = Some(path);
        Uri::from_parts(uri).expect("a scheme, an authority and a path make a URI")
    }

    /// Pings every `interval` while calls are in flight, and drops the
    /// connection when a ping goes unanswered for `timeout`.
    pub fn keep_alive(self, interval: Duration, timeout: Duration) -> Self {
        Self { keep_alive: interval, ping_timeout: timeout, ..self }
    }
}

/// A connection to one endpoint, made on the first call through it.
pub struct DirectConnection {
    target: Arc<Target>,
    state: Mutex<State>,
}

impl std::fmt::Debug for DirectConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectConnection").field("endpoint", &self.target.url).finish_non_exhaustive()
    }
}

enum State {
    /// No connection: the next call makes one.
    Idle,
    /// Being made, by a task of its own, for every call that waits: the
    /// first calls on a serving thread come together, and so do the calls
    /// after an endpoint restarts, and each used to make a connection of
    /// its own (16 at once per thread at 32 client connections).
    Connecting(Shared<BoxFuture<'static, Result<Live, Status>>>),
    Live(Live),
}

#[derive(Debug, Clone)]
struct Live {
    sender: SendRequest<Bytes>,
    /// Calls in flight on the connection: it is pinged only while there are
    /// some, as hyper does (a gRPC server counts a ping on an idle
    /// connection as abuse, and after a few closes the connection).
    calls: Arc<AtomicUsize>,
}

/// A unary call's answer: the response's headers, its trailers (the
/// status and whatever metadata the server sent last), and the response
/// message, encoded. Kept apart, as a REST caller is told them apart
/// (`Grpc-Metadata-*` headers, `Grpc-Trailer-*` trailers).
#[derive(Debug)]
pub struct Answer {
    pub headers: HeaderMap,
    pub trailers: HeaderMap,
    pub message: Bytes,
}

/// A unary call that failed: its status, and the response headers that
/// came before it, if any did (a trailers-only answer has none: all its
/// metadata is the status's). Kept apart, as grpc-gateway tells a REST
/// caller an error's header metadata from its trailer metadata.
#[derive(Debug)]
pub struct Failed {
    pub status: Status,
    pub headers: HeaderMap,
}

impl From<Status> for Failed {
    fn from(status: Status) -> Self {
        Self { status, headers: HeaderMap::new() }
    }
}

impl From<Failed> for Status {
    fn from(failed: Failed) -> Self {
        failed.status
    }
}

impl crate::upstream::AttemptError for Failed {
    fn status(&self) -> &Status {
        &self.status
    }
}

/// A connection that could not be made: the request was never sent, so
/// any call may be tried again (the source of such a call's status).
#[derive(Debug, thiserror::Error)]
#[error("cannot connect to {endpoint}: {reason}")]
pub struct ConnectFailed {
    endpoint: String,
    reason: String,
}

impl DirectConnection {
    pub fn new(target: Arc<Target>) -> Self {
        Self { target, state: Mutex::new(State::Idle) }
    }

    /// Another connection to the same endpoint (made on its first call).
    pub fn another(&self) -> Self {
        Self::new(self.target.clone())
    }

    /// Calls `path` (`/pkg.Service/Method`), a method that answers with one
    /// message, with `messages` (one, or a client stream's) and `metadata`,
    /// telling the server it has `timeout`.
    pub async fn unary(
        &self,
        path: &PathAndQuery,
        metadata: HeaderMap,
        messages: &Framed,
        timeout: Duration,
    ) -> Result<Answer, Failed> {
        let request = self.call_head(path, metadata, timeout);
        let mut live = self.ready().await?;
        let _in_flight = InFlight::enter(live.calls.clone());
        let (response, mut request_body) = self.open(&mut live, request, false)?;
        request_body.send_data(messages.0.clone(), true).map_err(sent)?;
        let (head, mut body) = response.await.map_err(sent)?.into_parts();

        // Trailers-only: the status is in the headers, and nothing follows.
        if let Some(status) = status_in(&head.headers) {
            return if status.code() == Code::Ok {
                Err(Status::internal("Missing response message.").into())
            } else {
                Err(status.into())
            };
        }
        if head.status != StatusCode::OK {
            return Err(status_of_http(head.status).into());
        }
        let mut received = Received::default();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.map_err(sent)?;
            // Taken whole: the window opens again at once.
            let _ = body.flow_control().release_capacity(chunk.len());
            received.push(chunk)?;
        }
        let trailers = body.trailers().await.map_err(sent)?.unwrap_or_default();
        // An error's metadata is the trailers', as a trailers-only answer's
        // is its headers' (as grpc-go's client tells them).
        let status = status_in(&trailers).unwrap_or_else(|| {
            Status::unknown("protocol error: missing grpc-status trailer, stream was terminated without a final status")
        });
        if status.code() != Code::Ok {
            return Err(Failed { status, headers: head.headers });
        }
        Ok(Answer { headers: head.headers, trailers, message: received.message()? })
    }

    /// Calls `path`, a method that answers with a stream of messages, with
    /// `messages`, as [`Self::unary`] does; answers once the response's
    /// headers are in, with them and its body still coming (the messages
    /// framed, then the trailers with the status). A trailers-only answer
    /// that is not OK is the call's error; an OK one has an empty body.
    pub async fn server_stream(
        &self,
        path: &PathAndQuery,
        metadata: HeaderMap,
        messages: &Framed,
        timeout: Duration,
    ) -> Result<(HeaderMap, ResponseBody), Status> {
        let request = self.call_head(path, metadata, timeout);
        let body = http_body_util::Full::new(messages.0.clone());
        let (head, body) = self.exchange(request.map(|()| body)).await?.into_parts();
        match status_in(&head.headers) {
            Some(status) if status.code() != Code::Ok => return Err(status),
            _ if head.status != StatusCode::OK => return Err(status_of_http(head.status)),
            _ => {}
        }
        Ok((head.headers, body))
    }

    /// The head of a gRPC call of `path`: the caller's `metadata`, less what
    /// only the call itself may say, and the call's own headers.
    fn call_head(&self, path: &PathAndQuery, mut metadata: HeaderMap, timeout: Duration) -> Request<()> {
        // Only the callee answers with a status. The call's own headers
        // below replace whatever the caller set under their names, as an
        // insert drops every value the name had.
        remove_where(&mut metadata, |name, _| matches!(name, "grpc-status" | "grpc-message" | "grpc-message-type"));
        metadata.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        metadata.insert(TE, HeaderValue::from_static("trailers"));
        metadata
            .insert(USER_AGENT, HeaderValue::from_static(concat!("grpc-rust-meshwork/", env!("CARGO_PKG_VERSION"))));
        metadata.insert(GRPC_TIMEOUT, timeout_value(timeout));
        let mut request = Request::new(());
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.target.uri(path.clone());
        *request.version_mut() = Version::HTTP_2;
        *request.headers_mut() = metadata;
        request
    }

    /// The connection, ready for a stream: the one there is, or a new one
    /// if there is none or it has failed.
    async fn ready(&self) -> Result<Live, Status> {
        let current = match &*self.state.lock().expect("connection lock") {
            State::Live(live) => Some(live.clone()),
            _ => None,
        };
        if let Some(live) = current {
            match live.sender.clone().ready().await {
                Ok(sender) => return Ok(Live { sender, calls: live.calls }),
                Err(_) => self.forget(&live),
            }
        }
        let attempt = self.attempt();
        let made = attempt.clone().await;
        {
            let mut state = self.state.lock().expect("connection lock");
            if matches!(&*state, State::Connecting(current) if current.ptr_eq(&attempt)) {
                *state = match &made {
                    Ok(live) => State::Live(live.clone()),
                    Err(_) => State::Idle,
                };
            }
        }
        // A connect that failed fails every call that waited on it: each
        // is a request never sent, which its caller may try again.
        let live = made?;
        let sender = live.sender.ready().await.map_err(|e| self.not_sent(e))?;
        Ok(Live { sender, calls: live.calls })
    }

    /// The connect under way, or a new one. One that has already failed
    /// (its callers gone before they saw it) is not handed to a new call:
    /// that call makes its own.
    fn attempt(&self) -> Shared<BoxFuture<'static, Result<Live, Status>>> {
        let mut state = self.state.lock().expect("connection lock");
        if let State::Connecting(attempt) = &*state
            && !matches!(attempt.peek(), Some(Err(_)))
        {
            return attempt.clone();
        }
        let target = self.target.clone();
        // Spawned, so that it goes on when the calls waiting on it give up
        // (their deadlines are theirs) and is there for the next call.
        let connecting = tokio::spawn(connect(target.clone()));
        let attempt = async move {
            connecting.await.unwrap_or_else(|joined| Err(target.not_sent(format!("the connect failed: {joined}"))))
        }
        .boxed()
        .shared();
        *state = State::Connecting(attempt.clone());
        attempt
    }

    /// Opens a stream for `request` on `live`, ready. Nothing has gone out
    /// when this fails, and the connection takes no more streams (it has
    /// failed, been told to go away, or used up its stream ids): the next
    /// call makes a new one.
    fn open(
        &self,
        live: &mut Live,
        request: Request<()>,
        end_of_stream: bool,
    ) -> Result<(h2::client::ResponseFuture, h2::SendStream<Bytes>), Status> {
        live.sender.send_request(request, end_of_stream).map_err(|error| {
            self.forget(live);
            self.not_sent(error)
        })
    }

    fn forget(&self, failed: &Live) {
        let mut state = self.state.lock().expect("connection lock");
        if matches!(&*state, State::Live(live) if Arc::ptr_eq(&live.calls, &failed.calls)) {
            *state = State::Idle;
        }
    }

    fn not_sent(&self, reason: impl ToString) -> Status {
        self.target.not_sent(reason)
    }
}

impl Target {
    /// The status of a call that found no connection: UNAVAILABLE, with
    /// [`ConnectFailed`] as its source.
    fn not_sent(&self, reason: impl ToString) -> Status {
        let failed = ConnectFailed { endpoint: self.url.clone(), reason: reason.to_string() };
        let mut status = Status::unavailable(failed.to_string());
        status.set_source(Arc::new(failed));
        status
    }
}

/// Makes a connection to `target`, and the task that drives it.
async fn connect(target: Arc<Target>) -> Result<Live, Status> {
    if target.scheme != Scheme::HTTP {
        return Err(target.not_sent("only http:// endpoints are supported (this build has no TLS client)"));
    }
    // An IPv6 literal is written in brackets in a URL, not to the resolver.
    let host = target.authority.host().trim_start_matches('[').trim_end_matches(']');
    let port = target.authority.port_u16().unwrap_or(80);
    let connecting = async {
        let tcp = tokio::net::TcpStream::connect((host, port)).await?;
        tcp.set_nodelay(true)?;
        h2::client::Builder::new()
            .initial_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .max_send_buffer_size(SEND_BUFFER)
            .enable_push(false)
            .handshake::<_, Bytes>(tcp)
            .await
            .map_err(std::io::Error::other)
    };
    let (sender, connection) = match tokio::time::timeout(target.connect_timeout, connecting).await {
        Ok(Ok(made)) => made,
        Ok(Err(error)) => return Err(target.not_sent(error)),
        Err(_) => return Err(target.not_sent(format!("no connection within {:?}", target.connect_timeout))),
    };
    let calls = Arc::new(AtomicUsize::new(0));
    tokio::spawn(drive(connection, calls.clone(), target.clone()));
    Ok(Live { sender, calls })
}

/// Reads and writes the connection until it closes (every handle to it
/// dropped, or the server gone), or until a ping goes unanswered while
/// calls wait on it: then it is dropped, which fails those calls, and the
/// next call makes a new one.
async fn drive(
    mut connection: h2::client::Connection<tokio::net::TcpStream, Bytes>,
    calls: Arc<AtomicUsize>,
    target: Arc<Target>,
) {
    let Some(mut pings) = connection.ping_pong() else {
        let _ = connection.await;
        return;
    };
    let watch = async move {
        loop {
            tokio::time::sleep(target.keep_alive).await;
            if calls.load(Ordering::Relaxed) == 0 {
                continue;
            }
            match tokio::time::timeout(target.ping_timeout, pings.ping(h2::Ping::opaque())).await {
                Ok(Ok(_)) => {}
                Ok(Err(_)) => return,
                Err(_) => {
                    tracing::warn!(endpoint = %target.url, "no answer to a keep-alive ping: the connection is dropped");
                    return;
                }
            }
        }
    };
    tokio::select! {
        _ = connection => {}
        () = watch => {}
    }
}

/// Counts a call in flight on its connection while it lives.
#[derive(Debug)]
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn enter(calls: Arc<AtomicUsize>) -> Self {
        calls.fetch_add(1, Ordering::Relaxed);
        Self(calls)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The response body as it comes: most often one chunk, kept as it is.
#[derive(Default)]
struct Received {
    first: Bytes,
    joined: Option<BytesMut>,
}

impl Received {
    fn push(&mut self, chunk: Bytes) -> Result<(), Status> {
        let total = self.len() + chunk.len();
        if total > 5 + MAX_RESPONSE_MESSAGE {
            return Err(Status::resource_exhausted(format!(
                "the response message is larger than the limit of {MAX_RESPONSE_MESSAGE} bytes"
            )));
        }
        match (&mut self.joined, self.first.is_empty()) {
            (None, true) => self.first = chunk,
            (None, false) => {
                let mut joined = BytesMut::with_capacity(total);
                joined.put_slice(&self.first);
                joined.put_slice(&chunk);
                self.joined = Some(joined);
            }
            (Some(joined), _) => joined.put_slice(&chunk),
        }
        Ok(())
    }

    fn len(&self) -> usize {
        self.joined.as_ref().map_or(self.first.len(), BytesMut::len)
    }

    /// The one message the body holds, without its five-byte prefix.
    fn message(self) -> Result<Bytes, Status> {
        let body = match self.joined {
            Some(joined) => joined.freeze(),
            None => self.first,
        };
        if body.len() < 5 {
            return Err(Status::internal("Missing response message."));
        }
        if body[0] != 0 {
            return Err(Status::internal("the response message is compressed, which the call did not accept"));
        }
        let length = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
        if body.len() != 5 + length {
            return Err(Status::internal(format!(
                "the response body holds {} bytes after a message of {length}: one message was expected",
                body.len() - 5
            )));
        }
        Ok(body.slice(5..))
    }
}

/// A call's request messages, each in gRPC's length-prefixed frame, one
/// after the other: a unary call's one, or a client stream's every message.
/// Framed once and sent as it is on every attempt (a clone is a count).
#[derive(Debug, Clone, PartialEq)]
pub struct Framed(Bytes);

impl Framed {
    /// `messages`, encoded and framed into one buffer.
    pub fn encode<M: prost::Message>(messages: &[M]) -> Result<Self, Status> {
        let mut frames = Frames(BytesMut::with_capacity(messages.iter().map(|m| 5 + m.encoded_len()).sum()));
        for message in messages {
            frames.push(message)?;
        }
        Ok(frames.finish())
    }
}

/// A [`Framed`] built a message at a time, for a stream whose messages are
/// made one by one: each is framed and can be dropped before the next is
/// made, so the stream is only ever held as its frames (a few bytes for an
/// empty message, where the message itself takes tens).
#[derive(Debug, Default)]
pub struct Frames(BytesMut);

impl Frames {
    /// Frames `message` after those pushed before it.
    pub fn push<M: prost::Message>(&mut self, message: &M) -> Result<(), Status> {
        frame_onto(&mut self.0, message)
    }

    /// Frames `message`, already encoded, after those pushed before it.
    pub fn push_encoded(&mut self, message: &[u8]) -> Result<(), Status> {
        let length = frame_length(message.len())?;
        self.0.reserve(5 + message.len());
        self.0.put_u8(0);
        self.0.put_u32(length);
        self.0.put_slice(message);
        Ok(())
    }

    pub fn finish(self) -> Framed {
        Framed(self.0.freeze())
    }
}

/// `message`, encoded in gRPC's length-prefixed frame, onto the end of
/// `framed`.
pub fn frame_onto<M: prost::Message>(framed: &mut BytesMut, message: &M) -> Result<(), Status> {
    let start = framed.len();
    framed.put_bytes(0, 5);
    message.encode(framed).map_err(|e| Status::internal(format!("cannot encode the request: {e}")))?;
    let length = frame_length(framed.len() - start - 5)?;
    framed[start + 1..start + 5].copy_from_slice(&length.to_be_bytes());
    Ok(())
}

/// A message's length as its frame's prefix says it: 32 bits.
fn frame_length(length: usize) -> Result<u32, Status> {
    u32::try_from(length).map_err(|_| Status::invalid_argument("request message larger than 4 GiB"))
}

/// The gRPC status `headers` carry, if any. A status's details that are
/// not base64 are dropped: tonic panics on them.
fn status_in(headers: &HeaderMap) -> Option<Status> {
    // The usual answer, read without the copy of every header that
    // `Status::from_header_map` makes for the status's metadata.
    if headers.get(GRPC_STATUS)? == "0" {
        return Some(Status::new(Code::Ok, ""));
    }
    let details_valid = headers.get(GRPC_STATUS_DETAILS).is_none_or(|details| {
        let lenient = base64::engine::GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            base64::engine::GeneralPurposeConfig::new()
                .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
        );
        lenient.decode(details.as_bytes()).is_ok()
    });
    if details_valid {
        return Status::from_header_map(headers);
    }
    let mut headers = headers.clone();
    headers.remove(GRPC_STATUS_DETAILS);
    Status::from_header_map(&headers)
}

/// A response with no gRPC status, by its HTTP status (gRPC's
/// http-grpc-status-mapping, as tonic maps it).
fn status_of_http(status: StatusCode) -> Status {
    let code = match status {
        StatusCode::BAD_REQUEST => Code::Internal,
        StatusCode::UNAUTHORIZED => Code::Unauthenticated,
        StatusCode::FORBIDDEN => Code::PermissionDenied,
        StatusCode::NOT_FOUND => Code::Unimplemented,
        StatusCode::TOO_MANY_REQUESTS
        | StatusCode::BAD_GATEWAY
        | StatusCode::SERVICE_UNAVAILABLE
        | StatusCode::GATEWAY_TIMEOUT => Code::Unavailable,
        _ => Code::Unknown,
    };
    Status::new(code, format!("grpc-status header missing, mapped from HTTP status code {}", status.as_u16()))
}

/// A failure after the request may have been sent, with h2's error as its
/// source (the upstream's call loop reads a transport failure from it).
fn sent(error: h2::Error) -> Status {
    let mut status = Status::unavailable(format!("h2 protocol error: {error}"));
    status.set_source(Arc::new(error));
    status
}

/// What is left of a deadline as a `grpc-timeout` (see
/// [`crate::deadline::on_the_wire`]), at most eight digits and a unit.
pub fn timeout_value(remaining: Duration) -> HeaderValue {
    let timeout = crate::deadline::on_the_wire(remaining);
    let millis = timeout.as_millis();
    let text = if millis == 0 {
        format!("{}n", timeout.as_nanos())
    } else if millis < 100_000_000 {
        format!("{millis}m")
    } else {
        format!("{}S", timeout.as_secs().min(99_999_999))
    };
    HeaderValue::from_str(&text).expect("digits and a unit are a header value")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_framed_one_after_another_each_with_its_length() {
        use tonic_health::pb::HealthCheckRequest;
        let named = HealthCheckRequest { service: "ab".to_owned() };
        let framed = Framed::encode(&[named, HealthCheckRequest::default()]).unwrap();
        assert_eq!(framed.0.as_ref(), [0, 0, 0, 0, 4, 0x0a, 2, b'a', b'b', 0, 0, 0, 0, 0]);
        assert!(Framed::encode::<HealthCheckRequest>(&[]).unwrap().0.is_empty(), "a stream of none");
        let mut frames = Frames::default();
        frames.push(&HealthCheckRequest { service: "ab".to_owned() }).unwrap();
        frames.push(&HealthCheckRequest::default()).unwrap();
        assert_eq!(frames.finish().0, framed.0, "a message at a time, the same frames");
    }

    #[test]
    fn timeouts_are_sent_in_whole_milliseconds_within_eight_digits() {
        assert_eq!(timeout_value(Duration::from_micros(4_999_700)), "4999m");
        assert_eq!(timeout_value(Duration::from_micros(300)), "300000n");
        assert_eq!(timeout_value(Duration::from_secs(200_000)), "200000S");
        assert_eq!(timeout_value(Duration::from_secs(u64::MAX / 2)), "99999999S");
    }

    #[test]
    fn a_body_gives_its_one_message_however_it_was_cut() {
        let mut whole = Received::default();
        whole.push(Bytes::from_static(&[0, 0, 0, 0, 2, 8, 1])).unwrap();
        assert_eq!(whole.message().unwrap(), Bytes::from_static(&[8, 1]));
        let mut pieces = Received::default();
        for piece in [&[0u8, 0][..], &[0, 0, 2, 8], &[1]] {
            pieces.push(Bytes::copy_from_slice(piece)).unwrap();
        }
        assert_eq!(pieces.message().unwrap(), Bytes::from_static(&[8, 1]));
    }

    #[test]
    fn a_body_that_is_not_one_uncompressed_message_is_refused() {
        for (body, expected) in [
            (&[][..], "Missing response message."),
            (&[1, 0, 0, 0, 1, 8], "compressed"),
            (&[0, 0, 0, 0, 3, 8], "one message"),
            (&[0, 0, 0, 0, 1, 8, 0, 0, 0, 0, 0], "one message"),
        ] {
            let mut received = Received::default();
            received.push(Bytes::copy_from_slice(body)).unwrap();
            let status = received.message().unwrap_err();
            assert_eq!(status.code(), Code::Internal);
            assert!(status.message().contains(expected), "{status:?}");
        }
        let mut huge = Received::default();
        let refused = huge.push(Bytes::from(vec![0; MAX_RESPONSE_MESSAGE + 6])).unwrap_err();
        assert_eq!(refused.code(), Code::ResourceExhausted);
    }

    #[test]
    fn a_status_with_details_that_are_not_base64_keeps_its_code_and_message() {
        let mut headers = HeaderMap::new();
        headers.insert(GRPC_STATUS, HeaderValue::from_static("5"));
        headers.insert("grpc-message", HeaderValue::from_static("no%20such%20user"));
        headers.insert(GRPC_STATUS_DETAILS, HeaderValue::from_static("!!not base64!!"));
        let status = status_in(&headers).unwrap();
        assert_eq!((status.code(), status.message()), (Code::NotFound, "no such user"));
        assert!(status.details().is_empty());
        assert!(status_in(&HeaderMap::new()).is_none());
    }
}
