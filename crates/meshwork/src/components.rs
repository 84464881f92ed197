//! What each component serves, on which backends, and its default port.
//! Services that have not landed yet serve the platform parts only (health,
//! reflection, metrics, graceful shutdown).

use std::path::Path;
use std::sync::Arc;

use events::InProcessBus;
use events::rabbitmq::{RabbitConfig, run_consumer};
use platform::settings::{self, Settings};
use platform::{CancellationToken, Server, StartError};

/// Where the components keep their data and send their events.
#[derive(Clone, Copy)]
pub enum Backends<'a> {
    /// PostgreSQL, MongoDB and RabbitMQ from configuration.
    Production,
    /// `meshwork up`: SQLite files under `data_dir`, one in-process bus, and
    /// the services at the addresses `up` bound for them.
    Embedded { data_dir: &'a Path, bus: &'a InProcessBus, addresses: &'a Addresses },
}

/// Where `meshwork up` serves each service, as `http://host:port`.
#[derive(Debug, Clone)]
pub struct Addresses {
    pub users: String,
    pub products: String,
    pub orders: String,
}

impl Addresses {
    /// One of these addresses as the only endpoint of a service.
    pub fn source(&self, url: &str) -> resilience::EndpointSource {
        resilience::EndpointSource::Static(vec![url.to_owned()])
    }
}

/// A runnable part of meshwork.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    Gateway,
    Users,
    Products,
    Orders,
}

impl Component {
    pub const ALL: [Component; 4] = [Self::Gateway, Self::Users, Self::Products, Self::Orders];

    pub fn name(self) -> &'static str {
        match self {
            Self::Gateway => "gateway",
            Self::Users => "users",
            Self::Products => "products",
            Self::Orders => "orders",
        }
    }

    /// The template's ports: gateway 8000, users 8001, products 8002, orders 8003.
    pub fn default_port(self) -> u16 {
        match self {
            Self::Gateway => 8000,
            Self::Users => 8001,
            Self::Products => 8002,
            Self::Orders => 8003,
        }
    }

    /// What the component serves besides the platform's endpoints.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Gateway => "REST/JSON, gRPC and gRPC-Web entry point",
            Self::Users => "gRPC shop.users.v1.UserService",
            Self::Products => "gRPC shop.products.v1.ProductService",
            Self::Orders => "gRPC shop.orders.v1.OrderService",
        }
    }

    /// The component's server on the given backends, with its background
    /// work (outbox relay, event consumers) started and stopping with
    /// `shutdown`. Configuration errors come back as [`platform::ConfigError`]
    /// (exit code 64).
    pub async fn server(
        self,
        settings: &Settings,
        backends: Backends<'_>,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Server> {
        let mut broker: Option<RabbitConfig> = None;
        let server = match self {
            Self::Users => match backends {
                Backends::Production => {
                    let (users, migrations) =
                        users::start::production(settings, shutdown).await.map_err(start_error)?;
                    users::server(users, settings)?
                        .readiness_check("migrations", move || std::future::ready(migrations.check()))
                }
                Backends::Embedded { data_dir, .. } => {
                    let users = users::start::embedded(settings, data_dir).await.map_err(start_error)?;
                    users::server(users, settings)?
                }
            },
            Self::Products => {
                let products = match backends {
                    Backends::Production => {
                        let products = products::start::production(settings).await.map_err(start_error)?;
                        let amqp = Settings::require(
                            &settings.rabbitmq_url,
                            settings::RABBITMQ_URL,
                            "the products service consumes order events from RabbitMQ",
                        )
                        .map_err(|e| start_error(e.into()))?;
                        let bus = RabbitConfig::new(amqp.expose()).with_prefix(&settings.rabbitmq_prefix);
                        let subscription = products::consumer::OrderEvents::subscription(products.store().clone());
                        tokio::spawn(run_consumer(bus.clone(), subscription, shutdown.clone()));
                        broker = Some(bus);
                        products
                    }
                    Backends::Embedded { data_dir, bus, .. } => {
                        let products = products::start::embedded(settings, data_dir).await.map_err(start_error)?;
                        bus.subscribe(products::consumer::OrderEvents::subscription(products.store().clone()));
                        products
                    }
                };
                let upstreams = match backends {
                    Backends::Production => products::start::Upstreams::from_settings(settings)?,
                    Backends::Embedded { addresses, .. } => products::start::Upstreams {
                        users: addresses.source(&addresses.users),
                        orders: addresses.source(&addresses.orders),
                    },
                };
                let server = products::start::serve(products, &upstreams, settings, shutdown.clone())?;
                match broker.take() {
                    // Not ready while order events cannot arrive.
                    Some(broker) => server.readiness_check("broker", move || {
                        let broker = broker.clone();
                        async move { broker.probe().await }
                    }),
                    None => server,
                }
            }
            Self::Orders => {
                let assembled = match backends {
                    Backends::Production => orders::start::production(settings, shutdown).await,
                    Backends::Embedded { bus, addresses, .. } => {
                        let upstreams = orders::start::Upstreams {
                            users: addresses.source(&addresses.users),
                            products: addresses.source(&addresses.products),
                        };
                        orders::start::embedded(settings, &upstreams, Arc::new(bus.clone()), shutdown).await
                    }
                }
                .map_err(start_error)?;
                assembled.serve_with_relay(settings, shutdown.clone())
            }
            Self::Gateway => {
                let config = match backends {
                    Backends::Production => gateway::GatewayConfig::from_settings(settings),
                    Backends::Embedded { addresses, .. } => gateway::GatewayConfig::embedded(
                        settings,
                        [addresses.users.clone(), addresses.products.clone(), addresses.orders.clone()],
                    ),
                }
                .map_err(start_error)?;
                let gateway = gateway::Gateway::new(&config).map_err(start_error)?;
                gateway::server(gateway, settings, &config.cors, shutdown)
            }
        };
        Ok(server)
    }
}

/// Keeps configuration errors recognisable to `main` for their exit code.
pub fn start_error(error: StartError) -> anyhow::Error {
    match error {
        StartError::Config(error) => error.into(),
        StartError::Other(error) => anyhow::anyhow!(error),
    }
}
