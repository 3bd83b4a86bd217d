//! A three-node test cluster speaking the real Kafka protocol (kafka-protocol crate), because Tansu always
//! reports a single broker. Each node listens on its own loopback port and answers ApiVersions, Metadata
//! (three brokers; partition p of every topic led by node p % 3 + 1) and Produce (stores the record batches,
//! refuses partitions it does not lead with NOT_LEADER_OR_FOLLOWER, as a real broker does).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use kaas_proxy::kafka::codec::{encode_response, FrameReader};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, BrokerId, MetadataRequest, MetadataResponse, ProduceRequest,
    ProduceResponse, RequestHeader, TopicName,
};
use kafka_protocol::protocol::{decode_request_header_from_buffer, Decodable, Encodable, StrBytes};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

pub const NODES: i32 = 3;
pub const PARTITIONS: i32 = 3;
const NOT_LEADER_OR_FOLLOWER: i16 = 6;

/// Record batches a node accepted, by (topic, partition).
pub type Stored = BTreeMap<(String, i32), Vec<Bytes>>;

#[derive(Debug, Default)]
pub struct NodeState {
    pub stored: Stored,
    pub connections: usize,
}

#[derive(Debug)]
pub struct TestCluster {
    pub ports: Vec<u16>,
    pub nodes: Vec<Arc<Mutex<NodeState>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

pub fn leader_of(partition: i32) -> i32 {
    partition % NODES + 1
}

impl TestCluster {
    pub async fn start() -> anyhow::Result<TestCluster> {
        let mut listeners = Vec::new();
        for _ in 0..NODES {
            listeners.push(TcpListener::bind("127.0.0.1:0").await?);
        }
        let ports: Vec<u16> =
            listeners.iter().map(|l| l.local_addr().map(|a| a.port())).collect::<Result<_, _>>()?;
        let mut nodes = Vec::new();
        let mut tasks = Vec::new();
        for (i, listener) in listeners.into_iter().enumerate() {
            let state = Arc::new(Mutex::new(NodeState::default()));
            nodes.push(state.clone());
            let node_id = i as i32 + 1;
            let ports = ports.clone();
            tasks.push(tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    state.lock().expect("state").connections += 1;
                    tokio::spawn(serve(stream, node_id, ports.clone(), state.clone()));
                }
            }));
        }
        Ok(TestCluster { ports, nodes, tasks })
    }

    /// The bootstrap address (node 1).
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.ports[0])
    }

    pub fn node(&self, id: i32) -> std::sync::MutexGuard<'_, NodeState> {
        self.nodes[(id - 1) as usize].lock().expect("state")
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        self.tasks.iter().for_each(|t| t.abort());
    }
}

async fn serve(stream: TcpStream, node_id: i32, ports: Vec<u16>, state: Arc<Mutex<NodeState>>) {
    let mut frames = FrameReader::new(stream, 64 << 20);
    while let Ok(Some(frame)) = frames.read_frame().await {
        let Some(reply) = handle(frame.body_bytes(), node_id, &ports, &state) else { return };
        if frames.get_mut().write_all(&reply).await.is_err() {
            return;
        }
    }
}

fn respond<M: Encodable>(header: &RequestHeader, msg: &M) -> Option<Bytes> {
    let api = ApiKey::try_from(header.request_api_key).ok()?;
    encode_response(api, header.request_api_version, header.correlation_id, msg).ok()
}

fn handle(mut body: Bytes, node_id: i32, ports: &[u16], state: &Mutex<NodeState>) -> Option<Bytes> {
    let header = decode_request_header_from_buffer(&mut body).ok()?;
    let version = header.request_api_version;
    match ApiKey::try_from(header.request_api_key).ok()? {
        ApiKey::ApiVersions => {
            // Fetch is offered (never served) because librdkafka only uses v2 record batches when it is.
            let keys = [
                (ApiKey::Produce, 3, 11),
                (ApiKey::Fetch, 4, 12),
                (ApiKey::Metadata, 1, 12),
                (ApiKey::ApiVersions, 0, 3),
            ]
            .into_iter()
            .map(|(k, min, max)| {
                ApiVersion::default().with_api_key(k as i16).with_min_version(min).with_max_version(max)
            })
            .collect();
            let msg = ApiVersionsResponse::default().with_api_keys(keys);
            respond(&header, &msg)
        }
        ApiKey::Metadata => {
            let req = MetadataRequest::decode(&mut body, version).ok()?;
            let names: Vec<String> = match req.topics {
                Some(topics) => topics.into_iter().filter_map(|t| t.name.map(|n| n.0.to_string())).collect(),
                None => vec!["multi".to_owned()],
            };
            let brokers = (1..=NODES)
                .map(|id| {
                    MetadataResponseBroker::default()
                        .with_node_id(BrokerId(id))
                        .with_host(StrBytes::from_static_str("127.0.0.1"))
                        .with_port(i32::from(ports[(id - 1) as usize]))
                })
                .collect();
            let topics = names
                .into_iter()
                .map(|name| {
                    let partitions = (0..PARTITIONS)
                        .map(|p| {
                            let leader = BrokerId(leader_of(p));
                            MetadataResponsePartition::default()
                                .with_partition_index(p)
                                .with_leader_id(leader)
                                .with_replica_nodes(vec![leader])
                                .with_isr_nodes(vec![leader])
                        })
                        .collect();
                    MetadataResponseTopic::default()
                        .with_name(Some(TopicName(StrBytes::from_string(name))))
                        .with_partitions(partitions)
                })
                .collect();
            let msg = MetadataResponse::default()
                .with_brokers(brokers)
                .with_cluster_id(Some(StrBytes::from_static_str("test-cluster")))
                .with_controller_id(BrokerId(1))
                .with_topics(topics);
            respond(&header, &msg)
        }
        ApiKey::Produce => {
            let req = ProduceRequest::decode(&mut body, version).ok()?;
            let mut st = state.lock().ok()?;
            let mut responses = Vec::new();
            for topic in req.topic_data {
                let name = topic.name.0.to_string();
                let mut partition_responses = Vec::new();
                for p in topic.partition_data {
                    let mut r = PartitionProduceResponse::default().with_index(p.index);
                    if leader_of(p.index) != node_id {
                        r = r.with_error_code(NOT_LEADER_OR_FOLLOWER);
                    } else {
                        let batches = st.stored.entry((name.clone(), p.index)).or_default();
                        r = r.with_base_offset(batches.len() as i64);
                        batches.extend(p.records);
                    }
                    partition_responses.push(r);
                }
                responses.push(
                    TopicProduceResponse::default()
                        .with_name(topic.name)
                        .with_partition_responses(partition_responses),
                );
            }
            if req.acks == 0 {
                return Some(Bytes::new());
            }
            respond(&header, &ProduceResponse::default().with_responses(responses))
        }
        _ => None,
    }
}

/// Number of records in a v2 record batch sequence (the count field of each batch header).
pub fn record_count(batches: &[Bytes]) -> usize {
    let mut n = 0;
    for all in batches {
        let mut at = 0;
        while at + 61 <= all.len() {
            let batch_len =
                i32::from_be_bytes([all[at + 8], all[at + 9], all[at + 10], all[at + 11]]) as usize;
            n += i32::from_be_bytes([all[at + 57], all[at + 58], all[at + 59], all[at + 60]]) as usize;
            at += 12 + batch_len;
        }
    }
    n
}
