//! Native gRPC and gRPC-Web through the gateway: the request goes, as is and
//! streaming, to the upstream that owns its service (the first segment of
//! `/pkg.Service/Method`). gRPC-Web is translated to gRPC on the way in and
//! back on the way out (tonic-web).

use std::convert::Infallible;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use tonic::body::Body;
use tower::{Service, ServiceExt};

use crate::upstream::Upstreams;

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
        let channel = self.upstreams.channel(&service);
        Box::pin(async move {
            let Some(channel) = channel else {
                return Ok(tonic::Status::unimplemented(format!("no upstream serves {service}")).into_http());
            };
            match channel.oneshot(request).await {
                Ok(response) => Ok(response),
                Err(error) => Ok(tonic::Status::unavailable(format!("{service} is unavailable: {error}")).into_http()),
            }
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
