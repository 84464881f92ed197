//! The PostgreSQL adapter, migrations embedded from `migrations/postgres`.

use platform::database::StorePool;
use platform::db_trace::{DbCall as _, DbSystem};
use sqlx::postgres::Postgres;

use super::{RelayLease, StoreError};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The advisory lock key of the outbox relay (any fixed number).
const RELAY_LOCK: i64 = 0x6d65_7368_776f_726b;

#[derive(Debug, Clone)]
pub struct PostgresOrderStore {
    pool: StorePool<Postgres>,
    /// The same pool: PostgreSQL runs writers side by side.
    writes: StorePool<Postgres>,
}

/// Holds the relay's advisory lock on a connection taken out of the pool,
/// so that dropping it closes the session and so releases the lock.
struct AdvisoryLock(sqlx::PgConnection);

#[async_trait::async_trait]
impl RelayLease for AdvisoryLock {
    /// The lock is the session's: held while the session answers.
    async fn still_held(&mut self) -> bool {
        let ping = sqlx::query("SELECT 1").execute(&mut self.0).db_call(DbSystem::Postgresql, "SELECT", "");
        matches!(tokio::time::timeout(std::time::Duration::from_secs(2), ping).await, Ok(Ok(_)))
    }
}

impl PostgresOrderStore {
    /// Reports the pool's connections in `/metrics` until `shutdown` (`pool="orders"`).
    pub fn report_pool_metrics(&self, shutdown: &platform::CancellationToken) {
        self.pool.report(shutdown);
    }

    /// A lazy pool: the service starts (not ready) while the database is down.
    pub fn connect_lazy(url: &str) -> Result<Self, StoreError> {
        let pool = StorePool::new("orders", platform::database::postgres_lazy(url).map_err(StoreError::from_sqlx)?);
        Ok(Self { writes: pool.clone(), pool })
    }

    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(self.pool.inner()).await.map_err(|error| match error {
            sqlx::migrate::MigrateError::Execute(error) => StoreError::from_sqlx(error),
            other => StoreError::Other(format!("migration failed: {other}")),
        })
    }

    async fn relay_lease_impl(&self) -> Result<Option<Box<dyn RelayLease>>, StoreError> {
        let mut connection = self.pool.acquire().await.map_err(StoreError::from_sqlx)?;
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(RELAY_LOCK)
            .fetch_one(&mut *connection)
            .db_call(DbSystem::Postgresql, "SELECT", "")
            .await
            .map_err(StoreError::from_sqlx)?;
        Ok(locked.then(|| Box::new(AdvisoryLock(connection.detach())) as Box<dyn RelayLease>))
    }
}

super::sql::impl_order_store!(PostgresOrderStore, Postgres, DbSystem::Postgresql);
