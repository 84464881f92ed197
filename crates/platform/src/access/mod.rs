//! Who may call what. Every RPC of the contract declares its audience with
//! the `(meshwork.access.v1.access)` method option; [`AccessPolicy`] reads
//! those declarations from a descriptor pool, and both the gateway and every
//! service enforce them, so a caller gets exactly what the contract says
//! through every protocol and on every port.
//!
//! A caller proves who it is with a credential the receiver verifies itself:
//! a user with an access token (an EdDSA JWT from the users service, checked
//! against its JWKS: [`UserTokens`]), another service with a short-lived
//! service token ([`ServiceTokens`], signed with a secret the services
//! share). Bare metadata naming a user is never believed.

mod layer;
mod policy;
mod principal;
mod service_tokens;
mod setup;
mod user_tokens;

pub use layer::{AccessLayer, ServerAccess};
pub use policy::{ADMIN_ROLE, AccessPolicy, Denial, Rule, undeclared_methods};
pub use principal::{Caller, Principal, UserIdentity};
pub use service_tokens::{
    MIN_SECRET_BYTES, SERVICE_TOKEN_HEADER, SERVICE_TOKEN_METADATA, ServiceTokens, load_or_generate_secret,
};
pub use setup::{jwks_from_users, service_access};
pub use user_tokens::{JwksSource, TokenError, UserTokens, bearer_token};

/// Whether callers must prove who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// The contract's rules hold for everyone (the default).
    Required,
    /// Development only (`meshwork up`): tokens are verified when sent, but
    /// a caller that sends none is trusted like a service, except that
    /// internal methods still need a service credential and the gateway
    /// still never serves them.
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
