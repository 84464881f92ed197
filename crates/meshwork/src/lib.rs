//! The meshwork binary's library half: what each component is and how `up`
//! runs them all in one process, shared by `main` and the system tests.

pub mod components;
pub mod up;

use std::net::SocketAddr;

use anyhow::Context;
use platform::config::Setting;
use tokio::net::TcpListener;

/// Settings the components parse themselves, beyond the platform's.
pub const COMPONENT_SETTINGS: &[Setting] = &[
    users::config::JWT_SIGNING_KEY_FILE,
    users::config::JWT_ISSUER,
    users::config::JWT_TTL,
    gateway::config::GATEWAY_UPSTREAMS,
    gateway::config::GATEWAY_DESCRIPTOR_SETS,
    gateway::config::GATEWAY_MAX_BODY_BYTES,
    gateway::config::GATEWAY_CORS_ORIGINS,
];

pub async fn bind(address: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(address).await.with_context(|| format!("cannot listen on {address}"))
}
