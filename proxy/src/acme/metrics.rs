//! The ACME client's own metrics, registered by the ACME subsystem into the proxy's registry
//! ([`crate::metrics::Metrics::registry`]): challenge failures by type and renewals by trigger, every series
//! present from the start at zero. Orders and certificate expiry are per tenant and live with the tenant's
//! series ([`crate::metrics::TenantMetrics`]).

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

/// The `challenge` label of `kaas_proxy_acme_challenge_failures_total`.
pub const ACME_CHALLENGES: [&str; 3] = ["tls-alpn-01", "http-01", "dns-01"];

/// `kaas_proxy_acme_challenge_failures_total{challenge}`: every type always present, in a fixed order.
#[derive(Debug)]
struct ChallengeFailures([Counter; 3]);

impl Collector for ChallengeFailures {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let help =
            "ACME orders the CA refused because a name's challenge failed validation, by challenge type.";
        let mut family =
            encoder.encode_descriptor("acme_challenge_failures", help, None, MetricType::Counter)?;
        for (challenge, counter) in ACME_CHALLENGES.iter().zip(&self.0) {
            counter.encode(family.encode_family(&[("challenge", *challenge)])?)?;
        }
        Ok(())
    }
}

/// The `trigger` label of `kaas_proxy_acme_renewals_total`: why a tenant's certificate is being replaced: its
/// two-thirds schedule (the CA has no renewal information), the window the CA suggested (RFC 9773), a window
/// already over (the CA asks for replacement now, as for a revoked certificate), expiry, or changed names.
pub const ACME_RENEWAL_TRIGGERS: [&str; 5] = ["schedule", "ari_window", "ari_now", "expired", "names"];

/// `kaas_proxy_acme_renewals_total{trigger}`: every trigger always present, in a fixed order.
#[derive(Debug)]
struct Renewals([Counter; 5]);

impl Collector for Renewals {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let help =
            "ACME renewals started (the first order replacing a certificate; retries not counted), by \
                    trigger.";
        let mut family = encoder.encode_descriptor("acme_renewals", help, None, MetricType::Counter)?;
        for (trigger, counter) in ACME_RENEWAL_TRIGGERS.iter().zip(&self.0) {
            counter.encode(family.encode_family(&[("trigger", *trigger)])?)?;
        }
        Ok(())
    }
}

/// The ACME counters that are not per tenant; cheap to clone (the counters are shared).
#[derive(Debug, Clone, Default)]
pub struct AcmeMetrics {
    /// By [`ACME_CHALLENGES`].
    challenge_failures: [Counter; 3],
    /// By [`ACME_RENEWAL_TRIGGERS`].
    renewals: [Counter; 5],
}

impl AcmeMetrics {
    /// Registers the ACME series in `registry`, at zero.
    pub fn register(registry: &mut Registry) -> AcmeMetrics {
        let metrics = AcmeMetrics::default();
        registry.register_collector(Box::new(ChallengeFailures(metrics.challenge_failures.clone())));
        registry.register_collector(Box::new(Renewals(metrics.renewals.clone())));
        metrics
    }

    /// Counts an ACME order refused because a challenge of type `challenge` (one of [`ACME_CHALLENGES`]) failed.
    pub fn challenge_failed(&self, challenge: &str) {
        if let Some(i) = ACME_CHALLENGES.iter().position(|c| *c == challenge) {
            self.challenge_failures[i].inc();
        }
    }

    /// Counts an ACME renewal started for `trigger` (one of [`ACME_RENEWAL_TRIGGERS`]).
    pub fn renewal(&self, trigger: &str) {
        if let Some(i) = ACME_RENEWAL_TRIGGERS.iter().position(|t| *t == trigger) {
            self.renewals[i].inc();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;

    #[test]
    fn the_acme_series_count_in_the_proxy_registry() {
        let mut metrics = Metrics::new(["acme"]);
        let acme = AcmeMetrics::register(metrics.registry());
        acme.challenge_failed("dns-01");
        acme.challenge_failed("no-such-challenge");
        acme.renewal("names");
        acme.renewal("names");
        let text = metrics.encode();
        for (series, want) in [
            ("kaas_proxy_acme_challenge_failures_total{challenge=\"dns-01\"}", 1),
            ("kaas_proxy_acme_challenge_failures_total{challenge=\"http-01\"}", 0),
            ("kaas_proxy_acme_renewals_total{trigger=\"names\"}", 2),
            ("kaas_proxy_acme_renewals_total{trigger=\"expired\"}", 0),
        ] {
            assert_eq!(crate::metrics::value(&text, series), Some(want), "{series} in\n{text}");
        }
        assert!(!text.contains("no-such-challenge"), "labels stay bounded");
    }
}
