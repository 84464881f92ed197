//! Verifying users' access tokens: EdDSA JWTs from the users service,
//! checked against its JSON Web Key Set. The keys are fetched from a
//! [`JwksSource`], cached, and fetched again (at most every
//! `refetch_interval`) when a token names a key the cache does not know, so
//! a rotated key is picked up and a flood of made-up key ids is not.
//!
//! Messages say what is wrong with a token in words, never a library's.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use contract::users::JsonWebKey;
use futures::future::BoxFuture;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::principal::UserIdentity;

/// Seconds of clock difference tolerated on `exp`, `nbf` and `iat`.
const LEEWAY_SECS: u64 = 30;

/// Where the keys come from: the users service (over gRPC through whatever
/// path the holder has to it) or, in the users service itself, its own.
pub trait JwksSource: Send + Sync + 'static {
    fn fetch(&self) -> BoxFuture<'_, Result<Vec<JsonWebKey>, String>>;
}

impl<F> JwksSource for F
where
    F: Fn() -> BoxFuture<'static, Result<Vec<JsonWebKey>, String>> + Send + Sync + 'static,
{
    fn fetch(&self) -> BoxFuture<'_, Result<Vec<JsonWebKey>, String>> {
        self()
    }
}

/// No source at all (a gateway fronting no users service): every fetch fails.
impl<S: JwksSource> JwksSource for Option<S> {
    fn fetch(&self) -> BoxFuture<'_, Result<Vec<JsonWebKey>, String>> {
        match self {
            Some(source) => source.fetch(),
            None => Box::pin(async { Err("no users service is configured to fetch keys from".to_owned()) }),
        }
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the Authorization header must be `Bearer <token>`")]
    Malformed,
    #[error("invalid token: {0}")]
    Invalid(String),
    /// The keys could not be fetched: the caller may try again (503).
    #[error("token signing keys are unavailable: {0}")]
    KeysUnavailable(String),
}

impl TokenError {
    pub fn status(&self) -> tonic::Status {
        match self {
            Self::KeysUnavailable(_) => tonic::Status::unavailable(self.to_string()),
            _ => tonic::Status::unauthenticated(self.to_string()),
        }
    }
}

/// The token of an `Authorization` header value: the `Bearer` scheme in any
/// case (RFC 7235: schemes are case-insensitive), then the token.
pub fn bearer_token(authorization: &str) -> Result<&str, TokenError> {
    let (scheme, token) = authorization.trim().split_once(' ').ok_or(TokenError::Malformed)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(TokenError::Malformed);
    }
    Ok(token)
}

#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    roles: Vec<String>,
    iat: Option<u64>,
    exp: u64,
}

/// Tokens remembered once verified, until they expire: an Ed25519 check
/// costs ~50 µs, which was a third of the gateway's CPU per request when
/// every call carried a token (`scripts/bench-peers`). A token is the same
/// bytes each time its holder sends it, so its signature need not be checked
/// again; its expiry is, on every use. At most this many; a full memory is
/// cleared whole (tokens live minutes, so it refills with the ones in use).
const REMEMBERED_TOKENS: usize = 10_000;

#[derive(Debug, Clone)]
struct Remembered {
    identity: UserIdentity,
    expires_at: u64,
}

/// The parts of the JOSE header this verifier looks at, read before the
/// library does: RFC 7515 §4.1.11 says a `crit` header this verifier does
/// not understand must be refused, and the library ignores it.
#[derive(Debug, Deserialize)]
struct JoseHeader {
    alg: Option<String>,
    kid: Option<String>,
    crit: Option<serde_json::Value>,
}

