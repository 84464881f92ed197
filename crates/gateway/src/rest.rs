//! The REST/JSON side: find the route, build the request message, call the
//! upstream over gRPC, render the response or the error.

use std::net::SocketAddr;
use std::time::Instant;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{Method, StatusCode, header};
use http_body_util::{BodyExt, LengthLimitError, Limited};

use crate::Gateway;
use crate::catalog::Catalog;
use crate::error::{error_response, method_not_allowed, status_response};
use crate::routes::{Lookup, Route};
use crate::transcode::{BadRequest, request_frames};
use resilience::direct::Failed;
use resilience::{CallError, Refusal};

// Built once: a name given as a string is parsed again on every lookup.
const METHOD_OVERRIDE: http::HeaderName = http::HeaderName::from_static("x-http-method-override");

/// Serves a REST request by the routes and rules of `catalog`.
pub async fn handle(
    gateway: &Gateway,
    catalog: &Catalog,
    request: http::Request<Body>,
    client: Option<SocketAddr>,
) -> Response {
    let started = Instant::now();
    // A client that can only POST may name the method it means.
    let method = match request.headers().get(METHOD_OVERRIDE).and_then(|v| v.to_str().ok()) {
        Some(name) if request.method() == Method::POST => {
            Method::from_bytes(name.trim().to_ascii_uppercase().as_bytes()).unwrap_or(Method::POST)
        }
        _ => request.method().clone(),
    };
    let path = request.uri().path().to_owned();
    // HEAD is GET without the body (RFC 9110 §9.3.2): routed as GET here;
    // `dispatch` takes the body off the answer.
    let routed = if method == Method::HEAD { &Method::GET } else { &method };
    let (route, bindings) = match catalog.routes.lookup(routed, &path) {
        Lookup::Found { route, bindings } => (route, bindings),
        Lookup::NotFound => {
            return count(
                None,
                &method,
                error_response(tonic::Code::NotFound, &format!("no route for {method} {path}"), Vec::new()),
                started,
            );
        }
        Lookup::WrongMethod(allowed) => return count(None, &method, method_not_allowed(&allowed), started),
        Lookup::BadEscape(error) => return count(None, &method, bad_request(&error.to_string()), started),
    };
    // An HTTP SERVER span (OpenTelemetry HTTP semantic conventions 1.37);
    // the gRPC call it makes is the CLIENT span beneath it.
    let span = tracing::info_span!(
        "gateway",
        otel.name = route.names.span.as_str(),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = method.as_str(),
        http.route = route.names.label.as_ref(),
        http.response.status_code = tracing::field::Empty,
        url.path = request.uri().path(),
    );
    platform::telemetry::set_parent_from_headers(&span, request.headers());
    let admitted =
        match crate::guard::admit(gateway, catalog, &route.names.full_method, request.headers(), client).await {
            Ok(admitted) => admitted,
            Err(denied) => {
                let mut response = status_response(&denied.status(), &catalog.pool);
                response.headers_mut().extend(denied.headers());
                record_status(&span, &response);
                return count(Some(route), &method, response, started);
            }
        };
    let mut response = resilience::in_span(&span, call(gateway, catalog, route, bindings, request, client)).await;
    admitted.write(response.headers_mut());
    record_status(&span, &response);
    count(Some(route), &method, response, started)
}

