//! One tenant's broker cannot take the proxy down: a hostile broker behind tenant `evil` answers every
//! address-carrying API at every version the proxy reads with mutated valid responses, while tenant `steady`
//! produces through the same proxy. Each response the walker can read reaches the client; each it cannot costs
//! exactly that client connection, with a log line naming the tenant, API, version and fault; `steady` sees no
//! error at all. (A broker-sized allocation would abort this whole test process, proxy included.)

use crate::common;

use std::time::Duration;

use bytes::{BufMut, BytesMut};
use common::*;
use kaas_e2e::certs::Certs;
use kaas_e2e::hostile_broker::HostileBroker;
use kaas_e2e::proxy::{logs, wait_for_log, ProxyHandle};
use kaas_e2e::raw;
use kaas_e2e::tansu::Tansu;
use kaas_e2e::DOMAIN;
use kaas_proxy::testkit::rewritten_versions;
use kafka_protocol::messages::{ApiKey, FetchRequest, ProduceRequest, RequestHeader};
use kafka_protocol::protocol::{Encodable, StrBytes};
use tokio::io::AsyncWriteExt;

/// A request the proxy will forward: a valid header, for Produce a body it reads `acks` from (acks=1, so an
/// answer is expected) and for Fetch one it reads `max_bytes` from. Other bodies are never read by the proxy,
/// nor by the hostile broker.
fn request(api: ApiKey, version: i16, correlation_id: i32) -> anyhow::Result<bytes::Bytes> {
    let mut b = BytesMut::new();
    b.put_u32(0);
    RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("hostile-e2e")))
        .encode(&mut b, api.request_header_version(version))?;
    match api {
        ApiKey::Produce => ProduceRequest::default().with_acks(1).encode(&mut b, version)?,
        ApiKey::Fetch => FetchRequest::default().encode(&mut b, version)?,
        _ => {}
    }
    let len = (b.len() - 4) as u32;
    b[..4].copy_from_slice(&len.to_be_bytes());
    Ok(b.freeze())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_broker_responses_cost_one_connection_each() {
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = Certs::generate(dir.path(), DOMAIN, &["evil", "steady"]).expect("certs");
    let tansu = Tansu::start("steady-cluster").expect("tansu");
    let hostile = HostileBroker::start(0x6576_696c).await.expect("hostile broker");
    let proxy = ProxyHandle::start(&certs, &[("evil", vec![hostile.addr()]), ("steady", vec![tansu.addr()])])
        .expect("proxy");
    let config = client_config(&proxy.bootstrap("steady"), &certs.ca);
    create_topic(&config, "steady", 1).await.expect("create topic");
    let steady = steady_producer(&config, "steady", Duration::from_millis(50));

    let sni = format!("evil.{DOMAIN}");
    let mut cases = rewritten_versions();
    cases.extend((0..=3).map(|v| (ApiKey::ApiVersions, v)));
    let (mut forwarded, mut closed, mut correlation_id) = (0, 0, 100);
    let mut conn = None;
    for _round in 0..6 {
        for &(api, version) in &cases {
            correlation_id += 1;
            let c = match &mut conn {
                Some(c) => c,
                None => {
                    conn.insert(raw::connect(proxy.port, Some(&sni), &certs.ca).await.expect("tls to evil"))
                }
            };
            c.write_all(&request(api, version, correlation_id).expect("request")).await.expect("send");
            let answer = tokio::time::timeout(Duration::from_secs(10), raw::read_frame(c)).await;
            let answer = answer.unwrap_or_else(|_| panic!("{api:?} v{version}: neither answered nor closed"));
            let sent = hostile.sent(correlation_id).expect("the broker saw the request");
            assert_eq!((sent.api, sent.version), (api, version));
            match answer {
                Ok(Some(frame)) => {
                    assert!(sent.acceptable, "{api:?} v{version}: an unreadable response reached the client");
                    assert_eq!(frame[4..8], correlation_id.to_be_bytes(), "{api:?} v{version}: wrong answer");
                    forwarded += 1;
                }
                Ok(None) | Err(_) => {
                    assert!(!sent.acceptable, "{api:?} v{version}: a readable response cost the connection");
                    let line = format!("malformed {api:?} v{version} response");
                    assert!(wait_for_log(&line, Duration::from_secs(5)), "no log line {line:?}");
                    conn = None;
                    closed += 1;
                }
            }
        }
    }
    // Both outcomes occurred, or the mutations proved nothing.
    assert!(forwarded > 20 && closed > 20, "forwarded {forwarded}, closed {closed}");
    let log = logs();
    let line = log.lines().find(|l| l.contains("malformed")).expect("a malformed-response line");
    assert!(
        line.contains("tenant=evil") && line.contains("at byte"),
        "log line lacks tenant or place: {line}"
    );

    // The other tenant never noticed, and the proxy still serves evil's next client.
    assert_eq!(steady.await.expect("steady task"), 1000);
    let mut fresh = raw::connect(proxy.port, Some(&sni), &certs.ca).await.expect("tls after the storm");
    fresh.write_all(&request(ApiKey::ApiVersions, 3, 1).expect("request")).await.expect("send");
    assert!(raw::read_frame(&mut fresh).await.expect("read").is_some(), "truthful ApiVersions answered");
}
