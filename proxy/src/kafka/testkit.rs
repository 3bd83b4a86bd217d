//! Test support shared by the proxy's unit tests, the end-to-end hostile-broker test and the fuzz target
//! (feature `testkit`): random valid responses of every API the proxy rewrites, built with kafka-protocol, and
//! the mutations a broken broker produces (flipped bytes, lengths and counts set to -1, 0 or huge, truncations,
//! insertions). Not part of the proxy's behaviour.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    describe_cluster_response as dc, describe_configs_response as cf, fetch_response as fe,
    find_coordinator_response as fc, metadata_response as md, produce_response as pr,
    share_acknowledge_response as sa, share_fetch_response as sf, ApiKey, BrokerId, DescribeClusterResponse,
    DescribeConfigsResponse, FetchResponse, FindCoordinatorResponse, MetadataResponse, ProduceResponse,
    ShareAcknowledgeResponse, ShareFetchResponse, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use super::apis::{policy, Policy};
use super::rewrite::{hidden_config, parse_addr, rewrite_response, Advertise};
use kaas_route::HostPort;

/// One record batch (magic 2, uncompressed) of `count` records, each `value` without a key, stamped
/// `timestamp_ms`, as a producer without idempotence writes it: the encoder keeps records in one batch while
/// offset − sequence stays constant, and the first sequence is −1, so the header says "no sequence".
pub fn record_batch(count: usize, value: &Bytes, timestamp_ms: i64) -> anyhow::Result<Bytes> {
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };
    let records: Vec<Record> = (0..count)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: i as i32 - 1,
            timestamp: timestamp_ms,
            key: None,
            value: Some(value.clone()),
            headers: Default::default(),
        })
        .collect();
    let mut batch = BytesMut::new();
    let options = RecordEncodeOptions { version: 2, compression: Compression::None };
    RecordBatchEncoder::encode(&mut batch, &records, &options)?;
    Ok(batch.freeze())
}

/// splitmix64: a small deterministic generator, so a failure names a seed that reproduces it.
#[derive(Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator whose whole sequence is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// A number in `0..n` (0 when `n` is 0); slightly biased, which tests do not mind.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn int(&mut self) -> i32 {
        self.next() as i32
    }
    fn small(&mut self) -> usize {
        self.below(4) as usize
    }
    fn chance(&mut self) -> bool {
        self.below(2) == 0
    }
    fn text(&mut self, prefix: &str) -> StrBytes {
        StrBytes::from_string(format!("{prefix}-{}", self.below(100_000)))
    }
    fn opt_text(&mut self, prefix: &str) -> Option<StrBytes> {
        self.chance().then(|| self.text(prefix))
    }
    fn host(&mut self) -> StrBytes {
        let hosts = ["10.1.2.3", "kafka-0.kafka-brokers.tenant.svc", "::1", "broker.internal", "x"];
        StrBytes::from_static_str(hosts[self.below(hosts.len() as u64) as usize])
    }
    /// A node id, sometimes -1 ("no node").
    fn node(&mut self) -> BrokerId {
        BrokerId(if self.below(8) == 0 { -1 } else { self.below(2000) as i32 })
    }
    fn bytes(&mut self) -> Option<Bytes> {
        self.chance().then(|| (0..self.below(300)).map(|_| self.next() as u8).collect())
    }
    fn unknown_tags(&mut self, flexible: bool) -> std::collections::BTreeMap<i32, Bytes> {
        let mut m = std::collections::BTreeMap::new();
        if flexible && self.below(4) == 0 {
            m.insert(100 + self.below(50) as i32, Bytes::from_static(b"future field"));
        }
        m
    }
}

fn many<T>(rng: &mut Rng, f: impl FnMut(&mut Rng) -> T) -> Vec<T> {
    let n = rng.small();
    let mut f = f;
    (0..n).map(|_| f(rng)).collect()
}

