//! TLS-ALPN-01 (RFC 8737) on the proxy's one TLS port: the CA connects to the name being validated with ALPN
//! `acme-tls/1` and expects a self-signed certificate for exactly that name carrying the critical
//! `acmeIdentifier` extension (OID 1.3.6.1.5.5.7.1.31), the DER OCTET STRING of the SHA-256 of the key
//! authorization. The listener asks [`offers_acme_tls`] in its ClientHello step, before any tenant is looked
//! at, so such handshakes never reach a tenant's brokers. Neighbours: [`super::order`] builds the
//! configurations while an order is pending (and [`super::Manager`] while mirroring another replica's); [`super::AcmeCerts`] holds them by name.

use std::sync::Arc;

use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::ClientHello;
use rustls::ServerConfig;

use crate::tls::provider;

/// The ALPN protocol of TLS-ALPN-01.
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// Why a challenge answer could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ChallengeError {
    /// The digest is not a SHA-256 (32 bytes).
    #[error("key authorization digest of {0} bytes (SHA-256 has 32)")]
    Digest(usize),
    /// rcgen could not build the certificate (a name it refuses).
    #[error("challenge certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    /// rustls refused the certificate or key.
    #[error("challenge TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
}

/// Whether a ClientHello is a TLS-ALPN-01 validation: it offers `acme-tls/1`.
pub fn offers_acme_tls(hello: &ClientHello<'_>) -> bool {
    hello.alpn().is_some_and(|mut protocols| protocols.any(|p| p == ACME_TLS_ALPN))
}

/// The certificate answering the challenge for `name` whose key authorization hashes to `digest`: self-signed,
/// `name` its only SAN, the critical `acmeIdentifier` extension holding `digest`. Returns it (DER) and its key.
pub fn certificate(
    name: &str,
    digest: &[u8],
) -> Result<(rustls::pki_types::CertificateDer<'static>, PrivateKeyDer<'static>), ChallengeError> {
    if digest.len() != 32 {
        return Err(ChallengeError::Digest(digest.len()));
    }
    let mut params = rcgen::CertificateParams::new(vec![name.to_owned()])?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
    let key = rcgen::KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    Ok((cert.der().clone(), key))
}

/// The server configuration a validation connection for `name` is answered with: only `acme-tls/1`, only the
/// challenge certificate.
pub fn server_config(name: &str, digest: &[u8]) -> Result<Arc<ServerConfig>, ChallengeError> {
    let (cert, key) = certificate(name, digest)?;
    // Not `with_single_cert`: it refuses a certificate with an unknown critical extension, which this one must
    // carry.
    let signing = provider().key_provider.load_private_key(key)?;
    let certified = Arc::new(rustls::sign::CertifiedKey::new(vec![cert], signing));
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(certified)));
    config.alpn_protocols = vec![ACME_TLS_ALPN.to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_certificate_carries_the_name_and_the_critical_acme_identifier() {
        let digest: Vec<u8> = (0..32).collect();
        let (der, _) = certificate("acme.kaas.localhost", &digest).expect("certificate");
        let (_, cert) = x509_parser::parse_x509_certificate(&der).expect("parse");
        let ext = cert
            .extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == "1.3.6.1.5.5.7.1.31")
            .expect("acmeIdentifier extension");
        assert!(ext.critical);
        // DER OCTET STRING (tag 4, length 32) of the digest.
        assert_eq!(ext.value[..2], [0x04, 32]);
        assert_eq!(&ext.value[2..], digest.as_slice());
        let sans = cert.subject_alternative_name().expect("san").expect("present");
        let names: Vec<String> = sans.value.general_names.iter().map(|n| n.to_string()).collect();
        assert_eq!(names, ["DNSName(acme.kaas.localhost)"]);
    }

    #[test]
    fn digests_that_are_not_sha256_are_refused() {
        for len in [0, 31, 33] {
            assert!(matches!(certificate("a.b", &vec![0; len]), Err(ChallengeError::Digest(n)) if n == len));
        }
        let config = server_config("a.kaas.localhost", &[1; 32]).expect("config");
        assert_eq!(config.alpn_protocols, [ACME_TLS_ALPN]);
    }
}
