//! Kafka's command-line tools create, grow, configure and delete a topic and add and remove an ACL through the
//! proxy on a cluster that authorizes by ACL: as `admin` (a super user) each is allowed; `bob` (no ACL) asks to
//! create a topic and the broker refuses. The audit trail names each request with what it named and the broker's answer, each session
//! with its principal, TLS and certificate, and a refused connection with its tenant and reason; and nothing
//! secret (a config value) is written.

use std::path::Path;
use std::time::Duration;

use kaas_e2e::certs::Certs;
use kaas_e2e::kafka::{ClusterOptions, KafkaCluster, Version};
use kaas_e2e::matrix::cli_tools::Tools;
use kaas_e2e::proxy::ProxyHandle;
use kaas_e2e::{raw, DOMAIN};
use serde_json::Value;

fn tenant_yaml(cluster: &KafkaCluster) -> String {
    format!(
        "  - name: audited\n    bootstrap: [\"{}\"]\n    client_ca: {}\n    upstream:\n      tls: {{ ca: {} }}\n      \
         identity: client\n      clients_ca_key: {}\n    principal_mapping_rules: \"RULE:^CN=(.*?)$/$1/L,DEFAULT\"\n",
        cluster.bootstrap_tls(),
        cluster.clients_ca_pem().display(),
        cluster.cluster_ca_pem().display(),
        cluster.clients_ca_key().display(),
    )
}

fn events(dir: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(dir.join("audit.jsonl")).expect("the audit file");
    text.lines().map(|l| serde_json::from_str(l).expect("one JSON object a line")).collect()
}

/// The administrative events of `api` by `principal`: (resource type, name, broker's error) of each resource.
fn admin(events: &[Value], api: &str, principal: &str) -> Vec<(String, String, String)> {
    events
        .iter()
        .filter(|e| e["type"] == "io.kaas.proxy.admin.v1" && e["data"]["api"] == api)
        .filter(|e| e["data"]["principal"] == principal)
        .flat_map(|e| e["data"]["resources"].as_array().cloned().unwrap_or_default())
        .map(|r| {
            let s = |v: &Value| v.as_str().unwrap_or("-").to_owned();
            (s(&r["type"]), s(&r["name"]), s(&r["outcome"]["error"]))
        })
        .collect()
}

