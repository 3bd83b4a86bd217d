//! Consume throughput: consumers read a pre-filled topic from its start, over and over, with the newest Fetch
//! version the broker offers up to v17 (today's clients use v16+, whose responses the proxy scans for KIP-951
//! leader endpoints). Records are not decoded: the bytes of record batches received are counted. Needs a broker
//! that stores records (Tansu or Apache Kafka), never the synthetic one.

use std::time::{Duration, Instant};

use kaas_proxy::kafka::client::KafkaClient;
use kaas_proxy::kafka::codec::FrameStream;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, BrokerId, FetchRequest, MetadataRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use tokio::io::AsyncWriteExt;

use crate::client::{connect, produce_frame_with_timestamp, Endpoint, Workload};
use crate::e2e::batches;

/// Largest response a consumer asks for, per fetch (and per partition).
const FETCH_MAX_BYTES: i32 = 8 << 20;

/// What the consumers read.
#[derive(Debug)]
pub struct Consumed {
    pub bytes: u64,
    pub fetches: u64,
    /// Partition answers with an error code; the first code seen.
    pub errors: u64,
    pub first_error: Option<i16>,
    pub elapsed: Duration,
}

/// Writes `megabytes` of `record_bytes` records into each of `partitions` partitions of `topic`, directly.
pub async fn fill(
    endpoint: &Endpoint,
    topic: &str,
    partitions: usize,
    megabytes: usize,
) -> anyhow::Result<()> {
    let mut w = Workload::one_at_a_time(topic, 1024, 256, Duration::ZERO);
    w.partitions = partitions;
    let per_request = w.record_bytes * w.batch_records;
    for partition in 0..partitions {
        let mut conn = FrameStream::new(connect(endpoint).await?, 64 << 20);
        // Stamped now: Kafka's time retention drops records stamped in 1970 at its next check.
        let frame = produce_frame_with_timestamp(&w, partition as i32, crate::e2e::now_ms())?;
        for _ in 0..(megabytes << 20).div_ceil(per_request) {
            conn.get_mut().write_all(&frame).await?;
            conn.read_frame().await?.ok_or_else(|| anyhow::anyhow!("broker closed while filling"))?;
        }
    }
    Ok(())
}

/// The Fetch version to use (the broker's newest up to v17) and the topic as Fetch names it (by id from v13).
async fn plan(endpoint: &Endpoint, topic: &str) -> anyhow::Result<(i16, FetchTopic)> {
    let mut client = KafkaClient::new(connect(endpoint).await?, 64 << 20, "kaas-bench");
    let versions = client.call_decoded(0, &ApiVersionsRequest::default()).await?;
    let max =
        |key: ApiKey| versions.api_keys.iter().find(|k| k.api_key == key as i16).map_or(0, |k| k.max_version);
    let fetch = max(ApiKey::Fetch).min(17);
    let metadata = client
        .call_decoded(
            max(ApiKey::Metadata).min(12),
            &MetadataRequest::default().with_topics(Some(vec![MetadataRequestTopic::default()
                .with_name(Some(TopicName(StrBytes::from_string(topic.into()))))])),
        )
        .await?;
    let id = metadata.topics.first().map(|t| t.topic_id).unwrap_or_default();
    Ok((
        fetch,
        FetchTopic::default().with_topic(TopicName(StrBytes::from_string(topic.into()))).with_topic_id(id),
    ))
}

/// One connection per partition reading it from the start, wrapping around at its end, until `duration` is up.
pub async fn run(
    endpoint: &Endpoint,
    topic: &str,
    partitions: usize,
    duration: Duration,
) -> anyhow::Result<Consumed> {
    let (version, template) = plan(endpoint, topic).await?;
    let deadline = Instant::now() + duration;
    let start = Instant::now();
    let tasks: Vec<_> = (0..partitions)
        .map(|partition| {
            let (endpoint, template) = (endpoint.clone(), template.clone());
            tokio::spawn(async move {
                let mut client = KafkaClient::new(connect(&endpoint).await?, 64 << 20, "kaas-bench");
                let (mut bytes, mut fetches, mut offset) = (0u64, 0u64, 0i64);
                let (mut errors, mut first_error) = (0u64, None);
                while Instant::now() < deadline {
                    let request = FetchRequest::default()
                        .with_replica_id(BrokerId(-1))
                        .with_max_wait_ms(100)
                        .with_min_bytes(1)
                        .with_max_bytes(FETCH_MAX_BYTES)
                        .with_topics(vec![template.clone().with_partitions(vec![FetchPartition::default()
                            .with_partition(partition as i32)
                            .with_fetch_offset(offset)
                            .with_partition_max_bytes(FETCH_MAX_BYTES)])]);
                    let response = client.call_decoded(version, &request).await?;
                    fetches += 1;
                    let codes = response.responses.iter().flat_map(|t| &t.partitions).map(|p| p.error_code);
                    for code in std::iter::once(response.error_code).chain(codes).filter(|c| *c != 0) {
                        errors += 1;
                        first_error = first_error.or(Some(code));
                    }
                    let records: Vec<_> = response
                        .responses
                        .iter()
                        .flat_map(|t| &t.partitions)
                        .filter_map(|p| p.records.clone())
                        .collect();
                    let mut next = None;
                    for r in &records {
                        bytes += r.len() as u64;
                        next = batches(r).last().map(|(n, _)| *n).or(next);
                    }
                    // At the end of the partition: start over, so the run measures reading, not waiting.
                    offset = next.unwrap_or(0);
                }
                anyhow::Ok((bytes, fetches, errors, first_error))
            })
        })
        .collect();
    let mut total = Consumed { bytes: 0, fetches: 0, errors: 0, first_error: None, elapsed: Duration::ZERO };
    for t in tasks {
        let (bytes, fetches, errors, first_error) = t.await??;
        total.bytes += bytes;
        total.fetches += fetches;
        total.errors += errors;
        total.first_error = total.first_error.or(first_error);
    }
    total.elapsed = start.elapsed();
    Ok(total)
}
