//! A circuit breaker for one endpoint. Closed, it counts consecutive
//! failures; at the threshold it opens and refuses every call for the open
//! period; then it is half-open and lets a few trial calls through: if they
//! all succeed it closes, if one fails it opens again.
//!
//! Only failures that say the endpoint is unwell count (UNAVAILABLE,
//! DEADLINE_EXCEEDED, transport errors). A client error (NOT_FOUND,
//! INVALID_ARGUMENT, ...) never counts against it: it is an answer, so it
//! shows the endpoint alive, as a success does.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failures that open the breaker.
    pub failure_threshold: u32,
    /// How long it stays open before trial calls.
    pub open_for: Duration,
    /// Trial calls let through while half-open; all must succeed to close.
    pub trial_calls: u32,
}

impl Default for BreakerConfig {
    /// DESIGN §6: 5 failures, open 60 s, 3 trial calls.
    fn default() -> Self {
        Self { failure_threshold: 5, open_for: Duration::from_secs(60), trial_calls: 3 }
    }
}

/// The breaker's state, as exported in `circuit_breaker_state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    /// The gauge value: 0 closed, 1 open, 2 half-open.
    pub fn as_gauge(self) -> f64 {
        match self {
            Self::Closed => 0.0,
            Self::Open => 1.0,
            Self::HalfOpen => 2.0,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }
}

/// What a call's outcome means to the breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// The endpoint is unwell (unavailable, timed out, transport error).
    Failure,
    /// An answer that says nothing about the endpoint's health (a client
    /// error, a cancelled call).
    Neutral,
}

impl Outcome {
    /// Classifies a gRPC status by what it says about the server.
    pub fn of_status(code: tonic::Code) -> Self {
        use tonic::Code;
        match code {
            Code::Unavailable | Code::DeadlineExceeded => Self::Failure,
            // The server is broken or busy, or the caller left: no verdict.
            Code::Cancelled | Code::Unknown | Code::Internal | Code::DataLoss | Code::ResourceExhausted => {
                Self::Neutral
            }
            // Ok, and every answer about the request itself.
            _ => Self::Success,
        }
    }
}

#[derive(Debug)]
enum Inner {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { admitted: u32, succeeded: u32 },
}

/// Called on every state change (for metrics and logs).
pub type OnTransition = Arc<dyn Fn(BreakerState, BreakerState) + Send + Sync>;

#[derive(Clone)]
pub struct CircuitBreaker {
    config: BreakerConfig,
    inner: Arc<Mutex<Inner>>,
    on_transition: Option<OnTransition>,
}

/// Refused: the breaker is open; retry after this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub retry_after: Duration,
}

impl CircuitBreaker {
    pub fn new(config: BreakerConfig) -> Self {
        Self { config, inner: Arc::new(Mutex::new(Inner::Closed { failures: 0 })), on_transition: None }
    }

    pub fn on_transition(mut self, callback: OnTransition) -> Self {
        self.on_transition = Some(callback);
        self
    }

    pub fn state(&self) -> BreakerState {
        let mut inner = self.inner.lock().expect("breaker lock");
        self.refresh(&mut inner);
        state_of(&inner)
    }

    /// Whether a call may go now (and, half-open, takes a trial slot).
    pub fn try_acquire(&self) -> Result<(), Refused> {
        let mut inner = self.inner.lock().expect("breaker lock");
        self.refresh(&mut inner);
        match &mut *inner {
            Inner::Closed { .. } => Ok(()),
            Inner::Open { until } => Err(Refused { retry_after: until.saturating_duration_since(Instant::now()) }),
            Inner::HalfOpen { admitted, .. } if *admitted < self.config.trial_calls => {
                *admitted += 1;
                Ok(())
            }
            // Every trial slot is taken: wait for their verdict.
            Inner::HalfOpen { .. } => Err(Refused { retry_after: Duration::from_secs(1) }),
        }
    }

    /// How long until an open breaker lets trial calls through; `None` when
    /// it is not open. Takes no trial slot.
    pub fn open_remaining(&self) -> Option<Duration> {
        let mut inner = self.inner.lock().expect("breaker lock");
        self.refresh(&mut inner);
        match &*inner {
            Inner::Open { until } => Some(until.saturating_duration_since(Instant::now())),
            _ => None,
        }
    }

    /// Runs `call` if the breaker lets it through, and records its outcome;
    /// refused calls fail at once with UNAVAILABLE.
    pub async fn call<T, F, Fut>(&self, call: F) -> Result<T, tonic::Status>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, tonic::Status>>,
    {
        if let Err(refused) = self.try_acquire() {
            return Err(tonic::Status::unavailable(format!(
                "circuit breaker open; retry in {} s",
                refused.retry_after.as_secs().max(1)
            )));
        }
        let result = call().await;
        self.record(Outcome::of_status(result.as_ref().map_or_else(tonic::Status::code, |_| tonic::Code::Ok)));
        result
    }

