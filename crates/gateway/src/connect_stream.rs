//! The Connect protocol's streaming calls, as connect-go serves them: a
//! POST to `/pkg.Service/Method` of enveloped request messages (a flags
//! byte, a 4-byte length, the message), one for a server stream, any number
//! for a client or bidirectional stream, as `application/connect+json` or
//! `application/connect+proto`. The answer is always 200: the response
//! messages, each enveloped the same way, then the end-of-stream envelope
//! (flags 0x02), JSON whatever the codec:
//! `{"error": <Connect error>, "metadata": {<trailer>: [<values>]}}`, its
//! `error` absent when the stream succeeded.
//!
//! Each call becomes a gRPC request through the pass-through, as a unary
//! Connect call does (admission, upstream, resilience). Its body is read
//! whole and every message checked before the call is made: a client or
//! bidirectional stream is half-duplex here (Connect allows it, and over
//! HTTP/1.1 it is all there is); a caller that must interleave sending
//! and receiving calls with gRPC, passed through as it comes.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, header};
use http_body::Frame;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use prost_reflect::{DynamicMessage, MessageDescriptor, MethodDescriptor};
use tower::ServiceExt;

use crate::Gateway;
use crate::catalog::Catalog;
use crate::connect;
use crate::passthrough::PassThrough;
use crate::transcode::BadRequest;

const PROTO: &str = "application/connect+proto";
const JSON: &str = "application/connect+json";
/// The envelope flag of a compressed message, and of the end of the stream.
const COMPRESSED: u8 = 0x01;
const END_STREAM: u8 = 0x02;

/// A Connect streaming call: the method it names and the codec of its messages.
pub struct StreamCall {
    method: MethodDescriptor,
    content_type: &'static str,
}

/// The call a request is if it is a Connect streaming call: a POST of
/// `application/connect+proto` or `application/connect+json` to the gRPC
/// path of a method in `catalog`.
pub fn stream_call(catalog: &Catalog, request: &http::Request<Body>) -> Option<StreamCall> {
    let (method, content_type) = connect::method_posted(catalog, request, &[PROTO, JSON])?;
    Some(StreamCall { method, content_type })
}

/// Serves one Connect server-streaming call.
pub async fn handle(
    gateway: Arc<Gateway>,
    StreamCall { method, content_type }: StreamCall,
    request: http::Request<Body>,
    client: Option<SocketAddr>,
) -> Response {
    let ended = |code, why: &str, details: &[prost_types::Any]| {
        answer(content_type, HeaderMap::new(), Body::from(end_stream(code, why, details)))
    };
    if !method.is_client_streaming() && !method.is_server_streaming() {
        let why = format!("{} is not a stream: call it with the Connect unary protocol or gRPC", method.full_name());
        return ended(tonic::Code::Unimplemented, &why, &[]);
    }
    let (parts, body) = request.into_parts();
    // Admitted before its body is read and decoded, as a unary call is.
    let refusal = |status: &tonic::Status| ended(status.code(), status.message(), &connect::status_details(status));
    let admitted = match connect::admit(&gateway, &method, &parts.headers, client, refusal).await {
        Ok(admitted) => admitted,
        Err(refused) => return refused,
    };
    let body = match Limited::new(body, gateway.max_body_bytes).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            let why = format!("request body larger than {} bytes", gateway.max_body_bytes);
            return ended(tonic::Code::ResourceExhausted, &why, &[]);
        }
        Err(e) => return ended(tonic::Code::InvalidArgument, &format!("cannot read the request body: {e}"), &[]),
    };
    // Checked within the budget of bodies being turned into messages.
    let transcoding = match gateway.transcoding.enter(body.len()).await {
        Ok(transcoding) => transcoding,
        Err(busy) => return busy.refusal(|status| ended(status.code(), status.message(), &[])),
    };
    let messages = match request_messages(&method, content_type, &body) {
        Ok(messages) => messages,
        Err(refused) => {
            // With the field to blame, as a unary call's refusal has it.
            let details: Vec<prost_types::Any> = refused.detail().iter().map(connect::bad_request_any).collect();
            return ended(tonic::Code::InvalidArgument, &refused.message, &details);
        }
    };
    drop(transcoding);
    let grpc = match connect::grpc_request(&parts, messages) {
        Ok(grpc) => grpc,
        Err(why) => return ended(tonic::Code::InvalidArgument, &why, &[]),
    };
    let response = PassThrough::new(gateway, client).admitted(admitted).oneshot(grpc).await;
    let (parts, upstream) = response.unwrap_or_else(|never| match never {}).into_parts();
    let headers = parts.headers;
    // A trailers-only answer (an error, or an empty stream) carries its
    // status in the headers: the end of the stream, at once.
    if let Some(status) = tonic::Status::from_header_map(&headers) {
        let end = end_stream_of(&status, &headers);
        return answer(content_type, connect::retry_after(&headers), Body::from(end));
    }
    let headers = passed_on(&headers);
    let output = method.output();
    let frames = Envelopes { upstream, output, json: content_type == JSON, buffered: BytesMut::new(), ended: false };
    answer(content_type, headers, Body::new(frames))
}

