//! The users service's own settings, read with the platform's layering.

use std::path::PathBuf;
use std::time::Duration;

use platform::config::{ConfigError, Setting};
use platform::settings::Settings;

use crate::domain::{Email, UserId};

pub const JWT_SIGNING_KEY_FILE: Setting = Setting {
    name: "JWT_SIGNING_KEY_FILE",
    help: "Ed25519 PKCS#8 PEM key that signs access tokens (`meshwork users keygen` makes one)",
};
pub const JWT_TTL: Setting = Setting { name: "JWT_TTL", help: "access token lifetime (default 15m)" };
pub const USERS_ADMINS: Setting = Setting {
    name: "USERS_ADMINS",
    help: "administrators, by user id or email, comma-separated; an email may name an account not yet created (default: none)",
};
pub const USERS_MAX_HASHING: Setting = Setting {
    name: "USERS_MAX_HASHING",
    help: "password hashes computed at once, ~19 MiB each; more logins wait briefly, then get 429 (default 4)",
};

/// Every setting this crate reads itself.
pub const SETTINGS: &[Setting] = &[JWT_SIGNING_KEY_FILE, JWT_TTL, USERS_ADMINS, USERS_MAX_HASHING];

/// How USERS_ADMINS names an administrator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminRef {
    Id(UserId),
    Email(Email),
}

#[derive(Debug, Clone)]
pub struct UsersConfig {
    /// None: `meshwork up` generates one in its data directory.
    pub signing_key_file: Option<PathBuf>,
    pub issuer: String,
    pub token_ttl: Duration,
    pub admins: Vec<AdminRef>,
    /// Password hashes computed at once (each holds ~19 MiB while it runs).
    pub max_hashing: usize,
}

impl UsersConfig {
    pub fn from_settings(settings: &Settings) -> Result<Self, ConfigError> {
        let layers = &settings.layers;
        let token_ttl = layers.duration_or(JWT_TTL.name, Duration::from_secs(15 * 60))?;
        if token_ttl.is_zero() {
            return Err(settings.invalid(JWT_TTL, "must be longer than zero"));
        }
        let admins = layers
            .parse_with(USERS_ADMINS.name, |list| {
                list.split(',')
                    .map(str::trim)
                    .filter(|id| !id.is_empty())
                    .map(|entry| match entry.contains('@') {
                        true => Email::parse(entry).map(AdminRef::Email).map_err(|why| format!("{entry:?} {why}")),
                        false => UserId::parse(entry)
                            .map(AdminRef::Id)
                            .map_err(|_| format!("{entry:?} is neither a user id (UUID) nor an email")),
                    })
                    .collect::<Result<Vec<_>, _>>()
            })?
            .unwrap_or_default();
        Ok(Self {
            signing_key_file: layers.string(JWT_SIGNING_KEY_FILE.name).map(PathBuf::from),
            issuer: settings.jwt_issuer.clone(),
            token_ttl,
            admins,
            max_hashing: match layers.parse_or(USERS_MAX_HASHING.name, 4usize)? {
                0 => return Err(settings.invalid(USERS_MAX_HASHING, "must be at least 1")),
                n => n,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use platform::Env;

    use super::*;

    fn load(pairs: &[(&str, &str)]) -> Result<UsersConfig, ConfigError> {
        let settings = Settings::load(&Env::from_pairs(pairs.iter().copied()), SETTINGS).unwrap();
        UsersConfig::from_settings(&settings)
    }

    #[test]
    fn administrators_are_user_ids_or_emails_and_a_bad_one_is_named() {
        let id = "0192f0a4-7b3c-7d2e-9f10-1a2b3c4d5e6f";
        let config = load(&[("USERS_ADMINS", &format!(" {id} , Boss@Example.com,"))]).unwrap();
        assert_eq!(
            config.admins,
            [AdminRef::Id(UserId::parse(id).unwrap()), AdminRef::Email(Email::parse("boss@example.com").unwrap())]
        );
        assert!(load(&[]).unwrap().admins.is_empty());
        let error = load(&[("USERS_ADMINS", "root")]).unwrap_err().to_string();
        assert!(error.contains("USERS_ADMINS") && error.contains("neither a user id"), "{error}");
        let error = load(&[("USERS_ADMINS", "root@")]).unwrap_err().to_string();
        assert!(error.contains("USERS_ADMINS") && error.contains("email"), "{error}");
        assert!(load(&[("USERS_MAX_HASHING", "0")]).unwrap_err().to_string().contains("USERS_MAX_HASHING"));
    }
}
