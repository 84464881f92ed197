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

/// Keeps `upstream`'s endpoints equal to the URLs registered under
/// `directory` (`{prefix}{component}/`) in etcd: lists them, then follows
/// the watch; relists after any etcd outage, keeping the last known list
/// meanwhile.
#[cfg(feature = "etcd")]
pub async fn follow_etcd(upstream: Arc<Upstream>, etcd: Vec<String>, directory: String, shutdown: CancellationToken) {
    let mut delay = Duration::from_millis(200);
    loop {
        match watch_etcd(&upstream, &etcd, &directory, &shutdown).await {
            Ok(()) => return,
            Err(error) => tracing::warn!(upstream = %upstream.name, %error, "etcd discovery lost; retrying"),
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shutdown.cancelled() => return,
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

#[cfg(feature = "etcd")]
async fn watch_etcd(
    upstream: &Upstream,
    etcd: &[String],
    directory: &str,
    shutdown: &CancellationToken,
) -> Result<(), etcd_client::Error> {
    use std::collections::BTreeMap;

    use etcd_client::{Client, EventType, GetOptions, WatchOptions};

    let mut client = Client::connect(etcd, None).await?;
    let listing = client.get(directory, Some(GetOptions::new().with_prefix())).await?;
    let mut registered: BTreeMap<String, String> = listing
        .kvs()
        .iter()
        .filter_map(|kv| Some((kv.key_str().ok()?.to_owned(), kv.value_str().ok()?.to_owned())))
        .collect();
    let apply = |registered: &BTreeMap<String, String>| {
        let mut urls: Vec<String> = registered.values().cloned().collect();
        urls.sort();
        urls.dedup();
        if let Err(error) = upstream.set_endpoints(&urls) {
            tracing::warn!(upstream = %upstream.name, %error, "registered endpoints rejected");
        }
    };
    apply(&registered);
    let revision = listing.header().map_or(0, |header| header.revision());
    let options = WatchOptions::new().with_prefix().with_start_revision(revision + 1);
    let mut stream = client.watch(directory, Some(options)).await?;
    loop {
        let message = tokio::select! {
            message = stream.message() => message?,
            () = shutdown.cancelled() => return Ok(()),
        };
        let Some(response) = message else {
            return Err(etcd_client::Error::WatchError("the watch ended".to_owned()));
        };
        for event in response.events() {
            let Some(kv) = event.kv() else { continue };
            let Ok(key) = kv.key_str() else { continue };
            match event.event_type() {
                EventType::Put => {
                    if let Ok(url) = kv.value_str() {
                        registered.insert(key.to_owned(), url.to_owned());
                    }
                }
                EventType::Delete => {
                    registered.remove(key);
                }
            }
        }
        apply(&registered);
    }
}
