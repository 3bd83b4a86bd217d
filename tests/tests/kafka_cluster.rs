//! The real-Kafka fixture itself (`kaas_e2e::kafka`), with librdkafka as the client: clusters come up with
//! the node ids and addresses they advertise, the TLS listener takes only clients its clients CA signed,
//! leaders move off killed and stopped brokers, which come back, 3.x runs too, and two clusters side by side
//! know nothing of each other.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use common::*;
use kaas_e2e::kafka::{ClusterOptions, KafkaCluster, Listener, Version};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

/// librdkafka over the cluster's TLS listener, presenting `user`'s certificate from the clients CA.
fn tls_client(cluster: &KafkaCluster, user: &str) -> ClientConfig {
    let (cert, key) = cluster.client_cert(user).expect("client certificate");
    let mut c = client_config(&cluster.bootstrap_tls(), cluster.cluster_ca_pem());
    c.set("ssl.certificate.location", path(&cert)).set("ssl.key.location", path(&key));
    c
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
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while leader_and_isr(&config, "moves").1.len() < 3 {
        assert!(std::time::Instant::now() < deadline, "node {leader} not back in the ISR");
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
