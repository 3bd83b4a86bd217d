//! Usage records: who moved what through the proxy, to bill by. Each tenant's principals' record-set bytes and
//! records, per topic and direction, their requests and connection time, summed in memory ([`ledger`]) and
//! written every `interval_seconds` as JSON lines ([`record`], schema `kaas.usage/v1`) to a rotated file
//! ([`crate::sink`]). Windows end on multiples of the interval (UTC), so replicas' windows line up.
//!
//! Guarantees: a sink that cannot write never holds up traffic (records wait in a bounded queue of
//! `buffer_records`; what does not fit is dropped, counted and logged); a graceful stop writes the open
//! window; a crash loses at most the open window. Neighbours: the session meters through [`Meter`]
//! (`crate::session`), the walkers are [`crate::kafka::usage`], the server starts and stops [`Usage`].

pub mod ledger;
pub mod record;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

use crate::config::UsageSettings;
use crate::sink::{rfc3339, FileSink, Sink};
pub use ledger::{Direction, Ledger, Meter};

/// The usage recorder of one proxy process.
#[derive(Debug)]
pub struct Usage {
    ledger: Arc<Ledger>,
    interval: Duration,
    replica: String,
    started: String,
    sequence: AtomicU64,
    /// The open window's start (wall clock).
    window_start: Mutex<SystemTime>,
    sink: Sink,
    /// `kaas_proxy_usage_unreadable_total`.
    unreadable: Counter,
}

impl Usage {
    /// Starts the sink's writer thread; registers the recorder's series in `registry`.
    pub fn start(settings: &UsageSettings, registry: &mut Registry) -> std::io::Result<Arc<Usage>> {
        let file = FileSink::new(settings.file.clone(), settings.file_max_bytes, settings.file_keep);
        let sink = Sink::start(file, settings.buffer_records, "usage records")?;
        sink.register(registry, "usage");
        let ledger = Arc::new(Ledger::new(settings.max_keys_per_tenant));
        let unreadable = Counter::default();
        registry.register(
            "usage_folded",
            "Topic volumes folded into the (other) topic past a tenant's max_keys_per_tenant",
            ledger.folded.clone(),
        );
        registry.register(
            "usage_unreadable",
            "Produce requests and Fetch responses whose volumes could not be read (not recorded)",
            unreadable.clone(),
        );
        let now = SystemTime::now();
        Ok(Arc::new(Usage {
            ledger,
            interval: settings.interval,
            replica: settings.replica.clone(),
            started: rfc3339(now),
            sequence: AtomicU64::new(0),
            window_start: Mutex::new(now),
            sink,
            unreadable,
        }))
    }

    /// A connection of `principal` to `tenant`, opened now; its time ends when the meter is dropped.
    pub fn meter(&self, tenant: &str, principal: Option<&str>) -> Meter {
        self.ledger.open(tenant, principal, Instant::now())
    }

    /// Counts a Produce request or Fetch response the walkers could not read (its volumes are not recorded).
    pub fn unreadable(&self) {
        self.unreadable.inc();
    }

    /// Closes a window at each multiple of the interval until `stop` is cancelled.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let mut last = SystemTime::UNIX_EPOCH;
        loop {
            // From the last end at the earliest: a timer that fires a moment early (the wall clock slewed)
            // must not close the same window twice.
            let (wait, end) = next_window_end(SystemTime::now().max(last), self.interval);
            tokio::select! {
                () = tokio::time::sleep(wait) => self.close_window(end),
                () = stop.cancelled() => return,
            }
            last = end;
        }
    }

    /// Closes the open window as ending at `end` and queues its records. Closes are one at a time (the
    /// window's start is held across the roll), so a timer and the stop cannot close windows out of order.
    pub fn close_window(&self, end: SystemTime) {
        let mut start = self.window_start.lock().unwrap_or_else(PoisonError::into_inner);
        let entries = self.ledger.roll(Instant::now());
        let begun = std::mem::replace(&mut *start, end);
        if entries.is_empty() {
            return;
        }
        let window = record::Window {
            replica: &self.replica,
            replica_started: &self.started,
            start: rfc3339(begun),
            end: rfc3339(end),
        };
        let lines = entries.iter().map(|entry| {
            let sequence = self.sequence.fetch_add(1, Ordering::Relaxed) + 1;
            record::line(&window, sequence, entry)
        });
        self.sink.send(lines);
    }

    /// At shutdown: closes the open window, then waits up to `within` for the sink to write everything queued.
    pub async fn finish(&self, within: Duration) {
        self.close_window(SystemTime::now());
        self.sink.finish(within).await;
    }
}

/// The next multiple of `interval` since the Unix epoch after `now`, and the time until it (at least a
/// millisecond).
fn next_window_end(now: SystemTime, interval: Duration) -> (Duration, SystemTime) {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis();
    let every = interval.as_millis().max(1);
    let end = (since / every + 1) * every;
    let end_ms = u64::try_from(end).unwrap_or(u64::MAX);
    let wait = u64::try_from(end - since).unwrap_or(u64::MAX).max(1);
    (Duration::from_millis(wait), UNIX_EPOCH + Duration::from_millis(end_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_end_on_multiples_of_the_interval() {
        let at = |ms| UNIX_EPOCH + Duration::from_millis(ms);
        let minute = Duration::from_secs(60);
        let cases = [
            (1_796_630_400_000, 60_000, 1_796_630_460_000),
            (1_796_630_400_001, 59_999, 1_796_630_460_000),
            (1_796_630_459_999, 1, 1_796_630_460_000),
        ];
        for (now, wait, end) in cases {
            assert_eq!(next_window_end(at(now), minute), (Duration::from_millis(wait), at(end)), "{now}");
        }
    }

    #[test]
    fn a_closed_window_ends_at_the_multiple_it_was_closed_for() {
        let dir = tempfile::tempdir().expect("tempdir");
        let settings = UsageSettings {
            file: dir.path().join("usage.jsonl"),
            interval: Duration::from_secs(60),
            max_keys_per_tenant: 10,
            file_max_bytes: 1 << 20,
            file_keep: 1,
            buffer_records: 10,
            replica: "r".into(),
        };
        let usage = Usage::start(&settings, &mut Registry::default()).expect("starts");
        let meter = usage.meter("acme", Some("alice"));
        let end = UNIX_EPOCH + Duration::from_millis(1_796_630_460_000);
        usage.close_window(end);
        drop(meter);
        usage.close_window(end + Duration::from_secs(60));
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(usage.sink.finish(Duration::from_secs(5)));
        let text = std::fs::read_to_string(dir.path().join("usage.jsonl")).expect("written");
        let windows: Vec<(String, String)> = text
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json"))
            .map(|r| {
                (
                    r["window_start"].as_str().unwrap_or("").to_owned(),
                    r["window_end"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect();
        assert_eq!(windows.len(), 2, "{text}");
        assert_eq!(windows[0].1, "2026-12-07T08:01:00.000Z", "the multiple, not the moment the timer fired");
        assert_eq!(windows[1], ("2026-12-07T08:01:00.000Z".into(), "2026-12-07T08:02:00.000Z".into()));
    }
}
