//! A retry budget (as in Finagle and linkerd): every first attempt deposits
//! a fraction of a token, every retry withdraws a whole one, and a starting
//! balance allows a few retries before traffic has deposited any. When a dependency fails
//! everything, retries stop at about `ratio` of the traffic instead of
//! multiplying it.

use std::sync::Mutex;

#[derive(Debug)]
pub struct RetryBudget {
    ratio: f64,
    max_tokens: f64,
    tokens: Mutex<f64>,
}

impl RetryBudget {
    /// Retries may add up to `ratio` (e.g. 0.2 = 20 %) to the traffic; the
    /// budget starts with `initial_retries` tokens and saves at most the
    /// deposits of 1000 requests beyond them.
    pub fn new(ratio: f64, initial_retries: u32) -> Self {
        let initial = f64::from(initial_retries);
        Self { ratio, max_tokens: initial + 1000.0 * ratio, tokens: Mutex::new(initial) }
    }

    /// Records a first attempt.
    pub fn deposit(&self) {
        let mut tokens = self.tokens.lock().expect("budget lock");
        *tokens = (*tokens + self.ratio).min(self.max_tokens);
    }

    /// Takes a token for a retry; false when the budget is spent.
    pub fn withdraw(&self) -> bool {
        let mut tokens = self.tokens.lock().expect("budget lock");
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

impl Default for RetryBudget {
    /// 20 % extra load from retries, 10 retries to start with.
    fn default() -> Self {
        Self::new(0.2, 10)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_are_bounded_by_the_ratio_of_traffic() {
        let budget = RetryBudget::new(0.2, 0);
        let mut allowed = 0;
        for _ in 0..1000 {
            budget.deposit();
            if budget.withdraw() {
                allowed += 1;
            }
        }
        assert!((190..=200).contains(&allowed), "{allowed} retries for 1000 requests");
    }

    #[test]
    fn a_few_retries_are_allowed_before_any_traffic() {
        let budget = RetryBudget::new(0.2, 3);
        assert!(budget.withdraw() && budget.withdraw() && budget.withdraw());
        assert!(!budget.withdraw());
    }
}
