//! The metrics of the outbound call path, each described (HELP) and present
//! at 0 from the moment its upstream or endpoint exists, so an alert on a
//! rate sees 0 rather than no data.

use metrics::{Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};

use crate::breaker::BreakerState;

/// The transitions a breaker makes, each a series of
/// `circuit_breaker_transitions_total`.
const TRANSITIONS: [(BreakerState, BreakerState); 4] = [
    (BreakerState::Closed, BreakerState::Open),
    (BreakerState::Open, BreakerState::HalfOpen),
    (BreakerState::HalfOpen, BreakerState::Closed),
    (BreakerState::HalfOpen, BreakerState::Open),
];

fn describe() {
    describe_counter!("upstream_requests_total", "Attempts sent to an upstream endpoint, by gRPC status code.");
    describe_histogram!(
        "upstream_request_duration_seconds",
        Unit::Seconds,
        "Time for one attempt at an upstream endpoint, answer or failure."
    );
    describe_counter!("upstream_retries_total", "Attempts retried after a retryable failure, by upstream.");
    describe_counter!("upstream_shed_total", "Calls refused at once because the upstream's bulkhead was full.");
    describe_counter!(
        "upstream_breaker_rejected_total",
        "Calls refused at once because every endpoint's circuit breaker was open."
    );
    describe_gauge!("circuit_breaker_state", "State of an endpoint's circuit breaker: 0 closed, 1 open, 2 half-open.");
    describe_counter!("circuit_breaker_transitions_total", "Circuit breaker state changes, by endpoint, from and to.");
}

/// An upstream exists: its families are described and its counters at 0.
pub(crate) fn upstream_created(upstream: &str) {
    describe();
    for name in ["upstream_retries_total", "upstream_shed_total", "upstream_breaker_rejected_total"] {
        counter!(name, "upstream" => upstream.to_owned()).absolute(0);
    }
}

/// An endpoint joined `upstream`: its breaker is closed, no transitions yet.
pub(crate) fn endpoint_added(upstream: &str, endpoint: &str) {
    breaker_state(upstream, endpoint, BreakerState::Closed);
    for (from, to) in TRANSITIONS {
        transitions(upstream, endpoint, from, to).absolute(0);
    }
}

pub(crate) fn breaker_changed(upstream: &str, endpoint: &str, from: BreakerState, to: BreakerState) {
    breaker_state(upstream, endpoint, to);
    transitions(upstream, endpoint, from, to).increment(1);
}

fn breaker_state(upstream: &str, endpoint: &str, state: BreakerState) {
    gauge!("circuit_breaker_state", "upstream" => upstream.to_owned(), "endpoint" => endpoint.to_owned())
        .set(state.as_gauge());
}

fn transitions(upstream: &str, endpoint: &str, from: BreakerState, to: BreakerState) -> metrics::Counter {
    let labels = [
        ("upstream", upstream.to_owned()),
        ("endpoint", endpoint.to_owned()),
        ("from", from.as_str().to_owned()),
        ("to", to.as_str().to_owned()),
    ];
    counter!("circuit_breaker_transitions_total", &labels)
}

pub(crate) fn retried(upstream: &str) {
    counter!("upstream_retries_total", "upstream" => upstream.to_owned()).increment(1);
}

pub(crate) fn shed(upstream: &str) {
    counter!("upstream_shed_total", "upstream" => upstream.to_owned()).increment(1);
}

pub(crate) fn breaker_rejected(upstream: &str) {
    counter!("upstream_breaker_rejected_total", "upstream" => upstream.to_owned()).increment(1);
}

pub(crate) fn attempted(upstream: &str, endpoint: &str, code: tonic::Code, elapsed: std::time::Duration) {
    let labels = [("upstream", upstream.to_owned()), ("endpoint", endpoint.to_owned())];
    histogram!("upstream_request_duration_seconds", &labels).record(elapsed.as_secs_f64());
    let [upstream, endpoint] = labels;
    counter!("upstream_requests_total", &[upstream, endpoint, ("code", format!("{code:?}"))]).increment(1);
}
