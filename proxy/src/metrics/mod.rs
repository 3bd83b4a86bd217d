//! Prometheus metrics, `kaas_proxy_<subsystem>_<name>_<unit>[_total]`, in a `prometheus-client` [`Registry`],
//! encoded in the OpenMetrics text format by [`Metrics::encode`]; the admin endpoint serves it.
//!
//! Labels stay bounded: `tenant` only takes the names of configured tenants ([`Metrics::new`], then
//! [`Metrics::add_tenants`] on reload; counts for any other name are dropped), and every other label comes from
//! a fixed list ([`RefusalReason`], [`READ_APIS`], [`UPSTREAM_TLS_REASONS`], [`Direction`], [`request_apis`]).
//! Every series of a configured tenant exists, at zero, from the moment the tenant is added, so dashboards and
//! alerts see it before its first event.
//!
//! The labelled series are fixed sets of counters per tenant ([`TenantMetrics`]) rather than `Family` maps: a
//! session takes its tenant's set once and then counts with plain atomic adds, and the exposition comes out in
//! a stable order (reasons and APIs as listed, tenants by name) for people reading `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, RwLock};

use kafka_protocol::messages::ApiKey;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeLabelValue, EncodeMetric, LabelValueEncoder,
};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::kafka::apis::{policy, Policy};

/// The content type of [`Metrics::encode`]'s output (the OpenMetrics text format, `# EOF` terminated).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Why a connection was refused before a session started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefusalReason {
    /// Plaintext Kafka on the TLS port.
    Plaintext,
    /// Neither TLS nor Kafka, or an unreadable ClientHello.
    NotTls,
    /// No ClientHello within the handshake timeout.
    NoClientHello,
    /// The server name routes nowhere (no SNI, unknown tenant, unknown broker id): alert `unrecognized_name`.
    UnrecognizedName,
    /// The tenant's cluster could not be asked which brokers it has.
    ClusterUnavailable,
    /// The TLS handshake failed or timed out for a reason other than the client's certificate.
    Handshake,
    /// The tenant requires a client certificate and none was presented.
    ClientCertMissing,
    /// The client's certificate has expired.
    ClientCertExpired,
    /// The client's certificate is not valid yet.
    ClientCertNotYetValid,
    /// The client's certificate was not issued by the tenant's client CA (another CA, self-signed).
    ClientCertUnknownCa,
    /// The client's certificate is listed in the tenant's CRL.
    ClientCertRevoked,
    /// The client's certificate was refused for another reason (bad signature, wrong usage, unreadable).
    ClientCertInvalid,
    /// The client's target broker could not be reached after the handshake.
    UpstreamUnavailable,
}

/// Every refusal reason: the `reason` label values of `kaas_proxy_listener_refused_total`.
pub const REASONS: [RefusalReason; 13] = [
    RefusalReason::Plaintext,
    RefusalReason::NotTls,
    RefusalReason::NoClientHello,
    RefusalReason::UnrecognizedName,
    RefusalReason::ClusterUnavailable,
    RefusalReason::Handshake,
    RefusalReason::ClientCertMissing,
    RefusalReason::ClientCertExpired,
    RefusalReason::ClientCertNotYetValid,
    RefusalReason::ClientCertUnknownCa,
    RefusalReason::ClientCertRevoked,
    RefusalReason::ClientCertInvalid,
    RefusalReason::UpstreamUnavailable,
];

impl RefusalReason {
    /// The `reason` label value of `kaas_proxy_listener_refused_total`.
    pub fn label(self) -> &'static str {
        match self {
            RefusalReason::Plaintext => "plaintext",
            RefusalReason::NotTls => "not_tls",
            RefusalReason::NoClientHello => "no_client_hello",
            RefusalReason::UnrecognizedName => "unrecognized_name",
            RefusalReason::ClusterUnavailable => "cluster_unavailable",
            RefusalReason::Handshake => "handshake",
            RefusalReason::ClientCertMissing => "client_cert_missing",
            RefusalReason::ClientCertExpired => "client_cert_expired",
            RefusalReason::ClientCertNotYetValid => "client_cert_not_yet_valid",
            RefusalReason::ClientCertUnknownCa => "client_cert_unknown_ca",
            RefusalReason::ClientCertRevoked => "client_cert_revoked",
            RefusalReason::ClientCertInvalid => "client_cert_invalid",
            RefusalReason::UpstreamUnavailable => "upstream_unavailable",
        }
    }
}