    /// Records the outcome of a call that [`CircuitBreaker::try_acquire`] let through.
    pub fn record(&self, outcome: Outcome) {
        let mut inner = self.inner.lock().expect("breaker lock");
        let before = state_of(&inner);
        let next = match (&*inner, outcome) {
            (Inner::Closed { .. }, Outcome::Success) => Some(Inner::Closed { failures: 0 }),
            (Inner::Closed { failures }, Outcome::Failure) if failures + 1 >= self.config.failure_threshold => {
                Some(Inner::Open { until: Instant::now() + self.config.open_for })
            }
            (Inner::Closed { failures }, Outcome::Failure) => Some(Inner::Closed { failures: failures + 1 }),
            (Inner::HalfOpen { .. }, Outcome::Failure) => {
                Some(Inner::Open { until: Instant::now() + self.config.open_for })
            }
            (Inner::HalfOpen { succeeded, .. }, Outcome::Success) if succeeded + 1 >= self.config.trial_calls => {
                Some(Inner::Closed { failures: 0 })
            }
            (Inner::HalfOpen { admitted, succeeded }, Outcome::Success) => {
                Some(Inner::HalfOpen { admitted: *admitted, succeeded: succeeded + 1 })
            }
            (Inner::HalfOpen { admitted, succeeded }, Outcome::Neutral) => {
                // The trial said nothing: free its slot for another.
                Some(Inner::HalfOpen { admitted: admitted.saturating_sub(1), succeeded: *succeeded })
            }
            (Inner::Closed { .. } | Inner::Open { .. }, _) => None,
        };
        if let Some(next) = next {
            *inner = next;
        }
        let after = state_of(&inner);
        drop(inner);
        self.notify(before, after);
    }

    /// Open -> half-open once the open period has passed.
    fn refresh(&self, inner: &mut Inner) {
        if let Inner::Open { until } = inner
            && Instant::now() >= *until
        {
            *inner = Inner::HalfOpen { admitted: 0, succeeded: 0 };
            self.notify(BreakerState::Open, BreakerState::HalfOpen);
        }
    }

    fn notify(&self, before: BreakerState, after: BreakerState) {
        if before != after
            && let Some(callback) = &self.on_transition
        {
            callback(before, after);
        }
    }
}

fn state_of(inner: &Inner) -> BreakerState {
    match inner {
        Inner::Closed { .. } => BreakerState::Closed,
        Inner::Open { .. } => BreakerState::Open,
        Inner::HalfOpen { .. } => BreakerState::HalfOpen,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Transitions = Arc<Mutex<Vec<(BreakerState, BreakerState)>>>;

    fn breaker() -> (CircuitBreaker, Transitions) {
        let transitions = Arc::new(Mutex::new(Vec::new()));
        let seen = transitions.clone();
        let breaker = CircuitBreaker::new(BreakerConfig::default())
            .on_transition(Arc::new(move |from, to| seen.lock().unwrap().push((from, to))));
        (breaker, transitions)
    }

    fn fail(breaker: &CircuitBreaker, times: u32) {
        for _ in 0..times {
            breaker.try_acquire().unwrap();
            breaker.record(Outcome::Failure);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn circuit_opens_after_five_consecutive_failures() {
        let (breaker, transitions) = breaker();
        fail(&breaker, 4);
        assert_eq!(breaker.state(), BreakerState::Closed);
        fail(&breaker, 1);
        assert_eq!(breaker.state(), BreakerState::Open);
        assert_eq!(breaker.try_acquire(), Err(Refused { retry_after: Duration::from_secs(60) }));
        assert_eq!(*transitions.lock().unwrap(), [(BreakerState::Closed, BreakerState::Open)]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_success_resets_the_count_and_client_errors_never_count() {
        let (breaker, _) = breaker();
        fail(&breaker, 4);
        breaker.try_acquire().unwrap();
        breaker.record(Outcome::Success);
        fail(&breaker, 4);
        for _ in 0..10 {
            breaker.try_acquire().unwrap();
            breaker.record(Outcome::of_status(tonic::Code::NotFound));
        }
        assert_eq!(breaker.state(), BreakerState::Closed);
        assert_eq!(Outcome::of_status(tonic::Code::InvalidArgument), Outcome::Success, "the endpoint answered");
        assert_eq!(Outcome::of_status(tonic::Code::Internal), Outcome::Neutral);
        assert_eq!(Outcome::of_status(tonic::Code::DeadlineExceeded), Outcome::Failure);
    }

    #[tokio::test(start_paused = true)]
    async fn after_the_open_period_three_successful_trials_close_it() {
        let (breaker, transitions) = breaker();
        fail(&breaker, 5);
        tokio::time::advance(Duration::from_secs(59)).await;
        assert_eq!(breaker.try_acquire(), Err(Refused { retry_after: Duration::from_secs(1) }));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        for _ in 0..3 {
            breaker.try_acquire().unwrap();
        }
        assert!(breaker.try_acquire().is_err(), "only three trials at a time");
        for _ in 0..3 {
            breaker.record(Outcome::Success);
        }
        assert_eq!(breaker.state(), BreakerState::Closed);
        assert_eq!(
            *transitions.lock().unwrap(),
            [
                (BreakerState::Closed, BreakerState::Open),
                (BreakerState::Open, BreakerState::HalfOpen),
                (BreakerState::HalfOpen, BreakerState::Closed),
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_guarded_call_is_refused_while_open_without_running() {
        let (breaker, _) = breaker();
        fail(&breaker, 5);
        let mut ran = false;
        let refused = breaker
            .call(|| async {
                ran = true;
                Ok::<_, tonic::Status>(())
            })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::Unavailable);
        assert!(!ran);
        tokio::time::advance(Duration::from_secs(60)).await;
        breaker.call(|| async { Ok::<_, tonic::Status>(()) }).await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_trial_opens_it_again() {
        let (breaker, _) = breaker();
        fail(&breaker, 5);
        tokio::time::advance(Duration::from_secs(60)).await;
        breaker.try_acquire().unwrap();
        breaker.record(Outcome::Success);
        breaker.try_acquire().unwrap();
        breaker.record(Outcome::Failure);
        assert_eq!(breaker.state(), BreakerState::Open);
        assert_eq!(breaker.try_acquire(), Err(Refused { retry_after: Duration::from_secs(60) }));
    }
}
