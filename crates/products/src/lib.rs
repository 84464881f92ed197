//! The products service: the catalog, search and inventory. Products live
//! in MongoDB (or SQLite under `meshwork up`); stock is reserved atomically
//! per product, all-or-nothing per reservation, idempotently per reservation
//! id, never oversold, and held only until an order confirms it or the hold
//! expires.
#![forbid(unsafe_code)]

pub mod config;
pub mod consumer;
pub mod domain;
pub mod error;
pub mod grpc;
pub mod holds;
pub mod service;
pub mod start;
pub mod store;

use std::sync::Arc;

pub use service::Products;

/// The products component's server: the gRPC service, held to the
/// contract's access rules by `access`, plus a readiness check on its store.
/// [`start::serve`] builds it with its access rules and hold expiry.
pub fn server(
    products: Products,
    access: platform::access::ServerAccess,
    settings: &platform::Settings,
) -> platform::Server {
    let store = products.store().clone();
    platform::Server::new("products")
        .with_settings(settings)
        .access(access)
        .descriptor_set(contract::FILE_DESCRIPTOR_SET)
        .grpc_service(grpc::ProductsApi::new(products).into_server())
        .readiness_check("database", move || {
            let store = Arc::clone(&store);
            async move { store.ping().await.map_err(|e| e.to_string()) }
        })
}
