//! Starts the echo upstream and a gateway that knows the echo service only
//! from a descriptor set file, both on 127.0.0.1:0, and talks HTTP/1.1 to it.

use std::net::SocketAddr;
use std::path::PathBuf;

use bytes::Bytes;
use gateway::GatewayConfig;
use gateway::config::Cors;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use platform::{CancellationToken, Env, Settings};
use prost_reflect::DescriptorPool;
use serde_json::Value as Json;

use crate::echo::{Echo, Mirror};

/// The echo proto compiled with protox, options intact, as `buf build` would.
pub fn echo_descriptor_set() -> Vec<u8> {
    let root = env!("CARGO_MANIFEST_DIR");
    let roots = [format!("{root}/tests/protos"), format!("{root}/../../third_party/googleapis")];
    let mut compiler = protox::Compiler::new(roots).expect("proto roots");
    compiler.include_imports(true).open_files(["echo/v1/echo.proto"]).expect("echo.proto compiles");
    compiler.encode_file_descriptor_set()
}

pub struct Harness {
    pub gateway: SocketAddr,
    pub pool: DescriptorPool,
    shutdown: CancellationToken,
    descriptor_file: PathBuf,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown.cancel();
        let _ = std::fs::remove_file(&self.descriptor_file);
    }
}

pub async fn start() -> Harness {
    start_with(1024).await
}

pub async fn start_with(max_body_bytes: usize) -> Harness {
    let mut builder = Builder::new();
    let echo = builder.echo_upstream().await;
    builder.route("echo.v1.EchoService", vec![format!("http://{echo}")]);
    builder.max_body_bytes = max_body_bytes;
    builder.start().await
}

/// A gateway over echo upstreams, set up piece by piece.
pub struct Builder {
    pub pool: DescriptorPool,
    set: Vec<u8>,
    pub policy: resilience::Policy,
    pub max_body_bytes: usize,
    pub transcode_bytes: usize,
    routes: Vec<(String, gateway::EndpointSource)>,
    pub etcd_endpoints: Vec<String>,
    pub etcd_prefix: String,
    pub reflection_refresh: std::time::Duration,
    pub auth_mode: gateway::auth::AuthMode,
    /// Whether the gateway loads the echo descriptor set (else it learns
    /// the echo services from an upstream's reflection).
    pub load_echo_descriptors: bool,
    pub shutdown: CancellationToken,
}

impl Builder {
    pub fn new() -> Self {
        platform::telemetry::init_for_tests();
        let set = echo_descriptor_set();
        let pool = DescriptorPool::decode(set.as_slice()).unwrap();
        Self {
            pool,
            set,
            policy: resilience::Policy::default(),
            max_body_bytes: 1024 * 1024,
            transcode_bytes: 2 * 1024 * 1024,
            routes: Vec::new(),
            etcd_endpoints: Vec::new(),
            etcd_prefix: String::new(),
            reflection_refresh: std::time::Duration::from_secs(30),
            auth_mode: gateway::auth::AuthMode::Optional,
            load_echo_descriptors: true,
            shutdown: CancellationToken::new(),
        }
    }

    /// A new echo upstream serving both echo services; its address.
    pub async fn echo_upstream(&self) -> SocketAddr {
        let echo = Echo { pool: self.pool.clone() };
        let server = platform::Server::new("echo").grpc_service(echo.clone()).grpc_service(Mirror(echo));
        testkit::serve(server, &self.shutdown).await
    }

    /// An echo upstream whose reflection serves the echo descriptors (one
    /// file per answer, as tonic-reflection does); its address.
    pub async fn echo_upstream_with_reflection(&self) -> SocketAddr {
        self.echo_upstream_serving(self.set.clone()).await
    }

    /// An echo upstream answering, and serving by reflection, the echo
    /// service as `set` (an encoded descriptor set) describes it.
    pub async fn echo_upstream_serving(&self, set: Vec<u8>) -> SocketAddr {
        let echo = Echo { pool: DescriptorPool::decode(set.as_slice()).unwrap() };
        let set: &'static [u8] = Box::leak(set.into_boxed_slice());
        let server = platform::Server::new("echo").grpc_service(echo).descriptor_set(set);
        testkit::serve(server, &self.shutdown).await
    }

    pub fn route(&mut self, service: &str, endpoints: Vec<String>) {
        self.routes.push((service.to_owned(), gateway::EndpointSource::Static(endpoints)));
    }

    /// Routes `service` to what is discovered from `source`.
    pub fn route_to(&mut self, service: &str, source: gateway::EndpointSource) {
        self.routes.push((service.to_owned(), source));
    }

    pub async fn start(self) -> Harness {
        let descriptor_file = std::env::temp_dir().join(format!("echo-{}.binpb", uuid::Uuid::new_v4().simple()));
        std::fs::write(&descriptor_file, &self.set).unwrap();
        let settings = Settings::load(&Env::default(), &[]).unwrap();
        let config = GatewayConfig {
            upstreams: self.routes,
            policy: self.policy,
            discovery: platform::discovery::Discovery {
                dns_refresh: std::time::Duration::from_secs(10),
                etcd_endpoints: self.etcd_endpoints,
                etcd_prefix: self.etcd_prefix,
            },
            auth: gateway::auth::AuthConfig::new(self.auth_mode, "meshwork"),
            rate_limit: gateway::ratelimit::RateLimitConfig::off(),
            sign_in_limit: gateway::ratelimit::RateLimitConfig::off(),
            token_check_limit: gateway::ratelimit::RateLimitConfig::off(),
            descriptor_files: if self.load_echo_descriptors { vec![descriptor_file.clone()] } else { Vec::new() },
            reflection_refresh: self.reflection_refresh,
            max_body_bytes: self.max_body_bytes,
            transcode_bytes: self.transcode_bytes,
            cors: Cors::Origins(vec!["https://app.example".to_owned()]),
        };
        let built = gateway::Gateway::new(&config).expect("the gateway starts");
        let server = gateway::server(built, &settings, &config.cors, &self.shutdown);
        let gateway = testkit::serve(server, &self.shutdown).await;
        Harness { gateway, pool: self.pool, shutdown: self.shutdown, descriptor_file }
    }
}

/// An HTTP response, its body parsed as JSON when it is JSON.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
    pub trailers: Option<http::HeaderMap>,
}

impl Reply {
    pub fn json(&self) -> Json {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

impl Harness {
    pub async fn request(&self, method: &str, path: &str, body: Option<&str>, headers: &[(&str, &str)]) -> Reply {
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let mut builder = http::Request::builder().method(method).uri(format!("http://{}{path}", self.gateway));
        if body.is_some() && !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-type")) {
            builder = builder.header("content-type", "application/json");
        }
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder.body(Full::new(Bytes::from(body.unwrap_or_default().to_owned()))).unwrap();
        let response = client.request(request).await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let collected = response.into_body().collect().await.unwrap();
        let trailers = collected.trailers().cloned();
        Reply { status, headers, body: collected.to_bytes().to_vec(), trailers }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.request("GET", path, None, &[]).await
    }

    pub async fn channel(&self) -> tonic::transport::Channel {
        tonic::transport::Channel::from_shared(format!("http://{}", self.gateway)).unwrap().connect().await.unwrap()
    }
}
