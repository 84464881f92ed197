//! The event bus port: publish and consume the `shop.events.v1` protobuf
//! events. Two adapters: RabbitMQ (durable topic exchange, persistent
//! messages, publisher confirms, manual acks, retries through a delay queue,
//! a dead-letter queue) and an in-process bus for `meshwork up` with the
//! same at-least-once contract. Both apply a subscription's events with
//! bounded concurrency, keeping the order within each ordering key.
//!
//! Producers do not publish directly: they write events to an outbox in the
//! same transaction as their state, and a relay publishes them (see the
//! orders service). Consumers must tolerate redelivery: they dedupe on
//! [`Event::id`].
#![forbid(unsafe_code)]

pub mod event;
pub mod in_process;
mod metrics;
pub mod rabbitmq;
pub mod subscription;
mod trace;

pub use event::Event;
pub use in_process::InProcessBus;
pub use subscription::{Handler, HandlerError, OrderingKey, Subscription};

use async_trait::async_trait;

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The broker cannot be reached or dropped the connection; retry later.
    #[error("event bus unavailable: {0}")]
    Unavailable(String),
    /// The broker refused the message (negative acknowledgement).
    #[error("event bus refused the message: {0}")]
    Refused(String),
}

/// A batch the bus took only the start of.
#[derive(Debug, thiserror::Error)]
#[error("the bus took {taken} events of the batch, then: {error}")]
pub struct PartialPublish {
    /// How many of the first events the bus took: they need not be sent again.
    pub taken: usize,
    pub error: BusError,
}

/// Hands events to the bus.
#[async_trait]
pub trait Publisher: Send + Sync + 'static {
    /// Returns once the bus has taken responsibility for the event (for
    /// RabbitMQ: the publisher confirm), so the caller may forget it.
    async fn publish(&self, event: &Event) -> Result<(), BusError>;

    /// Hands over `events` in order, returning once the bus has taken them
    /// all. Adapters override it to overlap the round trips (RabbitMQ: all
    /// published, then all confirms awaited), which is what lets the outbox
    /// relay keep up with a busy service. After a failure, an event beyond
    /// `taken` may have arrived too: it is sent again, and consumers dedupe.
    async fn publish_batch(&self, events: &[Event]) -> Result<(), PartialPublish> {
        for (taken, event) in events.iter().enumerate() {
            self.publish(event).await.map_err(|error| PartialPublish { taken, error })?;
        }
        Ok(())
    }
}
