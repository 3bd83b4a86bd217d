//! Hostile inputs, each refused cleanly and logged, while a healthy client keeps producing to a real Apache
//! Kafka broker through the same proxy.

mod common;

use std::time::Duration;

use common::*;
use kaas_e2e::certs::Certs;
use kaas_e2e::kafka::{ClusterOptions, KafkaCluster};
use kaas_e2e::proxy::{wait_for_log, ProxyHandle};
use kaas_e2e::raw;
use kaas_e2e::relay::CountingRelay;
use kaas_e2e::DOMAIN;
use kafka_protocol::messages::{ApiVersionsRequest, MetadataRequest};
use rustls::AlertDescription;
use tokio::io::AsyncWriteExt;

const LOG_WAIT: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_inputs_are_refused_while_others_flow() {
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = Certs::generate(dir.path(), DOMAIN, &["acme", "steady"]).expect("certs");
    let kafka = KafkaCluster::start(ClusterOptions::named("acme").nodes(1)).expect("kafka");
    // acme's upstream connections are counted; the healthy producer uses a second tenant on the same broker.
    let relay = CountingRelay::start(kafka.bootstrap_plain()).await.expect("relay");
    let proxy = ProxyHandle::start(
        &certs,
        &[("acme", vec![relay.addr()]), ("steady", vec![kafka.bootstrap_plain()])],
    )
    .expect("proxy");
    let config = client_config(&proxy.bootstrap("steady"), &certs.ca);
    create_topic(&config, "steady", 1).await.expect("create topic");

    // A healthy producer runs through all of it.
    let steady = steady_producer(&config, "steady", Duration::from_millis(100));
    let sni = format!("acme.{DOMAIN}");

    // Unknown SNI and no SNI: handshake fails with unrecognized_name, no upstream connection.
    assert_eq!(relay.accepted(), 0);
    let err = raw::connect(proxy.port, Some(&format!("nobody.{DOMAIN}")), &certs.ca)
        .await
        .expect_err("unknown tenant");
    assert_eq!(raw::alert_of(&err), Some(AlertDescription::UnrecognisedName), "{err}");
    assert!(wait_for_log("nobody.kaas.localhost", LOG_WAIT), "refusal logged with the name");
    let err = raw::connect(proxy.port, None, &certs.ca).await.expect_err("no SNI");
    assert_eq!(raw::alert_of(&err), Some(AlertDescription::UnrecognisedName), "{err}");
    assert!(wait_for_log("no server name (SNI)", LOG_WAIT));
    assert_eq!(relay.accepted(), 0, "refused names opened upstream connections");
    let err = raw::connect(proxy.port, Some(&format!("b999.acme.{DOMAIN}")), &certs.ca)
        .await
        .expect_err("unknown node");
    assert_eq!(raw::alert_of(&err), Some(AlertDescription::UnrecognisedName), "{err}");
    assert!(wait_for_log("has no broker with node id 999", LOG_WAIT));
    // The unknown node cost one metadata refresh of the proxy's own, and no client connection upstream.
    assert_eq!(relay.accepted(), 1, "upstream connections for an unknown node");

    // Plaintext Kafka to the TLS port.
    let mut plain = tokio::net::TcpStream::connect(("127.0.0.1", proxy.port)).await.expect("tcp");
    plain.write_all(&raw::frame(1, 0, &ApiVersionsRequest::default()).expect("frame")).await.expect("write");
    assert!(wait_for_log("plaintext Kafka on the TLS port", LOG_WAIT));

    // Frame-level attacks after a valid handshake.
    let attacks: [(&str, Vec<u8>, &str); 4] = [
        ("2 GiB frame", 0x7fff_ffffu32.to_be_bytes().to_vec(), "larger than max_frame_bytes"),
        ("negative length", (-1i32).to_be_bytes().to_vec(), "is negative"),
        ("truncated header", vec![0, 0, 0, 3, 0, 18, 0], "truncated header"),
        (
            "garbage after a valid frame",
            {
                let mut b = raw::frame(7, 0, &ApiVersionsRequest::default()).expect("frame").to_vec();
                b.extend_from_slice(b"garbage!");
                b
            },
            "frame of 1734439522 bytes",
        ),
    ];
    for (name, bytes, log) in attacks {
        let mut conn = raw::connect(proxy.port, Some(&sni), &certs.ca).await.expect("tls");
        conn.write_all(&bytes).await.expect("write attack");
        conn.flush().await.expect("flush");
        assert!(raw::closed_within(&mut conn, Duration::from_secs(5)).await, "{name}: connection not closed");
        assert!(wait_for_log(log, LOG_WAIT), "{name}: no log line with {log:?}");
    }

    // A fresh client still works, and the steady producer never failed.
    let mut conn = raw::connect(proxy.port, Some(&sni), &certs.ca).await.expect("tls after attacks");
    raw::call(&mut conn, 1, 9, &MetadataRequest::default()).await.expect("metadata after attacks");
    assert_eq!(steady.await.expect("steady task"), 1000);
}
