//! ACME end to end: a real Pebble (scripts/install-pebble.sh) issues the certificate of a Tansu-backed tenant
//! with `tls: { acme: true }` by TLS-ALPN-01 on the proxy's one TLS port; a librdkafka client that trusts only
//! Pebble's root (fetched from its management port) then produces and consumes through the proxy, through
//! `acme.kaas.localhost` and the broker's `b111` name alike. A restart on the same store reuses the stored
//! certificate: no order, the same certificate served.

use crate::common;

use common::producing::{Plan, Producing};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use kaas_e2e::certs::Certs;
use kaas_e2e::pebble::{self, Pebble};
use kaas_e2e::proxy::{wait_for_log, ProxyHandle};
use kaas_e2e::relay::CountingRelay;
use kaas_e2e::tansu::Tansu;
use kaas_e2e::{free_port, raw, DOMAIN};
use rustls::pki_types::pem::PemObject;

const ISSUED: &str = "kaas_proxy_acme_orders_total{tenant=\"acme\",outcome=\"issued\"}";
const FAILED: &str = "kaas_proxy_acme_orders_total{tenant=\"acme\",outcome=\"failed\"}";
const NOT_AFTER: &str = "kaas_proxy_tls_certificate_not_after_timestamp_seconds{tenant=\"acme\"}";

/// Pebble, a Tansu broker (node id 111), the proxy's default certificate (not trusted by the clients here), and
/// the ACME store, all in one temporary directory.
struct Setup {
    dir: tempfile::TempDir,
    certs: Certs,
    tansu: Tansu,
    pebble: Pebble,
    /// The proxy's TLS port, which Pebble validates TLS-ALPN-01 against.
    port: u16,
    /// The port Pebble validates HTTP-01 against: the proxy's `http01_listen`.
    http_port: u16,
}

impl Setup {
    fn start() -> Setup {
        Self::start_issuing_for(None)
    }

    /// Like [`Setup::start`], Pebble's certificates valid for `validity_seconds`.
    fn start_issuing_for(validity_seconds: Option<u64>) -> Setup {
        assert!(
            pebble::installed(),
            "pebble and pebble-challtestsrv are needed: run scripts/install-pebble.sh"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let certs = Certs::generate(dir.path(), DOMAIN, &["acme"]).expect("certs");
        let tansu = Tansu::start("acme").expect("tansu");
        let port = free_port();
        let http_port = free_port();
        let pebble = Pebble::start_issuing_for(port, http_port, validity_seconds).expect("pebble");
        Setup { dir, certs, tansu, pebble, port, http_port }
    }

    fn store(&self) -> PathBuf {
        self.dir.path().join("acme-state")
    }

    /// A proxy on the port Pebble validates against, the tenant's certificate from ACME by TLS-ALPN-01.
    fn proxy(&self) -> ProxyHandle {
        self.proxy_answering(TLS_ALPN)
    }

    /// Like [`Setup::proxy`], answering `challenge` (the section's `challenge` lines).
    fn proxy_answering(&self, challenge: &str) -> ProxyHandle {
        let tenants = tenant_yaml(&self.tansu.addr());
        ProxyHandle::start_on_port(&self.certs, self.port, &self.acme_yaml(challenge), &tenants)
            .expect("proxy")
    }

    /// The `acme` section for this Pebble and store, answering `challenge`.
    fn acme_yaml(&self, challenge: &str) -> String {
        acme_yaml(&self.pebble.directory_url(), Some(&self.pebble.https_ca), &self.store(), challenge)
    }

    /// Pebble's root, written to a file: the only CA the clients trust.
    fn pebble_root(&self) -> PathBuf {
        let path = self.dir.path().join("pebble-root.pem");
        std::fs::write(&path, self.pebble.root_pem().expect("pebble root")).expect("write root");
        path
    }

    /// Waits for the first certificate; fails with both logs.
    fn wait_issued(&self, proxy: &ProxyHandle) {
        self.wait_issued_count(proxy, 1, Duration::from_secs(120));
    }

    /// Waits until `count` certificates were issued; fails with both logs.
    fn wait_issued_count(&self, proxy: &ProxyHandle, count: u32, within: Duration) {
        let issued = proxy.wait_for_metric(ISSUED, f64::from(count), within).expect("metrics");
        assert_eq!(
            issued,
            f64::from(count),
            "not {count} certificate(s) issued; pebble log:\n{}\nproxy log:\n{}",
            self.pebble.logs(),
            kaas_e2e::proxy::logs()
        );
    }
}

/// The `challenge` lines of the `acme` section for TLS-ALPN-01.
const TLS_ALPN: &str = "  challenge: tls-alpn-01\n";

/// The `acme` section for `directory_url`, trusting `https_ca` for it, storing in `store`, answering `challenge`
/// (lines of the section).
fn acme_yaml(directory_url: &str, https_ca: Option<&Path>, store: &Path, challenge: &str) -> String {
    let roots = https_ca.map(|ca| format!("  trust_roots: {}\n", ca.display())).unwrap_or_default();
    format!(
        "acme:\n  directory_url: \"{directory_url}\"\n  contact: [\"mailto:ops@example.com\"]\n{roots}{challenge}  \
         store: {{ dir: {} }}\n",
        store.display()
    )
}

/// Tenant `acme` on `bootstrap` (Tansu's only broker is node 111), its certificate from ACME.
fn tenant_yaml(bootstrap: &str) -> String {
    format!(
        "  - name: acme\n    bootstrap: [\"{bootstrap}\"]\n    upstream: {{ plaintext: true }}\n    tls: {{ acme: true, broker_ids: [111] }}\n"
    )
}

/// A TLS handshake offering ALPN `acme-tls/1`, as a CA validating TLS-ALPN-01 does.
async fn acme_tls_hello(port: u16, name: &str, ca: &Path) -> std::io::Result<()> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(ca).map_err(std::io::Error::other)? {
        roots.add(cert.map_err(std::io::Error::other)?).map_err(std::io::Error::other)?;
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"acme-tls/1".to_vec()];
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let name = rustls::pki_types::ServerName::try_from(name.to_owned()).map_err(std::io::Error::other)?;
    tokio_rustls::TlsConnector::from(std::sync::Arc::new(config)).connect(name, tcp).await.map(drop)
}

