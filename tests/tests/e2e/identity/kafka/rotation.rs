//! Rotation: the tenant's cluster CA (and with it every broker certificate) and its clients CA are replaced,
//! the way Strimzi does it, while an idempotent librdkafka producer (acks=all) writes through kaas-proxy to a
//! real 3-node Apache Kafka cluster (replication 3) over mutual TLS with `identity: client`, presenting a
//! certificate of the OLD clients CA throughout. The proxy's `client_ca`, `upstream.tls.ca` and
//! `clients_ca_key` are the fixture's own bundle and key files, which each step replaces at once (written
//! beside, renamed over, as a Secret volume changes); the proxy re-reads them (its reload watcher, here every
//! 200 ms) and gives the new material to new connections, while open connections finish on what they started
//! with. No record is lost: every one acknowledged once and consumed once, in order per partition.

use crate::common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::producing::{Plan, Producing};
use common::{assert_same_records, client_config, consume, produce};
use kaas_e2e::certs::Certs;
use kaas_e2e::kafka::{ClusterOptions, KafkaCluster};
use kaas_e2e::proxy::{logs, wait_for_log, ProxyHandle, RELOAD_EVERY};
use kaas_e2e::{raw, DOMAIN};
use kafka_protocol::messages::MetadataRequest;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

const TENANT: &str = "mine";
/// A tenant whose one "broker" keeps presenting a certificate of the old cluster CA.
const STALE: &str = "stale";
const TOPIC: &str = "rotation";
const PARTITIONS: i32 = 3;
const RUN: &str = "rotation";
/// Where fresh clients write a few records to show they get through.
const CHECKS: &str = "checks";
/// How long the producer may take to get records acknowledged again after a step.
const RECOVERY: Duration = Duration::from_secs(60);
/// ~200 records a second.
const PLAN: Plan =
    Plan { topic: TOPIC, run: RUN, batch: 10, pause: Duration::from_millis(50), recovery: RECOVERY };

