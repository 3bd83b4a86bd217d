//! What a thief inside the proxy can mint, asked of a real Apache Kafka broker (the JDK's PKIX path validation
//! behind a mutual-TLS listener, as Strimzi's `authentication: tls`) with a Strimzi-shaped clients CA (a root
//! with `pathlen:0`, [`kaas_e2e::certs::new_clients_ca`]) and Strimzi's super users
//! (`User:CN=<cluster>-kafka,O=io.strimzi`, `controller/src/strimzi`).
//!
//! With the clients CA's key, a certificate for `CN=nc-kafka,O=io.strimzi` is a super user: that is what
//! `clients_ca_key` hands whoever steals it. An intermediate CA the clients CA signed, with `pathlen:0` and a
//! NameConstraints extension excluding the directory subtree `O=io.strimzi`, holds: the broker accepts users'
//! certificates it signs (leaf and intermediate presented, the anchor's own `pathlen:0` not applied to it, as
//! RFC 5280 6.1 has it) and refuses the forged super user it signs (`name constraints check failed` in the
//! JDK). A proxy holding only that intermediate (`clients_ca_intermediate`) carries users through as
//! themselves; and it never mints `O=io.strimzi`, whatever the client presents (`reserved_subject`).
//!
//! Rotation: a second intermediate replaces the first (its folder swapped in at once, as a Secret volume
//! changes) under a running idempotent producer; past the first one's end, fresh clients still get through
//! (so the second signs) and no record is lost.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::producing::{Plan, Producing};
use crate::common::{assert_same_records, consume, produce};

use kaas_e2e::certs::Certs;
use kaas_e2e::kafka::{Acl, AclOperation, AclResource, ClusterOptions, KafkaCluster, Listener};
use kaas_e2e::proxy::{logs, wait_for_log, ProxyHandle, RELOAD_EVERY};
use kaas_e2e::{raw, DOMAIN};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{MetadataRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue, ExtendedKeyUsagePurpose,
    GeneralSubtree, IsCa, Issuer, KeyPair, KeyUsagePurpose, NameConstraints,
};
use time::OffsetDateTime;

/// The cluster's name, so its brokers' super user is `CN=nc-kafka,O=io.strimzi`.
const CLUSTER: &str = "nc";
const STRIMZI: &str = "io.strimzi";

fn dn(attrs: &[(DnType, &str)]) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    for (ty, value) in attrs {
        dn.push(ty.clone(), *value);
    }
    dn
}

/// An intermediate CA signed by `clients_ca`: `pathlen:0`, excluding the directory subtree `O=io.strimzi`,
/// valid from five minutes ago for `valid_for` more; written as `intermediate.pem` and `intermediate.key` into
/// `dir`. Returns its issuer and certificate PEM.
fn intermediate(
    dir: &Path,
    clients_ca: &Issuer<'static, KeyPair>,
    valid_for: time::Duration,
) -> (Issuer<'static, KeyPair>, String) {
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.distinguished_name = dn(&[(DnType::CommonName, "kaas-proxy nc intermediate")]);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.name_constraints = Some(NameConstraints {
        permitted_subtrees: vec![],
        excluded_subtrees: vec![GeneralSubtree::DirectoryName(dn(&[(DnType::OrganizationName, STRIMZI)]))],
    });
    let now = OffsetDateTime::now_utc();
    (params.not_before, params.not_after) = (now - time::Duration::minutes(5), now + valid_for);
    let pem = params.signed_by(&key, clients_ca).expect("signed by the clients CA").pem();
    std::fs::write(dir.join("intermediate.pem"), &pem).expect("write");
    std::fs::write(dir.join("intermediate.key"), key.serialize_pem()).expect("write");
    (Issuer::new(params, key), pem)
}

/// A client certificate for `subject` (X.509 order, root-most first) from `issuer`, written with `chain`
/// after it: (chain PEM path, key PEM path).
fn leaf(
    dir: &Path,
    stem: &str,
    issuer: &Issuer<'static, KeyPair>,
    subject: DistinguishedName,
    chain: &str,
) -> (PathBuf, PathBuf) {
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.distinguished_name = subject;
    params.is_ca = IsCa::ExplicitNoCa;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let pem = params.signed_by(&key, issuer).expect("signed").pem();
    let paths = (dir.join(format!("{stem}.pem")), dir.join(format!("{stem}.key")));
    std::fs::write(&paths.0, pem + chain).expect("write");
    std::fs::write(&paths.1, key.serialize_pem()).expect("write");
    paths
}

