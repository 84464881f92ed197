//! The platform under test, in process: as `meshwork up` runs it, or as
//! four separate components on their production backends (PostgreSQL,
//! MongoDB, RabbitMQ), each configured on its own the way a deployment
//! configures it; and an HTTP/1.1 client for its gateway.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use meshwork::components::{Backends, Component};
use platform::{CancellationToken, Env, Settings};

pub struct Platform {
    pub gateway: SocketAddr,
    pub users: SocketAddr,
    pub products: SocketAddr,
    pub orders: SocketAddr,
    client: Client<HttpConnector, Full<Bytes>>,
    shutdown: CancellationToken,
    /// Holds `service-secret` and `users/token-signing-key.pem`, as `up`'s does.
    pub data_dir: std::path::PathBuf,
    /// Test databases and broker names, removed when the platform is dropped.
    _backends: Vec<Box<dyn std::any::Any + Send + Sync>>,
    /// The prefix of its RabbitMQ names, on the production backends.
    #[allow(dead_code)] // read by the trace suite, which shares this harness
    rabbitmq_prefix: Option<String>,
}

impl Drop for Platform {
    fn drop(&mut self) {
        self.shutdown.cancel();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

pub async fn start() -> Platform {
    start_with(&[]).await
}

/// The platform with extra settings (`MESHWORK_AUTH=required`, ...).
pub async fn start_with(settings: &[(&str, &str)]) -> Platform {
    platform::telemetry::init_for_tests();
    let data_dir = std::env::temp_dir().join(format!("meshwork-system-{}", uuid::Uuid::new_v4().simple()));
    // No rate limit unless a test sets one: fuzzing is many requests from one address.
    let mut pairs = vec![("MESHWORK_DATA_DIR", data_dir.to_str().unwrap()), ("GATEWAY_RATE_LIMIT", "0")];
    pairs.extend(settings.iter().copied());
    let env = Env::from_pairs(pairs);
    let settings = Settings::load(&env, &meshwork::component_settings()).unwrap();
    let shutdown = CancellationToken::new();
    let up = meshwork::up::start(&settings, 0, None, shutdown.clone()).await.unwrap();
    let platform = Platform {
        gateway: up.address(Component::Gateway),
        users: up.address(Component::Users),
        products: up.address(Component::Products),
        orders: up.address(Component::Orders),
        client: Client::builder(TokioExecutor::new()).build_http(),
        shutdown,
        data_dir,
        _backends: Vec::new(),
        rabbitmq_prefix: None,
    };
    tokio::spawn(up.wait());
    platform
}

/// How the platform under test runs.
#[derive(Debug, Clone, Copy)]
pub enum Deployment {
    /// `meshwork up`: one process, embedded stores.
    Up,
    /// `meshwork gateway|users|products|orders`, each alone on its production backends.
    Components,
}

/// The platform deployed as `deployment`; `None` (test skipped) when the
/// production backends are not configured (never in CI).
pub async fn deploy(deployment: Deployment, test: &str, settings: &[(&str, &str)]) -> Option<Platform> {
    match deployment {
        Deployment::Up => Some(start_with(settings).await),
        Deployment::Components => start_components(test, settings).await,
    }
}

/// Each component started on its own, as `meshwork <component>` starts it,
/// on ports it is told about one another, with a fresh database per store.
pub async fn start_components(test: &str, settings: &[(&str, &str)]) -> Option<Platform> {
    use testkit::{amqp::TestBroker, mongo::TestMongo, postgres::TestDatabase};

    platform::telemetry::init_for_tests();
    let users_db = TestDatabase::create(&format!("{test}_users")).await?;
    let orders_db = TestDatabase::create(&format!("{test}_orders")).await?;
    let catalog = TestMongo::create(test).await?;
    let broker = TestBroker::create(test)?;
    for suffix in ["", ".retry", ".dlq"] {
        broker.track(format!("{}products.order-events{suffix}", broker.prefix));
    }
    let data_dir = std::env::temp_dir().join(format!("meshwork-components-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(data_dir.join("users")).unwrap();
    std::fs::write(data_dir.join("service-secret"), testkit::SERVICE_SECRET).unwrap();
    let key_file = data_dir.join("users").join("token-signing-key.pem");
    std::fs::write(&key_file, users::tokens::generate_pem()).unwrap();

    let mut listeners = Vec::new();
    for _ in Component::ALL {
        listeners.push(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap());
    }
    let address = |component: Component| {
        let index = Component::ALL.iter().position(|c| *c == component).unwrap();
        listeners[index].local_addr().unwrap()
    };
    let url = |component: Component| format!("http://{}", address(component));
    let (users_url, products_url, orders_url) =
        (url(Component::Users), url(Component::Products), url(Component::Orders));
    let mongo_url = catalog.url();
    let shared = [
        ("USER_SERVICE_URL", users_url.as_str()),
        ("PRODUCT_SERVICE_URL", products_url.as_str()),
        ("ORDER_SERVICE_URL", orders_url.as_str()),
        ("MONGO_URL", mongo_url.as_str()),
        ("RABBITMQ_URL", broker.url.as_str()),
        ("RABBITMQ_PREFIX", broker.prefix.as_str()),
        ("MESHWORK_SERVICE_SECRET", testkit::SERVICE_SECRET),
        ("JWT_SIGNING_KEY_FILE", key_file.to_str().unwrap()),
        // No rate limit unless a test sets one: fuzzing is many requests from one address.
        ("GATEWAY_RATE_LIMIT", "0"),
        // Readiness follows the migrations and the broker within a moment.
        ("MESHWORK_READINESS_INTERVAL", "200ms"),
    ];
    let shutdown = CancellationToken::new();
    let (gateway, users, products, orders) = (
        address(Component::Gateway),
        address(Component::Users),
        address(Component::Products),
        address(Component::Orders),
    );
    for (component, listener) in Component::ALL.into_iter().zip(listeners) {
        let mut pairs: Vec<(&str, &str)> = shared.to_vec();
        match component {
            Component::Users => pairs.push(("DATABASE_URL", users_db.url())),
            Component::Orders => pairs.push(("DATABASE_URL", orders_db.url())),
            Component::Gateway | Component::Products => {}
        }
        pairs.extend(settings.iter().copied());
        let settings = Settings::load(&Env::from_pairs(pairs), &meshwork::component_settings()).unwrap();
        let server = component.server(&settings, Backends::Production, &shutdown).await.unwrap();
        tokio::spawn(server.serve(listener, shutdown.clone()));
    }
    // As an orchestrator would: no traffic before every component is ready
    // (schemas migrated, brokers reached).
    for address in [users, products, orders, gateway] {
        testkit::eventually("a component to be ready", std::time::Duration::from_secs(30), || async move {
            let channel = tonic::transport::Channel::from_shared(format!("http://{address}")).unwrap();
            let Ok(channel) = channel.connect().await else { return false };
            let request = tonic_health::pb::HealthCheckRequest { service: String::new() };
            let answer = tonic_health::pb::health_client::HealthClient::new(channel).check(request).await;
            answer.is_ok_and(|answer| {
                answer.into_inner().status() == tonic_health::pb::health_check_response::ServingStatus::Serving
            })
        })
        .await;
    }
    let rabbitmq_prefix = Some(broker.prefix.clone());
    Some(Platform {
        gateway,
        users,
        products,
        orders,
        client: Client::builder(TokioExecutor::new()).build_http(),
        shutdown,
        data_dir,
        _backends: vec![Box::new(users_db), Box::new(orders_db), Box::new(catalog), Box::new(broker)],
        rabbitmq_prefix,
    })
}

pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }
}

impl Platform {
    /// The prefix of its RabbitMQ exchange and queues (`None` under `up`).
    #[allow(dead_code)] // used by the trace suite, which shares this harness
    pub fn rabbitmq_prefix(&self) -> Option<&str> {
        self.rabbitmq_prefix.as_deref()
    }

    /// A REST call to the gateway; `path` may carry a query.
    pub async fn rest(&self, method: &str, path: &str, body: Option<&[u8]>) -> Reply {
        self.rest_as(None, method, path, body).await
    }

    /// A REST call with `Authorization: Bearer <token>`.
    pub async fn rest_as(&self, token: Option<&str>, method: &str, path: &str, body: Option<&[u8]>) -> Reply {
        self.rest_with(token, &[], method, path, body).await
    }

    /// A REST call with a token and more headers.
    pub async fn rest_with(
        &self,
        token: Option<&str>,
        headers: &[(&str, &str)],
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> Reply {
        let mut request = http::Request::builder().method(method).uri(format!("http://{}{path}", self.gateway));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let request = request.body(Full::new(Bytes::copy_from_slice(body.unwrap_or_default()))).unwrap();
        let response = self.client.request(request).await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes().to_vec();
        Reply { status, headers, body }
    }

    /// A plain GET to one component's port (`/metrics`, `/health/ready`).
    pub async fn get(&self, address: SocketAddr, path: &str) -> Reply {
        let request = http::Request::get(format!("http://{address}{path}")).body(Full::new(Bytes::new())).unwrap();
        let response = self.client.request(request).await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes().to_vec();
        Reply { status, headers, body }
    }

    pub async fn channel(&self, address: SocketAddr) -> tonic::transport::Channel {
        tonic::transport::Channel::from_shared(format!("http://{address}")).unwrap().connect().await.unwrap()
    }
}

/// Runs each named test against both deployments.
macro_rules! in_both_deployments {
    ($($test:ident),* $(,)?) => {$(
        mod $test {
            #[tokio::test(flavor = "multi_thread")]
            async fn under_up() {
                super::$test(crate::harness::Deployment::Up, stringify!($test)).await;
            }

            #[tokio::test(flavor = "multi_thread")]
            async fn as_separate_components() {
                super::$test(crate::harness::Deployment::Components, stringify!($test)).await;
            }
        }
    )*};
}
