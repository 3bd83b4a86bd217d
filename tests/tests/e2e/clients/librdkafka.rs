//! librdkafka (the `rdkafka` crate) through kaas-proxy to a real Tansu broker.

use crate::common;

use std::time::Duration;

use common::*;
use kaas_e2e::{SingleTenant, DOMAIN};
use rdkafka::consumer::{BaseConsumer, Consumer};

fn setup() -> SingleTenant {
    SingleTenant::start().expect("tansu and proxy")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_names_only_proxy_hosts() {
    let s = setup();
    let config = client_config(&s.bootstrap(), &s.certs.ca);
    create_topic(&config, "names", 3).await.expect("create topic");
    let consumer: BaseConsumer = config.create().expect("client");
    let md = consumer.fetch_metadata(None, Duration::from_secs(20)).expect("metadata");
    assert!(!md.brokers().is_empty());
    for b in md.brokers() {
        assert_eq!(b.host(), format!("b{}.acme.{DOMAIN}", b.id()), "broker host");
        assert_eq!(b.port(), i32::from(s.proxy.port), "broker port");
    }
    assert!(md.topics().iter().any(|t| t.name() == "names"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_records_acks_all_round_trip() {
    let s = setup();
    let config = client_config(&s.bootstrap(), &s.certs.ca);
    create_topic(&config, "orders", 4).await.expect("create topic");
    let reports = produce(&config, "orders", "all", 10_000, "all").await.expect("produce");
    assert!(reports.iter().all(|(_, offset)| *offset >= 0));
    let seen = consume(&config, "orders", "g-all", 10_000, Duration::from_secs(120)).expect("consume");
    assert_same_records("all", 10_000, &seen);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_records_acks_0_round_trip() {
    let s = setup();
    let config = client_config(&s.bootstrap(), &s.certs.ca);
    create_topic(&config, "fire", 2).await.expect("create topic");
    produce(&config, "fire", "zero", 10_000, "0").await.expect("produce");
    let seen = consume(&config, "fire", "g-zero", 10_000, Duration::from_secs(120)).expect("consume");
    assert_same_records("zero", 10_000, &seen);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_group_member_resumes_after_commit() {
    let s = setup();
    let config = client_config(&s.bootstrap(), &s.certs.ca);
    create_topic(&config, "resume", 1).await.expect("create topic");
    produce(&config, "resume", "first", 300, "all").await.expect("produce first");
    let first = consume(&config, "resume", "g-resume", 300, Duration::from_secs(60)).expect("first consumer");
    assert_eq!(first.len(), 300);
    produce(&config, "resume", "second", 200, "all").await.expect("produce second");
    let second =
        consume(&config, "resume", "g-resume", 200, Duration::from_secs(60)).expect("second consumer");
    assert_same_records("second", 200, &second);
    let last_first = first.iter().map(|r| r.offset).max().unwrap_or(-1);
    assert!(second.iter().all(|r| r.offset > last_first), "second consumer re-read committed records");
    assert!(kaas_e2e::proxy::logs().contains("learned broker address"), "coordinator address learned");
}
