//! librdkafka (the `rdkafka` crate) through kaas-proxy to a real 3-broker Apache Kafka cluster (node ids
//! 11–13), given only the tenant's bootstrap name and CA: it learns every broker as `b<id>.trio.<domain>`,
//! reaches each through that name, and its records — 10,000 keyed, acks=all, three replicas — come back
//! byte-identical and in order per partition; a consumer group commits and a new member resumes there, its
//! coordinator found with batched FindCoordinator through the proxy; transactions commit and abort, and a
//! `read_committed` consumer sees exactly the committed records.
//!
//! One cluster serves the file (a start costs ~10 s of the 2 cores): the scenarios are steps of one test.
//! Every client against every broker version, and Kafka's own command-line tools: [`matrix`].

mod matrix;

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::proxied::ProxiedKafka;
use common::*;
use kaas_e2e::kafka::{ClusterOptions, FIRST_NODE_ID};
use kaas_e2e::raw;
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::{FindCoordinatorRequest, GroupId, OffsetFetchRequest};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

const TENANT: &str = "trio";
const NODES: [i32; 3] = [FIRST_NODE_ID, FIRST_NODE_ID + 1, FIRST_NODE_ID + 2];
const NOT_COORDINATOR: i16 = 16;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_groups_and_transactions_through_the_proxy() {
    let k = ProxiedKafka::start(TENANT, ClusterOptions::named("clients")).expect("kafka cluster and proxy");
    let orders = records_round_trip_through_every_broker(&k).await;
    group_resumes_at_its_commit(&k, orders).await;
    transactions_commit_and_abort(&k).await;
}

/// 10,000 keyed records, acks=all, into six partitions of three replicas led by all three brokers: every
/// record comes back once, byte-identical, in order per partition, and each broker was reached through its
/// proxy name. Returns the end offset of each partition.
async fn records_round_trip_through_every_broker(k: &ProxiedKafka) -> BTreeMap<i32, i64> {
    let config = k.client();
    let topics = [NewTopic::new("orders", 6, TopicReplication::Fixed(3))];
    create_topics(&config, &topics).await.expect("create orders");

    let client: BaseConsumer = config.create().expect("client");
    let md = client.fetch_metadata(Some("orders"), Duration::from_secs(20)).expect("metadata");
    let mut brokers: Vec<(i32, String, i32)> =
        md.brokers().iter().map(|b| (b.id(), b.host().to_owned(), b.port())).collect();
    brokers.sort();
    let want: Vec<_> = NODES.iter().map(|&id| (id, k.broker_name(id), i32::from(k.proxy.port))).collect();
    assert_eq!(brokers, want, "one proxy name per broker, nothing else");
    let leaders: BTreeSet<i32> = md.topics()[0].partitions().iter().map(|p| p.leader()).collect();
    assert_eq!(leaders, BTreeSet::from(NODES), "orders' partitions are led by every broker");

    let reports = produce(&config, "orders", "all", 10_000, "all").await.expect("produce");
    let seen = consume(&config, "orders", "g-orders", 10_000, Duration::from_secs(120)).expect("consume");
    assert_same_records("all", 10_000, &seen);
    let partitions: BTreeSet<i32> = seen.iter().map(|s| s.partition).collect();
    assert_eq!(partitions.len(), 6, "records in every partition: {partitions:?}");

    let logs = kaas_e2e::proxy::logs();
    for id in NODES {
        assert!(logs.contains(&format!("sni={}", k.broker_name(id))), "no connection named b{id}");
    }
    end_offsets(&reports)
}

