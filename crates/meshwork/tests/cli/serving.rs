//! Serving and stopping: one component, and everything under `up`.

use crate::harness::{Running, health};

#[tokio::test(flavor = "multi_thread")]
async fn a_component_serves_health_and_exits_cleanly_on_sigterm() {
    let mut env = vec![("PORT", "0"), ("MESHWORK_HOST", "127.0.0.1")];
    env.extend(crate::harness::UNREACHABLE_UPSTREAMS);
    let mut running = Running::start(&["gateway"], &env);
    let address = running.listening("gateway");
    assert_eq!(health(&address).await, tonic_health::pb::health_check_response::ServingStatus::Serving);
    let status = running.terminate();
    assert!(status.success(), "exit status {status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn up_serves_four_components_and_exits_cleanly_on_sigterm() {
    let data_dir = std::env::temp_dir().join(format!("meshwork-up-{}", std::process::id()));
    let mut running = Running::start(&["up", "--base-port", "0"], &[("MESHWORK_DATA_DIR", data_dir.to_str().unwrap())]);
    let header = running.read_line();
    assert!(header.starts_with("meshwork is up"), "{header}");
    for name in ["gateway", "users", "products", "orders"] {
        let line = running.read_line();
        let mut words = line.split_whitespace();
        assert_eq!(words.next(), Some(name), "{line}");
        let address = words.next().and_then(|url| url.strip_prefix("http://")).unwrap_or_else(|| panic!("{line}"));
        assert_eq!(health(address).await, tonic_health::pb::health_check_response::ServingStatus::Serving);
    }
    let status = running.terminate();
    assert!(status.success(), "exit status {status}");
}
