//! When to order: pure functions of a certificate's validity and the clock (Unix seconds), so the policy is
//! tested by tables and [`super::Manager`] only asks them. A stored certificate is reused while more than a
//! third of its lifetime remains; renewal starts at two thirds of the lifetime, a little earlier by a random
//! jitter (replicas and tenants issued together do not all renew in the same second); failed orders are retried
//! after an exponentially growing delay, never sooner than the CA asked (`rateLimited`).

use std::time::Duration;

/// The first retry after a failed order (sooner for short-lived certificates, see [`retry_after`]).
pub const FIRST_RETRY: Duration = Duration::from_secs(60);
/// The longest wait between retries: a CA that is down for a day is still asked a few times a day.
pub const MAX_RETRY: Duration = Duration::from_secs(6 * 3600);
/// The soonest a failed order is retried.
pub const MIN_RETRY: Duration = Duration::from_secs(1);
/// Let's Encrypt's rate limits refill over hours; an order refused as `rateLimited` waits at least this long.
pub const RATE_LIMITED_RETRY: Duration = Duration::from_secs(3600);

/// Whether a certificate valid from `not_before` to `not_after` may still be served at `now` instead of
/// ordering a new one: more than a third of its lifetime left.
pub fn reusable(now: i64, not_before: i64, not_after: i64) -> bool {
    let lifetime = i128::from(not_after) - i128::from(not_before);
    lifetime > 0 && (i128::from(not_after) - i128::from(now)) * 3 > lifetime
}

/// When to renew a certificate valid from `not_before` to `not_after`: at two thirds of its lifetime, earlier by
/// `jitter` (0..=1, clamped) times a twentieth of the lifetime.
pub fn renew_at(not_before: i64, not_after: i64, jitter: f64) -> i64 {
    let lifetime = (i128::from(not_after) - i128::from(not_before)).max(0);
    let spread = (lifetime / 20) as f64 * jitter.clamp(0.0, 1.0);
    let at = i128::from(not_before) + lifetime * 2 / 3 - spread as i128;
    i64::try_from(at).unwrap_or(i64::MAX)
}

/// The wait before the next order after `failures` consecutive failed ones (1 = the first failure):
/// [`FIRST_RETRY`] doubling up to [`MAX_RETRY`]; at least [`RATE_LIMITED_RETRY`] when the CA said
/// `rateLimited`. For a renewal of a certificate with `lifetime`, both bounds shrink with it (a hundredth and a
/// tenth of it, at least [`MIN_RETRY`]), so a short-lived certificate is retried many times before it expires.
pub fn retry_after(failures: u32, rate_limited: bool, lifetime: Option<Duration>) -> Duration {
    let first = lifetime.map_or(FIRST_RETRY, |l| (l / 100).clamp(MIN_RETRY, FIRST_RETRY));
    let most = lifetime.map_or(MAX_RETRY, |l| (l / 10).clamp(first, MAX_RETRY));
    let doublings = failures.saturating_sub(1).min(16);
    let delay = first.saturating_mul(1 << doublings).min(most);
    if rate_limited {
        delay.max(RATE_LIMITED_RETRY)
    } else {
        delay
    }
}

/// A number in 0..1 that differs between calls and processes, for [`renew_at`]'s jitter (std's hasher keys are
/// random per process and per `RandomState`; no cryptographic quality is needed).
pub fn jitter() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;

    #[test]
    fn stored_certificates_are_reused_with_more_than_a_third_left() {
        // A 90-day certificate from day 0: reusable until day 60.
        let cases = [
            (0, true),
            (59 * DAY, true),
            (60 * DAY - 1, true),
            (60 * DAY, false),
            (89 * DAY, false),
            (91 * DAY, false),
            (-DAY, true),
        ];
        for (now, want) in cases {
            assert_eq!(reusable(now, 0, 90 * DAY), want, "now {now}");
        }
        assert!(!reusable(0, 10, 10), "zero lifetime");
        assert!(!reusable(0, 10, 5), "not_after before not_before");
        assert!(reusable(i64::MIN, i64::MIN, i64::MAX), "the widest range does not overflow");
    }

    #[test]
    fn renewal_at_two_thirds_with_bounded_jitter() {
        let cases = [
            (0, 90 * DAY, 0.0, 60 * DAY),
            (0, 90 * DAY, 1.0, 60 * DAY - 90 * DAY / 20),
            (0, 90 * DAY, 0.5, 60 * DAY - 90 * DAY / 40),
            (0, 90 * DAY, 7.0, 60 * DAY - 90 * DAY / 20),
            (0, 90 * DAY, -1.0, 60 * DAY),
            (1000, 1000 + 6 * DAY, 0.0, 1000 + 4 * DAY),
            (50, 10, 0.0, 50),
        ];
        for (not_before, not_after, jitter, want) in cases {
            assert_eq!(renew_at(not_before, not_after, jitter), want, "{not_before}..{not_after} j{jitter}");
        }
        // Renewal always falls where the certificate is no longer reused, so a restart never orders early.
        for j in [0.0, 0.3, 1.0] {
            assert!(reusable(renew_at(0, 90 * DAY, j) - 1, 0, 90 * DAY));
        }
    }

    #[test]
    fn retries_back_off_exponentially_and_respect_rate_limits() {
        let (s, m) = (Duration::from_secs, |n: u64| Duration::from_secs(n * 60));
        let days = |n: u64| Some(Duration::from_secs(n * 86_400));
        let cases = [
            (1, false, None, m(1)),
            (2, false, None, m(2)),
            (3, false, None, m(4)),
            (9, false, None, m(256)),
            (10, false, None, MAX_RETRY),
            (u32::MAX, false, None, MAX_RETRY),
            (0, false, None, m(1)),
            (1, true, None, RATE_LIMITED_RETRY),
            (10, true, None, MAX_RETRY),
            // A 90-day certificate: the same as a first issuance.
            (1, false, days(90), m(1)),
            (10, false, days(90), MAX_RETRY),
            // A 6-day certificate: 1 minute doubling to 6 hours (a tenth of its life, 14.4 hours, is more).
            (1, false, days(6), m(1)),
            (12, false, days(6), MAX_RETRY),
            // A 40-second certificate: 1 s, 2 s, then at most 4 s.
            (1, false, Some(s(40)), s(1)),
            (2, false, Some(s(40)), s(2)),
            (3, false, Some(s(40)), s(4)),
            (9, false, Some(s(40)), s(4)),
        ];
        for (failures, rate_limited, lifetime, want) in cases {
            assert_eq!(
                retry_after(failures, rate_limited, lifetime),
                want,
                "{failures} {rate_limited} {lifetime:?}"
            );
        }
    }

    #[test]
    fn jitter_is_in_range_and_varies() {
        let samples: Vec<f64> = (0..64).map(|_| jitter()).collect();
        assert!(samples.iter().all(|j| (0.0..1.0).contains(j)));
        assert!(samples.windows(2).any(|w| w[0] != w[1]));
    }
}
