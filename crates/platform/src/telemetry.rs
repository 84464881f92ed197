//! One telemetry init per process: logs (pretty on a terminal, JSON
//! otherwise), spans exported over OTLP when an endpoint is configured, and
//! W3C trace context carried across gRPC metadata in both directions.

use std::io::IsTerminal;
use std::str::FromStr;

use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::{SpanContext, TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::trace_ids::TraceIdsLayer;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Pretty when stderr is a terminal, JSON otherwise (containers, CI).
    Auto,
    Pretty,
    Json,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value.to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "pretty" | "text" => Ok(Self::Pretty),
            "json" => Ok(Self::Json),
            other => Err(format!("expected auto, pretty or json, not `{other}`")),
        }
    }
}

/// What [`init`] needs; part of [`crate::settings::Settings`].
#[derive(Debug, Clone)]
pub struct TelemetrySettings {
    /// `service.name` on exported spans; the component name when unset.
    pub service_name: Option<String>,
    pub log_format: LogFormat,
    /// An `EnvFilter` directive such as `info,meshwork=debug`.
    pub log_filter: String,
    /// OTLP/gRPC collector endpoint; no export when unset.
    pub otlp_endpoint: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("invalid RUST_LOG filter: {0}")]
    Filter(String),
    #[error("cannot build the OTLP exporter for {endpoint}: {reason}")]
    Exporter { endpoint: String, reason: String },
    #[error("telemetry is already initialised in this process")]
    AlreadyInitialised,
}

/// Flushes and stops span export when dropped: keep it alive in `main`.
#[must_use = "dropping the guard stops trace export"]
pub struct TelemetryGuard {
    provider: SdkTracerProvider,
}

impl TelemetryGuard {
    /// Exports the spans ended so far now, instead of at the next batch.
    pub fn flush(&self) {
        if let Err(error) = self.provider.force_flush() {
            tracing::warn!(%error, "trace export did not flush");
        }
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Err(error) = self.provider.shutdown() {
            eprintln!("trace export did not shut down cleanly: {error}");
        }
    }
}

/// Installs the global subscriber, tracer provider and W3C propagator.
///
/// Spans are built in full by the OpenTelemetry layer when they are
/// exported; without an exporter, [`crate::trace_ids`] gives them only their
/// ids, so trace ids are still created, logged and propagated to
/// downstream services.
/// Must run inside the Tokio runtime (the OTLP exporter is a tonic client).
pub fn init(settings: &TelemetrySettings, default_service_name: &str) -> Result<TelemetryGuard, TelemetryError> {
    let filter = EnvFilter::try_new(&settings.log_filter).map_err(|e| TelemetryError::Filter(e.to_string()))?;
    // Before any component starts, so each finds the recorder to describe its metrics to.
    crate::metrics::install();
    let service_name = settings.service_name.clone().unwrap_or_else(|| default_service_name.to_owned());

    let resource = resource(service_name);
    let mut provider = SdkTracerProvider::builder().with_resource(resource);
    if let Some(endpoint) = &settings.otlp_endpoint {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .build()
            .map_err(|e| TelemetryError::Exporter { endpoint: endpoint.clone(), reason: e.to_string() })?;
        provider = provider.with_batch_exporter(exporter);
    }
    let provider = provider.build();
    let (otel_layer, ids_layer) = match settings.otlp_endpoint {
        Some(_) => (Some(otel_layer(provider.tracer("meshwork"))), None),
        None => (None, Some(TraceIdsLayer)),
    };
    resilience::attempt_spans(settings.otlp_endpoint.is_some());

    let json = match settings.log_format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let fmt_layer = if json {
        tracing_subscriber::fmt::layer()
            .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
            .event_format(crate::json_log::JsonWithTraceIds::new())
            .with_writer(std::io::stderr)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer().with_writer(std::io::stderr).boxed()
    };

    // The logs have a filter of their own: RUST_LOG=warn quiets them but
    // must not stop the (info-level) RPC spans from being exported, or from
    // carrying the trace on. The ids layer has none: a per-layer filter looks
    // each span up again on every enter and exit to ask whether it is one of
    // its own (callgrind, 2,000 REST GETs through the gateway: 160,800 ->
    // 159,100 instructions each). The global filter, outermost, keeps out
    // what no layer wants: whatever is more verbose than both the spans
    // (info) and the logs.
    let everything_wanted = LevelFilter::INFO.max(filter.max_level_hint().unwrap_or(LevelFilter::TRACE));
    tracing_subscriber::registry()
        .with(fmt_layer.with_filter(filter))
        .with(otel_layer.map(|layer| layer.with_filter(LevelFilter::INFO)))
        .with(ids_layer)
        .with(everything_wanted)
        .try_init()
        .map_err(|_| TelemetryError::AlreadyInitialised)?;
    crate::json_log::remember_dispatcher();
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    opentelemetry::global::set_tracer_provider(provider.clone());
    Ok(TelemetryGuard { provider })
}

