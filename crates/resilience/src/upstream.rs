//! One service as its callers see it (the gateway's upstreams, and one
//! service's dependencies on another), guarded by one resilience stack: a
//! bulkhead (bounded calls in flight, a small queue, then UNAVAILABLE), a
//! deadline for the whole call (5 s, or the caller's shorter one), endpoint
//! balancing that skips endpoints whose circuit breaker is open, and
//! retries with backoff, within a budget: for calls safe to repeat, and for
//! any call that provably never reached the service (its connection could
//! not be made), as Envoy's `reset-before-request`. Every attempt's outcome
//! feeds its endpoint's breaker.
//!
//! Hand-written rather than tower layers: the retry must pick a different
//! endpoint than the one that failed and feed each attempt's outcome to that
//! endpoint's breaker, which tower's retry and balance layers do not share.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use thread_local::ThreadLocal;
use tokio::time::Instant;

use crate::direct::{Answer, ConnectFailed, DirectConnection, Failed, Framed, ReadyToSend, ResponseBody, Target};
use crate::{
    Backoff, Balancer, BreakerConfig, Bulkhead, BulkheadConfig, Candidate, CircuitBreaker, Outcome, RetryBudget,
    Strategy,
};

/// How hard a caller tries, per upstream (DESIGN §6 defaults).
#[derive(Debug, Clone)]
pub struct Policy {
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub max_retries: u32,
    pub backoff: Backoff,
    pub breaker: BreakerConfig,
    pub bulkhead: BulkheadConfig,
    pub strategy: Strategy,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
            max_retries: 3,
            backoff: Backoff::default(),
            breaker: BreakerConfig::default(),
            bulkhead: BulkheadConfig::default(),
            strategy: Strategy::RoundRobin,
        }
    }
}

/// One address of an upstream: its connection, breaker and load.
///
/// Every call reaches it on a [`DirectConnection`]: the calls the gateway
/// forwards (unary calls with their request encoded, and calls passed
/// through as they come) and a generated client's calls, through an
/// [`EndpointChannel`]. The connection is shared by every caller, or one per
/// serving thread (see [`crate::affinity`]), opened on the thread's first call.
pub struct Endpoint {
    pub url: String,
    direct_shared: DirectConnection,
    direct_per_thread: ThreadLocal<DirectConnection>,
    breaker: CircuitBreaker,
    in_flight: AtomicUsize,
    metrics: crate::metrics::CallSeries,
}

impl Endpoint {
    /// A call of `path` (`/pkg.Service/Method`) that answers with one
    /// message, with its request `messages` framed, on this thread's direct
    /// connection (see [`crate::direct`]); `timeout` is what the callee is
    /// told it has.
    pub async fn unary(
        &self,
        path: &http::uri::PathAndQuery,
        metadata: http::HeaderMap,
        messages: &Framed,
        timeout: Duration,
    ) -> Result<Answer, Failed> {
        self.direct().unary(path, metadata, messages, timeout).await
    }

    /// A call of `path`, a method answering with a stream, as
    /// [`DirectConnection::server_stream`] makes it, on this thread's direct
    /// connection.
    pub async fn server_stream(
        &self,
        path: &http::uri::PathAndQuery,
        metadata: http::HeaderMap,
        messages: &Framed,
        timeout: Duration,
    ) -> Result<(http::HeaderMap, ResponseBody), tonic::Status> {
        self.direct().server_stream(path, metadata, messages, timeout).await
    }

    /// A call of any kind passed through as it comes, on this thread's
    /// direct connection (see [`DirectConnection::exchange`]).
    pub async fn exchange<B>(&self, request: http::Request<B>) -> Result<http::Response<ResponseBody>, tonic::Status>
    where
        B: http_body::Body<Data = bytes::Bytes> + Unpin + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        self.direct().exchange(request).await
    }

    /// This thread's direct connection, open and ready for a call (see
    /// [`DirectConnection::ready_to_send`]).
    pub async fn ready_to_send(&self) -> Result<ReadyToSend<'_>, tonic::Status> {
        self.direct().ready_to_send().await
    }

    fn direct(&self) -> &DirectConnection {
        if crate::affinity::is_per_thread() {
            self.direct_per_thread.get_or(|| self.direct_shared.another())
        } else {
            &self.direct_shared
        }
    }
}

/// What a generated tonic client calls an endpoint through
/// (`UserServiceClient::new(channel)`): each call goes out on the
/// endpoint's direct connection from the caller's own task, as the
/// gateway's calls do. tonic's `Channel`, which the services called each
/// other through before, hands every call to a buffer worker task and its
/// response back (`crate::direct` gives the cost).
#[derive(Clone)]
pub struct EndpointChannel(Arc<Endpoint>);

