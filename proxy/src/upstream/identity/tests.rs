use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::WebPkiClientVerifier;

use super::*;

/// A CA written into `dir` as `<stem>.pem` / `<stem>.key`; returns its certificate.
fn write_ca(dir: &Path, stem: &str, cn: &str) -> CertificateDer<'static> {
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::default();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::OrganizationName, "acme");
    params.distinguished_name.push(DnType::CommonName, cn);
    let cert = params.self_signed(&key).expect("self-signed CA");
    std::fs::write(dir.join(format!("{stem}.pem")), cert.pem()).expect("write CA");
    std::fs::write(dir.join(format!("{stem}.key")), key.serialize_pem()).expect("write key");
    cert.der().clone()
}

/// The subject DER of a certificate with `dn`.
fn subject_of(dn: DistinguishedName) -> (Vec<u8>, String) {
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::default();
    params.distinguished_name = dn;
    let cert = params.self_signed(&key).expect("cert");
    let id = ClientIdentity::from_leaf(cert.der()).expect("readable");
    (id.subject_der, id.subject)
}

/// DER of a Name from RDNs of (OID bytes, UTF8String value) attributes.
fn name_der(rdns: &[&[(&[u8], &str)]]) -> Vec<u8> {
    fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
        assert!(body.len() < 128, "short form only");
        let mut v = vec![tag, body.len() as u8];
        v.extend_from_slice(body);
        v
    }
    let mut seq = Vec::new();
    for rdn in rdns {
        let mut set = Vec::new();
        for (oid, value) in *rdn {
            let mut attr = tlv(0x06, oid);
            attr.extend(tlv(0x0c, value.as_bytes()));
            set.extend(tlv(0x30, &attr));
        }
        seq.extend(tlv(0x31, &set));
    }
    tlv(0x30, &seq)
}

const CN: &[u8] = &[0x55, 0x04, 0x03];
const OU: &[u8] = &[0x55, 0x04, 0x0b];

#[test]
fn subjects_read_as_java_writes_them() {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, DnValue::PrintableString("DE".try_into().expect("printable")));
    dn.push(DnType::OrganizationName, "acme");
    dn.push(DnType::OrganizationalUnitName, "pay,ments");
    dn.push(DnType::CommonName, " alice+bob ");
    let (_, subject) = subject_of(dn);
    assert_eq!(subject, r"CN=\ alice\+bob\ ,OU=pay\,ments,O=acme,C=DE");
    let (_, name) = X509Name::from_der(PROXY_SUBJECT).expect("valid DER");
    assert_eq!(rfc2253(&name), "CN=kaas-proxy");
    let two = name_der(&[&[(OU, "a")], &[(CN, "x"), (OU, "b")]]);
    let (_, name) = X509Name::from_der(&two).expect("valid DER");
    assert_eq!(rfc2253(&name), "CN=x+OU=b,OU=a");
}

#[test]
fn minted_certificates_carry_the_exact_subject_and_verify_against_the_clients_ca() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca_der = write_ca(dir.path(), "old", "old clients CA");
    let new_ca_der = write_ca(dir.path(), "new", "new clients CA");
    // A rotation bundle: old and new CA; the key is the new one.
    let bundle = dir.path().join("bundle.pem");
    let pems = [dir.path().join("old.pem"), dir.path().join("new.pem")]
        .map(|p| std::fs::read_to_string(p).expect("pem"))
        .concat();
    std::fs::write(&bundle, pems).expect("bundle");
    let ca = ClientsCa::load(&bundle, &dir.path().join("new.key")).expect("loads");

    let mut roots = rustls::RootCertStore::empty();
    roots.add(new_ca_der).expect("root");
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider()).build().expect("verifier");
    let mut old_roots = rustls::RootCertStore::empty();
    old_roots.add(ca_der).expect("root");
    let old_verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(old_roots), provider())
        .build()
        .expect("verifier");

    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, DnValue::PrintableString("acme".try_into().expect("printable")));
    dn.push(DnType::OrganizationalUnitName, "payments");
    dn.push(DnType::CommonName, "carol");
    let (carol, _) = subject_of(dn);
    for subject in [carol.as_slice(), PROXY_SUBJECT] {
        let key = ca.mint(subject).expect("minted");
        let leaf = &key.cert[0];
        let (_, parsed) = x509_parser::parse_x509_certificate(leaf.as_ref()).expect("parses");
        assert_eq!(parsed.subject().as_raw(), subject, "byte-identical subject");
        let lifetime = parsed.validity().not_after.timestamp() - parsed.validity().not_before.timestamp();
        assert_eq!(lifetime as u64, (MINTED_LIFETIME + CLOCK_SKEW).as_secs());
        verifier.verify_client_cert(leaf, &[], UnixTime::now()).expect("the clients CA signed it");
        assert!(old_verifier.verify_client_cert(leaf, &[], UnixTime::now()).is_err(), "not the old CA");
    }
}

