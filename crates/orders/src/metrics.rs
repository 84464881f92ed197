//! The orders service's own metrics, described (HELP) and present at 0
//! from start, as every pipeline metric: a dashboard sees 0, not "no data".

use metrics::{Unit, counter, describe_counter, describe_gauge, gauge};

pub(crate) fn register() {
    describe_counter!("orders_created_total", "Orders written (with their reservation and outbox event).");
    describe_counter!("outbox_events_published_total", "Outbox events the relay published and the broker confirmed.");
    describe_counter!("outbox_publish_failures_total", "Relay batches the broker refused or did not confirm.");
    describe_gauge!("outbox_unsent_events", "Events in the outbox not yet published.");
    describe_gauge!(
        "outbox_oldest_unsent_age_seconds",
        Unit::Seconds,
        "Age of the oldest event in the outbox not yet published (0 when none)."
    );
    counter!("orders_created_total").absolute(0);
    counter!("outbox_events_published_total").absolute(0);
    counter!("outbox_publish_failures_total").absolute(0);
    gauge!("outbox_unsent_events").set(0.0);
    gauge!("outbox_oldest_unsent_age_seconds").set(0.0);
}
