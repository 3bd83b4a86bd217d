//! Four principals produce and consume known volumes on four topics of one Apache Kafka cluster through the
//! proxy, across a reload of its configuration and an outage of the records' file; the usage records, summed,
//! hold exactly what the clients counted: records per principal, topic and direction, and record-set bytes that
//! are the same on the way in and on the way out. Mutual TLS, `identity: client`; librdkafka clients (topics by
//! name) and Kafka's console tools (Java: Produce and Fetch name topics by id, named again from Metadata).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kaas_e2e::certs::Certs;
use kaas_e2e::kafka::{ClusterOptions, KafkaCluster, Version};
use kaas_e2e::matrix::cli_tools::Tools;
use kaas_e2e::proxy::ProxyHandle;
use kaas_e2e::DOMAIN;
use rdkafka::config::ClientConfig;
use serde_json::Value;

use crate::common::{self, consume, produce};

/// The records' settings: two-second windows, so a test sees several.
const USAGE: &str = "usage: { file: usage.jsonl, interval_seconds: 2, replica: proxy-test }\n";

fn tenant_yaml(cluster: &KafkaCluster) -> String {
    format!(
        "  - name: meter\n    bootstrap: [\"{}\"]\n    client_ca: {}\n    upstream:\n      tls: {{ ca: {} }}\n      \
         identity: client\n      clients_ca_key: {}\n    principal_mapping_rules: \"RULE:^CN=(.*?)$/$1/L,DEFAULT\"\n",
        cluster.bootstrap_tls(),
        cluster.clients_ca_pem().display(),
        cluster.cluster_ca_pem().display(),
        cluster.clients_ca_key().display(),
    )
}

fn client(proxy: &ProxyHandle, certs: &Certs, cert: &(PathBuf, PathBuf)) -> ClientConfig {
    let mut c = common::client_config(&proxy.bootstrap("meter"), &certs.ca);
    c.set("ssl.certificate.location", cert.0.to_string_lossy().as_ref())
        .set("ssl.key.location", cert.1.to_string_lossy().as_ref());
    c
}

/// Every record in the file and its rotations, oldest first.
fn records(dir: &Path) -> Vec<Value> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("config dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("usage.jsonl")))
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| std::fs::read_to_string(f).expect("readable"))
        .flat_map(|text| {
            let lines = text.lines().map(|l| serde_json::from_str(l).expect("one JSON object a line"));
            lines.collect::<Vec<Value>>()
        })
        .collect()
}

/// (principal, topic, direction) → (records, bytes), summed over every window.
type Totals = BTreeMap<(String, String, String), (u64, u64)>;

