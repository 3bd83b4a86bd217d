//! Identity that survives the proxy, on real Apache Kafka with its StandardAuthorizer: every client reaches the
//! cluster's mutual-TLS listener through kaas-proxy, and the broker's ACLs hold per user (`identity: client`),
//! or see the proxy's one principal (`identity: proxy`, docs/operate/security.md's warning). A broker whose certificate does
//! not verify is refused. librdkafka clients throughout.
//!
//! The same with every client program of the matrix: [`clients`]; the cluster and clients CAs rotated under
//! a running producer: [`rotation`]; what a thief holding the proxy's signing key can mint: [`intermediate`].

mod clients;
mod intermediate;
mod rotation;

use crate::common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{assert_authentication_fails, assert_same_records, consume, produce};
use kaas_e2e::certs::{crl, new_ca, Certs};
use kaas_e2e::kafka::{Acl, AclOperation, AclResource, ClusterOptions, KafkaCluster};
use kaas_e2e::proxy::{logs, wait_for_log, ProxyHandle};
use kaas_e2e::{raw, DOMAIN};
use kafka_protocol::messages::MetadataRequest;
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair, SerialNumber,
};
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};
use time::OffsetDateTime;

fn allow(user: &str, resource: AclResource, operation: AclOperation) -> Acl {
    Acl { principal: format!("User:CN={user}"), resource, operation, allow: true }
}

/// A client of tenant `tenant` holding `user`'s certificate from the cluster's clients CA.
fn client(proxy: &ProxyHandle, certs: &Certs, tenant: &str, cert: &(PathBuf, PathBuf)) -> ClientConfig {
    let mut c = common::client_config(&proxy.bootstrap(tenant), &certs.ca);
    c.set("ssl.certificate.location", cert.0.to_string_lossy().as_ref())
        .set("ssl.key.location", cert.1.to_string_lossy().as_ref())
        .set("message.timeout.ms", "20000");
    c
}

/// The error of producing one record, `None` when it was delivered.
async fn produce_error(config: &ClientConfig, topic: &str) -> Option<KafkaError> {
    let producer: FutureProducer = config.create().expect("producer");
    let record = FutureRecord::to(topic).key("k").payload("v");
    match producer.send(record, Duration::from_secs(25)).await {
        Ok(_) => None,
        Err((e, _)) => Some(e),
    }
}

fn is_topic_authorization_failure(e: &Option<KafkaError>) -> bool {
    matches!(e, Some(KafkaError::MessageProduction(RDKafkaErrorCode::TopicAuthorizationFailed)))
}

fn server_log(cluster: &KafkaCluster) -> String {
    let node = cluster.node_ids()[0];
    std::fs::read_to_string(cluster.log(node).expect("log path")).unwrap_or_default()
}

