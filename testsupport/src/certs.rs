//! A local CA and a server certificate for the proxy's names, and client CAs issuing client certificates, as
//! PEM files.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair};
use time::OffsetDateTime;

/// A new self-signed CA named `common_name`: its certificate as PEM, and the issuer that signs with it.
pub fn new_ca(common_name: &str) -> anyhow::Result<(String, Issuer<'static, KeyPair>)> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, common_name);
    let pem = params.self_signed(&key)?.pem();
    Ok((pem, Issuer::new(params, key)))
}

/// A clients CA shaped as Strimzi 1.2.0 makes one (`OpenSslCertIssuer.generateSelfSignedCert`: a root with
/// `basicConstraints critical,CA:true,pathlen:0` and `keyUsage critical,keyCertSign,cRLSign`), named
/// `common_name`: its certificate as PEM, and the issuer that signs with it. The path length is the anchor's, which
/// PKIX does not apply to the anchor itself (RFC 5280 6.1): `identity::kafka::intermediate` shows a JDK broker
/// accepting an intermediate under it.
pub fn new_clients_ca(common_name: &str) -> anyhow::Result<(String, Issuer<'static, KeyPair>)> {
    strimzi_shaped(&[(DnType::CommonName, common_name)])
}

/// A CA as Strimzi keeps one in its `<cluster>-*-ca-cert` `ca.crt` and `<cluster>-*-ca` `ca.key` Secrets
/// ([`new_clients_ca`]'s shape, and Strimzi's subject `O=io.strimzi, CN=<common_name>`): (certificate PEM,
/// key PEM).
pub fn strimzi_ca(common_name: &str) -> anyhow::Result<(String, String)> {
    let subject = [(DnType::OrganizationName, "io.strimzi"), (DnType::CommonName, common_name)];
    let (pem, issuer) = strimzi_shaped(&subject)?;
    Ok((pem, issuer.key().serialize_pem()))
}

/// A self-signed root of `subject` (attributes in X.509 order) as Strimzi makes its CAs.
fn strimzi_shaped(subject: &[(DnType, &str)]) -> anyhow::Result<(String, Issuer<'static, KeyPair>)> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
    params.distinguished_name = DistinguishedName::new();
    for (ty, value) in subject {
        params.distinguished_name.push(ty.clone(), *value);
    }
    let pem = params.self_signed(&key)?.pem();
    Ok((pem, Issuer::new(params, key)))
}

/// A CRL of `issuer` numbered `number`, listing the certificates of serial numbers `revoked` (reason: key
/// compromise), valid from an hour ago for a day: PEM.
pub fn crl(issuer: &Issuer<'static, KeyPair>, number: u64, revoked: &[u64]) -> anyhow::Result<String> {
    let now = OffsetDateTime::now_utc();
    let revoked_certs = revoked
        .iter()
        .map(|serial| rcgen::RevokedCertParams {
            serial_number: rcgen::SerialNumber::from(*serial),
            revocation_time: now - time::Duration::minutes(5),
            reason_code: Some(rcgen::RevocationReason::KeyCompromise),
            invalidity_date: None,
        })
        .collect();
    let params = rcgen::CertificateRevocationListParams {
        this_update: now - time::Duration::hours(1),
        next_update: now + time::Duration::days(1),
        crl_number: rcgen::SerialNumber::from(number),
        issuing_distribution_point: None,
        revoked_certs,
        key_identifier_method: rcgen::KeyIdMethod::Sha256,
    };
    Ok(params.signed_by(issuer)?.pem()?)
}

/// A server certificate for `names` (DNS names or IP addresses) signed by `issuer`: (certificate PEM, key PEM),
/// as a webhook server's `tls.crt` and `tls.key`.
pub fn server_certificate(
    issuer: &Issuer<'static, KeyPair>,
    names: &[&str],
) -> anyhow::Result<(String, String)> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())?;
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    Ok((params.signed_by(&key, issuer)?.pem(), key.serialize_pem()))
}