fn totals(records: &[Value]) -> Totals {
    let mut t = Totals::new();
    for r in records.iter().filter(|r| r["kind"] == "topic") {
        let key = (
            r["principal"].as_str().unwrap_or("-").to_owned(),
            r["topic"].as_str().unwrap_or("-").to_owned(),
            r["direction"].as_str().unwrap_or("-").to_owned(),
        );
        let e = t.entry(key).or_default();
        e.0 += r["records"].as_u64().expect("records");
        e.1 += r["bytes"].as_u64().expect("bytes");
    }
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_records_sum_to_what_each_principal_moved() {
    let cluster = KafkaCluster::start(ClusterOptions::named("usage").nodes(1)).expect("kafka");
    for (topic, partitions) in [("orders", 2), ("payments", 1), ("audit", 1), ("ledger", 1)] {
        cluster.create_topic(topic, partitions).expect("create topic");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = Certs::generate(dir.path(), DOMAIN, &["meter"]).expect("certs");
    let [alice, bob, carol, dave] =
        ["alice", "bob", "carol", "dave"].map(|u| cluster.client_cert(u).expect("client cert"));
    let tenants = tenant_yaml(&cluster);
    let proxy = ProxyHandle::start_with_config(&certs, USAGE, &tenants).expect("proxy");
    let (alice, bob, carol) =
        (client(&proxy, &certs, &alice), client(&proxy, &certs, &bob), client(&proxy, &certs, &carol));
    let work = tempfile::tempdir().expect("tempdir");
    let dave = Tools::new(Version::Latest, &proxy.bootstrap("meter"), &certs.ca, work.path())
        .and_then(|t| t.with_client_cert(&dave.0, &dave.1))
        .expect("dave's console tools");

    produce(&alice, "orders", "alice", 500, "all").await.expect("alice produces orders");
    produce(&alice, "payments", "alice", 300, "all").await.expect("alice produces payments");

    // A reload (a second tenant published) leaves the records of open and new sessions alone.
    let other = "  - { name: other, bootstrap: [\"127.0.0.1:1\"], upstream: { plaintext: true } }\n";
    proxy.rewrite_config(&certs, USAGE, &format!("{tenants}{other}")).expect("rewrite");
    let generation = proxy.wait_for_metric("kaas_proxy_routes_generation", 2.0, Duration::from_secs(10));
    assert_eq!(generation.expect("metrics"), 2.0, "reloaded");
    produce(&bob, "orders", "bob", 400, "all").await.expect("bob produces orders");

    // The file cannot be written for a while: a folder stands where it should be. Records wait in the queue.
    let file = proxy.config_dir.path().join("usage.jsonl");
    if file.exists() {
        std::fs::rename(&file, proxy.config_dir.path().join("usage.jsonl.0-before-outage")).expect("move it");
    }
    std::fs::create_dir(&file).expect("a folder in the file's place");
    produce(&bob, "audit", "bob", 200, "all").await.expect("bob produces audit");
    let seen =
        consume(&carol, "orders", "g-carol", 900, Duration::from_secs(60)).expect("carol consumes orders");
    assert_eq!(seen.len(), 900);
    let failed = proxy.wait_for_metric("kaas_proxy_usage_sink_errors_total", 1.0, Duration::from_secs(10));
    assert!(failed.expect("metrics") >= 1.0, "the file could not be written");
    std::fs::remove_dir(&file).expect("the outage ends");
    let seen = consume(&carol, "payments", "g-carol", 300, Duration::from_secs(60)).expect("carol consumes");
    assert_eq!(seen.len(), 300);
    let seen =
        consume(&alice, "audit", "g-alice", 200, Duration::from_secs(60)).expect("alice consumes audit");
    assert_eq!(seen.len(), 200);
    let lines: Vec<String> = (0..100).map(|i| format!("k{i}:dave-{i:04}")).collect();
    dave.produce("ledger", &lines).expect("dave produces ledger");
    let seen = dave.consume("ledger", "g-dave", 100, Duration::from_secs(20)).expect("dave consumes ledger");
    assert_eq!(seen, lines);

    // A graceful stop writes the open window.
    let metrics = proxy.metrics().expect("metrics");
    let mut proxy = proxy;
    proxy.stop_and_wait();
    let records = records(proxy.config_dir.path());

    let t = totals(&records);
    let key = |p: &str, topic: &str, d: &str| (p.to_owned(), topic.to_owned(), d.to_owned());
    let count = |p, topic, d| t.get(&key(p, topic, d)).map(|v| v.0);
    assert_eq!(count("alice", "orders", "produce"), Some(500), "{t:#?}");
    assert_eq!(count("alice", "payments", "produce"), Some(300));
    assert_eq!(count("bob", "orders", "produce"), Some(400));
    assert_eq!(count("bob", "audit", "produce"), Some(200));
    assert_eq!(count("carol", "orders", "fetch"), Some(900));
    assert_eq!(count("carol", "payments", "fetch"), Some(300));
    assert_eq!(count("alice", "audit", "fetch"), Some(200));
    assert_eq!(count("dave", "ledger", "produce"), Some(100), "by id, named: {t:#?}");
    assert_eq!(count("dave", "ledger", "fetch"), Some(100), "by id, named");
    for (who, topic, d) in t.keys() {
        assert!(
            matches!(
                (who.as_str(), topic.as_str(), d.as_str()),
                ("alice", "orders" | "payments", "produce")
                    | ("bob", "orders" | "audit", "produce")
                    | ("carol", "orders" | "payments", "fetch")
                    | ("alice", "audit", "fetch")
                    | ("dave", "ledger", "produce" | "fetch")
            ),
            "nobody moved {d} {topic} as {who}: {t:#?}"
        );
    }
    // The same batches go in and come out: bytes in equal bytes out, per topic; and they hold the values.
    let bytes = |p, topic, d| t[&key(p, topic, d)].1;
    assert_eq!(
        bytes("alice", "orders", "produce") + bytes("bob", "orders", "produce"),
        bytes("carol", "orders", "fetch")
    );
    assert_eq!(bytes("alice", "payments", "produce"), bytes("carol", "payments", "fetch"));
    assert_eq!(bytes("dave", "ledger", "produce"), bytes("dave", "ledger", "fetch"));
    assert_eq!(bytes("bob", "audit", "produce"), bytes("alice", "audit", "fetch"));
    let payload: u64 =
        (0..500).map(|i| (common::key(i).len() + common::value("alice", i).len()) as u64).sum();
    assert!(bytes("alice", "orders", "produce") > payload, "record sets hold keys and values, and framing");

    // Every principal's connections, numbered records without gaps or repeats, one replica.
    for who in ["alice", "bob", "carol", "dave"] {
        let seconds: f64 = records
            .iter()
            .filter(|r| r["kind"] == "connections" && r["principal"] == who)
            .map(|r| r["connection_seconds"].as_f64().expect("seconds"))
            .sum();
        assert!(seconds > 0.0, "{who}'s connections");
    }
    let mut sequences: Vec<u64> = records.iter().map(|r| r["sequence"].as_u64().expect("sequence")).collect();
    sequences.sort_unstable();
    assert_eq!(
        sequences,
        (1..=records.len() as u64).collect::<Vec<_>>(),
        "numbered from 1, none lost or repeated"
    );
    assert!(records.iter().all(|r| r["schema"] == "kaas.usage/v1" && r["replica"] == "proxy-test"));
    assert_eq!(kaas_e2e::proxy::sample(&metrics, "kaas_proxy_usage_records_dropped_total"), 0.0);
}