/// The leaf certificate (DER) served for `name`, verified against `ca`.
async fn served_leaf(port: u16, name: &str, ca: &Path) -> Vec<u8> {
    let mut tls = raw::connect(port, Some(name), ca).await.expect("TLS handshake verified by Pebble's root");
    let certs = tls.get_mut().get_ref().1.peer_certificates().expect("server certificate");
    certs.first().expect("leaf").to_vec()
}

/// The orders Pebble accepted, from its log (one `Added order` line per new order; not the `POST /order-plz`
/// lines, which also count requests Pebble refused as badNonce, 5 % of them, and the client sent again).
fn pebble_orders(pebble: &Pebble) -> usize {
    pebble.logs().lines().filter(|l| l.contains("Added order")).count()
}

async fn round_trip(proxy: &ProxyHandle, root: &Path, topic: &str, run: &str) {
    let config = client_config(&proxy.bootstrap("acme"), root);
    create_topic(&config, topic, 2).await.expect("create topic through the ACME certificate");
    produce(&config, topic, run, 200, "all").await.expect("produce");
    let seen = consume(&config, topic, &format!("g-{run}"), 200, Duration::from_secs(60)).expect("consume");
    assert_same_records(run, 200, &seen);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pebble_issues_by_tls_alpn_and_a_client_trusting_only_pebble_round_trips() {
    let s = Setup::start();
    let proxy = s.proxy();
    s.wait_issued(&proxy);
    assert!(
        wait_for_log("answered a TLS-ALPN-01 challenge", Duration::from_secs(1)),
        "validated on the TLS port"
    );
    let root = s.pebble_root();
    // Both names the client uses verify against Pebble's root alone (the default certificate would not).
    for name in [format!("acme.{DOMAIN}"), format!("b111.acme.{DOMAIN}")] {
        let leaf = served_leaf(proxy.port, &name, &root).await;
        assert!(!leaf.is_empty(), "{name}");
    }
    assert!(
        raw::connect(proxy.port, Some(&format!("acme.{DOMAIN}")), &s.certs.ca).await.is_err(),
        "not the default"
    );
    let not_after = proxy.metric(NOT_AFTER).expect("metrics");
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs_f64();
    assert!(not_after > now, "expiry gauge set from the ACME certificate: {not_after}");
    round_trip(&proxy, &root, "acme-orders", "issued").await;
    assert_eq!(proxy.metric(FAILED).expect("metrics"), 0.0);
    let stored = std::fs::metadata(s.store().join("acme.pem")).expect("stored certificate");
    #[cfg(unix)]
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&stored.permissions()) & 0o777, 0o600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_on_the_same_store_reuses_the_certificate_without_an_order() {
    let s = Setup::start();
    let first = s.proxy();
    s.wait_issued(&first);
    let root = s.pebble_root();
    let leaf = served_leaf(first.port, &format!("acme.{DOMAIN}"), &root).await;
    let orders = pebble_orders(&s.pebble);
    assert_eq!(orders, 1, "one order for the tenant; pebble log:\n{}", s.pebble.logs());
    drop(first);

    let second = s.proxy();
    assert!(
        wait_for_log("ACME: reusing the stored certificate", Duration::from_secs(10)),
        "stored certificate reused"
    );
    // Several ticks of the ACME manager: still nothing ordered.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(second.metric(ISSUED).expect("metrics"), 0.0, "no order after the restart");
    assert_eq!(second.metric(FAILED).expect("metrics"), 0.0);
    assert_eq!(pebble_orders(&s.pebble), orders, "Pebble saw no new order");
    assert_eq!(
        served_leaf(second.port, &format!("acme.{DOMAIN}"), &root).await,
        leaf,
        "the same certificate"
    );
    assert!(second.metric(NOT_AFTER).expect("metrics") > 0.0, "expiry gauge set from the stored certificate");
    round_trip(&second, &root, "acme-restart", "restart").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn until_issued_the_default_certificate_serves_and_acme_hellos_never_reach_brokers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = Certs::generate(dir.path(), DOMAIN, &["acme"]).expect("certs");
    let tansu = Tansu::start("acme").expect("tansu");
    let relay = CountingRelay::start(tansu.addr()).await.expect("relay");
    // Nothing listens at this directory: every order fails.
    let unreachable = format!("https://127.0.0.1:{}/dir", free_port());
    let acme = acme_yaml(&unreachable, None, &dir.path().join("acme-state"), TLS_ALPN);
    let proxy = ProxyHandle::start_with_config(&certs, &acme, &tenant_yaml(&relay.addr())).expect("proxy");
    assert_eq!(
        proxy.wait_for_metric(FAILED, 1.0, Duration::from_secs(20)).expect("metrics"),
        1.0,
        "failed order counted"
    );
    assert_eq!(proxy.metric(ISSUED).expect("metrics"), 0.0);
    assert!(wait_for_log("ACME order failed; not issued", Duration::from_secs(2)));
    assert_eq!(
        proxy.admin_status("/readyz").expect("readyz"),
        "HTTP/1.0 200 OK",
        "ready without the certificate"
    );
    // Meanwhile the tenant's names are served the default certificate, and its cluster is reached.
    let tls = raw::connect(proxy.port, Some(&format!("acme.{DOMAIN}")), &certs.ca)
        .await
        .expect("default certificate");
    drop(tls);
    let before = relay.accepted();
    assert!(before >= 1, "the bootstrap session reached the cluster");
    // A TLS-ALPN-01 hello with no challenge pending is refused in the ClientHello step, never routed.
    for name in [format!("acme.{DOMAIN}"), format!("b111.acme.{DOMAIN}"), format!("nobody.{DOMAIN}")] {
        let err = acme_tls_hello(proxy.port, &name, &certs.ca).await.expect_err("refused");
        assert_eq!(raw::alert_of(&err), Some(rustls::AlertDescription::UnrecognisedName), "{name}: {err}");
    }
    assert!(wait_for_log("acme-tls/1 offered but no ACME challenge is pending", Duration::from_secs(2)));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(relay.accepted(), before, "no upstream connection for acme-tls/1 hellos");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_under_a_streaming_producer_changes_the_certificate_with_no_error_and_no_reconnect() {
    // 40 s certificates: renewal is due within 30 s of issuance (at a random time in Pebble's renewal window).
    let s = Setup::start_issuing_for(Some(40));
    let proxy = s.proxy();
    s.wait_issued(&proxy);
    let root = s.pebble_root();
    let name = format!("acme.{DOMAIN}");
    let first = served_leaf(proxy.port, &name, &root).await;
    let config = client_config(&proxy.bootstrap("acme"), &root);
    create_topic(&config, "renewal", 2).await.expect("create topic");
    let plan = Plan {
        topic: "renewal",
        run: "renewal",
        batch: 10,
        pause: Duration::from_millis(50),
        recovery: Duration::from_secs(30),
    };
    let producer = Producing::start(&config, plan).expect("producer");
    producer.wait_for_acks(100, |_| true, "before renewal").await;
    let opened = "kaas_proxy_session_opened_total{tenant=\"acme\"}";
    let sessions = proxy.metric(opened).expect("metrics");
    assert!(sessions >= 2.0, "the producer's sessions and the leaf check are counted: {sessions}");
    s.wait_issued_count(&proxy, 2, Duration::from_secs(60));
    assert_eq!(proxy.metric(opened).expect("metrics"), sessions, "the producer did not reconnect");
    let renewed_at = std::time::Instant::now();
    producer.wait_for_acks_since(renewed_at, 100, "after renewal").await;
    let second = served_leaf(proxy.port, &name, &root).await;
    assert_ne!(first, second, "new handshakes are served the renewed certificate");
    let sent = producer.finish();
    assert!(sent >= 200, "{sent} records sent");
    assert_eq!(proxy.metric(FAILED).expect("metrics"), 0.0);
    let seen = consume(&config, "renewal", "g-renewal", sent, Duration::from_secs(60)).expect("consume");
    assert_same_records("renewal", sent, &seen);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_added_by_reload_is_issued_without_a_restart_and_new_broker_ids_order_again() {
    let s = Setup::start();
    let acme = s.acme_yaml(TLS_ALPN);
    let other = format!(
        "  - name: other\n    bootstrap: [\"{}\"]\n    upstream: {{ plaintext: true }}\n",
        s.tansu.addr()
    );
    let proxy = ProxyHandle::start_on_port(&s.certs, s.port, &acme, &other).expect("proxy");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(proxy.metric(ISSUED).expect("metrics"), 0.0, "no ACME tenant yet");
    proxy
        .rewrite_config(&s.certs, &acme, &format!("{other}{}", tenant_yaml(&s.tansu.addr())))
        .expect("rewrite");
    s.wait_issued(&proxy);
    let root = s.pebble_root();
    round_trip(&proxy, &root, "reloaded", "reloaded").await;
    let b111 = format!("b111.acme.{DOMAIN}");
    let before = served_leaf(proxy.port, &b111, &root).await;
    // A second broker id: a new order at once, for the new name set.
    let two = tenant_yaml(&s.tansu.addr()).replace("[111]", "[111, 112]");
    proxy.rewrite_config(&s.certs, &acme, &format!("{other}{two}")).expect("rewrite");
    s.wait_issued_count(&proxy, 2, Duration::from_secs(60));
    assert!(kaas_e2e::proxy::logs().contains("\"b112.acme.kaas.localhost\"]"), "ordered with the new name");
    assert_ne!(served_leaf(proxy.port, &b111, &root).await, before, "the new certificate serves");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pebble_issues_by_http01_on_the_plain_listener() {
    let s = Setup::start();
    let challenge = format!("  challenge: http-01\n  http01_listen: \"[::]:{}\"\n", s.http_port);
    let proxy = s.proxy_answering(&challenge);
    s.wait_issued(&proxy);
    assert!(!kaas_e2e::proxy::logs().contains("answered a TLS-ALPN-01 challenge"), "validated over HTTP");
    // Once the order is done the listener answers nothing.
    let mut http = std::net::TcpStream::connect(("127.0.0.1", s.http_port)).expect("http01 listener");
    std::io::Write::write_all(&mut http, b"GET /.well-known/acme-challenge/x HTTP/1.0\r\n\r\n")
        .expect("write");
    let mut response = String::new();
    std::io::Read::read_to_string(&mut http, &mut response).expect("read");
    assert!(response.starts_with("HTTP/1.0 404"), "{response}");
    let root = s.pebble_root();
    round_trip(&proxy, &root, "http01", "http01").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pebble_issues_a_wildcard_by_dns01_through_the_hook() {
    let s = Setup::start();
    // The operator's hook, here publishing to pebble-challtestsrv (the DNS Pebble asks), logging each call.
    let calls = s.dir.path().join("hook-calls.log");
    let hook = s.dir.path().join("set-txt");
    let script = format!(
        "#!/bin/sh\nset -e\necho \"$1 $2\" >> {calls}\nport={port}\ncase \"$1\" in\n  \
         set) curl -fsS -X POST -d \"{{\\\"host\\\":\\\"$2.\\\",\\\"value\\\":\\\"$3\\\"}}\" http://127.0.0.1:$port/set-txt ;;\n  \
         clear) curl -fsS -X POST -d \"{{\\\"host\\\":\\\"$2.\\\"}}\" http://127.0.0.1:$port/clear-txt ;;\n  \
         *) exit 2 ;;\nesac\n",
        calls = calls.display(),
        port = s.pebble.dns_management_port
    );
    std::fs::write(&hook, script).expect("hook");
    #[cfg(unix)]
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    let challenge = format!("  challenge: dns-01\n  dns01_hook: [\"{}\"]\n", hook.display());
    let proxy = s.proxy_answering(&challenge);
    s.wait_issued(&proxy);
    let calls = std::fs::read_to_string(&calls).expect("hook calls");
    let record = format!("_acme-challenge.acme.{DOMAIN}");
    // One record name for the base name and its wildcard, set twice and cleared twice.
    assert_eq!(calls.lines().filter(|l| *l == format!("set {record}")).count(), 2, "{calls}");
    assert_eq!(calls.lines().filter(|l| *l == format!("clear {record}")).count(), 2, "{calls}");
    let root = s.pebble_root();
    // A DNS-01 certificate names no broker: the wildcard covers b111.
    for name in [format!("acme.{DOMAIN}"), format!("b111.acme.{DOMAIN}")] {
        served_leaf(proxy.port, &name, &root).await;
    }
    round_trip(&proxy, &root, "dns01", "dns01").await;
}

/// A TCP relay in front of Pebble's directory port that can be taken down (every open connection cut, new ones
/// closed at once) and brought back: Pebble keeps its state (it holds it in memory only) while unreachable.
struct Outage {
    port: u16,
    down: std::sync::Arc<std::sync::atomic::AtomicBool>,
    open: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Outage {
    async fn start(target: u16) -> Outage {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let down = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let open = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (is_down, conns) = (down.clone(), open.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if is_down.load(Ordering::SeqCst) {
                    continue;
                }
                let relay = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(("127.0.0.1", target)).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                conns.lock().unwrap_or_else(|p| p.into_inner()).push(relay.abort_handle());
            }
        });
        Outage { port, down, open, task }
    }

    fn set_down(&self, down: bool) {
        self.down.store(down, std::sync::atomic::Ordering::SeqCst);
        if down {
            for conn in self.open.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
                conn.abort();
            }
        }
    }
}

impl Drop for Outage {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_ca_down_at_renewal_the_old_certificate_serves_and_renewal_succeeds_when_it_returns() {
    // 40 s certificates: renewal due within 30 s of issuance (Pebble's renewal window spans the lifetime; a
    // renewal information request cut off by the outage leaves two thirds, about 26 s).
    let s = Setup::start_issuing_for(Some(40));
    let outage = Outage::start(s.pebble.port).await;
    let directory = format!("https://127.0.0.1:{}/dir", outage.port);
    let acme = acme_yaml(&directory, Some(&s.pebble.https_ca), &s.store(), TLS_ALPN);
    let proxy =
        ProxyHandle::start_on_port(&s.certs, s.port, &acme, &tenant_yaml(&s.tansu.addr())).expect("proxy");
    s.wait_issued(&proxy);
    let root = s.pebble_root();
    let name = format!("acme.{DOMAIN}");
    outage.set_down(true);
    // What serves once the CA is cut off (a renewal may have come just before).
    let issued = proxy.metric(ISSUED).expect("metrics");
    let first = served_leaf(proxy.port, &name, &root).await;
    assert_eq!(
        proxy.wait_for_metric(FAILED, 2.0, Duration::from_secs(50)).expect("metrics"),
        2.0,
        "renewals fail"
    );
    assert!(wait_for_log("ACME order failed; keeps its certificate", Duration::from_secs(1)));
    assert_eq!(served_leaf(proxy.port, &name, &root).await, first, "the old certificate still serves");
    assert_eq!(proxy.metric(ISSUED).expect("metrics"), issued);
    outage.set_down(false);
    s.wait_issued_count(&proxy, issued as u32 + 1, Duration::from_secs(20));
    assert_ne!(served_leaf(proxy.port, &name, &root).await, first, "renewed once the CA is back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_challenge_the_ca_cannot_validate_is_counted_by_type() {
    let s = Setup::start();
    // The proxy is not on the port Pebble validates TLS-ALPN-01 against: every validation fails.
    let proxy =
        ProxyHandle::start_with_config(&s.certs, &s.acme_yaml(TLS_ALPN), &tenant_yaml(&s.tansu.addr()))
            .expect("proxy");
    let failures = "kaas_proxy_acme_challenge_failures_total{challenge=\"tls-alpn-01\"}";
    let seen = proxy.wait_for_metric(failures, 1.0, Duration::from_secs(30)).expect("metrics");
    assert_eq!(seen, 1.0, "pebble log:\n{}", s.pebble.logs());
    assert_eq!(proxy.metric(FAILED).expect("metrics"), 1.0);
    assert_eq!(proxy.metric(ISSUED).expect("metrics"), 0.0);
    assert_eq!(
        proxy.metric("kaas_proxy_acme_challenge_failures_total{challenge=\"http-01\"}").expect("metrics"),
        0.0
    );
    assert!(wait_for_log("order invalid: a challenge failed validation", Duration::from_secs(1)));
}

/// Two replicas on the `kubernetes` store of a real API server, as the chart's ServiceAccount with exactly its
/// Role: the one holding the Lease orders, the other
/// serves the same certificate from the watched Secret, and the CA's validation, which Pebble sends only to
/// the other replica's port, is answered there from the challenge answers the first published.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_on_the_kubernetes_store_share_one_order_and_answer_for_each_other() {
    use k8s_openapi::api::coordination::v1::Lease;
    use k8s_openapi::api::core::v1::Secret;
    use kube::api::Api;

    // The chart's own namespace for the store (acme.storeNamespace), apart from the release's.
    const STORE: &str = "kaas-proxy-acme";
    let plane = kaas_e2e::apiserver::ControlPlane::start().await.expect("kube-apiserver");
    plane.namespace("kaas-system").await.expect("namespace");
    // The replicas run as the chart's ServiceAccount with exactly the chart's Role.
    let admin = plane.admin().await.expect("admin client");
    let values = serde_json::json!({ "acme": { "enabled": true } });
    let chart =
        kaas_e2e::python::render_chart("kaas-proxy", &values, "kaas-proxy", "kaas-system").expect("render");
    // The store's namespace first, then the rest where the chart puts it (the Role and its binding there).
    let rbac = ["Namespace", "ServiceAccount", "Role", "RoleBinding"];
    for object in kaas_e2e::apiserver::documents(&chart).expect("documents") {
        if rbac.contains(&object["kind"].as_str().unwrap_or_default()) {
            let yaml = object.to_string();
            let ns = match object["kind"].as_str() {
                Some("Namespace") => None,
                _ => Some(object["metadata"]["namespace"].as_str().unwrap_or("kaas-system")),
            };
            kaas_e2e::apiserver::apply_yaml(&admin, &yaml, "kaas-e2e", ns).await.expect("apply");
        }
    }
    let kubeconfig = plane.service_account("kaas-system", "kaas-proxy").await.expect("token");
    let s = Setup::start();
    let yaml = |identity: &str| {
        let roots = format!("  trust_roots: {}\n", s.pebble.https_ca.display());
        format!(
            "acme:\n  directory_url: \"{}\"\n{roots}{TLS_ALPN}  store: {{ kubernetes: {{ namespace: {STORE}, \
             name: kaas-proxy-acme, identity: {identity}, kubeconfig: {} }} }}\n",
            s.pebble.directory_url(),
            kubeconfig.display()
        )
    };
    let tenants = tenant_yaml(&s.tansu.addr());
    let leases: Api<Lease> = Api::namespaced(admin.clone(), STORE);
    // Replica a starts first and takes the Lease; b, on the port Pebble validates against, follows.
    let a =
        ProxyHandle::start_on_port(&s.certs, free_port(), &yaml("replica-a"), &tenants).expect("replica a");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let holder =
            leases.get_opt("kaas-proxy-acme").await.expect("lease").and_then(|l| l.spec?.holder_identity);
        if holder.as_deref() == Some("replica-a") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "replica a never held the Lease: {holder:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let b = ProxyHandle::start_on_port(&s.certs, s.port, &yaml("replica-b"), &tenants).expect("replica b");
    s.wait_issued(&a);

    let root = s.pebble_root();
    let name = format!("acme.{DOMAIN}");
    let from_a = served_leaf(a.port, &name, &root).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match raw::connect(b.port, Some(&name), &root).await {
            Ok(_) if served_leaf(b.port, &name, &root).await == from_a => break,
            _ => assert!(std::time::Instant::now() < deadline, "replica b never served a's certificate"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(pebble_orders(&s.pebble), 1, "one order for both replicas");
    assert_eq!(b.metric(ISSUED).expect("metrics"), 0.0, "b ordered nothing");
    // The CA reached only b, and the order was validated: b answered from what a published.
    assert!(wait_for_log("answered a TLS-ALPN-01 challenge", Duration::from_secs(1)), "validated");

    let secrets: Api<Secret> = Api::namespaced(admin, STORE);
    let cert = secrets.get("kaas-proxy-acme-cert-acme").await.expect("certificate Secret");
    assert_eq!(cert.type_.as_deref(), Some("kubernetes.io/tls"));
    assert!(secrets.get_opt("kaas-proxy-acme-account").await.expect("get").is_some(), "account stored");
    let challenges = secrets.get("kaas-proxy-acme-challenges").await.expect("challenges Secret");
    assert!(challenges.data.unwrap_or_default().is_empty(), "answers withdrawn once the order ended");
    round_trip(&b, &root, "acme-replicas", "replicas").await;
}

const RENEWALS: &str = "kaas_proxy_acme_renewals_total";

/// `kaas_proxy_acme_renewals_total{trigger}` of `proxy`.
fn renewals(proxy: &ProxyHandle, trigger: &str) -> f64 {
    proxy.metric(&format!("{RENEWALS}{{trigger=\"{trigger}\"}}")).expect("metrics")
}

/// The stored key and chain of tenant `acme` (the `dir` store's one file).
fn stored_pem(s: &Setup) -> String {
    std::fs::read_to_string(s.store().join("acme.pem")).expect("stored certificate")
}

/// Whether Pebble placed an order naming the certificate it replaces (RFC 9773 §5) and accepted it.
fn pebble_saw_a_replacement(pebble: &Pebble) -> bool {
    pebble.logs().contains("is a replacement of")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_comes_in_the_window_the_ca_suggests_not_at_two_thirds_and_names_what_it_replaces() {
    // 90-day certificates: two thirds of the lifetime is 60 days away, so only the CA's window renews here.
    let s = Setup::start();
    let first = s.proxy();
    s.wait_issued(&first);
    let root = s.pebble_root();
    let name = format!("acme.{DOMAIN}");
    let before = served_leaf(first.port, &name, &root).await;
    drop(first);
    // Pebble's renewalInfo for the stored certificate now says: renew 12 to 18 s from now.
    let now = std::time::SystemTime::now();
    let (start, end) = (now + Duration::from_secs(12), now + Duration::from_secs(18));
    s.pebble.set_renewal_window(&stored_pem(&s), start, end).expect("set renewal window");

    let proxy = s.proxy();
    assert!(wait_for_log("ACME: reusing the stored certificate", Duration::from_secs(10)));
    s.wait_issued_count(&proxy, 1, Duration::from_secs(60));
    let renewed = std::time::SystemTime::now();
    assert!(renewed >= start, "renewed {:?} before the window opened", start.duration_since(renewed));
    assert_eq!(renewals(&proxy, "ari_window"), 1.0, "renewed for the CA's window");
    assert_eq!(renewals(&proxy, "schedule"), 0.0);
    assert!(pebble_saw_a_replacement(&s.pebble), "the order named the certificate it replaces");
    assert_ne!(served_leaf(proxy.port, &name, &root).await, before, "the new certificate serves");
    assert_eq!(proxy.metric(FAILED).expect("metrics"), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_revoked_at_the_ca_is_replaced_at_once() {
    let s = Setup::start();
    let first = s.proxy();
    s.wait_issued(&first);
    let root = s.pebble_root();
    let name = format!("acme.{DOMAIN}");
    let revoked = served_leaf(first.port, &name, &root).await;
    drop(first);
    // Revoked through ACME as the proxy's own account; Pebble's renewalInfo for it is then a window in the past.
    pebble::revoke(&s.store().join("account.json"), &s.pebble.https_ca, &stored_pem(&s))
        .await
        .expect("revoke");

    let proxy = s.proxy();
    s.wait_issued_count(&proxy, 1, Duration::from_secs(60));
    assert_eq!(renewals(&proxy, "ari_now"), 1.0, "replaced because the CA asked for it now");
    assert!(pebble_saw_a_replacement(&s.pebble), "the order named the revoked certificate");
    let served = served_leaf(proxy.port, &name, &root).await;
    assert_ne!(served, revoked, "a new certificate (another serial) serves");
    assert!(!stored_pem(&s).is_empty());
    round_trip(&proxy, &root, "acme-revoked", "revoked").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_stored_certificate_is_replaced_at_once() {
    // 8 s certificates; the proxy is stopped, and every stored certificate has expired when it starts again.
    let s = Setup::start_issuing_for(Some(8));
    let first = s.proxy();
    s.wait_issued(&first);
    drop(first);
    let expired = stored_pem(&s);
    tokio::time::sleep(Duration::from_secs(9)).await;

    let proxy = s.proxy();
    assert!(
        wait_for_log("ACME: the stored certificate has expired; replacing it", Duration::from_secs(10)),
        "seen as expired"
    );
    s.wait_issued_count(&proxy, 1, Duration::from_secs(60));
    assert!(renewals(&proxy, "expired") >= 1.0, "replaced because it expired");
    let root = s.pebble_root();
    let served = served_leaf(proxy.port, &format!("acme.{DOMAIN}"), &root).await;
    assert_ne!(pebble::leaf_pem(&expired).expect("leaf"), pebble::leaf_pem(&stored_pem(&s)).expect("leaf"));
    assert!(!served.is_empty(), "a certificate valid now verifies against Pebble's root");
}

/// A front for Pebble's ACME port that terminates TLS with Pebble's own certificate and forwards each request
/// on a connection of its own (`Connection: close`), except that, once armed, it refuses that many new orders
/// as Let's Encrypt does when a rate limit is hit: 429, `rateLimited`, `Retry-After`. Records when each new
/// order arrived and whether it was refused.
struct RateLimitingFront {
    port: u16,
    refusals: std::sync::Arc<std::sync::atomic::AtomicU32>,
    new_orders: std::sync::Arc<std::sync::Mutex<Vec<(std::time::Instant, bool)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl RateLimitingFront {
    async fn start(pebble: &Pebble, retry_after_seconds: u64) -> RateLimitingFront {
        use std::sync::atomic::{AtomicU32, Ordering};
        use std::sync::{Arc, Mutex};
        let cert = rustls::pki_types::CertificateDer::pem_file_iter(&pebble.https_cert)
            .expect("cert")
            .collect::<Result<Vec<_>, _>>()
            .expect("cert");
        let key = rustls::pki_types::PrivateKeyDer::from_pem_file(&pebble.https_key).expect("key");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(cert, key)
            .expect("server config");
        let mut roots = rustls::RootCertStore::empty();
        for ca in rustls::pki_types::CertificateDer::pem_file_iter(&pebble.https_ca).expect("ca") {
            roots.add(ca.expect("ca")).expect("root");
        }
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let (acceptor, connector) = (
            tokio_rustls::TlsAcceptor::from(Arc::new(server)),
            tokio_rustls::TlsConnector::from(Arc::new(client)),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let refusals = Arc::new(AtomicU32::new(0));
        let new_orders = Arc::new(Mutex::new(Vec::new()));
        let (left, seen, upstream) = (refusals.clone(), new_orders.clone(), pebble.port);
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, connector, left, seen) =
                    (acceptor.clone(), connector.clone(), left.clone(), seen.clone());
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                    let Some((head, body)) = read_request(&mut tls).await else { return };
                    let arrived = std::time::Instant::now();
                    if head.starts_with("POST /order-plz ") {
                        let refuse = left
                            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                            .is_ok();
                        seen.lock().unwrap_or_else(|p| p.into_inner()).push((arrived, refuse));
                        if refuse {
                            let problem = "{\"type\":\"urn:ietf:params:acme:error:rateLimited\",\
                                           \"detail\":\"e2e: too many new orders\",\"status\":429}";
                            let response = format!(
                                "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/problem+json\r\n\
                                 Retry-After: {retry_after_seconds}\r\nContent-Length: {}\r\n\
                                 Connection: close\r\n\r\n{problem}",
                                problem.len()
                            );
                            let _ = tokio::io::AsyncWriteExt::write_all(&mut tls, response.as_bytes()).await;
                            let _ = tokio::io::AsyncWriteExt::shutdown(&mut tls).await;
                            return;
                        }
                    }
                    // Forwarded with `Connection: close`: the next request comes on a new connection, and is seen.
                    let head: String = head
                        .split("\r\n")
                        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:") && !l.is_empty())
                        .map(|l| format!("{l}\r\n"))
                        .collect();
                    let Ok(tcp) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await else {
                        return;
                    };
                    let server = rustls::pki_types::ServerName::try_from("localhost").expect("name");
                    let Ok(mut out) = connector.connect(server, tcp).await else { return };
                    let request = [format!("{head}Connection: close\r\n\r\n").into_bytes(), body].concat();
                    if tokio::io::AsyncWriteExt::write_all(&mut out, &request).await.is_err() {
                        return;
                    }
                    let _ = tokio::io::copy(&mut out, &mut tls).await;
                    let _ = tokio::io::AsyncWriteExt::shutdown(&mut tls).await;
                });
            }
        });
        RateLimitingFront { port, refusals, new_orders, task }
    }

    /// Refuses the next `n` new orders.
    fn refuse(&self, n: u32) {
        self.refusals.store(n, std::sync::atomic::Ordering::SeqCst);
    }

    /// The new orders so far: when each arrived, and whether it was refused.
    fn new_orders(&self) -> Vec<(std::time::Instant, bool)> {
        self.new_orders.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Drop for RateLimitingFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One HTTP/1.1 request: its head (through the blank line, exclusive) and its body (by Content-Length).
async fn read_request<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) -> Option<(String, Vec<u8>)> {
    use tokio::io::AsyncReadExt;
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(i) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 || bytes.len() > 1 << 20 {
            return None;
        }
        bytes.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(bytes[..end].to_vec()).ok()?;
    let length = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned()))
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = bytes[end + 4..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some((head, body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_renewal_is_retried_no_sooner_than_the_cas_retry_after() {
    // 40 s certificates: a failed renewal's own backoff is 1 s, then 2 s, so the CA's 6 s must be what paces it.
    const RETRY_AFTER: u64 = 6;
    let s = Setup::start_issuing_for(Some(40));
    let front = RateLimitingFront::start(&s.pebble, RETRY_AFTER).await;
    let directory = format!("https://127.0.0.1:{}/dir", front.port);
    let acme = acme_yaml(&directory, Some(&s.pebble.https_ca), &s.store(), TLS_ALPN);
    let proxy =
        ProxyHandle::start_on_port(&s.certs, s.port, &acme, &tenant_yaml(&s.tansu.addr())).expect("proxy");
    s.wait_issued(&proxy);
    front.refuse(2);
    let before = front.new_orders().len();
    s.wait_issued_count(&proxy, 2, Duration::from_secs(90));
    let orders = front.new_orders().split_off(before);
    // Two refused, then the renewal (placed twice when Pebble refuses its nonce as badNonce: the client
    // retries that at once, and it is not a refusal with a Retry-After).
    let refused: Vec<bool> = orders.iter().map(|o| o.1).collect();
    assert!(
        refused.len() >= 3 && refused[..2] == [true, true] && refused[2..].iter().all(|r| !r),
        "two refused, then the renewal; {orders:?}"
    );
    for pair in orders.windows(2).filter(|pair| pair[0].1) {
        let gap = pair[1].0 - pair[0].0;
        assert!(
            gap >= Duration::from_secs(RETRY_AFTER),
            "retried after {gap:?}, before the CA's Retry-After"
        );
    }
    assert_eq!(proxy.metric(FAILED).expect("metrics"), 2.0);
    assert!(wait_for_log("ca_retry_after_seconds", Duration::from_secs(1)), "the CA's wait is logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_order_for_one_tenant_does_not_hold_up_anothers() {
    let s = Setup::start();
    // The DNS-01 hook publishes to pebble-challtestsrv; for tenant `slow` it first waits until the test releases
    // it, as a hook waiting for DNS propagation would.
    let release = s.dir.path().join("release");
    let hook = s.dir.path().join("set-txt");
    let script = format!(
        "#!/bin/sh\nset -e\ncase \"$1 $2\" in\n  \"set _acme-challenge.slow.\"*) while [ ! -e {release} ]; do sleep 0.1; done ;;\n\
         esac\nport={port}\ncase \"$1\" in\n  \
         set) curl -fsS -X POST -d \"{{\\\"host\\\":\\\"$2.\\\",\\\"value\\\":\\\"$3\\\"}}\" http://127.0.0.1:$port/set-txt ;;\n  \
         clear) curl -fsS -X POST -d \"{{\\\"host\\\":\\\"$2.\\\"}}\" http://127.0.0.1:$port/clear-txt ;;\n  \
         *) exit 2 ;;\nesac\n",
        release = release.display(),
        port = s.pebble.dns_management_port
    );
    std::fs::write(&hook, script).expect("hook");
    #[cfg(unix)]
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    let challenge = format!("  challenge: dns-01\n  dns01_hook: [\"{}\"]\n", hook.display());
    // `slow` first: one order at a time would never reach `fast` while `slow`'s hook waits.
    let tenants: String = ["slow", "fast"]
        .iter()
        .map(|t| {
            format!("  - name: {t}\n    bootstrap: [\"{}\"]\n    upstream: {{ plaintext: true }}\n    tls: {{ acme: true }}\n", s.tansu.addr())
        })
        .collect();
    let proxy =
        ProxyHandle::start_on_port(&s.certs, s.port, &s.acme_yaml(&challenge), &tenants).expect("proxy");
    let issued = |t: &str| format!("kaas_proxy_acme_orders_total{{tenant=\"{t}\",outcome=\"issued\"}}");
    assert_eq!(
        proxy.wait_for_metric(&issued("fast"), 1.0, Duration::from_secs(60)).expect("metrics"),
        1.0,
        "fast issued while slow's order waits; proxy log:\n{}",
        kaas_e2e::proxy::logs()
    );
    assert_eq!(proxy.metric(&issued("slow")).expect("metrics"), 0.0, "slow's hook still waits");
    assert!(wait_for_log("\"slow.kaas.localhost\"", Duration::from_secs(1)), "slow's order was placed first");
    std::fs::write(&release, "").expect("release");
    assert_eq!(proxy.wait_for_metric(&issued("slow"), 1.0, Duration::from_secs(60)).expect("metrics"), 1.0);
    let root = s.pebble_root();
    for name in [format!("slow.{DOMAIN}"), format!("fast.{DOMAIN}")] {
        served_leaf(proxy.port, &name, &root).await;
    }
}
