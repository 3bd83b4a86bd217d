//! Leadership moves while an idempotent librdkafka producer (acks=all) writes through kaas-proxy to a real
//! 3-broker Apache Kafka cluster: a broker leading some partitions is killed (SIGKILL, a crash: its
//! leaderships move once the controller fences it) and restarted, then another is stopped (SIGTERM, a
//! controlled shutdown: leaderships move first, and producers are told the new leader through the KIP-951
//! endpoints the proxy rewrites). The producer follows the new leaders through the proxy's `b<id>` names —
//! the only addresses it has — with no delivery failing, and every record is consumed once, in order per
//! partition. The stopped broker stays down: two of three replicas still meet `min.insync.replicas`, and a
//! second restart would only cost the 2 cores another JVM start.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::proxied::ProxiedKafka;
use common::*;
use kaas_e2e::kafka::ClusterOptions;
use rdkafka::admin::{NewTopic, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::Message;

const TOPIC: &str = "moves";
const PARTITIONS: i32 = 6;
const RUN: &str = "moves";
/// How long leaderships may take to move and records to flow again (fencing a killed broker alone takes
/// `broker.session.timeout.ms`, 6 s).
const RECOVERY: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producer_follows_leaders_through_broker_crash_and_shutdown() {
    let mut k =
        ProxiedKafka::start("moves", ClusterOptions::named("failover")).expect("kafka cluster and proxy");
    let config = k.client();
    let topics = [NewTopic::new(TOPIC, PARTITIONS, TopicReplication::Fixed(3))];
    create_topics(&config, &topics).await.expect("create topic");

    let producer = Producing::start(&config);
    producer.wait_for_acks(|a| a.len() >= 500, "first records").await;

    // A crash: SIGKILL the leader of partition 0, then restart it on its data.
    let crashed = leaders(&config)[0];
    let led = led_by(&config, crashed);
    k.cluster.kill_broker(crashed).expect("kill");
    let killed_at = Instant::now();
    producer.wait_for_acks(|a| acked_since(a, &led, killed_at) >= 100, "records on the new leaders").await;
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
    producer.wait_for_acks(|a| acked_since(a, &led, stopped_at) >= 100, "records on the new leaders").await;
    eprintln!(
        "partitions {led:?} of stopped node {stopped} took records again after {:?}",
        stopped_at.elapsed()
    );

    let sent = producer.finish();
    let seen = consume(&config, TOPIC, "g-moves", sent, Duration::from_secs(120)).expect("consume");
    assert_same_records(RUN, sent, &seen);
}

/// A delivered record: its index, partition, and when the report came.
type Ack = (usize, i32, Instant);

/// Delivery reports as they come, from librdkafka's thread.
#[derive(Debug, Default)]
struct Deliveries {
    acked: Mutex<Vec<Ack>>,
    failed: Mutex<Vec<String>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = Box<usize>;

    fn delivery(&self, result: &DeliveryResult<'_>, index: Box<usize>) {
        match result {
            Ok(m) => self.acked.lock().expect("acks").push((*index, m.partition(), Instant::now())),
            Err((e, _)) => self.failed.lock().expect("failures").push(format!("record {index}: {e}")),
        }
    }
}

/// An idempotent producer sending keyed records at ~1,000 a second from its own thread until finished.
struct Producing {
    producer: Arc<ThreadedProducer<Deliveries>>,
    stop: Arc<AtomicBool>,
    sender: std::thread::JoinHandle<usize>,
}

impl Producing {
    fn start(config: &rdkafka::config::ClientConfig) -> Producing {
        let producer: ThreadedProducer<Deliveries> = config
            .clone()
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            // Bounded, so that a producer stuck on a lost leader fails the test rather than hang it.
            .set("message.timeout.ms", "120000")
            .create_with_context(Deliveries::default())
            .expect("producer");
        let producer = Arc::new(producer);
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (producer.clone(), stop.clone());
        let sender = std::thread::spawn(move || {
            let mut i = 0;
            while !s.load(Ordering::Relaxed) {
                for _ in 0..20 {
                    let (key, value) = (key(i), value(RUN, i));
                    let mut record = BaseRecord::with_opaque_to(TOPIC, Box::new(i)).key(&key).payload(&value);
                    // A full local queue (brokers away) means waiting, not losing the record.
                    loop {
                        match p.send(record) {
                            Ok(()) => break,
                            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                                record = r;
                                std::thread::sleep(Duration::from_millis(10));
                            }
                            Err((e, _)) => panic!("record {i} refused: {e}"),
                        }
                    }
                    i += 1;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            i
        });
        Producing { producer, stop, sender }
    }

    /// Polls the delivery reports until `done` says so; fails on a failed delivery or after [`RECOVERY`].
    async fn wait_for_acks(&self, done: impl Fn(&[Ack]) -> bool, what: &str) {
        let deadline = Instant::now() + RECOVERY;
        loop {
            let failed = self.producer.context().failed.lock().expect("failures").clone();
            assert!(failed.is_empty(), "deliveries failed: {failed:?}");
            if done(&self.producer.context().acked.lock().expect("acks")) {
                return;
            }
            assert!(Instant::now() < deadline, "{what}: not within {RECOVERY:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops sending, waits for every report, and asserts each record was delivered once with nothing
    /// failing, fatal or not. Returns how many were sent.
    fn finish(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        let sent = self.sender.join().expect("sender thread");
        self.producer.flush(Duration::from_secs(120)).expect("flush");
        assert_eq!(self.producer.client().fatal_error(), None, "idempotent producer fatal error");
        let context = self.producer.context();
        let failed = context.failed.lock().expect("failures");
        assert!(
            failed.is_empty(),
            "{} deliveries failed: {:?}",
            failed.len(),
            &failed[..failed.len().min(10)]
        );
        let acked: BTreeSet<usize> = context.acked.lock().expect("acks").iter().map(|a| a.0).collect();
        assert_eq!(acked, (0..sent).collect(), "every record acknowledged once");
        eprintln!("{sent} records produced through two leadership moves");
        sent
    }
}

/// Records acknowledged on `partitions` after `since`.
fn acked_since(acks: &[Ack], partitions: &BTreeSet<i32>, since: Instant) -> usize {
    acks.iter().filter(|a| a.2 > since && partitions.contains(&a.1)).count()
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
