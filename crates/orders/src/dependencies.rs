//! What the orders use cases need from the users and products services, in
//! the domain's own terms: the gRPC adapter ([`crate::clients`]) turns
//! statuses into these, so nothing here knows the transport.

use std::time::Duration;

use async_trait::async_trait;

/// Stock the products service holds for an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockHold {
    pub items: Vec<HeldItem>,
    /// How long the hold lasts unless an order confirms it (None: no bound).
    pub held_for: Option<Duration>,
}

/// One product of a hold, priced as the catalog priced it when it was taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldItem {
    pub product_id: String,
    pub product_name: String,
    pub quantity: i32,
    pub unit_price_minor: i64,
    pub currency: contract::money::Currency,
}

/// The products service's definite no: nothing was reserved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("{0}")]
    UnknownProduct(String),
    #[error("{0}")]
    InsufficientStock(String),
    #[error("{0}")]
    Invalid(String),
    /// Reserved, but priced in more than one currency: an order has one.
    #[error("the items are priced in different currencies ({0}): place one order per currency")]
    MixedCurrencies(String),
}

/// A dependency that gave no usable answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DependencyError {
    #[error("the {service} service did not answer in time")]
    TimedOut { service: &'static str },
    #[error("the {service} service is unavailable: {why}")]
    Unavailable { service: &'static str, why: String },
    /// It answered, with something that cannot be right (a fault on its side).
    #[error("the {service} service answered something unusable: {why}")]
    BadAnswer { service: &'static str, why: String },
}

/// Why a reservation did not happen, or may not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReserveError {
    #[error(transparent)]
    Refused(Refusal),
    /// Unknown whether anything was reserved: release to be sure.
    #[error(transparent)]
    Failed(DependencyError),
}

#[async_trait]
pub trait Dependencies: Send + Sync + 'static {
    async fn user_exists(&self, user_id: &str) -> Result<bool, DependencyError>;
    /// Holds `items` (product, quantity) under `reservation_id`, idempotently.
    async fn reserve(&self, reservation_id: &str, items: &[(String, i32)]) -> Result<StockHold, ReserveError>;
    /// Gives back what the reservation holds; true if this call released it.
    async fn release(&self, reservation_id: &str) -> Result<bool, DependencyError>;
}
