//! Operating the proxy: limits and timeouts hold against clients that misbehave, are counted and logged, and leave
//! every other client alone; a reload moves a changed tenant's sessions to its new route after the grace period
//! without touching other tenants; a draining proxy closes sessions between requests. The brokers here are
//! scripted ([`Broker`]): they count the frames they get and answer only when told, so what the proxy forwards
//! is seen exactly.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kaas_e2e::certs::Certs;
use kaas_e2e::proxy::{wait_for_log, ProxyHandle};
use kaas_e2e::raw;
use kaas_e2e::DOMAIN;
use kaas_proxy::kafka::codec::Frame;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// A broker that reads frames, counts them, and answers each (in order, an empty Heartbeat body) only when
/// `answer` is notified once per frame to answer.
struct Broker {
    addr: String,
    received: Arc<AtomicUsize>,
    answer: Arc<Notify>,
}

impl Broker {
    async fn start() -> Broker {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let (received, answer) = (Arc::new(AtomicUsize::new(0)), Arc::new(Notify::new()));
        let (r, a) = (received.clone(), answer.clone());
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(serve(conn, r.clone(), a.clone()));
            }
        });
        Broker { addr, received, answer }
    }

    fn received(&self) -> usize {
        self.received.load(Ordering::SeqCst)
    }
}

async fn serve(conn: TcpStream, received: Arc<AtomicUsize>, answer: Arc<Notify>) {
    let (mut r, mut w) = conn.into_split();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<i32>();
    tokio::spawn(async move {
        while let Some(correlation_id) = rx.recv().await {
            answer.notified().await;
            let frame = Frame::from_body(&[&correlation_id.to_be_bytes()[..], &[0, 0]].concat());
            if w.write_all(&frame.into_bytes()).await.is_err() {
                return;
            }
        }
    });
    loop {
        let mut len = [0u8; 4];
        if r.read_exact(&mut len).await.is_err() {
            return;
        }
        let mut body = vec![0u8; u32::from_be_bytes(len).min(1 << 20) as usize];
        if r.read_exact(&mut body).await.is_err() {
            return;
        }
        received.fetch_add(1, Ordering::SeqCst);
        let correlation_id = i32::from_be_bytes([body[4], body[5], body[6], body[7]]);
        let _ = tx.send(correlation_id);
    }
}

/// A Heartbeat request frame (the proxy reads only its header and forwards it).
fn heartbeat(correlation_id: i32) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&12i16.to_be_bytes());
    b.extend_from_slice(&0i16.to_be_bytes());
    b.extend_from_slice(&correlation_id.to_be_bytes());
    b.extend_from_slice(&(-1i16).to_be_bytes());
    b.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]);
    Frame::from_body(&b).into_bytes().to_vec()
}

struct Setup {
    _dir: tempfile::TempDir,
    certs: Certs,
    proxy: ProxyHandle,
}

