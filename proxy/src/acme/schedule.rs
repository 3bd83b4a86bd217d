//! When to order: pure functions of a certificate's validity, the CA's answers and the clock (Unix seconds), so
//! the policy is tested by tables and [`super::Manager`] only asks them (and does the I/O). With the CA's
//! renewal information (RFC 9773, ARI) a certificate is renewed at a random time inside the window the CA
//! suggests, at once when that window is already over (how a CA asks for a revoked certificate to be replaced);
//! without it, at two thirds of the lifetime, a little earlier by a random jitter (replicas and tenants issued
//! together do not all renew in the same second); an expired certificate at once. The renewal information is
//! asked again after the CA's `Retry-After`, bounded to a minute..a day (RFC 9773 §4.3.2). Failed orders are
//! retried after an exponentially growing delay, never sooner than the CA's `Retry-After` says.

use std::time::Duration;

/// The first retry after a failed order (sooner for short-lived certificates, see [`retry_after`]).
pub const FIRST_RETRY: Duration = Duration::from_secs(60);
/// The longest wait between retries: a CA that is down for a day is still asked a few times a day.
pub const MAX_RETRY: Duration = Duration::from_secs(6 * 3600);
/// The soonest a failed order is retried.
pub const MIN_RETRY: Duration = Duration::from_secs(1);
/// Let's Encrypt's rate limits refill over hours; an order refused as `rateLimited` without a `Retry-After`
/// waits at least this long.
pub const RATE_LIMITED_RETRY: Duration = Duration::from_secs(3600);
/// The longest a CA's `Retry-After` is obeyed: a date years ahead (a broken CA, a clock far off) must not stop
/// renewals for good. Let's Encrypt's longest rate-limit refill is a week.
pub const MAX_CA_RETRY: Duration = Duration::from_secs(7 * 86_400);
/// The bounds on the interval between two renewalInfo checks, whatever the CA's `Retry-After` (RFC 9773
/// §4.3.2 gives these as its example of reasonable limits).
pub const RENEWAL_INFO_MIN: Duration = Duration::from_secs(60);
/// See [`RENEWAL_INFO_MIN`].
pub const RENEWAL_INFO_MAX: Duration = Duration::from_secs(86_400);

/// A renewal window the CA suggested (RFC 9773 §4.2), Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// The window's start.
    pub start: i64,
    /// The window's end; a window whose end is not after its start is invalid (RFC 9773 §4.2).
    pub end: i64,
}

/// Why a certificate is to be replaced (the `trigger` label of `kaas_proxy_acme_renewals_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// Two thirds of the lifetime: the CA gave no (valid) renewal information.
    Schedule,
    /// A time inside the window the CA suggested.
    AriWindow,
    /// The CA's window is already over: replace at once (Let's Encrypt's signal for a revoked certificate).
    AriNow,
    /// The certificate has expired.
    Expired,
    /// The tenant's names changed.
    Names,
}

impl Trigger {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Trigger::Schedule => "schedule",
            Trigger::AriWindow => "ari_window",
            Trigger::AriNow => "ari_now",
            Trigger::Expired => "expired",
            Trigger::Names => "names",
        }
    }
}

