//! Retrying a unary gRPC call within one deadline: only failures that mean
//! "not processed, try again" (UNAVAILABLE, which is also how tonic reports
//! connection failures), only for calls the caller marks safe to repeat, at
//! most `max_retries` times, within the retry budget, and never past the
//! deadline: each attempt gets what remains of it as its gRPC timeout.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::{Backoff, RetryBudget};

/// Which calls may be repeated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryPolicy {
    /// Safe to repeat (reads, and writes idempotent by key).
    Idempotent,
    /// Not safe: one attempt only.
    Never,
}

#[derive(Debug, Clone)]
pub struct Retry {
    pub timeout: Duration,
    pub max_retries: u32,
    pub backoff: Backoff,
    budget: Arc<RetryBudget>,
}

impl Default for Retry {
    /// DESIGN §6: 5 s for the whole call, at most 3 retries, 100 ms → 5 s.
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(5),
            max_retries: 3,
            backoff: Backoff::default(),
            budget: Arc::new(RetryBudget::default()),
        }
    }
}

/// Whether a failed attempt may be repeated: the server did not process it.
pub fn is_retryable(status: &tonic::Status) -> bool {
    status.code() == tonic::Code::Unavailable
}

impl Retry {
    pub fn with_budget(mut self, budget: Arc<RetryBudget>) -> Self {
        self.budget = budget;
        self
    }

    /// Runs `attempt(remaining)` until it succeeds, fails for good, or the
    /// deadline passes (DEADLINE_EXCEEDED). `remaining` is the time left,
    /// for the attempt's own gRPC timeout.
    pub async fn call<T, F, Fut>(&self, policy: RetryPolicy, mut attempt: F) -> Result<T, tonic::Status>
    where
        F: FnMut(Duration) -> Fut,
        Fut: Future<Output = Result<T, tonic::Status>>,
    {
        let deadline = Instant::now() + self.timeout;
        self.budget.deposit();
        let mut retries = 0;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let outcome = match tokio::time::timeout(remaining, attempt(remaining)).await {
                Ok(outcome) => outcome,
                Err(_) => return Err(deadline_exceeded(self.timeout)),
            };
            let status = match outcome {
                Ok(value) => return Ok(value),
                Err(status) => status,
            };
            if policy == RetryPolicy::Never || !is_retryable(&status) || retries >= self.max_retries {
                return Err(status);
            }
            if !self.budget.withdraw() {
                tracing::debug!(%status, "retry budget spent; not retrying");
                return Err(status);
            }
            let delay = self.backoff.delay(retries);
            if Instant::now() + delay >= deadline {
                return Err(status);
            }
            retries += 1;
            tracing::debug!(retry = retries, ?delay, %status, "retrying");
            tokio::time::sleep(delay).await;
        }
    }
}

fn deadline_exceeded(timeout: Duration) -> tonic::Status {
    tonic::Status::deadline_exceeded(format!("no answer within {timeout:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn failing_then_ok(
        failures: u32,
        code: tonic::Code,
    ) -> (Arc<AtomicU32>, impl FnMut(Duration) -> std::future::Ready<Result<u32, tonic::Status>>) {
        let calls = Arc::new(AtomicU32::new(0));
        let counter = calls.clone();
        let attempt = move |_remaining| {
            let call = counter.fetch_add(1, Ordering::SeqCst);
            std::future::ready(if call < failures { Err(tonic::Status::new(code, "down")) } else { Ok(call) })
        };
        (calls, attempt)
    }

    #[tokio::test(start_paused = true)]
    async fn unavailable_is_retried_until_it_succeeds() {
        let (calls, attempt) = failing_then_ok(2, tonic::Code::Unavailable);
        let result = Retry::default().call(RetryPolicy::Idempotent, attempt).await;
        assert_eq!(result.unwrap(), 2);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn at_most_three_retries() {
        let (calls, attempt) = failing_then_ok(10, tonic::Code::Unavailable);
        let result = Retry::default().call(RetryPolicy::Idempotent, attempt).await;
        assert_eq!(result.unwrap_err().code(), tonic::Code::Unavailable);
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn client_errors_and_unsafe_calls_are_not_retried() {
        for code in [tonic::Code::NotFound, tonic::Code::InvalidArgument, tonic::Code::FailedPrecondition] {
            let (calls, attempt) = failing_then_ok(1, code);
            assert_eq!(Retry::default().call(RetryPolicy::Idempotent, attempt).await.unwrap_err().code(), code);
            assert_eq!(calls.load(Ordering::SeqCst), 1, "{code:?}");
        }
        let (calls, attempt) = failing_then_ok(1, tonic::Code::Unavailable);
        assert!(Retry::default().call(RetryPolicy::Never, attempt).await.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_call_ends_at_the_deadline_and_is_told_how_long_it_has() {
        let retry = Retry { timeout: Duration::from_millis(300), ..Retry::default() };
        let started = Instant::now();
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = seen.clone();
        let result: Result<(), _> = retry
            .call(RetryPolicy::Idempotent, move |remaining| {
                record.lock().unwrap().push(remaining);
                std::future::pending()
            })
            .await;
        assert_eq!(result.unwrap_err().code(), tonic::Code::DeadlineExceeded);
        assert_eq!(started.elapsed(), Duration::from_millis(300));
        assert_eq!(*seen.lock().unwrap(), [Duration::from_millis(300)]);
    }

    #[tokio::test(start_paused = true)]
    async fn retries_never_run_past_the_deadline() {
        let retry = Retry { timeout: Duration::from_millis(150), ..Retry::default() };
        let started = Instant::now();
        let (_, attempt) = failing_then_ok(100, tonic::Code::Unavailable);
        assert!(retry.call(RetryPolicy::Idempotent, attempt).await.is_err());
        assert!(started.elapsed() < Duration::from_millis(150));
    }

    #[tokio::test(start_paused = true)]
    async fn an_empty_budget_stops_retries() {
        let retry = Retry::default().with_budget(Arc::new(RetryBudget::new(0.0, 0)));
        let (calls, attempt) = failing_then_ok(1, tonic::Code::Unavailable);
        assert!(retry.call(RetryPolicy::Idempotent, attempt).await.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
