//! The load generator: Kafka producers on raw connections (plain TCP or TLS with SNI), pipelined Produce
//! requests of a pre-built record batch, latency per request into an HDR histogram.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use hdrhistogram::Histogram;
use kaas_proxy::kafka::client::KafkaClient;
use kaas_proxy::kafka::codec::{encode_request, i32_at, FrameStream};
use kaas_proxy::kafka::testkit::record_batch;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// Where the load goes.
#[derive(Debug, Clone)]
pub enum Endpoint {
    Plain(SocketAddr),
    Tls { addr: SocketAddr, sni: String, tls: Arc<rustls::ClientConfig> },
}

impl Endpoint {
    /// The endpoint connection `i` uses when the load is spread over `tenants` tenants: the same address under
    /// the SNI name `<tenant><k>.<domain>` for `<tenant>.<domain>` (`bench0.kaas.localhost` for
    /// `bench.kaas.localhost`; targets without tenant routing ignore the name).
    pub fn for_connection(&self, i: usize, tenants: usize) -> Endpoint {
        match self {
            Endpoint::Tls { addr, sni, tls } if tenants > 1 => {
                let (tenant, rest) = sni.split_once('.').unwrap_or((sni, ""));
                Endpoint::Tls {
                    addr: *addr,
                    sni: format!("{tenant}{}.{rest}", i % tenants),
                    tls: tls.clone(),
                }
            }
            other => other.clone(),
        }
    }
}

/// A TLS client configuration trusting `ca`, presenting `client_cert` (cert PEM, key PEM) when given, as a
/// tenant with a `client_ca` demands; `resume` keeps session tickets for resumed handshakes.
pub fn tls_config(
    ca: &Path,
    client_cert: Option<&(PathBuf, PathBuf)>,
    resume: bool,
) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca)? {
        roots.add(cert?)?;
    }
    let builder = rustls::ClientConfig::builder_with_provider(kaas_proxy::tls::provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let mut config = match client_cert {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| anyhow::anyhow!("client certificate {}: {e}", cert.display()))?;
            anyhow::ensure!(!chain.is_empty(), "client certificate {}: no certificate in it", cert.display());
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| anyhow::anyhow!("client key {}: {e}", key.display()))?;
            builder.with_client_auth_cert(chain, key)?
        }
    };
    if !resume {
        config.resumption = rustls::client::Resumption::disabled();
    }
    Ok(Arc::new(config))
}

pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

pub async fn connect(endpoint: &Endpoint) -> anyhow::Result<Box<dyn Io>> {
    match endpoint {
        Endpoint::Plain(addr) => {
            let s = TcpStream::connect(addr)
                .await
                .map_err(|e| anyhow::anyhow!("{addr} is not reachable: {e}"))?;
            s.set_nodelay(true)?;
            Ok(Box::new(s))
        }
        Endpoint::Tls { addr, sni, tls } => {
            let s = TcpStream::connect(addr)
                .await
                .map_err(|e| anyhow::anyhow!("{addr} is not reachable: {e}"))?;
            s.set_nodelay(true)?;
            let name = ServerName::try_from(sni.clone())?;
            let tls = tokio_rustls::TlsConnector::from(tls.clone()).connect(name, s).await?;
            Ok(Box::new(tls))
        }
    }
}

/// One run's shape.
#[derive(Debug, Clone)]
pub struct Workload {
    pub connections: usize,
    pub record_bytes: usize,
    pub batch_records: usize,
    pub inflight: usize,
    pub acks: i16,
    pub duration: Duration,
    pub topic: String,
    /// Connection i produces to partition i % partitions.
    pub partitions: usize,
    /// Connection i goes to tenant i % tenants (through the proxy).
    pub tenants: usize,
    /// Produce at most this many MB/s in total; `None`: flat out.
    pub rate_mbps: Option<f64>,
}

impl Workload {
    /// One connection, one request in flight, acks=1, partition 0 of `topic`: the request-at-a-time shape of
    /// the latency and end-to-end scenarios.
    pub fn one_at_a_time(
        topic: &str,
        record_bytes: usize,
        batch_records: usize,
        duration: Duration,
    ) -> Workload {
        Workload {
            connections: 1,
            record_bytes,
            batch_records,
            inflight: 1,
            acks: 1,
            duration,
            topic: topic.into(),
            partitions: 1,
            tenants: 1,
            rate_mbps: None,
        }
    }
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub bytes: u64,
    pub records: u64,
    pub requests: u64,
    pub errors: u64,
    pub elapsed: Duration,
    pub latency_us: Histogram<u64>,
}

