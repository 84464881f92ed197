//! Password hashing with argon2id (the argon2 crate's defaults, OWASP's
//! recommended parameters), off the async runtime because it is meant to be
//! slow.

use std::sync::LazyLock;

use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};

use crate::domain::Password;

#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

/// Hashes `password` into a PHC string (`$argon2id$v=19$...`) with a fresh salt.
pub async fn hash(password: Password) -> Result<String, HashError> {
    tokio::task::spawn_blocking(move || {
        let hash: Result<PasswordHash, _> = Argon2::default().hash_password(password.expose().as_bytes());
        hash.map(|hash| hash.to_string()).map_err(|e| HashError(e.to_string()))
    })
    .await
    .map_err(|e| HashError(e.to_string()))?
}

/// A hash of no one's password, verified against when the account does not
/// exist, so a login for an unknown email takes as long as a wrong password.
static DECOY_HASH: LazyLock<String> = LazyLock::new(|| {
    let hash: PasswordHash =
        Argon2::default().hash_password(b"meshwork decoy password").expect("hashing a constant works");
    hash.to_string()
});

/// Whether `password` matches `hash`; with no hash, spends the same time and
/// answers no.
pub async fn verify(password: String, hash: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || {
        let exists = hash.is_some();
        let hash = hash.unwrap_or_else(|| DECOY_HASH.clone());
        let matches = match Argon2::default().verify_password(password.as_bytes(), hash.as_str()) {
            Ok(()) => true,
            Err(argon2::password_hash::Error::PasswordInvalid) => false,
            Err(error) => {
                tracing::error!(%error, "stored password hash cannot be verified");
                false
            }
        };
        exists && matches
    })
    .await
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_and_verify() {
        let hash = hash(Password::parse("correct horse").unwrap()).await.unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(!hash.contains("correct horse"));
        assert!(verify("correct horse".to_owned(), Some(hash.clone())).await);
        assert!(!verify("wrong horse!".to_owned(), Some(hash)).await);
    }

    #[tokio::test]
    async fn no_account_never_verifies() {
        assert!(!verify("meshwork decoy password".to_owned(), None).await);
    }
}
