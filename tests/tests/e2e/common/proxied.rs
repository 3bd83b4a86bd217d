//! A tenant whose cluster is a real Apache Kafka cluster, behind kaas-proxy: clients reach the proxy over
//! TLS with the tenant's names, the proxy reaches the brokers over their PLAIN listener (until the proxy
//! speaks TLS upstream).

use anyhow::Context;
use kaas_e2e::certs::Certs;
use kaas_e2e::kafka::{ClusterOptions, KafkaCluster, Listener};
use kaas_e2e::proxy::ProxyHandle;
use kaas_e2e::{raw, DOMAIN};
use rdkafka::config::ClientConfig;

/// One tenant, its cluster and the proxy in front.
#[derive(Debug)]
pub struct ProxiedKafka {
    // Fields drop in order: the proxy stops before the brokers, so it never logs them going away.
    pub proxy: ProxyHandle,
    pub cluster: KafkaCluster,
    pub certs: Certs,
    pub tenant: String,
    _dir: tempfile::TempDir,
}

impl ProxiedKafka {
    /// Starts the cluster, then a proxy serving `tenant` with every node's PLAIN listener as bootstrap.
    pub fn start(tenant: &str, opts: ClusterOptions) -> anyhow::Result<ProxiedKafka> {
        let dir = tempfile::tempdir()?;
        let certs = Certs::generate(dir.path(), DOMAIN, &[tenant])?;
        let cluster = KafkaCluster::start(opts)?;
        let proxy = ProxyHandle::start(&certs, &[(tenant, cluster.addrs(Listener::Plain))])?;
        Ok(ProxiedKafka { proxy, cluster, certs, tenant: tenant.to_owned(), _dir: dir })
    }

    /// `<tenant>.<domain>:<port>`: the one address a tenant's users are given.
    pub fn bootstrap(&self) -> String {
        self.proxy.bootstrap(&self.tenant)
    }

    /// `<tenant>.<domain>`.
    pub fn bootstrap_name(&self) -> String {
        format!("{}.{DOMAIN}", self.tenant)
    }

    /// `b<id>.<tenant>.<domain>`: the name every broker address is rewritten to.
    pub fn broker_name(&self, id: i32) -> String {
        broker_name(&self.tenant, id)
    }

    /// librdkafka settings for this tenant: bootstrap name and CA, nothing else.
    pub fn client(&self) -> ClientConfig {
        super::client_config(&self.bootstrap(), &self.certs.ca)
    }

    /// A raw TLS connection to the proxy under `name` (the bootstrap name or a `b<id>` name).
    pub async fn raw(&self, name: &str) -> anyhow::Result<raw::Tls> {
        raw::connect(self.proxy.port, Some(name), &self.certs.ca)
            .await
            .with_context(|| format!("connect as {name}"))
    }
}

/// `b<id>.<tenant>.<domain>`.
pub fn broker_name(tenant: &str, id: i32) -> String {
    format!("b{id}.{tenant}.{DOMAIN}")
}
