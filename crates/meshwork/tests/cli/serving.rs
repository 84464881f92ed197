//! Serving and stopping: one component, and everything under `up`.

use crate::harness::{Running, health, run};

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

/// `meshwork healthcheck` (a container's HEALTHCHECK; the image has no
/// curl) says whether the component on a port is ready, as its exit code.
#[tokio::test(flavor = "multi_thread")]
async fn healthcheck_exits_zero_for_a_ready_component_and_one_otherwise() {
    // Not the default ./meshwork-data: that would be the crate's directory.
    let data_dir = std::env::temp_dir().join(format!("meshwork-healthcheck-{}", uuid::Uuid::new_v4()));
    let mut running = Running::start(&["up", "--base-port", "0"], &[("MESHWORK_DATA_DIR", data_dir.to_str().unwrap())]);
    let banner = running.read_up_banner();
    let users = banner.iter().find(|(name, _)| name == "users").map(|(_, address)| address.clone()).unwrap();
    let port = users.rsplit(':').next().unwrap();
    // Ready once its database is migrated: a moment after start.
    let mut ready = run(&["healthcheck", "--port", port], &[]);
    for _ in 0..100 {
        if ready.status.success() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        ready = run(&["healthcheck", "--port", port], &[]);
    }
    assert!(ready.status.success(), "{}", String::from_utf8_lossy(&ready.stderr));

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port().to_string();
    let down = run(&["healthcheck", "--port", &closed], &[]);
    assert_eq!(down.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&down.stderr).contains("cannot connect"), "says why");

    let missing = run(&["healthcheck", "--port", port, "--path", "/no/such/page"], &[]);
    assert_eq!(missing.status.code(), Some(1), "anything but 200 is not healthy");
    running.terminate();
    let _ = std::fs::remove_dir_all(&data_dir);
}
