//! What a configuration becomes once validated ([`Settings`], one [`TenantSettings`] per tenant): plain
//! values and the material its files hold (certificates, keys, trust roots), nothing that runs. The routing
//! state is built of it by [`crate::routes`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use kaas_route::HostPort;
use rustls::pki_types::CertificateRevocationListDer;
use rustls::sign::CertifiedKey;

use super::principal::PrincipalMapper;
use super::{certs, AcmeSettings, ConfigError, UpstreamSettings};

/// A validated configuration, certificates loaded.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The one TLS port; bound at start-up only (a reload does not move it).
    pub listen: SocketAddr,
    /// Validated DNS name tenants live under, without a trailing dot.
    pub domain: String,
    /// Port written into rewritten broker addresses; the port of `listen` unless configured (0: the port
    /// [`crate::Server::bind`] actually bound).
    pub advertised_port: u16,
    /// Largest Kafka frame accepted either way, 1024..=`i32::MAX`.
    pub max_frame_bytes: u32,
    /// Time allowed to open a TCP connection to a tenant's broker; at least one second.
    pub connect_timeout: Duration,
    /// Time from a client's TCP connection to its complete ClientHello.
    pub hello_timeout: Duration,
    /// Time for the rest of a client's handshake; also the bound on finding and reaching its broker.
    pub handshake_timeout: Duration,
    /// Quiet time after which a session with nothing outstanding is closed.
    pub idle_timeout: Duration,
    /// Connections open at once, all tenants together.
    pub max_connections: usize,
    /// Connections open at once per tenant, counted from the end of their handshake.
    pub max_connections_per_tenant: usize,
    /// Connections open at once per peer address (IPv6: per /64).
    pub max_connections_per_ip: usize,
    /// Connections of one peer address (IPv6: per /64) still in their handshake.
    pub max_handshakes_per_ip: usize,
    /// Connections naming one tenant still in their handshake.
    pub max_handshakes_per_tenant: usize,
    /// Requests awaiting responses per connection before the proxy stops reading the client.
    pub max_inflight_requests_per_connection: usize,
    /// After a reload changes or removes a tenant's route, how long its open sessions may go on.
    pub reload_grace: Duration,
    /// Largest `max_bytes` a Fetch request is forwarded with: what bounds the response frames held per connection.
    pub max_fetch_response_bytes: u32,
    /// Where `/healthz`, `/readyz` and `/metrics` are served; no admin endpoint when `None`.
    pub admin_listen: Option<SocketAddr>,
    /// Where only `/livez`, `/healthz` and `/readyz` are served, with connection places of their own.
    pub probe_listen: Option<SocketAddr>,
    /// Load balancers whose connections start with a PROXY protocol v2 header naming the client.
    pub proxy_protocol_trusted_cidrs: Vec<kaas_route::Cidr>,
    /// Chain and key for names whose tenant has no certificate of its own.
    pub default_cert: Arc<CertifiedKey>,
    /// Inline tenants first, then those of `tenants_file`; names are unique.
    pub tenants: Vec<TenantSettings>,
    /// Problems of `tenants_file` entries that were left out so the others are served (a route published
    /// before its certificate files are mounted, say); empty when every entry loaded. Logged by the caller.
    pub skipped: Vec<ConfigError>,
    /// Names of the entries left out (where their name could be read): a reload keeps serving the version of
    /// these tenants it already has rather than drop them.
    pub skipped_tenants: Vec<String>,
    /// The revocation lists of left-out entries whose CRL file did load (another of their files did not): a
    /// reload applies them to the version of the tenant it keeps, so a revocation is never held up by a
    /// certificate that fails to load (fail closed for revocation).
    pub skipped_crls: Vec<(String, Vec<CertificateRevocationListDer<'static>>)>,
    /// The `tenants_file`, when it was absent and [`super::Missing::Empty`] let the settings load without it.
    pub tenants_file_missing: Option<PathBuf>,
    /// The ACME client's settings; `None` without an `acme` section (then no tenant has `acme: true`).
    pub acme: Option<Arc<AcmeSettings>>,
    /// Where and how often usage records are written; `None`: no usage records. Read at start-up only.
    pub usage: Option<super::UsageSettings>,
    /// Where the audit trail is written; `None`: no audit trail. Read at start-up only.
    pub audit: Option<super::AuditSettings>,
}

impl Settings {
    /// Logs each left-out `tenants_file` entry ([`Settings::skipped`]) once, naming its key; the start-up and
    /// every reload report them the same way.
    pub fn warn_skipped(&self) {
        for e in &self.skipped {
            tracing::warn!(key = %e.key, "tenant left out: {}", e.message);
        }
    }

