//! A minimal, fast **synthetic** Kafka broker for measuring the proxy's own ceiling when a real broker is the
//! bottleneck. It answers ApiVersions, Metadata (itself as node 1, any topic with one partition) and Produce
//! (acknowledged at once, records dropped). It stores nothing and is not a broker; never a test oracle.

use bytes::{Bytes, BytesMut};
use kaas_proxy::kafka::codec::{encode_response, FrameStream};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, BrokerId, MetadataRequest, MetadataResponse, ProduceRequest,
    ProduceResponse, RequestHeader,
};
use kafka_protocol::protocol::{decode_request_header_from_buffer, Decodable, Encodable, StrBytes};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

pub async fn serve(listener: TcpListener) -> anyhow::Result<()> {
    let port = listener.local_addr()?.port();
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(connection(stream, port));
    }
}

async fn connection(stream: TcpStream, port: u16) {
    let mut frames = FrameStream::new(stream, 256 << 20);
    let mut out = BytesMut::new();
    // Every request a read completed is answered in one write (clients pipeline).
    while let Ok(n) = frames.fill().await {
        if n == 0 {
            return;
        }
        while let Ok(Some(frame)) = frames.buffered_frame() {
            if let Some(reply) = handle(frame.into_body(), port) {
                out.extend_from_slice(&reply);
            }
        }
        if !out.is_empty() {
            if frames.get_mut().write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
    }
}

fn respond<M: Encodable>(h: &RequestHeader, msg: &M) -> Option<Bytes> {
    let api = ApiKey::try_from(h.request_api_key).ok()?;
    encode_response(api, h.request_api_version, h.correlation_id, msg).ok()
}

fn handle(mut body: Bytes, port: u16) -> Option<Bytes> {
    let h = decode_request_header_from_buffer(&mut body).ok()?;
    let v = h.request_api_version;
    match ApiKey::try_from(h.request_api_key).ok()? {
        ApiKey::ApiVersions => {
            let keys = [
                (ApiKey::Produce, 3, 9),
                (ApiKey::Fetch, 4, 12),
                (ApiKey::Metadata, 1, 12),
                (ApiKey::ApiVersions, 0, 3),
            ]
            .into_iter()
            .map(|(k, min, max)| {
                ApiVersion::default().with_api_key(k as i16).with_min_version(min).with_max_version(max)
            })
            .collect();
            respond(&h, &ApiVersionsResponse::default().with_api_keys(keys))
        }
        ApiKey::Metadata => {
            let req = MetadataRequest::decode(&mut body, v).ok()?;
            let topics = req
                .topics
                .unwrap_or_default()
                .into_iter()
                .filter_map(|t| t.name)
                .map(|name| {
                    let p = MetadataResponsePartition::default()
                        .with_leader_id(BrokerId(1))
                        .with_replica_nodes(vec![BrokerId(1)])
                        .with_isr_nodes(vec![BrokerId(1)]);
                    MetadataResponseTopic::default().with_name(Some(name)).with_partitions(vec![p])
                })
                .collect();
            let broker = MetadataResponseBroker::default()
                .with_node_id(BrokerId(1))
                .with_host(StrBytes::from_static_str("127.0.0.1"))
                .with_port(i32::from(port));
            respond(
                &h,
                &MetadataResponse::default()
                    .with_brokers(vec![broker])
                    .with_controller_id(BrokerId(1))
                    .with_topics(topics),
            )
        }
        ApiKey::Produce => {
            let req = ProduceRequest::decode(&mut body, v).ok()?;
            if req.acks == 0 {
                return None;
            }
            let responses = req
                .topic_data
                .into_iter()
                .map(|t| {
                    let parts = t
                        .partition_data
                        .iter()
                        .map(|p| PartitionProduceResponse::default().with_index(p.index))
                        .collect();
                    TopicProduceResponse::default().with_name(t.name).with_partition_responses(parts)
                })
                .collect();
            respond(&h, &ProduceResponse::default().with_responses(responses))
        }
        _ => None,
    }
}