/// Encodes a message body, panicking (test support) if the message does not fit the version.
pub fn encode<M: Encodable>(m: &M, version: i16) -> Bytes {
    let mut b = BytesMut::new();
    m.encode(&mut b, version).unwrap_or_else(|e| panic!("{} v{version}: {e}", std::any::type_name::<M>()));
    b.freeze()
}

/// A random valid response body of `api` at `version`.
pub fn random_response(api: ApiKey, v: i16, rng: &mut Rng) -> Bytes {
    let flexible = api.response_header_version(v) >= 1;
    match api {
        ApiKey::Metadata => {
            let brokers = many(rng, |r| {
                md::MetadataResponseBroker::default()
                    .with_node_id(r.node())
                    .with_host(r.host())
                    .with_port(r.int())
                    .with_rack(if v >= 1 { r.opt_text("rack") } else { None })
                    .with_unknown_tagged_fields(r.unknown_tags(flexible))
            });
            let topics = many(rng, |r| {
                let partitions = many(r, |r| {
                    md::MetadataResponsePartition::default()
                        .with_error_code(r.int() as i16)
                        .with_partition_index(r.int())
                        .with_leader_id(r.node())
                        .with_leader_epoch(if v >= 7 { r.int() } else { -1 })
                        .with_replica_nodes(many(r, |r| r.node()))
                        .with_isr_nodes(many(r, |r| r.node()))
                        .with_offline_replicas(if v >= 5 { many(r, |r| r.node()) } else { Vec::new() })
                });
                md::MetadataResponseTopic::default()
                    .with_name(Some(TopicName(r.text("topic"))))
                    .with_is_internal(v >= 1 && r.chance())
                    .with_partitions(partitions)
                    .with_topic_authorized_operations(if v >= 8 { r.int() } else { i32::MIN })
            });
            let m = MetadataResponse::default()
                .with_throttle_time_ms(if v >= 3 { rng.int() } else { 0 })
                .with_brokers(brokers)
                .with_cluster_id(if v >= 2 { rng.opt_text("cluster") } else { None })
                .with_controller_id(if v >= 1 { rng.node() } else { BrokerId(-1) })
                .with_topics(topics)
                .with_cluster_authorized_operations(if (8..=10).contains(&v) { rng.int() } else { i32::MIN })
                .with_error_code(if v >= 13 { rng.int() as i16 } else { 0 })
                .with_unknown_tagged_fields(rng.unknown_tags(flexible));
            encode(&m, v)
        }
        ApiKey::FindCoordinator if v < 4 => {
            let m = FindCoordinatorResponse::default()
                .with_error_code(rng.int() as i16)
                .with_error_message(if v >= 1 { rng.opt_text("err") } else { None })
                .with_node_id(rng.node())
                .with_host(rng.host())
                .with_port(rng.int())
                .with_unknown_tagged_fields(rng.unknown_tags(flexible));
            encode(&m, v)
        }
        ApiKey::FindCoordinator => {
            let coordinators = many(rng, |r| {
                fc::Coordinator::default()
                    .with_key(r.text("group"))
                    .with_node_id(r.node())
                    .with_host(r.host())
                    .with_port(r.int())
                    .with_error_code(r.int() as i16)
                    .with_error_message(r.opt_text("err"))
            });
            encode(&FindCoordinatorResponse::default().with_coordinators(coordinators), v)
        }
        ApiKey::DescribeCluster => {
            let brokers = many(rng, |r| {
                dc::DescribeClusterBroker::default()
                    .with_broker_id(r.node())
                    .with_host(r.host())
                    .with_port(r.int())
                    .with_rack(r.opt_text("rack"))
                    .with_is_fenced(v >= 2 && r.chance())
            });
            let m = DescribeClusterResponse::default()
                .with_error_message(rng.opt_text("err"))
                .with_endpoint_type(if v >= 1 { 1 + rng.below(2) as i8 } else { 1 })
                .with_cluster_id(rng.text("cluster"))
                .with_controller_id(rng.node())
                .with_brokers(brokers)
                .with_cluster_authorized_operations(rng.int());
            encode(&m, v)
        }
        ApiKey::Produce => {
            let responses = many(rng, |r| {
                let partitions = many(r, |r| {
                    pr::PartitionProduceResponse::default()
                        .with_index(r.int())
                        .with_error_code(r.int() as i16)
                        .with_base_offset(r.next() as i64)
                        .with_log_start_offset(if v >= 5 { r.next() as i64 } else { -1 })
                        .with_record_errors(if v >= 8 {
                            many(r, |r| {
                                pr::BatchIndexAndErrorMessage::default()
                                    .with_batch_index(r.int())
                                    .with_batch_index_error_message(r.opt_text("bad"))
                            })
                        } else {
                            Vec::new()
                        })
                        .with_error_message(if v >= 8 { r.opt_text("err") } else { None })
                        .with_current_leader(if v >= 10 && r.chance() {
                            pr::LeaderIdAndEpoch::default()
                                .with_leader_id(r.node())
                                .with_leader_epoch(r.int())
                        } else {
                            Default::default()
                        })
                });
                pr::TopicProduceResponse::default()
                    .with_name(TopicName(r.text("topic")))
                    .with_partition_responses(partitions)
            });
            let endpoints = many(rng, |r| {
                pr::NodeEndpoint::default()
                    .with_node_id(r.node())
                    .with_host(r.host())
                    .with_port(r.int())
                    .with_rack(r.opt_text("rack"))
            });
            let m = ProduceResponse::default()
                .with_responses(responses)
                .with_throttle_time_ms(rng.int())
                .with_node_endpoints(if v >= 10 { endpoints } else { Vec::new() })
                .with_unknown_tagged_fields(rng.unknown_tags(flexible));
            encode(&m, v)
        }
        ApiKey::Fetch => {
            let responses = many(rng, |r| {
                let partitions = many(r, |r| {
                    let mut p = fe::PartitionData::default()
                        .with_partition_index(r.int())
                        .with_error_code(r.int() as i16)
                        .with_high_watermark(r.next() as i64)
                        .with_aborted_transactions(r.chance().then(|| {
                            many(r, |r| fe::AbortedTransaction::default().with_first_offset(r.next() as i64))
                        }))
                        .with_preferred_read_replica(if v >= 11 { r.node() } else { BrokerId(-1) })
                        .with_records(r.bytes());
                    if v >= 12 && r.chance() {
                        p = p
                            .with_current_leader(
                                fe::LeaderIdAndEpoch::default().with_leader_id(r.node()).with_leader_epoch(7),
                            )
                            .with_diverging_epoch(
                                fe::EpochEndOffset::default().with_epoch(3).with_end_offset(9),
                            );
                    }
                    p
                });
                fe::FetchableTopicResponse::default()
                    .with_topic(TopicName(r.text("topic")))
                    .with_partitions(partitions)
            });
            let endpoints = many(rng, |r| {
                fe::NodeEndpoint::default()
                    .with_node_id(r.node())
                    .with_host(r.host())
                    .with_port(r.int())
                    .with_rack(r.opt_text("rack"))
            });
            let m = FetchResponse::default()
                .with_throttle_time_ms(rng.int())
                .with_error_code(if v >= 7 { rng.int() as i16 } else { 0 })
                .with_session_id(if v >= 7 { rng.int() } else { 0 })
                .with_responses(responses)
                .with_node_endpoints(if v >= 16 { endpoints } else { Vec::new() })
                .with_unknown_tagged_fields(rng.unknown_tags(flexible));
            encode(&m, v)
        }
        ApiKey::ShareFetch => {
            let responses = many(rng, |r| {
                let partitions = many(r, |r| {
                    sf::PartitionData::default()
                        .with_partition_index(r.int())
                        .with_error_message(r.opt_text("err"))
                        .with_acknowledge_error_message(r.opt_text("ack"))
                        .with_current_leader(sf::LeaderIdAndEpoch::default().with_leader_id(r.int()))
                        .with_records(r.bytes())
                        .with_acquired_records(many(r, |r| {
                            sf::AcquiredRecords::default()
                                .with_first_offset(r.next() as i64)
                                .with_delivery_count(2)
                        }))
                });
                sf::ShareFetchableTopicResponse::default().with_partitions(partitions)
            });
            let endpoints = many(rng, |r| {
                sf::NodeEndpoint::default().with_node_id(r.node()).with_host(r.host()).with_port(r.int())
            });
            let m = ShareFetchResponse::default()
                .with_error_message(rng.opt_text("err"))
                .with_responses(responses)
                .with_node_endpoints(endpoints);
            encode(&m, v)
        }
        ApiKey::ShareAcknowledge => {
            let responses = many(rng, |r| {
                let partitions = many(r, |r| {
                    sa::PartitionData::default()
                        .with_partition_index(r.int())
                        .with_error_message(r.opt_text("err"))
                        .with_current_leader(sa::LeaderIdAndEpoch::default().with_leader_epoch(r.int()))
                });
                sa::ShareAcknowledgeTopicResponse::default().with_partitions(partitions)
            });
            let endpoints = many(rng, |r| {
                sa::NodeEndpoint::default().with_node_id(r.node()).with_host(r.host()).with_port(r.int())
            });
            encode(
                &ShareAcknowledgeResponse::default().with_responses(responses).with_node_endpoints(endpoints),
                v,
            )
        }
        ApiKey::DescribeConfigs => {
            // Names a broker describes, hidden and not; values sometimes null (as Kafka hides a password).
            let names =
                ["advertised.listeners", "listener.name.tls-9093.ssl.keystore.location", "log.dirs", "x"];
            let name = |r: &mut Rng| StrBytes::from_static_str(names[r.below(names.len() as u64) as usize]);
            let results = many(rng, |r| {
                let configs = many(r, |r| {
                    let synonyms = many(r, |r| {
                        cf::DescribeConfigsSynonym::default()
                            .with_name(name(r))
                            .with_value(r.opt_text("SSL://10.1.2.3:9093"))
                            .with_source(r.below(8) as i8)
                    });
                    cf::DescribeConfigsResourceResult::default()
                        .with_name(name(r))
                        .with_value(r.opt_text("SSL://kafka-0.internal:9093"))
                        .with_read_only(r.chance())
                        .with_config_source(r.below(8) as i8)
                        .with_is_sensitive(r.chance())
                        .with_synonyms(synonyms)
                        .with_config_type(if v >= 3 { r.below(10) as i8 } else { 0 })
                        .with_documentation(if v >= 3 { r.opt_text("doc") } else { None })
                });
                cf::DescribeConfigsResult::default()
                    .with_error_message(r.opt_text("err"))
                    .with_resource_type(4)
                    .with_resource_name(r.text("broker"))
                    .with_configs(configs)
            });
            let m = DescribeConfigsResponse::default()
                .with_throttle_time_ms(rng.int())
                .with_results(results)
                .with_unknown_tagged_fields(rng.unknown_tags(flexible));
            encode(&m, v)
        }
        other => panic!("no generator for {other:?}"),
    }
}

