//! The products service: the catalog, search and inventory. Products live
//! in MongoDB (or SQLite under `meshwork up`); stock is reserved atomically
//! per product, all-or-nothing per reservation, idempotently per reservation
//! id, and never oversold.
#![forbid(unsafe_code)]

pub mod consumer;
pub mod domain;
pub mod error;
pub mod grpc;
pub mod service;
pub mod start;
pub mod store;

use std::sync::Arc;

pub use service::Products;

/// The products component's server: the gRPC service plus a readiness
/// check on its store.
pub fn server(products: Products, settings: &platform::Settings) -> platform::Server {
    let store = products.store().clone();
    platform::Server::new("products")
        .with_settings(settings)
        .descriptor_set(contract::FILE_DESCRIPTOR_SET)
        .grpc_service(grpc::ProductsApi::new(products).into_server())
        .readiness_check("database", move || {
            let store = Arc::clone(&store);
            async move { store.ping().await.map_err(|e| e.to_string()) }
        })
}
