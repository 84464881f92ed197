//! HTTP headers <-> gRPC metadata, as grpc-gateway maps them:
//! `Grpc-Metadata-Foo: v` -> `foo: v` (binary `-Bin` values base64-decoded),
//! `Authorization` passed through, `X-Forwarded-For` and `X-Forwarded-Host`
//! added, `Grpc-Timeout` as the deadline; response metadata comes back as
//! `Grpc-Metadata-<key>` headers.

use std::net::SocketAddr;

use base64::Engine;
use http::{HeaderMap, HeaderName, HeaderValue};
use tonic::metadata::{AsciiMetadataKey, BinaryMetadataKey, MetadataMap, MetadataValue};

const PREFIX: &str = "grpc-metadata-";

/// The metadata for the upstream call from the HTTP request's headers.
pub fn request_metadata(headers: &HeaderMap, client: Option<SocketAddr>) -> MetadataMap {
    let mut metadata = MetadataMap::new();
    for (name, value) in headers {
        let name = name.as_str();
        let key = if let Some(key) = name.strip_prefix(PREFIX) {
            key
        } else if matches!(name, "authorization" | "traceparent" | "tracestate" | "idempotency-key") {
            name
        } else {
            continue;
        };
        // A service credential never comes from outside the mesh.
        if key.eq_ignore_ascii_case(platform::access::SERVICE_TOKEN_METADATA) {
            continue;
        }
        if key.ends_with("-bin") {
            let Ok(key) = BinaryMetadataKey::from_bytes(key.as_bytes()) else { continue };
            let decoded = base64::engine::general_purpose::STANDARD.decode(value.as_bytes());
            if let Ok(bytes) = decoded {
                metadata.append_bin(key, MetadataValue::from_bytes(&bytes));
            }
        } else if let (Ok(key), Some(value)) =
            (AsciiMetadataKey::from_bytes(key.as_bytes()), value.to_str().ok().and_then(|v| v.parse().ok()))
        {
            metadata.append(key, value);
        }
    }
    let forwarded_for = headers.get("x-forwarded-for").and_then(|v| v.to_str().ok());
    let chain = match (forwarded_for, client) {
        (Some(chain), Some(client)) => Some(format!("{chain}, {}", client.ip())),
        (Some(chain), None) => Some(chain.to_owned()),
        (None, Some(client)) => Some(client.ip().to_string()),
        (None, None) => None,
    };
    if let Some(value) = chain.and_then(|chain| chain.parse().ok()) {
        metadata.insert("x-forwarded-for", value);
    }
    if let Some(value) = headers.get(http::header::HOST).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()) {
        metadata.insert("x-forwarded-host", value);
    }
    metadata
}

/// The upstream's response metadata as `Grpc-Metadata-*` headers.
pub fn response_headers(metadata: &MetadataMap, headers: &mut HeaderMap) {
    for (name, value) in metadata.clone().into_headers() {
        let Some(name) = name else { continue };
        if name.as_str().starts_with("grpc-") || name == http::header::CONTENT_TYPE {
            continue;
        }
        if let Ok(name) = HeaderName::from_bytes(format!("{PREFIX}{}", name.as_str()).as_bytes()) {
            headers.append(name, value);
        }
    }
}

/// A header value, or none if it cannot be one.
pub fn value(text: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_metadata_headers_become_metadata() {
        let mut headers = HeaderMap::new();
        headers.insert("grpc-metadata-tenant", "acme".parse().unwrap());
        headers.insert("grpc-metadata-blob-bin", "AQID".parse().unwrap());
        headers.insert("authorization", "Bearer t".parse().unwrap());
        headers.insert("x-other", "dropped".parse().unwrap());
        headers.insert("x-forwarded-for", "10.0.0.1".parse().unwrap());
        let metadata = request_metadata(&headers, Some("127.0.0.1:5000".parse().unwrap()));
        assert_eq!(metadata.get("tenant").unwrap(), "acme");
        assert_eq!(metadata.get_bin("blob-bin").unwrap().to_bytes().unwrap().as_ref(), [1, 2, 3]);
        assert_eq!(metadata.get("authorization").unwrap(), "Bearer t");
        headers.insert("grpc-metadata-x-meshwork-service-token", "forged".parse().unwrap());
        assert!(request_metadata(&headers, None).get("x-meshwork-service-token").is_none());
        assert!(metadata.get("x-other").is_none());
        assert_eq!(metadata.get("x-forwarded-for").unwrap(), "10.0.0.1, 127.0.0.1");
        headers.append("grpc-metadata-tenant", "globex".parse().unwrap());
        let repeated = request_metadata(&headers, None);
        let tenants: Vec<_> = repeated.get_all("tenant").iter().map(|v| v.to_str().unwrap().to_owned()).collect();
        assert_eq!(tenants, ["acme", "globex"], "every value of a repeated header is passed on");
        headers.insert("host", "shop.example.com".parse().unwrap());
        headers.insert("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse().unwrap());
        headers.insert("grpc-metadata-note", HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap());
        let metadata = request_metadata(&headers, None);
        assert_eq!(metadata.get("x-forwarded-host").unwrap(), "shop.example.com");
        assert_eq!(metadata.get("traceparent").unwrap(), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        assert!(metadata.get("note").is_none(), "a value that is not visible ASCII is not sent as text metadata");
        assert_eq!(metadata.get_bin("blob-bin").unwrap().to_bytes().unwrap().as_ref(), [1, 2, 3]);
    }
}
