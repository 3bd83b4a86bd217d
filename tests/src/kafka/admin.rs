//! The fixture's own requests to a cluster, over the `PLAIN` listener with `kaas_proxy`'s `KafkaClient` and
//! kafka-protocol's messages: Metadata (are the brokers up, is a topic ready) and CreateTopics.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use kaas_proxy::kafka::client::KafkaClient;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{CreateTopicsRequest, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::{Request, StrBytes};

use super::{ClusterView, KafkaCluster, Node, READY_WITHIN};

/// Metadata v12: the newest both 3.9 and 4.x answer (4.0 dropped v0–v3).
pub(super) const METADATA_VERSION: i16 = 12;

/// CreateTopics v7: the newest both 3.9 and 4.x answer (4.0 dropped v0–v1).
const CREATE_TOPICS_VERSION: i16 = 7;

/// How long one exchange of the fixture's own may take, connecting and answering each (CreateTopics asks the
/// controller for up to 30 s of it).
pub(super) const EXCHANGE_WITHIN: Duration = Duration::from_secs(40);

impl KafkaCluster {
    /// Creates topic `name` with `partitions` partitions, replicated to min(nodes, 3), over the `PLAIN`
    /// listener (the fixture's own way in, a super user under [`super::ClusterOptions::authorizer`], where clients
    /// could not create it), and returns once every running node's Metadata lists it with a leader for each
    /// partition: a client connecting anywhere next finds it.
    pub fn create_topic(&self, name: &str, partitions: i32) -> anyhow::Result<()> {
        let what = || format!("creating topic {name} in cluster {}", self.name);
        let replicas = i16::try_from(self.nodes.len().min(3))?;
        let topic = CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_string(name.to_owned())))
            .with_num_partitions(partitions)
            .with_replication_factor(replicas);
        let request = CreateTopicsRequest::default().with_topics(vec![topic]).with_timeout_ms(30_000);
        let response = exchange(&self.running_plain_addr()?, CREATE_TOPICS_VERSION, request, EXCHANGE_WITHIN)
            .with_context(what)?;
        let result = response
            .topics
            .iter()
            .find(|t| t.name.0.as_str() == name)
            .ok_or_else(|| anyhow!("{}: the answer does not mention it", what()))?;
        if let Some(e) = ResponseError::try_from_code(result.error_code) {
            bail!("{}: {}", what(), error_text(e, result.error_message.as_ref()));
        }
        self.wait_for_topic(name, partitions, READY_WITHIN)
    }

    /// Polls every running node's Metadata until it lists `name` with `partitions` partitions, each led.
    fn wait_for_topic(&self, name: &str, partitions: i32, within: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        let request = MetadataRequest::default().with_topics(Some(vec![MetadataRequestTopic::default()
            .with_name(Some(TopicName(StrBytes::from_string(name.to_owned()))))]));
        loop {
            let waiting = self.nodes.iter().filter(|n| n.is_running()).find_map(|n| {
                let answer =
                    exchange(&n.plain_addr(), METADATA_VERSION, request.clone(), Duration::from_secs(3));
                match answer.map(|r| topic_state(&r, name, partitions)) {
                    Ok(None) => None,
                    Ok(Some(why)) => Some((n.id, why)),
                    Err(e) => Some((n.id, format!("{e:#}"))),
                }
            });
            let Some((node, why)) = waiting else { return Ok(()) };
            if Instant::now() >= deadline {
                bail!(
                    "topic {name} of cluster {} not ready on node {node} after {within:?}: {why}",
                    self.name
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until every partition of every topic is led and has each of its replicas on a running node in
    /// sync, as every running node's Metadata says: what rolling brokers one at a time waits for before the
    /// next, as Strimzi does, so that with replication 3 and `min.insync.replicas=2` an acks=all write never
    /// finds too few replicas in sync.
    pub fn wait_for_in_sync(&self, within: Duration) -> anyhow::Result<()> {
        let running: Vec<i32> = self.nodes.iter().filter(|n| n.is_running()).map(|n| n.id).collect();
        let deadline = Instant::now() + within;
        // No topics named: all of them.
        let request = MetadataRequest::default().with_topics(None);
        loop {
            let waiting = self.nodes.iter().filter(|n| n.is_running()).find_map(|n| {
                match exchange(&n.plain_addr(), METADATA_VERSION, request.clone(), Duration::from_secs(3)) {
                    Ok(r) => out_of_sync(&r, &running).map(|why| (n.id, why)),
                    Err(e) => Some((n.id, format!("{e:#}"))),
                }
            });
            let Some((node, why)) = waiting else { return Ok(()) };
            if Instant::now() >= deadline {
                bail!("cluster {}: replicas not in sync on node {node} after {within:?}: {why}", self.name);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The `PLAIN` address of a running node, for the fixture's requests to the cluster as a whole.
    pub(super) fn running_plain_addr(&self) -> anyhow::Result<String> {
        let node = self.nodes.iter().find(|n| n.is_running());
        node.map(Node::plain_addr).ok_or_else(|| anyhow!("cluster {} has no running node", self.name))
    }
}

/// Sends Metadata (no topics) to `addr` on a plaintext listener and returns the brokers it lists.
pub fn metadata(addr: &str) -> anyhow::Result<ClusterView> {
    // A broker still starting may accept connections before it answers them: short bounds, the caller polls.
    let request = MetadataRequest::default().with_topics(Some(Vec::new()));
    let response = exchange(addr, METADATA_VERSION, request, Duration::from_secs(3))?;
    let mut brokers: Vec<_> =
        response.brokers.iter().map(|b| (b.node_id.0, b.host.to_string(), b.port)).collect();
    brokers.sort();
    Ok(ClusterView {
        cluster_id: response.cluster_id.map(|c| c.to_string()),
        controller_id: response.controller_id.0,
        brokers,
    })
}

/// Sends `request` as `version` to `addr` on a plaintext listener and decodes the answer, connecting and
/// answering each bounded by `within`. Blocking for the fixture's callers (the tests' runtimes are busy
/// elsewhere, and one cannot block inside another): the exchange runs through `kaas_proxy::kafka::client`
/// on a runtime of its own thread.
pub(super) fn exchange<R>(
    addr: &str,
    version: i16,
    request: R,
    within: Duration,
) -> anyhow::Result<R::Response>
where
    R: Request + Send + 'static,
    R::Response: Send + 'static,
{
    let addr = addr.to_owned();
    let api = R::KEY;
    let run = move || -> anyhow::Result<R::Response> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        rt.block_on(async {
            let stream = connect_within(&addr, within).await?;
            let mut client = KafkaClient::new(stream, 1 << 24, "kaas-e2e-fixture");
            let response = tokio::time::timeout(within, client.call_decoded(version, &request))
                .await
                .map_err(|_| anyhow!("api {api} v{version} to {addr}: no answer after {within:?}"))?
                .with_context(|| format!("api {api} v{version} to {addr}"))?;
            Ok(response)
        })
    };
    std::thread::spawn(run).join().map_err(|_| anyhow!("api {api} exchange thread panicked"))?
}

/// Why `response` does not yet show `name` with `partitions` partitions, each led; `None` once it does.
/// A TCP connection to `addr` within `within`, errors naming the address: the fixture's one way to dial a node.
pub(super) async fn connect_within(addr: &str, within: Duration) -> anyhow::Result<tokio::net::TcpStream> {
    tokio::time::timeout(within, tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| anyhow!("connecting to {addr}: no connection after {within:?}"))?
        .with_context(|| format!("connecting to {addr}"))
}

fn topic_state(response: &MetadataResponse, name: &str, partitions: i32) -> Option<String> {
    let Some(topic) = response.topics.iter().find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == name))
    else {
        return Some("not in its Metadata".into());
    };
    if let Some(e) = ResponseError::try_from_code(topic.error_code) {
        return Some(format!("Metadata says {}", error_text(e, None)));
    }
    let led = topic.partitions.iter().filter(|p| p.error_code == 0 && p.leader_id.0 >= 0).count();
    let complete = led == topic.partitions.len() && i32::try_from(led).is_ok_and(|l| l == partitions);
    (!complete).then(|| format!("{led} of {partitions} partitions led ({} listed)", topic.partitions.len()))
}

/// The first partition of `response` without a leader or with a replica on a `running` node out of its ISR;
/// `None` when there is none.
fn out_of_sync(response: &MetadataResponse, running: &[i32]) -> Option<String> {
    for topic in &response.topics {
        let name = topic.name.as_ref().map_or("?", |n| n.0.as_str());
        for p in &topic.partitions {
            let lagging: Vec<i32> = p
                .replica_nodes
                .iter()
                .map(|r| r.0)
                .filter(|r| running.contains(r) && !p.isr_nodes.iter().any(|i| i.0 == *r))
                .collect();
            if p.leader_id.0 < 0 || !lagging.is_empty() {
                let isr: Vec<i32> = p.isr_nodes.iter().map(|i| i.0).collect();
                return Some(format!(
                    "{name}-{}: leader {}, in sync {isr:?}, lagging {lagging:?}",
                    p.partition_index, p.leader_id.0
                ));
            }
        }
    }
    None
}

/// A broker's error as reports quote it: name, code and its message if any, e.g.
/// `TopicAlreadyExists (36): Topic 'orders' already exists.`.
pub(super) fn error_text(e: ResponseError, message: Option<&StrBytes>) -> String {
    match message.map(|m| m.as_str()).filter(|m| !m.is_empty()) {
        Some(m) => format!("{e:?} ({}): {m}", e.code()),
        None => format!("{e:?} ({})", e.code()),
    }
}
