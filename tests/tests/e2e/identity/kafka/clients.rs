//! Identity through the proxy with every client program of the matrix (`kaas_e2e::matrix::programs`): Java
//! kafka-clients of each pinned version, kafka-python, confluent-kafka (librdkafka) and franz-go, each
//! presenting a user's certificate to kaas-proxy, which reaches a 1-node Apache Kafka cluster with its
//! StandardAuthorizer over mutual TLS as that same user (`identity: client`). alice, allowed to write and read,
//! runs the matrix's whole scenario and every byte is checked ([`matrix::check`]); bob, allowed only to read,
//! is refused his write with the authorization error each client reports in its own words. ([`super`]
//! does the same and more with librdkafka in the test's process.)

use std::path::{Path, PathBuf};
use std::time::Instant;

use kaas_e2e::certs::Certs;
use kaas_e2e::kafka::{Acl, AclOperation, AclResource, ClusterOptions, KafkaCluster};
use kaas_e2e::matrix::programs::Program;
use kaas_e2e::matrix::{self, Client, Target};
use kaas_e2e::proxy::{logs, ProxyHandle};
use kaas_e2e::DOMAIN;

const TENANT: &str = "mine";

/// How each client names Kafka's TOPIC_AUTHORIZATION_FAILED (code 29): kafka-clients'
/// `TopicAuthorizationException`, kafka-python's `TopicAuthorizationFailedError`, librdkafka's and franz-go's
/// `TOPIC_AUTHORIZATION_FAILED`.
const TOPIC_DENIED: &[&str] =
    &["TopicAuthorizationException", "TopicAuthorizationFailedError", "TOPIC_AUTHORIZATION_FAILED"];
/// And CLUSTER_AUTHORIZATION_FAILED (31), the answer to an idempotent producer's InitProducerId from a user who
/// may write no topic at all.
const CLUSTER_DENIED: &[&str] = &["ClusterAuthorizationException", "CLUSTER_AUTHORIZATION_FAILED"];

fn path(p: &Path) -> String {
    p.display().to_string()
}

/// The topic of `program`'s runs: one each, so that each client's consumers read exactly what it produced.
fn topic_of(program: &Program) -> String {
    format!("orders-{}", program.slug())
}

/// Whether `program`'s producer is idempotent unless told otherwise: kafka-clients' since 3.0, franz-go's.
fn idempotent_by_default(program: &Program) -> bool {
    matches!(program, Program::Java(_) | Program::FranzGo)
}

/// Where `user` (with the certificate `cert`) runs `program`: through the proxy, on its topic made
/// beforehand, in the group `<topic>-<user>`.
fn target(
    proxy: &ProxyHandle,
    certs: &Certs,
    program: &Program,
    user: &str,
    cert: &(PathBuf, PathBuf),
) -> Target {
    let topic = topic_of(program);
    Target {
        tenant: TENANT.into(),
        bootstrap: proxy.bootstrap(TENANT),
        ca: Some(certs.ca.clone()),
        cert: Some(cert.clone()),
        create_topic: false,
        idempotence: None,
        proxy_port: proxy.port,
        group: format!("{topic}-{user}"),
        topic,
    }
}

/// Runs `program` as bob and checks that it is refused in the produce step with one of `denied`: `Ok` the
/// client's own words, `Err` what went otherwise.
fn refused(program: &Program, target: &Target, denied: &[&str]) -> Result<String, String> {
    let report = program.run(target).map_err(|e| format!("no report: {e:#}"))?;
    let error = report.error.ok_or("it wrote")?;
    // The programs name their step (`produce: ...`), except franz-go, whose produce errors start with the
    // record (`record 0: ...`).
    let producing = error.starts_with("produce: ") || error.starts_with("record ");
    if producing && denied.iter().any(|name| error.contains(name)) {
        Ok(format!("{} {}: {error}", program.name(), report.version))
    } else {
        Err(format!("refused otherwise than with {denied:?} in the produce step: {error}"))
    }
}

