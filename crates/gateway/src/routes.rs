//! The routing table, built from the `google.api.http` rules in a
//! descriptor pool: no hand-written route per RPC. Each rule and each of its
//! `additional_bindings` becomes one route. Routes of services learned from
//! an upstream's reflection rank below the others and never take a path
//! that a loaded descriptor set routes: an upstream cannot claim `/users`.

use http::Method;
use prost_reflect::{DescriptorPool, DynamicMessage, MethodDescriptor, ServiceDescriptor, Value};

use crate::template::{Binding, EscapeError, Template, TemplateError};

/// Where the HTTP body goes in the request message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyRule {
    /// No body (GET, DELETE): everything unbound comes from the query.
    None,
    /// `body: "*"`: every field not bound by the path; no query parameters.
    All,
    /// `body: "field"`: that top-level field; the rest from the query.
    Field(String),
}

#[derive(Debug, Clone)]
pub struct Route {
    pub http_method: Method,
    pub template: Template,
    pub body: BodyRule,
    /// `response_body: "field"`: that field is the whole response body.
    pub response_body: Option<String>,
    pub method: MethodDescriptor,
    /// Built once, not per request (they were a measurable share of the
    /// gateway's allocations under `scripts/bench-peers`).
    pub names: RouteNames,
    /// The route's service was learned from its upstream's reflection.
    pub learned: bool,
    /// Its metric series, found once.
    pub(crate) series: crate::metrics::RouteSeries,
    /// How its answer is written straight from the wire, when the whole
    /// message is the body (see [`crate::wire_json`]).
    pub(crate) response_plan: Option<std::sync::Arc<crate::wire_json::Plan>>,
}

/// A route's names as each request needs them.
#[derive(Debug, Clone)]
pub struct RouteNames {
    /// `pkg.Service.Method`: what the access rules are keyed by.
    pub full_method: String,
    /// `/pkg.Service/Method`, the gRPC path of the RPC.
    pub grpc_path: http::uri::PathAndQuery,
    /// `GET /v1/users/{id}`: the span's name.
    pub span: String,
    /// The template, as the `route` label of the gateway's metrics.
    pub label: metrics::SharedString,
}

impl RouteNames {
    fn new(http_method: &Method, template: &Template, method: &MethodDescriptor) -> Self {
        let grpc_path = format!("/{}/{}", method.parent_service().full_name(), method.name());
        Self {
            full_method: method.full_name().to_owned(),
            grpc_path: http::uri::PathAndQuery::try_from(grpc_path).expect("proto names are valid URI paths"),
            span: format!("{http_method} {template}"),
            label: metrics::SharedString::from_shared(std::sync::Arc::from(template.to_string())),
        }
    }
}

impl Route {
    /// `/pkg.Service/Method`, the gRPC path of the RPC.
    pub fn grpc_path(&self) -> &str {
        self.names.grpc_path.as_str()
    }

    /// Whether a failed call may be repeated: GET bindings, or RPCs the proto
    /// marks idempotent.
    pub fn is_idempotent(&self) -> bool {
        use prost_types::method_options::IdempotencyLevel;
        let level = self.method.method_descriptor_proto().options.as_ref().map(|o| o.idempotency_level());
        self.http_method == Method::GET
            || matches!(level, Some(IdempotencyLevel::NoSideEffects | IdempotencyLevel::Idempotent))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error("{method}: {source}")]
    Template { method: String, source: TemplateError },
    #[error("{method}: {reason}")]
    Rule { method: String, reason: String },
}

/// The outcome of looking a request up.
pub enum Lookup<'a> {
    Found {
        route: &'a Route,
        bindings: Vec<Binding>,
    },
    /// The path is known, not with this method; the methods it has.
    WrongMethod(Vec<Method>),
    NotFound,
    BadEscape(EscapeError),
}

#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    routes: Vec<Route>,
}

impl RouteTable {
    /// Every `google.api.http` rule of every service in `pool`.
    pub fn from_pool(pool: &DescriptorPool) -> Result<Self, RouteError> {
        Self::build(pool, |_| false)
    }

