//! A tower layer that observes every gRPC call a server handles: one span per
//! call (a child of the caller's W3C trace context) and the per-RPC metrics
//! `grpc_server_handled_total{grpc_service,grpc_method,grpc_code}` and
//! `grpc_server_handling_seconds{grpc_service,grpc_method}`.
//!
//! A gRPC status arrives in the response headers (trailers-only responses,
//! usually errors) or in the trailers at the end of the body (every OK), so
//! the outcome is recorded when the body ends, not when the headers leave.
//!
//! A method label names only a method the server's descriptors declare;
//! any other (`/pkg.Service/Anything`, answered UNIMPLEMENTED) is counted as
//! `grpc_method="unknown"`. Labelled by the name the caller sent, every
//! made-up method name became new series kept for the life of the process:
//! memory and `/metrics` output any caller could grow without bound.

use std::collections::HashSet;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use http_body::{Body, Frame, SizeHint};
use tower::{Layer, Service};
use tracing::Instrument;

/// The label a method the server does not declare is counted under.
const UNKNOWN_METHOD: &str = "unknown";

/// Wraps a gRPC router; see the module docs.
#[derive(Debug, Clone)]
pub struct RpcTelemetryLayer {
    known: Arc<KnownMethods>,
}

impl RpcTelemetryLayer {
    /// Labels the methods `known` declares by name, any other as unknown.
    pub fn new(known: KnownMethods) -> Self {
        Self { known: Arc::new(known) }
    }
}

impl<S> Layer<S> for RpcTelemetryLayer {
    type Service = RpcTelemetry<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcTelemetry { inner, known: self.known.clone() }
    }
}

/// The gRPC paths (`/pkg.Service/Method`) a server's descriptor sets declare.
#[derive(Debug, Default)]
pub struct KnownMethods(HashSet<String>);

impl KnownMethods {
    /// Every method of every service in these encoded `FileDescriptorSet`s.
    /// A set that does not decode declares nothing (the server's reflection
    /// refuses it at start).
    pub fn from_descriptor_sets<'a>(sets: impl IntoIterator<Item = &'a [u8]>) -> Self {
        use prost_reflect::prost::Message as _;
        let mut paths = HashSet::new();
        for set in sets {
            let Ok(set) = prost_reflect::prost_types::FileDescriptorSet::decode(set) else { continue };
            for file in &set.file {
                let package = file.package();
                for service in &file.service {
                    let service_name = match package {
                        "" => service.name().to_owned(),
                        package => format!("{package}.{}", service.name()),
                    };
                    paths.extend(service.method.iter().map(|method| format!("/{service_name}/{}", method.name())));
                }
            }
        }
        Self(paths)
    }

    fn contains(&self, path: &str) -> bool {
        self.0.contains(path)
    }
}

#[derive(Debug, Clone)]
pub struct RpcTelemetry<S> {
    inner: S,
    known: Arc<KnownMethods>,
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for RpcTelemetry<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<ObservedBody<ResBody>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let (service, mut method) = split_path(request.uri().path());
        if !self.known.contains(request.uri().path()) {
            UNKNOWN_METHOD.clone_into(&mut method);
        }
        let span = tracing::info_span!(
            "grpc",
            otel.name = %request.uri().path().trim_start_matches('/'),
            otel.kind = "server",
            rpc.system = "grpc",
            rpc.service = %service,
            rpc.method = %method,
            rpc.grpc.status_code = tracing::field::Empty,
        );
        crate::telemetry::set_parent_from_headers(&span, request.headers());
        let call = CallRecord { service, method, started: Instant::now(), span: span.clone() };
        let response = self.inner.call(request);
        Box::pin(
            async move {
                let response = response.await?;
                let header_status = grpc_status(response.headers());
                Ok(response.map(|body| ObservedBody { inner: body, call: Some(call), header_status }))
            }
            .instrument(span),
        )
    }
}

fn split_path(path: &str) -> (String, String) {
    match path.trim_start_matches('/').split_once('/') {
        Some((service, method)) => (service.to_owned(), method.to_owned()),
        None => (path.to_owned(), String::new()),
    }
}

fn grpc_status(headers: &http::HeaderMap) -> Option<tonic::Code> {
    let value = headers.get("grpc-status")?.to_str().ok()?.parse::<i32>().ok()?;
    Some(tonic::Code::from_i32(value))
}

/// What is known about a call until its body ends.
struct CallRecord {
    service: String,
    method: String,
    started: Instant,
    span: tracing::Span,
}

impl CallRecord {
    fn finish(self, code: tonic::Code) {
        let code_name = format!("{code:?}");
        self.span.record("rpc.grpc.status_code", code as i32);
        let labels = [("grpc_service", self.service), ("grpc_method", self.method)];
        metrics::histogram!("grpc_server_handling_seconds", &labels).record(self.started.elapsed().as_secs_f64());
        let [service, method] = labels;
        metrics::counter!("grpc_server_handled_total", &[service, method, ("grpc_code", code_name)]).increment(1);
    }
}

pin_project_lite::pin_project! {
    /// A response body that records the call's outcome when it ends. A body
    /// dropped before its end (the client went away) counts as CANCELLED.
    pub struct ObservedBody<B> {
        #[pin]
        inner: B,
        call: Option<CallRecord>,
        header_status: Option<tonic::Code>,
    }

    impl<B> PinnedDrop for ObservedBody<B> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(call) = this.call.take() {
                call.finish(this.header_status.unwrap_or(tonic::Code::Cancelled));
            }
        }
    }
}

impl<B: Body> Body for ObservedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx));
        match &frame {
            Some(Ok(frame)) => {
                if let Some(code) = frame.trailers_ref().and_then(grpc_status)
                    && let Some(call) = this.call.take()
                {
                    call.finish(code);
                }
            }
            Some(Err(_)) => {
                if let Some(call) = this.call.take() {
                    call.finish(tonic::Code::Internal);
                }
            }
            None => {
                if let Some(call) = this.call.take() {
                    // Ended without trailers: the status was in the headers.
                    call.finish(this.header_status.unwrap_or(tonic::Code::Unknown));
                }
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_into_service_and_method() {
        assert_eq!(
            split_path("/shop.users.v1.UserService/GetUser"),
            ("shop.users.v1.UserService".to_owned(), "GetUser".to_owned())
        );
    }

    #[test]
    fn known_methods_are_those_the_descriptor_sets_declare() {
        let known =
            KnownMethods::from_descriptor_sets([tonic_health::pb::FILE_DESCRIPTOR_SET, &b"not a descriptor set"[..]]);
        assert!(known.contains("/grpc.health.v1.Health/Check"));
        assert!(known.contains("/grpc.health.v1.Health/Watch"));
        assert!(!known.contains("/grpc.health.v1.Health/NoSuchMethod"));
        assert!(!known.contains("/grpc.health.v1.Health"));
    }

    #[test]
    fn status_is_read_from_headers() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(grpc_status(&headers), None);
        headers.insert("grpc-status", "5".parse().unwrap());
        assert_eq!(grpc_status(&headers), Some(tonic::Code::NotFound));
    }
}
