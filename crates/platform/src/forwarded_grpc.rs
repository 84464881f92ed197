//! Native gRPC calls a server forwards rather than serves (the gateway's
//! pass-through): taken from the connection straight to the forwarder,
//! not through the server's router to its fallback.
//!
//! Why: through the router, such a call is matched against every route,
//! matches none, and reaches the fallback through boxed layers, each
//! cloning a boxed service and boxing its future (there were two then,
//! one of them the per-connection `ConnectInfo` extension's, since gone).
//! Taken straight, a passed-through call cost the gateway 118,600
//! instructions instead of 124,100 (callgrind, 2,000 and 4,000 calls on one
//! connection), and 26.2 µs of CPU instead of 28.9 at 32 connections
//! (four alternating 4 s loads of each build).
//!
//! What still goes through the router: the gRPC services served here
//! (health, reflection, the server's own), anything not native gRPC, and a
//! call that carries an `Origin` (a browser's), so that a CORS layer on
//! the fallback sees it as before.

use std::net::SocketAddr;

use axum::extract::Request;
use axum::response::Response;
use futures::future::BoxFuture;

/// What forwards a call, given the request and the caller's address.
pub(crate) type Forward = dyn Fn(Request, SocketAddr) -> BoxFuture<'static, Response> + Send + Sync;

pub(crate) struct ForwardedGrpc {
    /// `/package.Service/` of every service the server serves itself.
    served_here: Vec<String>,
    forward: Box<Forward>,
}

impl ForwardedGrpc {
    pub(crate) fn new<'a>(served_here: impl IntoIterator<Item = &'a str>, forward: Box<Forward>) -> Self {
        let served_here = served_here.into_iter().map(|service| format!("/{service}/")).collect();
        Self { served_here, forward }
    }

    /// Whether `request` is a call to forward.
    pub(crate) fn takes(&self, request: &Request) -> bool {
        request.method() == http::Method::POST
            && is_native_grpc(request.headers())
            && !request.headers().contains_key(http::header::ORIGIN)
            && !self.served_here.iter().any(|prefix| request.uri().path().starts_with(prefix.as_str()))
    }

    pub(crate) fn forward(&self, request: Request, caller: SocketAddr) -> BoxFuture<'static, Response> {
        (self.forward)(request, caller)
    }
}

/// Whether a request speaks native gRPC (`application/grpc`, `+proto` and
/// the like), not gRPC-Web.
pub fn is_native_grpc(headers: &http::HeaderMap) -> bool {
    let content_type = headers.get(http::header::CONTENT_TYPE).map(http::HeaderValue::as_bytes);
    content_type.is_some_and(|t| t.starts_with(b"application/grpc") && !t.starts_with(b"application/grpc-web"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forwarded() -> ForwardedGrpc {
        let answer: Box<Forward> = Box::new(|_, _| Box::pin(async { Response::default() }));
        ForwardedGrpc::new(["grpc.health.v1.Health", "shop.users.v1.UserService"], answer)
    }

    fn call(path: &str, content_type: &str) -> http::request::Builder {
        Request::builder().method(http::Method::POST).uri(path).header(http::header::CONTENT_TYPE, content_type)
    }

    #[test]
    fn native_grpc_to_a_service_served_elsewhere_is_forwarded() {
        let forwarded = forwarded();
        for content_type in ["application/grpc", "application/grpc+proto", "application/grpc;charset=utf-8"] {
            let request = call("/bench.v1.UserService/GetUser", content_type).body(Default::default()).unwrap();
            assert!(forwarded.takes(&request), "{content_type}");
        }
    }

    #[test]
    fn what_the_server_serves_itself_and_what_is_not_native_grpc_go_through_the_router() {
        let forwarded = forwarded();
        let kept = [
            call("/grpc.health.v1.Health/Check", "application/grpc"),
            call("/shop.users.v1.UserService/GetUser", "application/grpc"),
            call("/bench.v1.UserService/GetUser", "application/grpc-web"),
            call("/bench.v1.UserService/GetUser", "application/grpc-web+proto"),
            call("/bench.v1.UserService/GetUser", "application/json"),
            call("/bench.v1.UserService/GetUser", "application/grpc").method(http::Method::GET),
            call("/bench.v1.UserService/GetUser", "application/grpc")
                .header(http::header::ORIGIN, "https://shop.example"),
        ];
        for request in kept {
            let request = request.body(Default::default()).unwrap();
            assert!(!forwarded.takes(&request), "{} {:?}", request.uri(), request.headers());
        }
        let lookalike =
            call("/shop.users.v1.UserServiceV2/GetUser", "application/grpc").body(Default::default()).unwrap();
        assert!(forwarded.takes(&lookalike), "a service named like one served here, but another");
    }
}