pub struct UserTokens {
    issuer: String,
    source: Arc<dyn JwksSource>,
    refetch_interval: Duration,
    keys: RwLock<HashMap<String, DecodingKey>>,
    /// When the keys were last fetched (see `refetch_interval`).
    last_fetch: Mutex<Option<Instant>>,
    /// Verified tokens and whom they prove (see [`REMEMBERED_TOKENS`]).
    /// Hashed with foldhash, not SipHash: the token (hundreds of bytes) is
    /// hashed on every call, and SipHash took 1,100 instructions for it
    /// (callgrind, 2,000 REST GETs through the gateway: 159,400 -> 157,700
    /// instructions per GET with foldhash). Only verified tokens are
    /// ever kept, so nobody can fill the map with colliding keys, and
    /// foldhash's seed is random per process anyway.
    remembered: std::sync::Mutex<HashMap<String, Remembered, foldhash::fast::RandomState>>,
}

impl std::fmt::Debug for UserTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserTokens").field("issuer", &self.issuer).finish_non_exhaustive()
    }
}

impl UserTokens {
    /// Tokens of `issuer`, verified with the keys `source` gives.
    pub fn new(issuer: impl Into<String>, source: impl JwksSource) -> Self {
        Self {
            issuer: issuer.into(),
            source: Arc::new(source),
            refetch_interval: Duration::from_secs(5),
            keys: RwLock::new(HashMap::new()),
            last_fetch: Mutex::new(None),
            remembered: std::sync::Mutex::new(HashMap::default()),
        }
    }

    /// An unknown `kid` fetches the keys again at most this often.
    pub fn refetch_interval(mut self, interval: Duration) -> Self {
        self.refetch_interval = interval;
        self
    }

    /// The user an `Authorization` header value proves, or why it proves nobody.
    pub async fn verify_header(&self, authorization: &str) -> Result<UserIdentity, TokenError> {
        self.verify(bearer_token(authorization)?).await
    }

    /// The user a token proves, or why it proves nobody.
    pub async fn verify(&self, token: &str) -> Result<UserIdentity, TokenError> {
        self.verify_gated(token, || Ok::<_, TokenError>(())).await
    }

    /// As [`verify`](Self::verify), but asks `gate` first whenever a
    /// signature is to be checked: for a token not verified here before,
    /// well-formed and not expired. A refusal of the gate's is returned as
    /// it is, and nothing is checked.
    pub async fn verify_gated<E: From<TokenError>>(
        &self,
        token: &str,
        gate: impl FnOnce() -> Result<(), E>,
    ) -> Result<UserIdentity, E> {
        if let Some(identity) = self.remembered(token, jsonwebtoken::get_current_timestamp()) {
            return Ok(identity);
        }
        let (identity, exp) = self.check(token, gate).await?;
        let mut remembered = self.remembered.lock().expect("remembered tokens lock");
        if remembered.len() >= REMEMBERED_TOKENS {
            remembered.clear();
        }
        // Until the check would refuse it: past `exp` by the leeway. Until
        // `exp` alone, each call in the leeway's 30 s checked its signature.
        let expires_at = exp.saturating_add(LEEWAY_SECS);
        remembered.insert(token.to_owned(), Remembered { identity: identity.clone(), expires_at });
        Ok(identity)
    }

    /// The user an `Authorization` header value proves, if that is known
    /// without checking anything: its token was verified here before and
    /// has not expired.
    pub fn remembered_header(&self, authorization: &str) -> Option<UserIdentity> {
        self.remembered(bearer_token(authorization).ok()?, jsonwebtoken::get_current_timestamp())
    }

    /// As if `token` had been verified here, proving `identity` until `expires_at`.
    #[cfg(test)]
    pub(super) fn remember(&self, token: &str, identity: UserIdentity, expires_at: u64) {
        self.remembered.lock().unwrap().insert(token.to_owned(), Remembered { identity, expires_at });
    }

    /// Whom `token` proves, if it was verified before and has not expired by `now`.
    fn remembered(&self, token: &str, now: u64) -> Option<UserIdentity> {
        let remembered = self.remembered.lock().expect("remembered tokens lock");
        remembered.get(token).filter(|hit| now < hit.expires_at).map(|hit| hit.identity.clone())
    }

