//! The services behind the gateway, by proto service name: one
//! [`resilience::Upstream`] per distinct endpoint source.

use std::collections::HashMap;
use std::sync::Arc;

use resilience::{EndpointSource, Policy, Upstream};

/// The upstreams by proto service name.
#[derive(Clone, Default)]
pub struct Upstreams {
    /// Looked up on every call: foldhash, not the standard SipHash, which
    /// took 170 instructions more for a service's name (callgrind). The
    /// table is made at start and never grows, so names a caller chooses
    /// cannot be made to collide in it to any effect.
    by_service: HashMap<String, Arc<Upstream>, foldhash::fast::RandomState>,
}

impl Upstreams {
    /// One upstream per distinct endpoint source; services sharing a source
    /// share the upstream (and its breakers, bulkhead and channels).
    /// Static lists are set now; DNS sources start empty (see [`crate::discovery`]).
    pub fn new(services: &[(String, EndpointSource)], policy: &Policy) -> Result<Self, String> {
        let mut by_source: HashMap<&EndpointSource, Arc<Upstream>> = HashMap::new();
        let mut by_service = HashMap::default();
        for (service, source) in services {
            let upstream = match by_source.get(source) {
                Some(upstream) => upstream.clone(),
                None => {
                    let upstream = Arc::new(Upstream::new(upstream_name(service), policy.clone()));
                    if let EndpointSource::Static(urls) = source {
                        upstream.set_endpoints(urls)?;
                    }
                    by_source.insert(source, upstream.clone());
                    upstream
                }
            };
            by_service.insert(service.clone(), upstream);
        }
        Ok(Self { by_service })
    }

    /// The upstream that serves `service` (a full proto name).
    pub fn get(&self, service: &str) -> Option<Arc<Upstream>> {
        self.by_service.get(service).cloned()
    }

    pub fn services(&self) -> impl Iterator<Item = (&str, &Arc<Upstream>)> {
        self.by_service.iter().map(|(service, upstream)| (service.as_str(), upstream))
    }
}

/// A short name for metrics: `shop.products.v1.ProductService` -> `products`.
fn upstream_name(service: &str) -> String {
    let parts: Vec<&str> = service.split('.').collect();
    match parts.as_slice() {
        ["shop", name, _version, _service] => (*name).to_owned(),
        _ => service.to_owned(),
    }
}
