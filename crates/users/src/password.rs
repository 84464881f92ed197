//! Password hashing with argon2id (the argon2 crate's defaults, OWASP's
//! recommended parameters), off the async runtime because it is meant to be
//! slow, and bounded in memory, because each hash works in ~19 MiB:
//!
//! - at most `at_once` hashes run at a time; a caller that finds no slot
//!   within `wait` is told to retry ([`HashError::Busy`]);
//! - each running hash works in one of at most `at_once` buffers that are
//!   allocated once and reused. Left to the allocator, 19 MiB blocks freed
//!   on one blocking thread and wanted on another piled up in glibc's
//!   per-thread arenas: 200 concurrent logins held ~930 MiB for good, even
//!   with four at a time;
//! - a slot is held until its hash has finished, even when the caller has
//!   gone (a dropped request), so the bound holds under cancellation too.

use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use argon2::password_hash::phc::{Output, ParamsString, Salt};
use argon2::{Algorithm, Argon2, Block, Params, PasswordHash, Version};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::domain::Password;

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Every hashing slot stayed busy while the caller waited: try later.
    #[error("too many sign-ins at once; try again in a second")]
    Busy,
    #[error("password hashing failed: {0}")]
    Failed(String),
}

/// The bound on hashes computed at once, and their working memory.
#[derive(Debug, Clone)]
pub struct Hashing {
    slots: Arc<Semaphore>,
    wait: Duration,
    /// Working memory of the hashes not running now; never more than the slots.
    memory: Arc<Mutex<Vec<Vec<Block>>>>,
}

impl Hashing {
    pub fn new(at_once: usize, wait: Duration) -> Self {
        metrics::describe_counter!(
            "users_password_hashing_rejected_total",
            "Sign-ins and password changes refused because every hashing slot stayed busy."
        );
        metrics::counter!("users_password_hashing_rejected_total").absolute(0);
        Self { slots: Arc::new(Semaphore::new(at_once)), wait, memory: Arc::default() }
    }

    /// Hashes `password` into a PHC string (`$argon2id$v=19$...`) with a fresh salt.
    pub async fn hash(&self, password: Password) -> Result<String, HashError> {
        self.run(move |memory| hash_with(password.expose().as_bytes(), &argon2::password_hash::generate_salt(), memory))
            .await?
    }

    /// Whether `password` matches `hash`; with no hash, spends the same time
    /// and answers no.
    pub async fn verify(&self, password: String, hash: Option<String>) -> Result<bool, HashError> {
        self.run(move |memory| verify_with(&password, hash, memory)).await
    }

    /// Runs `work` on a blocking thread, in a slot and with working memory.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let slot = self.slot().await?;
        let pool = self.memory.clone();
        tokio::task::spawn_blocking(move || {
            let _slot: OwnedSemaphorePermit = slot;
            let mut memory = pool.lock().expect("hashing memory lock").pop().unwrap_or_default();
            let result = work(&mut memory);
            pool.lock().expect("hashing memory lock").push(memory);
            result
        })
        .await
        .map_err(|e| HashError::Failed(e.to_string()))
    }

    async fn slot(&self) -> Result<OwnedSemaphorePermit, HashError> {
        match tokio::time::timeout(self.wait, self.slots.clone().acquire_owned()).await {
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

/// `memory` resized to what `params` need: it grows once, then is reused.
fn blocks<'m>(memory: &'m mut Vec<Block>, params: &Params) -> &'m mut [Block] {
    let needed = params.block_count();
    if memory.len() < needed {
        memory.resize(needed, Block::default());
    }
    &mut memory[..needed]
}

/// argon2id with the crate's default parameters, as a PHC string.
fn hash_with(password: &[u8], salt: &[u8], memory: &mut Vec<Block>) -> Result<String, HashError> {
    let failed = |e: &dyn std::fmt::Display| HashError::Failed(e.to_string());
    let params = Params::default();
    let mut output = [0_u8; Params::DEFAULT_OUTPUT_LEN];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password_into_with_memory(password, salt, &mut output, blocks(memory, &params))
        .map_err(|e| failed(&e))?;
    let hash = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|e| failed(&e))?,
        salt: Some(Salt::new(salt).map_err(|e| failed(&e))?),
        hash: Some(Output::new(&output).map_err(|e| failed(&e))?),
    };
    Ok(hash.to_string())
}

/// A hash of no one's password, verified against when the account does not
/// exist, so a login for an unknown email takes as long as a wrong password.
static DECOY_HASH: LazyLock<String> = LazyLock::new(|| {
    let salt = argon2::password_hash::generate_salt();
    hash_with(b"meshwork decoy password", &salt, &mut Vec::new()).expect("hashing a constant works")
});