/// Mutations of a valid body: each byte flipped (a sample of positions), each 1-, 2- and 4-byte window set to
/// -1, 0, 0x7fffffff and 65536 (the lengths and counts a broken broker sends), truncations and insertions.
pub fn mutations(body: &[u8], rng: &mut Rng) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let n = body.len();
    let positions: Vec<usize> =
        if n <= 64 { (0..n).collect() } else { (0..64).map(|_| rng.below(n as u64) as usize).collect() };
    for &at in &positions {
        let mut b = body.to_vec();
        b[at] ^= 1 << rng.below(8);
        out.push((format!("flip@{at}"), b));
        for value in [-1i32, 0, 0x7fff_ffff, 65536] {
            for width in [1usize, 2, 4] {
                if at + width <= n {
                    let mut b = body.to_vec();
                    b[at..at + width].copy_from_slice(&value.to_be_bytes()[4 - width..]);
                    out.push((format!("set{width}@{at}={value}"), b));
                }
            }
        }
        out.push((format!("truncate@{at}"), body[..at].to_vec()));
        let mut b = body.to_vec();
        b.insert(at, rng.below(256) as u8);
        out.push((format!("insert@{at}"), b));
    }
    out
}

/// The oracle: decode with kafka-protocol, rename every endpoint, encode. Returns the body a client would get
/// and the endpoints learned, or `None` when kafka-protocol cannot decode the input.
pub fn oracle(api: ApiKey, v: i16, body: &[u8], adv: &Advertise) -> Option<(Bytes, Vec<(i32, HostPort)>)> {
    let mut learned = Vec::new();
    let learn = std::cell::Cell::new(true);
    let mut visit = |id: i32, host: &mut StrBytes, port: &mut i32| {
        if id < 0 {
            if !host.is_empty() {
                (*host, *port) = (StrBytes::default(), -1);
            }
            return;
        }
        if learn.get() {
            learned.extend(parse_addr(host.as_str(), *port).map(|a| (id, a)));
        }
        *host = StrBytes::from_string(adv.host(id));
        *port = i32::from(adv.port);
    };
    fn decode<M: Decodable>(body: &[u8], v: i16) -> Option<M> {
        let mut b = Bytes::copy_from_slice(body);
        let m = M::decode(&mut b, v).ok()?;
        b.is_empty().then_some(m)
    }
    let out = match api {
        ApiKey::Metadata => {
            let mut m: MetadataResponse = decode(body, v)?;
            m.brokers.iter_mut().for_each(|b| visit(b.node_id.0, &mut b.host, &mut b.port));
            encode(&m, v)
        }
        ApiKey::FindCoordinator => {
            let mut m: FindCoordinatorResponse = decode(body, v)?;
            if v < 4 {
                visit(m.node_id.0, &mut m.host, &mut m.port);
            }
            m.coordinators.iter_mut().for_each(|c| visit(c.node_id.0, &mut c.host, &mut c.port));
            encode(&m, v)
        }
        ApiKey::DescribeCluster => {
            let mut m: DescribeClusterResponse = decode(body, v)?;
            learn.set(m.endpoint_type != 2);
            m.brokers.iter_mut().for_each(|b| visit(b.broker_id.0, &mut b.host, &mut b.port));
            encode(&m, v)
        }
        ApiKey::DescribeConfigs => {
            let mut m: DescribeConfigsResponse = decode(body, v)?;
            for config in m.results.iter_mut().flat_map(|r| r.configs.iter_mut()) {
                if hidden_config(config.name.as_str()) {
                    (config.value, config.is_sensitive) = (None, true);
                }
                for synonym in config.synonyms.iter_mut().filter(|s| hidden_config(s.name.as_str())) {
                    synonym.value = None;
                }
            }
            encode(&m, v)
        }
        ApiKey::Produce => {
            let mut m: ProduceResponse = decode(body, v)?;
            m.node_endpoints.iter_mut().for_each(|e| visit(e.node_id.0, &mut e.host, &mut e.port));
            encode(&m, v)
        }
        ApiKey::Fetch => {
            let mut m: FetchResponse = decode(body, v)?;
            m.node_endpoints.iter_mut().for_each(|e| visit(e.node_id.0, &mut e.host, &mut e.port));
            encode(&m, v)
        }
        ApiKey::ShareFetch => {
            let mut m: ShareFetchResponse = decode(body, v)?;
            m.node_endpoints.iter_mut().for_each(|e| visit(e.node_id.0, &mut e.host, &mut e.port));
            encode(&m, v)
        }
        ApiKey::ShareAcknowledge => {
            let mut m: ShareAcknowledgeResponse = decode(body, v)?;
            m.node_endpoints.iter_mut().for_each(|e| visit(e.node_id.0, &mut e.host, &mut e.port));
            encode(&m, v)
        }
        other => panic!("no oracle for {other:?}"),
    };
    Some((out, learned))
}

