//! Function-level authorization for every RPC of the contract, table-driven
//! from its `(meshwork.access.v1.access)` declarations: each kind of caller
//! (nobody, a customer, fulfilment staff, an administrator, a service) calls
//! every method through the gateway over gRPC, gRPC-Web and REST, and at
//! the service's own port, and is refused exactly where the contract says
//! (MESHWORK_AUTH=required, as in production). Each test runs against
//! `meshwork up` and against the four components started separately on
//! their production backends.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use platform::access::{AccessPolicy, Rule};
use serde_json::json;

use crate::harness::{Deployment, Platform, deploy};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Nobody,
    Customer,
    Fulfilment,
    Admin,
    /// Another service (its token; only at a service's own port).
    Service,
}

struct Callers {
    customer: String,
    fulfilment: String,
    admin: String,
    service_secret: String,
}

async fn login(platform: &Platform, name: &str) -> (String, String) {
    let body = json!({ "email": format!("{name}@example.com"), "name": name, "password": "correct horse" });
    let created = platform.rest("POST", "/users", Some(body.to_string().as_bytes())).await;
    let id = created.json()["id"].as_str().unwrap().to_owned();
    let body = json!({ "email": format!("{name}@example.com"), "password": "correct horse" });
    let login = platform.rest("POST", "/users/login", Some(body.to_string().as_bytes())).await.json();
    (id, login["accessToken"].as_str().unwrap().to_owned())
}

