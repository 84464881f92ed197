//! The consumer side of the event pipeline's metrics, the same on both
//! buses, each labelled with the consumer's durable name and present at 0
//! from the moment it subscribes (a dashboard sees "nothing yet", not "no
//! such consumer"):
//!
//! - `events_applied_total`: events its handler applied;
//! - `events_redelivered_total`: deliveries after the first of an event
//!   (a failed handler retried, or the broker re-sending what a lost
//!   consumer never acknowledged);
//! - `events_dead_lettered_total`: events it gave up on;
//! - `events_consumer_lag_seconds`: how old the event it last applied was
//!   (from the time in its UUIDv7 id): how far behind the producer it runs.

use metrics::{Unit, describe_counter, describe_gauge};

use crate::Event;

fn describe() {
    describe_counter!("events_applied_total", "Events the consumer's handler applied.");
    describe_counter!(
        "events_redelivered_total",
        "Deliveries after the first of an event: a failed handler retried, or the broker re-sending."
    );
    describe_counter!("events_dead_lettered_total", "Events the consumer gave up on, parked for an operator.");
    describe_gauge!(
        "events_consumer_lag_seconds",
        Unit::Seconds,
        "Age of the event the consumer last applied: how far behind the producer it runs."
    );
}

pub(crate) fn register(consumer: &str) {
    describe();
    let consumer = consumer.to_owned();
    metrics::counter!("events_applied_total", "consumer" => consumer.clone()).absolute(0);
    metrics::counter!("events_redelivered_total", "consumer" => consumer.clone()).absolute(0);
    metrics::counter!("events_dead_lettered_total", "consumer" => consumer.clone()).absolute(0);
    metrics::gauge!("events_consumer_lag_seconds", "consumer" => consumer).set(0.0);
}

pub(crate) fn applied(consumer: &str, event: &Event) {
    metrics::counter!("events_applied_total", "consumer" => consumer.to_owned()).increment(1);
    if let Some(age) = event.age() {
        metrics::gauge!("events_consumer_lag_seconds", "consumer" => consumer.to_owned()).set(age.as_secs_f64());
    }
}

pub(crate) fn redelivered(consumer: &str) {
    metrics::counter!("events_redelivered_total", "consumer" => consumer.to_owned()).increment(1);
}

pub(crate) fn dead_lettered(consumer: &str) {
    metrics::counter!("events_dead_lettered_total", "consumer" => consumer.to_owned()).increment(1);
}
