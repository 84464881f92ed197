//! Native gRPC and gRPC-Web through the gateway: the request goes, as is and
//! streaming, to the upstream that owns its service (the first segment of
//! `/pkg.Service/Method`). gRPC-Web is translated to gRPC on the way in and
//! back on the way out (tonic-web).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::future::BoxFuture;
use resilience::CallError;
use resilience::direct::ResponseBody;
use tonic::body::Body;
use tower::Service;

use crate::Gateway;
use crate::guard::Admitted;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A body a passed-through answer is given in: the upstream's answer, or
/// an empty one for a status of the gateway's own.
pub trait AnswerBody: Default + Send + 'static {
    fn upstream(body: ResponseBody) -> Self;
}

/// For tonic's layers (gRPC-Web) and the Connect handlers.
impl AnswerBody for Body {
    fn upstream(body: ResponseBody) -> Self {
        Self::new(body)
    }
}

/// For native gRPC, which the server answers in axum's body: given it
/// straight, the answer is boxed once, not in tonic's body and again in
/// axum's, and the request goes on in the body it came in. Each box is one
/// more dynamic call for every frame, and a drop: with the server's own
/// box around the answer gone too (`platform::connections`), a call
/// passed through took about 4,000 fewer instructions, of 130,000
/// (callgrind, 2,000 and 4,000 calls on one connection).
impl AnswerBody for axum::body::Body {
    fn upstream(body: ResponseBody) -> Self {
        Self::new(body)
    }
}

/// Forwards a gRPC request to its upstream, after admission.
#[derive(Clone)]
pub struct PassThrough {
    gateway: Arc<Gateway>,
    client: Option<SocketAddr>,
    /// The admission of a call its caller admitted before it did any work
    /// for it (a Connect call, before its body is read and decoded).
    admitted: Option<Admitted>,
}

impl PassThrough {
    pub fn new(gateway: Arc<Gateway>, client: Option<SocketAddr>) -> Self {
        Self { gateway, client, admitted: None }
    }

    /// Forwards a call `admitted` already, without admitting it again.
    pub fn admitted(self, admitted: Admitted) -> Self {
        Self { admitted: Some(admitted), ..self }
    }

    /// Forwards `request`, in whatever body it came, and answers in `R`.
    pub fn forward<B, R>(
        self,
        mut request: http::Request<B>,
    ) -> impl Future<Output = http::Response<R>> + Send + 'static
    where
        B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<BoxError>,
        R: AnswerBody,
    {
        let Self { gateway, client, admitted } = self;
        // The catalog of the call's start serves all of it.
        let catalog = gateway.catalog();
        let grpc_method = catalog.grpc.get(request.uri().path());
        let upstream = gateway.upstreams.get(grpc_method.service());
        let client_timeout = request
            .headers()
            .get(platform::grpc_timeout::HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(platform::grpc_timeout::parse);
        let span = tracing::info_span!(
            "gateway",
            otel.name = grpc_method.path(),
            otel.kind = "server",
            rpc.system = "grpc",
            rpc.service = grpc_method.service(),
            rpc.method = grpc_method.method(),
        );
        platform::telemetry::set_parent_from_headers(&span, request.headers());
        let forwarded = async move {
            let Some(upstream) = upstream else {
                let service = grpc_method.service();
                return tonic::Status::unimplemented(format!("no upstream serves {service}")).into_http();
            };
            let admitted = match admitted {
                Some(admitted) => admitted,
                None => {
                    match crate::guard::admit(&gateway, &catalog, grpc_method.full_name(), request.headers(), client)
                        .await
                    {
                        Ok(admitted) => admitted,
                        Err(denied) => {
                            let mut response = denied.status().into_http();
                            response.headers_mut().extend(denied.headers());
                            return response;
                        }
                    }
                }
            };
            // A service credential never comes from outside.
            request.headers_mut().remove(platform::access::SERVICE_TOKEN_HEADER);
            // gRPC-Web text arrives base64-encoded, so a browser's
            // Content-Length is not the length of what is forwarded.
            request.headers_mut().remove(http::header::CONTENT_LENGTH);
            // A streamed body can be sent once: no retries once it has gone,
            // but the breaker, bulkhead and deadline (until the response
            // headers) apply. It goes to the first endpoint that has a
            // connection ready for it: one that cannot be reached leaves it
            // to the next try, as it leaves any call never sent.
            let unsent = std::sync::Mutex::new(Some(request));
            let (unsent, method) = (&unsent, grpc_method.full_name());
            let outcome = upstream
                .call_endpoint(grpc_method.path(), false, client_timeout, |endpoint, _remaining| {
                    async move {
                        let connection = endpoint.ready_to_send().await?;
                        let mut request = unsent.lock().expect("request lock").take().ok_or_else(|| {
                            // Only after a stream that could not be opened on
                            // a connection made ready: not worth holding a
                            // copy of every request for.
                            tonic::Status::unavailable(format!(
                                "{method} failed before it was sent, and cannot be sent again"
                            ))
                        })?;
                        // The attempt's CLIENT span is current: the service's span is its child.
                        platform::telemetry::inject_current_context(request.headers_mut());
                        let response = connection.exchange(request).await?;
                        // A trailers-only answer carries its status in the headers.
                        match tonic::Status::from_header_map(response.headers()) {
                            Some(status) if status.code() != tonic::Code::Ok => Err(status),
                            _ => Ok(response),
                        }
                    }
                })
                .await;
            match outcome {
                Ok(response) => {
                    let mut response = response.map(R::upstream);
                    admitted.write(response.headers_mut());
                    response
                }
                Err(CallError::Status(status)) => status.into_http(),
                Err(CallError::Refused(refusal)) => {
                    let mut response = refusal.status(&upstream.name).into_http();
                    refusal.write_retry_after(response.headers_mut());
                    response
                }
            }
        };
        resilience::in_span(span, forwarded)
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
        // A gRPC-Web text body decoding base64 still reports the exact size
        // of what it decodes from, which is not what it gives.
        let request = request.map(|body| {
            use http_body::Body as _;
            if body.size_hint().exact().is_some() {
                Body::new(http_body_util::StreamBody::new(http_body_util::BodyStream::new(body)))
            } else {
                body
            }
        });
        let pass_through = Self { gateway: self.gateway.clone(), client: self.client, admitted: self.admitted.take() };
        let forwarded = pass_through.forward(request);
        Box::pin(async move { Ok(forwarded.await) })
    }
}

/// Whether the request speaks gRPC-Web.
pub fn is_grpc_web(headers: &http::HeaderMap) -> bool {
    content_type(headers).is_some_and(|t| t.starts_with("application/grpc-web"))
}

fn content_type(headers: &http::HeaderMap) -> Option<&str> {
    headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok())
}
