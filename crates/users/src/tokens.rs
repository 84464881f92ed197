//! Access tokens: JWTs signed with an Ed25519 key (EdDSA), verifiable by
//! anyone holding the public half, which GetJwks publishes with its `kid`.
//!
//! Keys are PKCS#8 PEM files, the format `openssl genpkey -algorithm ed25519`
//! writes and `meshwork users keygen` prints.

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde::{Deserialize, Serialize};

use crate::domain::UserId;

/// RFC 8410's PKCS#8 v1 prefix for an Ed25519 private key; the 32-byte
/// seed follows it.
const PKCS8_ED25519_PREFIX: [u8; 16] =
    [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];
const PEM_LABEL: &str = "PRIVATE KEY";

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the token signing key is not an Ed25519 PKCS#8 PEM key: {0}")]
    InvalidKey(String),
    #[error("cannot read or write the token signing key {path}: {reason}")]
    KeyFile { path: String, reason: String },
    #[error("cannot sign a token: {0}")]
    Signing(String),
}

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    pub iss: String,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// Expires at, seconds since the epoch.
    pub exp: i64,
    /// Unique token id.
    pub jti: String,
    /// The roles the user held when the token was issued.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
}

/// A public key as a JSON Web Key (RFC 8037 OKP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicJwk {
    pub kid: String,
    /// base64url of the 32-byte public key.
    pub x: String,
}

impl PublicJwk {
    pub const KTY: &'static str = "OKP";
    pub const CRV: &'static str = "Ed25519";
    pub const ALG: &'static str = "EdDSA";
    pub const USE: &'static str = "sig";
}

/// A signed token and its lifetime.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub token: String,
    pub expires_in: Duration,
}

/// Signs access tokens with one key.
pub struct TokenIssuer {
    encoding_key: EncodingKey,
    jwk: PublicJwk,
    issuer: String,
    ttl: Duration,
}

impl std::fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenIssuer").field("kid", &self.jwk.kid).field("issuer", &self.issuer).finish()
    }
}

impl TokenIssuer {
    pub fn from_pem(pem: &str, issuer: impl Into<String>, ttl: Duration) -> Result<Self, TokenError> {
        let der = decode_pem(pem)?;
        let pair =
            Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der).map_err(|e| TokenError::InvalidKey(e.to_string()))?;
        let x = URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
        // RFC 7638 thumbprint: members in lexicographic order, no spaces.
        let thumbprint_input = format!(r#"{{"crv":"{}","kty":"{}","x":"{x}"}}"#, PublicJwk::CRV, PublicJwk::KTY);
        let kid = URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, thumbprint_input.as_bytes()));
        Ok(Self { encoding_key: EncodingKey::from_ed_der(&der), jwk: PublicJwk { kid, x }, issuer: issuer.into(), ttl })
    }

    /// Reads the key at `path`.
    pub fn from_file(path: &Path, issuer: impl Into<String>, ttl: Duration) -> Result<Self, TokenError> {
        let pem = std::fs::read_to_string(path).map_err(|e| key_file_error(path, e))?;
        Self::from_pem(&pem, issuer, ttl)
    }

    /// Reads the key at `path`, first generating it there (owner-only
    /// permissions) if there is none. Returns whether it was generated.
    pub fn load_or_generate(path: &Path, issuer: impl Into<String>, ttl: Duration) -> Result<(Self, bool), TokenError> {
        let generated = !path.exists();
        if generated {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| key_file_error(path, e))?;
            }
            write_private(path, &generate_pem()).map_err(|e| key_file_error(path, e))?;
        }
        Ok((Self::from_file(path, issuer, ttl)?, generated))
    }

    pub fn issue(&self, user: UserId, roles: Vec<String>) -> Result<IssuedToken, TokenError> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: user.to_string(),
            iss: self.issuer.clone(),
            iat: now,
            exp: now + self.ttl.as_secs() as i64,
            jti: uuid::Uuid::new_v4().to_string(),
            roles,
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.jwk.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &self.encoding_key)
            .map_err(|e| TokenError::Signing(e.to_string()))?;
        Ok(IssuedToken { token, expires_in: self.ttl })
    }

    /// The public keys that verify this issuer's tokens.
    pub fn jwks(&self) -> Vec<PublicJwk> {
        vec![self.jwk.clone()]
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }
}

