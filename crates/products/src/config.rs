//! The products service's own settings, read with the platform's layering.

use std::time::Duration;

use platform::config::{ConfigError, Setting};
use platform::settings::Settings;

pub const PRODUCTS_HOLD_TTL: Setting = Setting {
    name: "PRODUCTS_HOLD_TTL",
    help: "how long reserved stock stays held unless an order confirms it; then it is released if no order has it (default 5m)",
};

/// Every setting this crate reads itself.
pub const SETTINGS: &[Setting] = &[PRODUCTS_HOLD_TTL];

/// Long enough for any order write to finish, short enough that stock a
/// crashed caller reserved returns within minutes.
pub const DEFAULT_HOLD_TTL: Duration = Duration::from_secs(5 * 60);

#[derive(Debug, Clone)]
pub struct ProductsConfig {
    pub hold_ttl: Duration,
}

impl ProductsConfig {
    pub fn from_settings(settings: &Settings) -> Result<Self, ConfigError> {
        let hold_ttl = settings.layers.duration_or(PRODUCTS_HOLD_TTL.name, DEFAULT_HOLD_TTL)?;
        if hold_ttl < Duration::from_secs(1) {
            return Err(settings.invalid(PRODUCTS_HOLD_TTL, "must be at least 1s"));
        }
        Ok(Self { hold_ttl })
    }
}

#[cfg(test)]
mod tests {
    use platform::Env;

    use super::*;

    fn load(pairs: &[(&str, &str)]) -> Result<ProductsConfig, ConfigError> {
        let settings = Settings::load(&Env::from_pairs(pairs.iter().copied()), SETTINGS).unwrap();
        ProductsConfig::from_settings(&settings)
    }

    #[test]
    fn the_hold_lasts_five_minutes_unless_configured() {
        assert_eq!(load(&[]).unwrap().hold_ttl, DEFAULT_HOLD_TTL);
        assert_eq!(load(&[("PRODUCTS_HOLD_TTL", "90s")]).unwrap().hold_ttl, Duration::from_secs(90));
        let error = load(&[("PRODUCTS_HOLD_TTL", "0s")]).unwrap_err().to_string();
        assert!(error.contains("PRODUCTS_HOLD_TTL") && error.contains("at least 1s"), "{error}");
    }
}
