//! The Connect protocol's unary calls, beside REST, gRPC and gRPC-Web, as
//! connectrpc's Vanguard serves them: a POST to `/pkg.Service/Method` whose
//! body is the request message, as `application/proto` or
//! `application/json`, over HTTP/1.1 or HTTP/2, or a GET with the message
//! in its query ([`crate::connect_get`]); the answer is the response
//! message in the same encoding, or a Connect error (JSON: `code`,
//! `message`, `details`) with its HTTP status. So a connect-es or
//! connect-python client works against the gateway unchanged.
//!
//! Each call becomes a gRPC request and goes through the pass-through: the
//! same admission (token, rate limit, access rules), upstream selection and
//! resilience as every other gRPC call. Server streams are
//! [`crate::connect_stream`]'s.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderValue, Method, header};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use prost::Message;
use prost_reflect::{DynamicMessage, MethodDescriptor};
use serde_json::json;
use tower::ServiceExt;

use crate::Gateway;
use crate::catalog::Catalog;
use crate::guard::Admitted;
use crate::passthrough::PassThrough;
use crate::transcode::BadRequest;
use crate::{connect_get, json_number};

pub(crate) const PROTO: &str = "application/proto";
pub(crate) const JSON: &str = "application/json";

/// A Connect unary call: the method it names, and the encoding of its
/// messages if it is posted (a GET names it in its query).
pub struct UnaryCall {
    method: MethodDescriptor,
    posted: Option<&'static str>,
}

/// The call a request is if it is a Connect unary call: a POST of
/// `application/proto` or `application/json` to the gRPC path of a method
/// in `catalog`, or a GET of that path with the message in its query.
pub fn unary_call(catalog: &Catalog, request: &http::Request<Body>) -> Option<UnaryCall> {
    if connect_get::is_get(request) {
        let method = method_named(catalog, request.uri().path())?;
        return Some(UnaryCall { method, posted: None });
    }
    let (method, encoding) = method_posted(catalog, request, &[PROTO, JSON])?;
    Some(UnaryCall { method, posted: Some(encoding) })
}

/// The method of `catalog` a POST names by its gRPC path, and which of the
/// `accepted` content types the POST is.
pub(crate) fn method_posted(
    catalog: &Catalog,
    request: &http::Request<Body>,
    accepted: &[&'static str],
) -> Option<(MethodDescriptor, &'static str)> {
    if request.method() != Method::POST {
        return None;
    }
    let content_type = request.headers().get(header::CONTENT_TYPE)?.to_str().ok()?;
    let essence = content_type.split(';').next()?.trim();
    let content_type = accepted.iter().copied().find(|accepted| *accepted == essence)?;
    Some((method_named(catalog, request.uri().path())?, content_type))
}

/// The method of `catalog` whose gRPC path is `path`.
fn method_named(catalog: &Catalog, path: &str) -> Option<MethodDescriptor> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    catalog.pool.get_service_by_name(service)?.methods().find(|m| m.name() == method)
}

