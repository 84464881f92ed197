//! The gateway's settings: which upstream serves which proto service, the
//! descriptor sets beyond the compiled-in contract, body limit and CORS.

use std::path::PathBuf;

use platform::StartError;
use platform::config::Setting;
use platform::settings::{self, Settings};
use resilience::EndpointSource;

pub const GATEWAY_UPSTREAMS: Setting = Setting {
    name: "GATEWAY_UPSTREAMS",
    help: "more upstreams: pkg.Service=ENDPOINTS pairs separated by ';' (ENDPOINTS as for USER_SERVICE_URL)",
};
pub const GATEWAY_DESCRIPTOR_SETS: Setting = Setting {
    name: "GATEWAY_DESCRIPTOR_SETS",
    help: "extra descriptor set files (buf build -o / protoc --descriptor_set_out), comma-separated",
};
pub const GATEWAY_REFLECTION_REFRESH: Setting = Setting {
    name: "GATEWAY_REFLECTION_REFRESH",
    help: "how often services no descriptor set describes are learned again from their upstream's reflection (default 30s; also at once when their endpoints change)",
};
pub const GATEWAY_MAX_BODY_BYTES: Setting =
    Setting { name: "GATEWAY_MAX_BODY_BYTES", help: "largest accepted request body (default 1048576)" };
pub const GATEWAY_TRANSCODE_BYTES: Setting = Setting {
    name: "GATEWAY_TRANSCODE_BYTES",
    help: "request bytes turned into messages at once, at least GATEWAY_MAX_BODY_BYTES; a body that finds no room within 1s is refused with 503 (default: GATEWAY_MAX_BODY_BYTES)",
};
pub const GATEWAY_CORS_ORIGINS: Setting = Setting {
    name: "GATEWAY_CORS_ORIGINS",
    help: "origins allowed by CORS (gRPC-Web from browsers), comma-separated, or * (default: none)",
};

pub const GATEWAY_TIMEOUT: Setting =
    Setting { name: "GATEWAY_TIMEOUT", help: "deadline of a call, retries included (default 5s)" };
pub const GATEWAY_CONNECT_TIMEOUT: Setting =
    Setting { name: "GATEWAY_CONNECT_TIMEOUT", help: "time to connect to an endpoint (default 2s)" };
pub const GATEWAY_RETRIES: Setting =
    Setting { name: "GATEWAY_RETRIES", help: "retries of a call safe to repeat (default 3)" };
pub const GATEWAY_BREAKER_FAILURES: Setting = Setting {
    name: "GATEWAY_BREAKER_FAILURES",
    help: "consecutive failures that open an endpoint's breaker (default 5)",
};
pub const GATEWAY_BREAKER_OPEN: Setting =
    Setting { name: "GATEWAY_BREAKER_OPEN", help: "how long an open breaker refuses calls (default 60s)" };
pub const GATEWAY_BREAKER_TRIALS: Setting =
    Setting { name: "GATEWAY_BREAKER_TRIALS", help: "trial calls of a half-open breaker (default 3)" };
pub const GATEWAY_MAX_IN_FLIGHT: Setting =
    Setting { name: "GATEWAY_MAX_IN_FLIGHT", help: "calls in flight per upstream, the bulkhead (default 256)" };
pub const GATEWAY_MAX_QUEUED: Setting =
    Setting { name: "GATEWAY_MAX_QUEUED", help: "calls waiting for the bulkhead per upstream (default 64)" };
pub const GATEWAY_BALANCER: Setting =
    Setting { name: "GATEWAY_BALANCER", help: "endpoint choice: round_robin (default) or p2c (least loaded)" };
pub const GATEWAY_PUBLIC_METHODS: Setting = Setting {
    name: "GATEWAY_PUBLIC_METHODS",
    help: "methods opened to everyone beyond the contract's public ones, pkg.Service.Method comma-separated (never an internal one)",
};
pub const GATEWAY_INTERNAL_METHODS: Setting = Setting {
    name: "GATEWAY_INTERNAL_METHODS",
    help: "methods never served through the gateway beyond the contract's internal ones, pkg.Service.Method comma-separated",
};
pub const GATEWAY_RATE_LIMIT: Setting =
    Setting { name: "GATEWAY_RATE_LIMIT", help: "requests per second per client identity, 0 for none (default 100)" };
pub const GATEWAY_RATE_BURST: Setting =
    Setting { name: "GATEWAY_RATE_BURST", help: "requests a client may burst above the rate (default 200)" };