impl tonic::codegen::Service<http::Request<tonic::body::Body>> for EndpointChannel {
    // tonic's body, as an interceptor's refusal needs one with a default.
    type Response = http::Response<tonic::body::Body>;
    type Error = tonic::Status;
    type Future = tonic::codegen::BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        // Always ready: a call waits for the connection (or fails to make
        // it) itself, where the call loop sees why.
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let endpoint = self.0.clone();
        Box::pin(async move { Ok(endpoint.exchange(request).await?.map(tonic::body::Body::new)) })
    }
}

impl Candidate for Endpoint {
    fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }

    fn load(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }
}

/// Why a call never got an answer from the upstream.
#[derive(Debug, Clone)]
pub enum Refusal {
    /// Every endpoint's breaker is open.
    BreakerOpen { retry_after: Duration },
    /// The bulkhead and its queue are full.
    Overloaded,
    /// No endpoint is known (discovery found none).
    NoEndpoints,
}

impl Refusal {
    pub fn status(&self, upstream: &str) -> tonic::Status {
        match self {
            Self::BreakerOpen { .. } => {
                tonic::Status::unavailable(format!("{upstream} is failing; its circuit breaker is open"))
            }
            Self::Overloaded => tonic::Status::unavailable(format!("{upstream} has too many calls in flight")),
            Self::NoEndpoints => tonic::Status::unavailable(format!("no endpoint of {upstream} is known")),
        }
    }

    /// Tells the refused caller when to try again (`Retry-After`, whole
    /// seconds), in the headers of its answer, whatever protocol that
    /// answer speaks.
    pub fn write_retry_after(&self, headers: &mut http::HeaderMap) {
        let seconds = match self {
            Self::BreakerOpen { retry_after } => retry_after.as_secs().max(1),
            Self::Overloaded | Self::NoEndpoints => 1,
        };
        headers.insert(http::header::RETRY_AFTER, seconds.into());
    }
}

/// The outcome of a guarded call: refused before any attempt, or the
/// last attempt's failure, as the attempt gave it.
pub enum CallError<E = tonic::Status> {
    Refused(Refusal),
    Status(E),
}

impl<E: AttemptError> CallError<E> {
    /// As a gRPC status, naming `upstream` in a refusal.
    pub fn into_status(self, upstream: &str) -> tonic::Status {
        match self {
            Self::Refused(refusal) => refusal.status(upstream),
            Self::Status(failure) => failure.into(),
        }
    }
}

/// What an attempt fails with: a status, which the stack reads (to retry,
/// to feed the breaker), and whatever else the caller keeps of the failure
/// (a REST call, the response headers that came before the status:
/// [`crate::direct::Failed`]). A status the stack makes itself (a deadline,
/// a broken connection) becomes one with nothing else.
pub trait AttemptError: From<tonic::Status> + Into<tonic::Status> {
    fn status(&self) -> &tonic::Status;
}

impl AttemptError for tonic::Status {
    fn status(&self) -> &tonic::Status {
        self
    }
}

pub struct Upstream {
    pub name: String,
    policy: Policy,
    endpoints: RwLock<Arc<Vec<Arc<Endpoint>>>>,
    balancer: Balancer,
    bulkhead: Bulkhead,
    budget: RetryBudget,
}

impl Upstream {
    pub fn new(name: impl Into<String>, policy: Policy) -> Self {
        let name = name.into();
        crate::metrics::upstream_created(&name);
        Self {
            name,
            balancer: Balancer::new(policy.strategy),
            bulkhead: Bulkhead::new(policy.bulkhead),
            budget: RetryBudget::default(),
            endpoints: RwLock::new(Arc::new(Vec::new())),
            policy,
        }
    }

    /// Replaces the endpoint list (discovery), keeping the breakers and
    /// connections of endpoints still present.
    pub fn set_endpoints(&self, urls: &[String]) -> Result<(), String> {
        let current = self.endpoints();
        let mut next = Vec::with_capacity(urls.len());
        for url in urls {
            if let Some(existing) = current.iter().find(|e| e.url == *url) {
                next.push(existing.clone());
                continue;
            }
            let direct = Target::new(url, self.policy.connect_timeout)?;
            let (upstream, endpoint) = (self.name.clone(), url.clone());
            let breaker = CircuitBreaker::new(self.policy.breaker).on_transition(Arc::new(move |from, to| {
                tracing::warn!(%upstream, %endpoint, from = from.as_str(), to = to.as_str(), "circuit breaker changed state");
                crate::metrics::breaker_changed(&upstream, &endpoint, from, to);
            }));
            crate::metrics::endpoint_added(&self.name, url);
            next.push(Arc::new(Endpoint {
                url: url.clone(),
                direct_shared: DirectConnection::new(Arc::new(direct)),
                direct_per_thread: ThreadLocal::new(),
                breaker,
                in_flight: AtomicUsize::new(0),
                metrics: crate::metrics::attempt_series(&self.name, url),
            }));
        }
        if next.iter().map(|e| &e.url).ne(current.iter().map(|e| &e.url)) {
            tracing::info!(upstream = %self.name, endpoints = ?urls, "upstream endpoints updated");
        }
        *self.endpoints.write().expect("endpoints lock") = Arc::new(next);
        Ok(())
    }