/// Serves one Connect unary call.
pub async fn handle(
    gateway: Arc<Gateway>,
    UnaryCall { method, posted }: UnaryCall,
    request: http::Request<Body>,
    client: Option<SocketAddr>,
) -> Response {
    if method.is_client_streaming() || method.is_server_streaming() {
        let why = format!("{} streams: call it with the Connect streaming protocol or gRPC", method.full_name());
        return error(tonic::Code::Unimplemented, &why, &[]);
    }
    let (parts, body) = request.into_parts();
    // Admitted before its body is read and decoded: a caller the call is
    // not for, or past its rate, costs no more than its headers.
    let admitted = match admit(&gateway, &method, &parts.headers, client, from_status).await {
        Ok(admitted) => admitted,
        Err(refused) => return refused,
    };
    let (encoding, body) = match posted {
        Some(encoding) => match posted_message(&parts, body, gateway.max_body_bytes).await {
            Ok(body) => (encoding, body),
            Err(refused) => return refused,
        },
        None => match connect_get::message(&method, parts.uri.query().unwrap_or_default(), gateway.max_body_bytes) {
            Ok(message) => message,
            Err(refused) => return refused.into_response(),
        },
    };
    // Decoded within the budget of bodies being turned into messages.
    let transcoding = match gateway.transcoding.enter(body.len()).await {
        Ok(transcoding) => transcoding,
        Err(busy) => return busy.refusal(from_status),
    };
    let message = match encoding {
        // Checked here, as connect-go does: the upstream would call a
        // malformed message INTERNAL (tonic, as grpc-go), a 500 for the
        // caller's mistake.
        PROTO => match DynamicMessage::decode(method.input(), body.clone()) {
            Ok(_) => body,
            Err(e) => {
                let why = format!("the request message is not a {}: {e}", method.input().full_name());
                return error(tonic::Code::InvalidArgument, &why, &[]);
            }
        },
        _ => match from_json(&method, &body) {
            Ok(message) => Bytes::from(message.encode_to_vec()),
            Err(refused) => {
                let details: Vec<prost_types::Any> = refused.detail().iter().map(bad_request_any).collect();
                return error(tonic::Code::InvalidArgument, &refused.message, &details);
            }
        },
    };
    drop(transcoding);
    let Some(framed) = envelope(0, &message) else {
        return error(tonic::Code::ResourceExhausted, "a request message of 4 GiB or more", &[]);
    };
    let grpc = match grpc_request(&parts, framed) {
        Ok(grpc) => grpc,
        Err(why) => return error(tonic::Code::InvalidArgument, &why, &[]),
    };
    let response = PassThrough::new(gateway, client).admitted(admitted).oneshot(grpc).await;
    let (parts, body) = response.unwrap_or_else(|never| match never {}).into_parts();
    let collected = match body.collect().await {
        Ok(collected) => collected,
        Err(status) => return from_status(&status),
    };
    let trailers = collected.trailers().cloned().unwrap_or_default();
    // A trailers-only answer (an error) carries its status in the headers.
    let status = tonic::Status::from_header_map(&trailers).or_else(|| tonic::Status::from_header_map(&parts.headers));
    if let Some(status) = status.filter(|s| s.code() != tonic::Code::Ok) {
        let mut response = from_status(&status);
        response.headers_mut().extend(retry_after(&parts.headers));
        return response;
    }
    let framed = collected.to_bytes();
    let Some(payload) = framed.get(5..).filter(|_| framed[0] == 0) else {
        return error(tonic::Code::Internal, "the upstream's answer is not one uncompressed gRPC message", &[]);
    };
    let body = match answer_body(encoding, &method, payload) {
        Ok(body) => body,
        Err(why) => return error(tonic::Code::Internal, &why, &[]),
    };
    let mut response = ([(header::CONTENT_TYPE, encoding)], body).into_response();
    let headers = response.headers_mut();
    for (name, value) in parts.headers.iter().filter(|(name, _)| passed_on(name)) {
        headers.append(name, value.clone());
    }
    // A unary Connect answer sends its trailers as `trailer-` headers.
    for (name, value) in trailers.iter().filter(|(name, _)| passed_on(name)) {
        if let Ok(name) = http::HeaderName::from_bytes(format!("trailer-{name}").as_bytes()) {
            headers.append(name, value.clone());
        }
    }
    response
}

/// Admits a Connect call of `method` (see [`crate::guard::admit`]), or
/// answers why not: its status as `refusal` writes it (a unary call's
/// error, a stream's end), with the refusal's headers. A call its upstream
/// would refuse now (every breaker open) is refused here too: one that
/// cannot go costs no reading or decoding of its body.
pub(crate) async fn admit(
    gateway: &Gateway,
    method: &MethodDescriptor,
    headers: &http::HeaderMap,
    client: Option<SocketAddr>,
    refusal: impl FnOnce(&tonic::Status) -> Response,
) -> Result<Admitted, Response> {
    let catalog = gateway.catalog();
    let admitted = match crate::guard::admit(gateway, &catalog, method.full_name(), headers, client).await {
        Ok(admitted) => admitted,
        Err(denied) => {
            let mut response = refusal(&denied.status());
            response.headers_mut().extend(denied.headers());
            return Err(response);
        }
    };
    if let Some(upstream) = gateway.upstreams.get(method.parent_service().full_name())
        && let Some(refused) = upstream.refusing()
    {
        let mut response = refusal(&refused.status(&upstream.name));
        refused.write_retry_after(response.headers_mut());
        return Err(response);
    }
    Ok(admitted)
}

/// The `Retry-After` of a pass-through's refusal (a full bulkhead), for a
/// Connect answer rebuilt from its status: empty when it has none.
pub(crate) fn retry_after(headers: &http::HeaderMap) -> http::HeaderMap {
    headers.get(header::RETRY_AFTER).map(|value| (header::RETRY_AFTER, value.clone())).into_iter().collect()
}

