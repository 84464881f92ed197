//! Discovery from etcd (the etcd build): instances register themselves under
//! a lease, the gateway watches the prefix, and its endpoints follow as
//! instances come and go. Against the real etcd at MESHWORK_TEST_ETCD_URL.

use std::time::Duration;

use platform::CancellationToken;
use platform::registry::{Registration, register_until};

use crate::harness::{Builder, Harness};

async fn endpoints(harness: &Harness) -> Vec<String> {
    let ready = harness.get("/health/ready").await.json();
    let endpoints = ready["upstreams"]["echo.v1.EchoService"]["endpoints"].as_object().cloned().unwrap_or_default();
    let mut urls: Vec<String> = endpoints.keys().cloned().collect();
    urls.sort();
    urls
}

/// Registers an echo instance at `address` in etcd, as instances register
/// themselves, until the returned token is cancelled.
fn register_echo(etcd: &str, prefix: &str, address: std::net::SocketAddr) -> CancellationToken {
    let stop = CancellationToken::new();
    let registration = Registration {
        etcd_endpoints: vec![etcd.to_owned()],
        prefix: prefix.to_owned(),
        component: "echo".to_owned(),
        url: format!("http://{address}"),
        ttl: Duration::from_secs(5),
    };
    tokio::spawn(register_until(registration, stop.clone()));
    stop
}

#[tokio::test(flavor = "multi_thread")]
async fn endpoints_follow_registrations_in_etcd() {
    let Some(etcd) = testkit::service_url("MESHWORK_TEST_ETCD_URL", "endpoints_follow_registrations_in_etcd") else {
        return;
    };
    let prefix = format!("/meshwork-test/{}/", uuid::Uuid::new_v4().simple());
    let mut builder = Builder::new();
    let (first, second) = (builder.echo_upstream().await, builder.echo_upstream().await);
    builder.etcd_endpoints = vec![etcd.clone()];
    builder.etcd_prefix = prefix.clone();
    builder.route_to("echo.v1.EchoService", gateway::EndpointSource::Etcd { component: "echo".to_owned() });
    let harness = builder.start().await;

    let register = |address| register_echo(&etcd, &prefix, address);
    let first_registration = register(first);
    testkit::eventually("the first instance to be discovered", Duration::from_secs(10), || async {
        endpoints(&harness).await == [format!("http://{first}")]
    })
    .await;
    assert_eq!(harness.get("/v1/echo/one").await.status, 200);

    let second_registration = register(second);
    let mut both = vec![format!("http://{first}"), format!("http://{second}")];
    both.sort();
    testkit::eventually("the second instance to join", Duration::from_secs(10), || async {
        endpoints(&harness).await == both
    })
    .await;

    // The first instance shuts down: it deregisters, and leaves the list.
    first_registration.cancel();
    testkit::eventually("the first instance to leave", Duration::from_secs(10), || async {
        endpoints(&harness).await == [format!("http://{second}")]
    })
    .await;
    for request in 0..10 {
        assert_eq!(harness.get(&format!("/v1/echo/two{request}")).await.status, 200);
    }
    second_registration.cancel();
}

/// The echo service with one more method, `EchoAgain` at `/v1/again/{id}`.
fn echo_version_2() -> Vec<u8> {
    let root = std::env::temp_dir().join(format!("echo-v2-{}", uuid::Uuid::new_v4().simple()));
    let manifest = env!("CARGO_MANIFEST_DIR");
    let version_1 = std::fs::read_to_string(format!("{manifest}/tests/protos/echo/v1/echo.proto")).unwrap();
    let again = "  rpc EchoAgain(EchoRequest) returns (EchoResponse) {\n    option (google.api.http) = {get: \"/v1/again/{id}\"};\n  }\n\n";
    let version_2 = version_1.replacen("  rpc EchoNote(", &format!("{again}  rpc EchoNote("), 1);
    assert_ne!(version_1, version_2);
    std::fs::create_dir_all(root.join("echo/v1")).unwrap();
    std::fs::write(root.join("echo/v1/echo.proto"), version_2).unwrap();
    let roots = [root.clone(), format!("{manifest}/../../third_party/googleapis").into()];
    let mut compiler = protox::Compiler::new(roots).unwrap();
    compiler.include_imports(true).open_files(["echo/v1/echo.proto"]).unwrap();
    let set = compiler.encode_file_descriptor_set();
    std::fs::remove_dir_all(&root).unwrap();
    set
}

/// A service learned from reflection is learned again as soon as its
/// endpoints change, long before the refresh interval.
#[tokio::test(flavor = "multi_thread")]
async fn a_learned_service_is_learned_again_when_its_endpoints_change() {
    let test = "a_learned_service_is_learned_again_when_its_endpoints_change";
    let Some(etcd) = testkit::service_url("MESHWORK_TEST_ETCD_URL", test) else {
        return;
    };
    let prefix = format!("/meshwork-test/{}/", uuid::Uuid::new_v4().simple());
    let mut builder = Builder::new();
    let first = builder.echo_upstream_with_reflection().await;
    let second = builder.echo_upstream_serving(echo_version_2()).await;
    builder.etcd_endpoints = vec![etcd.clone()];
    builder.etcd_prefix = prefix.clone();
    builder.route_to("echo.v1.EchoService", gateway::EndpointSource::Etcd { component: "echo".to_owned() });
    builder.load_echo_descriptors = false;
    builder.reflection_refresh = Duration::from_secs(600);
    let harness = builder.start().await;
    let register = |address| register_echo(&etcd, &prefix, address);
    let has_path = |path: &'static str| {
        let harness = &harness;
        move || async move { harness.get("/openapi.json").await.json()["paths"].get(path).is_some() }
    };

    let first_registration = register(first);
    testkit::eventually("version 1 to be learned", Duration::from_secs(10), has_path("/v1/echo/{id}")).await;
    assert!(!has_path("/v1/again/{id}")().await);

    // Version 2 replaces version 1 behind the service: within seconds, not the 600 s refresh.
    let second_registration = register(second);
    first_registration.cancel();
    testkit::eventually("version 2 to be learned", Duration::from_secs(10), has_path("/v1/again/{id}")).await;
    let reply = harness.get("/v1/again/a2").await;
    assert_eq!((reply.status, &reply.json()["request"]["id"]), (200, &"a2".into()));
    second_registration.cancel();
}
