//! The products component (the same shape in every service: `production`
//! and `embedded` return the server with its background work started): on
//! MongoDB (`MONGO_URL`, indexes created once it answers) with order events
//! from RabbitMQ, or embedded on SQLite with the in-process bus for
//! `meshwork up`; served with its access rules and its hold expiry.

use std::path::Path;
use std::sync::Arc;

use events::InProcessBus;
use events::rabbitmq::{RabbitConfig, run_consumer};
use platform::access::{jwks_from_users, service_access};
use platform::discovery::Discovery;
use platform::settings::{self, Settings};
use platform::{CancellationToken, ConfigError, StartError};
use resilience::EndpointSource;

use crate::Products;
use crate::config::ProductsConfig;
use crate::consumer::OrderEvents;
use crate::holds::{HoldExpiry, OrdersService};
use crate::store::{MongoProductStore, ProductStore, SqliteProductStore};

/// Where the services products calls are: users for the keys that verify
/// users' tokens, orders to learn whether an expired hold has an order.
#[derive(Debug, Clone)]
pub struct Upstreams {
    pub users: EndpointSource,
    pub orders: EndpointSource,
}

impl Upstreams {
    /// From `USER_SERVICE_URL` and `ORDER_SERVICE_URL` (both required).
    pub fn from_settings(settings: &Settings) -> Result<Self, ConfigError> {
        Ok(Self {
            users: Settings::require(
                &settings.user_service_url,
                settings::USER_SERVICE_URL,
                "the products service verifies users' tokens with the users service's keys",
            )?,
            orders: Settings::require(
                &settings.order_service_url,
                settings::ORDER_SERVICE_URL,
                "the products service asks the orders service before releasing an expired stock hold",
            )?,
        })
    }
}

/// The server, with hold expiry sweeping in the background until `shutdown`.
pub fn serve(
    products: Products,
    upstreams: &Upstreams,
    settings: &Settings,
    shutdown: CancellationToken,
) -> Result<platform::Server, ConfigError> {
    let discovery = Discovery::from_settings(settings);
    let users = discovery
        .upstream("users", settings.call_policy.clone(), &upstreams.users, &shutdown)
        .map_err(|e| settings.invalid(settings::USER_SERVICE_URL, e))?;
    let orders = discovery
        .upstream("orders", settings.call_policy.clone(), &upstreams.orders, &shutdown)
        .map_err(|e| settings.invalid(settings::ORDER_SERVICE_URL, e))?;
    let (access, service) = service_access(settings, "products", jwks_from_users(users))?;
    let ledger = Arc::new(OrdersService::new(orders, service));
    let expiry = HoldExpiry::new(products.store().clone(), ledger, products.hold_ttl());
    tokio::spawn(expiry.run(shutdown));
    Ok(crate::server(products, access, settings))
}

/// The production component on MongoDB, consuming order events from
/// RabbitMQ. The driver connects lazily, so the service starts (and reports
/// not ready) while MongoDB is still coming up; indexes are created once it
/// answers. Not ready either while the broker cannot be reached.
pub async fn production(settings: &Settings, shutdown: &CancellationToken) -> Result<platform::Server, StartError> {
    let config = ProductsConfig::from_settings(settings)?;
    let url = Settings::require(
        &settings.mongo_url,
        settings::MONGO_URL,
        "the products service stores its catalog in MongoDB",
    )?;
    let amqp = Settings::require(
        &settings.rabbitmq_url,
        settings::RABBITMQ_URL,
        "the products service consumes order events from RabbitMQ",
    )?;
    let upstreams = Upstreams::from_settings(settings)?;
    let store = MongoProductStore::connect(url.expose())
        .await
        .map_err(|error| settings.invalid(settings::MONGO_URL, error.to_string()))?;
    let indexing = store.clone();
    tokio::spawn(async move {
        let mut delay = std::time::Duration::from_millis(250);
        while let Err(error) = indexing.create_indexes().await {
            tracing::warn!(%error, "cannot create MongoDB indexes yet; retrying");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(std::time::Duration::from_secs(10));
        }
    });
    let products = assemble(Arc::new(store), &config);
    let broker = RabbitConfig::new(amqp.expose()).with_prefix(&settings.rabbitmq_prefix);
    let subscription = OrderEvents::subscription(products.store().clone());
    tokio::spawn(run_consumer(broker.clone(), subscription, shutdown.clone()));
    let server = serve(products, &upstreams, settings, shutdown.clone())?;
    // Not ready while order events cannot arrive.
    Ok(server.readiness_check("broker", broker.readiness_check()))
}

/// The embedded component for `meshwork up`: `products.db` in `data_dir`,
/// order events from the in-process `bus`.
pub async fn embedded(
    settings: &Settings,
    data_dir: &Path,
    bus: &InProcessBus,
    upstreams: &Upstreams,
    shutdown: &CancellationToken,
) -> Result<platform::Server, StartError> {
    let config = ProductsConfig::from_settings(settings)?;
    let store = SqliteProductStore::open(&data_dir.join("products.db")).await.map_err(StartError::other)?;
    store.report_pool_metrics(shutdown);
    let products = assemble(Arc::new(store), &config);
    bus.subscribe(OrderEvents::subscription(products.store().clone()));
    Ok(serve(products, upstreams, settings, shutdown.clone())?)
}

fn assemble(store: Arc<dyn ProductStore>, config: &ProductsConfig) -> Products {
    Products::new(store).with_hold_ttl(config.hold_ttl)
}
