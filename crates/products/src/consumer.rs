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
use events::{Event, Handler, HandlerError, Subscription};
use prost::Name;

use crate::domain::{ProductId, ReservationId};
use crate::store::{ProductStore, StoreError};

/// The durable name of this consumer (its queue, and its inbox entries).
pub const CONSUMER: &str = "products.order-events";

pub struct OrderEvents {
    store: Arc<dyn ProductStore>,
}

impl OrderEvents {
    pub fn new(store: Arc<dyn ProductStore>) -> Self {
        Self { store }
    }

    /// The subscription that delivers order events to this handler.
    pub fn subscription(store: Arc<dyn ProductStore>) -> Subscription {
        Subscription::new(
            CONSUMER,
            vec![OrderCreated::full_name(), OrderCancelled::full_name(), OrderStatusChanged::full_name()],
            Arc::new(Self::new(store)),
        )
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
        let event_id = event.id.to_string();
        if self.store.inbox_contains(CONSUMER, &event_id).await.map_err(retryable)? {
            tracing::debug!(%event_id, "event already applied");
            return Ok(());
        }
        if event.is::<OrderCreated>() {
            let created: OrderCreated = event.decode().map_err(|e| HandlerError::permanent(e.to_string()))?;
            let reservation = ReservationId::parse(&created.order_id)
                .map_err(|why| HandlerError::permanent(format!("order id {:?} {why}", created.order_id)))?;
            if !self.store.confirm(&reservation).await.map_err(retryable)? {
                // Cancelled already, or its hold expired while no one could
                // tell that the order existed: worth a person's look.
                tracing::warn!(order_id = %created.order_id, "an order was created for stock no longer held");
            }
            self.store.record_sale(&created.order_id, &items(&created.items)?).await.map_err(retryable)?;
        } else if event.is::<OrderCancelled>() {
            let cancelled: OrderCancelled = event.decode().map_err(|e| HandlerError::permanent(e.to_string()))?;
            let reservation = ReservationId::parse(&cancelled.order_id)
                .map_err(|why| HandlerError::permanent(format!("order id {:?} {why}", cancelled.order_id)))?;
            self.store.release(&reservation).await.map_err(retryable)?;
            self.store.cancel_sale(&cancelled.order_id, &items(&cancelled.items)?).await.map_err(retryable)?;
        } else if event.is::<OrderStatusChanged>() {
            let changed: OrderStatusChanged = event.decode().map_err(|e| HandlerError::permanent(e.to_string()))?;
            // Orders are cancelled only before they ship.
            if changed.to_status == "SHIPPED" {
                self.store.settle_order(&changed.order_id).await.map_err(retryable)?;
            }
        } else {
            return Ok(());
        }
        self.store.inbox_record(CONSUMER, &event_id).await.map_err(retryable)?;
        tracing::info!(%event_id, kind = %event.kind, "order event applied");
        Ok(())
    }
}
