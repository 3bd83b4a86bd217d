//! The walkers against messages kafka-protocol encodes, at every version it knows, with record sets its
//! encoder builds; its batch-header decoder is the oracle for the record counts.

use super::*;
use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{FetchResponse, ProduceRequest, TopicName};
use kafka_protocol::protocol::{Encodable, Message, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

fn record(value: &'static [u8], control: bool) -> Record {
    Record {
        transactional: control,
        control,
        delete_horizon: false,
        partition_leader_epoch: 0,
        producer_id: if control { 7 } else { -1 },
        producer_epoch: if control { 0 } else { -1 },
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: 1_700_000_000_000,
        key: Some(Bytes::from_static(b"k")),
        value: Some(Bytes::from_static(value)),
        headers: IndexMap::new(),
    }
}

/// `n` messages of magic 0 or 1 (Kafka's `LegacyRecord`, by hand: the encoder writes magic 2 only), the CRC
/// left zero.
fn legacy(n: usize, magic: u8) -> Bytes {
    let mut b = Vec::new();
    for offset in 0..n as i64 {
        let mut message = vec![0, 0, 0, 0, magic, 0];
        if magic == 1 {
            message.extend_from_slice(&1_700_000_000_000i64.to_be_bytes());
        }
        message.extend_from_slice(&(-1i32).to_be_bytes());
        message.extend_from_slice(&5i32.to_be_bytes());
        message.extend_from_slice(b"value");
        b.extend_from_slice(&offset.to_be_bytes());
        b.extend_from_slice(&(message.len() as i32).to_be_bytes());
        b.extend_from_slice(&message);
    }
    b.into()
}

/// One batch of `n` records (magic 2).
fn batch(n: usize) -> Bytes {
    crate::kafka::testkit::record_batch(n, &Bytes::from_static(b"value"), 1_700_000_000_000).expect("encodes")
}

fn control_batch() -> Bytes {
    let mut b = BytesMut::new();
    let options = RecordEncodeOptions { version: 2, compression: Compression::None };
    RecordBatchEncoder::encode(&mut b, &[record(b"\0\0\0\0\0\0", true)], &options).expect("encodes");
    b.freeze()
}

fn concat(sets: &[Bytes]) -> Bytes {
    sets.concat().into()
}

/// What the oracle counts: batches decoded, control batches left out.
fn oracle_records(set: &Bytes) -> u64 {
    let mut b = set.clone();
    RecordBatchDecoder::decode_batch_info(&mut b)
        .expect("decodes")
        .iter()
        .filter(|i| !i.control)
        .map(|i| i.record_count as u64)
        .sum()
}

#[test]
fn records_are_counted_from_batch_headers() {
    let two = concat(&[batch(3), batch(5)]);
    assert_eq!(records_in(&two), 8);
    let mut headers = two.clone();
    assert_eq!(RecordBatchDecoder::decode_batch_info(&mut headers).expect("decodes").len(), 2, "two batches");
    assert_eq!(records_in(&two), oracle_records(&two));
    let with_marker = concat(&[batch(4), control_batch()]);
    assert_eq!(records_in(&with_marker), 4, "a transaction marker is not the application's record");
    assert_eq!(records_in(&with_marker), oracle_records(&with_marker));
    // Magic 0 and 1 sets: one message is one record.
    for magic in [0, 1] {
        assert_eq!(records_in(&legacy(3, magic)), 3, "magic {magic}");
    }
    // A fetch response's last batch cut short (KIP-74): its records are not counted.
    let cut = concat(&[batch(2), batch(6)]);
    assert_eq!(records_in(&cut[..cut.len() - 1]), 2);
    // Hostile headers: a negative or short length, a negative count.
    let mut negative = batch(2).to_vec();
    negative[8..12].copy_from_slice(&(-5i32).to_be_bytes());
    assert_eq!(records_in(&negative), 0);
    let mut short = batch(2).to_vec();
    short[8..12].copy_from_slice(&10i32.to_be_bytes());
    assert_eq!(records_in(&short), 0);
    let mut count = batch(2).to_vec();
    count[57..61].copy_from_slice(&(-1i32).to_be_bytes());
    assert_eq!(records_in(&count), 0);
    assert_eq!(records_in(&[]), 0);
}

/// Two topics, `orders` (id 1…) over two partitions and `audit` (id 2…) with a null record set.
fn sets() -> [(&'static str, TopicId, Vec<Option<Bytes>>); 2] {
    [
        ("orders", [1; 16], vec![Some(batch(3)), Some(concat(&[batch(1), batch(2)]))]),
        ("audit", [2; 16], vec![None, Some(batch(4))]),
    ]
}

fn expected(version: i16) -> Vec<(Topic<'static>, Volume)> {
    sets()
        .into_iter()
        .map(|(name, id, parts)| {
            let topic = if version <= 12 { Topic::Name(name) } else { Topic::Id(id) };
            let bytes = parts.iter().flatten().map(|p| p.len() as u64).sum();
            let records = parts.iter().flatten().map(oracle_records).sum();
            (topic, Volume { bytes, records })
        })
        .collect()
}

fn produce_body(version: i16) -> Bytes {
    let topics = sets()
        .into_iter()
        .map(|(name, id, parts)| {
            let partitions = parts
                .into_iter()
                .enumerate()
                .map(|(i, records)| {
                    PartitionProduceData::default().with_index(i as i32).with_records(records)
                })
                .collect();
            let t = TopicProduceData::default().with_partition_data(partitions);
            if version <= 12 {
                t.with_name(TopicName(StrBytes::from_static_str(name)))
            } else {
                t.with_topic_id(uuid(id))
            }
        })
        .collect();
    let mut b = BytesMut::new();
    ProduceRequest::default().with_acks(-1).with_topic_data(topics).encode(&mut b, version).expect("encodes");
    b.freeze()
}

fn fetch_body(version: i16) -> Bytes {
    let topics = sets()
        .into_iter()
        .map(|(name, id, parts)| {
            let partitions = parts
                .into_iter()
                .enumerate()
                .map(|(i, records)| {
                    PartitionData::default()
                        .with_partition_index(i as i32)
                        .with_aborted_transactions(Some(Vec::new()))
                        .with_records(records)
                })
                .collect();
            let t = FetchableTopicResponse::default().with_partitions(partitions);
            if version <= 12 {
                t.with_topic(TopicName(StrBytes::from_static_str(name)))
            } else {
                t.with_topic_id(uuid(id))
            }
        })
        .collect();
    let mut b = BytesMut::new();
    FetchResponse::default().with_responses(topics).encode(&mut b, version).expect("encodes");
    b.freeze()
}

fn uuid(id: TopicId) -> uuid::Uuid {
    uuid::Uuid::from_bytes(id)
}

fn collect(
    walk: impl Fn(&[u8], i16, &mut dyn FnMut(Topic<'_>, Volume)) -> WireResult<()>,
    body: &[u8],
    version: i16,
) -> WireResult<Vec<(Topic<'static>, Volume)>> {
    let mut seen = Vec::new();
    walk(body, version, &mut |topic, volume| {
        let topic = match topic {
            Topic::Name(n) => Topic::Name(["orders", "audit"].into_iter().find(|k| *k == n).expect("known")),
            Topic::Id(id) => Topic::Id(id),
        };
        seen.push((topic, volume));
    })?;
    Ok(seen)
}

fn produce_walk(body: &[u8], v: i16, each: &mut dyn FnMut(Topic<'_>, Volume)) -> WireResult<()> {
    produced(body, v, each)
}

fn fetch_walk(body: &[u8], v: i16, each: &mut dyn FnMut(Topic<'_>, Volume)) -> WireResult<()> {
    fetched(body, v, each)
}

#[test]
fn every_produce_version_reports_its_topics() {
    let versions = ProduceRequest::VERSIONS;
    assert_eq!((versions.min, versions.max), (3, 13), "a new Produce version: teach the walker its layout");
    for version in versions.min..=versions.max {
        let got = collect(produce_walk, &produce_body(version), version).expect("walks");
        assert_eq!(got, expected(version), "Produce v{version}");
    }
}

#[test]
fn every_fetch_version_reports_its_topics() {
    let versions = FetchResponse::VERSIONS;
    assert_eq!((versions.min, versions.max), (4, 18), "a new Fetch version: teach the walker its layout");
    for version in versions.min..=versions.max {
        let got = collect(fetch_walk, &fetch_body(version), version).expect("walks");
        assert_eq!(got, expected(version), "Fetch v{version}");
    }
}

#[test]
fn a_message_that_cannot_be_walked_reports_nothing() {
    for (walk, body, version) in [
        (
            produce_walk as fn(&[u8], i16, &mut dyn FnMut(Topic<'_>, Volume)) -> WireResult<()>,
            produce_body(9),
            9,
        ),
        (fetch_walk, fetch_body(12), 12),
        (fetch_walk, fetch_body(16), 16),
    ] {
        // Cut anywhere after the first topic was walked: the first topic is not reported either.
        for cut in [body.len() - 1, body.len() - 20] {
            let mut reported = 0;
            let got = walk(&body[..cut], version, &mut |_, _| reported += 1);
            assert!(got.is_err(), "v{version} cut at {cut}");
            assert_eq!(reported, 0, "v{version} cut at {cut}: nothing of a broken message is counted");
        }
        // Kafka ignores what follows a message's last field (and stores such a Produce): counted all the same.
        let mut trailing = body.to_vec();
        trailing.push(0);
        let mut reported = 0;
        walk(&trailing, version, &mut |_, _| reported += 1).expect("a trailing byte is ignored");
        assert_eq!(reported, 2, "v{version}: both topics of a message with a trailing byte");
    }
}
