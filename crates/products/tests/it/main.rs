//! The products service's tests: the store suite against both adapters
//! (stock never oversold under concurrency), the service over real gRPC,
//! and readiness following MongoDB.

mod grpc;
mod helpers;
mod readiness;
mod reservations;
mod sales;
mod store;
mod takeover;
