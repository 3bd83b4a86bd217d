//! Why a connection ended before its session: the one place refusals are named, with the side they are blamed
//! on, whether a retry can help, the metric's reason and the TLS alert that ends a handshake still under way.
//! Pure: the listener ([`super::handle`]) counts, logs and answers them. rustls' handshake errors are sorted
//! here into client-certificate problems by kind and too-old TLS versions.

use std::time::Duration;

use tokio::net::TcpStream;
use tokio_rustls::StartHandshake;

use super::metrics::RefusalReason;
use crate::error::{Blame, Side};
use crate::tenants::SniError;
use crate::tls::{Alert, HelloError};
use crate::upstream::identity::IdentityError;
use crate::upstream::UpstreamError;

/// Why a connection ended before its session: the one place refusals are named, counted and logged.
#[derive(Debug, thiserror::Error)]
pub(super) enum Refused {
    #[error("connection refused: {0}")]
    Hello(HelloError),
    #[error("connection refused: no ClientHello within {0:?}")]
    NoClientHello(Duration),
    #[error("TLS refused: unrecognized_name: {0}")]
    UnknownName(SniError),
    #[error("TLS refused: unrecognized_name: {0}")]
    UnknownNode(UpstreamError),
    #[error("TLS refused: tenant cluster unavailable: {0}")]
    ClusterUnavailable(UpstreamError),
    #[error("TLS refused: the tenant has {open} connections open, its limit (max_connections_per_tenant)")]
    TenantLimit { open: i64 },
    #[error(
        "TLS refused: the tenant has {open} handshakes in progress, its limit (max_handshakes_per_tenant)"
    )]
    TenantHandshakeLimit { open: usize },
    #[error("TLS handshake failed: {0}")]
    Handshake(std::io::Error),
    #[error("TLS handshake failed: timed out after {0:?}")]
    HandshakeTimeout(Duration),
    #[error("upstream unavailable; closing client connection: {0}")]
    Upstream(UpstreamError),
    #[error(
        "TLS refused: unrecognized_name: acme-tls/1 offered but no ACME challenge is pending for the name"
    )]
    NoAcmeChallenge,
}

impl Blame for Refused {
    fn side(&self) -> Side {
        match self {
            Refused::Upstream(UpstreamError::Identity(IdentityError::Reserved(_))) => Side::Client,
            Refused::ClusterUnavailable(_) | Refused::Upstream(_) => Side::Upstream,
            _ => Side::Client,
        }
    }

    fn retryable(&self) -> bool {
        match self {
            Refused::ClusterUnavailable(e) | Refused::Upstream(e) => e.retryable(),
            Refused::HandshakeTimeout(_)
            | Refused::NoClientHello(_)
            | Refused::TenantLimit { .. }
            | Refused::TenantHandshakeLimit { .. } => true,
            _ => false,
        }
    }

    fn label(&self) -> &'static str {
        self.reason().map_or("closed", RefusalReason::label)
    }
}

impl Refused {
    /// The TLS alert a refusal during the handshake ends it with.
    pub(super) fn alert(&self) -> Option<Alert> {
        match self {
            Refused::UnknownName(_) | Refused::UnknownNode(_) | Refused::NoAcmeChallenge => {
                Some(Alert::UnrecognizedName)
            }
            // `Upstream` has a handshake left to refuse only when the upstream was dialled first.
            Refused::ClusterUnavailable(_)
            | Refused::Upstream(_)
            | Refused::TenantLimit { .. }
            | Refused::TenantHandshakeLimit { .. } => Some(Alert::Unavailable),
            _ => None,
        }
    }

    /// The metric's reason; `None` for a client that simply left before saying anything.
    pub(super) fn reason(&self) -> Option<RefusalReason> {
        Some(match self {
            Refused::Hello(HelloError::Closed) => return None,
            Refused::Hello(HelloError::PlaintextKafka) => RefusalReason::Plaintext,
            Refused::Hello(HelloError::NotTls(_)) => RefusalReason::NotTls,
            Refused::Hello(HelloError::ProxyHeader) => RefusalReason::ProxyHeader,
            Refused::Hello(HelloError::Invalid(_)) => RefusalReason::InvalidClientHello,
            Refused::NoClientHello(_) => RefusalReason::NoClientHello,
            Refused::UnknownName(_) | Refused::UnknownNode(_) | Refused::NoAcmeChallenge => {
                RefusalReason::UnrecognizedName
            }
            Refused::ClusterUnavailable(_) => RefusalReason::ClusterUnavailable,
            Refused::TenantLimit { .. } => RefusalReason::TenantConnectionLimit,
            Refused::TenantHandshakeLimit { .. } => RefusalReason::TenantHandshakeLimit,
            Refused::Handshake(e) => handshake_reason(e),
            Refused::HandshakeTimeout(_) => RefusalReason::HandshakeTimeout,
            Refused::Upstream(UpstreamError::Identity(IdentityError::Reserved(_))) => {
                RefusalReason::ReservedSubject
            }
            Refused::Upstream(_) => RefusalReason::UpstreamUnavailable,
        })
    }
}

/// Why a client's handshake failed, from the rustls error inside: client-certificate problems by kind, and
/// clients that offer only TLS versions before 1.2.
fn handshake_reason(e: &std::io::Error) -> RefusalReason {
    use rustls::CertificateError as C;
    use rustls::PeerIncompatible as P;
    match e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
        Some(rustls::Error::PeerIncompatible(
            P::Tls12NotOffered | P::Tls12NotOfferedOrEnabled | P::SupportedVersionsExtensionRequired,
        )) => RefusalReason::ProtocolVersion,
        Some(rustls::Error::NoCertificatesPresented) => RefusalReason::ClientCertMissing,
        Some(rustls::Error::InvalidCertificate(c)) => match c {
            C::Expired | C::ExpiredContext { .. } => RefusalReason::ClientCertExpired,
            C::NotValidYet | C::NotValidYetContext { .. } => RefusalReason::ClientCertNotYetValid,
            C::UnknownIssuer => RefusalReason::ClientCertUnknownCa,
            C::Revoked => RefusalReason::ClientCertRevoked,
            _ => RefusalReason::ClientCertInvalid,
        },
        _ => RefusalReason::Handshake,
    }
}

/// A refusal, and the handshake still to be ended with its alert (after it is logged).
pub(super) struct Halt {
    pub(super) refused: Refused,
    pub(super) handshake: Option<StartHandshake<TcpStream>>,
}

impl From<Refused> for Halt {
    fn from(refused: Refused) -> Self {
        Halt { refused, handshake: None }
    }
}