type CertFiles = (PathBuf, PathBuf);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ca_rotation_under_a_running_producer_loses_nothing() {
    let started = Instant::now();
    let phase = |what: &str| eprintln!("[{:>6.1?}] {what}", started.elapsed());
    let mut cluster = KafkaCluster::start(ClusterOptions::named("rotation")).expect("kafka");
    cluster.create_topic(TOPIC, PARTITIONS).expect("topic");
    cluster.create_topic(CHECKS, 1).expect("topic");
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = Certs::generate(dir.path(), DOMAIN, &[TENANT, STALE]).expect("certs");
    // Before anything rotates: a broker certificate of the old cluster CA, for the stale "broker".
    let old_keystore = std::fs::read_to_string(cluster.keystore(cluster.node_ids()[0]).expect("keystore"))
        .expect("read keystore");
    let stale = StaleBroker::start(&old_keystore).await;
    let tenants = [
        tenant_yaml(TENANT, &cluster, &cluster.bootstrap_tls()),
        tenant_yaml(STALE, &cluster, &stale.addr()),
    ];
    let proxy = ProxyHandle::start_with_tenants_yaml(&certs, &tenants.concat()).expect("proxy");
    let old = cluster.client_cert("producer").expect("old clients CA certificate");
    let old_alice = cluster.client_cert("alice").expect("old clients CA certificate");
    let client = |cert: &CertFiles| {
        let mut c = client_config(&proxy.bootstrap(TENANT), &certs.ca);
        c.set("ssl.certificate.location", path(&cert.0)).set("ssl.key.location", path(&cert.1));
        c
    };
    let name = |tenant: &str| format!("{tenant}.{DOMAIN}");

    let producer = Producing::start(&client(&old), PLAN).expect("producer");
    producer.wait_for_acks_since(started, 200, "first records").await;
    phase("producing");

    // The cluster CA: the proxy trusts old and new before any broker presents a new certificate...
    let reloaded = reloads();
    cluster.begin_cluster_ca_rotation().expect("begin cluster CA rotation");
    assert_eq!(pem_count(cluster.cluster_ca_pem()), 2, "cluster CA bundle: old and new");
    wait_for_reload(reloaded).await;
    phase("cluster CA bundle old+new read by the proxy; rolling brokers");
    // ... the brokers roll onto certificates of the new CA, one at a time ...
    let rolling = Instant::now();
    cluster.roll_broker_certificates().expect("roll brokers");
    producer.wait_for_acks_since(rolling, 100, "records after rolling the brokers").await;
    phase("brokers rolled");
    // The old CA is still in the bundle: the stale broker's certificate passes.
    assert!(!admitted(&proxy, &certs, &name(STALE), &old).await, "the stale broker answers nothing");
    stale.wait_for_handshakes(1).await;
    // A connection opened now, kept to the end: every later reload must leave it alone.
    let mut open = raw::connect_as(proxy.port, Some(&name(TENANT)), &certs.ca, Some((&old.0, &old.1)))
        .await
        .expect("open connection");
    raw::call(&mut open, 1, 9, &MetadataRequest::default()).await.expect("metadata on the open connection");

    // ... and the old CA leaves the bundle.
    let reloaded = reloads();
    cluster.finish_cluster_ca_rotation().expect("finish cluster CA rotation");
    assert_eq!(pem_count(cluster.cluster_ca_pem()), 1, "cluster CA bundle: new only");
    wait_for_reload(reloaded).await;
    phase("cluster CA bundle new only read by the proxy");
    // New connections verify the brokers against the new CA alone: they pass; the stale broker does not.
    produce(&client(&old_alice), CHECKS, "after-cluster-ca", 5, "all")
        .await
        .expect("fresh client, new cluster CA");
    assert!(!admitted(&proxy, &certs, &name(STALE), &old).await, "the stale broker answers nothing");
    let refusal = format!("TLS to {} failed (broker_certificate)", stale.addr());
    assert!(wait_for_log(&refusal, Duration::from_secs(5)), "no {refusal:?} in the proxy's log");
    assert_eq!(stale.handshakes(), 1, "the proxy completed a handshake with a broker of the old cluster CA");
    raw::call(&mut open, 2, 9, &MetadataRequest::default()).await.expect("the open connection, still");

    // The clients CA: every broker trusts old and new, then the proxy's bundle holds both and its key is the
    // new one.
    let reloaded = reloads();
    cluster.begin_clients_ca_rotation().expect("begin clients CA rotation");
    assert_eq!(pem_count(cluster.clients_ca_pem()), 2, "clients CA bundle: old and new");
    wait_for_reload(reloaded).await;
    phase("clients CA bundle old+new and new key read by the proxy");
    let new_carol = cluster.client_cert("carol").expect("new clients CA certificate");
    produce(&client(&new_carol), CHECKS, "new-ca", 5, "all").await.expect("fresh client, new clients CA");
    produce(&client(&old_alice), CHECKS, "old-ca", 5, "all").await.expect("fresh client, old clients CA");

    // The brokers drop the old clients CA: straight at a broker, an old certificate is refused from now on.
    cluster.finish_clients_ca_rotation().expect("finish clients CA rotation");
    phase("brokers trust the new clients CA only");
    for &node in cluster.node_ids() {
        assert!(
            !cluster.tls_accepts(node, &old_alice).expect("probe"),
            "node {node} takes an old certificate"
        );
        assert!(
            cluster.tls_accepts(node, &new_carol).expect("probe"),
            "node {node} refuses a new certificate"
        );
    }
    // Through the proxy a fresh connection with the old certificate still works, the bundle holding both: so
    // the certificate the proxy presents upstream for it is signed by the new clients CA.
    produce(&client(&old_alice), CHECKS, "old-ca-brokers-new", 5, "all")
        .await
        .expect("fresh client with an old certificate, brokers trusting only the new CA");
    raw::call(&mut open, 3, 9, &MetadataRequest::default()).await.expect("the open connection, still");

    // Last, the old clients CA leaves the proxy's bundle: fresh connections with its certificates are refused,
    // open ones (the producer's, this test's) carry on.
    let reloaded = reloads();
    cluster.drop_previous_clients_ca().expect("drop the old clients CA");
    assert_eq!(pem_count(cluster.clients_ca_pem()), 1, "clients CA bundle: new only");
    wait_for_reload(reloaded).await;
    let dropped = Instant::now();
    phase("clients CA bundle new only read by the proxy");
    assert!(!admitted(&proxy, &certs, &name(TENANT), &old_alice).await, "old certificate admitted");
    assert!(wait_for_log("reason=client_cert_unknown_ca", Duration::from_secs(5)), "no refusal logged");
    assert!(admitted(&proxy, &certs, &name(TENANT), &new_carol).await, "new certificate refused");
    raw::call(&mut open, 4, 9, &MetadataRequest::default()).await.expect("the open connection, still");
    producer.wait_for_acks_since(dropped, 100, "records on open connections after the drop").await;

    let sent = producer.finish();
    phase(&format!("{sent} records acknowledged"));
    let seen =
        consume(&client(&new_carol), TOPIC, "g-rotation", sent, Duration::from_secs(120)).expect("consume");
    assert_same_records(RUN, sent, &seen);
    phase("every record consumed once, in order per partition");

    let log = logs();
    assert!(reloads() >= 4, "the proxy reloaded {} times:\n{log}", reloads());
    assert!(!log.contains("reload refused"), "a reload was refused:\n{log}");
}

