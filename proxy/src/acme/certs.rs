//! What the handshakes read: each ACME tenant's issued certificate (through [`AcmeCerts::resolver`]) and the
//! challenge answers pending (TLS-ALPN-01 configurations by name, HTTP-01 key authorizations by token); the
//! names a tenant's certificate covers; the facts read from a certificate's leaf.
//!
//! Neighbours: [`super::Manager`] installs what it orders and mirrors, [`super::order`] sets and clears the
//! answers of its order, [`crate::routes`] gives each ACME tenant its resolver, [`crate::listener`] and
//! [`super::http01`] answer challenges from here.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use instant_acme::CertificateIdentifier;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

use crate::config::ChallengeKind;

/// Issued certificates by tenant and pending challenge answers by name: what the handshakes read.
#[derive(Debug, Default)]
pub struct AcmeCerts {
    issued: RwLock<HashMap<String, Arc<CertifiedKey>>>,
    challenges: RwLock<HashMap<String, Arc<ServerConfig>>>,
    /// HTTP-01: key authorizations by token.
    http_tokens: RwLock<HashMap<String, String>>,
}

impl AcmeCerts {
    /// The certificate issued for `tenant`, if any yet.
    pub fn issued(&self, tenant: &str) -> Option<Arc<CertifiedKey>> {
        self.issued.read().unwrap_or_else(|p| p.into_inner()).get(tenant).cloned()
    }

    pub(super) fn install(&self, tenant: &str, cert: Arc<CertifiedKey>) {
        self.issued.write().unwrap_or_else(|p| p.into_inner()).insert(tenant.to_owned(), cert);
    }

    /// The TLS-ALPN-01 answer for `name` while its challenge is pending.
    pub fn challenge(&self, name: &str) -> Option<Arc<ServerConfig>> {
        self.challenges.read().unwrap_or_else(|p| p.into_inner()).get(name).cloned()
    }

    pub(super) fn set_challenge(&self, name: &str, config: Arc<ServerConfig>) {
        self.challenges.write().unwrap_or_else(|p| p.into_inner()).insert(name.to_owned(), config);
    }

    /// The HTTP-01 key authorization for `token` while its challenge is pending.
    pub fn http_token(&self, token: &str) -> Option<String> {
        self.http_tokens.read().unwrap_or_else(|p| p.into_inner()).get(token).cloned()
    }

    pub(super) fn set_http_token(&self, token: &str, key_authorization: String) {
        self.http_tokens
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(token.to_owned(), key_authorization);
    }

    pub(super) fn clear_http_tokens(&self, tokens: &[String]) {
        let mut map = self.http_tokens.write().unwrap_or_else(|p| p.into_inner());
        for token in tokens {
            map.remove(token);
        }
    }

    pub(super) fn clear_challenges(&self, names: &[String]) {
        let mut map = self.challenges.write().unwrap_or_else(|p| p.into_inner());
        for name in names {
            map.remove(name);
        }
    }

    /// The certificate resolver of `tenant`'s TLS configuration: its issued certificate, read per handshake,
    /// else `fallback` (the default certificate) until the first one is issued.
    pub fn resolver(
        self: &Arc<Self>,
        tenant: &str,
        fallback: Arc<CertifiedKey>,
    ) -> Arc<dyn ResolvesServerCert> {
        Arc::new(AcmeResolver { tenant: tenant.to_owned(), certs: self.clone(), fallback })
    }
}

#[derive(Debug)]
struct AcmeResolver {
    tenant: String,
    certs: Arc<AcmeCerts>,
    fallback: Arc<CertifiedKey>,
}

impl ResolvesServerCert for AcmeResolver {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.certs.issued(&self.tenant).unwrap_or_else(|| self.fallback.clone()))
    }
}

