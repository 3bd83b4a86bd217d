//! Python clients through kaas-proxy to a real Tansu: confluent-kafka (librdkafka) and pure-Python kafka-python.

use kaas_e2e::python::run_client;
use kaas_e2e::{SingleTenant, DOMAIN};
use serde_json::Value;

fn setup() -> (SingleTenant, String) {
    let s = SingleTenant::start().expect("tansu and proxy");
    let ca = s.certs.ca.to_string_lossy().into_owned();
    (s, ca)
}

/// Every produced record consumed once with identical key and value, offsets increasing per partition.
fn assert_round_trip(out: &Value, count: usize) {
    let produced = out["produced"].as_array().expect("produced");
    let consumed = out["consumed"].as_array().expect("consumed");
    assert!(produced.iter().all(|r| r.get("error").is_none()), "produce errors: {produced:?}");
    assert!(consumed.iter().all(|r| r.get("error").is_none()), "consume errors");
    assert_eq!((produced.len(), consumed.len()), (count, count));
    let key = |r: &Value| (r["key"].to_string(), r["value"].to_string());
    let mut want: Vec<_> = produced.iter().map(key).collect();
    let mut got: Vec<_> = consumed.iter().map(key).collect();
    want.sort();
    got.sort();
    assert!(want == got, "consumed records differ from produced ones");
    let mut last = std::collections::HashMap::new();
    for r in consumed {
        let (p, o) = (r["partition"].as_i64().expect("partition"), r["offset"].as_i64().expect("offset"));
        assert!(last.insert(p, o).is_none_or(|prev| prev < o), "partition {p} out of order");
    }
    // Per key, records arrive in the order they were produced.
    let order = |list: &[Value]| {
        let mut m: std::collections::HashMap<String, Vec<String>> = Default::default();
        list.iter().for_each(|r| m.entry(r["key"].to_string()).or_default().push(r["value"].to_string()));
        m
    };
    let mut by_partition_offset = consumed.clone();
    by_partition_offset.sort_by_key(|r| (r["partition"].as_i64(), r["offset"].as_i64()));
    assert_eq!(order(produced), order(&by_partition_offset), "per-key order");
}

fn roundtrip(client: &str, acks: &str) {
    let (s, ca) = setup();
    let bootstrap = s.bootstrap();
    let topic = format!("py-{client}-{acks}");
    let out = run_client(&[
        "roundtrip",
        "--client",
        client,
        "--bootstrap",
        &bootstrap,
        "--ca",
        &ca,
        "--topic",
        &topic,
        "--group",
        &format!("{topic}-g"),
        "--count",
        "2000",
        "--acks",
        acks,
    ])
    .expect("python client");
    assert_round_trip(&out, 2000);
}

#[test]
fn confluent_kafka_metadata_shows_only_proxy_names() {
    let (s, ca) = setup();
    let out = run_client(&["metadata", "--client", "confluent", "--bootstrap", &s.bootstrap(), "--ca", &ca])
        .expect("python client");
    let brokers = out["brokers"].as_array().expect("brokers");
    assert!(!brokers.is_empty());
    for b in brokers {
        assert_eq!(b["host"].as_str(), Some(format!("b{}.acme.{DOMAIN}", b["id"]).as_str()));
        assert_eq!(b["port"].as_u64(), Some(u64::from(s.proxy.port)));
    }
}

#[test]
fn confluent_kafka_round_trip_acks_all() {
    roundtrip("confluent", "all");
}

#[test]
fn kafka_python_round_trip_acks_all() {
    roundtrip("kafka-python", "all");
}

#[test]
fn confluent_kafka_round_trip_acks_0() {
    roundtrip("confluent", "0");
}

/// kafka-python with acks=0 stores nothing even talking to Tansu directly (checked without the proxy), so the
/// pure-Python client is exercised with acks=1 and acks=all.
#[test]
fn kafka_python_round_trip_acks_1() {
    roundtrip("kafka-python", "1");
}
