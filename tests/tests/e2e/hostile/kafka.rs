//! Hostile inputs, each refused cleanly and logged, while a healthy client keeps producing to a real Apache
//! Kafka broker through the same proxy.

use crate::common;

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
        assert!(
            raw::closed_within(conn.get_mut(), Duration::from_secs(5)).await,
            "{name}: connection not closed"
        );
        assert!(wait_for_log(log, LOG_WAIT), "{name}: no log line with {log:?}");
    }

    // A fresh client still works, and the steady producer never failed.
    let mut conn = raw::connect(proxy.port, Some(&sni), &certs.ca).await.expect("tls after attacks");
    raw::call(&mut conn, 1, 9, &MetadataRequest::default()).await.expect("metadata after attacks");
    assert_eq!(steady.await.expect("steady task"), 1000);
}

/// A client asks for a 100 MB Fetch and never reads it: the proxy forwards the Fetch with `max_bytes` lowered
/// to `max_fetch_response_bytes` (8 MiB by default), so the broker answers at most that (and one batch), and
/// what the proxy holds for the connection stays near it instead of what was asked for (which the broker's own
/// `fetch.max.bytes` cuts to 55 MiB; without the cap the proxy grew by that, checked once by hand). Measured as
/// the growth of this process's resident memory (the proxy runs in it; the 100 MB were produced by another
/// process, so no allocation of theirs hides the proxy's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_a_100_mb_fetch_costs_the_proxy_only_the_fetch_cap() {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::{FetchRequest, FetchResponse, TopicName};
    use kafka_protocol::protocol::{Decodable, StrBytes};

    const TOPIC: &str = "bulk";
    const ASKED: i32 = 200 << 20;
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = Certs::generate(dir.path(), DOMAIN, &["bulk"]).expect("certs");
    let kafka = KafkaCluster::start(ClusterOptions::named("bulk").nodes(1)).expect("kafka");
    let proxy = ProxyHandle::start(&certs, &[("bulk", vec![kafka.bootstrap_plain()])]).expect("proxy");
    produce_elsewhere(&kafka.bootstrap_plain(), TOPIC, 100_000, 1000);

    let rss_before = resident_kib();
    let mut conn =
        raw::connect(proxy.port, Some(&format!("b11.bulk.{DOMAIN}")), &certs.ca).await.expect("tls");
    let partition = FetchPartition::default()
        .with_partition(0)
        .with_fetch_offset(0)
        .with_current_leader_epoch(-1)
        .with_log_start_offset(-1)
        .with_partition_max_bytes(ASKED);
    let request = FetchRequest::default()
        .with_replica_id(kafka_protocol::messages::BrokerId(-1))
        .with_max_wait_ms(500)
        .with_min_bytes(1)
        .with_max_bytes(ASKED)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str(TOPIC)))
            .with_partitions(vec![partition])]);
    conn.write_all(&raw::frame(1, 12, &request).expect("encode")).await.expect("send the Fetch");
    // Long enough for the broker to answer and the proxy to take in all it will before the client's window fills.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let grown_mib = (resident_kib().saturating_sub(rss_before)) / 1024;
    assert!(grown_mib < 24, "the proxy's memory grew {grown_mib} MiB for a connection that reads nothing");

    let frame = raw::read_frame(&mut conn).await.expect("the answer, once read").expect("a frame");
    let header_len = kaas_proxy::kafka::header::response_header_len(&frame[4..], 1).expect("header");
    let response =
        FetchResponse::decode(&mut frame.slice(4 + header_len..), 12).expect("a Fetch v12 response");
    let records: usize = response
        .responses
        .iter()
        .flat_map(|t| &t.partitions)
        .filter_map(|p| p.records.as_ref())
        .map(|r| r.len())
        .sum();
    let partitions: Vec<_> = response
        .responses
        .iter()
        .flat_map(|t| &t.partitions)
        .map(|p| (p.partition_index, p.error_code, p.high_watermark))
        .collect();
    assert!(
        records > 4 << 20,
        "records came back ({records} bytes; partitions {partitions:?}, error {})",
        response.error_code
    );
    assert!(records <= (8 << 20) + (1 << 20), "at most the cap and one batch: {records} bytes");
    eprintln!("asked {ASKED} bytes, got {records} bytes of records; memory grew {grown_mib} MiB meanwhile");
}

/// Produces `count` records of `size` bytes to `topic` from a separate (Python) process, straight to the broker;
/// the topic's segments hold 256 MiB (the fixture's 8 MiB default would end every Fetch at a segment's end).
fn produce_elsewhere(bootstrap: &str, topic: &str, count: usize, size: usize) {
    let script = format!(
        "import confluent_kafka as k\n\
         from confluent_kafka.admin import AdminClient, NewTopic\n\
         admin = AdminClient({{'bootstrap.servers': '{bootstrap}'}})\n\
         admin.create_topics([NewTopic('{topic}', 1, 1, config={{'segment.bytes': '268435456'}})])['{topic}'].result()\n\
         failed = []\n\
         p = k.Producer({{'bootstrap.servers': '{bootstrap}', 'linger.ms': 50, 'batch.size': 1000000, \
         'queue.buffering.max.kbytes': 400000}})\n\
         v = b'x' * {size}\n\
         for i in range({count}):\n\
         \x20   while True:\n\
         \x20       try:\n\
         \x20           p.produce('{topic}', v, partition=0, on_delivery=lambda e, m: e and failed.append(str(e)))\n\
         \x20           break\n\
         \x20       except BufferError:\n\
         \x20           p.poll(0.05)\n\
         \x20   p.poll(0)\n\
         assert p.flush(120) == 0\n\
         assert not failed, failed[:3]\n"
    );
    let python = kaas_e2e::repo_root().join(".venv/bin/python");
    let out = std::process::Command::new(python).arg("-c").arg(script).output().expect("python runs");
    assert!(out.status.success(), "producing failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// This process's resident memory, KiB.
fn resident_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:")?.trim().strip_suffix("kB")?.trim().parse().ok())
        .expect("VmRSS")
}
