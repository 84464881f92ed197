//! The gateway's settings: which upstream serves which proto service, the
//! descriptor sets beyond the compiled-in contract, body limit and CORS.

use std::path::PathBuf;

use platform::StartError;
use platform::config::Setting;
use platform::settings::{self, Settings};

pub const GATEWAY_UPSTREAMS: Setting = Setting {
    name: "GATEWAY_UPSTREAMS",
    help: "more upstreams, as pkg.Service=http://host:port pairs separated by commas",
};
pub const GATEWAY_DESCRIPTOR_SETS: Setting = Setting {
    name: "GATEWAY_DESCRIPTOR_SETS",
    help: "extra descriptor set files (buf build -o / protoc --descriptor_set_out), comma-separated",
};
pub const GATEWAY_MAX_BODY_BYTES: Setting =
    Setting { name: "GATEWAY_MAX_BODY_BYTES", help: "largest accepted request body (default 1048576)" };
pub const GATEWAY_CORS_ORIGINS: Setting = Setting {
    name: "GATEWAY_CORS_ORIGINS",
    help: "origins allowed by CORS (gRPC-Web from browsers), comma-separated, or * (default: none)",
};

/// Every setting this crate reads itself.
pub const SETTINGS: &[Setting] =
    &[GATEWAY_UPSTREAMS, GATEWAY_DESCRIPTOR_SETS, GATEWAY_MAX_BODY_BYTES, GATEWAY_CORS_ORIGINS];

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
    /// (proto service, upstream URL) pairs.
    pub upstreams: Vec<(String, String)>,
    pub descriptor_files: Vec<PathBuf>,
    pub max_body_bytes: usize,
    pub cors: Cors,
}

impl GatewayConfig {
    /// From settings; in production the three shop URLs are required.
    pub fn from_settings(settings: &Settings) -> Result<Self, StartError> {
        let mut urls = Vec::new();
        for ((_, setting), url) in SHOP_SERVICES.iter().zip([
            &settings.user_service_url,
            &settings.product_service_url,
            &settings.order_service_url,
        ]) {
            urls.push(Settings::require(url, *setting, "the gateway routes its service's calls there")?);
        }
        Self::with_shop_urls(settings, [urls[0].clone(), urls[1].clone(), urls[2].clone()])
    }

    /// From settings, with the users, products and orders URLs given (as
    /// `meshwork up` knows them).
    pub fn with_shop_urls(settings: &Settings, urls: [String; 3]) -> Result<Self, StartError> {
        let layers = &settings.layers;
        let mut upstreams: Vec<(String, String)> =
            SHOP_SERVICES.iter().zip(urls).map(|((service, _), url)| (service.to_string(), url)).collect();
        if let Some(extra) = layers.parse_with(GATEWAY_UPSTREAMS.name, parse_upstreams)? {
            upstreams.extend(extra);
        }
        let descriptor_files = layers
            .string(GATEWAY_DESCRIPTOR_SETS.name)
            .map(|list| list.split(',').map(str::trim).filter(|p| !p.is_empty()).map(PathBuf::from).collect())
            .unwrap_or_default();
        let max_body_bytes = layers.parse_or(GATEWAY_MAX_BODY_BYTES.name, 1024 * 1024usize)?;
        let cors = match layers.string(GATEWAY_CORS_ORIGINS.name) {
            None => Cors::None,
            Some(origins) if origins.trim() == "*" => Cors::Any,
            Some(origins) => {
                Cors::Origins(origins.split(',').map(|o| o.trim().to_owned()).filter(|o| !o.is_empty()).collect())
            }
        };
        Ok(Self { upstreams, descriptor_files, max_body_bytes, cors })
    }
}

fn parse_upstreams(value: &str) -> Result<Vec<(String, String)>, String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (service, url) = pair.split_once('=').ok_or_else(|| format!("{pair:?} is not pkg.Service=URL"))?;
            if !url.starts_with("http://") && !url.starts_with("https://") {
                return Err(format!("{url:?} is not an http(s) URL"));
            }
            Ok((service.trim().to_owned(), url.trim().trim_end_matches('/').to_owned()))
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
            ("GATEWAY_UPSTREAMS", "acme.v1.Widgets=http://widgets:9000, acme.v1.Gears=http://gears:9001/"),
            ("GATEWAY_MAX_BODY_BYTES", "2048"),
            ("GATEWAY_CORS_ORIGINS", "https://a.example, https://b.example"),
        ]);
        let config = load(&pairs).unwrap();
        assert_eq!(config.upstreams.len(), 5);
        assert_eq!(config.upstreams[4], ("acme.v1.Gears".to_owned(), "http://gears:9001".to_owned()));
        assert_eq!(config.max_body_bytes, 2048);
        assert!(matches!(config.cors, Cors::Origins(ref o) if o.len() == 2));
    }

    #[test]
    fn malformed_upstreams_are_named() {
        let mut pairs = SHOP.to_vec();
        pairs.push(("GATEWAY_UPSTREAMS", "acme.v1.Widgets"));
        assert!(load(&pairs).unwrap_err().to_string().contains("GATEWAY_UPSTREAMS"));
    }
}