/// When to renew a certificate valid from `not_before` to `not_after`, seen at `now`, and why: at once when it
/// has expired; with a valid `window` from the CA, at `jitter` (0..=1, clamped) of the way through it (RFC 9773
/// §4.2: a uniformly random time inside it; a time already past means at once), but no later than three
/// quarters of the lifetime, so failed attempts have a quarter of it before expiry (Let's Encrypt's windows lie
/// well before that; Pebble's window for a certificate of seconds spans all of it); a window wholly past means at
/// once; without one, [`renew_at`].
pub fn renewal(
    now: i64,
    not_before: i64,
    not_after: i64,
    window: Option<Window>,
    jitter: f64,
) -> (i64, Trigger) {
    if now >= not_after {
        return (now, Trigger::Expired);
    }
    match window.filter(|w| w.start < w.end) {
        Some(w) if w.end <= now => (now, Trigger::AriNow),
        Some(w) => {
            let span = (i128::from(w.end) - i128::from(w.start)) as f64;
            let at = i128::from(w.start) + (span * jitter.clamp(0.0, 1.0)) as i128;
            let lifetime = (i128::from(not_after) - i128::from(not_before)).max(0);
            let latest = i128::from(not_after) - lifetime / 4;
            (i64::try_from(at.min(latest)).unwrap_or(i64::MAX), Trigger::AriWindow)
        }
        None => (renew_at(not_before, not_after, jitter), Trigger::Schedule),
    }
}

