//! The gateway's own metrics (its upstream calls are counted by
//! `resilience`), described (HELP) and, where unlabelled, at 0 from start.

use metrics::{Unit, counter, describe_counter, describe_histogram};

pub(crate) fn register() {
    describe_counter!("gateway_requests_total", "REST requests answered, by route, HTTP method and status code.");
    describe_histogram!(
        "gateway_request_duration_seconds",
        Unit::Seconds,
        "Time to answer a REST request, by route, from its arrival to its response headers."
    );
    describe_counter!("gateway_rate_limited_total", "Requests refused with 429 by the per-client rate limit.");
    describe_counter!(
        "gateway_auth_failures_total",
        "Requests refused with 401 for a missing, invalid or expired token."
    );
    counter!("gateway_rate_limited_total").absolute(0);
    counter!("gateway_auth_failures_total").absolute(0);
}
