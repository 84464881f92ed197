//! The event bus port: publish and consume the `shop.events.v1` protobuf
//! events. Two adapters: RabbitMQ (durable topic exchange, persistent
//! messages, publisher confirms, manual acks, retries through a delay queue,
//! a dead-letter queue) and an in-process bus for `meshwork up` with the
//! same at-least-once contract.
//!
//! Producers do not publish directly: they write events to an outbox in the
//! same transaction as their state, and a relay publishes them (see the
//! orders service). Consumers must tolerate redelivery: they dedupe on
//! [`Event::id`].
#![forbid(unsafe_code)]

pub mod event;
pub mod in_process;
pub mod rabbitmq;
pub mod subscription;

pub use event::Event;
pub use in_process::InProcessBus;
pub use subscription::{Handler, HandlerError, Subscription};

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

/// Hands events to the bus.
#[async_trait]
pub trait Publisher: Send + Sync + 'static {
    /// Returns once the bus has taken responsibility for the event (for
    /// RabbitMQ: the publisher confirm), so the caller may forget it.
    async fn publish(&self, event: &Event) -> Result<(), BusError>;
}
