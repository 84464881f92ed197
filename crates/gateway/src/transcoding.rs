//! A bound on the memory the gateway spends turning request bodies into
//! messages at once (REST and Connect JSON, Connect's binary messages).
//!
//! Why: a body is parsed into a JSON tree and then a message, which hold
//! many times its size. 1 MiB of `{"items":[{},{},...]}`, 350,000 empty
//! messages, took the gateway's peak RSS from 48 MB to 112 MB (`meshwork up`,
//! a release build), and six sent at once to 221 MB with two threads doing
//! them. The work is synchronous, so one thread does one at a time, but a
//! gateway on 16 cores would do 16: well over its Kubernetes manifest's
//! 256 MiB. Each body is charged its length against a budget of bytes
//! (`GATEWAY_TRANSCODE_BYTES`, by default the largest body accepted, 1 MiB:
//! the same six then peaked at 134 MB), released once its messages are
//! encoded; one that finds no room within [`WAIT`] is refused as a full
//! bulkhead refuses a call: UNAVAILABLE (503) with `Retry-After`. Bodies of
//! the usual few hundred bytes take turns at it unnoticed.

use std::time::Duration;

use axum::response::Response;
use tokio::sync::{Semaphore, SemaphorePermit};

/// How long a body waits for room. Turning 1 MiB into messages takes tens
/// of milliseconds, so a body that waits longer is behind a flood of them.
pub const WAIT: Duration = Duration::from_secs(1);

pub struct Transcoding {
    budget: Semaphore,
    /// The whole budget, the most one body is charged.
    bytes: u32,
}

/// No room in the budget within [`WAIT`].
#[derive(Debug)]
pub struct Busy;

impl Busy {
    /// The refusal: UNAVAILABLE, as `write` writes a status in the caller's
    /// protocol (a REST error, a Connect error, a Connect stream's end),
    /// with `Retry-After`, as a call the bulkhead sheds.
    pub fn refusal(&self, write: impl FnOnce(&tonic::Status) -> Response) -> Response {
        let status = tonic::Status::unavailable("the gateway is busy reading other large requests; retry shortly");
        let mut response = write(&status);
        response.headers_mut().insert(http::header::RETRY_AFTER, http::HeaderValue::from_static("1"));
        response
    }
}

impl Transcoding {
    /// A budget of `bytes` (at most 4 GiB, what a semaphore counts).
    pub fn new(bytes: usize) -> Self {
        let bytes = u32::try_from(bytes).unwrap_or(u32::MAX);
        Self { budget: Semaphore::new(bytes as usize), bytes }
    }

    /// Room for a body of `length` bytes, held until the permit is dropped
    /// (none is needed for an empty one).
    pub async fn enter(&self, length: usize) -> Result<Option<SemaphorePermit<'_>>, Busy> {
        if length == 0 {
            return Ok(None);
        }
        let charge = u32::try_from(length).unwrap_or(u32::MAX).min(self.bytes);
        if let Ok(permit) = self.budget.try_acquire_many(charge) {
            return Ok(Some(permit));
        }
        match tokio::time::timeout(WAIT, self.budget.acquire_many(charge)).await {
            Ok(Ok(permit)) => Ok(Some(permit)),
            // Timed out (the semaphore is never closed).
            _ => {
                metrics::counter!("gateway_transcode_refused_total").increment(1);
                Err(Busy)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_body_waits_for_room_then_is_refused_and_small_ones_go_on_once_there_is_room() {
        let transcoding = Transcoding::new(1000);
        assert!(transcoding.enter(0).await.unwrap().is_none(), "an empty body costs nothing");
        let big = transcoding.enter(800).await.unwrap();
        let small = transcoding.enter(200).await.unwrap();
        // Full: the next waits, then is refused.
        assert!(transcoding.enter(1).await.is_err());
        drop(small);
        assert!(transcoding.enter(150).await.is_ok());
        drop(big);
        // A body larger than the whole budget is charged the whole budget.
        let whole = transcoding.enter(5000).await.unwrap();
        assert!(transcoding.enter(1).await.is_err());
        drop(whole);
        assert!(transcoding.enter(1000).await.is_ok());
    }

    #[test]
    fn a_refusal_is_unavailable_and_says_when_to_try_again() {
        let response = Busy.refusal(|status| {
            assert_eq!(status.code(), tonic::Code::Unavailable);
            crate::error::error_response(status.code(), status.message(), Vec::new())
        });
        assert_eq!(response.status(), http::StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[http::header::RETRY_AFTER], "1");
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_waits_gets_the_room_another_frees() {
        let transcoding = std::sync::Arc::new(Transcoding::new(100));
        // Held past this scope: freed below by hand.
        transcoding.enter(100).await.unwrap().expect("a permit").forget();
        let waiting = {
            let transcoding = transcoding.clone();
            tokio::spawn(async move { transcoding.enter(60).await.map(|permit| permit.is_some()) })
        };
        tokio::task::yield_now().await;
        transcoding.budget.add_permits(100);
        assert!(waiting.await.unwrap().unwrap());
    }
}
