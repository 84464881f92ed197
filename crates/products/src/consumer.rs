//! The products service's consumer of order events: OrderCreated confirms
//! the order's stock hold (it no longer expires) and counts the units sold;
//! OrderCancelled releases the order's reservation and
//! takes the sale back; OrderStatusChanged to SHIPPED settles the order (it
//! can no longer be cancelled). Each effect is idempotent by order id, and
//! the inbox skips an event id already applied, so redelivery never applies
//! an event twice.

use std::sync::Arc;

use async_trait::async_trait;
use contract::events::{OrderCancelled, OrderCreated, OrderLine, OrderStatusChanged};
use contract::orders::OrderStatus;
use events::{Event, Handler, HandlerError, Subscription};
use prost::Name;

use crate::domain::{ProductId, ReservationId};
use crate::store::{Applied, OrderEffect, ProductStore, StoreError};

/// The durable name of this consumer (its queue, and its inbox entries).
pub const CONSUMER: &str = "products.order-events";

pub struct OrderEvents {
    store: Arc<dyn ProductStore>,
}

impl OrderEvents {
    pub fn new(store: Arc<dyn ProductStore>) -> Self {
        Self { store }
    }

    /// The subscription that delivers order events to this handler: up to
    /// [`LANES`] orders' events applied side by side, each order's in the
    /// order they happened (a cancellation after its creation).
    pub fn subscription(store: Arc<dyn ProductStore>) -> Subscription {
        Subscription::new(
            CONSUMER,
            vec![OrderCreated::full_name(), OrderCancelled::full_name(), OrderStatusChanged::full_name()],
            Arc::new(Self::new(store)),
        )
        .ordered_by(LANES, order_id)
    }
}

/// Events applied at once. The stores serialise their writes anyway; the
/// lanes overlap each event's reads and round trips with the others'.
pub const LANES: usize = 32;

/// The order an event is about: its ordering key.
fn order_id(event: &Event) -> Option<String> {
    if event.is::<OrderCreated>() {
        event.decode::<OrderCreated>().ok().map(|created| created.order_id)
    } else if event.is::<OrderCancelled>() {
        event.decode::<OrderCancelled>().ok().map(|cancelled| cancelled.order_id)
    } else {
        event.decode::<OrderStatusChanged>().ok().map(|changed| changed.order_id)
    }
}

fn items(lines: &[OrderLine]) -> Result<Vec<(ProductId, i32)>, HandlerError> {
    lines
        .iter()
        .map(|line| {
            let id = ProductId::parse(&line.product_id)
                .map_err(|why| HandlerError::permanent(format!("product id {:?} {why}", line.product_id)))?;
            Ok((id, line.quantity))
        })
        .collect()
}

fn retryable(error: StoreError) -> HandlerError {
    HandlerError::retryable(error.to_string())
}

#[async_trait]
impl Handler for OrderEvents {
    async fn handle(&self, event: &Event) -> Result<(), HandlerError> {
        let Some(effect) = effect_of(event)? else { return Ok(()) };
        let event_id = event.id.to_string();
        let applied = self.store.apply_once(CONSUMER, &event_id, &effect).await.map_err(retryable)?;
        report(event, &effect, applied);
        Ok(())
    }

    /// All in one store call (SQLite: one transaction). An event that
    /// cannot be decoded makes the bus deliver the batch one by one, so that
    /// it alone is dead-lettered.
    async fn handle_batch(&self, events: &[&Event]) -> Option<Result<(), HandlerError>> {
        let mut effects = Vec::with_capacity(events.len());
        let mut applying = Vec::with_capacity(events.len());
        for event in events {
            match effect_of(event) {
                Ok(Some(effect)) => {
                    effects.push((event.id.to_string(), effect));
                    applying.push(*event);
                }
                Ok(None) => {}
                Err(error) => return Some(Err(error)),
            }
        }
        let outcome = self.store.apply_all_once(CONSUMER, &effects).await.map_err(retryable).map(|applied| {
            for ((event, (_, effect)), applied) in applying.iter().zip(&effects).zip(applied) {
                report(event, effect, applied);
            }
        });
        Some(outcome)
    }
}

fn report(event: &Event, effect: &OrderEffect, applied: Applied) {
    match applied {
        Applied::Before => tracing::debug!(event_id = %event.id, "event already applied"),
        Applied::Now { held } => {
            if !held && let OrderEffect::Created { order_id, .. } = effect {
                // Cancelled already, or its hold expired while no one could
                // tell that the order existed: worth a person's look.
                tracing::warn!(%order_id, "an order was created for stock no longer held");
            }
            tracing::info!(event_id = %event.id, kind = %event.kind, "order event applied");
        }
    }
}

/// What `event` asks of the catalog; `None` for an event with nothing to do.
fn effect_of(event: &Event) -> Result<Option<OrderEffect>, HandlerError> {
    let undecodable = |e: events::event::DecodeError| HandlerError::permanent(e.to_string());
    let reservation = |order_id: &str| {
        ReservationId::parse(order_id).map_err(|why| HandlerError::permanent(format!("order id {order_id:?} {why}")))
    };
    if event.is::<OrderCreated>() {
        let created: OrderCreated = event.decode().map_err(undecodable)?;
        Ok(Some(OrderEffect::Created {
            reservation: reservation(&created.order_id)?,
            items: items(&created.items)?,
            order_id: created.order_id,
        }))
    } else if event.is::<OrderCancelled>() {
        let cancelled: OrderCancelled = event.decode().map_err(undecodable)?;
        Ok(Some(OrderEffect::Cancelled {
            reservation: reservation(&cancelled.order_id)?,
            items: items(&cancelled.items)?,
            order_id: cancelled.order_id,
        }))
    } else if event.is::<OrderStatusChanged>() {
        let changed: OrderStatusChanged = event.decode().map_err(undecodable)?;
        // Orders are cancelled only before they ship. An event written
        // before the enum (still in an outbox or a queue) names the status.
        #[allow(deprecated)]
        let shipped = match changed.new_status() {
            OrderStatus::Unspecified => changed.to_status == "SHIPPED",
            status => status == OrderStatus::Shipped,
        };
        Ok(shipped.then_some(OrderEffect::Shipped { order_id: changed.order_id }))
    } else {
        Ok(None)
    }
}
