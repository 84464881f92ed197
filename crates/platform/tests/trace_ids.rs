//! Telemetry as a process without an exporter starts it (the bench's
//! gateway, `meshwork up` on a laptop): logs quieted to warnings, spans
//! still given their ids and the caller's trace carried on (by an
//! upstream's calls too, which make no CLIENT span of their own), and
//! nothing more verbose than the spans or the logs let through to any
//! layer.
//!
//! Its own test binary, because telemetry is initialised once per process.

use platform::telemetry::{LogFormat, TelemetrySettings};
use tracing::level_filters::LevelFilter;

#[test]
fn with_logs_at_warn_the_info_spans_still_carry_the_callers_trace_and_nothing_more_verbose_is_built() {
    let settings = TelemetrySettings {
        service_name: None,
        log_format: LogFormat::Json,
        log_filter: "warn".to_owned(),
        otlp_endpoint: None,
    };
    let _guard = platform::telemetry::init(&settings, "trace-ids-test").unwrap();

    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let mut incoming = http::HeaderMap::new();
    incoming.insert("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01").parse().unwrap());
    let server = tracing::info_span!("server");
    platform::telemetry::set_parent_from_headers(&server, &incoming);
    let client = server.in_scope(|| tracing::info_span!("client"));
    let mut outgoing = http::HeaderMap::new();
    client.in_scope(|| platform::telemetry::inject_current_context(&mut outgoing));
    let traceparent = outgoing.get("traceparent").expect("a traceparent passed on");
    let traceparent = traceparent.to_str().unwrap();
    assert!(traceparent.starts_with(&format!("00-{trace_id}-")), "in the caller's trace: {traceparent}");
    let own = platform::telemetry::span_context(&client).span_id().to_string();
    assert!(traceparent.contains(&own), "the client span's own id goes on: {traceparent}");

    // An outbound call through an upstream makes no CLIENT span here (it
    // would be made for an exporter, and there is none): the attempt runs
    // in its caller's span, whose ids it carries on.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let _in_runtime = runtime.enter();
    let upstream = resilience::Upstream::new("traced", resilience::Policy::default());
    upstream.set_endpoints(&["http://127.0.0.1:1".to_owned()]).unwrap();
    let call = upstream.call_endpoint("traced.Service/Call", true, None, |_, _| async {
        let mut outgoing = http::HeaderMap::new();
        platform::telemetry::inject_current_context(&mut outgoing);
        Ok::<_, tonic::Status>(outgoing)
    });
    let Ok(sent) = runtime.block_on(resilience::in_span(&server, call)) else { panic!("the call failed") };
    let traceparent = sent.get("traceparent").expect("a traceparent passed on").to_str().unwrap();
    let callers = platform::telemetry::span_context(&server).span_id().to_string();
    assert!(traceparent.starts_with(&format!("00-{trace_id}-{callers}-")), "the caller's span goes on: {traceparent}");

    assert!(tracing::debug_span!("wanted by no layer").is_disabled());
    assert_eq!(LevelFilter::current(), LevelFilter::INFO, "no debug or trace call site is even asked");
}
