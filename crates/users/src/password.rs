//! Password hashing with argon2id (the argon2 crate's defaults, OWASP's
//! recommended parameters), off the async runtime because it is meant to be
//! slow, and under a concurrency bound because each hash holds ~19 MiB while
//! it runs: unbounded, 200 concurrent logins took the process to 4.7 GB.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use tokio::sync::Semaphore;

use crate::domain::Password;

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Every hashing slot stayed busy while the caller waited: try later.
    #[error("too many sign-ins at once; try again in a second")]
    Busy,
    #[error("password hashing failed: {0}")]
    Failed(String),
}

/// The bound on hashes computed at once; callers wait for a slot at most
/// `wait`, then get [`HashError::Busy`].
#[derive(Debug, Clone)]
pub struct Hashing {
    slots: Arc<Semaphore>,
    wait: Duration,
}

impl Hashing {
    pub fn new(at_once: usize, wait: Duration) -> Self {
        Self { slots: Arc::new(Semaphore::new(at_once)), wait }
    }

    /// Hashes `password` into a PHC string (`$argon2id$v=19$...`) with a fresh salt.
    pub async fn hash(&self, password: Password) -> Result<String, HashError> {
        let _slot = self.slot().await?;
        tokio::task::spawn_blocking(move || {
            let hash: Result<PasswordHash, _> = Argon2::default().hash_password(password.expose().as_bytes());
            hash.map(|hash| hash.to_string()).map_err(|e| HashError::Failed(e.to_string()))
        })
        .await
        .map_err(|e| HashError::Failed(e.to_string()))?
    }

    /// Whether `password` matches `hash`; with no hash, spends the same time
    /// and answers no.
    pub async fn verify(&self, password: String, hash: Option<String>) -> Result<bool, HashError> {
        let _slot = self.slot().await?;
        Ok(verify(password, hash).await)
    }

    async fn slot(&self) -> Result<tokio::sync::SemaphorePermit<'_>, HashError> {
        match tokio::time::timeout(self.wait, self.slots.acquire()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => {
                metrics::counter!("users_password_hashing_rejected_total").increment(1);
                Err(HashError::Busy)
            }
        }
    }
}

impl Default for Hashing {
    fn default() -> Self {
        Self::new(4, Duration::from_secs(2))
    }
}

/// A hash of no one's password, verified against when the account does not
/// exist, so a login for an unknown email takes as long as a wrong password.
static DECOY_HASH: LazyLock<String> = LazyLock::new(|| {
    let hash: PasswordHash =
        Argon2::default().hash_password(b"meshwork decoy password").expect("hashing a constant works");
    hash.to_string()
});

/// Whether `password` matches `hash`; with no hash, spends the same time and
/// answers no. Unbounded: callers go through [`Hashing::verify`].
async fn verify(password: String, hash: Option<String>) -> bool {
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
        let hash = Hashing::default().hash(Password::parse("correct horse").unwrap()).await.unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(!hash.contains("correct horse"));
        assert!(verify("correct horse".to_owned(), Some(hash.clone())).await);
        assert!(!verify("wrong horse!".to_owned(), Some(hash)).await);
    }

    #[tokio::test]
    async fn no_account_never_verifies() {
        assert!(!verify("meshwork decoy password".to_owned(), None).await);
    }

    #[tokio::test]
    async fn a_caller_that_finds_every_slot_busy_past_the_wait_is_told_so() {
        let hashing = Hashing::new(1, Duration::from_millis(50));
        let held = hashing.slots.clone().acquire_owned().await.unwrap();
        let refused = hashing.verify("correct horse".to_owned(), None).await;
        assert!(matches!(refused, Err(HashError::Busy)));
        drop(held);
        assert!(!hashing.verify("correct horse".to_owned(), None).await.unwrap());
    }
}