    /// Every rule of every service in `pool`, those of the services
    /// `learned` picks out ranked below the rest. A learned route whose
    /// path another route already takes is left out (and logged).
    pub fn build(pool: &DescriptorPool, learned: impl Fn(&ServiceDescriptor) -> bool) -> Result<Self, RouteError> {
        let Some(extension) = pool.get_extension_by_name("google.api.http") else {
            return Ok(Self::default());
        };
        let mut routes = Vec::new();
        for service in pool.services() {
            let learned = learned(&service);
            for method in service.methods() {
                let options = method.options();
                if !options.has_extension(&extension) {
                    continue;
                }
                let Value::Message(rule) = options.get_extension(&extension).into_owned() else { continue };
                routes.push(route(&method, &rule, learned)?);
                if let Some(Value::List(extra)) = rule.get_field_by_name("additional_bindings").map(|v| v.into_owned())
                {
                    for binding in extra {
                        if let Value::Message(binding) = binding {
                            routes.push(route(&method, &binding, learned)?);
                        }
                    }
                }
            }
        }
        // Most specific first: `/products/search` before `/products/{id}`;
        // and every loaded route before the learned ones.
        routes.sort_by_key(|route| std::cmp::Reverse(route.template.specificity()));
        let (loaded, learned): (Vec<Route>, Vec<Route>) = routes.into_iter().partition(|route| !route.learned);
        let mut table = Self { routes: loaded };
        for route in learned {
            let sample = route.template.sample_path();
            match table.routes.iter().find(|taken| !taken.learned && taken.template.matches(&sample).is_some()) {
                Some(taken) => tracing::warn!(
                    method = route.names.full_method,
                    path = %route.template,
                    taken_by = taken.names.full_method,
                    "a learned route's path is routed to another service: left out"
                ),
                None => table.routes.push(route),
            }
        }
        Ok(table)
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    pub fn lookup(&self, method: &Method, path: &str) -> Lookup<'_> {
        let Some(parts) = crate::template::split_path(path) else { return Lookup::NotFound };
        let mut allowed = Vec::new();
        // A loaded route matched the path with another method: the path is
        // theirs, and the learned routes (all after it) are not tried.
        let mut taken = false;
        for route in &self.routes {
            if route.learned && taken {
                break;
            }
            match route.template.matches_parts(&parts) {
                None => {}
                Some(Err(error)) => return Lookup::BadEscape(error),
                Some(Ok(bindings)) if route.http_method == *method => return Lookup::Found { route, bindings },
                Some(Ok(_)) => {
                    taken |= !route.learned;
                    if !allowed.contains(&route.http_method) {
                        allowed.push(route.http_method.clone());
                    }
                }
            }
        }
        if allowed.is_empty() { Lookup::NotFound } else { Lookup::WrongMethod(allowed) }
    }
}