/// A tenant YAML entry reaching `cluster`'s mutual-TLS listener with `upstream` (already indented).
fn tenant_yaml(name: &str, cluster: &KafkaCluster, upstream: &str) -> String {
    format!(
        "  - name: {name}\n    bootstrap: [\"{}\"]\n    client_ca: {}\n    upstream:\n{upstream}",
        cluster.bootstrap_tls(),
        cluster.clients_ca_pem().display()
    )
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_acls_hold_per_user_through_the_proxy() {
    let cluster = KafkaCluster::start(ClusterOptions::named("acl").nodes(1).authorizer()).expect("kafka");
    for topic in ["orders", "payments"] {
        cluster.create_topic(topic, 1).expect("create topic");
    }
    let orders = || AclResource::Topic("orders".into());
    cluster
        .create_acls(&[
            allow("alice", orders(), AclOperation::Write),
            allow("alice", orders(), AclOperation::Read),
            allow("alice", orders(), AclOperation::Describe),
            allow("alice", AclResource::Group("g-alice".into()), AclOperation::Read),
            allow("bob", orders(), AclOperation::Read),
            allow("bob", orders(), AclOperation::Describe),
            allow("kaas-proxy-user", orders(), AclOperation::Write),
            allow("kaas-proxy-user", orders(), AclOperation::Describe),
        ])
        .expect("acls");

    let dir = tempfile::tempdir().expect("tempdir");
    let certs =
        Certs::generate(dir.path(), DOMAIN, &["mine", "shared", "forged", "forged-mutual"]).expect("certs");
    let (alice, bob) =
        (cluster.client_cert("alice").expect("alice"), cluster.client_cert("bob").expect("bob"));
    let proxy_user = cluster.client_cert("kaas-proxy-user").expect("proxy user");
    let cluster_ca = path(cluster.cluster_ca_pem());
    // The wrong CA for broker certificates: the clients CA did not sign them.
    let wrong_ca = path(cluster.clients_ca_pem());
    let tenants = [
        tenant_yaml(
            "mine",
            &cluster,
            &format!(
                "      tls: {{ ca: {cluster_ca} }}\n      identity: client\n      clients_ca_key: {}\n",
                path(cluster.clients_ca_key())
            ),
        ) + "    principal_mapping_rules: \"RULE:^CN=(.*?)$/$1/L,DEFAULT\"\n",
        tenant_yaml(
            "shared",
            &cluster,
            &format!(
                "      tls: {{ ca: {cluster_ca} }}\n      identity: proxy\n      cert: {}\n      key: {}\n      \
                 one_principal_for_every_client: true\n",
                path(&proxy_user.0),
                path(&proxy_user.1)
            ),
        ),
        // An open tenant (no client CA): the upstream is dialled before the client's handshake ends.
        format!(
            "  - name: forged\n    bootstrap: [\"{}\"]\n    upstream:\n      tls: {{ ca: {wrong_ca} }}\n      \
             cert: {}\n      key: {}\n      one_principal_for_every_client: true\n",
            cluster.bootstrap_tls(),
            path(&proxy_user.0),
            path(&proxy_user.1)
        ),
        // A tenant with a client CA: only an authenticated client makes the proxy dial its brokers.
        tenant_yaml(
            "forged-mutual",
            &cluster,
            &format!(
                "      tls: {{ ca: {wrong_ca} }}\n      cert: {}\n      key: {}\n      \
                 one_principal_for_every_client: true\n",
                path(&proxy_user.0),
                path(&proxy_user.1)
            ),
        ),
    ];
    let proxy = ProxyHandle::start_with_tenants_yaml(&certs, &tenants.concat()).expect("proxy");

    // identity: client — alice writes and reads `orders`, through the proxy, as herself.
    let alice_mine = client(&proxy, &certs, "mine", &alice);
    produce(&alice_mine, "orders", "alice", 50, "all").await.expect("alice produces to orders");
    let seen =
        consume(&alice_mine, "orders", "g-alice", 50, Duration::from_secs(60)).expect("alice consumes");
    assert_same_records("alice", 50, &seen);
    // ... but not `payments`, and bob may read `orders` but not write it.
    let denied = produce_error(&alice_mine, "payments").await;
    assert!(is_topic_authorization_failure(&denied), "alice on payments: {denied:?}");
    let bob_mine = client(&proxy, &certs, "mine", &bob);
    let denied = produce_error(&bob_mine, "orders").await;
    assert!(is_topic_authorization_failure(&denied), "bob on orders: {denied:?}");
    // The broker's authorizer saw each user's own principal.
    let log = server_log(&cluster);
    for user in ["alice", "bob"] {
        assert!(
            log.lines().any(|l| l.contains(&format!("User:CN={user}")) && l.contains("Denied")),
            "the authorizer log names User:CN={user}"
        );
    }
    // Its log lines name the principal as the tenant's brokers map it (ssl.principal.mapping.rules).
    assert!(logs().contains("tenant=mine principal=alice}"), "the proxy's session log carries the principal");

    // identity: proxy — the broker sees the proxy's one principal: bob's write now succeeds, as the proxy user.
    let bob_shared = client(&proxy, &certs, "shared", &bob);
    let result = produce_error(&bob_shared, "orders").await;
    assert!(result.is_none(), "with identity: proxy bob writes as the proxy's user: {result:?}");
    let denied = produce_error(&bob_shared, "payments").await;
    assert!(is_topic_authorization_failure(&denied), "the proxy user may not write payments: {denied:?}");
    assert!(
        server_log(&cluster).lines().any(|l| l.contains("User:CN=kaas-proxy-user") && l.contains("Denied")),
        "the broker saw the proxy's principal, not bob's"
    );

    // A broker certificate the tenant's cluster CA did not sign: the client's handshake ends with
    // internal_error, the proxy names tenant, broker and reason; other tenants are untouched.
    let name = format!("forged.{DOMAIN}");
    let refused =
        raw::connect_as(proxy.port, Some(&name), &certs.ca, Some((alice.0.as_path(), alice.1.as_path())))
            .await;
    let Err(err) = refused else { panic!("a broker certificate from the wrong CA was accepted") };
    assert_eq!(raw::alert_of(&err), Some(rustls::AlertDescription::InternalError), "{err}");
    assert!(
        wait_for_log("TLS to 127.0.0.1", Duration::from_secs(5))
            && logs().lines().any(|l| l.contains("tenant=forged") && l.contains("broker_certificate")),
        "log names tenant, broker and reason"
    );
    // With a client CA, a peer without a certificate is refused before any upstream connection; an
    // authenticated one gets its connection closed when the broker's certificate does not verify.
    let tls_failures = |tenant: &str| {
        let series = format!(
            "kaas_proxy_upstream_tls_failures_total{{tenant=\"{tenant}\",reason=\"broker_certificate\"}}"
        );
        proxy.metric(&series).expect("metrics")
    };
    let mutual = format!("forged-mutual.{DOMAIN}");
    let anonymous = raw::connect_as(proxy.port, Some(&mutual), &certs.ca, None).await;
    let refused = match anonymous {
        Err(_) => true,
        Ok(mut conn) => raw::call(&mut conn, 1, 9, &MetadataRequest::default()).await.is_err(),
    };
    assert!(refused, "a client without a certificate was served");
    assert_eq!(tls_failures("forged-mutual"), 0.0, "an unauthenticated peer made the proxy dial the brokers");
    let authenticated = Some((alice.0.as_path(), alice.1.as_path()));
    let served = match raw::connect_as(proxy.port, Some(&mutual), &certs.ca, authenticated).await {
        Err(_) => false,
        Ok(mut conn) => raw::call(&mut conn, 1, 9, &MetadataRequest::default()).await.is_ok(),
    };
    assert!(!served, "a broker with a forged certificate was used");
    let series =
        "kaas_proxy_upstream_tls_failures_total{tenant=\"forged-mutual\",reason=\"broker_certificate\"}";
    assert_eq!(proxy.wait_for_metric(series, 1.0, Duration::from_secs(5)).expect("metrics"), 1.0);
    assert!(tls_failures("forged") >= 1.0);
    produce(&alice_mine, "orders", "after", 10, "all").await.expect("tenant mine unaffected");
}

/// A client certificate from `issuer` for `cn`, with `serial` and validity, written as `<stem>.pem/.key`.
fn issue(
    dir: &Path,
    stem: &str,
    issuer: &Issuer<'static, KeyPair>,
    cn: &str,
    serial: u64,
    validity: (OffsetDateTime, OffsetDateTime),
) -> (PathBuf, PathBuf) {
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.serial_number = Some(SerialNumber::from(serial));
    (params.not_before, params.not_after) = validity;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, issuer).expect("signed");
    let paths = (dir.join(format!("{stem}.pem")), dir.join(format!("{stem}.key")));
    std::fs::write(&paths.0, cert.pem()).expect("write cert");
    std::fs::write(&paths.1, key.serialize_pem()).expect("write key");
    paths
}

