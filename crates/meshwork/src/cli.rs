//! The command line: `meshwork up|gateway|users|products|orders`, each
//! subcommand's help listing the environment variables it reads.

use clap::{Parser, Subcommand};
use meshwork::components::Component;
use platform::config::{CONFIG_FILE_VAR, Setting};
use platform::settings as s;

#[derive(Debug, Parser)]
#[command(
    name = "meshwork",
    version,
    about = "A gRPC-first microservices platform: an API gateway and the users, products and orders services",
    after_help = env_help(&[]),
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway and the three services in one process on embedded
    /// backends (SQLite files, an in-process event bus): nothing to install.
    #[command(after_help = env_help(&[UP, CALLS, gateway::config::SETTINGS].concat()))]
    Up {
        /// The gateway's port; users, products and orders take the next
        /// three. 0 lets the system choose each port.
        #[arg(long, default_value_t = 8000)]
        base_port: u16,
        /// Run only these parts (gateway, users, products, orders), the
        /// rest being expected at their ports: stop and start one part on
        /// its own to watch the gateway's circuit breakers at work.
        #[arg(long, value_delimiter = ',', value_parser = parse_component)]
        only: Option<Vec<Component>>,
    },
    /// Run the API gateway (REST/JSON, gRPC and gRPC-Web in front of the services).
    #[command(after_help = env_help(&[GATEWAY, gateway::config::SETTINGS].concat()))]
    Gateway,
    /// Run the users service (accounts and sign-in) on PostgreSQL.
    #[command(after_help = env_help(USERS))]
    Users {
        #[command(subcommand)]
        action: Option<UsersAction>,
    },
    /// Run the products service (catalog and inventory) on MongoDB.
    #[command(after_help = env_help(&[PRODUCTS, CALLS].concat()))]
    Products,
    /// Run the orders service (orders, outbox relay) on PostgreSQL and RabbitMQ.
    #[command(after_help = env_help(&[ORDERS, CALLS].concat()))]
    Orders {
        #[command(subcommand)]
        action: Option<OrdersAction>,
    },
    /// Exit 0 if the component on this host is ready (its /health/ready
    /// answers 200), 1 if not: a container HEALTHCHECK, without curl.
    Healthcheck {
        /// The component's port (default: $PORT, else 8000).
        #[arg(long, env = "PORT", default_value_t = 8000)]
        port: u16,
        /// What to ask: /health/ready, or /health/live for "the process answers".
        #[arg(long, default_value = "/health/ready")]
        path: String,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum UsersAction {
    /// Apply the database migrations and exit (the service also applies them at start).
    #[command(after_help = env_help(&[s::DATABASE_URL]))]
    Migrate,
    /// Print a new Ed25519 token signing key (PKCS#8 PEM) for JWT_SIGNING_KEY_FILE.
    Keygen {
        /// Write it to this file instead, readable by its owner only (0600);
        /// a key already there is kept, so running it again is harmless.
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, Subcommand)]
pub enum OrdersAction {
    /// Apply the database migrations and exit (the service also applies them at start).
    #[command(after_help = env_help(&[s::DATABASE_URL]))]
    Migrate,
}

fn parse_component(name: &str) -> Result<Component, String> {
    Component::ALL
        .into_iter()
        .find(|component| component.name() == name)
        .ok_or_else(|| format!("{name:?} is not one of gateway, users, products, orders"))
}

/// Settings every component reads.
const COMMON: &[Setting] = &[
    s::HOST,
    s::SHUTDOWN_GRACE,
    s::READINESS_INTERVAL,
    s::HEADER_READ_TIMEOUT,
    s::IDLE_TIMEOUT,
    s::BODY_READ_TIMEOUT,
    s::MAX_CONNECTIONS,
    s::SERVING_THREADS,
    s::LOG_FORMAT,
    s::RUST_LOG,
    s::OTEL_EXPORTER_OTLP_ENDPOINT,
    s::OTEL_SERVICE_NAME,
    s::OTEL_SDK_DISABLED,
    s::JAEGER_AGENT_HOST,
    s::ETCD_ENDPOINTS,
    s::ETCD_PREFIX,
    s::DNS_REFRESH,
    s::GATEWAY_DNS_REFRESH,
    s::ADVERTISE_URL,
    s::AUTH,
    s::GATEWAY_AUTH,
];
const UP: &[Setting] = &[
    s::DATA_DIR,
    users::config::JWT_SIGNING_KEY_FILE,
    s::JWT_ISSUER,
    users::config::JWT_TTL,
    users::config::USERS_ADMINS,
    users::config::USERS_MAX_HASHING,
    s::SERVICE_SECRET,
];
const GATEWAY: &[Setting] =
    &[s::PORT, s::USER_SERVICE_URL, s::PRODUCT_SERVICE_URL, s::ORDER_SERVICE_URL, s::JWT_ISSUER];
const USERS: &[Setting] = &[
    s::PORT,
    s::DATABASE_URL,
    users::config::JWT_SIGNING_KEY_FILE,
    s::JWT_ISSUER,
    users::config::JWT_TTL,
    users::config::USERS_ADMINS,
    users::config::USERS_MAX_HASHING,
    s::SERVICE_SECRET,
];
const PRODUCTS: &[Setting] = &[
    s::PORT,
    s::MONGO_URL,
    s::RABBITMQ_URL,
    s::RABBITMQ_PREFIX,
    s::USER_SERVICE_URL,
    s::ORDER_SERVICE_URL,
    products::config::PRODUCTS_HOLD_TTL,
    s::JWT_ISSUER,
    s::SERVICE_SECRET,
];
const ORDERS: &[Setting] = &[
    s::PORT,
    s::DATABASE_URL,
    s::RABBITMQ_URL,
    s::RABBITMQ_PREFIX,
    s::USER_SERVICE_URL,
    s::PRODUCT_SERVICE_URL,
    s::JWT_ISSUER,
    s::SERVICE_SECRET,
];
/// How hard a service tries when it calls another (products and orders do).
const CALLS: &[Setting] = &platform::call_policy::SERVICES.all();

/// The "Environment:" section of a subcommand's help.
fn env_help(own: &[Setting]) -> String {
    let mut text = String::from("Environment (also settable, lowercase, in the TOML file named by ");
    text.push_str(CONFIG_FILE_VAR);
    text.push_str("):\n");
    let width =
        own.iter().chain(COMMON).map(|setting| setting.name.len()).max().unwrap_or(0).max(CONFIG_FILE_VAR.len());
    for setting in own.iter().chain(COMMON) {
        text.push_str(&format!("  {:<width$} {}\n", setting.name, setting.help));
    }
    text.push_str(&format!(
        "  {CONFIG_FILE_VAR:<width$} path of an optional TOML file; the environment overrides it\n"
    ));
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_setting_is_documented_somewhere() {
        for setting in s::ALL.iter().chain(&meshwork::component_settings()) {
            let documented = [COMMON, UP, GATEWAY, USERS, PRODUCTS, ORDERS, CALLS, gateway::config::SETTINGS]
                .iter()
                .any(|list| list.iter().any(|listed| listed.name == setting.name));
            assert!(documented, "{} is in no subcommand's help", setting.name);
        }
    }
}
