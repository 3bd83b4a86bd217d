//! What the byte-level tests send and check: requests built by hand at any version, record batches, the
//! KIP-951 endpoints of a response, a broker asked directly, and the search for upstream addresses in
//! response bytes.

use bytes::{Bytes, BytesMut};
use kaas_proxy::kafka::client::KafkaClient;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::metadata_response::MetadataResponseTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    FetchRequest, FetchResponse, MetadataRequest, ProduceRequest, ProduceResponse, TopicName,
};
use kafka_protocol::protocol::{Request, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// A Metadata request for these topics (never creating them).
pub fn metadata_request(topics: &[&str]) -> MetadataRequest {
    let topics = topics
        .iter()
        .map(|t| {
            MetadataRequestTopic::default().with_name(Some(TopicName(StrBytes::from_string((*t).to_owned()))))
        })
        .collect();
    MetadataRequest::default().with_topics(Some(topics))
}

/// What in `frame` gives an upstream address away: the brokers' host, or any of their `ports` as the
/// big-endian i32 of a port field or as decimal text. Empty when the frame is clean.
pub fn upstream_traces(frame: &[u8], ports: &[u16]) -> Vec<String> {
    let contains = |needle: &[u8]| frame.windows(needle.len()).any(|w| w == needle);
    let mut found = Vec::new();
    if contains(b"127.0.0.1") {
        found.push("host 127.0.0.1".to_owned());
    }
    for port in ports {
        if contains(&i32::from(*port).to_be_bytes()) {
            found.push(format!("port {port} as an i32"));
        }
        if contains(port.to_string().as_bytes()) {
            found.push(format!("port {port} as text"));
        }
    }
    found
}

/// The KIP-951 endpoints of a response, as (node id, host, port).
pub trait NodeEndpoints {
    fn node_endpoints_of(&self) -> Vec<(i32, String, i32)>;
}

impl NodeEndpoints for ProduceResponse {
    fn node_endpoints_of(&self) -> Vec<(i32, String, i32)> {
        self.node_endpoints.iter().map(|e| (e.node_id.0, e.host.to_string(), e.port)).collect()
    }
}

impl NodeEndpoints for FetchResponse {
    fn node_endpoints_of(&self) -> Vec<(i32, String, i32)> {
        self.node_endpoints.iter().map(|e| (e.node_id.0, e.host.to_string(), e.port)).collect()
    }
}

/// Sends `req` to a broker's PLAIN listener directly, bypassing the proxy: what the broker itself says.
pub async fn direct<R: Request>(addr: &str, version: i16, req: &R) -> anyhow::Result<R::Response> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let mut client = KafkaClient::new(tcp, 16 << 20, "kaas-e2e-direct");
    Ok(client.call_decoded(version, req).await?)
}

/// A v2 record batch, uncompressed, of one record labelled `label`. (kafka-protocol starts a new batch for
/// each record of a non-idempotent producer, and Produce v3+ takes one batch per partition.)
pub fn record_batch(label: &str) -> Bytes {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis();
    let records: Vec<Record> = (0..1)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i,
            sequence: -1,
            timestamp: now as i64,
            key: Some(Bytes::from(format!("{label} key {i}"))),
            value: Some(Bytes::from(format!("{label} value {i}"))),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions { version: 2, compression: Compression::None };
    RecordBatchEncoder::encode(&mut buf, &records, &options).expect("encode a record batch");
    buf.freeze()
}

/// Asserts the batches of `records` are the first of `sent`, each byte for byte from the magic byte on: the
/// broker sets a batch's base offset (bytes 0–8) and leader epoch (12–16), the rest — covered by the CRC —
/// is the producer's. Returns how many there were.
pub fn assert_produced(what: &str, records: Option<&Bytes>, sent: &[Bytes]) -> usize {
    let records = records.cloned().unwrap_or_default();
    let got = batches(&records);
    assert!(got.len() <= sent.len(), "{what}: {} batches, {} produced", got.len(), sent.len());
    for (i, (got, sent)) in got.iter().zip(sent).enumerate() {
        assert_eq!(got[16..], sent[16..], "{what}: batch {i} differs from the one produced");
    }
    let decoded = RecordBatchDecoder::decode_all(&mut records.clone()).expect("records decode");
    assert_eq!(decoded.iter().map(|s| s.records.len()).sum::<usize>(), got.len(), "{what}: records");
    got.len()
}

/// The batches of a record set: each is its 12-byte prefix (base offset, length) and `length` bytes.
pub fn batches(mut records: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while records.len() >= 12 {
        let len = i32::from_be_bytes(records[8..12].try_into().expect("4 bytes")) as usize;
        let (batch, rest) = records.split_at((12 + len).min(records.len()));
        out.push(batch);
        records = rest;
    }
    out
}

/// Produce (acks=all) of `batch` to partition 0 of `topic`, by name or, from v13, by topic id.
pub fn produce_request(topic: &MetadataResponseTopic, version: i16, batch: Bytes) -> ProduceRequest {
    let data = TopicProduceData::default()
        .with_partition_data(vec![PartitionProduceData::default().with_index(0).with_records(Some(batch))]);
    let data = if version >= 13 { data.with_topic_id(topic.topic_id) } else { data.with_name(name(topic)) };
    ProduceRequest::default().with_acks(-1).with_timeout_ms(10_000).with_topic_data(vec![data])
}

/// Fetch of partition 0 of `topic` from offset 0, by name or, from v13, by topic id; answered at once.
pub fn fetch_request(topic: &MetadataResponseTopic, version: i16) -> FetchRequest {
    let partition =
        FetchPartition::default().with_partition(0).with_fetch_offset(0).with_partition_max_bytes(1 << 20);
    let data = FetchTopic::default().with_partitions(vec![partition]);
    let data = if version >= 13 { data.with_topic_id(topic.topic_id) } else { data.with_topic(name(topic)) };
    FetchRequest::default()
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(1 << 20)
        .with_topics(vec![data])
}

fn name(topic: &MetadataResponseTopic) -> TopicName {
    topic.name.clone().expect("Metadata names the topics it was asked for")
}
