//! librdkafka helpers shared by the end-to-end tests (through the `rdkafka` crate).

#![allow(dead_code)]

pub mod producing;
pub mod proxied;
pub mod wire;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::Message;

/// Client settings a tenant's user is given: the bootstrap name and the CA file, nothing else.
pub fn client_config(bootstrap: &str, ca: &std::path::Path) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("security.protocol", "SSL")
        .set("ssl.ca.location", ca.to_string_lossy().as_ref())
        .set("client.id", "e2e-rdkafka");
    c
}

pub async fn create_topic(config: &ClientConfig, topic: &str, partitions: i32) -> anyhow::Result<()> {
    create_topics(config, &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))]).await
}

/// Creates `topics` and fails unless every one was created.
pub async fn create_topics(config: &ClientConfig, topics: &[NewTopic<'_>]) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = config.create()?;
    for r in admin.create_topics(topics, &AdminOptions::new()).await? {
        r.map_err(|(t, e)| anyhow::anyhow!("create topic {t}: {e}"))?;
    }
    Ok(())
}

/// A client context that keeps every error librdkafka reports (authentication failures surface only here).
/// Clones share one list, readable through a clone after the client is gone (a future producer keeps the
/// context it is given out of reach).
#[derive(Debug, Default, Clone)]
pub struct Errors(pub std::sync::Arc<std::sync::Mutex<Vec<rdkafka::error::KafkaError>>>);

impl rdkafka::ClientContext for Errors {
    fn error(&self, error: rdkafka::error::KafkaError, _reason: &str) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(error);
    }
}

impl rdkafka::consumer::ConsumerContext for Errors {}

/// Asserts a client with `config` cannot log in: no metadata, and librdkafka reports an authentication error
/// (which surfaces only through the client context, polled here).
pub fn assert_authentication_fails(config: &ClientConfig) {
    let consumer: BaseConsumer<Errors> = config.create_with_context(Errors::default()).expect("client");
    assert!(consumer.fetch_metadata(None, Duration::from_secs(3)).is_err(), "metadata without logging in");
    let deadline = Instant::now() + Duration::from_secs(10);
    let seen = || {
        let errors = consumer.context().0.lock().unwrap_or_else(|p| p.into_inner());
        errors
            .iter()
            .any(|e| e.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::Authentication))
    };
    while !seen() {
        assert!(
            Instant::now() < deadline,
            "no authentication error reported: {:?}",
            consumer.context().0.lock().unwrap_or_else(|p| p.into_inner())
        );
        let _ = consumer.poll(Duration::from_millis(100));
    }
}

/// Deterministic record value covering all byte values.
pub fn value(run: &str, i: usize) -> Vec<u8> {
    let mut v = format!("{run}/{i:06}/").into_bytes();
    v.extend((0..=255u8).cycle().skip(i % 256).take(200 + i % 300));
    v
}

pub fn key(i: usize) -> Vec<u8> {
    format!("key-{}", i % 32).into_bytes()
}

/// One record as a client sees it (the matrix's definition).
pub use kaas_e2e::matrix::Seen;

/// A healthy producer running beside an attack: 10 rounds of 100 records acks=all to `topic`, a pause of
/// `pause` between rounds; the task returns how many were acknowledged.
pub fn steady_producer(
    config: &ClientConfig,
    topic: &'static str,
    pause: Duration,
) -> tokio::task::JoinHandle<usize> {
    let config = config.clone();
    tokio::spawn(async move {
        let mut total = 0;
        for round in 0..10 {
            total += produce(&config, topic, &format!("r{round}"), 100, "all")
                .await
                .expect("steady produce")
                .len();
            tokio::time::sleep(pause).await;
        }
        total
    })
}

/// Produces `count` keyed records with `acks`; returns the delivery reports in send order.
pub async fn produce(
    config: &ClientConfig,
    topic: &str,
    run: &str,
    count: usize,
    acks: &str,
) -> anyhow::Result<Vec<(i32, i64)>> {
    let producer: FutureProducer = config
        .clone()
        .set("acks", acks)
        .set("linger.ms", "10")
        .set("enable.idempotence", "false")
        // Without idempotence, a retried batch (NOT_LEADER on a topic just created, say) would land behind
        // later ones; one request in flight keeps every partition in send order, as the tests assert.
        .set("max.in.flight.requests.per.connection", "1")
        .set("queue.buffering.max.messages", "200000")
        .create()?;
    let mut pending = Vec::with_capacity(count);
    for i in 0..count {
        let (k, v) = (key(i), value(run, i));
        let record = FutureRecord::to(topic).key(&k).payload(&v);
        let fut = producer.send_result(record).map_err(|(e, _)| anyhow::anyhow!("enqueue {i}: {e}"))?;
        pending.push(fut);
    }
    let mut reports = Vec::with_capacity(count);
    for (i, fut) in pending.into_iter().enumerate() {
        match fut.await? {
            Ok(d) => reports.push((d.partition, d.offset)),
            Err((e, _)) => anyhow::bail!("record {i} not delivered: {e}"),
        }
    }
    Ok(reports)
}

