//! The products server on 127.0.0.1:0 over a real store (SQLite in memory,
//! or a fresh database on the MongoDB-compatible server), and a client.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use contract::products::product_service_client::ProductServiceClient;
use platform::CancellationToken;
use products::Products;
use products::domain::{Currency, Description, Price, Product, ProductId, ProductName, now};
use products::store::{MongoProductStore, ProductStore, SqliteProductStore};
use testkit::mongo::TestMongo;
use tonic::transport::Channel;

#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Sqlite,
    Mongo,
}

/// A store of the given kind, and the database that must outlive it.
pub async fn store(backend: Backend, test: &str) -> Option<(Arc<dyn ProductStore>, Option<TestMongo>)> {
    platform::telemetry::init_for_tests();
    match backend {
        Backend::Sqlite => Some((Arc::new(SqliteProductStore::in_memory().await.unwrap()), None)),
        Backend::Mongo => {
            let database = TestMongo::create(test).await?;
            let store = MongoProductStore::with_database(database.database());
            store.create_indexes().await.unwrap();
            Some((Arc::new(store), Some(database)))
        }
    }
}

/// A hold that lasts well beyond any test.
pub fn held() -> chrono::DateTime<chrono::Utc> {
    now() + chrono::TimeDelta::minutes(5)
}

pub fn product(id: &str, name: &str, price_minor: i64, stock: i32) -> Product {
    let at = now();
    Product {
        id: ProductId::parse(id).unwrap(),
        name: ProductName::parse(name).unwrap(),
        description: Description::parse("").unwrap(),
        price: Price::from_minor(price_minor),
        currency: Currency::default(),
        stock,
        units_sold: 0,
        created_at: at,
        updated_at: at,
    }
}

pub struct TestApp {
    pub address: SocketAddr,
    pub client: ProductServiceClient<Channel>,
    shutdown: CancellationToken,
    _database: Option<TestMongo>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub async fn spawn_app(backend: Backend, test: &str) -> Option<TestApp> {
    let (store, database) = store(backend, test).await?;
    Some(serve(store, database, Duration::from_secs(5)).await)
}

pub async fn serve(store: Arc<dyn ProductStore>, database: Option<TestMongo>, readiness_interval: Duration) -> TestApp {
    // No users or orders service here: no user token is ever sent to this
    // server, and no hold it takes runs out while a test lasts.
    let nowhere = resilience::EndpointSource::single("http://127.0.0.1:9");
    let upstreams = products::start::Upstreams { users: nowhere.clone(), orders: nowhere };
    let shutdown = CancellationToken::new();
    let server = products::start::serve(Products::new(store), &upstreams, &testkit::settings(), shutdown.clone())
        .unwrap()
        .readiness_interval(readiness_interval);
    let address = testkit::serve(server, &shutdown).await;
    let channel = Channel::from_shared(format!("http://{address}")).unwrap().connect().await.unwrap();
    TestApp { address, client: ProductServiceClient::new(channel), shutdown, _database: database }
}

impl TestApp {
    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.address)).unwrap().connect().await.unwrap()
    }
}
