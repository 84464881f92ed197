//! The products store port and its two adapters: MongoDB for production,
//! SQLite for `meshwork up`. Both pass the same test suite, including the
//! concurrent reservation tests that prove stock is never oversold.

mod mongo;
mod mongo_pool;
mod sqlite;

pub use mongo::MongoProductStore;
pub use sqlite::SqliteProductStore;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::domain::{
    Product, ProductChanges, ProductFilter, ProductId, Reservation, ReservationId, ReservationRefused,
};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("a product with this id already exists")]
    DuplicateId,
    /// The database cannot be reached right now; worth retrying.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Another call is reserving or releasing this reservation id right now.
    #[error("reservation {0} is being processed by another call; retry")]
    ReservationBusy(String),
    #[error("database error: {0}")]
    Other(String),
}

/// Why an adjustment was refused.
#[derive(Debug, thiserror::Error)]
pub enum AdjustError {
    #[error("product not found")]
    NotFound,
    #[error("stock would go below zero (stock {stock}, change {delta})")]
    WouldGoNegative { stock: i32, delta: i32 },
    #[error("stock would go above the maximum (stock {stock}, change {delta})")]
    WouldExceedMax { stock: i32, delta: i32 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What an order event does to the catalog (see the consumer).
#[derive(Debug, Clone)]
pub enum OrderEffect {
    /// The order was written: its hold no longer expires, its units are sold.
    Created { reservation: ReservationId, order_id: String, items: Vec<(ProductId, i32)> },
    /// The order was cancelled: its stock goes back, its sale is taken back.
    Cancelled { reservation: ReservationId, order_id: String, items: Vec<(ProductId, i32)> },
    /// The order shipped and can no longer be cancelled.
    Shipped { order_id: String },
}

/// What [`ProductStore::apply_once`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The inbox had the event: nothing was done again.
    Before,
    /// Applied now. `held` is false for a creation whose stock was no
    /// longer held (released, or its hold expired), worth a person's look.
    Now { held: bool },
}

/// The outcome of a reservation attempt.
#[derive(Debug)]
pub enum ReserveOutcome {
    Reserved(Reservation),
    Refused(ReservationRefused),
}

#[async_trait]
pub trait ProductStore: Send + Sync + 'static {
    async fn insert(&self, product: &Product) -> Result<(), StoreError>;
    async fn get(&self, id: &ProductId) -> Result<Option<Product>, StoreError>;
    /// Up to `limit` products in id order after `after`, passing `filter`.
    async fn list(
        &self,
        filter: &ProductFilter,
        after: Option<&ProductId>,
        limit: u32,
    ) -> Result<Vec<Product>, StoreError>;
    /// Applies the set fields in one atomic write; `None` if there is no such product.
    async fn update(&self, id: &ProductId, changes: &ProductChanges) -> Result<Option<Product>, StoreError>;
    async fn delete(&self, id: &ProductId) -> Result<bool, StoreError>;
    /// Adds `delta` to the stock atomically, never below zero.
    async fn adjust_stock(&self, id: &ProductId, delta: i32) -> Result<Product, AdjustError>;
    /// Takes `quantity` of every item, or nothing, held until `expires_at`
    /// unless confirmed; a repeated id returns the first outcome (and its
    /// expiry) and takes nothing more. Items name distinct products.
    async fn reserve(
        &self,
        id: &ReservationId,
        items: &[(ProductId, i32)],
        expires_at: DateTime<Utc>,
    ) -> Result<ReserveOutcome, StoreError>;
    /// An order holds this reservation: it no longer expires (idempotent).
    /// False if there is nothing to confirm: released, or never reserved.
    async fn confirm(&self, id: &ReservationId) -> Result<bool, StoreError>;
    /// Up to `limit` reservations still held, unconfirmed, whose hold ended
    /// before `now`: candidates for release once no order is found for them.
    async fn expired_holds(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<ReservationId>, StoreError>;
    /// Gives back what the reservation took, once, confirmed or not. True if
    /// this call released it; false if it was released before (or never
    /// existed, in which case a later reserve of this id is refused).
    async fn release(&self, id: &ReservationId) -> Result<bool, StoreError>;
    /// Finishes up to `limit` releases whose caller died part-way (a
    /// release that is several writes, on MongoDB, and began before `now`
    /// less a lease); how many. A store whose release is one transaction
    /// has none.
    async fn finish_interrupted_releases(&self, _now: DateTime<Utc>, _limit: u32) -> Result<u32, StoreError> {
        Ok(0)
    }
    /// Counts an order's units as sold, once per order.
    async fn record_sale(&self, order_id: &str, items: &[(ProductId, i32)]) -> Result<(), StoreError>;
    /// Takes back a counted sale, once; a sale not counted yet never will be.
    async fn cancel_sale(&self, order_id: &str, items: &[(ProductId, i32)]) -> Result<(), StoreError>;
    /// Drops what kept the sales of up to `limit` orders cancelled before
    /// `before` from being counted, where that would otherwise stay for
    /// good; how many orders. A cancelled sale stays uncounted all the same.
    /// A store that keeps sales apart from its products has nothing to drop.
    async fn drop_cancelled_sale_markers(&self, _before: DateTime<Utc>, _limit: u32) -> Result<u32, StoreError> {
        Ok(0)
    }
    /// The order shipped, so it can no longer be cancelled: drops the
    /// bookkeeping that made its release and the cancellation of its sale
    /// exactly-once, where that bookkeeping would otherwise grow with every
    /// order (idempotent). Stock and units sold stay as they are, and the
    /// sale stays counted once: a duplicate of the order's creation applied
    /// later counts nothing.
    async fn settle_order(&self, order_id: &str) -> Result<(), StoreError>;
    /// Whether `consumer` has applied the event with this id.
    async fn inbox_contains(&self, consumer: &str, event_id: &str) -> Result<bool, StoreError>;
    /// Records that `consumer` applied the event (a repeat is a no-op).
    async fn inbox_record(&self, consumer: &str, event_id: &str) -> Result<(), StoreError>;
    /// Forgets the events applied before `before`, every consumer's; how
    /// many. Every effect is idempotent per order for good (a sale counted,
    /// cancelled or settled stays so), so an event delivered again after
    /// this changes nothing: the inbox only spares applying it again.
    async fn forget_applied_events(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;

    /// Applies `effect` for the event `event_id` of `consumer`, once: a
    /// repeat finds the event in the inbox and does nothing. This default
    /// takes the steps one by one, each idempotent, so that a crash between
    /// them is repaired when the event is delivered again; a store that can
    /// take them in one transaction does (SQLite: one commit per event
    /// instead of three, which is what lets the consumer keep up).
    async fn apply_once(&self, consumer: &str, event_id: &str, effect: &OrderEffect) -> Result<Applied, StoreError> {
        if self.inbox_contains(consumer, event_id).await? {
            return Ok(Applied::Before);
        }
        let held = match effect {
            OrderEffect::Created { reservation, order_id, items } => {
                let held = self.confirm(reservation).await?;
                self.record_sale(order_id, items).await?;
                held
            }
            OrderEffect::Cancelled { reservation, order_id, items } => {
                self.release(reservation).await?;
                self.cancel_sale(order_id, items).await?;
                true
            }
            OrderEffect::Shipped { order_id } => {
                self.settle_order(order_id).await?;
                true
            }
        };
        self.inbox_record(consumer, event_id).await?;
        Ok(Applied::Now { held })
    }

    /// [`Self::apply_once`] for each of `effects` (event id, effect), in
    /// order. This default applies them one by one; SQLite applies them
    /// all or none, in one transaction.
    async fn apply_all_once(
        &self,
        consumer: &str,
        effects: &[(String, OrderEffect)],
    ) -> Result<Vec<Applied>, StoreError> {
        let mut applied = Vec::with_capacity(effects.len());
        for (event_id, effect) in effects {
            applied.push(self.apply_once(consumer, event_id, effect).await?);
        }
        Ok(applied)
    }
    async fn ping(&self) -> Result<(), StoreError>;
}
