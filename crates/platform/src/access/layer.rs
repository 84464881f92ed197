//! The access check every server runs before a gRPC call reaches its
//! service: who the caller is (a service token, else a user's bearer token,
//! else nobody), then the method's rule from the contract. An admitted
//! request carries its [`Caller`] in the request extensions for the
//! service's own object-level checks.

use std::sync::Arc;
use std::task::{Context, Poll};

use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use tower::{Layer, Service};

use super::AuthMode;
use super::policy::{AccessPolicy, Denial, Rule};
use super::principal::{Caller, Principal};
use super::service_tokens::{SERVICE_TOKEN_METADATA, ServiceTokens};
use super::user_tokens::UserTokens;

/// What a server checks its callers with.
#[derive(Debug, Clone)]
pub struct ServerAccess {
    pub policy: Arc<AccessPolicy>,
    /// Verifies users' tokens; without it, no user can sign in here.
    pub users: Option<Arc<UserTokens>>,
    /// Verifies other services' tokens; without it, internal methods are closed.
    pub services: Option<Arc<ServiceTokens>>,
    pub mode: AuthMode,
}

impl Default for ServerAccess {
    /// The contract's rules with no way to prove anything: only public
    /// methods are open.
    fn default() -> Self {
        Self {
            policy: Arc::new(AccessPolicy::contract().clone()),
            users: None,
            services: None,
            mode: AuthMode::Required,
        }
    }
}

impl ServerAccess {
    /// Who sent a request with these headers. A credential that is sent but
    /// does not verify is refused outright, never treated as none.
    pub async fn principal(&self, headers: &http::HeaderMap) -> Result<Principal, Denial> {
        if let Some(token) = headers.get(SERVICE_TOKEN_METADATA) {
            let services = self.services.as_ref().ok_or_else(|| {
                Denial::Unauthenticated("this server accepts no service tokens (MESHWORK_SERVICE_SECRET)".into())
            })?;
            let token = token.to_str().map_err(|_| Denial::Unauthenticated("invalid service token".into()))?;
            return services.verify(token).map(Principal::Service).map_err(Denial::Unauthenticated);
        }
        let Some(authorization) = headers.get(http::header::AUTHORIZATION) else { return Ok(Principal::Anonymous) };
        let authorization = authorization
            .to_str()
            .map_err(|_| Denial::Unauthenticated("the Authorization header must be `Bearer <token>`".into()))?;
        let users = self
            .users
            .as_ref()
            .ok_or_else(|| Denial::Unauthenticated("this server cannot verify access tokens".into()))?;
        match users.verify_header(authorization).await {
            Ok(user) => Ok(Principal::User(user)),
            Err(error) => Err(Denial::Unauthenticated(error.to_string())),
        }
    }

    /// What the service's domain is told about an admitted principal.
    fn caller(&self, principal: Principal) -> Caller {
        match principal {
            Principal::User(user) => Caller::User(user),
            Principal::Service(_) => Caller::Trusted,
            Principal::Anonymous if self.mode == AuthMode::Optional => Caller::Trusted,
            Principal::Anonymous => Caller::Anonymous,
        }
    }
}

/// Wraps a gRPC router; see the module docs.
#[derive(Debug, Clone)]
pub struct AccessLayer {
    access: Arc<ServerAccess>,
}

impl AccessLayer {
    pub fn new(access: ServerAccess) -> Self {
        Self { access: Arc::new(access) }
    }
}

impl<S> Layer<S> for AccessLayer {
    type Service = AccessCheck<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AccessCheck { inner, access: self.access.clone() }
    }
}

#[derive(Debug, Clone)]
pub struct AccessCheck<S> {
    inner: S,
    access: Arc<ServerAccess>,
}

impl<S, B> Service<http::Request<B>> for AccessCheck<S>
where
    S: Service<http::Request<B>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        // The clone that was made ready serves this request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let access = self.access.clone();
        Box::pin(async move {
            let method = request.uri().path().trim_start_matches('/').replace('/', ".");
            // Methods outside the contract (health, reflection) are open.
            let rule = access.policy.rule(&method).unwrap_or(&Rule::Public);
            let admitted = match access.principal(request.headers()).await {
                Ok(principal) => rule.admits(&principal, access.mode == AuthMode::Optional).map(|()| principal),
                // A public method needs no credential, so a bad one costs it nothing.
                Err(_) if *rule == Rule::Public => Ok(Principal::Anonymous),
                Err(denial) => Err(denial),
            };
            match admitted {
                Ok(principal) => {
                    request.extensions_mut().insert(access.caller(principal));
                    inner.call(request).await
                }
                Err(denial) => {
                    metrics::counter!("access_denied_total", "method" => method).increment(1);
                    Ok(denial.status().into_http::<axum::body::Body>().into_response())
                }
            }
        })
    }
}
