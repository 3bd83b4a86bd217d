//! When the proxy may ask a tenant's cluster for its brokers on a client's behalf: a name `b<id>.<tenant>`
//! whose node id the broker table does not hold triggers a metadata refresh, which is work on the tenant's
//! cluster that anyone who can send a ClientHello could otherwise order at will. So a tenant is refreshed at
//! most once per [`MIN_REFRESH_INTERVAL`] (the answer holds every broker, so one refresh serves every id), an
//! id its cluster did not report is remembered as unknown for [`UNKNOWN_FOR`] (at most [`MAX_UNKNOWN`] ids),
//! and at most [`MAX_WAITERS`] connections wait for a refresh at once. Pure bookkeeping on instants the caller
//! passes; [`crate::upstream::Connector::resolve_broker`] does the I/O.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Least time between two refreshes of one tenant.
pub const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(5);
/// How long a node id the cluster did not report is answered as unknown without asking again.
pub const UNKNOWN_FOR: Duration = Duration::from_secs(30);
/// Unknown ids remembered per tenant; beyond it the oldest are forgotten (they then wait for the interval).
pub const MAX_UNKNOWN: usize = 1024;
/// Connections of one tenant waiting for its refresh at once; more are refused at once.
pub const MAX_WAITERS: usize = 32;

/// What to do about a node id the broker table does not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Ask the cluster.
    Refresh,
    /// The cluster was asked lately (or said so about this id): the id is unknown.
    Unknown,
    /// The cluster was asked lately and did not answer: unavailable, without asking again.
    RecentlyFailed,
}

/// One tenant's refresh bookkeeping.
#[derive(Debug, Default)]
pub struct RefreshGate {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// When the last refresh ended, and whether it succeeded.
    last: Option<(Instant, bool)>,
    /// Ids the cluster did not report, and when that was learned.
    unknown: HashMap<i32, Instant>,
}

impl RefreshGate {
    /// What to do about `id` at `now`.
    pub fn verdict(&self, id: i32, now: Instant) -> Verdict {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.unknown.get(&id).is_some_and(|&at| now.saturating_duration_since(at) < UNKNOWN_FOR) {
            return Verdict::Unknown;
        }
        match state.last {
            Some((at, ok)) if now.saturating_duration_since(at) < MIN_REFRESH_INTERVAL => {
                if ok {
                    Verdict::Unknown
                } else {
                    Verdict::RecentlyFailed
                }
            }
            _ => Verdict::Refresh,
        }
    }

    /// A refresh ended at `now`; `ok` when the cluster answered.
    pub fn refreshed(&self, now: Instant, ok: bool) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).last = Some((now, ok));
    }

    /// The cluster, asked at `now`, did not report `id`.
    pub fn unknown(&self, id: i32, now: Instant) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.unknown.len() >= MAX_UNKNOWN && !state.unknown.contains_key(&id) {
            state.unknown.retain(|_, at| now.saturating_duration_since(*at) < UNKNOWN_FOR);
            if state.unknown.len() >= MAX_UNKNOWN {
                let oldest = state.unknown.iter().min_by_key(|(_, at)| **at).map(|(id, _)| *id);
                if let Some(oldest) = oldest {
                    state.unknown.remove(&oldest);
                }
            }
        }
        state.unknown.insert(id, now);
    }

    /// Ids remembered as unknown.
    #[cfg(test)]
    fn remembered(&self) -> usize {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).unknown.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_is_asked_at_most_once_an_interval_and_unknown_ids_are_remembered() {
        let gate = RefreshGate::default();
        let t0 = Instant::now();
        let s = Duration::from_secs;
        assert_eq!(gate.verdict(7, t0), Verdict::Refresh, "nothing asked yet");
        gate.refreshed(t0, true);
        gate.unknown(7, t0);
        // (id, seconds after the refresh, verdict)
        let cases = [
            (7, 0, Verdict::Unknown),
            (8, 1, Verdict::Unknown),
            (8, 5, Verdict::Refresh),
            (7, 5, Verdict::Unknown),
            (7, 29, Verdict::Unknown),
            (7, 30, Verdict::Refresh),
        ];
        for (id, after, want) in cases {
            assert_eq!(gate.verdict(id, t0 + s(after)), want, "id {id} at +{after} s");
        }
        gate.refreshed(t0 + s(40), false);
        assert_eq!(
            gate.verdict(9, t0 + s(41)),
            Verdict::RecentlyFailed,
            "a failed refresh is not repeated at once"
        );
        assert_eq!(gate.verdict(9, t0 + s(45)), Verdict::Refresh);
    }

    #[test]
    fn unknown_ids_stay_bounded() {
        let gate = RefreshGate::default();
        let t0 = Instant::now();
        for id in 0..(MAX_UNKNOWN as i32 + 100) {
            gate.unknown(id, t0 + Duration::from_millis(u64::try_from(id).unwrap_or(0)));
        }
        assert_eq!(gate.remembered(), MAX_UNKNOWN);
        let last = MAX_UNKNOWN as i32 + 99;
        assert_eq!(gate.verdict(last, t0 + Duration::from_secs(1)), Verdict::Unknown, "the newest are kept");
    }
}
