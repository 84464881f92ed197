//! The contract's access declarations, read from a descriptor pool.

use std::collections::{BTreeSet, HashMap};
use std::sync::LazyLock;

use prost_reflect::{DescriptorPool, DynamicMessage, MethodDescriptor, Value};

use super::principal::Principal;

/// The role that holds every other role.
pub const ADMIN_ROLE: &str = "admin";

/// The method option that declares who may call an RPC.
const ACCESS_EXTENSION: &str = "meshwork.access.v1.access";

/// Who may call one method (`meshwork.access.v1.Audience`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    Public,
    /// Any signed-in user, and other services.
    User,
    /// Signed-in users with one of these roles (administrators always).
    Roles(Vec<String>),
    /// Other services only; never through the gateway.
    Internal,
    /// Declared as AUDIENCE_UNSPECIFIED: nobody.
    Nobody,
}

/// Why a call was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denial {
    /// No credential, or one that does not verify: 401 / UNAUTHENTICATED.
    #[error("{0}")]
    Unauthenticated(String),
    /// A verified caller without the right: 403 / PERMISSION_DENIED.
    #[error("{0}")]
    Forbidden(String),
}

impl Denial {
    pub fn status(&self) -> tonic::Status {
        match self {
            Self::Unauthenticated(message) => tonic::Status::unauthenticated(message.clone()),
            Self::Forbidden(message) => tonic::Status::permission_denied(message.clone()),
        }
    }
}

impl Rule {
    /// Whether `principal` may call a method under this rule. `open` is
    /// `MESHWORK_AUTH=optional`: an anonymous caller is then let through
    /// everything but internal methods.
    pub fn admits(&self, principal: &Principal, open: bool) -> Result<(), Denial> {
        let sign_in = || Denial::Unauthenticated("this method needs a signed-in caller: send a bearer token".into());
        match (self, principal) {
            (Self::Public, _) => Ok(()),
            (Self::Internal, Principal::Service(_)) => Ok(()),
            (Self::Internal, _) => {
                Err(Denial::Forbidden("this method is internal: only meshwork services may call it".into()))
            }
            (Self::Nobody, _) => {
                Err(Denial::Forbidden("this method declares no audience, so nobody may call it".into()))
            }
            (_, Principal::Anonymous) if open => Ok(()),
            (_, Principal::Anonymous) => Err(sign_in()),
            (Self::User, Principal::User(_) | Principal::Service(_)) => Ok(()),
            (Self::Roles(roles), Principal::User(user)) if roles.iter().any(|role| user.has_role(role)) => Ok(()),
            (Self::Roles(roles), _) => {
                Err(Denial::Forbidden(format!("this method is for callers with the role {}", roles.join(" or "))))
            }
        }
    }
}

/// Every method's rule, by full name (`pkg.Service.Method`).
#[derive(Debug, Clone, Default)]
pub struct AccessPolicy {
    /// Hashed with foldhash, not SipHash: the keys are the contract's, fixed
    /// at start, so a caller's method name can only miss them, never crowd
    /// them (SipHash took 220-230 instructions a call, callgrind).
    rules: HashMap<String, Rule, foldhash::fast::RandomState>,
    /// Methods that check a guessable secret (`checks_secret`).
    secret_checks: BTreeSet<String>,
}

impl AccessPolicy {
    /// The rules declared in `pool`. Methods with no declaration have no rule.
    pub fn from_pool(pool: &DescriptorPool) -> Self {
        let methods: Vec<MethodDescriptor> =
            pool.services().flat_map(|service| service.methods().collect::<Vec<_>>()).collect();
        let rules = methods
            .iter()
            .filter_map(|method| declared_rule(pool, method).map(|rule| (method.full_name().to_owned(), rule)))
            .collect();
        let secret_checks = methods
            .iter()
            .filter(|method| declared_access(pool, method).is_some_and(|access| flag(&access, "checks_secret")))
            .map(|method| method.full_name().to_owned())
            .collect();
        Self { rules, secret_checks }
    }

