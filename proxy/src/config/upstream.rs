//! A tenant's upstream TLS settings, loaded: the cluster CA its brokers' certificates must chain to, the name to
//! verify, and the identity its connections present (none, the proxy's certificate, or what mints per-client
//! certificates: an intermediate of the tenant's clients CA, checked by [`super::intermediate`], or, weaker, the
//! clients CA's own key). Material only: [`crate::upstream::tls::UpstreamTls`] is built from it
//! by [`crate::routes`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use kaas_route::{CertificateFiles, Identity, TenantRoute};
use rcgen::{KeyPair, PublicKeyData};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::sign::CertifiedKey;
use rustls::RootCertStore;

use super::{certs, Collector};

/// TLS to one tenant's brokers, as configured and loaded.
#[derive(Debug, Clone)]
pub struct UpstreamSettings {
    /// The tenant's cluster CA.
    pub roots: Arc<RootCertStore>,
    /// The name brokers' certificates are verified against instead of the dialled host; a DNS name or IP.
    pub server_name: Option<String>,
    /// What the connections present.
    pub auth: UpstreamAuthSettings,
}

/// The client certificate a tenant's upstream connections present.
#[derive(Debug, Clone)]
pub enum UpstreamAuthSettings {
    /// None (a listener with `authentication: scram-sha-512`, or none at all: clients bring SASL).
    Anonymous,
    /// The proxy's own certificate and key: one principal for every client.
    Proxy(Arc<CertifiedKey>),
    /// A certificate per client subject, signed by the tenant's clients CA.
    Client(Arc<ClientsCaKey>),
}

/// What signs a tenant's minted certificates: the clients CA itself (its key, and the certificate of the CA
/// bundle that belongs to it), or an intermediate it issued ([`super::intermediate`]), presented after each
/// minted certificate.
#[derive(Clone)]
pub struct ClientsCaKey {
    /// The private key, PEM (PKCS#8 ECDSA/Ed25519/RSA).
    pub key_pem: String,
    /// The signing CA's certificate, whose public key is the key's.
    pub certificate: CertificateDer<'static>,
    /// What the proxy presents after each minted certificate: the intermediate, or nothing (the broker holds
    /// the clients CA).
    pub chain: Vec<CertificateDer<'static>>,
    /// The file the certificate came from, for errors.
    pub bundle: PathBuf,
}

impl std::fmt::Debug for ClientsCaKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientsCaKey").field("bundle", &self.bundle).finish_non_exhaustive()
    }
}

