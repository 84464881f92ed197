//! What each component serves, on which backends, and its default port.
//! Services that have not landed yet serve the platform parts only (health,
//! reflection, metrics, graceful shutdown).

use std::path::Path;
use std::sync::Arc;

use events::InProcessBus;
use platform::settings::Settings;
use platform::{CancellationToken, Server, StartError};
use resilience::EndpointSource;

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
    /// work (each service starts its own: outbox relay, event consumer, hold
    /// expiry, migrations) stopping with `shutdown`. Configuration errors
    /// come back as [`platform::ConfigError`] (exit code 64).
    pub async fn server(
        self,
        settings: &Settings,
        backends: Backends<'_>,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Server> {
        let server = match self {
            Self::Users => match backends {
                Backends::Production => users::start::production(settings, shutdown).await,
                Backends::Embedded { data_dir, .. } => users::start::embedded(settings, data_dir, shutdown).await,
            },
            Self::Products => match backends {
                Backends::Production => products::start::production(settings, shutdown).await,
                Backends::Embedded { data_dir, bus, addresses } => {
                    let upstreams = products::start::Upstreams {
                        users: EndpointSource::single(addresses.users.clone()),
                        orders: EndpointSource::single(addresses.orders.clone()),
                    };
                    products::start::embedded(settings, data_dir, bus, &upstreams, shutdown).await
                }
            },
            Self::Orders => match backends {
                Backends::Production => orders::start::production(settings, shutdown).await,
                Backends::Embedded { bus, addresses, .. } => {
                    let upstreams = orders::start::Upstreams {
                        users: EndpointSource::single(addresses.users.clone()),
                        products: EndpointSource::single(addresses.products.clone()),
                    };
                    orders::start::embedded(settings, &upstreams, Arc::new(bus.clone()), shutdown).await
                }
            },
            Self::Gateway => {
                let config = match backends {
                    Backends::Production => gateway::GatewayConfig::from_settings(settings),
                    Backends::Embedded { addresses, .. } => gateway::GatewayConfig::embedded(
                        settings,
                        [addresses.users.clone(), addresses.products.clone(), addresses.orders.clone()],
                    ),
                };
                config.and_then(|config| {
                    let gateway = gateway::Gateway::new(&config)?;
                    Ok(gateway::server(gateway, settings, &config.cors, shutdown))
                })
            }
        };
        server.map_err(start_error)
    }
}

/// Keeps configuration errors recognisable to `main` for their exit code.
pub fn start_error(error: StartError) -> anyhow::Error {
    match error {
        StartError::Config(error) => error.into(),
        StartError::Other(error) => anyhow::anyhow!(error),
    }
}
