//! Every component's `/metrics` is what an operator's tools accept and its
//! alerts need: `promtool check metrics` finds nothing to report (every
//! family has HELP, names follow the conventions), and the families a
//! dashboard or an alert reads are there before the first request, counters
//! at 0, so a rate shows 0 instead of "no data".

use std::io::Write;
use std::process::{Command, Stdio};

use crate::harness::{Deployment, deploy};

/// What every component exports: readiness, the process, the build, its connections.
const EVERY_COMPONENT: [&str; 7] = [
    "meshwork_ready",
    "process_resident_memory_bytes",
    "process_cpu_seconds_total",
    "process_open_fds",
    "meshwork_build_info",
    "meshwork_connections_refused_total",
    "grpc_deadline_exceeded_total",
];
/// A service's own RPCs, each method at 0 before its first call.
const SERVICE: [&str; 2] = ["grpc_server_handled_total", "access_denied_total"];
/// The guarded call path, wherever a component calls another.
const UPSTREAMS: [&str; 5] = [
    "upstream_retries_total",
    "upstream_shed_total",
    "upstream_breaker_rejected_total",
    "circuit_breaker_state",
    "circuit_breaker_transitions_total",
];
const GATEWAY: [&str; 3] =
    ["gateway_rate_limited_total", "gateway_auth_failures_total", "gateway_transcode_refused_total"];
/// Every service's database pool (SQL, or the MongoDB driver's).
const POOL: [&str; 3] = ["db_client_connections", "db_client_connections_max", "db_client_connection_pending_requests"];
const USERS: [&str; 1] = ["users_password_hashing_rejected_total"];
const PRODUCTS: [&str; 2] = ["products_holds_expired_total", "events_dead_lettered_total"];
const ORDERS: [&str; 2] = ["orders_created_total", "outbox_oldest_unsent_age_seconds"];

/// promtool's findings on `page`, or `None` (test skipped) when promtool is
/// not installed; CI (`MESHWORK_REQUIRE_SERVICES=1`) installs it and fails
/// instead of skipping.
fn promtool(page: &str, test: &str) -> Option<String> {
    let spawned = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(_) if std::env::var("MESHWORK_REQUIRE_SERVICES").is_ok_and(|v| v == "1") => {
            panic!("{test}: promtool is not installed, and MESHWORK_REQUIRE_SERVICES=1 requires it")
        }
        Err(_) => {
            eprintln!("{test}: skipped, promtool is not installed (`source scripts/services` installs it)");
            return None;
        }
    };
    child.stdin.take().unwrap().write_all(page.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    let findings = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    Some(if output.status.success() { findings } else { format!("promtool failed: {findings}") })
}

/// Whether `page` has a sample of the family `name` (any labels).
fn has_sample(page: &str, name: &str) -> bool {
    page.lines()
        .filter(|line| !line.starts_with('#'))
        .any(|line| line.strip_prefix(name).is_some_and(|rest| rest.starts_with(['{', ' '])))
}

async fn every_component_passes_promtool_with_its_families_from_start(deployment: Deployment, test: &str) {
    let Some(platform) = deploy(deployment, test, &[]).await else { return };
    let components = [
        ("gateway", platform.gateway, [&EVERY_COMPONENT[..], &UPSTREAMS, &GATEWAY].concat()),
        ("users", platform.users, [&EVERY_COMPONENT[..], &SERVICE, &POOL, &USERS].concat()),
        ("products", platform.products, [&EVERY_COMPONENT[..], &SERVICE, &UPSTREAMS, &POOL, &PRODUCTS].concat()),
        ("orders", platform.orders, [&EVERY_COMPONENT[..], &SERVICE, &UPSTREAMS, &POOL, &ORDERS].concat()),
    ];
    for (component, address, families) in components {
        let reply = platform.get(address, "/metrics").await;
        assert_eq!(reply.status, 200, "{component}");
        let page = String::from_utf8(reply.body).unwrap();
        let Some(findings) = promtool(&page, test) else { return };
        assert!(findings.trim().is_empty(), "{component}: promtool check metrics:\n{findings}\n{page}");
        let missing: Vec<_> = families.iter().filter(|name| !has_sample(&page, name)).collect();
        assert!(missing.is_empty(), "{component} has no {missing:?} before any traffic:\n{page}");
    }
}

in_both_deployments!(every_component_passes_promtool_with_its_families_from_start);

/// Families the operator's files (the alerting rules and the dashboard in
/// `ops/`) read: each name that starts like one of ours.
fn families_read_by_ops() -> std::collections::BTreeSet<String> {
    const OURS: [&str; 14] = [
        "grpc_server_",
        "grpc_deadline_",
        "gateway_",
        "upstream_",
        "circuit_breaker_",
        "outbox_",
        "events_",
        "db_client_",
        "meshwork_",
        "process_",
        "orders_",
        "products_",
        "users_",
        "access_",
    ];
    let ops = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ops");
    let files = ["prometheus/alerts.yml", "grafana/dashboards/meshwork.json"];
    let text: String = files.iter().map(|file| std::fs::read_to_string(ops.join(file)).unwrap()).collect();
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| OURS.iter().any(|prefix| word.starts_with(prefix)))
        .map(|word| word.strip_suffix("_bucket").unwrap_or(word).to_owned())
        .collect()
}

/// Every family the alerting rules and the dashboard read is one the
/// platform exports (a renamed metric would leave an alert silent).
#[tokio::test(flavor = "multi_thread")]
async fn every_family_the_alerts_and_dashboard_read_is_exported() {
    let platform = crate::harness::start().await;
    // One call through the gateway, so that the duration histograms have samples.
    platform.rest("GET", "/products/none", None).await;
    let page = String::from_utf8(platform.get(platform.gateway, "/metrics").await.body).unwrap();
    let exported: std::collections::BTreeSet<&str> =
        page.lines().filter_map(|line| line.strip_prefix("# TYPE ")?.split(' ').next()).collect();
    let read = families_read_by_ops();
    assert!(read.len() > 20, "the files were read: {read:?}");
    let missing: Vec<_> = read.iter().filter(|name| !exported.contains(name.as_str())).collect();
    assert!(missing.is_empty(), "ops/ reads {missing:?}, which no component exports:\n{page}");
}
