//! The metrics of the outbound call path, each described (HELP) and present
//! at 0 from the moment its upstream or endpoint exists, so an alert on a
//! rate sees 0 rather than no data.

use std::sync::OnceLock;

use metrics::{
    Counter, Histogram, Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};

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

/// The series of one kind of call under fixed labels: a histogram of how
/// long each took and a counter of calls by gRPC status code, the code's
/// label last. Their handles are looked up once, on first use, not on every
/// call: hashing the labels into the registry (and allocating them) was 2%
/// of the gateway's CPU per request. Used for each upstream endpoint's
/// attempts here, and for each method a platform server answers.
pub struct CallSeries {
    duration_name: &'static str,
    calls_name: &'static str,
    code_label: &'static str,
    labels: Vec<(&'static str, String)>,
    duration: OnceLock<Histogram>,
    /// By gRPC status code (0-16).
    calls: [OnceLock<Counter>; 17],
}

impl CallSeries {
    /// Series `duration_name` and `calls_name` (by `code_label`) with `labels`.
    pub fn new(
        duration_name: &'static str,
        calls_name: &'static str,
        code_label: &'static str,
        labels: Vec<(&'static str, String)>,
    ) -> Self {
        Self {
            duration_name,
            calls_name,
            code_label,
            labels,
            duration: OnceLock::new(),
            calls: std::array::from_fn(|_| OnceLock::new()),
        }
    }

    /// One call that ended with `code` after `elapsed`.
    pub fn record(&self, code: tonic::Code, elapsed: std::time::Duration) {
        self.duration.get_or_init(|| histogram!(self.duration_name, &self.labels)).record(elapsed.as_secs_f64());
        let calls = self.calls.get(code as usize).unwrap_or(&self.calls[tonic::Code::Unknown as usize]);
        calls
            .get_or_init(|| {
                let mut labels = self.labels.clone();
                labels.push((self.code_label, code_label(code).to_owned()));
                counter!(self.calls_name, &labels)
            })
            .increment(1);
    }
}

/// One endpoint's per-attempt series.
pub(crate) fn attempt_series(upstream: &str, endpoint: &str) -> CallSeries {
    let labels = vec![("upstream", upstream.to_owned()), ("endpoint", endpoint.to_owned())];
    CallSeries::new("upstream_request_duration_seconds", "upstream_requests_total", "code", labels)
}

/// A status code as gRPC's own implementations name it in metrics
/// (go-grpc-prometheus: `OK`, `Canceled`, `InvalidArgument`, ...), which
/// dashboards and alert rules match. tonic's `Debug` differs for two of
/// them (`Ok`, `Cancelled`), so the series zeroed at start as `OK` and the
/// one counting the calls as `Ok` used to be two.
pub fn code_label(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "Canceled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_labelled_as_grpc_names_them() {
        assert_eq!(code_label(tonic::Code::Ok), "OK");
        assert_eq!(code_label(tonic::Code::Cancelled), "Canceled");
        assert_eq!(code_label(tonic::Code::DeadlineExceeded), "DeadlineExceeded");
        assert_eq!(code_label(tonic::Code::Unauthenticated), "Unauthenticated");
    }
}
