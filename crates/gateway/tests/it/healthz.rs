//! `GET /healthz`, grpc-gateway's health endpoint: the upstreams' gRPC
//! health, asked through the gateway.

use crate::harness::Builder;

#[tokio::test(flavor = "multi_thread")]
async fn healthz_asks_the_upstream_that_serves_the_service() {
    let mut builder = Builder::new();
    let echo = builder.echo_upstream().await;
    builder.route("echo.v1.EchoService", vec![format!("http://{echo}")]);
    // Nothing listens on port 1: that upstream cannot answer.
    builder.route("echo.v1.MirrorService", vec!["http://127.0.0.1:1".to_owned()]);
    let harness = builder.start().await;

    let reply = harness.get("/healthz?service=echo.v1.EchoService").await;
    assert_eq!((reply.status, reply.json()), (200, serde_json::json!({ "status": "SERVING" })));
    let reply = harness.get("/healthz?service=echo.v1.MirrorService").await;
    assert_eq!((reply.status, reply.json()["code"].as_i64()), (503, Some(14)), "{}", reply.json());
    // Without a service: every upstream's server, and one does not answer.
    let reply = harness.get("/healthz").await;
    assert_eq!((reply.status, reply.json()["code"].as_i64()), (503, Some(14)), "{}", reply.json());
    let reply = harness.get("/healthz?service=nope.v1.Nope").await;
    assert_eq!((reply.status, reply.json()["message"].as_str()), (404, Some("no upstream serves nope.v1.Nope")));
    let reply = harness.get("/healthz?service=%zz").await;
    assert_eq!(reply.status, 400, "{}", reply.json());
}

#[tokio::test(flavor = "multi_thread")]
async fn healthz_without_a_service_is_serving_when_every_upstream_is() {
    let harness = crate::harness::start().await;
    let reply = harness.get("/healthz").await;
    assert_eq!((reply.status, reply.json()), (200, serde_json::json!({ "status": "SERVING" })));
}
