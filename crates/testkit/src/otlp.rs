//! A real OTLP/gRPC trace receiver on a loopback port, for the tests that
//! check what the platform exports (a tracing backend cannot run here; the
//! protocol it speaks can).

use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::trace::v1::Span;

/// What the receiver has been sent, export by export.
#[derive(Clone, Default)]
pub struct Receiver {
    exports: Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
}

impl Receiver {
    /// Serves on `127.0.0.1:0` on the current runtime; returns the
    /// receiver and its endpoint (`http://127.0.0.1:port`).
    pub async fn start() -> (Self, String) {
        let receiver = Self::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
        let endpoint = format!("http://{}", listener.local_addr().expect("its address"));
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(receiver.clone()))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        (receiver, endpoint)
    }

    /// Every export so far (resources, scopes and spans).
    pub fn exports(&self) -> Vec<ExportTraceServiceRequest> {
        self.exports.lock().expect("exports lock").clone()
    }

    /// Every span so far, of every resource and scope.
    pub fn spans(&self) -> Vec<Span> {
        let exports = self.exports.lock().expect("exports lock");
        exports
            .iter()
            .flat_map(|e| &e.resource_spans)
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| s.spans.clone())
            .collect()
    }
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.exports.lock().expect("exports lock").push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}
