//! A whole tenant cluster unreachable: every broker of a real 3-broker Apache Kafka cluster frozen at once
//! (SIGSTOP: connections open, nothing answered, as a network partition looks to a client) while clients of
//! that tenant and of another (on Tansu, behind the same proxy) produce. The partitioned tenant's clients get
//! Kafka-level errors within their own timeouts, not hangs; the other tenant's producer sees nothing; when the
//! cluster returns, the same proxy (no restart) carries the tenant's traffic again within seconds, and every
//! record acknowledged before, during and after is there.

use crate::common;

use std::time::{Duration, Instant};

use common::producing::{Plan, Producing};
use kaas_e2e::certs::Certs;
use kaas_e2e::kafka::{ClusterOptions, KafkaCluster, Listener};
use kaas_e2e::proxy::ProxyHandle;
use kaas_e2e::tansu::Tansu;
use kaas_e2e::DOMAIN;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};

/// How long the partitioned tenant's producer waits for an acknowledgement before reporting a failure.
const MESSAGE_TIMEOUT: Duration = Duration::from_secs(8);

fn producer(config: &ClientConfig) -> FutureProducer {
    config
        .clone()
        .set("acks", "all")
        .set("request.timeout.ms", "4000")
        .set("message.timeout.ms", MESSAGE_TIMEOUT.as_millis().to_string())
        .create()
        .expect("producer")
}

async fn send(producer: &FutureProducer, value: &str) -> Result<(), KafkaError> {
    let record = FutureRecord::to("orders").key("k").payload(value);
    producer.send(record, Duration::from_secs(30)).await.map(drop).map_err(|(e, _)| e)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_cluster_fails_fast_and_recovers_without_a_proxy_restart() {
    let mut cluster = KafkaCluster::start(ClusterOptions::named("outage")).expect("kafka");
    cluster.create_topic("orders", 3).expect("topic");
    let tansu = Tansu::start("outage-steady").expect("tansu");
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = Certs::generate(dir.path(), DOMAIN, &["down", "steady"]).expect("certs");
    let proxy = ProxyHandle::start(
        &certs,
        &[("down", cluster.addrs(Listener::Plain)), ("steady", vec![tansu.addr()])],
    )
    .expect("proxy");
    let down = common::client_config(&proxy.bootstrap("down"), &certs.ca);
    let steady = common::client_config(&proxy.bootstrap("steady"), &certs.ca);
    common::create_topic(&steady, "steady", 1).await.expect("steady topic");
    let plan = Plan {
        topic: "steady",
        run: "steady",
        batch: 10,
        pause: Duration::from_millis(50),
        recovery: MESSAGE_TIMEOUT,
    };
    let steady_producer = Producing::start(&steady, plan).expect("steady producer");

    let partitioned = producer(&down);
    for i in 0..10 {
        send(&partitioned, &format!("before/{i}")).await.expect("produce before the outage");
    }

    let nodes: Vec<i32> = cluster.node_ids().to_vec();
    for &node in &nodes {
        cluster.pause_broker(node).expect("pause");
    }
    let frozen = Instant::now();
    // The client already connected: its record fails as Kafka clients fail, at its own timeout.
    let failed = send(&partitioned, "during").await.expect_err("a record acknowledged by a frozen cluster");
    let waited = frozen.elapsed();
    assert!(
        matches!(
            failed.rdkafka_error_code(),
            Some(RDKafkaErrorCode::MessageTimedOut | RDKafkaErrorCode::RequestTimedOut)
        ),
        "a Kafka timeout, not {failed:?}"
    );
    assert!(waited < MESSAGE_TIMEOUT + Duration::from_secs(5), "failed after {waited:?}: a hang");
    // A client arriving during the outage gets a timely error too.
    let newcomer = producer(&down);
    let failed = send(&newcomer, "newcomer").await.expect_err("acknowledged by a frozen cluster");
    assert_eq!(failed.rdkafka_error_code(), Some(RDKafkaErrorCode::MessageTimedOut), "{failed:?}");
    // Meanwhile the other tenant's producer went on: it has new acknowledgements and no failure.
    steady_producer.wait_for_acks_since(frozen, 100, "the steady tenant during the outage").await;

    for &node in &nodes {
        cluster.resume_broker(node).expect("resume");
    }
    let back = Instant::now();
    let mut recovered = None;
    while back.elapsed() < Duration::from_secs(60) {
        if send(&producer(&down), "after").await.is_ok() {
            recovered = Some(back.elapsed());
            break;
        }
    }
    let recovered = recovered.expect("the tenant's traffic is back within 60 s of its cluster");
    eprintln!("outage: a frozen cluster failed a record after {waited:?}; traffic back {recovered:?} after it returned");
    send(&partitioned, "after/old-client").await.expect("the client from before the outage produces again");

    let sent = tokio::task::spawn_blocking(move || steady_producer.finish()).await.expect("steady producer");
    assert!(sent > 0);
    // Every acknowledged record of the partitioned tenant is there: the ten from before and those after (the
    // ones that timed out may be there too: a broker thawed can still take what it had read).
    let seen = common::consume(&down, "orders", "outage-check", usize::MAX, Duration::from_secs(20))
        .expect("consume");
    let values: Vec<String> = seen.iter().map(|s| String::from_utf8_lossy(&s.value).into_owned()).collect();
    for i in 0..10 {
        assert!(values.contains(&format!("before/{i}")), "before/{i} lost: {values:?}");
    }
    assert!(
        values.iter().any(|v| v == "after") && values.iter().any(|v| v == "after/old-client"),
        "{values:?}"
    );
}