fn answer(content_type: &'static str, headers: HeaderMap, body: Body) -> Response {
    let mut response = ([(header::CONTENT_TYPE, content_type)], body).into_response();
    response.headers_mut().extend(headers);
    response
}

/// The call's request messages, framed for gRPC: the one of a server
/// stream, or every one of a client or bidirectional stream (none is a
/// stream too). Each is checked, and a JSON one encoded, before anything
/// is sent.
fn request_messages(method: &MethodDescriptor, content_type: &str, body: &[u8]) -> Result<Bytes, BadRequest> {
    let mut framed = BytesMut::with_capacity(body.len());
    let (mut rest, mut count) = (body, 0);
    while !rest.is_empty() {
        count += 1;
        if count > 1 && !method.is_client_streaming() {
            return Err(BadRequest::new("the request body must be one enveloped message"));
        }
        // A stream's refusal says which of its messages is to blame.
        let numbered = |refused: BadRequest| {
            if method.is_client_streaming() {
                BadRequest { message: format!("request message {count}: {}", refused.message), ..refused }
            } else {
                refused
            }
        };
        let Some(head) = rest.get(..5) else {
            return Err(numbered(BadRequest::new("the request body ends inside an envelope's prefix")));
        };
        if head[0] & COMPRESSED != 0 {
            let refused = BadRequest::new("the request message is compressed, which the gateway does not accept");
            return Err(numbered(refused));
        }
        if head[0] != 0 {
            return Err(numbered(BadRequest::new(format!("unknown envelope flags {:#04x}", head[0]))));
        }
        let length = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        let Some(payload) = rest.get(5..5 + length) else {
            return Err(numbered(BadRequest::new("the request body ends inside an enveloped message")));
        };
        if content_type == JSON {
            let message = connect::from_json(method, payload).map_err(numbered)?;
            resilience::direct::frame_onto(&mut framed, &message)
                .map_err(|status| numbered(BadRequest::new(status.message())))?;
        } else {
            if let Err(e) = DynamicMessage::decode(method.input(), payload) {
                let why = format!("the request message is not a {}: {e}", method.input().full_name());
                return Err(numbered(BadRequest::new(why)));
            }
            // An uncompressed envelope is a gRPC frame as it is.
            framed.extend_from_slice(&rest[..5 + length]);
        }
        rest = &rest[5 + length..];
    }
    if count == 0 && !method.is_client_streaming() {
        return Err(BadRequest::new("the request body is not an enveloped message"));
    }
    Ok(framed.freeze())
}

/// The upstream's headers (or trailers) that go on to the caller.
fn passed_on(headers: &HeaderMap) -> HeaderMap {
    let kept = headers.iter().filter(|(name, _)| connect::passed_on(name));
    kept.map(|(name, value)| (name.clone(), value.clone())).collect()
}