#[test]
fn subjects_that_cannot_be_reproduced_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_ca(dir.path(), "ca", "clients CA");
    let ca = ClientsCa::load(&dir.path().join("ca.pem"), &dir.path().join("ca.key")).expect("loads");
    let cases: [(Vec<u8>, &str); 3] = [
        (name_der(&[&[(OU, "a")], &[(OU, "b")], &[(CN, "x")]]), "twice"),
        (name_der(&[&[(CN, "x"), (OU, "b")]]), "2 attributes"),
        // x509-parser reads an empty RDN as no RDN; the re-encoding check catches it.
        (name_der(&[&[]]), "re-encoding"),
    ];
    for (der, why) in cases {
        match ca.mint(&der) {
            Err(IdentityError::NotReproducible { why: got, .. }) => {
                assert!(got.contains(why), "{why}: {got}")
            }
            other => panic!("expected NotReproducible({why}), got {other:?}"),
        }
    }
    assert!(matches!(ca.mint(b"\x31\x00"), Err(IdentityError::Unreadable(_))), "a SET is not a Name");
}

#[test]
fn clients_ca_load_errors_name_the_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_ca(dir.path(), "a", "A");
    write_ca(dir.path(), "b", "B");
    let p = |f: &str| dir.path().join(f);
    let err = ClientsCa::load(&p("a.pem"), &p("b.key")).expect_err("mismatch");
    assert!(matches!(err, CaError::NoMatchingCertificate { .. }), "{err}");
    assert!(err.to_string().contains("a.pem") && err.to_string().contains("b.key"), "{err}");
    let err = ClientsCa::load(&p("a.pem"), &p("missing.key")).expect_err("missing");
    assert!(matches!(err, CaError::Unreadable { .. }), "{err}");
    let err = ClientsCa::load(&p("a.pem"), &p("a.pem")).expect_err("a certificate is no key");
    assert!(matches!(err, CaError::Key { .. }), "{err}");
}

#[test]
fn the_cache_renews_and_stays_bounded() {
    let cache = MintCache::new(2);
    let t0 = Instant::now();
    cache.insert(b"a".to_vec(), 1, t0);
    assert_eq!(cache.get(b"a", t0), Some(1));
    let renew = MINTED_LIFETIME - RENEW_BEFORE;
    assert_eq!(cache.get(b"a", t0 + renew - Duration::from_secs(1)), Some(1));
    assert_eq!(cache.get(b"a", t0 + renew), None, "due for renewal");
    cache.insert(b"b".to_vec(), 2, t0 + Duration::from_secs(1));
    cache.insert(b"c".to_vec(), 3, t0 + Duration::from_secs(2));
    assert_eq!(cache.len(), 2);
    assert_eq!(cache.get(b"a", t0), None, "the oldest made room");
    assert_eq!((cache.get(b"b", t0), cache.get(b"c", t0)), (Some(2), Some(3)));
    // Entries due for renewal go first.
    cache.insert(b"d".to_vec(), 4, t0 + renew + Duration::from_secs(5));
    assert_eq!(cache.len(), 1);
}

/// A random source that returns `fill` bytes, or fails.
#[derive(Debug)]
struct FixedRandom(Option<u8>);

impl SecureRandom for FixedRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), rustls::crypto::GetRandomFailed> {
        let byte = self.0.ok_or(rustls::crypto::GetRandomFailed)?;
        buf.fill(byte);
        Ok(())
    }
}

#[test]
fn serials_come_from_the_secure_random_source_and_fail_closed() {
    assert_eq!(random_serial(&FixedRandom(Some(0xff))).expect("filled"), {
        let mut want = [0xff; 16];
        want[0] = 0x7f;
        want
    });
    assert!(random_serial(&FixedRandom(None)).is_err(), "no weaker fallback when the source fails");
    let (a, b) = (
        random_serial(provider().secure_random).expect("os"),
        random_serial(provider().secure_random).expect("os"),
    );
    assert_ne!(a, b);
}

const O: &[u8] = &[0x55, 0x04, 0x0a];

/// A subject as RDNs of (OID bytes, value), root-most first, as [`name_der`] takes them.
type Rdns<'a> = &'a [&'a [(&'a [u8], &'a str)]];

#[test]
fn subjects_strimzi_makes_super_users_are_never_minted() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_ca(dir.path(), "ca", "clients CA");
    let ca = ClientsCa::load(&dir.path().join("ca.pem"), &dir.path().join("ca.key")).expect("loads");
    // (subject as X.509 orders it, root-most RDN first; minted?)
    let cases: [(Rdns, bool); 7] = [
        // Strimzi's own components (controller/src/strimzi: `super_users`).
        (&[&[(O, "io.strimzi")], &[(CN, "kaas-kafka")]], false),
        (&[&[(O, "io.strimzi")], &[(CN, "cluster-operator")]], false),
        (&[&[(O, "io.strimzi")], &[(CN, "kaas-entity-user-operator")]], false),
        // The organisation wherever it stands, whatever its case, alone: never minted.
        (&[&[(O, "io.strimzi")]], false),
        (&[&[(OU, "x")], &[(O, "IO.Strimzi")], &[(CN, "a")]], false),
        // Users: the organisation's name elsewhere is only text.
        (&[&[(CN, "io.strimzi")]], true),
        (&[&[(O, "acme")], &[(OU, "io.strimzi")], &[(CN, "alice")]], true),
    ];
    for (rdns, minted) in cases {
        let der = name_der(rdns);
        let (_, name) = X509Name::from_der(&der).expect("valid DER");
        let subject = rfc2253(&name);
        match ca.mint(&der) {
            Ok(_) => assert!(minted, "{subject} was minted"),
            Err(e) => {
                assert!(!minted, "{subject}: {e}");
                assert_eq!(e, IdentityError::Reserved(subject.clone()));
                assert!(e.to_string().contains("O=io.strimzi"), "{subject}: {e}");
            }
        }
    }
}

