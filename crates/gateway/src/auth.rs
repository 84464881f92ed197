//! Authentication and authorization at the edge. Access tokens (EdDSA JWTs
//! from the users service) are verified against the users service's JWKS,
//! fetched through the gateway's own users upstream ([`UserTokens`]). Who
//! may call each method comes from the contract's `(meshwork.access.v1.access)`
//! options in the descriptor sets the gateway loads ([`AccessPolicy`]);
//! internal methods are never served here, whoever calls. The token itself
//! travels on to the service, which verifies it again: the gateway vouches
//! for nobody.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use platform::access::{AccessPolicy, Denial, Principal, Rule, TokenError, UserTokens};
use prost_reflect::DescriptorPool;

pub use platform::access::AuthMode;

use resilience::Upstream;

#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub mode: AuthMode,
    /// The `iss` tokens must carry (the users service's JWT_ISSUER).
    pub issuer: String,
    /// Methods (`pkg.Service.Method`) opened to everyone beyond the contract.
    pub public_methods: HashSet<String>,
    /// Methods closed at the gateway beyond the contract's internal ones.
    pub internal_methods: HashSet<String>,
    /// An unknown `kid` fetches the keys again, at most this often, so a
    /// flood of forged kids cannot flood the users service.
    pub key_refetch_interval: Duration,
}

impl AuthConfig {
    pub fn new(mode: AuthMode, issuer: impl Into<String>) -> Self {
        Self {
            mode,
            issuer: issuer.into(),
            public_methods: HashSet::new(),
            internal_methods: HashSet::new(),
            key_refetch_interval: Duration::from_secs(5),
        }
    }
}

/// Who is calling: verifies the tokens requests carry. Built once; what
/// each method admits is an [`Access`], built with every catalog.
pub struct Authenticator {
    mode: AuthMode,
    tokens: UserTokens,
    public_methods: HashSet<String>,
    internal_methods: HashSet<String>,
}

impl Authenticator {
    /// Keys come from `users`, the upstream serving the users service.
    pub fn new(config: &AuthConfig, users: Option<Arc<Upstream>>) -> Self {
        let jwks = users.map(platform::access::jwks_from_users);
        let tokens = UserTokens::new(config.issuer.clone(), jwks).refetch_interval(config.key_refetch_interval);
        Self {
            mode: config.mode,
            tokens,
            public_methods: config.public_methods.clone(),
            internal_methods: config.internal_methods.clone(),
        }
    }

    /// The rules of every method in `pool`, as the configuration widens or
    /// narrows them. A configured name that is no method in `pool`, or that
    /// would open an internal method, is an error; unless its service is
    /// one `learned` names (learned from reflection, maybe not yet), where
    /// such a name is skipped and an internal method stays internal.
    pub fn access(&self, pool: &DescriptorPool, learned: impl Fn(&str) -> bool) -> Result<Access, String> {
        let mut policy = AccessPolicy::from_pool(pool);
        for method in platform::access::undeclared_methods(pool) {
            // A service from another descriptor set that says nothing: signed-in users.
            if policy.rule(&method).is_none() {
                tracing::warn!(%method, "declares no (meshwork.access.v1.access); open to signed-in users");
                policy.set(method, Rule::User);
            }
        }
        let of_learned = |method: &str| method.rsplit_once('.').is_some_and(|(service, _)| learned(service));
        for method in &self.public_methods {
            match policy.rule(method) {
                Some(Rule::Internal) if of_learned(method) => {
                    tracing::error!(%method, "is internal and cannot be made public: it stays internal");
                }
                Some(Rule::Internal) => return Err(format!("{method} is internal and cannot be made public")),
                None if of_learned(method) => {}
                None => return Err(format!("{method} is not a method of any loaded service")),
                Some(_) => policy.set(method.clone(), Rule::Public),
            }
        }
        for method in &self.internal_methods {
            match policy.rule(method) {
                None if of_learned(method) => {}
                None => return Err(format!("{method} is not a method of any loaded service")),
                Some(_) => policy.set(method.clone(), Rule::Internal),
            }
        }
        Ok(Access { mode: self.mode, policy })
    }

    pub fn mode(&self) -> AuthMode {
        self.mode
    }

    /// Who the request's `Authorization` header proves, if it sent one;
    /// `gate` is asked before a signature is checked (see
    /// [`UserTokens::verify_gated`]).
    pub async fn authenticate<E: From<TokenError>>(
        &self,
        authorization: Option<&str>,
        gate: impl FnOnce() -> Result<(), E>,
    ) -> Result<Principal, E> {
        let Some(value) = authorization else { return Ok(Principal::Anonymous) };
        let token = platform::access::bearer_token(value)?;
        self.tokens.verify_gated(token, gate).await.map(Principal::User)
    }
}

/// Who may call each method of one catalog through the gateway.
#[derive(Debug)]
pub struct Access {
    mode: AuthMode,
    policy: AccessPolicy,
}

impl Access {
    /// Who may call `method` (`pkg.Service.Method`) here; `None` for a
    /// method of no loaded service.
    pub fn rule(&self, method: &str) -> Option<Rule> {
        self.policy.rule(method).cloned()
    }