/// Decodes both bodies as `api` v`version` and compares the messages (byte equality is too strict only where
/// kafka-protocol re-orders tagged fields; message equality is what a client sees).
pub fn same_message(api: ApiKey, v: i16, a: &[u8], b: &[u8]) -> bool {
    fn eq<M: Decodable + PartialEq>(a: &[u8], b: &[u8], v: i16) -> bool {
        let d = |x: &[u8]| M::decode(&mut Bytes::copy_from_slice(x), v).ok();
        matches!((d(a), d(b)), (Some(x), Some(y)) if x == y)
    }
    match api {
        ApiKey::Metadata => eq::<MetadataResponse>(a, b, v),
        ApiKey::FindCoordinator => eq::<FindCoordinatorResponse>(a, b, v),
        ApiKey::DescribeCluster => eq::<DescribeClusterResponse>(a, b, v),
        ApiKey::DescribeConfigs => eq::<DescribeConfigsResponse>(a, b, v),
        ApiKey::Produce => eq::<ProduceResponse>(a, b, v),
        ApiKey::Fetch => eq::<FetchResponse>(a, b, v),
        ApiKey::ShareFetch => eq::<ShareFetchResponse>(a, b, v),
        ApiKey::ShareAcknowledge => eq::<ShareAcknowledgeResponse>(a, b, v),
        _ => false,
    }
}

