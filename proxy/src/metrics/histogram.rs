//! A fixed-bucket histogram of durations that records with three relaxed atomic adds and no lock, for the
//! per-request latencies every session records. Encoded through `prometheus-client` like its own histograms
//! (`_sum`, `_count`, cumulative `_bucket{le}`), in seconds.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::{MetricEncoder, NoLabelSet};

/// Upper bounds of the buckets, nanoseconds (a `+Inf` bucket follows; exposed in seconds). From 100 µs, where
/// the proxy's own share of a request lies, to 10 s, beyond a Fetch's long poll (`fetch.max.wait.ms`, 500 ms by
/// default) and a slow broker's Produce with `acks=all`.
pub const BOUNDS_NANOS: [u64; 16] = [
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

const BUCKETS: usize = BOUNDS_NANOS.len() + 1;

/// Counts per bucket (not cumulative) and the sum of what was observed.
#[derive(Debug, Default)]
pub struct Durations {
    buckets: [AtomicU64; BUCKETS],
    sum_nanos: AtomicU64,
}

impl Durations {
    /// Records one duration.
    pub fn observe(&self, d: Duration) {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let i = BOUNDS_NANOS.partition_point(|&bound| bound < nanos);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// How many durations were recorded.
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    /// Writes `_sum`, `_count` and the buckets; the count is the buckets' total, so the exposition is
    /// consistent even while sessions record.
    pub fn encode(&self, mut encoder: MetricEncoder<'_>) -> std::fmt::Result {
        let mut buckets = [(f64::INFINITY, 0u64); BUCKETS];
        for (i, slot) in buckets.iter_mut().enumerate() {
            slot.0 = BOUNDS_NANOS.get(i).map_or(f64::INFINITY, |&n| n as f64 / 1e9);
            slot.1 = self.buckets[i].load(Ordering::Relaxed);
        }
        let count = buckets.iter().map(|b| b.1).sum();
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn bounds_are_inclusive_upper_limits() {
        let h = Durations::default();
        h.observe(Duration::from_micros(100)); // exactly the first bound: le="0.0001"
        h.observe(Duration::from_micros(101));
        h.observe(Duration::from_secs(10));
        h.observe(Duration::from_secs(11)); // +Inf
        h.observe(Duration::ZERO);
        let got: Vec<u64> = h.buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect();
        let mut want = vec![0; BUCKETS];
        want[0] = 2;
        want[1] = 1;
        want[BUCKETS - 2] = 1;
        want[BUCKETS - 1] = 1;
        assert_eq!(got, want);
        assert_eq!(h.count(), 5);
        assert_eq!(h.sum_nanos.load(Ordering::Relaxed), 100_000 + 101_000 + 21_000_000_000);
    }

    #[test]
    fn exposed_in_seconds_cumulatively() {
        let h = Durations::default();
        h.observe(Duration::from_micros(200));
        h.observe(Duration::from_millis(3));
        let mut text = String::new();
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(Probe(Arc::new(h))));
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encodes");
        for line in [
            "t_seconds_count 2",
            "t_seconds_bucket{le=\"0.0001\"} 0",
            "t_seconds_bucket{le=\"0.00025\"} 1",
            "t_seconds_bucket{le=\"0.0025\"} 1",
            "t_seconds_bucket{le=\"0.005\"} 2",
            "t_seconds_bucket{le=\"10.0\"} 2",
            "t_seconds_bucket{le=\"+Inf\"} 2",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        }
        assert!(BOUNDS_NANOS.windows(2).all(|w| w[0] < w[1]), "increasing");
    }

    #[derive(Debug)]
    struct Probe(Arc<Durations>);

    impl prometheus_client::collector::Collector for Probe {
        fn encode(&self, mut encoder: prometheus_client::encoding::DescriptorEncoder) -> std::fmt::Result {
            let family = encoder.encode_descriptor(
                "t_seconds",
                "test",
                None,
                prometheus_client::metrics::MetricType::Histogram,
            )?;
            self.0.encode(family)
        }
    }
}
