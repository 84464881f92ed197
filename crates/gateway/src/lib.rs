//! The meshwork API gateway. Its REST routes are built from the
//! `google.api.http` rules of the descriptor sets it loads (the compiled-in
//! contract, and any others given) and of the services it learns from their
//! upstream's reflection, and transcoded to gRPC with the proto3 JSON
//! mapping, as grpc-gateway v2 does; native gRPC, gRPC-Web and Connect calls
//! go to the upstream that owns the service. See `gateway-compat` in the
//! README for the exact behaviour.
#![forbid(unsafe_code)]

pub mod auth;
pub mod catalog;
pub mod codec;
pub mod config;
pub mod connect;
mod connect_get;
pub mod connect_stream;
pub mod error;
pub mod grpc_method;
pub mod guard;
pub mod headers;
mod healthz;
pub mod json_number;
pub mod learn;
mod metrics;
pub mod openapi;
pub mod passthrough;
pub mod ratelimit;
pub mod response_json;
pub mod rest;
pub mod routes;
pub mod stream_json;
mod strict_json;
pub mod template;
#[cfg(test)]
mod test_support;
pub mod transcode;
pub mod transcoding;
pub mod upstream;
mod wire_json;

use std::collections::HashSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::response::{IntoResponse, Response};
use platform::StartError;
use prost_reflect::DescriptorPool;
use tower::{Layer, ServiceExt};

pub use config::GatewayConfig;
pub use resilience::EndpointSource;

use crate::catalog::Catalog;
use crate::config::Cors;
use crate::passthrough::PassThrough;
use crate::upstream::Upstreams;

/// Everything a request needs: built at start, but for the catalog, which
/// learning from reflection replaces.
pub struct Gateway {
    catalog: RwLock<Arc<Catalog>>,
    /// The descriptor sets loaded at start, decoded.
    loaded: DescriptorPool,
    /// Services no loaded set describes: learned from their upstream's reflection.
    to_learn: HashSet<String>,
    learned: Mutex<learn::Learned>,
    reflection_refresh: Duration,
    upstreams: Upstreams,
    max_body_bytes: usize,
    transcoding: transcoding::Transcoding,
    /// Every descriptor set loaded, encoded: for reflection.
    descriptor_sets: Vec<&'static [u8]>,
    auth: auth::Authenticator,
    rate_limit: ratelimit::RateLimit,
    sign_in_limit: ratelimit::RateLimit,
    token_check_limit: ratelimit::RateLimit,
    /// Upstreams whose endpoints are discovered (DNS, etcd).
    discovered: Vec<(Arc<resilience::Upstream>, EndpointSource)>,
    discovery: platform::discovery::Discovery,
}

/// Why the first catalog cannot be built, as a start-up error: the access
/// settings are configuration; anything else is the descriptors'.
fn start_error(error: catalog::CatalogError) -> StartError {
    match error {
        catalog::CatalogError::Access(reason) => platform::ConfigError::Invalid {
            name: config::GATEWAY_PUBLIC_METHODS.name.to_owned(),
            origin: platform::config::Origin::Environment,
            reason,
        }
        .into(),
        other => StartError::other(other),
    }
}

/// An error that is only a message.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Plain(String);

impl Gateway {
    /// Loads the descriptor sets, builds the routing table and the upstream
    /// channels. Any error here is a configuration error.
    pub fn new(config: &GatewayConfig) -> Result<Self, StartError> {
        let mut sets: Vec<&'static [u8]> = vec![contract::FILE_DESCRIPTOR_SET];
        for path in &config.descriptor_files {
            let bytes = std::fs::read(path).map_err(|e| platform::ConfigError::Invalid {
                name: config::GATEWAY_DESCRIPTOR_SETS.name.to_owned(),
                origin: platform::config::Origin::Environment,
                reason: format!("{}: {e}", path.display()),
            })?;
            // Loaded once for the life of the process, and reflection wants 'static.
            sets.push(Box::leak(bytes.into_boxed_slice()));
        }
        Self::from_descriptor_sets(sets, config)
    }

