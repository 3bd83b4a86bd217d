//! Nothing for strangers before they authenticate (the security review's H1): connections that send a
//! ClientHello and stall hold only places among their address's and their tenant's handshakes, never the
//! tenant's connection slots, so an authenticated client of the same tenant still connects and produces; one
//! address gets at most `max_handshakes_per_ip` handshakes; and ClientHellos for random `b<id>` names of a
//! tenant that requires client certificates cost its cluster nothing until a client authenticates (counted at
//! a relay in front of the broker), and then at most one metadata refresh an interval. Real Tansu behind, real
//! librdkafka and rustls clients, attackers on their own loopback addresses (127.0.0.2 and up).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use kaas_e2e::certs::{Certs, ClientCa};
use kaas_e2e::proxy::ProxyHandle;
use kaas_e2e::relay::CountingRelay;
use kaas_e2e::tansu::Tansu;
use kaas_e2e::{raw, DOMAIN};
use kafka_protocol::messages::MetadataRequest;
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};

/// The first TLS flight of a real rustls client for `sni`: a whole ClientHello, after which the connection
/// says nothing more.
fn client_hello(sni: &str) -> anyhow::Result<Vec<u8>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let mut conn = rustls::ClientConnection::new(Arc::new(config), sni.to_owned().try_into()?)?;
    let mut hello = Vec::new();
    conn.write_tls(&mut hello)?;
    Ok(hello)
}

/// `count` connections from `source` to the proxy, each sending a ClientHello for `sni` and then stalling;
/// kept open until dropped.
async fn stall(source: Ipv4Addr, port: u16, sni: &str, count: usize) -> anyhow::Result<Vec<TcpStream>> {
    let hello = client_hello(sni)?;
    let mut held = Vec::with_capacity(count);
    for _ in 0..count {
        let socket = TcpSocket::new_v4()?;
        socket.bind(SocketAddr::new(IpAddr::V4(source), 0))?;
        let mut stream = socket.connect(SocketAddr::from(([127, 0, 0, 1], port))).await?;
        stream.write_all(&hello).await?;
        held.push(stream);
    }
    Ok(held)
}

/// The proxy's count of connections refused for `reason`.
fn refused(proxy: &ProxyHandle, reason: &str) -> f64 {
    proxy.metric(&format!("kaas_proxy_listener_refused_total{{reason=\"{reason}\"}}")).unwrap_or(-1.0)
}

/// Tenant `victim`, which requires client certificates, its Tansu cluster, and one user's certificate.
struct Victim {
    certs: Certs,
    ca: std::path::PathBuf,
    user: (std::path::PathBuf, std::path::PathBuf),
    tansu: Tansu,
    _dir: tempfile::TempDir,
}

impl Victim {
    fn start() -> anyhow::Result<Victim> {
        let dir = tempfile::tempdir()?;
        let certs = Certs::generate(dir.path(), DOMAIN, &["victim"])?;
        let clients = ClientCa::generate(dir.path(), "victim")?;
        let user = clients.issue("orders-service")?;
        let tansu = Tansu::start("victim-cluster")?;
        Ok(Victim { certs, ca: clients.ca.clone(), user, tansu, _dir: dir })
    }