/// When to ask the CA's renewalInfo again after an answer at `now` carrying `retry_after`: then, but no sooner
/// than [`RENEWAL_INFO_MIN`] and no later than [`RENEWAL_INFO_MAX`].
pub fn next_renewal_info(now: i64, retry_after: Duration) -> i64 {
    let wait = retry_after.clamp(RENEWAL_INFO_MIN, RENEWAL_INFO_MAX).as_secs();
    now.saturating_add(i64::try_from(wait).unwrap_or(i64::MAX))
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
/// [`FIRST_RETRY`] doubling up to [`MAX_RETRY`]. For a renewal of a certificate with `lifetime`, both bounds
/// shrink with it (a hundredth and a tenth of it, at least [`MIN_RETRY`]), so a short-lived certificate is
/// retried many times before it expires. Never sooner than the CA's `Retry-After` (`ca`, the wait it asked for,
/// obeyed up to [`MAX_CA_RETRY`]); when the CA said `rateLimited` without one, at least [`RATE_LIMITED_RETRY`].
pub fn retry_after(
    failures: u32,
    rate_limited: bool,
    lifetime: Option<Duration>,
    ca: Option<Duration>,
) -> Duration {
    let first = lifetime.map_or(FIRST_RETRY, |l| (l / 100).clamp(MIN_RETRY, FIRST_RETRY));
    let most = lifetime.map_or(MAX_RETRY, |l| (l / 10).clamp(first, MAX_RETRY));
    let doublings = failures.saturating_sub(1).min(16);
    let delay = first.saturating_mul(1 << doublings).min(most);
    match ca {
        Some(ca) => delay.max(ca.min(MAX_CA_RETRY)),
        None if rate_limited => delay.max(RATE_LIMITED_RETRY),
        None => delay,
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
                retry_after(failures, rate_limited, lifetime, None),
                want,
                "{failures} {rate_limited} {lifetime:?}"
            );
        }
    }

    #[test]
    fn the_cas_retry_after_is_never_undercut() {
        let (s, m) = (Duration::from_secs, |n: u64| Duration::from_secs(n * 60));
        let short = Some(s(40));
        let cases = [
            // Longer than the backoff: the CA's wait, rate limited or not.
            (1, false, None, Some(m(5)), m(5)),
            (1, true, None, Some(s(5)), m(1)),
            (1, true, short, Some(s(5)), s(5)),
            (3, false, short, Some(s(30)), s(30)),
            // A rateLimited refusal with the CA's Retry-After waits what it says, not the hour.
            (1, true, short, Some(m(10)), m(10)),
            // Shorter than the backoff: the backoff.
            (9, false, None, Some(s(5)), m(256)),
            (2, false, short, Some(Duration::ZERO), s(2)),
            // Absurd waits are bounded.
            (1, false, None, Some(s(365 * 86_400)), MAX_CA_RETRY),
            (1, true, None, Some(Duration::MAX), MAX_CA_RETRY),
        ];
        for (failures, rate_limited, lifetime, ca, want) in cases {
            assert_eq!(
                retry_after(failures, rate_limited, lifetime, ca),
                want,
                "{failures} {rate_limited} {lifetime:?} {ca:?}"
            );
        }
    }

    #[test]
    fn renewal_follows_the_cas_window_else_two_thirds() {
        use Trigger::*;
        let w = |start, end| Some(Window { start, end });
        let (nb, na) = (0, 90 * DAY);
        let cases = [
            // No renewal information: two thirds, with jitter.
            (DAY, None, 0.0, (60 * DAY, Schedule)),
            (DAY, None, 1.0, (60 * DAY - 90 * DAY / 20, Schedule)),
            // A window ahead: the point `jitter` of the way through it, not two thirds.
            (DAY, w(30 * DAY, 31 * DAY), 0.0, (30 * DAY, AriWindow)),
            (DAY, w(30 * DAY, 31 * DAY), 0.5, (30 * DAY + DAY / 2, AriWindow)),
            (DAY, w(30 * DAY, 31 * DAY), 1.0, (31 * DAY, AriWindow)),
            (DAY, w(30 * DAY, 31 * DAY), 9.0, (31 * DAY, AriWindow)),
            // Later than two thirds, when the CA says so.
            (DAY, w(62 * DAY, 64 * DAY), 0.5, (63 * DAY, AriWindow)),
            // A window that has begun: a time in it, which may be past (due at once).
            (30 * DAY + 10, w(30 * DAY, 31 * DAY), 0.0, (30 * DAY, AriWindow)),
            // A window wholly past: at once (the CA wants the certificate replaced, e.g. revoked).
            (DAY, w(DAY - 3600, DAY - 3599), 0.5, (DAY, AriNow)),
            (DAY, w(0, DAY), 0.5, (DAY, AriNow)),
            // A window reaching past three quarters of the lifetime is cut there.
            (DAY, w(85 * DAY, 95 * DAY), 0.5, (67 * DAY + DAY / 2, AriWindow)),
            (DAY, w(60 * DAY, 70 * DAY), 1.0, (67 * DAY + DAY / 2, AriWindow)),
            (0, w(0, 40), 1.0, (40, AriWindow)),
            // An invalid window (end not after start) counts as none.
            (DAY, w(30 * DAY, 30 * DAY), 0.0, (60 * DAY, Schedule)),
            (DAY, w(31 * DAY, 30 * DAY), 0.0, (60 * DAY, Schedule)),
            // Expired: at once, whatever the CA said.
            (na, w(95 * DAY, 96 * DAY), 0.0, (na, Expired)),
            (na + DAY, None, 0.0, (na + DAY, Expired)),
        ];
        for (now, window, jitter, want) in cases {
            assert_eq!(renewal(now, nb, na, window, jitter), want, "now {now} {window:?} j{jitter}");
        }
        // A 40-second certificate with Pebble's window (all of its life): no later than second 30.
        assert_eq!(renewal(0, 0, 40, w(0, 40), 1.0), (30, AriWindow));
    }

    #[test]
    fn renewal_info_is_asked_again_after_the_cas_retry_after_within_bounds() {
        let s = Duration::from_secs;
        let cases = [
            (s(6 * 3600), 6 * 3600),
            (s(0), 60),
            (s(59), 60),
            (s(61), 61),
            (s(86_400), 86_400),
            (s(30 * 86_400), 86_400),
            (Duration::MAX, 86_400),
        ];
        for (retry, want) in cases {
            assert_eq!(next_renewal_info(1000, retry), 1000 + want, "{retry:?}");
        }
        assert_eq!(next_renewal_info(i64::MAX - 5, s(3600)), i64::MAX, "no overflow");
    }

    #[test]
    fn jitter_is_in_range_and_varies() {
        let samples: Vec<f64> = (0..64).map(|_| jitter()).collect();
        assert!(samples.iter().all(|j| (0.0..1.0).contains(j)));
        assert!(samples.windows(2).any(|w| w[0] != w[1]));
    }
}
