//! The contract crate's descriptor set: what reflection and the gateway read.

use prost_reflect::{DescriptorPool, ExtensionDescriptor, Value};

fn pool() -> DescriptorPool {
    DescriptorPool::decode(contract::FILE_DESCRIPTOR_SET).expect("descriptor set decodes")
}

fn http_extension(pool: &DescriptorPool) -> ExtensionDescriptor {
    pool.get_extension_by_name("google.api.http").expect("google.api.http is in the descriptor set")
}

fn http_rule(pool: &DescriptorPool, method: &str) -> prost_reflect::DynamicMessage {
    let (service, method) = method.rsplit_once('.').expect("qualified method");
    let service = pool.get_service_by_name(service).expect("service exists");
    let method = service.methods().find(|m| m.name() == method).expect("method exists");
    let options = method.options();
    let ext = http_extension(pool);
    assert!(options.has_extension(&ext), "{} has no google.api.http rule", method.full_name());
    match options.get_extension(&ext).into_owned() {
        Value::Message(rule) => rule,
        other => panic!("unexpected http rule value {other:?}"),
    }
}

fn string_field(rule: &prost_reflect::DynamicMessage, name: &str) -> String {
    rule.get_field_by_name(name).and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

#[test]
fn descriptor_set_keeps_google_api_http_rules() {
    let pool = pool();
    let create = http_rule(&pool, "shop.users.v1.UserService.CreateUser");
    assert_eq!(string_field(&create, "post"), "/users");
    assert_eq!(string_field(&create, "body"), "*");
    assert_eq!(string_field(&create, "response_body"), "user");

    let get = http_rule(&pool, "shop.products.v1.ProductService.GetProduct");
    assert_eq!(string_field(&get, "get"), "/products/{id}");

    let by_user = http_rule(&pool, "shop.orders.v1.OrderService.ListUserOrders");
    assert_eq!(string_field(&by_user, "get"), "/orders/user/{user_id}");
}

#[test]
fn template_rest_paths_are_all_bound() {
    let pool = pool();
    let ext = http_extension(&pool);
    let mut bound = Vec::new();
    for service in pool.services() {
        for method in service.methods() {
            let options = method.options();
            if !options.has_extension(&ext) {
                continue;
            }
            let Value::Message(rule) = options.get_extension(&ext).into_owned() else {
                continue;
            };
            for verb in ["get", "post", "put", "patch", "delete"] {
                let path = string_field(&rule, verb);
                if !path.is_empty() {
                    bound.push(format!("{} {path}", verb.to_uppercase()));
                }
            }
        }
    }
    for expected in [
        "POST /users",
        "GET /users",
        "GET /users/{id}",
        "POST /users/login",
        "POST /products",
        "GET /products",
        "GET /products/{id}",
        "GET /products/search",
        "POST /orders",
        "GET /orders",
        "GET /orders/{id}",
        "GET /orders/user/{user_id}",
    ] {
        assert!(bound.iter().any(|b| b == expected), "{expected} is not bound; bound: {bound:?}");
    }
}

#[test]
fn stock_reservation_is_grpc_only() {
    let pool = pool();
    let ext = http_extension(&pool);
    let service = pool.get_service_by_name("shop.products.v1.ProductService").unwrap();
    for name in ["ReserveStock", "ReleaseStock"] {
        let method = service.methods().find(|m| m.name() == name).unwrap();
        assert!(!method.options().has_extension(&ext), "{name} must not be reachable over REST");
    }
}

#[test]
fn error_detail_types_are_described_for_reflection_and_the_gateway() {
    let pool = pool();
    for name in ["google.rpc.Status", "google.rpc.BadRequest", "google.rpc.ErrorInfo", "google.rpc.RetryInfo"] {
        assert!(pool.get_message_by_name(name).is_some(), "{name} is missing from the descriptor set");
    }
}

/// The access lint: every RPC of the contract says who may call it
/// (`meshwork.access.v1.access` with an audience other than UNSPECIFIED), and
/// a role-gated one names its roles. An RPC added without one fails here.
#[test]
fn every_rpc_declares_who_may_call_it() {
    let pool = pool();
    let access = pool.get_extension_by_name("meshwork.access.v1.access").expect("the access option is in the set");
    let mut undeclared = Vec::new();
    let mut checked = 0;
    for service in pool.services().filter(|s| s.full_name().starts_with("shop.")) {
        for method in service.methods() {
            checked += 1;
            let options = method.options();
            let rule = options.has_extension(&access).then(|| options.get_extension(&access).into_owned());
            let Some(Value::Message(rule)) = rule else {
                undeclared.push(method.full_name().to_owned());
                continue;
            };
            let audience = rule.get_field_by_name("audience").and_then(|v| v.as_enum_number()).unwrap_or(0);
            let roles = rule.get_field_by_name("roles").and_then(|v| v.as_list().map(<[Value]>::len)).unwrap_or(0);
            // AUDIENCE_UNSPECIFIED, or AUDIENCE_ROLES without a role.
            if audience == 0 || (audience == 3 && roles == 0) {
                undeclared.push(method.full_name().to_owned());
            }
        }
    }
    assert!(checked >= 20, "only {checked} RPCs found");
    assert!(undeclared.is_empty(), "these RPCs do not say who may call them: {undeclared:?}");
}

#[test]
fn stock_reservation_is_internal() {
    let pool = pool();
    let access = pool.get_extension_by_name("meshwork.access.v1.access").unwrap();
    let service = pool.get_service_by_name("shop.products.v1.ProductService").unwrap();
    for name in ["ReserveStock", "ReleaseStock"] {
        let method = service.methods().find(|m| m.name() == name).unwrap();
        let Value::Message(rule) = method.options().get_extension(&access).into_owned() else { panic!("{name}") };
        assert_eq!(rule.get_field_by_name("audience").and_then(|v| v.as_enum_number()), Some(4), "{name}");
    }
}
