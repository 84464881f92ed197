//! Native gRPC and gRPC-Web through the gateway: the request goes, as is and
//! streaming, to the upstream that owns its service (the first segment of
//! `/pkg.Service/Method`). gRPC-Web is translated to gRPC on the way in and
//! back on the way out (tonic-web).

use std::convert::Infallible;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use tonic::body::Body;
use tower::{Service, ServiceExt};

use crate::upstream::{CallError, Upstreams};

/// Forwards a gRPC request to its upstream.
#[derive(Clone)]
pub struct PassThrough {
    upstreams: Upstreams,
}

impl PassThrough {
    pub fn new(upstreams: Upstreams) -> Self {
        Self { upstreams }
    }
}

impl Service<http::Request<Body>> for PassThrough {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let service = request.uri().path().trim_start_matches('/').split('/').next().unwrap_or_default().to_owned();
        let upstream = self.upstreams.get(&service);
        let client_timeout =
            request.headers().get("grpc-timeout").and_then(|v| v.to_str().ok()).and_then(crate::headers::parse_timeout);
        Box::pin(async move {
            let Some(upstream) = upstream else {
                return Ok(tonic::Status::unimplemented(format!("no upstream serves {service}")).into_http());
            };
            // A streamed body can be sent once: no retries, but the breaker,
            // bulkhead and deadline (until the response headers) apply.
            let mut request = Some(request);
            let outcome = upstream
                .call(false, client_timeout, |channel, _remaining| {
                    let request = request.take();
                    async move {
                        let request = request.ok_or_else(|| tonic::Status::internal("request already sent"))?;
                        let response = channel
                            .oneshot(request)
                            .await
                            .map_err(|e| tonic::Status::unavailable(format!("upstream unavailable: {e}")))?;
                        // A trailers-only answer carries its status in the headers.
                        match tonic::Status::from_header_map(response.headers()) {
                            Some(status) if status.code() != tonic::Code::Ok => Err(status),
                            _ => Ok(response),
                        }
                    }
                })
                .await;
            Ok(match outcome {
                Ok(response) => response,
                Err(CallError::Status(status)) => status.into_http(),
                Err(CallError::Refused(refusal)) => {
                    let mut response = refusal.status(&upstream.name).into_http();
                    if let Some(seconds) = refusal.retry_after() {
                        response.headers_mut().insert(http::header::RETRY_AFTER, seconds.into());
                    }
                    response
                }
            })
        })
    }
}

/// Whether the request speaks gRPC-Web.
pub fn is_grpc_web(headers: &http::HeaderMap) -> bool {
    content_type(headers).is_some_and(|t| t.starts_with("application/grpc-web"))
}

/// Whether the request speaks native gRPC.
pub fn is_grpc(headers: &http::HeaderMap) -> bool {
    content_type(headers).is_some_and(|t| t.starts_with("application/grpc") && !t.starts_with("application/grpc-web"))
}

fn content_type(headers: &http::HeaderMap) -> Option<&str> {
    headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok())
}
