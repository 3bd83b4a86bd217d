//! Leadership moves while an idempotent librdkafka producer (acks=all) writes through kaas-proxy to a real
//! 3-broker Apache Kafka cluster: a broker leading some partitions is killed (SIGKILL, a crash: its
//! leaderships move once the controller fences it) and restarted, then another is stopped (SIGTERM, a
//! controlled shutdown: leaderships move first, and producers are told the new leader through the KIP-951
//! endpoints the proxy rewrites). The producer follows the new leaders through the proxy's `b<id>` names —
//! the only addresses it has — with no delivery failing, and every record is consumed once, in order per
//! partition. The stopped broker stays down: two of three replicas still meet `min.insync.replicas`, and a
//! second restart would only cost the 2 cores another JVM start.
//!
//! And the proxy's own roll-out: a producer writes through one of two proxy replicas behind a load balancer
//! (a switchable relay); that replica drains (SIGTERM): it turns unready, the balancer sends new connections to
//! the other, and its sessions close between requests. The producer reconnects and goes on with no delivery
//! failing, and every acknowledged record is consumed once.
//!
//! A whole cluster unreachable and back: [`outage`]; two proxy instances restarted in turn under running
//! clients: [`proxy_restart`].

mod outage;
mod proxy_restart;

use crate::common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::producing::{Ack, Plan, Producing};
use common::proxied::ProxiedKafka;
use common::*;
use kaas_e2e::certs::Certs;
use kaas_e2e::kafka::{ClusterOptions, KafkaCluster, Listener};
use kaas_e2e::proxy::{wait_for_log, ProxyHandle};
use kaas_e2e::relay::SwitchRelay;
use kaas_e2e::DOMAIN;
use rdkafka::admin::{NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};