/// The error code of each of `topics` in a Metadata answer to a client presenting `cert` straight to the
/// broker's mutual-TLS listener; an error when the broker refuses the certificate (TLS 1.3: at the first read).
async fn topic_errors(
    cluster: &KafkaCluster,
    cert: &(PathBuf, PathBuf),
    topics: &[&str],
) -> anyhow::Result<Vec<i16>> {
    let node = cluster.node_ids()[0];
    let addr = cluster.broker_addr(node, Listener::Tls)?;
    let port: u16 = addr.rsplit(':').next().unwrap_or_default().parse()?;
    let client = Some((cert.0.as_path(), cert.1.as_path()));
    let mut conn = raw::connect_as(port, None, cluster.cluster_ca_pem(), client).await?;
    let request = MetadataRequest::default().with_topics(Some(
        topics
            .iter()
            .map(|t| {
                MetadataRequestTopic::default()
                    .with_name(Some(TopicName(StrBytes::from_string((*t).to_owned()))))
            })
            .collect(),
    ));
    let (_, answer) = raw::call(&mut conn, 1, 9, &request).await?;
    Ok(answer.topics.iter().map(|t| t.error_code).collect())
}

const TOPIC_AUTHORIZATION_FAILED: i16 = 29;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_constrained_intermediate_cannot_mint_strimzis_super_users() {
    let super_user = format!("User:CN={CLUSTER}-kafka,O={STRIMZI}");
    let opts = ClusterOptions::named(CLUSTER)
        .nodes(1)
        .authorizer()
        .config("super.users", &format!("User:ANONYMOUS;{super_user}"));
    let cluster = KafkaCluster::start(opts).expect("kafka");
    for topic in ["orders", "payments"] {
        cluster.create_topic(topic, 1).expect("topic");
    }
    let orders = || AclResource::Topic("orders".into());
    let alice = "User:CN=alice";
    cluster
        .create_acls(&[
            Acl::allow(alice, AclOperation::Write, orders()),
            Acl::allow(alice, AclOperation::Read, orders()),
            Acl::allow(alice, AclOperation::Describe, orders()),
            Acl::allow(alice, AclOperation::Read, AclResource::Group("g-nc".into())),
        ])
        .expect("acls");
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    // The super user's subject as UTF8String and as PrintableString: Java prints both as the same principal,
    // so a constraint matched by string type would be evaded by the other.
    let printable = |v: &str| DnValue::PrintableString(v.try_into().expect("printable"));
    let mut printable_subject = DistinguishedName::new();
    printable_subject.push(DnType::OrganizationName, printable(STRIMZI));
    printable_subject.push(DnType::CommonName, printable("nc-kafka"));
    let forged_subjects = [
        ("utf8", dn(&[(DnType::OrganizationName, STRIMZI), (DnType::CommonName, "nc-kafka")])),
        ("printable", printable_subject),
    ];
    let (intermediate, chain) = intermediate(d, cluster.clients_ca().issuer(), time::Duration::days(1));
    for (encoding, subject) in &forged_subjects {
        // The control: signed by the clients CA itself (what `clients_ca_key` holds), the forged subject is a
        // super user: it describes `payments`, which no ACL grants it.
        let direct =
            leaf(d, &format!("direct-{encoding}"), cluster.clients_ca().issuer(), subject.clone(), "");
        let errors =
            topic_errors(&cluster, &direct, &["orders", "payments"]).await.expect("the broker answers");
        assert_eq!(errors, [0, 0], "signed by the clients CA, {super_user} ({encoding}) is a super user");
        // Signed by the intermediate: refused.
        let forged = leaf(d, &format!("forged-{encoding}"), &intermediate, subject.clone(), &chain);
        let refused = topic_errors(&cluster, &forged, &["payments"]).await;
        assert!(
            refused.is_err(),
            "the intermediate minted a super user ({encoding}) the broker accepted: {refused:?}"
        );
    }
    // Through the intermediate alice is alice: orders yes, payments no.
    let alice_cert = leaf(d, "alice", &intermediate, dn(&[(DnType::CommonName, "alice")]), &chain);
    let errors =
        topic_errors(&cluster, &alice_cert, &["orders", "payments"]).await.expect("alice is accepted");
    assert_eq!(errors, [0, TOPIC_AUTHORIZATION_FAILED], "alice through the intermediate is User:CN=alice");
    let direct = leaf(d, "direct", cluster.clients_ca().issuer(), forged_subjects[0].1.clone(), "");

    // The proxy holding only the intermediate: alice (her certificate from the clients CA, as Strimzi's user
    // operator issues it) produces and consumes through it as herself, and is still refused `payments`.
    let certs = Certs::generate(d, DOMAIN, &["nc"]).expect("certs");
    let tenant = tenant_yaml(&cluster, d);
    let proxy = ProxyHandle::start_with_tenants_yaml(&certs, &tenant).expect("proxy");
    let alice = super::client(&proxy, &certs, "nc", &cluster.client_cert("alice").expect("alice"));
    produce(&alice, "orders", "nc", 50, "all").await.expect("alice produces through the intermediate");
    let seen = consume(&alice, "orders", "g-nc", 50, Duration::from_secs(60)).expect("alice consumes");
    assert_same_records("nc", 50, &seen);
    let denied = super::produce_error(&alice, "payments").await;
    assert!(super::is_topic_authorization_failure(&denied), "alice on payments: {denied:?}");

    // The proxy never mints Strimzi's organisation, whatever the client presents: a client certificate the
    // clients CA signed for the brokers' super user is refused, with its reason.
    let name = format!("nc.{DOMAIN}");
    let served = match raw::connect_as(proxy.port, Some(&name), &certs.ca, Some((&direct.0, &direct.1))).await
    {
        Err(_) => false,
        Ok(mut conn) => raw::call(&mut conn, 1, 9, &MetadataRequest::default()).await.is_ok(),
    };
    assert!(!served, "the proxy minted {super_user}");
    assert!(
        wait_for_log("reason=reserved_subject", Duration::from_secs(5)),
        "the refusal is logged by reason"
    );
    let series = "kaas_proxy_listener_refused_total{reason=\"reserved_subject\"}";
    assert_eq!(proxy.wait_for_metric(series, 1.0, Duration::from_secs(5)).expect("metrics"), 1.0);
}

