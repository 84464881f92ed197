//! Resilience for outbound calls, each concern in its own module with tests
//! on a paused clock: exponential backoff with full jitter, a retry budget
//! that keeps retries from multiplying an overload, and a retrying caller
//! that respects one deadline for the whole call.
#![forbid(unsafe_code)]

pub mod backoff;
pub mod budget;
pub mod retry;

pub use backoff::Backoff;
pub use budget::RetryBudget;
pub use retry::{Retry, RetryPolicy};
