//! The one bootstrap every meshwork component serves through: its gRPC
//! services plus `grpc.health.v1` and server reflection (v1 and v1alpha) over
//! HTTP/2, and `/health/live`, `/health/ready` and `/metrics` over HTTP/1.1,
//! all on one listener, with graceful shutdown.
//!
//! The caller binds the listener and passes it in, so tests serve on
//! `127.0.0.1:0` and `meshwork up` can report every address before serving.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::service::Routes;
use tonic_health::ServingStatus;

use crate::access::{AccessLayer, ServerAccess};
use crate::connections::{ConnectionLimits, accept_until};
use crate::forwarded_grpc::{Forward, ForwardedGrpc};
use crate::grpc_timeout::GrpcTimeoutLayer;
use crate::health::{HealthSync, Readiness};
use crate::reflection::{Current, PLATFORM_DESCRIPTOR_SETS, Reflection, ReflectionSource, V1, V1Alpha};
use crate::rpc_telemetry::{KnownMethods, RpcTelemetryLayer};
use crate::serving_threads::ServingThreads;
use crate::settings::Settings;

/// The largest request message a service reads (a generated server's
/// `max_decoding_message_size`), as large as the gateway's largest body by
/// default. gRPC's own default is 4 MiB; a message is held decoded at many
/// times its size (a list of empty items, 2 bytes each on the wire, is 32
/// bytes each in memory, and twice that while its vector grows), and no
/// request of the shop's contract comes near 1 MiB.
pub const MAX_REQUEST_MESSAGE_BYTES: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("invalid file descriptor set for reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("server failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Builds and runs one component's server; see the module docs.
pub struct Server {
    component: &'static str,
    routes: Routes,
    services: Vec<&'static str>,
    descriptor_sets: Vec<&'static [u8]>,
    readiness: Readiness,
    http: Router,
    /// Installs what serves the paths nothing else matches (the gateway);
    /// a JSON 404 otherwise.
    fallback: Option<Box<dyn FnOnce(Router) -> Router + Send>>,
    /// Forwards native gRPC calls to services not served here, straight
    /// from the connection (see [`Server::forward_grpc`]).
    forward_grpc: Option<Box<Forward>>,
    /// What reflection answers from, when not the descriptor sets and the
    /// services served here (see [`Server::reflection_from`]).
    reflection: Option<ReflectionSource>,
    grace: Duration,
    readiness_interval: Duration,
    access: ServerAccess,
    limits: ConnectionLimits,
    /// 0: connections are served on the caller's runtime.
    serving_threads: usize,
}

impl Server {
    pub fn new(component: &'static str) -> Self {
        Self {
            component,
            routes: Routes::default(),
            services: Vec::new(),
            descriptor_sets: Vec::new(),
            readiness: Readiness::default(),
            http: Router::new(),
            fallback: None,
            forward_grpc: None,
            reflection: None,
            grace: Duration::from_secs(10),
            readiness_interval: Duration::from_secs(5),
            access: ServerAccess::default(),
            limits: ConnectionLimits::default(),
            serving_threads: 0,
        }
    }

    /// Takes the shutdown grace period, the readiness interval, the
    /// connection limits and the serving threads from settings.
    pub fn with_settings(self, settings: &Settings) -> Self {
        let threads = settings.serving_threads.unwrap_or(self.serving_threads);
        self.grace_period(settings.shutdown_grace)
            .readiness_interval(settings.readiness_interval)
            .connection_limits(settings.connection_limits)
            .serving_threads(threads)
    }

    /// How many threads serve connections, each with a runtime of its own
    /// (see `serving_threads`; [`per_core`](crate::serving_threads::per_core)
    /// is one per core). 0, the default, serves them on the runtime that
    /// calls [`Server::serve`]. The process has one set of serving threads:
    /// the first server to start them sets their number.
    pub fn serving_threads(mut self, count: usize) -> Self {
        self.serving_threads = count;
        self
    }

    /// Timeouts and the cap on open connections (see [`ConnectionLimits`]).
    pub fn connection_limits(mut self, limits: ConnectionLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Serves a generated tonic service; gRPC health reports it by name.
    pub fn grpc_service<S>(mut self, service: S) -> Self
    where
        S: tower::Service<http::Request<Body>, Error = Infallible> + NamedService + Clone + Send + Sync + 'static,
        S::Response: IntoResponse,
        S::Future: Send + 'static,
    {
        self.routes = self.routes.add_service(service);
        self.services.push(S::NAME);
        self
    }

    /// How callers prove who they are, and the rules they are held to
    /// (default: the contract's rules, with no credential accepted).
    pub fn access(mut self, access: ServerAccess) -> Self {
        self.access = access;
        self
    }

    /// Adds an encoded `FileDescriptorSet`: for reflection to serve (unless
    /// [`Server::reflection_from`] says otherwise) and for the metrics to
    /// name its methods.
    pub fn descriptor_set(mut self, encoded: &'static [u8]) -> Self {
        self.descriptor_sets.push(encoded);
        self
    }

    /// Adds a dependency check to readiness; see [`Readiness::add`].
    pub fn readiness_check<F, Fut>(mut self, name: impl Into<String>, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        self.readiness.add(name, check);
        self
    }

    /// Adds an informational section to `/health/ready`; see [`Readiness::add_info`].
    pub fn readiness_info<F>(mut self, name: impl Into<String>, info: F) -> Self
    where
        F: Fn() -> serde_json::Value + Send + Sync + 'static,
    {
        self.readiness.add_info(name, info);
        self
    }

    /// Adds plain HTTP routes (they must not use the health or metrics paths).
    pub fn http_routes(mut self, router: Router) -> Self {
        self.http = self.http.merge(router);
        self
    }

    /// Serves every request no other route matches (HTTP and gRPC alike).
    /// Any service will do: a plain one is called straight from the
    /// server's router, without a second router's matching and boxing in
    /// between (the gateway's every request but native gRPC comes this way:
    /// see [`Server::forward_grpc`]).
    pub fn fallback<S>(mut self, service: S) -> Self
    where
        S: tower::Service<axum::extract::Request, Error = Infallible> + Clone + Send + Sync + 'static,
        S::Response: IntoResponse,
        S::Future: Send + 'static,
    {
        self.fallback = Some(Box::new(move |router: Router| router.fallback_service(service)));
        self
    }

    /// Sends native gRPC calls to services not served here (health,
    /// reflection and [`Server::grpc_service`]s are) straight from the
    /// connection to `forward`, with the caller's address, instead of
    /// through the router to the fallback; see `forwarded_grpc` for why,
    /// and for the calls that still go through the router.
    pub fn forward_grpc<F, Fut>(mut self, forward: F) -> Self
    where
        F: Fn(axum::extract::Request, std::net::SocketAddr) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = axum::response::Response> + Send + 'static,
    {
        self.forward_grpc = Some(Box::new(move |request, caller| Box::pin(forward(request, caller))));
        self
    }

    /// Answers reflection from what `current` gives at each stream, instead
    /// of from the registered descriptor sets and the services served here:
    /// for a server whose services are served elsewhere and change while it
    /// runs (the gateway's, forwarded to their upstreams and learned from
    /// them). Build what it gives with [`Reflection::build`].
    pub fn reflection_from(mut self, current: impl Fn() -> Reflection + Send + Sync + 'static) -> Self {
        self.reflection = Some(Arc::new(current));
        self
    }

    /// How long in-flight calls may run on after shutdown starts.
    pub fn grace_period(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// How often the dependency checks refresh `grpc.health.v1`.
    pub fn readiness_interval(mut self, interval: Duration) -> Self {
        self.readiness_interval = interval;
        self
    }

    /// Serves until `shutdown` is cancelled, then reports NOT_SERVING, stops
    /// accepting, and lets in-flight calls finish for at most the grace period.
    pub async fn serve(self, listener: TcpListener, shutdown: CancellationToken) -> Result<(), ServeError> {
        crate::metrics::install();
        for service in &self.services {
            crate::metrics::register_service(service);
        }
        let component = self.component;
        let (reporter, health_service) = tonic_health::server::health_reporter();
        let health = Arc::new(HealthSync { component, reporter, services: self.services.clone() });
        health.apply(&self.readiness.evaluate().await).await;

        // Both reflection versions list exactly the services served here,
        // each other included, so any grpcurl version lists the same services
        // (the contract's descriptor set also describes other components').
        let reflection: ReflectionSource = match self.reflection {
            Some(current) => current,
            None => {
                let fixed = Reflection::build(self.descriptor_sets.iter().copied(), self.services.iter().copied())?;
                Arc::new(move || fixed.clone())
            }
        };
        let own =
            [name_of(&health_service), <Current<V1> as NamedService>::NAME, <Current<V1Alpha> as NamedService>::NAME];
        let served_here = own.into_iter().chain(self.services.iter().copied());
        let forwarded = self.forward_grpc.map(|forward| Arc::new(ForwardedGrpc::new(served_here, forward)));
        let grpc = self
            .routes
            .add_service(health_service)
            .add_service(Current::<V1>::new(reflection.clone()))
            .add_service(Current::<V1Alpha>::new(reflection))
            .into_axum_router()
            // route_layer: the fallback (unknown paths) stays out of the per-RPC
            // metrics and the access check (the gateway checks its own).
            .route_layer(AccessLayer::new(self.access))
            .route_layer(GrpcTimeoutLayer)
            .route_layer(RpcTelemetryLayer::new(KnownMethods::from_descriptor_sets(
                PLATFORM_DESCRIPTOR_SETS.into_iter().chain(self.descriptor_sets.iter().copied()),
            )));
        let grpc = match self.fallback {
            Some(install) => install(grpc),
            None => grpc.fallback(not_found),
        };

        let draining = Arc::new(AtomicBool::new(false));
        let probes = Router::new()
            .route("/health/live", get(crate::health::live))
            .route("/health/ready", get(ready))
            .route("/metrics", get(metrics))
            .with_state(ProbeState { readiness: self.readiness.clone(), draining: draining.clone() });
        let app = grpc.merge(probes).merge(self.http);

        let refresher =
            tokio::spawn(refresh_health(self.readiness, health.clone(), self.readiness_interval, shutdown.clone()));

        let address = listener.local_addr()?;
        tracing::info!(%component, %address, "serving gRPC and HTTP");
        let threads = (self.serving_threads > 0).then(|| ServingThreads::get_or_start(self.serving_threads));
        let connections = accept_until(listener, app, forwarded, self.limits, threads, &shutdown).await;
        draining.store(true, Ordering::SeqCst);
        health.set(ServingStatus::NotServing).await;
        tracing::info!(%component, "stopped accepting; draining in-flight calls");
        refresher.abort();
        connections.drain(self.grace, component).await;
        tracing::info!(%component, "stopped");
        Ok(())
    }
}

fn name_of<S: NamedService>(_: &S) -> &'static str {
    S::NAME
}

#[derive(Clone)]
struct ProbeState {
    readiness: Readiness,
    draining: Arc<AtomicBool>,
}

async fn ready(State(state): State<ProbeState>) -> impl IntoResponse {
    let report = state.readiness.evaluate().await;
    crate::health::ready_response(&report, state.readiness.info(), state.draining.load(Ordering::SeqCst))
}

async fn metrics() -> impl IntoResponse {
    ([(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], crate::metrics::render())
}

/// Unknown paths: UNIMPLEMENTED for gRPC clients, a JSON 404 for the rest.
async fn not_found(request: http::Request<axum::body::Body>) -> axum::response::Response {
    let is_grpc = request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"));
    if is_grpc {
        let message = format!("unknown method {}", request.uri().path());
        return tonic::Status::unimplemented(message).into_http();
    }
    let body = serde_json::json!({ "code": tonic::Code::NotFound as i32, "message": format!("no route for {}", request.uri().path()), "details": [] });
    (http::StatusCode::NOT_FOUND, axum::Json(body)).into_response()
}

async fn refresh_health(
    readiness: Readiness,
    health: Arc<HealthSync>,
    interval: Duration,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = shutdown.cancelled() => return,
        }
        let report = readiness.evaluate().await;
        if shutdown.is_cancelled() {
            return;
        }
        health.apply(&report).await;
    }
}
