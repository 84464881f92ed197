//! A whole shop on 127.0.0.1:0 for the orders tests: real users and
//! products services (SQLite), the orders service on the backend under
//! test, and the products consumer of order events on the in-process bus.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use contract::orders::order_service_client::OrderServiceClient;
use contract::products::product_service_client::ProductServiceClient;
use contract::products::{CreateProductRequest, GetProductRequest};
use contract::users::CreateUserRequest;
use contract::users::user_service_client::UserServiceClient;
use events::{InProcessBus, Publisher};
use orders::start::{Upstreams, assemble};
use orders::store::{OrderStore, PostgresOrderStore, SqliteOrderStore};
use platform::{CancellationToken, Settings};
use products::store::{ProductStore, SqliteProductStore};
use testkit::postgres::TestDatabase;
use tonic::transport::Channel;

#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// An orders store of the given kind, and the database that must outlive it.
pub async fn order_store(backend: Backend, test: &str) -> Option<(Arc<dyn OrderStore>, Option<TestDatabase>)> {
    platform::telemetry::init_for_tests();
    match backend {
        Backend::Sqlite => Some((Arc::new(SqliteOrderStore::in_memory().await.unwrap()), None)),
        Backend::Postgres => {
            let database = TestDatabase::create(test).await?;
            let store = PostgresOrderStore::connect_lazy(database.url()).unwrap();
            store.migrate().await.unwrap();
            Some((Arc::new(store), Some(database)))
        }
    }
}

fn settings() -> Settings {
    testkit::settings()
}

pub async fn channel(address: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{address}")).unwrap().connect().await.unwrap()
}

pub struct Shop {
    pub users: UserServiceClient<Channel>,
    pub products: ProductServiceClient<Channel>,
    pub orders: OrderServiceClient<Channel>,
    pub orders_address: SocketAddr,
    pub order_store: Arc<dyn OrderStore>,
    pub upstreams: Upstreams,
    pub bus: InProcessBus,
    pub shutdown: CancellationToken,
    _database: Option<TestDatabase>,
}

impl Drop for Shop {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The users and products services, and what orders needs to reach them.
pub async fn dependencies(shutdown: &CancellationToken) -> (Upstreams, Arc<dyn ProductStore>) {
    // Files, as under `meshwork up`, not in-memory databases: a call cancelled
    // mid-query costs sqlx its connection, and an in-memory database dies
    // with its only connection.
    let dir = std::env::temp_dir().join(format!("meshwork-orders-deps-{}", uuid::Uuid::new_v4().simple()));
    let user_store = Arc::new(users::store::SqliteUserStore::open(&dir.join("users.db")).await.unwrap());
    let tokens = users::tokens::TokenIssuer::from_pem(&users::tokens::generate_pem(), "test", Duration::from_secs(60));
    let users = users::Users::new(user_store, Arc::new(tokens.unwrap()));
    let users_address = testkit::serve(users::server(users, &settings()).unwrap(), shutdown).await;
    let product_store: Arc<dyn ProductStore> =
        Arc::new(SqliteProductStore::open(&dir.join("products.db")).await.unwrap());
    let products = products::Products::new(product_store.clone());
    // Its holds outlast every test, so it never needs to ask orders about one.
    let product_upstreams = products::start::Upstreams {
        users: resilience::EndpointSource::single(format!("http://{users_address}")),
        orders: resilience::EndpointSource::single("http://127.0.0.1:9".to_owned()),
    };
    let products = products::start::serve(products, &product_upstreams, &settings(), shutdown.clone()).unwrap();
    let products_address = testkit::serve(products, shutdown).await;
    let upstreams = Upstreams {
        users: resilience::EndpointSource::single(format!("http://{users_address}")),
        products: resilience::EndpointSource::single(format!("http://{products_address}")),
    };
    (upstreams, product_store)
}

/// The orders service over `store`, publishing through `publisher`.
pub async fn orders_service(
    store: Arc<dyn OrderStore>,
    upstreams: &Upstreams,
    publisher: Arc<dyn Publisher>,
    shutdown: &CancellationToken,
) -> SocketAddr {
    orders_service_with(&settings(), store, upstreams, publisher, shutdown).await
}

/// The same, under `settings`.
pub async fn orders_service_with(
    settings: &Settings,
    store: Arc<dyn OrderStore>,
    upstreams: &Upstreams,
    publisher: Arc<dyn Publisher>,
    shutdown: &CancellationToken,
) -> SocketAddr {
    let server =
        assemble(settings, store, upstreams, publisher, shutdown).unwrap().serve_with_relay(settings, shutdown.clone());
    testkit::serve(server, shutdown).await
}

/// The orders service over `store` with no outbox relay: what it writes
/// stays in the outbox for another process's relay.
pub async fn orders_service_without_relay(
    store: Arc<dyn OrderStore>,
    upstreams: &Upstreams,
    shutdown: &CancellationToken,
) -> SocketAddr {
    let publisher = Arc::new(events::InProcessBus::new());
    let assembled = assemble(&settings(), store, upstreams, publisher, shutdown).unwrap();
    testkit::serve(orders::server(assembled.orders, assembled.access, &settings()), shutdown).await
}

pub async fn shop(backend: Backend, test: &str) -> Option<Shop> {
    let (order_store, database) = order_store(backend, test).await?;
    let shutdown = CancellationToken::new();
    let (upstreams, product_store) = dependencies(&shutdown).await;
    let bus = InProcessBus::new();
    bus.subscribe(products::consumer::OrderEvents::subscription(product_store.clone()));
    let orders_address = orders_service(order_store.clone(), &upstreams, Arc::new(bus.clone()), &shutdown).await;
    Some(Shop {
        users: UserServiceClient::new(
            Channel::from_shared(upstreams.users.to_string()).unwrap().connect().await.unwrap(),
        ),
        products: ProductServiceClient::new(
            Channel::from_shared(upstreams.products.to_string()).unwrap().connect().await.unwrap(),
        ),
        orders: OrderServiceClient::new(channel(orders_address).await),
        orders_address,
        order_store,
        upstreams,
        bus,
        shutdown,
        _database: database,
    })
}

impl Shop {
    pub async fn user(&self) -> String {
        let request = CreateUserRequest {
            email: format!("{}@example.com", uuid::Uuid::new_v4().simple()),
            name: "John Doe".to_owned(),
            password: None,
        };
        self.users.clone().create_user(request).await.unwrap().into_inner().user.unwrap().id
    }

    pub async fn product(&self, id: &str, price: f64, stock: i32) {
        self.product_in(id, price, "", stock).await;
    }

    /// A product priced in `currency` (empty: the default).
    pub async fn product_in(&self, id: &str, price: f64, currency: &str, stock: i32) {
        let request = CreateProductRequest {
            id: id.to_owned(),
            name: format!("Product {id}"),
            description: String::new(),
            price,
            stock,
            currency: currency.to_owned(),
        };
        self.products.clone().create_product(request).await.unwrap();
    }

    /// (stock, units sold) of a product.
    pub async fn stock(&self, id: &str) -> (i32, i64) {
        let product = self.products.clone().get_product(GetProductRequest { id: id.to_owned() }).await.unwrap();
        let product = product.into_inner().product.unwrap();
        (product.stock, product.units_sold)
    }
}
