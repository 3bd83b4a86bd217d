//! Limits and timeouts: every one holds against a client that misbehaves, is counted and logged, and leaves
//! every other client alone. The brokers here are a scripted one ([`Broker`]) that counts the frames it gets
//! and answers only when told, so what the proxy forwards is seen exactly.

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
        "  - {{ name: acme, bootstrap: [\"{}\"] }}\n  - {{ name: beta, bootstrap: [\"{}\"] }}\n",
        acme.addr, beta.addr
    );
    let proxy = ProxyHandle::start_with_config(&certs, settings, &tenants).expect("proxy");
    Setup { _dir: dir, certs, proxy }
}

/// True once the peer closes (a read ends or fails) within `within`.
async fn closed_within(s: &mut (impl AsyncReadExt + Unpin), within: Duration) -> bool {
    let mut buf = [0u8; 256];
    let read = async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return true,
                Ok(_) => continue,
            }
        }
    };
    tokio::time::timeout(within, read).await.unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_half_hello_clients_are_closed_at_the_handshake_timeout() {
    let (acme, beta) = (Broker::start().await, Broker::start().await);
    let s = setup("handshake_timeout_seconds: 1\n", &acme, &beta).await;
    let started = Instant::now();
    let mut silent = TcpStream::connect(("127.0.0.1", s.proxy.port)).await.expect("tcp");
    let mut half = TcpStream::connect(("127.0.0.1", s.proxy.port)).await.expect("tcp");
    // The first bytes of a TLS record holding a ClientHello, and then nothing.
    half.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01]).await.expect("write");
    assert!(closed_within(&mut silent, Duration::from_secs(5)).await, "a silent client is closed");
    assert!(closed_within(&mut half, Duration::from_secs(5)).await, "half a ClientHello is closed");
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
    assert!(closed_within(idle.get_mut(), Duration::from_secs(5)).await, "the idle session is closed");
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
