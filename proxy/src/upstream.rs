//! Upstream: TCP connections to a tenant's own Kafka cluster.
//!
//! A bootstrap connection tries the tenant's bootstrap servers in turn; a broker connection goes to the address
//! the router's table holds for that node id. An id the table lacks triggers one Metadata request of the proxy's
//! own; an id the cluster still does not report is refused. Neighbours: [`crate::router`] (the table) and
//! [`crate::kafka`] (framing, and the rewrite that feeds the table).

use std::time::Duration;

use kaas_route::HostPort;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, MetadataRequest};
use kafka_protocol::protocol::Message;
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::error::{Blame, Side};
use crate::kafka::client::{ClientError, KafkaClient};
use crate::kafka::rewrite::{scan, RewriteError};
use crate::kafka::versions::{broker_range, VersionsError};
use crate::router::Tenant;

/// Why no upstream connection could be made.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The TCP connection was refused or failed (or the host name did not resolve).
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
        !matches!(self, UpstreamError::UnknownNode { .. })
    }

    fn label(&self) -> &'static str {
        match self {
            UpstreamError::Connect { .. } | UpstreamError::ConnectTimeout { .. } => "connect",
            UpstreamError::NoBootstrap { .. } => "no_bootstrap",
            UpstreamError::UnknownNode { .. } => "unknown_node",
            UpstreamError::Refresh(_) => "metadata_refresh",
        }
    }
}

/// Connection settings shared by all tenants.
#[derive(Debug, Clone, Copy)]
pub struct Connector {
    /// Time allowed for a TCP connect; twice it bounds the proxy's own metadata exchange.
    pub connect_timeout: Duration,
    /// Largest response frame accepted on the proxy's own requests, bytes.
    pub max_frame_bytes: u32,
}

impl Connector {
    /// A TCP connection to `addr` with Nagle off, within `connect_timeout`.
    pub async fn connect(&self, addr: &HostPort) -> Result<TcpStream, UpstreamError> {
        let stream = timeout(self.connect_timeout, TcpStream::connect((addr.host.as_str(), addr.port)))
            .await
            .map_err(|_| UpstreamError::ConnectTimeout { addr: addr.clone(), after: self.connect_timeout })?
            .map_err(|source| UpstreamError::Connect { addr: addr.clone(), source })?;
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }

    /// One of the tenant's bootstrap servers, the next on failure.
    pub async fn connect_bootstrap(&self, tenant: &Tenant) -> Result<(TcpStream, HostPort), UpstreamError> {
        let mut tried = 0;
        for addr in tenant.bootstrap_order() {
            tried += 1;
            match self.connect(addr).await {
                Ok(s) => return Ok((s, addr.clone())),
                Err(e) => tracing::warn!(tenant = %tenant.name, error = %e, "bootstrap server unreachable"),
            }
        }
        Err(UpstreamError::NoBootstrap { tenant: tenant.name.clone(), tried })
    }

    /// The upstream address of node `id`, asking the cluster once if the table does not know it.
    pub async fn resolve_broker(&self, tenant: &Tenant, id: i32) -> Result<HostPort, UpstreamError> {
        if let Some(addr) = tenant.broker(id) {
            return Ok(addr);
        }
        let _one_at_a_time = tenant.refresh.lock().await;
        if let Some(addr) = tenant.broker(id) {
            return Ok(addr);
        }
        tracing::info!(tenant = %tenant.name, node = id, "unknown node id; refreshing metadata");
        let brokers = self.fetch_brokers(tenant).await?;
        tenant.learn(brokers);
        tenant.broker(id).ok_or_else(|| UpstreamError::UnknownNode { tenant: tenant.name.clone(), node: id })
    }

    /// Asks a bootstrap server for the cluster's brokers (ApiVersions, then Metadata with no topics). Both
    /// answers are walked with the same bounded readers as the responses clients get, never decoded.
    async fn fetch_brokers(&self, tenant: &Tenant) -> Result<Vec<(i32, HostPort)>, UpstreamError> {
        let (stream, _) = self.connect_bootstrap(tenant).await?;
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