pub const GATEWAY_SIGN_IN_RATE: Setting = Setting {
    name: "GATEWAY_SIGN_IN_RATE",
    help: "calls per minute per client address to methods that check a password (Login), 0 for none (default 10)",
};
pub const GATEWAY_TOKEN_CHECK_RATE: Setting = Setting {
    name: "GATEWAY_TOKEN_CHECK_RATE",
    help: "signature checks per minute per client address, of tokens not verified before, 0 for none (default 1200)",
};
pub const GATEWAY_TRUSTED_PROXIES: Setting = Setting {
    name: "GATEWAY_TRUSTED_PROXIES",
    help: "IPs of proxies whose X-Forwarded-For is believed, comma-separated (default: none)",
};

/// The gateway's calls to its upstreams, as the services' calls to each
/// other are set by `MESHWORK_CALL_*`.
const POLICY: platform::call_policy::PolicySettings = platform::call_policy::PolicySettings {
    timeout: GATEWAY_TIMEOUT,
    connect_timeout: GATEWAY_CONNECT_TIMEOUT,
    retries: GATEWAY_RETRIES,
    breaker_failures: GATEWAY_BREAKER_FAILURES,
    breaker_open: GATEWAY_BREAKER_OPEN,
    breaker_trials: GATEWAY_BREAKER_TRIALS,
    max_in_flight: GATEWAY_MAX_IN_FLIGHT,
    max_queued: GATEWAY_MAX_QUEUED,
    balancer: GATEWAY_BALANCER,
};

/// Every setting this crate reads itself.
pub const SETTINGS: &[Setting] = &[
    GATEWAY_UPSTREAMS,
    GATEWAY_DESCRIPTOR_SETS,
    GATEWAY_REFLECTION_REFRESH,
    GATEWAY_MAX_BODY_BYTES,
    GATEWAY_TRANSCODE_BYTES,
    GATEWAY_CORS_ORIGINS,
    GATEWAY_TIMEOUT,
    GATEWAY_CONNECT_TIMEOUT,
    GATEWAY_RETRIES,
    GATEWAY_BREAKER_FAILURES,
    GATEWAY_BREAKER_OPEN,
    GATEWAY_BREAKER_TRIALS,
    GATEWAY_MAX_IN_FLIGHT,
    GATEWAY_MAX_QUEUED,
    GATEWAY_BALANCER,
    GATEWAY_PUBLIC_METHODS,
    GATEWAY_INTERNAL_METHODS,
    GATEWAY_RATE_LIMIT,
    GATEWAY_RATE_BURST,
    GATEWAY_SIGN_IN_RATE,
    GATEWAY_TOKEN_CHECK_RATE,
    GATEWAY_TRUSTED_PROXIES,
];

/// The shop's services and the settings that locate them.
const SHOP_SERVICES: [(&str, Setting); 3] = [
    ("shop.users.v1.UserService", settings::USER_SERVICE_URL),
    ("shop.products.v1.ProductService", settings::PRODUCT_SERVICE_URL),
    ("shop.orders.v1.OrderService", settings::ORDER_SERVICE_URL),
];

#[derive(Debug, Clone)]
pub enum Cors {
    None,
    Any,
    Origins(Vec<String>),
}

#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// (proto service, where its endpoints come from) pairs.
    pub upstreams: Vec<(String, EndpointSource)>,
    pub policy: resilience::Policy,
    /// How `dns://` and `etcd://` sources are followed.
    pub discovery: platform::discovery::Discovery,
    pub auth: crate::auth::AuthConfig,
    pub rate_limit: crate::ratelimit::RateLimitConfig,
    /// Per client address, at methods that check a password.
    pub sign_in_limit: crate::ratelimit::RateLimitConfig,
    /// Signature checks per client address (see `guard::admit`).
    pub token_check_limit: crate::ratelimit::RateLimitConfig,
    pub descriptor_files: Vec<PathBuf>,
    /// How often services learned from reflection are asked again.
    pub reflection_refresh: std::time::Duration,
    pub max_body_bytes: usize,
    /// Bytes of request bodies being turned into messages at once (see
    /// [`crate::transcoding`]).
    pub transcode_bytes: usize,
    pub cors: Cors,
}

impl GatewayConfig {
    /// From settings; in production the three shop URLs are required.
    pub fn from_settings(settings: &Settings) -> Result<Self, StartError> {
        let why = "the gateway routes its service's calls there";
        let sources = [
            Settings::require(&settings.user_service_url, settings::USER_SERVICE_URL, why)?,
            Settings::require(&settings.product_service_url, settings::PRODUCT_SERVICE_URL, why)?,
            Settings::require(&settings.order_service_url, settings::ORDER_SERVICE_URL, why)?,
        ];
        Self::with_shop_sources(settings, sources)
    }