    /// Whether `method` checks a password, so calls to it are limited per address.
    pub fn checks_secret(&self, method: &str) -> bool {
        self.policy.checks_secret(method)
    }

    /// Whether `principal` may call `method` (`pkg.Service.Method`) through
    /// the gateway. Internal methods: never.
    pub fn authorize(&self, method: &str, principal: &Principal) -> Result<(), Denial> {
        let rule = self.policy.rule(method).unwrap_or(&Rule::User);
        if *rule == Rule::Internal {
            return Err(Denial::Forbidden(format!("{method} is internal: it is not served through the gateway")));
        }
        rule.admits(principal, self.mode == AuthMode::Optional)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use platform::access::UserIdentity;

    fn authenticator(mode: AuthMode, config: impl FnOnce(&mut AuthConfig)) -> Result<Access, String> {
        let pool = DescriptorPool::decode(contract::FILE_DESCRIPTOR_SET).unwrap();
        let mut auth = AuthConfig::new(mode, "meshwork");
        config(&mut auth);
        Authenticator::new(&auth, None).access(&pool, |_| false)
    }

    fn user(roles: &[&str]) -> Principal {
        Principal::User(UserIdentity { id: "u1".into(), roles: roles.iter().map(|r| (*r).to_owned()).collect() })
    }

    #[test]
    fn the_contract_decides_and_internal_methods_are_never_served() {
        let auth = authenticator(AuthMode::Required, |_| {}).unwrap();
        let anonymous = Principal::Anonymous;
        assert_eq!(auth.authorize("shop.products.v1.ProductService.GetProduct", &anonymous), Ok(()));
        let refused = auth.authorize("shop.orders.v1.OrderService.CreateOrder", &anonymous).unwrap_err();
        assert!(matches!(refused, Denial::Unauthenticated(_)));
        assert_eq!(auth.authorize("shop.orders.v1.OrderService.CreateOrder", &user(&[])), Ok(()));
        let refused = auth.authorize("shop.products.v1.ProductService.CreateProduct", &user(&[])).unwrap_err();
        assert!(matches!(refused, Denial::Forbidden(_)));
        assert_eq!(auth.authorize("shop.products.v1.ProductService.CreateProduct", &user(&["admin"])), Ok(()));
        for principal in [anonymous, user(&["admin"]), Principal::Service("orders".into())] {
            let refused = auth.authorize("shop.products.v1.ProductService.ReserveStock", &principal).unwrap_err();
            assert!(matches!(refused, Denial::Forbidden(_)), "{principal:?}");
        }
        let optional = authenticator(AuthMode::Optional, |_| {}).unwrap();
        assert_eq!(optional.authorize("shop.orders.v1.OrderService.CreateOrder", &Principal::Anonymous), Ok(()));
        assert!(optional.authorize("shop.products.v1.ProductService.ReleaseStock", &Principal::Anonymous).is_err());
    }

    #[test]
    fn the_environment_widens_and_narrows_but_never_opens_an_internal_method() {
        let auth = authenticator(AuthMode::Required, |config| {
            config.public_methods.insert("shop.orders.v1.OrderService.GetOrder".into());
            config.internal_methods.insert("shop.users.v1.UserService.CreateUser".into());
        })
        .unwrap();
        assert_eq!(auth.authorize("shop.orders.v1.OrderService.GetOrder", &Principal::Anonymous), Ok(()));
        assert!(auth.authorize("shop.users.v1.UserService.CreateUser", &Principal::Anonymous).is_err());
        let refused = authenticator(AuthMode::Required, |config| {
            config.public_methods.insert("shop.products.v1.ProductService.ReserveStock".into());
        });
        assert!(refused.err().unwrap().contains("internal"));
        let unknown = authenticator(AuthMode::Required, |config| {
            config.public_methods.insert("shop.products.v1.ProductService.Nope".into());
        });
        assert!(unknown.err().unwrap().contains("not a method"));
    }

    #[test]
    fn names_of_a_service_still_to_learn_wait_for_it_and_never_open_an_internal_method() {
        let mut config = AuthConfig::new(AuthMode::Required, "meshwork");
        config.public_methods.insert("acme.greeter.v1.Greeter.Forget".into());
        config.public_methods.insert("acme.greeter.v1.Greeter.LeaveNote".into());
        let authenticator = Authenticator::new(&config, None);
        let contract = DescriptorPool::decode(contract::FILE_DESCRIPTOR_SET).unwrap();
        let to_learn = |service: &str| service == "acme.greeter.v1.Greeter";
        assert!(authenticator.access(&contract, to_learn).is_ok(), "not learned yet: the names wait");
        assert!(authenticator.access(&contract, |_| false).unwrap_err().contains("not a method"));

        let learned = crate::test_support::contract_and_greeter();
        let access = authenticator.access(&learned, to_learn).unwrap();
        assert_eq!(access.rule("acme.greeter.v1.Greeter.Forget"), Some(Rule::Internal), "stays internal");
        assert_eq!(access.rule("acme.greeter.v1.Greeter.LeaveNote"), Some(Rule::Public), "opened as configured");
        assert_eq!(access.rule("acme.greeter.v1.Greeter.SayHello"), Some(Rule::Public), "as it declares");
    }
}
