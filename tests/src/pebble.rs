//! Pebble, Let's Encrypt's test ACME server (v2.10.3 from the Go module proxy, `scripts/install-pebble.sh`:
//! it has ACME Renewal Information, RFC 9773, and revocation), with `pebble-challtestsrv` as its DNS server
//! answering every A query with 127.0.0.1, so the CA validates `<tenant>.kaas.localhost` names against the proxy
//! on loopback. Its HTTPS certificate is made here (rcgen); the root it issues from is fetched from its
//! management port, which also sets a certificate's renewal window. Certificates are revoked through ACME
//! itself ([`revoke`], with the proxy's stored account). Both processes stop on drop.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{CertificateParams, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use crate::{free_port, wait_for_port};

/// A running Pebble and its DNS server.
#[derive(Debug)]
pub struct Pebble {
    /// The ACME directory's port (HTTPS).
    pub port: u16,
    /// The management port (HTTPS): `/roots/0`, the root certificates are issued under.
    pub management_port: u16,
    /// pebble-challtestsrv's management port (plain HTTP): `POST /set-txt`, `/clear-txt` publish DNS-01 records
    /// in the DNS Pebble asks.
    pub dns_management_port: u16,
    /// The CA of Pebble's own HTTPS certificate: the proxy's `acme.trust_roots`.
    pub https_ca: PathBuf,
    /// Pebble's own HTTPS certificate and key (PEM), for a test's front in its place.
    pub https_cert: PathBuf,
    /// See [`Pebble::https_cert`].
    pub https_key: PathBuf,
    /// Pebble's log (stdout and stderr), for failures and for counting its orders.
    pub log: PathBuf,
    pebble: Child,
    dns: Child,
    _dir: tempfile::TempDir,
}

/// The Pebble version `scripts/install-pebble.sh` builds.
pub const VERSION: &str = "v2.10.3";

/// Where `scripts/install-pebble.sh` puts `name` (`pebble`, `pebble-challtestsrv`).
pub fn binary(name: &str) -> PathBuf {
    let cache = std::env::var_os("KAAS_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/kaas"));
    cache.join("pebble").join(VERSION).join(name)
}

/// Whether Pebble is installed (tests fail loudly otherwise).
pub fn installed() -> bool {
    ["pebble", "pebble-challtestsrv"].iter().all(|b| binary(b).is_file())
}

impl Pebble {
    /// Starts Pebble validating TLS-ALPN-01 on `tls_port` (the proxy's TLS port) and HTTP-01 on `http_port`.
    pub fn start(tls_port: u16, http_port: u16) -> anyhow::Result<Pebble> {
        Self::start_issuing_for(tls_port, http_port, None)
    }

    /// Like [`Pebble::start`], its certificates valid for `validity_seconds` (Pebble's default: 5 years), so
    /// renewal comes within a test.
    pub fn start_issuing_for(
        tls_port: u16,
        http_port: u16,
        validity_seconds: Option<u64>,
    ) -> anyhow::Result<Pebble> {
        let dir = tempfile::tempdir()?;
        let (ca_pem, issuer) = crate::certs::new_ca("pebble e2e HTTPS CA")?;
        let key = KeyPair::generate()?;
        let cert =
            CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])?.signed_by(&key, &issuer)?;
        let https_ca = dir.path().join("https-ca.pem");
        let (https_cert, https_key) = (dir.path().join("https.pem"), dir.path().join("https.key"));
        std::fs::write(&https_ca, ca_pem)?;
        std::fs::write(&https_cert, cert.pem())?;
        std::fs::write(&https_key, key.serialize_pem())?;
        let (port, management_port, dns_port, dns_management) =
            (free_port(), free_port(), free_port(), free_port());
        let config = serde_json::json!({ "pebble": {
            "listenAddress": format!("127.0.0.1:{port}"),
            "managementListenAddress": format!("127.0.0.1:{management_port}"),
            "certificate": dir.path().join("https.pem"),
            "privateKey": dir.path().join("https.key"),
            "httpPort": http_port,
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
        }});
        let mut config = config;
        if let Some(seconds) = validity_seconds {
            // Pebble 2.5+ reads validity per profile (the old certificateValidityPeriod is ignored).
            config["pebble"]["profiles"] =
                serde_json::json!({ "default": { "description": "e2e", "validityPeriod": seconds } });
        }
        let config_path = dir.path().join("pebble.json");
        std::fs::write(&config_path, serde_json::to_vec_pretty(&config)?)?;
        let log = dir.path().join("pebble.log");
        let dns = Command::new(binary("pebble-challtestsrv"))
            .args(["-dnsserver", &format!("127.0.0.1:{dns_port}"), "-defaultIPv4", "127.0.0.1"])
            // No AAAA answers: the proxy listens on IPv4 loopback only.
            .args(["-defaultIPv6", "", "-doh", ""])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", "", "-management"])
            .arg(format!("127.0.0.1:{dns_management}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                anyhow::anyhow!("cannot start pebble-challtestsrv ({e}); run scripts/install-pebble.sh")
            })?;
        let out = std::fs::File::create(&log)?;
        let pebble = Command::new(binary("pebble"))
            .arg("-config")
            .arg(&config_path)
            .args(["-dnsserver", &format!("127.0.0.1:{dns_port}")])
            // No random sleeps before validating. Pebble's other rejections stay at their defaults (5 % of
            // nonces refused as badNonce, half the authorizations reused), which the client must handle.
            .env("PEBBLE_VA_NOSLEEP", "1")
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot start pebble ({e}); run scripts/install-pebble.sh"))?;
        let dns_management_port = dns_management;
        let pebble = Pebble {
            port,
            management_port,
            dns_management_port,
            https_ca,
            https_cert,
            https_key,
            log,
            pebble,
            dns,
            _dir: dir,
        };
        wait_for_port(port, Duration::from_secs(20))?;
        wait_for_port(management_port, Duration::from_secs(20))?;
        wait_for_port(dns_management, Duration::from_secs(20))?;
        Ok(pebble)
    }

    /// The directory URL: the proxy's `acme.directory_url`.
    pub fn directory_url(&self) -> String {
        format!("https://127.0.0.1:{}/dir", self.port)
    }

    /// The root certificate (PEM) Pebble issues under, from its management port: what clients must trust.
    pub fn root_pem(&self) -> anyhow::Result<String> {
        let response = https_get(self.management_port, "/roots/0", &self.https_ca)?;
        let (head, body) = response.split_once("\r\n\r\n").ok_or_else(|| anyhow::anyhow!("no HTTP body"))?;
        anyhow::ensure!(head.contains(" 200 "), "GET /roots/0: {head}");
        Ok(body.to_owned())
    }

    /// Makes Pebble's renewalInfo answer for the certificate `cert_pem` (its leaf first) the window from
    /// `start` to `end` (management port `POST /set-renewal-info/`).
    pub fn set_renewal_window(
        &self,
        cert_pem: &str,
        start: std::time::SystemTime,
        end: std::time::SystemTime,
    ) -> anyhow::Result<()> {
        let rfc3339 = |t: std::time::SystemTime| -> anyhow::Result<String> {
            let t = time::OffsetDateTime::from(t);
            Ok(t.format(&time::format_description::well_known::Rfc3339)?)
        };
        let leaf = leaf_pem(cert_pem)?;
        let window =
            serde_json::json!({ "suggestedWindow": { "start": rfc3339(start)?, "end": rfc3339(end)? } });
        let body = serde_json::json!({ "Certificate": leaf, "ARIResponse": window.to_string() }).to_string();
        let response =
            https_request(self.management_port, "POST", "/set-renewal-info/", &body, &self.https_ca)?;
        anyhow::ensure!(
            response.starts_with("HTTP/1.0 200") || response.starts_with("HTTP/1.1 200"),
            "{response}"
        );
        Ok(())
    }

    /// Pebble's log so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// The first certificate (the leaf) of a PEM chain, or of a key-and-chain file.
