//! The listener's own metrics, registered into the proxy's registry ([`crate::metrics::Metrics::registry`]):
//! connections accepted and open on the TLS port, and those refused before a session, by a reason from a fixed
//! list ([`REASONS`]), every series present from the start at zero.

use std::fmt::Write as _;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelValue, EncodeMetric, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

/// Why a connection was refused before a session started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefusalReason {
    /// Plaintext Kafka on the TLS port.
    Plaintext,
    /// Neither TLS nor Kafka.
    NotTls,
    /// A TLS record that rustls could not read as a ClientHello (malformed, over 64 KiB, an invalid server
    /// name): answered with rustls' alert (`decode_error`, `illegal_parameter`...).
    InvalidClientHello,
    /// No ClientHello within the handshake timeout.
    NoClientHello,
    /// The global `max_connections` was reached; the connection was closed before its ClientHello was read.
    ConnectionLimit,
    /// The peer's address (IPv6: its /64) has `max_connections_per_ip` open; closed before its ClientHello.
    IpConnectionLimit,
    /// The tenant's `max_connections_per_tenant` was reached.
    TenantConnectionLimit,
    /// The peer's address (IPv6: its /64) has `max_handshakes_per_ip` connections still in their handshake;
    /// closed before its ClientHello.
    IpHandshakeLimit,
    /// The tenant has `max_handshakes_per_tenant` connections still in their handshake: alert `internal_error`.
    TenantHandshakeLimit,
    /// The server name routes nowhere (no SNI, unknown tenant, unknown broker id): alert `unrecognized_name`.
    UnrecognizedName,
    /// The tenant's cluster could not be asked which brokers it has.
    ClusterUnavailable,
    /// The TLS handshake failed for a reason not listed here (a bad record, an alert from the client).
    Handshake,
    /// The ClientHello came, but the handshake did not finish within the handshake timeout.
    HandshakeTimeout,
    /// The client offers only TLS versions the proxy does not speak (before TLS 1.2).
    ProtocolVersion,
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
    /// The client's certificate names Strimzi's own organisation (`O=io.strimzi`, its super users): the proxy
    /// never mints such a subject upstream ([`crate::upstream::identity`]).
    ReservedSubject,
    /// A PROXY protocol header that is missing, malformed or late from a trusted load balancer, or sent at all
    /// by an address not trusted to send one.
    ProxyHeader,
}

/// Every refusal reason: the `reason` label values of `kaas_proxy_listener_refused_total`.
pub const REASONS: [RefusalReason; 23] = [
    RefusalReason::Plaintext,
    RefusalReason::NotTls,
    RefusalReason::InvalidClientHello,
    RefusalReason::NoClientHello,
    RefusalReason::ConnectionLimit,
    RefusalReason::IpConnectionLimit,
    RefusalReason::TenantConnectionLimit,
    RefusalReason::IpHandshakeLimit,
    RefusalReason::TenantHandshakeLimit,
    RefusalReason::UnrecognizedName,
    RefusalReason::ClusterUnavailable,
    RefusalReason::Handshake,
    RefusalReason::HandshakeTimeout,
    RefusalReason::ProtocolVersion,
    RefusalReason::ClientCertMissing,
    RefusalReason::ClientCertExpired,
    RefusalReason::ClientCertNotYetValid,
    RefusalReason::ClientCertUnknownCa,
    RefusalReason::ClientCertRevoked,
    RefusalReason::ClientCertInvalid,
    RefusalReason::UpstreamUnavailable,
    RefusalReason::ReservedSubject,
    RefusalReason::ProxyHeader,
];

impl RefusalReason {
    /// The `reason` label value of `kaas_proxy_listener_refused_total`.
    pub fn label(self) -> &'static str {
        match self {
            RefusalReason::Plaintext => "plaintext",
            RefusalReason::NotTls => "not_tls",
            RefusalReason::InvalidClientHello => "invalid_client_hello",
            RefusalReason::NoClientHello => "no_client_hello",
            RefusalReason::ConnectionLimit => "connection_limit",
            RefusalReason::IpConnectionLimit => "ip_connection_limit",
            RefusalReason::TenantConnectionLimit => "tenant_connection_limit",
            RefusalReason::IpHandshakeLimit => "ip_handshake_limit",
            RefusalReason::TenantHandshakeLimit => "tenant_handshake_limit",
            RefusalReason::UnrecognizedName => "unrecognized_name",
            RefusalReason::ClusterUnavailable => "cluster_unavailable",
            RefusalReason::Handshake => "handshake",
            RefusalReason::HandshakeTimeout => "handshake_timeout",
            RefusalReason::ProtocolVersion => "protocol_version",
            RefusalReason::ClientCertMissing => "client_cert_missing",
            RefusalReason::ClientCertExpired => "client_cert_expired",
            RefusalReason::ClientCertNotYetValid => "client_cert_not_yet_valid",
            RefusalReason::ClientCertUnknownCa => "client_cert_unknown_ca",
            RefusalReason::ClientCertRevoked => "client_cert_revoked",
            RefusalReason::ClientCertInvalid => "client_cert_invalid",
            RefusalReason::UpstreamUnavailable => "upstream_unavailable",
            RefusalReason::ReservedSubject => "reserved_subject",
            RefusalReason::ProxyHeader => "proxy_header",
        }
    }
}

impl EncodeLabelValue for RefusalReason {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> std::fmt::Result {
        encoder.write_str(self.label())
    }
}

