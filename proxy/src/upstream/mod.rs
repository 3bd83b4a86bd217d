//! Upstream: connections to a tenant's own Kafka cluster, plaintext or TLS ([`tls`]) with the identity the
//! tenant asks for ([`identity`]).
//!
//! A bootstrap connection tries the tenant's bootstrap servers in turn; a broker connection goes to the address
//! the tenant's broker table holds for that node id. An id the table lacks triggers one Metadata request of the proxy's
//! own; an id the cluster still does not report is refused. Neighbours: [`crate::tenants`] (the table) and
//! [`crate::kafka`] (framing, and the rewrite that feeds the table).

pub mod identity;
pub mod tls;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kaas_route::HostPort;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, MetadataRequest};
use kafka_protocol::protocol::Message;
use tokio::net::{lookup_host, TcpStream};
use tokio::time::timeout;
use tokio_rustls::TlsConnector;

use crate::error::{Blame, Side};
use crate::kafka::client::{ClientError, KafkaClient};
use crate::kafka::rewrite::{scan, RewriteError};
use crate::kafka::versions::{broker_range, VersionsError};
use crate::metrics::{ConnectFailure, Metrics};
use crate::tenants::reach::NotAllowed;
use crate::tenants::refresh::Verdict;
use crate::tenants::Tenant;
use identity::IdentityError;
use tls::{Principal, TlsFailure, UpstreamStream, UpstreamTls, UpstreamTlsError};

