//! TLS to a tenant's brokers: the broker's certificate verified against the tenant's cluster CA and the name the
//! proxy dialled (or the configured `server_name`), and the client certificate the tenant's identity mode asks
//! for — none, the proxy's own, or one minted per client ([`super::identity`]).
//!
//! Neighbours: [`crate::config`] loads the material, [`crate::routes`] builds each tenant's [`UpstreamTls`] of it; [`super::Connector`] dials with it;
//! the resulting [`UpstreamStream`] goes to [`crate::session`].

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use kaas_route::Identity;
use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
use rustls::pki_types::ServerName;
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::identity::{ClientIdentity, ClientsCa, IdentityError, MintCache, CACHE_CAPACITY, PROXY_SUBJECT};
use crate::config::upstream::CaError;
use crate::config::{UpstreamAuthSettings, UpstreamSettings};
use crate::tls::provider;

/// Whose identity one upstream connection carries.
#[derive(Debug, Clone, Copy)]
pub enum Principal<'a> {
    /// The proxy's own requests (the metadata refresh).
    Proxy,
    /// A client's connection: its verified certificate's identity, if it presented one.
    Client(Option<&'a ClientIdentity>),
}

/// The client certificate a tenant's upstream connections present.
#[derive(Debug)]
pub enum UpstreamAuth {
    /// None (a listener with `authentication: scram-sha-512`, or none at all: clients bring SASL).
    Anonymous,
    /// The proxy's own certificate and key: one principal for every client.
    Proxy(Arc<CertifiedKey>),
    /// A certificate per client subject, signed by the tenant's clients CA.
    Client(Box<ClientsCa>),
}

#[derive(Debug)]
enum Auth {
    Fixed(Arc<ClientConfig>),
    Client { ca: Arc<ClientsCa>, cache: MintCache<Arc<ClientConfig>> },
}

/// One tenant's upstream TLS: built once per configuration version, shared by its connections.
#[derive(Debug)]
pub struct UpstreamTls {
    verifier: Arc<WebPkiServerVerifier>,
    server_name: Option<ServerName<'static>>,
    identity: Option<Identity>,
    auth: Auth,
}

/// Why a tenant's upstream TLS could not be set up from its material.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamTlsError {
    /// The cluster CA yields no verifier (no usable root, say).
    #[error("cluster CA: {0}")]
    Verifier(#[from] rustls::client::VerifierBuilderError),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// The clients CA cannot sign.
    #[error(transparent)]
    ClientsCa(#[from] CaError),
    /// `server_name` is neither a DNS name nor an IP address.
    #[error("server_name {0:?} is not a DNS name or IP address")]
    ServerName(String),
}

#[derive(Debug)]
struct FixedClientCert(Arc<CertifiedKey>);

impl ResolvesClientCert for FixedClientCert {
    fn resolve(&self, _: &[&[u8]], _: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

impl UpstreamTls {
    /// Builds the verifier and, for the fixed identities, the one client configuration.
    pub fn new(
        roots: Arc<RootCertStore>,
        server_name: Option<&str>,
        auth: UpstreamAuth,
    ) -> Result<UpstreamTls, UpstreamTlsError> {
        let verifier = WebPkiServerVerifier::builder_with_provider(roots, provider()).build()?;
        let server_name = server_name
            .map(|n| ServerName::try_from(n.to_owned()).map_err(|_| UpstreamTlsError::ServerName(n.into())))
            .transpose()?;
        let (identity, auth) = match auth {
            UpstreamAuth::Anonymous => (None, Auth::Fixed(client_config(&verifier, None)?)),
            UpstreamAuth::Proxy(key) => {
                (Some(Identity::Proxy), Auth::Fixed(client_config(&verifier, Some(key))?))
            }
            UpstreamAuth::Client(ca) => (
                Some(Identity::Client),
                Auth::Client { ca: Arc::new(*ca), cache: MintCache::new(CACHE_CAPACITY) },
            ),
        };
        Ok(UpstreamTls { verifier, server_name, identity, auth })
    }

    /// The upstream TLS of a tenant's loaded `settings`.
    pub fn from_settings(settings: &UpstreamSettings) -> Result<UpstreamTls, UpstreamTlsError> {
        let auth = match &settings.auth {
            UpstreamAuthSettings::Anonymous => UpstreamAuth::Anonymous,
            UpstreamAuthSettings::Proxy(key) => UpstreamAuth::Proxy(key.clone()),
            UpstreamAuthSettings::Client(ca) => UpstreamAuth::Client(Box::new(ClientsCa::new(ca)?)),
        };
        UpstreamTls::new(settings.roots.clone(), settings.server_name.as_deref(), auth)
    }

    /// The identity mode: `None` when no client certificate is presented.
    pub fn identity(&self) -> Option<Identity> {
        self.identity
    }

    /// The name a broker's certificate must carry: the configured override, else the host dialled.
    pub fn server_name(&self, host: &str) -> Result<ServerName<'static>, UpstreamTlsError> {
        match &self.server_name {
            Some(name) => Ok(name.clone()),
            None => {
                ServerName::try_from(host.to_owned()).map_err(|_| UpstreamTlsError::ServerName(host.into()))
            }
        }
    }

    /// The client configuration for `who`: the fixed one, or one with a certificate minted for its subject
    /// (cached; signed on the blocking pool).
    pub async fn config_for(&self, who: Principal<'_>) -> Result<Arc<ClientConfig>, IdentityError> {
        let (ca, cache) = match &self.auth {
            Auth::Fixed(config) => return Ok(config.clone()),
            Auth::Client { ca, cache } => (ca, cache),
        };
        let subject: &[u8] = match who {
            Principal::Proxy => PROXY_SUBJECT,
            Principal::Client(Some(id)) => &id.subject_der,
            Principal::Client(None) => return Err(IdentityError::NoCertificate),
        };
        if let Some(config) = cache.get(subject, Instant::now()) {
            return Ok(config);
        }
        let lifetime = ca.lifetime_at(time::OffsetDateTime::now_utc());
        let (ca, owned) = (ca.clone(), subject.to_vec());
        let key = tokio::task::spawn_blocking(move || ca.mint(&owned))
            .await
            .map_err(|e| IdentityError::Signing(e.to_string()))??;
        let config = client_config(&self.verifier, Some(Arc::new(key)))
            .map_err(|e| IdentityError::Signing(e.to_string()))?;
        cache.insert_for(subject.to_vec(), config.clone(), Instant::now(), lifetime);
        Ok(config)
    }

    /// Subjects with a cached minted certificate.
    pub fn minted(&self) -> usize {
        match &self.auth {
            Auth::Client { cache, .. } => cache.len(),
            Auth::Fixed(_) => 0,
        }
    }
}

fn client_config(
    verifier: &Arc<WebPkiServerVerifier>,
    cert: Option<Arc<CertifiedKey>>,
) -> Result<Arc<ClientConfig>, rustls::Error> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_webpki_verifier(verifier.clone());
    let mut config = match cert {
        Some(key) => builder.with_client_cert_resolver(Arc::new(FixedClientCert(key))),
        None => builder.with_no_client_auth(),
    };
    // A broker that negotiates TLS 1.2 without the extended master secret is refused (RFC 7627; JDKs have
    // sent it since 8u161, so Kafka brokers do).
    config.require_ems = true;
    Ok(Arc::new(config))
}

/// What went wrong in an upstream TLS handshake: the `reason` of the metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsFailure {
    /// The broker's certificate did not verify (wrong CA, wrong name, expired).
    BrokerCertificate,
    /// The broker ended the handshake with an alert (it refused the proxy's client certificate, say).
    BrokerAlert,
    /// Anything else: a reset, a protocol error, not TLS at all.
    Handshake,
    /// No handshake within the connect timeout.
    Timeout,
}

