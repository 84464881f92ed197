//! Liveness and readiness. `/health/live` answers while the process runs;
//! `/health/ready` and `grpc.health.v1` answer from the dependency checks
//! each service registers (its database, its broker), so a load balancer stops
//! sending traffic to an instance that cannot serve it.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use futures::future::BoxFuture;
use serde_json::json;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

/// How long one dependency check may take before it counts as failed.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

type CheckFn = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;
type InfoFn = Arc<dyn Fn() -> serde_json::Value + Send + Sync>;

/// The dependency checks of one server, and what it reports beside them.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Vec<(String, CheckFn)>,
    info: Vec<(String, InfoFn)>,
}

/// The outcome of one round of checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadinessReport {
    /// Each check's name and its failure, if it failed.
    pub checks: Vec<(String, Option<String>)>,
}

impl ReadinessReport {
    pub fn is_ready(&self) -> bool {
        self.checks.iter().all(|(_, failure)| failure.is_none())
    }
}

impl Readiness {
    /// Adds a check; `check` returns `Err(reason)` while the dependency is down.
    pub fn add<F, Fut>(&mut self, name: impl Into<String>, check: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        self.checks.push((name.into(), Arc::new(move || Box::pin(check()))));
    }

    /// Adds a section to `/health/ready` that informs without deciding
    /// readiness (the gateway's upstream states: a gateway with one upstream
    /// down still serves the others).
    pub fn add_info<F>(&mut self, name: impl Into<String>, info: F)
    where
        F: Fn() -> serde_json::Value + Send + Sync + 'static,
    {
        self.info.push((name.into(), Arc::new(info)));
    }

    /// The informational sections, evaluated now.
    pub fn info(&self) -> serde_json::Map<String, serde_json::Value> {
        self.info.iter().map(|(name, info)| (name.clone(), info())).collect()
    }

    /// Runs every check concurrently, each bounded by [`CHECK_TIMEOUT`].
    pub async fn evaluate(&self) -> ReadinessReport {
        let runs = self.checks.iter().map(|(name, check)| async move {
            let outcome = match tokio::time::timeout(CHECK_TIMEOUT, check()).await {
                Ok(result) => result.err(),
                Err(_) => Some(format!("no answer within {CHECK_TIMEOUT:?}")),
            };
            (name.clone(), outcome)
        });
        ReadinessReport { checks: futures::future::join_all(runs).await }
    }
}

/// Keeps `grpc.health.v1` in step with the checks: the overall status ("")
/// and each named service are SERVING exactly when every check passes.
pub(crate) struct HealthSync {
    pub component: &'static str,
    pub reporter: HealthReporter,
    pub services: Vec<&'static str>,
}

impl HealthSync {
    pub async fn set(&self, status: ServingStatus) {
        for service in std::iter::once("").chain(self.services.iter().copied()) {
            self.reporter.set_service_status(service, status).await;
        }
    }

    pub async fn apply(&self, report: &ReadinessReport) {
        for (name, failure) in &report.checks {
            if let Some(reason) = failure {
                tracing::warn!(check = %name, %reason, "dependency check failed");
            }
            let labels = [("component", self.component.to_owned()), ("check", name.clone())];
            metrics::gauge!("meshwork_dependency_up", &labels).set(if failure.is_none() { 1.0 } else { 0.0 });
        }
        let ready = if report.is_ready() { 1.0 } else { 0.0 };
        metrics::gauge!("meshwork_ready", "component" => self.component).set(ready);
        let status = if report.is_ready() { ServingStatus::Serving } else { ServingStatus::NotServing };
        self.set(status).await;
    }
}

pub(crate) async fn live() -> impl IntoResponse {
    Json(json!({ "status": "live" }))
}

pub(crate) fn ready_response(
    report: &ReadinessReport,
    info: serde_json::Map<String, serde_json::Value>,
    draining: bool,
) -> impl IntoResponse + use<> {
    let checks: serde_json::Map<String, serde_json::Value> = report
        .checks
        .iter()
        .map(|(name, failure)| {
            let value = match failure {
                None => json!({ "status": "up" }),
                Some(reason) => json!({ "status": "down", "error": reason }),
            };
            (name.clone(), value)
        })
        .collect();
    let ready = report.is_ready() && !draining;
    let status = match (ready, draining) {
        (true, _) => "ready",
        (false, true) => "shutting_down",
        (false, false) => "not_ready",
    };
    let code = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let mut body = json!({ "status": status, "checks": checks });
    for (name, value) in info {
        body[name] = value;
    }
    (code, Json(body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[tokio::test]
    async fn no_checks_means_ready() {
        assert!(Readiness::default().evaluate().await.is_ready());
    }

    #[tokio::test]
    async fn a_failing_check_makes_the_report_not_ready_and_names_it() {
        let up = Arc::new(AtomicBool::new(false));
        let mut readiness = Readiness::default();
        readiness.add("cache", || async { Ok(()) });
        let flag = up.clone();
        readiness.add("database", move || {
            let up = flag.load(Ordering::SeqCst);
            async move { if up { Ok(()) } else { Err("connection refused".to_owned()) } }
        });
        let report = readiness.evaluate().await;
        assert!(!report.is_ready());
        assert_eq!(report.checks[1], ("database".to_owned(), Some("connection refused".to_owned())));

        up.store(true, Ordering::SeqCst);
        assert!(readiness.evaluate().await.is_ready());
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_check_fails_after_the_timeout() {
        let mut readiness = Readiness::default();
        readiness.add("slow", futures::future::pending);
        let report = readiness.evaluate().await;
        assert!(report.checks[0].1.as_deref().unwrap().contains("no answer"));
    }
}
