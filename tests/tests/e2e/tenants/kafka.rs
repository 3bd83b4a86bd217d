//! Two tenants, each with its own real Apache Kafka cluster, behind one kaas-proxy port. Both clusters call
//! their broker 11, so `b11` alone cannot tell them apart: each tenant's `b11` must reach its own cluster
//! (its cluster id), neither tenant sees the other's topics or records, and a broker id only the other
//! cluster could have is refused at the handshake.

use crate::common;

use std::time::Duration;

use common::proxied::broker_name;
use common::wire::metadata_request;
use common::*;
use kaas_e2e::certs::Certs;
use kaas_e2e::kafka::{ClusterOptions, KafkaCluster, Listener};
use kaas_e2e::proxy::ProxyHandle;
use kaas_e2e::{raw, DOMAIN};
use kafka_protocol::messages::DescribeClusterRequest;
use rdkafka::admin::{NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rustls::AlertDescription;

const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_tenant_reaches_only_its_own_cluster() {
    // One node each: isolation needs two clusters, not replication (and 2 JVMs start faster than 6).
    let clusters = KafkaCluster::start_many(vec![
        ClusterOptions::named("tenant-acme").nodes(1),
        ClusterOptions::named("tenant-beta").nodes(1),
    ])
    .expect("two kafka clusters");
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = Certs::generate(dir.path(), DOMAIN, &["acme", "beta"]).expect("certs");
    let tenants = [("acme", &clusters[0], "acme-orders"), ("beta", &clusters[1], "beta-secrets")];
    let routes: Vec<(&str, Vec<String>)> =
        tenants.iter().map(|(t, c, _)| (*t, c.addrs(Listener::Plain))).collect();
    let proxy = ProxyHandle::start(&certs, &routes).expect("proxy");
    assert_eq!(clusters[0].node_ids(), clusters[1].node_ids(), "both clusters number their broker 11");
    assert_ne!(clusters[0].cluster_id(), clusters[1].cluster_id());

    for (tenant, cluster, topic) in tenants {
        let config = client_config(&proxy.bootstrap(tenant), &certs.ca);
        create_topics(&config, &[NewTopic::new(topic, 2, TopicReplication::Fixed(1))]).await.expect("create");
        produce(&config, topic, tenant, 200, "all").await.expect("produce");

        // b11 under this tenant's name is this tenant's node 11: its Metadata names this cluster.
        let b11 = broker_name(tenant, 11);
        let mut conn = raw::connect(proxy.port, Some(&b11), &certs.ca).await.expect("connect to b11");
        let (_, md) = raw::call(&mut conn, 1, 12, &metadata_request(&[])).await.expect("metadata");
        assert_eq!(md.cluster_id.as_deref(), Some(cluster.cluster_id()), "{b11} reaches another cluster");
        let (_, dc) = raw::call(&mut conn, 2, 0, &DescribeClusterRequest::default()).await.expect("describe");
        assert_eq!(dc.cluster_id.as_str(), cluster.cluster_id(), "{b11}: DescribeCluster");
        let hosts: Vec<String> = dc.brokers.iter().map(|b| b.host.to_string()).collect();
        assert_eq!(hosts, std::slice::from_ref(&b11), "{tenant}'s brokers");

        // A broker id this cluster does not have is refused at the handshake, not sent anywhere.
        let b12 = broker_name(tenant, 12);
        let err = raw::connect(proxy.port, Some(&b12), &certs.ca).await.expect_err("b12 does not exist");
        assert_eq!(raw::alert_of(&err), Some(AlertDescription::UnrecognisedName), "{b12}: {err}");
    }

    for ((tenant, _, own), (other, _, foreign)) in [(tenants[0], tenants[1]), (tenants[1], tenants[0])] {
        let config = client_config(&proxy.bootstrap(tenant), &certs.ca);
        let client: BaseConsumer = config.create().expect("client");
        let md = client.fetch_metadata(None, Duration::from_secs(20)).expect("metadata");
        let topics: Vec<&str> = md.topics().iter().map(|t| t.name()).collect();
        assert!(topics.contains(&own) && !topics.contains(&foreign), "{tenant} sees {topics:?}");

        // Asked by name, the other tenant's topic does not exist here.
        let mut conn =
            raw::connect(proxy.port, Some(&format!("{tenant}.{DOMAIN}")), &certs.ca).await.expect("connect");
        let (_, md) = raw::call(&mut conn, 1, 12, &metadata_request(&[foreign])).await.expect("metadata");
        assert_eq!(
            md.topics[0].error_code, UNKNOWN_TOPIC_OR_PARTITION,
            "{tenant} asking for {other}'s {foreign}"
        );

        let seen =
            consume(&config, own, &format!("g-{tenant}"), 200, Duration::from_secs(60)).expect("consume");
        assert_same_records(tenant, 200, &seen);
    }
}

/// A tenant with byte-rate quotas (1 MiB/s each way) beside one without, on the same cluster and proxy port:
/// the capped tenant's producer and consumer are slowed to the quota — answered with `throttle_time_ms`, not
/// read meanwhile — with no error; the other tenant is never throttled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_over_its_quota_is_slowed_to_it_without_errors() {
    const RATE: u64 = 1 << 20;
    const RECORDS: usize = 12_000; // ~4.3 MB of values
    let cluster = KafkaCluster::start(ClusterOptions::named("quota").nodes(1)).expect("kafka");
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = Certs::generate(dir.path(), DOMAIN, &["capped", "free"]).expect("certs");
    let bootstrap = &cluster.addrs(Listener::Plain)[0];
    let tenants = format!(
        "  - name: capped\n    bootstrap: [\"{bootstrap}\"]\n    upstream: {{ plaintext: true }}\n    quota: {{ produce_bytes_per_second: {RATE}, \
         fetch_bytes_per_second: {RATE} }}\n  - name: free\n    bootstrap: [\"{bootstrap}\"]\n    upstream: {{ plaintext: true }}\n"
    );
    let proxy = ProxyHandle::start_with_tenants_yaml(&certs, &tenants).expect("proxy");
    let capped = client_config(&proxy.bootstrap("capped"), &certs.ca);
    let free = client_config(&proxy.bootstrap("free"), &certs.ca);
    for (config, topic) in [(&capped, "capped-topic"), (&free, "free-topic")] {
        create_topics(config, &[NewTopic::new(topic, 1, TopicReplication::Fixed(1))]).await.expect("topic");
    }

    let started = std::time::Instant::now();
    let acked = produce(&capped, "capped-topic", "capped", RECORDS, "all").await.expect("every record acked");
    let produced_in = started.elapsed();
    let sent = proxy
        .metric("kaas_proxy_session_bytes_total{tenant=\"capped\",direction=\"client_to_upstream\"}")
        .expect("metrics");
    // The bucket holds one second's worth, and the throttle the last response earns is waited after the run:
    // everything else (less one batch, at most librdkafka's batch.size of 1 MB) goes at the quota's rate.
    let floor = Duration::from_secs_f64((sent - RATE as f64 - 1e6) / RATE as f64 * 0.9);
    assert_eq!(acked.len(), RECORDS);
    assert!(produced_in >= floor, "{sent} bytes produced in {produced_in:?}, quota floor {floor:?}");
    let throttled = "kaas_proxy_quota_throttled_responses_total{tenant=\"capped\",kind=\"produce\"}";
    assert!(proxy.metric(throttled).expect("metrics") > 0.0, "{throttled}");

    let started = std::time::Instant::now();
    let seen =
        consume(&capped, "capped-topic", "g-capped", RECORDS, Duration::from_secs(120)).expect("consume");
    let consumed_in = started.elapsed();
    assert_same_records("capped", RECORDS, &seen);
    assert!(consumed_in >= floor, "{RECORDS} records fetched in {consumed_in:?}, quota floor {floor:?}");
    let throttled = "kaas_proxy_quota_throttled_responses_total{tenant=\"capped\",kind=\"fetch\"}";
    assert!(proxy.metric(throttled).expect("metrics") > 0.0, "{throttled}");

    let started = std::time::Instant::now();
    produce(&free, "free-topic", "free", RECORDS, "all").await.expect("the other tenant produces");
    let free_produce = started.elapsed();
    let started = std::time::Instant::now();
    let seen = consume(&free, "free-topic", "g-free", RECORDS, Duration::from_secs(120)).expect("consume");
    let free_consume = started.elapsed();
    assert_same_records("free", RECORDS, &seen);
    for kind in ["produce", "fetch"] {
        let series = format!("kaas_proxy_quota_throttled_responses_total{{tenant=\"free\",kind=\"{kind}\"}}");
        assert_eq!(proxy.metric(&series).expect("metrics"), 0.0, "{series}: a tenant without quota");
    }
    eprintln!(
        "{sent} bytes at {RATE} B/s: capped tenant produce {produced_in:?}, consume {consumed_in:?}; free tenant \
         produce {free_produce:?}, consume {free_consume:?}"
    );
}
