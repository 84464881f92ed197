//! JSON log lines that name the trace and span they were written in
//! (`trace_id`, `span_id`, as OpenTelemetry writes them), so a log line
//! leads to its trace in Jaeger and a trace to its log lines.
//!
//! tracing-subscriber's JSON format writes the line; the ids come from the
//! event's span: its [`SpanIds`] when the process exports no spans, else its
//! OpenTelemetry context, looked up through the
//! process's dispatcher (a formatter cannot reach it itself, and inside a
//! subscriber callback the "current" dispatcher is a no-op one).

use std::fmt;
use std::sync::OnceLock;

use opentelemetry::trace::TraceContextExt;
use tracing::dispatcher::WeakDispatch;
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{Format, Json, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::trace_ids::SpanIds;

static DISPATCH: OnceLock<WeakDispatch> = OnceLock::new();

/// Remembers the process's dispatcher once it is installed; until then
/// (there are no spans yet) lines carry no ids.
pub(crate) fn remember_dispatcher() {
    tracing::dispatcher::get_default(|dispatch| {
        let _ = DISPATCH.set(dispatch.downgrade());
    });
}

/// tracing-subscriber's flattened JSON line, with the ids of its span.
pub(crate) struct JsonWithTraceIds {
    json: Format<Json>,
}

impl JsonWithTraceIds {
    pub(crate) fn new() -> Self {
        Self { json: tracing_subscriber::fmt::format().json().flatten_event(true).with_current_span(true) }
    }
}

impl<S, N> FormatEvent<S, N> for JsonWithTraceIds
where
    S: Subscriber + for<'lookup> LookupSpan<'lookup>,
    N: for<'writer> FormatFields<'writer> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let ids = ctx.parent_span().and_then(|span| {
            let ids = match span.extensions().get::<SpanIds>() {
                Some(SpanIds(ids)) => ids.clone(),
                None => {
                    let dispatch = DISPATCH.get()?.upgrade()?;
                    let context = tracing_opentelemetry::get_otel_context(&span.id(), &dispatch)?;
                    context.span().span_context().clone()
                }
            };
            ids.is_valid().then(|| (ids.trace_id(), ids.span_id()))
        });
        let Some((trace_id, span_id)) = ids else { return self.json.format_event(ctx, writer, event) };
        let mut line = String::new();
        self.json.format_event(ctx, Writer::new(&mut line), event)?;
        // One object and a newline: the ids go in before its closing brace.
        match line.trim_end().strip_suffix('}') {
            Some(fields) => writeln!(writer, r#"{fields},"trace_id":"{trace_id}","span_id":"{span_id}"}}"#),
            None => writer.write_str(&line),
        }
    }
}
