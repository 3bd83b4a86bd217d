//! The proxy's cost figure, steady where wall-clock and CPU time are not: one kaas-proxy session
//! ([`kaas_proxy::session::run`], the production loop) between a client and a broker, TLS 1.3 on both legs
//! (rustls, as deployed), every byte in memory (`tokio::io::duplex`) on one thread, so nothing depends on the
//! kernel's timing. Two fixed workloads of real record batches (16 records of 950-byte values, about 15 KiB
//! each): `produce` (256 Produce v11 requests of four batches, acks=1) and `consume` (16 Fetch v17 requests
//! answered with 64 batches each, just under 1 MiB); and the same two with usage records on
//! (`produce-metered`, `consume-metered`), whose difference is what metering costs.
//!
//! It prints the allocations made while the proxy's session is polled, per request (stats_alloc's counting
//! allocator, read around each of those polls); `scripts/cost.sh` runs it under callgrind with collection on only inside the
//! session (`--toggle-collect`), so the instructions counted are the proxy's (both TLS legs, framing,
//! rewriting, copies), not the client's or the broker's, and compares both with `cost/baseline.json`.
//! Handshakes happen before the session and are not counted.

use std::alloc::System;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use kaas_proxy::config::UsageSettings;
use kaas_proxy::kafka::codec::encode_request;
use kaas_proxy::kafka::rewrite::Advertise;
use kaas_proxy::kafka::testkit::record_batch;
use kaas_proxy::session::{run, SessionContext};
use kaas_proxy::tenants::Tenant;
use kaas_proxy::usage::Usage;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, FetchRequest, FetchResponse, ProduceRequest, ProduceResponse, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use prometheus_client::registry::Registry;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Every allocation of the process is counted; a session's polls are told apart by reading the count around
/// each (one thread: nothing else runs meanwhile).
#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Allocations (and reallocations) made inside the proxy's polls.
static PROXY_ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

fn allocations() -> u64 {
    let s = GLOBAL.stats();
    (s.allocations + s.reallocations) as u64
}

/// A future whose polls count as the proxy's.
struct Proxy<F>(Pin<Box<F>>);

impl<F: Future> Future for Proxy<F> {
    type Output = F::Output;
    // Never inlined: callgrind collects only inside this function (`--toggle-collect`), by its name.
    #[inline(never)]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let before = allocations();
        let polled = self.0.as_mut().poll(cx);
        PROXY_ALLOCATIONS.fetch_add(allocations() - before, Ordering::Relaxed);
        polled
    }
}

/// One workload: its requests and the broker's answer to each.
struct Workload {
    name: &'static str,
    api: ApiKey,
    version: i16,
    requests: Vec<Bytes>,
    /// The answer's body after its header, the same for every request.
    answer: Bytes,
    /// Record bytes moved through the proxy.
    bytes: u64,
}

const TOPIC: &str = "cost";

/// A record set as producers send it: `batches` batches of 16 records of 950-byte values (about 15 KiB each, near
/// the Java producer's default `batch.size`). Its bytes are what the proxy forwards; with usage records on, their
/// headers are what it reads.
fn record_set(batches: usize) -> anyhow::Result<Bytes> {
    let value = Bytes::from(vec![0x5a; 950]);
    let batch = record_batch(16, &value, 1_700_000_000_000)?;
    Ok(batch.repeat(batches).into())
}

fn produce(name: &'static str) -> anyhow::Result<Workload> {
    let records = record_set(4)?;
    let requests = (0..256)
        .map(|i| {
            let partition = PartitionProduceData::default().with_index(0).with_records(Some(records.clone()));
            let topic = TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
                .with_partition_data(vec![partition]);
            let req =
                ProduceRequest::default().with_acks(1).with_timeout_ms(30_000).with_topic_data(vec![topic]);
            Ok(encode_request(i + 1, 11, "kaas-cost", &req)?)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Workload {
        name,
        api: ApiKey::Produce,
        version: 11,
        requests,
        answer: encode(&ProduceResponse::default(), 11)?,
        bytes: 256 * records.len() as u64,
    })
}

fn consume(name: &'static str) -> anyhow::Result<Workload> {
    let records = record_set(64)?;
    let requests = (0..16)
        .map(|i| {
            let partition = FetchPartition::default().with_partition(0).with_fetch_offset(i64::from(i) << 20);
            let topic = FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_static_str(TOPIC)))
                .with_partitions(vec![partition]);
            let req = FetchRequest::default().with_max_bytes(1 << 21).with_topics(vec![topic]);
            Ok(encode_request(i + 1, 17, "kaas-cost", &req)?)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let partition = PartitionData::default().with_high_watermark(1 << 30).with_records(Some(records.clone()));
    let topic = FetchableTopicResponse::default()
        .with_topic(TopicName(StrBytes::from_static_str(TOPIC)))
        .with_partitions(vec![partition]);
    Ok(Workload {
        name,
        api: ApiKey::Fetch,
        version: 17,
        requests,
        answer: encode(&FetchResponse::default().with_responses(vec![topic]), 17)?,
        bytes: 16 * records.len() as u64,
    })
}

fn encode<M: Encodable>(m: &M, version: i16) -> anyhow::Result<Bytes> {
    let mut b = bytes::BytesMut::new();
    m.encode(&mut b, version)?;
    Ok(b.freeze())
}

/// The client: each request in turn, its answer read whole before the next.
async fn client(mut io: impl AsyncRead + AsyncWrite + Unpin, w: &Workload) -> anyhow::Result<()> {
    for request in &w.requests {
        io.write_all(request).await?;
        io.flush().await?;
        read_frame(&mut io).await?;
    }
    io.shutdown().await?;
    Ok(())
}

/// The broker: answers every request with the workload's answer, under the request's correlation id.
async fn broker(mut io: impl AsyncRead + AsyncWrite + Unpin, w: &Workload) -> anyhow::Result<()> {
    let flexible = w.api.response_header_version(w.version) >= 1;
    for _ in &w.requests {
        let request = read_frame(&mut io).await?;
        let correlation = i32::from_be_bytes(request[4..8].try_into()?);
        let mut header = bytes::BytesMut::new();
        ResponseHeader::default()
            .with_correlation_id(correlation)
            .encode(&mut header, if flexible { 1 } else { 0 })?;
        let len = u32::try_from(header.len() + w.answer.len())?;
        io.write_all(&len.to_be_bytes()).await?;
        io.write_all(&header).await?;
        io.write_all(&w.answer).await?;
        io.flush().await?;
    }
    // The proxy closes its side once the client has: read to the end.
    let mut rest = Vec::new();
    io.read_to_end(&mut rest).await?;
    io.shutdown().await?;
    Ok(())
}

async fn read_frame(io: &mut (impl AsyncRead + Unpin)) -> anyhow::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    io.read_exact(&mut body).await?;
    Ok(body)
}

