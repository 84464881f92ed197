//! The users component, served the two ways meshwork runs (the same shape
//! in every service: `production` and `embedded` return the server with
//! its background work started): on PostgreSQL with a configured signing
//! key, or embedded (`meshwork up`) on SQLite with a key it generates and
//! keeps in its data directory.

use std::path::Path;
use std::sync::Arc;

use platform::database::Migrations;
use platform::settings::{self, Settings};
use platform::{CancellationToken, StartError};

use crate::Users;
use crate::config::{JWT_SIGNING_KEY_FILE, UsersConfig};
use crate::password::Hashing;
use crate::store::{PostgresUserStore, SqliteUserStore, UserStore};
use crate::tokens::TokenIssuer;

/// The production store from `DATABASE_URL` (required), not yet migrated.
pub fn postgres_store(settings: &Settings) -> Result<PostgresUserStore, StartError> {
    let url = Settings::require(
        &settings.database_url,
        settings::DATABASE_URL,
        "the users service stores accounts in PostgreSQL",
    )?;
    let store = PostgresUserStore::connect_lazy(url.expose())
        .map_err(|e| settings.invalid(settings::DATABASE_URL, e.to_string()))?;
    Ok(store)
}

/// The production component: PostgreSQL, migrated in the background from
/// the moment the database answers (the service serves, not ready, until
/// then), and the configured signing key.
pub async fn production(settings: &Settings, shutdown: &CancellationToken) -> Result<platform::Server, StartError> {
    let config = UsersConfig::from_settings(settings)?;
    let store = postgres_store(settings)?;
    store.report_pool_metrics(shutdown);
    let key_file = Settings::require(
        &config.signing_key_file,
        JWT_SIGNING_KEY_FILE,
        "tokens are signed with a configured key (`meshwork users keygen > key.pem` makes one)",
    )?;
    let tokens = TokenIssuer::from_file(&key_file, &config.issuer, config.token_ttl)
        .map_err(|e| settings.invalid(JWT_SIGNING_KEY_FILE, e.to_string()))?;
    let store = Arc::new(store);
    let migrating = store.clone();
    let migrate = move || {
        let store = migrating.clone();
        async move { store.migrate().await }
    };
    let migrations = Migrations::start("users", migrate, shutdown.clone());
    let server = crate::server(assemble(store, tokens, config), settings)?;
    Ok(server.readiness_check("migrations", move || std::future::ready(migrations.check())))
}

/// The embedded component for `meshwork up`: `users.db` and the signing key
/// (generated on first start, so tokens survive restarts) in `data_dir`.
pub async fn embedded(
    settings: &Settings,
    data_dir: &Path,
    shutdown: &CancellationToken,
) -> Result<platform::Server, StartError> {
    let config = UsersConfig::from_settings(settings)?;
    let tokens = match &config.signing_key_file {
        Some(path) => TokenIssuer::from_file(path, &config.issuer, config.token_ttl)
            .map_err(|e| settings.invalid(JWT_SIGNING_KEY_FILE, e.to_string()))?,
        None => {
            let path = data_dir.join("users").join("token-signing-key.pem");
            let (tokens, generated) = TokenIssuer::load_or_generate(&path, &config.issuer, config.token_ttl)
                .map_err(|e| settings.invalid(JWT_SIGNING_KEY_FILE, e.to_string()))?;
            if generated {
                tracing::info!(path = %path.display(), "generated a token signing key (set JWT_SIGNING_KEY_FILE to use your own)");
            }
            tokens
        }
    };
    let store = SqliteUserStore::open(&data_dir.join("users.db")).await.map_err(StartError::other)?;
    store.report_pool_metrics(shutdown);
    let store: Arc<dyn UserStore> = Arc::new(store);
    Ok(crate::server(assemble(store, tokens, config), settings)?)
}

fn assemble(store: Arc<dyn UserStore>, tokens: TokenIssuer, config: UsersConfig) -> Users {
    Users::new(store, Arc::new(tokens))
        .with_admins(config.admins)
        .with_hashing(Hashing::new(config.max_hashing, std::time::Duration::from_secs(2)))
}