impl EncodeLabelValue for RefusalReason {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> std::fmt::Result {
        encoder.write_str(self.label())
    }
}

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
struct Api(Option<ApiKey>);

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

#[derive(Debug, Clone, EncodeLabelSet)]
struct ReasonLabels {
    reason: RefusalReason,
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
struct TenantReasonLabels {
    tenant: Arc<str>,
    reason: &'static str,
}

#[derive(Debug, Clone, EncodeLabelSet)]
struct TenantDirectionLabels {
    tenant: Arc<str>,
    direction: Direction,
}

/// One configured tenant's counters: a fixed set, created at zero with the tenant, each a shared atomic.
///
/// A session holds an `Arc` of its tenant's, taken once when it starts, and counts every frame through it:
/// one relaxed atomic add, no lock, no hashing of label values. Looking the tenant up by name for each frame
/// would take the tenants lock on every one of millions of frames, across all sessions.
#[derive(Debug)]
pub struct TenantMetrics {
    opened: Counter,
    errors: Counter,
    malformed: [Counter; READ_APIS.len()],
    upstream_tls: [Counter; UPSTREAM_TLS_REASONS.len()],
    client_to_upstream: Counter,
    upstream_to_client: Counter,
    /// Indexed by API key, up to the largest known; keys without a series of their own share `unknown_requests`.
    requests: Box<[Counter]>,
    unknown_requests: Counter,
}

impl TenantMetrics {
    fn new() -> Self {
        let unknown_requests = Counter::default();
        let slots = ApiKey::iter().map(|k| k as usize + 1).max().unwrap_or(0);
        let mut requests = vec![unknown_requests.clone(); slots];
        for api in request_apis() {
            requests[api as usize] = Counter::default();
        }
        TenantMetrics {
            opened: Counter::default(),
            errors: Counter::default(),
            malformed: Default::default(),
            upstream_tls: Default::default(),
            client_to_upstream: Counter::default(),
            upstream_to_client: Counter::default(),
            requests: requests.into_boxed_slice(),
            unknown_requests,
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
}

/// The labelled series, encoded on each scrape in a fixed order: reasons and APIs as listed, tenants by name.
#[derive(Debug, Default)]
struct Labelled {
    refused: [Counter; REASONS.len()],
    /// Grows only with configured tenants (on reload), so label values stay bounded.
    tenants: RwLock<BTreeMap<Arc<str>, Arc<TenantMetrics>>>,
}

/// Writes one counter family: its `# HELP` and `# TYPE` lines, then a sample for each of `series`.
fn counters<'a, S: EncodeLabelSet + 'a>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (S, &'a Counter)>,
) -> std::fmt::Result {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, counter) in series {
        counter.encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for Labelled {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let refused = REASONS.into_iter().map(|reason| ReasonLabels { reason }).zip(&self.refused);
        counters(
            &mut encoder,
            "listener_refused",
            "Connections refused before a session, by reason.",
            refused,
        )?;
        let tenants = self.tenants.read().unwrap_or_else(|p| p.into_inner());
        let tenant = |t: &Arc<str>| TenantLabels { tenant: t.clone() };
        let api = |t: &Arc<str>, api| TenantApiLabels { tenant: t.clone(), api: Api(api) };
        counters(
            &mut encoder,
            "session_opened",
            "Sessions opened, by tenant.",
            tenants.iter().map(|(t, m)| (tenant(t), &m.opened)),
        )?;
        counters(
            &mut encoder,
            "session_errors",
            "Sessions closed on an error, by tenant.",
            tenants.iter().map(|(t, m)| (tenant(t), &m.errors)),
        )?;
        counters(
            &mut encoder,
            "upstream_malformed_responses",
            "Broker responses that could not be read (each closed one client connection), by tenant and API.",
            tenants
                .iter()
                .flat_map(|(t, m)| READ_APIS.map(|a| api(t, Some(a))).into_iter().zip(&m.malformed)),
        )?;
        counters(
            &mut encoder,
            "upstream_tls_failures",
            "TLS handshakes with a tenant's brokers that failed, by tenant and reason.",
            tenants.iter().flat_map(|(t, m)| {
                UPSTREAM_TLS_REASONS
                    .map(|reason| TenantReasonLabels { tenant: t.clone(), reason })
                    .into_iter()
                    .zip(&m.upstream_tls)
            }),
        )?;
        counters(
            &mut encoder,
            "session_bytes",
            "Bytes of Kafka frames forwarded (length prefixes included), by tenant and direction.",
            tenants.iter().flat_map(|(t, m)| {
                let direction = |direction| TenantDirectionLabels { tenant: t.clone(), direction };
                [
                    (direction(Direction::ClientToUpstream), &m.client_to_upstream),
                    (direction(Direction::UpstreamToClient), &m.upstream_to_client),
                ]
            }),
        )?;
        counters(
            &mut encoder,
            "requests",
            "Client requests forwarded to the tenant's brokers, by tenant and API.",
            tenants.iter().flat_map(|(t, m)| {
                let known = request_apis().map(move |a| (api(t, Some(a)), &m.requests[a as usize]));
                known.chain([(api(t, None), &m.unknown_requests)])
            }),
        )
    }
}

/// The proxy's counters and gauge, shared by the listener, the sessions and the admin endpoint.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    connections: Counter,
    active: Gauge,
    labelled: Arc<Labelled>,
    routes: RouteMetrics,
}

/// The state of the routes: what an operator checks after changing tenants or rotating certificates.
#[derive(Debug, Default)]
struct RouteMetrics {
    generation: Gauge,
    applied: Counter,
    refused: Counter,
    last_applied: Gauge,
    tenants: Gauge,
    left_out: Gauge,
}

impl RouteMetrics {
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "routes_generation",
            "Route sets applied since start (1 = the start-up configuration)",
            self.generation.clone(),
        );
        registry.register_collector(Box::new(ReloadOutcomes {
            applied: self.applied.clone(),
            refused: self.refused.clone(),
        }));
        registry.register(
            "routes_last_applied_timestamp_seconds",
            "Unix time the current route set was applied",
            self.last_applied.clone(),
        );
        registry.register("routes_tenants", "Tenants in the current route set", self.tenants.clone());
        registry.register(
            "routes_left_out",
            "Entries of the tenants_file left out of the current route set because they do not load",
            self.left_out.clone(),
        );
    }
}