/// The OpenTelemetry layer exporting through `tracer`, without the work it
/// does by default on every span and every poll that nothing here reads: a
/// `thread.name` string per span, busy/idle timings (two clock reads per
/// poll of an instrumented future), and making the span's context the
/// thread's current OpenTelemetry context on each poll (trace ids are read
/// from the tracing span itself: [`inject_current_context`], the JSON log).
/// Spans, their attributes, parents and what is exported are unchanged.
fn otel_layer<S>(tracer: opentelemetry_sdk::trace::SdkTracer) -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    tracing_opentelemetry::layer()
        .with_threads(false)
        .with_tracked_inactivity(false)
        .with_context_activation(false)
        .with_tracer(tracer)
}

/// Who exports the spans (OpenTelemetry resource semantic conventions
/// 1.37): `service.name`, `service.version` (this build) and
/// `service.instance.id` (one per process, so replicas are told apart),
/// plus whatever `OTEL_RESOURCE_ATTRIBUTES` names (such as
/// `deployment.environment.name=prod`), which wins over these defaults.
fn resource(service_name: String) -> opentelemetry_sdk::Resource {
    use opentelemetry::{Key, KeyValue};
    let from_environment = opentelemetry_sdk::Resource::builder().build();
    let mut resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service_name)
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")));
    if from_environment.get(&Key::from_static_str("service.instance.id")).is_none() {
        resource = resource.with_attribute(KeyValue::new("service.instance.id", uuid::Uuid::new_v4().to_string()));
    }
    resource.build()
}

/// For tests: logs to the test writer when `TEST_LOG` is set, and installs the
/// W3C propagator either way; spans carry their ids as in a process that
/// exports none. Safe to call from every test.
pub fn init_for_tests() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        crate::metrics::install();
        let fmt_layer = std::env::var_os("TEST_LOG").map(|_| tracing_subscriber::fmt::layer().with_test_writer());
        let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
        let _ = tracing_subscriber::registry().with(filter).with(fmt_layer).with(TraceIdsLayer).try_init();
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    });
}

// The names of the trace headers, checked once, not each time they are read
// or written (on every call a process serves or makes): parsing a name
// took 450 instructions (callgrind). Written values are taken as they are
// made, not copied.
const TRACEPARENT: http::HeaderName = http::HeaderName::from_static("traceparent");
const TRACESTATE: http::HeaderName = http::HeaderName::from_static("tracestate");
static TRACEPARENT_KEY: std::sync::LazyLock<tonic::metadata::AsciiMetadataKey> =
    std::sync::LazyLock::new(|| tonic::metadata::AsciiMetadataKey::from_static("traceparent"));