    /// Whether `method` checks a secret a caller could guess (a password).
    pub fn checks_secret(&self, method: &str) -> bool {
        self.secret_checks.contains(method)
    }

    /// The compiled-in contract's rules.
    pub fn contract() -> &'static Self {
        static CONTRACT: LazyLock<AccessPolicy> = LazyLock::new(|| {
            let pool =
                DescriptorPool::decode(contract::FILE_DESCRIPTOR_SET).expect("the contract's descriptors decode");
            AccessPolicy::from_pool(&pool)
        });
        &CONTRACT
    }

    /// The rule of `method` (`pkg.Service.Method`), if it declares one.
    pub fn rule(&self, method: &str) -> Option<&Rule> {
        self.rules.get(method)
    }

    /// The rule of the method a gRPC request's path (`/pkg.Service/Method`)
    /// names, if it declares one. The name is put together on the stack:
    /// every call a server serves looks its rule up.
    pub fn rule_for_path(&self, path: &str) -> Option<&Rule> {
        let (service, method) = path.strip_prefix('/')?.split_once('/')?;
        let mut name = [0u8; 256];
        let length = service.len() + 1 + method.len();
        if length > name.len() {
            return self.rule(&format!("{service}.{method}"));
        }
        name[..service.len()].copy_from_slice(service.as_bytes());
        name[service.len()] = b'.';
        name[service.len() + 1..length].copy_from_slice(method.as_bytes());
        self.rule(std::str::from_utf8(&name[..length]).ok()?)
    }

    /// Every method with a rule.
    pub fn methods(&self) -> impl Iterator<Item = (&str, &Rule)> {
        self.rules.iter().map(|(method, rule)| (method.as_str(), rule))
    }

    /// Every role some rule names, and `admin`: the roles an account can hold.
    pub fn roles(&self) -> BTreeSet<String> {
        let mut roles: BTreeSet<String> = self
            .rules
            .values()
            .filter_map(|rule| match rule {
                Rule::Roles(roles) => Some(roles.clone()),
                _ => None,
            })
            .flatten()
            .collect();
        roles.insert(ADMIN_ROLE.to_owned());
        roles
    }

    /// Overrides (or sets) one method's rule.
    pub fn set(&mut self, method: impl Into<String>, rule: Rule) {
        self.rules.insert(method.into(), rule);
    }
}

/// The methods of `pool` that declare no audience: the contract's lint.
pub fn undeclared_methods(pool: &DescriptorPool) -> Vec<String> {
    pool.services()
        .flat_map(|service| service.methods().collect::<Vec<_>>())
        .filter(|method| !matches!(declared_rule(pool, method), Some(rule) if rule != Rule::Nobody))
        .map(|method| method.full_name().to_owned())
        .collect()
}

/// The method's `meshwork.access.v1.Access` option, if it has one.
fn declared_access(pool: &DescriptorPool, method: &MethodDescriptor) -> Option<DynamicMessage> {
    let extension = pool.get_extension_by_name(ACCESS_EXTENSION)?;
    let options = method.options();
    if !options.has_extension(&extension) {
        return None;
    }
    match options.get_extension(&extension).into_owned() {
        Value::Message(access) => Some(access),
        _ => None,
    }
}

fn flag(access: &DynamicMessage, field: &str) -> bool {
    access.get_field_by_name(field).and_then(|value| value.as_bool()).unwrap_or(false)
}

