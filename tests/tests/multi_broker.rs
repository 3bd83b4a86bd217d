//! Three brokers (the protocol-speaking test cluster): a real client reaches each through its `b<id>` name and
//! produces to partitions led by each.

mod common;

use std::time::Duration;

use common::*;
use kaas_e2e::certs::Certs;
use kaas_e2e::proxy::ProxyHandle;
use kaas_e2e::test_broker::{leader_of, record_count, TestCluster, NODES, PARTITIONS};
use kaas_e2e::DOMAIN;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_reaches_every_broker_through_its_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = Certs::generate(dir.path(), DOMAIN, &["trio"]).expect("certs");
    let cluster = TestCluster::start().await.expect("test cluster");
    let proxy = ProxyHandle::start(&certs, &[("trio", vec![cluster.bootstrap()])]).expect("proxy");
    let config = client_config(&proxy.bootstrap("trio"), &certs.ca);

    let md_client: BaseConsumer = config.create().expect("client");
    let md = md_client.fetch_metadata(Some("multi"), Duration::from_secs(20)).expect("metadata");
    let mut hosts: Vec<(i32, String, i32)> =
        md.brokers().iter().map(|b| (b.id(), b.host().to_owned(), b.port())).collect();
    hosts.sort();
    let port = i32::from(proxy.port);
    assert_eq!(
        hosts,
        (1..=NODES).map(|id| (id, format!("b{id}.trio.{DOMAIN}"), port)).collect::<Vec<_>>(),
        "one proxy name per node"
    );

    let producer: FutureProducer =
        config.clone().set("enable.idempotence", "false").set("linger.ms", "0").create().expect("producer");
    let per_partition = 20;
    for partition in 0..PARTITIONS {
        for i in 0..per_partition {
            let payload = format!("p{partition}-{i}");
            let record = FutureRecord::to("multi").partition(partition).key("k").payload(&payload);
            producer.send(record, Duration::from_secs(20)).await.map_err(|(e, _)| e).expect("delivered");
        }
    }
    for partition in 0..PARTITIONS {
        let leader = leader_of(partition);
        let node = cluster.node(leader);
        let batches = node.stored.get(&("multi".to_owned(), partition)).cloned().unwrap_or_default();
        assert_eq!(
            record_count(&batches),
            per_partition,
            "partition {partition} on its leader, node {leader}"
        );
        for other in (1..=NODES).filter(|n| *n != leader) {
            assert!(!cluster.node(other).stored.contains_key(&("multi".to_owned(), partition)));
        }
    }
    for id in 1..=NODES {
        assert!(cluster.node(id).connections > 0, "node {id} was never reached");
        assert!(
            kaas_e2e::proxy::logs().contains(&format!("sni=b{id}.trio.{DOMAIN}")),
            "no connection named b{id}"
        );
    }
}
