//! Slows password guessing per account: after a few failed logins for one
//! email, further attempts for it are refused for a while that doubles with
//! each failure (capped), before any password is hashed. A success clears it.
//! The table is bounded, so made-up emails cannot grow it without limit.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures allowed before attempts are spaced out.
const FREE_FAILURES: u32 = 5;
/// The longest an account is held back.
const MAX_DELAY: Duration = Duration::from_secs(60);
/// Accounts tracked at most; past it, entries no longer held back are dropped.
const MAX_TRACKED: usize = 50_000;

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    /// No attempt is accepted before this.
    blocked_until: Instant,
}

#[derive(Debug, Default)]
pub struct LoginThrottle {
    accounts: Mutex<HashMap<String, Failures>>,
}

impl LoginThrottle {
    /// `Err(wait)` while the account is held back.
    pub fn check(&self, account: &str, now: Instant) -> Result<(), Duration> {
        let accounts = self.accounts.lock().expect("throttle lock");
        match accounts.get(account) {
            Some(failures) if failures.blocked_until > now => Err(failures.blocked_until - now),
            _ => Ok(()),
        }
    }

    pub fn failed(&self, account: &str, now: Instant) {
        let mut accounts = self.accounts.lock().expect("throttle lock");
        if accounts.len() >= MAX_TRACKED && !accounts.contains_key(account) {
            accounts.retain(|_, failures| failures.blocked_until > now);
            if accounts.len() >= MAX_TRACKED {
                return;
            }
        }
        let failures = accounts.entry(account.to_owned()).or_insert(Failures { count: 0, blocked_until: now });
        failures.count += 1;
        if failures.count >= FREE_FAILURES {
            let doublings = (failures.count - FREE_FAILURES).min(16);
            let delay = Duration::from_secs(1 << doublings).min(MAX_DELAY);
            failures.blocked_until = now + delay;
        }
    }

    pub fn succeeded(&self, account: &str) {
        self.accounts.lock().expect("throttle lock").remove(account);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_failures_space_out_attempts_and_a_success_clears_them() {
        let throttle = LoginThrottle::default();
        let start = Instant::now();
        for _ in 0..FREE_FAILURES - 1 {
            throttle.failed("a@example.com", start);
            assert_eq!(throttle.check("a@example.com", start), Ok(()));
        }
        throttle.failed("a@example.com", start);
        assert_eq!(throttle.check("a@example.com", start), Err(Duration::from_secs(1)));
        assert_eq!(throttle.check("b@example.com", start), Ok(()), "other accounts are not held back");
        let later = start + Duration::from_secs(1);
        assert_eq!(throttle.check("a@example.com", later), Ok(()));
        throttle.failed("a@example.com", later);
        assert_eq!(throttle.check("a@example.com", later), Err(Duration::from_secs(2)));
        for _ in 0..20 {
            throttle.failed("a@example.com", later);
        }
        assert_eq!(throttle.check("a@example.com", later), Err(MAX_DELAY));
        throttle.succeeded("a@example.com");
        assert_eq!(throttle.check("a@example.com", later), Ok(()));
    }
}
