//! The client's real address behind a load balancer: real HAProxy (Debian's) in front of the proxy, sending
//! PROXY protocol v2 (`send-proxy-v2`) from its own address, which alone is in `proxy_protocol_trusted_cidrs`.
//! The per-address limit counts the original clients (127.0.0.2, 127.0.0.3), not the load balancer, and a
//! header is refused from anyone else, as is a trusted address's connection without one. Real Tansu behind.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use kaas_e2e::raw;
use kafka_protocol::messages::MetadataRequest;
use tokio::io::AsyncWriteExt;

use super::arena::{Arena, Target};
use super::listener_refusals;

/// HAProxy's address towards the proxy: the one trusted load balancer.
const BALANCER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 5);

/// HAProxy in TCP mode on a free loopback port, forwarding to `upstream_port` with a PROXY v2 header.
struct Haproxy {
    child: Child,
    port: u16,
}

impl Haproxy {
    fn start(dir: &Path, upstream_port: u16) -> Haproxy {
        let port = kaas_testsupport::free_port();
        let config = dir.join("haproxy.cfg");
        let text = format!(
            "defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n\
             frontend clients\n  bind 127.0.0.1:{port}\n  default_backend proxy\n\
             backend proxy\n  source {BALANCER}\n  server kaas 127.0.0.1:{upstream_port} send-proxy-v2\n"
        );
        std::fs::write(&config, text).expect("haproxy.cfg");
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("haproxy.log")).expect("log"))
            .spawn()
            .expect("haproxy (Debian's haproxy package, scripts/install-prereqs.sh)");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "haproxy did not listen on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Haproxy { child, port }
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_haproxy_limits_count_each_client_and_a_strangers_header_is_refused() {
    let settings = format!("max_connections_per_ip: 2\nproxy_protocol_trusted_cidrs: [\"{BALANCER}/32\"]\n");
    let arena = Arena::start_with(Target::Tansu, &settings).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let lb = Haproxy::start(dir.path(), arena.proxy.port);
    let sni = arena.sni();
    let through = |client: Ipv4Addr| raw::connect_from(client, lb.port, &sni, &arena.certs.ca);
    let served = |mut conn: raw::Tls| async move {
        raw::call(&mut conn, 1, 12, &MetadataRequest::default()).await.map(|_| conn)
    };

    // Two clients of one address through the one load balancer: its limit of 2 is that client's.
    let a = Ipv4Addr::new(127, 0, 0, 2);
    let first = served(through(a).await.expect("TLS")).await.expect("first connection of 127.0.0.2 served");
    let second = served(through(a).await.expect("TLS")).await.expect("second connection of 127.0.0.2 served");
    let third = match through(a).await {
        Ok(conn) => served(conn).await.err(),
        Err(e) => Some(e.into()),
    };
    assert!(third.is_some(), "a third connection of 127.0.0.2 is over its max_connections_per_ip");
    arena.expect_metric(&listener_refusals("ip_connection_limit"), 1.0);
    arena.expect_log("peer=127.0.0.2");
    // Another client through the same load balancer has places of its own.
    let b = Ipv4Addr::new(127, 0, 0, 3);
    let other = served(through(b).await.expect("TLS")).await.expect("127.0.0.3 served beside 127.0.0.2");

    // A stranger's header would choose the address the limits see: refused. So is the trusted balancer's
    // connection without one.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.bind((Ipv4Addr::new(127, 0, 0, 9), 0).into()).expect("bind");
    let mut stranger = socket.connect((Ipv4Addr::LOCALHOST, arena.proxy.port).into()).await.expect("connect");
    let mut header = kaas_proxy::listener::proxy_header::SIGNATURE.to_vec();
    header.extend_from_slice(&[0x21, 0x11, 0, 12, 198, 51, 100, 7, 127, 0, 0, 1, 0x9c, 0x40, 0x23, 0x84]);
    stranger.write_all(&header).await.expect("write the header");
    assert!(raw::closed_within(&mut stranger, Duration::from_secs(5)).await, "a stranger's header was read");
    let unheaded = raw::connect_from(BALANCER, arena.proxy.port, &arena.sni(), &arena.certs.ca).await;
    assert!(unheaded.is_err(), "the trusted balancer's connection without a header was served");
    arena.expect_metric(&listener_refusals("proxy_header"), 2.0);
    arena.expect_log("a PROXY protocol header from an address not in proxy_protocol_trusted_cidrs");
    arena.expect_log("no PROXY protocol v2 header from a trusted load balancer");
    drop((first, second, other, lb));
    arena.finish(16).await;
}