/// A tenant reaching `bootstrap` over mutual TLS with `identity: client`, its material the cluster's bundle
/// and key files (what the rotation replaces).
fn tenant_yaml(name: &str, cluster: &KafkaCluster, bootstrap: &str) -> String {
    let list: Vec<String> = bootstrap.split(',').map(|b| format!("\"{b}\"")).collect();
    format!(
        "  - name: {name}\n    bootstrap: [{}]\n    client_ca: {}\n    upstream:\n      tls: {{ ca: {} }}\n      \
         identity: client\n      clients_ca_key: {}\n",
        list.join(", "),
        path(cluster.clients_ca_pem()),
        path(cluster.cluster_ca_pem()),
        path(cluster.clients_ca_key()),
    )
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

/// How many certificates a PEM bundle holds.
fn pem_count(file: &Path) -> usize {
    CertificateDer::pem_file_iter(file).expect("bundle").count()
}

/// How many times the proxy has logged "routes reloaded" so far.
fn reloads() -> usize {
    logs().matches("routes reloaded").count()
}

/// Waits until the proxy reloaded after `since` reloads and then stayed put for a few polls: every file the
/// step before replaced has been read (a step replacing two files may be read in one reload or two).
async fn wait_for_reload(since: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while reloads() <= since {
        assert!(Instant::now() < deadline, "no reload within 10 s:\n{}", logs());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    loop {
        let n = reloads();
        tokio::time::sleep(RELOAD_EVERY * 3).await;
        if reloads() == n {
            break;
        }
    }
    let log = logs();
    assert!(!log.contains("reload refused"), "a reload was refused:\n{log}");
}

/// Whether a fresh client holding `cert` gets Kafka answers from `name` through the proxy (TLS 1.3 reports a
/// refused client certificate on the first read, so a Metadata round trip decides).
async fn admitted(proxy: &ProxyHandle, certs: &Certs, name: &str, cert: &CertFiles) -> bool {
    let client = Some((cert.0.as_path(), cert.1.as_path()));
    match raw::connect_as(proxy.port, Some(name), &certs.ca, client).await {
        Err(_) => false,
        Ok(mut conn) => raw::call(&mut conn, 1, 9, &MetadataRequest::default()).await.is_ok(),
    }
}

/// A TLS server presenting a broker's keystore (key, certificate, CA, PEM), counting the handshakes that
/// complete (the client accepted its certificate), then closing: a broker left on the old cluster CA.
struct StaleBroker {
    port: u16,
    handshakes: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl StaleBroker {
    async fn start(keystore: &str) -> StaleBroker {
        let chain = CertificateDer::pem_slice_iter(keystore.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .expect("chain");
        let key = PrivateKeyDer::from_pem_slice(keystore.as_bytes()).expect("key");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let handshakes = Arc::new(AtomicUsize::new(0));
        let counted = handshakes.clone();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, counted) = (acceptor.clone(), counted.clone());
                tokio::spawn(async move {
                    if acceptor.accept(tcp).await.is_ok() {
                        counted.fetch_add(1, Ordering::SeqCst);
                    }
                });
            }
        });
        StaleBroker { port, handshakes, task }
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn handshakes(&self) -> usize {
        self.handshakes.load(Ordering::SeqCst)
    }

    async fn wait_for_handshakes(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.handshakes() < n {
            assert!(Instant::now() < deadline, "{} handshakes, not {n}", self.handshakes());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for StaleBroker {
    fn drop(&mut self) {
        self.task.abort();
    }
}
