//! Resilience for outbound calls. [`Upstream`] is the one call path the
//! gateway and the services use to call a service; its parts are each in a
//! module of their own with tests (time-based ones on a paused clock):
//! exponential backoff with full jitter, a retry budget that keeps retries
//! from multiplying an overload, a circuit breaker per endpoint, a bulkhead
//! per upstream, and endpoint balancing that ejects endpoints whose breaker
//! is open. [`EndpointSource`] names where an upstream's endpoints come from.
#![forbid(unsafe_code)]

pub mod affinity;
pub mod backoff;
pub mod balancer;
pub mod breaker;
pub mod budget;
pub mod bulkhead;
mod client_span;
pub mod deadline;
pub mod direct;
pub mod endpoints;
pub mod in_span;
mod metrics;
pub mod upstream;

pub use backoff::Backoff;
pub use balancer::{Balancer, Candidate, Strategy};
pub use breaker::{BreakerConfig, BreakerState, CircuitBreaker, Outcome};
pub use budget::RetryBudget;
pub use bulkhead::{Bulkhead, BulkheadConfig};
pub use client_span::attempt_spans;
pub use endpoints::EndpointSource;
pub use in_span::in_span;
pub use metrics::{CallSeries, code_label};
pub use upstream::{AttemptError, CallError, Endpoint, EndpointChannel, Policy, Refusal, Upstream};