/// The names a tenant's certificate covers, by the challenge type: DNS-01 can validate a wildcard, so
/// `<tenant>.<domain>` and `*.<tenant>.<domain>`; otherwise [`names`].
pub fn names_for(challenge: ChallengeKind, tenant: &str, domain: &str, broker_ids: &[u32]) -> Vec<String> {
    match challenge {
        ChallengeKind::Dns01 => vec![format!("{tenant}.{domain}"), format!("*.{tenant}.{domain}")],
        ChallengeKind::TlsAlpn01 | ChallengeKind::Http01 => names(tenant, domain, broker_ids),
    }
}

/// The names a tenant's certificate covers: `<tenant>.<domain>`, then `b<id>.<tenant>.<domain>` per id.
pub fn names(tenant: &str, domain: &str, broker_ids: &[u32]) -> Vec<String> {
    let base = format!("{tenant}.{domain}");
    let brokers = broker_ids.iter().map(|id| format!("b{id}.{base}"));
    std::iter::once(base.clone()).chain(brokers).collect()
}

/// The DNS names of a certificate's leaf and its validity (not-before, not-after, Unix seconds).
pub(super) fn leaf_facts(cert: &CertifiedKey) -> Option<(Vec<String>, i64, i64)> {
    let (_, leaf) = x509_parser::parse_x509_certificate(cert.cert.first()?).ok()?;
    let sans = leaf.subject_alternative_name().ok()??;
    let names = sans
        .value
        .general_names
        .iter()
        .filter_map(|n| match n {
            x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_string()),
            _ => None,
        })
        .collect();
    Some((names, leaf.validity().not_before.timestamp(), leaf.validity().not_after.timestamp()))
}

/// The RFC 9773 identifier of a certificate's leaf (from its Authority Key Identifier and serial).
pub(super) fn certificate_id(cert: &CertifiedKey) -> Option<CertificateIdentifier<'static>> {
    CertificateIdentifier::try_from(cert.cert.first()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_bootstrap_name_then_each_broker() {
        let cases: [(&[u32], &[&str]); 3] = [
            (&[], &["acme.kaas.localhost"]),
            (
                &[0, 1, 2],
                &[
                    "acme.kaas.localhost",
                    "b0.acme.kaas.localhost",
                    "b1.acme.kaas.localhost",
                    "b2.acme.kaas.localhost",
                ],
            ),
            (&[111], &["acme.kaas.localhost", "b111.acme.kaas.localhost"]),
        ];
        for (ids, want) in cases {
            assert_eq!(names("acme", "kaas.localhost", ids), want, "{ids:?}");
        }
    }

    #[test]
    fn dns01_orders_the_wildcard_instead_of_broker_names() {
        let cases = [
            (ChallengeKind::Dns01, vec!["acme.kaas.localhost", "*.acme.kaas.localhost"]),
            (ChallengeKind::TlsAlpn01, vec!["acme.kaas.localhost", "b7.acme.kaas.localhost"]),
            (ChallengeKind::Http01, vec!["acme.kaas.localhost", "b7.acme.kaas.localhost"]),
        ];
        for (challenge, want) in cases {
            assert_eq!(names_for(challenge, "acme", "kaas.localhost", &[7]), want, "{challenge:?}");
        }
    }

    #[test]
    fn issued_certificates_are_kept_by_tenant_with_their_names() {
        let key = |name: &str| {
            let ck = rcgen::generate_simple_self_signed(vec![name.to_string()]).expect("rcgen");
            let der = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
            let signing = crate::tls::provider().key_provider.load_private_key(der).expect("key");
            Arc::new(CertifiedKey::new(vec![ck.cert.der().clone()], signing))
        };
        let certs = AcmeCerts::default();
        let issued = key("acme.test");
        assert_eq!(leaf_facts(&issued).map(|f| f.0), Some(vec!["acme.test".to_string()]));
        assert!(certs.issued("acme").is_none());
        certs.install("acme", issued.clone());
        assert!(Arc::ptr_eq(&certs.issued("acme").expect("issued"), &issued));
        assert!(certs.issued("other").is_none());
    }
}
