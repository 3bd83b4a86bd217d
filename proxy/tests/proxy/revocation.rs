//! Revocation fails closed across a reload (issue 28 §4): a tenant of the `tenants_file` whose new entry does not
//! load (a certificate file half-replaced, say) keeps serving its previous version, but a CRL of that entry that
//! does load applies at once, so a revoked client certificate stops working even then. Real files through the
//! configuration loader, the route set as a reload builds it, and in-memory TLS handshakes against its
//! configuration for the tenant.

use std::path::Path;
use std::sync::Arc;

use kaas_proxy::config;
use kaas_proxy::routes::RouteSet;
use kaas_testsupport::certs::{crl, new_ca, new_clients_ca, server_certificate};
use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, SerialNumber};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};

const DOMAIN: &str = "kaas.localhost";
const ALICE_SERIAL: u64 = 4242;

/// Alice's client certificate from the tenant's clients CA: (chain, key).
fn alice(
    ca: &Issuer<'static, KeyPair>,
) -> anyhow::Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, "alice");
    params.serial_number = Some(SerialNumber::from(ALICE_SERIAL));
    params.is_ca = IsCa::ExplicitNoCa;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, ca)?;
    Ok((vec![cert.der().clone()], PrivateKeyDer::try_from(key.serialize_der()).map_err(anyhow::Error::msg)?))
}

/// Whether a handshake of `client` against `server` completes, driven in memory.
fn handshake(server: Arc<ServerConfig>, client: Arc<ClientConfig>, name: &str) -> Result<(), rustls::Error> {
    let mut server = ServerConnection::new(server)?;
    let mut client = ClientConnection::new(
        client,
        ServerName::try_from(name.to_owned()).map_err(|_| rustls::Error::General("name".into()))?,
    )?;
    for _ in 0..10 {
        let mut buf = Vec::new();
        client.write_tls(&mut buf).map_err(|e| rustls::Error::General(e.to_string()))?;
        server.read_tls(&mut buf.as_slice()).map_err(|e| rustls::Error::General(e.to_string()))?;
        server.process_new_packets()?;
        let mut buf = Vec::new();
        server.write_tls(&mut buf).map_err(|e| rustls::Error::General(e.to_string()))?;
        client.read_tls(&mut buf.as_slice()).map_err(|e| rustls::Error::General(e.to_string()))?;
        client.process_new_packets()?;
        if !server.is_handshaking() && !client.is_handshaking() {
            return Ok(());
        }
    }
    Err(rustls::Error::General("handshake did not finish".into()))
}

fn write(dir: &Path, name: &str, text: &str) -> anyhow::Result<()> {
    Ok(std::fs::write(dir.join(name), text)?)
}

#[test]
fn a_crl_that_loads_applies_even_when_another_file_of_the_tenant_does_not() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (server_ca_pem, server_ca) = new_ca("server CA")?;
    let (default_cert, default_key) = server_certificate(&server_ca, &[&format!("*.{DOMAIN}")])?;
    let (acme_cert, acme_key) = server_certificate(&server_ca, &[&format!("acme.{DOMAIN}")])?;
    let (clients_pem, clients) = new_clients_ca("acme clients CA")?;
    for (name, text) in [
        ("default.crt", default_cert.as_str()),
        ("default.key", &default_key),
        ("acme.crt", &acme_cert),
        ("acme.key", &acme_key),
        ("clients.crt", &clients_pem),
        ("clients.crl", &crl(&clients, 1, &[])?),
    ] {
        write(dir.path(), name, text)?;
    }
    write(
        dir.path(),
        "tenants.yaml",
        "- name: acme\n  bootstrap: [\"127.0.0.1:9093\"]\n  tls: { cert: acme.crt, key: acme.key }\n  \
         client_ca: clients.crt\n  client_crl: clients.crl\n  upstream: { plaintext: true }\n",
    )?;
    let config = format!(
        "listen: 127.0.0.1:0\ndomain: {DOMAIN}\ntls: {{ cert: default.crt, key: default.key }}\n\
         tenants_file: tenants.yaml\ntenants: []\n"
    );
    write(dir.path(), "kaas-proxy.yaml", &config)?;
    let load = || config::load(&dir.path().join("kaas-proxy.yaml")).map_err(|e| anyhow::anyhow!("{e}"));

    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(CertificateDer::pem_slice_iter(server_ca_pem.as_bytes()).flatten());
    let (chain, key) = alice(&clients)?;
    let client =
        Arc::new(ClientConfig::builder().with_root_certificates(roots).with_client_auth_cert(chain, key)?);
    let name = format!("acme.{DOMAIN}");

    let first = RouteSet::build(&load()?, None, None)?;
    handshake(first.tls.config_for("acme"), client.clone(), &name).expect("alice is admitted");

    // Alice's certificate is revoked, and in the same change the tenant's certificate file is half-written.
    write(dir.path(), "clients.crl", &crl(&clients, 2, &[ALICE_SERIAL])?)?;
    write(dir.path(), "acme.crt", "-----BEGIN CERTIFICATE-----\ntruncated")?;
    let settings = load()?;
    assert_eq!(settings.skipped_tenants, ["acme"], "the broken entry is left out, its previous version kept");
    let second = RouteSet::build(&settings, Some(&first), None)?;
    let refused = handshake(second.tls.config_for("acme"), client.clone(), &name);
    assert!(
        matches!(refused, Err(rustls::Error::InvalidCertificate(rustls::CertificateError::Revoked))),
        "a revoked client is refused at once: {refused:?}"
    );

    // Without a new CRL, the previous version is kept as it was: a client not revoked still gets in.
    let third = RouteSet::build(&settings_without_crl_change(&settings), Some(&first), None)?;
    handshake(third.tls.config_for("acme"), client, &name).expect("the previous version, unchanged");
    Ok(())
}

/// `settings` as if the left-out entry's CRL had not loaded: nothing newer to apply.
fn settings_without_crl_change(settings: &config::Settings) -> config::Settings {
    let mut s = settings.clone();
    s.skipped_crls.clear();
    s
}
