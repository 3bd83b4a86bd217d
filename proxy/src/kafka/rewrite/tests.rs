//! Rewrite tests: every version of every rewritten response, built with upstream addresses, encoded, rewritten.
//! Checked: only hosts and ports change (putting the originals back gives the exact original bytes), node ids
//! are kept, addresses are learned, and the output matches the committed golden file
//! (`testdata/rewrite.golden`; regenerate with `UPDATE_GOLDEN=1 cargo test -p kaas-proxy rewrite`).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    describe_cluster_response::DescribeClusterBroker,
    fetch_response::NodeEndpoint as FetchEndpoint,
    find_coordinator_response::Coordinator,
    metadata_response::{MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic},
    produce_response::NodeEndpoint as ProduceEndpoint,
    share_acknowledge_response::NodeEndpoint as ShareAckEndpoint,
    share_fetch_response::NodeEndpoint as ShareFetchEndpoint,
    ApiKey, BrokerId, DescribeClusterResponse, FetchResponse, FindCoordinatorResponse, MetadataResponse,
    ProduceResponse, ShareAcknowledgeResponse, ShareFetchResponse, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use super::*;
use crate::kafka::testkit::rewritten_versions;

const UPSTREAM: [(i32, &str, i32); 3] =
    [(1, "10.0.0.1", 9093), (2, "kafka-2.internal", 9094), (3, "::1", 9095)];

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

fn encode<M: Encodable>(m: &M, version: i16) -> Bytes {
    let mut b = BytesMut::new();
    m.encode(&mut b, version).unwrap_or_else(|e| panic!("{} v{version}: {e}", std::any::type_name::<M>()));
    b.freeze()
}

/// An extra tagged field the crate does not know, to prove it survives the rewrite (flexible versions only).
fn unknown_tag(flexible: bool) -> BTreeMap<i32, Bytes> {
    if flexible {
        BTreeMap::from([(9999, Bytes::from_static(b"future"))])
    } else {
        BTreeMap::new()
    }
}

/// A response of `api` at `version` naming the upstream brokers, encoded; `None` for APIs not rewritten.
fn sample(api: ApiKey, version: i16) -> Bytes {
    let flexible = api.response_header_version(version) >= 1;
    match api {
        ApiKey::Metadata => {
            let partition = MetadataResponsePartition::default()
                .with_partition_index(0)
                .with_leader_id(BrokerId(2))
                .with_replica_nodes(vec![BrokerId(1), BrokerId(2), BrokerId(3)])
                .with_isr_nodes(vec![BrokerId(2), BrokerId(3)]);
            let topic = MetadataResponseTopic::default()
                .with_name(Some(TopicName(s("orders"))))
                .with_partitions(vec![partition]);
            let brokers = UPSTREAM
                .iter()
                .map(|(id, h, p)| {
                    MetadataResponseBroker::default()
                        .with_node_id(BrokerId(*id))
                        .with_host(s(h))
                        .with_port(*p)
                })
                .collect();
            let m = MetadataResponse::default()
                .with_brokers(brokers)
                .with_topics(vec![topic])
                .with_unknown_tagged_fields(unknown_tag(flexible));
            encode(&m, version)
        }
        ApiKey::FindCoordinator if version < 4 => {
            let m = FindCoordinatorResponse::default()
                .with_node_id(BrokerId(2))
                .with_host(s("kafka-2.internal"))
                .with_port(9094);
            encode(&m.with_unknown_tagged_fields(unknown_tag(flexible)), version)
        }
        ApiKey::FindCoordinator => {
            let coordinators = vec![
                Coordinator::default()
                    .with_key(s("group-a"))
                    .with_node_id(BrokerId(1))
                    .with_host(s("10.0.0.1"))
                    .with_port(9093),
                // A failed lookup: no node, no address. Must stay that way.
                Coordinator::default()
                    .with_key(s("group-b"))
                    .with_node_id(BrokerId(-1))
                    .with_port(-1)
                    .with_error_code(15),
            ];
            encode(&FindCoordinatorResponse::default().with_coordinators(coordinators), version)
        }
        ApiKey::DescribeCluster => {
            let brokers = UPSTREAM
                .iter()
                .map(|(id, h, p)| {
                    DescribeClusterBroker::default()
                        .with_broker_id(BrokerId(*id))
                        .with_host(s(h))
                        .with_port(*p)
                })
                .collect();
            let m = DescribeClusterResponse::default().with_cluster_id(s("c1")).with_brokers(brokers);
            encode(&m, version)
        }
        ApiKey::Produce => {
            let e = ProduceEndpoint::default().with_node_id(BrokerId(3)).with_host(s("::1")).with_port(9095);
            encode(&ProduceResponse::default().with_node_endpoints(vec![e]), version)
        }
        ApiKey::Fetch => {
            let e = FetchEndpoint::default().with_node_id(BrokerId(3)).with_host(s("::1")).with_port(9095);
            encode(&FetchResponse::default().with_node_endpoints(vec![e]), version)
        }
        ApiKey::ShareFetch => {
            let e = ShareFetchEndpoint::default()
                .with_node_id(BrokerId(1))
                .with_host(s("10.0.0.1"))
                .with_port(9093);
            encode(&ShareFetchResponse::default().with_node_endpoints(vec![e]), version)
        }
        ApiKey::ShareAcknowledge => {
            let e = ShareAckEndpoint::default()
                .with_node_id(BrokerId(1))
                .with_host(s("10.0.0.1"))
                .with_port(9093);
            encode(&ShareAcknowledgeResponse::default().with_node_endpoints(vec![e]), version)
        }
        other => panic!("no sample for {other:?}"),
    }
}

