//! The configuration file as written ([`Config`]): the schema of record for tools that write it, and its
//! defaults. The loader ([`super::load`]) reads the file key by key against [`TOP_LEVEL_KEYS`].

use std::path::PathBuf;

use kaas_route::{CertificateFiles, TenantRoute};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{AcmeConfig, AuditConfig, UsageConfig};

/// Kafka's own default for `socket.request.max.bytes`.
pub const DEFAULT_MAX_FRAME_BYTES: u32 = 100 * 1024 * 1024;
pub(super) const DEFAULT_CONNECT_TIMEOUT_SECONDS: u64 = 5;

/// The file as written; field names are the YAML keys. The schema of record (for tools that write the file);
/// [`super::load`] reads it key by key to report every error at once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The one TLS port for all tenants.
    pub listen: String,
    /// Tenants live under it: `<tenant>.<domain>`, `b<node-id>.<tenant>.<domain>`.
    pub domain: String,
    /// Port written into rewritten broker addresses; default: the port of `listen`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advertised_port: Option<u16>,
    /// Largest Kafka frame accepted in either direction.
    #[serde(default = "default_max_frame_bytes")]
    pub max_frame_bytes: u32,
    /// Time allowed to open a TCP connection to a tenant's broker.
    #[serde(default = "default_connect_timeout_seconds")]
    pub connect_timeout_seconds: u64,
    /// Time a client has from its TCP connection to a complete ClientHello.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hello_timeout_seconds: Option<u64>,
    /// Time a client has for the rest of its TLS handshake after the ClientHello; it also bounds finding a
    /// broker's address and reaching the broker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handshake_timeout_seconds: Option<u64>,
    /// A session with no request outstanding and no frame either way for this long is closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout_seconds: Option<u64>,
    /// Connections open at once, all tenants together; more are closed on accept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<usize>,
    /// Connections open at once per tenant, counted once authenticated (the handshake done); more are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections_per_tenant: Option<usize>,
    /// Connections open at once from one peer address (an IPv6 /64 counts as one); more are closed on accept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections_per_ip: Option<usize>,
    /// Connections of one peer address (an IPv6 /64 counts as one) still in their handshake; more are closed
    /// on accept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_handshakes_per_ip: Option<usize>,
    /// Connections naming one tenant still in their handshake; more are refused after the ClientHello.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_handshakes_per_tenant: Option<usize>,
    /// Requests a connection may have awaiting responses before the proxy stops reading it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_inflight_requests_per_connection: Option<usize>,
    /// After a reload changes or removes a tenant's route, how long its open sessions may go on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reload_grace_seconds: Option<u64>,
    /// Largest `max_bytes` a Fetch request is forwarded with (lower ones pass as they are).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_fetch_response_bytes: Option<u32>,
    /// Address of the admin endpoint (`/metrics`, and the probes too); none when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_listen: Option<String>,
    /// Address of an endpoint that serves only the probes (`/livez`, `/healthz`, `/readyz`), with places of its
    /// own, so that nothing holding the admin endpoint's connections can fail the kubelet's probes; none when
    /// absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_listen: Option<String>,
    /// Addresses (CIDRs) of the load balancers in front of the listener that send a PROXY protocol v2 header
    /// (an AWS NLB with proxy protocol on, HAProxy's `send-proxy-v2`): from them the header is required and its
    /// client address is the one limits, logs and metrics see; from anyone else a header is refused. Empty or
    /// absent: no PROXY protocol.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub proxy_protocol_trusted_cidrs: Vec<String>,
    /// Default certificate chain and key, used for names without a tenant certificate.
    pub tls: CertificateFiles,
    /// Tenants written inline; may be empty or absent when `tenants_file` is given.
    #[serde(default)]
    pub tenants: Vec<TenantRoute>,
    /// A YAML list of further tenants: the route source kaas-controller publishes (a mounted ConfigMap).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenants_file: Option<PathBuf>,
    /// The ACME client for tenants with `tls: { acme: true }`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acme: Option<AcmeConfig>,
    /// Usage records: who moved what, per tenant, principal, topic and direction; none when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<UsageConfig>,
    /// The audit trail: sessions authenticated and refused, administrative requests and their answers; none
    /// when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit: Option<AuditConfig>,
}

fn default_max_frame_bytes() -> u32 {
    DEFAULT_MAX_FRAME_BYTES
}
fn default_connect_timeout_seconds() -> u64 {
    DEFAULT_CONNECT_TIMEOUT_SECONDS
}

/// Keys of [`Config`]. The file is read key by key (so every error is reported at once); a test checks this
/// list and the parser against [`Config`] itself.
pub(super) const TOP_LEVEL_KEYS: &[&str] = &[
    "listen",
    "domain",
    "advertised_port",
    "max_frame_bytes",
    "connect_timeout_seconds",
    "hello_timeout_seconds",
    "handshake_timeout_seconds",
    "idle_timeout_seconds",
    "max_connections",
    "max_connections_per_tenant",
    "max_connections_per_ip",
    "max_handshakes_per_ip",
    "max_handshakes_per_tenant",
    "max_inflight_requests_per_connection",
    "reload_grace_seconds",
    "max_fetch_response_bytes",
    "admin_listen",
    "probe_listen",
    "proxy_protocol_trusted_cidrs",
    "tls",
    "tenants",
    "tenants_file",
    "acme",
    "usage",
    "audit",
];
