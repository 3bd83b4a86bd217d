//! The real-Kafka fixture itself (`kaas_e2e::kafka`), with librdkafka as the client: clusters come up with
//! the node ids and addresses they advertise, the TLS listener takes only clients its clients CA signed,
//! leaders move off killed and stopped brokers, which come back, 3.x runs too, two clusters side by side
//! know nothing of each other, ACLs decide what certificate and SCRAM principals may do, and SCRAM users log
//! in over SASL_SSL.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use kaas_e2e::kafka::{Acl, AclOperation, AclResource, ClusterOptions, KafkaCluster, Listener, Version};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};
use time::OffsetDateTime;

/// librdkafka over the cluster's TLS listener, presenting `user`'s certificate from the clients CA.
fn tls_client(cluster: &KafkaCluster, user: &str) -> ClientConfig {
    tls_client_with(cluster, cluster.client_cert(user).expect("client certificate"))
}

/// librdkafka over the TLS listener with the certificate `cert` and its key.
fn tls_client_with(cluster: &KafkaCluster, (cert, key): (PathBuf, PathBuf)) -> ClientConfig {
    let mut c = client_config(&cluster.bootstrap_tls(), cluster.cluster_ca_pem());
    c.set("ssl.certificate.location", path(&cert)).set("ssl.key.location", path(&key));
    c
}

/// librdkafka over the cluster's SASL_SSL listener as SCRAM-SHA-512 user `user`.
fn sasl_client(cluster: &KafkaCluster, user: &str, password: &str) -> ClientConfig {
    let mut c = client_config(&cluster.bootstrap_sasl().expect("SASL listener"), cluster.cluster_ca_pem());
    c.set("security.protocol", "SASL_SSL")
        .set("sasl.mechanisms", "SCRAM-SHA-512")
        .set("sasl.username", user)
        .set("sasl.password", password);
    c
}

/// Sends one record to `topic` and returns why it was refused; librdkafka fails it as soon as the broker
/// answers with a permanent error such as an authorization failure (at the latest after 20 s).
async fn refused_produce(config: &ClientConfig, topic: &str) -> KafkaError {
    let producer: FutureProducer =
        config.clone().set("message.timeout.ms", "20000").create().expect("producer");
    let record = FutureRecord::<(), _>::to(topic).payload("refused?");
    match producer.send(record, Duration::ZERO).await {
        Ok(d) => panic!("delivered to {topic} at {}/{}", d.partition, d.offset),
        Err((e, _)) => e,
    }
}

/// The lines of the nodes' logs that contain every one of `words` (a client's request may have gone to any).
fn log_lines(cluster: &KafkaCluster, words: &[&str]) -> Vec<String> {
    let logs: Vec<String> = cluster
        .node_ids()
        .iter()
        .map(|&id| std::fs::read_to_string(cluster.log(id).expect("node")).expect("server.log"))
        .collect();
    let lines = logs.iter().flat_map(|log| log.lines());
    lines.filter(|l| words.iter().all(|w| l.contains(w))).map(str::to_owned).collect()
}