/// The end-of-stream envelope for an error the gateway raises itself.
fn end_stream(code: tonic::Code, message: &str, details: &[prost_types::Any]) -> Bytes {
    let end = serde_json::json!({ "error": connect::error_json(code, message, details) });
    envelope(END_STREAM, &serde_json::to_vec(&end).expect("JSON writes"))
}

/// The end-of-stream envelope for the upstream's final `status`, with its
/// `trailers` as metadata.
fn end_stream_of(status: &tonic::Status, trailers: &HeaderMap) -> Bytes {
    let mut metadata = serde_json::Map::new();
    let trailers = passed_on(trailers);
    for name in trailers.keys() {
        let values =
            trailers.get_all(name).iter().filter_map(|v| v.to_str().ok()).map(serde_json::Value::from).collect();
        metadata.insert(name.as_str().to_owned(), serde_json::Value::Array(values));
    }
    let mut end = serde_json::json!({ "metadata": metadata });
    if status.code() != tonic::Code::Ok {
        let details = connect::status_details(status);
        end["error"] = connect::error_json(status.code(), status.message(), &details);
    }
    envelope(END_STREAM, &serde_json::to_vec(&end).expect("JSON writes"))
}

/// An envelope of what the gateway writes itself or takes from the
/// upstream's frames, each far below the 4 GiB a length can say.
fn envelope(flags: u8, payload: &[u8]) -> Bytes {
    connect::envelope(flags, payload).expect("an envelope under 4 GiB")
}

/// The upstream's gRPC messages as Connect envelopes, then the end of the stream.
struct Envelopes {
    upstream: tonic::body::Body,
    output: MessageDescriptor,
    json: bool,
    buffered: BytesMut,
    ended: bool,
}

impl Envelopes {
    fn message_envelope(&self, encoded: Bytes) -> Result<Bytes, tonic::Status> {
        if !self.json {
            return Ok(envelope(0, &encoded));
        }
        let message = DynamicMessage::decode(self.output.clone(), encoded)
            .map_err(|e| tonic::Status::internal(format!("cannot decode the upstream's message: {e}")))?;
        let json = crate::json_number::to_vec(&message)
            .map_err(|e| tonic::Status::internal(format!("the upstream's message has no JSON form: {e}")))?;
        Ok(envelope(0, &json))
    }

    fn end(&mut self, status: &tonic::Status, trailers: &HeaderMap) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.ended = true;
        Poll::Ready(Some(Ok(Frame::data(end_stream_of(status, trailers)))))
    }
}

impl http_body::Body for Envelopes {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = &mut *self;
        loop {
            if this.ended {
                return Poll::Ready(None);
            }
            match crate::stream_json::next_message(&mut this.buffered)
                .and_then(|message| message.map(|m| this.message_envelope(m)).transpose())
            {
                Ok(Some(envelope)) => return Poll::Ready(Some(Ok(Frame::data(envelope)))),
                Ok(None) => {}
                Err(status) => return this.end(&status, &HeaderMap::new()),
            }
            match ready!(Pin::new(&mut this.upstream).poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => this.buffered.extend_from_slice(&data),
                    Err(frame) => {
                        let Ok(trailers) = frame.into_trailers() else { continue };
                        let status = tonic::Status::from_header_map(&trailers)
                            .unwrap_or_else(|| tonic::Status::internal("the upstream's stream ended without a status"));
                        if status.code() == tonic::Code::Ok && !this.buffered.is_empty() {
                            let inside = tonic::Status::internal("the upstream's stream ended inside a message");
                            return this.end(&inside, &trailers);
                        }
                        return this.end(&status, &trailers);
                    }
                },
                Some(Err(status)) => return this.end(&status, &HeaderMap::new()),
                None => {
                    let status = tonic::Status::internal("the upstream's stream ended without a status");
                    return this.end(&status, &HeaderMap::new());
                }
            }
        }
    }
}
