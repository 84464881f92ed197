//! Services learned from their upstream's gRPC reflection: a service named
//! in `GATEWAY_UPSTREAMS` that no loaded descriptor set describes is asked
//! for its descriptors (the file that defines it and every file that file
//! imports, transitively) at start, again every `GATEWAY_REFLECTION_REFRESH`,
//! and at once when its endpoints change. A new answer rebuilds the
//! [`Catalog`](crate::catalog::Catalog): its REST routes, access rules and
//! OpenAPI paths appear with no restart and no descriptor file.
//!
//! Reflection v1 is asked first, then v1alpha (older servers serve only
//! that); the two are the same messages under another service name.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::channel::mpsc;
use prost::Message;
use prost_reflect::DescriptorPool;
use resilience::Upstream;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use tonic_reflection::pb::v1::{ServerReflectionRequest, ServerReflectionResponse};

use crate::Gateway;
use crate::catalog::Catalog;

const REFLECTION_V1: &str = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo";
const REFLECTION_V1ALPHA: &str = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo";

/// What is known of each service to learn: the files last accepted, and how
/// the last attempt went (for readiness).
#[derive(Default)]
pub struct Learned {
    pub(crate) files: BTreeMap<String, Vec<Bytes>>,
    pub(crate) outcome: BTreeMap<String, Result<(), String>>,
}

impl Learned {
    /// Each service's state, for the readiness report.
    pub fn report(&self, services: &HashSet<String>) -> serde_json::Value {
        let mut report = serde_json::Map::new();
        for service in services {
            let learned = self.files.get(service).map(Vec::len);
            let entry = match (self.outcome.get(service), learned) {
                (Some(Err(error)), _) => serde_json::json!({ "learned_files": learned, "error": error }),
                (_, Some(files)) => serde_json::json!({ "learned_files": files }),
                (_, None) => serde_json::json!({ "learned_files": null, "error": "not asked yet" }),
            };
            report.insert(service.clone(), entry);
        }
        serde_json::Value::Object(report)
    }
}

impl Gateway {
    /// Starts learning, and following, the services to learn from reflection.
    pub fn spawn_learning(self: &Arc<Self>, shutdown: &platform::CancellationToken) {
        for service in &self.to_learn {
            let Some(upstream) = self.upstreams.get(service) else { continue };
            tokio::spawn(self.clone().follow(service.clone(), upstream, shutdown.clone()));
        }
    }

    /// Learns `service` from `upstream` now, every `reflection_refresh`,
    /// and whenever its endpoints change; retries a failure sooner.
    async fn follow(self: Arc<Self>, service: String, upstream: Arc<Upstream>, stop: platform::CancellationToken) {
        use tokio::time::{Instant, sleep};
        let backoff = resilience::Backoff { base: Duration::from_millis(250), max: self.reflection_refresh };
        let (mut due, mut failures) = (Instant::now(), 0);
        let mut endpoints = endpoint_urls(&upstream);
        loop {
            // Wakes at least each second to see the endpoints change.
            let wait = due.saturating_duration_since(Instant::now()).min(Duration::from_secs(1));
            tokio::select! {
                () = sleep(wait) => {}
                () = stop.cancelled() => return,
            }
            let now = endpoint_urls(&upstream);
            if now != endpoints {
                (endpoints, due) = (now, Instant::now());
            }
            if Instant::now() < due {
                continue;
            }
            match self.learn(&service, &upstream).await {
                Ok(()) => (due, failures) = (Instant::now() + self.reflection_refresh, 0),
                Err(error) => {
                    tracing::warn!(%service, %error, "cannot learn the service from its upstream's reflection");
                    due = Instant::now() + backoff.delay(failures);
                    failures += 1;
                }
            }
        }
    }

    /// Asks `upstream` for `service`'s descriptors; a new answer becomes a
    /// new catalog, or an error if it does not fit the one there is.
    async fn learn(&self, service: &str, upstream: &Upstream) -> Result<(), String> {
        let outcome = descriptors(upstream, service, &self.loaded).await;
        let mut learned = self.learned.lock().expect("learned lock");
        let outcome = outcome.and_then(|files| {
            if learned.files.get(service) == Some(&files) {
                return Ok(());
            }
            let mut files_by_service = learned.files.clone();
            files_by_service.insert(service.to_owned(), files);
            let catalog = Catalog::build(
                &self.loaded,
                &self.descriptor_sets,
                &files_by_service,
                &self.to_learn,
                &self.fronted(),
                &self.auth,
            )
            .map_err(|error| error.to_string())?;
            tracing::info!(%service, routes = catalog.routes.routes().len(), "learned from the upstream's reflection");
            *self.catalog.write().expect("catalog lock") = Arc::new(catalog);
            learned.files = files_by_service;
            Ok(())
        });
        learned.outcome.insert(service.to_owned(), outcome.clone());
        outcome
    }

