//! The users service's tests: the store suite against both adapters, and
//! the service over real gRPC on 127.0.0.1:0.

mod access;
mod grpc;
mod helpers;
mod readiness;
mod store;