#[derive(Debug, Clone)]
pub struct Certs {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Certs {
    /// Writes `ca.pem`, `server.pem`, `server.key` into `dir`, covering `<t>.<domain>` and `*.<t>.<domain>`.
    pub fn generate(dir: &Path, domain: &str, tenants: &[&str]) -> anyhow::Result<Certs> {
        let (ca_pem, issuer) = new_ca("kaas e2e CA")?;

        let mut names = vec![format!("*.{domain}")];
        for t in tenants {
            names.push(format!("{t}.{domain}"));
            names.push(format!("*.{t}.{domain}"));
        }
        let key = KeyPair::generate()?;
        let cert = CertificateParams::new(names)?.signed_by(&key, &issuer)?;
        let certs =
            Certs { ca: dir.join("ca.pem"), cert: dir.join("server.pem"), key: dir.join("server.key") };
        std::fs::write(&certs.ca, ca_pem)?;
        std::fs::write(&certs.cert, cert.pem())?;
        std::fs::write(&certs.key, key.serialize_pem())?;
        Ok(certs)
    }
}

/// A client CA (as a tenant's clients CA would be) that issues client certificates.
#[derive(Debug)]
pub struct ClientCa {
    pub ca: PathBuf,
    /// The CA's private key as a PKCS#8 PEM file (`<name>-clients-ca.key`, beside `ca`): what Strimzi keeps
    /// as `ca.key` in `<cluster>-clients-ca`, so a proxy holding it can sign client certificates itself.
    pub key: PathBuf,
    issuer: Issuer<'static, KeyPair>,
    dir: PathBuf,
}

impl ClientCa {
    pub fn generate(dir: &Path, name: &str) -> anyhow::Result<ClientCa> {
        let (pem, issuer) = new_clients_ca(&format!("{name} clients CA"))?;
        let ca = dir.join(format!("{name}-clients-ca.pem"));
        std::fs::write(&ca, pem)?;
        let key = dir.join(format!("{name}-clients-ca.key"));
        std::fs::write(&key, issuer.key().serialize_pem())?;
        Ok(ClientCa { ca, key, issuer, dir: dir.to_owned() })
    }

    /// A later generation of `name`'s clients CA, as a rotation makes it: named `<name> clients CA
    /// v<generation>` (Strimzi numbers its CA generations so), so that old and new differ by name as well as
    /// by key in a bundle holding both; files and certificates in `dir` as with [`ClientCa::generate`].
    pub fn generate_version(dir: &Path, name: &str, generation: u32) -> anyhow::Result<ClientCa> {
        let (pem, issuer) = new_clients_ca(&format!("{name} clients CA v{generation}"))?;
        let ca = dir.join(format!("{name}-clients-ca.pem"));
        std::fs::write(&ca, pem)?;
        let key = dir.join(format!("{name}-clients-ca.key"));
        std::fs::write(&key, issuer.key().serialize_pem())?;
        Ok(ClientCa { ca, key, issuer, dir: dir.to_owned() })
    }

    /// The CA's signer, for a test that issues what `issue_for` does not (an intermediate CA).
    pub fn issuer(&self) -> &Issuer<'static, KeyPair> {
        &self.issuer
    }

    /// A client certificate for `user`: (cert PEM path, key PEM path).
    pub fn issue(&self, user: &str) -> anyhow::Result<(PathBuf, PathBuf)> {
        self.issue_for(user, &[(DnType::CommonName, user)], None)
    }

    /// A client certificate with any subject and validity, as identity tests need them (several attributes,
    /// expired, not yet valid): written as `<file_stem>.pem` and `<file_stem>.key` in the CA's folder, their
    /// paths returned.
    ///
    /// `subject` is in the order Kafka prints a certificate's principal (RFC 2253: the most specific
    /// attribute first), so `[(CommonName, "carol"), (OrganizationalUnitName, "payments"),
    /// (OrganizationName, "acme")]` is `User:CN=carol,OU=payments,O=acme`; the certificate encodes them the
    /// other way round, as X.509 does. Each attribute type at most once. `validity` is (not before, not
    /// after); `None` is rcgen's default, valid from 1975 to 4096.
    pub fn issue_for(
        &self,
        file_stem: &str,
        subject: &[(DnType, &str)],
        validity: Option<(OffsetDateTime, OffsetDateTime)>,
    ) -> anyhow::Result<(PathBuf, PathBuf)> {
        anyhow::ensure!(
            !file_stem.is_empty()
                && !file_stem.contains(['/', '\\'])
                && file_stem != "."
                && file_stem != "..",
            "client certificate file stem {file_stem:?} is not a plain file name"
        );
        anyhow::ensure!(!subject.is_empty(), "client certificate {file_stem}: empty subject");
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = DistinguishedName::new();
        for (i, (ty, value)) in subject.iter().enumerate().rev() {
            anyhow::ensure!(
                !subject[..i].iter().any(|(t, _)| t == ty),
                "client certificate {file_stem}: {ty:?} given twice in its subject"
            );
            params.distinguished_name.push(ty.clone(), *value);
        }
        if let Some((not_before, not_after)) = validity {
            params.not_before = not_before;
            params.not_after = not_after;
        }
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        let paths = (self.dir.join(format!("{file_stem}.pem")), self.dir.join(format!("{file_stem}.key")));
        std::fs::write(&paths.0, cert.pem())?;
        std::fs::write(&paths.1, key.serialize_pem())?;
        Ok(paths)
    }
}
