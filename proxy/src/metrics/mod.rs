//! Prometheus metrics, `kaas_proxy_<subsystem>_<name>_<unit>[_total]`, in a `prometheus-client` [`Registry`],
//! encoded in the OpenMetrics text format by [`Metrics::encode`]; the admin endpoint serves it.
//!
//! Labels stay bounded: `tenant` only takes the names of configured tenants ([`Metrics::new`], then
//! [`Metrics::add_tenants`] on reload; counts for any other name are dropped), and every other label comes from
//! a fixed list ([`READ_APIS`], [`UPSTREAM_TLS_REASONS`], [`CONNECT_FAILURES`],
//! [`FRAME_REFUSALS`], [`Direction`], [`request_apis`]). Every counter of a configured tenant exists, at zero,
//! from the moment the tenant is added, so dashboards and alerts see it before its first event; latency
//! histograms appear per API once the tenant has used it.
//!
//! The labelled series are fixed sets per tenant ([`TenantMetrics`], in [`tenant`]) rather than `Family` maps: a
//! session takes its tenant's set once and then counts with plain atomic adds ([`histogram`] for durations), and
//! the exposition comes out in a stable order (reasons and APIs as listed, tenants by name) for people reading
//! `/metrics`.

pub mod histogram;
pub mod tenant;

use std::fmt::Write as _;
use std::sync::Arc;

use kafka_protocol::messages::ApiKey;
use prometheus_client::encoding::{EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::kafka::apis::{policy, Policy};
use tenant::Labelled;
pub use tenant::TenantMetrics;

/// The content type of [`Metrics::encode`]'s output (the OpenMetrics text format, `# EOF` terminated).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The APIs whose responses the proxy reads: the `api` label of malformed-response counts.
pub const READ_APIS: [ApiKey; 8] = [
    ApiKey::ApiVersions,
    ApiKey::Metadata,
    ApiKey::FindCoordinator,
    ApiKey::DescribeCluster,
    ApiKey::Produce,
    ApiKey::Fetch,
    ApiKey::ShareFetch,
    ApiKey::ShareAcknowledge,
];

/// The `reason` labels of failed upstream TLS handshakes (`crate::upstream::tls::TlsFailure::label`).
pub const UPSTREAM_TLS_REASONS: [&str; 4] = ["broker_certificate", "broker_alert", "handshake", "timeout"];

/// Why a connection to a tenant's broker failed: the `reason` label of
/// `kaas_proxy_upstream_connect_failures_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectFailure {
    /// The broker's host refused the TCP connection (nothing listens on the port).
    Refused,
    /// No TCP connection, or no TLS handshake, within `connect_timeout_seconds`.
    Timeout,
    /// The broker's host name did not resolve.
    Unresolved,
    /// The TLS handshake with the broker failed (`kaas_proxy_upstream_tls_failures_total` says how).
    Tls,
    /// Any other socket error (unreachable network, reset).
    Other,
    /// The address is not one the tenant's allow-list admits: never dialled.
    NotAllowed,
}

/// Every [`ConnectFailure`], in exposition order.
pub const CONNECT_FAILURES: [ConnectFailure; 6] = [
    ConnectFailure::Refused,
    ConnectFailure::Timeout,
    ConnectFailure::Unresolved,
    ConnectFailure::Tls,
    ConnectFailure::Other,
    ConnectFailure::NotAllowed,
];

impl ConnectFailure {
    /// The `reason` label value.
    pub fn label(self) -> &'static str {
        match self {
            ConnectFailure::Refused => "refused",
            ConnectFailure::Timeout => "timeout",
            ConnectFailure::Unresolved => "unresolved",
            ConnectFailure::Tls => "tls",
            ConnectFailure::Other => "other",
            ConnectFailure::NotAllowed => "not_allowed",
        }
    }
}

