//! Rate limiting per client identity: the verified token subject, else the
//! client's IP (taken from `X-Forwarded-For` only when the connection comes
//! from a configured trusted proxy). A token bucket per identity (governor's
//! GCRA); past it, 429 with `Retry-After` and `RateLimit-*` headers. The
//! gateway keeps two: every call, per identity; and calls to methods that
//! check a password, per client address, far tighter.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use http::{HeaderMap, HeaderName, HeaderValue};

// Built once: a name given as a string is checked and parsed on every insert.
const RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
const RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
const RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

type Limiter = RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock, StateInformationMiddleware>;

#[derive(Debug, Clone)]
pub struct RateLimitConfig {
    /// Requests per `period` per identity; `None` turns limiting off.
    pub rate: Option<NonZeroU32>,
    pub period: Duration,
    pub burst: NonZeroU32,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpAddr>,
}

impl RateLimitConfig {
    /// No limit at all.
    pub fn off() -> Self {
        Self { rate: None, period: Duration::from_secs(1), burst: NonZeroU32::MIN, trusted_proxies: Vec::new() }
    }
}

pub struct RateLimit {
    limiter: Option<Limiter>,
    /// The burst, as the `RateLimit-Limit` value: written once.
    limit: HeaderValue,
    trusted_proxies: Vec<IpAddr>,
    /// What a refusal says was exceeded.
    exceeded: &'static str,
}

/// Let through: what the `RateLimit-*` headers of the response say.
#[derive(Debug, Clone)]
pub struct Allowance {
    limit: HeaderValue,
    remaining: u32,
}

impl Allowance {
    /// Adds the `RateLimit-*` headers to a response's.
    pub fn write(&self, headers: &mut HeaderMap) {
        headers.insert(RATELIMIT_LIMIT, self.limit.clone());
        // Sent never indexed (HPACK's mark, which h2 takes from a value
        // marked sensitive, as it does the `traceparent`'s). Whenever calls
        // come faster than the bucket refills, the count differs from one
        // response to the next: each new one was added to the connection's
        // header table, pushing out entries that do repeat, and h2 compared
        // every response's count with each one still there (callgrind,
        // 2,000 passed-through calls at a limit of 100/s: 88,000 -> 84,000
        // instructions a call; no different when the count repeats).
        let mut remaining = HeaderValue::from(self.remaining);
        remaining.set_sensitive(true);
        headers.insert(RATELIMIT_REMAINING, remaining);
        headers.insert(RATELIMIT_RESET, HeaderValue::from_static("1"));
    }
}

/// Refused: the identity's bucket is empty.
#[derive(Debug)]
pub struct Limited {
    pub retry_after_secs: u64,
    pub headers: HeaderMap,
    pub exceeded: &'static str,
}

impl RateLimit {
    /// A limit whose refusals say `exceeded` ("rate limit exceeded").
    pub fn new(config: &RateLimitConfig, exceeded: &'static str) -> Self {
        let limiter = config.rate.and_then(|rate| {
            let quota = Quota::with_period(config.period / rate.get())?.allow_burst(config.burst);
            Some(RateLimiter::keyed(quota).with_middleware::<StateInformationMiddleware>())
        });
        let limit = config.burst.get().into();
        Self { limiter, limit, trusted_proxies: config.trusted_proxies.clone(), exceeded }
    }

