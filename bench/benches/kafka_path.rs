//! Micro-benchmarks of the proxy's per-frame work: request-header decode (every request), Metadata rewrite
//! (every metadata response) and the scan of a Fetch v16+ response for KIP-951 leader endpoints (every fetch
//! response of a modern consumer, almost always without them). `cargo bench -p kaas-bench`.

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kaas_proxy::kafka::header::parse_request;
use kaas_proxy::kafka::rewrite::{rewrite_response, Advertise};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{ApiKey, BrokerId, FetchResponse, MetadataResponse, RequestHeader, TopicName};
use kafka_protocol::protocol::{Encodable, StrBytes};

fn request_header() -> Bytes {
    let mut b = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(ApiKey::Produce as i16)
        .with_request_api_version(9)
        .with_correlation_id(42)
        .with_client_id(Some(StrBytes::from_static_str("rdkafka-producer-1")))
        .encode(&mut b, ApiKey::Produce.request_header_version(9))
        .expect("encode");
    b.extend_from_slice(&[0u8; 64]);
    b.freeze()
}

/// Metadata v12 of a 6-broker cluster with 50 topics × 12 partitions.
fn metadata() -> Bytes {
    let brokers = (1..=6)
        .map(|id| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(id))
                .with_host(StrBytes::from_string(format!("kafka-{id}.kafka-brokers.acme.svc.cluster.local")))
                .with_port(9093)
        })
        .collect();
    let topics = (0..50)
        .map(|t| {
            let partitions = (0..12)
                .map(|p| {
                    MetadataResponsePartition::default()
                        .with_partition_index(p)
                        .with_leader_id(BrokerId(p % 6 + 1))
                        .with_replica_nodes(vec![BrokerId(1), BrokerId(2), BrokerId(3)])
                        .with_isr_nodes(vec![BrokerId(1), BrokerId(2), BrokerId(3)])
                })
                .collect();
            MetadataResponseTopic::default()
                .with_name(Some(TopicName(StrBytes::from_string(format!("topic-{t}")))))
                .with_partitions(partitions)
        })
        .collect();
    let mut b = BytesMut::new();
    MetadataResponse::default().with_brokers(brokers).with_topics(topics).encode(&mut b, 12).expect("encode");
    b.freeze()
}

/// Fetch v17 answering one topic's 12 partitions with 16 KiB of records each, no leader endpoints.
fn fetch() -> Bytes {
    let partitions = (0..12)
        .map(|p| {
            PartitionData::default()
                .with_partition_index(p)
                .with_high_watermark(1_000_000)
                .with_records(Some(Bytes::from(vec![7u8; 16 * 1024])))
        })
        .collect();
    let topic = FetchableTopicResponse::default().with_partitions(partitions);
    let mut b = BytesMut::new();
    FetchResponse::default()
        .with_session_id(1)
        .with_responses(vec![topic])
        .encode(&mut b, 17)
        .expect("encode");
    b.freeze()
}

fn benches(c: &mut Criterion) {
    let header = request_header();
    let mut g = c.benchmark_group("request_header");
    g.throughput(Throughput::Elements(1));
    g.bench_function("decode", |b| {
        b.iter(|| parse_request(std::hint::black_box(&header)).map(|h| h.correlation_id))
    });
    g.finish();

    let body = metadata();
    let adv = Advertise::new("acme", "kaas.example.com", 9092);
    let mut g = c.benchmark_group("metadata_rewrite");
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("v12_6_brokers_600_partitions", |b| {
        b.iter(|| {
            rewrite_response(ApiKey::Metadata, 12, std::hint::black_box(&body), &adv).map(|r| r.learned.len())
        })
    });
    g.finish();

    let body = fetch();
    let mut g = c.benchmark_group("fetch_rewrite");
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("v17_12_partitions_no_leader_endpoints", |b| {
        b.iter(|| {
            rewrite_response(ApiKey::Fetch, 17, std::hint::black_box(&body), &adv).map(|r| r.body.is_none())
        })
    });
    g.finish();
}

criterion_group!(kafka_path, benches);
criterion_main!(kafka_path);
