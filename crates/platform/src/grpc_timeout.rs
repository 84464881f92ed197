//! The caller's `grpc-timeout`, honoured: a call still running when it
//! passes is stopped (its future dropped, as when the caller disconnects)
//! and answered DEADLINE_EXCEEDED, and while it runs its deadline is in
//! force for every call it makes to another service
//! ([`resilience::deadline`]), so no callee works past the caller.

use std::task::{Context, Poll};
use std::time::Duration;

use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use tokio::time::Instant;
use tower::{Layer, Service};

/// The header's name, checked once: a name given as a string is parsed
/// again on every lookup.
pub const HEADER: http::HeaderName = http::HeaderName::from_static("grpc-timeout");

/// Wraps a gRPC router; see the module docs.
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcTimeoutLayer;

impl<S> Layer<S> for GrpcTimeoutLayer {
    type Service = GrpcTimeout<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcTimeout { inner }
    }
}

#[derive(Debug, Clone)]
pub struct GrpcTimeout<S> {
    inner: S,
}

impl<S, B> Service<http::Request<B>> for GrpcTimeout<S>
where
    S: Service<http::Request<B>, Response = Response> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let timeout = request.headers().get(HEADER).and_then(|value| value.to_str().ok()).map(parse);
        let call = self.inner.call(request);
        match timeout {
            None => Box::pin(call),
            Some(None) => Box::pin(async {
                let status = tonic::Status::invalid_argument(
                    "grpc-timeout is malformed: expected 1 to 8 digits and a unit (H, M, S, m, u, n)",
                );
                Ok(status.into_http::<axum::body::Body>().into_response())
            }),
            Some(Some(timeout)) => {
                let deadline = Instant::now() + timeout;
                Box::pin(async move {
                    match tokio::time::timeout_at(deadline, resilience::deadline::within(deadline, call)).await {
                        Ok(answer) => answer,
                        Err(_) => {
                            metrics::counter!("grpc_deadline_exceeded_total").increment(1);
                            let status = tonic::Status::deadline_exceeded(format!(
                                "the caller's deadline ({timeout:?}) passed before the call completed"
                            ));
                            Ok(status.into_http::<axum::body::Body>().into_response())
                        }
                    }
                })
            }
        }
    }
}

/// A `grpc-timeout` value (gRPC over HTTP/2: at most 8 digits, then a unit:
/// `10S`, `500m`; H M S m u n).
pub fn parse(value: &str) -> Option<Duration> {
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount * 3600),
        "M" => Duration::from_secs(amount * 60),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

/// Sets what is left of a deadline as the `grpc-timeout` of an outgoing
/// call, as [`resilience::deadline::on_the_wire`] gives it.
pub fn set<T>(request: &mut tonic::Request<T>, remaining: Duration) {
    request.set_timeout(resilience::deadline::on_the_wire(remaining));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_parse_as_the_grpc_spec_writes_them() {
        assert_eq!(parse("200m"), Some(Duration::from_millis(200)));
        assert_eq!(parse("5S"), Some(Duration::from_secs(5)));
        assert_eq!(parse("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse("2M"), Some(Duration::from_secs(120)));
        assert_eq!(parse("7u"), Some(Duration::from_micros(7)));
        assert_eq!(parse("99999999u"), Some(Duration::from_micros(99_999_999)));
        assert_eq!(parse("10n"), Some(Duration::from_nanos(10)));
        for bad in ["", "m", "S", "5", "10", "5s", "abcS", "123456789m", "-1S", "1.5S"] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn an_outgoing_timeout_is_cut_to_whole_milliseconds_unless_less_is_left() {
        let sent = |remaining: Duration| {
            let mut request = tonic::Request::new(());
            set(&mut request, remaining);
            let value = request.metadata().get("grpc-timeout").expect("set").to_str().expect("ascii").to_owned();
            (value.clone(), parse(&value).expect("a valid grpc-timeout"))
        };
        assert_eq!(sent(Duration::from_micros(29_999_876)).1, Duration::from_millis(29_999));
        assert_eq!(sent(Duration::from_micros(29_999_876)).0, sent(Duration::from_micros(29_999_012)).0);
        assert_eq!(sent(Duration::from_micros(1_500)).1, Duration::from_millis(1));
        assert_eq!(sent(Duration::from_micros(700)).1, Duration::from_micros(700), "less than 1 ms is kept");
        assert_eq!(sent(Duration::from_secs(40 * 3600)).1, Duration::from_secs(40 * 3600));
    }
}
