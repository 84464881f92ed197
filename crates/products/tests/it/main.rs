//! The products service's tests: the store suite against both adapters
//! (stock never oversold under concurrency, holds that expire), the service
//! over real gRPC, and readiness following MongoDB.

mod grpc;
mod helpers;
mod holds;
mod readiness;
mod reservations;
mod sales;
mod store;
mod takeover;