/// Checks the walker against the oracle on one input. Returns whether the walker accepted it.
pub fn check(api: ApiKey, v: i16, body: &[u8], what: &str) -> bool {
    let adv = Advertise::new("acme", "kaas.localhost", 9092);
    let walked = rewrite_response(api, v, body, &adv);
    let Ok(walked) = walked else { return false };
    // Only for inputs of fixed seeds: kafka-protocol itself may still reserve a misread count here (it does not
    // check that a known tagged field's payload matches its declared size), so arbitrary inputs go to
    // [`check_idempotent`] instead.
    if let Some((want, want_learned)) = oracle(api, v, body, &adv) {
        let got = walked.body.clone().unwrap_or_else(|| Bytes::copy_from_slice(body));
        assert!(same_message(api, v, &got, &want), "{what}: {api:?} v{v} differs from the oracle");
        assert_eq!(walked.learned, want_learned, "{what}: {api:?} v{v} learned");
    }
    true
}

/// The walker on arbitrary bytes (the fuzz target): whatever it accepts, it accepts again after rewriting and
/// leaves unchanged (a rewritten response is a fixed point), and every endpoint in it is then a proxy name. Needs no decoder, so any input
/// is safe. Returns whether the walker accepted the input.
pub fn check_idempotent(api: ApiKey, v: i16, body: &[u8]) -> bool {
    let adv = Advertise::new("acme", "kaas.localhost", 9092);
    let Ok(first) = rewrite_response(api, v, body, &adv) else { return false };
    let once = first.body.unwrap_or_else(|| Bytes::copy_from_slice(body));
    let second = rewrite_response(api, v, &once, &adv)
        .unwrap_or_else(|e| panic!("{api:?} v{v}: the walker refuses its own output: {e}"));
    let twice = second.body.unwrap_or_else(|| once.clone());
    assert_eq!(twice, once, "{api:?} v{v}: rewriting a rewritten response changed it");
    // Every endpoint left in the rewritten response is the proxy's name for its node: nothing upstream leaks.
    for (id, addr) in &second.learned {
        let want = (adv.host(*id), adv.port);
        assert_eq!((addr.host.clone(), addr.port), want, "{api:?} v{v}: an endpoint was not rewritten");
    }
    true
}

/// Every (api, version) whose responses the proxy rewrites.
pub fn rewritten_versions() -> Vec<(ApiKey, i16)> {
    ApiKey::iter()
        .filter_map(|api| match policy(api) {
            Policy::Rewrite { from_version, decodable } => {
                Some((api, from_version.max(decodable.min)..=decodable.max))
            }
            _ => None,
        })
        .flat_map(|(api, versions)| versions.map(move |v| (api, v)))
        .collect()
}
