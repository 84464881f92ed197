//! What a consumer declares: a durable name, the event kinds it wants, its
//! handler, and how hard to try before dead-lettering an event.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::Event;

/// Why a handler could not apply an event.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct HandlerError {
    pub message: String,
    /// Retrying cannot help (the event is malformed): dead-letter it at once.
    pub permanent: bool,
}

impl HandlerError {
    pub fn retryable(message: impl Into<String>) -> Self {
        Self { message: message.into(), permanent: false }
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        Self { message: message.into(), permanent: true }
    }
}

/// Applies events. It must be idempotent by [`Event::id`]: delivery is at
/// least once.
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    async fn handle(&self, event: &Event) -> Result<(), HandlerError>;
}

#[derive(Clone)]
pub struct Subscription {
    /// Durable consumer name (the queue name, without the bus prefix).
    pub name: String,
    /// Event kinds (full message names) to receive.
    pub kinds: Vec<String>,
    pub handler: Arc<dyn Handler>,
    /// Deliveries before an event is dead-lettered.
    pub max_attempts: u32,
    /// Wait between deliveries of a failing event.
    pub retry_delay: Duration,
}

impl Subscription {
    pub fn new(name: impl Into<String>, kinds: Vec<String>, handler: Arc<dyn Handler>) -> Self {
        Self { name: name.into(), kinds, handler, max_attempts: 5, retry_delay: Duration::from_secs(1) }
    }

    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    pub fn retry_delay(mut self, delay: Duration) -> Self {
        self.retry_delay = delay;
        self
    }

    pub fn wants(&self, event: &Event) -> bool {
        self.kinds.contains(&event.kind)
    }
}