    /// From settings, with the users, products and orders URLs given (as
    /// `meshwork up` knows them); auth is optional unless `MESHWORK_AUTH` says
    /// otherwise.
    pub fn embedded(settings: &Settings, urls: [String; 3]) -> Result<Self, StartError> {
        let mut config = Self::with_shop_sources(settings, urls.map(EndpointSource::single))?;
        config.auth.mode = settings.auth_mode.unwrap_or(crate::auth::AuthMode::Optional);
        Ok(config)
    }

    /// From settings, with where the users, products and orders services are.
    pub fn with_shop_sources(settings: &Settings, sources: [EndpointSource; 3]) -> Result<Self, StartError> {
        let layers = &settings.layers;
        let discovery = platform::discovery::Discovery::from_settings(settings);
        let mut upstreams = Vec::new();
        for ((service, setting), source) in SHOP_SERVICES.iter().zip(sources) {
            discovery.check(&source).map_err(|reason| settings.invalid(*setting, reason))?;
            upstreams.push((service.to_string(), source));
        }
        if let Some(extra) = layers.parse_with(GATEWAY_UPSTREAMS.name, parse_upstreams)? {
            for (_, source) in &extra {
                discovery.check(source).map_err(|reason| settings.invalid(GATEWAY_UPSTREAMS, reason))?;
            }
            upstreams.extend(extra);
        }
        let descriptor_files = layers
            .string(GATEWAY_DESCRIPTOR_SETS.name)
            .map(|list| list.split(',').map(str::trim).filter(|p| !p.is_empty()).map(PathBuf::from).collect())
            .unwrap_or_default();
        let reflection_refresh =
            layers.duration_or(GATEWAY_REFLECTION_REFRESH.name, std::time::Duration::from_secs(30))?;
        if reflection_refresh.is_zero() {
            return Err(settings.invalid(GATEWAY_REFLECTION_REFRESH, "must be more than zero").into());
        }
        let max_body_bytes = layers.parse_or(GATEWAY_MAX_BODY_BYTES.name, 1024 * 1024usize)?;
        let transcode_bytes = layers.parse_or(GATEWAY_TRANSCODE_BYTES.name, max_body_bytes)?;
        if transcode_bytes < max_body_bytes {
            let why = format!(
                "must be at least GATEWAY_MAX_BODY_BYTES ({max_body_bytes}), or the largest bodies are never read"
            );
            return Err(settings.invalid(GATEWAY_TRANSCODE_BYTES, why).into());
        }
        let cors = match layers.string(GATEWAY_CORS_ORIGINS.name) {
            None => Cors::None,
            Some(origins) if origins.trim() == "*" => Cors::Any,
            Some(origins) => {
                Cors::Origins(origins.split(',').map(|o| o.trim().to_owned()).filter(|o| !o.is_empty()).collect())
            }
        };
        let policy = platform::call_policy::parse(layers, &POLICY)?;
        let mut auth = crate::auth::AuthConfig::new(
            settings.auth_mode.unwrap_or(crate::auth::AuthMode::Required),
            settings.jwt_issuer.clone(),
        );
        let methods = |setting: Setting| {
            layers.string(setting.name).map_or_else(Default::default, |list| {
                list.split(',').map(|m| m.trim().to_owned()).filter(|m| !m.is_empty()).collect()
            })
        };
        auth.public_methods = methods(GATEWAY_PUBLIC_METHODS);
        auth.internal_methods = methods(GATEWAY_INTERNAL_METHODS);
        let rate: u32 = layers.parse_or(GATEWAY_RATE_LIMIT.name, 100)?;
        let burst: u32 = layers.parse_or(GATEWAY_RATE_BURST.name, 200)?;
        let rate_limit = crate::ratelimit::RateLimitConfig {
            rate: std::num::NonZeroU32::new(rate),
            period: std::time::Duration::from_secs(1),
            burst: std::num::NonZeroU32::new(burst)
                .ok_or_else(|| settings.invalid(GATEWAY_RATE_BURST, "must be at least 1"))?,
            trusted_proxies: layers
                .parse_with(GATEWAY_TRUSTED_PROXIES.name, |list| {
                    list.split(',')
                        .map(str::trim)
                        .filter(|ip| !ip.is_empty())
                        .map(|ip| ip.parse().map_err(|_| format!("{ip:?} is not an IP address")))
                        .collect::<Result<Vec<_>, _>>()
                })?
                .unwrap_or_default(),
        };
        // A minute's worth at once, then one every 60 s / rate.
        let per_minute = |rate: Option<std::num::NonZeroU32>| crate::ratelimit::RateLimitConfig {
            rate,
            period: std::time::Duration::from_secs(60),
            burst: rate.unwrap_or(std::num::NonZeroU32::MIN),
            trusted_proxies: rate_limit.trusted_proxies.clone(),
        };
        let sign_in_limit = per_minute(std::num::NonZeroU32::new(layers.parse_or(GATEWAY_SIGN_IN_RATE.name, 10)?));
        let token_check_limit =
            per_minute(std::num::NonZeroU32::new(layers.parse_or(GATEWAY_TOKEN_CHECK_RATE.name, 1200)?));
        Ok(Self {
            upstreams,
            policy,
            discovery,
            auth,
            rate_limit,
            sign_in_limit,
            token_check_limit,
            descriptor_files,
            reflection_refresh,
            max_body_bytes,
            transcode_bytes,
            cors,
        })
    }
}

