//! A server's connections: accepted up to a cap, each served over HTTP/1.1
//! or HTTP/2 (both on one port), and closed when all they do is hold
//! resources:
//!
//! - request headers not complete within `header_read` (HTTP/1; an HTTP/2
//!   request whose headers never complete is idle, below);
//! - no request in flight for `idle`, whatever bytes (pings, half a request)
//!   arrive meanwhile: HTTP/2 gets a GOAWAY first, so a client that sends a
//!   request just then has it served, not refused;
//! - a request body that sends nothing for `body_read`: the handler reading
//!   it gets an error instead of waiting forever.
//!
//! On shutdown every connection is asked to finish (GOAWAY, or close after
//! the current response) and those still busy after the grace period are cut.

use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use bytes::Bytes;
use futures::future::Either;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder as AutoBuilder;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::forwarded_grpc::ForwardedGrpc;
use crate::serving_threads::ServingThreads;
use crate::watched;

/// How long, and how many, connections may be held open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// To send a request's headers, once the connection waits for them.
    pub header_read: Duration,
    /// With no request in flight.
    pub idle: Duration,
    /// Between two pieces of a request body.
    pub body_read: Duration,
    /// Open at once; more are closed as soon as they are accepted.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read: Duration::from_secs(10),
            idle: Duration::from_secs(60),
            body_read: Duration::from_secs(30),
            max_connections: 10_000,
        }
    }
}

/// The open connections of a server, for a bounded drain.
pub(crate) struct Connections {
    stop: CancellationToken,
    tasks: JoinSet<()>,
}

impl Connections {
    /// Asks every connection to finish and cuts those still open after `grace`.
    pub(crate) async fn drain(mut self, grace: Duration, component: &'static str) {
        let open = self.tasks.len();
        self.stop.cancel();
        let finished = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(grace, finished).await.is_err() {
            tracing::warn!(%component, ?grace, "grace period over; closing calls still in flight");
            self.tasks.abort_all();
            while self.tasks.join_next().await.is_some() {}
        }
        tracing::debug!(%component, connections = open, "connections closed");
    }
}

