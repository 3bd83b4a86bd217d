//! Reconcile metrics in the Prometheus text format: count, errors by reason, duration; whether this replica
//! leads and whether each kind the controller needs is served ([`crate::apis`]).

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Labels of `kaas_controller_reconcile_errors_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// The failure's bounded label ([`crate::reconcile::Error::reason`]).
    pub reason: String,
}

/// Labels of `kaas_controller_api_served`: one needed kind ([`crate::apis::NeededApi`]).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiLabels {
    /// The API group.
    pub group: String,
    /// The version the controller reads.
    pub version: String,
    /// The kind.
    pub kind: String,
}

/// The controller's metrics: reconciles run, failures by reason, reconcile duration (seconds), whether this
/// replica leads, and whether each kind it needs is served (checked at start-up, then at each read).
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    leader: Gauge,
    reconciles: Counter,
    errors: Family<ErrorLabels, Counter>,
    duration: Histogram,
    api_served: Family<ApiLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("kaas_controller");
        let reconciles = Counter::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let duration = Histogram::new([0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0]);
        registry.register("reconciles", "Reconciles run", reconciles.clone());
        registry.register("reconcile_errors", "Reconciles that failed, by reason", errors.clone());
        registry.register_with_unit(
            "reconcile_duration",
            "Time one reconcile took",
            prometheus_client::registry::Unit::Seconds,
            duration.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica holds the leader lease and reconciles",
            leader.clone(),
        );
        let api_served = Family::<ApiLabels, Gauge>::default();
        registry.register(
            "api_served",
            "1 when the API server serves the kind (at start-up, then at each read), 0 when it does not",
            api_served.clone(),
        );
        Metrics { registry, leader, reconciles, errors, duration, api_served }
    }
}

impl Metrics {
    /// Records one reconcile: how long it `took` and, when it failed, the reason label.
    pub fn observe(&self, took: Duration, error: Option<&'static str>) {
        self.reconciles.inc();
        self.duration.observe(took.as_secs_f64());
        if let Some(reason) = error {
            self.errors.get_or_create(&ErrorLabels { reason: reason.into() }).inc();
        }
    }

    /// Whether this replica leads (and so reconciles).
    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// Whether the API server serves `api` (`kaas_controller_api_served`).
    pub fn set_api_served(&self, api: &crate::apis::NeededApi, served: bool) {
        let labels =
            ApiLabels { group: api.group.into(), version: api.version.into(), kind: api.kind.into() };
        self.api_served.get_or_create(&labels).set(i64::from(served));
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
