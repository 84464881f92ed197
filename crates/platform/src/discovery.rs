//! Endpoint discovery, for the gateway's upstreams and every service's
//! dependencies alike: a fixed list is set once; `dns://host:port` is
//! re-resolved every `dns_refresh` (every address of a Kubernetes headless
//! Service becomes an endpoint with its own breaker); `etcd://component`
//! follows what instances registered in etcd (the etcd build).

use std::sync::Arc;
use std::time::Duration;

use resilience::{EndpointSource, Policy, Upstream};
use tokio_util::sync::CancellationToken;

use crate::settings::{self, Settings};

/// Where discovery looks and how often.
#[derive(Debug, Clone)]
pub struct Discovery {
    pub dns_refresh: Duration,
    /// etcd for `etcd://` sources (empty: none configured).
    pub etcd_endpoints: Vec<String>,
    pub etcd_prefix: String,
}

impl Discovery {
    pub fn from_settings(settings: &Settings) -> Self {
        Self {
            dns_refresh: settings.dns_refresh,
            etcd_endpoints: settings.etcd_endpoints.clone(),
            etcd_prefix: settings.etcd_prefix.clone(),
        }
    }

    /// Whether `source` can be followed here; why not, if it cannot.
    pub fn check(&self, source: &EndpointSource) -> Result<(), String> {
        match source {
            EndpointSource::Etcd { .. } if !cfg!(feature = "etcd") => {
                Err("etcd:// needs the etcd build (cargo build --features etcd)".to_owned())
            }
            EndpointSource::Etcd { .. } if self.etcd_endpoints.is_empty() => {
                Err(format!("etcd:// needs {} (the etcd to discover from)", settings::ETCD_ENDPOINTS.name))
            }
            _ => Ok(()),
        }
    }

    /// Keeps `upstream`'s endpoints as `source` says: a fixed list now;
    /// `dns://` and `etcd://` in the background until `shutdown`.
    pub fn follow(
        &self,
        upstream: &Arc<Upstream>,
        source: &EndpointSource,
        shutdown: &CancellationToken,
    ) -> Result<(), String> {
        self.check(source)?;
        match source {
            EndpointSource::Static(urls) => upstream.set_endpoints(urls)?,
            EndpointSource::Dns { host, port } => {
                let (host, port, every) = (host.clone(), *port, self.dns_refresh);
                tokio::spawn(follow_dns(upstream.clone(), host, port, every, shutdown.clone()));
            }
            #[cfg(feature = "etcd")]
            EndpointSource::Etcd { component } => {
                let directory = format!("{}{component}/", self.etcd_prefix);
                let etcd = self.etcd_endpoints.clone();
                tokio::spawn(follow_etcd(upstream.clone(), etcd, directory, shutdown.clone()));
            }
            #[cfg(not(feature = "etcd"))]
            EndpointSource::Etcd { .. } => unreachable!("checked above"),
        }
        Ok(())
    }

    /// An upstream named `name` (for logs and metrics) under `policy`, its
    /// endpoints following `source`.
    pub fn upstream(
        &self,
        name: &str,
        policy: Policy,
        source: &EndpointSource,
        shutdown: &CancellationToken,
    ) -> Result<Arc<Upstream>, String> {
        let upstream = Arc::new(Upstream::new(name, policy));
        self.follow(&upstream, source, shutdown)?;
        Ok(upstream)
    }
}

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
