//! Resilience for outbound calls, each concern in its own module with tests
//! (time-based ones on a paused clock): exponential backoff with full
//! jitter, a retry budget that keeps retries from multiplying an overload, a
//! retrying caller that respects one deadline for the whole call, a circuit
//! breaker per endpoint, a bulkhead per upstream, and endpoint balancing
//! that ejects endpoints whose breaker is open.
#![forbid(unsafe_code)]

pub mod backoff;
pub mod balancer;
pub mod breaker;
pub mod budget;
pub mod bulkhead;
pub mod retry;

pub use backoff::Backoff;
pub use balancer::{Balancer, Candidate, Strategy};
pub use breaker::{BreakerConfig, BreakerState, CircuitBreaker, Outcome};
pub use budget::RetryBudget;
pub use bulkhead::{Bulkhead, BulkheadConfig};
pub use retry::{Retry, RetryPolicy};
