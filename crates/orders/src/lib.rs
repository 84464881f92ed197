//! The orders service: orders and their lifecycle on PostgreSQL (or SQLite
//! under `meshwork up`). CreateOrder reserves stock at the products service
//! as a small saga; every change is published as an event through a
//! transactional outbox and its relay.
#![forbid(unsafe_code)]

pub mod clients;
pub mod dependencies;
pub mod domain;
pub mod error;
pub mod grpc;
mod metrics;
pub mod relay;
pub mod service;
pub mod start;
pub mod store;

use std::sync::Arc;

pub use service::Orders;

/// The orders component's server: the gRPC service, held to the contract's
/// access rules, plus a readiness check on its store. The outbox relay runs
/// beside it (see [`start`]).
pub fn server(
    orders: Orders,
    access: platform::access::ServerAccess,
    settings: &platform::Settings,
) -> platform::Server {
    let store = orders.store().clone();
    platform::Server::new("orders")
        .with_settings(settings)
        .access(access)
        .descriptor_set(contract::FILE_DESCRIPTOR_SET)
        .grpc_service(grpc::OrdersApi::new(orders).into_server())
        .readiness_check("database", move || {
            let store = Arc::clone(&store);
            async move { store.ping().await.map_err(|e| e.to_string()) }
        })
}
