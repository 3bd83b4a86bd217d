//! A steady idempotent producer (acks=all) running from its own thread while a test disturbs the cluster
//! under it (failover, CA rotation): one definition, so every such test checks "nothing lost" the same way.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Message};

use super::{key, value};

/// What a [`Producing`] sends, how fast, and how long a wait for acknowledgements may take.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub topic: &'static str,
    /// The run of every value (see [`value`]), what the consumer checks against.
    pub run: &'static str,
    /// Records sent between two pauses.
    pub batch: usize,
    pub pause: Duration,
    /// How long [`Producing::wait_for_acks`] waits before failing.
    pub recovery: Duration,
}

/// A delivered record.
#[derive(Debug, Clone, Copy)]
pub struct Ack {
    pub index: usize,
    pub partition: i32,
    /// When the report came.
    pub at: Instant,
}

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
            Ok(m) => {
                lock(&self.acked).push(Ack { index: *index, partition: m.partition(), at: Instant::now() })
            }
            Err((e, m)) => {
                lock(&self.failed).push(format!("record {index} (partition {}): {e}", m.partition()))
            }
        }
    }
}

/// A lock that survives a poisoned mutex: no panic on librdkafka's thread, and the lists stay readable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// An idempotent producer sending keyed records of [`Plan::run`] to [`Plan::topic`], `batch` at a time with
/// `pause` between, until finished.
pub struct Producing {
    producer: Arc<ThreadedProducer<Deliveries>>,
    plan: Plan,
    stop: Arc<AtomicBool>,
    sender: JoinHandle<usize>,
}

impl std::fmt::Debug for Producing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producing").field("plan", &self.plan).finish_non_exhaustive()
    }
}

impl Producing {
    pub fn start(config: &ClientConfig, plan: Plan) -> anyhow::Result<Producing> {
        let producer: ThreadedProducer<Deliveries> = config
            .clone()
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            // Generous, for brokers restarting on 2 shared cores; bounded, so a stuck producer fails the test.
            .set("message.timeout.ms", "120000")
            .create_with_context(Deliveries::default())?;
        let producer = Arc::new(producer);
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (producer.clone(), stop.clone());
        let sender = std::thread::spawn(move || {
            let mut i = 0;
            while !s.load(Ordering::Relaxed) {
                for _ in 0..plan.batch {
                    let (key, value) = (key(i), value(plan.run, i));
                    let mut record =
                        BaseRecord::with_opaque_to(plan.topic, Box::new(i)).key(&key).payload(&value);
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
                std::thread::sleep(plan.pause);
            }
            i
        });
        Ok(Producing { producer, plan, stop, sender })
    }

    /// Waits until `n` acknowledgements satisfy `counted`; fails on a failed delivery, a sender that
    /// stopped, or after [`Plan::recovery`].
    pub async fn wait_for_acks(&self, n: usize, counted: impl Fn(&Ack) -> bool, what: &str) {
        let recovery = self.plan.recovery;
        let deadline = Instant::now() + recovery;
        loop {
            let failed = lock(&self.producer.context().failed).clone();
            assert!(failed.is_empty(), "deliveries failed: {failed:?}");
            assert!(!self.sender.is_finished(), "{what}: the sender stopped (a record refused)");
            let acked = lock(&self.producer.context().acked).iter().filter(|a| counted(a)).count();
            if acked >= n {
                return;
            }
            assert!(Instant::now() < deadline, "{what}: {acked} of {n} acknowledged within {recovery:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Records acknowledged so far.
    pub fn acked(&self) -> usize {
        lock(&self.producer.context().acked).len()
    }

    /// Waits until `n` records were acknowledged after `since` (see [`Producing::wait_for_acks`]).
    pub async fn wait_for_acks_since(&self, since: Instant, n: usize, what: &str) {
        self.wait_for_acks(n, |a| a.at > since, what).await;
    }

    /// Stops sending, waits for every report, and asserts each record was acknowledged once with nothing
    /// failing, fatal or not. Returns how many were sent.
    pub fn finish(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        let sent = self.sender.join().expect("sender thread");
        self.producer.flush(Duration::from_secs(120)).expect("flush");
        assert_eq!(self.producer.client().fatal_error(), None, "idempotent producer fatal error");
        let context = self.producer.context();
        let failed = lock(&context.failed);
        assert!(
            failed.is_empty(),
            "{} deliveries failed: {:?}",
            failed.len(),
            &failed[..failed.len().min(10)]
        );
        let mut acked: Vec<usize> = lock(&context.acked).iter().map(|a| a.index).collect();
        acked.sort_unstable();
        assert_eq!(acked, (0..sent).collect::<Vec<_>>(), "every record acknowledged once");
        sent
    }
}