/// Consumes until `expect` records arrived (or `within` passed), committing synchronously at the end.
pub fn consume(
    config: &ClientConfig,
    topic: &str,
    group: &str,
    expect: usize,
    within: Duration,
) -> anyhow::Result<Vec<Seen>> {
    let consumer: BaseConsumer = config
        .clone()
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()?;
    consumer.subscribe(&[topic])?;
    let mut seen = Vec::new();
    let deadline = Instant::now() + within;
    while seen.len() < expect && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(m)) => seen.push(as_seen(&m)),
            Some(Err(e)) => anyhow::bail!("consume: {e}"),
            None => {}
        }
    }
    if !seen.is_empty() {
        consumer.commit_consumer_state(CommitMode::Sync)?;
    }
    Ok(seen)
}

/// A record as librdkafka handed it to a consumer.
pub fn as_seen(m: &impl Message) -> Seen {
    Seen {
        partition: m.partition(),
        offset: m.offset(),
        key: m.key().unwrap_or_default().to_vec(),
        value: m.payload().unwrap_or_default().to_vec(),
    }
}

/// Asserts every produced record arrived once, byte-identical, and in produce order within each partition.
pub fn assert_same_records(run: &str, count: usize, seen: &[Seen]) {
    assert_eq!(seen.len(), count, "consumed count");
    let mut by_partition: BTreeMap<i32, Vec<&Seen>> = BTreeMap::new();
    for s in seen {
        by_partition.entry(s.partition).or_default().push(s);
    }
    let mut found = vec![false; count];
    for (partition, records) in by_partition {
        let mut last_index = None;
        let mut last_offset = -1;
        for r in records {
            assert!(r.offset > last_offset, "partition {partition}: offsets out of order");
            last_offset = r.offset;
            let text = String::from_utf8_lossy(&r.value[..r.value.len().min(40)]).into_owned();
            let index: usize = text
                .split('/')
                .nth(1)
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("partition {partition}: unexpected value {text:?}"));
            assert_eq!(r.value, value(run, index), "record {index}: value bytes differ");
            assert_eq!(r.key, key(index), "record {index}: key differs");
            assert!(!found[index], "record {index} consumed twice");
            found[index] = true;
            assert!(
                last_index.is_none_or(|l| l < index),
                "partition {partition}: record {index} out of order"
            );
            last_index = Some(index);
        }
    }
}

/// Reads every partition of `topic` from the beginning, assigned rather than subscribed, at `isolation`
/// (`read_committed` or `read_uncommitted`), until at least `expect` records arrived and each partition has
/// reported its end since its last record. Records appear once a transaction's markers land, a moment after
/// the commit returns: the count, not the first end-of-partition, says when to stop.
pub fn consume_to_end(
    config: &ClientConfig,
    topic: &str,
    partitions: i32,
    isolation: &str,
    expect: usize,
    within: Duration,
) -> anyhow::Result<Vec<Seen>> {
    let mut seen = Vec::new();
    read_to_end(config, topic, partitions, isolation, expect, within, |m| {
        seen.push(as_seen(m));
        Ok(())
    })?;
    Ok(seen)
}

/// [`consume_to_end`] handing each record to `keep` instead of collecting it (a long topic need not be held
/// in memory); `keep` failing ends the read with its error.
pub fn read_to_end(
    config: &ClientConfig,
    topic: &str,
    partitions: i32,
    isolation: &str,
    expect: usize,
    within: Duration,
    mut keep: impl FnMut(&rdkafka::message::BorrowedMessage<'_>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let consumer: BaseConsumer = config
        .clone()
        // librdkafka wants a group even for assigned partitions; nothing is committed to it.
        .set("group.id", format!("{topic}-{isolation}"))
        .set("isolation.level", isolation)
        .set("enable.partition.eof", "true")
        .set("enable.auto.commit", "false")
        .create()?;
    let mut assignment = rdkafka::TopicPartitionList::new();
    for p in 0..partitions {
        assignment.add_partition_offset(topic, p, rdkafka::Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;
    let mut read = 0;
    let mut at_end = std::collections::BTreeSet::new();
    let deadline = Instant::now() + within;
    while read < expect || at_end.len() < partitions as usize {
        anyhow::ensure!(
            Instant::now() < deadline,
            "{topic} ({isolation}): {read} records, partitions {at_end:?} at their end after {within:?}"
        );
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(m)) => {
                at_end.remove(&m.partition());
                read += 1;
                keep(&m)?;
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            Some(Err(e)) => anyhow::bail!("consume {topic}: {e}"),
            None => {}
        }
    }
    Ok(())
}

/// The records of `seen` produced in run `run` (see [`value`]).
pub fn of_run(seen: &[Seen], run: &str) -> Vec<Seen> {
    let prefix = format!("{run}/");
    seen.iter().filter(|s| s.value.starts_with(prefix.as_bytes())).cloned().collect()
}
