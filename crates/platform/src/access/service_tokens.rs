//! How a meshwork service proves to another that it is one: a short-lived
//! JWT (HS256) signed with a secret every service holds
//! (`MESHWORK_SERVICE_SECRET`; `meshwork up` generates one in its data
//! directory). It travels in its own metadata key, never in
//! `authorization`, and the gateway drops any a client sends, so only a
//! holder of the secret can call an internal method.

use std::sync::Mutex;
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// The metadata key that carries a service token.
pub const SERVICE_TOKEN_METADATA: &str = "x-meshwork-service-token";
/// [`SERVICE_TOKEN_METADATA`] as a header name, checked once: a name given
/// as a string is parsed again on every lookup (400 instructions, callgrind),
/// and every call a server or the gateway serves looks this one up.
pub const SERVICE_TOKEN_HEADER: http::HeaderName = http::HeaderName::from_static(SERVICE_TOKEN_METADATA);

/// The `iss` of service tokens, so a user token can never pass for one.
const ISSUER: &str = "meshwork-services";
/// How long a service token lives; a new one is minted well before.
const LIFETIME: Duration = Duration::from_secs(300);
/// The shortest secret accepted (256 bits).
pub const MIN_SECRET_BYTES: usize = 32;

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    /// The calling service's name.
    sub: String,
    iss: String,
    exp: u64,
}

/// Mints this service's tokens and verifies other services'.
pub struct ServiceTokens {
    name: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// The current token and when to mint the next.
    current: Mutex<Option<(String, u64)>>,
}

impl std::fmt::Debug for ServiceTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceTokens").field("name", &self.name).finish_non_exhaustive()
    }
}

impl ServiceTokens {
    /// `name` is this service's; `secret` the shared one (at least 32 bytes).
    pub fn new(name: impl Into<String>, secret: &[u8]) -> Result<Self, String> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(format!("must be at least {MIN_SECRET_BYTES} bytes"));
        }
        Ok(Self {
            name: name.into(),
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            current: Mutex::new(None),
        })
    }

    /// A token naming this service, valid for a few minutes.
    pub fn token(&self) -> String {
        let now = jsonwebtoken::get_current_timestamp();
        let mut current = self.current.lock().expect("service token lock");
        if let Some((token, renew_at)) = current.as_ref()
            && now < *renew_at
        {
            return token.clone();
        }
        let claims = Claims { sub: self.name.clone(), iss: ISSUER.to_owned(), exp: now + LIFETIME.as_secs() };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing cannot fail");
        *current = Some((token.clone(), now + LIFETIME.as_secs() / 2));
        token
    }

    /// Puts this service's token on an outgoing call.
    pub fn attach<T>(&self, request: &mut tonic::Request<T>) {
        if let Ok(token) = self.token().parse() {
            request.metadata_mut().insert(SERVICE_TOKEN_METADATA, token);
        }
    }

    /// The name of the service a token proves, or why it proves none.
    pub fn verify(&self, token: &str) -> Result<String, String> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.leeway = 30;
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map(|data| data.claims.sub)
            .map_err(|_| "invalid service token".to_owned())
    }
}

/// The service secret kept at `path` (`meshwork up`'s data directory),
/// generated there first (owner-only permissions) if there is none, so the
/// parts of an `up --only` split share it with no setup.
pub fn load_or_generate_secret(path: &std::path::Path) -> std::io::Result<String> {
    use base64::Engine;
    use std::io::Write;
    if !path.exists() {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut bytes = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        match options.open(path) {
            Ok(mut file) => {
                file.write_all(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes).as_bytes())?
            }
            // Another process of the same `up` made it first.
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(error) => return Err(error),
        }
    }
    Ok(std::fs::read_to_string(path)?.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_token_verifies_with_the_same_secret_only() {
        let orders = ServiceTokens::new("orders", &[7; 32]).unwrap();
        let products = ServiceTokens::new("products", &[7; 32]).unwrap();
        let stranger = ServiceTokens::new("products", &[8; 32]).unwrap();
        let token = orders.token();
        assert_eq!(token, orders.token(), "reused until it nears expiry");
        assert_eq!(products.verify(&token), Ok("orders".to_owned()));
        assert!(stranger.verify(&token).is_err());
        assert!(products.verify("garbage").is_err());
        assert!(ServiceTokens::new("x", b"short").is_err());
    }
}
