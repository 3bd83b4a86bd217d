//! The intermediate CA kaas-controller issues for each tenant from the tenant's Strimzi clients CA, so that
//! kaas-proxy never holds a key that can sign a Strimzi super user (issue 28 §2): `pathlen:0`, a critical
//! NameConstraints extension excluding the directory subtree `O=io.strimzi` (every subject Strimzi makes a super
//! user: `CN=<cluster>-kafka,O=io.strimzi`, the entity operators', Cruise Control's), and [`LIFETIME`] long.
//! A thief who takes the proxy's Secret can mint only what the proxy mints anyway, and only until the
//! intermediate expires; the brokers' JDK enforces the exclusion (`identity::kafka::intermediate` shows it on a
//! real broker), and the proxy checks the same three properties before it signs with one
//! (`proxy/src/config/intermediate.rs`).
//!
//! Pure: [`issue`] and [`renewal_due`] take PEM and a time; [`super::read`] and [`super::write`] are the I/O.
//! The clients CA key itself stays in the controller's memory for the one signature.

use std::time::Duration;

use kaas_route::OPERATOR_ORGANIZATION;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, GeneralSubtree, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, NameConstraints,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use time::OffsetDateTime;

/// How long an intermediate is valid: what a stolen key buys at most. Within the proxy's limit of 7 days
/// (`MAX_LIFETIME` there), and long enough that a controller down for a day loses nothing.
pub const LIFETIME: Duration = Duration::from_secs(3 * 24 * 3600);
/// An intermediate with less than this left is replaced: half its life, so a ready tenant's recheck (every
/// few minutes) renews it a day and a half before it expires.
pub const RENEW_WITHIN: Duration = Duration::from_secs(LIFETIME.as_secs() / 2);
/// Backdated by this much, for brokers whose clocks run behind the controller's.
const BACKDATE: Duration = Duration::from_secs(5 * 60);

/// An issued intermediate, PEM: what the proxy signs its clients' upstream certificates with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intermediate {
    /// The intermediate's certificate, which the proxy presents after each minted certificate.
    pub cert_pem: String,
    /// Its private key (a fresh P-256 key each issue).
    pub key_pem: String,
}

/// Why no intermediate could be issued: each names what was wrong with Strimzi's material.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IssueError {
    /// `ca.crt` holds no certificate.
    #[error("the clients CA certificate is not a PEM certificate")]
    NoCertificate,
    /// `ca.key` is no private key rcgen can sign with.
    #[error("the clients CA key cannot sign: {0}")]
    Key(String),
    /// The certificate and key do not belong together, or rcgen refused.
    #[error("issuing the intermediate failed: {0}")]
    Issue(String),
}

/// The first certificate of `pem`, DER.
fn first_certificate(pem: &[u8]) -> Option<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem).next()?.ok()
}

/// Issues tenant `tenant`'s intermediate at `now` from its clients CA (`ca_pem`, Strimzi's `ca.crt`: the
/// current CA first) and that CA's key (`ca_key_pem`, Strimzi's `ca.key`). The result is checked to be signed
/// by that certificate, so a key that does not match it is refused here rather than by the proxy.
pub fn issue(
    tenant: &str,
    ca_pem: &[u8],
    ca_key_pem: &[u8],
    now: OffsetDateTime,
) -> Result<Intermediate, IssueError> {
    let ca = first_certificate(ca_pem).ok_or(IssueError::NoCertificate)?;
    let ca_key = std::str::from_utf8(ca_key_pem).map_err(|_| IssueError::Key("not UTF-8 PEM".into()))?;
    let ca_key = KeyPair::from_pem(ca_key).map_err(|e| IssueError::Key(e.to_string()))?;
    let issuer = Issuer::from_ca_cert_der(&ca, ca_key).map_err(|e| IssueError::Issue(e.to_string()))?;

    let key = KeyPair::generate().map_err(|e| IssueError::Issue(e.to_string()))?;
    let mut params = CertificateParams::default();
    params.distinguished_name = name(&[(DnType::CommonName, &format!("kaas-proxy intermediate {tenant}"))]);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.name_constraints = Some(NameConstraints {
        permitted_subtrees: Vec::new(),
        excluded_subtrees: vec![GeneralSubtree::DirectoryName(name(&[(
            DnType::OrganizationName,
            OPERATOR_ORGANIZATION,
        )]))],
    });
    params.not_before = now - BACKDATE;
    params.not_after = now + LIFETIME - BACKDATE;
    let cert = params.signed_by(&key, &issuer).map_err(|e| IssueError::Issue(e.to_string()))?;
    // rcgen signs with whatever key it is given: a `ca.key` of another CA yields a certificate nobody trusts.
    if !signed_by(cert.der(), Some(&ca)) {
        return Err(IssueError::Issue(
            "the clients CA key does not belong to the clients CA certificate".into(),
        ));
    }
    Ok(Intermediate { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
}

fn parse(der: &[u8]) -> Option<x509_parser::certificate::X509Certificate<'_>> {
    x509_parser::parse_x509_certificate(der).ok().map(|(_, c)| c)
}

/// Whether certificate `der` names `ca` (DER) as its issuer, byte for byte as the proxy compares them, and
/// carries its signature.
fn signed_by(der: &[u8], ca: Option<&[u8]>) -> bool {
    let (Some(cert), Some(ca)) = (parse(der), ca.and_then(parse)) else { return false };
    cert.issuer().as_raw() == ca.subject().as_raw() && cert.verify_signature(Some(ca.public_key())).is_ok()
}

fn name(attrs: &[(DnType, &str)]) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    for (ty, value) in attrs {
        dn.push(ty.clone(), *value);
    }
    dn
}

