//! The PostgreSQL adapter (sqlx), migrations embedded from
//! `migrations/postgres`.

use platform::database::StorePool;
use platform::db_trace::{DbCall as _, DbSystem};
use sqlx::Postgres;

use super::StoreError;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

#[derive(Debug, Clone)]
pub struct PostgresUserStore {
    pool: StorePool<Postgres>,
    /// The same pool: PostgreSQL runs writers side by side.
    writes: StorePool<Postgres>,
}

impl PostgresUserStore {
    /// Reports the pool's connections in `/metrics` until `shutdown` (`pool="users"`).
    pub fn report_pool_metrics(&self, shutdown: &platform::CancellationToken) {
        self.pool.report(shutdown);
    }

    /// A lazy pool: nothing is connected until first use, so the service
    /// starts (and reports not ready) while the database is down.
    pub fn connect_lazy(url: &str) -> Result<Self, StoreError> {
        let pool = StorePool::new("users", platform::database::postgres_lazy(url).map_err(StoreError::from_sqlx)?);
        Ok(Self { writes: pool.clone(), pool })
    }

    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(self.pool.inner()).await.map_err(|error| match error {
            sqlx::migrate::MigrateError::Execute(error) => StoreError::from_sqlx(error),
            other => StoreError::Other(format!("migration failed: {other}")),
        })
    }
}

super::sql::impl_user_store!(PostgresUserStore, DbSystem::Postgresql);
