//! TLS termination. The ClientHello is read first (rustls `Acceptor` via `LazyConfigAcceptor`), so the whole
//! server configuration — the tenant's certificate and, for a tenant with a client CA, its client-certificate
//! verifier — is chosen per tenant from the server name before the handshake goes on.
//!
//! Neighbours: [`crate::listener`] hands over accepted sockets and, once [`crate::tenants`] has named the
//! tenant, asks for its configuration; [`crate::routes`] builds the [`TlsFront`]; the finished stream goes to
//! [`crate::session`].

use std::collections::{HashMap, HashSet};
use std::io;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::CertificateRevocationListDer;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::{server::TlsStream, LazyConfigAcceptor, StartHandshake};

/// The one crypto provider of the workspace (ring), passed explicitly to every rustls builder.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The TLS alert that ends a handshake before the ServerHello.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alert {
    /// The name routes nowhere: no SNI, unknown tenant, unknown broker id.
    UnrecognizedName,
    /// The name is fine but the tenant's cluster cannot be asked right now; clients retry.
    Unavailable,
}

impl Alert {
    /// A fatal alert record (TLS 1.2 framing, as sent before any ServerHello).
    fn alert(self) -> [u8; 7] {
        let description = match self {
            Alert::UnrecognizedName => 112,
            Alert::Unavailable => 80, // internal_error
        };
        [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, description]
    }
}

/// What arrived instead of a usable ClientHello.
#[derive(Debug, thiserror::Error)]
pub enum HelloError {
    /// The first byte is 0x00: a Kafka frame's length, from a client configured without TLS.
    #[error("plaintext Kafka on the TLS port (clients must use security.protocol=SSL)")]
    PlaintextKafka,
    /// A PROXY protocol v2 header (its first byte, `\r`) from an address not in
    /// `proxy_protocol_trusted_cidrs`: it could choose the address the proxy's limits and logs see.
    #[error("a PROXY protocol header from an address not in proxy_protocol_trusted_cidrs")]
    ProxyHeader,
    /// The first byte is neither a TLS handshake record (0x16) nor plaintext Kafka; holds that byte.
    #[error("not TLS (first byte {0:#04x})")]
    NotTls(u8),
    /// The peer closed (or the socket failed) before sending a byte.
    #[error("connection closed before a ClientHello")]
    Closed,
    /// A TLS record arrived, but rustls could not read a ClientHello from it.
    #[error("invalid ClientHello: {0}")]
    Invalid(io::Error),
}

/// Server configurations by tenant, built once: the handshake only picks one.
#[derive(Debug)]
pub struct TlsFront {
    default: Arc<ServerConfig>,
    tenants: HashMap<String, Built>,
    /// Tenants whose clients must present a certificate.
    mutual: HashSet<String>,
}

/// A tenant's server configuration with what it was built from, so that a newer revocation list can be
/// applied to it alone ([`TlsFront::carry`]).
#[derive(Debug, Clone)]
struct Built {
    config: Arc<ServerConfig>,
    cert: Arc<dyn ResolvesServerCert>,
    client_roots: Option<Arc<rustls::RootCertStore>>,
}

#[derive(Debug)]
struct FixedCert(Arc<CertifiedKey>);

impl ResolvesServerCert for FixedCert {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// Why a tenant's TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum FrontError {
    /// rustls refused the configuration (the provider lacks the protocol versions asked for).
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// No client-certificate verifier could be built from the tenant's client CA (no usable roots, say).
    #[error("client CA of tenant {tenant}: {source}")]
    ClientCa {
        /// The tenant's name.
        tenant: String,
        /// rustls' reason.
        source: rustls::server::VerifierBuilderError,
    },
}