/// The request message a POST carries: its body, uncompressed and within
/// `limit`.
async fn posted_message(parts: &http::request::Parts, body: Body, limit: usize) -> Result<Bytes, Response> {
    let coding = parts.headers.get(header::CONTENT_ENCODING).map(|v| String::from_utf8_lossy(v.as_bytes()));
    // Read as it is, a gzipped body would be refused as malformed JSON.
    if let Some(coding) = coding.filter(|c| !c.eq_ignore_ascii_case("identity")) {
        let why = format!("compressed requests are not accepted (Content-Encoding: {coding}): send it uncompressed");
        return Err(error(tonic::Code::Unimplemented, &why, &[]));
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(error(tonic::Code::ResourceExhausted, &format!("request body larger than {limit} bytes"), &[]))
        }
        Err(e) => Err(error(tonic::Code::InvalidArgument, &format!("cannot read the request body: {e}"), &[])),
    }
}

/// Whether an upstream's header or trailer goes on to a Connect caller:
/// not gRPC's own, nor the framing's.
pub(crate) fn passed_on(name: &http::HeaderName) -> bool {
    !name.as_str().starts_with("grpc-") && name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH
}

/// The upstream's answer `payload` in the call's `encoding`: as it is, or
/// as JSON with protojson's numbers, as connect-go writes them.
fn answer_body(encoding: &str, method: &MethodDescriptor, payload: &[u8]) -> Result<Bytes, String> {
    if encoding == PROTO {
        return Ok(Bytes::copy_from_slice(payload));
    }
    let message = DynamicMessage::decode(method.output(), payload)
        .map_err(|e| format!("the upstream's answer does not decode: {e}"))?;
    // A value its JSON form cannot show (a Timestamp after the year 9999)
    // is the upstream's fault, told as such.
    let json = json_number::to_vec(&message).map_err(|e| format!("the upstream's answer has no JSON form: {e}"))?;
    Ok(Bytes::from(json))
}

/// The gRPC request a Connect call stands for: the same path and headers,
/// its messages `framed` as the body, `Connect-Timeout-Ms` as `grpc-timeout`.
pub(crate) fn grpc_request(
    parts: &http::request::Parts,
    framed: Bytes,
) -> Result<http::Request<tonic::body::Body>, String> {
    let mut request = http::Request::new(tonic::body::Body::new(http_body_util::Full::new(framed)));
    *request.method_mut() = Method::POST;
    // The method's path alone: a GET's query carried the message.
    *request.uri_mut() = parts.uri.path().parse().map_err(|e| format!("invalid path: {e}"))?;
    *request.version_mut() = http::Version::HTTP_2;
    for (name, value) in &parts.headers {
        let skipped = [header::CONTENT_TYPE, header::CONTENT_LENGTH, header::ACCEPT_ENCODING, header::CONNECTION];
        if !skipped.contains(name) && !name.as_str().starts_with("connect-") {
            request.headers_mut().append(name, value.clone());
        }
    }
    let headers = request.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers.insert(header::TE, HeaderValue::from_static("trailers"));
    if let Some(timeout) = parts.headers.get("connect-timeout-ms") {
        let millis = timeout.to_str().ok().and_then(|v| v.parse::<u64>().ok()).filter(|ms| *ms < 100_000_000);
        let millis = millis.ok_or("invalid Connect-Timeout-Ms: expected at most 8 digits of milliseconds")?;
        headers.insert(platform::grpc_timeout::HEADER, HeaderValue::from_str(&format!("{millis}m")).expect("digits"));
    }
    Ok(request)
}

/// `payload` with its 5-byte prefix: `flags`, then its length. gRPC frames
/// its messages so, and Connect's streams their envelopes. `None` for a
/// payload of 4 GiB or more, which no length can say.
pub(crate) fn envelope(flags: u8, payload: &[u8]) -> Option<Bytes> {
    let length = u32::try_from(payload.len()).ok()?;
    let mut out = BytesMut::with_capacity(5 + payload.len());
    out.put_u8(flags);
    out.put_u32(length);
    out.put_slice(payload);
    Some(out.freeze())
}

pub(crate) fn bad_request_any(detail: &tonic_types::pb::BadRequest) -> prost_types::Any {
    prost_types::Any { type_url: "type.googleapis.com/google.rpc.BadRequest".to_owned(), value: detail.encode_to_vec() }
}

/// A gRPC status as a Connect error, with its `google.rpc` details.
fn from_status(status: &tonic::Status) -> Response {
    error(status.code(), status.message(), &status_details(status))
}

