//! Exponential backoff with full jitter (AWS architecture blog, "Exponential
//! Backoff And Jitter"): the n-th wait is uniform in `[0, min(max, base·2ⁿ)]`,
//! which spreads retrying clients apart instead of synchronising them.

use std::time::Duration;

use rand::Rng;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    /// 100 ms doubling up to 5 s: DESIGN §6.
    fn default() -> Self {
        Self { base: Duration::from_millis(100), max: Duration::from_secs(5) }
    }
}

impl Backoff {
    /// The ceiling of the wait before retry number `attempt` (0-based).
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.min(31));
        self.base.saturating_mul(factor).min(self.max)
    }

    /// A random wait in `[0, ceiling(attempt)]`.
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self.ceiling(attempt);
        if ceiling.is_zero() {
            return ceiling;
        }
        Duration::from_nanos(rand::rng().random_range(0..=ceiling.as_nanos() as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceiling_doubles_up_to_the_maximum() {
        let backoff = Backoff::default();
        let ceilings: Vec<u64> = (0..8).map(|n| backoff.ceiling(n).as_millis() as u64).collect();
        assert_eq!(ceilings, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        assert_eq!(backoff.ceiling(u32::MAX), Duration::from_secs(5));
    }

    #[test]
    fn delays_stay_within_their_ceiling() {
        let backoff = Backoff::default();
        for attempt in 0..10 {
            for _ in 0..100 {
                assert!(backoff.delay(attempt) <= backoff.ceiling(attempt));
            }
        }
    }
}
