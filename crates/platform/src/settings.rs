//! The settings every meshwork process understands, under the template's
//! names (`PORT`, `DATABASE_URL`, ...), parsed and checked in one place.
//!
//! Components read the typed fields they need; settings that belong to one
//! component only are parsed by that component from [`Settings::layers`] with
//! the same error reporting.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use resilience::EndpointSource;

use crate::config::{ConfigError, Env, Layers, Secret, Setting};
use crate::telemetry::{LogFormat, TelemetrySettings};

macro_rules! settings {
    ($($ident:ident = $name:literal: $help:literal;)*) => {
        $(#[doc = $help] pub const $ident: Setting = Setting { name: $name, help: $help };)*
        /// Every setting in this module, for `--help` and for checking file keys.
        pub const ALL: &[Setting] = &[$($ident),*];
    };
}

settings! {
    PORT = "PORT": "port to serve gRPC and HTTP on (default: the component's, 8000-8003)";
    HOST = "MESHWORK_HOST": "address to bind (default 0.0.0.0; 127.0.0.1 for `up`)";
    DATA_DIR = "MESHWORK_DATA_DIR": "directory for `up`'s embedded stores and keys (default ./meshwork-data)";
    DATABASE_URL = "DATABASE_URL": "PostgreSQL URL (postgres://user:pass@host/db)";
    MONGO_URL = "MONGO_URL": "MongoDB URL (mongodb://host:27017/db)";
    RABBITMQ_URL = "RABBITMQ_URL": "RabbitMQ URL (amqp://user:pass@host:5672/vhost)";
    RABBITMQ_PREFIX = "RABBITMQ_PREFIX": "prefix of the exchange and queue names (default meshwork.)";
    USER_SERVICE_URL = "USER_SERVICE_URL": "users service: http://users:8001 (comma-separated for several), dns://users-headless:8001 or etcd://users";
    PRODUCT_SERVICE_URL = "PRODUCT_SERVICE_URL": "products service: http://products:8002, dns://host:port or etcd://products";
    ORDER_SERVICE_URL = "ORDER_SERVICE_URL": "orders service: http://orders:8003, dns://host:port or etcd://orders";
    DNS_REFRESH = "MESHWORK_DNS_REFRESH": "how often dns:// service addresses are re-resolved (default 10s)";
    GATEWAY_DNS_REFRESH = "GATEWAY_DNS_REFRESH": "older name of MESHWORK_DNS_REFRESH";
    ETCD_ENDPOINTS = "ETCD_ENDPOINTS": "etcd to register in and discover from (http://etcd:2379, comma-separated); needs the etcd build";
    ETCD_PREFIX = "MESHWORK_ETCD_PREFIX": "key prefix of registrations in etcd (default /meshwork/services/)";
    ADVERTISE_URL = "MESHWORK_ADVERTISE_URL": "URL other instances reach this one at, registered in etcd (http://10.0.0.5:8002)";
    JWT_ISSUER = "JWT_ISSUER": "`iss` of access tokens: set by users, required by the gateway and the services (default meshwork)";
    AUTH = "MESHWORK_AUTH": "required: callers are held to the contract's access rules (default); optional: callers without a token are trusted (development; `up`'s default)";
    GATEWAY_AUTH = "GATEWAY_AUTH": "older name of MESHWORK_AUTH";
    SERVICE_SECRET = "MESHWORK_SERVICE_SECRET": "secret (at least 32 bytes) the services share to prove to each other that they are services; users, products and orders need it (`up` generates one)";
    CALL_TIMEOUT = "MESHWORK_CALL_TIMEOUT": "deadline of a call to another service, retries included (default 5s; the gateway's is GATEWAY_TIMEOUT)";
    CALL_CONNECT_TIMEOUT = "MESHWORK_CALL_CONNECT_TIMEOUT": "time to connect to another service's endpoint (default 2s)";
    CALL_RETRIES = "MESHWORK_CALL_RETRIES": "retries of a call to another service that is safe to repeat (default 3)";
    CALL_BREAKER_FAILURES = "MESHWORK_CALL_BREAKER_FAILURES": "consecutive failures that open the breaker of another service's endpoint (default 5)";
    CALL_BREAKER_OPEN = "MESHWORK_CALL_BREAKER_OPEN": "how long an open breaker refuses calls to another service's endpoint (default 60s)";
    CALL_BREAKER_TRIALS = "MESHWORK_CALL_BREAKER_TRIALS": "trial calls of a half-open breaker (default 3)";
    CALL_MAX_IN_FLIGHT = "MESHWORK_CALL_MAX_IN_FLIGHT": "calls in flight to each other service, the bulkhead (default 256)";
    CALL_MAX_QUEUED = "MESHWORK_CALL_MAX_QUEUED": "calls waiting for the bulkhead of each other service (default 64)";
    CALL_BALANCER = "MESHWORK_CALL_BALANCER": "endpoint choice for calls to another service: round_robin (default) or p2c (least loaded)";
    SHUTDOWN_GRACE = "MESHWORK_SHUTDOWN_GRACE": "how long in-flight calls may finish after SIGTERM (default 10s)";
    READINESS_INTERVAL = "MESHWORK_READINESS_INTERVAL": "how often dependency checks refresh gRPC health (default 5s)";
    HEADER_READ_TIMEOUT = "MESHWORK_HEADER_READ_TIMEOUT": "how long a client may take to send a request's headers (default 10s)";
    IDLE_TIMEOUT = "MESHWORK_IDLE_TIMEOUT": "a connection with no request in flight this long is closed (default 60s)";
    BODY_READ_TIMEOUT = "MESHWORK_BODY_READ_TIMEOUT": "a request body that sends nothing this long fails (default 30s)";
    MAX_CONNECTIONS = "MESHWORK_MAX_CONNECTIONS": "connections a server holds open at once; more are closed at once (default 10000)";
    SERVING_THREADS = "MESHWORK_SERVING_THREADS": "threads that serve connections, each with a runtime of its own (default: one per core for the gateway, 0 for the services: the shared work-stealing runtime)";
    LOG_FORMAT = "MESHWORK_LOG_FORMAT": "log format: auto (pretty on a terminal, else json), pretty or json";
    RUST_LOG = "RUST_LOG": "log filter (default info)";
    OTEL_EXPORTER_OTLP_ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT": "OTLP/gRPC endpoint for traces (http://jaeger:4317)";
    OTEL_SERVICE_NAME = "OTEL_SERVICE_NAME": "service name on exported traces (default: the component)";
    OTEL_SDK_DISABLED = "OTEL_SDK_DISABLED": "true disables trace export";
    JAEGER_AGENT_HOST = "JAEGER_AGENT_HOST": "Jaeger host; traces go to its OTLP port 4317 when no OTLP endpoint is set";
}

/// Checked settings shared by every component.
#[derive(Debug, Clone)]
pub struct Settings {
    pub host: Option<IpAddr>,
    pub port: Option<u16>,
    pub data_dir: PathBuf,
    pub database_url: Option<Secret<String>>,
    pub mongo_url: Option<Secret<String>>,
    pub rabbitmq_url: Option<Secret<String>>,
    pub rabbitmq_prefix: String,
    pub user_service_url: Option<EndpointSource>,
    pub product_service_url: Option<EndpointSource>,
    pub order_service_url: Option<EndpointSource>,
    /// How often `dns://` sources are re-resolved.
    pub dns_refresh: Duration,
    pub jwt_issuer: String,
    /// None: the component's default (required; optional under `up`).
    pub auth_mode: Option<crate::access::AuthMode>,
    pub service_secret: Option<Secret<String>>,
    /// Empty: no etcd.
    pub etcd_endpoints: Vec<String>,
    pub etcd_prefix: String,
    pub advertise_url: Option<String>,
    pub shutdown_grace: Duration,
    pub readiness_interval: Duration,
    pub connection_limits: crate::connections::ConnectionLimits,
    /// How hard the services try when they call each other (`MESHWORK_CALL_*`).
    pub call_policy: resilience::Policy,
    /// Threads that serve connections (0: the shared runtime); `None`:
    /// the component's default.
    pub serving_threads: Option<usize>,
    pub telemetry: TelemetrySettings,
    /// The raw layers, for component-specific settings.
    pub layers: Layers,
}

fn connection_limits(layers: &Layers) -> Result<crate::connections::ConnectionLimits, ConfigError> {
    let defaults = crate::connections::ConnectionLimits::default();
    Ok(crate::connections::ConnectionLimits {
        header_read: layers.positive_duration_or(HEADER_READ_TIMEOUT.name, defaults.header_read)?,
        idle: layers.positive_duration_or(IDLE_TIMEOUT.name, defaults.idle)?,
        body_read: layers.positive_duration_or(BODY_READ_TIMEOUT.name, defaults.body_read)?,
        max_connections: layers.count_or(MAX_CONNECTIONS.name, defaults.max_connections)?,
    })
}

impl Settings {
    /// Loads and checks every setting in [`ALL`] plus `extra` (settings that
    /// components parse themselves from [`Settings::layers`]).
    pub fn load(env: &Env, extra: &[Setting]) -> Result<Self, ConfigError> {
        let known: Vec<Setting> = ALL.iter().chain(extra).copied().collect();
        let layers = Layers::load(env, &known)?;
        let service_url = |setting: Setting| layers.parse_with(setting.name, EndpointSource::parse);
        let otlp_endpoint = match layers.url(OTEL_EXPORTER_OTLP_ENDPOINT.name, &["http", "https"])? {
            Some(url) => Some(url.expose().clone()),
            None => layers.parse_with(JAEGER_AGENT_HOST.name, |host| {
                if host.contains(['/', ' ']) {
                    Err("expected a host name, such as jaeger".to_owned())
                } else {
                    Ok(format!("http://{host}:4317"))
                }
            })?,
        };
        let export_disabled = layers.parse_or(OTEL_SDK_DISABLED.name, false)?;
        Ok(Self {
            host: layers.parse_with(HOST.name, |v| v.parse().map_err(|e| format!("not an IP address: {e}")))?,
            port: layers.parse_with(PORT.name, |v| v.parse().map_err(|e| format!("not a port number: {e}")))?,
            data_dir: layers.string(DATA_DIR.name).unwrap_or_else(|| "meshwork-data".to_owned()).into(),
            database_url: layers.url(DATABASE_URL.name, &["postgres", "postgresql"])?,
            mongo_url: layers.url(MONGO_URL.name, &["mongodb", "mongodb+srv"])?,
            rabbitmq_url: layers.url(RABBITMQ_URL.name, &["amqp", "amqps"])?,
            rabbitmq_prefix: layers
                .parse_with(RABBITMQ_PREFIX.name, |prefix| {
                    if prefix.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) {
                        Ok(prefix.to_owned())
                    } else {
                        Err("may contain only letters, digits, '.', '_' and '-'".to_owned())
                    }
                })?
                .unwrap_or_else(|| "meshwork.".to_owned()),
            user_service_url: service_url(USER_SERVICE_URL)?,
            product_service_url: service_url(PRODUCT_SERVICE_URL)?,
            order_service_url: service_url(ORDER_SERVICE_URL)?,
            dns_refresh: match layers.raw(DNS_REFRESH.name) {
                Some(_) => layers.duration_or(DNS_REFRESH.name, Duration::from_secs(10))?,
                None => layers.duration_or(GATEWAY_DNS_REFRESH.name, Duration::from_secs(10))?,
            },
            jwt_issuer: layers.string(JWT_ISSUER.name).unwrap_or_else(|| "meshwork".to_owned()),
            auth_mode: match layers.parse_with(AUTH.name, str::parse)? {
                Some(mode) => Some(mode),
                None => layers.parse_with(GATEWAY_AUTH.name, str::parse)?,
            },
            service_secret: layers.parse_with(SERVICE_SECRET.name, |secret| {
                if secret.len() < crate::access::MIN_SECRET_BYTES {
                    Err(format!("must be at least {} bytes", crate::access::MIN_SECRET_BYTES))
                } else {
                    Ok(Secret::new(secret.to_owned()))
                }
            })?,
            etcd_endpoints: layers
                .parse_with(ETCD_ENDPOINTS.name, |list| {
                    let endpoints: Vec<String> =
                        list.split(',').map(|e| e.trim().to_owned()).filter(|e| !e.is_empty()).collect();
                    if !cfg!(feature = "etcd") {
                        return Err("this meshwork was built without etcd (cargo build --features etcd)".to_owned());
                    }
                    Ok(endpoints)
                })?
                .unwrap_or_default(),
            etcd_prefix: layers.string(ETCD_PREFIX.name).unwrap_or_else(|| "/meshwork/services/".to_owned()),
            advertise_url: layers.parse_with(ADVERTISE_URL.name, |url| {
                let uri: http::Uri = url.parse().map_err(|e| format!("not a URL: {e}"))?;
                match (uri.scheme_str(), uri.authority()) {
                    (Some("http"), Some(_)) => Ok(url.trim_end_matches('/').to_owned()),
                    // The URL other instances call.
                    (Some("https"), _) => Err(resilience::endpoints::NO_TLS.to_owned()),
                    _ => Err("expected http://host:port".to_owned()),
                }
            })?,
            shutdown_grace: layers.duration_or(SHUTDOWN_GRACE.name, Duration::from_secs(10))?,
            readiness_interval: layers.duration_or(READINESS_INTERVAL.name, Duration::from_secs(5))?,
            connection_limits: connection_limits(&layers)?,
            call_policy: crate::call_policy::parse(&layers, &crate::call_policy::SERVICES)?,
            serving_threads: layers.parse_with(SERVING_THREADS.name, |value| {
                value.parse::<usize>().map_err(|_| "expected a whole number (0: the shared runtime)".to_owned())
            })?,
            telemetry: TelemetrySettings {
                service_name: layers.string(OTEL_SERVICE_NAME.name),
                log_format: layers.parse_or(LOG_FORMAT.name, LogFormat::Auto)?,
                log_filter: layers.string(RUST_LOG.name).unwrap_or_else(|| "info".to_owned()),
                otlp_endpoint: otlp_endpoint.filter(|_| !export_disabled),
            },
            layers,
        })
    }

    /// An error about `setting`'s value found when using it (a key file that
    /// does not parse, a URL the driver refuses), naming where it was set.
    pub fn invalid(&self, setting: Setting, reason: impl Into<String>) -> ConfigError {
        let origin = self.layers.raw(setting.name).map_or(crate::config::Origin::Environment, |(_, o)| o.clone());
        ConfigError::Invalid { name: setting.name.to_owned(), origin, reason: reason.into() }
    }

    /// Fails unless `setting` is set: for what a component cannot run without.
    pub fn require<T: Clone>(value: &Option<T>, setting: Setting, why: &str) -> Result<T, ConfigError> {
        value.clone().ok_or_else(|| ConfigError::Missing { name: setting.name.to_owned(), reason: why.to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        Settings::load(&Env::from_pairs(pairs.iter().copied()), &[])
    }

    #[test]
    fn template_variables_are_read() {
        let settings = load(&[
            ("PORT", "9001"),
            ("DATABASE_URL", "postgres://localhost/test"),
            ("MONGO_URL", "mongodb://localhost:27017/shop"),
            ("RABBITMQ_URL", "amqp://guest:guest@localhost:5672/%2f"),
            ("USER_SERVICE_URL", "http://users:8001/"),
            ("PRODUCT_SERVICE_URL", "http://products-1:8002, http://products-2:8002"),
            ("ORDER_SERVICE_URL", "dns://orders-headless:8003"),
            ("JAEGER_AGENT_HOST", "jaeger"),
        ])
        .unwrap();
        let url = |source: &Option<EndpointSource>| source.as_ref().map(ToString::to_string);
        assert_eq!(
            url(&settings.product_service_url).as_deref(),
            Some("http://products-1:8002,http://products-2:8002")
        );
        assert_eq!(url(&settings.order_service_url).as_deref(), Some("dns://orders-headless:8003"));
        assert_eq!(settings.port, Some(9001));
        assert_eq!(settings.database_url.unwrap().expose(), "postgres://localhost/test");
        assert_eq!(url(&settings.user_service_url).as_deref(), Some("http://users:8001"));
        assert_eq!(settings.telemetry.otlp_endpoint.as_deref(), Some("http://jaeger:4317"));
    }

    #[test]
    fn connection_limits_have_defaults_and_can_be_set() {
        assert_eq!(load(&[]).unwrap().connection_limits, crate::connections::ConnectionLimits::default());
        let limits = load(&[
            ("MESHWORK_HEADER_READ_TIMEOUT", "5s"),
            ("MESHWORK_IDLE_TIMEOUT", "2m"),
            ("MESHWORK_BODY_READ_TIMEOUT", "500ms"),
            ("MESHWORK_MAX_CONNECTIONS", "20000"),
        ])
        .unwrap()
        .connection_limits;
        assert_eq!(
            (limits.header_read, limits.idle, limits.body_read, limits.max_connections),
            (Duration::from_secs(5), Duration::from_secs(120), Duration::from_millis(500), 20_000)
        );
    }

    #[test]
    fn the_services_calls_to_each_other_take_their_policy_from_the_call_settings() {
        let defaults = resilience::Policy::default();
        let settings = load(&[
            ("MESHWORK_CALL_TIMEOUT", "2s"),
            ("MESHWORK_CALL_RETRIES", "1"),
            ("MESHWORK_CALL_BREAKER_OPEN", "10s"),
            ("MESHWORK_CALL_MAX_QUEUED", "0"),
            ("MESHWORK_CALL_BALANCER", "p2c"),
        ])
        .unwrap();
        let policy = &settings.call_policy;
        assert_eq!((policy.timeout, policy.max_retries), (Duration::from_secs(2), 1));
        assert_eq!(policy.breaker.open_for, Duration::from_secs(10));
        assert_eq!(policy.breaker.failure_threshold, defaults.breaker.failure_threshold, "unset: the default");
        assert_eq!(policy.bulkhead.max_queued, 0, "no queue is a choice, not a mistake");
        assert_eq!(policy.strategy, resilience::Strategy::PowerOfTwoChoices);
    }

    #[test]
    fn otlp_endpoint_wins_over_jaeger_host_and_can_be_disabled() {
        let settings =
            load(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"), ("JAEGER_AGENT_HOST", "jaeger")]).unwrap();
        assert_eq!(settings.telemetry.otlp_endpoint.as_deref(), Some("http://collector:4317"));
        let settings = load(&[("JAEGER_AGENT_HOST", "jaeger"), ("OTEL_SDK_DISABLED", "true")]).unwrap();
        assert_eq!(settings.telemetry.otlp_endpoint, None);
    }

    #[test]
    fn services_can_be_discovered_through_etcd_and_dns() {
        let settings = load(&[("PRODUCT_SERVICE_URL", "etcd://products"), ("GATEWAY_DNS_REFRESH", "3s")]).unwrap();
        assert_eq!(settings.product_service_url, Some(EndpointSource::Etcd { component: "products".to_owned() }));
        assert_eq!(settings.dns_refresh, Duration::from_secs(3), "the older name still counts");
        let settings = load(&[("MESHWORK_DNS_REFRESH", "1s"), ("GATEWAY_DNS_REFRESH", "3s")]).unwrap();
        assert_eq!(settings.dns_refresh, Duration::from_secs(1));
    }

    #[test]
    fn each_invalid_setting_is_named() {
        for (name, value) in [
            ("PORT", "http"),
            ("MESHWORK_HOST", "localhost:80"),
            ("DATABASE_URL", "mysql://db"),
            ("MONGO_URL", "postgres://db"),
            ("RABBITMQ_URL", "localhost"),
            ("USER_SERVICE_URL", "users:8001"),
            ("PRODUCT_SERVICE_URL", "ftp://products"),
            ("ORDER_SERVICE_URL", "not a url"),
            ("ORDER_SERVICE_URL", "dns://orders"),
            ("ORDER_SERVICE_URL", "dns://a:1,http://b:2"),
            ("ORDER_SERVICE_URL", "https://orders:8003"),
            ("MESHWORK_ADVERTISE_URL", "https://10.0.0.5:8002"),
            ("MESHWORK_ADVERTISE_URL", "10.0.0.5:8002"),
            ("MESHWORK_SHUTDOWN_GRACE", "forever"),
            ("MESHWORK_READINESS_INTERVAL", "-5"),
            ("MESHWORK_LOG_FORMAT", "xml"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317"),
            ("OTEL_SDK_DISABLED", "maybe"),
            ("JAEGER_AGENT_HOST", "http://jaeger/"),
            ("MESHWORK_AUTH", "sometimes"),
            ("MESHWORK_SERVICE_SECRET", "too short"),
            ("MESHWORK_HEADER_READ_TIMEOUT", "0s"),
            ("MESHWORK_IDLE_TIMEOUT", "soon"),
            ("MESHWORK_BODY_READ_TIMEOUT", "0"),
            ("MESHWORK_MAX_CONNECTIONS", "0"),
            ("MESHWORK_MAX_CONNECTIONS", "many"),
            ("MESHWORK_CALL_TIMEOUT", "0s"),
            ("MESHWORK_CALL_CONNECT_TIMEOUT", "later"),
            ("MESHWORK_CALL_RETRIES", "-1"),
            ("MESHWORK_CALL_BREAKER_FAILURES", "0"),
            ("MESHWORK_CALL_BREAKER_OPEN", "0"),
            ("MESHWORK_CALL_BREAKER_TRIALS", "0"),
            ("MESHWORK_CALL_MAX_IN_FLIGHT", "0"),
            ("MESHWORK_CALL_MAX_QUEUED", "some"),
            ("MESHWORK_CALL_BALANCER", "random"),
        ] {
            let message = load(&[(name, value)]).unwrap_err().to_string();
            assert!(message.contains(name), "{name}={value}: {message}");
        }
    }

    #[test]
    fn missing_required_setting_is_named() {
        let settings = load(&[]).unwrap();
        let message = Settings::require(&settings.database_url, DATABASE_URL, "the users store").unwrap_err();
        assert!(message.to_string().contains("DATABASE_URL"), "{message}");
    }
}
