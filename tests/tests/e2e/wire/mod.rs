//! Byte-level checks through kaas-proxy to a real Tansu: every response byte a client receives is free of
//! upstream addresses, ApiVersions is capped, and the proxy's own metadata refresh routes `b<id>` names.
//! Every address-carrying API at every version against a real Apache Kafka cluster, and the proxy's `/metrics`
//! against what the client sent: [`kafka`].

mod kafka;

use kaas_e2e::certs::Certs;
use kaas_e2e::proxy::ProxyHandle;
use kaas_e2e::raw;
use kaas_e2e::tansu::Tansu;
use kaas_e2e::{SingleTenant, DOMAIN};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, DescribeClusterRequest, FindCoordinatorRequest, MetadataRequest,
};
use kafka_protocol::protocol::{Message, StrBytes};

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_upstream_address_in_any_response_byte() {
    let SingleTenant { certs, tansu, proxy, .. } = &SingleTenant::start().expect("tansu and proxy");
    let upstream_port = tansu.port.to_string();

    let mut conn = raw::connect(proxy.port, Some(&format!("acme.{DOMAIN}")), &certs.ca).await.expect("tls");
    let (raw_versions, versions) = raw::call(
        &mut conn,
        1,
        3,
        &ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("raw"))
            .with_client_software_version(StrBytes::from_static_str("1")),
    )
    .await
    .expect("api versions");
    let mut frames = vec![raw_versions];
    let range = |api: ApiKey| {
        versions.api_keys.iter().find(|k| k.api_key == api as i16).map(|k| (k.min_version, k.max_version))
    };
    let (md_min, md_max) = range(ApiKey::Metadata).expect("broker offers Metadata");
    assert!(md_max <= MetadataRequest::VERSIONS.max, "ApiVersions not capped: Metadata v{md_max}");

    let mut correlation = 2;
    for v in md_min.max(1)..=md_max {
        let (raw, md) =
            raw::call(&mut conn, correlation, v, &MetadataRequest::default()).await.expect("metadata");
        correlation += 1;
        assert!(!md.brokers.is_empty(), "Metadata v{v}: no brokers");
        for b in &md.brokers {
            assert_eq!(b.host.as_str(), format!("b{}.acme.{DOMAIN}", b.node_id.0), "Metadata v{v}");
            assert_eq!(b.port, i32::from(proxy.port), "Metadata v{v}");
        }
        frames.push(raw);
    }
    if let Some((min, max)) = range(ApiKey::FindCoordinator) {
        for v in min..=max {
            let req = if v < 4 {
                FindCoordinatorRequest::default().with_key(StrBytes::from_static_str("g1"))
            } else {
                FindCoordinatorRequest::default().with_coordinator_keys(vec![StrBytes::from_static_str("g1")])
            };
            let (raw, resp) = raw::call(&mut conn, correlation, v, &req).await.expect("find coordinator");
            correlation += 1;
            let hosts: Vec<String> = if v < 4 {
                vec![resp.host.to_string()]
            } else {
                resp.coordinators.iter().map(|c| c.host.to_string()).collect()
            };
            assert!(
                hosts.iter().all(|h| h.ends_with(&format!(".acme.{DOMAIN}"))),
                "FindCoordinator v{v}: {hosts:?}"
            );
            frames.push(raw);
        }
    }
    if let Some((min, max)) = range(ApiKey::DescribeCluster) {
        for v in min..=max {
            let (raw, _) = raw::call(&mut conn, correlation, v, &DescribeClusterRequest::default())
                .await
                .expect("describe cluster");
            correlation += 1;
            frames.push(raw);
        }
    }
    for (i, f) in frames.iter().enumerate() {
        assert!(!contains(f, b"127.0.0.1"), "frame {i} carries the upstream host");
        assert!(!contains(f, format!("127.0.0.1:{upstream_port}").as_bytes()), "frame {i} carries host:port");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_name_before_any_metadata_is_resolved_by_the_proxy() {
    let SingleTenant { certs, proxy, .. } = &SingleTenant::start().expect("tansu and proxy");
    // Fresh proxy: the broker table is empty, so it must ask the cluster itself.
    let mut conn =
        raw::connect(proxy.port, Some(&format!("b111.acme.{DOMAIN}")), &certs.ca).await.expect("tls");
    let (_, md) =
        raw::call(&mut conn, 1, 9, &MetadataRequest::default()).await.expect("metadata via broker name");
    assert_eq!(md.brokers.first().map(|b| b.node_id.0), Some(111));
    assert!(kaas_e2e::proxy::logs().contains("unknown node id; refreshing metadata"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_falls_over_to_the_next_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = Certs::generate(dir.path(), DOMAIN, &["acme"]).expect("certs");
    let tansu = Tansu::start("acme-cluster").expect("tansu");
    // Nothing listens on the first server (a port that was free a moment ago).
    let dead = format!("127.0.0.1:{}", kaas_e2e::free_port());
    let proxy = ProxyHandle::start(&certs, &[("acme", vec![dead.clone(), tansu.addr()])]).expect("proxy");
    for correlation in 0..2 {
        let mut conn =
            raw::connect(proxy.port, Some(&format!("acme.{DOMAIN}")), &certs.ca).await.expect("tls");
        let (_, md) =
            raw::call(&mut conn, correlation, 9, &MetadataRequest::default()).await.expect("metadata");
        assert_eq!(md.brokers.len(), 1);
    }
    assert!(kaas_e2e::proxy::logs().contains(&format!("cannot connect to {dead}")), "failover logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_name_of_an_unreachable_cluster_is_refused_as_unavailable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = Certs::generate(dir.path(), DOMAIN, &["acme"]).expect("certs");
    let dead = format!("127.0.0.1:{}", kaas_e2e::free_port());
    let proxy = ProxyHandle::start(&certs, &[("acme", vec![dead])]).expect("proxy");
    let err =
        raw::connect(proxy.port, Some(&format!("b1.acme.{DOMAIN}")), &certs.ca).await.expect_err("refused");
    assert_eq!(raw::alert_of(&err), Some(rustls::AlertDescription::InternalError), "{err}");
    assert!(kaas_e2e::proxy::logs().contains("tenant cluster unavailable"));
}
