//! The in-process bus for `meshwork up`: publishing delivers the events to
//! every subscription that wants them, retrying a failing handler, and
//! returns only when each has applied them (or dead-lettered them). The outbox relay
//! marks an event sent only after that, so an event interrupted by a crash
//! is published again at the next start: at least once, as on RabbitMQ.

use std::sync::{Arc, Mutex, RwLock};

use async_trait::async_trait;
use tracing::Instrument;

use crate::{BusError, Event, PartialPublish, Publisher, Subscription};

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
        crate::metrics::register(&subscription.name);
        self.subscriptions.write().expect("subscriptions lock").push(subscription);
    }

    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        self.dead_letters.lock().expect("dead letters lock").clone()
    }

    /// Delivers `event` until it is applied or dead-lettered; the first
    /// attempt runs in `first` when given (a span made for a batch that
    /// was not applied as one).
    async fn deliver(
        &self,
        subscription: &Subscription,
        (event, producer): (&Event, Option<&str>),
        mut first: Option<tracing::Span>,
    ) {
        for attempt in 1..=subscription.max_attempts {
            if attempt > 1 {
                crate::metrics::redelivered(&subscription.name);
            }
            let span = first.take().unwrap_or_else(|| consumer_span(subscription, (event, producer), attempt));
            let outcome = subscription.handler.handle(event).instrument(span.clone()).await;
            if outcome.is_err() {
                crate::trace::failed(&span);
            }
            match outcome {
                Ok(()) => return crate::metrics::applied(&subscription.name, event),
                Err(error) if error.permanent || attempt == subscription.max_attempts => {
                    crate::metrics::dead_lettered(&subscription.name);
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
        self.publish_batch(std::slice::from_ref(event)).await.map_err(|partial| partial.error)
    }

    /// Each subscription applies the batch in one go if its handler can
    /// (one transaction for the lot), else in its lanes side by side, each
    /// lane in publishing order, as a RabbitMQ consumer with the same
    /// settings would.
    async fn publish_batch(&self, events: &[Event]) -> Result<(), PartialPublish> {
        // Each event's PRODUCER span lasts until every subscription has it.
        let producers: Vec<tracing::Span> =
            events.iter().map(|event| crate::trace::producer(crate::trace::IN_PROCESS, DESTINATION, event)).collect();
        let contexts: Vec<Option<String>> =
            producers.iter().zip(events).map(|(producer, event)| crate::trace::carried(producer, event)).collect();
        let subscriptions: Vec<Subscription> = self.subscriptions.read().expect("subscriptions lock").clone();
        for subscription in &subscriptions {
            let wanted: Vec<(&Event, Option<&str>)> = events
                .iter()
                .zip(&contexts)
                .filter(|(event, _)| subscription.wants(event))
                .map(|(event, context)| (event, context.as_deref()))
                .collect();
            if wanted.is_empty() {
                continue;
            }
            // One CONSUMER span per event, each in its own trace: all lasting
            // the one transaction that applies the batch, or each the first
            // delivery of its event when the handler takes them one by one.
            let mut spans: Vec<Option<tracing::Span>> =
                wanted.iter().map(|&delivery| Some(consumer_span(subscription, delivery, 1))).collect();
            let batch: Vec<&Event> = wanted.iter().map(|(event, _)| *event).collect();
            let current = spans[0].clone().unwrap_or_else(tracing::Span::none);
            match subscription.handler.handle_batch(&batch).instrument(current).await {
                Some(Ok(())) => {
                    for span in spans.iter().flatten() {
                        crate::trace::batch(span, batch.len());
                    }
                    batch.iter().for_each(|event| crate::metrics::applied(&subscription.name, event));
                    continue;
                }
                Some(Err(error)) => {
                    for span in spans.iter().flatten() {
                        crate::trace::batch(span, batch.len());
                        crate::trace::failed(span);
                    }
                    // The deliveries that follow are new attempts, in spans of their own.
                    spans.iter_mut().for_each(|span| *span = None);
                    tracing::debug!(subscription = %subscription.name, %error, "a batch failed; delivering its events one by one");
                }
                None => {}
            }
            let mut lanes: Vec<Vec<_>> = vec![Vec::new(); subscription.lanes()];
            for (delivery, span) in wanted.into_iter().zip(spans) {
                lanes[subscription.lane(delivery.0)].push((delivery, span));
            }
            let lanes = lanes.into_iter().filter(|lane| !lane.is_empty()).map(|lane| async move {
                for (delivery, span) in lane {
                    self.deliver(subscription, delivery, span).await;
                }
            });
            futures::future::join_all(lanes).await;
        }
        producers.iter().for_each(crate::trace::end);
        Ok(())
    }
}

/// `messaging.destination.name` of the in-process bus: its one stream of events.
const DESTINATION: &str = "events";

fn consumer_span(subscription: &Subscription, delivery: (&Event, Option<&str>), attempt: u32) -> tracing::Span {
    crate::trace::consumer(crate::trace::IN_PROCESS, DESTINATION, &subscription.name, delivery, attempt)
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

    /// Records (key, sequence) as it applies, taking 10 ms per event.
    #[derive(Default)]
    struct Slow {
        applied: Mutex<Vec<(String, u32)>>,
    }

    #[async_trait]
    impl Handler for Slow {
        async fn handle(&self, event: &Event) -> Result<(), HandlerError> {
            tokio::time::sleep(Duration::from_millis(10)).await;
            let created: OrderCreated = event.decode().unwrap();
            self.applied.lock().unwrap().push((created.order_id, created.items.len() as u32));
            Ok(())
        }
    }

    /// The `n`th event (n items) of order `order`.
    fn nth_event_of(order: &str, n: usize) -> Event {
        let items = vec![contract::events::OrderLine::default(); n];
        Event::new(uuid::Uuid::now_v7(), &OrderCreated { order_id: order.to_owned(), items, ..Default::default() })
    }

    #[tokio::test(start_paused = true)]
    async fn lanes_apply_keys_side_by_side_and_each_key_in_order() {
        let bus = InProcessBus::new();
        let handler = Arc::new(Slow::default());
        let key = |event: &Event| event.decode::<OrderCreated>().ok().map(|created| created.order_id);
        bus.subscribe(Subscription::new("a", vec![OrderCreated::full_name()], handler.clone()).ordered_by(64, key));
        let orders = ["o-1", "o-2", "o-3", "o-4"];
        let batch: Vec<Event> = (1..=5).flat_map(|n| orders.map(|order| nth_event_of(order, n))).collect();

        let started = tokio::time::Instant::now();
        bus.publish_batch(&batch).await.unwrap();
        let took = started.elapsed();

        let applied = handler.applied.lock().unwrap().clone();
        assert_eq!(applied.len(), 20);
        for order in orders {
            let sequence: Vec<u32> = applied.iter().filter(|(key, _)| key == order).map(|(_, n)| *n).collect();
            assert_eq!(sequence, [1, 2, 3, 4, 5], "{order}'s events in order");
        }
        // Some orders shared a lane (64 lanes, 4 keys: rarely), but never all:
        // one lane would take 20 × 10 ms.
        assert!(took < Duration::from_millis(200), "lanes overlapped: {took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_key_every_event_waits_for_the_one_before() {
        let bus = InProcessBus::new();
        let handler = Arc::new(Slow::default());
        bus.subscribe(Subscription::new("a", vec![OrderCreated::full_name()], handler.clone()));
        let batch: Vec<Event> = (1..=4).map(|n| nth_event_of(&format!("o-{n}"), n)).collect();
        let started = tokio::time::Instant::now();
        bus.publish_batch(&batch).await.unwrap();
        assert_eq!(started.elapsed(), Duration::from_millis(40));
        let sequence: Vec<u32> = handler.applied.lock().unwrap().iter().map(|(_, n)| *n).collect();
        assert_eq!(sequence, [1, 2, 3, 4]);
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
