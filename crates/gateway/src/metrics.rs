//! The gateway's own metrics (its upstream calls are counted by
//! `resilience`), described (HELP) and, where unlabelled, at 0 from start.

use std::sync::OnceLock;
use std::time::Duration;

use http::{Method, StatusCode};
use metrics::{Counter, Histogram, SharedString, Unit, counter, describe_counter, describe_histogram, histogram};

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
    describe_counter!(
        "gateway_transcode_refused_total",
        "Request bodies refused with 503 for want of room to turn them into messages (GATEWAY_TRANSCODE_BYTES)."
    );
    counter!("gateway_rate_limited_total").absolute(0);
    counter!("gateway_transcode_refused_total").absolute(0);
    counter!("gateway_auth_failures_total").absolute(0);
}

/// Counts a REST request: its route (`None`: no route matched), the HTTP
/// method it was served as, its status and how long it took.
pub(crate) fn request_answered(
    route: Option<&crate::routes::Route>,
    method: &Method,
    status: StatusCode,
    took: Duration,
) {
    let seconds = took.as_secs_f64();
    let Some(route) = route else {
        answered(SharedString::const_str("unmatched"), method, status).increment(1);
        histogram!("gateway_request_duration_seconds", "route" => "unmatched").record(seconds);
        return;
    };
    let series = &route.series;
    if status == StatusCode::OK {
        // A route is found only by its own method (an override's too): its label.
        series.ok.get_or_init(|| answered(route.names.label.clone(), &route.http_method, status)).increment(1);
    } else {
        answered(route.names.label.clone(), method, status).increment(1);
    }
    let duration = || histogram!("gateway_request_duration_seconds", "route" => route.names.label.clone());
    series.duration.get_or_init(duration).record(seconds);
}

fn answered(route: SharedString, method: &Method, status: StatusCode) -> Counter {
    let status = SharedString::from_owned(status.as_str().to_owned());
    counter!("gateway_requests_total", "route" => route, "method" => method_label(method), "status" => status)
}

/// A route's series for its commonest answer (200) and for its latency,
/// taken from the recorder on first use and kept: finding a series hashes
/// its name and labels, on every request otherwise (kept, the gateway ran
/// a GET in 1.6% fewer instructions: callgrind, 163,900 -> 161,300). The
/// recorder never drops a series, so a kept one stays the one `/metrics`
/// shows.
#[derive(Debug, Clone, Default)]
pub(crate) struct RouteSeries {
    ok: OnceLock<Counter>,
    duration: OnceLock<Histogram>,
}

/// A method's label: HTTP lets a client send any token as its method, and
/// each would otherwise be a new series kept for the life of the process.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::{Lookup, RouteTable};

    /// The value of the one sample of `family` whose labels include all of `labels`.
    fn sample(page: &str, family: &str, labels: &[&str]) -> f64 {
        page.lines()
            .filter(|line| line.starts_with(&format!("{family}{{")))
            .find(|line| labels.iter().all(|label| line.contains(label)))
            .map_or(0.0, |line| line.rsplit(' ').next().unwrap().parse().unwrap())
    }

    #[test]
    fn each_answer_is_counted_under_its_route_method_and_status() {
        let recorder = platform::metrics::install();
        let pool = prost_reflect::DescriptorPool::decode(contract::FILE_DESCRIPTOR_SET).unwrap();
        let table = RouteTable::build(&pool, |_| false).unwrap();
        let Lookup::Found { route, .. } = table.lookup(&Method::DELETE, "/products/p1") else { panic!("a route") };
        let series = |status: &str| {
            let page = recorder.render();
            let status = format!(r#"status="{status}""#);
            let labels = [r#"route="/products/{id}""#, r#"method="DELETE""#, &status];
            let took = sample(&page, "gateway_request_duration_seconds_count", &[r#"route="/products/{id}""#]);
            (sample(&page, "gateway_requests_total", &labels), took)
        };
        let purge = Method::from_bytes(b"PURGE").unwrap();
        let unmatched = |page: &str| {
            let labels = [r#"route="unmatched""#, r#"method="other""#, r#"status="404""#];
            sample(page, "gateway_requests_total", &labels)
        };
        let (ok, not_found, unmatched_before) = (series("200"), series("404"), unmatched(&recorder.render()));
        for status in [StatusCode::OK, StatusCode::OK, StatusCode::NOT_FOUND, StatusCode::OK] {
            request_answered(Some(route), &Method::DELETE, status, Duration::from_millis(3));
        }
        request_answered(None, &purge, StatusCode::NOT_FOUND, Duration::from_millis(1));
        // The same series whether found each time or kept from the first.
        assert_eq!(series("200").0 - ok.0, 3.0);
        assert_eq!(series("404").0 - not_found.0, 1.0);
        assert_eq!(series("200").1 - ok.1, 4.0, "every answer's time, whatever its status");
        assert_eq!(unmatched(&recorder.render()) - unmatched_before, 1.0);
    }

    #[test]
    fn a_made_up_http_method_is_labelled_other() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::DELETE), "DELETE");
        for made_up in ["FROBNICATE", "X1", "PURGE"] {
            assert_eq!(method_label(&Method::from_bytes(made_up.as_bytes()).unwrap()), "other");
        }
    }
}
