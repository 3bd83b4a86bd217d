//! Byte-level checks through kaas-proxy against a real Apache Kafka cluster (3 brokers, node ids 11–13):
//! every version of every API that carries broker addresses — Metadata, FindCoordinator (single and batched
//! keys), DescribeCluster, and the KIP-951 leader endpoints Kafka adds to Produce v10+ and Fetch v16+ answers
//! that say NOT_LEADER_OR_FOLLOWER — reaches the client with each broker named `b<id>.<tenant>.<domain>` at
//! the proxy's port, node ids unchanged, and not one byte of the brokers' own addresses; DescribeConfigs of
//! each broker, every version, with its listener and quorum configurations null and sensitive. Each `b<id>` name
//! reaches node `id` (only it accepts records for the partitions it leads), and records come back from
//! every Fetch version byte for byte as they were produced.
//!
//! One cluster serves the whole file (a start costs ~10 s of the 2 cores), so the checks are steps of one
//! test, sharing its connections and collecting every response frame for the final byte search. The same run
//! checks the proxy's `/metrics` against what this client sent and received: requests per API exactly, bytes
//! each way exactly, one latency observation per request and stage, sessions open per tenant.

use crate::common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::create_topics;
use common::proxied::ProxiedKafka;
use common::wire::*;
use kaas_e2e::kafka::{ClusterOptions, Listener, FIRST_NODE_ID};
use kaas_e2e::raw;
use kaas_proxy::kafka::apis::{policy, Policy};
use kaas_proxy::kafka::client::KafkaClient;
use kafka_protocol::messages::metadata_response::MetadataResponseTopic;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, DescribeClusterRequest, FindCoordinatorRequest,
    MetadataResponse, ProduceRequest,
};
use kafka_protocol::protocol::{Message, Request, StrBytes};
use rdkafka::admin::{NewTopic, TopicReplication};

const TENANT: &str = "acme";
const NODES: [i32; 3] = [FIRST_NODE_ID, FIRST_NODE_ID + 1, FIRST_NODE_ID + 2];
/// Three partitions, three replicas each: every broker leads one and follows the others.
const SPREAD: &str = "wire";
/// One partition on node 11 alone: the other two brokers are not even followers.
const LONELY: &str = "lonely";
const LONELY_NODE: i32 = FIRST_NODE_ID;

const NOT_LEADER_OR_FOLLOWER: i16 = 6;
const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
const COORDINATOR_NOT_AVAILABLE: i16 = 15;
const GROUP: i8 = 0;
const TRANSACTION: i8 = 1;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_broker_address_reaches_clients_as_a_proxy_name() {
    let k = ProxiedKafka::start(TENANT, ClusterOptions::named("wire")).expect("kafka cluster and proxy");
    let mut w =
        Wire { k: &k, conns: HashMap::new(), frames: Vec::new(), correlation: 0, counts: Counts::default() };

    let versions = w.api_versions().await;
    w.create_topics().await;
    // From here on every byte through the proxy is this test's own (the admin client is gone).
    let before = scrape(&k);
    w.counts = Counts::default();
    let range = |api: ApiKey| versions[&(api as i16)];
    let topics = w.metadata(range(ApiKey::Metadata)).await;
    w.find_coordinator(range(ApiKey::FindCoordinator)).await;
    w.describe_cluster(range(ApiKey::DescribeCluster)).await;
    w.describe_configs(range(ApiKey::DescribeConfigs)).await;
    let sent = w.produce(range(ApiKey::Produce), &topics).await;
    w.fetch(range(ApiKey::Fetch), &topics, &sent).await;
    assert_metrics_moved_by(&k, &before, &w.counts, w.conns.len());

    let ports = k.cluster.ports();
    // The search is not blind: it finds the brokers' addresses in what a broker answers directly.
    let addr = k.cluster.broker_addr(FIRST_NODE_ID, Listener::Plain).expect("node 11");
    let mut own =
        KafkaClient::new(tokio::net::TcpStream::connect(&addr).await.expect("connect"), 1 << 24, "e2e");
    let answer = own.call(12, &metadata_request(&[])).await.expect("Metadata from the broker itself");
    assert!(upstream_traces(&answer, &ports).len() >= 4, "the search misses the brokers' own Metadata");

    let mut leaks = Vec::new();
    for (what, frame) in &w.frames {
        let traces = upstream_traces(frame, &ports);
        if !traces.is_empty() {
            leaks.push(format!("{what}: {}", traces.join(", ")));
        }
    }
    assert!(leaks.is_empty(), "upstream addresses in responses (ports {ports:?}):\n{}", leaks.join("\n"));
    eprintln!("{} response frames searched, none carries an upstream address", w.frames.len());
}

