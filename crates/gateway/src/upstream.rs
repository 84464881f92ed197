//! The services behind the gateway: one pooled HTTP/2 channel per upstream
//! address, shared by every proto service that lives there.

use std::collections::HashMap;
use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

#[derive(Debug, thiserror::Error)]
#[error("invalid upstream URL {url} for {service}: {reason}")]
pub struct UpstreamError {
    service: String,
    url: String,
    reason: String,
}

#[derive(Clone, Default)]
pub struct Upstreams {
    by_service: HashMap<String, (String, Channel)>,
}

impl Upstreams {
    /// One lazily connecting channel per distinct URL (2 s to connect).
    pub fn new(services: &[(String, String)]) -> Result<Self, UpstreamError> {
        let mut channels: HashMap<String, Channel> = HashMap::new();
        let mut by_service = HashMap::new();
        for (service, url) in services {
            let channel = match channels.get(url) {
                Some(channel) => channel.clone(),
                None => {
                    let endpoint = Endpoint::from_shared(url.clone()).map_err(|e| UpstreamError {
                        service: service.clone(),
                        url: url.clone(),
                        reason: e.to_string(),
                    })?;
                    let channel = endpoint
                        .connect_timeout(Duration::from_secs(2))
                        .tcp_nodelay(true)
                        .http2_keep_alive_interval(Duration::from_secs(30))
                        .connect_lazy();
                    channels.insert(url.clone(), channel.clone());
                    channel
                }
            };
            by_service.insert(service.clone(), (url.clone(), channel));
        }
        Ok(Self { by_service })
    }

    /// The channel to the upstream that serves `service` (a full proto name).
    pub fn channel(&self, service: &str) -> Option<Channel> {
        self.by_service.get(service).map(|(_, channel)| channel.clone())
    }

    /// Every service with an upstream, and its URL.
    pub fn services(&self) -> impl Iterator<Item = (&str, &str)> {
        self.by_service.iter().map(|(service, (url, _))| (service.as_str(), url.as_str()))
    }
}