    /// Checks every part of a token: header, key, signature, claims; `gate`
    /// is asked just before the key and the signature.
    async fn check<E: From<TokenError>>(
        &self,
        token: &str,
        gate: impl FnOnce() -> Result<(), E>,
    ) -> Result<(UserIdentity, u64), E> {
        let kid = unverified_kid(token)?;
        gate()?;
        Ok(self.verified(token, &kid).await?)
    }

    /// Checks the key `kid` names, the signature and the claims.
    async fn verified(&self, token: &str, kid: &str) -> Result<(UserIdentity, u64), TokenError> {
        let key = self.key(kid).await?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[&self.issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECS;
        let claims = jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(describe)?.claims;
        let now = jsonwebtoken::get_current_timestamp();
        if claims.iat.is_some_and(|iat| iat > now + LEEWAY_SECS) {
            return Err(TokenError::Invalid("it was issued in the future (iat)".to_owned()));
        }
        Ok((UserIdentity { id: claims.sub, roles: claims.roles }, claims.exp))
    }

    async fn key(&self, kid: &str) -> Result<DecodingKey, TokenError> {
        if let Some(key) = self.keys.read().expect("keys lock").get(kid) {
            return Ok(key.clone());
        }
        let unknown = || TokenError::Invalid("it is signed with a key the users service does not publish".to_owned());
        let mut last_fetch = self.last_fetch.lock().await;
        // Another request may have fetched while this one waited.
        if let Some(key) = self.keys.read().expect("keys lock").get(kid) {
            return Ok(key.clone());
        }
        if last_fetch.is_some_and(|at| at.elapsed() < self.refetch_interval) {
            return Err(unknown());
        }
        let fetched = self.source.fetch().await.map_err(TokenError::KeysUnavailable)?;
        *last_fetch = Some(Instant::now());
        let mut keys = HashMap::new();
        for key in fetched {
            if key.kty == "OKP"
                && key.crv.as_deref() == Some("Ed25519")
                && let Some(x) = &key.x
                && let Ok(decoding) = DecodingKey::from_ed_components(x)
            {
                keys.insert(key.kid.clone(), decoding);
            }
        }
        tracing::info!(keys = keys.len(), "token signing keys fetched");
        let mut cache = self.keys.write().expect("keys lock");
        *cache = keys;
        cache.get(kid).cloned().ok_or_else(unknown)
    }
}

/// The key id `token`'s header names, after what can be refused without
/// its key or its signature: a header this verifier does not accept, and an
/// expiry already past.
fn unverified_kid(token: &str) -> Result<String, TokenError> {
    let invalid = |why: &str| TokenError::Invalid(why.to_owned());
    let header = token.split('.').next().unwrap_or_default();
    let header = URL_SAFE_NO_PAD.decode(header).map_err(|_| invalid("not a JWT (header.payload.signature)"))?;
    let header: JoseHeader =
        serde_json::from_slice(&header).map_err(|_| invalid("not a JWT: its header is not a JSON object"))?;
    if header.crit.is_some() {
        return Err(invalid("it has critical header parameters (crit) this service does not understand"));
    }
    match header.alg.as_deref() {
        Some("EdDSA") => {}
        Some(other) => {
            let other: String = other.chars().filter(char::is_ascii_alphanumeric).take(16).collect();
            return Err(TokenError::Invalid(format!("it is signed with {other}; only EdDSA is accepted")));
        }
        None => return Err(invalid("its header names no algorithm")),
    }
    let kid = header.kid.ok_or_else(|| invalid("its header names no key (kid)"))?;
    // Refused unverified, as the verification would refuse it: a client
    // whose token has expired tends to keep sending it, and checking its
    // signature cost more than serving a call does (a REST GET through
    // the gateway with an expired token: 437,600 instructions checked,
    // 38,600 refused here; served with a remembered token, 96,000;
    // callgrind, 2,000 and 4,000 requests), and it would spend the gate.
    if expiry(token).is_some_and(|exp| exp.saturating_add(LEEWAY_SECS) < jsonwebtoken::get_current_timestamp()) {
        return Err(invalid("it has expired"));
    }
    Ok(kid)
}

/// The `exp` claim of `token`, read without verifying anything; `None` if
/// its payload does not say (the verification then says what is wrong).
fn expiry(token: &str) -> Option<u64> {
    #[derive(Deserialize)]
    struct Expiry {
        exp: Option<u64>,
    }
    let payload = URL_SAFE_NO_PAD.decode(token.split('.').nth(1)?).ok()?;
    serde_json::from_slice::<Expiry>(&payload).ok()?.exp
}

/// The library's verdict in this service's words.
fn describe(error: jsonwebtoken::errors::Error) -> TokenError {
    let why = match error.kind() {
        ErrorKind::ExpiredSignature => "it has expired".to_owned(),
        ErrorKind::ImmatureSignature => "it is not valid yet (nbf)".to_owned(),
        ErrorKind::InvalidIssuer => "it was issued by someone else (iss)".to_owned(),
        ErrorKind::InvalidSignature => "its signature does not verify".to_owned(),
        ErrorKind::MissingRequiredClaim(claim) => format!("it has no {claim} claim"),
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => "only EdDSA is accepted".to_owned(),
        _ => "it is not a well-formed signed JWT".to_owned(),
    };
    TokenError::Invalid(why)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn verifier() -> UserTokens {
        UserTokens::new("meshwork", || -> BoxFuture<'static, Result<Vec<JsonWebKey>, String>> {
            Box::pin(async { Ok(Vec::new()) })
        })
    }

