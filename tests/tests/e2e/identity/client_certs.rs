//! Mutual TLS per tenant: a tenant with a client CA admits only clients whose certificate that CA signed; a
//! tenant without one stays open. Real Tansu behind, real handshakes.

use kaas_e2e::certs::{Certs, ClientCa};
use kaas_e2e::proxy::{wait_for_log, ProxyHandle};
use kaas_e2e::raw;
use kaas_e2e::tansu::Tansu;
use kaas_e2e::DOMAIN;
use kafka_protocol::messages::MetadataRequest;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_are_checked_against_the_tenants_ca() {
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = Certs::generate(dir.path(), DOMAIN, &["secure", "open"]).expect("certs");
    let secure_ca = ClientCa::generate(dir.path(), "secure").expect("client ca");
    let rogue_ca = ClientCa::generate(dir.path(), "rogue").expect("rogue ca");
    let good = secure_ca.issue("orders-service").expect("client cert");
    let rogue = rogue_ca.issue("mallory").expect("rogue cert");
    let tansu = Tansu::start("cluster").expect("tansu");
    let proxy = ProxyHandle::start_with_client_cas(
        &certs,
        &[("secure", vec![tansu.addr()], Some(secure_ca.ca.clone())), ("open", vec![tansu.addr()], None)],
    )
    .expect("proxy");
    let secure = format!("secure.{DOMAIN}");

    // Signed by the tenant's CA: admitted, and Kafka flows.
    let mut ok =
        raw::connect_as(proxy.port, Some(&secure), &certs.ca, Some((&good.0, &good.1))).await.expect("tls");
    let (_, md) =
        raw::call(&mut ok, 1, 9, &MetadataRequest::default()).await.expect("metadata with a good cert");
    assert!(!md.brokers.is_empty());

    // No certificate, or one from another CA: refused (TLS 1.3 reports it on the first read).
    for (who, client) in [("no certificate", None), ("another CA's certificate", Some((&rogue.0, &rogue.1)))]
    {
        let client = client.map(|(c, k)| (c.as_path(), k.as_path()));
        let refused = match raw::connect_as(proxy.port, Some(&secure), &certs.ca, client).await {
            Err(_) => true,
            Ok(mut conn) => raw::call(&mut conn, 1, 9, &MetadataRequest::default()).await.is_err(),
        };
        assert!(refused, "{who} got through");
    }
    assert!(wait_for_log("TLS handshake failed", std::time::Duration::from_secs(5)));

    // A tenant without a client CA needs no certificate.
    let mut open = raw::connect(proxy.port, Some(&format!("open.{DOMAIN}")), &certs.ca).await.expect("tls");
    raw::call(&mut open, 1, 9, &MetadataRequest::default()).await.expect("open tenant");
}
