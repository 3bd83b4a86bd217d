//! The checks an intermediate of a tenant's clients CA passes before the proxy signs with it
//! (`upstream.clients_ca_intermediate`): issued by a certificate of the tenant's `client_ca`, a CA that may
//! issue only end-entity certificates (`pathlen:0`), a critical NameConstraints extension excluding the
//! directory subtree `O=io.strimzi`, and short-lived. Then a thief holding its key mints no Strimzi super user
//! (the brokers' JDK refuses the path: `identity::kafka::intermediate` shows it on a real broker) and mints
//! anything at all only until it expires. Pure: [`super::upstream`] reads the files and matches the key.

use std::time::Duration;

use kaas_route::OPERATOR_ORGANIZATION;
use rustls::pki_types::CertificateDer;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::x509::X509Name;

/// The longest validity an intermediate may have: a stolen key mints for at most this long. A week leaves the
/// controller days to rotate it (issue 28 §2: short-lived, rotated before expiry).
pub const MAX_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

/// Why an intermediate is refused: a sentence naming what is missing.
pub type Refusal = String;

/// Checks `cert` (the intermediate, DER) against the tenant's clients CA bundle `cas` at `now` (Unix seconds).
pub fn check(cert: &X509Certificate<'_>, cas: &[CertificateDer<'_>], now: i64) -> Result<(), Refusal> {
    let constraints = cert.basic_constraints().map_err(|e| format!("basicConstraints unreadable: {e}"))?;
    match constraints.map(|c| (c.value.ca, c.value.path_len_constraint)) {
        Some((true, Some(0))) => {}
        Some((true, other)) => {
            let len = other.map_or("none".to_owned(), |n| n.to_string());
            return Err(format!("its pathLenConstraint is {len}, not 0: it could sign a CA of its own"));
        }
        _ => return Err("it is not a CA (basicConstraints CA:true, pathlen:0)".into()),
    }
    let names = cert.name_constraints().map_err(|e| format!("nameConstraints unreadable: {e}"))?;
    let Some(names) = names.filter(|n| n.critical) else {
        return Err(format!("it has no critical nameConstraints excluding O={OPERATOR_ORGANIZATION}"));
    };
    let excluded = names.value.excluded_subtrees.iter().flatten();
    if !excluded.into_iter().any(|s| matches!(&s.base, GeneralName::DirectoryName(n) if is_strimzi(n))) {
        return Err(format!(
            "its nameConstraints do not exclude the directory subtree O={OPERATOR_ORGANIZATION}"
        ));
    }
    let (from, until) = (cert.validity().not_before.timestamp(), cert.validity().not_after.timestamp());
    if until.saturating_sub(from) > MAX_LIFETIME.as_secs() as i64 {
        let days = MAX_LIFETIME.as_secs() / 86400;
        return Err(format!("it is valid for {} s, longer than {days} days", until.saturating_sub(from)));
    }
    if now < from || now > until {
        return Err("it is not valid now (expired, or not yet valid)".into());
    }
    let signed = cas.iter().any(|der| {
        x509_parser::parse_x509_certificate(der.as_ref()).is_ok_and(|(_, ca)| {
            ca.subject().as_raw() == cert.issuer().as_raw()
                && cert.verify_signature(Some(ca.public_key())).is_ok()
        })
    });
    if !signed {
        return Err("no certificate of the tenant's client_ca signed it".into());
    }
    Ok(())
}

/// Whether `name` is exactly `O=io.strimzi`: the one subtree holding every subject Strimzi makes a super user
/// (a subtree is a prefix of RDNs, RFC 5280 4.2.1.10, and theirs are `O=io.strimzi` then `CN=…`).
fn is_strimzi(name: &X509Name<'_>) -> bool {
    let rdns: Vec<_> = name.iter().collect();
    let [rdn] = rdns.as_slice() else { return false };
    let attrs: Vec<_> = rdn.iter().collect();
    let [attr] = attrs.as_slice() else { return false };
    attr.attr_type() == &x509_parser::oid_registry::OID_X509_ORGANIZATION_NAME
        && attr.as_str().is_ok_and(|v| v.eq_ignore_ascii_case(OPERATOR_ORGANIZATION))
}

#[cfg(test)]
mod tests {
    use rcgen::{
        BasicConstraints, CertificateParams, DistinguishedName, DnType, GeneralSubtree, IsCa, Issuer,
        KeyPair, NameConstraints,
    };

