//! Authentication at the edge: access tokens (EdDSA JWTs from the users
//! service) are verified against the users service's JWKS, fetched through
//! the gateway's own users upstream, cached, and fetched again when a token
//! names a key the cache does not know (a rotated key). Then a per-method
//! policy: public methods need no token; the rest need one unless auth is
//! optional (`meshwork up`). The verified subject reaches the services as
//! `x-user-id` metadata, which clients can never set themselves.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use contract::users::GetJwksRequest;
use contract::users::user_service_client::UserServiceClient;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::upstream::{CallError, Upstream};

/// The metadata key that carries the verified subject to the services.
pub use contract::USER_ID_METADATA;

/// The users service: the only source of the keys that sign tokens.
const USERS_SERVICE: &str = "shop.users.v1.UserService";

/// Methods anyone may call without a token (DESIGN §6): registering,
/// logging in, the keys, and reading the catalog.
pub const DEFAULT_PUBLIC_METHODS: &[&str] = &[
    "shop.users.v1.UserService.CreateUser",
    "shop.users.v1.UserService.Login",
    "shop.users.v1.UserService.GetJwks",
    "shop.products.v1.ProductService.GetProduct",
    "shop.products.v1.ProductService.ListProducts",
    "shop.products.v1.ProductService.SearchProducts",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// Every non-public method needs a valid token.
    Required,
    /// Tokens are verified when sent, but none is needed (`meshwork up`).
    Optional,
}

impl std::str::FromStr for AuthMode {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "required" => Ok(Self::Required),
            "optional" => Ok(Self::Optional),
            other => Err(format!("expected required or optional, not {other:?}")),
        }
    }
}

#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub mode: AuthMode,
    /// The `iss` tokens must carry (the users service's JWT_ISSUER).
    pub issuer: String,
    /// Full method names (`pkg.Service.Method`) that need no token.
    pub public_methods: HashSet<String>,
    /// An unknown `kid` fetches the keys again, at most this often, so a
    /// flood of forged kids cannot flood the users service.
    pub key_refetch_interval: Duration,
}

impl AuthConfig {
    pub fn new(mode: AuthMode, issuer: impl Into<String>) -> Self {
        Self {
            mode,
            issuer: issuer.into(),
            public_methods: DEFAULT_PUBLIC_METHODS.iter().map(|m| (*m).to_owned()).collect(),
            key_refetch_interval: Duration::from_secs(5),
        }
    }
}

/// Why a request was refused; each maps to 401 (or UNAUTHENTICATED).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("this method needs a bearer token")]
    Missing,
    #[error("the Authorization header must be `Bearer <token>`")]
    Malformed,
    #[error("invalid token: {0}")]
    Invalid(String),
    #[error("token signing keys are unavailable: {0}")]
    KeysUnavailable(String),
}

impl AuthError {
    pub fn status(&self) -> tonic::Status {
        match self {
            Self::KeysUnavailable(_) => tonic::Status::unavailable(self.to_string()),
            _ => tonic::Status::unauthenticated(self.to_string()),
        }
    }
}

#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
}

pub struct Authenticator {
    config: AuthConfig,
    users: Option<Arc<Upstream>>,
    keys: RwLock<HashMap<String, DecodingKey>>,
    /// When the keys were last fetched (see `key_refetch_interval`).
    last_fetch: Mutex<Option<Instant>>,
}

impl Authenticator {
    /// `users` is the upstream serving the users service, where the keys live.
    pub fn new(config: AuthConfig, users: Option<Arc<Upstream>>) -> Self {
        Self { config, users, keys: RwLock::new(HashMap::new()), last_fetch: Mutex::new(None) }
    }

    pub fn mode(&self) -> AuthMode {
        self.config.mode
    }

    /// The verified subject of the request's bearer token, if it sent one.
    pub async fn authenticate(&self, authorization: Option<&str>) -> Result<Option<String>, AuthError> {
        let Some(value) = authorization else { return Ok(None) };
        let token =
            value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")).ok_or(AuthError::Malformed)?;
        let header = jsonwebtoken::decode_header(token.trim()).map_err(|e| AuthError::Invalid(e.to_string()))?;
        if header.alg != Algorithm::EdDSA {
            return Err(AuthError::Invalid(format!("algorithm {:?} is not accepted", header.alg)));
        }
        let kid = header.kid.ok_or_else(|| AuthError::Invalid("no key id (kid)".to_owned()))?;
        let key = self.key(&kid).await?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.leeway = 5;
        let claims = jsonwebtoken::decode::<Claims>(token.trim(), &key, &validation)
            .map_err(|e| AuthError::Invalid(e.to_string()))?
            .claims;
        Ok(Some(claims.sub))
    }

