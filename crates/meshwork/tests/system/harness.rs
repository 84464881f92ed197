//! `meshwork up` in process, and an HTTP/1.1 client for its gateway.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use meshwork::components::Component;
use platform::{CancellationToken, Env, Settings};

pub struct Platform {
    pub gateway: SocketAddr,
    pub users: SocketAddr,
    pub products: SocketAddr,
    pub orders: SocketAddr,
    client: Client<HttpConnector, Full<Bytes>>,
    shutdown: CancellationToken,
    pub data_dir: std::path::PathBuf,
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
    };
    tokio::spawn(up.wait());
    platform
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

    pub async fn channel(&self, address: SocketAddr) -> tonic::transport::Channel {
        tonic::transport::Channel::from_shared(format!("http://{address}")).unwrap().connect().await.unwrap()
    }
}