pub fn leaf_pem(pem: &str) -> anyhow::Result<String> {
    let begin = "-----BEGIN CERTIFICATE-----";
    let end = "-----END CERTIFICATE-----";
    let from = pem.find(begin).ok_or_else(|| anyhow::anyhow!("no certificate in the PEM"))?;
    let to =
        pem[from..].find(end).ok_or_else(|| anyhow::anyhow!("unterminated certificate"))? + from + end.len();
    Ok(format!("{}\n", &pem[from..to]))
}

/// Revokes the leaf of `cert_pem` at the CA of `directory_url` through ACME (RFC 8555 §7.6), as the account
/// whose credentials the proxy's `dir` store keeps in `account_json`, trusting `https_ca` for the directory.
pub async fn revoke(account_json: &Path, https_ca: &Path, cert_pem: &str) -> anyhow::Result<()> {
    #[derive(serde::Deserialize)]
    struct Stored {
        credentials: instant_acme::AccountCredentials,
    }
    let stored: Stored = serde_json::from_slice(&std::fs::read(account_json)?)?;
    let account =
        instant_acme::Account::builder_with_root(https_ca)?.from_credentials(stored.credentials).await?;
    let der = CertificateDer::from_pem_slice(leaf_pem(cert_pem)?.as_bytes())?;
    let request = instant_acme::RevocationRequest { certificate: &der, reason: None };
    account.revoke(&request).await?;
    Ok(())
}

/// `GET path` over HTTPS on loopback `port`, trusting `ca`: the whole response.
fn https_get(port: u16, path: &str, ca: &Path) -> anyhow::Result<String> {
    https_request(port, "GET", path, "", ca)
}

/// `METHOD path` with `body` over HTTPS on loopback `port`, trusting `ca`: the whole response.
fn https_request(port: u16, method: &str, path: &str, body: &str, ca: &Path) -> anyhow::Result<String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca)? {
        roots.add(cert?)?;
    }
    let config =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
    let conn = rustls::ClientConnection::new(Arc::new(config), "localhost".try_into()?)?;
    let tcp = std::net::TcpStream::connect(("127.0.0.1", port))?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let head = format!(
        "{method} {path} HTTP/1.0\r\nHost: localhost\r\nUser-Agent: kaas-e2e\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    tls.write_all(format!("{head}{body}").as_bytes())?;
    let mut bytes = Vec::new();
    match tls.read_to_end(&mut bytes) {
        Ok(_) => {}
        // Go's server closes without close_notify after an HTTP/1.0 response: the bytes are all there.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {}
        Err(e) => return Err(e.into()),
    }
    Ok(String::from_utf8(bytes)?)
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for child in [&mut self.pebble, &mut self.dns] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
