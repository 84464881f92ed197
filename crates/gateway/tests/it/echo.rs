//! The echo upstream: answers every `echo.v1.EchoService` method with the
//! request it received (and the metadata it saw), fails on demand, and
//! streams for `Repeat`. Built on descriptors, like the gateway.

use std::convert::Infallible;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use gateway::codec::DynamicCodec;
use prost_reflect::{DescriptorPool, DynamicMessage, MethodDescriptor, Value};
use tonic::body::Body;
use tonic::server::{
    ClientStreamingService, Grpc, NamedService, ServerStreamingService, StreamingService, UnaryService,
};
use tonic::{Request, Response, Status, Streaming as Incoming};
use tonic_types::{ErrorDetails, StatusExt};

#[derive(Clone)]
pub struct Echo {
    pub pool: DescriptorPool,
}

impl NamedService for Echo {
    const NAME: &'static str = "echo.v1.EchoService";
}

/// The same upstream behaviour under `echo.v1.MirrorService`.
#[derive(Clone)]
pub struct Mirror(pub Echo);

impl NamedService for Mirror {
    const NAME: &'static str = "echo.v1.MirrorService";
}

impl tower::Service<http::Request<Body>> for Mirror {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let service = self.0.pool.get_service_by_name(Self::NAME);
        Box::pin(dispatch(service, request))
    }
}

fn answer(method: &MethodDescriptor, request: &Request<DynamicMessage>) -> DynamicMessage {
    let mut response = DynamicMessage::new(method.output());
    response.set_field_by_name("request", Value::Message(request.get_ref().clone()));
    let mut seen: Vec<String> = request
        .metadata()
        .iter()
        .map(|entry| match entry {
            tonic::metadata::KeyAndValueRef::Ascii(key, value) => {
                format!("{}={}", key.as_str(), value.to_str().unwrap_or("?"))
            }
            tonic::metadata::KeyAndValueRef::Binary(key, value) => {
                format!("{}={:?}", key.as_str(), value.to_bytes().map(|b| b.to_vec()).unwrap_or_default())
            }
        })
        .filter(|entry| {
            !entry.starts_with("content-type") && !entry.starts_with("te=") && !entry.starts_with("user-agent")
        })
        .collect();
    seen.sort();
    response.set_field_by_name("metadata", Value::List(seen.into_iter().map(Value::String).collect()));
    response
}

struct Unary(MethodDescriptor);

impl UnaryService<DynamicMessage> for Unary {
    type Response = DynamicMessage;
    type Future = BoxFuture<'static, Result<Response<DynamicMessage>, Status>>;

    fn call(&mut self, request: Request<DynamicMessage>) -> Self::Future {
        let method = self.0.clone();
        Box::pin(async move {
            let message = request.get_ref();
            if method.name() == "Fail" {
                let code = message.get_field_by_name("code").and_then(|v| v.as_i32()).unwrap_or(2);
                let text = message
                    .get_field_by_name("message")
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                let mut details = ErrorDetails::new();
                details.add_bad_request_violation("code", "was asked to fail");
                let mut status = Status::with_error_details(tonic::Code::from_i32(code), text, details);
                // An error's metadata goes with its status, trailers-only.
                if let Some(value) = request.metadata().get(TRAILER_ASKED) {
                    status.metadata_mut().insert(TRAILED, value.clone());
                }
                return Err(status);
            }
            let sleep = message.get_field_by_name("sleep_ms").and_then(|v| v.as_u32()).unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(u64::from(sleep))).await;
            let mut response = Response::new(answer(&method, &request));
            response.metadata_mut().insert("x-echoed", "yes".parse().unwrap());
            Ok(response)
        })
    }
}

struct Streaming(MethodDescriptor);

impl ServerStreamingService<DynamicMessage> for Streaming {
    type Response = DynamicMessage;
    type ResponseStream = futures::stream::BoxStream<'static, Result<DynamicMessage, Status>>;
    type Future = BoxFuture<'static, Result<Response<Self::ResponseStream>, Status>>;

    fn call(&mut self, request: Request<DynamicMessage>) -> Self::Future {
        let method = self.0.clone();
        Box::pin(async move {
            let count = request
                .get_ref()
                .get_field_by_name("sub")
                .and_then(|sub| sub.as_message().and_then(|m| m.get_field_by_name("count")).and_then(|c| c.as_i32()))
                .unwrap_or(1);
            let asked = |what: &str| {
                request
                    .get_ref()
                    .get_field_by_name("sub")
                    .and_then(|sub| sub.as_message()?.get_field_by_name("value")?.as_str().map(|v| v == what))
                    .unwrap_or(false)
            };
            // Refused before any stream: tonic answers trailers-only.
            if asked("refuse") {
                return Err(Status::failed_precondition("no stream, as asked"));
            }
            let one = answer(&method, &request);
            let failure = asked("fail").then(|| Err(Status::aborted("the stream failed as asked")));
            let stream = futures::stream::iter((0..count).map(move |_| Ok(one.clone())).chain(failure));
            Ok(Response::new(Box::pin(stream) as Self::ResponseStream))
        })
    }
}

