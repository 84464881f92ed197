//! The in-process bus for `meshwork up`: publishing delivers the event to
//! every subscription that wants it, retrying a failing handler, and returns
//! only when each has applied it (or dead-lettered it). The outbox relay
//! marks an event sent only after that, so an event interrupted by a crash
//! is published again at the next start: at least once, as on RabbitMQ.

use std::sync::{Arc, Mutex, RwLock};

use async_trait::async_trait;

use crate::{BusError, Event, Publisher, Subscription};

/// An event a subscription gave up on, and the last error.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub subscription: String,
    pub event: Event,
    pub error: String,
}

#[derive(Clone, Default)]
pub struct InProcessBus {
    subscriptions: Arc<RwLock<Vec<Subscription>>>,
    dead_letters: Arc<Mutex<Vec<DeadLetter>>>,
}

impl InProcessBus {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn subscribe(&self, subscription: Subscription) {
        self.subscriptions.write().expect("subscriptions lock").push(subscription);
    }

    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        self.dead_letters.lock().expect("dead letters lock").clone()
    }

    async fn deliver(&self, subscription: &Subscription, event: &Event) {
        for attempt in 1..=subscription.max_attempts {
            match subscription.handler.handle(event).await {
                Ok(()) => return,
                Err(error) if error.permanent || attempt == subscription.max_attempts => {
                    tracing::error!(subscription = %subscription.name, event_id = %event.id, kind = %event.kind, %error, attempt, "event dead-lettered");
                    self.dead_letters.lock().expect("dead letters lock").push(DeadLetter {
                        subscription: subscription.name.clone(),
                        event: event.clone(),
                        error: error.message,
                    });
                    return;
                }
                Err(error) => {
                    tracing::warn!(subscription = %subscription.name, event_id = %event.id, %error, attempt, "event handler failed; retrying");
                    tokio::time::sleep(subscription.retry_delay).await;
                }
            }
        }
    }
}

#[async_trait]
impl Publisher for InProcessBus {
    async fn publish(&self, event: &Event) -> Result<(), BusError> {
        let wanted: Vec<Subscription> =
            self.subscriptions.read().expect("subscriptions lock").iter().filter(|s| s.wants(event)).cloned().collect();
        for subscription in &wanted {
            self.deliver(subscription, event).await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Handler, HandlerError};
    use contract::events::{OrderCancelled, OrderCreated};
    use prost::Name;
    use std::time::Duration;

    /// Fails the first `failures` deliveries, then records what it applied.
    struct Flaky {
        failures: Mutex<u32>,
        applied: Mutex<Vec<uuid::Uuid>>,
    }

    #[async_trait]
    impl Handler for Flaky {
        async fn handle(&self, event: &Event) -> Result<(), HandlerError> {
            let mut failures = self.failures.lock().unwrap();
            if *failures > 0 {
                *failures -= 1;
                return Err(HandlerError::retryable("not yet"));
            }
            self.applied.lock().unwrap().push(event.id);
            Ok(())
        }
    }

    fn flaky(failures: u32) -> Arc<Flaky> {
        Arc::new(Flaky { failures: Mutex::new(failures), applied: Mutex::new(Vec::new()) })
    }

    #[tokio::test(start_paused = true)]
    async fn an_event_reaches_the_subscriptions_that_want_it_after_retries() {
        let bus = InProcessBus::new();
        let created = flaky(2);
        let cancelled = flaky(0);
        bus.subscribe(
            Subscription::new("a", vec![OrderCreated::full_name()], created.clone())
                .retry_delay(Duration::from_millis(10)),
        );
        bus.subscribe(Subscription::new("b", vec![OrderCancelled::full_name()], cancelled.clone()));

        let event = Event::new(uuid::Uuid::now_v7(), &OrderCreated::default());
        bus.publish(&event).await.unwrap();
        assert_eq!(*created.applied.lock().unwrap(), [event.id]);
        assert!(cancelled.applied.lock().unwrap().is_empty());
        assert!(bus.dead_letters().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn an_event_that_keeps_failing_is_dead_lettered() {
        let bus = InProcessBus::new();
        let handler = flaky(100);
        bus.subscribe(Subscription::new("a", vec![OrderCreated::full_name()], handler.clone()).max_attempts(3));
        let event = Event::new(uuid::Uuid::now_v7(), &OrderCreated::default());
        bus.publish(&event).await.unwrap();
        assert_eq!(*handler.failures.lock().unwrap(), 97, "three attempts");
        let dead = bus.dead_letters();
        assert_eq!((dead.len(), dead[0].subscription.as_str(), dead[0].event.id), (1, "a", event.id));
    }
}