    use super::*;

    fn dn(ty: DnType, value: &str) -> DistinguishedName {
        let mut dn = DistinguishedName::new();
        dn.push(ty, value);
        dn
    }

    /// A self-signed CA shaped as Strimzi's clients CA (`pathlen:0`).
    fn clients_ca(name: &str) -> (CertificateDer<'static>, Issuer<'static, KeyPair>) {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::default();
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.distinguished_name = dn(DnType::CommonName, name);
        let der = params.self_signed(&key).expect("CA").der().clone();
        (der, Issuer::new(params, key))
    }

    #[test]
    fn intermediates_need_the_clients_ca_pathlen_0_the_strimzi_exclusion_and_a_short_life() {
        let (ca, issuer) = clients_ca("clients CA");
        let (_, stranger) = clients_ca("clients CA");
        let now = time::OffsetDateTime::now_utc();
        let strimzi = || GeneralSubtree::DirectoryName(dn(DnType::OrganizationName, "io.strimzi"));
        let good = || {
            let mut p = CertificateParams::default();
            p.distinguished_name = dn(DnType::CommonName, "kaas-proxy intermediate");
            p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
            p.name_constraints =
                Some(NameConstraints { permitted_subtrees: vec![], excluded_subtrees: vec![strimzi()] });
            (p.not_before, p.not_after) = (now - time::Duration::minutes(5), now + time::Duration::days(2));
            p
        };
        let with = |edit: &dyn Fn(&mut CertificateParams)| {
            let mut p = good();
            edit(&mut p);
            p
        };
        let cases: Vec<(&str, CertificateParams, Option<&str>)> = vec![
            ("good", good(), None),
            (
                "narrowed further by permitted subtrees",
                with(&|p| {
                    p.name_constraints.as_mut().expect("set").permitted_subtrees =
                        vec![GeneralSubtree::DirectoryName(dn(DnType::CommonName, "alice"))]
                }),
                None,
            ),
            ("not a CA", with(&|p| p.is_ca = IsCa::ExplicitNoCa), Some("not a CA")),
            (
                "any path length",
                with(&|p| p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained)),
                Some("none, not 0"),
            ),
            (
                "path length 1",
                with(&|p| p.is_ca = IsCa::Ca(BasicConstraints::Constrained(1))),
                Some("1, not 0"),
            ),
            (
                "no name constraints",
                with(&|p| p.name_constraints = None),
                Some("no critical nameConstraints"),
            ),
            (
                "another organisation excluded",
                with(&|p| {
                    p.name_constraints.as_mut().expect("set").excluded_subtrees =
                        vec![GeneralSubtree::DirectoryName(dn(DnType::OrganizationName, "acme"))]
                }),
                Some("do not exclude"),
            ),
            (
                "only permitted subtrees",
                with(&|p| {
                    p.name_constraints = Some(NameConstraints {
                        permitted_subtrees: vec![strimzi()],
                        excluded_subtrees: vec![],
                    })
                }),
                Some("do not exclude"),
            ),
            (
                "eight days",
                with(&|p| p.not_after = now + time::Duration::days(8)),
                Some("longer than 7 days"),
            ),
            (
                "expired",
                with(&|p| {
                    (p.not_before, p.not_after) =
                        (now - time::Duration::days(2), now - time::Duration::hours(1))
                }),
                Some("not valid now"),
            ),
        ];
        for (what, params, refused) in cases {
            let der =
                params.signed_by(&KeyPair::generate().expect("key"), &issuer).expect("signed").der().clone();
            let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).expect("parses");
            match (check(&cert, std::slice::from_ref(&ca), now.unix_timestamp()), refused) {
                (Ok(()), None) => {}
                (Err(e), Some(want)) => assert!(e.contains(want), "{what}: {e}"),
                (got, want) => panic!("{what}: got {got:?}, wanted a refusal containing {want:?}"),
            }
        }
        // Signed by another CA of the same name: refused by signature, not by name.
        let der =
            good().signed_by(&KeyPair::generate().expect("key"), &stranger).expect("signed").der().clone();
        let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).expect("parses");
        let err = check(&cert, &[ca], now.unix_timestamp()).expect_err("another CA");
        assert!(err.contains("no certificate of the tenant's client_ca signed it"), "{err}");
    }
}
