//! How hard a process tries when it calls another (DESIGN §6): the
//! deadline, retries, breaker, bulkhead and balancer of its upstreams,
//! from settings. The gateway reads its own (`GATEWAY_TIMEOUT`, ...), the
//! services theirs (`MESHWORK_CALL_TIMEOUT`, ...), with the same defaults
//! and the same checks.

use resilience::{BreakerConfig, BulkheadConfig, Policy};

use crate::config::{ConfigError, Layers, Setting};
use crate::settings;

/// The names of a policy's settings.
pub struct PolicySettings {
    pub timeout: Setting,
    pub connect_timeout: Setting,
    pub retries: Setting,
    pub breaker_failures: Setting,
    pub breaker_open: Setting,
    pub breaker_trials: Setting,
    pub max_in_flight: Setting,
    pub max_queued: Setting,
    pub balancer: Setting,
}

impl PolicySettings {
    /// All nine, for a command's help.
    pub const fn all(&self) -> [Setting; 9] {
        [
            self.timeout,
            self.connect_timeout,
            self.retries,
            self.breaker_failures,
            self.breaker_open,
            self.breaker_trials,
            self.max_in_flight,
            self.max_queued,
            self.balancer,
        ]
    }
}

/// The services' calls to each other.
pub const SERVICES: PolicySettings = PolicySettings {
    timeout: settings::CALL_TIMEOUT,
    connect_timeout: settings::CALL_CONNECT_TIMEOUT,
    retries: settings::CALL_RETRIES,
    breaker_failures: settings::CALL_BREAKER_FAILURES,
    breaker_open: settings::CALL_BREAKER_OPEN,
    breaker_trials: settings::CALL_BREAKER_TRIALS,
    max_in_flight: settings::CALL_MAX_IN_FLIGHT,
    max_queued: settings::CALL_MAX_QUEUED,
    balancer: settings::CALL_BALANCER,
};

/// The policy `names` set in `layers`, each unset one at its default. A
/// zero deadline, breaker period or bulkhead, or a breaker that opens
/// after no failure or never lets a trial call through, is refused: each
/// would refuse every call.
pub fn parse(layers: &Layers, names: &PolicySettings) -> Result<Policy, ConfigError> {
    let defaults = Policy::default();
    Ok(Policy {
        timeout: layers.positive_duration_or(names.timeout.name, defaults.timeout)?,
        connect_timeout: layers.positive_duration_or(names.connect_timeout.name, defaults.connect_timeout)?,
        max_retries: layers.parse_or(names.retries.name, defaults.max_retries)?,
        backoff: defaults.backoff,
        breaker: BreakerConfig {
            failure_threshold: layers.count_or(names.breaker_failures.name, defaults.breaker.failure_threshold)?,
            open_for: layers.positive_duration_or(names.breaker_open.name, defaults.breaker.open_for)?,
            trial_calls: layers.count_or(names.breaker_trials.name, defaults.breaker.trial_calls)?,
        },
        bulkhead: BulkheadConfig {
            max_in_flight: layers.count_or(names.max_in_flight.name, defaults.bulkhead.max_in_flight)?,
            max_queued: layers.parse_or(names.max_queued.name, defaults.bulkhead.max_queued)?,
        },
        strategy: layers.parse_or(names.balancer.name, defaults.strategy)?,
    })
}