const TOPIC: &str = "moves";
const PARTITIONS: i32 = 6;
const RUN: &str = "moves";
/// How long leaderships may take to move and records to flow again (fencing a killed broker alone takes
/// `broker.session.timeout.ms`, 6 s).
const RECOVERY: Duration = Duration::from_secs(60);
/// ~1,000 records a second.
const PLAN: Plan =
    Plan { topic: TOPIC, run: RUN, batch: 20, pause: Duration::from_millis(20), recovery: RECOVERY };

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producer_follows_leaders_through_broker_crash_and_shutdown() {
    let mut k =
        ProxiedKafka::start("moves", ClusterOptions::named("failover")).expect("kafka cluster and proxy");
    let config = k.client();
    let topics = [NewTopic::new(TOPIC, PARTITIONS, TopicReplication::Fixed(3))];
    create_topics(&config, &topics).await.expect("create topic");

    let producer = Producing::start(&config, PLAN).expect("producer");
    producer.wait_for_acks(500, |_| true, "first records").await;

    // A crash: SIGKILL the leader of partition 0, then restart it on its data.
    let crashed = leaders(&config)[0];
    let led = led_by(&config, crashed);
    k.cluster.kill_broker(crashed).expect("kill");
    let killed_at = Instant::now();
    producer.wait_for_acks(100, |a| on(a, &led, killed_at), "records on the new leaders").await;
    eprintln!(
        "partitions {led:?} of killed node {crashed} took records again after {:?}",
        killed_at.elapsed()
    );
    k.cluster.restart_broker(crashed).expect("restart the killed broker");
    wait_for_full_isr(&config).await;

    // A controlled shutdown of a broker leading partitions now.
    let stopped = *leaders(&config).iter().find(|&&l| l != crashed).expect("a leader other than the crashed");
    let led = led_by(&config, stopped);
    let stopped_at = Instant::now();
    k.cluster.stop_broker(stopped).expect("SIGTERM");
    producer.wait_for_acks(100, |a| on(a, &led, stopped_at), "records on the new leaders").await;
    eprintln!(
        "partitions {led:?} of stopped node {stopped} took records again after {:?}",
        stopped_at.elapsed()
    );

    let sent = producer.finish();
    eprintln!("{sent} records produced through two leadership moves");
    let seen = consume(&config, TOPIC, "g-moves", sent, Duration::from_secs(120)).expect("consume");
    assert_same_records(RUN, sent, &seen);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producer_moves_to_another_proxy_replica_when_one_drains() {
    const PLAN: Plan = Plan {
        topic: "rollout",
        run: "rollout",
        batch: 20,
        pause: Duration::from_millis(20),
        recovery: RECOVERY,
    };
    let cluster = KafkaCluster::start(ClusterOptions::named("rollout").nodes(1)).expect("kafka");
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = Certs::generate(dir.path(), DOMAIN, &["rollout"]).expect("certs");
    // The balancer: one address for both replicas, the one their rewritten broker addresses name too.
    let balancer = SwitchRelay::start(String::new()).await.expect("relay");
    let settings = format!("advertised_port: {}\n", balancer.port);
    let tenants = format!(
        "  - {{ name: rollout, bootstrap: [\"{}\"], upstream: {{ plaintext: true }} }}\n",
        cluster.addrs(Listener::Plain)[0]
    );
    let stop = kaas_proxy::Shutdown { delay: Duration::from_secs(1), drain: Duration::from_secs(30) };
    let mut draining =
        ProxyHandle::start_stopping_with(&certs, &settings, &tenants, stop).expect("replica 1");
    let staying = ProxyHandle::start_with_config(&certs, &settings, &tenants).expect("replica 2");
    balancer.switch(format!("127.0.0.1:{}", draining.port));
    let config = client_config(&format!("rollout.{DOMAIN}:{}", balancer.port), &certs.ca);
    create_topics(&config, &[NewTopic::new(PLAN.topic, 3, TopicReplication::Fixed(1))]).await.expect("topic");

    let producer = Producing::start(&config, PLAN).expect("producer");
    producer.wait_for_acks(500, |_| true, "records through replica 1").await;
    draining.begin_shutdown();
    while !draining.admin_status("/readyz").expect("readyz").contains(" 503") {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    balancer.switch(format!("127.0.0.1:{}", staying.port));
    let switched = Instant::now();
    drop(draining); // returns once replica 1 has stopped: its sessions all closed between requests
    eprintln!("replica 1 drained within {:?} of turning unready", switched.elapsed());
    producer.wait_for_acks_since(Instant::now(), 1000, "records through replica 2").await;
    let opened = staying.metric("kaas_proxy_session_opened_total{tenant=\"rollout\"}").expect("metrics");
    assert!(opened >= 1.0, "the producer reconnected through replica 2");

    let sent = producer.finish();
    eprintln!("{sent} records produced across the drain");
    let seen = consume(&config, PLAN.topic, "g-rollout", sent, Duration::from_secs(120)).expect("consume");
    assert_same_records(PLAN.run, sent, &seen);
}

/// Whether `ack` is of a record acknowledged on `partitions` after `since`.
fn on(ack: &Ack, partitions: &BTreeSet<i32>, since: Instant) -> bool {
    ack.at > since && partitions.contains(&ack.partition)
}

/// The leader of each partition, by index, as the cluster tells a client through the proxy.
fn leaders(config: &rdkafka::config::ClientConfig) -> Vec<i32> {
    let client: BaseConsumer = config.create().expect("client");
    let md = client.fetch_metadata(Some(TOPIC), Duration::from_secs(20)).expect("metadata");
    let mut partitions: Vec<(i32, i32)> =
        md.topics()[0].partitions().iter().map(|p| (p.id(), p.leader())).collect();
    partitions.sort();
    partitions.into_iter().map(|(_, leader)| leader).collect()
}

fn led_by(config: &rdkafka::config::ClientConfig, node: i32) -> BTreeSet<i32> {
    leaders(config).iter().zip(0..).filter(|(l, _)| **l == node).map(|(_, p)| p).collect()
}

/// Waits until every partition has all three replicas in sync again, so the next outage leaves two.
async fn wait_for_full_isr(config: &rdkafka::config::ClientConfig) {
    let client: BaseConsumer = config.create().expect("client");
    let deadline = Instant::now() + RECOVERY;
    loop {
        let md = client.fetch_metadata(Some(TOPIC), Duration::from_secs(20)).expect("metadata");
        if md.topics()[0].partitions().iter().all(|p| p.isr().len() == 3) {
            return;
        }
        assert!(Instant::now() < deadline, "replicas not back in sync within {RECOVERY:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Tenants change under running producers: `moving`'s route changes (a quota is added) and `leaving`'s is
/// removed while idempotent producers write through `steady` (unchanged) and `moving`. `steady`'s connections
/// are never touched (not one new session); `moving`'s close between requests after the grace period and its
/// producer reconnects to the new route; neither producer sees a failed delivery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_moves_one_tenant_while_another_produces_untouched() {
    const STEADY: Plan = Plan {
        topic: "steady",
        run: "steady",
        batch: 20,
        pause: Duration::from_millis(20),
        recovery: RECOVERY,
    };
    const MOVING: Plan = Plan {
        topic: "moving",
        run: "moving",
        batch: 20,
        pause: Duration::from_millis(20),
        recovery: RECOVERY,
    };
    let cluster = KafkaCluster::start(ClusterOptions::named("reload").nodes(1)).expect("kafka");
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = Certs::generate(dir.path(), DOMAIN, &["steady", "moving", "leaving"]).expect("certs");
    let bootstrap = &cluster.addrs(Listener::Plain)[0];
    let settings = "reload_grace_seconds: 2\n";
    let entry = |name: &str, extra: &str| {
        format!(
            "  - {{ name: {name}, bootstrap: [\"{bootstrap}\"], upstream: {{ plaintext: true }}{extra} }}\n"
        )
    };
    let before = [entry("steady", ""), entry("moving", ""), entry("leaving", "")].concat();
    let proxy = ProxyHandle::start_with_config(&certs, settings, &before).expect("proxy");
    let steady = client_config(&proxy.bootstrap("steady"), &certs.ca);
    let moving = client_config(&proxy.bootstrap("moving"), &certs.ca);
    for (config, plan) in [(&steady, STEADY), (&moving, MOVING)] {
        create_topics(config, &[NewTopic::new(plan.topic, 3, TopicReplication::Fixed(1))])
            .await
            .expect("topic");
    }
    let steady_producer = Producing::start(&steady, STEADY).expect("producer");
    let moving_producer = Producing::start(&moving, MOVING).expect("producer");
    steady_producer.wait_for_acks(300, |_| true, "steady before").await;
    moving_producer.wait_for_acks(300, |_| true, "moving before").await;
    let opened = |tenant: &str| {
        proxy.metric(&format!("kaas_proxy_session_opened_total{{tenant=\"{tenant}\"}}")).expect("metrics")
    };
    let (steady_sessions, moving_sessions) = (opened("steady"), opened("moving"));

    let quota = ", quota: { produce_bytes_per_second: 100000000 }";
    let after = [entry("steady", ""), entry("moving", quota)].concat();
    proxy.rewrite_config(&certs, settings, &after).expect("rewrite");
    let generation = proxy.wait_for_metric("kaas_proxy_routes_generation", 2.0, Duration::from_secs(5));
    assert_eq!(generation.expect("metrics"), 2.0, "reloaded");
    let reloaded = Instant::now();
    tokio::time::sleep(Duration::from_secs(4)).await; // past the grace period
    steady_producer.wait_for_acks_since(reloaded, 500, "steady after the reload").await;
    moving_producer
        .wait_for_acks_since(reloaded + Duration::from_secs(3), 300, "moving on its new route")
        .await;
    assert_eq!(opened("steady"), steady_sessions, "the unchanged tenant's connections were not touched");
    assert!(opened("moving") > moving_sessions, "the changed tenant's producer reconnected");
    assert!(
        wait_for_log("session closed between requests", Duration::from_secs(1)),
        "the old sessions closed between requests"
    );

    for (producer, config, plan) in [(steady_producer, &steady, STEADY), (moving_producer, &moving, MOVING)] {
        let sent = producer.finish();
        let seen = consume(config, plan.topic, &format!("g-{}", plan.run), sent, Duration::from_secs(120))
            .expect("consume");
        assert_same_records(plan.run, sent, &seen);
    }
}