/// A Produce request frame (v7, non-flexible) with correlation id 0, and the offset of that id.
pub fn produce_frame(w: &Workload, partition: i32) -> anyhow::Result<BytesMut> {
    produce_frame_with_timestamp(w, partition, 0)
}

/// Like [`produce_frame`], every record stamped with `timestamp_ms`.
pub fn produce_frame_with_timestamp(
    w: &Workload,
    partition: i32,
    timestamp_ms: i64,
) -> anyhow::Result<BytesMut> {
    let value = Bytes::from(vec![b'x'; w.record_bytes]);
    let batch = record_batch(w.batch_records, &value, timestamp_ms)?;
    let request = ProduceRequest::default().with_acks(w.acks).with_timeout_ms(30_000).with_topic_data(vec![
        TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(w.topic.clone())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(batch))]),
    ]);
    Ok(BytesMut::from(&encode_request(0, 7, "kaas-bench", &request)?[..]))
}

const CORRELATION_AT: usize = 8;

/// Largest frame the bench accepts from a target.
const MAX_FRAME: u32 = 64 << 20;

/// A target connection with its frame reader.
type Conn = FrameStream<Box<dyn Io>>;

/// Reads the next response; returns its correlation id.
async fn read_response(conn: &mut Conn) -> anyhow::Result<i32> {
    let frame = conn.read_frame().await?.ok_or_else(|| anyhow::anyhow!("connection closed by the target"))?;
    i32_at(frame.body(), 0).ok_or_else(|| anyhow::anyhow!("response too short for a correlation id"))
}