fn parse_upstreams(value: &str) -> Result<Vec<(String, EndpointSource)>, String> {
    value
        .split(';')
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (service, endpoints) =
                pair.split_once('=').ok_or_else(|| format!("{pair:?} is not pkg.Service=ENDPOINTS"))?;
            Ok((service.trim().to_owned(), EndpointSource::parse(endpoints.trim())?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use platform::Env;

    fn load(pairs: &[(&str, &str)]) -> Result<GatewayConfig, StartError> {
        let settings = Settings::load(&Env::from_pairs(pairs.iter().copied()), SETTINGS).unwrap();
        GatewayConfig::from_settings(&settings)
    }

    const SHOP: [(&str, &str); 3] = [
        ("USER_SERVICE_URL", "http://users:8001"),
        ("PRODUCT_SERVICE_URL", "http://products:8002"),
        ("ORDER_SERVICE_URL", "http://orders:8003"),
    ];

    #[test]
    fn the_shop_urls_are_required() {
        let error = load(&SHOP[1..]).unwrap_err().to_string();
        assert!(error.contains("USER_SERVICE_URL"), "{error}");
    }

    #[test]
    fn extra_upstreams_and_options_parse() {
        let mut pairs = SHOP.to_vec();
        pairs.extend([
            ("GATEWAY_UPSTREAMS", "acme.v1.Widgets=http://w1:9000,http://w2:9000; acme.v1.Gears=dns://gears:9001"),
            ("GATEWAY_MAX_BODY_BYTES", "2048"),
            ("GATEWAY_CORS_ORIGINS", "https://a.example, https://b.example"),
        ]);
        let config = load(&pairs).unwrap();
        assert_eq!(config.upstreams.len(), 5);
        assert_eq!(
            config.upstreams[3].1,
            EndpointSource::Static(vec!["http://w1:9000".to_owned(), "http://w2:9000".to_owned()])
        );
        assert_eq!(config.upstreams[4].1, EndpointSource::Dns { host: "gears".to_owned(), port: 9001 });
        assert_eq!(config.max_body_bytes, 2048);
        assert_eq!(config.transcode_bytes, 2048, "room for the largest body");
        assert!(matches!(config.cors, Cors::Origins(ref o) if o.len() == 2));
    }

    #[test]
    fn the_transcoding_budget_holds_the_largest_body() {
        let with =
            |budget| [&SHOP[..], &[("GATEWAY_MAX_BODY_BYTES", "2048"), ("GATEWAY_TRANSCODE_BYTES", budget)]].concat();
        assert_eq!(load(&with("3000")).unwrap().transcode_bytes, 3000);
        let error = load(&with("2047")).unwrap_err().to_string();
        assert!(error.contains("GATEWAY_TRANSCODE_BYTES") && error.contains("at least"), "{error}");
    }

    #[test]
    fn the_calls_to_upstreams_take_the_gateways_own_policy_settings() {
        let mut pairs = SHOP.to_vec();
        pairs.extend([("GATEWAY_BREAKER_OPEN", "1s"), ("GATEWAY_RETRIES", "0"), ("MESHWORK_CALL_BREAKER_OPEN", "9s")]);
        let config = load(&pairs).unwrap();
        assert_eq!(config.policy.breaker.open_for, std::time::Duration::from_secs(1), "not the services' setting");
        assert_eq!(config.policy.max_retries, 0);
        let mut pairs = SHOP.to_vec();
        pairs.push(("GATEWAY_BREAKER_TRIALS", "0"));
        let error = load(&pairs).unwrap_err().to_string();
        assert!(error.contains("GATEWAY_BREAKER_TRIALS") && error.contains("at least 1"), "{error}");
    }

    #[test]
    fn malformed_upstreams_are_named() {
        let mut pairs = SHOP.to_vec();
        pairs.push(("GATEWAY_UPSTREAMS", "acme.v1.Widgets"));
        assert!(load(&pairs).unwrap_err().to_string().contains("GATEWAY_UPSTREAMS"));
    }
}