fn server_config(
    cert: Arc<dyn ResolvesServerCert>,
    client_roots: Option<Arc<rustls::RootCertStore>>,
    client_crls: Vec<CertificateRevocationListDer<'static>>,
    tenant: &str,
) -> Result<Arc<ServerConfig>, FrontError> {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let builder = match client_roots {
        // mTLS: only certificates the tenant's client CA signed get through the handshake.
        Some(roots) => {
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider())
                .with_crls(client_crls)
                // A leaf is refused when its issuer's CRL lists it; an issuer without a CRL here (the new CA
                // of a rotation, say) is not held against its certificates.
                .only_check_end_entity_revocation()
                .allow_unknown_revocation_status()
                .build()
                .map_err(|source| FrontError::ClientCa { tenant: tenant.to_owned(), source })?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(cert);
    // TLS 1.2 without the extended master secret (RFC 7627) lets a man in the middle synchronise two sessions'
    // keys (the triple handshake attack) and defeats channel binding: refused, as FIPS-mode rustls does.
    config.require_ems = true;
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests;

/// What a tenant's TLS configuration is made of.
#[derive(Debug)]
pub struct TenantTls<'a> {
    /// The tenant's name, the key [`TlsFront::config_for`] is asked with.
    pub name: &'a str,
    /// Its own certificate for its names, if not the default one.
    pub cert: Option<Arc<CertifiedKey>>,
    /// Where its certificate comes from per handshake instead (ACME: the certificate issued by then).
    pub resolver: Option<Arc<dyn ResolvesServerCert>>,
    /// Its client CA: when set, clients must present a certificate it signed.
    pub client_roots: Option<Arc<rustls::RootCertStore>>,
    /// Revocation lists the client certificates are checked against.
    pub client_crls: Vec<CertificateRevocationListDer<'static>>,
}

impl TlsFront {
    /// Builds the default configuration and one per tenant that has its own certificate or a client CA;
    /// the others share the default.
    pub fn new<'a>(
        default_cert: Arc<CertifiedKey>,
        tenants: impl IntoIterator<Item = TenantTls<'a>>,
    ) -> Result<Self, FrontError> {
        let fixed = |cert: Arc<CertifiedKey>| -> Arc<dyn ResolvesServerCert> { Arc::new(FixedCert(cert)) };
        let default = server_config(fixed(default_cert.clone()), None, Vec::new(), "(default)")?;
        let mut configs = HashMap::new();
        let mut mutual = HashSet::new();
        for t in tenants {
            if t.client_roots.is_some() {
                mutual.insert(t.name.to_owned());
            }
            if t.cert.is_some() || t.resolver.is_some() || t.client_roots.is_some() {
                let cert =
                    t.resolver.unwrap_or_else(|| fixed(t.cert.unwrap_or_else(|| default_cert.clone())));
                let config = server_config(cert.clone(), t.client_roots.clone(), t.client_crls, t.name)?;
                configs.insert(t.name.to_owned(), Built { config, cert, client_roots: t.client_roots });
            }
        }
        Ok(TlsFront { default, tenants: configs, mutual })
    }

    /// Takes `tenant`'s configuration from `previous` (a tenant whose new route did not load keeps its old one),
    /// with `crls` instead of its revocation lists when given: a CRL that loaded applies even when another file
    /// of the tenant did not.
    pub fn carry(
        &mut self,
        previous: &TlsFront,
        tenant: &str,
        crls: Option<Vec<CertificateRevocationListDer<'static>>>,
    ) -> Result<(), FrontError> {
        match (previous.tenants.get(tenant), crls) {
            (Some(old), Some(crls)) if old.client_roots.is_some() => {
                let config = server_config(old.cert.clone(), old.client_roots.clone(), crls, tenant)?;
                self.tenants.insert(tenant.to_owned(), Built { config, ..old.clone() });
            }
            (Some(old), _) => drop(self.tenants.insert(tenant.to_owned(), old.clone())),
            (None, _) => drop(self.tenants.remove(tenant)),
        };
        if previous.mutual.contains(tenant) {
            self.mutual.insert(tenant.to_owned());
        } else {
            self.mutual.remove(tenant);
        }
        Ok(())
    }

    /// Whether `tenant`'s clients must present a certificate (it has a client CA).
    pub fn authenticates_clients(&self, tenant: &str) -> bool {
        self.mutual.contains(tenant)
    }

    /// The server configuration for a tenant's names.
    pub fn config_for(&self, tenant: &str) -> Arc<ServerConfig> {
        self.tenants.get(tenant).map_or(&self.default, |b| &b.config).clone()
    }
}

/// Reads up to the ClientHello. Plaintext Kafka is recognised by its first byte: a TLS handshake record starts
/// with 0x16, a Kafka frame with the high byte of its length (0 for any frame under 16 MiB).
pub async fn read_client_hello(tcp: TcpStream) -> Result<StartHandshake<TcpStream>, HelloError> {
    let mut first = [0u8; 1];
    match tcp.peek(&mut first).await {
        Ok(0) | Err(_) => return Err(HelloError::Closed),
        Ok(_) if first[0] == 0x16 => {}
        Ok(_) if first[0] == 0x00 => return Err(HelloError::PlaintextKafka),
        Ok(_) if first[0] == b'\r' => return Err(HelloError::ProxyHeader),
        Ok(_) => return Err(HelloError::NotTls(first[0])),
    }
    LazyConfigAcceptor::new(rustls::server::Acceptor::default(), tcp).await.map_err(HelloError::Invalid)
}

/// Ends a handshake with the alert for `why`. The peer's remaining bytes are read (for at most a second) before
/// the socket is closed: closing with unread input sends a TCP reset, which can overtake the alert, and the
/// client would report a reset instead of the reason.
pub async fn refuse(start: StartHandshake<TcpStream>, why: Alert) {
    let StartHandshake { mut io, .. } = start;
    let _ = io.write_all(&why.alert()).await;
    let _ = io.shutdown().await;
    let drain = async {
        let mut sink = [0u8; 1024];
        while matches!(io.read(&mut sink).await, Ok(n) if n > 0) {}
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), drain).await;
}

/// Completes the handshake with the tenant's configuration.
pub async fn finish(
    start: StartHandshake<TcpStream>,
    config: Arc<ServerConfig>,
) -> io::Result<TlsStream<TcpStream>> {
    start.into_stream(config).await
}