    /// A gateway over these encoded descriptor sets (the first wins on a
    /// file present in several).
    pub fn from_descriptor_sets(sets: Vec<&'static [u8]>, config: &GatewayConfig) -> Result<Self, StartError> {
        // The upstreams set their breaker gauges as they are built.
        platform::metrics::install();
        metrics::register();
        let mut loaded = DescriptorPool::new();
        for set in &sets {
            loaded.decode_file_descriptor_set(*set).map_err(StartError::other)?;
        }
        let upstreams = Upstreams::new(&config.upstreams, &config.policy).map_err(|e| StartError::other(Plain(e)))?;
        let mut discovered = Vec::new();
        for (service, source) in &config.upstreams {
            if let (EndpointSource::Dns { .. } | EndpointSource::Etcd { .. }, Some(upstream)) =
                (source, upstreams.get(service))
            {
                discovered.push((upstream, source.clone()));
            }
        }
        let to_learn: HashSet<String> = config
            .upstreams
            .iter()
            .map(|(service, _)| service.clone())
            .filter(|service| loaded.get_service_by_name(service).is_none())
            .collect();
        let auth = auth::Authenticator::new(&config.auth, upstreams.get("shop.users.v1.UserService"));
        let learned = learn::Learned::default();
        let fronted: Vec<String> = config.upstreams.iter().map(|(service, _)| service.clone()).collect();
        let catalog =
            Catalog::build(&loaded, &sets, &learned.files, &to_learn, &fronted, &auth).map_err(start_error)?;
        tracing::info!(
            routes = catalog.routes.routes().len(),
            upstreams = config.upstreams.len(),
            to_learn = ?to_learn,
            "gateway routing table built"
        );
        let rate_limit = ratelimit::RateLimit::new(&config.rate_limit, "rate limit exceeded");
        let sign_in_limit =
            ratelimit::RateLimit::new(&config.sign_in_limit, "too many sign-in attempts from this address");
        let token_check_limit =
            ratelimit::RateLimit::new(&config.token_check_limit, "too many new tokens from this address");
        Ok(Self {
            catalog: RwLock::new(Arc::new(catalog)),
            loaded,
            to_learn,
            learned: Mutex::new(learned),
            reflection_refresh: config.reflection_refresh,
            auth,
            rate_limit,
            sign_in_limit,
            token_check_limit,
            upstreams,
            discovered,
            discovery: config.discovery.clone(),
            max_body_bytes: config.max_body_bytes,
            transcoding: transcoding::Transcoding::new(config.transcode_bytes),
            descriptor_sets: sets,
        })
    }

    /// What the gateway knows of its services now. A request takes it once
    /// and keeps it: a catalog learned meanwhile serves the next one.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog.read().expect("catalog lock").clone()
    }

    /// The proto services this gateway fronts.
    fn fronted(&self) -> Vec<String> {
        self.upstreams.services().map(|(service, _)| service.to_owned()).collect()
    }

    pub fn auth_mode(&self) -> auth::AuthMode {
        self.auth.mode()
    }

    /// Starts following DNS or etcd for the upstreams discovered there.
    pub fn spawn_discovery(&self, shutdown: &platform::CancellationToken) {
        for (upstream, source) in &self.discovered {
            if let Err(error) = self.discovery.follow(upstream, source, shutdown) {
                // Checked when the configuration was read.
                tracing::error!(upstream = %upstream.name, %error, "cannot follow the upstream's endpoints");
            }
        }
    }

    /// Each upstream's endpoints and breaker states, for readiness.
    pub fn upstream_report(&self) -> serde_json::Value {
        let mut report = serde_json::Map::new();
        for (_, upstream) in self.upstreams.services() {
            report.insert(upstream.name.clone(), upstream.report());
        }
        serde_json::Value::Object(report)
    }
}

/// The gateway's platform server: health, reflection for every fronted
/// service, metrics, and the gateway itself for every other request.
pub fn server(
    gateway: Gateway,
    settings: &platform::Settings,
    cors: &Cors,
    shutdown: &platform::CancellationToken,
) -> platform::Server {
    gateway.spawn_discovery(shutdown);
    let gateway = Arc::new(gateway);
    gateway.spawn_learning(shutdown);
    let sweeper = gateway.clone();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = tokio::time::sleep(std::time::Duration::from_secs(60)) => {
                    sweeper.rate_limit.forget_idle();
                    sweeper.sign_in_limit.forget_idle();
                    sweeper.token_check_limit.forget_idle();
                }
                () = stop.cancelled() => return,
            }
        }
    });
    let (report, learned, current, forwarder) = (gateway.clone(), gateway.clone(), gateway.clone(), gateway.clone());
    // A proxy's requests need nothing from the shared runtime: serving
    // threads take a tenth or more off its CPU per request (see
    // `platform::serving_threads`).
    let server = platform::Server::new("gateway")
        .serving_threads(platform::serving_threads::per_core())
        .with_settings(settings)
        .readiness_info("upstreams", move || report.upstream_report())
        .readiness_info("learned_from_reflection", move || learned.learned_report())
        // Reflection lists what the gateway fronts, learned services as soon
        // as they are learned: each stream answers from the catalog current
        // when it opens.
        .reflection_from(move || current.catalog().reflection.clone())
        // Native gRPC, the bulk of a gateway's calls, skips the router.
        .forward_grpc(move |request, caller| PassThrough::new(forwarder.clone(), Some(caller)).forward(request));
    let openapi = Router::new()
        .route("/openapi.json", axum::routing::get(openapi_json))
        .route("/healthz", axum::routing::get(healthz::handle))
        .with_state(gateway.clone());
    // Every other request goes to `dispatch`, called straight from the
    // platform's router (an axum router of its own here cost a second
    // route match and boxed future per request).
    let dispatcher = tower::service_fn(move |request: http::Request<Body>| {
        let gateway = gateway.clone();
        async move { Ok::<_, Infallible>(dispatch(gateway, request).await) }
    });
    match cors_layer(cors) {
        Some(layer) => server.http_routes(openapi.layer(layer.clone())).fallback(layer.layer(dispatcher)),
        None => server.http_routes(openapi).fallback(dispatcher),
    }
}

