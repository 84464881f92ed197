//! The process-wide Prometheus registry behind every `/metrics` endpoint.
//!
//! Metrics are recorded with the `metrics` facade anywhere in the process and
//! rendered here in the Prometheus text format. One recorder serves the whole
//! process: under `meshwork up` every port shows the same registry, and the
//! `grpc_service` label tells the components apart.
//!
//! Every family is described (`# HELP`), so `promtool check metrics` passes
//! on every component; the families here are the platform's own (the gRPC
//! server, access, connections, the process and the build), and each crate
//! describes its own where they come into being.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Latency buckets in seconds, from a cache hit to a request timeout.
const LATENCY_BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
static PROCESS: OnceLock<metrics_process::Collector> = OnceLock::new();

/// Installs the global recorder once (later calls return the same handle)
/// and describes the platform's families. Called first thing by a process
/// ([`crate::telemetry::init`]), so every description lands in it.
///
/// If another recorder was installed first (a test harness, an embedding
/// application), metrics go there and this handle renders an empty registry.
pub fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), LATENCY_BUCKETS)
            .expect("bucket list is not empty")
            .build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics shows only its own registry");
        }
        spawn_upkeep(handle.clone());
        describe_platform();
        handle
    })
}

/// How often recorded histogram samples are folded into their buckets.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The recorder keeps every histogram sample until it is folded into the
/// buckets, which only a render or an upkeep does. Without this thread a
/// process nobody scrapes grew by about 40 bytes per request through the
/// gateway, without bound (1.6 MB per 40,000 requests, measured); with it
/// the samples of at most one interval are held. A thread rather than a
/// task: `install` runs before, and outside of, any runtime.
fn spawn_upkeep(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new().name("metrics-upkeep".to_owned()).spawn(move || {
        loop {
            std::thread::sleep(UPKEEP_EVERY);
            handle.run_upkeep();
        }
    });
    if let Err(error) = spawned {
        tracing::warn!(%error, "no metrics upkeep thread: histogram samples are folded only when /metrics is read");
    }
}

/// The registry in the Prometheus text exposition format, the process's
/// figures read at this moment.
pub fn render() -> String {
    let handle = install();
    PROCESS.get_or_init(metrics_process::Collector::default).collect();
    handle.render()
}

fn describe_platform() {
    describe_gauge!("meshwork_build_info", "Always 1; the labels name the running build.");
    gauge!("meshwork_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    PROCESS.get_or_init(metrics_process::Collector::default).describe();

    describe_gauge!("meshwork_ready", "1 while the component is ready (every dependency check passes), else 0.");
    describe_gauge!("meshwork_dependency_up", "1 while the named dependency check passes, else 0.");
    describe_histogram!(
        "grpc_server_handling_seconds",
        Unit::Seconds,
        "Time to answer a gRPC call on this server, by service and method."
    );
    describe_counter!("grpc_server_handled_total", "gRPC calls answered on this server, by service, method and code.");
    describe_counter!(
        "grpc_deadline_exceeded_total",
        "Calls answered DEADLINE_EXCEEDED because the caller's grpc-timeout passed first."
    );
    describe_counter!("access_denied_total", "Calls refused by the contract's access rules, by method.");
    describe_counter!(
        "meshwork_connections_refused_total",
        "Connections closed on arrival because the server already had its maximum open."
    );
    describe_counter!("meshwork_connections_idle_closed_total", "Connections closed after their idle timeout.");
    for name in
        ["grpc_deadline_exceeded_total", "meshwork_connections_refused_total", "meshwork_connections_idle_closed_total"]
    {
        counter!(name).absolute(0);
    }
}

/// Every method of `service` (`pkg.Service`) the contract declares, at 0
/// in the per-RPC families: a dashboard shows an idle method as 0 calls.
pub(crate) fn register_service(service: &str) {
    let prefix = format!("{service}.");
    for (method, _) in crate::access::AccessPolicy::contract().methods() {
        let Some(name) = method.strip_prefix(&prefix) else { continue };
        let labels = [
            ("grpc_service", service.to_owned()),
            ("grpc_method", name.to_owned()),
            ("grpc_code", resilience::code_label(tonic::Code::Ok).to_owned()),
        ];
        counter!("grpc_server_handled_total", &labels).absolute(0);
        counter!("access_denied_total", "method" => method.to_owned()).absolute(0);
    }
}