fn resource(kind: &str, name: &str, error: &str) -> (String, String, String) {
    (kind.into(), name.into(), error.into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn administrative_requests_are_audited_with_the_brokers_answer() {
    let cluster = KafkaCluster::start(ClusterOptions::named("audit").nodes(1).authorizer()).expect("kafka");
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = Certs::generate(dir.path(), DOMAIN, &["audited"]).expect("certs");
    let audit = "audit: { file: audit.jsonl, replica: proxy-test }\n";
    let mut proxy = ProxyHandle::start_with_config(&certs, audit, &tenant_yaml(&cluster)).expect("proxy");
    let tools = |user: &str| {
        let cert = cluster.client_cert(user).expect("client cert");
        let work = dir.path().join(user);
        std::fs::create_dir_all(&work).expect("work dir");
        Tools::new(Version::Latest, &proxy.bootstrap("audited"), &certs.ca, &work)
            .and_then(|t| t.with_client_cert(&cert.0, &cert.1))
            .expect("tools")
    };
    let (admin_tools, bob_tools) = (tools("admin"), tools("bob"));

    admin_tools
        .topics(&["--create", "--topic", "orders", "--partitions", "1", "--replication-factor", "1"])
        .expect("create");
    let denied = bob_tools.topics(&[
        "--create",
        "--topic",
        "secret",
        "--partitions",
        "1",
        "--replication-factor",
        "1",
    ]);
    assert!(denied.is_err(), "bob may not create topics");
    admin_tools.topics(&["--alter", "--topic", "orders", "--partitions", "2"]).expect("grow");
    admin_tools
        .configs(&[
            "--alter",
            "--entity-type",
            "topics",
            "--entity-name",
            "orders",
            "--add-config",
            "retention.ms=86400000",
        ])
        .expect("configure");
    let acl = ["--topic", "orders", "--operation", "Read", "--allow-principal", "User:CN=bob"];
    admin_tools.acls(&[&["--add"][..], &acl].concat()).expect("add an ACL");
    admin_tools.acls(&[&["--remove", "--force"][..], &acl].concat()).expect("remove the ACL");
    admin_tools.topics(&["--delete", "--topic", "orders"]).expect("delete");
    // A client without a certificate for the tenant that requires one: refused, named.
    // (TLS 1.3: the client's side of the handshake ends before the proxy's refusal reaches it.)
    let name = format!("audited.{DOMAIN}");
    let _ = raw::connect_as(proxy.port, Some(&name), &certs.ca, None).await;
    let series = "kaas_proxy_listener_refused_total{reason=\"client_cert_missing\"}";
    assert_eq!(proxy.wait_for_metric(series, 1.0, Duration::from_secs(10)).expect("metrics"), 1.0);

    proxy.stop_and_wait();
    let events = events(proxy.config_dir.path());

    assert_eq!(admin(&events, "CreateTopics", "admin"), [resource("topic", "orders", "NONE")], "{events:#?}");
    assert_eq!(
        admin(&events, "CreateTopics", "bob"),
        [resource("topic", "secret", "TOPIC_AUTHORIZATION_FAILED")]
    );
    assert_eq!(admin(&events, "CreatePartitions", "admin"), [resource("topic", "orders", "NONE")]);
    assert_eq!(
        admin(&events, "IncrementalAlterConfigs", "admin"),
        [resource("topic_config", "orders", "NONE")]
    );
    let orders = "TOPIC:LITERAL:orders";
    assert_eq!(admin(&events, "CreateAcls", "admin"), [resource("acl", orders, "NONE")]);
    assert_eq!(admin(&events, "DeleteAcls", "admin"), [resource("acl_filter", orders, "NONE")]);
    assert_eq!(admin(&events, "DeleteTopics", "admin"), [resource("topic", "orders", "NONE")]);
    let acl_event = events.iter().find(|e| e["data"]["api"] == "CreateAcls").expect("an ACL event");
    assert_eq!(
        acl_event["data"]["resources"][0]["detail"],
        serde_json::json!({ "principal": "User:CN=bob", "host": "*", "operation": "READ", "permission": "ALLOW" })
    );
    let configured =
        events.iter().find(|e| e["data"]["api"] == "IncrementalAlterConfigs").expect("a config event");
    let text = configured.to_string();
    assert!(
        text.contains("SET retention.ms") && !text.contains("86400000"),
        "the config's name, never its value: {text}"
    );

    // Sessions: each principal's, with TLS and its certificate; CloudEvents' required attributes on all.
    let sessions: Vec<&Value> =
        events.iter().filter(|e| e["type"] == "io.kaas.proxy.session.authenticated.v1").collect();
    for who in ["admin", "bob"] {
        let s = sessions.iter().find(|e| e["data"]["principal"] == who).expect("a session event");
        assert_eq!(s["subject"], "audited");
        assert_eq!(s["data"]["tls_version"], "TLSv1_3");
        assert_eq!(s["data"]["certificate"]["subject"], format!("CN={who}"));
        assert!(s["data"]["certificate"]["serial"].as_str().is_some_and(|x| !x.is_empty()));
        assert!(s["data"]["certificate"]["not_after"].as_str().is_some_and(|x| x.ends_with('Z')));
    }
    let refused = events.iter().find(|e| e["type"] == "io.kaas.proxy.session.refused.v1").expect("a refusal");
    assert_eq!(
        (&refused["data"]["tenant"], &refused["data"]["reason"]),
        (&Value::from("audited"), &Value::from("client_cert_missing"))
    );
    for e in &events {
        assert_eq!(e["specversion"], "1.0");
        assert_eq!(e["source"], "kaas-proxy/proxy-test");
        assert!(e["id"].as_str().is_some_and(|id| id.starts_with("proxy-test-")), "{e}");
        assert!(e["time"].as_str().is_some_and(|t| t.ends_with('Z')), "{e}");
    }
}
