//! The users service's own settings, read with the platform's layering.

use std::path::PathBuf;
use std::time::Duration;

use platform::config::{ConfigError, Setting};
use platform::settings::Settings;

pub const JWT_SIGNING_KEY_FILE: Setting = Setting {
    name: "JWT_SIGNING_KEY_FILE",
    help: "Ed25519 PKCS#8 PEM key that signs access tokens (`meshwork users keygen` makes one)",
};
pub const JWT_TTL: Setting = Setting { name: "JWT_TTL", help: "access token lifetime (default 15m)" };

/// Every setting this crate reads itself.
pub const SETTINGS: &[Setting] = &[JWT_SIGNING_KEY_FILE, JWT_TTL];

#[derive(Debug, Clone)]
pub struct UsersConfig {
    /// None: `meshwork up` generates one in its data directory.
    pub signing_key_file: Option<PathBuf>,
    pub issuer: String,
    pub token_ttl: Duration,
}

impl UsersConfig {
    pub fn from_settings(settings: &Settings) -> Result<Self, ConfigError> {
        let layers = &settings.layers;
        let token_ttl = layers.duration_or(JWT_TTL.name, Duration::from_secs(15 * 60))?;
        if token_ttl.is_zero() {
            return Err(settings.invalid(JWT_TTL, "must be longer than zero"));
        }
        Ok(Self {
            signing_key_file: layers.string(JWT_SIGNING_KEY_FILE.name).map(PathBuf::from),
            issuer: settings.jwt_issuer.clone(),
            token_ttl,
        })
    }
}
