//! `GET /healthz?service=<name>`, grpc-gateway's health endpoint
//! (`WithHealthzEndpoint`): the upstream that serves `<name>` is asked
//! `grpc.health.v1.Health/Check` for it, through the same breaker, bulkhead
//! and deadline as any call, and its answer becomes the HTTP one, as
//! grpc-gateway writes it: SERVING is 200 `{"status":"SERVING"}`;
//! NOT_SERVING or UNKNOWN is 503 and SERVICE_UNKNOWN 404, with the error
//! body; a service no upstream serves is 404 too. Without `service`, every
//! upstream's server as a whole (`""`) is asked, and all must serve.
//!
//! For a load balancer or a monitor that probes the services through the
//! gateway; the gateway's own probes are `/health/live` and `/health/ready`.
//! It needs no token, but it counts against the caller's rate limit: each
//! probe is a call upstream.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::response::{IntoResponse, Response};
use http::uri::PathAndQuery;
use prost::Message;
use resilience::{CallError, Upstream};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

use crate::Gateway;
use crate::error::{error_response, status_response};
use crate::guard::Denied;

const CHECK: PathAndQuery = PathAndQuery::from_static("/grpc.health.v1.Health/Check");

/// Answers a probe.
pub async fn handle(State(gateway): State<Arc<Gateway>>, request: http::Request<Body>) -> Response {
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|info| info.0);
    let identity = gateway.rate_limit.identity(None, peer, request.headers());
    let allowance = match gateway.rate_limit.check(identity) {
        Ok(allowance) => allowance,
        Err(limited) => {
            let denied = Denied::Limited(limited);
            let mut response = status_response(&denied.status(), &gateway.catalog().pool);
            response.headers_mut().extend(denied.headers());
            return response;
        }
    };
    let mut response = match service_asked(request.uri().query().unwrap_or_default()) {
        Err(why) => error_response(tonic::Code::InvalidArgument, &why, Vec::new()),
        Ok(Some(service)) => match gateway.upstreams.get(&service) {
            None => error_response(tonic::Code::NotFound, &format!("no upstream serves {service}"), Vec::new()),
            Some(upstream) => answer(&gateway, check(&upstream, &service).await),
        },
        Ok(None) => {
            let mut upstreams: Vec<Arc<Upstream>> = gateway.upstreams.services().map(|(_, u)| u.clone()).collect();
            upstreams.sort_by(|a, b| a.name.cmp(&b.name));
            upstreams.dedup_by(|a, b| Arc::ptr_eq(a, b));
            let checks = upstreams.iter().map(|upstream| check(upstream, ""));
            let outcomes = futures::future::join_all(checks).await;
            answer(&gateway, outcomes.into_iter().collect())
        }
    };
    if let Some(allowance) = allowance {
        allowance.write(response.headers_mut());
    }
    response
}

/// The `service` parameter of the query, if there is one.
fn service_asked(query: &str) -> Result<Option<String>, String> {
    let Some(raw) = query.split('&').find_map(|pair| pair.strip_prefix("service=")) else { return Ok(None) };
    crate::template::form_decode(raw)
        .map(|service| Some(service).filter(|s| !s.is_empty()))
        .ok_or_else(|| "malformed percent-encoding in query parameter service".to_owned())
}

/// Whether `upstream` serves `service` (`""`: its server as a whole), or
/// why not.
async fn check(upstream: &Upstream, service: &str) -> Result<(), tonic::Status> {
    let request = resilience::direct::Framed::encode(&[HealthCheckRequest { service: service.to_owned() }])?;
    let outcome = upstream
        .call_endpoint(CHECK.path(), true, None, |endpoint, remaining| {
            let request = request.clone();
            async move {
                let answer = endpoint.unary(&CHECK, http::HeaderMap::new(), &request, remaining).await?;
                let answer = HealthCheckResponse::decode(answer.message).map_err(|e| {
                    tonic::Status::internal(format!("the upstream's health answer does not decode: {e}"))
                })?;
                Ok(answer.status())
            }
        })
        .await;
    let named = if service.is_empty() { upstream.name.clone() } else { service.to_owned() };
    match outcome {
        Ok(ServingStatus::Serving) => Ok(()),
        Ok(ServingStatus::ServiceUnknown) => Err(tonic::Status::not_found(format!("{named} is SERVICE_UNKNOWN"))),
        Ok(other) => Err(tonic::Status::unavailable(format!("{named} is {}", other.as_str_name()))),
        Err(CallError::Status(status)) => Err(status),
        Err(CallError::Refused(refusal)) => Err(refusal.status(&upstream.name)),
    }
}

fn answer(gateway: &Gateway, outcome: Result<(), tonic::Status>) -> Response {
    match outcome {
        Ok(()) => axum::Json(serde_json::json!({ "status": ServingStatus::Serving.as_str_name() })).into_response(),
        Err(status) => status_response(&status, &gateway.catalog().pool),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_service_comes_from_the_query_form_decoded() {
        assert_eq!(service_asked(""), Ok(None));
        assert_eq!(service_asked("service="), Ok(None));
        assert_eq!(service_asked("x=1&service=echo.v1.EchoService"), Ok(Some("echo.v1.EchoService".to_owned())));
        assert_eq!(service_asked("service=a%2Eb+c"), Ok(Some("a.b c".to_owned())));
        assert!(service_asked("service=%zz").is_err());
    }
}
