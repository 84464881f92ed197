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
    data_dir: std::path::PathBuf,
}

impl Drop for Platform {
    fn drop(&mut self) {
        self.shutdown.cancel();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

pub async fn start() -> Platform {
    platform::telemetry::init_for_tests();
    let data_dir = std::env::temp_dir().join(format!("meshwork-system-{}", uuid::Uuid::new_v4().simple()));
    let env = Env::from_pairs([("MESHWORK_DATA_DIR", data_dir.to_str().unwrap())]);
    let settings = Settings::load(&env, meshwork::COMPONENT_SETTINGS).unwrap();
    let shutdown = CancellationToken::new();
    let up = meshwork::up::start(&settings, 0, shutdown.clone()).await.unwrap();
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
        let mut request = http::Request::builder().method(method).uri(format!("http://{}{path}", self.gateway));
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let request = request.body(Full::new(Bytes::copy_from_slice(body.unwrap_or_default()))).unwrap();
        let response = self.client.request(request).await.unwrap();
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.unwrap().to_bytes().to_vec();
        Reply { status, body }
    }

    pub async fn channel(&self, address: SocketAddr) -> tonic::transport::Channel {
        tonic::transport::Channel::from_shared(format!("http://{address}")).unwrap().connect().await.unwrap()
    }
}
