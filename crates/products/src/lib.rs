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

/// The products component's server: the gRPC service, held to the
/// contract's access rules (users' tokens verified against the users
/// service at `users_url`), plus a readiness check on its store.
pub fn server(
    products: Products,
    users_url: &str,
    settings: &platform::Settings,
) -> Result<platform::Server, platform::ConfigError> {
    let users = platform::client::lazy_channel(users_url)
        .map_err(|e| settings.invalid(platform::settings::USER_SERVICE_URL, e))?;
    let (access, _) = platform::access::service_access(settings, "products", platform::access::jwks_from_users(users))?;
    let store = products.store().clone();
    Ok(platform::Server::new("products")
        .with_settings(settings)
        .access(access)
        .descriptor_set(contract::FILE_DESCRIPTOR_SET)
        .grpc_service(grpc::ProductsApi::new(products).into_server())
        .readiness_check("database", move || {
            let store = Arc::clone(&store);
            async move { store.ping().await.map_err(|e| e.to_string()) }
        }))
}