/// Why no upstream connection could be made.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The broker's host name did not resolve (or resolved to no address).
    #[error("cannot resolve {addr}: {source}")]
    Resolve {
        /// The broker address tried.
        addr: HostPort,
        /// The resolver's error.
        source: std::io::Error,
    },
    /// The address is not one the tenant's allow-list admits ([`crate::tenants::reach`]); never dialled.
    #[error(transparent)]
    NotAllowed(#[from] NotAllowed),
    /// The TCP connection was refused or failed.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The broker address tried.
        addr: HostPort,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The TCP connection did not complete within `connect_timeout`.
    #[error("cannot connect to {addr}: timed out after {after:?}")]
    ConnectTimeout {
        /// The broker address tried.
        addr: HostPort,
        /// The timeout that ran out.
        after: Duration,
    },
    /// The TLS handshake with the broker failed: its certificate did not verify, it refused the proxy's, or
    /// it does not speak TLS.
    #[error("TLS to {addr} failed ({}): {source}", .reason.label())]
    Tls {
        /// The broker address tried.
        addr: HostPort,
        /// What kind of failure.
        reason: TlsFailure,
        /// rustls' or the operating system's error.
        source: std::io::Error,
    },
    /// The broker's name is not one a certificate can be checked against.
    #[error("TLS to {addr}: {source}")]
    TlsName {
        /// The broker address tried.
        addr: HostPort,
        /// Why the name is unusable.
        source: UpstreamTlsError,
    },
    /// The client's identity cannot be presented upstream (no certificate, a subject that cannot be
    /// reproduced, a signing failure); not retryable.
    #[error("no upstream identity: {0}")]
    Identity(#[from] IdentityError),
    /// Every bootstrap server failed to connect (each failure is logged as it happens).
    #[error("no bootstrap server of tenant {tenant} answered ({tried} tried)")]
    NoBootstrap {
        /// The tenant's name.
        tenant: String,
        /// How many servers were tried: the whole list.
        tried: usize,
    },
    /// The cluster, asked afresh, does not report the node id the client named; not retryable.
    #[error("tenant {tenant} has no broker with node id {node}")]
    UnknownNode {
        /// The tenant's name.
        tenant: String,
        /// The node id from the server name.
        node: i32,
    },
    /// The tenant's cluster was asked for its brokers moments ago and did not answer; not asked again yet.
    #[error("tenant {tenant}: the last metadata refresh failed moments ago; not asking again yet")]
    RefreshBackoff {
        /// The tenant's name.
        tenant: String,
    },
    /// Too many connections already wait for the tenant's metadata refresh.
    #[error("tenant {tenant}: too many connections wait for its metadata refresh")]
    RefreshBusy {
        /// The tenant's name.
        tenant: String,
    },
    /// Finding the broker's address took longer than the handshake timeout; holds it.
    #[error("no broker address within {0:?}")]
    ResolveTimeout(Duration),
    /// The proxy's own Metadata request, made to learn an unknown node id, failed.
    #[error("metadata refresh failed: {0}")]
    Refresh(#[from] RefreshError),
}

/// Why the proxy's own metadata request did not yield the cluster's brokers.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// Sending a request or reading its response failed.
    #[error(transparent)]
    Exchange(#[from] ClientError),
    /// The ApiVersions response could not be walked.
    #[error(transparent)]
    Versions(#[from] VersionsError),
    /// The Metadata response could not be walked.
    #[error(transparent)]
    Metadata(#[from] RewriteError),
    /// The broker's ApiVersions does not list Metadata.
    #[error("the broker does not offer Metadata")]
    NoMetadata,
    /// The broker's newest Metadata is v0, where an empty topic list means every topic; holds that version.
    #[error("the broker offers only Metadata v{0}")]
    MetadataTooOld(i16),
    /// Both exchanges together took longer than twice `connect_timeout`; holds that deadline.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

impl Blame for UpstreamError {
    fn side(&self) -> Side {
        Side::Upstream
    }

    fn retryable(&self) -> bool {
        match self {
            UpstreamError::UnknownNode { .. }
            | UpstreamError::Identity(_)
            | UpstreamError::NotAllowed(_)
            | UpstreamError::TlsName { .. } => false,
            UpstreamError::Tls { reason, .. } => {
                matches!(reason, TlsFailure::Handshake | TlsFailure::Timeout)
            }
            _ => true,
        }
    }

    fn label(&self) -> &'static str {
        match self {
            UpstreamError::Resolve { .. }
            | UpstreamError::Connect { .. }
            | UpstreamError::ConnectTimeout { .. } => "connect",
            UpstreamError::NotAllowed(_) => "not_allowed",
            UpstreamError::Tls { .. } | UpstreamError::TlsName { .. } => "tls",
            UpstreamError::Identity(_) => "identity",
            UpstreamError::NoBootstrap { .. } => "no_bootstrap",
            UpstreamError::UnknownNode { .. } => "unknown_node",
            UpstreamError::Refresh(_) | UpstreamError::RefreshBackoff { .. } => "metadata_refresh",
            UpstreamError::RefreshBusy { .. } => "refresh_busy",
            UpstreamError::ResolveTimeout(_) => "resolve_timeout",
        }
    }
}

impl UpstreamError {
    /// How a connection attempt failed, for `kaas_proxy_upstream_connect_failures_total`; `None` for failures
    /// that are not one connection's (no identity to present, no bootstrap server left, an unknown node).
    fn connect_failure(&self) -> Option<ConnectFailure> {
        Some(match self {
            UpstreamError::Resolve { .. } => ConnectFailure::Unresolved,
            UpstreamError::NotAllowed(_) => ConnectFailure::NotAllowed,
            UpstreamError::Connect { source, .. }
                if source.kind() == std::io::ErrorKind::ConnectionRefused =>
            {
                ConnectFailure::Refused
            }
            UpstreamError::Connect { .. } => ConnectFailure::Other,
            UpstreamError::ConnectTimeout { .. } => ConnectFailure::Timeout,
            UpstreamError::Tls { reason: TlsFailure::Timeout, .. } => ConnectFailure::Timeout,
            UpstreamError::Tls { .. } | UpstreamError::TlsName { .. } => ConnectFailure::Tls,
            UpstreamError::Identity(_)
            | UpstreamError::NoBootstrap { .. }
            | UpstreamError::UnknownNode { .. }
            | UpstreamError::Refresh(_)
            | UpstreamError::RefreshBackoff { .. }
            | UpstreamError::RefreshBusy { .. }
            | UpstreamError::ResolveTimeout(_) => return None,
        })
    }
}

/// Connection settings shared by all tenants.
#[derive(Debug, Clone)]
pub struct Connector {
    /// Time allowed for a TCP connect, and again for a TLS handshake; twice it bounds the proxy's own metadata
    /// exchange.
    pub connect_timeout: Duration,
    /// Largest response frame accepted on the proxy's own requests, bytes.
    pub max_frame_bytes: u32,
    /// Where upstream TLS failures are counted.
    pub metrics: Arc<Metrics>,
}

impl Connector {
    /// A TCP connection to `addr` with Nagle off, within `connect_timeout`; over TLS when the tenant has
    /// upstream TLS, presenting `who`'s certificate as the tenant's identity mode says. Timed and counted per
    /// tenant (`kaas_proxy_upstream_connect_*`).
    pub async fn connect(
        &self,
        tenant: &Tenant,
        addr: &HostPort,
        tls: Option<&UpstreamTls>,
        who: Principal<'_>,
    ) -> Result<UpstreamStream, UpstreamError> {
        // Before any socket: a client without an identity gets no upstream connection.
        let config = match tls {
            Some(tls) => Some(tls.config_for(who).await?),
            None => None,
        };
        let started = Instant::now();
        let result = self.open(tenant, addr, tls.zip(config)).await;
        if let Err(e @ UpstreamError::NotAllowed(_)) = &result {
            tracing::warn!(tenant = %tenant.name, error = %e, "broker address refused");
        }
        if let Some(m) = self.metrics.tenant(&tenant.name) {
            match &result {
                Ok(_) => m.connected(started.elapsed()),
                Err(e) => e.connect_failure().into_iter().for_each(|why| m.connect_failed(why)),
            }
        }
        result
    }

    /// The socket, and the TLS handshake over it with `tls`'s configuration.
    async fn open(
        &self,
        tenant: &Tenant,
        addr: &HostPort,
        tls: Option<(&UpstreamTls, Arc<rustls::ClientConfig>)>,
    ) -> Result<UpstreamStream, UpstreamError> {
        let tcp = async {
            let resolve_error = |source| UpstreamError::Resolve { addr: addr.clone(), source };
            let resolved: Vec<IpAddr> = lookup_host((addr.host.as_str(), addr.port))
                .await
                .map_err(resolve_error)?
                .map(|a| a.ip())
                .collect();
            if resolved.is_empty() {
                return Err(resolve_error(std::io::ErrorKind::NotFound.into()));
            }
            // Checked after resolution, and the checked addresses are the ones dialled: a name cannot resolve
            // to one address here and another at connect.
            let addrs: Vec<SocketAddr> = tenant
                .reach
                .admits(addr, &resolved)?
                .into_iter()
                .map(|ip| SocketAddr::new(ip, addr.port))
                .collect();
            TcpStream::connect(&addrs[..])
                .await
                .map_err(|source| UpstreamError::Connect { addr: addr.clone(), source })
        };
        let tcp = timeout(self.connect_timeout, tcp).await.map_err(|_| UpstreamError::ConnectTimeout {
            addr: addr.clone(),
            after: self.connect_timeout,
        })??;
        let _ = tcp.set_nodelay(true);
        let Some((tls, config)) = tls else { return Ok(UpstreamStream::Plain(tcp)) };
        let name = tls
            .server_name(&addr.host)
            .map_err(|source| UpstreamError::TlsName { addr: addr.clone(), source })?;
        let tls_error = |reason, source| UpstreamError::Tls { addr: addr.clone(), reason, source };
        match timeout(self.connect_timeout, TlsConnector::from(config).connect(name, tcp)).await {
            Ok(Ok(stream)) => Ok(UpstreamStream::Tls(Box::new(stream))),
            Ok(Err(e)) => {
                let reason = TlsFailure::of(&e);
                self.metrics.upstream_tls_failed(&tenant.name, reason.label());
                Err(tls_error(reason, e))
            }
            Err(_) => {
                self.metrics.upstream_tls_failed(&tenant.name, TlsFailure::Timeout.label());
                let e =
                    std::io::Error::new(std::io::ErrorKind::TimedOut, "no TLS handshake within the timeout");
                Err(tls_error(TlsFailure::Timeout, e))
            }
        }
    }

    /// One of the tenant's bootstrap servers, the next on failure. An identity failure ends the attempt at
    /// once: another server would refuse the same identity.
    pub async fn connect_bootstrap(
        &self,
        tenant: &Tenant,
        tls: Option<&UpstreamTls>,
        who: Principal<'_>,
    ) -> Result<(UpstreamStream, HostPort), UpstreamError> {
        let mut tried = 0;
        for addr in tenant.bootstrap_order() {
            tried += 1;
            match self.connect(tenant, addr, tls, who).await {
                Ok(s) => return Ok((s, addr.clone())),
                Err(e @ UpstreamError::Identity(_)) => return Err(e),
                Err(e) => tracing::warn!(tenant = %tenant.name, error = %e, "bootstrap server unreachable"),
            }
        }
        Err(UpstreamError::NoBootstrap { tenant: tenant.name.clone(), tried })
    }

    /// The upstream address of node `id`, asking the cluster if the table does not know it and the tenant's
    /// [`crate::tenants::refresh::RefreshGate`] allows (at most once an interval; ids it did not report are remembered), with at most
    /// [`crate::tenants::refresh::MAX_WAITERS`] connections waiting for one refresh. The caller bounds the whole in time.
    pub async fn resolve_broker(
        &self,
        tenant: &Tenant,
        tls: Option<&UpstreamTls>,
        id: i32,
    ) -> Result<HostPort, UpstreamError> {
        if let Some(addr) = tenant.broker(id) {
            return Ok(addr);
        }
        let unknown = || UpstreamError::UnknownNode { tenant: tenant.name.clone(), node: id };
        let gate = &tenant.refresh_gate;
        let allowed = || match gate.verdict(id, Instant::now()) {
            Verdict::Refresh => Ok(()),
            Verdict::Unknown => Err(unknown()),
            Verdict::RecentlyFailed => Err(UpstreamError::RefreshBackoff { tenant: tenant.name.clone() }),
        };
        allowed()?;
        let Ok(_waiting) = tenant.refresh_waiters.try_acquire() else {
            return Err(UpstreamError::RefreshBusy { tenant: tenant.name.clone() });
        };
        let _one_at_a_time = tenant.refresh.lock().await;
        if let Some(addr) = tenant.broker(id) {
            return Ok(addr);
        }
        // Another connection's refresh may have ended while this one waited.
        allowed()?;
        tracing::info!(tenant = %tenant.name, node = id, "unknown node id; refreshing metadata");
        let brokers = self.fetch_brokers(tenant, tls).await;
        gate.refreshed(Instant::now(), brokers.is_ok());
        if let Some(m) = self.metrics.tenant(&tenant.name) {
            m.metadata_refreshed(brokers.is_ok());
        }
        tenant.learn(brokers?);
        tenant.broker(id).ok_or_else(|| {
            gate.unknown(id, Instant::now());
            unknown()
        })
    }

    /// Asks a bootstrap server for the cluster's brokers (ApiVersions, then Metadata with no topics), as the
    /// proxy itself. Both answers are walked with the same bounded readers as the responses clients get, never
    /// decoded.
    async fn fetch_brokers(
        &self,
        tenant: &Tenant,
        tls: Option<&UpstreamTls>,
    ) -> Result<Vec<(i32, HostPort)>, UpstreamError> {
        let (stream, _) = self.connect_bootstrap(tenant, tls, Principal::Proxy).await?;
        let mut client = KafkaClient::new(stream, self.max_frame_bytes, "kaas-proxy");
        let io_deadline = self.connect_timeout * 2;
        let exchange = async {
            let versions = client.call(0, &ApiVersionsRequest::default()).await?;
            let broker_max =
                broker_range(&versions, 0, ApiKey::Metadata)?.ok_or(RefreshError::NoMetadata)?.max;
            let version = broker_max.min(MetadataRequest::VERSIONS.max);
            if version < 1 {
                return Err(RefreshError::MetadataTooOld(broker_max));
            }
            let request = MetadataRequest::default().with_topics(Some(Vec::new()));
            let metadata = client.call(version, &request).await?;
            Ok(scan(ApiKey::Metadata, version, &metadata, None)?.learned)
        };
        let brokers =
            timeout(io_deadline, exchange).await.map_err(|_| RefreshError::Timeout(io_deadline))??;
        Ok(brokers)
    }
}