/// Reads W3C trace context from HTTP headers (gRPC metadata is HTTP/2 headers).
struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(header_name(key).ok()?).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// The header a propagator names: the trace headers' built once, any other parsed.
fn header_name(key: &str) -> Result<http::HeaderName, http::header::InvalidHeaderName> {
    match key {
        "traceparent" => Ok(TRACEPARENT),
        "tracestate" => Ok(TRACESTATE),
        _ => http::HeaderName::from_str(key),
    }
}

struct HeaderInjector<'a>(&'a mut http::HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        // An empty `tracestate` says nothing (W3C Trace Context §3.3).
        if value.is_empty() {
            return;
        }
        if let (Ok(name), Ok(mut value)) = (header_name(key), http::HeaderValue::try_from(value)) {
            value.set_sensitive(never_indexed(key));
            self.0.insert(name, value);
        }
    }
}

/// Whether HPACK should never index the propagated header `key`: a
/// `traceparent` is new on every call, so the connection's header table
/// gains nothing from it, and each one added pushes out entries that do
/// repeat, to be sent in full again. `h2` (as nghttp2) never indexes a value
/// marked sensitive; besides that, the mark only hides it from `Debug`.
fn never_indexed(key: &str) -> bool {
    key == "traceparent"
}

struct MetadataInjector<'a>(&'a mut tonic::metadata::MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if value.is_empty() {
            return;
        }
        let name = match key {
            "traceparent" => Ok(TRACEPARENT_KEY.clone()),
            _ => key.parse(),
        };
        if let (Ok(name), Ok(mut value)) =
            (name, tonic::metadata::AsciiMetadataValue::try_from(bytes::Bytes::from(value)))
        {
            value.set_sensitive(never_indexed(key));
            self.0.insert(name, value);
        }
    }
}

/// Makes the caller's trace (from `traceparent`/`tracestate`) the parent of `span`.
pub fn set_parent_from_headers(span: &tracing::Span, headers: &http::HeaderMap) {
    // No `traceparent`, no caller's context: the W3C propagator (the one
    // installed) would hand back an empty one, through its global lock and
    // two header lookups (290 instructions more than this, on every call
    // served: callgrind, gRPC calls passed through the gateway).
    if !headers.contains_key(TRACEPARENT) && crate::trace_ids::set_remote_parent(span, &SpanContext::empty_context()) {
        return;
    }
    let parent =
        opentelemetry::global::get_text_map_propagator(|propagator| propagator.extract(&HeaderExtractor(headers)));
    if crate::trace_ids::set_remote_parent(span, parent.span().span_context()) {
        return;
    }
    let _ = span.set_parent(parent);
}

/// The trace context of `span`: the trace it is in and its own id
/// (invalid for a span no layer gave ids, such as a disabled one).
pub fn span_context(span: &tracing::Span) -> SpanContext {
    crate::trace_ids::of(span).unwrap_or_else(|| span.context().span().span_context().clone())
}

/// Writes the current span's trace context into outgoing headers.
pub fn inject_current_context(headers: &mut http::HeaderMap) {
    inject_current(&mut HeaderInjector(headers));
}

/// Writes the current span's trace context into outgoing gRPC metadata.
pub fn inject_current_context_into_metadata(metadata: &mut tonic::metadata::MetadataMap) {
    inject_current(&mut MetadataInjector(metadata));
}

fn inject_current(injector: &mut dyn Injector) {
    match crate::trace_ids::of_current() {
        // What the W3C propagator writes, without its formatter and its
        // global lock: this runs on every call the gateway makes.
        Some(ids) if ids.is_valid() => {
            injector.set("traceparent", crate::trace_ids::traceparent(&ids));
            injector.set("tracestate", ids.trace_state().header());
        }
        Some(_) => {}
        None => {
            let context = tracing::Span::current().context();
            opentelemetry::global::get_text_map_propagator(|propagator| propagator.inject_context(&context, injector));
        }
    }
}

/// A tonic client interceptor that propagates the current trace to the
/// callee: `UserServiceClient::with_interceptor(channel, TracePropagation)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct TracePropagation;

