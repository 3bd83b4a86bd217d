//! End-to-end latency: one producer writes single timestamped records at a steady rate, one consumer fetches
//! them through the same target; latency = arrival time − the record batch's timestamp (millisecond resolution,
//! as Kafka timestamps are). Needs a broker that stores records (Tansu), not the synthetic one.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use hdrhistogram::Histogram;
use kaas_proxy::kafka::client::KafkaClient;
use kaas_proxy::kafka::codec::FrameStream;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use tokio::io::AsyncWriteExt;

use crate::client::{connect, Endpoint, Workload};

pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Per record batch in `records`: (next offset after it, its max timestamp).
pub fn batches(records: &[u8]) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 61 <= records.len() {
        let i64_at = |o: usize| i64::from_be_bytes(records[o..o + 8].try_into().unwrap_or([0; 8]));
        let i32_at = |o: usize| i32::from_be_bytes(records[o..o + 4].try_into().unwrap_or([0; 4]));
        let (base, len, last_delta, max_ts) = (i64_at(at), i32_at(at + 8), i32_at(at + 23), i64_at(at + 35));
        if len <= 0 {
            break;
        }
        out.push((base + i64::from(last_delta) + 1, max_ts));
        at += 12 + len as usize;
    }
    out
}

/// Produces `rate` records per second for `duration` and measures when each is fetched back.
pub async fn run(
    endpoint: &Endpoint,
    topic: &str,
    rate: u32,
    duration: Duration,
) -> anyhow::Result<Histogram<u64>> {
    let mut producer = FrameStream::new(connect(endpoint).await?, 64 << 20);
    let mut consumer = KafkaClient::new(connect(endpoint).await?, 64 << 20, "kaas-bench");
    let w = Workload::one_at_a_time(topic, 100, 1, duration);
    let deadline = Instant::now() + duration;
    let produce = async {
        let start = Instant::now();
        let mut n: u64 = 0;
        while Instant::now() < deadline {
            let due = Duration::from_secs_f64(n as f64 / f64::from(rate.max(1)));
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                tokio::time::sleep(wait).await;
            }
            // Timestamps are set by the producer at send time; the frame is built per record for that.
            let frame = produce_frame_at(&w, now_ms())?;
            producer.get_mut().write_all(&frame).await?;
            producer.get_mut().flush().await?;
            producer.read_frame().await?.ok_or_else(|| anyhow::anyhow!("connection closed by the target"))?;
            n += 1;
        }
        anyhow::Ok(())
    };
    let consume = async {
        let mut latencies = Histogram::<u64>::new_with_bounds(1, 600_000, 3)?;
        let mut offset = -1i64;
        let version = 4;
        while Instant::now() < deadline + Duration::from_millis(500) {
            let fetch_from = offset.max(0);
            let req = FetchRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_max_wait_ms(100)
                .with_min_bytes(1)
                .with_max_bytes(1 << 20)
                .with_topics(vec![FetchTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(topic.to_owned())))
                    .with_partitions(vec![FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(fetch_from)
                        .with_partition_max_bytes(1 << 20)])]);
            let resp = consumer.call_decoded(version, &req).await?;
            let arrived = now_ms();
            for p in resp.responses.iter().flat_map(|t| &t.partitions) {
                if offset < 0 {
                    // Start at the end: only records produced from now on count.
                    offset = p.high_watermark;
                    continue;
                }
                for (next, ts) in batches(p.records.as_deref().unwrap_or_default()) {
                    if next > offset {
                        let _ = latencies.record((arrived - ts).max(1) as u64);
                        offset = next;
                    }
                }
            }
        }
        anyhow::Ok(latencies)
    };
    let (produced, latencies) = tokio::join!(produce, consume);
    produced?;
    latencies
}

/// A one-record Produce frame whose record carries `timestamp_ms`.
fn produce_frame_at(w: &Workload, timestamp_ms: i64) -> anyhow::Result<BytesMut> {
    crate::client::produce_frame_with_timestamp(w, 0, timestamp_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use kafka_protocol::protocol::Decodable;

    #[test]
    fn batch_walk_reads_offsets_and_timestamps() {
        let w = Workload::one_at_a_time("t", 10, 3, Duration::from_secs(1));
        let frame = produce_frame_at(&w, 1_700_000_000_123).expect("frame");
        let h = kaas_proxy::kafka::header::parse_request(&frame[4..]).expect("header");
        let mut body = Bytes::copy_from_slice(&frame[4 + h.body_offset.expect("known")..]);
        let req = kafka_protocol::messages::ProduceRequest::decode(&mut body, 7).expect("decodes");
        let records = req.topic_data[0].partition_data[0].records.clone().expect("records");
        assert_eq!(batches(&records), [(3, 1_700_000_000_123)]);
    }
}