/// A proxy with `settings` (YAML lines) serving `acme` and `beta`, each in front of its own broker.
async fn setup(settings: &str, acme: &Broker, beta: &Broker) -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = Certs::generate(dir.path(), DOMAIN, &["acme", "beta"]).expect("certs");
    let tenants = format!(
        "  - {{ name: acme, bootstrap: [\"{}\"], upstream: {{ plaintext: true }} }}\n  - {{ name: beta, bootstrap: [\"{}\"], upstream: {{ plaintext: true }} }}\n",
        acme.addr, beta.addr
    );
    let proxy = ProxyHandle::start_with_config(&certs, settings, &tenants).expect("proxy");
    Setup { _dir: dir, certs, proxy }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_half_hello_clients_are_closed_at_the_hello_timeout() {
    let (acme, beta) = (Broker::start().await, Broker::start().await);
    let s = setup("hello_timeout_seconds: 1\n", &acme, &beta).await;
    let started = Instant::now();
    let mut silent = TcpStream::connect(("127.0.0.1", s.proxy.port)).await.expect("tcp");
    let mut half = TcpStream::connect(("127.0.0.1", s.proxy.port)).await.expect("tcp");
    // The first bytes of a TLS record holding a ClientHello, and then nothing.
    half.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01]).await.expect("write");
    assert!(raw::closed_within(&mut silent, Duration::from_secs(5)).await, "a silent client is closed");
    assert!(raw::closed_within(&mut half, Duration::from_secs(5)).await, "half a ClientHello is closed");
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(900), "not before the timeout: {took:?}");
    let series = "kaas_proxy_listener_refused_total{reason=\"no_client_hello\"}";
    assert_eq!(s.proxy.wait_for_metric(series, 2.0, Duration::from_secs(2)).expect("metrics"), 2.0);
    // Meanwhile a real client is served.
    let mut ok = raw::connect(s.proxy.port, Some(&format!("acme.{DOMAIN}")), &s.certs.ca).await.expect("tls");
    ok.write_all(&heartbeat(1)).await.expect("write");
    acme.answer.notify_one();
    assert!(raw::read_frame(&mut ok).await.expect("answer").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_at_its_connection_limit_is_refused_and_others_are_not() {
    let (acme, beta) = (Broker::start().await, Broker::start().await);
    let s = setup("max_connections_per_tenant: 2\n", &acme, &beta).await;
    let acme_name = format!("acme.{DOMAIN}");
    let first = raw::connect(s.proxy.port, Some(&acme_name), &s.certs.ca).await.expect("acme 1 of 2");
    let _second = raw::connect(s.proxy.port, Some(&acme_name), &s.certs.ca).await.expect("acme 2 of 2");
    let refused = raw::connect(s.proxy.port, Some(&acme_name), &s.certs.ca).await.expect_err("acme 3 of 2");
    assert_eq!(raw::alert_of(&refused), Some(rustls::AlertDescription::InternalError), "{refused}");
    let series = "kaas_proxy_listener_refused_total{reason=\"tenant_connection_limit\"}";
    assert_eq!(s.proxy.wait_for_metric(series, 1.0, Duration::from_secs(2)).expect("metrics"), 1.0);
    assert!(wait_for_log("max_connections_per_tenant", Duration::from_secs(2)), "a log line names the limit");
    assert_eq!(s.proxy.metric("kaas_proxy_session_active{tenant=\"acme\"}").expect("metrics"), 2.0);
    // Another tenant is not affected.
    let mut other =
        raw::connect(s.proxy.port, Some(&format!("beta.{DOMAIN}")), &s.certs.ca).await.expect("beta");
    other.write_all(&heartbeat(7)).await.expect("write");
    beta.answer.notify_one();
    assert!(raw::read_frame(&mut other).await.expect("beta answered").is_some());
    // A closed connection frees its slot.
    drop(first);
    let series = "kaas_proxy_session_active{tenant=\"acme\"}";
    assert_eq!(s.proxy.wait_for_metric(series, 1.0, Duration::from_secs(5)).expect("metrics"), 1.0);
    raw::connect(s.proxy.port, Some(&acme_name), &s.certs.ca).await.expect("a freed slot");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_max_connections_new_connections_are_closed_at_accept() {
    let (acme, beta) = (Broker::start().await, Broker::start().await);
    let s = setup("max_connections: 2\n", &acme, &beta).await;
    let name = format!("acme.{DOMAIN}");
    let _one = raw::connect(s.proxy.port, Some(&name), &s.certs.ca).await.expect("1 of 2");
    let _two =
        raw::connect(s.proxy.port, Some(&format!("beta.{DOMAIN}")), &s.certs.ca).await.expect("2 of 2");
    let three = raw::connect(s.proxy.port, Some(&name), &s.certs.ca).await;
    assert!(three.is_err(), "a third connection gets no handshake");
    let series = "kaas_proxy_listener_refused_total{reason=\"connection_limit\"}";
    assert_eq!(s.proxy.wait_for_metric(series, 1.0, Duration::from_secs(2)).expect("metrics"), 1.0);
    assert!(wait_for_log("max_connections open", Duration::from_secs(2)), "logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_session_is_closed_but_one_awaiting_an_answer_is_not() {
    let (acme, beta) = (Broker::start().await, Broker::start().await);
    let s = setup("idle_timeout_seconds: 1\n", &acme, &beta).await;
    let name = format!("acme.{DOMAIN}");
    let mut idle = raw::connect(s.proxy.port, Some(&name), &s.certs.ca).await.expect("tls");
    let mut waiting = raw::connect(s.proxy.port, Some(&name), &s.certs.ca).await.expect("tls");
    waiting.write_all(&heartbeat(1)).await.expect("a request the broker does not answer yet");
    let started = Instant::now();
    assert!(raw::closed_within(idle.get_mut(), Duration::from_secs(5)).await, "the idle session is closed");
    assert!(started.elapsed() >= Duration::from_millis(900), "not before the idle timeout");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    acme.answer.notify_one();
    let answer = raw::read_frame(&mut waiting).await.expect("still open");
    assert!(answer.is_some(), "the session awaiting its answer was kept and got it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_pipelining_past_max_inflight_is_held_back_not_buffered() {
    let (acme, beta) = (Broker::start().await, Broker::start().await);
    let s = setup("max_inflight_requests_per_connection: 4\n", &acme, &beta).await;
    let mut conn =
        raw::connect(s.proxy.port, Some(&format!("acme.{DOMAIN}")), &s.certs.ca).await.expect("tls");
    let pipelined: Vec<u8> = (1..=20).flat_map(heartbeat).collect();
    conn.write_all(&pipelined).await.expect("write 20 requests at once");
    let acme = &acme;
    let settle = |want: usize| async move {
        let deadline = Instant::now() + Duration::from_secs(5);
        while acme.received() < want && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        acme.received()
    };
    assert_eq!(settle(4).await, 4, "only max_inflight requests reach the broker unanswered");
    for answered in 1..=5 {
        acme.answer.notify_one();
        let frame = raw::read_frame(&mut conn).await.expect("answer").expect("a frame");
        assert_eq!(&frame[4..8], &i32::to_be_bytes(answered), "answers in order");
        assert_eq!(settle(4 + answered as usize).await, 4 + answered as usize, "one more per answer");
    }
}

/// `count` tenants' entries: (name, broker).
fn tenants_yaml(tenants: &[(&str, &Broker)]) -> String {
    tenants
        .iter()
        .map(|(name, b)| {
            format!("  - {{ name: {name}, bootstrap: [\"{}\"], upstream: {{ plaintext: true }} }}\n", b.addr)
        })
        .collect()
}

/// Sends a Heartbeat on `conn`, lets `broker` answer it, and reads the answer.
async fn round_trip(conn: &mut raw::Tls, broker: &Broker, correlation_id: i32) -> bool {
    let before = broker.received();
    if conn.write_all(&heartbeat(correlation_id)).await.is_err() {
        return false;
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while broker.received() == before && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    broker.answer.notify_one();
    matches!(raw::read_frame(conn).await, Ok(Some(_)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_moves_changed_and_removed_tenants_after_the_grace_period_and_leaves_others_alone() {
    let (acme_old, acme_new, beta, gamma) =
        (Broker::start().await, Broker::start().await, Broker::start().await, Broker::start().await);
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = Certs::generate(dir.path(), DOMAIN, &["acme", "beta", "gamma"]).expect("certs");
    let grace = "reload_grace_seconds: 2\n";
    let before = tenants_yaml(&[("acme", &acme_old), ("beta", &beta), ("gamma", &gamma)]);
    let proxy = ProxyHandle::start_with_config(&certs, grace, &before).expect("proxy");
    let (port, ca) = (proxy.port, certs.ca.clone());
    let connect = |tenant: &str| {
        let (name, ca) = (format!("{tenant}.{DOMAIN}"), ca.clone());
        async move { raw::connect(port, Some(&name), &ca).await }
    };
    let mut acme = connect("acme").await.expect("acme");
    let mut beta_conn = connect("beta").await.expect("beta");
    let mut gamma_conn = connect("gamma").await.expect("gamma");
    assert!(round_trip(&mut acme, &acme_old, 1).await);

    // acme moves to another cluster, beta goes away, gamma stays as it was.
    let after = tenants_yaml(&[("acme", &acme_new), ("gamma", &gamma)]);
    proxy.rewrite_config(&certs, grace, &after).expect("rewrite");
    let generation = proxy.wait_for_metric("kaas_proxy_routes_generation", 2.0, Duration::from_secs(5));
    assert_eq!(generation.expect("metrics"), 2.0, "reloaded");
    let reloaded = Instant::now();
    // Within the grace period the open sessions keep their upstream; new ones take the new route.
    assert!(round_trip(&mut acme, &acme_old, 2).await, "acme's open session still reaches its old cluster");
    assert!(round_trip(&mut beta_conn, &beta, 3).await, "beta's open session too");
    let mut acme_moved = connect("acme").await.expect("a new acme connection");
    assert!(round_trip(&mut acme_moved, &acme_new, 4).await, "a new acme session reaches the new cluster");
    let gone = connect("beta").await.expect_err("beta is no longer routed");
    assert_eq!(raw::alert_of(&gone), Some(rustls::AlertDescription::UnrecognisedName));
    // After it, they close; gamma's session, and the new acme one, go on.
    assert!(raw::closed_within(acme.get_mut(), Duration::from_secs(6)).await, "acme's old session closed");
    assert!(raw::closed_within(beta_conn.get_mut(), Duration::from_secs(2)).await, "beta's session closed");
    assert!(reloaded.elapsed() >= Duration::from_millis(1800), "not before the grace period");
    assert!(wait_for_log("the tenant's route changed", Duration::from_secs(2)), "the close is logged");
    assert!(round_trip(&mut gamma_conn, &gamma, 5).await, "an unchanged tenant's session is untouched");
    assert!(round_trip(&mut acme_moved, &acme_new, 6).await, "the new route's session is untouched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retired_session_awaiting_an_answer_gets_it_before_it_closes() {
    let (old, new, other) = (Broker::start().await, Broker::start().await, Broker::start().await);
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = Certs::generate(dir.path(), DOMAIN, &["acme", "beta"]).expect("certs");
    let grace = "reload_grace_seconds: 1\n";
    let proxy =
        ProxyHandle::start_with_config(&certs, grace, &tenants_yaml(&[("acme", &old), ("beta", &other)]))
            .expect("proxy");
    let mut conn = raw::connect(proxy.port, Some(&format!("acme.{DOMAIN}")), &certs.ca).await.expect("tls");
    conn.write_all(&heartbeat(1)).await.expect("a request the old cluster answers late");
    proxy.rewrite_config(&certs, grace, &tenants_yaml(&[("acme", &new), ("beta", &other)])).expect("rewrite");
    assert_eq!(
        proxy.wait_for_metric("kaas_proxy_routes_generation", 2.0, Duration::from_secs(5)).expect("metrics"),
        2.0
    );
    tokio::time::sleep(Duration::from_millis(2000)).await;
    old.answer.notify_one();
    let answer = raw::read_frame(&mut conn).await.expect("the answer arrives").expect("a frame");
    assert_eq!(&answer[4..8], &1i32.to_be_bytes());
    assert!(raw::closed_within(conn.get_mut(), Duration::from_secs(3)).await, "then the session closes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_proxy_unreadies_keeps_accepting_for_the_delay_and_closes_sessions_between_requests() {
    let (acme, beta) = (Broker::start().await, Broker::start().await);
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = Certs::generate(dir.path(), DOMAIN, &["acme", "beta"]).expect("certs");
    let stop = kaas_proxy::Shutdown { delay: Duration::from_millis(1500), drain: Duration::from_secs(10) };
    let mut proxy = ProxyHandle::start_stopping_with(
        &certs,
        "",
        &tenants_yaml(&[("acme", &acme), ("beta", &beta)]),
        stop,
    )
    .expect("proxy");
    let name = format!("acme.{DOMAIN}");
    let mut idle = raw::connect(proxy.port, Some(&name), &certs.ca).await.expect("tls");
    let mut busy = raw::connect(proxy.port, Some(&name), &certs.ca).await.expect("tls");
    busy.write_all(&heartbeat(1)).await.expect("a request outstanding when the drain starts");
    assert!(proxy.admin_status("/readyz").expect("readyz").contains(" 200"), "ready");
    proxy.begin_shutdown();
    let unready = Instant::now();
    while !proxy.admin_status("/readyz").expect("readyz").contains(" 503") {
        assert!(unready.elapsed() < Duration::from_millis(500), "readiness goes false at once");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut late = raw::connect(proxy.port, Some(&name), &certs.ca).await.expect("accepted during the delay");
    assert!(raw::closed_within(idle.get_mut(), Duration::from_secs(5)).await, "an idle session closes");
    assert!(unready.elapsed() >= Duration::from_millis(1400), "not before the delay");
    assert!(
        raw::closed_within(late.get_mut(), Duration::from_secs(2)).await,
        "so does one opened during the delay"
    );
    assert!(TcpStream::connect(("127.0.0.1", proxy.port)).await.is_err(), "the listener is closed");
    tokio::time::sleep(Duration::from_millis(500)).await;
    acme.answer.notify_one();
    let answer = raw::read_frame(&mut busy).await.expect("the owed answer").expect("a frame");
    assert_eq!(&answer[4..8], &1i32.to_be_bytes());
    assert!(raw::closed_within(busy.get_mut(), Duration::from_secs(3)).await, "then it closes too");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_changes_a_limit_says_it_applies_only_at_the_next_start() {
    let acme = Broker::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = Certs::generate(dir.path(), DOMAIN, &["acme"]).expect("certs");
    let tenants = tenants_yaml(&[("acme", &acme)]);
    let proxy = ProxyHandle::start_with_config(&certs, "max_connections: 5\n", &tenants).expect("proxy");
    // The watcher takes its first look at the file a moment after the proxy starts; a rewrite before that is
    // taken for what it started with (a race of the watcher's, in the note), so the limit is raised again
    // until a reload happens.
    let mut generation = 1.0;
    for limit in 6..=10 {
        proxy.rewrite_config(&certs, &format!("max_connections: {limit}\n"), &tenants).expect("rewrite");
        generation = proxy
            .wait_for_metric("kaas_proxy_routes_generation", 2.0, Duration::from_secs(1))
            .expect("metrics");
        if generation >= 2.0 {
            break;
        }
    }
    assert_eq!(generation, 2.0, "reloaded");
    assert!(
        wait_for_log("until its next restart settings=max_connections", Duration::from_secs(2)),
        "the operator is told the new limit waits for a restart"
    );
}