#[test]
fn every_client_program_writes_and_reads_as_itself_through_the_proxy() {
    let started = Instant::now();
    let programs = Program::all();
    let cluster =
        KafkaCluster::start(ClusterOptions::named("id-clients").nodes(1).authorizer()).expect("kafka");
    let allow = |user: &str, operation, resource| Acl::allow(&format!("User:CN={user}"), operation, resource);
    let mut acls = Vec::new();
    for program in &programs {
        let topic = topic_of(program);
        cluster.create_topic(&topic, matrix::PARTITIONS).expect("create topic");
        let on_topic = || AclResource::Topic(topic.clone());
        acls.extend([
            allow("alice", AclOperation::Write, on_topic()),
            allow("alice", AclOperation::Read, on_topic()),
            allow("alice", AclOperation::Describe, on_topic()),
            allow("alice", AclOperation::Read, AclResource::Group(format!("{topic}-alice"))),
            allow("bob", AclOperation::Read, on_topic()),
            allow("bob", AclOperation::Describe, on_topic()),
        ]);
    }
    cluster.create_acls(&acls).expect("acls");

    let dir = tempfile::tempdir().expect("tempdir");
    let certs = Certs::generate(dir.path(), DOMAIN, &[TENANT]).expect("certs");
    let tenant = format!(
        "  - name: {TENANT}\n    bootstrap: [\"{}\"]\n    client_ca: {}\n    upstream:\n      tls: {{ ca: {} }}\n      \
         identity: client\n      clients_ca_key: {}\n",
        cluster.bootstrap_tls(),
        path(cluster.clients_ca_pem()),
        path(cluster.cluster_ca_pem()),
        path(cluster.clients_ca_key())
    );
    let proxy = ProxyHandle::start_with_tenants_yaml(&certs, &tenant).expect("proxy");
    let (alice, bob) =
        (cluster.client_cert("alice").expect("alice"), cluster.client_cert("bob").expect("bob"));
    eprintln!("identity clients: cluster, ACLs and proxy up in {:.1?}", started.elapsed());

    // Every client is run before any assertion, so that one client's failure does not hide another's.
    let mut failures = Vec::new();
    for program in &programs {
        // bob first: alice's check below then also proves that nothing of his reached the topic (her
        // consumers would read it, at offsets where she produced nothing).
        // With the client's defaults, an idempotent producer is refused its producer id (bob may write no
        // topic at all) before it sends a record; without idempotence, the broker refuses the Produce itself.
        let as_bob = target(&proxy, &certs, program, "bob", &bob);
        let by_default = if idempotent_by_default(program) { CLUSTER_DENIED } else { TOPIC_DENIED };
        let not_idempotent = Target { idempotence: Some(false), ..as_bob.clone() };
        for (how, target, denied) in
            [("defaults", &as_bob, by_default), ("idempotence off", &not_idempotent, TOPIC_DENIED)]
        {
            let t = Instant::now();
            match refused(program, target, denied) {
                Ok(said) => {
                    eprintln!("identity clients: CN=bob, {how}: refused in {:.1?}: {said}", t.elapsed())
                }
                Err(e) => failures.push(format!("{} as CN=bob, {how}: {e}", program.name())),
            }
        }

        let as_alice = target(&proxy, &certs, program, "alice", &alice);
        let t = Instant::now();
        match program.run(&as_alice).and_then(|r| matrix::check(&as_alice, &r).map(|()| r)) {
            Ok(r) => eprintln!(
                "identity clients: CN=alice: {} {}: {} + {} records produced to {} and consumed back \
                 byte-identical in group {}, in {:.1?}",
                program.name(),
                r.version,
                r.produced.len(),
                r.produced_more.len(),
                as_alice.topic,
                as_alice.group,
                t.elapsed()
            ),
            Err(e) => failures.push(format!("{} as CN=alice: {e:#}", program.name())),
        }
    }
    assert!(failures.is_empty(), "{} failure(s):\n{}", failures.len(), failures.join("\n"));

    // The broker's authorizer saw bob himself: a denied write on every client's topic (the denied producer ids
    // are not logged: Kafka asks its authorizer about InitProducerId with logIfDenied=false); and the proxy's
    // session log carries both principals.
    let node = cluster.node_ids()[0];
    let server_log = std::fs::read_to_string(cluster.log(node).expect("log path")).expect("server log");
    for program in &programs {
        let topic = topic_of(program);
        assert!(
            server_log
                .lines()
                .any(|l| l.contains("User:CN=bob is Denied operation = WRITE ") && l.contains(&topic)),
            "the authorizer log has no denial of WRITE on {topic} to User:CN=bob"
        );
    }
    for principal in ["principal=CN=alice", "principal=CN=bob"] {
        assert!(logs().contains(principal), "the proxy's session log has no {principal}");
    }
    eprintln!("identity clients: {} clients in {:.1?}", programs.len(), started.elapsed());
}
