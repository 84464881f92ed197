//! HTTP headers <-> gRPC metadata, as grpc-gateway maps them:
//! `Grpc-Metadata-Foo: v` -> `foo: v` (binary `-Bin` values base64-decoded),
//! `Authorization` passed through, the permanent headers as
//! `grpcgateway-<name>`, `X-Forwarded-For` and `X-Forwarded-Host` added,
//! `Grpc-Timeout` as the deadline; response metadata comes back as
//! `Grpc-Metadata-<key>` headers.

use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr};

use axum::body::Body;
use axum::response::Response;
use base64::Engine;
use futures::StreamExt;
use http::{HeaderMap, HeaderName, HeaderValue};
use http_body::Frame;
use http_body_util::StreamBody;
use tonic::metadata::{BinaryMetadataKey, MetadataMap, MetadataValue};

const PREFIX: &str = "grpc-metadata-";
const TRAILER_PREFIX: &str = "grpc-trailer-";
// Built once: a name given as a string is checked and parsed each time it
// is used (450-600 instructions a name, callgrind).
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// The metadata for the upstream call from the HTTP request's headers.
///
/// Text values go over as the request's own `HeaderValue`s (shared bytes,
/// not parsed and copied again as metadata values: the bearer token alone
/// is hundreds of bytes), so the map is built as HTTP headers and becomes
/// metadata whole. Binary (`-bin`) values are decoded and encoded again.
pub fn request_metadata(headers: &HeaderMap, uri: &http::Uri, client: Option<SocketAddr>) -> MetadataMap {
    let mut text = HeaderMap::new();
    let mut binary = Vec::new();
    for (name, value) in headers {
        let key = if let Some(key) = name.as_str().strip_prefix(PREFIX) {
            let Ok(key) = HeaderName::from_bytes(key.as_bytes()) else { continue };
            key
        } else if matches!(name.as_str(), "authorization" | "traceparent" | "tracestate" | "idempotency-key") {
            name.clone()
        } else if let Some(prefixed) = permanent(name) {
            prefixed
        } else {
            continue;
        };
        // A service credential never comes from outside the mesh.
        if key.as_str().eq_ignore_ascii_case(platform::access::SERVICE_TOKEN_METADATA) {
            continue;
        }
        if key.as_str().ends_with("-bin") {
            let Ok(key) = BinaryMetadataKey::from_bytes(key.as_str().as_bytes()) else { continue };
            let decoded = base64::engine::general_purpose::STANDARD.decode(value.as_bytes());
            if let Ok(bytes) = decoded {
                binary.push((key, MetadataValue::from_bytes(&bytes)));
            }
        } else if value.to_str().is_ok() {
            // Text metadata is visible ASCII, which is what `to_str` accepts.
            text.append(key, value.clone());
        }
    }
    let forwarded_for = headers.get(X_FORWARDED_FOR).and_then(|v| v.to_str().ok());
    let client = client.map(|client| address_value(client.ip()));
    let chain = match (forwarded_for, client) {
        (Some(chain), Some(client)) => {
            value(&[chain, ", ", client.to_str().expect("an address is visible ASCII")].concat())
        }
        (Some(chain), None) => value(chain),
        (None, client) => client,
    };
    if let Some(chain) = chain {
        text.insert(X_FORWARDED_FOR, chain);
    }
    // The host a proxy in front was asked for, as grpc-gateway keeps it;
    // else the one this gateway was: `Host`, or over HTTP/2 `:authority`,
    // which is not among the headers.
    let host = headers.get(X_FORWARDED_HOST).or_else(|| headers.get(http::header::HOST)).cloned();
    let host = host.or_else(|| uri.authority().and_then(|authority| HeaderValue::from_str(authority.as_str()).ok()));
    if let Some(host) = host.filter(|v| v.to_str().is_ok()) {
        text.insert(X_FORWARDED_HOST, host);
    }
    let mut metadata = MetadataMap::from_headers(text);
    for (key, value) in binary {
        metadata.append_bin(key, value);
    }
    metadata
}

