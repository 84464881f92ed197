//! A hand-written gRPC service (`test.v1.SlowService/Call`, empty messages)
//! whose one method takes a set time, for drain and metrics tests. It is what
//! tonic's codegen would produce, without needing a proto in this crate.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::Notify;
use tonic::body::Body;
use tonic::codegen::http;
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::transport::Channel;
use tonic::{Request, Response, Status};
use tonic_prost::ProstCodec;

#[derive(Clone)]
pub struct SlowService {
    delay: Duration,
    started: Arc<Notify>,
    /// The name of each thread a call's handler ran on.
    threads: Arc<std::sync::Mutex<Vec<String>>>,
}

impl SlowService {
    pub fn new(delay: Duration) -> Self {
        Self { delay, started: Arc::new(Notify::new()), threads: Arc::default() }
    }

    /// The threads the calls so far were handled on, by name.
    pub fn threads(&self) -> Vec<String> {
        self.threads.lock().unwrap().clone()
    }

    /// Notified when a call has reached the handler.
    pub fn started(&self) -> Arc<Notify> {
        self.started.clone()
    }
}

impl NamedService for SlowService {
    const NAME: &'static str = "test.v1.SlowService";
}

struct Call(SlowService);

impl UnaryService<()> for Call {
    type Response = ();
    type Future = BoxFuture<'static, Result<Response<()>, Status>>;

    fn call(&mut self, _request: Request<()>) -> Self::Future {
        let service = self.0.clone();
        let thread = std::thread::current().name().unwrap_or_default().to_owned();
        service.threads.lock().unwrap().push(thread);
        Box::pin(async move {
            service.started.notify_one();
            tokio::time::sleep(service.delay).await;
            Ok(Response::new(()))
        })
    }
}

impl tower::Service<http::Request<Body>> for SlowService {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let service = self.clone();
        Box::pin(async move {
            if request.uri().path() != "/test.v1.SlowService/Call" {
                return Ok(Status::unimplemented("no such method").into_http());
            }
            let mut grpc = Grpc::new(ProstCodec::<(), ()>::default());
            Ok(grpc.unary(Call(service), request).await)
        })
    }
}

pub async fn call(channel: Channel) -> Result<(), Status> {
    call_path(channel, "/test.v1.SlowService/Call").await
}

pub async fn call_path(channel: Channel, path: &'static str) -> Result<(), Status> {
    let mut client = tonic::client::Grpc::new(channel);
    client.ready().await.map_err(|e| Status::unavailable(e.to_string()))?;
    let path = http::uri::PathAndQuery::from_static(path);
    client.unary(Request::new(()), path, ProstCodec::<(), ()>::default()).await.map(|_| ())
}

/// What `protoc --descriptor_set_out` would give for this service: the
/// server names in its metrics only the methods its descriptors declare.
pub fn descriptor_set() -> &'static [u8] {
    use prost_reflect::prost::Message as _;
    use prost_reflect::prost_types::{
        FileDescriptorProto, FileDescriptorSet, MethodDescriptorProto, ServiceDescriptorProto,
    };
    static ENCODED: std::sync::LazyLock<Vec<u8>> = std::sync::LazyLock::new(|| {
        let call = MethodDescriptorProto {
            name: Some("Call".to_owned()),
            input_type: Some(".google.protobuf.Empty".to_owned()),
            output_type: Some(".google.protobuf.Empty".to_owned()),
            ..Default::default()
        };
        let service =
            ServiceDescriptorProto { name: Some("SlowService".to_owned()), method: vec![call], ..Default::default() };
        let file = FileDescriptorProto {
            name: Some("test/v1/slow.proto".to_owned()),
            package: Some("test.v1".to_owned()),
            dependency: vec!["google/protobuf/empty.proto".to_owned()],
            service: vec![service],
            syntax: Some("proto3".to_owned()),
            ..Default::default()
        };
        FileDescriptorSet { file: vec![file] }.encode_to_vec()
    });
    &ENCODED
}