/// The platform with a customer, a member of staff given the fulfilment
/// role by the administrator through the API, and the administrator named
/// by email before the account existed.
async fn platform_and_callers(deployment: Deployment, test: &str) -> Option<(Platform, Callers)> {
    let settings = [("MESHWORK_AUTH", "required"), ("USERS_ADMINS", "boss@example.com")];
    let platform = deploy(deployment, test, &settings).await?;
    let (_, customer) = login(&platform, "customer").await;
    let (_, admin) = login(&platform, "boss").await;
    let (staff, _) = login(&platform, "staff").await;
    let grant = platform
        .rest_as(Some(&admin), "POST", &format!("/users/{staff}/roles"), Some(br#"{"role":"fulfilment"}"#))
        .await;
    assert_eq!(grant.status, 200, "{}", String::from_utf8_lossy(&grant.body));
    assert_eq!(grant.json()["roles"], json!(["fulfilment"]));
    // The role is in the next token.
    let (_, fulfilment) = {
        let body = json!({ "email": "staff@example.com", "password": "correct horse" });
        let login = platform.rest("POST", "/users/login", Some(body.to_string().as_bytes())).await.json();
        (staff, login["accessToken"].as_str().unwrap().to_owned())
    };
    let service_secret = std::fs::read_to_string(platform.data_dir.join("service-secret")).unwrap();
    Some((platform, Callers { customer, fulfilment, admin, service_secret }))
}

in_both_deployments!(
    every_rpc_admits_exactly_its_audience_through_every_protocol_and_port,
    every_rest_route_admits_exactly_its_audience,
    a_service_token_from_outside_is_dropped_at_the_gateway,
);

/// What the contract lets `who` do under `rule` at the gateway (`edge`) or
/// at the service's own port.
fn admitted(rule: &Rule, who: Who, edge: bool) -> bool {
    match (rule, who) {
        (Rule::Internal, Who::Service) => !edge,
        (Rule::Internal | Rule::Nobody, _) => false,
        (Rule::Public, _) => true,
        (_, Who::Nobody) => false,
        (Rule::User, _) => true,
        (Rule::Roles(_), Who::Admin) => true,
        (Rule::Roles(roles), Who::Fulfilment) => roles.iter().any(|r| r == "fulfilment"),
        (Rule::Roles(_), _) => false,
    }
}

/// Whether an answer is an access refusal (not the method's own answer to
/// an empty request, which may be any error but these).
fn refused(code: tonic::Code, message: &str) -> bool {
    matches!(code, tonic::Code::Unauthenticated | tonic::Code::PermissionDenied)
        && (message.contains("this method") || message.contains("is internal"))
}

fn metadata(callers: &Callers, who: Who) -> Vec<(&'static str, String)> {
    let bearer = |token: &str| vec![("authorization", format!("Bearer {token}"))];
    match who {
        Who::Nobody => Vec::new(),
        Who::Customer => bearer(&callers.customer),
        Who::Fulfilment => bearer(&callers.fulfilment),
        Who::Admin => bearer(&callers.admin),
        Who::Service => {
            let request = testkit::as_service_with(&callers.service_secret, "orders", ());
            let token = request.metadata().get("x-meshwork-service-token").unwrap().to_str().unwrap().to_owned();
            vec![("x-meshwork-service-token", token)]
        }
    }
}

/// Calls `path` with an empty message over native gRPC at `address`.
async fn grpc(
    platform: &Platform,
    address: std::net::SocketAddr,
    path: &str,
    headers: &[(&str, String)],
) -> tonic::Status {
    let mut client = tonic::client::Grpc::new(platform.channel(address).await);
    client.ready().await.unwrap();
    let mut request = tonic::Request::new(());
    for (name, value) in headers {
        let key = tonic::metadata::AsciiMetadataKey::from_bytes(name.as_bytes()).unwrap();
        request.metadata_mut().insert(key, value.parse().unwrap());
    }
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    match client.unary(request, path.parse().unwrap(), codec).await {
        Ok(_) => tonic::Status::ok(""),
        Err(status) => status,
    }
}

/// Calls `path` with an empty message over gRPC-Web (HTTP/1.1) at the gateway.
async fn grpc_web(platform: &Platform, path: &str, headers: &[(&str, String)]) -> tonic::Status {
    let client =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut request = http::Request::post(format!("http://{}{path}", platform.gateway))
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1");
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let empty_frame = Bytes::from_static(&[0, 0, 0, 0, 0]);
    let response = client.request(request.body(Full::new(empty_frame)).unwrap()).await.unwrap();
    let header_status = tonic::Status::from_header_map(response.headers());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    if let Some(status) = header_status {
        return status;
    }
    // The trailers are the last frame: flag 0x80, length, `name:value` lines.
    let text = String::from_utf8_lossy(&body).to_string();
    let field = |name: &str| {
        text.lines()
            .find_map(|line| line.trim().strip_prefix(name).map(|v| v.trim_start_matches(':').trim().to_owned()))
    };
    let code = field("grpc-status").and_then(|c| c.parse::<i32>().ok()).unwrap_or(0);
    let message = field("grpc-message").map(|m| m.replace("%20", " ")).unwrap_or_default();
    tonic::Status::new(tonic::Code::from_i32(code), message)
}

fn contract_methods() -> Vec<(String, Rule)> {
    let mut methods: Vec<(String, Rule)> =
        AccessPolicy::contract().methods().map(|(method, rule)| (method.to_owned(), rule.clone())).collect();
    methods.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(methods.len() >= 20, "{methods:?}");
    methods
}

/// `pkg.Service.Method` -> `/pkg.Service/Method`.
fn grpc_path(method: &str) -> String {
    let (service, name) = method.rsplit_once('.').unwrap();
    format!("/{service}/{name}")
}

async fn every_rpc_admits_exactly_its_audience_through_every_protocol_and_port(deployment: Deployment, test: &str) {
    let Some((platform, callers)) = platform_and_callers(deployment, test).await else { return };
    let mut failures = Vec::new();
    for (method, rule) in contract_methods() {
        let path = grpc_path(&method);
        let port = match method.split('.').nth(1).unwrap() {
            "users" => platform.users,
            "products" => platform.products,
            _ => platform.orders,
        };
        for who in [Who::Nobody, Who::Customer, Who::Fulfilment, Who::Admin, Who::Service] {
            let headers = metadata(&callers, who);
            let mut outcomes = vec![
                ("service port", admitted(&rule, who, false), grpc(&platform, port, &path, &headers).await),
                ("gateway gRPC", admitted(&rule, who, true), grpc(&platform, platform.gateway, &path, &headers).await),
                ("gateway gRPC-Web", admitted(&rule, who, true), grpc_web(&platform, &path, &headers).await),
            ];
            if who == Who::Service {
                // The gateway drops a service token: the caller is nobody there.
                outcomes[1].1 = admitted(&rule, Who::Nobody, true);
                outcomes[2].1 = admitted(&rule, Who::Nobody, true);
            }
            for (surface, expected, status) in outcomes {
                if refused(status.code(), status.message()) == expected {
                    failures.push(format!(
                        "{method} by {who:?} on {surface}: {:?} {}",
                        status.code(),
                        status.message()
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} wrong answers:\n{}", failures.len(), failures.join("\n"));
}

async fn every_rest_route_admits_exactly_its_audience(deployment: Deployment, test: &str) {
    let Some((platform, callers)) = platform_and_callers(deployment, test).await else { return };
    let pool = prost_reflect::DescriptorPool::decode(contract::FILE_DESCRIPTOR_SET).unwrap();
    let routes = gateway::routes::RouteTable::from_pool(&pool).unwrap();
    let policy = AccessPolicy::contract();
    let mut failures = Vec::new();
    let mut checked = 0;
    for route in routes.routes() {
        let method = format!("{}.{}", route.method.parent_service().full_name(), route.method.name());
        let rule = policy.rule(&method).unwrap().clone();
        // Every path parameter as `x`: the access check comes before the id's.
        let mut path = route.template.openapi_path();
        while let (Some(open), Some(close)) = (path.find('{'), path.find('}')) {
            path.replace_range(open..=close, "x");
        }
        let body = (route.http_method != http::Method::GET && route.http_method != http::Method::DELETE)
            .then_some(b"{}".as_slice());
        for who in [Who::Nobody, Who::Customer, Who::Fulfilment, Who::Admin] {
            let token = match who {
                Who::Customer => Some(callers.customer.as_str()),
                Who::Fulfilment => Some(callers.fulfilment.as_str()),
                Who::Admin => Some(callers.admin.as_str()),
                _ => None,
            };
            let reply = platform.rest_as(token, route.http_method.as_str(), &path, body).await;
            let message = reply.json()["message"].as_str().unwrap_or_default().to_owned();
            let code = match reply.status {
                401 => tonic::Code::Unauthenticated,
                403 => tonic::Code::PermissionDenied,
                _ => tonic::Code::Ok,
            };
            checked += 1;
            if refused(code, &message) == admitted(&rule, who, true) {
                failures
                    .push(format!("{} {path} ({method}) by {who:?}: {} {message}", route.http_method, reply.status));
            }
        }
    }
    assert!(checked >= 60, "only {checked} calls");
    assert!(failures.is_empty(), "{} wrong answers:\n{}", failures.len(), failures.join("\n"));
}

async fn a_service_token_from_outside_is_dropped_at_the_gateway(deployment: Deployment, test: &str) {
    let Some((platform, callers)) = platform_and_callers(deployment, test).await else { return };
    let forged = metadata(&callers, Who::Service);
    let status = grpc(&platform, platform.gateway, "/shop.products.v1.ProductService/ReserveStock", &forged).await;
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    // Even a genuine one does not make a gateway caller a service.
    let status = grpc(&platform, platform.gateway, "/shop.products.v1.ProductService/CreateProduct", &forged).await;
    assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
    // And a forged one at a service port is refused outright.
    let fake = vec![("x-meshwork-service-token", "forged".to_owned())];
    let status = grpc(&platform, platform.products, "/shop.products.v1.ProductService/ReserveStock", &fake).await;
    assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
}