    pub fn endpoints(&self) -> Arc<Vec<Arc<Endpoint>>> {
        self.endpoints.read().expect("endpoints lock").clone()
    }

    /// Each endpoint's breaker state, and the bulkhead's load, for readiness.
    pub fn report(&self) -> serde_json::Value {
        let endpoints: serde_json::Map<String, serde_json::Value> = self
            .endpoints()
            .iter()
            .map(|e| (e.url.clone(), serde_json::Value::String(e.breaker.state().as_str().to_owned())))
            .collect();
        serde_json::json!({
            "endpoints": endpoints,
            "in_flight": self.bulkhead.in_flight(self.policy.bulkhead.max_in_flight),
            "queued": self.bulkhead.queued(),
        })
    }

    /// Runs `attempt` against an endpoint of this upstream under the whole
    /// stack. `attempt` gets a channel to the endpoint and the time left, and
    /// runs in the CLIENT span of its try at `method` (`pkg.Service/Method`;
    /// in its caller's span where none is made: [`crate::attempt_spans`]);
    /// the trace context it sends must be taken inside it.
    pub async fn call<T, F, Fut>(
        &self,
        method: &str,
        idempotent: bool,
        client_deadline: Option<Duration>,
        mut attempt: F,
    ) -> Result<T, CallError>
    where
        F: FnMut(EndpointChannel, Duration) -> Fut,
        Fut: Future<Output = Result<T, tonic::Status>>,
    {
        self.call_endpoint(method, idempotent, client_deadline, |endpoint, remaining| {
            attempt(EndpointChannel(endpoint), remaining)
        })
        .await
    }

