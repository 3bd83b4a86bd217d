//! Prometheus metrics, `kaas_proxy_<subsystem>_<name>_<unit>[_total]`, with bounded labels (tenant, reason).
//! Plain atomics, rendered in the text exposition format by [`Metrics::encode`]; the admin endpoint serves it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use kafka_protocol::messages::ApiKey;

/// Why a connection was refused before a session started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

const REASONS: [RefusalReason; 13] = [
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

/// The APIs whose responses the proxy reads: the `api` label of malformed-response counts.
const READ_APIS: [ApiKey; 8] = [
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

#[derive(Debug, Default)]
struct TenantCounters {
    sessions: AtomicU64,
    session_errors: AtomicU64,
    malformed: [AtomicU64; READ_APIS.len()],
    upstream_tls_failures: [AtomicU64; UPSTREAM_TLS_REASONS.len()],
}

/// The proxy's counters and gauge, shared by the listener, the sessions and the admin endpoint.
#[derive(Debug)]
pub struct Metrics {
    connections: AtomicU64,
    refused: [AtomicU64; REASONS.len()],
    active: AtomicI64,
    /// Grows only with configured tenants (on reload), so label values stay bounded.
    tenants: std::sync::RwLock<BTreeMap<String, Arc<TenantCounters>>>,
}

impl Metrics {
    /// Counters for a fixed set of tenants (the label set stays bounded).
    pub fn new<'a>(tenants: impl IntoIterator<Item = &'a str>) -> Self {
        Metrics {
            connections: AtomicU64::new(0),
            refused: Default::default(),
            active: AtomicI64::new(0),
            tenants: std::sync::RwLock::new(
                tenants.into_iter().map(|t| (t.to_owned(), Arc::default())).collect(),
            ),
        }
    }

    /// Starts counting tenants added by a reload.
    pub fn add_tenants<'a>(&self, tenants: impl IntoIterator<Item = &'a str>) {
        let mut map = self.tenants.write().unwrap_or_else(|p| p.into_inner());
        for t in tenants {
            map.entry(t.to_owned()).or_default();
        }
    }

    fn tenant(&self, name: &str) -> Option<Arc<TenantCounters>> {
        self.tenants.read().unwrap_or_else(|p| p.into_inner()).get(name).cloned()
    }

    /// Counts a TCP connection accepted on the TLS port.
    pub fn accepted(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a connection refused before its session started.
    pub fn refused(&self, why: RefusalReason) {
        if let Some(i) = REASONS.iter().position(|r| *r == why) {
            self.refused[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a session opened for `tenant` and raises the active gauge; unknown tenants only move the gauge.
    pub fn session_started(&self, tenant: &str) {
        self.active.fetch_add(1, Ordering::Relaxed);
        if let Some(t) = self.tenant(tenant) {
            t.sessions.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Lowers the active gauge; counts a session error for `tenant` when `failed`.
    pub fn session_ended(&self, tenant: &str, failed: bool) {
        self.active.fetch_sub(1, Ordering::Relaxed);
        if let (true, Some(t)) = (failed, self.tenant(tenant)) {
            t.session_errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A broker response the proxy could not walk (the session was closed).
    pub fn malformed_response(&self, tenant: &str, api: ApiKey) {
        if let (Some(i), Some(t)) = (READ_APIS.iter().position(|a| *a == api), self.tenant(tenant)) {
            t.malformed[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A TLS handshake with one of `tenant`'s brokers failed; `reason` is one of [`UPSTREAM_TLS_REASONS`].
    pub fn upstream_tls_failed(&self, tenant: &str, reason: &str) {
        if let (Some(i), Some(t)) =
            (UPSTREAM_TLS_REASONS.iter().position(|r| *r == reason), self.tenant(tenant))
        {
            t.upstream_tls_failures[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Every metric in the Prometheus text exposition format, for `/metrics`.
    pub fn encode(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "# HELP kaas_proxy_listener_connections_total TCP connections accepted on the TLS port."
        );
        let _ = writeln!(o, "# TYPE kaas_proxy_listener_connections_total counter");
        let _ =
            writeln!(o, "kaas_proxy_listener_connections_total {}", self.connections.load(Ordering::Relaxed));
        let _ = writeln!(
            o,
            "# HELP kaas_proxy_listener_refused_total Connections refused before a session, by reason."
        );
        let _ = writeln!(o, "# TYPE kaas_proxy_listener_refused_total counter");
        for (r, n) in REASONS.iter().zip(&self.refused) {
            let _ = writeln!(
                o,
                "kaas_proxy_listener_refused_total{{reason=\"{}\"}} {}",
                r.label(),
                n.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(o, "# HELP kaas_proxy_session_active Sessions open now.");
        let _ = writeln!(o, "# TYPE kaas_proxy_session_active gauge");
        let _ = writeln!(o, "kaas_proxy_session_active {}", self.active.load(Ordering::Relaxed));
        let _ = writeln!(o, "# HELP kaas_proxy_session_opened_total Sessions opened, by tenant.");
        let _ = writeln!(o, "# TYPE kaas_proxy_session_opened_total counter");
        let tenants = self.tenants.read().unwrap_or_else(|p| p.into_inner()).clone();
        for (name, t) in &tenants {
            let _ = writeln!(
                o,
                "kaas_proxy_session_opened_total{{tenant=\"{name}\"}} {}",
                t.sessions.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(o, "# HELP kaas_proxy_session_errors_total Sessions closed on an error, by tenant.");
        let _ = writeln!(o, "# TYPE kaas_proxy_session_errors_total counter");
        for (name, t) in &tenants {
            let _ = writeln!(
                o,
                "kaas_proxy_session_errors_total{{tenant=\"{name}\"}} {}",
                t.session_errors.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            o,
            "# HELP kaas_proxy_upstream_malformed_responses_total Broker responses that could not be read \
             (each closed one client connection), by tenant and API."
        );
        let _ = writeln!(o, "# TYPE kaas_proxy_upstream_malformed_responses_total counter");
        for (name, t) in &tenants {
            for (api, n) in READ_APIS.iter().zip(&t.malformed) {
                let _ = writeln!(
                    o,
                    "kaas_proxy_upstream_malformed_responses_total{{tenant=\"{name}\",api=\"{api:?}\"}} {}",
                    n.load(Ordering::Relaxed)
                );
            }
        }
        let _ = writeln!(
            o,
            "# HELP kaas_proxy_upstream_tls_failures_total TLS handshakes with a tenant's brokers that failed, by \
             tenant and reason."
        );
        let _ = writeln!(o, "# TYPE kaas_proxy_upstream_tls_failures_total counter");
        for (name, t) in &tenants {
            for (reason, n) in UPSTREAM_TLS_REASONS.iter().zip(&t.upstream_tls_failures) {
                let _ = writeln!(
                    o,
                    "kaas_proxy_upstream_tls_failures_total{{tenant=\"{name}\",reason=\"{reason}\"}} {}",
                    n.load(Ordering::Relaxed)
                );
            }
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