/// `Some(why)` when the intermediate `cert_pem` the proxy holds must be replaced at `now`: unreadable, not
/// issued by the current clients CA (`ca_pem`: Strimzi renewed it), or less than [`RENEW_WITHIN`] left.
pub fn renewal_due(cert_pem: &[u8], ca_pem: &[u8], now: OffsetDateTime) -> Option<String> {
    let Some(der) = first_certificate(cert_pem) else { return Some("none issued yet".into()) };
    let Some(cert) = parse(&der) else { return Some("the one held is unreadable".into()) };
    if !signed_by(&der, first_certificate(ca_pem).as_deref()) {
        return Some("the clients CA changed".into());
    }
    let left = cert.validity().not_after.timestamp() - now.unix_timestamp();
    (left < RENEW_WITHIN.as_secs() as i64).then(|| format!("{left} s left"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A clients CA as Strimzi keeps one (`O=io.strimzi, CN=clients-ca v<version>`): PEM cert and key.
    fn clients_ca(version: u32) -> (String, String) {
        kaas_testsupport::certs::strimzi_ca(&format!("clients-ca v{version}")).expect("CA")
    }

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("time")
    }

    #[test]
    fn an_intermediate_is_a_pathlen_0_ca_excluding_strimzi_signed_by_the_clients_ca_for_three_days() {
        let (ca, ca_key) = clients_ca(0);
        let issued = issue("acme", ca.as_bytes(), ca_key.as_bytes(), now()).expect("issued");
        let der = first_certificate(issued.cert_pem.as_bytes()).expect("PEM");
        let cert = parse(&der).expect("X.509");
        let constraints = cert.basic_constraints().expect("readable").expect("present").value;
        assert!(constraints.ca);
        assert_eq!(constraints.path_len_constraint, Some(0));
        let names = cert.name_constraints().expect("readable").expect("present");
        assert!(names.critical, "NameConstraints must be critical");
        let excluded: Vec<String> =
            names.value.excluded_subtrees.iter().flatten().map(|s| s.base.to_string()).collect();
        assert_eq!(excluded, [format!("DirectoryName(O={OPERATOR_ORGANIZATION})")]);
        let life = cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp();
        assert_eq!(life, LIFETIME.as_secs() as i64);
        assert!(cert.validity().not_before.timestamp() < now().unix_timestamp(), "backdated");
        assert_eq!(cert.subject().to_string(), "CN=kaas-proxy intermediate acme");
        let ca_der = first_certificate(ca.as_bytes()).expect("CA");
        let ca = parse(&ca_der).expect("CA");
        assert_eq!(cert.issuer().as_raw(), ca.subject().as_raw(), "issuer bytes are the CA's subject bytes");
        assert!(cert.verify_signature(Some(ca.public_key())).is_ok());
        assert!(KeyPair::from_pem(&issued.key_pem).is_ok(), "the key is PEM the proxy reads");
    }

    #[test]
    fn strimzis_material_that_cannot_issue_is_refused_naming_what_is_wrong() {
        let (ca, ca_key) = clients_ca(0);
        let (_, other_key) = clients_ca(1);
        let cases: [(&str, &str, &str); 4] = [
            ("no PEM", &ca_key, "not a PEM certificate"),
            (&ca, "not a key", "cannot sign"),
            (&ca, &other_key, "does not belong to the clients CA certificate"),
            ("", "", "not a PEM certificate"),
        ];
        for (cert, key, want) in cases {
            let refused = issue("acme", cert.as_bytes(), key.as_bytes(), now()).expect_err(want);
            assert!(refused.to_string().contains(want), "{refused} (wanted: {want})");
        }
    }

    #[test]
    fn an_intermediate_is_renewed_at_half_life_and_when_strimzi_renews_the_clients_ca() {
        let (ca, ca_key) = clients_ca(0);
        let issued = issue("acme", ca.as_bytes(), ca_key.as_bytes(), now()).expect("issued");
        let cert = issued.cert_pem.as_bytes();
        let at = |secs: u64| now() + Duration::from_secs(secs);
        let half = RENEW_WITHIN.as_secs();
        assert_eq!(renewal_due(cert, ca.as_bytes(), now()), None, "fresh");
        assert_eq!(renewal_due(cert, ca.as_bytes(), at(half - 3600)), None, "an hour before half-life");
        assert!(renewal_due(cert, ca.as_bytes(), at(half)).is_some(), "at half-life (backdated 5 min)");
        assert!(renewal_due(cert, ca.as_bytes(), at(LIFETIME.as_secs() * 2)).is_some(), "expired");
        let (renewed_ca, _) = clients_ca(1);
        let why = renewal_due(cert, renewed_ca.as_bytes(), now());
        assert_eq!(why.as_deref(), Some("the clients CA changed"));
        assert_eq!(renewal_due(b"", ca.as_bytes(), now()).as_deref(), Some("none issued yet"));
    }
}
