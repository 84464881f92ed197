//! What a trace shows of a database call (OpenTelemetry semantic
//! conventions 1.37, database client spans): one CLIENT span per statement
//! or command, named `{operation} {collection}`, with `db.system.name`,
//! `db.operation.name` and `db.collection.name`. Never the statement's text
//! or its parameters: the values are users' data, and the operation and the
//! table already say which statement ran.
//!
//! ```text
//! sqlx::query("UPDATE products SET stock = stock - ?2 WHERE id = ?1")
//!     .bind(id)
//!     .bind(quantity)
//!     .execute(&mut *tx)
//!     .db_call(DbSystem::Sqlite, "UPDATE", "products")
//!     .await
//! ```

use std::future::{Future, IntoFuture};

use tracing::Instrument;
use tracing::field::Empty;

/// The database product, as `db.system.name` spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbSystem {
    Sqlite,
    Postgresql,
    Mongodb,
}

impl DbSystem {
    pub fn name(self) -> &'static str {
        match self {
            DbSystem::Sqlite => "sqlite",
            DbSystem::Postgresql => "postgresql",
            DbSystem::Mongodb => "mongodb",
        }
    }
}

/// The CLIENT span of one call: `operation` is the statement's keyword
/// (`SELECT`, `INSERT`, `COMMIT`) or MongoDB's command name (`find`,
/// `update`), `collection` the table or collection it touches, or `""` for
/// none (`BEGIN`, `COMMIT`).
pub fn span(system: DbSystem, operation: &'static str, collection: &'static str) -> tracing::Span {
    let span = tracing::info_span!(
        "db.client",
        otel.name = operation,
        otel.kind = "client",
        otel.status_code = Empty,
        error.r#type = Empty,
        db.system.name = system.name(),
        db.operation.name = operation,
        db.collection.name = Empty,
    );
    if !collection.is_empty() && !span.is_disabled() {
        span.record("otel.name", format!("{operation} {collection}"));
        span.record("db.collection.name", collection);
    }
    span
}

/// Runs a database call (a future, or an action that becomes one, as the
/// MongoDB driver's do) in its CLIENT span ([`span`]); a failed call marks
/// the span failed, with the error's type (not its message, which may quote
/// data) as `error.type`.
pub trait DbCall: IntoFuture + Sized {
    fn db_call(
        self,
        system: DbSystem,
        operation: &'static str,
        collection: &'static str,
    ) -> impl Future<Output = Self::Output> + Send
    where
        Self::IntoFuture: Send;
}

impl<F, T, E> DbCall for F
where
    F: IntoFuture<Output = Result<T, E>>,
{
    fn db_call(
        self,
        system: DbSystem,
        operation: &'static str,
        collection: &'static str,
    ) -> impl Future<Output = Self::Output> + Send
    where
        Self::IntoFuture: Send,
    {
        let call = self.into_future();
        let span = span(system, operation, collection);
        async move {
            let result = call.instrument(span.clone()).await;
            if result.is_err() {
                span.record("otel.status_code", "ERROR");
                span.record("error.type", std::any::type_name::<E>());
            }
            result
        }
    }
}