/// A test topic as the proxy's Metadata described it.
#[derive(Debug, Clone)]
struct Placement {
    /// As the newest Metadata version described it (with its topic id, v10+).
    newest: MetadataResponseTopic,
    /// Leader of each partition, by index.
    leaders: Vec<i32>,
}

/// The test's state: connections by name, every response frame received, and what went through the proxy.
struct Wire<'a> {
    k: &'a ProxiedKafka,
    conns: HashMap<String, raw::Tls>,
    frames: Vec<(String, Bytes)>,
    correlation: i32,
    counts: Counts,
}

/// What this client sent through the proxy and got back, as the proxy's metrics should count it.
#[derive(Debug, Default)]
struct Counts {
    requests: BTreeMap<String, u64>,
    /// Whole frames, length prefixes included.
    bytes_out: u64,
    bytes_in: u64,
}

impl Wire<'_> {
    /// Sends `req` as `version` over the connection named `name` (opened on first use) and keeps the frame.
    async fn call<R: Request>(&mut self, name: &str, version: i16, req: &R) -> R::Response {
        self.correlation += 1;
        if !self.conns.contains_key(name) {
            let conn = self.k.raw(name).await.expect("TLS connection to the proxy");
            self.conns.insert(name.to_owned(), conn);
        }
        let conn = self.conns.get_mut(name).expect("opened above");
        let api = ApiKey::try_from(R::KEY).expect("a known API");
        let (frame, response) = raw::call(conn, self.correlation, version, req)
            .await
            .unwrap_or_else(|e| panic!("{api:?} v{version} as {name}: {e:#}"));
        let request = raw::frame(self.correlation, version, req).expect("encodes");
        *self.counts.requests.entry(format!("{api:?}")).or_default() += 1;
        self.counts.bytes_out += request.len() as u64;
        self.counts.bytes_in += frame.len() as u64;
        self.frames.push((format!("{api:?} v{version} as {name}"), frame));
        if let Some(dir) = std::env::var_os("KAAS_CAPTURE_SEEDS") {
            self.capture(std::path::Path::new(&dir), name, api, version, req).await;
        }
        response
    }

    /// Seed capture for the fuzz targets (`KAAS_CAPTURE_SEEDS=proxy/fuzz/captured`): the same read-only
    /// request sent to the broker itself, and its answer, as Apache Kafka wrote it, stored in the layout of
    /// `broker_response` ([index of (api, version)] + body) and, for ApiVersions, of `api_versions_cap`.
    async fn capture<R: Request>(
        &self,
        dir: &std::path::Path,
        name: &str,
        api: ApiKey,
        version: i16,
        req: &R,
    ) {
        use kaas_proxy::testkit::rewritten_versions;
        let read_only = [
            ApiKey::Metadata,
            ApiKey::FindCoordinator,
            ApiKey::DescribeCluster,
            ApiKey::DescribeConfigs,
            ApiKey::Fetch,
        ];
        if !read_only.contains(&api) && api != ApiKey::ApiVersions {
            return;
        }
        let node = name
            .strip_prefix('b')
            .and_then(|rest| rest.split('.').next())
            .and_then(|id| id.parse().ok())
            .unwrap_or(FIRST_NODE_ID);
        let addr = self.k.cluster.broker_addr(node, Listener::Plain).expect("node address");
        let tcp = tokio::net::TcpStream::connect(&addr).await.expect("connect to the broker");
        let mut client = KafkaClient::new(tcp, 1 << 24, "kaas-e2e-capture");
        let body = client.call(version, req).await.expect("the broker's own answer");
        let cases = rewritten_versions();
        let mut seeds = Vec::new();
        if let Some(index) = cases.iter().position(|c| *c == (api, version)) {
            seeds.push(("broker_response", u8::try_from(index).expect("fewer than 256 cases")));
        }
        if api == ApiKey::ApiVersions {
            // broker_response reads ApiVersions past its list, at version `byte % 5`; api_versions_cap at
            // `byte % 8 - 1`.
            let past = (cases.len()..256).find(|b| b % 5 == version as usize).expect("a byte");
            seeds.push(("broker_response", u8::try_from(past).expect("a byte")));
            seeds.push(("api_versions_cap", u8::try_from(version + 1).expect("a byte")));
        }
        for (target, pick) in seeds {
            let folder = dir.join(target);
            std::fs::create_dir_all(&folder).expect("seed folder");
            let mut seed = vec![pick];
            seed.extend_from_slice(&body);
            let file = folder.join(format!("kafka-{api:?}-v{version}-{}", self.correlation));
            std::fs::write(&file, seed).expect("write seed");
        }
    }

    fn name(&self, id: i32) -> String {
        self.k.broker_name(id)
    }

    fn port(&self) -> i32 {
        i32::from(self.k.proxy.port)
    }

    /// The version ranges clients are offered through the proxy, checked against what the broker offers
    /// directly: APIs whose answers the proxy rewrites are capped at what it can read, controller APIs are
    /// hidden, everything else is as the broker says.
    async fn api_versions(&mut self) -> BTreeMap<i16, (i16, i16)> {
        let req = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("kaas-e2e"))
            .with_client_software_version(StrBytes::from_static_str("1"));
        let bootstrap = self.k.bootstrap_name();
        let proxied = ranges(&self.call(&bootstrap, 3, &req).await);
        let direct_addr = self.k.cluster.broker_addr(FIRST_NODE_ID, Listener::Plain).expect("node 11");
        let direct =
            ranges(&direct(&direct_addr, 3, &req).await.expect("ApiVersions from the broker itself"));

        for (&key, &(min, max)) in &direct {
            let Ok(api) = ApiKey::try_from(key) else {
                eprintln!("Kafka offers API key {key} (v{min}..v{max}), unknown to kafka-protocol");
                continue;
            };
            let offered = proxied.get(&key).copied();
            if offered != Some((min, max)) {
                eprintln!("Kafka offers {api:?} v{min}..v{max}; through the proxy: {offered:?}");
            }
            match policy(api) {
                Policy::Blocked => assert_eq!(offered, None, "{api:?} carries internal addresses"),
                Policy::Rewrite { from_version, decodable } => {
                    let (pmin, pmax) = offered.unwrap_or_else(|| panic!("{api:?} hidden"));
                    assert_eq!(pmax, max.min(decodable.max), "{api:?}: capped where the proxy can read");
                    assert!(pmin >= min, "{api:?}: v{pmin} offered below the broker's v{min}");
                    // Versions from `from_version` on are rewritten, so each must be one the proxy reads.
                    let first_rewritten = pmin.max(from_version);
                    assert!(
                        first_rewritten > pmax || first_rewritten >= decodable.min,
                        "{api:?}: v{pmin}..v{pmax} includes versions the proxy cannot read"
                    );
                }
                Policy::PassThrough | Policy::Versions => {
                    assert_eq!(offered, Some((min, max)), "{api:?} is not the proxy's business")
                }
            }
        }
        assert!(
            proxied.keys().all(|k| direct.contains_key(k)),
            "the proxy offers an API the broker does not"
        );

        // The steps below are only worth something if the versions that carry endpoints are offered.
        let wanted = [
            (ApiKey::Metadata, 10),
            (ApiKey::FindCoordinator, 4),
            (ApiKey::DescribeCluster, 1),
            (ApiKey::Produce, 10),
            (ApiKey::Fetch, 16),
        ];
        for (api, newest) in wanted {
            let offered = proxied.get(&(api as i16));
            assert!(offered.is_some_and(|r| r.1 >= newest), "{api:?} v{newest}+ not offered: {offered:?}");
            eprintln!("{api:?}: every version of {offered:?} through the proxy");
        }
        proxied
    }

    /// [`SPREAD`] and [`LONELY`], created through the proxy, known to every broker before the steps that need
    /// them.
    async fn create_topics(&mut self) {
        let lonely: &[&[i32]] = &[&[LONELY_NODE]];
        let topics = [
            NewTopic::new(SPREAD, 3, TopicReplication::Fixed(3)),
            NewTopic::new(LONELY, 1, TopicReplication::Variable(lonely)),
        ];
        create_topics(&self.k.client(), &topics).await.expect("create topics through the proxy");
        // A new topic reaches each broker's metadata a moment after the controller created it.
        for id in NODES {
            let name = self.name(id);
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let md = self.call(&name, 12, &metadata_request(&[SPREAD, LONELY])).await;
                let led = |t: &MetadataResponseTopic| t.partitions.iter().all(|p| p.leader_id.0 >= 0);
                if md.topics.iter().all(|t| t.error_code == 0 && led(t)) {
                    break;
                }
                assert!(Instant::now() < deadline, "topics unknown to node {id} after 30 s: {md:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    /// Every Metadata version: the three brokers under their proxy names, the cluster's own id, partition
    /// leaders among the node ids. Returns where the test topics live.
    async fn metadata(&mut self, (min, max): (i16, i16)) -> HashMap<&'static str, Placement> {
        let mut placement = HashMap::new();
        let bootstrap = self.k.bootstrap_name();
        for v in min..=max {
            let md: MetadataResponse = self.call(&bootstrap, v, &metadata_request(&[SPREAD, LONELY])).await;
            let brokers: Vec<(i32, String, i32)> =
                md.brokers.iter().map(|b| (b.node_id.0, b.host.to_string(), b.port)).collect();
            let want: Vec<_> = NODES.iter().map(|&id| (id, self.name(id), self.port())).collect();
            assert_eq!(sorted(brokers), want, "Metadata v{v} brokers");
            if v >= 2 {
                assert_eq!(md.cluster_id.as_deref(), Some(self.k.cluster.cluster_id()), "Metadata v{v}");
            }
            if v >= 1 {
                assert!(
                    NODES.contains(&md.controller_id.0),
                    "Metadata v{v}: controller {:?}",
                    md.controller_id
                );
            }
            for t in &md.topics {
                let name = t.name.as_ref().map(|n| n.to_string()).unwrap_or_default();
                let topic: &'static str = if name == SPREAD { SPREAD } else { LONELY };
                assert_eq!(t.error_code, 0, "Metadata v{v} {name}");
                let mut leaders: Vec<(i32, i32)> =
                    t.partitions.iter().map(|p| (p.partition_index, p.leader_id.0)).collect();
                leaders.sort();
                let leaders: Vec<i32> = leaders.into_iter().map(|(_, l)| l).collect();
                assert!(
                    leaders.iter().all(|l| NODES.contains(l)),
                    "Metadata v{v} {name}: leaders {leaders:?}"
                );
                let entry = placement
                    .entry(topic)
                    .or_insert(Placement { newest: t.clone(), leaders: leaders.clone() });
                entry.newest = t.clone();
                assert_eq!(entry.leaders, leaders, "Metadata v{v} {name}: leaders moved during the test");
            }
        }
        assert_eq!(placement[LONELY].leaders, [LONELY_NODE]);
        assert!(max >= 10 && !placement[SPREAD].newest.topic_id.is_nil(), "no topic ids (Metadata v10+)");
        let spread: BTreeSet<i32> = placement[SPREAD].leaders.iter().copied().collect();
        eprintln!("{SPREAD} leaders by partition: {:?}", placement[SPREAD].leaders);
        assert!(spread.len() >= 2, "{SPREAD}: partitions led by {spread:?} only");
        placement
    }

    /// Every FindCoordinator version, for consumer groups and transactional ids, one key at a time (v0–v3)
    /// and six at once (v4+): each coordinator under its proxy name, the node the broker itself names.
    async fn find_coordinator(&mut self, (min, max): (i16, i16)) {
        let bootstrap = self.k.bootstrap_name();
        let mut coordinator_of: BTreeMap<String, i32> = BTreeMap::new();
        for v in min..=max {
            // Key types arrived in v1.
            let types: &[i8] = if v == 0 { &[GROUP] } else { &[GROUP, TRANSACTION] };
            for &key_type in types {
                let prefix = if key_type == GROUP { "wire-group" } else { "wire-txn" };
                let keys: Vec<String> =
                    (0..if v >= 4 { 6 } else { 1 }).map(|i| format!("{prefix}-{i}")).collect();
                let found = self.coordinators(&bootstrap, v, key_type, &keys).await;
                for (key, (node, host, port)) in found {
                    assert_eq!(host, self.name(node), "FindCoordinator v{v} {key}");
                    assert_eq!(port, self.port(), "FindCoordinator v{v} {key}");
                    let first = *coordinator_of.entry(key.clone()).or_insert(node);
                    assert_eq!(node, first, "FindCoordinator v{v} {key}: another coordinator than before");
                }
            }
        }
        let nodes: BTreeSet<i32> = coordinator_of.values().copied().collect();
        eprintln!("coordinators: {coordinator_of:?}");
        // The node ids are the broker's own: the broker asked directly names the same coordinator.
        let addr = self.k.cluster.broker_addr(FIRST_NODE_ID, Listener::Plain).expect("node 11");
        let req = FindCoordinatorRequest::default().with_key(StrBytes::from_static_str("wire-group-0"));
        let direct = direct(&addr, 3, &req).await.expect("FindCoordinator from the broker itself");
        assert_eq!(
            Some(&direct.node_id.0),
            coordinator_of.get("wire-group-0"),
            "coordinator of wire-group-0"
        );
        assert!(direct.host.as_str() == "127.0.0.1", "the broker itself names {}", direct.host.as_str());
        assert!(nodes.iter().all(|n| NODES.contains(n)), "coordinators {nodes:?}");
    }

    /// Asks until the broker names a coordinator for every key (the internal topics holding groups and
    /// transactions are created on first use): key → (node id, host, port).
    async fn coordinators(
        &mut self,
        name: &str,
        v: i16,
        key_type: i8,
        keys: &[String],
    ) -> BTreeMap<String, (i32, String, i32)> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let mut req = FindCoordinatorRequest::default();
            if v >= 1 {
                req = req.with_key_type(key_type);
            }
            if v >= 4 {
                req = req
                    .with_coordinator_keys(keys.iter().map(|k| StrBytes::from_string(k.clone())).collect());
            } else {
                req = req.with_key(StrBytes::from_string(keys[0].clone()));
            }
            let resp = self.call(name, v, &req).await;
            let answers: Vec<(String, i16, (i32, String, i32))> = if v >= 4 {
                resp.coordinators
                    .iter()
                    .map(|c| (c.key.to_string(), c.error_code, (c.node_id.0, c.host.to_string(), c.port)))
                    .collect()
            } else {
                vec![(keys[0].clone(), resp.error_code, (resp.node_id.0, resp.host.to_string(), resp.port))]
            };
            let pending: Vec<_> = answers.iter().filter(|a| a.1 != 0).collect();
            if pending.is_empty() {
                assert_eq!(answers.len(), keys.len(), "FindCoordinator v{v}: one answer per key");
                return answers.into_iter().map(|(k, _, c)| (k, c)).collect();
            }
            assert!(
                pending
                    .iter()
                    .all(|a| a.1 == COORDINATOR_NOT_AVAILABLE || a.1 == COORDINATOR_LOAD_IN_PROGRESS),
                "FindCoordinator v{v}: {pending:?}"
            );
            assert!(
                Instant::now() < deadline,
                "FindCoordinator v{v}: no coordinator after 60 s: {pending:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Every DescribeCluster version: brokers under their proxy names, the cluster's id; and, from v1, what
    /// a broker answers when asked for the controllers (KIP-919), fenced brokers included from v2.
    async fn describe_cluster(&mut self, (min, max): (i16, i16)) {
        let bootstrap = self.k.bootstrap_name();
        for v in min..=max {
            let mut req = DescribeClusterRequest::default();
            if v >= 2 {
                req = req.with_include_fenced_brokers(true);
            }
            let resp = self.call(&bootstrap, v, &req).await;
            assert_eq!(resp.error_code, 0, "DescribeCluster v{v}: {:?}", resp.error_message);
            assert_eq!(resp.cluster_id.as_str(), self.k.cluster.cluster_id(), "DescribeCluster v{v}");
            let brokers: Vec<(i32, String, i32)> =
                resp.brokers.iter().map(|b| (b.broker_id.0, b.host.to_string(), b.port)).collect();
            let want: Vec<_> = NODES.iter().map(|&id| (id, self.name(id), self.port())).collect();
            assert_eq!(sorted(brokers), want, "DescribeCluster v{v} brokers");
            assert!(resp.brokers.iter().all(|b| !b.is_fenced), "DescribeCluster v{v}: a fenced broker");
            if v >= 1 {
                // Controllers answer this only on their own listeners; a broker refuses it. Either way, no
                // controller address may come through (the byte search at the end covers it).
                let controllers = self.call(&bootstrap, v, &req.clone().with_endpoint_type(2)).await;
                eprintln!(
                    "DescribeCluster v{v} for controllers, asked of a broker: error {} {:?}, {} endpoints",
                    controllers.error_code,
                    controllers.error_message.as_deref(),
                    controllers.brokers.len()
                );
                for b in &controllers.brokers {
                    assert_eq!(
                        b.host.to_string(),
                        self.name(b.broker_id.0),
                        "DescribeCluster v{v} controller"
                    );
                }
            }
        }
    }

    /// Every DescribeConfigs version, for each broker's every configuration (synonyms too): the listener and
    /// quorum configurations come back null and sensitive (their values name the brokers' own addresses and
    /// ports: the byte search at the end covers every frame), the rest as the broker describes them.
    async fn describe_configs(&mut self, (min, max): (i16, i16)) {
        use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
        use kafka_protocol::messages::DescribeConfigsRequest;
        const BROKER: i8 = 4;
        for v in min..=max {
            for id in NODES {
                let resource = DescribeConfigsResource::default()
                    .with_resource_type(BROKER)
                    .with_resource_name(StrBytes::from_string(id.to_string()))
                    .with_configuration_keys(None);
                let req = DescribeConfigsRequest::default()
                    .with_resources(vec![resource])
                    .with_include_synonyms(true)
                    // Kafka's documentation of `listeners` has example addresses, 127.0.0.1 among them: the
                    // byte search would take them for the brokers' own.
                    .with_include_documentation(false);
                let resp = self.call(&self.name(id), v, &req).await;
                let result = &resp.results[0];
                assert_eq!(result.error_code, 0, "DescribeConfigs v{v} of {id}: {:?}", result.error_message);
                let value = |name: &str| {
                    let c = result.configs.iter().find(|c| c.name.as_str() == name);
                    c.map(|c| (c.value.as_deref().map(str::to_owned), c.is_sensitive))
                };
                for hidden in ["listeners", "advertised.listeners", "listener.security.protocol.map"] {
                    assert_eq!(value(hidden), Some((None, true)), "DescribeConfigs v{v} of {id}: {hidden}");
                }
                assert_eq!(
                    value("node.id"),
                    Some((Some(id.to_string()), false)),
                    "DescribeConfigs v{v} of {id}"
                );
                for c in &result.configs {
                    let synonyms = c.synonyms.iter().map(|s| s.value.as_deref());
                    let leaks =
                        synonyms.chain([c.value.as_deref()]).flatten().any(|t| t.contains("127.0.0.1"));
                    assert!(!leaks, "DescribeConfigs v{v} of {id}: {c:?}");
                }
            }
        }
    }

    /// Every Produce version, to partition 0 of [`SPREAD`]: accepted through its leader's name (so that name
    /// reaches that node), refused through each follower's — from v10 with the leader's endpoint, renamed.
    /// Returns the batches accepted, in order.
    async fn produce(&mut self, (min, max): (i16, i16), topics: &HashMap<&str, Placement>) -> Vec<Bytes> {
        let spread = &topics[SPREAD];
        let leader = spread.leaders[0];
        let mut sent = Vec::new();
        // Kafka 4 still offers Produce v0–v2 (brought back for old librdkafka); the proxy passes them through
        // untouched, and kafka-protocol cannot write them.
        for v in min.max(ProduceRequest::VERSIONS.min)..=max {
            let batch = record_batch(&format!("produce v{v}"));
            let req = produce_request(&spread.newest, v, batch.clone());
            let resp = self.call(&self.name(leader), v, &req).await;
            let p = &resp.responses[0].partition_responses[0];
            assert_eq!(p.error_code, 0, "Produce v{v} to the leader, node {leader}: {:?}", p.error_message);
            assert_eq!(p.base_offset, sent.len() as i64, "Produce v{v}: offset");
            sent.push(batch);

            for follower in NODES.into_iter().filter(|&id| id != leader) {
                let resp = self.call(&self.name(follower), v, &req).await;
                let p = &resp.responses[0].partition_responses[0];
                assert_eq!(p.error_code, NOT_LEADER_OR_FOLLOWER, "Produce v{v} to follower {follower}");
                if v >= 10 {
                    let what = format!("Produce v{v} via b{follower}");
                    self.assert_leader_endpoint(&what, leader, &resp.node_endpoints_of());
                    assert_eq!(p.current_leader.leader_id.0, leader, "Produce v{v}: current leader");
                }
            }
        }
        sent
    }

    /// Every Fetch version: partition 0 of [`SPREAD`] read from its leader's name, each batch byte for byte
    /// as produced; [`LONELY`] asked of the two brokers that hold no replica of it, which answer
    /// NOT_LEADER_OR_FOLLOWER — from v16 with node 11's endpoint, renamed; and a follower of [`SPREAD`].
    async fn fetch(&mut self, (min, max): (i16, i16), topics: &HashMap<&str, Placement>, sent: &[Bytes]) {
        let spread = &topics[SPREAD];
        let leader = spread.leaders[0];
        for v in min..=max {
            let resp = self.call(&self.name(leader), v, &fetch_request(&spread.newest, v)).await;
            let p = &resp.responses[0].partitions[0];
            assert_eq!(p.error_code, 0, "Fetch v{v} from the leader");
            let got = assert_produced(&format!("Fetch v{v} from the leader"), p.records.as_ref(), sent);
            assert_eq!(got, sent.len(), "Fetch v{v} from the leader: batches");

            for stranger in NODES.into_iter().filter(|&id| id != LONELY_NODE) {
                let resp =
                    self.call(&self.name(stranger), v, &fetch_request(&topics[LONELY].newest, v)).await;
                let p = &resp.responses[0].partitions[0];
                assert_eq!(
                    p.error_code, NOT_LEADER_OR_FOLLOWER,
                    "Fetch v{v} of {LONELY} from node {stranger}"
                );
                if v >= 16 {
                    self.assert_leader_endpoint(
                        &format!("Fetch v{v} via b{stranger}"),
                        LONELY_NODE,
                        &resp.node_endpoints_of(),
                    );
                    assert_eq!(p.current_leader.leader_id.0, LONELY_NODE, "Fetch v{v}: current leader");
                }
            }

            // Kafka serves consumers from followers too (KIP-392), from Fetch v11 on: up to the follower's
            // high watermark, which may trail the leader's by a fetch.
            let follower = NODES.into_iter().find(|&id| id != leader).expect("a follower");
            let resp = self.call(&self.name(follower), v, &fetch_request(&spread.newest, v)).await;
            let p = &resp.responses[0].partitions[0];
            if v >= 11 {
                assert_eq!(p.error_code, 0, "Fetch v{v} from follower {follower}");
                let what = format!("Fetch v{v} from follower {follower}");
                assert_produced(&what, p.records.as_ref(), sent);
            } else {
                assert_eq!(p.error_code, NOT_LEADER_OR_FOLLOWER, "Fetch v{v} from follower {follower}");
            }
        }
    }

    /// KIP-951 endpoints: there, each under its proxy name and port, the leader's among them.
    fn assert_leader_endpoint(&self, what: &str, leader: i32, endpoints: &[(i32, String, i32)]) {
        assert!(endpoints.iter().any(|e| e.0 == leader), "{what}: no endpoint for the leader {leader}");
        for (id, host, port) in endpoints {
            assert_eq!(*host, self.name(*id), "{what}");
            assert_eq!(*port, self.port(), "{what}");
        }
    }
}

/// Every sample of the proxy's `/metrics`, by series.
fn scrape(k: &ProxiedKafka) -> BTreeMap<String, f64> {
    let text = k.proxy.metrics().expect("GET /metrics");
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// The proxy counted exactly what the client did between `before` and now.
fn assert_metrics_moved_by(k: &ProxiedKafka, before: &BTreeMap<String, f64>, counts: &Counts, open: usize) {
    let tenant = &k.tenant;
    let delta = |now: &BTreeMap<String, f64>, series: &str| {
        now.get(series).copied().unwrap_or(0.0) - before.get(series).copied().unwrap_or(0.0)
    };
    let out =
        format!("kaas_proxy_session_bytes_total{{tenant=\"{tenant}\",direction=\"client_to_upstream\"}}");
    let back =
        format!("kaas_proxy_session_bytes_total{{tenant=\"{tenant}\",direction=\"upstream_to_client\"}}");
    // The proxy counts bytes just after writing them, which may be just after the client read them.
    let deadline = Instant::now() + Duration::from_secs(5);
    let now = loop {
        let now = scrape(k);
        let settled = delta(&now, &back) as u64 == counts.bytes_in;
        if settled || Instant::now() > deadline {
            break now;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(delta(&now, &out) as u64, counts.bytes_out, "bytes client → broker");
    assert_eq!(delta(&now, &back) as u64, counts.bytes_in, "bytes broker → client (after rewriting)");
    let mut total = 0;
    for (api, n) in &counts.requests {
        let requests = format!("kaas_proxy_requests_total{{tenant=\"{tenant}\",api=\"{api}\"}}");
        assert_eq!(delta(&now, &requests) as u64, *n, "{requests}");
        for stage in ["proxy", "upstream"] {
            let observed =
                format!("kaas_proxy_request_duration_seconds_count{{tenant=\"{tenant}\",api=\"{api}\",stage=\"{stage}\"}}");
            assert_eq!(delta(&now, &observed) as u64, *n, "{observed}: one observation per request");
        }
        total += n;
    }
    let all_requests: f64 = now
        .keys()
        .filter(|s| s.starts_with(&format!("kaas_proxy_requests_total{{tenant=\"{tenant}\"")))
        .map(|s| delta(&now, s))
        .sum();
    assert_eq!(all_requests as u64, total, "no request counted that the client did not send");
    let active = format!("kaas_proxy_session_active{{tenant=\"{tenant}\"}}");
    assert_eq!(now.get(&active).copied(), Some(open as f64), "{active}: the test's open connections");
    let leaked = format!("kaas_proxy_rewrite_leaked_addresses_total{{tenant=\"{tenant}\"}}");
    assert_eq!(now.get(&leaked).copied(), Some(0.0), "{leaked}");
    eprintln!(
        "metrics match the client: {total} requests over {} APIs, {} bytes out, {} bytes back",
        counts.requests.len(),
        counts.bytes_out,
        counts.bytes_in
    );
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

fn ranges(r: &ApiVersionsResponse) -> BTreeMap<i16, (i16, i16)> {
    assert_eq!(r.error_code, 0, "ApiVersions");
    r.api_keys.iter().map(|k| (k.api_key, (k.min_version, k.max_version))).collect()
}