async fn call(
    gateway: &Gateway,
    catalog: &Catalog,
    route: &Route,
    bindings: Vec<crate::template::Binding>,
    request: http::Request<Body>,
    client: Option<SocketAddr>,
) -> Response {
    let (parts, body) = request.into_parts();
    if let Some(content_type) = parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok())
        && !is_json(content_type, route.method.is_client_streaming())
    {
        let message = format!("unsupported content type {content_type:?}: send application/json");
        let mut response = error_response(tonic::Code::InvalidArgument, &message, Vec::new());
        *response.status_mut() = StatusCode::UNSUPPORTED_MEDIA_TYPE;
        return response;
    }
    let service = route.method.parent_service().full_name();
    let Some(upstream) = gateway.upstreams.get(service) else {
        return error_response(
            tonic::Code::Unavailable,
            &format!("no upstream is configured for {service}"),
            Vec::new(),
        );
    };
    // A stream's framing; read only for a stream (a unary answer has none).
    let framing = if route.method.is_server_streaming() {
        crate::stream_json::Framing::asked_by(&parts.headers)
    } else {
        crate::stream_json::Framing::Lines
    };
    // A call that cannot go now costs no reading or parsing of its body.
    if let Some(refusal) = upstream.refusing() {
        return refused_call(route, &refusal, &upstream.name, &catalog.pool, framing);
    }
    let body = match Limited::new(body, gateway.max_body_bytes).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => {
            let message = format!("request body larger than {} bytes", gateway.max_body_bytes);
            let mut response = error_response(tonic::Code::InvalidArgument, &message, Vec::new());
            *response.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
            return response;
        }
        Err(error) => return bad_request(&format!("cannot read the request body: {error}")),
    };
    let timeout = match parts
        .headers
        .get(platform::grpc_timeout::HEADER)
        .map(|v| v.to_str().ok().and_then(platform::grpc_timeout::parse))
    {
        None => None,
        Some(Some(timeout)) => Some(timeout),
        Some(None) => {
            return bad_request("invalid Grpc-Timeout header: expected a number and a unit (H, M, S, m, u, n)");
        }
    };
    // Framed once for every attempt, within the budget of bodies being
    // turned into messages (`crate::transcoding`).
    let transcoding = match gateway.transcoding.enter(body.len()).await {
        Ok(transcoding) => transcoding,
        Err(busy) => return busy.refusal(|status| error_response(status.code(), status.message(), Vec::new())),
    };
    let messages = match request_frames(route, bindings, parts.uri.query(), &body) {
        Ok(framed) => framed,
        Err(refused) => return refused_request(&refused),
    };
    drop(transcoding);

    let metadata = crate::headers::request_metadata(&parts.headers, &parts.uri, client);
    // Trailer metadata goes only to a caller that takes trailers, as
    // grpc-gateway sends it; a stream's goes to none (grpc-gateway's either).
    let accepts_trailers = !route.method.is_server_streaming() && crate::headers::accepts_trailers(&parts.headers);
    let path = &route.names.grpc_path;
    let outcome = if route.method.is_server_streaming() {
        // Tried again only until the stream starts, as any call: the
        // deadline and the breaker see its headers, not its end.
        upstream
            .call_endpoint(path.path(), route.is_idempotent(), timeout, |endpoint, remaining| {
                let mut metadata = metadata.clone();
                platform::telemetry::inject_current_context_into_metadata(&mut metadata);
                let messages = messages.clone();
                async move {
                    let (headers, body) =
                        endpoint.server_stream(path, metadata.into_headers(), &messages, remaining).await?;
                    Ok::<_, Failed>(Answered::Stream(headers, body))
                }
            })
            .await
    } else {
        upstream
            .call_endpoint(path.path(), route.is_idempotent(), timeout, |endpoint, remaining| {
                // The attempt's own CLIENT span is the current one: the service's span is its child.
                let mut metadata = metadata.clone();
                platform::telemetry::inject_current_context_into_metadata(&mut metadata);
                let messages = messages.clone();
                async move {
                    // Failed, not only its status: an error's header metadata goes to the caller too.
                    let answer = endpoint.unary(path, metadata.into_headers(), &messages, remaining).await?;
                    // Written here, within the attempt: an answer that does not decode is its failure.
                    let json = crate::response_json::answer_json(route, answer.message)
                        .map_err(|e| tonic::Status::internal(format!("cannot decode the upstream's response: {e}")))?;
                    Ok::<_, Failed>(Answered::Message { headers: answer.headers, trailers: answer.trailers, json })
                }
            })
            .await
    };
    match outcome {
        Ok(Answered::Message { headers, trailers, json }) => {
            let mut response = ([(header::CONTENT_TYPE, "application/json")], json).into_response();
            crate::headers::response_headers(headers, response.headers_mut());
            if accepts_trailers {
                response = crate::headers::with_trailers(response, trailers);
            }
            response
        }
        Ok(Answered::Stream(headers, body)) => {
            let pool = catalog.pool.clone();
            let mut lines = crate::stream_json::JsonLines::new(route.clone(), pool, framing, &headers, body);
            let status = lines.start().await.map_or(StatusCode::OK, platform::error_code::http_status);
            let mut response = (status, Body::new(lines)).into_response();
            framing.write_headers(response.headers_mut());
            crate::headers::response_headers(headers, response.headers_mut());
            response
        }
        Err(CallError::Status(Failed { status, headers })) => {
            let mut response = failed(route, &status, &catalog.pool, framing);
            crate::headers::response_headers(headers, response.headers_mut());
            // An error's metadata came with its status, in the trailers (or
            // a trailers-only answer's headers): trailer metadata.
            if accepts_trailers {
                crate::headers::with_trailers(response, status.metadata().clone().into_headers())
            } else {
                response
            }
        }
        Err(CallError::Refused(refusal)) => refused_call(route, &refusal, &upstream.name, &catalog.pool, framing),
    }
}

