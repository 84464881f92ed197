//! The SQL pools every service opens the same way (feature `database`):
//! SQLite for `meshwork up` and its tests, PostgreSQL in production, and
//! migrations run in the background until the database answers.

use std::future::Future;
use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use sqlx::migrate::{MigrateError, Migrator};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

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

/// A SQLite database as the stores use it. SQLite lets one connection
/// write at a time: writers queue for the one `writes` connection, in
/// order and woken at once, where several writing connections would wait
/// in SQLite's busy handler, which sleeps up to 100 ms between tries (that
/// was the long tail of `POST /orders` under load: p99 ~800 ms). Readers
/// use `reads` beside the writer (WAL). An in-memory database is one
/// connection, both pools.
#[derive(Debug, Clone)]
pub struct SqlitePools {
    pub reads: SqlitePool,
    pub writes: SqlitePool,
}

/// Opens (creating if needed) the SQLite database at `path`, or a private
/// in-memory one for `None`, and applies `migrator`.
///
/// Durability: WAL with `synchronous = NORMAL`. A commit survives the
/// process being killed at any instant (the WAL is in the OS's hands once
/// written); what the last moments before a power loss or OS crash
/// committed may be lost, as the README says. `FULL` would fsync every
/// commit, which at 1,000 orders a second is most of the time spent.
pub async fn open_sqlite(path: Option<&Path>, migrator: &Migrator) -> Result<SqlitePools, OpenError> {
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
    // The busy timeout covers another process holding the file (a
    // `meshwork up` split with --only), never this process's own writers.
    let options = options
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(5))
        .foreign_keys(true);
    let pool = |connections: u32| {
        SqlitePoolOptions::new()
            .max_connections(connections)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options.clone())
    };
    let writes = pool(1).await?;
    migrator.run(&writes).await?;
    // An in-memory database lives as long as its one connection.
    let reads = if path.is_none() { writes.clone() } else { pool(8).await? };
    Ok(SqlitePools { reads, writes })
}

/// What a failed statement means to its caller, whatever the SQL dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// A unique constraint refused the row.
    Duplicate,
    /// Worth retrying: the database cannot be reached, or its schema is not
    /// migrated yet (the service is then not ready either).
    Unavailable,
    /// Anything else: a fault.
    Other,
}

/// Sorts a sqlx error for the stores of every service.
pub fn classify(error: &sqlx::Error) -> Failure {
    match error {
        sqlx::Error::Database(db) if db.is_unique_violation() => Failure::Duplicate,
        // PostgreSQL's undefined_table: migrations have not run yet.
        sqlx::Error::Database(db) if db.code().as_deref() == Some("42P01") => Failure::Unavailable,
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_) => {
            Failure::Unavailable
        }
        _ => Failure::Other,
    }
}

/// A lazy PostgreSQL pool: nothing connects until first use, so a service
/// starts (and reports not ready) while its database is down.
pub fn postgres_lazy(url: &str) -> Result<PgPool, sqlx::Error> {
    PgPoolOptions::new().max_connections(16).acquire_timeout(Duration::from_secs(3)).connect_lazy(url)
}

/// Schema migrations run in the background, so a service binds its port at
/// once and reports not ready (the `migrations` readiness check) while its
/// database is down or still coming up, instead of crash-looping. They are
/// retried, 250 ms doubling to 5 s, until they succeed or the service stops.
#[derive(Debug, Clone)]
pub struct Migrations {
    state: Arc<Mutex<Result<(), String>>>,
}

impl Migrations {
    /// Starts `migrate` in the background, retried until it succeeds or `shutdown`.
    pub fn start<F, Fut, E>(component: &'static str, migrate: F, shutdown: CancellationToken) -> Self
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), E>> + Send,
        E: std::fmt::Display,
    {
        let state = Arc::new(Mutex::new(Err("not migrated yet".to_owned())));
        let progress = state.clone();
        tokio::spawn(async move {
            let mut delay = Duration::from_millis(250);
            for attempt in 1.. {
                match migrate().await {
                    Ok(()) => {
                        tracing::info!(%component, "database migrated");
                        *progress.lock().expect("migrations lock") = Ok(());
                        return;
                    }
                    Err(error) => {
                        if attempt == 1 || attempt % 10 == 0 {
                            tracing::warn!(%component, attempt, %error, "cannot migrate the database yet; retrying");
                        }
                        *progress.lock().expect("migrations lock") = Err(format!("not migrated yet: {error}"));
                    }
                }
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = shutdown.cancelled() => return,
                }
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        });
        Self { state }
    }

    /// Ready once migrated; until then, why not.
    pub fn check(&self) -> Result<(), String> {
        self.state.lock().expect("migrations lock").clone()
    }
}

/// A pool as a store uses it: every connection taken from it is timed and
/// counted while awaited, so `/metrics` shows a pool that is too small (the
/// OpenTelemetry database client metrics, labelled `pool = name`):
/// `db_client_connection_wait_time_seconds` and
/// `db_client_connection_pending_requests`; [`StorePool::report`] adds the
/// open connections by state.
#[derive(Debug)]
pub struct StorePool<DB: sqlx::Database> {
    pool: sqlx::Pool<DB>,
    name: Arc<str>,
    wait_time: metrics::Histogram,
    pending: metrics::Gauge,
}