/// `kaas_proxy_routes_reloads_total{outcome}`: both outcomes always present, in a fixed order.
#[derive(Debug)]
struct ReloadOutcomes {
    applied: Counter,
    refused: Counter,
}

impl Collector for ReloadOutcomes {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let help = "Route reloads after a change of the configuration or a file it names, by outcome.";
        let mut family = encoder.encode_descriptor("routes_reloads", help, None, MetricType::Counter)?;
        for (outcome, counter) in [("applied", &self.applied), ("refused", &self.refused)] {
            let labels = [("outcome", outcome)];
            counter.encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

impl Metrics {
    /// Counters for a fixed set of tenants (the label set stays bounded).
    pub fn new<'a>(tenants: impl IntoIterator<Item = &'a str>) -> Self {
        let mut registry = Registry::with_prefix("kaas_proxy");
        let (connections, active, labelled) =
            (Counter::default(), Gauge::default(), Arc::<Labelled>::default());
        registry.register(
            "listener_connections",
            "TCP connections accepted on the TLS port",
            connections.clone(),
        );
        registry.register("session_active", "Sessions open now", active.clone());
        registry.register_collector(Box::new(labelled.clone()));
        let routes = RouteMetrics::default();
        routes.register(&mut registry);
        let metrics = Metrics { registry, connections, active, labelled, routes };
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

    /// Counts a TCP connection accepted on the TLS port.
    pub fn accepted(&self) {
        self.connections.inc();
    }

    /// Counts a connection refused before its session started.
    pub fn refused(&self, why: RefusalReason) {
        if let Some(i) = REASONS.iter().position(|r| *r == why) {
            self.labelled.refused[i].inc();
        }
    }

    /// Counts a session opened for `tenant` and raises the active gauge; unknown tenants only move the gauge.
    pub fn session_started(&self, tenant: &str) {
        self.active.inc();
        if let Some(t) = self.tenant(tenant) {
            t.opened.inc();
        }
    }

    /// Lowers the active gauge; counts a session error for `tenant` when `failed`.
    pub fn session_ended(&self, tenant: &str, failed: bool) {
        self.active.dec();
        if let (true, Some(t)) = (failed, self.tenant(tenant)) {
            t.errors.inc();
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

    /// A route set was applied (at start-up or on reload) with `tenants` tenants and `left_out` entries of the
    /// tenants_file left out.
    pub fn routes_applied(&self, tenants: usize, left_out: usize) {
        let routes = &self.routes;
        routes.generation.inc();
        if routes.generation.get() > 1 {
            routes.applied.inc();
        }
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        routes.last_applied.set(i64::try_from(now).unwrap_or(i64::MAX));
        routes.tenants.set(i64::try_from(tenants).unwrap_or(i64::MAX));
        routes.left_out.set(i64::try_from(left_out).unwrap_or(i64::MAX));
    }

    /// A changed configuration was refused; the current routes stay.
    pub fn routes_refused(&self) {
        self.routes.refused.inc();
    }

    /// Every metric in the OpenMetrics text format ([`CONTENT_TYPE`]), for `/metrics`.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail, and the metrics only write.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_state_is_exposed() {
        let m = Metrics::new(["acme"]);
        let text = m.encode();
        for line in [
            "kaas_proxy_routes_generation 0",
            "kaas_proxy_routes_reloads_total{outcome=\"applied\"} 0",
            "kaas_proxy_routes_reloads_total{outcome=\"refused\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        }
        m.routes_applied(1, 0); // start-up
        m.routes_applied(3, 1); // a reload
        m.routes_refused();
        let text = m.encode();
        for line in [
            "kaas_proxy_routes_generation 2",
            "kaas_proxy_routes_reloads_total{outcome=\"applied\"} 1",
            "kaas_proxy_routes_reloads_total{outcome=\"refused\"} 1",
            "kaas_proxy_routes_tenants 3",
            "kaas_proxy_routes_left_out 1",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        }
        let stamp = value(&text, "kaas_proxy_routes_last_applied_timestamp_seconds").expect("timestamp");
        assert!(stamp > 1_700_000_000, "{stamp}");
    }

    fn value(text: &str, series: &str) -> Option<u64> {
        text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn counts_and_renders() {
        let m = Metrics::new(["acme", "beta"]);
        m.accepted();
        m.accepted();
        m.refused(RefusalReason::Plaintext);
        m.session_started("acme");
        m.session_started("nobody");
        m.session_ended("acme", true);
        m.malformed_response("acme", ApiKey::Metadata);
        m.malformed_response("nobody", ApiKey::Metadata);
        m.malformed_response("acme", ApiKey::JoinGroup);
        m.upstream_tls_failed("beta", "broker_certificate");
        m.upstream_tls_failed("beta", "no_such_reason");
        let text = m.encode();
        for line in [
            "kaas_proxy_listener_connections_total 2",
            "kaas_proxy_listener_refused_total{reason=\"plaintext\"} 1",
            "kaas_proxy_listener_refused_total{reason=\"handshake\"} 0",
            "kaas_proxy_session_active 1",
            "kaas_proxy_session_opened_total{tenant=\"acme\"} 1",
            "kaas_proxy_session_errors_total{tenant=\"acme\"} 1",
            "kaas_proxy_session_errors_total{tenant=\"beta\"} 0",
            "kaas_proxy_upstream_malformed_responses_total{tenant=\"acme\",api=\"Metadata\"} 1",
            "kaas_proxy_upstream_malformed_responses_total{tenant=\"acme\",api=\"Fetch\"} 0",
            "kaas_proxy_upstream_tls_failures_total{tenant=\"beta\",reason=\"broker_certificate\"} 1",
            "kaas_proxy_upstream_tls_failures_total{tenant=\"acme\",reason=\"broker_alert\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        }
        assert!(!text.contains("nobody"), "unknown tenants add no label values");
        assert!(!text.contains("JoinGroup\"} 1"), "malformed counts only the APIs whose responses are read");
        assert!(text.ends_with("# EOF\n"), "a complete OpenMetrics exposition");
    }

    /// Every series a configured tenant has, as exposed.
    fn tenant_series(tenant: &str) -> Vec<String> {
        let mut all = vec![
            format!("kaas_proxy_session_opened_total{{tenant=\"{tenant}\"}}"),
            format!("kaas_proxy_session_errors_total{{tenant=\"{tenant}\"}}"),
        ];
        for api in READ_APIS {
            all.push(format!(
                "kaas_proxy_upstream_malformed_responses_total{{tenant=\"{tenant}\",api=\"{api:?}\"}}"
            ));
        }
        for reason in UPSTREAM_TLS_REASONS {
            all.push(format!(
                "kaas_proxy_upstream_tls_failures_total{{tenant=\"{tenant}\",reason=\"{reason}\"}}"
            ));
        }
        for direction in ["client_to_upstream", "upstream_to_client"] {
            all.push(format!(
                "kaas_proxy_session_bytes_total{{tenant=\"{tenant}\",direction=\"{direction}\"}}"
            ));
        }
        for api in request_apis().map(|a| format!("{a:?}")).chain(["unknown".to_owned()]) {
            all.push(format!("kaas_proxy_requests_total{{tenant=\"{tenant}\",api=\"{api}\"}}"));
        }
        all
    }

    #[test]
    fn every_series_starts_at_zero() {
        let m = Metrics::new(["acme"]);
        let text = m.encode();
        let mut expected =
            vec!["kaas_proxy_listener_connections_total".to_owned(), "kaas_proxy_session_active".into()];
        expected.extend(
            REASONS.map(|r| format!("kaas_proxy_listener_refused_total{{reason=\"{}\"}}", r.label())),
        );
        expected.extend(tenant_series("acme"));
        expected.extend(
            [
                "kaas_proxy_routes_generation",
                "kaas_proxy_routes_reloads_total{outcome=\"applied\"}",
                "kaas_proxy_routes_reloads_total{outcome=\"refused\"}",
                "kaas_proxy_routes_last_applied_timestamp_seconds",
                "kaas_proxy_routes_tenants",
                "kaas_proxy_routes_left_out",
            ]
            .map(str::to_owned),
        );
        for series in &expected {
            assert_eq!(value(&text, series), Some(0), "{series} missing or not zero in\n{text}");
        }
        let samples = text.lines().filter(|l| !l.starts_with('#')).count();
        assert_eq!(samples, expected.len(), "no series beyond the expected ones in\n{text}");
        assert!(
            text.contains("api=\"Metadata\"") && !text.contains("api=\"Vote\""),
            "blocked APIs have no series"
        );
    }

    #[test]
    fn counters_move_by_what_was_counted() {
        let m = Metrics::new(["acme", "beta"]);
        let acme = m.tenant("acme").expect("configured");
        acme.forwarded(Direction::ClientToUpstream, 100);
        acme.forwarded(Direction::ClientToUpstream, 23);
        acme.forwarded(Direction::UpstreamToClient, 7);
        acme.request(ApiKey::Metadata as i16);
        acme.request(ApiKey::Metadata as i16);
        acme.request(ApiKey::Produce as i16);
        acme.request(-1);
        acme.request(i16::MAX);
        acme.request(ApiKey::Vote as i16);
        let text = m.encode();
        let acme_series = |s: &str| format!("kaas_proxy_{s}");
        for (series, want) in [
            ("session_bytes_total{tenant=\"acme\",direction=\"client_to_upstream\"}", 123),
            ("session_bytes_total{tenant=\"acme\",direction=\"upstream_to_client\"}", 7),
            ("requests_total{tenant=\"acme\",api=\"Metadata\"}", 2),
            ("requests_total{tenant=\"acme\",api=\"Produce\"}", 1),
            ("requests_total{tenant=\"acme\",api=\"unknown\"}", 3),
            ("requests_total{tenant=\"acme\",api=\"Fetch\"}", 0),
            ("session_bytes_total{tenant=\"beta\",direction=\"client_to_upstream\"}", 0),
            ("requests_total{tenant=\"beta\",api=\"Metadata\"}", 0),
        ] {
            assert_eq!(value(&text, &acme_series(series)), Some(want), "{series} in\n{text}");
        }
        // Exactly those: the sum of every sample is what was counted.
        let total: u64 = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum();
        assert_eq!(total, 123 + 7 + 2 + 1 + 3);
    }

    #[test]
    fn unknown_tenants_add_nothing_and_reload_adds_zeros() {
        let m = Metrics::new(["acme"]);
        let before = m.encode();
        assert!(m.tenant("nobody").is_none());
        m.session_started("nobody");
        m.session_ended("nobody", true);
        m.malformed_response("nobody", ApiKey::Fetch);
        m.upstream_tls_failed("nobody", "timeout");
        let after = m.encode();
        assert_eq!(before, after, "only the gauge moved, and back");
        let acme = m.tenant("acme").expect("configured");
        acme.request(ApiKey::Fetch as i16);
        m.add_tenants(["acme", "beta"]);
        let text = m.encode();
        assert_eq!(value(&text, "kaas_proxy_requests_total{tenant=\"acme\",api=\"Fetch\"}"), Some(1), "kept");
        for series in tenant_series("beta") {
            assert_eq!(value(&text, &series), Some(0), "{series} after reload in\n{text}");
        }
        let same = m.tenant("acme").expect("configured");
        assert!(Arc::ptr_eq(&acme, &same), "re-adding a tenant keeps its counters");
    }
}