/// The answer to a call the stack refused before any attempt (every
/// breaker open, the bulkhead full), with when to try again.
fn refused_call(
    route: &Route,
    refusal: &Refusal,
    upstream: &str,
    pool: &prost_reflect::DescriptorPool,
    framing: crate::stream_json::Framing,
) -> Response {
    let mut response = failed(route, &refusal.status(upstream), pool, framing);
    refusal.write_retry_after(response.headers_mut());
    response
}

/// The answer to a call that failed: the error body, or for a stream its
/// one `error` line (or event), as a stream that fails later ends.
fn failed(
    route: &Route,
    status: &tonic::Status,
    pool: &prost_reflect::DescriptorPool,
    framing: crate::stream_json::Framing,
) -> Response {
    if route.method.is_server_streaming() {
        return crate::stream_json::failed_before_start(status, pool, framing);
    }
    status_response(status, pool)
}

/// What an upstream answered: one message, or the start of a stream.
enum Answered {
    /// The message as the REST answer's JSON body.
    Message {
        headers: http::HeaderMap,
        trailers: http::HeaderMap,
        json: Vec<u8>,
    },
    Stream(http::HeaderMap, resilience::direct::ResponseBody),
}

/// The response's status on the server span; a 5xx marks it failed (a 4xx
/// is the client's, not the server's, error).
fn record_status(span: &tracing::Span, response: &Response) {
    span.record("http.response.status_code", i64::from(response.status().as_u16()));
    if response.status().is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
}

/// Whether a body of `content_type` is JSON; for a client stream, JSON
/// objects one after another is JSON Lines too (NDJSON's type).
fn is_json(content_type: &str, streamed: bool) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence == "application/json"
        || essence.ends_with("+json")
        || (streamed && matches!(essence.as_str(), "application/x-ndjson" | "application/jsonl"))
}

fn bad_request(message: &str) -> Response {
    error_response(tonic::Code::InvalidArgument, message, Vec::new())
}

/// A request refused before it was sent, with a `google.rpc.BadRequest`
/// detail naming the field, as the services' refusals have one.
fn refused_request(refused: &BadRequest) -> Response {
    let details = refused.violation.iter().map(|violation| {
        serde_json::json!({
            "@type": "type.googleapis.com/google.rpc.BadRequest",
            "fieldViolations": [{ "field": violation.field, "description": violation.description }],
        })
    });
    error_response(tonic::Code::InvalidArgument, &refused.message, details.collect())
}

/// Records the request in the gateway's metrics and passes the response on.
fn count(route: Option<&Route>, method: &Method, response: Response, started: Instant) -> Response {
    crate::metrics::request_answered(route, method, response.status(), started.elapsed());
    response
}