/// A second member of the group resumes where the first committed; the group's coordinator, found with a
/// batched FindCoordinator (v4+, which librdkafka does not send) through the proxy, is reached under the
/// name the proxy gave it and holds exactly those commits, while another broker says it is not the
/// coordinator.
async fn group_resumes_at_its_commit(k: &ProxiedKafka, mut ends: BTreeMap<i32, i64>) {
    let config = k.client();
    let more = produce(&config, "orders", "more", 500, "all").await.expect("produce more");
    let resumed = consume(&config, "orders", "g-orders", 500, Duration::from_secs(60)).expect("resume");
    assert_same_records("more", 500, &resumed);
    ends.extend(end_offsets(&more));

    let mut conn = k.raw(&k.bootstrap_name()).await.expect("connect");
    let keys = ["g-orders", "g-nobody"].map(StrBytes::from_static_str).to_vec();
    let (_, found) =
        raw::call(&mut conn, 1, 4, &FindCoordinatorRequest::default().with_coordinator_keys(keys))
            .await
            .expect("batched FindCoordinator");
    assert_eq!(found.coordinators.len(), 2, "{found:?}");
    let c = &found.coordinators[0];
    assert_eq!((c.key.as_str(), c.error_code), ("g-orders", 0), "{c:?}");
    assert_eq!(c.host.as_str(), k.broker_name(c.node_id.0), "coordinator host");
    assert_eq!(c.port, i32::from(k.proxy.port), "coordinator port");

    let mut coordinator = k.raw(c.host.as_str()).await.expect("connect to the coordinator by its name");
    let committed = committed_offsets(&mut coordinator).await;
    assert_eq!(committed, Ok(ends), "g-orders' commits at its coordinator b{}", c.node_id.0);
    let other = NODES.into_iter().find(|&id| id != c.node_id.0).expect("another broker");
    let mut elsewhere = k.raw(&k.broker_name(other)).await.expect("connect");
    assert_eq!(committed_offsets(&mut elsewhere).await, Err(NOT_COORDINATOR), "g-orders at b{other}");
}

/// g-orders' committed offset per partition of orders (OffsetFetch v8, groups batched), or the group's error.
async fn committed_offsets(conn: &mut raw::Tls) -> Result<BTreeMap<i32, i64>, i16> {
    let group = OffsetFetchRequestGroup::default()
        .with_group_id(GroupId(StrBytes::from_static_str("g-orders")))
        // No topics named: all the group committed.
        .with_topics(None);
    let req = OffsetFetchRequest::default().with_groups(vec![group]);
    let (_, resp) = raw::call(conn, 2, 8, &req).await.expect("OffsetFetch");
    let group = &resp.groups[0];
    if group.error_code != 0 {
        return Err(group.error_code);
    }
    let topic = group
        .topics
        .iter()
        .find(|t| t.name.as_str() == "orders")
        .unwrap_or_else(|| panic!("orders not committed: {group:?}"));
    Ok(topic.partitions.iter().map(|p| (p.partition_index, p.committed_offset)).collect())
}

/// Delivery reports → the offset after the last record of each partition.
fn end_offsets(reports: &[(i32, i64)]) -> BTreeMap<i32, i64> {
    let mut ends = BTreeMap::new();
    for &(partition, offset) in reports {
        let end = ends.entry(partition).or_insert(0);
        *end = (*end).max(offset + 1);
    }
    ends
}

/// A transactional producer commits 300 records, aborts 200 (written to the log first), commits 300 more:
/// `read_committed` reads exactly the 600 committed, in order; `read_uncommitted` reads all 800, so the
/// aborted ones were there to be hidden.
async fn transactions_commit_and_abort(k: &ProxiedKafka) {
    let config = k.client();
    let topics = [NewTopic::new("ledger", 3, TopicReplication::Fixed(3))];
    create_topics(&config, &topics).await.expect("create ledger");
    let producer: FutureProducer = config
        .clone()
        .set("transactional.id", "ledger-writer")
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    let timeout = Duration::from_secs(60);
    producer.init_transactions(timeout).expect("init transactions");
    for (run, count, commit) in
        [("committed", 300, true), ("aborted", 200, false), ("committed-2", 300, true)]
    {
        producer.begin_transaction().expect("begin");
        let mut pending = Vec::new();
        for i in 0..count {
            let (key, value) = (key(i), value(run, i));
            let record = FutureRecord::to("ledger").key(&key).payload(&value);
            pending.push(producer.send_result(record).map_err(|(e, _)| e).expect("enqueue"));
        }
        for (i, delivery) in pending.into_iter().enumerate() {
            delivery.await.expect("delivery report").unwrap_or_else(|(e, _)| panic!("{run} {i}: {e}"));
        }
        if commit {
            producer.commit_transaction(timeout).expect("commit");
        } else {
            producer.abort_transaction(timeout).expect("abort");
        }
    }

    let within = Duration::from_secs(60);
    let committed =
        consume_to_end(&config, "ledger", 3, "read_committed", 600, within).expect("read_committed");
    assert_eq!(committed.len(), 600, "read_committed: {} records", committed.len());
    assert_same_records("committed", 300, &of_run(&committed, "committed"));
    assert_same_records("committed-2", 300, &of_run(&committed, "committed-2"));
    let all =
        consume_to_end(&config, "ledger", 3, "read_uncommitted", 800, within).expect("read_uncommitted");
    assert_eq!(all.len(), 800, "read_uncommitted: {} records", all.len());
    assert_same_records("aborted", 200, &of_run(&all, "aborted"));
}
