//! The orders service's tests: the store suite against both adapters, the
//! saga over real gRPC against real users and products services, and the
//! outbox relay against the real RabbitMQ under faults.

mod cancellation;
mod deadlines;
mod discovery;
mod faults;
mod grpc;
mod helpers;
mod partition;
mod store;
