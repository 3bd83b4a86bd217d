//! One configured tenant's series ([`TenantMetrics`]) and the collector that writes every tenant's
//! (`Labelled`), in a stable order: tenants by name, reasons and APIs as listed.
//!
//! A session holds an `Arc` of its tenant's set, taken once when it starts, and counts every frame through it:
//! a relaxed atomic add, no lock, no hashing of label values. Looking the tenant up by name for each frame
//! would take the tenants lock on every one of millions of frames, across all sessions.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use kafka_protocol::messages::ApiKey;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::MetricType;

use super::histogram::Durations;
use super::{
    request_apis, Api, ConnectFailure, Direction, CONNECT_FAILURES, FRAME_REFUSALS, READ_APIS,
    UPSTREAM_TLS_REASONS,
};

/// Time spent on one API's requests: in the proxy (reading, inspecting, rewriting, writing) and upstream
/// (from the request written to the broker to its response read back).
#[derive(Debug, Default)]
struct Latency {
    proxy: Durations,
    upstream: Durations,
}

/// One configured tenant's series: a fixed set, created at zero with the tenant, each a shared atomic.
#[derive(Debug)]
pub struct TenantMetrics {
    pub(super) opened: Counter,
    pub(super) errors: Counter,
    /// Connections routed to the tenant and open now, handshaking or in session; also what
    /// `max_connections_per_tenant` is checked against.
    pub(super) active: Gauge,
    pub(super) malformed: [Counter; READ_APIS.len()],
    pub(super) upstream_tls: [Counter; UPSTREAM_TLS_REASONS.len()],
    client_to_upstream: Counter,
    upstream_to_client: Counter,
    /// Indexed by API key, up to the largest known; keys without a series of their own share `unknown_requests`.
    requests: Box<[Counter]>,
    unknown_requests: Counter,
    /// Indexed like `requests`: a slot for each API of [`request_apis`]; other keys share `unknown_latency`.
    latency: Box<[Option<Box<Latency>>]>,
    unknown_latency: Latency,
    connect: Durations,
    connect_failures: [Counter; CONNECT_FAILURES.len()],
    refreshes_ok: Counter,
    refreshes_failed: Counter,
    pub(super) cert_not_after: Gauge,
    /// By [`ACME_OUTCOMES`].
    pub(super) acme_orders: [Counter; 2],
    leaked: Counter,
    frames_refused: [Counter; FRAME_REFUSALS.len()],
    /// By [`QUOTA_KINDS`].
    throttled: [Counter; 2],
    throttle_seconds: [Counter<f64, AtomicU64>; 2],
}

/// The `outcome` label of `kaas_proxy_acme_orders_total`: certificate issued, or the order failed (the tenant
/// keeps the certificate it had).
pub const ACME_OUTCOMES: [&str; 2] = ["issued", "failed"];

/// The `kind` label of the quota series: which byte rate was exceeded.
pub const QUOTA_KINDS: [&str; 2] = ["produce", "fetch"];

impl TenantMetrics {
    pub(super) fn new() -> Self {
        let unknown_requests = Counter::default();
        let slots = ApiKey::iter().map(|k| k as usize + 1).max().unwrap_or(0);
        let mut requests = vec![unknown_requests.clone(); slots];
        for api in request_apis() {
            requests[api as usize] = Counter::default();
        }
        TenantMetrics {
            opened: Counter::default(),
            errors: Counter::default(),
            active: Gauge::default(),
            malformed: Default::default(),
            upstream_tls: Default::default(),
            client_to_upstream: Counter::default(),
            upstream_to_client: Counter::default(),
            requests: requests.into_boxed_slice(),
            unknown_requests,
            latency: (0..slots).map(|i| request_apis().any(|a| a as usize == i).then(Box::default)).collect(),
            unknown_latency: Latency::default(),
            connect: Durations::default(),
            connect_failures: Default::default(),
            refreshes_ok: Counter::default(),
            refreshes_failed: Counter::default(),
            cert_not_after: Gauge::default(),
            acme_orders: Default::default(),
            leaked: Counter::default(),
            frames_refused: Default::default(),
            throttled: Default::default(),
            throttle_seconds: Default::default(),
        }
    }