/// A clients CA and an intermediate of it (`pathlen:0`, excluding `O=io.strimzi`) that expires in `expires_in`,
/// written into `dir` as `ca.pem`, `intermediate.pem` and `intermediate.key`; the intermediate loaded.
fn intermediate(dir: &Path, expires_in: time::Duration) -> ClientsCa {
    use rcgen::{GeneralSubtree, NameConstraints};
    write_ca(dir, "ca", "clients CA");
    let ca_key = KeyPair::from_pem(&std::fs::read_to_string(dir.join("ca.key")).expect("key")).expect("key");
    let mut ca = CertificateParams::default();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name = DistinguishedName::new();
    ca.distinguished_name.push(DnType::OrganizationName, "acme");
    ca.distinguished_name.push(DnType::CommonName, "clients CA");
    let ca = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, "kaas-proxy intermediate");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    let mut strimzi = DistinguishedName::new();
    strimzi.push(DnType::OrganizationName, "io.strimzi");
    params.name_constraints = Some(NameConstraints {
        permitted_subtrees: vec![],
        excluded_subtrees: vec![GeneralSubtree::DirectoryName(strimzi)],
    });
    let now = time::OffsetDateTime::now_utc();
    (params.not_before, params.not_after) = (now - time::Duration::minutes(5), now + expires_in);
    let cert = params.signed_by(&key, &ca).expect("signed");
    std::fs::write(dir.join("intermediate.pem"), cert.pem()).expect("write");
    std::fs::write(dir.join("intermediate.key"), key.serialize_pem()).expect("write");
    let material = config::upstream::load_intermediate(
        &dir.join("ca.pem"),
        &dir.join("intermediate.pem"),
        &dir.join("intermediate.key"),
        now.unix_timestamp(),
    )
    .expect("a good intermediate");
    ClientsCa::new(&material).expect("signs")
}

#[test]
fn an_intermediate_signs_is_presented_after_the_leaf_and_is_never_outlived() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = intermediate(dir.path(), time::Duration::days(2));
    let key = ca.mint(PROXY_SUBJECT).expect("minted");
    assert_eq!(key.cert.len(), 2, "the minted certificate, then the intermediate");
    let (_, leaf) = x509_parser::parse_x509_certificate(key.cert[0].as_ref()).expect("leaf");
    let (_, inter) = x509_parser::parse_x509_certificate(key.cert[1].as_ref()).expect("intermediate");
    assert_eq!(leaf.issuer().as_raw(), inter.subject().as_raw());
    leaf.verify_signature(Some(inter.public_key())).expect("the intermediate signed it");
    let ski = inter.extensions().iter().find_map(|e| match e.parsed_extension() {
        ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0.to_vec()),
        _ => None,
    });
    let aki = leaf.extensions().iter().find_map(|e| match e.parsed_extension() {
        ParsedExtension::AuthorityKeyIdentifier(id) => id.key_identifier.as_ref().map(|k| k.0.to_vec()),
        _ => None,
    });
    assert_eq!(aki, ski, "the leaf names the intermediate's key");
    let lifetime = leaf.validity().not_after.timestamp() - leaf.validity().not_before.timestamp();
    assert_eq!(lifetime as u64, (MINTED_LIFETIME + CLOCK_SKEW).as_secs());

    // An intermediate ten minutes from expiry: what it signs expires with it, and is not cached past it.
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = intermediate(dir.path(), time::Duration::minutes(10));
    let key = ca.mint(PROXY_SUBJECT).expect("minted");
    let (_, leaf) = x509_parser::parse_x509_certificate(key.cert[0].as_ref()).expect("leaf");
    let (_, inter) = x509_parser::parse_x509_certificate(key.cert[1].as_ref()).expect("intermediate");
    assert!(leaf.validity().not_after.timestamp() <= inter.validity().not_after.timestamp());
    let left = ca.lifetime_at(time::OffsetDateTime::now_utc());
    assert!(left <= Duration::from_secs(600) && left > Duration::from_secs(590), "{left:?}");
    let cache = MintCache::new(4);
    let t0 = Instant::now();
    cache.insert_for(b"a".to_vec(), 1, t0, left);
    assert_eq!(cache.get(b"a", t0), None, "less than the renewal margin left: minted afresh each time");
}
