//! The process-wide Prometheus registry behind every `/metrics` endpoint.
//!
//! Metrics are recorded with the `metrics` facade anywhere in the process and
//! rendered here in the Prometheus text format. One recorder serves the whole
//! process: under `meshwork up` every port shows the same registry, and the
//! `grpc_service` label tells the components apart.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Latency buckets in seconds, from a cache hit to a request timeout.
const LATENCY_BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the global recorder once (later calls return the same handle).
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
        handle
    })
}

/// The registry in the Prometheus text exposition format.
pub fn render() -> String {
    install().render()
}