    /// Whether `method` (`pkg.Service.Method`) may be called with `subject`.
    pub fn authorize(&self, method: &str, subject: Option<&str>) -> Result<(), AuthError> {
        if subject.is_some() || self.config.mode == AuthMode::Optional || self.config.public_methods.contains(method) {
            Ok(())
        } else {
            Err(AuthError::Missing)
        }
    }

    async fn key(&self, kid: &str) -> Result<DecodingKey, AuthError> {
        if let Some(key) = self.keys.read().expect("keys lock").get(kid) {
            return Ok(key.clone());
        }
        let mut last_fetch = self.last_fetch.lock().await;
        // Another request may have fetched while this one waited.
        if let Some(key) = self.keys.read().expect("keys lock").get(kid) {
            return Ok(key.clone());
        }
        if last_fetch.is_some_and(|at| at.elapsed() < self.config.key_refetch_interval) {
            return Err(AuthError::Invalid(format!("unknown key id {kid}")));
        }
        let fetched = self.fetch().await?;
        *last_fetch = Some(Instant::now());
        let mut keys = self.keys.write().expect("keys lock");
        *keys = fetched;
        keys.get(kid).cloned().ok_or_else(|| AuthError::Invalid(format!("unknown key id {kid}")))
    }

    async fn fetch(&self) -> Result<HashMap<String, DecodingKey>, AuthError> {
        let users = self
            .users
            .as_ref()
            .ok_or_else(|| AuthError::KeysUnavailable(format!("no upstream for {USERS_SERVICE}")))?;
        let response = users
            .call(true, None, |channel, remaining| async move {
                let mut request = tonic::Request::new(GetJwksRequest {});
                request.set_timeout(remaining);
                UserServiceClient::new(channel).get_jwks(request).await
            })
            .await;
        let jwks = match response {
            Ok(response) => response.into_inner(),
            Err(CallError::Status(status)) => return Err(AuthError::KeysUnavailable(status.message().to_owned())),
            Err(CallError::Refused(refusal)) => {
                return Err(AuthError::KeysUnavailable(refusal.status(&users.name).message().to_owned()));
            }
        };
        let mut keys = HashMap::new();
        for key in jwks.keys {
            if key.kty == "OKP"
                && key.crv.as_deref() == Some("Ed25519")
                && let Some(x) = &key.x
                && let Ok(decoding) = DecodingKey::from_ed_components(x)
            {
                keys.insert(key.kid.clone(), decoding);
            }
        }
        tracing::info!(keys = keys.len(), "token signing keys fetched");
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_methods_need_no_token_and_the_rest_do() {
        let auth = Authenticator::new(AuthConfig::new(AuthMode::Required, "meshwork"), None);
        assert_eq!(auth.authorize("shop.products.v1.ProductService.GetProduct", None), Ok(()));
        assert_eq!(auth.authorize("shop.orders.v1.OrderService.CreateOrder", None), Err(AuthError::Missing));
        assert_eq!(auth.authorize("shop.orders.v1.OrderService.CreateOrder", Some("u1")), Ok(()));
        let optional = Authenticator::new(AuthConfig::new(AuthMode::Optional, "meshwork"), None);
        assert_eq!(optional.authorize("shop.orders.v1.OrderService.CreateOrder", None), Ok(()));
    }

    #[tokio::test]
    async fn malformed_headers_and_foreign_algorithms_are_refused_before_any_key_lookup() {
        let auth = Authenticator::new(AuthConfig::new(AuthMode::Required, "meshwork"), None);
        assert_eq!(auth.authenticate(None).await, Ok(None));
        assert_eq!(auth.authenticate(Some("Basic abc")).await, Err(AuthError::Malformed));
        assert!(matches!(auth.authenticate(Some("Bearer not-a-jwt")).await, Err(AuthError::Invalid(_))));
        // {"alg":"none","typ":"JWT"} . {"sub":"u1"} . (no signature)
        let none = "Bearer eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ1MSJ9.";
        assert!(matches!(auth.authenticate(Some(none)).await, Err(AuthError::Invalid(_))));
        // {"alg":"HS256","typ":"JWT","kid":"k"}: a shared-secret algorithm is refused.
        let hs256 = "Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6ImsifQ.eyJzdWIiOiJ1MSJ9.c2ln";
        let refused = auth.authenticate(Some(hs256)).await.unwrap_err();
        assert!(refused.to_string().contains("HS256"), "{refused}");
    }
}