    fn encode(json: &str) -> String {
        URL_SAFE_NO_PAD.encode(json)
    }

    #[test]
    fn a_verified_token_is_remembered_until_it_expires_and_no_longer() {
        let tokens = verifier();
        let identity = UserIdentity { id: "u1".into(), roles: vec!["admin".into()] };
        tokens.remember("a.b.c", identity.clone(), 1_000);
        assert_eq!(tokens.remembered("a.b.c", 999), Some(identity));
        assert_eq!(tokens.remembered("a.b.c", 1_000), None, "expired: checked again from scratch");
        assert_eq!(tokens.remembered("a.b.d", 999), None, "only the very same token");
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive_and_nothing_else_is_accepted() {
        assert_eq!(bearer_token("Bearer abc"), Ok("abc"));
        assert_eq!(bearer_token("bEaReR   abc "), Ok("abc"));
        assert_eq!(bearer_token("Basic abc"), Err(TokenError::Malformed));
        assert_eq!(bearer_token("Bearer"), Err(TokenError::Malformed));
        assert_eq!(bearer_token("Bearer "), Err(TokenError::Malformed));
    }

    #[tokio::test]
    async fn foreign_algorithms_and_critical_headers_are_refused_in_plain_words() {
        let tokens = verifier();
        let none = format!("{}.{}.", encode(r#"{"alg":"none","typ":"JWT"}"#), encode(r#"{"sub":"u1"}"#));
        let refused = tokens.verify(&none).await.unwrap_err().to_string();
        assert_eq!(refused, "invalid token: it is signed with none; only EdDSA is accepted");
        let hs256 = format!("{}.{}.c2ln", encode(r#"{"alg":"HS256","kid":"k"}"#), encode(r#"{"sub":"u1"}"#));
        assert!(tokens.verify(&hs256).await.unwrap_err().to_string().contains("HS256"));
        let crit = format!("{}.{}.c2ln", encode(r#"{"alg":"EdDSA","kid":"k","crit":["exp"]}"#), encode("{}"));
        assert!(tokens.verify(&crit).await.unwrap_err().to_string().contains("crit"));
        let garbage = tokens.verify("not-a-jwt").await.unwrap_err().to_string();
        assert!(garbage.contains("not a JWT"), "{garbage}");
    }

    /// A well-formed token of key `k` that expires at `exp`, its signature garbage.
    fn forged_expiring(exp: u64) -> String {
        let claims = format!(r#"{{"sub":"u1","iss":"meshwork","exp":{exp}}}"#);
        format!("{}.{}.c2ln", encode(r#"{"alg":"EdDSA","kid":"k"}"#), encode(&claims))
    }

    /// A verifier whose source publishes no keys, and how often it was asked.
    fn counting_verifier() -> (UserTokens, Arc<AtomicUsize>) {
        let fetches = Arc::new(AtomicUsize::new(0));
        let counted = fetches.clone();
        let tokens = UserTokens::new("meshwork", move || -> BoxFuture<'static, Result<Vec<JsonWebKey>, String>> {
            counted.fetch_add(1, Ordering::SeqCst);
            Box::pin(async { Ok(Vec::new()) })
        });
        (tokens, fetches)
    }

    #[tokio::test]
    async fn an_unknown_key_is_refused_without_a_second_fetch_within_the_interval() {
        let (tokens, fetches) = counting_verifier();
        let token = format!("{}.{}.c2ln", encode(r#"{"alg":"EdDSA","kid":"nobody"}"#), encode("{}"));
        for _ in 0..3 {
            let refused = tokens.verify(&token).await.unwrap_err().to_string();
            assert!(refused.contains("does not publish"), "{refused}");
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn an_expired_token_is_refused_before_its_key_is_looked_for_or_its_signature_checked() {
        let (tokens, fetches) = counting_verifier();
        let now = jsonwebtoken::get_current_timestamp();
        let refused = tokens.verify(&forged_expiring(now - LEEWAY_SECS - 1)).await.unwrap_err();
        assert_eq!(refused.to_string(), "invalid token: it has expired");
        assert_eq!(fetches.load(Ordering::SeqCst), 0, "no key was looked for");
        // Within the leeway it is checked in full, as the library would.
        let checked = tokens.verify(&forged_expiring(now - LEEWAY_SECS + 5)).await.unwrap_err().to_string();
        assert!(checked.contains("does not publish"), "{checked}");
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn the_gate_is_asked_only_before_a_signature_is_checked_and_its_refusal_checks_nothing() {
        let (tokens, fetches) = counting_verifier();
        let now = jsonwebtoken::get_current_timestamp();
        let asked = std::cell::Cell::new(0);
        let gate = |verdict: Result<(), TokenError>| {
            let asked = &asked;
            move || {
                asked.set(asked.get() + 1);
                verdict
            }
        };
        // Refused before any signature: the gate is not asked.
        assert!(tokens.verify_gated("not-a-jwt", gate(Ok(()))).await.is_err());
        assert!(tokens.verify_gated(&forged_expiring(now - LEEWAY_SECS - 1), gate(Ok(()))).await.is_err());
        assert_eq!(asked.get(), 0);
        // A signature to check: asked; a refusal is returned as it is, and no key is looked for.
        let held = tokens.verify_gated(&forged_expiring(now + 600), gate(Err(TokenError::Malformed))).await;
        assert_eq!((held, asked.get(), fetches.load(Ordering::SeqCst)), (Err(TokenError::Malformed), 1, 0));
        // Let through: checked (and refused here, for the key nobody publishes).
        assert!(tokens.verify_gated(&forged_expiring(now + 600), gate(Ok(()))).await.is_err());
        assert_eq!((asked.get(), fetches.load(Ordering::SeqCst)), (2, 1));
        // A token verified before is not checked again: not asked.
        let identity = UserIdentity { id: "u1".into(), roles: Vec::new() };
        tokens.remember("a.b.c", identity.clone(), now + 600);
        assert_eq!(tokens.verify_gated("a.b.c", gate(Ok(()))).await, Ok(identity));
        assert_eq!(asked.get(), 2);
    }
}