    /// The `tenants:` entry of `victim` with `bootstrap`.
    fn tenants_yaml(&self, bootstrap: &str) -> String {
        format!("  - name: victim\n    bootstrap: [\"{bootstrap}\"]\n    upstream: {{ plaintext: true }}\n    client_ca: {}\n", self.ca.display())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_handshakes_do_not_lock_a_tenants_clients_out() -> anyhow::Result<()> {
    let victim = Victim::start()?;
    let (certs, user, tansu) = (&victim.certs, &victim.user, &victim.tansu);
    // A small tenant limit, so that stalled handshakes counted against it (as before) would lock the tenant
    // out; a long handshake timeout, so none of them is timed out while the client connects.
    let settings = "max_connections_per_tenant: 20\nhandshake_timeout_seconds: 60\n";
    let tenants = victim.tenants_yaml(&tansu.addr());
    let proxy = ProxyHandle::start_with_config(certs, settings, &tenants)?;
    let sni = format!("victim.{DOMAIN}");

    // Five addresses, twenty stalled handshakes each: a hundred, five times the tenant's connection limit.
    let mut attackers = Vec::new();
    for last in 2..=6 {
        attackers.push(stall(Ipv4Addr::new(127, 0, 0, last), proxy.port, &sni, 20).await?);
    }
    proxy.wait_for_metric("kaas_proxy_listener_connections_open", 100.0, Duration::from_secs(10))?;

    // The tenant's own client, with its certificate, from its own address: connects and produces.
    let mut config = crate::common::client_config(&proxy.bootstrap("victim"), &certs.ca);
    config
        .set("ssl.certificate.location", user.0.to_string_lossy().as_ref())
        .set("ssl.key.location", user.1.to_string_lossy().as_ref())
        .set("message.timeout.ms", "20000");
    crate::common::create_topic(&config, "orders", 1).await?;
    let producer: FutureProducer = config.create()?;
    let delivered =
        producer.send(FutureRecord::to("orders").key("k").payload("v"), Duration::from_secs(25)).await;
    assert!(delivered.is_ok(), "the tenant's client could not produce: {delivered:?}");
    assert_eq!(refused(&proxy, "tenant_connection_limit"), 0.0, "no stalled handshake took a tenant slot");
    assert_eq!(
        proxy.metric("kaas_proxy_listener_connections_open")? as usize,
        100 + proxy.metric("kaas_proxy_session_active{tenant=\"victim\"}")? as usize,
        "the stalled handshakes are all still open: the client got through beside them"
    );

    // One address gets at most max_handshakes_per_ip (32) handshakes in flight; the rest are closed on accept.
    let before = refused(&proxy, "ip_handshake_limit");
    let flood = stall(Ipv4Addr::new(127, 0, 0, 7), proxy.port, &sni, 40).await?;
    proxy.wait_for_metric(
        "kaas_proxy_listener_refused_total{reason=\"ip_handshake_limit\"}",
        before + 8.0,
        Duration::from_secs(10),
    )?;
    drop((attackers, flood));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_broker_names_cost_the_cluster_nothing_before_authentication() -> anyhow::Result<()> {
    let victim = Victim::start()?;
    let (certs, user, tansu) = (&victim.certs, &victim.user, &victim.tansu);
    let relay = CountingRelay::start(tansu.addr()).await?;
    let tenants = victim.tenants_yaml(&relay.addr());
    let proxy = ProxyHandle::start_with_tenants_yaml(certs, &tenants)?;

    // Fifty strangers name random broker ids and never show a certificate.
    for id in 0..50 {
        let name = format!("b{}.victim.{DOMAIN}", 1000 + id * 7919);
        let stranger = raw::connect(proxy.port, Some(&name), &certs.ca).await;
        if let Ok(mut conn) = stranger {
            // TLS 1.3 reports the missing certificate on the first read.
            let answered = raw::call(&mut conn, 1, 9, &MetadataRequest::default()).await;
            assert!(answered.is_err(), "{name}: a client without a certificate got an answer");
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(relay.accepted(), 0, "the tenant's cluster was reached before any client authenticated");

    // Authenticated clients naming twenty unknown ids: the cluster is asked at most once an interval (5 s).
    let client = Some((user.0.as_path(), user.1.as_path()));
    let started = std::time::Instant::now();
    for id in 0..20 {
        let name = format!("b{}.victim.{DOMAIN}", 5000 + id);
        if let Ok(mut conn) = raw::connect_as(proxy.port, Some(&name), &certs.ca, client).await {
            let answered = raw::call(&mut conn, 1, 9, &MetadataRequest::default()).await;
            assert!(answered.is_err(), "{name}: an unknown broker id was served");
        }
    }
    let intervals = started.elapsed().as_secs() / 5 + 1;
    let asked = relay.accepted();
    assert!(
        (1..=intervals as usize).contains(&asked),
        "{asked} metadata refreshes for 20 unknown ids in {:?} (at most {intervals})",
        started.elapsed()
    );
    Ok(())
}