/// The `google.rpc` details a status carries.
pub(crate) fn status_details(status: &tonic::Status) -> Vec<prost_types::Any> {
    if status.details().is_empty() {
        return Vec::new();
    }
    tonic_types::pb::Status::decode(status.details()).map(|s| s.details).unwrap_or_default()
}

pub(crate) fn error(code: tonic::Code, message: &str, details: &[prost_types::Any]) -> Response {
    let body = error_json(code, message, details);
    // Connect gives each code the HTTP status grpc-gateway gives it.
    let status = platform::error_code::http_status(code);
    (status, [(header::CONTENT_TYPE, JSON)], body.to_string()).into_response()
}

/// A Connect error: `code`, `message`, and each detail's type and bytes.
pub(crate) fn error_json(code: tonic::Code, message: &str, details: &[prost_types::Any]) -> serde_json::Value {
    let details: Vec<serde_json::Value> = details
        .iter()
        .map(|detail| {
            let kind = detail.type_url.rsplit('/').next().unwrap_or_default();
            let value = base64::engine::general_purpose::STANDARD_NO_PAD.encode(&detail.value);
            json!({ "type": kind, "value": value })
        })
        .collect();
    json!({ "code": connect_code(code), "message": message, "details": details })
}

/// The request message of `method` from a Connect JSON body.
pub(crate) fn from_json(method: &MethodDescriptor, body: &[u8]) -> Result<DynamicMessage, BadRequest> {
    let input = method.input();
    let refused = |why: String| BadRequest::new(format!("invalid JSON request: {why}"));
    let json = crate::strict_json::parse(body).map_err(|e| refused(e.to_string()))?;
    if let serde_json::Value::Object(object) = &json {
        crate::strict_json::one_name_per_field(object, &input).map_err(refused)?;
    }
    crate::transcode::message_from_json(input, json)
}

/// The Connect name of a gRPC code (its lower snake case).
fn connect_code(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "ok",
        Cancelled => "canceled",
        Unknown => "unknown",
        InvalidArgument => "invalid_argument",
        DeadlineExceeded => "deadline_exceeded",
        NotFound => "not_found",
        AlreadyExists => "already_exists",
        PermissionDenied => "permission_denied",
        ResourceExhausted => "resource_exhausted",
        FailedPrecondition => "failed_precondition",
        Aborted => "aborted",
        OutOfRange => "out_of_range",
        Unimplemented => "unimplemented",
        Internal => "internal",
        Unavailable => "unavailable",
        DataLoss => "data_loss",
        Unauthenticated => "unauthenticated",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost_reflect::{DescriptorPool, Value};

    fn method(full_name: &str) -> MethodDescriptor {
        let pool = DescriptorPool::decode(contract::FILE_DESCRIPTOR_SET).unwrap();
        let (service, name) = full_name.rsplit_once('.').unwrap();
        pool.get_service_by_name(service).unwrap().methods().find(|m| m.name() == name).unwrap()
    }

    /// `method`'s answer with `field` of its one message field set.
    fn answer(method: &MethodDescriptor, inner: &str, field: &str, value: Value) -> Vec<u8> {
        let mut message = DynamicMessage::new(method.output());
        let inner_field = method.output().get_field_by_name(inner).unwrap();
        let mut inner_message = DynamicMessage::new(inner_field.kind().as_message().unwrap().clone());
        inner_message.set_field_by_name(field, value);
        message.set_field(&inner_field, Value::Message(inner_message));
        message.encode_to_vec()
    }

    #[test]
    fn a_json_answer_has_protojson_numbers() {
        let get = method("shop.products.v1.ProductService.GetProduct");
        let body = answer_body(JSON, &get, &answer(&get, "product", "price", Value::F64(10.0))).unwrap();
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert!(text.contains(r#""price":10}"#), "{text}");
    }

    #[test]
    fn an_answer_json_cannot_show_is_the_upstreams_fault_not_a_panic() {
        let get = method("shop.users.v1.UserService.GetUser");
        let descriptor = get.output().get_field_by_name("user").unwrap().kind().as_message().unwrap().clone();
        let timestamp = descriptor.get_field_by_name("created_at").unwrap().kind().as_message().unwrap().clone();
        let mut never = DynamicMessage::new(timestamp);
        never.set_field_by_name("seconds", Value::I64(i64::MAX));
        let payload = answer(&get, "user", "created_at", Value::Message(never));
        let why = answer_body(JSON, &get, &payload).unwrap_err();
        assert!(why.starts_with("the upstream's answer has no JSON form: "), "{why}");
        // In binary it goes as it came.
        assert_eq!(answer_body(PROTO, &get, &payload).unwrap(), payload);
    }
}
