//! The tables against the cases their upstream sources spell out.

use serde_json::json;

use super::certificates::{Cluster, Node};
use super::config::is_forbidden;
use super::versions::{self, RELEASES};
use super::*;

#[test]
fn each_release_runs_its_default_and_refuses_the_rest() {
    for r in RELEASES {
        assert!(r.kafka.contains(&r.default), "{}: default {} not supported", r.strimzi, r.default);
        assert_eq!(check_versions(r.strimzi, r.default), Ok(()));
    }
    let cases = [
        ("1.2.0", "4.3.1", true),
        ("1.2.0", "4.2.0", true),
        ("1.2.0", "4.1.0", false),
        ("1.2.0", "4.1.2", false),
        ("1.2.0", "4.4.0", false),
        ("1.1.0", "4.3.1", false),
        ("1.0.1", "4.1.0", true),
    ];
    for (strimzi, kafka, ok) in cases {
        assert_eq!(check_versions(strimzi, kafka).is_ok(), ok, "Strimzi {strimzi} with Kafka {kafka}");
    }
    let err = check_versions("1.2.0", "4.1.0").expect_err("refused").to_string();
    assert_eq!(err, "Kafka 4.1.0 is not supported by Strimzi 1.2.0 (it runs 4.2.0, 4.2.1, 4.3.0, 4.3.1)");
    let unknown = check_versions("9.9.9", "4.3.1").expect_err("refused").to_string();
    assert!(unknown.contains("9.9.9") && unknown.contains("1.2.0"), "{unknown}");
    assert_eq!(versions::release("1.2.0").map(|r| r.default), Some("4.3.1"));
}

#[test]
fn strimzi_drops_the_config_it_sets_itself() {
    let listeners = [("tls", 9093), ("proxy", 9094)];
    let cases = [
        ("log.retention.hours", false),
        ("min.insync.replicas", false),
        ("auto.create.topics.enable", false),
        ("num.partitions", false),
        ("listeners", true),
        ("advertised.listeners", true),
        ("broker.rack", true),
        ("broker.session.timeout.ms", false),
        ("ssl.cipher.suites", false),
        ("ssl.keystore.location", true),
        ("SSL.keystore.location", true),
        ("super.users", true),
        ("authorizer.class.name", true),
        ("controller.quorum.voters", true),
        ("controller.quorum.fetch.timeout.ms", false),
        ("node.id", true),
        ("port", true),
        ("listener.name.proxy-9094.max.connections", false),
        ("listener.name.proxy-9095.max.connections", true),
        ("listener.name.proxy-9094.ssl.client.auth", true),
        ("cruise.control.metrics.topic", true),
        ("cruise.control.metrics.topic.num.partitions", false),
    ];
    for (key, forbidden) in cases {
        assert_eq!(is_forbidden(key, &listeners), forbidden, "{key}");
    }
}

#[test]
fn super_users_are_strimzis_own_components() {
    let users = super_users("kaas");
    assert_eq!(users[0], "User:CN=kaas-kafka,O=io.strimzi");
    assert!(users.contains(&"User:CN=cluster-operator,O=io.strimzi".to_owned()));
    assert_eq!(users.len(), 6);
    assert!(users.iter().all(|u| u.ends_with(",O=io.strimzi")));
    assert!(!users.contains(&tls_user_principal("kaas-kafka")), "a KafkaUser's subject has no O=");
}

fn kafka(listeners: serde_json::Value) -> Cluster {
    Cluster::of(
        &json!({ "metadata": { "name": "kaas" }, "spec": { "kafka": { "listeners": listeners } } }),
        "kafka",
    )
    .expect("listeners parse")
}

fn lb(service: &str) -> String {
    format!("{service}.elb.example")
}