// By hand: a derive would ask for `DB: Clone`, which the database markers are not.
impl<DB: sqlx::Database> Clone for StorePool<DB> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            name: self.name.clone(),
            wait_time: self.wait_time.clone(),
            pending: self.pending.clone(),
        }
    }
}

impl<DB: sqlx::Database> StorePool<DB> {
    /// `pool` as `name` (`orders`, or `orders.writes` where a store has two).
    pub fn new(name: &str, pool: sqlx::Pool<DB>) -> Self {
        describe_pool_metrics();
        let label = || ("pool", name.to_owned());
        Self {
            wait_time: metrics::histogram!("db_client_connection_wait_time_seconds", &[label()]),
            pending: metrics::gauge!("db_client_connection_pending_requests", &[label()]),
            name: name.into(),
            pool,
        }
    }

    /// A connection, timed and counted while awaited (even if the wait is
    /// abandoned: the count goes down when the future is dropped).
    pub async fn acquire(&self) -> Result<sqlx::pool::PoolConnection<DB>, sqlx::Error> {
        struct Pending<'a>(&'a metrics::Gauge);
        impl Drop for Pending<'_> {
            fn drop(&mut self) {
                self.0.decrement(1.0);
            }
        }
        self.pending.increment(1.0);
        let _pending = Pending(&self.pending);
        let started = std::time::Instant::now();
        let connection = self.pool.acquire().await;
        self.wait_time.record(started.elapsed());
        connection
    }

    /// The pool itself, for what needs no timing (migrations, tests).
    pub fn inner(&self) -> &sqlx::Pool<DB> {
        &self.pool
    }

    /// Reports the pool's connections as gauges labelled `pool = name`,
    /// sampled every second until `shutdown` (the sampler holds the pool
    /// until then): `db_client_connections` by `state` (`used`, `idle`,
    /// after the OpenTelemetry database client metrics) and
    /// `db_client_connections_max`.
    pub fn report(&self, shutdown: &CancellationToken) {
        let (name, pool, shutdown) = (self.name.to_string(), self.pool.clone(), shutdown.clone());
        let used = metrics::gauge!("db_client_connections", "pool" => name.clone(), "state" => "used");
        let idle = metrics::gauge!("db_client_connections", "pool" => name.clone(), "state" => "idle");
        metrics::gauge!("db_client_connections_max", "pool" => name).set(pool.options().get_max_connections());
        tokio::spawn(async move {
            loop {
                let (open, idle_now) = (pool.size() as f64, pool.num_idle() as f64);
                used.set(open - idle_now);
                idle.set(idle_now);
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    () = shutdown.cancelled() => return,
                }
            }
        });
    }
}

/// Describes the database pool families, for any pool that reports them
/// (the SQL pools here; the MongoDB driver's from its own events).
pub fn describe_pool_metrics() {
    metrics::describe_gauge!("db_client_connections", "Open database connections, by pool and state (used, idle).");
    metrics::describe_gauge!("db_client_connections_max", "Connections a database pool may open.");
    metrics::describe_histogram!(
        "db_client_connection_wait_time_seconds",
        metrics::Unit::Seconds,
        "Time to take a connection from a database pool."
    );
    metrics::describe_gauge!(
        "db_client_connection_pending_requests",
        "Calls waiting for a connection from a database pool."
    );
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use metrics_exporter_prometheus::PrometheusBuilder;

    use super::*;

    /// The value of the one sample of `family` on `page`.
    fn sample(page: &str, family: &str) -> f64 {
        page.lines()
            .find(|line| line.starts_with(family) && !line.starts_with('#'))
            .and_then(|line| line.rsplit(' ').next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {family} in:\n{page}"))
    }

    #[tokio::test]
    async fn a_pool_counts_who_waits_for_a_connection_and_times_every_wait() {
        let recorder = PrometheusBuilder::new().build_recorder();
        let registry = recorder.handle();
        // An in-memory database: one connection, so a second caller waits.
        let pools = open_sqlite(None, &sqlx::migrate::Migrator::DEFAULT).await.unwrap();
        let pool = metrics::with_local_recorder(&recorder, || StorePool::new("test", pools.writes));

        let held = pool.acquire().await.unwrap();
        let waiting = tokio::spawn({
            let pool = pool.clone();
            async move { pool.acquire().await.map(drop) }
        });
        let pending = || sample(&registry.render(), "db_client_connection_pending_requests");
        for _ in 0..100 {
            if pending() == 1.0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(pending(), 1.0, "the second caller waits");

        // A caller that gives up waiting is no longer counted.
        waiting.abort();
        let _ = waiting.await;
        assert_eq!(pending(), 0.0);

        drop(held);
        pool.acquire().await.unwrap();
        // Timed: the first take and the last (the abandoned wait was not done).
        assert_eq!(sample(&registry.render(), "db_client_connection_wait_time_seconds_count"), 2.0);
    }
}
