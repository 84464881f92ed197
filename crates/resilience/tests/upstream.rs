//! The one call path's rules, each tested once: retries only for calls safe
//! to repeat (or never sent), at most `max_retries` of them, within the
//! budget, never past the deadline, and breakers that open on failures.
//! Attempts are scripted (the channel goes unused) and the clock is paused,
//! except where a real refused connection is the point.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use resilience::{BreakerConfig, CallError, Policy, Refusal, Upstream};
use tokio::time::Instant;

/// The method every test call names (its CLIENT span's).
const METHOD: &str = "test.v1.Test/Call";

fn upstream(policy: Policy) -> Upstream {
    let upstream = Upstream::new("test", policy);
    // Never connected to: the scripted attempts ignore their channel.
    upstream.set_endpoints(&["http://127.0.0.1:9".to_owned(), "http://127.0.0.2:9".to_owned()]).unwrap();
    upstream
}

fn lenient_breakers() -> Policy {
    Policy { breaker: BreakerConfig { failure_threshold: 1000, ..BreakerConfig::default() }, ..Policy::default() }
}

/// Calls `upstream`, each attempt answering with `script(attempt number)`;
/// returns the outcome's code and how many attempts were made.
async fn call(
    upstream: &Upstream,
    idempotent: bool,
    script: impl Fn(u32) -> Result<(), tonic::Status>,
) -> (tonic::Code, u32) {
    let attempts = AtomicU32::new(0);
    let outcome = upstream
        .call(METHOD, idempotent, None, |_channel, _remaining| {
            let n = attempts.fetch_add(1, Ordering::SeqCst);
            let answer = script(n);
            async move { answer }
        })
        .await;
    let code = match outcome {
        Ok(()) => tonic::Code::Ok,
        Err(CallError::Status(status)) => status.code(),
        Err(CallError::Refused(_)) => tonic::Code::ResourceExhausted,
    };
    (code, attempts.load(Ordering::SeqCst))
}

fn unavailable() -> tonic::Status {
    tonic::Status::unavailable("down")
}

#[tokio::test(start_paused = true)]
async fn a_call_safe_to_repeat_is_retried_when_unavailable() {
    let upstream = upstream(lenient_breakers());
    let (code, attempts) = call(&upstream, true, |n| if n < 2 { Err(unavailable()) } else { Ok(()) }).await;
    assert_eq!((code, attempts), (tonic::Code::Ok, 3));
}

#[tokio::test(start_paused = true)]
async fn a_call_not_safe_to_repeat_that_reached_the_service_is_tried_once() {
    let upstream = upstream(lenient_breakers());
    let (code, attempts) = call(&upstream, false, |_| Err(unavailable())).await;
    assert_eq!((code, attempts), (tonic::Code::Unavailable, 1));
}

