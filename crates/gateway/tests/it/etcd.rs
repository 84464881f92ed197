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

    let register = |address: std::net::SocketAddr| {
        let stop = CancellationToken::new();
        let registration = Registration {
            etcd_endpoints: vec![etcd.clone()],
            prefix: prefix.clone(),
            component: "echo".to_owned(),
            url: format!("http://{address}"),
            ttl: Duration::from_secs(5),
        };
        tokio::spawn(register_until(registration, stop.clone()));
        stop
    };
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