/// The `reason` labels of `kaas_proxy_session_frames_refused_total`: frames that ended a session unforwarded
/// (`crate::session::SessionError::frame_refusal`).
pub const FRAME_REFUSALS: [&str; 6] = [
    "client_frame_size",
    "client_request",
    "upstream_frame_size",
    "upstream_response",
    "upstream_unmatched",
    "address_leak",
];

/// Which way forwarded bytes went: the `direction` label of `kaas_proxy_session_bytes_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Requests, client to broker.
    ClientToUpstream,
    /// Responses, broker to client (as rewritten).
    UpstreamToClient,
}

impl Direction {
    /// The `direction` label value.
    pub fn label(self) -> &'static str {
        match self {
            Direction::ClientToUpstream => "client_to_upstream",
            Direction::UpstreamToClient => "upstream_to_client",
        }
    }
}

impl EncodeLabelValue for Direction {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> std::fmt::Result {
        encoder.write_str(self.label())
    }
}

/// The `api` label: a Kafka API by its name in the kafka-protocol crate (`Metadata`, `ApiVersions`), or
/// `unknown` for an API key that crate does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Api(Option<ApiKey>);

impl EncodeLabelValue for Api {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> std::fmt::Result {
        match self.0 {
            Some(api) => write!(encoder, "{api:?}"),
            None => encoder.write_str("unknown"),
        }
    }
}

/// The APIs with a series of their own in `kaas_proxy_requests_total`: every API key the kafka-protocol crate
/// knows, except those the proxy refuses ([`Policy::Blocked`]), which are never forwarded. Other keys count
/// under `api="unknown"`.
pub fn request_apis() -> impl Iterator<Item = ApiKey> {
    ApiKey::iter().filter(|api| policy(*api) != Policy::Blocked)
}

/// The proxy's metrics, shared by the listener, the upstream connector, the sessions and the admin endpoint.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Tasks alive on the runtime, read at each scrape: a leak of sessions or timers shows here first.
    tasks: Gauge,
    labelled: Arc<Labelled>,
}

/// A connection counted in its tenant's `kaas_proxy_session_active` until dropped.
#[derive(Debug)]
pub struct TenantConnection(Arc<TenantMetrics>);

impl TenantConnection {
    /// The tenant's series, for the session to count with.
    pub fn metrics(&self) -> &Arc<TenantMetrics> {
        &self.0
    }
}

impl Drop for TenantConnection {
    fn drop(&mut self) {
        self.0.active.dec();
    }
}