/// `Collect`: every request of the stream, in the order it came.
struct Collect(MethodDescriptor);

impl ClientStreamingService<DynamicMessage> for Collect {
    type Response = DynamicMessage;
    type Future = BoxFuture<'static, Result<Response<DynamicMessage>, Status>>;

    fn call(&mut self, request: Request<Incoming<DynamicMessage>>) -> Self::Future {
        let output = self.0.output();
        Box::pin(async move {
            let mut incoming = request.into_inner();
            let mut requests = Vec::new();
            while let Some(message) = incoming.message().await? {
                requests.push(Value::Message(message));
            }
            let mut collected = DynamicMessage::new(output);
            collected.set_field_by_name("requests", Value::List(requests));
            Ok(Response::new(collected))
        })
    }
}

/// `Chat`: each request echoed as it comes.
struct Chat(MethodDescriptor);

impl StreamingService<DynamicMessage> for Chat {
    type Response = DynamicMessage;
    type ResponseStream = futures::stream::BoxStream<'static, Result<DynamicMessage, Status>>;
    type Future = BoxFuture<'static, Result<Response<Self::ResponseStream>, Status>>;

    fn call(&mut self, request: Request<Incoming<DynamicMessage>>) -> Self::Future {
        let output = self.0.output();
        let echoed = request.into_inner().map(move |message| {
            let mut response = DynamicMessage::new(output.clone());
            response.set_field_by_name("request", Value::Message(message?));
            Ok(response)
        });
        Box::pin(async move { Ok(Response::new(echoed.boxed())) })
    }
}

impl tower::Service<http::Request<Body>> for Echo {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let service = self.pool.get_service_by_name(Self::NAME);
        Box::pin(dispatch(service, request))
    }
}

/// Metadata a caller sends to have its value come back as trailer metadata
/// named [`TRAILED`] (tonic's services send none of their own).
pub const TRAILER_ASKED: &str = "x-trailer";
pub const TRAILED: &str = "x-trailed";

/// A trailers-only failure as grpc-go sends one whose handler had set
/// header metadata first (`x-echoed: yes` here): the headers, then the
/// status and its metadata in the trailers.
fn headers_then_trailers(response: http::Response<Body>) -> http::Response<Body> {
    let (mut parts, _) = response.into_parts();
    let mut trailers = http::HeaderMap::new();
    for name in ["grpc-status", "grpc-message", "grpc-status-details-bin", TRAILED] {
        if let Some(value) = parts.headers.remove(name) {
            trailers.insert(name, value);
        }
    }
    parts.headers.insert("x-echoed", http::HeaderValue::from_static("yes"));
    let frames = futures::stream::iter([Ok::<_, Status>(http_body::Frame::trailers(trailers))]);
    http::Response::from_parts(parts, Body::new(http_body_util::StreamBody::new(frames)))
}

/// Answers a call to a method of `service`: the request echoed back.
async fn dispatch(
    service: Option<prost_reflect::ServiceDescriptor>,
    request: http::Request<Body>,
) -> Result<http::Response<Body>, Infallible> {
    let name = request.uri().path().rsplit('/').next().unwrap_or_default().to_owned();
    let Some(method) = service.and_then(|s| s.methods().find(|m| m.name() == name)) else {
        return Ok(Status::unimplemented(format!("no method {name}")).into_http());
    };
    let trailer = request.headers().get(TRAILER_ASKED).cloned();
    let mut grpc = Grpc::new(DynamicCodec::new(method.input()));
    let response = match (method.is_client_streaming(), method.is_server_streaming()) {
        (false, false) => grpc.unary(Unary(method.clone()), request).await,
        (false, true) => grpc.server_streaming(Streaming(method.clone()), request).await,
        (true, false) => grpc.client_streaming(Collect(method.clone()), request).await,
        (true, true) => grpc.streaming(Chat(method.clone()), request).await,
    };
    let Some(value) = trailer else { return Ok(response) };
    if method.name() == "Fail" {
        return Ok(headers_then_trailers(response));
    }
    Ok(response.map(|body| {
        Body::new(http_body_util::BodyExt::map_frame(body, move |frame| match frame.into_trailers() {
            Ok(mut trailers) => {
                trailers.insert(TRAILED, value.clone());
                http_body::Frame::trailers(trailers)
            }
            Err(frame) => frame,
        }))
    }))
}