    /// [`Upstream::call`], with `attempt` given the endpoint itself: for a
    /// call on its direct connection ([`Endpoint::unary`]).
    pub async fn call_endpoint<T, E, F, Fut>(
        &self,
        method: &str,
        idempotent: bool,
        client_deadline: Option<Duration>,
        mut attempt: F,
    ) -> Result<T, CallError<E>>
    where
        E: AttemptError,
        F: FnMut(Arc<Endpoint>, Duration) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        // The tightest of: this upstream's own, the caller's, and what is left
        // of the request this call is made for.
        let timeout = [client_deadline, crate::deadline::remaining()]
            .into_iter()
            .flatten()
            .fold(self.policy.timeout, Duration::min);
        // Both waits below end at this deadline: `timeout_at` reads no
        // clock, where `timeout` read it again to find its own.
        let deadline = Instant::now() + timeout;
        let _slot = match tokio::time::timeout_at(deadline, self.bulkhead.enter()).await {
            Ok(Ok(slot)) => slot,
            Ok(Err(_)) => {
                crate::metrics::shed(&self.name);
                crate::client_span::event("bulkhead full: call shed", &self.name, []);
                return Err(CallError::Refused(Refusal::Overloaded));
            }
            Err(_) => return Err(CallError::Status(deadline_exceeded(timeout).into())),
        };
        self.budget.deposit();
        let mut retries = 0;
        let mut failed: Option<Arc<Endpoint>> = None;
        loop {
            let endpoints = self.endpoints();
            if endpoints.is_empty() {
                return Err(CallError::Refused(Refusal::NoEndpoints));
            }
            let Some(endpoint) = self.balancer.pick(&endpoints, failed.as_deref()).cloned() else {
                return Err(CallError::Refused(self.refused(&endpoints)));
            };
            if endpoint.breaker.try_acquire().is_err() {
                // Its last trial slot went to another call a moment ago.
                return Err(CallError::Refused(self.refused(&endpoints)));
            }
            endpoint.in_flight.fetch_add(1, Ordering::Relaxed);
            let started = Instant::now();
            let remaining = deadline.saturating_duration_since(started);
            let span = crate::client_span::attempt(method, &endpoint.url, retries);
            let attempted = crate::in_span(&span, span.in_scope(|| attempt(endpoint.clone(), remaining)));
            let outcome = match tokio::time::timeout_at(deadline, attempted).await {
                Ok(outcome) => outcome.map_err(|failure| transport_failure(failure, &endpoint.url)),
                Err(_) => Err(Failure::Sent(deadline_exceeded(timeout).into())),
            };
            endpoint.in_flight.fetch_sub(1, Ordering::Relaxed);
            let code = outcome.as_ref().map_or_else(|failure| failure.status().code(), |_| tonic::Code::Ok);
            crate::client_span::finish(&span, code);
            // Out of time because the caller gave little is no verdict on the
            // endpoint: a burst of impatient callers must not open its breaker
            // (and then refuse the releases that undo what they started).
            let callers_deadline = code == tonic::Code::DeadlineExceeded && timeout < self.policy.timeout;
            endpoint.breaker.record(if callers_deadline { Outcome::Neutral } else { Outcome::of_status(code) });
            endpoint.metrics.record(code, started.elapsed());
            let (failure, never_sent) = match outcome {
                Ok(value) => return Ok(value),
                Err(Failure::NotSent(failure)) => (failure, true),
                Err(Failure::Sent(failure)) => (failure, false),
            };
            let status = failure.status();
            let delay = self.policy.backoff.delay(retries);
            // A timer fires on a whole millisecond (tokio's resolution), up
            // to 1 ms after the wait asked for: the attempt after it must
            // still find time left, not start at the deadline with none.
            let may_retry = (idempotent || never_sent)
                && status.code() == tonic::Code::Unavailable
                && retries < self.policy.max_retries
                && Instant::now() + delay + Duration::from_millis(1) < deadline;
            if !may_retry || !self.budget.withdraw() {
                return Err(CallError::Status(failure));
            }
            retries += 1;
            crate::metrics::retried(&self.name);
            let attributes = [
                opentelemetry::KeyValue::new("meshwork.retry", i64::from(retries)),
                opentelemetry::KeyValue::new("rpc.grpc.status_code", status.code() as i64),
            ];
            crate::client_span::event("retrying", &self.name, attributes);
            tracing::debug!(upstream = %self.name, endpoint = %endpoint.url, retry = retries, ?delay, %status, "retrying");
            failed = Some(endpoint);
            tokio::time::sleep(delay).await;
        }
    }

    /// The refusal every call would meet now, before any attempt: no
    /// endpoint is known, or every endpoint's breaker is open. For a caller
    /// with work to do before it calls (a body to read and parse), which a
    /// call that cannot go should not cost. Takes no trial slot; a call
    /// that finds the breaker half-open the next moment still goes.
    pub fn refusing(&self) -> Option<Refusal> {
        let endpoints = self.endpoints();
        if endpoints.is_empty() {
            return Some(Refusal::NoEndpoints);
        }
        endpoints.iter().all(|e| e.breaker.open_remaining().is_some()).then(|| self.refused(&endpoints))
    }

    fn refused(&self, endpoints: &[Arc<Endpoint>]) -> Refusal {
        crate::metrics::breaker_rejected(&self.name);
        crate::client_span::event("circuit breaker open: call refused", &self.name, []);
        let retry_after =
            endpoints.iter().filter_map(|e| e.breaker.open_remaining()).min().unwrap_or(self.policy.breaker.open_for);
        Refusal::BreakerOpen { retry_after }
    }
}

/// A failed attempt, and whether the request can have reached the service.
enum Failure<E> {
    /// The connection could not be made: the service never saw the request.
    NotSent(E),
    Sent(E),
}

impl<E: AttemptError> Failure<E> {
    fn status(&self) -> &tonic::Status {
        match self {
            Self::NotSent(failure) | Self::Sent(failure) => failure.status(),
        }
    }
}

/// A status the server did not send comes with the client's own error as
/// its source: a connection refused, reset or dropped under the call (which
/// tonic reports as UNKNOWN or CANCELLED). To the breaker and the caller that
/// is UNAVAILABLE; tonic's own expired deadline is DEADLINE_EXCEEDED. A
/// failure to connect means the request was never sent.
fn transport_failure<E: AttemptError>(failure: E, endpoint: &str) -> Failure<E> {
    use std::error::Error;
    let status = failure.status();
    if status.source().is_none() {
        return Failure::Sent(failure);
    }
    let mut chain = Vec::new();
    let mut source = status.source();
    while let Some(error) = source {
        chain.push(error);
        source = error.source();
    }
    // A connect timeout is also a TimeoutExpired, under a ConnectError.
    let connecting = chain.iter().any(|e| e.is::<tonic::ConnectError>() || e.is::<ConnectFailed>());
    if !connecting && chain.iter().any(|e| e.is::<tonic::TimeoutExpired>()) {
        return Failure::Sent(tonic::Status::deadline_exceeded(format!("{endpoint} did not answer in time")).into());
    }
    let unavailable = tonic::Status::unavailable(format!("the connection to {endpoint} failed: {}", status.message()));
    if connecting { Failure::NotSent(unavailable.into()) } else { Failure::Sent(unavailable.into()) }
}

fn deadline_exceeded(timeout: Duration) -> tonic::Status {
    tonic::Status::deadline_exceeded(format!("no answer within {timeout:?}"))
}