    /// Each service to learn: files learned, and the last error.
    pub fn learned_report(&self) -> serde_json::Value {
        self.learned.lock().expect("learned lock").report(&self.to_learn)
    }
}

/// The encoded files that describe `service`, from `upstream`'s reflection,
/// but for those `known` has already (the loaded sets': the contract's
/// `meshwork/access` and `google/api` files, the well-known types).
async fn descriptors(upstream: &Upstream, service: &str, known: &DescriptorPool) -> Result<Vec<Bytes>, String> {
    let ask = |path: &'static str| {
        upstream.call(path.trim_start_matches('/'), true, None, move |channel, remaining| {
            exchange(channel, path, service, known, remaining)
        })
    };
    let outcome = match ask(REFLECTION_V1).await {
        Err(resilience::CallError::Status(status)) if status.code() == tonic::Code::Unimplemented => {
            ask(REFLECTION_V1ALPHA).await
        }
        outcome => outcome,
    };
    outcome.map_err(|error| {
        let status = error.into_status(&upstream.name);
        format!("reflection of {service}: {:?}: {}", status.code(), status.message())
    })
}

/// One reflection stream: the file defining `service`, then every import
/// not yet known or received, until nothing is missing.
async fn exchange(
    channel: resilience::EndpointChannel,
    path: &'static str,
    service: &str,
    known: &DescriptorPool,
    timeout: Duration,
) -> Result<Vec<Bytes>, tonic::Status> {
    let (requests, outgoing) = mpsc::unbounded();
    let ask = |request: MessageRequest| {
        // The stream's receiver lives as long as the call: a send cannot fail first.
        let _ =
            requests.unbounded_send(ServerReflectionRequest { host: String::new(), message_request: Some(request) });
    };
    ask(MessageRequest::FileContainingSymbol(service.to_owned()));
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.map_err(|e| tonic::Status::unavailable(format!("not ready: {e}")))?;
    let mut request = tonic::Request::new(outgoing);
    request.set_timeout(timeout);
    let codec = tonic_prost::ProstCodec::<ServerReflectionRequest, ServerReflectionResponse>::default();
    let mut responses = grpc.streaming(request, http::uri::PathAndQuery::from_static(path), codec).await?.into_inner();

    let mut files: Vec<(String, Bytes)> = Vec::new();
    let mut asked: HashSet<String> = HashSet::new();
    let mut unanswered = 1;
    while unanswered > 0 {
        let response = responses
            .message()
            .await?
            .ok_or_else(|| tonic::Status::unavailable("the reflection stream ended before every answer"))?;
        unanswered -= 1;
        let found = match response.message_response {
            Some(MessageResponse::FileDescriptorResponse(found)) => found.file_descriptor_proto,
            Some(MessageResponse::ErrorResponse(error)) => {
                return Err(tonic::Status::new(tonic::Code::from(error.error_code), error.error_message));
            }
            _ => return Err(tonic::Status::internal("reflection answered with something not asked for")),
        };
        let mut imports = Vec::new();
        for encoded in found {
            let file = prost_types::FileDescriptorProto::decode(encoded.as_slice())
                .map_err(|e| tonic::Status::internal(format!("reflection sent an undecodable file: {e}")))?;
            // Some servers send every import along: keep only what is new here.
            let known_here = known.get_file_by_name(file.name()).is_some();
            if !known_here && files.iter().all(|(name, _)| name != file.name()) {
                imports.extend(file.dependency.iter().cloned());
                files.push((file.name().to_owned(), Bytes::from(encoded)));
            }
        }
        // Others send the file alone: ask for each import still missing.
        for import in imports {
            let have = known.get_file_by_name(&import).is_some() || files.iter().any(|(name, _)| *name == import);
            if !have && asked.insert(import.clone()) {
                ask(MessageRequest::FileByFilename(import));
                unanswered += 1;
            }
        }
    }
    Ok(files.into_iter().map(|(_, file)| file).collect())
}

/// The endpoint URLs of `upstream`: learning starts again when they change.
fn endpoint_urls(upstream: &Upstream) -> Vec<String> {
    upstream.endpoints().iter().map(|endpoint| endpoint.url.clone()).collect()
}