fn string_field(rule: &DynamicMessage, name: &str) -> String {
    rule.get_field_by_name(name).and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

fn route(method: &MethodDescriptor, rule: &DynamicMessage, learned: bool) -> Result<Route, RouteError> {
    let name = method.full_name().to_owned();
    let rule_error = |reason: String| RouteError::Rule { method: name.clone(), reason };
    let mut pattern = None;
    for (field, http_method) in [
        ("get", Method::GET),
        ("put", Method::PUT),
        ("post", Method::POST),
        ("delete", Method::DELETE),
        ("patch", Method::PATCH),
    ] {
        let path = string_field(rule, field);
        if !path.is_empty() {
            pattern = Some((http_method, path));
        }
    }
    if pattern.is_none()
        && let Some(Value::Message(custom)) = rule.get_field_by_name("custom").map(|v| v.into_owned())
    {
        let kind = string_field(&custom, "kind");
        let method =
            Method::from_bytes(kind.as_bytes()).map_err(|_| rule_error(format!("bad custom method {kind:?}")))?;
        pattern = Some((method, string_field(&custom, "path")));
    }
    let (http_method, path) = pattern.ok_or_else(|| rule_error("the http rule has no pattern".to_owned()))?;
    let template = Template::parse(&path).map_err(|source| RouteError::Template { method: name.clone(), source })?;

    let input = method.input();
    for field_path in template.bound_fields() {
        check_field_path(&input, field_path).map_err(&rule_error)?;
    }
    let body = match string_field(rule, "body").as_str() {
        "" => BodyRule::None,
        "*" => BodyRule::All,
        field => {
            if input.get_field_by_name(field).is_none() {
                return Err(rule_error(format!("body field {field} is not in {}", input.full_name())));
            }
            BodyRule::Field(field.to_owned())
        }
    };
    let response_body = Some(string_field(rule, "response_body")).filter(|f| !f.is_empty());
    if let Some(field) = &response_body
        && method.output().get_field_by_name(field).is_none()
    {
        return Err(rule_error(format!("response_body field {field} is not in {}", method.output().full_name())));
    }
    let names = RouteNames::new(&http_method, &template, method);
    let response_plan = if response_body.is_none() { crate::wire_json::Plan::of(&method.output()) } else { None };
    Ok(Route {
        http_method,
        template,
        body,
        response_body,
        method: method.clone(),
        names,
        learned,
        series: Default::default(),
        response_plan,
    })
}

/// A path variable must name a singular, non-message field (through
/// singular message fields).
fn check_field_path(message: &prost_reflect::MessageDescriptor, path: &[String]) -> Result<(), String> {
    let mut current = message.clone();
    for (index, part) in path.iter().enumerate() {
        let field = current
            .get_field_by_name(part)
            .ok_or_else(|| format!("path variable {} is not a field of {}", path.join("."), message.full_name()))?;
        if field.is_list() || field.is_map() {
            return Err(format!("path variable {} is repeated", path.join(".")));
        }
        let last = index == path.len() - 1;
        match field.kind() {
            prost_reflect::Kind::Message(inner) if !last => current = inner,
            prost_reflect::Kind::Message(_) => return Err(format!("path variable {} is a message", path.join("."))),
            _ if !last => return Err(format!("{part} in {} is not a message", path.join("."))),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> RouteTable {
        let pool = DescriptorPool::decode(contract::FILE_DESCRIPTOR_SET).unwrap();
        RouteTable::from_pool(&pool).unwrap()
    }

    fn found(table: &RouteTable, method: Method, path: &str) -> (String, Vec<(String, String)>) {
        match table.lookup(&method, path) {
            Lookup::Found { route, bindings } => {
                (route.grpc_path().to_owned(), bindings.into_iter().map(|(f, v)| (f.join("."), v)).collect())
            }
            _ => panic!("{method} {path} did not match"),
        }
    }

    #[test]
    fn the_shops_rest_paths_route_to_their_rpcs() {
        let table = table();
        assert_eq!(found(&table, Method::POST, "/users").0, "/shop.users.v1.UserService/CreateUser");
        assert_eq!(found(&table, Method::POST, "/users/login").0, "/shop.users.v1.UserService/Login");
        assert_eq!(found(&table, Method::GET, "/products/search").0, "/shop.products.v1.ProductService/SearchProducts");
        assert_eq!(
            found(&table, Method::GET, "/products/prod-123"),
            ("/shop.products.v1.ProductService/GetProduct".to_owned(), vec![("id".to_owned(), "prod-123".to_owned())])
        );
        assert_eq!(found(&table, Method::POST, "/orders/o1:cancel").0, "/shop.orders.v1.OrderService/CancelOrder");
        assert_eq!(found(&table, Method::GET, "/orders/user/u1").0, "/shop.orders.v1.OrderService/ListUserOrders");
        assert_eq!(found(&table, Method::GET, "/.well-known/jwks.json").0, "/shop.users.v1.UserService/GetJwks");
    }

    #[test]
    fn unknown_paths_and_wrong_methods_are_told_apart() {
        let table = table();
        assert!(matches!(table.lookup(&Method::GET, "/nope"), Lookup::NotFound));
        match table.lookup(&Method::PUT, "/users") {
            Lookup::WrongMethod(allowed) => assert_eq!(allowed, [Method::POST, Method::GET]),
            _ => panic!("PUT /users is a known path with the wrong method"),
        }
    }

    #[test]
    fn idempotency_comes_from_the_method_or_the_proto() {
        let table = table();
        let route = |method, path| match table.lookup(&method, path) {
            Lookup::Found { route, .. } => route.is_idempotent(),
            _ => panic!(),
        };
        assert!(route(Method::GET, "/users/1"));
        assert!(route(Method::DELETE, "/users/1"), "DeleteUser is IDEMPOTENT in the proto");
        assert!(!route(Method::POST, "/orders"));
    }

    /// With the greeter, which claims `/products/{name}`, as learned.
    fn with_learned_greeter() -> RouteTable {
        let pool = crate::test_support::contract_and_greeter();
        RouteTable::build(&pool, |service| service.package_name() == "acme.greeter.v1").unwrap()
    }

    #[test]
    fn a_learned_service_never_takes_a_loaded_path() {
        let table = with_learned_greeter();
        assert_eq!(found(&table, Method::GET, "/products/p1").0, "/shop.products.v1.ProductService/GetProduct");
        assert!(table.routes().iter().all(|route| route.method.name() != "Impostor"), "left out of the table");
        match table.lookup(&Method::GET, "/v1/greetings/Ada") {
            Lookup::Found { route, .. } => assert!(route.learned && route.method.name() == "SayHello"),
            _ => panic!("the learned route is served"),
        }
        // A path the contract has, with a method only a learned route would have: still the contract's.
        match table.lookup(&Method::DELETE, "/products") {
            Lookup::WrongMethod(allowed) => assert!(!allowed.is_empty()),
            _ => panic!("DELETE /products is the contract's path with the wrong method"),
        }
    }
}