/// A connection counted in `kaas_proxy_listener_connections_open` until dropped.
#[derive(Debug)]
pub struct OpenConnection(Gauge);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The listener's counters; cheap to clone (the counters are shared).
#[derive(Debug, Clone, Default)]
pub struct ListenerMetrics {
    accepted: Counter,
    open: Gauge,
    /// By [`REASONS`].
    refused: [Counter; REASONS.len()],
}

/// `kaas_proxy_listener_refused_total{reason}`: every reason always present, in [`REASONS`]' order.
#[derive(Debug)]
struct Refusals([Counter; REASONS.len()]);

impl Collector for Refusals {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let help = "Connections refused before a session, by reason.";
        let mut family = encoder.encode_descriptor("listener_refused", help, None, MetricType::Counter)?;
        for (reason, counter) in REASONS.iter().zip(&self.0) {
            counter.encode(family.encode_family(&[("reason", reason.label())])?)?;
        }
        Ok(())
    }
}

impl ListenerMetrics {
    /// Registers the listener's series in `registry`, at zero.
    pub fn register(registry: &mut Registry) -> ListenerMetrics {
        let metrics = ListenerMetrics::default();
        registry.register(
            "listener_connections",
            "TCP connections accepted on the TLS port",
            metrics.accepted.clone(),
        );
        registry.register(
            "listener_connections_open",
            "TCP connections open on the TLS port, counted against max_connections",
            metrics.open.clone(),
        );
        registry.register_collector(Box::new(Refusals(metrics.refused.clone())));
        metrics
    }

    /// Counts a TCP connection accepted on the TLS port.
    pub fn accepted(&self) {
        self.accepted.inc();
    }

    /// Counts a connection admitted within the connection limits as open until the guard is dropped.
    pub fn opened(&self) -> OpenConnection {
        self.open.inc();
        OpenConnection(self.open.clone())
    }

    /// Counts a connection refused before its session started.
    pub fn refused(&self, why: RefusalReason) {
        if let Some(i) = REASONS.iter().position(|r| *r == why) {
            self.refused[i].inc();
        }
    }
}

/// Refusal log lines each reason may write per second; the metric counts every refusal.
pub const LOG_LINES_PER_SECOND: u32 = 5;

/// Which refusals are logged: at most [`LOG_LINES_PER_SECOND`] a second per reason, so a stranger who opens
/// connections by the thousand cannot flood the log (nor hide other lines in it); the next line logged for a
/// reason says how many were left out before it. Pure bookkeeping on instants the caller passes.
#[derive(Debug, Default)]
pub struct RefusalLog {
    /// Per reason (by [`REASONS`]' index): the second's start, lines logged in it, and refusals left out since
    /// the last line.
    windows: std::sync::Mutex<[(Option<std::time::Instant>, u32, u64); REASONS.len()]>,
}

impl RefusalLog {
    /// Whether a refusal for `why` at `now` is logged: `Some(left out since the last line)`, or `None`.
    pub fn sample(&self, why: RefusalReason, now: std::time::Instant) -> Option<u64> {
        let i = REASONS.iter().position(|r| *r == why)?;
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let (start, logged, left_out) = &mut windows[i];
        if start.is_none_or(|s| now.saturating_duration_since(s) >= std::time::Duration::from_secs(1)) {
            *start = Some(now);
            *logged = 0;
        }
        if *logged >= LOG_LINES_PER_SECOND {
            *left_out += 1;
            return None;
        }
        *logged += 1;
        Some(std::mem::take(left_out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;

    #[test]
    fn the_listener_counts_in_the_proxy_registry() {
        let mut metrics = Metrics::new(["acme"]);
        let listener = ListenerMetrics::register(metrics.registry());
        listener.accepted();
        listener.accepted();
        let (first, _second) = (listener.opened(), listener.opened());
        drop(first);
        listener.refused(RefusalReason::Plaintext);
        let text = metrics.encode();
        for line in [
            "kaas_proxy_listener_connections_total 2",
            "kaas_proxy_listener_connections_open 1",
            "kaas_proxy_listener_refused_total{reason=\"plaintext\"} 1",
            "kaas_proxy_listener_refused_total{reason=\"handshake\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        }
        for reason in REASONS {
            let series = format!("kaas_proxy_listener_refused_total{{reason=\"{}\"}}", reason.label());
            assert!(text.contains(&series), "{series} missing in\n{text}");
        }
    }

    #[test]
    fn refusals_are_logged_a_few_a_second_per_reason_and_say_what_was_left_out() {
        let log = RefusalLog::default();
        let t0 = std::time::Instant::now();
        let ms = std::time::Duration::from_millis;
        let logged: Vec<_> = (0..8).map(|i| log.sample(RefusalReason::Plaintext, t0 + ms(i))).collect();
        assert_eq!(logged, [Some(0), Some(0), Some(0), Some(0), Some(0), None, None, None]);
        assert_eq!(log.sample(RefusalReason::NotTls, t0), Some(0), "another reason has its own budget");
        assert_eq!(log.sample(RefusalReason::Plaintext, t0 + ms(999)), None);
        assert_eq!(
            log.sample(RefusalReason::Plaintext, t0 + ms(1000)),
            Some(4),
            "the next second's first line"
        );
        assert_eq!(log.sample(RefusalReason::Plaintext, t0 + ms(1001)), Some(0));
    }
}