    /// Counts a response throttled for the tenant's `kind` quota (one of [`QUOTA_KINDS`]) by `throttle`.
    pub fn throttled(&self, kind: &str, throttle: Duration) {
        if let Some(i) = QUOTA_KINDS.iter().position(|k| *k == kind) {
            self.throttled[i].inc();
            self.throttle_seconds[i].inc_by(throttle.as_secs_f64());
        }
    }

    /// Counts `bytes` of whole frames (length prefixes included) forwarded `direction`.
    pub fn forwarded(&self, direction: Direction, bytes: u64) {
        match direction {
            Direction::ClientToUpstream => self.client_to_upstream.inc_by(bytes),
            Direction::UpstreamToClient => self.upstream_to_client.inc_by(bytes),
        };
    }

    /// Counts one client request of `api_key` forwarded to the broker.
    pub fn request(&self, api_key: i16) {
        usize::try_from(api_key)
            .ok()
            .and_then(|i| self.requests.get(i))
            .unwrap_or(&self.unknown_requests)
            .inc();
    }

    /// Records the time one request of `api_key` and its response spent in the proxy and upstream.
    pub fn latency(&self, api_key: i16, proxy: Duration, upstream: Duration) {
        let slot = usize::try_from(api_key)
            .ok()
            .and_then(|i| self.latency.get(i)?.as_deref())
            .unwrap_or(&self.unknown_latency);
        slot.proxy.observe(proxy);
        slot.upstream.observe(upstream);
    }

    /// Records a connection to one of the tenant's brokers, ready for use (TCP, and TLS when configured).
    pub fn connected(&self, took: Duration) {
        self.connect.observe(took);
    }

    /// Counts a connection to one of the tenant's brokers that failed.
    pub fn connect_failed(&self, why: ConnectFailure) {
        if let Some(i) = CONNECT_FAILURES.iter().position(|r| *r == why) {
            self.connect_failures[i].inc();
        }
    }

    /// Counts one of the proxy's own metadata requests to the tenant's cluster (to learn a broker's address).
    pub fn metadata_refreshed(&self, ok: bool) {
        match ok {
            true => self.refreshes_ok.inc(),
            false => self.refreshes_failed.inc(),
        };
    }

    /// Counts broker addresses a rewritten response still held: caught before the client saw them.
    pub fn leaked(&self, addresses: u64) {
        self.leaked.inc_by(addresses);
    }

    /// Counts a frame that ended a session unforwarded; `reason` is one of [`FRAME_REFUSALS`].
    pub fn frame_refused(&self, reason: &str) {
        if let Some(i) = FRAME_REFUSALS.iter().position(|r| *r == reason) {
            self.frames_refused[i].inc();
        }
    }

    /// Connections open now (see `active`).
    pub fn connections(&self) -> i64 {
        self.active.get()
    }
}

/// The labelled series, encoded on each scrape in a fixed order: reasons and APIs as listed, tenants by name.
#[derive(Debug, Default)]
pub(super) struct Labelled {
    /// Grows only with configured tenants (on reload), so label values stay bounded.
    pub(super) tenants: RwLock<BTreeMap<Arc<str>, Arc<TenantMetrics>>>,
}

#[derive(Debug, Clone, EncodeLabelSet)]
struct TenantLabels {
    tenant: Arc<str>,
}

#[derive(Debug, Clone, EncodeLabelSet)]
struct TenantApiLabels {
    tenant: Arc<str>,
    api: Api,
}

#[derive(Debug, Clone, EncodeLabelSet)]
struct TenantApiStageLabels {
    tenant: Arc<str>,
    api: Api,
    stage: &'static str,
}

#[derive(Debug, Clone, EncodeLabelSet)]
struct TenantReasonLabels {
    tenant: Arc<str>,
    reason: &'static str,
}

#[derive(Debug, Clone, EncodeLabelSet)]
struct TenantOutcomeLabels {
    tenant: Arc<str>,
    outcome: &'static str,
}

#[derive(Debug, Clone, EncodeLabelSet)]
struct TenantKindLabels {
    tenant: Arc<str>,
    kind: &'static str,
}

#[derive(Debug, Clone, EncodeLabelSet)]
struct TenantDirectionLabels {
    tenant: Arc<str>,
    direction: Direction,
}

