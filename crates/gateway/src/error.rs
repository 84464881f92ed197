//! Errors as grpc-gateway v2 writes them: the HTTP status from the gRPC
//! code (the platform's table) and the body
//! `{"code": <grpc code>, "message": "...", "details": [<Any JSON>...]}`.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use prost_reflect::{DescriptorPool, DynamicMessage};
use serde_json::{Value as Json, json};

/// The error response for `status`; `details` are decoded with `pool`
/// (which holds the google.rpc detail types) into `@type`-tagged JSON.
pub fn status_response(status: &tonic::Status, pool: &DescriptorPool) -> Response {
    let details = decode_details(status, pool);
    let mut response = error_response(status.code(), status.message(), details);
    // A service that says when to try again (google.rpc.RetryInfo) says it
    // to HTTP clients too.
    use tonic_types::StatusExt;
    if let Some(delay) = status.get_details_retry_info().and_then(|info| info.retry_delay) {
        let seconds = delay.as_secs() + u64::from(delay.subsec_nanos() > 0);
        response.headers_mut().insert(header::RETRY_AFTER, seconds.max(1).into());
    }
    response
}

/// `status` as the body of its error response: `{"code", "message", "details"}`.
pub fn status_json(status: &tonic::Status, pool: &DescriptorPool) -> Json {
    error_body(status.code(), status.message(), decode_details(status, pool))
}

fn error_body(code: tonic::Code, message: &str, details: Vec<Json>) -> Json {
    json!({ "code": code as i32, "message": message, "details": details })
}

/// An error the gateway raises itself (bad request, unknown route, ...).
pub fn error_response(code: tonic::Code, message: &str, details: Vec<Json>) -> Response {
    let http_status = platform::error_code::http_status(code);
    let mut response = (http_status, axum::Json(error_body(code, message, details))).into_response();
    if code == tonic::Code::Unauthenticated {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

/// 405 with `Allow`, for a known path asked with another method (the
/// HTTP-correct choice; grpc-gateway answers 501).
pub fn method_not_allowed(allowed: &[http::Method]) -> Response {
    let mut response = error_response(tonic::Code::Unimplemented, "method not allowed for this path", Vec::new());
    *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    let mut allow = allowed.iter().map(http::Method::as_str).collect::<Vec<_>>();
    // A GET route answers HEAD too.
    if allowed.contains(&http::Method::GET) {
        allow.push("HEAD");
    }
    let allow = allow.join(", ");
    if let Ok(value) = HeaderValue::from_str(&allow) {
        response.headers_mut().insert(header::ALLOW, value);
    }
    response
}

fn decode_details(status: &tonic::Status, pool: &DescriptorPool) -> Vec<Json> {
    if status.details().is_empty() {
        return Vec::new();
    }
    let Some(descriptor) = pool.get_message_by_name("google.rpc.Status") else { return Vec::new() };
    let Ok(decoded) = DynamicMessage::decode(descriptor, status.details()) else { return Vec::new() };
    match crate::transcode::to_json(&decoded) {
        Json::Object(mut object) => match object.remove("details") {
            Some(Json::Array(details)) => details,
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}