impl tonic::service::Interceptor for TracePropagation {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        inject_current_context_into_metadata(request.metadata_mut());
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::service::Interceptor;

    #[test]
    fn log_formats_parse() {
        assert_eq!("JSON".parse::<LogFormat>(), Ok(LogFormat::Json));
        assert_eq!("pretty".parse::<LogFormat>(), Ok(LogFormat::Pretty));
        assert_eq!("auto".parse::<LogFormat>(), Ok(LogFormat::Auto));
        assert!("xml".parse::<LogFormat>().is_err());
    }

    #[test]
    fn incoming_trace_context_becomes_the_parent_and_is_passed_on() {
        init_for_tests();
        let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
        let mut incoming = http::HeaderMap::new();
        incoming.insert("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01").parse().unwrap());

        let span = tracing::info_span!("handler");
        set_parent_from_headers(&span, &incoming);
        let seen = span_context(&span).trace_id().to_string();
        assert_eq!(seen, trace_id);

        let mut request = tonic::Request::new(());
        span.in_scope(|| {
            request = TracePropagation.call(std::mem::replace(&mut request, tonic::Request::new(()))).unwrap();
        });
        let outgoing = request.metadata().get("traceparent").expect("traceparent injected").to_str().unwrap();
        assert!(outgoing.starts_with(&format!("00-{trace_id}-")), "{outgoing}");
        assert!(!outgoing.contains("00f067aa0ba902b7"), "the child span id is sent, not the caller's");
        assert!(request.metadata().get("traceparent").unwrap().is_sensitive(), "never indexed by HPACK");
        assert!(
            request.metadata().get("tracestate").is_none(),
            "no tracestate came in, none goes out, not an empty one"
        );

        incoming.insert("tracestate", "vendor=opaque".parse().unwrap());
        let span = tracing::info_span!("handler");
        set_parent_from_headers(&span, &incoming);
        let mut headers = http::HeaderMap::new();
        span.in_scope(|| inject_current_context(&mut headers));
        assert_eq!(headers.get("tracestate").unwrap(), "vendor=opaque");
        assert!(headers.get("traceparent").unwrap().is_sensitive(), "never indexed by HPACK");
        assert!(!headers.get("tracestate").unwrap().is_sensitive(), "the same on every call: worth indexing");
    }

    #[test]
    fn without_a_traceparent_a_call_starts_a_trace_of_its_own() {
        init_for_tests();
        // A `tracestate` alone is no caller's context (W3C Trace Context §3.3.1).
        let mut incoming = http::HeaderMap::new();
        incoming.insert("tracestate", "vendor=opaque".parse().unwrap());

        let root = tracing::info_span!("handler");
        set_parent_from_headers(&root, &incoming);
        assert!(span_context(&root).is_valid(), "a root span has ids of its own");

        // Served inside another span (a consumer's, say), the call is still
        // no part of that span's trace: nobody asked for it.
        let outer = tracing::info_span!("outer");
        let inner = outer.in_scope(|| tracing::info_span!("handler"));
        set_parent_from_headers(&inner, &incoming);
        let (outer, inner) = (span_context(&outer), span_context(&inner));
        assert!(inner.is_valid());
        assert_ne!(inner.trace_id(), outer.trace_id(), "a trace of its own");
        assert!(inner.trace_flags().is_sampled(), "as a new root is");
        assert_eq!(inner.trace_state().header(), "", "the lone tracestate is not taken");

        let mut headers = http::HeaderMap::new();
        let handler = tracing::info_span!("handler");
        set_parent_from_headers(&handler, &incoming);
        handler.in_scope(|| inject_current_context(&mut headers));
        let sent = headers.get("traceparent").expect("a traceparent passed on").to_str().unwrap();
        let own = span_context(&handler);
        assert_eq!(sent, format!("00-{}-{}-01", own.trace_id(), own.span_id()));
    }
}
