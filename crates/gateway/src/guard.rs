//! Admission at the edge, the same for REST and gRPC: verify the token (if
//! one is sent), count the request against its identity's rate limit, then
//! apply the method's auth policy. In that order: a bad token is refused
//! before it costs a bucket, and a flood is refused before the policy. A
//! token whose signature is to be checked is first counted against its
//! address's checks, a bucket of their own.

use std::net::SocketAddr;

use http::HeaderMap;

use platform::access::{Denial, Principal, TokenError};

use crate::Gateway;
use crate::catalog::Catalog;
use crate::ratelimit::{Allowance, Limited};

/// What an admitted request carries on.
#[derive(Debug, Clone)]
pub struct Admitted {
    /// For the response's `RateLimit-*` headers, when there is a limit.
    pub allowance: Option<Allowance>,
}

impl Admitted {
    /// Adds what the response must say of the admission to its headers.
    pub fn write(&self, headers: &mut HeaderMap) {
        if let Some(allowance) = &self.allowance {
            allowance.write(headers);
        }
    }
}

pub enum Denied {
    Token(TokenError),
    Access(Denial),
    Limited(Limited),
    /// A service to learn from reflection, not learned yet: who may call
    /// it is not known, so nobody may.
    NotLearned(String),
}

impl From<TokenError> for Denied {
    fn from(error: TokenError) -> Self {
        Self::Token(error)
    }
}

impl Denied {
    pub fn status(&self) -> tonic::Status {
        match self {
            Self::Token(error) => error.status(),
            Self::Access(denial) => denial.status(),
            Self::Limited(limited) => tonic::Status::resource_exhausted(format!(
                "{}; retry in {} s",
                limited.exceeded, limited.retry_after_secs
            )),
            Self::NotLearned(service) => tonic::Status::unavailable(format!(
                "the gateway has not yet learned {service}'s contract from its upstream's reflection"
            )),
        }
    }

    /// Headers for the refusal (`Retry-After`, `RateLimit-*`).
    pub fn headers(&self) -> HeaderMap {
        match self {
            Self::Token(_) | Self::Access(_) | Self::NotLearned(_) => HeaderMap::new(),
            Self::Limited(limited) => {
                let mut headers = limited.headers.clone();
                headers.insert(http::header::RETRY_AFTER, limited.retry_after_secs.into());
                headers
            }
        }
    }
}

/// Admits a call of `method` (`pkg.Service.Method`) under the rules of
/// `catalog`, or says why not.
pub async fn admit(
    gateway: &Gateway,
    catalog: &Catalog,
    method: &str,
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
) -> Result<Admitted, Denied> {
    let authorization = headers.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    // A signature to check costs over four times a served call, and the limit
    // below counts only whom a token proves: checks of tokens not seen
    // before are counted per address first, so that forged ones cannot
    // cost more than that. Not against the address's own bucket, which a
    // signed-in user behind a busy address must not need.
    let token_check = || {
        let address = gateway.token_check_limit.identity(None, peer, headers);
        gateway.token_check_limit.check(address).map(drop).map_err(Denied::Limited)
    };
    let principal = gateway.auth.authenticate(authorization, token_check).await.inspect_err(|denied| {
        if let Denied::Token(_) = denied {
            metrics::counter!("gateway_auth_failures_total").increment(1);
        }
    })?;
    let subject = match &principal {
        Principal::User(user) => Some(user.id.as_str()),
        _ => None,
    };
    let identity = gateway.rate_limit.identity(subject, peer, headers);
    let allowance = gateway.rate_limit.check(identity).map_err(Denied::Limited)?;
    if catalog.access.checks_secret(method) {
        // Per address whoever signs in: guessing needs no account of its own.
        let address = gateway.sign_in_limit.identity(None, peer, headers);
        gateway.sign_in_limit.check(address).map_err(Denied::Limited)?;
    }
    if let Some(service) = catalog.pending_service_of(method) {
        return Err(Denied::NotLearned(service.to_owned()));
    }
    catalog.access.authorize(method, &principal).map_err(Denied::Access)?;
    Ok(Admitted { allowance })
}
