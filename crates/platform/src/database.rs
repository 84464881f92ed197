//! The SQL pools every service opens the same way (feature `database`):
//! SQLite for `meshwork up` and its tests, PostgreSQL in production, and
//! migrations retried while the database is still coming up.

use std::future::Future;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::{MigrateError, Migrator};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

/// Why a database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot create {dir}: {reason}")]
    Directory { dir: String, reason: String },
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migration(#[from] MigrateError),
}

/// Opens (creating if needed) the SQLite database at `path`, or a private
/// in-memory one for `None`, and applies `migrator`.
pub async fn open_sqlite(path: Option<&Path>, migrator: &Migrator) -> Result<SqlitePool, OpenError> {
    let options = match path {
        Some(path) => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| OpenError::Directory { dir: dir.display().to_string(), reason: e.to_string() })?;
            }
            SqliteConnectOptions::new().filename(path)
        }
        None => SqliteConnectOptions::from_str("sqlite::memory:")?,
    };
    // WAL lets readers run beside the one writer; the busy timeout makes
    // concurrent writers queue instead of failing.
    let options = options
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(Duration::from_secs(5))
        .foreign_keys(true);
    // An in-memory database lives as long as its one connection.
    let in_memory = path.is_none();
    let pool = SqlitePoolOptions::new()
        .max_connections(if in_memory { 1 } else { 8 })
        .min_connections(if in_memory { 1 } else { 0 })
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_with(options)
        .await?;
    migrator.run(&pool).await?;
    Ok(pool)
}

/// A lazy PostgreSQL pool: nothing connects until first use, so a service
/// starts (and reports not ready) while its database is down.
pub fn postgres_lazy(url: &str) -> Result<PgPool, sqlx::Error> {
    PgPoolOptions::new().max_connections(16).acquire_timeout(Duration::from_secs(3)).connect_lazy(url)
}

/// Runs `migrate` until it succeeds, retrying (about 20 s in all) while
/// `unreachable` says the database is not up yet.
pub async fn migrate_with_retry<E, F, Fut>(mut migrate: F, unreachable: impl Fn(&E) -> bool) -> Result<(), E>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), E>>,
{
    let mut delay = Duration::from_millis(250);
    let mut attempt = 1;
    loop {
        match migrate().await {
            Err(error) if attempt < 10 && unreachable(&error) => {
                tracing::warn!(attempt, %error, "database not reachable yet; retrying migrations");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
                attempt += 1;
            }
            result => return result,
        }
    }
}