#[tokio::test(start_paused = true)]
async fn only_unavailable_is_retried() {
    let upstream = upstream(lenient_breakers());
    for code in [tonic::Code::Internal, tonic::Code::NotFound, tonic::Code::FailedPrecondition] {
        let (answered, attempts) = call(&upstream, true, |_| Err(tonic::Status::new(code, "no"))).await;
        assert_eq!((answered, attempts), (code, 1), "{code:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn at_most_max_retries_are_made() {
    let upstream = upstream(Policy { max_retries: 2, ..lenient_breakers() });
    let (code, attempts) = call(&upstream, true, |_| Err(unavailable())).await;
    assert_eq!((code, attempts), (tonic::Code::Unavailable, 3));
}

#[tokio::test(start_paused = true)]
async fn no_attempt_outlives_the_callers_deadline() {
    let upstream = upstream(lenient_breakers());
    let started = Instant::now();
    let outcome = upstream
        .call(METHOD, true, Some(Duration::from_millis(200)), |_channel, remaining| async move {
            assert!(remaining <= Duration::from_millis(200), "an attempt is given at most what is left: {remaining:?}");
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok::<(), tonic::Status>(())
        })
        .await;
    let Err(CallError::Status(status)) = outcome else { panic!("the call outlived its deadline") };
    assert_eq!(status.code(), tonic::Code::DeadlineExceeded);
    assert_eq!(started.elapsed(), Duration::from_millis(200));
}

#[tokio::test(start_paused = true)]
async fn retries_stop_before_their_wait_would_pass_the_deadline() {
    let upstream = upstream(Policy { max_retries: 100, ..lenient_breakers() });
    let started = Instant::now();
    let outcome = upstream
        .call(METHOD, true, Some(Duration::from_secs(1)), |_channel, _remaining| async { Err::<(), _>(unavailable()) })
        .await;
    assert!(matches!(outcome, Err(CallError::Status(ref s)) if s.code() == tonic::Code::Unavailable));
    assert!(started.elapsed() < Duration::from_secs(1), "gave up at {:?}", started.elapsed());
}

#[tokio::test(start_paused = true)]
async fn the_retry_budget_caps_retries_when_everything_fails() {
    let upstream = upstream(lenient_breakers());
    let mut attempts = 0;
    for _ in 0..20 {
        attempts += call(&upstream, true, |_| Err(unavailable())).await.1;
    }
    // Unbudgeted: 20 × (1 + 3). The budget: 10 to start, then 20 % of calls.
    assert!(attempts <= 20 + 10 + 4, "{attempts} attempts");
    assert!(attempts > 20, "some retries were made");
}

#[tokio::test(start_paused = true)]
async fn failing_endpoints_open_their_breakers_and_calls_are_refused() {
    let policy =
        Policy { breaker: BreakerConfig { failure_threshold: 2, ..BreakerConfig::default() }, ..Policy::default() };
    let upstream = upstream(policy);
    assert!(upstream.refusing().is_none(), "closed breakers refuse nothing");
    for _ in 0..4 {
        call(&upstream, false, |_| Err(unavailable())).await;
    }
    // Told before any work is done for a call, and then by the call itself.
    assert!(matches!(upstream.refusing(), Some(Refusal::BreakerOpen { .. })), "every breaker is open");
    let refused = upstream.call(METHOD, true, None, |_channel, _remaining| async { Ok::<(), tonic::Status>(()) }).await;
    assert!(matches!(refused, Err(CallError::Refused(Refusal::BreakerOpen { .. }))), "every breaker is open");

    tokio::time::advance(BreakerConfig::default().open_for).await;
    assert!(upstream.refusing().is_none(), "half-open breakers let trial calls go");
    let trial = upstream.call(METHOD, true, None, |_channel, _remaining| async { Ok::<(), tonic::Status>(()) }).await;
    assert!(trial.is_ok(), "a trial call went");
}

#[tokio::test]
async fn an_upstream_with_no_endpoint_refuses_before_any_call() {
    let upstream = Upstream::new("test", Policy::default());
    assert!(matches!(upstream.refusing(), Some(Refusal::NoEndpoints)));
}

#[tokio::test(start_paused = true)]
async fn running_out_of_a_callers_short_deadline_is_no_verdict_on_the_endpoint() {
    let policy =
        Policy { breaker: BreakerConfig { failure_threshold: 2, ..BreakerConfig::default() }, ..Policy::default() };
    let upstream = upstream(policy);
    for _ in 0..6 {
        let impatient = upstream
            .call(METHOD, false, Some(Duration::from_millis(50)), |_channel, _remaining| async {
                tokio::time::sleep(Duration::from_secs(1)).await;
                Ok::<(), tonic::Status>(())
            })
            .await;
        assert!(matches!(impatient, Err(CallError::Status(ref s)) if s.code() == tonic::Code::DeadlineExceeded));
    }
    let next = upstream.call(METHOD, false, None, |_channel, _remaining| async { Ok::<(), tonic::Status>(()) }).await;
    assert!(next.is_ok(), "no breaker opened for the callers' own impatience");
}

/// A real connection refused: the request provably never reached a service.
#[tokio::test]
async fn a_request_that_never_reached_the_service_is_retried_even_when_not_safe_to_repeat() {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;

    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let refused = closed.local_addr().unwrap();
    drop(closed);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let serving = listener.local_addr().unwrap();
    let (_, health) = tonic_health::server::health_reporter();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(health)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let upstream = Upstream::new("test", lenient_breakers());
    upstream.set_endpoints(&[format!("http://{refused}"), format!("http://{serving}")]).unwrap();

    let attempts = AtomicU32::new(0);
    let outcome = upstream
        .call(METHOD, false, Some(Duration::from_secs(5)), |channel, _remaining| {
            attempts.fetch_add(1, Ordering::SeqCst);
            async move { HealthClient::new(channel).check(HealthCheckRequest { service: String::new() }).await }
        })
        .await;
    // Round robin starts with the refused endpoint, then moves on.
    assert!(outcome.is_ok(), "the call moved on to the endpoint that serves");
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn the_last_attempts_own_failure_comes_back_whole() {
    use resilience::direct::Failed;
    let upstream = upstream(lenient_breakers());
    let failed = |n: u32, code| {
        let mut headers = http::HeaderMap::new();
        headers.insert("x-attempt", n.into());
        Failed { status: tonic::Status::new(code, "no"), headers }
    };
    // Retried while UNAVAILABLE: what comes back is the last attempt's, headers and all.
    let attempts = AtomicU32::new(0);
    let outcome = upstream
        .call_endpoint(METHOD, true, None, |_endpoint, _remaining| {
            let n = attempts.fetch_add(1, Ordering::SeqCst);
            let code = if n < 2 { tonic::Code::Unavailable } else { tonic::Code::NotFound };
            let failure = failed(n, code);
            async move { Err::<(), _>(failure) }
        })
        .await;
    let Err(CallError::Status(Failed { status, headers })) = outcome else { panic!("the call failed") };
    assert_eq!(
        (status.code(), &headers["x-attempt"]),
        (tonic::Code::NotFound, &"2".parse::<http::HeaderValue>().unwrap())
    );
    // A failure the stack makes itself (here, the deadline) carries nothing else.
    let outcome = upstream
        .call_endpoint(METHOD, true, Some(Duration::from_millis(100)), |_endpoint, _remaining| async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Err::<(), _>(failed(0, tonic::Code::NotFound))
        })
        .await;
    let Err(CallError::Status(Failed { status, headers })) = outcome else { panic!("the call failed") };
    assert_eq!((status.code(), headers.len()), (tonic::Code::DeadlineExceeded, 0));
}
