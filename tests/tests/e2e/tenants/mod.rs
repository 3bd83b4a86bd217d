//! Two tenants, each with its own Tansu: nothing crosses between them. The same on real Apache Kafka, where
//! both clusters call their broker 11, and a tenant's quota: [`kafka`].

mod kafka;

use crate::common;

use std::time::Duration;

use common::*;
use kaas_e2e::certs::Certs;
use kaas_e2e::proxy::ProxyHandle;
use kaas_e2e::raw;
use kaas_e2e::tansu::Tansu;
use kaas_e2e::DOMAIN;
use kafka_protocol::messages::MetadataRequest;
use rdkafka::consumer::{BaseConsumer, Consumer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_are_isolated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = Certs::generate(dir.path(), DOMAIN, &["acme", "beta"]).expect("certs");
    let acme = Tansu::start("acme-cluster").expect("tansu acme");
    let beta = Tansu::start("beta-cluster").expect("tansu beta");
    let proxy = ProxyHandle::start(&certs, &[("acme", vec![acme.addr()]), ("beta", vec![beta.addr()])])
        .expect("proxy");
    let acme_cfg = client_config(&proxy.bootstrap("acme"), &certs.ca);
    let beta_cfg = client_config(&proxy.bootstrap("beta"), &certs.ca);

    create_topic(&beta_cfg, "beta-secrets", 1).await.expect("create on beta");
    produce(&beta_cfg, "beta-secrets", "secret", 50, "all").await.expect("produce on beta");
    create_topic(&acme_cfg, "acme-orders", 1).await.expect("create on acme");
    produce(&acme_cfg, "acme-orders", "orders", 50, "all").await.expect("produce on acme");

    let acme_client: BaseConsumer = acme_cfg.create().expect("client");
    let md = acme_client.fetch_metadata(None, Duration::from_secs(20)).expect("metadata");
    let topics: Vec<&str> = md.topics().iter().map(|t| t.name()).collect();
    assert!(topics.contains(&"acme-orders") && !topics.contains(&"beta-secrets"), "acme sees {topics:?}");
    assert!(md.brokers().iter().all(|b| b.host().ends_with(&format!(".acme.{DOMAIN}"))));

    // Consuming beta's topic through acme's names finds nothing.
    let leaked = consume(&acme_cfg, "beta-secrets", "snoop", 1, Duration::from_secs(5)).unwrap_or_default();
    assert!(leaked.is_empty(), "acme read beta's records");
    let own =
        consume(&beta_cfg, "beta-secrets", "owner", 50, Duration::from_secs(30)).expect("beta consumes");
    assert_same_records("secret", 50, &own);

    // Both clusters call their only broker 111; each tenant's b111 name leads to its own cluster.
    for (tenant, cluster) in [("acme", "acme-cluster"), ("beta", "beta-cluster")] {
        let mut conn =
            raw::connect(proxy.port, Some(&format!("b111.{tenant}.{DOMAIN}")), &certs.ca).await.expect("tls");
        let (_, md) = raw::call(&mut conn, 1, 9, &MetadataRequest::default()).await.expect("metadata");
        assert_eq!(md.cluster_id.as_ref().map(|c| c.as_str()), Some(cluster), "b111.{tenant}");
    }
}