/// grpc-gateway's permanent HTTP request headers (IANA's), which its
/// default header matcher passes to the service as `grpcgateway-<name>`
/// metadata, built once. Two of its list are left out: `Authorization`
/// goes as itself (above), and `Cookie` not at all: a browser sends every
/// cookie of the site, other applications' sessions too, and meshwork's
/// services sign callers in by bearer token. `Host` is grpc-gateway's in
/// name only (Go keeps it apart from the headers): it goes as
/// `X-Forwarded-Host`.
static PERMANENT: [(&str, HeaderName); 21] = [
    ("accept", HeaderName::from_static("grpcgateway-accept")),
    ("accept-charset", HeaderName::from_static("grpcgateway-accept-charset")),
    ("accept-language", HeaderName::from_static("grpcgateway-accept-language")),
    ("accept-ranges", HeaderName::from_static("grpcgateway-accept-ranges")),
    ("cache-control", HeaderName::from_static("grpcgateway-cache-control")),
    ("content-type", HeaderName::from_static("grpcgateway-content-type")),
    ("date", HeaderName::from_static("grpcgateway-date")),
    ("expect", HeaderName::from_static("grpcgateway-expect")),
    ("from", HeaderName::from_static("grpcgateway-from")),
    ("if-match", HeaderName::from_static("grpcgateway-if-match")),
    ("if-modified-since", HeaderName::from_static("grpcgateway-if-modified-since")),
    ("if-none-match", HeaderName::from_static("grpcgateway-if-none-match")),
    ("if-schedule-tag-match", HeaderName::from_static("grpcgateway-if-schedule-tag-match")),
    ("if-unmodified-since", HeaderName::from_static("grpcgateway-if-unmodified-since")),
    ("max-forwards", HeaderName::from_static("grpcgateway-max-forwards")),
    ("origin", HeaderName::from_static("grpcgateway-origin")),
    ("pragma", HeaderName::from_static("grpcgateway-pragma")),
    ("referer", HeaderName::from_static("grpcgateway-referer")),
    ("user-agent", HeaderName::from_static("grpcgateway-user-agent")),
    ("via", HeaderName::from_static("grpcgateway-via")),
    ("warning", HeaderName::from_static("grpcgateway-warning")),
];

/// `name` as the service gets it, if it is a permanent header.
fn permanent(name: &HeaderName) -> Option<HeaderName> {
    PERMANENT.iter().find(|(plain, _)| *plain == name.as_str()).map(|(_, prefixed)| prefixed.clone())
}

/// A client's address as a header value. Formatting an address took 1,300
/// instructions a call (callgrind; std pads it through a buffer), and a
/// thread's requests come from one address call after call (a load
/// balancer's, or a client's kept-alive connections): the last one made on
/// this thread is kept.
fn address_value(address: IpAddr) -> HeaderValue {
    thread_local! {
        static LAST: RefCell<Option<(IpAddr, HeaderValue)>> = const { RefCell::new(None) };
    }
    LAST.with_borrow_mut(|last| match last {
        Some((cached, value)) if *cached == address => value.clone(),
        _ => {
            let value = HeaderValue::from_str(&address.to_string()).expect("an address is visible ASCII");
            *last = Some((address, value.clone()));
            value
        }
    })
}

/// The upstream's response metadata as `Grpc-Metadata-*` headers. Not
/// gRPC's own headers, nor `Date`: the HTTP server under a tonic service
/// adds one to every response, and it is the transport's, not metadata
/// (a Go service sends none, so grpc-gateway shows none).
pub fn response_headers(metadata: HeaderMap, headers: &mut HeaderMap) {
    headers.extend(prefixed(PREFIX, metadata));
}

/// Whether the caller takes trailers (`TE: trailers`). grpc-gateway sends
/// trailer metadata only to one that does, as HTTP asks (RFC 9110 §6.6.2:
/// a server should not send trailers the client has not said it takes).
pub fn accepts_trailers(headers: &HeaderMap) -> bool {
    headers.get_all(http::header::TE).iter().filter_map(|value| value.to_str().ok()).any(|value| {
        value
            .split(',')
            .any(|coding| coding.split(';').next().unwrap_or_default().trim().eq_ignore_ascii_case("trailers"))
    })
}

