//! The meshwork binary's library half: what each component is and how `up`
//! runs them all in one process, shared by `main` and the system tests.

pub mod components;
pub mod up;

use std::net::SocketAddr;

use anyhow::Context;
use platform::config::Setting;
use tokio::net::TcpListener;

/// Settings the components parse themselves, beyond the platform's.
pub fn component_settings() -> Vec<Setting> {
    users::config::SETTINGS.iter().chain(products::config::SETTINGS).chain(gateway::config::SETTINGS).copied().collect()
}

pub async fn bind(address: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(address).await.with_context(|| format!("cannot listen on {address}"))
}
