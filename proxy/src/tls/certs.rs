//! Certificate files: PEM chain + private key, loaded and checked to belong together.

use std::path::{Path, PathBuf};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

use super::provider;

/// Why a certificate pair could not be used; [`CertError::field`] names the offending key (`cert` or `key`).
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("cannot read {path}: {source}")]
    CertUnreadable { path: PathBuf, source: std::io::Error },
    #[error("{path} holds no PEM certificate ({reason})")]
    CertInvalid { path: PathBuf, reason: String },
    #[error("cannot read {path}: {source}")]
    KeyUnreadable { path: PathBuf, source: std::io::Error },
    #[error("{path} holds no usable PEM private key ({reason})")]
    KeyInvalid { path: PathBuf, reason: String },
    #[error("{key} does not match the certificate in {cert} ({reason})")]
    Mismatch { cert: PathBuf, key: PathBuf, reason: String },
}

impl CertError {
    pub fn field(&self) -> &'static str {
        match self {
            CertError::CertUnreadable { .. } | CertError::CertInvalid { .. } => "cert",
            CertError::KeyUnreadable { .. } | CertError::KeyInvalid { .. } | CertError::Mismatch { .. } => {
                "key"
            }
        }
    }
}

pub fn load_pair(cert: &Path, key: &Path) -> Result<CertifiedKey, CertError> {
    let cert_pem =
        std::fs::read(cert).map_err(|source| CertError::CertUnreadable { path: cert.into(), source })?;
    let key_pem =
        std::fs::read(key).map_err(|source| CertError::KeyUnreadable { path: key.into(), source })?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CertError::CertInvalid { path: cert.into(), reason: e.to_string() })?;
    if chain.is_empty() {
        return Err(CertError::CertInvalid { path: cert.into(), reason: "no CERTIFICATE block".into() });
    }
    let private = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| CertError::KeyInvalid { path: key.into(), reason: e.to_string() })?;
    let signing = provider()
        .key_provider
        .load_private_key(private)
        .map_err(|e| CertError::KeyInvalid { path: key.into(), reason: e.to_string() })?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|e| CertError::Mismatch {
        cert: cert.into(),
        key: key.into(),
        reason: e.to_string(),
    })?;
    Ok(certified)
}

/// A client CA bundle, for verifying client certificates.
pub fn load_roots(path: &Path) -> Result<rustls::RootCertStore, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| format!("{}: {e}", path.display()))?;
        roots.add(cert).map_err(|e| format!("{}: not a usable CA certificate ({e})", path.display()))?;
    }
    if roots.is_empty() {
        return Err(format!("{} holds no PEM certificate", path.display()));
    }
    Ok(roots)
}
