//! The inputs of the response-path benches, shared by the criterion bench (`kafka_path`) and the
//! instruction-count driver (`response_path_ir`): whole response frames as a broker sends them (response
//! header included) and the in-flight request each answers.

#![allow(dead_code)]

use bytes::{Bytes, BytesMut};
use kaas_proxy::kafka::apis::classify;
use kaas_proxy::kafka::inflight::InFlight;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchResponse, MetadataResponse, ProduceResponse, RequestHeader, ResponseHeader,
    TopicName,
};
use kafka_protocol::protocol::{Encodable, StrBytes};

/// A Produce v9 request header followed by 64 bytes of body.
pub fn request_header() -> Bytes {
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

/// Metadata v12 of a 6-broker cluster with 50 topics × 12 partitions (the body only).
pub fn metadata() -> Bytes {
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

/// Fetch v17 answering one topic's 12 partitions with 16 KiB of records each, no leader endpoints (the body).
pub fn fetch() -> Bytes {
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

/// Produce v11 acknowledging one topic's 12 partitions, the broker's own throttle 0, no leader endpoints (the
/// body).
pub fn produce() -> Bytes {
    let partitions = (0..12)
        .map(|p| PartitionProduceResponse::default().with_index(p).with_base_offset(1_000 + i64::from(p)))
        .collect();
    let topic = TopicProduceResponse::default()
        .with_name(TopicName(StrBytes::from_static_str("orders")))
        .with_partition_responses(partitions);
    let mut b = BytesMut::new();
    ProduceResponse::default().with_responses(vec![topic]).encode(&mut b, 11).expect("encode");
    b.freeze()
}

/// One response-path case: the frame body (response header + body) and the request it answers.
pub struct Case {
    pub name: &'static str,
    pub frame_body: Bytes,
    pub request: InFlight,
}

fn case(name: &'static str, api: ApiKey, version: i16, body: Bytes, throttle_ms: i32) -> Case {
    let mut b = BytesMut::new();
    ResponseHeader::default()
        .with_correlation_id(42)
        .encode(&mut b, api.response_header_version(version))
        .expect("header");
    b.extend_from_slice(&body);
    let action = classify(api as i16, version).expect("a version the proxy serves");
    let request = InFlight { correlation_id: 42, api_key: api as i16, version, action, throttle_ms };
    Case { name, frame_body: b.freeze(), request }
}

/// The response-path cases: a Metadata rewrite, a Fetch passing through, the same Fetch over the tenant's
/// fetch quota, a Produce over its produce quota.
pub fn cases() -> Vec<Case> {
    vec![
        case("metadata_v12_rewrite", ApiKey::Metadata, 12, metadata(), 0),
        case("fetch_v17_pass", ApiKey::Fetch, 17, fetch(), 0),
        case("fetch_v17_throttled", ApiKey::Fetch, 17, fetch(), 250),
        case("produce_v11_throttled", ApiKey::Produce, 11, produce(), 250),
    ]
}

use kaas_proxy::kafka::codec::Frame;
use kaas_proxy::kafka::process_response;
use kaas_proxy::kafka::rewrite::Advertise;

/// The response path as `session::directions` runs it: `process_response`, which also raises
/// `throttle_time_ms` to the request's `throttle_ms`.
#[inline(never)]
pub fn production(frame: Frame, req: &InFlight, adv: &Advertise) -> Frame {
    process_response(frame, req, adv).expect("valid").frame
}