/// Whether a client holding `cert` gets Kafka answers from `name` (TLS 1.3 reports a refused client
/// certificate on the first read, so a Metadata round trip decides).
async fn admitted(proxy: &ProxyHandle, certs: &Certs, name: &str, cert: &(PathBuf, PathBuf)) -> bool {
    let client = Some((cert.0.as_path(), cert.1.as_path()));
    match raw::connect_as(proxy.port, Some(name), &certs.ca, client).await {
        Err(_) => false,
        Ok(mut conn) => raw::call(&mut conn, 1, 9, &MetadataRequest::default()).await.is_ok(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_are_refused_by_kind_and_never_cross_tenants() {
    let cluster = KafkaCluster::start(ClusterOptions::named("mtls").nodes(1)).expect("kafka");
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = Certs::generate(dir.path(), DOMAIN, &["mine", "other"]).expect("certs");
    // Tenant `other` has its own clients CA, a CRL, and plaintext upstream; `mine` uses the cluster's clients CA
    // with identity: client.
    let (other_ca_pem, other_ca) = new_ca("other clients CA").expect("ca");
    let other_ca_file = dir.path().join("other-ca.pem");
    std::fs::write(&other_ca_file, other_ca_pem).expect("write ca");
    let now = OffsetDateTime::now_utc();
    let valid = (now - time::Duration::hours(1), now + time::Duration::days(1));
    let d = dir.path();
    let good = issue(d, "good", &other_ca, "carol", 1, valid);
    let expired = issue(
        d,
        "expired",
        &other_ca,
        "carol",
        2,
        (now - time::Duration::days(2), now - time::Duration::days(1)),
    );
    let early = issue(
        d,
        "early",
        &other_ca,
        "carol",
        3,
        (now + time::Duration::days(1), now + time::Duration::days(2)),
    );
    let revoked = issue(d, "revoked", &other_ca, "carol", 4, valid);
    let (_, self_signer) = new_ca("carol").expect("self-signed issuer");
    let self_signed = issue(d, "self-signed", &self_signer, "carol", 5, valid);
    let crl_file = dir.path().join("other.crl");
    std::fs::write(&crl_file, crl(&other_ca, 1, &[4]).expect("crl")).expect("write crl");

    let mine = tenant_yaml(
        "mine",
        &cluster,
        &format!(
            "      tls: {{ ca: {} }}\n      clients_ca_key: {}\n",
            path(cluster.cluster_ca_pem()),
            path(cluster.clients_ca_key())
        ),
    );
    let other = format!(
        "  - name: other\n    bootstrap: [\"{}\"]\n    upstream: {{ plaintext: true }}\n    client_ca: {}\n    client_crl: {}\n",
        cluster.bootstrap_plain(),
        path(&other_ca_file),
        path(&crl_file)
    );
    let proxy = ProxyHandle::start_with_tenants_yaml(&certs, &(mine + &other)).expect("proxy");
    let alice = cluster.client_cert("alice").expect("alice");
    // The broker name first: on a fresh proxy it makes the proxy ask the cluster itself (over mutual TLS as
    // CN=kaas-proxy for `mine`).
    let names = |t: &str| [format!("b11.{t}.{DOMAIN}"), format!("{t}.{DOMAIN}")];

    // Each tenant's own clients get through; a certificate of one tenant never opens the other.
    for name in names("mine") {
        assert!(admitted(&proxy, &certs, &name, &alice).await, "alice on {name}");
        assert!(!admitted(&proxy, &certs, &name, &good).await, "other's certificate on {name}");
    }
    assert!(
        logs().lines().any(|l| l.contains("refreshing metadata") && l.contains("tenant=mine")),
        "the proxy asked the cluster for b11 itself"
    );
    for name in names("other") {
        assert!(admitted(&proxy, &certs, &name, &good).await, "carol on {name}");
        assert!(!admitted(&proxy, &certs, &name, &alice).await, "mine's certificate on {name}");
    }
    // Certificates refused by kind, each with its reason in the log and the metric.
    let cases = [
        (&expired, "client_cert_expired"),
        (&early, "client_cert_not_yet_valid"),
        (&revoked, "client_cert_revoked"),
        (&self_signed, "client_cert_unknown_ca"),
    ];
    for (cert, reason) in cases {
        assert!(!admitted(&proxy, &certs, &names("other")[0], cert).await, "{reason} admitted");
        assert!(
            wait_for_log(&format!("reason={reason}"), Duration::from_secs(5)),
            "no log line with {reason}"
        );
    }
    let refused = |reason: &str, want: f64| {
        let series = format!("kaas_proxy_listener_refused_total{{reason=\"{reason}\"}}");
        proxy.wait_for_metric(&series, want, Duration::from_secs(5)).expect("metrics")
    };
    // Four cross-tenant attempts, plus the self-signed one: all from an unknown CA.
    assert_eq!(refused("client_cert_unknown_ca", 5.0), 5.0);
    for reason in ["client_cert_expired", "client_cert_not_yet_valid", "client_cert_revoked"] {
        assert_eq!(refused(reason, 1.0), 1.0, "{reason}");
    }
    // After all that, the tenants still serve.
    assert!(admitted(&proxy, &certs, &names("other")[0], &good).await);
    assert!(admitted(&proxy, &certs, &names("mine")[1], &alice).await);
}

async fn produce_one(producer: &FutureProducer) {
    let record = FutureRecord::to("orders").key("k").payload("reauth");
    if let Err((e, _)) = producer.send(record, Duration::from_secs(25)).await {
        panic!("a record was not delivered across re-authentication: {e}");
    }
}

/// A SASL client of tenant `tenant`: SCRAM-SHA-512 over TLS to the proxy, nothing else.
fn scram_client(
    proxy: &ProxyHandle,
    certs: &Certs,
    tenant: &str,
    user: &str,
    password: &str,
) -> ClientConfig {
    sasl_client(proxy, certs, tenant, "SCRAM-SHA-512", (user, password))
}

/// A SASL client of tenant `tenant` with `mechanism` and (user, password) over TLS to the proxy.
fn sasl_client(
    proxy: &ProxyHandle,
    certs: &Certs,
    tenant: &str,
    mechanism: &str,
    (user, password): (&str, &str),
) -> ClientConfig {
    let mut c = common::client_config(&proxy.bootstrap(tenant), &certs.ca);
    c.set("security.protocol", "SASL_SSL")
        .set("sasl.mechanisms", mechanism)
        .set("sasl.username", user)
        .set("sasl.password", password)
        .set("message.timeout.ms", "20000");
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_clients_authenticate_at_the_broker_through_the_proxy() {
    let opts = ClusterOptions::named("sasl")
        .nodes(1)
        .authorizer()
        .scram_user("alice", "alice-secret")
        .scram_user("bob", "bob-secret")
        // KIP-368: sessions expire after 3 s unless the client re-authenticates on the same connection.
        .config("connections.max.reauth.ms", "3000");
    let cluster = KafkaCluster::start(opts).expect("kafka");
    cluster.create_topic("orders", 1).expect("topic");
    let user = |name: &str| format!("User:{name}");
    let orders = || AclResource::Topic("orders".into());
    cluster
        .create_acls(&[
            Acl::allow(&user("alice"), AclOperation::Write, orders()),
            Acl::allow(&user("alice"), AclOperation::Read, orders()),
            Acl::allow(&user("alice"), AclOperation::Describe, orders()),
            Acl::allow(&user("alice"), AclOperation::Read, AclResource::Group("g-scram".into())),
            Acl::allow(&user("bob"), AclOperation::Describe, orders()),
        ])
        .expect("acls");
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = Certs::generate(dir.path(), DOMAIN, &["sasl"]).expect("certs");
    // TLS to the SASL_SSL listener, no client certificate: the broker authenticates the client itself.
    let tenant = format!(
        "  - name: sasl\n    bootstrap: [\"{}\"]\n    upstream:\n      tls: {{ ca: {} }}\n",
        cluster.bootstrap_sasl().expect("sasl listener"),
        path(cluster.cluster_ca_pem())
    );
    // With the audit trail on: each SASL verdict is an event (checked at the end).
    let audit = "audit: { file: audit.jsonl }\n";
    let mut proxy = ProxyHandle::start_with_config(&certs, audit, &tenant).expect("proxy");

    let alice = scram_client(&proxy, &certs, "sasl", "alice", "alice-secret");
    produce(&alice, "orders", "scram", 50, "all").await.expect("alice produces over SCRAM");
    let seen = consume(&alice, "orders", "g-scram", 50, Duration::from_secs(60)).expect("alice consumes");
    assert_same_records("scram", 50, &seen);

    // Re-authentication passes through too: one producer writes for 8 s, across two session lifetimes, on the
    // connections it opened first (a broker closing an expired session would show as new proxy sessions).
    let producer: FutureProducer = alice.create().expect("producer");
    let opened = || proxy.metric("kaas_proxy_session_opened_total{tenant=\"sasl\"}").expect("metrics");
    produce_one(&producer).await;
    let before = opened();
    for _ in 0..16 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        produce_one(&producer).await;
    }
    assert_eq!(opened(), before, "no reconnect: the client re-authenticated through the proxy");

    // A wrong password: the broker's own authentication error reaches the client through the proxy.
    assert_authentication_fails(&scram_client(&proxy, &certs, "sasl", "alice", "not-her-password"));
    // PLAIN passes through the same way: the broker checks the password and applies the same user's ACLs.
    let plain = |password| sasl_client(&proxy, &certs, "sasl", "PLAIN", ("alice", password));
    produce(&plain("alice-secret"), "orders", "plain", 5, "all").await.expect("alice produces over PLAIN");
    assert_authentication_fails(&plain("not-her-password"));
    let bob = scram_client(&proxy, &certs, "sasl", "bob", "bob-secret");
    let denied =
        produce_error(&sasl_client(&proxy, &certs, "sasl", "PLAIN", ("bob", "bob-secret")), "orders").await;
    assert!(is_topic_authorization_failure(&denied), "bob may not write over PLAIN either: {denied:?}");
    let denied = produce_error(&bob, "orders").await;
    assert!(is_topic_authorization_failure(&denied), "bob may not write: {denied:?}");
    let log = server_log(&cluster);
    assert!(
        log.contains("invalid credentials with SASL mechanism SCRAM-SHA-512"),
        "the broker refused the password"
    );
    // Kafka's PLAIN server words its refusal its own way.
    assert!(log.contains("Invalid username or password"), "the broker refused the PLAIN password");
    assert!(log.lines().any(|l| l.contains("User:bob") && l.contains("Denied")), "the broker saw User:bob");

    // The audit trail: every exchange's mechanism, user and verdict, and never a password.
    proxy.stop_and_wait();
    let text = std::fs::read_to_string(proxy.config_dir.path().join("audit.jsonl")).expect("audit file");
    assert!(!text.contains("secret") && !text.contains("not-her-password"), "no password is written");
    let verdicts: std::collections::BTreeSet<(String, String, String)> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json"))
        .filter(|e| e["type"] == "io.kaas.proxy.sasl.authenticated.v1")
        .map(|e| {
            let s = |v: &serde_json::Value| v.as_str().unwrap_or("-").to_owned();
            (s(&e["data"]["mechanism"]), s(&e["data"]["user"]), s(&e["data"]["outcome"]["error"]))
        })
        .collect();
    let want = [
        ("SCRAM-SHA-512", "alice", "NONE"),
        ("SCRAM-SHA-512", "alice", "SASL_AUTHENTICATION_FAILED"),
        ("PLAIN", "alice", "NONE"),
        ("PLAIN", "alice", "SASL_AUTHENTICATION_FAILED"),
        ("SCRAM-SHA-512", "bob", "NONE"),
        ("PLAIN", "bob", "NONE"),
    ];
    let want = want.map(|(m, u, o)| (m.to_owned(), u.to_owned(), o.to_owned())).into_iter().collect();
    assert_eq!(verdicts, want, "{text}");
}