/// `response` with the upstream's trailer metadata as `Grpc-Trailer-*`
/// trailers, named beforehand in its `Trailer` header. Over HTTP/1.1 hyper
/// sends trailers only in a chunked body and only those named there, so
/// the body's length is no longer told. A response with no trailer
/// metadata is left as it is.
pub fn with_trailers(response: Response, trailers: HeaderMap) -> Response {
    let trailers: HeaderMap = prefixed(TRAILER_PREFIX, trailers).collect();
    if trailers.is_empty() {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    parts.headers.remove(http::header::CONTENT_LENGTH);
    for name in trailers.keys() {
        parts.headers.append(http::header::TRAILER, HeaderValue::from_name(name.clone()));
    }
    // A stream of frames, not `with_trailers`: that keeps the body's exact
    // length, and hyper would send it with `Content-Length` and no trailers.
    let trailers = futures::stream::once(std::future::ready(Ok(Frame::trailers(trailers))));
    let frames = body.into_data_stream().map(|data| data.map(Frame::data)).chain(trailers);
    Response::from_parts(parts, Body::new(StreamBody::new(frames)))
}

/// The metadata among `metadata`'s entries, each named with `prefix`.
fn prefixed(prefix: &str, metadata: HeaderMap) -> impl Iterator<Item = (HeaderName, HeaderValue)> {
    let mut name = None;
    metadata.into_iter().filter_map(move |(key, value)| {
        // A name stands for the values after it that have none.
        if let Some(key) = key {
            let own =
                !key.as_str().starts_with("grpc-") && key != http::header::CONTENT_TYPE && key != http::header::DATE;
            name = own.then(|| HeaderName::from_bytes(format!("{prefix}{}", key.as_str()).as_bytes()).ok()).flatten();
        }
        Some((name.clone()?, value))
    })
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
        let relative = http::Uri::from_static("/v1/echo/m1");
        let mut headers = HeaderMap::new();
        headers.insert("grpc-metadata-tenant", "acme".parse().unwrap());
        headers.insert("grpc-metadata-blob-bin", "AQID".parse().unwrap());
        headers.insert("authorization", "Bearer t".parse().unwrap());
        headers.insert("x-other", "dropped".parse().unwrap());
        headers.insert("user-agent", "curl/8".parse().unwrap());
        headers.insert("accept-language", "fr-CH".parse().unwrap());
        headers.insert("cookie", "session=secret".parse().unwrap());
        headers.insert("x-forwarded-for", "10.0.0.1".parse().unwrap());
        let metadata = request_metadata(&headers, &relative, Some("127.0.0.1:5000".parse().unwrap()));
        assert_eq!(metadata.get("tenant").unwrap(), "acme");
        assert_eq!(metadata.get_bin("blob-bin").unwrap().to_bytes().unwrap().as_ref(), [1, 2, 3]);
        assert_eq!(metadata.get("authorization").unwrap(), "Bearer t");
        headers.insert("grpc-metadata-x-meshwork-service-token", "forged".parse().unwrap());
        assert!(request_metadata(&headers, &relative, None).get("x-meshwork-service-token").is_none());
        assert!(metadata.get("x-other").is_none());
        assert_eq!(metadata.get("grpcgateway-user-agent").unwrap(), "curl/8");
        assert_eq!(metadata.get("grpcgateway-accept-language").unwrap(), "fr-CH");
        assert!(metadata.get("grpcgateway-cookie").is_none() && metadata.get("cookie").is_none());
        assert!(metadata.get("grpcgateway-authorization").is_none(), "the token goes once, as authorization");
        assert_eq!(metadata.get("x-forwarded-for").unwrap(), "10.0.0.1, 127.0.0.1");
        headers.append("grpc-metadata-tenant", "globex".parse().unwrap());
        let repeated = request_metadata(&headers, &relative, None);
        let tenants: Vec<_> = repeated.get_all("tenant").iter().map(|v| v.to_str().unwrap().to_owned()).collect();
        assert_eq!(tenants, ["acme", "globex"], "every value of a repeated header is passed on");
        headers.insert("host", "shop.example.com".parse().unwrap());
        headers.insert("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse().unwrap());
        headers.insert("grpc-metadata-note", HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap());
        let metadata = request_metadata(&headers, &relative, None);
        assert_eq!(metadata.get("x-forwarded-host").unwrap(), "shop.example.com");
        headers.insert("x-forwarded-host", "www.example.com".parse().unwrap());
        let behind_a_proxy = request_metadata(&headers, &relative, None);
        assert_eq!(behind_a_proxy.get("x-forwarded-host").unwrap(), "www.example.com", "the proxy's, as it came");
        let http2 = request_metadata(&HeaderMap::new(), &"http://api.example.com/v1/echo/m1".parse().unwrap(), None);
        assert_eq!(http2.get("x-forwarded-host").unwrap(), "api.example.com", "from :authority");
        assert_eq!(metadata.get("traceparent").unwrap(), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        assert!(metadata.get("note").is_none(), "a value that is not visible ASCII is not sent as text metadata");
        assert_eq!(metadata.get_bin("blob-bin").unwrap().to_bytes().unwrap().as_ref(), [1, 2, 3]);
    }

    #[test]
    fn response_metadata_becomes_headers_but_not_the_transports_own() {
        let mut upstream = HeaderMap::new();
        upstream.insert("x-request-cost", "3".parse().unwrap());
        upstream.insert("date", "Fri, 04 Dec 2026 10:00:00 GMT".parse().unwrap());
        upstream.insert("content-type", "application/grpc".parse().unwrap());
        upstream.insert("grpc-accept-encoding", "gzip".parse().unwrap());
        let mut headers = HeaderMap::new();
        response_headers(upstream, &mut headers);
        let names: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["grpc-metadata-x-request-cost"]);
    }

    #[test]
    fn a_caller_takes_trailers_only_when_it_says_so() {
        for (te, takes) in [
            (None, false),
            (Some("trailers"), true),
            (Some("gzip, Trailers"), true),
            (Some("deflate;q=0.5, trailers"), true),
            (Some("gzip;q=0.5"), false),
            (Some("trailersx"), false),
        ] {
            let mut headers = HeaderMap::new();
            if let Some(te) = te {
                headers.insert(http::header::TE, te.parse().unwrap());
            }
            assert_eq!(accepts_trailers(&headers), takes, "{te:?}");
        }
    }

    #[tokio::test]
    async fn trailer_metadata_becomes_named_trailers_but_not_the_status() {
        use http_body_util::BodyExt;
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", "0".parse().unwrap());
        trailers.insert("grpc-message", "fine".parse().unwrap());
        trailers.append("x-cost", "3".parse().unwrap());
        trailers.append("x-cost", "4".parse().unwrap());
        let length = |response: &Response| http_body::Body::size_hint(response.body()).exact();
        let response = axum::response::IntoResponse::into_response("{}");
        assert_eq!(length(&response), Some(2));
        let response = with_trailers(response, trailers);
        assert_eq!(response.headers()[http::header::TRAILER], "grpc-trailer-x-cost");
        assert_eq!(length(&response), None, "with a length, hyper's HTTP/1.1 would send no trailers");
        let collected = response.into_body().collect().await.unwrap();
        let costs: Vec<_> = collected.trailers().unwrap().get_all("grpc-trailer-x-cost").iter().cloned().collect();
        assert_eq!((costs, collected.to_bytes()), (vec!["3".parse().unwrap(), "4".parse().unwrap()], "{}".into()));

        let status_only = HeaderMap::from_iter([(HeaderName::from_static("grpc-status"), "5".parse().unwrap())]);
        let response = with_trailers(axum::response::IntoResponse::into_response("{}"), status_only);
        assert_eq!(length(&response), Some(2), "nothing to send: left as it was");
        assert!(!response.headers().contains_key(http::header::TRAILER));
    }

    #[test]
    fn each_call_forwards_its_own_client_address() {
        let (headers, relative) = (HeaderMap::new(), http::Uri::from_static("/"));
        for address in ["10.0.0.1:1", "10.0.0.1:2", "10.0.0.2:1", "[::1]:3", "10.0.0.1:4"] {
            let client: SocketAddr = address.parse().unwrap();
            let metadata = request_metadata(&headers, &relative, Some(client));
            assert_eq!(metadata.get("x-forwarded-for").unwrap(), client.ip().to_string().as_str(), "{address}");
        }
    }
}