/// Every [`TlsFailure`], in label order.
pub const TLS_FAILURES: [TlsFailure; 4] =
    [TlsFailure::BrokerCertificate, TlsFailure::BrokerAlert, TlsFailure::Handshake, TlsFailure::Timeout];

impl TlsFailure {
    /// Reads the rustls error inside a handshake's I/O error.
    pub fn of(e: &io::Error) -> TlsFailure {
        match e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
            Some(rustls::Error::InvalidCertificate(_)) => TlsFailure::BrokerCertificate,
            Some(rustls::Error::AlertReceived(_)) => TlsFailure::BrokerAlert,
            _ => TlsFailure::Handshake,
        }
    }

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            TlsFailure::BrokerCertificate => "broker_certificate",
            TlsFailure::BrokerAlert => "broker_alert",
            TlsFailure::Handshake => "handshake",
            TlsFailure::Timeout => "timeout",
        }
    }
}

/// A connection to a broker, plaintext or TLS.
#[derive(Debug)]
pub enum UpstreamStream {
    /// Plaintext TCP.
    Plain(TcpStream),
    /// TLS over TCP.
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for UpstreamStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            UpstreamStream::Tls(s) => contained(|| Pin::new(s.as_mut()).poll_read(cx, buf)),
        }
    }
}

/// Runs a rustls read, turning a panic into an I/O error on this connection alone. rustls keeps a debug
/// assertion (`!sent_fatal_alert`, rustls issue 959) that a broker can trip after the proxy has sent
/// `close_notify` (the client left; its last answers are being drained) and the broker then sends bytes rustls
/// refuses: in a debug build that would unwind through the session. Release builds return the error anyway.
fn contained(read: impl FnOnce() -> Poll<io::Result<()>>) -> Poll<io::Result<()>> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(read)).unwrap_or_else(|_| {
        Poll::Ready(Err(io::Error::other("TLS state error after close_notify (connection dropped)")))
    })
}

impl AsyncWrite for UpstreamStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            UpstreamStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamStream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            UpstreamStream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            UpstreamStream::Plain(s) => s.is_write_vectored(),
            UpstreamStream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamStream::Plain(s) => Pin::new(s).poll_flush(cx),
            UpstreamStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            UpstreamStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
