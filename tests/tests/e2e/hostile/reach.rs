//! A tenant's cluster names where its brokers are, and whoever may alter `advertised.listeners` controls that:
//! the proxy dials only addresses the tenant's allow-list admits. A lying broker (the tenant's bootstrap, on
//! this machine's own non-loopback address) reports node 1 at the instance metadata service, node 2 at a
//! loopback port and node 3 beside itself: clients of `b1` and `b2` are refused and nothing is dialled there,
//! each refusal counted and logged with the address; `b3` is dialled.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use kaas_e2e::certs::Certs;
use kaas_e2e::proxy::{logs, ProxyHandle};
use kaas_e2e::{raw, DOMAIN};
use kaas_proxy::kafka::codec::{Frame, FrameStream};
use kaas_proxy::kafka::header::parse_request;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::metadata_response::MetadataResponseBroker;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse, BrokerId, MetadataResponse};
use kafka_protocol::protocol::{Encodable, StrBytes};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, UdpSocket};

/// This machine's address on its default route (no packet is sent: a UDP socket only picks its source).
async fn own_address() -> anyhow::Result<IpAddr> {
    let socket = UdpSocket::bind("0.0.0.0:0").await?;
    socket.connect("192.0.2.1:9").await?;
    let ip = socket.local_addr()?.ip();
    anyhow::ensure!(!ip.is_loopback(), "this test needs a non-loopback address, found {ip}");
    Ok(ip)
}

/// Accepts and counts connections on `addr`, holding them open.
async fn counting(addr: SocketAddr) -> anyhow::Result<(SocketAddr, Arc<AtomicUsize>)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            held.push(conn);
        }
    });
    Ok((local, accepted))
}

/// A broker that answers ApiVersions and Metadata truthfully in form, naming `brokers` (id, host, port).
async fn lying_broker(at: IpAddr, brokers: Vec<(i32, String, i32)>) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind((at, 0)).await?;
    let local = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            let brokers = brokers.clone();
            tokio::spawn(async move {
                let mut frames = FrameStream::new(conn, 1 << 20);
                while let Ok(Some(req)) = frames.read_frame().await {
                    let Ok(h) = parse_request(req.body()) else { return };
                    let mut body = BytesMut::new();
                    let encoded = match h.api() {
                        Some(ApiKey::ApiVersions) => ApiVersionsResponse::default()
                            .with_api_keys(vec![
                                ApiVersion::default()
                                    .with_api_key(ApiKey::ApiVersions as i16)
                                    .with_max_version(3),
                                ApiVersion::default()
                                    .with_api_key(ApiKey::Metadata as i16)
                                    .with_max_version(12),
                            ])
                            .encode(&mut body, h.api_version),
                        Some(ApiKey::Metadata) => MetadataResponse::default()
                            .with_brokers(
                                brokers
                                    .iter()
                                    .map(|(id, host, port)| {
                                        MetadataResponseBroker::default()
                                            .with_node_id(BrokerId(*id))
                                            .with_host(StrBytes::from_string(host.clone()))
                                            .with_port(*port)
                                    })
                                    .collect(),
                            )
                            .encode(&mut body, h.api_version),
                        _ => return,
                    };
                    if encoded.is_err() {
                        return;
                    }
                    let api = h.api().unwrap_or(ApiKey::ApiVersions);
                    let flexible = api.response_header_version(h.api_version) >= 1;
                    let frame = Frame::build(5 + body.len(), |b| {
                        b.put_i32(h.correlation_id);
                        if flexible {
                            b.put_u8(0);
                        }
                        b.put_slice(&body);
                    });
                    if frames.get_mut().write_all(frame.bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Ok(local)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brokers_named_at_the_metadata_service_or_loopback_are_never_dialled() -> anyhow::Result<()> {
    let own = own_address().await?;
    let (loopback, loopback_accepted) = counting("127.0.0.1:0".parse()?).await?;
    let (beside, beside_accepted) = counting(SocketAddr::new(own, 0)).await?;
    let bootstrap = lying_broker(
        own,
        vec![
            (1, "169.254.169.254".into(), 80),
            (2, "127.0.0.1".into(), i32::from(loopback.port())),
            (3, own.to_string(), i32::from(beside.port())),
        ],
    )
    .await?;
    let dir = tempfile::tempdir()?;
    let certs = Certs::generate(dir.path(), DOMAIN, &["liar"])?;
    let tenants =
        format!("  - name: liar\n    bootstrap: [\"{bootstrap}\"]\n    upstream: {{ plaintext: true }}\n");
    let proxy = ProxyHandle::start_with_tenants_yaml(&certs, &tenants)?;

    for node in [1, 2] {
        let sni = format!("b{node}.liar.{DOMAIN}");
        let refused = match raw::connect(proxy.port, Some(&sni), &certs.ca).await {
            Err(_) => true,
            Ok(mut conn) => raw::closed_within(conn.get_mut(), Duration::from_secs(5)).await,
        };
        assert!(refused, "{sni}: the client got a session");
    }
    let failures = "kaas_proxy_upstream_connect_failures_total{tenant=\"liar\",reason=\"not_allowed\"}";
    assert_eq!(proxy.wait_for_metric(failures, 2.0, Duration::from_secs(10))?, 2.0, "{}", logs());
    let log = logs();
    for addr in ["169.254.169.254:80".to_string(), loopback.to_string()] {
        assert!(
            log.contains(&format!("{addr} is not one of the tenant's upstream addresses")),
            "{addr}: {log}"
        );
    }
    assert_eq!(loopback_accepted.load(Ordering::SeqCst), 0, "a loopback port was dialled");

    // The broker beside the bootstrap (the bootstrap's own address) is the tenant's: dialled.
    let _beside = raw::connect(proxy.port, Some(&format!("b3.liar.{DOMAIN}")), &certs.ca).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while beside_accepted.load(Ordering::SeqCst) == 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(beside_accepted.load(Ordering::SeqCst), 1, "{}", logs());
    assert_eq!(proxy.metric(failures)?, 2.0);
    Ok(())
}