fn declared_rule(pool: &DescriptorPool, method: &MethodDescriptor) -> Option<Rule> {
    let access = declared_access(pool, method)?;
    let audience = access.get_field_by_name("audience").and_then(|v| v.as_enum_number()).unwrap_or(0);
    let roles = access
        .get_field_by_name("roles")
        .and_then(|v| v.as_list().map(|list| list.iter().filter_map(|r| r.as_str().map(str::to_owned)).collect()))
        .unwrap_or_default();
    Some(match audience {
        1 => Rule::Public,
        2 => Rule::User,
        3 => Rule::Roles(roles),
        4 => Rule::Internal,
        _ => Rule::Nobody,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::UserIdentity;

    fn user(roles: &[&str]) -> Principal {
        Principal::User(UserIdentity { id: "u1".into(), roles: roles.iter().map(|r| (*r).to_owned()).collect() })
    }

    #[test]
    fn the_contract_declares_the_shops_rules() {
        let policy = AccessPolicy::contract();
        let rule = |method: &str| policy.rule(method).cloned();
        assert_eq!(rule("shop.users.v1.UserService.Login"), Some(Rule::Public));
        assert_eq!(rule("shop.orders.v1.OrderService.CreateOrder"), Some(Rule::User));
        assert_eq!(rule("shop.products.v1.ProductService.CreateProduct"), Some(Rule::Roles(vec!["admin".into()])));
        assert_eq!(rule("shop.products.v1.ProductService.ReserveStock"), Some(Rule::Internal));
        assert_eq!(rule("shop.orders.v1.OrderService.ShipOrder"), Some(Rule::Roles(vec!["fulfilment".into()])));
        assert_eq!(policy.roles().into_iter().collect::<Vec<_>>(), ["admin", "fulfilment"]);
        let secret_checks: Vec<&str> = policy.methods().map(|(m, _)| m).filter(|m| policy.checks_secret(m)).collect();
        assert_eq!(secret_checks, ["shop.users.v1.UserService.Login"]);
    }

    #[test]
    fn a_request_path_finds_the_rule_of_the_method_it_names() {
        let policy = AccessPolicy::contract();
        for (method, rule) in policy.methods() {
            let (service, name) = method.rsplit_once('.').unwrap();
            assert_eq!(policy.rule_for_path(&format!("/{service}/{name}")), Some(rule), "{method}");
        }
        for path in ["", "/", "shop.users.v1.UserService/Login", "/shop.users.v1.UserService.Login", "/a/b"] {
            assert_eq!(policy.rule_for_path(path), None, "{path:?}");
        }
        let mut long = AccessPolicy::default();
        let service = format!("acme.{}.Greeter", "v".repeat(300));
        long.set(format!("{service}.SayHello"), Rule::Public);
        assert_eq!(
            long.rule_for_path(&format!("/{service}/SayHello")),
            Some(&Rule::Public),
            "longer than the stack name"
        );
    }

    #[test]
    fn every_rule_admits_exactly_its_audience() {
        let service = Principal::Service("orders".into());
        let roles = Rule::Roles(vec!["fulfilment".into()]);
        let cases = [
            (Rule::Public, Principal::Anonymous, true),
            (Rule::User, Principal::Anonymous, false),
            (Rule::User, user(&[]), true),
            (Rule::User, service.clone(), true),
            (roles.clone(), user(&[]), false),
            (roles.clone(), user(&["fulfilment"]), true),
            (roles.clone(), user(&["admin"]), true),
            (roles.clone(), service.clone(), false),
            (roles.clone(), Principal::Anonymous, false),
            (Rule::Internal, user(&["admin"]), false),
            (Rule::Internal, Principal::Anonymous, false),
            (Rule::Internal, service.clone(), true),
            (Rule::Nobody, service, false),
        ];
        for (rule, principal, admitted) in cases {
            assert_eq!(rule.admits(&principal, false).is_ok(), admitted, "{rule:?} {principal:?}");
        }
    }

    #[test]
    fn optional_auth_trusts_anonymous_callers_but_never_with_internal_methods() {
        assert!(Rule::Roles(vec!["admin".into()]).admits(&Principal::Anonymous, true).is_ok());
        assert!(Rule::Internal.admits(&Principal::Anonymous, true).is_err());
        // A signed-in user is still held to the rule.
        assert!(Rule::Roles(vec!["admin".into()]).admits(&user(&[]), true).is_err());
    }
}
