//! Where a service's endpoints come from, as every `*_SERVICE_URL` and the
//! gateway's `GATEWAY_UPSTREAMS` name them: a fixed list, a DNS name to
//! follow, or a component registered in etcd. Parsed here only.

use std::fmt;

/// Where an upstream's endpoints come from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EndpointSource {
    /// `http://a:1,http://b:2`: a fixed list of `http(s)://host:port`.
    Static(Vec<String>),
    /// `dns://host:port`: every address the name resolves to, re-resolved
    /// periodically (a Kubernetes headless Service).
    Dns { host: String, port: u16 },
    /// `etcd://component`: the URLs instances registered under
    /// `{MESHWORK_ETCD_PREFIX}{component}/`, watched.
    Etcd { component: String },
}

/// Why an `https://` endpoint is refused, for every setting that names
/// one: calls between components are cleartext HTTP/2.
pub const NO_TLS: &str = "https:// needs a TLS client, which meshwork's calls do not have; inside the mesh use http:// (TLS ends at the ingress or a sidecar)";

impl EndpointSource {
    /// One fixed endpoint, `http(s)://host:port`.
    pub fn single(url: impl Into<String>) -> Self {
        Self::Static(vec![url.into()])
    }

    /// `http://a:1,http://b:2`, `dns://host:port` or `etcd://component`.
    pub fn parse(value: &str) -> Result<Self, String> {
        let value = value.trim();
        if let Some(component) = value.strip_prefix("etcd://") {
            let component = component.trim_end_matches('/');
            if component.is_empty() || component.contains(['/', ',', ' ']) {
                return Err("etcd:// needs a component name, such as etcd://products".to_owned());
            }
            return Ok(Self::Etcd { component: component.to_owned() });
        }
        if let Some(rest) = value.strip_prefix("dns://") {
            let rest = rest.trim_end_matches('/');
            let (host, port) = rest.rsplit_once(':').ok_or("dns:// needs host:port, such as dns://users:8001")?;
            let port = port.parse().map_err(|_| format!("{port:?} in {value} is not a port"))?;
            if host.is_empty() || host.contains([',', '/', ' ']) {
                return Err("dns:// names one host:port, such as dns://users-headless:8001".to_owned());
            }
            return Ok(Self::Dns { host: host.to_owned(), port });
        }
        let urls: Vec<String> = value
            .split(',')
            .map(|url| url.trim().trim_end_matches('/').to_owned())
            .filter(|url| !url.is_empty())
            .collect();
        if urls.is_empty() {
            return Err("no endpoint given".to_owned());
        }
        for url in &urls {
            let uri: tonic::codegen::http::Uri = url.parse().map_err(|e| format!("{url:?} is not a URL: {e}"))?;
            // Refused here, where the setting is read, rather than on every call.
            if uri.scheme_str() == Some("https") {
                return Err(format!("{url:?}: {NO_TLS}"));
            }
            if uri.scheme_str() != Some("http") || uri.authority().is_none() {
                return Err(format!(
                    "{url:?}: expected http://host:port (comma-separated for several), dns://host:port or etcd://component"
                ));
            }
        }
        Ok(Self::Static(urls))
    }
}

impl fmt::Display for EndpointSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Static(urls) => f.write_str(&urls.join(",")),
            Self::Dns { host, port } => write!(f, "dns://{host}:{port}"),
            Self::Etcd { component } => write!(f, "etcd://{component}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_form_parses_and_prints_back() {
        for (text, source) in [
            ("http://users:8001/", EndpointSource::Static(vec!["http://users:8001".to_owned()])),
            ("http://a:1, http://b:2", EndpointSource::Static(vec!["http://a:1".to_owned(), "http://b:2".to_owned()])),
            ("dns://users-headless:8001", EndpointSource::Dns { host: "users-headless".to_owned(), port: 8001 }),
            ("etcd://products", EndpointSource::Etcd { component: "products".to_owned() }),
        ] {
            let parsed = EndpointSource::parse(text).unwrap();
            assert_eq!(parsed, source, "{text}");
            assert_eq!(EndpointSource::parse(&parsed.to_string()).unwrap(), source);
        }
    }

    #[test]
    fn malformed_sources_say_what_is_expected() {
        for bad in [
            "",
            "users:8001",
            "ftp://products",
            "not a url",
            "dns://orders",
            "dns://a:1,http://b:2",
            "dns://host:port",
            "etcd://",
            "etcd://a/b",
        ] {
            assert!(EndpointSource::parse(bad).is_err(), "{bad:?} was accepted");
        }
        let tls = EndpointSource::parse("http://a:1,https://users:8001").unwrap_err();
        assert!(tls.contains("https://users:8001") && tls.contains("TLS"), "{tls}");
    }
}