#[test]
fn broker_certificates_name_services_load_balancers_and_alternative_names_only() {
    let node = Node { id: 3, pool: "brokers".into() };
    let internal = json!({ "name": "tls", "port": 9093, "type": "internal", "tls": true });
    let plain =
        kafka(json!([internal, { "name": "proxy", "port": 9094, "type": "loadbalancer", "tls": true }]));
    let names = plain.broker_certificate_names(&node, &lb).expect("modelled");
    for expected in [
        "kaas-kafka-bootstrap",
        "kaas-kafka-bootstrap.kafka",
        "kaas-kafka-bootstrap.kafka.svc",
        "kaas-kafka-bootstrap.kafka.svc.cluster.local",
        "kaas-kafka-brokers.kafka.svc",
        "kaas-brokers-3.kaas-kafka-brokers.kafka.svc",
        "kaas-brokers-3.kaas-kafka-brokers.kafka.svc.cluster.local",
        "kaas-kafka-proxy-bootstrap.elb.example",
        "kaas-brokers-proxy-3.elb.example",
    ] {
        assert!(names.contains(expected), "{expected} missing from {names:?}");
    }
    assert!(!names.contains("kaas-brokers-proxy-4.elb.example"), "another broker's load balancer");
    assert_eq!(names.len(), 12, "{names:?}");

    let published = "kafka-bootstrap.t.internal.kaas.dev";
    let named = kafka(json!([internal, { "name": "proxy", "port": 9094, "type": "loadbalancer", "tls": true,
        "configuration": { "bootstrap": { "alternativeNames": [published] } } }]));
    let names = named.broker_certificate_names(&node, &lb).expect("modelled");
    assert!(names.contains(published));
    let l = &named.listeners[1];
    assert_eq!(named.advertised_host(l, &node, &lb), Ok("kaas-brokers-proxy-3.elb.example".into()));
    assert_eq!(named.bootstrap_host(l, &lb), Ok("kaas-kafka-proxy-bootstrap.elb.example".into()));
    assert_eq!(
        named.advertised_host(&named.listeners[0], &node, &lb),
        Ok("kaas-brokers-3.kaas-kafka-brokers.kafka.svc".into())
    );

    let advertised = kafka(json!([{ "name": "proxy", "port": 9094, "type": "loadbalancer", "tls": true,
        "configuration": { "advertisedHostTemplate": "b{nodeId}.example" } }]));
    let l = &advertised.listeners[0];
    assert_eq!(advertised.advertised_host(l, &node, &lb), Ok("b3.example".into()));
    assert!(advertised.broker_certificate_names(&node, &lb).expect("modelled").contains("b3.example"));

    let nodeport = kafka(json!([{ "name": "np", "port": 9094, "type": "nodeport", "tls": true }]));
    assert!(nodeport.broker_certificate_names(&node, &lb).is_err(), "outside the model: said, not guessed");
}

#[test]
fn a_kafka_serves_when_ready_for_its_generation_with_the_listeners_address() {
    let with = |status: serde_json::Value| json!({ "metadata": { "generation": 2 }, "status": status });
    let listeners = json!([{ "name": "proxy", "addresses": [{ "host": "lb.example", "port": 9094 }] }]);
    let ready = json!([{ "type": "Ready", "status": "True" }]);
    let cases = [
        (json!({ "metadata": { "generation": 2 } }), Err("Strimzi has written no status yet")),
        (
            with(json!({ "observedGeneration": 1, "conditions": ready, "listeners": listeners })),
            Err("Strimzi has not reconciled generation 2 yet (observed: 1)"),
        ),
        (
            with(
                json!({ "observedGeneration": 2, "listeners": listeners, "conditions": [{ "type": "NotReady",
                "status": "True", "reason": "UnsupportedKafkaVersionException",
                "message": "Unsupported Kafka.spec.kafka.version: 4.1.0" }] }),
            ),
            Err("not Ready: Unsupported Kafka.spec.kafka.version: 4.1.0"),
        ),
        (
            with(json!({ "observedGeneration": 2, "conditions": ready })),
            Err("Ready, but listener proxy has no address yet"),
        ),
        (
            with(json!({ "observedGeneration": 2, "conditions": ready, "listeners": listeners })),
            Ok("lb.example:9094"),
        ),
    ];
    for (kafka, expected) in cases {
        let expected = expected.map(str::to_owned).map_err(str::to_owned);
        assert_eq!(status::serving(&kafka, "proxy"), expected, "{kafka}");
    }
    let other = with(json!({ "observedGeneration": 2, "conditions": ready, "listeners": listeners }));
    assert!(status::serving(&other, "tls").is_err(), "another listener's address is not the proxy's");
}
