//! The embedded SQLite adapter for `meshwork up`.

use std::path::Path;

use platform::database::StorePool;
use platform::db_trace::{DbCall as _, DbSystem};
use sqlx::sqlite::Sqlite;

use super::{RelayLease, StoreError};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

#[derive(Debug, Clone)]
pub struct SqliteOrderStore {
    pool: StorePool<Sqlite>,
    writes: StorePool<Sqlite>,
}

impl SqliteOrderStore {
    /// Reports both pools' connections in `/metrics` until `shutdown`
    /// (`pool="orders.reads"` and `pool="orders.writes"`).
    pub fn report_pool_metrics(&self, shutdown: &platform::CancellationToken) {
        self.pool.report(shutdown);
        self.writes.report(shutdown);
    }

    /// Opens (creating if needed) the database file and applies migrations.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_at(Some(path)).await
    }

    /// A private in-memory database, for tests.
    pub async fn in_memory() -> Result<Self, StoreError> {
        Self::open_at(None).await
    }

    async fn open_at(path: Option<&Path>) -> Result<Self, StoreError> {
        let pools = platform::database::open_sqlite(path, &MIGRATOR).await.map_err(|error| match error {
            platform::database::OpenError::Sqlx(error) => StoreError::from_sqlx(error),
            other => StoreError::Other(other.to_string()),
        })?;
        Ok(Self {
            pool: StorePool::new("orders.reads", pools.reads),
            writes: StorePool::new("orders.writes", pools.writes),
        })
    }

    /// One process owns the file: its relay is the only one.
    async fn relay_lease_impl(&self) -> Result<Option<Box<dyn RelayLease>>, StoreError> {
        Ok(Some(Box::new(())))
    }
}

super::sql::impl_order_store!(SqliteOrderStore, Sqlite, DbSystem::Sqlite);
