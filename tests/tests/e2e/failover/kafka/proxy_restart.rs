//! Two kaas-proxy instances serve one tenant, each on its own port, and the tenant's clients are given both as
//! bootstrap servers (what one name with two replicas behind it looks like to a client when no load balancer
//! hides them). Each instance advertises its own port, so a client's broker connections all go through the
//! instance it bootstrapped from. Under an idempotent producer (acks=all) and a consumer group member, both
//! through the proxies to a real 3-broker Apache Kafka cluster, each instance in turn stops (a graceful stop:
//! sessions close between requests) and stays away until the clients carry on through the other one
//! (librdkafka re-bootstraps once every broker it knew is unreachable), then starts again on its port. Nothing
//! is lost: no delivery fails, and every acknowledged record is consumed exactly once, in order per partition.

use crate::common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::producing::{Plan, Producing};
use common::*;
use kaas_e2e::certs::Certs;
use kaas_e2e::kafka::{ClusterOptions, KafkaCluster, Listener};
use kaas_e2e::proxy::ProxyHandle;
use kaas_e2e::DOMAIN;
use rdkafka::admin::{NewTopic, TopicReplication};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

const TENANT: &str = "restart";
/// ~1,000 records a second; a wait for acknowledgements may take this long (a re-bootstrap, a reconnect).
const PLAN: Plan = Plan {
    topic: "restarts",
    run: "restarts",
    batch: 20,
    pause: Duration::from_millis(20),
    recovery: Duration::from_secs(60),
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_of_two_proxy_instances_carry_on_through_each_ones_restart_with_nothing_lost() {
    let cluster = KafkaCluster::start(ClusterOptions::named(TENANT)).expect("kafka");
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = Certs::generate(dir.path(), DOMAIN, &[TENANT]).expect("certs");
    let bootstrap: Vec<String> = cluster.addrs(Listener::Plain).iter().map(|a| format!("\"{a}\"")).collect();
    let tenants = format!(
        "  - {{ name: {TENANT}, bootstrap: [{}], upstream: {{ plaintext: true }} }}\n",
        bootstrap.join(", ")
    );
    let start = |port: u16| ProxyHandle::start_on_port(&certs, port, "", &tenants).expect("proxy");
    let mut proxies = [Some(start(0)), Some(start(0))];
    let ports = proxies.each_ref().map(|p| p.as_ref().map_or(0, |p| p.port));

    let mut config = client_config(
        &ports.iter().map(|p| format!("{TENANT}.{DOMAIN}:{p}")).collect::<Vec<_>>().join(","),
        &certs.ca,
    );
    // librdkafka's default waits 5 minutes with every known broker down before it bootstraps again; a
    // tenant's clients behind two replicas are told to try sooner.
    config.set("metadata.recovery.rebootstrap.trigger.ms", "3000");
    create_topics(&config, &[NewTopic::new(PLAN.topic, 6, TopicReplication::Fixed(3))]).await.expect("topic");

    let producer = Producing::start(&config, PLAN).expect("producer");
    let consumer = Consuming::start(&config);
    producer.wait_for_acks(1000, |_| true, "records before any restart").await;

    let metric = |p: &Option<ProxyHandle>, name: &str| {
        p.as_ref().map_or(0.0, |p| p.metric(&format!("{name}{{tenant=\"{TENANT}\"}}")).unwrap_or(0.0))
    };
    // librdkafka picks its bootstrap server at random, so the clients may start on either instance: the one
    // carrying them stops first, then (once they moved) the other.
    let active = |p: &Option<ProxyHandle>| metric(p, "kaas_proxy_session_active");
    let first = usize::from(active(&proxies[1]) > active(&proxies[0]));
    for (i, other) in [(first, 1 - first), (1 - first, first)] {
        let before = metric(&proxies[other], "kaas_proxy_session_opened_total");
        // The instance about to stop is carrying clients (their broker connections came through it).
        let carrying = active(&proxies[i]);
        assert!(carrying >= 1.0, "instance {i} carries open sessions when it stops");
        let stopped = Instant::now();
        // Returns once every session closed between requests. Only the other instance is there now: records
        // flow again through it, and consumed ones too.
        drop(proxies[i].take());
        producer.wait_for_acks_since(Instant::now(), 1000, "records while one instance is away").await;
        consumer.wait_for(producer.acked(), PLAN.recovery).await;
        let resumed = stopped.elapsed();
        assert!(
            metric(&proxies[other], "kaas_proxy_session_opened_total") > before,
            "the clients reconnected through the other instance"
        );
        proxies[i] = Some(start(ports[i]));
        eprintln!(
            "instance {i} stopped with {carrying} open sessions; within {resumed:.1?} producer and consumer \
             carried on through instance {other}"
        );
    }
    producer.wait_for_acks_since(Instant::now(), 500, "records after both restarts").await;

    let sent = producer.finish();
    let seen = consumer.finish(sent, Duration::from_secs(120)).await;
    eprintln!("{sent} records produced and consumed across two restarts");
    assert_same_records(PLAN.run, sent, &seen);
}

/// A consumer group member reading [`PLAN`]'s topic from its own thread for the whole test.
struct Consuming {
    seen: Arc<Mutex<Vec<Seen>>>,
    count: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Result<(), String>>,
}

impl Consuming {
    fn start(config: &ClientConfig) -> Consuming {
        let consumer: BaseConsumer = config
            .clone()
            .set("group.id", "g-restarts")
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "true")
            .create()
            .expect("consumer");
        consumer.subscribe(&[PLAN.topic]).expect("subscribe");
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let (count, stop) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(false)));
        let (s, c, st) = (Arc::clone(&seen), count.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                match consumer.poll(Duration::from_millis(200)) {
                    Some(Ok(m)) => {
                        s.lock().unwrap_or_else(|p| p.into_inner()).push(as_seen(&m));
                        c.fetch_add(1, Ordering::Relaxed);
                    }
                    // Transport errors while an instance is away are reported and retried by librdkafka.
                    Some(Err(e)) if !is_transient(&e) => return Err(e.to_string()),
                    _ => {}
                }
            }
            Ok(())
        });
        Consuming { seen, count, stop, thread }
    }

    /// Waits until at least `n` records were consumed.
    async fn wait_for(&self, n: usize, within: Duration) {
        let deadline = Instant::now() + within;
        while self.count.load(Ordering::Relaxed) < n {
            assert!(!self.thread.is_finished(), "the consumer stopped");
            assert!(
                Instant::now() < deadline,
                "{} of {n} consumed within {within:?}",
                self.count.load(Ordering::Relaxed)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn finish(self, n: usize, within: Duration) -> Vec<Seen> {
        self.wait_for(n, within).await;
        // A moment for duplicates, had there been any, to arrive too.
        tokio::time::sleep(Duration::from_secs(2)).await;
        self.stop.store(true, Ordering::Relaxed);
        let outcome = self.thread.join().expect("consumer thread");
        assert_eq!(outcome, Ok(()), "consumer error");
        std::mem::take(&mut *self.seen.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

fn is_transient(e: &rdkafka::error::KafkaError) -> bool {
    use rdkafka::error::RDKafkaErrorCode::*;
    matches!(
        e.rdkafka_error_code(),
        Some(BrokerTransportFailure | AllBrokersDown | OperationTimedOut | PartitionEOF)
    )
}