/// One connection's produce loop until the deadline.
async fn producer(
    endpoint: Endpoint,
    w: Workload,
    partition: i32,
    deadline: Instant,
) -> anyhow::Result<Outcome> {
    let mut io = FrameStream::new(connect(&endpoint).await?, MAX_FRAME);
    let mut frame = produce_frame(&w, partition)?;
    let payload = (w.record_bytes * w.batch_records) as u64;
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut sent: VecDeque<(i32, Instant)> = VecDeque::new();
    let (mut cid, mut requests, mut errors) = (0i32, 0u64, 0u64);
    let start = Instant::now();
    // Each connection carries its share of the target rate.
    let bytes_per_sec = w.rate_mbps.map(|r| r * 1e6 / w.connections.max(1) as f64);
    while Instant::now() < deadline {
        if let Some(rate) = bytes_per_sec {
            let due = Duration::from_secs_f64((requests * payload) as f64 / rate);
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
        while sent.len() < w.inflight.max(1) {
            cid = cid.wrapping_add(1);
            frame[CORRELATION_AT..CORRELATION_AT + 4].copy_from_slice(&cid.to_be_bytes());
            io.get_mut().write_all(&frame).await?;
            requests += 1;
            if w.acks != 0 {
                sent.push_back((cid, Instant::now()));
            }
            if (w.acks == 0 && Instant::now() >= deadline) || bytes_per_sec.is_some() {
                break;
            }
        }
        io.get_mut().flush().await?;
        if w.acks == 0 {
            continue;
        }
        let got = read_response(&mut io).await?;
        match sent.pop_front() {
            Some((c, at)) if c == got => {
                let _ = latency.record(at.elapsed().as_micros().max(1) as u64);
            }
            _ => errors += 1,
        }
    }
    while let Some((c, at)) = sent.pop_front() {
        match read_response(&mut io).await {
            Ok(got) if got == c => {
                let _ = latency.record(at.elapsed().as_micros().max(1) as u64);
            }
            _ => errors += 1,
        }
    }
    let done = requests - errors;
    Ok(Outcome {
        bytes: done * payload,
        records: done * w.batch_records as u64,
        requests,
        errors,
        elapsed: start.elapsed(),
        latency_us: latency,
    })
}

/// Runs `w` against `endpoint` with all its connections; outcomes merged.
pub async fn run(endpoint: &Endpoint, w: &Workload) -> anyhow::Result<Outcome> {
    let deadline = Instant::now() + w.duration;
    let tasks: Vec<_> = (0..w.connections)
        .map(|i| {
            let endpoint = endpoint.for_connection(i, w.tenants);
            tokio::spawn(producer(endpoint, w.clone(), (i % w.partitions.max(1)) as i32, deadline))
        })
        .collect();
    let mut total = Outcome {
        bytes: 0,
        records: 0,
        requests: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        latency_us: Histogram::new_with_bounds(1, 60_000_000, 3)?,
    };
    for t in tasks {
        let o = t.await??;
        total.bytes += o.bytes;
        total.records += o.records;
        total.requests += o.requests;
        total.errors += o.errors;
        total.elapsed = total.elapsed.max(o.elapsed);
        total.latency_us.add(&o.latency_us)?;
    }
    Ok(total)
}

/// Opens `n` TLS connections and keeps them idle (after one ApiVersions round trip) until dropped.
pub async fn open_idle(endpoint: &Endpoint, n: usize) -> anyhow::Result<Vec<Conn>> {
    let mut conns = Vec::with_capacity(n);
    let frame = api_versions_frame()?;
    for chunk in 0..n.div_ceil(100) {
        let batch: Vec<_> = (0..100.min(n - chunk * 100))
            .map(|_| {
                let (endpoint, frame) = (endpoint.clone(), frame.clone());
                tokio::spawn(async move { connect_and_greet(&endpoint, &frame).await })
            })
            .collect();
        for t in batch {
            conns.push(t.await??);
        }
    }
    Ok(conns)
}

/// An ApiVersions v0 request frame (correlation id 1).
fn api_versions_frame() -> anyhow::Result<Bytes> {
    Ok(encode_request(1, 0, "kaas-bench", &kafka_protocol::messages::ApiVersionsRequest::default())?)
}

/// Connects and completes one ApiVersions round trip (which also takes in TLS 1.3 session tickets).
async fn connect_and_greet(endpoint: &Endpoint, frame: &[u8]) -> anyhow::Result<Conn> {
    let mut io = FrameStream::new(connect(endpoint).await?, MAX_FRAME);
    io.get_mut().write_all(frame).await?;
    io.get_mut().flush().await?;
    read_response(&mut io).await?;
    Ok(io)
}

/// Connections per second that complete a TLS handshake and one ApiVersions round trip, `concurrency` at a
/// time over `duration`. With a resuming client configuration, handshakes after the first are resumed.
pub async fn handshakes(endpoint: &Endpoint, duration: Duration, concurrency: usize) -> anyhow::Result<f64> {
    let deadline = Instant::now() + duration;
    let start = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let endpoint = endpoint.clone();
            tokio::spawn(async move {
                let frame = api_versions_frame()?;
                let mut n = 0u64;
                while Instant::now() < deadline {
                    let mut io = connect_and_greet(&endpoint, &frame).await?;
                    let _ = io.get_mut().shutdown().await;
                    n += 1;
                }
                anyhow::Ok(n)
            })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await??;
    }
    Ok(total as f64 / start.elapsed().as_secs_f64())
}

/// Creates `topic` (for Tansu, which does not create topics on produce), ignoring "already exists".
pub async fn create_topic(addr: SocketAddr, topic: &str, partitions: i32) -> anyhow::Result<()> {
    use kafka_protocol::messages::create_topics_request::CreatableTopic;
    use kafka_protocol::messages::CreateTopicsRequest;
    let mut client = KafkaClient::new(connect(&Endpoint::Plain(addr)).await?, MAX_FRAME, "kaas-bench");
    let req =
        CreateTopicsRequest::default().with_timeout_ms(10_000).with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
            .with_num_partitions(partitions)
            .with_replication_factor(1)]);
    client.call(4, &req).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::ApiKey;
    use kafka_protocol::protocol::Decodable;

    #[test]
    fn produce_frame_is_a_valid_request_carrying_the_batch() {
        let w = Workload::one_at_a_time("bench", 100, 5, Duration::from_secs(1));
        let frame = produce_frame(&w, 3).expect("frame");
        let len = u32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]) as usize;
        assert_eq!(len + 4, frame.len());
        let header = kaas_proxy::kafka::header::parse_request(&frame[4..]).expect("header");
        assert_eq!((header.api_key, header.api_version), (ApiKey::Produce as i16, 7));
        let mut body = Bytes::copy_from_slice(&frame[4 + header.body_offset.expect("known api")..]);
        let req = ProduceRequest::decode(&mut body, 7).expect("decodes");
        let p = &req.topic_data[0].partition_data[0];
        assert_eq!((req.acks, p.index), (1, 3));
        let records = p.records.as_ref().expect("records");
        assert!(records.len() > 5 * 100, "batch holds the records");
        // One v2 batch of all five records, with no producer sequence.
        let count = i32::from_be_bytes([records[57], records[58], records[59], records[60]]);
        let base_sequence = i32::from_be_bytes([records[53], records[54], records[55], records[56]]);
        assert_eq!((count, base_sequence), (5, -1));
    }
}