/// A CA and a certificate it signs for `name`.
fn pki(
    name: &str,
) -> anyhow::Result<(CertificateDer<'static>, Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let ca_key = rcgen::KeyPair::generate()?;
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key)?;
    let key = rcgen::KeyPair::generate()?;
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let cert = rcgen::CertificateParams::new(vec![name.to_owned()])?.signed_by(&key, &issuer)?;
    let key = PrivateKeyDer::try_from(key.serialize_der()).map_err(anyhow::Error::msg)?;
    Ok((ca_cert.der().clone(), vec![cert.der().clone()], key))
}

/// A TLS client and server over an in-memory pipe, handshake done.
async fn tls_pair(
    name: &str,
) -> anyhow::Result<(
    tokio_rustls::client::TlsStream<tokio::io::DuplexStream>,
    tokio_rustls::server::TlsStream<tokio::io::DuplexStream>,
)> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let (ca, chain, key) = pki(name)?;
    let server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca)?;
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let (a, b) = tokio::io::duplex(64 << 10);
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let (c, s) =
        tokio::join!(connector.connect(ServerName::try_from(name.to_owned())?, a), acceptor.accept(b));
    Ok((c?, s?))
}

/// Usage records on, as deployed (a file, one-minute windows), for the `-metered` workloads.
fn usage() -> anyhow::Result<Arc<Usage>> {
    let settings = UsageSettings {
        file: std::env::temp_dir().join(format!("kaas-cost-usage-{}.jsonl", std::process::id())),
        interval: Duration::from_secs(60),
        max_keys_per_tenant: 10_000,
        file_max_bytes: 100 << 20,
        file_keep: 1,
        buffer_records: 100_000,
        replica: "kaas-cost".into(),
    };
    Ok(Usage::start(&settings, &mut Registry::default())?)
}

async fn measure(w: &Workload) -> anyhow::Result<()> {
    let (client_tls, front) = tls_pair("cost.kaas.localhost").await.context("client leg")?;
    let (upstream, broker_tls) = tls_pair("broker.cost.internal").await.context("broker leg")?;
    let usage = match w.name.ends_with("-metered") {
        true => Some(usage()?),
        false => None,
    };
    let ctx = SessionContext {
        tenant: Arc::new(Tenant::new("cost".into(), Vec::new())),
        advertise: Advertise::new("cost", "kaas.localhost", 9092),
        max_frame_bytes: 100 << 20,
        max_inflight: 1024,
        max_fetch_bytes: 8 << 20,
        idle_timeout: Duration::from_secs(600),
        draining: tokio_util::sync::CancellationToken::new(),
        peer: ([127, 0, 0, 1], 1).into(),
        metrics: None,
        usage: usage.map(|u| (u.clone(), u.meter("cost", Some("cost-user")))),
        audit: None,
    };
    let before = PROXY_ALLOCATIONS.load(Ordering::Relaxed);
    let (session, client, broker) = tokio::join!(
        Proxy(Box::pin(run(front, upstream, &ctx))),
        client(client_tls, w),
        broker(broker_tls, w)
    );
    client.context("client")?;
    broker.context("broker")?;
    session.map_err(|e| anyhow::anyhow!("session: {e}"))?;
    let allocations = PROXY_ALLOCATIONS.load(Ordering::Relaxed) - before;
    let requests = w.requests.len() as u64;
    println!(
        "{} requests={requests} bytes={} allocations={allocations} allocations_per_request={:.2}",
        w.name,
        w.bytes,
        allocations as f64 / requests as f64
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let which = std::env::args().nth(1).unwrap_or_default();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let workloads =
        [produce("produce")?, consume("consume")?, produce("produce-metered")?, consume("consume-metered")?];
    for w in workloads {
        if which.is_empty() || which == w.name {
            runtime.block_on(measure(&w))?;
        }
    }
    Ok(())
}
