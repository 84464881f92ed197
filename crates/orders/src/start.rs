//! The orders component (the same shape in every service: `production` and
//! `embedded` return the server with its background work started): its
//! store, its clients of the users and products services, and its outbox
//! relay onto the bus (RabbitMQ in production, the in-process bus under
//! `meshwork up`).

use std::sync::Arc;

use events::Publisher;
use events::rabbitmq::{RabbitConfig, RabbitPublisher};
use platform::access::{jwks_from_users, service_access};
use platform::database::Migrations;
use platform::discovery::Discovery;
use platform::settings::{self, Settings};
use platform::{CancellationToken, StartError};
use resilience::EndpointSource;
use tokio::sync::Notify;

use crate::Orders;
use crate::clients::GrpcDependencies;
use crate::relay::OutboxRelay;
use crate::store::{OrderStore, PostgresOrderStore, SqliteOrderStore};

/// Where the users and products services are.
#[derive(Debug, Clone)]
pub struct Upstreams {
    pub users: EndpointSource,
    pub products: EndpointSource,
}

impl Upstreams {
    /// From `USER_SERVICE_URL` and `PRODUCT_SERVICE_URL` (both required).
    pub fn from_settings(settings: &Settings) -> Result<Self, StartError> {
        let why = "the orders service checks users and reserves stock through them";
        Ok(Self {
            users: Settings::require(&settings.user_service_url, settings::USER_SERVICE_URL, why)?,
            products: Settings::require(&settings.product_service_url, settings::PRODUCT_SERVICE_URL, why)?,
        })
    }
}

/// The service, its access checks and its relay, which the caller runs
/// until shutdown.
pub struct Assembled {
    pub orders: Orders,
    pub access: platform::access::ServerAccess,
    pub relay: OutboxRelay,
    /// Production only: the schema, migrated in the background.
    pub migrations: Option<Migrations>,
    /// Production only: the broker the relay publishes to.
    pub broker: Option<RabbitConfig>,
}

impl Assembled {
    /// Starts the relay in the background (it stops with `shutdown`) and
    /// returns the server, not ready while the schema is not migrated or
    /// the broker cannot be reached.
    pub fn serve_with_relay(self, settings: &Settings, shutdown: CancellationToken) -> platform::Server {
        tokio::spawn(self.relay.run(shutdown));
        let mut server = crate::server(self.orders, self.access, settings);
        if let Some(migrations) = self.migrations {
            server = server.readiness_check("migrations", move || std::future::ready(migrations.check()));
        }
        if let Some(broker) = self.broker {
            server = server.readiness_check("broker", broker.readiness_check());
        }
        server
    }
}

/// The service over `store`, its dependencies followed until `shutdown`.
pub fn assemble(
    settings: &Settings,
    store: Arc<dyn OrderStore>,
    upstreams: &Upstreams,
    publisher: Arc<dyn Publisher>,
    shutdown: &CancellationToken,
) -> Result<Assembled, StartError> {
    crate::metrics::register();
    let discovery = Discovery::from_settings(settings);
    let users = discovery
        .upstream("users", settings.call_policy.clone(), &upstreams.users, shutdown)
        .map_err(|e| settings.invalid(settings::USER_SERVICE_URL, e))?;
    let products = discovery
        .upstream("products", settings.call_policy.clone(), &upstreams.products, shutdown)
        .map_err(|e| settings.invalid(settings::PRODUCT_SERVICE_URL, e))?;
    let (access, service) = service_access(settings, "orders", jwks_from_users(users.clone()))?;
    let dependencies = Arc::new(GrpcDependencies::new(users, products, service));
    let wake = Arc::new(Notify::new());
    let orders = Orders::new(store.clone(), dependencies, wake.clone());
    Ok(Assembled { orders, access, relay: OutboxRelay::new(store, publisher, wake), migrations: None, broker: None })
}

/// Production: PostgreSQL (`DATABASE_URL`, migrated in the background as
/// soon as it answers) and RabbitMQ (`RABBITMQ_URL`).
pub async fn production(settings: &Settings, shutdown: &CancellationToken) -> Result<platform::Server, StartError> {
    let store = postgres_store(settings)?;
    store.report_pool_metrics(shutdown);
    let amqp = Settings::require(
        &settings.rabbitmq_url,
        settings::RABBITMQ_URL,
        "the orders service publishes its events to RabbitMQ",
    )?;
    let upstreams = Upstreams::from_settings(settings)?;
    let store = Arc::new(store);
    let migrating = store.clone();
    let migrate = move || {
        let store = migrating.clone();
        async move { store.migrate().await }
    };
    let migrations = Migrations::start("orders", migrate, shutdown.clone());
    let bus = RabbitConfig::new(amqp.expose()).with_prefix(&settings.rabbitmq_prefix);
    let publisher = Arc::new(RabbitPublisher::new(bus.clone()));
    let connecting = publisher.clone();
    tokio::spawn(async move {
        if let Err(error) = connecting.connect().await {
            tracing::warn!(%error, "RabbitMQ is not reachable yet; the outbox relay keeps trying");
        }
    });
    let assembled = assemble(settings, store, &upstreams, publisher, shutdown)?;
    let assembled = Assembled { migrations: Some(migrations), broker: Some(bus), ..assembled };
    Ok(assembled.serve_with_relay(settings, shutdown.clone()))
}

/// `meshwork up`: `orders.db` in `data_dir`, the in-process bus.
pub async fn embedded(
    settings: &Settings,
    upstreams: &Upstreams,
    publisher: Arc<dyn Publisher>,
    shutdown: &CancellationToken,
) -> Result<platform::Server, StartError> {
    let store = SqliteOrderStore::open(&settings.data_dir.join("orders.db")).await.map_err(StartError::other)?;
    store.report_pool_metrics(shutdown);
    Ok(assemble(settings, Arc::new(store), upstreams, publisher, shutdown)?
        .serve_with_relay(settings, shutdown.clone()))
}

/// The production store from `DATABASE_URL` (required), not yet migrated.
pub fn postgres_store(settings: &Settings) -> Result<PostgresOrderStore, StartError> {
    let url = Settings::require(
        &settings.database_url,
        settings::DATABASE_URL,
        "the orders service stores orders in PostgreSQL",
    )?;
    Ok(PostgresOrderStore::connect_lazy(url.expose())
        .map_err(|e| settings.invalid(settings::DATABASE_URL, e.to_string()))?)
}
