//! The orders store port and its adapters (PostgreSQL; SQLite for `meshwork
//! up`). Every state change and the event describing it are written in one
//! transaction: the outbox.

mod postgres;
mod sql;
mod sqlite;

pub use postgres::PostgresOrderStore;
pub use sqlite::SqliteOrderStore;

use async_trait::async_trait;
use uuid::Uuid;

use crate::domain::{Order, OrderId, OrderItem, OrderStatus};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The user already has an order under this idempotency key.
    #[error("idempotency key already used")]
    DuplicateKey,
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Other(String),
}

impl StoreError {
    fn from_sqlx(error: sqlx::Error) -> Self {
        match platform::database::classify(&error) {
            platform::database::Failure::Duplicate => Self::DuplicateKey,
            platform::database::Failure::Unavailable => Self::Unavailable(error.to_string()),
            platform::database::Failure::Other => Self::Other(error.to_string()),
        }
    }
}

/// An event waiting in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    pub seq: i64,
    pub event: events::Event,
}

/// What waits in the outbox: how many events, and since when.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backlog {
    pub unsent: u64,
    pub oldest: Option<chrono::DateTime<chrono::Utc>>,
}

/// Which orders to list.
#[derive(Debug, Clone, Default)]
pub struct OrderQuery {
    pub status: Option<OrderStatus>,
    pub user_id: Option<Uuid>,
    /// Newest first: only orders with a smaller id than this.
    pub before: Option<OrderId>,
    pub limit: u32,
}

/// Keeps the outbox relay single across replicas while it is held.
#[async_trait]
pub trait RelayLease: Send {
    /// Whether it is still held: false once what holds it is gone (on
    /// PostgreSQL, the session whose advisory lock it is), so another
    /// replica may have it now.
    async fn still_held(&mut self) -> bool;
}

/// One process owns an embedded database: its lease is never lost.
#[async_trait]
impl RelayLease for () {
    async fn still_held(&mut self) -> bool {
        true
    }
}

#[async_trait]
pub trait OrderStore: Send + Sync + 'static {
    /// Records a new order and its OrderCreated event, atomically.
    async fn create(
        &self,
        order: &Order,
        idempotency_key: Option<&str>,
        event: &events::Event,
    ) -> Result<(), StoreError>;
    async fn get(&self, id: OrderId) -> Result<Option<Order>, StoreError>;
    async fn find_by_idempotency_key(&self, user_id: Uuid, key: &str) -> Result<Option<Order>, StoreError>;
    async fn list(&self, query: &OrderQuery) -> Result<Vec<Order>, StoreError>;
    /// Moves the order from `from` to `to` and records `event`, atomically;
    /// false when the order is not (or no longer) in `from`.
    async fn change_status(
        &self,
        id: OrderId,
        from: OrderStatus,
        to: OrderStatus,
        at: chrono::DateTime<chrono::Utc>,
        event: &events::Event,
    ) -> Result<bool, StoreError>;
    /// The oldest unsent events, in the order they were written.
    async fn unsent(&self, limit: u32) -> Result<Vec<OutboxEntry>, StoreError>;
    /// The bus has these events: they leave the outbox, which so holds only
    /// what is still to be published (no history grows there).
    async fn mark_sent(&self, seqs: &[i64]) -> Result<(), StoreError>;
    async fn backlog(&self) -> Result<Backlog, StoreError>;
    /// Waits to become the one relay (PostgreSQL: an advisory lock); the
    /// lease lasts as long as the returned value.
    async fn relay_lease(&self) -> Result<Option<Box<dyn RelayLease>>, StoreError>;
    async fn ping(&self) -> Result<(), StoreError>;
}

#[derive(sqlx::FromRow)]
struct OrderRow {
    id: Uuid,
    user_id: Uuid,
    status: String,
    currency: String,
    created_at: chrono::DateTime<chrono::Utc>,
    updated_at: chrono::DateTime<chrono::Utc>,
}

#[derive(sqlx::FromRow)]
struct ItemRow {
    order_id: Uuid,
    product_id: String,
    product_name: String,
    quantity: i32,
    unit_price_minor: i64,
}

#[derive(sqlx::FromRow)]
struct OutboxRow {
    seq: i64,
    event_id: Uuid,
    kind: String,
    payload: Vec<u8>,
    traceparent: Option<String>,
}

impl OutboxRow {
    fn into_entry(self) -> OutboxEntry {
        OutboxEntry {
            seq: self.seq,
            event: events::Event {
                id: self.event_id,
                kind: self.kind,
                payload: self.payload,
                traceparent: self.traceparent,
            },
        }
    }
}

/// Joins order rows with their item rows, keeping the rows' order.
fn assemble(rows: Vec<OrderRow>, items: Vec<ItemRow>) -> Result<Vec<Order>, StoreError> {
    let mut orders = Vec::with_capacity(rows.len());
    for row in rows {
        let status = row.status.parse::<OrderStatus>().map_err(StoreError::Other)?;
        let items = items
            .iter()
            .filter(|item| item.order_id == row.id)
            .map(|item| OrderItem {
                product_id: item.product_id.clone(),
                product_name: item.product_name.clone(),
                quantity: item.quantity,
                unit_price_minor: item.unit_price_minor,
            })
            .collect();
        orders.push(Order {
            id: OrderId::from_uuid(row.id),
            user_id: row.user_id,
            items,
            status,
            currency: contract::money::Currency::from_stored(row.currency),
            created_at: row.created_at,
            updated_at: row.updated_at,
        });
    }
    Ok(orders)
}