/// Many clients bootstrapping at once: each connects, asks ApiVersions and Metadata for `topic`, and leaves.
/// Returns completed bootstraps per second and the time each took.
pub async fn metadata_storm(
    endpoint: &Endpoint,
    clients: usize,
    concurrency: usize,
    topic: &str,
) -> anyhow::Result<(f64, Histogram<u64>)> {
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    use kafka_protocol::messages::MetadataRequest;
    let versions = api_versions_frame()?;
    let metadata = encode_request(
        2,
        9,
        "kaas-bench",
        &MetadataRequest::default().with_topics(Some(vec![MetadataRequestTopic::default()
            .with_name(Some(TopicName(StrBytes::from_string(topic.to_owned()))))])),
    )?;
    let start = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let tasks: Vec<_> = (0..concurrency.max(1))
        .map(|_| {
            let (endpoint, versions, metadata, next) =
                (endpoint.clone(), versions.clone(), metadata.clone(), next.clone());
            tokio::spawn(async move {
                let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
                while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < clients {
                    let began = Instant::now();
                    let mut io = connect_and_greet(&endpoint, &versions).await?;
                    io.get_mut().write_all(&metadata).await?;
                    io.get_mut().flush().await?;
                    read_response(&mut io).await?;
                    let _ = h.record(began.elapsed().as_micros().max(1) as u64);
                    let _ = io.get_mut().shutdown().await;
                }
                anyhow::Ok(h)
            })
        })
        .collect();
    let mut all = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    for t in tasks {
        all.add(&t.await??)?;
    }
    Ok((clients as f64 / start.elapsed().as_secs_f64(), all))
}

#[cfg(test)]
mod endpoint_tests {
    use super::*;

    #[test]
    fn connections_spread_over_tenant_names() {
        let tls = tls_config_for_test();
        let e = Endpoint::Tls { addr: ([127, 0, 0, 1], 1).into(), sni: "bench.kaas.localhost".into(), tls };
        let names: Vec<String> = (0..4)
            .map(|i| match e.for_connection(i, 3) {
                Endpoint::Tls { sni, .. } => sni,
                Endpoint::Plain(_) => String::new(),
            })
            .collect();
        assert_eq!(
            names,
            [
                "bench0.kaas.localhost",
                "bench1.kaas.localhost",
                "bench2.kaas.localhost",
                "bench0.kaas.localhost"
            ]
        );
        match e.for_connection(5, 1) {
            Endpoint::Tls { sni, .. } => assert_eq!(sni, "bench.kaas.localhost"),
            Endpoint::Plain(_) => panic!("kind changed"),
        }
    }

    #[test]
    fn connections_spread_over_the_mutual_tls_tenant_names() {
        let e = Endpoint::Tls {
            addr: ([127, 0, 0, 1], 1).into(),
            sni: "bench-mtls.kaas.localhost".into(),
            tls: tls_config_for_test(),
        };
        match e.for_connection(4, 3) {
            Endpoint::Tls { sni, .. } => assert_eq!(sni, "bench-mtls1.kaas.localhost"),
            Endpoint::Plain(_) => panic!("kind changed"),
        }
    }

    fn tls_config_for_test() -> Arc<rustls::ClientConfig> {
        Arc::new(
            rustls::ClientConfig::builder_with_provider(kaas_proxy::tls::provider())
                .with_safe_default_protocol_versions()
                .expect("versions")
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth(),
        )
    }
}
