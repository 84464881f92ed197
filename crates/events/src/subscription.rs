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

    /// Applies `events` together, in order, all or none (one transaction),
    /// where that is cheaper than one by one: the in-process bus hands a
    /// relay batch over this way. `None`: not supported, or not this time;
    /// the bus then delivers each event on its own, with retries, which is
    /// also what follows an error here.
    async fn handle_batch(&self, _events: &[&Event]) -> Option<Result<(), HandlerError>> {
        None
    }
}

/// Names the sequence an event belongs to (for order events: the order id).
pub type OrderingKey = Arc<dyn Fn(&Event) -> Option<String> + Send + Sync>;

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
    /// What must stay in order: events with the same key are applied one
    /// after another, in the order they were published; events with
    /// different keys may be applied side by side, at most `concurrency` at
    /// once. Without a key, every event waits for the one before it.
    pub ordering_key: Option<OrderingKey>,
    pub concurrency: usize,
}

impl Subscription {
    pub fn new(name: impl Into<String>, kinds: Vec<String>, handler: Arc<dyn Handler>) -> Self {
        Self {
            name: name.into(),
            kinds,
            handler,
            max_attempts: 5,
            retry_delay: Duration::from_secs(1),
            ordering_key: None,
            concurrency: 1,
        }
    }

    /// Applies up to `concurrency` events at once, keeping those with the
    /// same `key` in order (see [`Subscription::ordering_key`]).
    pub fn ordered_by(
        mut self,
        concurrency: usize,
        key: impl Fn(&Event) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.concurrency = concurrency.max(1);
        self.ordering_key = Some(Arc::new(key));
        self
    }

    /// How many events may be applied at once: one per lane.
    pub fn lanes(&self) -> usize {
        if self.ordering_key.is_some() { self.concurrency } else { 1 }
    }

    /// The lane that applies `event`: the same for every event of one key,
    /// and lane 0 for an event without one.
    pub fn lane(&self, event: &Event) -> usize {
        use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
        match self.ordering_key.as_ref().and_then(|key| key(event)) {
            // A fixed hasher: the lane of a key must not change between calls.
            Some(key) => (BuildHasherDefault::<DefaultHasher>::default().hash_one(key) % self.lanes() as u64) as usize,
            None => 0,
        }
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
