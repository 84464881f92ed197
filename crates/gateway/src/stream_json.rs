//! A server-streaming method over REST, as grpc-gateway v2 answers it: a
//! 200 whose body is one JSON object per line, `{"result": <message>}` for
//! each message the upstream sends (written as a unary answer is, its
//! `response_body` field alone if the rule names one), and last
//! `{"error": <status>}` if the stream ends in an error. The HTTP status
//! is written with the first line, so an error before any message has its
//! own (`{"error": ...}` with 409 for ABORTED); after, it is 200.
//!
//! A caller that accepts `text/event-stream` gets the same objects as
//! Server-Sent Events instead, one `data:` event each (the framing
//! grpc-gateway's users have long asked for: a browser reads it with
//! `EventSource` or any SSE parser, and a proxy that knows SSE passes each
//! event on as it comes).

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use http_body::{Body, Frame};
use prost_reflect::DescriptorPool;
use resilience::direct::ResponseBody;

use crate::routes::Route;

/// The largest message taken from the stream: a unary answer's limit.
const MAX_MESSAGE: usize = resilience::direct::MAX_RESPONSE_MESSAGE;

/// How the stream's JSON objects are framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// One object per line, `application/json`, as grpc-gateway writes them.
    Lines,
    /// One Server-Sent Event per object, `text/event-stream`.
    Events,
}

impl Framing {
    /// Events for a request whose `Accept` names `text/event-stream`, else lines.
    pub fn asked_by(headers: &http::HeaderMap) -> Self {
        let ranges = headers.get_all(http::header::ACCEPT).into_iter().filter_map(|v| v.to_str().ok());
        let mut essences = ranges.flat_map(|v| v.split(',')).map(|range| range.split(';').next().unwrap_or("").trim());
        if essences.any(|essence| essence.eq_ignore_ascii_case(EVENT_STREAM)) { Self::Events } else { Self::Lines }
    }

    fn content_type(self) -> &'static str {
        match self {
            Self::Lines => "application/json",
            Self::Events => EVENT_STREAM,
        }
    }

    /// `object` (compact JSON: one line) framed.
    fn frame(self, object: &[u8]) -> Bytes {
        let mut framed = Vec::with_capacity(object.len() + 8);
        match self {
            Self::Lines => {
                framed.extend_from_slice(object);
                framed.push(b'\n');
            }
            Self::Events => {
                framed.extend_from_slice(b"data: ");
                framed.extend_from_slice(object);
                framed.extend_from_slice(b"\n\n");
            }
        }
        framed.into()
    }

    /// Sets the headers of an answer so framed: its content type, and for
    /// events that no cache keep them (what SSE servers send, so that a
    /// proxy neither stores nor holds them back).
    pub fn write_headers(self, headers: &mut http::HeaderMap) {
        headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static(self.content_type()));
        if self == Self::Events {
            headers.insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("no-cache"));
        }
    }
}

const EVENT_STREAM: &str = "text/event-stream";

/// The next whole gRPC message in what an upstream's stream has sent so
/// far, taken out of `buffered`, if there is one.
pub(crate) fn next_message(buffered: &mut BytesMut) -> Result<Option<Bytes>, tonic::Status> {
    let Some(head) = buffered.get(..5) else { return Ok(None) };
    if head[0] != 0 {
        return Err(tonic::Status::internal("the upstream sent a compressed message, which was not asked for"));
    }
    let length = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if length > MAX_MESSAGE {
        let why = format!("the upstream sent a message larger than the limit of {MAX_MESSAGE} bytes");
        return Err(tonic::Status::resource_exhausted(why));
    }
    if buffered.len() < 5 + length {
        return Ok(None);
    }
    buffered.advance(5);
    Ok(Some(buffered.split_to(length).freeze()))
}

/// A stream that failed before it started (refused, unreachable, or the
/// upstream's error at once): its `error` line alone, with the status's
/// HTTP status, as grpc-gateway answers whatever the failure.
pub fn failed_before_start(
    status: &tonic::Status,
    pool: &DescriptorPool,
    framing: Framing,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let line = error_line(status, pool, framing);
    let mut response = (platform::error_code::http_status(status.code()), line).into_response();
    framing.write_headers(response.headers_mut());
    response
}

fn error_line(status: &tonic::Status, pool: &DescriptorPool, framing: Framing) -> Bytes {
    let error = serde_json::json!({ "error": crate::error::status_json(status, pool) });
    framing.frame(&crate::json_number::to_vec(&error).expect("a status writes as JSON"))
}