/// Whether `password` matches the PHC string `hash` (whatever argon2
/// parameters it was made with); with no hash, spends the same time and
/// answers no.
fn verify_with(password: &str, hash: Option<String>, memory: &mut Vec<Block>) -> bool {
    let exists = hash.is_some();
    let hash = hash.unwrap_or_else(|| DECOY_HASH.clone());
    match recompute(password.as_bytes(), &hash, memory) {
        // Output's equality is constant-time.
        Ok((expected, computed)) => exists && expected == computed,
        Err(error) => {
            tracing::error!(%error, "stored password hash cannot be verified");
            false
        }
    }
}

/// The output stored in `hash`, and the one `password` gives under the same
/// algorithm, version, parameters and salt.
fn recompute(password: &[u8], hash: &str, memory: &mut Vec<Block>) -> Result<(Output, Output), String> {
    let parsed = PasswordHash::new(hash).map_err(|e| e.to_string())?;
    let algorithm = Algorithm::try_from(parsed.algorithm.as_str()).map_err(|e| e.to_string())?;
    let version = match parsed.version {
        Some(version) => Version::try_from(version).map_err(|e| e.to_string())?,
        None => Version::default(),
    };
    let params = Params::try_from(&parsed).map_err(|e| e.to_string())?;
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return Err("the hash has no salt or no output".to_owned());
    };
    let mut computed = vec![0_u8; expected.len()];
    Argon2::new(algorithm, version, params.clone())
        .hash_password_into_with_memory(password, salt.as_ref(), &mut computed, blocks(memory, &params))
        .map_err(|e| e.to_string())?;
    Ok((expected, Output::new(&computed).map_err(|e| e.to_string())?))
}

#[cfg(test)]
mod tests {
    use argon2::PasswordHasher;

    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_and_verify() {
        let hashing = Hashing::default();
        let hash = hashing.hash(Password::parse("correct horse").unwrap()).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
        assert!(!hash.contains("correct horse"));
        assert!(hashing.verify("correct horse".to_owned(), Some(hash.clone())).await.unwrap());
        assert!(!hashing.verify("wrong horse!".to_owned(), Some(hash)).await.unwrap());
    }

    #[tokio::test]
    async fn hashes_made_by_the_argon2_crate_itself_verify_whatever_their_parameters() {
        let hashing = Hashing::default();
        let standard = argon2::Argon2::default().hash_password(b"correct horse").unwrap().to_string();
        assert!(hashing.verify("correct horse".to_owned(), Some(standard.clone())).await.unwrap());
        assert!(!hashing.verify("wrong".to_owned(), Some(standard)).await.unwrap());
        // Smaller memory, and argon2i: an older or differently tuned install.
        let params = Params::new(4096, 3, 1, None).unwrap();
        let tuned = argon2::Argon2::new(Algorithm::Argon2i, Version::V0x13, params);
        let tuned = tuned.hash_password(b"correct horse").unwrap().to_string();
        assert!(hashing.verify("correct horse".to_owned(), Some(tuned)).await.unwrap());
        assert!(!hashing.verify("correct horse".to_owned(), Some("$argon2id$garbage".to_owned())).await.unwrap());
    }

    #[tokio::test]
    async fn no_account_never_verifies() {
        let hashing = Hashing::default();
        assert!(!hashing.verify("meshwork decoy password".to_owned(), None).await.unwrap());
    }

    #[tokio::test]
    async fn working_memory_is_reused_never_more_than_one_buffer_per_slot() {
        let hashing = Hashing::new(2, Duration::from_secs(30));
        let attempts: Vec<_> = (0..8)
            .map(|i| {
                let hashing = hashing.clone();
                tokio::spawn(async move { hashing.verify(format!("guess {i}"), None).await.unwrap() })
            })
            .collect();
        for attempt in attempts {
            assert!(!attempt.await.unwrap());
        }
        let buffers = hashing.memory.lock().unwrap().len();
        assert!((1..=2).contains(&buffers), "{buffers} buffers for 2 slots");
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

    #[tokio::test]
    async fn a_dropped_caller_keeps_its_slot_until_its_hash_is_done() {
        let hashing = Hashing::new(1, Duration::from_secs(2));
        let abandoned = hashing.clone();
        let caller = tokio::spawn(async move { abandoned.verify("guess".to_owned(), None).await });
        // Wait until the hash holds the only slot, then drop its caller.
        while hashing.slots.available_permits() == 1 {
            tokio::task::yield_now().await;
        }
        caller.abort();
        assert!(caller.await.unwrap_err().is_cancelled());
        assert_eq!(hashing.slots.available_permits(), 0, "the abandoned hash still holds its slot");
    }
}
