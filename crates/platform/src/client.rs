//! Channels to other services, from a `*_SERVICE_URL` value.

use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

/// A lazily connecting channel: a component starts even if the service it
/// calls is not up yet. 2 s to connect (DESIGN §6). Several endpoints
/// (`http://a,http://b`) are balanced by tonic; `dns://name:port` connects to
/// what the name resolves to at connect time.
pub fn lazy_channel(urls: &str) -> Result<Channel, String> {
    let endpoints = urls
        .split(',')
        .map(|url| {
            let url = url.trim();
            let http = url.strip_prefix("dns://").map_or_else(|| url.to_owned(), |rest| format!("http://{rest}"));
            Endpoint::from_shared(http)
                .map(|endpoint| endpoint.connect_timeout(Duration::from_secs(2)).tcp_nodelay(true))
                .map_err(|e| format!("invalid service URL {url}: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(match <[Endpoint; 1]>::try_from(endpoints) {
        Ok([endpoint]) => endpoint.connect_lazy(),
        Err(endpoints) => Channel::balance_list(endpoints.into_iter()),
    })
}