/// The upstream's stream of gRPC messages as JSON lines (or events).
pub struct JsonLines {
    upstream: ResponseBody,
    route: Route,
    pool: DescriptorPool,
    framing: Framing,
    buffered: BytesMut,
    /// The stream's status came in the headers (an empty stream).
    status_in_headers: bool,
    /// The first line, read by [`Self::start`] and not yet sent.
    first: Option<Bytes>,
    /// The code of the error that ended the stream, once it has.
    failed: Option<tonic::Code>,
    ended: bool,
}

impl JsonLines {
    /// `upstream`, the body of an answer to `route` whose `headers` are in.
    pub fn new(
        route: Route,
        pool: DescriptorPool,
        framing: Framing,
        headers: &http::HeaderMap,
        upstream: ResponseBody,
    ) -> Self {
        let status_in_headers = headers.contains_key("grpc-status");
        let buffered = BytesMut::new();
        Self { upstream, route, pool, framing, buffered, status_in_headers, first: None, failed: None, ended: false }
    }

    /// Waits for the first line; the code of the error it is, if the
    /// stream failed before its first message.
    pub async fn start(&mut self) -> Option<tonic::Code> {
        let first = std::future::poll_fn(|cx| Pin::new(&mut *self).poll_frame(cx)).await;
        self.first = first.and_then(|frame| frame.ok()?.into_data().ok());
        self.failed
    }

    fn result_line(&self, encoded: Bytes) -> Result<Bytes, tonic::Status> {
        // Written from the wire where it can be, as a unary answer is.
        let result = crate::response_json::answer_json(&self.route, encoded)
            .map_err(|e| tonic::Status::internal(format!("cannot decode the upstream's message: {e}")))?;
        let mut object = Vec::with_capacity(result.len() + 11);
        object.extend_from_slice(b"{\"result\":");
        object.extend_from_slice(&result);
        object.push(b'}');
        Ok(self.framing.frame(&object))
    }

    /// The stream's last line.
    fn error_line(&mut self, status: &tonic::Status) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.ended = true;
        self.failed = Some(status.code());
        Poll::Ready(Some(Ok(Frame::data(error_line(status, &self.pool, self.framing)))))
    }
}

impl Body for JsonLines {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = &mut *self;
        if let Some(line) = this.first.take() {
            return Poll::Ready(Some(Ok(Frame::data(line))));
        }
        loop {
            if this.ended {
                return Poll::Ready(None);
            }
            match next_message(&mut this.buffered).and_then(|message| message.map(|m| this.result_line(m)).transpose())
            {
                Ok(Some(line)) => return Poll::Ready(Some(Ok(Frame::data(line)))),
                Ok(None) => {}
                Err(status) => return this.error_line(&status),
            }
            let status = match ready!(Pin::new(&mut this.upstream).poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => {
                        this.buffered.extend_from_slice(&data);
                        continue;
                    }
                    Err(frame) => match frame.into_trailers() {
                        Ok(trailers) => Some(tonic::Status::from_header_map(&trailers).unwrap_or_else(|| {
                            tonic::Status::internal("the upstream's stream ended without a status")
                        })),
                        Err(_) => continue,
                    },
                },
                Some(Err(error)) => {
                    Some(tonic::Status::unavailable(format!("the upstream's stream broke off: {error}")))
                }
                None if this.status_in_headers => None,
                None => Some(tonic::Status::internal("the upstream's stream ended without a status")),
            };
            match status {
                Some(status) if status.code() != tonic::Code::Ok => return this.error_line(&status),
                _ if !this.buffered.is_empty() => {
                    return this.error_line(&tonic::Status::internal("the upstream's stream ended inside a message"));
                }
                _ => this.ended = true,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asked(accept: &[&str]) -> Framing {
        let mut headers = http::HeaderMap::new();
        for value in accept {
            headers.append(http::header::ACCEPT, value.parse().unwrap());
        }
        Framing::asked_by(&headers)
    }

    #[test]
    fn events_are_for_a_caller_that_names_them_anywhere_in_accept() {
        assert_eq!(asked(&["text/event-stream"]), Framing::Events);
        assert_eq!(asked(&["application/json, Text/Event-Stream; q=0.5"]), Framing::Events);
        assert_eq!(asked(&["application/json", "text/event-stream"]), Framing::Events);
        assert_eq!(asked(&[]), Framing::Lines);
        assert_eq!(asked(&["*/*"]), Framing::Lines);
        assert_eq!(asked(&["text/*, application/json"]), Framing::Lines);
    }

    #[test]
    fn an_event_is_its_object_as_data_and_a_line_is_the_object_alone() {
        assert_eq!(Framing::Lines.frame(br#"{"result":{}}"#), &b"{\"result\":{}}\n"[..]);
        assert_eq!(Framing::Events.frame(br#"{"result":{}}"#), &b"data: {\"result\":{}}\n\n"[..]);
    }
}
