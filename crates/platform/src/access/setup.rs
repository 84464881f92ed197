//! Assembling a service's access checks from its settings.

use std::sync::Arc;
use std::time::Duration;

use contract::users::GetJwksRequest;
use contract::users::user_service_client::UserServiceClient;
use futures::future::BoxFuture;
use resilience::Upstream;

use super::{AccessPolicy, AuthMode, JwksSource, ServerAccess, ServiceTokens, UserTokens};
use crate::config::ConfigError;
use crate::settings::{self, Settings};

/// The access checks of the service `component`: the contract's rules,
/// users' tokens verified against `jwks`, and other services' tokens
/// verified with `MESHWORK_SERVICE_SECRET` (required: without it no service
/// could call another). Also returns this service's own token minter.
pub fn service_access(
    settings: &Settings,
    component: &'static str,
    jwks: impl JwksSource,
) -> Result<(ServerAccess, Arc<ServiceTokens>), ConfigError> {
    let secret = Settings::require(
        &settings.service_secret,
        settings::SERVICE_SECRET,
        "services prove to each other that they are services with it",
    )?;
    let services = ServiceTokens::new(component, secret.expose().as_bytes())
        .map_err(|reason| settings.invalid(settings::SERVICE_SECRET, reason))?;
    let services = Arc::new(services);
    let access = ServerAccess {
        policy: Arc::new(AccessPolicy::contract().clone()),
        users: Some(Arc::new(UserTokens::new(settings.jwt_issuer.clone(), jwks))),
        services: Some(services.clone()),
        mode: settings.auth_mode.unwrap_or(AuthMode::Required),
    };
    Ok((access, services))
}

/// How long a key fetch may take: a token waits for it.
const JWKS_TIMEOUT: Duration = Duration::from_secs(2);

/// The users service's published keys, fetched over gRPC (GetJwks is
/// public) through the users upstream's guarded call path.
pub fn jwks_from_users(users: Arc<Upstream>) -> impl JwksSource {
    move || -> BoxFuture<'static, Result<Vec<contract::users::JsonWebKey>, String>> {
        let users = users.clone();
        Box::pin(async move {
            let response = users
                .call("shop.users.v1.UserService/GetJwks", true, Some(JWKS_TIMEOUT), |channel, remaining| async move {
                    let mut request = tonic::Request::new(GetJwksRequest {});
                    crate::grpc_timeout::set(&mut request, remaining);
                    UserServiceClient::new(channel).get_jwks(request).await
                })
                .await;
            match response {
                Ok(response) => Ok(response.into_inner().keys),
                Err(error) => Err(error.into_status(&users.name).message().to_owned()),
            }
        })
    }
}
