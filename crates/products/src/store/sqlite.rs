//! The embedded SQLite adapter for `meshwork up`. Every reservation runs in
//! one `BEGIN IMMEDIATE` transaction (SQLite's single writer), so it is
//! all-or-nothing and serialised with every other write.

use std::path::Path;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use platform::database::StorePool;
use platform::db_trace::{DbCall as _, DbSystem};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use super::{AdjustError, Applied, OrderEffect, ProductStore, ReserveOutcome, StoreError};
use crate::domain::{
    Currency, Description, MAX_STOCK, Price, Product, ProductChanges, ProductFilter, ProductId, ProductName,
    Reservation, ReservationId, ReservationRefused, ReservedItem, stock_from_stored,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// Every statement runs in its CLIENT span (`platform::db_trace`).
const SQLITE: DbSystem = DbSystem::Sqlite;

#[derive(Debug, Clone)]
pub struct SqliteProductStore {
    /// Reads; writes go to the one writing connection (see
    /// `platform::database::SqlitePools`).
    pool: StorePool<Sqlite>,
    writes: StorePool<Sqlite>,
}

#[derive(sqlx::FromRow)]
struct ProductRow {
    id: String,
    name: String,
    description: String,
    price_minor: i64,
    currency: String,
    stock: i64,
    units_sold: i64,
    created_at: chrono::DateTime<chrono::Utc>,
    updated_at: chrono::DateTime<chrono::Utc>,
}

impl ProductRow {
    fn into_product(self) -> Result<Product, StoreError> {
        let corrupt =
            |field: &str, why: &str| StoreError::Other(format!("stored product {} has a bad {field}: {why}", self.id));
        Ok(Product {
            id: ProductId::parse(&self.id).map_err(|why| corrupt("id", why))?,
            name: ProductName::parse(&self.name).map_err(|why| corrupt("name", why))?,
            description: Description::parse(&self.description).map_err(|why| corrupt("description", why))?,
            price: Price::from_minor(self.price_minor),
            currency: Currency::from_stored(self.currency),
            stock: stock_from_stored(self.stock),
            units_sold: self.units_sold,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

const COLUMNS: &str = "id, name, description, price_minor, currency, stock, units_sold, created_at, updated_at";

impl SqliteProductStore {
    /// Reports both pools' connections in `/metrics` until `shutdown`
    /// (`pool="products.reads"` and `pool="products.writes"`).
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
            platform::database::OpenError::Sqlx(error) => from_sqlx(error),
            other => StoreError::Other(other.to_string()),
        })?;
        Ok(Self {
            pool: StorePool::new("products.reads", pools.reads),
            writes: StorePool::new("products.writes", pools.writes),
        })
    }

    async fn get_with(connection: &mut SqliteConnection, id: &str) -> Result<Option<Product>, StoreError> {
        sqlx::query_as::<_, ProductRow>(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM products WHERE id = ?1")))
            .bind(id)
            .fetch_optional(connection)
            .db_call(SQLITE, "SELECT", "products")
            .await
            .map_err(from_sqlx)?
            .map(ProductRow::into_product)
            .transpose()
    }

    /// Applies `effect` once within `tx`: the inbox row, written first, is
    /// also the check.
    async fn apply_once_in(
        tx: &mut SqliteConnection,
        consumer: &str,
        event_id: &str,
        effect: &OrderEffect,
    ) -> Result<Applied, StoreError> {
        let first = sqlx::query("INSERT OR IGNORE INTO inbox (consumer, event_id, applied_at_ms) VALUES (?1, ?2, ?3)")
            .bind(consumer)
            .bind(event_id)
            .bind(crate::domain::now().timestamp_millis())
            .execute(&mut *tx)
            .db_call(SQLITE, "INSERT", "inbox")
            .await
            .map_err(from_sqlx)?;
        if first.rows_affected() == 0 {
            return Ok(Applied::Before);
        }
        let held = match effect {
            OrderEffect::Created { reservation, order_id, items } => {
                let held = Self::confirm_in(tx, reservation).await?;
                Self::record_sale_in(tx, order_id, items).await?;
                held
            }
            OrderEffect::Cancelled { reservation, order_id, items } => {
                Self::release_in(tx, reservation).await?;
                Self::cancel_sale_in(tx, order_id, items).await?;
                true
            }
            // Holds and sales are rows of their own tables here: nothing to settle.
            OrderEffect::Shipped { .. } => true,
        };
        Ok(Applied::Now { held })
    }

    async fn confirm_in(connection: &mut SqliteConnection, id: &ReservationId) -> Result<bool, StoreError> {
        let held = sqlx::query("UPDATE reservations SET confirmed = 1 WHERE id = ?1 AND state = 'reserved'")
            .bind(id.as_str())
            .execute(connection)
            .db_call(SQLITE, "UPDATE", "reservations")
            .await
            .map_err(from_sqlx)?;
        Ok(held.rows_affected() == 1)
    }

    /// Gives back what the reservation took, once (see [`ProductStore::release`]).
    async fn release_in(tx: &mut SqliteConnection, id: &ReservationId) -> Result<bool, StoreError> {
        let state: Option<String> = sqlx::query_scalar("SELECT state FROM reservations WHERE id = ?1")
            .bind(id.as_str())
            .fetch_optional(&mut *tx)
            .db_call(SQLITE, "SELECT", "reservations")
            .await
            .map_err(from_sqlx)?;
        let now = crate::domain::now();
        match state.as_deref() {
            Some("reserved") => {
                for item in Self::reservation_items(tx, id).await? {
                    sqlx::query("UPDATE products SET stock = stock + ?2, updated_at = ?3 WHERE id = ?1")
                        .bind(item.product_id.as_str())
                        .bind(item.quantity)
                        .bind(now)
                        .execute(&mut *tx)
                        .db_call(SQLITE, "UPDATE", "products")
                        .await
                        .map_err(from_sqlx)?;
                }
                sqlx::query("UPDATE reservations SET state = 'released' WHERE id = ?1")
                    .bind(id.as_str())
                    .execute(&mut *tx)
                    .db_call(SQLITE, "UPDATE", "reservations")
                    .await
                    .map_err(from_sqlx)?;
                Ok(true)
            }
            Some(_) => Ok(false),
            None => {
                sqlx::query("INSERT INTO reservations (id, state, created_at) VALUES (?1, 'released', ?2)")
                    .bind(id.as_str())
                    .bind(now)
                    .execute(&mut *tx)
                    .db_call(SQLITE, "INSERT", "reservations")
                    .await
                    .map_err(from_sqlx)?;
                Ok(false)
            }
        }
    }

    async fn record_sale_in(
        tx: &mut SqliteConnection,
        order_id: &str,
        items: &[(ProductId, i32)],
    ) -> Result<(), StoreError> {
        for (product_id, quantity) in items {
            let inserted =
                sqlx::query("INSERT OR IGNORE INTO sales (order_id, product_id, quantity) VALUES (?1, ?2, ?3)")
                    .bind(order_id)
                    .bind(product_id.as_str())
                    .bind(quantity)
                    .execute(&mut *tx)
                    .db_call(SQLITE, "INSERT", "sales")
                    .await
                    .map_err(from_sqlx)?;
            if inserted.rows_affected() == 1 {
                Self::count_sold(tx, product_id, *quantity).await?;
            }
        }
        Ok(())
    }

    async fn cancel_sale_in(
        tx: &mut SqliteConnection,
        order_id: &str,
        items: &[(ProductId, i32)],
    ) -> Result<(), StoreError> {
        for (product_id, quantity) in items {
            let cancelled =
                sqlx::query("UPDATE sales SET cancelled = 1 WHERE order_id = ?1 AND product_id = ?2 AND cancelled = 0")
                    .bind(order_id)
                    .bind(product_id.as_str())
                    .execute(&mut *tx)
                    .db_call(SQLITE, "UPDATE", "sales")
                    .await
                    .map_err(from_sqlx)?;
            if cancelled.rows_affected() == 1 {
                Self::count_sold(tx, product_id, -quantity).await?;
            } else {
                sqlx::query(
                    "INSERT OR IGNORE INTO sales (order_id, product_id, quantity, cancelled) VALUES (?1, ?2, ?3, 1)",
                )
                .bind(order_id)
                .bind(product_id.as_str())
                .bind(quantity)
                .execute(&mut *tx)
                .db_call(SQLITE, "INSERT", "sales")
                .await
                .map_err(from_sqlx)?;
            }
        }
        Ok(())
    }

    /// Adds `units` (negative: takes them back) to the product's units sold.
    async fn count_sold(tx: &mut SqliteConnection, product_id: &ProductId, units: i32) -> Result<(), StoreError> {
        sqlx::query("UPDATE products SET units_sold = units_sold + ?2 WHERE id = ?1")
            .bind(product_id.as_str())
            .bind(units)
            .execute(&mut *tx)
            .db_call(SQLITE, "UPDATE", "products")
            .await
            .map_err(from_sqlx)?;
        Ok(())
    }

    async fn reservation_items(
        connection: &mut SqliteConnection,
        id: &ReservationId,
    ) -> Result<Vec<ReservedItem>, StoreError> {
        let rows: Vec<(String, String, i64, i64, String)> = sqlx::query_as(
            "SELECT product_id, product_name, quantity, unit_price_minor, currency FROM reservation_items
             WHERE reservation_id = ?1 ORDER BY rowid",
        )
        .bind(id.as_str())
        .fetch_all(connection)
        .db_call(SQLITE, "SELECT", "reservation_items")
        .await
        .map_err(from_sqlx)?;
        rows.into_iter()
            .map(|(product_id, product_name, quantity, unit_price_minor, currency)| {
                Ok(ReservedItem {
                    product_id: ProductId::parse(&product_id).map_err(|why| StoreError::Other(why.to_owned()))?,
                    product_name,
                    quantity: i32::try_from(quantity).map_err(|e| StoreError::Other(e.to_string()))?,
                    unit_price: Price::from_minor(unit_price_minor),
                    currency: Currency::from_stored(currency),
                })
            })
            .collect()
    }
}

fn from_sqlx(error: sqlx::Error) -> StoreError {
    match platform::database::classify(&error) {
        platform::database::Failure::Duplicate => StoreError::DuplicateId,
        platform::database::Failure::Unavailable => StoreError::Unavailable(error.to_string()),
        platform::database::Failure::Other => StoreError::Other(error.to_string()),
    }
}

/// Escapes LIKE's wildcards (with `\` as the escape character).
fn like_pattern(word: &str) -> String {
    let escaped = word.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    format!("%{escaped}%")
}

#[async_trait]
impl ProductStore for SqliteProductStore {
    async fn insert(&self, product: &Product) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO products
                 (id, name, description, price_minor, stock, units_sold, search_text, created_at, updated_at, currency)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )
        .bind(product.id.as_str())
        .bind(product.name.as_str())
        .bind(product.description.as_str())
        .bind(product.price.minor())
        .bind(product.stock)
        .bind(product.units_sold)
        .bind(product.search_text())
        .bind(product.created_at)
        .bind(product.updated_at)
        .bind(product.currency.as_str())
        .execute(&mut *self.writes.acquire().await.map_err(from_sqlx)?)
        .db_call(SQLITE, "INSERT", "products")
        .await
        .map_err(from_sqlx)?;
        Ok(())
    }

    async fn get(&self, id: &ProductId) -> Result<Option<Product>, StoreError> {
        let mut connection = self.pool.acquire().await.map_err(from_sqlx)?;
        Self::get_with(&mut connection, id.as_str()).await
    }

    async fn list(
        &self,
        filter: &ProductFilter,
        after: Option<&ProductId>,
        limit: u32,
    ) -> Result<Vec<Product>, StoreError> {
        let mut query = QueryBuilder::<Sqlite>::new(format!("SELECT {COLUMNS} FROM products WHERE id > "));
        query.push_bind(after.map_or("", ProductId::as_str).to_owned());
        if let Some(min) = filter.min_price {
            query.push(" AND price_minor >= ").push_bind(min.minor());
        }
        if let Some(max) = filter.max_price {
            query.push(" AND price_minor <= ").push_bind(max.minor());
        }
        if let Some(currency) = &filter.currency {
            query.push(" AND currency = ").push_bind(currency.as_str().to_owned());
        }
        match filter.in_stock {
            Some(true) => {
                query.push(" AND stock > 0");
            }
            Some(false) => {
                query.push(" AND stock <= 0");
            }
            None => {}
        }
        for word in &filter.words {
            query.push(" AND search_text LIKE ").push_bind(like_pattern(word)).push(" ESCAPE '\\'");
        }
        query.push(" ORDER BY id LIMIT ").push_bind(i64::from(limit));
        query
            .build_query_as::<ProductRow>()
            .fetch_all(&mut *self.pool.acquire().await.map_err(from_sqlx)?)
            .db_call(SQLITE, "SELECT", "products")
            .await
            .map_err(from_sqlx)?
            .into_iter()
            .map(ProductRow::into_product)
            .collect()
    }

    async fn update(&self, id: &ProductId, changes: &ProductChanges) -> Result<Option<Product>, StoreError> {
        let mut connection = self.writes.acquire().await.map_err(from_sqlx)?;
        let mut tx = sqlx::Connection::begin_with(&mut *connection, "BEGIN IMMEDIATE")
            .db_call(SQLITE, "BEGIN", "")
            .await
            .map_err(from_sqlx)?;
        let Some(mut product) = Self::get_with(&mut tx, id.as_str()).await? else { return Ok(None) };
        if let Some(name) = &changes.name {
            product.name = name.clone();
        }
        if let Some(description) = &changes.description {
            product.description = description.clone();
        }
        if let Some(price) = changes.price {
            product.price = price;
        }
        if let Some(stock) = changes.stock {
            product.stock = stock;
        }
        product.updated_at = crate::domain::now();
        sqlx::query(
            "UPDATE products SET name = ?2, description = ?3, price_minor = ?4, stock = ?5, search_text = ?6,
             updated_at = ?7 WHERE id = ?1",
        )
        .bind(id.as_str())
        .bind(product.name.as_str())
        .bind(product.description.as_str())
        .bind(product.price.minor())
        .bind(product.stock)
        .bind(product.search_text())
        .bind(product.updated_at)
        .execute(&mut *tx)
        .db_call(SQLITE, "UPDATE", "products")
        .await
        .map_err(from_sqlx)?;
        tx.commit().db_call(SQLITE, "COMMIT", "").await.map_err(from_sqlx)?;
        Ok(Some(product))
    }

    async fn delete(&self, id: &ProductId) -> Result<bool, StoreError> {
        let result = sqlx::query("DELETE FROM products WHERE id = ?1")
            .bind(id.as_str())
            .execute(&mut *self.writes.acquire().await.map_err(from_sqlx)?)
            .db_call(SQLITE, "DELETE", "products")
            .await
            .map_err(from_sqlx)?;
        Ok(result.rows_affected() == 1)
    }

    async fn adjust_stock(&self, id: &ProductId, delta: i32) -> Result<Product, AdjustError> {
        let mut connection = self.writes.acquire().await.map_err(from_sqlx)?;
        let mut tx = sqlx::Connection::begin_with(&mut *connection, "BEGIN IMMEDIATE")
            .db_call(SQLITE, "BEGIN", "")
            .await
            .map_err(from_sqlx)?;
        let product = Self::get_with(&mut tx, id.as_str()).await?.ok_or(AdjustError::NotFound)?;
        let stock = i64::from(product.stock) + i64::from(delta);
        if stock < 0 {
            return Err(AdjustError::WouldGoNegative { stock: product.stock, delta });
        }
        if stock > i64::from(MAX_STOCK) {
            return Err(AdjustError::WouldExceedMax { stock: product.stock, delta });
        }
        let stock = stock_from_stored(stock);
        let updated_at = crate::domain::now();
        sqlx::query("UPDATE products SET stock = ?2, updated_at = ?3 WHERE id = ?1")
            .bind(id.as_str())
            .bind(stock)
            .bind(updated_at)
            .execute(&mut *tx)
            .db_call(SQLITE, "UPDATE", "products")
            .await
            .map_err(from_sqlx)?;
        tx.commit().db_call(SQLITE, "COMMIT", "").await.map_err(from_sqlx)?;
        Ok(Product { stock, updated_at, ..product })
    }

    async fn reserve(
        &self,
        id: &ReservationId,
        items: &[(ProductId, i32)],
        expires_at: DateTime<Utc>,
    ) -> Result<ReserveOutcome, StoreError> {
        let mut connection = self.writes.acquire().await.map_err(from_sqlx)?;
        let mut tx = sqlx::Connection::begin_with(&mut *connection, "BEGIN IMMEDIATE")
            .db_call(SQLITE, "BEGIN", "")
            .await
            .map_err(from_sqlx)?;
        let state: Option<(String, Option<i64>)> =
            sqlx::query_as("SELECT state, expires_at_ms FROM reservations WHERE id = ?1")
                .bind(id.as_str())
                .fetch_optional(&mut *tx)
                .db_call(SQLITE, "SELECT", "reservations")
                .await
                .map_err(from_sqlx)?;
        match state {
            Some((state, held_until)) if state == "reserved" => {
                let items = Self::reservation_items(&mut tx, id).await?;
                let expires_at = held_until.and_then(DateTime::from_timestamp_millis).unwrap_or_default();
                return Ok(ReserveOutcome::Reserved(Reservation { id: id.clone(), items, expires_at }));
            }
            Some(_) => return Ok(ReserveOutcome::Refused(ReservationRefused::AlreadyReleased(id.as_str().to_owned()))),
            None => {}
        }
        let mut taken = Vec::with_capacity(items.len());
        for (product_id, quantity) in items {
            let Some(product) = Self::get_with(&mut tx, product_id.as_str()).await? else {
                return Ok(ReserveOutcome::Refused(ReservationRefused::UnknownProduct(product_id.as_str().to_owned())));
            };
            if product.stock < *quantity {
                return Ok(ReserveOutcome::Refused(ReservationRefused::InsufficientStock {
                    product: product_id.as_str().to_owned(),
                    requested: *quantity,
                    available: product.stock,
                }));
            }
            taken.push(ReservedItem {
                product_id: product_id.clone(),
                product_name: product.name.as_str().to_owned(),
                quantity: *quantity,
                unit_price: product.price,
                currency: product.currency.clone(),
            });
        }
        let now = crate::domain::now();
        sqlx::query("INSERT INTO reservations (id, state, created_at, expires_at_ms) VALUES (?1, 'reserved', ?2, ?3)")
            .bind(id.as_str())
            .bind(now)
            .bind(expires_at.timestamp_millis())
            .execute(&mut *tx)
            .db_call(SQLITE, "INSERT", "reservations")
            .await
            .map_err(from_sqlx)?;
        for item in &taken {
            sqlx::query("UPDATE products SET stock = stock - ?2, updated_at = ?3 WHERE id = ?1")
                .bind(item.product_id.as_str())
                .bind(item.quantity)
                .bind(now)
                .execute(&mut *tx)
                .db_call(SQLITE, "UPDATE", "products")
                .await
                .map_err(from_sqlx)?;
            sqlx::query(
                "INSERT INTO reservation_items (reservation_id, product_id, product_name, quantity, unit_price_minor, currency)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .bind(id.as_str())
            .bind(item.product_id.as_str())
            .bind(&item.product_name)
            .bind(item.quantity)
            .bind(item.unit_price.minor())
            .bind(item.currency.as_str())
            .execute(&mut *tx)
            .db_call(SQLITE, "INSERT", "reservation_items")
            .await
            .map_err(from_sqlx)?;
        }
        tx.commit().db_call(SQLITE, "COMMIT", "").await.map_err(from_sqlx)?;
        Ok(ReserveOutcome::Reserved(Reservation { id: id.clone(), items: taken, expires_at }))
    }

    async fn confirm(&self, id: &ReservationId) -> Result<bool, StoreError> {
        let mut connection = self.writes.acquire().await.map_err(from_sqlx)?;
        Self::confirm_in(&mut connection, id).await
    }

    async fn expired_holds(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<ReservationId>, StoreError> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM reservations
             WHERE state = 'reserved' AND confirmed = 0 AND (expires_at_ms IS NULL OR expires_at_ms < ?1)
             ORDER BY expires_at_ms LIMIT ?2",
        )
        .bind(now.timestamp_millis())
        .bind(i64::from(limit))
        .fetch_all(&mut *self.pool.acquire().await.map_err(from_sqlx)?)
        .db_call(SQLITE, "SELECT", "reservations")
        .await
        .map_err(from_sqlx)?;
        ids.iter()
            .map(|id| ReservationId::parse(id).map_err(|why| StoreError::Other(format!("{id:?} {why}"))))
            .collect()
    }

    async fn release(&self, id: &ReservationId) -> Result<bool, StoreError> {
        let mut connection = self.writes.acquire().await.map_err(from_sqlx)?;
        let mut tx = sqlx::Connection::begin_with(&mut *connection, "BEGIN IMMEDIATE")
            .db_call(SQLITE, "BEGIN", "")
            .await
            .map_err(from_sqlx)?;
        let released = Self::release_in(&mut tx, id).await?;
        tx.commit().db_call(SQLITE, "COMMIT", "").await.map_err(from_sqlx)?;
        Ok(released)
    }

    async fn record_sale(&self, order_id: &str, items: &[(ProductId, i32)]) -> Result<(), StoreError> {
        let mut connection = self.writes.acquire().await.map_err(from_sqlx)?;
        let mut tx = sqlx::Connection::begin_with(&mut *connection, "BEGIN IMMEDIATE")
            .db_call(SQLITE, "BEGIN", "")
            .await
            .map_err(from_sqlx)?;
        Self::record_sale_in(&mut tx, order_id, items).await?;
        tx.commit().db_call(SQLITE, "COMMIT", "").await.map_err(from_sqlx)
    }

    async fn cancel_sale(&self, order_id: &str, items: &[(ProductId, i32)]) -> Result<(), StoreError> {
        let mut connection = self.writes.acquire().await.map_err(from_sqlx)?;
        let mut tx = sqlx::Connection::begin_with(&mut *connection, "BEGIN IMMEDIATE")
            .db_call(SQLITE, "BEGIN", "")
            .await
            .map_err(from_sqlx)?;
        Self::cancel_sale_in(&mut tx, order_id, items).await?;
        tx.commit().db_call(SQLITE, "COMMIT", "").await.map_err(from_sqlx)
    }

    async fn settle_order(&self, _order_id: &str) -> Result<(), StoreError> {
        // Holds and sales are rows of their own tables here, indexed by
        // order: they cost nothing per product, and keep the history.
        Ok(())
    }

    async fn inbox_contains(&self, consumer: &str, event_id: &str) -> Result<bool, StoreError> {
        let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM inbox WHERE consumer = ?1 AND event_id = ?2")
            .bind(consumer)
            .bind(event_id)
            .fetch_optional(&mut *self.pool.acquire().await.map_err(from_sqlx)?)
            .db_call(SQLITE, "SELECT", "inbox")
            .await
            .map_err(from_sqlx)?;
        Ok(found.is_some())
    }

    async fn inbox_record(&self, consumer: &str, event_id: &str) -> Result<(), StoreError> {
        sqlx::query("INSERT OR IGNORE INTO inbox (consumer, event_id, applied_at_ms) VALUES (?1, ?2, ?3)")
            .bind(consumer)
            .bind(event_id)
            .bind(crate::domain::now().timestamp_millis())
            .execute(&mut *self.writes.acquire().await.map_err(from_sqlx)?)
            .db_call(SQLITE, "INSERT", "inbox")
            .await
            .map_err(from_sqlx)?;
        Ok(())
    }

    async fn forget_applied_events(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        // In batches, each its own write, so that the consumer's writes
        // get in between: the first round after a busy week has many.
        const BATCH: i64 = 1000;
        let mut forgotten = 0;
        loop {
            let batch = sqlx::query(
                "DELETE FROM inbox WHERE rowid IN (SELECT rowid FROM inbox WHERE applied_at_ms < ?1 LIMIT ?2)",
            )
            .bind(before.timestamp_millis())
            .bind(BATCH)
            .execute(&mut *self.writes.acquire().await.map_err(from_sqlx)?)
            .db_call(SQLITE, "DELETE", "inbox")
            .await
            .map_err(from_sqlx)?;
            forgotten += batch.rows_affected();
            if batch.rows_affected() < BATCH as u64 {
                return Ok(forgotten);
            }
        }
    }

    /// One transaction: the inbox row, written first, is also the check.
    async fn apply_once(&self, consumer: &str, event_id: &str, effect: &OrderEffect) -> Result<Applied, StoreError> {
        let mut connection = self.writes.acquire().await.map_err(from_sqlx)?;
        let mut tx = sqlx::Connection::begin_with(&mut *connection, "BEGIN IMMEDIATE")
            .db_call(SQLITE, "BEGIN", "")
            .await
            .map_err(from_sqlx)?;
        let applied = Self::apply_once_in(&mut tx, consumer, event_id, effect).await?;
        tx.commit().db_call(SQLITE, "COMMIT", "").await.map_err(from_sqlx)?;
        Ok(applied)
    }

    /// One transaction for them all: one wait for the writer, one commit.
    async fn apply_all_once(
        &self,
        consumer: &str,
        effects: &[(String, OrderEffect)],
    ) -> Result<Vec<Applied>, StoreError> {
        let mut connection = self.writes.acquire().await.map_err(from_sqlx)?;
        let mut tx = sqlx::Connection::begin_with(&mut *connection, "BEGIN IMMEDIATE")
            .db_call(SQLITE, "BEGIN", "")
            .await
            .map_err(from_sqlx)?;
        let mut applied = Vec::with_capacity(effects.len());
        for (event_id, effect) in effects {
            applied.push(Self::apply_once_in(&mut tx, consumer, event_id, effect).await?);
        }
        tx.commit().db_call(SQLITE, "COMMIT", "").await.map_err(from_sqlx)?;
        Ok(applied)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let mut connection = self.pool.acquire().await.map_err(from_sqlx)?;
        sqlx::query("SELECT 1").execute(&mut *connection).db_call(SQLITE, "SELECT", "").await.map_err(from_sqlx)?;
        Ok(())
    }
}