/// Accepts connections until `shutdown` is cancelled, then drops the
/// listener so new connections are refused while old ones drain. Each
/// connection is served on one of `threads`, or on this runtime if none.
pub(crate) async fn accept_until(
    listener: TcpListener,
    app: Router,
    forwarded: Option<Arc<ForwardedGrpc>>,
    limits: ConnectionLimits,
    threads: Option<&ServingThreads>,
    shutdown: &CancellationToken,
) -> Connections {
    let mut builder = AutoBuilder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_read);
    builder.http2().timer(TokioTimer::new()).max_pending_accept_reset_streams(MAX_PENDING_ACCEPT_RESETS);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut connections = Connections { stop: CancellationToken::new(), tasks: JoinSet::new() };
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => return connections,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            // Closing at once tells the client now, instead of leaving it in
            // the listen queue until it gives up.
            metrics::counter!("meshwork_connections_refused_total").increment(1);
            tracing::debug!(%remote, max = limits.max_connections, "connection refused: too many open");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let activity = Activity::new();
        let service = {
            let (activity, forwarded, app) = (activity.clone(), forwarded.clone(), app.clone());
            tower::service_fn(move |request: http::Request<Incoming>| {
                let in_flight = activity.begin();
                let mut request = request.map(|body| axum::body::Body::new(StallTimeout::new(body, limits.body_read)));
                let response = match &forwarded {
                    Some(forwarded) if forwarded.takes(&request) => Either::Left(forwarded.forward(request, remote)),
                    _ => {
                        // Where axum's `ConnectInfo` extractor looks for it.
                        // Put there by an `Extension` layer on the router,
                        // it cost each request one more boxed service and
                        // future: 58,900 instructions per trivial RPC
                        // instead of 58,000 (callgrind, as in
                        // `forwarded_grpc`), and the router rebuilt for each
                        // connection.
                        request.extensions_mut().insert(ConnectInfo(remote));
                        Either::Right(app.clone().oneshot(request))
                    }
                };
                async move {
                    let response = match response {
                        Either::Left(forwarded) => forwarded.await,
                        Either::Right(routed) => routed.await?,
                    };
                    // Handed to hyper as it is, not boxed again in axum's body.
                    Ok::<_, std::convert::Infallible>(response.map(|body| Counted { body, _in_flight: in_flight }))
                }
            })
        };
        let builder = builder.clone();
        let stop = connections.stop.clone();
        let serve_on = move |stream: TcpStream| async move {
            let connection = builder
                .serve_connection_with_upgrades(
                    TokioIo::new(stream),
                    hyper_util::service::TowerToHyperService::new(service),
                )
                .into_owned();
            serve(connection, |c| c.graceful_shutdown(), activity, limits.idle, stop).await;
            drop(slot);
            tracing::trace!(%remote, "connection closed");
        };
        match threads {
            None => {
                connections.tasks.spawn(serve_on(stream));
            }
            Some(threads) => match stream.into_std() {
                // Registered again with the reactor of the thread that serves it.
                Ok(stream) => {
                    connections.tasks.spawn_on(
                        async move {
                            match TcpStream::from_std(stream) {
                                Ok(stream) => serve_on(stream).await,
                                Err(error) => tracing::debug!(%remote, %error, "connection lost in hand-off"),
                            }
                        },
                        threads.next(),
                    );
                }
                Err(error) => tracing::debug!(%remote, %error, "connection lost in hand-off"),
            },
        }
        while connections.tasks.try_join_next().is_some() {}
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Serves one connection to its end, or until it idles or the server stops;
/// then asks it to finish (`graceful_shutdown`), and cuts it if it then
/// idles again.
async fn serve<C, F>(connection: C, graceful_shutdown: F, activity: Activity, idle: Duration, stop: CancellationToken)
where
    C: Future<Output = Result<(), BoxError>>,
    F: FnOnce(Pin<&mut C>),
{
    let mut connection = pin!(connection);
    let watch = pin!(async {
        tokio::select! {
            () = activity.idle_for(idle) => {
                metrics::counter!("meshwork_connections_idle_closed_total").increment(1);
                "idle"
            }
            () = stop.cancelled() => "server stopping",
        }
    });
    let closing = match watched::until(connection.as_mut(), watch).await {
        Either::Left(result) => return log_end(result),
        Either::Right(why) => why,
    };
    tracing::trace!(why = closing, "closing a connection");
    graceful_shutdown(connection.as_mut());
    // Requests that raced the GOAWAY are served; a peer that never closes
    // its side once nothing is in flight is cut off.
    if let Either::Left(result) = watched::until(connection.as_mut(), pin!(activity.idle_for(CLOSE_WAIT))).await {
        log_end(result);
    }
}

/// HTTP/2 streams a peer may reset before the server took them up, at
/// once: as many as it may have open (hyper's default concurrency). h2's
/// own default, 20, guards against the rapid-reset attack, but a service's
/// callers carry many callers' calls on one connection and pass on each
/// one's cancellation: when 200 callers of CreateOrder gave up together and
/// products fell behind, orders' connection to it went past 20, h2 closed
/// it with every call on it, and the stock releases in flight failed and
/// opened the breaker (the orders cancellation test, one run in five). A
/// reset stream waiting to be taken up costs less than an open one.
const MAX_PENDING_ACCEPT_RESETS: usize = 200;

/// How long a connection asked to close may stay open with nothing in flight.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

fn log_end(result: Result<(), BoxError>) {
    if let Err(error) = result {
        tracing::debug!(%error, "connection ended with an error");
    }
}

/// How many requests of one connection are in flight, from the moment the
/// headers arrive until the response body is finished or dropped, and when
/// the last one ended. Plain atomics, read only when the idle timer fires:
/// a request neither wakes the connection's task nor sets a timer of its
/// own. (A watch channel woken by every request, and a sleep armed each
/// time the count fell to 0, cost the platform server 4-8% more CPU per
/// trivial RPC and 3-8% fewer req/s: two builds of `trivial_server` side
/// by side, alternating 3 s loads of h2load at 32 connections.)
#[derive(Clone)]
struct Activity(Arc<Counts>);

