//! A tenant's byte-rate quotas: one token bucket per direction shared by all the tenant's connections, refilled
//! at the quota's rate and holding at most one second of it (the burst a client gets after a pause). Taking
//! more than the bucket holds returns the time the client must wait for the rate to hold again, which the
//! session answers with (see [`crate::kafka::throttle`]). Pure: the caller passes the time.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use kaas_route::Quota;

/// Longest throttle given at once, as Kafka's brokers cap theirs (`quota.window.num` × `quota.window.size`,
/// 11 s): a client far over its quota is slowed in steps, never parked for minutes.
pub const MAX_THROTTLE: Duration = Duration::from_secs(10);

/// A byte rate and what is left of it.
#[derive(Debug)]
pub struct RateLimit {
    bytes_per_second: f64,
    bucket: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    /// Bytes that may pass now; negative while a client owes time.
    tokens: f64,
    at: Option<Instant>,
}

impl RateLimit {
    /// A full bucket of `bytes_per_second` (at least 1).
    pub fn new(bytes_per_second: u64) -> Self {
        let rate = bytes_per_second.max(1) as f64;
        RateLimit { bytes_per_second: rate, bucket: Mutex::new(Bucket { tokens: rate, at: None }) }
    }

    /// Takes `bytes` at `now`; returns how long the client must wait before more passes (zero within quota,
    /// at most [`MAX_THROTTLE`]).
    pub fn take(&self, bytes: usize, now: Instant) -> Duration {
        let rate = self.bytes_per_second;
        let mut b = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
        let elapsed = b.at.map_or(0.0, |at| now.saturating_duration_since(at).as_secs_f64());
        b.tokens = (b.tokens + elapsed * rate).min(rate) - bytes as f64;
        b.at = Some(now);
        if b.tokens >= 0.0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64(-b.tokens / rate).min(MAX_THROTTLE)
    }
}

/// The tenant's quotas, each optional.
#[derive(Debug, Default)]
pub struct Quotas {
    /// Produce request bytes.
    pub produce: Option<RateLimit>,
    /// Fetch response bytes.
    pub fetch: Option<RateLimit>,
}

impl Quotas {
    /// From the route's `quota`.
    pub fn new(quota: Option<&Quota>) -> Self {
        let limit = |rate: Option<u64>| rate.map(RateLimit::new);
        match quota {
            Some(q) => {
                Quotas { produce: limit(q.produce_bytes_per_second), fetch: limit(q.fetch_bytes_per_second) }
            }
            None => Quotas::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_at_twice_its_rate_waits_half_the_time() {
        let limit = RateLimit::new(1000);
        let t0 = Instant::now();
        assert_eq!(limit.take(1000, t0), Duration::ZERO, "a second's burst passes at once");
        assert_eq!(limit.take(500, t0), Duration::from_millis(500), "then the debt is paid in time");
        // Half a second later the debt is paid; 1000 bytes at once owe a second again.
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!(limit.take(1000, t1), Duration::from_secs(1));
        // Sending 2000 bytes a second for ten seconds: the waits add up to the ten seconds of excess.
        let mut owed = Duration::ZERO;
        let limit = RateLimit::new(1000);
        for i in 0..20 {
            owed = limit.take(1000, t0 + Duration::from_millis(500 * i));
        }
        assert!(owed >= Duration::from_secs(9), "{owed:?}");
    }

    #[test]
    fn the_burst_is_one_second_and_the_wait_is_capped() {
        let limit = RateLimit::new(1000);
        let t0 = Instant::now();
        let later = t0 + Duration::from_secs(3600);
        assert_eq!(limit.take(1000, later), Duration::ZERO);
        assert_eq!(limit.take(1, later), Duration::from_millis(1), "an hour idle still banks only a second");
        assert_eq!(limit.take(1 << 30, later), MAX_THROTTLE);
        assert!(Quotas::new(None).produce.is_none());
        let q = Quota { produce_bytes_per_second: Some(5000), fetch_bytes_per_second: None };
        let quotas = Quotas::new(Some(&q));
        assert!(quotas.produce.is_some() && quotas.fetch.is_none());
    }
}