/// Puts the upstream addresses back into a rewritten response, by node id.
fn restore(api: ApiKey, version: i16, rewritten: &Bytes) -> Bytes {
    let back = |id: i32, host: &mut StrBytes, port: &mut i32| {
        if let Some((_, h, p)) = UPSTREAM.iter().find(|(n, _, _)| *n == id) {
            *host = s(h);
            *port = *p;
        }
    };
    let mut b = rewritten.clone();
    match api {
        ApiKey::Metadata => {
            let mut m = MetadataResponse::decode(&mut b, version).expect("decodes");
            m.brokers.iter_mut().for_each(|x| back(x.node_id.0, &mut x.host, &mut x.port));
            encode(&m, version)
        }
        ApiKey::FindCoordinator => {
            let mut m = FindCoordinatorResponse::decode(&mut b, version).expect("decodes");
            back(m.node_id.0, &mut m.host, &mut m.port);
            m.coordinators.iter_mut().for_each(|x| back(x.node_id.0, &mut x.host, &mut x.port));
            encode(&m, version)
        }
        ApiKey::DescribeCluster => {
            let mut m = DescribeClusterResponse::decode(&mut b, version).expect("decodes");
            m.brokers.iter_mut().for_each(|x| back(x.broker_id.0, &mut x.host, &mut x.port));
            encode(&m, version)
        }
        ApiKey::Produce => {
            let mut m = ProduceResponse::decode(&mut b, version).expect("decodes");
            m.node_endpoints.iter_mut().for_each(|x| back(x.node_id.0, &mut x.host, &mut x.port));
            encode(&m, version)
        }
        ApiKey::Fetch => {
            let mut m = FetchResponse::decode(&mut b, version).expect("decodes");
            m.node_endpoints.iter_mut().for_each(|x| back(x.node_id.0, &mut x.host, &mut x.port));
            encode(&m, version)
        }
        ApiKey::ShareFetch => {
            let mut m = ShareFetchResponse::decode(&mut b, version).expect("decodes");
            m.node_endpoints.iter_mut().for_each(|x| back(x.node_id.0, &mut x.host, &mut x.port));
            encode(&m, version)
        }
        ApiKey::ShareAcknowledge => {
            let mut m = ShareAcknowledgeResponse::decode(&mut b, version).expect("decodes");
            m.node_endpoints.iter_mut().for_each(|x| back(x.node_id.0, &mut x.host, &mut x.port));
            encode(&m, version)
        }
        other => panic!("no restore for {other:?}"),
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn every_version_rewrites_exactly() {
    let adv = Advertise::new("acme", "kaas.localhost", 9092);
    let mut golden = String::new();
    // DescribeConfigs names no endpoint: its redaction has its own test below.
    let cases = rewritten_versions().into_iter().filter(|(api, _)| *api != ApiKey::DescribeConfigs);
    let cases: Vec<_> = cases.collect();
    assert!(cases.len() > 30, "expected every version of seven APIs, got {}", cases.len());
    for (api, version) in cases {
        let original = sample(api, version);
        let out = rewrite_response(api, version, &original, &adv)
            .unwrap_or_else(|e| panic!("{api:?} v{version}: {e}"));
        let body =
            out.body.unwrap_or_else(|| panic!("{api:?} v{version}: named brokers but was not rewritten"));
        for (_, host, _) in UPSTREAM {
            assert!(!contains(&body, host.as_bytes()), "{api:?} v{version}: upstream host {host} leaked");
        }
        assert!(contains(&body, b".acme.kaas.localhost"), "{api:?} v{version}: no proxy name");
        // The leak check the proxy runs on every rewritten response: silent on ours, loud on the broker's.
        assert_eq!(foreign_endpoints(api, version, &body, &adv).expect("walks"), 0, "{api:?} v{version}");
        let upstream = foreign_endpoints(api, version, &original, &adv).expect("walks");
        assert!(upstream >= 1, "{api:?} v{version}: the broker's own endpoints count as foreign");
        let elsewhere = Advertise::new("beta", "kaas.localhost", 9092);
        assert_eq!(
            foreign_endpoints(api, version, &body, &elsewhere).expect("walks"),
            upstream,
            "{api:?} v{version}: another tenant's names are foreign too"
        );
        assert_eq!(restore(api, version, &body), original, "{api:?} v{version}: more than addresses changed");
        for (id, addr) in &out.learned {
            let (_, h, p) = UPSTREAM.iter().find(|(n, _, _)| n == id).expect("learned a known node");
            assert_eq!((addr.host.as_str(), i32::from(addr.port)), (*h, *p), "{api:?} v{version}");
        }
        assert!(!out.learned.is_empty(), "{api:?} v{version}: nothing learned");
        writeln!(golden, "{api:?} v{version} {}", hex(&body)).expect("string write");
    }
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/rewrite.golden");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &golden).expect("write golden");
    }
    let want = std::fs::read_to_string(&path).expect("testdata/rewrite.golden (UPDATE_GOLDEN=1 creates it)");
    for (got, want) in golden.lines().zip(want.lines()) {
        assert_eq!(got, want, "golden mismatch");
    }
    assert_eq!(golden.lines().count(), want.lines().count(), "golden line count");
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn responses_without_brokers_pass_unchanged() {
    let adv = Advertise::new("acme", "kaas.localhost", 9092);
    for (api, version) in [(ApiKey::Produce, 11), (ApiKey::Fetch, 17)] {
        let empty = match api {
            ApiKey::Produce => encode(&ProduceResponse::default(), version),
            _ => encode(&FetchResponse::default().with_session_id(7), version),
        };
        let out = rewrite_response(api, version, &empty, &adv).expect("decodes");
        assert_eq!(out, Rewritten::default(), "{api:?} v{version}");
    }
}

#[test]
fn truncated_or_trailing_bytes_are_errors() {
    let adv = Advertise::new("acme", "kaas.localhost", 9092);
    let full = sample(ApiKey::Metadata, 12);
    assert!(rewrite_response(ApiKey::Metadata, 12, &full.slice(..full.len() - 3), &adv).is_err());
    let mut extra = BytesMut::from(&full[..]);
    extra.extend_from_slice(b"zz");
    assert!(rewrite_response(ApiKey::Metadata, 12, &extra.freeze(), &adv).is_err());
    assert!(matches!(
        rewrite_response(ApiKey::JoinGroup, 5, &full, &adv),
        Err(ResponseError::Rewrite(RewriteError::NotRewritten { api: ApiKey::JoinGroup }))
    ));
}

#[test]
fn controller_endpoints_are_renamed_but_not_learned() {
    let adv = Advertise::new("acme", "kaas.localhost", 9092);
    let b = DescribeClusterBroker::default()
        .with_broker_id(BrokerId(9))
        .with_host(s("controller-9"))
        .with_port(9090);
    let m = DescribeClusterResponse::default().with_endpoint_type(2).with_brokers(vec![b]);
    let out = rewrite_response(ApiKey::DescribeCluster, 2, &encode(&m, 2), &adv).expect("rewrites");
    assert!(out.learned.is_empty());
    assert!(!contains(&out.body.expect("renamed"), b"controller-9"));
}

/// The responses Apache Kafka 4.4 itself wrote in the `kafka_wire` end-to-end test, kept as fuzz seeds
/// (`proxy/fuzz/captured/broker_response/`, re-captured with `KAAS_CAPTURE_SEEDS`): the walker reads every
/// one, its rewrite names only the proxy's brokers and is stable under a second rewrite, and between them
/// they cover every API the proxy rewrites.
#[test]
fn real_broker_responses_rewrite_cleanly() {
    use crate::kafka::testkit::check_idempotent;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/captured/broker_response");
    let cases = rewritten_versions();
    let adv = Advertise::new("acme", "kaas.localhost", 9092);
    let mut apis = std::collections::BTreeSet::new();
    let mut read = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("entry").path();
        let seed = std::fs::read(&path).expect("seed");
        let (&pick, body) = seed.split_first().expect("a pick byte");
        let Some(&(api, version)) = cases.get(usize::from(pick)) else { continue }; // ApiVersions
        let name = path.display();
        assert!(check_idempotent(api, version, body), "{name}: {api:?} v{version} not walkable");
        let rewritten = rewrite_response(api, version, body, &adv).expect("walkable");
        let new = rewritten.body.unwrap_or_else(|| Bytes::copy_from_slice(body));
        assert_eq!(foreign_endpoints(api, version, &new, &adv).expect("walkable"), 0, "{name}");
        if api == ApiKey::DescribeConfigs {
            // The brokers listened on 127.0.0.1: their listener configurations said so, and no longer do.
            assert!(contains(body, b"127.0.0.1") && !contains(&new, b"127.0.0.1"), "{name}");
        }
        apis.insert(format!("{api:?}"));
        read += 1;
    }
    let expected = ["DescribeCluster", "DescribeConfigs", "Fetch", "FindCoordinator", "Metadata"];
    assert_eq!(apis.iter().map(String::as_str).collect::<Vec<_>>(), expected, "{read} seeds");
}

/// DescribeConfigs of a broker, every version: the values of its listener, quorum and `listener.name.*`
/// configurations (and their synonyms) become null and sensitive, exactly as kafka-protocol encodes that;
/// every other configuration, sensitive or not, and every other byte stay as the broker wrote them. Redacted
/// once, a response has nothing left to redact.
#[test]
fn describe_configs_hides_the_brokers_listeners_and_quorum_in_every_version() {
    use kafka_protocol::messages::describe_configs_response::{
        DescribeConfigsResourceResult as Config, DescribeConfigsResult, DescribeConfigsSynonym as Synonym,
    };
    use kafka_protocol::messages::DescribeConfigsResponse;
    let adv = Advertise::new("acme", "kaas.localhost", 9092);
    let config = |name: &str, value: Option<&str>, synonyms: Vec<Synonym>| {
        Config::default()
            .with_name(s(name))
            .with_value(value.map(s))
            .with_config_source(1)
            .with_synonyms(synonyms)
    };
    let synonym = |name: &str, value: &str| Synonym::default().with_name(s(name)).with_value(Some(s(value)));
    let response = |configs: Vec<Config>| {
        let result = DescribeConfigsResult::default()
            .with_resource_type(4)
            .with_resource_name(s("11"))
            .with_configs(configs);
        DescribeConfigsResponse::default().with_results(vec![result])
    };
    let listeners = "PLAIN://10.0.0.1:9093,REPLICATION://kafka-2.internal:9091";
    let broker = |hide: bool| {
        let hidden = |value: &'static str| (!hide).then_some(value);
        response(vec![
            config(
                "advertised.listeners",
                hidden(listeners),
                vec![synonym("advertised.listeners", listeners)],
            )
            .with_is_sensitive(hide),
            config("listener.name.replication.ssl.keystore.location", hidden("/tmp/r.p12"), vec![])
                .with_is_sensitive(hide),
            config("controller.quorum.voters", hidden("1@10.0.0.1:9090"), vec![]).with_is_sensitive(hide),
            config("num.partitions", Some("3"), vec![synonym("num.partitions", "1")]),
            // Kafka hides a password itself; the proxy leaves that as it came.
            config("ssl.key.password", None, vec![]).with_is_sensitive(true),
        ])
    };
    let mut want = broker(true);
    want.results[0].configs[0].synonyms[0].value = None;
    for version in 1..=4 {
        let original = encode(&broker(false), version);
        let out = rewrite_response(ApiKey::DescribeConfigs, version, &original, &adv).expect("walks");
        let body = out.body.unwrap_or_else(|| panic!("v{version}: nothing redacted"));
        assert_eq!(body, encode(&want, version), "v{version}");
        for secret in ["10.0.0.1", "kafka-2.internal", "9093", "/tmp/r.p12"] {
            assert!(!contains(&body, secret.as_bytes()), "v{version}: {secret}");
        }
        assert!(out.learned.is_empty(), "v{version}: configuration values are not routes");
        let again = rewrite_response(ApiKey::DescribeConfigs, version, &body, &adv).expect("walks");
        assert_eq!(again.body, None, "v{version}: a redacted response has nothing left to redact");
        // Topics and brokers whose configurations name no listener pass untouched.
        let plain = encode(&response(vec![config("retention.ms", Some("1"), vec![])]), version);
        let out = rewrite_response(ApiKey::DescribeConfigs, version, &plain, &adv).expect("walks");
        assert_eq!(out.body, None, "v{version}");
    }
}