struct Counts {
    in_flight: AtomicUsize,
    /// When the last request ended, in microseconds after `since`.
    last_end: AtomicU64,
    since: Instant,
}

impl Activity {
    fn new() -> Self {
        Self(Arc::new(Counts { in_flight: AtomicUsize::new(0), last_end: AtomicU64::new(0), since: Instant::now() }))
    }

    fn begin(&self) -> InFlight {
        self.0.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self.0.clone())
    }

    /// Completes once nothing has been in flight for `limit` straight,
    /// counting from now at the earliest.
    fn idle_for(&self, limit: Duration) -> impl Future<Output = ()> + use<> {
        let counts = self.0.clone();
        let called = Instant::now();
        async move {
            let mut check = called + limit;
            loop {
                tokio::time::sleep_until(check).await;
                let now = Instant::now();
                if counts.in_flight.load(Ordering::Acquire) > 0 {
                    check = now + limit;
                    continue;
                }
                let last_end = counts.since + Duration::from_micros(counts.last_end.load(Ordering::Acquire));
                let idle_until = last_end.max(called) + limit;
                if idle_until <= now {
                    return;
                }
                check = idle_until;
            }
        }
    }
}

struct InFlight(Arc<Counts>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let micros = u64::try_from(self.0.since.elapsed().as_micros()).unwrap_or(u64::MAX);
        // The time first: whoever then sees the count at 0 sees when it got there.
        self.0.last_end.fetch_max(micros, Ordering::AcqRel);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request counted as in flight.
struct Counted {
    body: axum::body::Body,
    _in_flight: InFlight,
}

impl HttpBody for Counted {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A request body that fails when the client sends nothing for `limit`
/// while the handler waits for more.
struct StallTimeout {
    body: Incoming,
    limit: Duration,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl StallTimeout {
    fn new(body: Incoming, limit: Duration) -> Self {
        Self { body, limit, deadline: None }
    }
}

impl HttpBody for StallTimeout {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        let limit = this.limit;
        if let Poll::Ready(frame) = Pin::new(&mut this.body).poll_frame(cx) {
            if let Some(deadline) = &mut this.deadline {
                deadline.as_mut().reset(tokio::time::Instant::now() + limit);
            }
            return Poll::Ready(frame.map(|frame| frame.map_err(Into::into)));
        }
        // The clock starts when the handler first waits, not at the request's start.
        let deadline = this.deadline.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        ready!(deadline.as_mut().poll(cx));
        let why = format!("the request body sent nothing for {limit:?}");
        Poll::Ready(Some(Err(std::io::Error::new(std::io::ErrorKind::TimedOut, why).into())))
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `idle_for(limit)` has completed by `at` after the start.
    async fn done_by(idle: &mut Pin<&mut impl Future<Output = ()>>, at: Duration, started: Instant) -> bool {
        tokio::time::sleep_until(started + at).await;
        futures::poll!(idle.as_mut()).is_ready()
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_is_idle_once_nothing_has_been_in_flight_for_the_limit() {
        let activity = Activity::new();
        let started = Instant::now();
        let mut idle = pin!(activity.idle_for(Duration::from_secs(10)));
        let request = activity.begin();
        assert!(!done_by(&mut idle, Duration::from_secs(15), started).await, "a request is in flight");
        drop(request);
        assert!(!done_by(&mut idle, Duration::from_secs(24), started).await, "idle for 9 s only");
        assert!(done_by(&mut idle, Duration::from_secs(26), started).await, "idle for 10 s after the request ended");
    }

    #[tokio::test(start_paused = true)]
    async fn idleness_counts_from_the_call_not_from_an_earlier_request() {
        let activity = Activity::new();
        drop(activity.begin());
        tokio::time::sleep(Duration::from_secs(30)).await;
        let started = Instant::now();
        let mut idle = pin!(activity.idle_for(Duration::from_secs(5)));
        assert!(!done_by(&mut idle, Duration::from_secs(4), started).await);
        assert!(done_by(&mut idle, Duration::from_secs(6), started).await);
    }
}
