//! What a trace shows of the event bus (OpenTelemetry messaging semantic
//! conventions 1.37): a PRODUCER span for each event published, in the
//! trace of the request that made the event (its stored `traceparent`),
//! and a CONSUMER span for each time a subscription processes it, the
//! child of the PRODUCER span whose context the message carries.

use tracing::field::Empty;

use crate::Event;

/// `messaging.system` of the in-process bus (the conventions name none).
pub(crate) const IN_PROCESS: &str = "meshwork_in_process";
pub(crate) const RABBITMQ: &str = "rabbitmq";

/// The PRODUCER span of publishing `event` to `destination`.
pub(crate) fn producer(system: &'static str, destination: &str, event: &Event) -> tracing::Span {
    let span = tracing::info_span!(
        "publish",
        otel.name = %format!("publish {destination}"),
        otel.kind = "producer",
        messaging.system = system,
        messaging.destination.name = %destination,
        messaging.operation.type = "send",
        messaging.operation.name = "publish",
        messaging.message.id = %event.id,
        messaging.rabbitmq.destination.routing_key = Empty,
    );
    // RabbitMQ routes by the event's kind; the in-process bus has no routing key.
    if system == RABBITMQ {
        span.record("messaging.rabbitmq.destination.routing_key", event.kind.as_str());
    }
    follow(&span, event.traceparent.as_deref());
    span
}

/// The CONSUMER span of `subscription` processing `event`, published to
/// `destination`; its parent is the PRODUCER span `producer` (a
/// `traceparent`) names.
pub(crate) fn consumer(
    system: &'static str,
    destination: &str,
    subscription: &str,
    (event, producer): (&Event, Option<&str>),
    attempt: u32,
) -> tracing::Span {
    let span = tracing::info_span!(
        "process",
        otel.name = %format!("process {destination}"),
        otel.kind = "consumer",
        otel.status_code = Empty,
        messaging.system = system,
        messaging.destination.name = %destination,
        messaging.consumer.group.name = %subscription,
        messaging.operation.type = "process",
        messaging.operation.name = "process",
        messaging.message.id = %event.id,
        messaging.batch.message_count = Empty,
        meshwork.attempt = i64::from(attempt),
    );
    follow(&span, producer);
    span
}

/// Notes on a CONSUMER span that it processed `count` events at once.
pub(crate) fn batch(span: &tracing::Span, count: usize) {
    span.record("messaging.batch.message_count", count as i64);
}

/// Marks a CONSUMER span failed.
pub(crate) fn failed(span: &tracing::Span) {
    span.record("otel.status_code", "ERROR");
}

/// The `traceparent` the message of `event` carries: its PRODUCER span's,
/// or, where nothing traces this process, the event's own.
pub(crate) fn carried(producer: &tracing::Span, event: &Event) -> Option<String> {
    let mut headers = http::HeaderMap::new();
    producer.in_scope(|| platform::telemetry::inject_current_context(&mut headers));
    let own = headers.get("traceparent").and_then(|value| value.to_str().ok()).map(str::to_owned);
    own.or_else(|| event.traceparent.clone())
}

/// Ends `span` now, as exported. tracing-opentelemetry stamps a span's end
/// at its last exit, not when it closes: a PRODUCER span entered only to
/// inject its context (`carried`) would end there, before the publish it
/// stands for is done.
pub(crate) fn end(span: &tracing::Span) {
    span.in_scope(|| {});
}

/// Makes `span` the child of the remote span `traceparent` names.
fn follow(span: &tracing::Span, traceparent: Option<&str>) {
    let Some(value) = traceparent.and_then(|value| value.parse().ok()) else { return };
    let mut headers = http::HeaderMap::new();
    headers.insert("traceparent", value);
    platform::telemetry::set_parent_from_headers(span, &headers);
}
