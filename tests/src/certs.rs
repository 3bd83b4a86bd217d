//! A local CA and a server certificate for the proxy's names, as PEM files.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair};

#[derive(Debug, Clone)]
pub struct Certs {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Certs {
    /// Writes `ca.pem`, `server.pem`, `server.key` into `dir`, covering `<t>.<domain>` and `*.<t>.<domain>`.
    pub fn generate(dir: &Path, domain: &str, tenants: &[&str]) -> anyhow::Result<Certs> {
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name = DistinguishedName::new();
        ca_params.distinguished_name.push(DnType::CommonName, "kaas e2e CA");
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca_params, ca_key);

        let mut names = vec![format!("*.{domain}")];
        for t in tenants {
            names.push(format!("{t}.{domain}"));
            names.push(format!("*.{t}.{domain}"));
        }
        let key = KeyPair::generate()?;
        let cert = CertificateParams::new(names)?.signed_by(&key, &issuer)?;
        let certs =
            Certs { ca: dir.join("ca.pem"), cert: dir.join("server.pem"), key: dir.join("server.key") };
        std::fs::write(&certs.ca, ca_cert.pem())?;
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
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, format!("{name} clients CA"));
        let cert = params.self_signed(&key)?;
        let ca = dir.join(format!("{name}-clients-ca.pem"));
        std::fs::write(&ca, cert.pem())?;
        Ok(ClientCa { ca, issuer: Issuer::new(params, key), dir: dir.to_owned() })
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
