//! `meshwork up`: the gateway and the three services in one process, each on
//! its own port, so a newcomer needs nothing but Rust. The system tests run
//! the same code in process ([`start`]).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use platform::{CancellationToken, Settings};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::components::{Addresses, Backends, Component};

/// The whole platform, serving.
pub struct Up {
    /// Each component and where it listens.
    pub bound: Vec<(Component, SocketAddr)>,
    running: JoinSet<(Component, Result<(), platform::ServeError>)>,
    shutdown: CancellationToken,
}

impl Up {
    pub fn address(&self, wanted: Component) -> SocketAddr {
        self.bound.iter().find(|(component, _)| *component == wanted).map(|(_, address)| *address).expect("bound")
    }

    /// Waits until every server has stopped; if one fails, stops the others.
    pub async fn wait(mut self) -> anyhow::Result<()> {
        let mut failure = None;
        while let Some(joined) = self.running.join_next().await {
            let (component, result) = joined?;
            if let Err(error) = result {
                tracing::error!(component = component.name(), %error, "server failed; stopping the others");
                failure.get_or_insert(anyhow::anyhow!("{} failed: {error}", component.name()));
                self.shutdown.cancel();
            }
        }
        failure.map_or(Ok(()), Err)
    }
}

/// Binds every port, then builds every component (orders and the gateway
/// need to know where the others listen), then serves: if anything fails
/// before serving, nothing starts. `only` runs a subset (the others are
/// expected at their usual ports, in another `meshwork up --only ...`).
pub async fn start(
    settings: &Settings,
    base_port: u16,
    only: Option<&[Component]>,
    shutdown: CancellationToken,
) -> anyhow::Result<Up> {
    let settings = &embedded_defaults(settings)?;
    // Loopback unless asked otherwise: `up` is for a developer's machine.
    let host = settings.host.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
    if only.is_some() && base_port == 0 {
        anyhow::bail!("--only needs fixed ports: the parts must find each other");
    }
    let mut listeners: Vec<(Component, TcpListener)> = Vec::new();
    let mut planned: Vec<(Component, SocketAddr)> = Vec::new();
    for (offset, component) in (0u16..).zip(Component::ALL) {
        // --base-port 0: every component on a port of the system's choosing.
        let port = match base_port {
            0 => 0,
            base => base.checked_add(offset).ok_or_else(|| anyhow::anyhow!("--base-port {base} is too high"))?,
        };
        let address = SocketAddr::new(host, port);
        if only.is_none_or(|only| only.contains(&component)) {
            let listener = crate::bind(address).await?;
            planned.push((component, listener.local_addr()?));
            listeners.push((component, listener));
        } else {
            planned.push((component, address));
        }
    }
    let url = |wanted: Component| {
        let address = planned.iter().find(|(component, _)| *component == wanted).map(|(_, a)| *a).expect("planned");
        format!("http://{address}")
    };
    let addresses =
        Addresses { users: url(Component::Users), products: url(Component::Products), orders: url(Component::Orders) };
    let bus = events::InProcessBus::new();
    let backends = Backends::Embedded { data_dir: &settings.data_dir, bus: &bus, addresses: &addresses };
    let mut running = JoinSet::new();
    let mut servers = Vec::new();
    for (component, _) in &listeners {
        servers.push(component.server(settings, backends, &shutdown).await?);
    }
    let mut bound = Vec::new();
    for ((component, listener), server) in listeners.into_iter().zip(servers) {
        bound.push((component, listener.local_addr()?));
        let shutdown = shutdown.clone();
        running.spawn(async move { (component, server.serve(listener, shutdown).await) });
    }
    Ok(Up { bound, running, shutdown })
}

/// What `up` assumes unless told: callers without a token are trusted
/// (development), the service secret is generated once in the data
/// directory, and every component serves on the shared runtime.
fn embedded_defaults(settings: &Settings) -> anyhow::Result<Settings> {
    let mut settings = settings.clone();
    settings.auth_mode.get_or_insert(platform::access::AuthMode::Optional);
    // One process for every component: its one shared runtime serves them
    // best. Serving threads for the gateway here took `scripts/bench
    // orders` from 1 352-1 374 orders/s down to 912-967 (threads beside the
    // runtime's own, and a thread change on every hop between components).
    settings.serving_threads.get_or_insert(0);
    if settings.service_secret.is_none() {
        let path = settings.data_dir.join("service-secret");
        let secret = platform::access::load_or_generate_secret(&path)
            .map_err(|e| anyhow::anyhow!("cannot keep the service secret in {}: {e}", path.display()))?;
        settings.service_secret = Some(platform::config::Secret::new(secret));
    }
    Ok(settings)
}

/// `meshwork up` itself: start, say where everything is, serve until stopped.
pub async fn run(
    settings: Settings,
    base_port: u16,
    only: Option<Vec<Component>>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    if settings.port.is_some() {
        tracing::warn!("PORT is ignored by `meshwork up`; use --base-port");
    }
    let up = start(&settings, base_port, only.as_deref(), shutdown).await?;
    println!("meshwork is up (data in {}):", settings.data_dir.display());
    for (component, address) in &up.bound {
        println!("  {:<9} http://{address}  {}", component.name(), component.describe());
    }
    println!("every port serves /health/live, /health/ready, /metrics, gRPC health and reflection; Ctrl-C stops");
    if up.bound.iter().any(|(component, _)| *component == Component::Gateway) && settings.auth_mode.is_none() {
        println!(
            "auth: development mode, callers without a token are trusted (MESHWORK_AUTH=required holds everyone to the contract's rules)"
        );
    }
    up.wait().await
}
