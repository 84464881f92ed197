//! The gateway's resilience stack under real faults (a TCP proxy in front of
//! each upstream is cut, or made to hang): the breaker opens after exactly
//! the threshold and then keeps calls off the upstream, trial calls close
//! it, a dead endpoint is ejected without client-visible failures, and a
//! hanging upstream cannot starve another.

use std::time::Duration;

use testkit::proxy::TcpProxy;

use crate::harness::{Builder, Harness};

/// The state of every endpoint's breaker, from the gateway's readiness.
async fn breaker_states(harness: &Harness) -> Vec<String> {
    let ready = harness.get("/health/ready").await.json();
    let mut states = Vec::new();
    for (_, upstream) in ready["upstreams"].as_object().unwrap() {
        for (_, state) in upstream["endpoints"].as_object().unwrap() {
            states.push(state.as_str().unwrap().to_owned());
        }
    }
    states
}

#[tokio::test(flavor = "multi_thread")]
async fn the_breaker_opens_after_five_failures_then_keeps_calls_off_the_upstream_until_trials_succeed() {
    let mut builder = Builder::new();
    let echo = builder.echo_upstream().await;
    let proxy = TcpProxy::start(echo).await;
    builder.route("echo.v1.EchoService", vec![format!("http://{}", proxy.address())]);
    builder.policy.max_retries = 0; // one attempt per request: failures count one to one
    builder.policy.breaker.open_for = Duration::from_millis(500);
    let harness = builder.start().await;
    assert_eq!(harness.get("/v1/echo/up").await.status, 200);

    proxy.cut();
    for attempt in 1..=5 {
        let reply = harness.get("/v1/echo/down").await;
        assert_eq!(reply.status, 503, "failure {attempt}: {}", String::from_utf8_lossy(&reply.body));
        assert_eq!(breaker_states(&harness).await, [if attempt < 5 { "closed" } else { "open" }], "after {attempt}");
    }
    let reached = proxy.accepted();
    let mut fastest = Duration::MAX;
    for _ in 0..20 {
        let started = std::time::Instant::now();
        let reply = harness.get("/v1/echo/refused").await;
        fastest = fastest.min(started.elapsed());
        assert_eq!(reply.status, 503);
        assert!(reply.headers.contains_key("retry-after"), "an open breaker says when to retry");
        assert!(reply.json()["message"].as_str().unwrap().contains("circuit breaker"));
    }
    // A call that cannot go is refused before its body is read: a
    // malformed one is told the breaker is open, not that it is malformed.
    let malformed = Some(r#"{"id":"#);
    let reply = harness.request("POST", "/v1/echo/x:shout", malformed, &[("content-type", "application/json")]).await;
    assert_eq!(reply.status, 503, "{}", String::from_utf8_lossy(&reply.body));
    assert!(reply.headers.contains_key("retry-after"));
    assert!(reply.json()["message"].as_str().unwrap().contains("circuit breaker"));
    let connect = [("content-type", "application/json"), ("connect-protocol-version", "1")];
    let reply = harness.request("POST", "/echo.v1.EchoService/Echo", malformed, &connect).await;
    assert_eq!((reply.status, reply.json()["code"].as_str()), (503, Some("unavailable")));
    assert!(reply.headers.contains_key("retry-after"));
    assert_eq!(proxy.accepted(), reached, "no call reached the upstream while the breaker was open");
    eprintln!("fastest refusal while open: {fastest:?}");

    proxy.restore();
    tokio::time::sleep(Duration::from_millis(600)).await; // the shortened open period
    for trial in 1..=3 {
        assert_eq!(harness.get("/v1/echo/trial").await.status, 200, "trial {trial}");
    }
    assert_eq!(breaker_states(&harness).await, ["closed"]);

    let metrics = harness.get("/metrics").await;
    let text = String::from_utf8(metrics.body).unwrap();
    assert!(text.contains("circuit_breaker_transitions_total"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_endpoint_is_ejected_without_client_visible_failures() {
    let mut builder = Builder::new();
    let (first, second) = (builder.echo_upstream().await, builder.echo_upstream().await);
    let (dead, alive) = (TcpProxy::start(first).await, TcpProxy::start(second).await);
    builder.route(
        "echo.v1.EchoService",
        vec![format!("http://{}", dead.address()), format!("http://{}", alive.address())],
    );
    let harness = builder.start().await;
    dead.cut();
    for request in 0..40 {
        // GET is safe to repeat: a failure on the dead endpoint is retried on the other.
        let reply = harness.get(&format!("/v1/echo/r{request}")).await;
        let body = String::from_utf8_lossy(&reply.body);
        assert_eq!(reply.status, 200, "request {request}: {body}");
        // A retry sends the request itself again (encoded once, sent by each attempt).
        assert!(body.contains(&format!("\"r{request}\"")), "request {request} was answered as another: {body}");
    }
    let mut states = breaker_states(&harness).await;
    states.sort();
    assert_eq!(states, ["closed", "open"], "the dead endpoint was ejected");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_passed_through_call_goes_to_an_endpoint_it_can_reach() {
    let mut builder = Builder::new();
    let alive = builder.echo_upstream().await;
    // A port nobody listens on: each connection to it is refused.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    builder.route("echo.v1.EchoService", vec![format!("http://{dead}"), format!("http://{alive}")]);
    builder.route("echo.v1.MirrorService", vec![format!("http://{dead}")]);
    let harness = builder.start().await;
    let output = harness.pool.get_message_by_name("echo.v1.EchoResponse").unwrap();
    let mut client = tonic::client::Grpc::new(harness.channel().await);
    let request = |id: &str| {
        let mut message =
            prost_reflect::DynamicMessage::new(harness.pool.get_message_by_name("echo.v1.EchoRequest").unwrap());
        message.set_field_by_name("id", prost_reflect::Value::String(id.to_owned()));
        tonic::Request::new(message)
    };
    let codec = || gateway::codec::DynamicCodec::new(output.clone());
    // Half the calls try the dead endpoint first: the request, sent once
    // only, is kept for the endpoint that connects.
    for call in 0..10 {
        client.ready().await.unwrap();
        let echo = http::uri::PathAndQuery::from_static("/echo.v1.EchoService/Echo");
        let reply = client.unary(request(&format!("p{call}")), echo, codec()).await;
        let reply = reply.unwrap_or_else(|status| panic!("call {call}: {status:?}"));
        let echoed = reply.get_ref().get_field_by_name("request").unwrap();
        assert_eq!(echoed.as_message().unwrap().get_field_by_name("id").unwrap().as_str(), Some(&*format!("p{call}")));
    }
    // With no endpoint to reach, the call is unavailable, not an internal error.
    client.ready().await.unwrap();
    let mirror = http::uri::PathAndQuery::from_static("/echo.v1.MirrorService/Mirror");
    let status = client.unary(request("m"), mirror, codec()).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hanging_upstream_cannot_starve_another() {
    let mut builder = Builder::new();
    let (slow, healthy) = (builder.echo_upstream().await, builder.echo_upstream().await);
    builder.route("echo.v1.MirrorService", vec![format!("http://{slow}")]);
    builder.route("echo.v1.EchoService", vec![format!("http://{healthy}")]);
    builder.policy.bulkhead = resilience::BulkheadConfig { max_in_flight: 4, max_queued: 2 };
    builder.policy.timeout = Duration::from_secs(30);
    let harness = std::sync::Arc::new(builder.start().await);

    // Six calls the mirror answers only after 20 s fill its bulkhead (4 in
    // flight, 2 queued).
    let mut hanging_calls = Vec::new();
    for i in 0..6 {
        let harness = harness.clone();
        hanging_calls
            .push(tokio::spawn(async move { harness.get(&format!("/v1/mirror/h{i}?sleepMs=20000")).await.status }));
    }
    testkit::eventually("the mirror's bulkhead to fill", Duration::from_secs(10), || async {
        let mirror = &harness.get("/health/ready").await.json()["upstreams"]["echo.v1.MirrorService"];
        (mirror["in_flight"].as_u64(), mirror["queued"].as_u64()) == (Some(4), Some(2))
    })
    .await;
    let shed = harness.get("/v1/mirror/overflow").await;
    assert_eq!(shed.status, 503);
    let message = shed.json()["message"].as_str().unwrap().to_owned();
    assert!(message.contains("too many calls in flight"), "{message}");
    assert!(shed.headers.contains_key("retry-after"));
    // A Connect caller is told the same, and when to try again.
    let connect = [("content-type", "application/json"), ("connect-protocol-version", "1")];
    let shed = harness.request("POST", "/echo.v1.MirrorService/Mirror", Some(r#"{"id":"overflow"}"#), &connect).await;
    assert_eq!((shed.status, shed.json()["code"].as_str()), (503, Some("unavailable")));
    assert_eq!(shed.headers.get("retry-after").map(|v| v.to_str().unwrap()), Some("1"));

    // Meanwhile the other upstream answers every call.
    for i in 0..20 {
        assert_eq!(harness.get(&format!("/v1/echo/ok{i}")).await.status, 200);
    }
    assert!(hanging_calls.iter().all(|call| !call.is_finished()), "the mirror's calls are still hanging");
    for call in hanging_calls {
        call.abort();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn dns_endpoints_are_resolved_and_followed() {
    let mut builder = Builder::new();
    let echo = builder.echo_upstream().await;
    let source = gateway::EndpointSource::Dns { host: "localhost".to_owned(), port: echo.port() };
    builder.route_to("echo.v1.EchoService", source);
    let harness = builder.start().await;
    let expected = format!("http://{echo}");
    testkit::eventually("localhost to be resolved into an endpoint", Duration::from_secs(10), || async {
        let ready = harness.get("/health/ready").await.json();
        ready["upstreams"]["echo.v1.EchoService"]["endpoints"].get(&expected).is_some()
    })
    .await;
    // localhost may also resolve to ::1, where nothing listens: GET is
    // retried on the endpoint that answers.
    for request in 0..10 {
        assert_eq!(harness.get(&format!("/v1/echo/dns{request}")).await.status, 200);
    }
}
