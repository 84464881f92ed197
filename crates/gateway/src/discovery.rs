//! Endpoint discovery: `dns://host:port` upstreams are re-resolved every
//! few seconds (every address of a Kubernetes headless Service becomes an
//! endpoint), and the upstream's endpoint list follows. Static lists need
//! nothing here.

use std::sync::Arc;
use std::time::Duration;

use platform::CancellationToken;

use crate::upstream::Upstream;

/// Keeps `upstream`'s endpoints equal to what `host` resolves to.
pub async fn follow_dns(
    upstream: Arc<Upstream>,
    host: String,
    port: u16,
    every: Duration,
    shutdown: CancellationToken,
) {
    loop {
        match tokio::net::lookup_host((host.as_str(), port)).await {
            Ok(addresses) => {
                let mut urls: Vec<String> = addresses.map(|address| format!("http://{address}")).collect();
                urls.sort();
                urls.dedup();
                if let Err(error) = upstream.set_endpoints(&urls) {
                    tracing::warn!(upstream = %upstream.name, %error, "resolved endpoints rejected");
                }
            }
            // Keep the last known endpoints: a resolver hiccup is not an outage.
            Err(error) => tracing::warn!(upstream = %upstream.name, %host, %error, "DNS resolution failed"),
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = shutdown.cancelled() => return,
        }
    }
}