async fn openapi_json(State(gateway): State<Arc<Gateway>>) -> Response {
    ([(http::header::CONTENT_TYPE, "application/json")], gateway.catalog().openapi.clone()).into_response()
}

/// Every request the platform does not answer itself: gRPC and gRPC-Web to
/// the upstream, Connect unary and server-streaming calls through them, and
/// REST through the routing table (where HEAD is GET without the body).
async fn dispatch(gateway: Arc<Gateway>, request: http::Request<Body>) -> Response {
    if request.method() == http::Method::HEAD {
        return without_body(answer(gateway, request).await);
    }
    answer(gateway, request).await
}

/// A HEAD request's answer: GET's status and headers, its length among
/// them, and no body (which HTTP/2 forbids on it, and hyper sends there).
fn without_body(response: Response) -> Response {
    use http_body::Body as _;
    let (mut parts, body) = response.into_parts();
    if let Some(length) = body.size_hint().exact() {
        parts.headers.insert(http::header::CONTENT_LENGTH, length.into());
    }
    Response::from_parts(parts, Body::empty())
}

/// The answer to a request, HEAD's body included.
async fn answer(gateway: Arc<Gateway>, request: http::Request<Body>) -> Response {
    let client = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|info| info.0);
    let pass_through = PassThrough::new(gateway.clone(), client);
    if passthrough::is_grpc_web(request.headers()) {
        let service = tonic_web::GrpcWebLayer::new().layer(pass_through);
        let response = service.oneshot(request.map(tonic::body::Body::new)).await;
        return response.map(IntoResponse::into_response).unwrap_or_else(|never| match never {});
    }
    // Most native gRPC comes straight from the connection (`forward_grpc`
    // above); a browser's, or one not sent as POST, comes this way.
    if platform::forwarded_grpc::is_native_grpc(request.headers()) {
        return pass_through.forward(request).await;
    }
    let catalog = gateway.catalog();
    if let Some(call) = connect::unary_call(&catalog, &request) {
        return connect::handle(gateway.clone(), call, request, client).await;
    }
    if let Some(call) = connect_stream::stream_call(&catalog, &request) {
        return connect_stream::handle(gateway.clone(), call, request, client).await;
    }
    rest::handle(&gateway, &catalog, request, client).await
}

fn cors_layer(cors: &Cors) -> Option<tower_http::cors::CorsLayer> {
    use http::{HeaderName, Method};
    use tower_http::cors::{AllowOrigin, Any, CorsLayer};
    // Named, not `*`: by the Fetch spec a wildcard never covers
    // `Authorization`, so every token-carrying browser call would be refused.
    let layer = CorsLayer::new()
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE])
        .allow_headers([
            http::header::AUTHORIZATION,
            http::header::CONTENT_TYPE,
            HeaderName::from_static("x-grpc-web"),
            HeaderName::from_static("x-user-agent"),
            HeaderName::from_static("grpc-timeout"),
            HeaderName::from_static("idempotency-key"),
            HeaderName::from_static("x-http-method-override"),
            HeaderName::from_static("traceparent"),
            HeaderName::from_static("tracestate"),
            // What connect-web sends (connectrpc's CORS guide names the
            // first two; the encodings go with its streams).
            HeaderName::from_static("connect-protocol-version"),
            HeaderName::from_static("connect-timeout-ms"),
            HeaderName::from_static("connect-accept-encoding"),
            HeaderName::from_static("connect-content-encoding"),
        ])
        .max_age(std::time::Duration::from_secs(600))
        .expose_headers([
            HeaderName::from_static("grpc-status"),
            HeaderName::from_static("grpc-message"),
            HeaderName::from_static("grpc-status-details-bin"),
            http::header::RETRY_AFTER,
        ]);
    match cors {
        Cors::None => None,
        Cors::Any => Some(layer.allow_origin(Any)),
        Cors::Origins(origins) => {
            let origins = origins.iter().filter_map(|o| o.parse().ok()).collect::<Vec<http::HeaderValue>>();
            Some(layer.allow_origin(AllowOrigin::list(origins)))
        }
    }
}