/// ~200 records a second, on a topic of this module's own.
const PLAN: Plan = Plan {
    topic: "nc-rotation",
    run: "nc-rotation",
    batch: 10,
    pause: Duration::from_millis(50),
    recovery: Duration::from_secs(60),
};

/// How long the first intermediate lives: past it, only the second can have signed what the proxy presents.
const FIRST_LIFETIME: Duration = Duration::from_secs(40);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intermediate_rotation_under_a_running_producer_loses_nothing() {
    let started = Instant::now();
    let cluster = KafkaCluster::start(ClusterOptions::named(CLUSTER).nodes(1)).expect("kafka");
    cluster.create_topic(PLAN.topic, 3).expect("topic");
    cluster.create_topic("nc-checks", 1).expect("topic");
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    // The proxy reads `current/`, a link swapped at once to the next generation, as a Secret volume changes.
    let generation = |n: u32, valid_for: time::Duration| {
        let folder = d.join(format!("v{n}"));
        std::fs::create_dir(&folder).expect("mkdir");
        intermediate(&folder, cluster.clients_ca().issuer(), valid_for);
        let link = d.join(format!("current.v{n}"));
        std::os::unix::fs::symlink(&folder, &link).expect("symlink");
        std::fs::rename(&link, d.join("current")).expect("swap");
    };
    generation(1, time::Duration::try_from(FIRST_LIFETIME).expect("short"));
    let certs = Certs::generate(d, DOMAIN, &["nc"]).expect("certs");
    let current = d.join("current");
    let tenant = tenant_yaml(&cluster, &current);
    let proxy = ProxyHandle::start_with_tenants_yaml(&certs, &tenant).expect("proxy");
    let alice = super::client(&proxy, &certs, "nc", &cluster.client_cert("alice").expect("alice"));
    let producer = Producing::start(&alice, PLAN).expect("producer");
    producer.wait_for_acks_since(started, 200, "first records").await;

    // The next generation, well before the first expires: new connections are minted from it.
    let reloaded = logs().matches("routes reloaded").count();
    generation(2, time::Duration::days(1));
    let deadline = Instant::now() + Duration::from_secs(10);
    while logs().matches("routes reloaded").count() <= reloaded {
        assert!(Instant::now() < deadline, "no reload within 10 s:\n{}", logs());
        tokio::time::sleep(RELOAD_EVERY).await;
    }
    produce(&alice, "nc-checks", "v2", 5, "all").await.expect("a fresh client after the swap");

    // Past the first generation's end: whatever it signed has expired, so a fresh client getting through shows
    // the second one signs; the producer's open connections carried on.
    let first_ends = started + FIRST_LIFETIME;
    tokio::time::sleep_until((first_ends + Duration::from_secs(2)).into()).await;
    produce(&alice, "nc-checks", "v1-expired", 5, "all")
        .await
        .expect("a fresh client after the first expired");
    let since = Instant::now();
    producer.wait_for_acks_since(since, 100, "records after the first generation expired").await;
    let sent = producer.finish();
    let seen = consume(&alice, PLAN.topic, "g-nc-rotation", sent, Duration::from_secs(120)).expect("consume");
    assert_same_records(PLAN.run, sent, &seen);
    assert!(!logs().contains("reload refused"), "a reload was refused:\n{}", logs());
}

/// Tenant `nc` on `cluster`'s mutual-TLS listener, signing with the intermediate in `folder`
/// (`intermediate.pem`, `intermediate.key`).
fn tenant_yaml(cluster: &KafkaCluster, folder: &Path) -> String {
    format!(
        "  - name: nc\n    bootstrap: [\"{}\"]\n    client_ca: {}\n    upstream:\n      tls: {{ ca: {} }}\n      \
         clients_ca_intermediate: {{ cert: {}, key: {} }}\n",
        cluster.bootstrap_tls(),
        cluster.clients_ca_pem().display(),
        cluster.cluster_ca_pem().display(),
        folder.join("intermediate.pem").display(),
        folder.join("intermediate.key").display()
    )
}
