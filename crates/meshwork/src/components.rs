//! What each component serves, on which backends, and its default port.
//! Services that have not landed yet serve the platform parts only (health,
//! reflection, metrics, graceful shutdown).

use std::path::Path;

use platform::{Server, Settings};

/// Where the components keep their data.
#[derive(Debug, Clone, Copy)]
pub enum Backends<'a> {
    /// PostgreSQL, MongoDB and RabbitMQ from configuration.
    Production,
    /// SQLite files and an in-process bus under `data_dir` (`meshwork up`).
    Embedded { data_dir: &'a Path },
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

    /// The component's server on the given backends. Configuration errors
    /// come back as [`platform::ConfigError`] (exit code 64).
    pub async fn server(self, settings: &Settings, backends: Backends<'_>) -> anyhow::Result<Server> {
        match self {
            Self::Users => {
                let users = match backends {
                    Backends::Production => users::start::production(settings).await,
                    Backends::Embedded { data_dir } => users::start::embedded(settings, data_dir).await,
                }
                .map_err(start_error)?;
                Ok(users::server(users, settings))
            }
            Self::Products => {
                let products = match backends {
                    Backends::Production => products::start::production(settings).await,
                    Backends::Embedded { data_dir } => products::start::embedded(data_dir).await,
                }
                .map_err(start_error)?;
                Ok(products::server(products, settings))
            }
            Self::Gateway | Self::Orders => {
                Ok(Server::new(self.name()).with_settings(settings).descriptor_set(contract::FILE_DESCRIPTOR_SET))
            }
        }
    }
}

/// Keeps configuration errors recognisable to `main` for their exit code.
fn start_error(error: platform::StartError) -> anyhow::Error {
    match error {
        platform::StartError::Config(error) => error.into(),
        platform::StartError::Other(error) => anyhow::anyhow!(error),
    }
}
