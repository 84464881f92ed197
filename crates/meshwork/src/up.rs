//! `meshwork up`: the gateway and the three services in one process, each on
//! its own port, so a newcomer needs nothing but Rust.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use platform::{CancellationToken, Settings};

use crate::components::{Addresses, Backends, Component};

pub async fn run(settings: Settings, base_port: u16, shutdown: CancellationToken) -> anyhow::Result<()> {
    // Loopback unless asked otherwise: `up` is for a developer's machine.
    let host = settings.host.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
    if settings.port.is_some() {
        tracing::warn!("PORT is ignored by `meshwork up`; use --base-port");
    }

    // Bind every port, then build every component (orders needs to know
    // where users and products listen): if anything fails, nothing starts.
    let mut bound = Vec::new();
    for (offset, component) in (0u16..).zip(Component::ALL) {
        // --base-port 0: every component on a port of the system's choosing.
        let port = match base_port {
            0 => 0,
            base => base.checked_add(offset).ok_or_else(|| anyhow::anyhow!("--base-port {base} is too high"))?,
        };
        let listener = crate::bind(SocketAddr::new(host, port)).await?;
        bound.push((component, listener));
    }

    let address_of = |wanted: Component| -> anyhow::Result<String> {
        let (_, listener) = bound.iter().find(|(component, _)| *component == wanted).expect("every component is bound");
        Ok(format!("http://{}", listener.local_addr()?))
    };
    let addresses = Addresses {
        users: address_of(Component::Users)?,
        products: address_of(Component::Products)?,
        orders: address_of(Component::Orders)?,
    };
    let bus = events::InProcessBus::new();
    let backends = Backends::Embedded { data_dir: &settings.data_dir, bus: &bus, addresses: &addresses };
    let mut servers = Vec::new();
    for component in Component::ALL {
        servers.push(component.server(&settings, backends, &shutdown).await?);
    }

    println!("meshwork is up (data in {}):", settings.data_dir.display());
    for (component, listener) in &bound {
        println!("  {:<9} http://{}  {}", component.name(), listener.local_addr()?, component.describe());
    }
    println!("every port serves /health/live, /health/ready, /metrics, gRPC health and reflection; Ctrl-C stops");

    let mut running = tokio::task::JoinSet::new();
    for ((component, listener), server) in bound.into_iter().zip(servers) {
        let shutdown = shutdown.clone();
        running.spawn(async move { (component, server.serve(listener, shutdown).await) });
    }
    let mut failure = None;
    while let Some(joined) = running.join_next().await {
        let (component, result) = joined?;
        if let Err(error) = result {
            tracing::error!(component = component.name(), %error, "server failed; stopping the others");
            failure.get_or_insert(anyhow::anyhow!("{} failed: {error}", component.name()));
            shutdown.cancel();
        }
    }
    failure.map_or(Ok(()), Err)
}