/// A new Ed25519 private key as PKCS#8 PEM.
pub fn generate_pem() -> String {
    let mut seed = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed).expect("the system RNG works");
    let der: Vec<u8> = PKCS8_ED25519_PREFIX.iter().chain(&seed).copied().collect();
    let body = STANDARD.encode(der);
    format!("-----BEGIN {PEM_LABEL}-----\n{body}\n-----END {PEM_LABEL}-----\n")
}

fn decode_pem(pem: &str) -> Result<Vec<u8>, TokenError> {
    let begin = format!("-----BEGIN {PEM_LABEL}-----");
    let end = format!("-----END {PEM_LABEL}-----");
    let body = pem
        .trim()
        .strip_prefix(&begin)
        .and_then(|rest| rest.strip_suffix(&end))
        .ok_or_else(|| TokenError::InvalidKey(format!("expected a {begin} block")))?;
    let body: String = body.split_whitespace().collect();
    STANDARD.decode(body).map_err(|e| TokenError::InvalidKey(e.to_string()))
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(contents.as_bytes())
}

fn key_file_error(path: &Path, error: std::io::Error) -> TokenError {
    TokenError::KeyFile { path: path.display().to_string(), reason: error.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};

    fn issuer() -> TokenIssuer {
        TokenIssuer::from_pem(&generate_pem(), "meshwork-test", Duration::from_secs(900)).unwrap()
    }

    #[test]
    fn tokens_verify_with_the_published_key_and_carry_the_claims() {
        let issuer = issuer();
        let user = UserId::generate();
        let issued = issuer.issue(user, vec!["admin".to_owned()]).unwrap();
        let header = jsonwebtoken::decode_header(&issued.token).unwrap();
        assert_eq!(header.alg, Algorithm::EdDSA);
        let jwk = &issuer.jwks()[0];
        assert_eq!(header.kid.as_deref(), Some(jwk.kid.as_str()));

        let key = DecodingKey::from_ed_components(&jwk.x).unwrap();
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&["meshwork-test"]);
        let claims = jsonwebtoken::decode::<Claims>(&issued.token, &key, &validation).unwrap().claims;
        assert_eq!(claims.sub, user.to_string());
        assert_eq!(claims.roles, ["admin"]);
        assert_eq!(claims.exp - claims.iat, 900);
    }

    #[test]
    fn another_key_does_not_verify() {
        let token = issuer().issue(UserId::generate(), Vec::new()).unwrap().token;
        let other = issuer();
        let key = DecodingKey::from_ed_components(&other.jwks()[0].x).unwrap();
        assert!(jsonwebtoken::decode::<Claims>(&token, &key, &Validation::new(Algorithm::EdDSA)).is_err());
    }

    #[test]
    fn kid_is_the_rfc7638_thumbprint() {
        // RFC 8037 appendix A.3: the thumbprint of its example public key.
        let pem = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n-----END PRIVATE KEY-----\n";
        let issuer = TokenIssuer::from_pem(pem, "x", Duration::from_secs(1)).unwrap();
        assert_eq!(issuer.jwks()[0].x, "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo");
        assert_eq!(issuer.jwks()[0].kid, "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
    }

    #[test]
    fn malformed_keys_are_refused() {
        for pem in ["", "hello", "-----BEGIN PRIVATE KEY-----\n!!!\n-----END PRIVATE KEY-----"] {
            assert!(TokenIssuer::from_pem(pem, "x", Duration::from_secs(1)).is_err(), "{pem:?}");
        }
    }

    #[test]
    fn a_generated_key_is_kept_and_reused() {
        let dir = std::env::temp_dir().join(format!("meshwork-key-{}", uuid::Uuid::new_v4()));
        let path = dir.join("signing-key.pem");
        let (first, generated) = TokenIssuer::load_or_generate(&path, "x", Duration::from_secs(1)).unwrap();
        assert!(generated);
        let (second, generated) = TokenIssuer::load_or_generate(&path, "x", Duration::from_secs(1)).unwrap();
        assert!(!generated);
        assert_eq!(first.jwks(), second.jwks());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        std::fs::remove_dir_all(dir).unwrap();
    }
}
