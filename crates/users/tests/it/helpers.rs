//! A `spawn_app()` harness: the users server on 127.0.0.1:0 over a real
//! store (SQLite in memory, or a fresh PostgreSQL database), and a client.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use contract::users::user_service_client::UserServiceClient;
use platform::CancellationToken;
use testkit::postgres::TestDatabase;
use tonic::transport::Channel;
use users::Users;
use users::store::{PostgresUserStore, SqliteUserStore, UserStore};
use users::tokens::TokenIssuer;

pub const ISSUER: &str = "meshwork-test";

#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A store of the given kind, and the database that must outlive it.
pub async fn store(backend: Backend, test: &str) -> Option<(Arc<dyn UserStore>, Option<TestDatabase>)> {
    platform::telemetry::init_for_tests();
    match backend {
        Backend::Sqlite => Some((Arc::new(SqliteUserStore::in_memory().await.unwrap()), None)),
        Backend::Postgres => {
            let database = TestDatabase::create(test).await?;
            let store = PostgresUserStore::connect_lazy(database.url()).unwrap();
            store.migrate().await.unwrap();
            Some((Arc::new(store), Some(database)))
        }
    }
}

pub struct TestApp {
    pub address: SocketAddr,
    pub client: UserServiceClient<Channel>,
    pub jwks_issuer: Arc<TokenIssuer>,
    shutdown: CancellationToken,
    _database: Option<TestDatabase>,
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

/// Serves `store`; `readiness_interval` sets how fast gRPC health follows it.
pub async fn serve(store: Arc<dyn UserStore>, database: Option<TestDatabase>, readiness_interval: Duration) -> TestApp {
    let tokens =
        Arc::new(TokenIssuer::from_pem(&users::tokens::generate_pem(), ISSUER, Duration::from_secs(900)).unwrap());
    let server = users::server(Users::new(store, tokens.clone()), &testkit::settings())
        .unwrap()
        .readiness_interval(readiness_interval);
    let shutdown = CancellationToken::new();
    let address = testkit::serve(server, &shutdown).await;
    let channel = Channel::from_shared(format!("http://{address}")).unwrap().connect().await.unwrap();
    TestApp { address, client: UserServiceClient::new(channel), jwks_issuer: tokens, shutdown, _database: database }
}

impl TestApp {
    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.address)).unwrap().connect().await.unwrap()
    }
}
