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
        loop {
            let wait = until_next_multiple(SystemTime::now(), self.interval);
            tokio::select! {
                () = tokio::time::sleep(wait) => self.close_window(),
                () = stop.cancelled() => return,
            }
        }
    }

    /// Closes the open window now and queues its records; what does not fit the queue is dropped and counted.
    pub fn close_window(&self) {
        let (at, wall) = (Instant::now(), SystemTime::now());
        let entries = self.ledger.roll(at);
        let start =
            std::mem::replace(&mut *self.window_start.lock().unwrap_or_else(PoisonError::into_inner), wall);
        if entries.is_empty() {
            return;
        }
        let window = record::Window {
            replica: &self.replica,
            replica_started: &self.started,
            start: rfc3339(start),
            end: rfc3339(wall),
        };
        let lines = entries.iter().map(|entry| {
            let sequence = self.sequence.fetch_add(1, Ordering::Relaxed) + 1;
            record::line(&window, sequence, entry)
        });
        self.sink.send(lines);
    }

    /// At shutdown: closes the open window, then waits up to `within` for the sink to write everything queued.
    pub async fn finish(&self, within: Duration) {
        self.close_window();
        self.sink.finish(within).await;
    }
}

/// Time from `now` to the next multiple of `interval` since the Unix epoch (at least a millisecond).
fn until_next_multiple(now: SystemTime, interval: Duration) -> Duration {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis();
    let every = interval.as_millis().max(1);
    let wait = every - since % every;
    Duration::from_millis(u64::try_from(wait).unwrap_or(u64::MAX).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_end_on_multiples_of_the_interval() {
        let at = |ms| UNIX_EPOCH + Duration::from_millis(ms);
        let minute = Duration::from_secs(60);
        assert_eq!(until_next_multiple(at(1_796_630_400_000), minute), minute);
        assert_eq!(until_next_multiple(at(1_796_630_400_001), minute), Duration::from_millis(59_999));
        assert_eq!(until_next_multiple(at(1_796_630_459_999), minute), Duration::from_millis(1));
    }
}