/// Why a clients CA could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// A file cannot be read.
    #[error("cannot read {path}: {source}")]
    Unreadable {
        /// The file, as resolved.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The key file holds no private key rcgen and ring can sign with (PKCS#8 ECDSA/Ed25519/RSA).
    #[error("{path} holds no usable PEM private key ({reason})")]
    Key {
        /// The key file.
        path: PathBuf,
        /// What the reader said.
        reason: String,
    },
    /// No certificate of the CA bundle has the key's public key.
    #[error("no certificate in {ca} belongs to the key in {key}")]
    NoMatchingCertificate {
        /// The CA bundle (`client_ca`).
        ca: PathBuf,
        /// The key file (`clients_ca_key`).
        key: PathBuf,
    },
    /// The intermediate fails a check of [`super::intermediate::check`].
    #[error("{path}: refused as the clients CA intermediate: {reason}")]
    Intermediate {
        /// The intermediate's certificate file.
        path: PathBuf,
        /// What it lacks.
        reason: String,
    },
    /// The CA certificate's subject cannot be written as an issuer name.
    #[error("{path}: CA subject unusable: {reason}")]
    Subject {
        /// The CA bundle.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// Loads the key and picks, from the CA bundle (which may hold an old and a new CA during a rotation), the
/// certificate that belongs to it.
pub fn load_clients_ca(bundle: &Path, key_file: &Path) -> Result<ClientsCaKey, CaError> {
    let read =
        |path: &Path| std::fs::read(path).map_err(|source| CaError::Unreadable { path: path.into(), source });
    let key_pem = String::from_utf8(read(key_file)?)
        .map_err(|_| CaError::Key { path: key_file.into(), reason: "not PEM text".into() })?;
    let key = KeyPair::from_pem(&key_pem)
        .map_err(|e| CaError::Key { path: key_file.into(), reason: e.to_string() })?;
    let spki = key.subject_public_key_info();
    let bundle_pem = read(bundle)?;
    for der in CertificateDer::pem_slice_iter(&bundle_pem).flatten() {
        let Ok((_, cert)) = x509_parser::parse_x509_certificate(der.as_ref()) else { continue };
        if cert.public_key().raw == spki.as_slice() {
            return Ok(ClientsCaKey {
                key_pem,
                certificate: der.clone(),
                chain: Vec::new(),
                bundle: bundle.into(),
            });
        }
    }
    Err(CaError::NoMatchingCertificate { ca: bundle.into(), key: key_file.into() })
}

/// Loads an intermediate of the clients CA in `bundle` (`cert_file`: its one certificate; `key_file`: its key)
/// and checks it at `now` (Unix seconds) as [`super::intermediate::check`] says.
pub fn load_intermediate(
    bundle: &Path,
    cert_file: &Path,
    key_file: &Path,
    now: i64,
) -> Result<ClientsCaKey, CaError> {
    let mut material = load_clients_ca(cert_file, key_file)?;
    let refused = |reason: String| CaError::Intermediate { path: cert_file.into(), reason };
    let (_, cert) = x509_parser::parse_x509_certificate(material.certificate.as_ref())
        .map_err(|e| refused(e.to_string()))?;
    let read = std::fs::read(bundle).map_err(|source| CaError::Unreadable { path: bundle.into(), source })?;
    let cas: Vec<_> = CertificateDer::pem_slice_iter(&read).flatten().collect();
    super::intermediate::check(&cert, &cas, now).map_err(refused)?;
    material.chain = vec![material.certificate.clone()];
    Ok(material)
}

/// The tenant's upstream TLS material, loaded; every file problem reported under its key.
pub(super) fn load(
    key: &str,
    route: &TenantRoute,
    base: &Path,
    errs: &mut Collector,
) -> Option<Arc<UpstreamSettings>> {
    let upstream = route.upstream.as_ref()?;
    let tls = upstream.tls.as_ref()?;
    let key = format!("{key}.upstream");
    let roots =
        certs::load_roots(&base.join(&tls.ca)).map_err(|e| errs.push(format!("{key}.tls.ca"), e)).ok();
    // Route validation has already reported missing fields; only what is present is loaded here.
    let auth = match upstream.identity() {
        None => Some(UpstreamAuthSettings::Anonymous),
        Some(Identity::Proxy) => {
            let (cert, private) = (upstream.cert.as_ref()?, upstream.key.as_ref()?);
            let files = CertificateFiles { cert: cert.clone(), key: private.clone() };
            super::load_cert(&key, &files, base, errs).map(UpstreamAuthSettings::Proxy)
        }
        Some(Identity::Client) => {
            let bundle = base.join(route.client_ca.as_ref()?);
            let (loaded, field) = match (&upstream.clients_ca_intermediate, &upstream.clients_ca_key) {
                (Some(files), None) => {
                    let now = time::OffsetDateTime::now_utc().unix_timestamp();
                    let (cert, private) = (base.join(&files.cert), base.join(&files.key));
                    (load_intermediate(&bundle, &cert, &private, now), "clients_ca_intermediate")
                }
                (None, Some(ca_key)) => (load_clients_ca(&bundle, &base.join(ca_key)), "clients_ca_key"),
                _ => return None,
            };
            match loaded {
                Ok(ca) => Some(UpstreamAuthSettings::Client(Arc::new(ca))),
                Err(e) => {
                    errs.push(format!("{key}.{field}"), e);
                    None
                }
            }
        }
    };
    let server_name = tls.server_name.clone();
    if let Some(name) = server_name.as_deref().filter(|n| ServerName::try_from(*n).is_err()) {
        errs.push(format!("{key}.tls.server_name"), format!("{name:?} is not a DNS name or IP address"));
        return None;
    }
    Some(Arc::new(UpstreamSettings { roots: Arc::new(roots?), server_name, auth: auth? }))
}
