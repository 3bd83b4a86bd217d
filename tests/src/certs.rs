//! A local CA and a server certificate for the proxy's names, as PEM files.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair};

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
    issuer: Issuer<'static, KeyPair>,
    dir: PathBuf,
}

impl ClientCa {
    pub fn generate(dir: &Path, name: &str) -> anyhow::Result<ClientCa> {
        let (pem, issuer) = new_ca(&format!("{name} clients CA"))?;
        let ca = dir.join(format!("{name}-clients-ca.pem"));
        std::fs::write(&ca, pem)?;
        Ok(ClientCa { ca, issuer, dir: dir.to_owned() })
    }

    /// A client certificate for `user`: (cert PEM path, key PEM path).
    pub fn issue(&self, user: &str) -> anyhow::Result<(PathBuf, PathBuf)> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, user);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &self.issuer)?;
        let paths = (self.dir.join(format!("{user}.pem")), self.dir.join(format!("{user}.key")));
        std::fs::write(&paths.0, cert.pem())?;
        std::fs::write(&paths.1, key.serialize_pem())?;
        Ok(paths)
    }
}