    /// The settings read only when the proxy starts, by their key in the file, each with its value as text to
    /// compare (never shown: the ACME section holds its account key's source). A reload applies tenants,
    /// certificates, the domain and the grace period; these stay as the proxy started ([`changed_since_start`]).
    pub fn start_only(&self) -> StartOnly {
        StartOnly(vec![
            ("listen", format!("{:?}", self.listen)),
            ("advertised_port", format!("{:?}", self.advertised_port)),
            ("max_frame_bytes", format!("{:?}", self.max_frame_bytes)),
            ("connect_timeout_seconds", format!("{:?}", self.connect_timeout)),
            ("hello_timeout_seconds", format!("{:?}", self.hello_timeout)),
            ("handshake_timeout_seconds", format!("{:?}", self.handshake_timeout)),
            ("idle_timeout_seconds", format!("{:?}", self.idle_timeout)),
            ("max_connections", format!("{:?}", self.max_connections)),
            ("max_connections_per_tenant", format!("{:?}", self.max_connections_per_tenant)),
            ("max_connections_per_ip", format!("{:?}", self.max_connections_per_ip)),
            ("max_handshakes_per_ip", format!("{:?}", self.max_handshakes_per_ip)),
            ("max_handshakes_per_tenant", format!("{:?}", self.max_handshakes_per_tenant)),
            (
                "max_inflight_requests_per_connection",
                format!("{:?}", self.max_inflight_requests_per_connection),
            ),
            ("max_fetch_response_bytes", format!("{:?}", self.max_fetch_response_bytes)),
            ("admin_listen", format!("{:?}", self.admin_listen)),
            ("probe_listen", format!("{:?}", self.probe_listen)),
            ("proxy_protocol_trusted_cidrs", format!("{:?}", self.proxy_protocol_trusted_cidrs)),
            ("acme", format!("{:?}", self.acme)),
            ("usage", format!("{:?}", self.usage)),
            ("audit", format!("{:?}", self.audit)),
        ])
    }

    /// Each tenant with the not-after (Unix seconds) of the certificate its clients are served: its own, or
    /// the default one. ACME tenants are left out: [`crate::acme`] sets theirs as it installs certificates.
    pub fn certificate_expiry(&self) -> Vec<(&str, i64)> {
        let default = certs::not_after(&self.default_cert);
        self.tenants
            .iter()
            .filter(|t| t.acme_broker_ids.is_none())
            .filter_map(|t| {
                let not_after = t.cert.as_deref().map_or(default, certs::not_after)?;
                Some((t.name.as_str(), not_after))
            })
            .collect()
    }
}

/// [`Settings::start_only`]: the start-only settings' keys and values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StartOnly(Vec<(&'static str, String)>);

/// The keys of the start-only settings that differ between `started` (what the proxy runs with) and `now` (a
/// file just loaded), in the file's order: a reload cannot apply them, so the operator is told.
pub fn changed_since_start(started: &StartOnly, now: &StartOnly) -> Vec<&'static str> {
    started.0.iter().zip(&now.0).filter(|(a, b)| a != b).map(|((key, _), _)| *key).collect()
}

/// One tenant of [`Settings`]: its [`kaas_route::TenantRoute`] validated, with its certificate and client CA loaded.
#[derive(Debug, Clone)]
pub struct TenantSettings {
    /// DNS label; the tenant's names are `<name>.<domain>` and `b<node-id>.<name>.<domain>`.
    pub name: String,
    /// Bootstrap servers in the order they are tried.
    pub bootstrap: Vec<HostPort>,
    /// The tenant's own chain and key; `None` uses [`Settings::default_cert`].
    pub cert: Option<Arc<CertifiedKey>>,
    /// Client certificates must chain to these, when set.
    pub client_roots: Option<Arc<rustls::RootCertStore>>,
    /// Revocation lists client certificates are checked against (with `client_roots` only).
    pub client_crls: Vec<CertificateRevocationListDer<'static>>,
    /// TLS to the tenant's brokers and the identity presented there; plaintext when `None`.
    pub upstream: Option<Arc<UpstreamSettings>>,
    /// `upstream.allowed_hosts` as configured (validated): DNS suffixes broker addresses may have.
    pub allowed_hosts: Vec<String>,
    /// `upstream.allowed_cidrs` as configured (validated): ranges broker addresses may resolve into.
    pub allowed_cidrs: Vec<String>,
    /// Maps client certificate subjects to the principal names logged; `None`: the subject itself.
    pub principals: Option<Arc<PrincipalMapper>>,
    /// A hash of the entry and of every file it names: a reload that leaves it equal leaves the tenant's open
    /// sessions alone.
    pub fingerprint: u64,
    /// Byte-rate quotas; none when absent.
    pub quota: Option<kaas_route::Quota>,
    /// `tls: { acme: true }`: the broker ids whose `b<id>` names its ACME certificate covers; `None`: its
    /// certificate is `cert` (or the default).
    pub acme_broker_ids: Option<Vec<u32>>,
}