    /// The identity to count a request against.
    pub fn identity(&self, subject: Option<&str>, peer: Option<SocketAddr>, headers: &HeaderMap) -> String {
        if let Some(subject) = subject {
            // Not `format!`: its machinery took 550 instructions a call (callgrind).
            return ["user:", subject].concat();
        }
        let Some(peer) = peer.map(|p| p.ip()) else { return "ip:unknown".to_owned() };
        if !self.trusted_proxies.contains(&peer) {
            return format!("ip:{peer}");
        }
        // The nearest address not a trusted proxy: the client as the last
        // trusted hop saw it.
        let forwarded = headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()).unwrap_or_default();
        let client = forwarded
            .rsplit(',')
            .filter_map(|part| part.trim().parse::<IpAddr>().ok())
            .find(|ip| !self.trusted_proxies.contains(ip))
            .unwrap_or(peer);
        format!("ip:{client}")
    }

    /// Takes a token from `identity`'s bucket: what to tell the caller
    /// (nothing when there is no limit), or a refusal. By value: the buckets
    /// are keyed by `String`, so a `&str` would be copied into one on every
    /// call.
    ///
    /// What is allowed is told as an [`Allowance`] written into the response
    /// when it is made, not as headers of its own to be merged into it:
    /// building a map and merging it took 1,400 instructions a call
    /// (callgrind, REST GETs through the gateway).
    pub fn check(&self, identity: String) -> Result<Option<Allowance>, Limited> {
        let Some(limiter) = &self.limiter else { return Ok(None) };
        match limiter.check_key(&identity) {
            Ok(snapshot) => {
                Ok(Some(Allowance { limit: self.limit.clone(), remaining: snapshot.remaining_burst_capacity() }))
            }
            Err(not_until) => {
                let mut headers = HeaderMap::new();
                headers.insert(RATELIMIT_LIMIT, self.limit.clone());
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                let retry_after_secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                headers.insert(RATELIMIT_REMAINING, 0.into());
                headers.insert(RATELIMIT_RESET, retry_after_secs.into());
                metrics::counter!("gateway_rate_limited_total").increment(1);
                Err(Limited { retry_after_secs, headers, exceeded: self.exceeded })
            }
        }
    }

    /// Forgets identities whose buckets are full again (bounds the memory).
    pub fn forget_idle(&self) {
        if let Some(limiter) = &self.limiter {
            limiter.retain_recent();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(per_second: u32, burst: u32, trusted: &[&str]) -> RateLimit {
        let config = RateLimitConfig {
            rate: NonZeroU32::new(per_second),
            period: Duration::from_secs(1),
            burst: NonZeroU32::new(burst).unwrap(),
            trusted_proxies: trusted.iter().map(|ip| ip.parse().unwrap()).collect(),
        };
        RateLimit::new(&config, "rate limit exceeded")
    }

    #[test]
    fn a_burst_passes_then_the_identity_waits() {
        let limit = limit(1, 3, &[]);
        for remaining in [2u32, 1, 0] {
            let allowance = limit.check("user:a".into()).expect("within the burst").expect("a limit");
            let mut headers = HeaderMap::new();
            allowance.write(&mut headers);
            assert_eq!(headers["ratelimit-limit"], "3");
            assert_eq!(headers["ratelimit-remaining"], remaining.to_string());
            assert!(headers["ratelimit-remaining"].is_sensitive(), "a count that changes is never indexed");
            assert!(!headers["ratelimit-limit"].is_sensitive(), "the limit repeats: indexed");
            assert_eq!(headers["ratelimit-reset"], "1");
        }
        let refused = limit.check("user:a".into()).expect_err("the bucket is empty");
        assert_eq!(refused.retry_after_secs, 1);
        assert!(limit.check("user:b".into()).is_ok(), "every identity has its own bucket");
    }

    #[test]
    fn forwarded_addresses_count_only_from_trusted_proxies() {
        let limit = limit(1, 1, &["10.0.0.1"]);
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "203.0.113.9, 10.0.0.1".parse().unwrap());
        let proxy: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        let stranger: SocketAddr = "198.51.100.7:5000".parse().unwrap();
        assert_eq!(limit.identity(None, Some(proxy), &headers), "ip:203.0.113.9");
        assert_eq!(limit.identity(None, Some(stranger), &headers), "ip:198.51.100.7", "a spoofed header is ignored");
        assert_eq!(limit.identity(Some("u1"), Some(stranger), &headers), "user:u1");
    }

    #[test]
    fn a_rate_per_minute_spaces_calls_out_by_seconds() {
        let config = RateLimitConfig {
            rate: NonZeroU32::new(10),
            period: Duration::from_secs(60),
            burst: NonZeroU32::new(2).unwrap(),
            trusted_proxies: Vec::new(),
        };
        let limit = RateLimit::new(&config, "too many sign-in attempts");
        assert!(limit.check("ip:198.51.100.7".into()).is_ok() && limit.check("ip:198.51.100.7".into()).is_ok());
        let refused = limit.check("ip:198.51.100.7".into()).expect_err("the burst is spent");
        assert_eq!(refused.retry_after_secs, 6, "one more every 60 s / 10");
        assert_eq!(refused.exceeded, "too many sign-in attempts");
    }

    #[test]
    fn no_rate_means_no_limit() {
        let limit = limit(0, 1, &[]);
        assert!((0..100).all(|_| limit.check("user:a".into()).is_ok_and(|allowance| allowance.is_none())));
    }
}
