//! The users service: accounts and sign-in. Accounts live in PostgreSQL (or
//! SQLite under `meshwork up`); passwords are argon2id hashes; Login returns
//! an EdDSA-signed JWT whose public key GetJwks publishes.
#![forbid(unsafe_code)]

pub mod config;
pub mod domain;
pub mod error;
pub mod grpc;
pub mod password;
pub mod service;
pub mod start;
pub mod store;
pub mod tokens;

use std::sync::Arc;

pub use config::UsersConfig;
pub use service::Users;

/// The users component's server: the gRPC service plus a readiness check on
/// its store.
pub fn server(users: Users, settings: &platform::Settings) -> platform::Server {
    let store = users.store().clone();
    platform::Server::new("users")
        .with_settings(settings)
        .descriptor_set(contract::FILE_DESCRIPTOR_SET)
        .grpc_service(grpc::UsersApi::new(users).into_server())
        .readiness_check("database", move || {
            let store = Arc::clone(&store);
            async move { store.ping().await.map_err(|e| e.to_string()) }
        })
}