fn path(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

async fn create_replicated_topic(config: &ClientConfig, topic: &str, partitions: i32, replicas: i32) {
    let admin: AdminClient<DefaultClientContext> = config.create().expect("admin client");
    let topics = [NewTopic::new(topic, partitions, TopicReplication::Fixed(replicas))];
    for r in admin.create_topics(&topics, &AdminOptions::new()).await.expect("create topics") {
        r.unwrap_or_else(|(t, e)| panic!("create topic {t}: {e}"));
    }
}

/// (leader, in-sync replicas) of partition 0 of `topic`, as `config`'s cluster reports it.
fn leader_and_isr(config: &ClientConfig, topic: &str) -> (i32, BTreeSet<i32>) {
    let consumer: BaseConsumer = config.create().expect("client");
    let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(20)).expect("metadata");
    let p = &md.topics()[0].partitions()[0];
    (p.leader(), p.isr().iter().copied().collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_serve_mutual_tls_clients_at_their_advertised_addresses() {
    let cluster = KafkaCluster::start(ClusterOptions::named("three")).expect("kafka cluster");
    assert_eq!(cluster.node_ids(), [11, 12, 13]);

    // The fixture's own view, over each node's plaintext listener.
    for &id in cluster.node_ids() {
        let view = cluster.metadata(id).expect("metadata");
        assert_eq!(view.cluster_id.as_deref(), Some(cluster.cluster_id()));
        let plain: Vec<String> = view.brokers.iter().map(|(_, h, p)| format!("{h}:{p}")).collect();
        assert_eq!(plain, cluster.addrs(Listener::Plain), "node {id}'s view");
    }

    // A client's view over TLS: every broker at its own TLS address.
    let config = tls_client(&cluster, "alice");
    let consumer: BaseConsumer = config.create().expect("client");
    let md = consumer.fetch_metadata(None, Duration::from_secs(30)).expect("metadata over mutual TLS");
    let mut brokers: Vec<(i32, String)> =
        md.brokers().iter().map(|b| (b.id(), format!("{}:{}", b.host(), b.port()))).collect();
    brokers.sort();
    for (id, addr) in &brokers {
        assert_eq!(*addr, cluster.broker_addr(*id, Listener::Tls).expect("known node"), "broker {id}");
    }
    assert_eq!(brokers.iter().map(|b| b.0).collect::<Vec<_>>(), [11, 12, 13]);

    create_replicated_topic(&config, "orders", 3, 3).await;
    produce(&config, "orders", "tls", 2_000, "all").await.expect("produce over mutual TLS");
    let seen = consume(&config, "orders", "g-tls", 2_000, Duration::from_secs(60)).expect("consume");
    assert_same_records("tls", 2_000, &seen);

    // Without a client certificate the TLS listener refuses the handshake; the brokers say why.
    let anonymous = client_config(&cluster.bootstrap_tls(), cluster.cluster_ca_pem());
    let consumer: BaseConsumer = anonymous.create().expect("client");
    let refused = consumer.fetch_metadata(None, Duration::from_secs(3));
    assert!(
        refused.is_err(),
        "a client without a certificate got metadata: {:?}",
        refused.map(|m| m.orig_broker_id())
    );
    let logs: String = cluster
        .node_ids()
        .iter()
        .map(|&id| std::fs::read_to_string(cluster.log(id).expect("node")).unwrap_or_default())
        .collect();
    assert!(logs.contains("Failed authentication with /127.0.0.1"), "no failed authentication logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaders_move_when_brokers_are_killed_or_stopped_and_restarted_brokers_rejoin() {
    let mut cluster = KafkaCluster::start(ClusterOptions::named("restarts")).expect("kafka cluster");
    let config = tls_client(&cluster, "bob");
    create_replicated_topic(&config, "moves", 1, 3).await;
    produce(&config, "moves", "before", 300, "all").await.expect("produce before");
    let (leader, isr) = leader_and_isr(&config, "moves");
    assert_eq!(isr, BTreeSet::from([11, 12, 13]));

    cluster.kill_broker(leader).expect("kill the leader");
    let others: Vec<i32> = cluster.node_ids().iter().copied().filter(|&id| id != leader).collect();
    cluster.wait_for_brokers(&others, Duration::from_secs(60)).expect("leader fenced");
    // Two replicas left meet min.insync.replicas=2: acks=all still works, on a new leader.
    produce(&config, "moves", "during", 300, "all").await.expect("produce with a broker down");
    let (new_leader, _) = leader_and_isr(&config, "moves");
    assert!(others.contains(&new_leader), "leader {new_leader} after killing {leader}");

    cluster.restart_broker(leader).expect("restart");
    // The restarted broker catches up and is back in the ISR.
    let deadline = Instant::now() + Duration::from_secs(60);
    while leader_and_isr(&config, "moves").1.len() < 3 {
        assert!(Instant::now() < deadline, "node {leader} not back in the ISR");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // SIGTERM: a controlled shutdown hands the leadership over before the broker exits.
    let (leader, _) = leader_and_isr(&config, "moves");
    cluster.stop_broker(leader).expect("stop the leader");
    let others: Vec<i32> = cluster.node_ids().iter().copied().filter(|&id| id != leader).collect();
    cluster.wait_for_brokers(&others, Duration::from_secs(30)).expect("stopped broker gone");
    let (new_leader, _) = leader_and_isr(&config, "moves");
    assert!(others.contains(&new_leader), "leader {new_leader} after stopping {leader}");
    produce(&config, "moves", "after", 300, "all").await.expect("produce after the stop");
    cluster.restart_broker(leader).expect("restart after the stop");

    let seen = consume(&config, "moves", "g-moves", 900, Duration::from_secs(60)).expect("consume");
    let mut expected = BTreeSet::new();
    for run in ["before", "during", "after"] {
        expected.extend((0..300).map(|i| value(run, i)));
    }
    let got: BTreeSet<Vec<u8>> = seen.into_iter().map(|r| r.value).collect();
    assert_eq!(got.len(), 900, "distinct records consumed");
    assert!(
        got == expected,
        "records produced before, during and after the outages differ from those consumed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_3_single_node_serves_mutual_tls_clients() {
    let cluster = KafkaCluster::start(ClusterOptions::named("legacy").version(Version::Kafka3).nodes(1))
        .expect("kafka 3");
    assert_eq!(cluster.node_ids(), [11]);
    let view = cluster.metadata(11).expect("metadata");
    assert_eq!(view.brokers, [(11, "127.0.0.1".to_owned(), port_of(&cluster.addrs(Listener::Plain)[0]))]);
    let config = tls_client(&cluster, "carol");
    create_replicated_topic(&config, "legacy", 2, 1).await;
    produce(&config, "legacy", "v3", 500, "all").await.expect("produce");
    let seen = consume(&config, "legacy", "g-v3", 500, Duration::from_secs(60)).expect("consume");
    assert_same_records("v3", 500, &seen);
}

fn port_of(addr: &str) -> i32 {
    addr.rsplit(':').next().and_then(|p| p.parse().ok()).expect("host:port")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clusters_side_by_side_stay_apart() {
    let clusters = KafkaCluster::start_many(vec![
        ClusterOptions::named("tenant-a").nodes(1),
        ClusterOptions::named("tenant-b").nodes(1),
    ])
    .expect("two clusters");
    let [a, b] = &clusters[..] else { panic!("two clusters expected") };
    assert_ne!(a.cluster_id(), b.cluster_id());
    assert_ne!(a.bootstrap_tls(), b.bootstrap_tls());
    assert_eq!(a.metadata(11).expect("a").cluster_id.as_deref(), Some(a.cluster_id()));
    assert_eq!(b.metadata(11).expect("b").cluster_id.as_deref(), Some(b.cluster_id()));

    let config_a = tls_client(a, "dave");
    create_replicated_topic(&config_a, "only-in-a", 1, 1).await;
    produce(&config_a, "only-in-a", "a", 100, "all").await.expect("produce to a");

    // B trusts neither a's clients CA nor a's broker CA.
    let (cert, key) = a.client_cert("mallory").expect("a's client certificate");
    let mut foreign = client_config(&b.bootstrap_tls(), b.cluster_ca_pem());
    foreign.set("ssl.certificate.location", path(&cert)).set("ssl.key.location", path(&key));
    let consumer: BaseConsumer = foreign.create().expect("client");
    assert!(
        consumer.fetch_metadata(None, Duration::from_secs(3)).is_err(),
        "b accepted a's client certificate"
    );

    let config_b = tls_client(b, "erin");
    let consumer: BaseConsumer = config_b.create().expect("client");
    let md = consumer.fetch_metadata(None, Duration::from_secs(30)).expect("b's metadata");
    assert!(md.topics().iter().all(|t| t.name() != "only-in-a"), "a's topic visible in b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acls_decide_what_certificate_principals_may_do() {
    let cluster =
        KafkaCluster::start(ClusterOptions::named("acls").nodes(1).authorizer()).expect("kafka cluster");
    assert!(cluster.bootstrap_sasl().is_err(), "a SASL listener without SCRAM users");
    assert_eq!(cluster.ports().len(), 3);
    cluster.create_topic("orders", 2).expect("create topic");
    let orders = || AclResource::Topic("orders".into());
    let carol = "User:CN=carol,OU=payments,O=acme";
    cluster
        .create_acls(&[
            Acl::allow("User:CN=alice", AclOperation::Write, orders()),
            Acl::allow("User:CN=alice", AclOperation::Read, orders()),
            Acl::allow("User:CN=alice", AclOperation::Describe, orders()),
            Acl::allow("User:CN=alice", AclOperation::Read, AclResource::Group("g".into())),
            Acl::allow(carol, AclOperation::Write, orders()),
        ])
        .expect("create acls");
    // What the cluster refuses is reported, every one.
    let again = format!("{:#}", cluster.create_topic("orders", 1).expect_err("orders created twice"));
    assert!(again.contains("topic orders") && again.contains("TopicAlreadyExists (36)"), "{again}");
    let refused = cluster
        .create_acls(&[
            Acl::allow("alice", AclOperation::Read, orders()),
            Acl::allow("mallory", AclOperation::Write, orders()),
        ])
        .expect_err("principals without a type");
    let refused = format!("{refused:#}");
    assert!(refused.contains("alice ALLOW Read") && refused.contains("mallory ALLOW Write"), "{refused}");

    // alice, with her certificate straight at the TLS listener, produces and consumes in group g.
    let alice = tls_client(&cluster, "alice");
    produce(&alice, "orders", "alice", 300, "all").await.expect("alice produces");
    let seen = consume(&alice, "orders", "g", 300, Duration::from_secs(60)).expect("alice consumes");
    assert_same_records("alice", 300, &seen);

    // carol is her whole subject, in the order issue_for took it.
    let subject = [
        (DnType::CommonName, "carol"),
        (DnType::OrganizationalUnitName, "payments"),
        (DnType::OrganizationName, "acme"),
    ];
    let carol_cert = cluster.clients_ca().issue_for("carol", &subject, None).expect("carol's certificate");
    produce(&tls_client_with(&cluster, carol_cert), "orders", "carol", 10, "all")
        .await
        .expect("carol produces by her full subject");

    // bob's certificate is fine, but no ACL names him: his produce is refused, and the broker says so.
    let refused = refused_produce(&tls_client(&cluster, "bob"), "orders").await;
    assert_eq!(
        refused.rdkafka_error_code(),
        Some(RDKafkaErrorCode::TopicAuthorizationFailed),
        "bob's produce: {refused}"
    );
    let denied = log_lines(&cluster, &["User:CN=bob", "Denied", "orders"]);
    assert!(!denied.is_empty(), "no denial of User:CN=bob on orders in server.log");
    assert!(log_lines(&cluster, &["User:CN=alice", "Denied"]).is_empty(), "alice denied something");

    // A certificate signed with the clients CA's key file, as a proxy holding it would sign one (the CA's
    // name as certs::new_ca gives it), is accepted; one of alice's that expired yesterday is not.
    let key = std::fs::read_to_string(cluster.clients_ca_key()).expect("clients CA key");
    let key = KeyPair::from_pem(&key).expect("a PKCS#8 PEM key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "acls clients CA");
    let issuer = Issuer::new(ca, key);
    let dave_key = KeyPair::generate().expect("key");
    let mut dave = CertificateParams::new(Vec::<String>::new()).expect("params");
    dave.distinguished_name.push(DnType::CommonName, "dave");
    let dave_pem = cluster.dir().join("dave-by-key-file.pem");
    std::fs::write(&dave_pem, dave.signed_by(&dave_key, &issuer).expect("sign").pem()).expect("write");
    let dave_key_pem = cluster.dir().join("dave-by-key-file.key");
    std::fs::write(&dave_key_pem, dave_key.serialize_pem()).expect("write");
    let consumer: BaseConsumer =
        tls_client_with(&cluster, (dave_pem, dave_key_pem)).create().expect("client");
    consumer.fetch_metadata(None, Duration::from_secs(20)).expect("a certificate signed with clients_ca_key");

    let now = OffsetDateTime::now_utc();
    let expired = cluster
        .clients_ca()
        .issue_for(
            "alice-expired",
            &[(DnType::CommonName, "alice")],
            Some((now - time::Duration::days(2), now - time::Duration::days(1))),
        )
        .expect("expired certificate");
    let consumer: BaseConsumer = tls_client_with(&cluster, expired).create().expect("client");
    assert!(
        consumer.fetch_metadata(None, Duration::from_secs(3)).is_err(),
        "an expired client certificate was accepted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_users_log_in_over_sasl_ssl_as_user_name() {
    // Kafka 3.9 here, as the 4.x path has its own tests above: format-time SCRAM credentials, the SASL
    // listener and the authorizer behave alike in both.
    let cluster = KafkaCluster::start(
        ClusterOptions::named("scram")
            .version(Version::Kafka3)
            .nodes(1)
            .authorizer()
            .scram_user("alice", "alice-secret")
            .scram_user("bob", "bob-secret"),
    )
    .expect("kafka cluster");
    assert_eq!(cluster.ports().len(), 4);
    cluster.create_topic("payments", 1).expect("create topic");
    let payments = || AclResource::Topic("payments".into());
    cluster
        .create_acls(&[
            Acl::allow("User:alice", AclOperation::Write, payments()),
            Acl::allow("User:alice", AclOperation::Read, payments()),
            Acl::allow("User:alice", AclOperation::Read, AclResource::Group("g-scram".into())),
        ])
        .expect("create acls");

    // alice is User:alice over SASL_SSL: her ACLs let her produce and consume.
    let alice = sasl_client(&cluster, "alice", "alice-secret");
    produce(&alice, "payments", "scram", 300, "all").await.expect("alice produces");
    let seen = consume(&alice, "payments", "g-scram", 300, Duration::from_secs(60)).expect("alice consumes");
    assert_same_records("scram", 300, &seen);

    // bob logs in, is User:bob, and is refused.
    let refused = refused_produce(&sasl_client(&cluster, "bob", "bob-secret"), "payments").await;
    assert_eq!(
        refused.rdkafka_error_code(),
        Some(RDKafkaErrorCode::TopicAuthorizationFailed),
        "bob's produce: {refused}"
    );
    assert!(
        !log_lines(&cluster, &["User:bob", "Denied", "payments"]).is_empty(),
        "no denial of User:bob on payments in server.log"
    );

    // A wrong password does not log in at all.
    assert_authentication_fails(&sasl_client(&cluster, "alice", "not-her-secret"));
    assert!(
        !log_lines(&cluster, &["Failed authentication", "invalid credentials", "SCRAM-SHA-512"]).is_empty(),
        "no failed SCRAM authentication in server.log"
    );
}
