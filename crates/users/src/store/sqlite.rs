//! The embedded SQLite adapter for `meshwork up` (one file under the data
//! directory), migrations embedded from `migrations/sqlite`.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};

use super::StoreError;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

#[derive(Debug, Clone)]
pub struct SqliteUserStore {
    pool: SqlitePool,
}

impl SqliteUserStore {
    /// Opens (creating if needed) the database file and applies migrations.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Other(format!("{}: {e}", dir.display())))?;
        }
        let options = SqliteConnectOptions::new().filename(path);
        Self::open_with(options).await
    }

    /// A private in-memory database, for tests.
    pub async fn in_memory() -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str("sqlite::memory:").map_err(StoreError::from_sqlx)?;
        Self::open_with(options).await
    }

    async fn open_with(options: SqliteConnectOptions) -> Result<Self, StoreError> {
        // WAL lets readers run beside the one writer; the busy timeout makes
        // concurrent writers queue instead of failing.
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        // An in-memory database lives as long as its one connection.
        let in_memory = options.get_filename() == Path::new(":memory:");
        let pool = SqlitePoolOptions::new()
            .max_connections(if in_memory { 1 } else { 8 })
            .min_connections(if in_memory { 1 } else { 0 })
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await
            .map_err(StoreError::from_sqlx)?;
        MIGRATOR.run(&pool).await.map_err(|e| StoreError::Other(format!("migration failed: {e}")))?;
        Ok(Self { pool })
    }
}

super::sql::impl_user_store!(SqliteUserStore);