/// Writes one family of `kind` (counter or gauge): its `# HELP` and `# TYPE` lines, then a sample per series.
fn family<'a, S: EncodeLabelSet + 'a, M: EncodeMetric + 'a>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    series: impl IntoIterator<Item = (S, &'a M)>,
) -> std::fmt::Result {
    let mut family = encoder.encode_descriptor(name, help, None, kind)?;
    for (labels, metric) in series {
        metric.encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// Pairs every tenant with `labels(tenant, item)` for each of `items`, and `metric(set, index)`.
fn per_tenant<'a, T: Copy + 'a, S, M: 'a>(
    tenants: &'a BTreeMap<Arc<str>, Arc<TenantMetrics>>,
    items: &'a [T],
    labels: impl Fn(&Arc<str>, T) -> S + Copy + 'a,
    metric: impl Fn(&'a TenantMetrics, usize) -> &'a M + Copy + 'a,
) -> impl Iterator<Item = (S, &'a M)> + 'a {
    tenants.iter().flat_map(move |(t, m)| {
        items.iter().enumerate().map(move |(i, item)| (labels(t, *item), metric(m, i)))
    })
}

const COUNTER: MetricType = MetricType::Counter;
const GAUGE: MetricType = MetricType::Gauge;

impl Collector for Labelled {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let e = &mut encoder;
        let tenants = self.tenants.read().unwrap_or_else(|p| p.into_inner());
        let tenants = &*tenants;
        let tenant = |t: &Arc<str>| TenantLabels { tenant: t.clone() };
        let reason = |t: &Arc<str>, reason| TenantReasonLabels { tenant: t.clone(), reason };
        let each = |f: fn(&TenantMetrics) -> &Counter| tenants.iter().map(move |(t, m)| (tenant(t), f(m)));
        let help = "Connections routed to the tenant and open now (handshaking or in session), by tenant.";
        family(e, "session_active", help, GAUGE, tenants.iter().map(|(t, m)| (tenant(t), &m.active)))?;
        family(e, "session_opened", "Sessions opened, by tenant.", COUNTER, each(|m| &m.opened))?;
        family(e, "session_errors", "Sessions closed on an error, by tenant.", COUNTER, each(|m| &m.errors))?;
        let help = "Frames that ended a session unforwarded, by tenant and reason.";
        let frames = per_tenant(tenants, &FRAME_REFUSALS, reason, |m, i| &m.frames_refused[i]);
        family(e, "session_frames_refused", help, COUNTER, frames)?;
        let help = "Bytes of Kafka frames forwarded (length prefixes included), by tenant and direction.";
        let bytes = tenants.iter().flat_map(|(t, m)| {
            let direction = |direction| TenantDirectionLabels { tenant: t.clone(), direction };
            [
                (direction(Direction::ClientToUpstream), &m.client_to_upstream),
                (direction(Direction::UpstreamToClient), &m.upstream_to_client),
            ]
        });
        family(e, "session_bytes", help, COUNTER, bytes)?;
        let api = |t: &Arc<str>, api| TenantApiLabels { tenant: t.clone(), api: Api(api) };
        let requests = tenants.iter().flat_map(|(t, m)| {
            let known = request_apis().map(move |a| (api(t, Some(a)), &m.requests[a as usize]));
            known.chain([(api(t, None), &m.unknown_requests)])
        });
        let help = "Client requests forwarded to the tenant's brokers, by tenant and API.";
        family(e, "requests", help, COUNTER, requests)?;
        self.encode_latency(e, tenants)?;
        let help =
            "Broker responses that could not be read (each closed one client connection), by tenant and API.";
        let malformed = per_tenant(tenants, &READ_APIS, move |t, a| api(t, Some(a)), |m, i| &m.malformed[i]);
        family(e, "upstream_malformed_responses", help, COUNTER, malformed)?;
        let help = "TLS handshakes with a tenant's brokers that failed, by tenant and reason.";
        let tls = per_tenant(tenants, &UPSTREAM_TLS_REASONS, reason, |m, i| &m.upstream_tls[i]);
        family(e, "upstream_tls_failures", help, COUNTER, tls)?;
        let help = "Time to open a connection to one of the tenant's brokers (TCP, and TLS when configured).";
        let mut connect =
            e.encode_descriptor("upstream_connect_duration_seconds", help, None, MetricType::Histogram)?;
        for (t, m) in tenants {
            m.connect.encode(connect.encode_family(&tenant(t))?)?;
        }
        let labels = |t: &Arc<str>, why: ConnectFailure| reason(t, why.label());
        let failures = per_tenant(tenants, &CONNECT_FAILURES, labels, |m, i| &m.connect_failures[i]);
        let help = "Connections to the tenant's brokers that failed, by tenant and reason.";
        family(e, "upstream_connect_failures", help, COUNTER, failures)?;
        let help = "The proxy's own metadata requests (to learn a broker's address), by tenant and outcome.";
        let refreshes = tenants.iter().flat_map(|(t, m)| {
            let outcome = |outcome| TenantOutcomeLabels { tenant: t.clone(), outcome };
            [(outcome("ok"), &m.refreshes_ok), (outcome("failed"), &m.refreshes_failed)]
        });
        family(e, "upstream_metadata_refreshes", help, COUNTER, refreshes)?;
        let help = "Unix time the certificate the tenant's clients are served expires (its not-after).";
        let not_after = tenants.iter().map(|(t, m)| (tenant(t), &m.cert_not_after));
        family(e, "tls_certificate_not_after_timestamp_seconds", help, GAUGE, not_after)?;
        let outcome = |t: &Arc<str>, outcome| TenantOutcomeLabels { tenant: t.clone(), outcome };
        let help = "ACME orders for the tenant's certificate, by tenant and outcome (issued, failed).";
        let orders = per_tenant(tenants, &ACME_OUTCOMES, outcome, |m, i| &m.acme_orders[i]);
        family(e, "acme_orders", help, COUNTER, orders)?;
        let kind = |t: &Arc<str>, kind| TenantKindLabels { tenant: t.clone(), kind };
        let help =
            "Responses whose client went over the tenant's byte-rate quota, by tenant and kind (produce, \
                    fetch): answered with throttle_time_ms, the connection not read meanwhile.";
        let throttled = per_tenant(tenants, &QUOTA_KINDS, kind, |m, i| &m.throttled[i]);
        family(e, "quota_throttled_responses", help, COUNTER, throttled)?;
        let help = "Throttle time given for the tenant's byte-rate quotas, by tenant and kind.";
        let seconds = per_tenant(tenants, &QUOTA_KINDS, kind, |m, i| &m.throttle_seconds[i]);
        family(e, "quota_throttle_seconds", help, COUNTER, seconds)?;
        let help =
            "Broker addresses a rewritten response still held, caught before the client saw them (the \
                    session was closed); anything but 0 is a bug.";
        family(e, "rewrite_leaked_addresses", help, COUNTER, each(|m| &m.leaked))
    }
}

impl Labelled {
    /// `kaas_proxy_request_duration_seconds{tenant,api,stage}`: only APIs a tenant has used, so the histogram
    /// series stay proportional to what clients do rather than every API times every tenant.
    fn encode_latency(
        &self,
        e: &mut DescriptorEncoder,
        tenants: &BTreeMap<Arc<str>, Arc<TenantMetrics>>,
    ) -> std::fmt::Result {
        let help =
            "Time per request and its response, by tenant, API and stage: proxy (reading, inspecting, \
                    rewriting and writing both frames) or upstream (request written to the broker until its \
                    response was read).";
        let mut histogram =
            e.encode_descriptor("request_duration_seconds", help, None, MetricType::Histogram)?;
        for (t, m) in tenants {
            let known = request_apis().filter_map(|a| Some((Some(a), m.latency[a as usize].as_deref()?)));
            for (api, latency) in known.chain([(None, &m.unknown_latency)]) {
                if latency.proxy.count() == 0 {
                    continue;
                }
                for (stage, durations) in [("proxy", &latency.proxy), ("upstream", &latency.upstream)] {
                    let labels = TenantApiStageLabels { tenant: t.clone(), api: Api(api), stage };
                    durations.encode(histogram.encode_family(&labels)?)?;
                }
            }
        }
        Ok(())
    }
}
