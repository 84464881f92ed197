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
pub mod throttle;
pub mod tokens;

use std::sync::Arc;

pub use config::UsersConfig;
pub use service::Users;

/// The users component's server: the gRPC service, held to the contract's
/// access rules (tokens verified with this service's own keys), plus a
/// readiness check on its store.
pub fn server(users: Users, settings: &platform::Settings) -> Result<platform::Server, platform::ConfigError> {
    let store = users.store().clone();
    let issuer = users.token_issuer().clone();
    let own_keys = move || -> futures::future::BoxFuture<'static, Result<Vec<contract::users::JsonWebKey>, String>> {
        let keys = issuer.jwks().into_iter().map(grpc::jwk_to_proto).collect();
        Box::pin(async move { Ok(keys) })
    };
    let (access, _) = platform::access::service_access(settings, "users", own_keys)?;
    Ok(platform::Server::new("users")
        .with_settings(settings)
        .access(access)
        .descriptor_set(contract::FILE_DESCRIPTOR_SET)
        .grpc_service(grpc::UsersApi::new(users).into_server())
        .readiness_check("database", move || {
            let store = Arc::clone(&store);
            async move { store.ping().await.map_err(|e| e.to_string()) }
        }))
}