impl Metrics {
    /// Counters for a fixed set of tenants (the label set stays bounded).
    pub fn new<'a>(tenants: impl IntoIterator<Item = &'a str>) -> Self {
        let mut registry = Registry::with_prefix("kaas_proxy");
        let labelled = Arc::<Labelled>::default();
        let tasks = Gauge::default();
        registry.register(
            "runtime_tasks",
            "Tasks alive on the proxy's async runtime (sessions, listeners, timers), read at each scrape",
            tasks.clone(),
        );
        registry.register_collector(Box::new(labelled.clone()));
        let metrics = Metrics { registry, tasks, labelled };
        metrics.add_tenants(tenants);
        metrics
    }

    /// Starts counting tenants added by a reload, at zero. A tenant already known keeps its counters, and one
    /// removed keeps its series (counters only grow; the process's lifetime bounds them).
    pub fn add_tenants<'a>(&self, tenants: impl IntoIterator<Item = &'a str>) {
        let mut map = self.labelled.tenants.write().unwrap_or_else(|p| p.into_inner());
        for t in tenants {
            if !map.contains_key(t) {
                map.insert(Arc::from(t), Arc::new(TenantMetrics::new()));
            }
        }
    }

    /// The counters of `name`, for a session to hold; `None` for a tenant not configured.
    pub fn tenant(&self, name: &str) -> Option<Arc<TenantMetrics>> {
        self.labelled.tenants.read().unwrap_or_else(|p| p.into_inner()).get(name).cloned()
    }

    /// Counts a connection routed to `tenant` in its `session_active` gauge, unless it already has `limit`
    /// open: then `Err` with how many. `Ok(None)` for a tenant the metrics do not know (nothing to count in).
    pub fn admit(&self, tenant: &str, limit: usize) -> Result<Option<TenantConnection>, i64> {
        let Some(t) = self.tenant(tenant) else { return Ok(None) };
        let before = t.active.inc();
        if usize::try_from(before).is_ok_and(|n| n >= limit) {
            t.active.dec();
            return Err(before);
        }
        Ok(Some(TenantConnection(t)))
    }

    /// How many connections `tenant` has open when that is `limit` or more (a check before its handshake; the
    /// connection is counted by [`Metrics::admit`] once authenticated).
    pub fn tenant_full(&self, tenant: &str, limit: usize) -> Option<i64> {
        let open = self.tenant(tenant)?.active.get();
        usize::try_from(open).is_ok_and(|n| n >= limit).then_some(open)
    }

    /// Counts a session opened for `tenant`; unknown tenants are not counted.
    pub fn session_started(&self, tenant: &str) {
        if let Some(t) = self.tenant(tenant) {
            t.opened.inc();
        }
    }

    /// Counts a session error for `tenant` when `failed`.
    pub fn session_ended(&self, tenant: &str, failed: bool) {
        if let (true, Some(t)) = (failed, self.tenant(tenant)) {
            t.errors.inc();
        }
    }

    /// Sets the not-after (Unix seconds) of the certificate each of `tenants` is served with.
    pub fn certificates<'a>(&self, tenants: impl IntoIterator<Item = (&'a str, i64)>) {
        for (name, not_after) in tenants {
            if let Some(t) = self.tenant(name) {
                t.cert_not_after.set(not_after);
            }
        }
    }

    /// Counts an ACME order for `tenant`'s certificate: issued (`ok`) or failed.
    pub fn acme_order(&self, tenant: &str, ok: bool) {
        if let Some(t) = self.tenant(tenant) {
            t.acme_orders[usize::from(!ok)].inc();
        }
    }

    /// A broker response the proxy could not walk (the session was closed).
    pub fn malformed_response(&self, tenant: &str, api: ApiKey) {
        if let (Some(i), Some(t)) = (READ_APIS.iter().position(|a| *a == api), self.tenant(tenant)) {
            t.malformed[i].inc();
        }
    }

    /// A TLS handshake with one of `tenant`'s brokers failed; `reason` is one of [`UPSTREAM_TLS_REASONS`].
    pub fn upstream_tls_failed(&self, tenant: &str, reason: &str) {
        if let (Some(i), Some(t)) =
            (UPSTREAM_TLS_REASONS.iter().position(|r| *r == reason), self.tenant(tenant))
        {
            t.upstream_tls[i].inc();
        }
    }

    /// The registry, for a subsystem to register the metrics it owns before the proxy starts (as
    /// [`crate::acme::AcmeMetrics`], [`crate::routes::RouteMetrics`] and
    /// [`crate::listener::ListenerMetrics`] do).
    pub fn registry(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// Every metric in the OpenMetrics text format ([`CONTENT_TYPE`]), for `/metrics`.
    pub fn encode(&self) -> String {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            self.tasks.set(i64::try_from(runtime.metrics().num_alive_tasks()).unwrap_or(i64::MAX));
        }
        let mut out = String::new();
        // Writing to a String cannot fail, and the metrics only write.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// The value of `series` in an exposition (integral values; a histogram's `_sum` of `0.0` reads as 0), for the
/// tests of every subsystem's metrics.
#[cfg(test)]
pub(crate) fn value(text: &str, series: &str) -> Option<u64> {
    let v: f64 = text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())?;
    (v.fract() == 0.0).then_some(v as u64)
}

#[cfg(test)]
mod tests;
